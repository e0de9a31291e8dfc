//! The API's business logic, Cinder's `volume/api.py` and friends:
//! validation that needs the database, the translation of database and RPC
//! outcomes into Cinder's exact user-visible texts, compare-and-swap status
//! changes through the repositories, and the RPC casts.
//!
//! Handlers call these with the caller's [`RequestContext`]; views render
//! what they return.

pub mod attachments;
pub mod backup_records;
pub mod backups;
pub mod compute;
pub mod create_volume;
pub mod default_types;
pub mod encryption;
pub mod group_snapshots;
pub mod group_sources;
pub mod groups;
pub mod images;
pub mod manage;
pub mod migration;
pub mod qos_specs;
pub mod quotas;
pub mod retype;
pub mod revert;
pub mod rows;
pub mod snapshots;
pub mod transfers;
pub mod types;
pub mod volumes;

use clinker_db::{DbError, OverQuota};
use clinker_rpc::RequestContext;
use clinker_types::model::Service;

use crate::ApiState;
use crate::fault::{ApiError, ApiResult};

/// The binary name of volume services.
pub const VOLUME_BINARY: &str = "cinder-volume";

/// What was being charged when a quota refused, which decides Cinder's
/// exception and text (`quota_utils.process_reserve_over_quota`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaAction {
    /// A volume of `size` GiB is created.
    CreateVolume {
        /// Requested size.
        size: i64,
    },
    /// A snapshot of a `size` GiB volume is created.
    CreateSnapshot {
        /// The volume's size.
        size: i64,
    },
    /// A volume grows by `delta` GiB.
    Extend {
        /// The growth.
        delta: i64,
    },
}

/// Cinder's 413 for a refused quota: the exception class, then its text
/// (the `FaultWrapper` shows `"<Class>: <message>"`).
pub fn quota_error(over: &OverQuota, action: QuotaAction) -> ApiError {
    let resource = over.resource.as_str();
    if resource == "per_volume_gigabytes" {
        let size = match action {
            QuotaAction::CreateVolume { size } | QuotaAction::CreateSnapshot { size } => size,
            QuotaAction::Extend { delta } => over.in_use + delta,
        };
        return ApiError::over_quota(format!(
            "VolumeSizeExceedsLimit: Requested volume size {size}G is larger than maximum allowed limit {}G.",
            over.limit
        ));
    }
    let consumed = over.in_use;
    match action {
        QuotaAction::Extend { delta } => ApiError::over_quota(format!(
            "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested {delta}G, quota is {}G and {consumed}G has been consumed.",
            over.limit
        )),
        QuotaAction::CreateVolume { size } | QuotaAction::CreateSnapshot { size }
            if resource.contains("gigabytes") =>
        {
            ApiError::over_quota(format!(
                "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed {resource} quota. Requested {size}G, quota is {}G and {consumed}G has been consumed.",
                over.limit
            ))
        }
        QuotaAction::CreateVolume { .. } if resource.starts_with("volumes") => {
            ApiError::over_quota(format!(
                "VolumeLimitExceeded: Maximum number of volumes allowed ({}) exceeded for quota '{resource}'.",
                over.limit
            ))
        }
        QuotaAction::CreateSnapshot { .. } if resource.starts_with("snapshots") => {
            ApiError::over_quota(format!(
                "SnapshotLimitExceeded: Maximum number of snapshots allowed ({}) exceeded",
                over.limit
            ))
        }
        _ => ApiError::over_quota(format!(
            "UnexpectedOverQuota: Unexpected over quota on {resource}."
        )),
    }
}

/// Maps a database error of a lookup: not found becomes `not_found`, the
/// rest keeps its classification.
pub(crate) fn lookup_error(err: DbError, not_found: impl FnOnce() -> ApiError) -> ApiError {
    match err {
        DbError::NotFound { .. } => not_found(),
        other => other.into(),
    }
}

/// The end of an operation whose journal row the volume service resumes
/// from: a cast that cannot be delivered is only logged.
pub(crate) fn cast_journaled<E: std::fmt::Display>(
    sent: Result<(), E>,
    op: &str,
    id: &dyn std::fmt::Display,
    host: &str,
) {
    if let Err(err) = sent {
        tracing::warn!(id = %id, host, error = %err,
            "cannot cast {op}; the volume service resumes it from the journal");
    }
}

/// Whether the caller may see a resource of `project_id` (admins see every
/// project, as Cinder's `project_only` queries allow them).
pub(crate) fn visible(ctx: &RequestContext, project_id: &str) -> bool {
    ctx.is_admin || ctx.project_id == project_id
}

/// The availability zones of the volume services with whether each is
/// available (Cinder's `list_availability_zones`: a zone is available when
/// at least one of its services is enabled).
pub async fn availability_zones(state: &ApiState) -> ApiResult<Vec<(String, bool)>> {
    let services: Vec<Service> = state
        .db
        .list_services(None, Some(VOLUME_BINARY))
        .await
        .map_err(ApiError::from)?;
    // In the order the zones first appear among the services (by id), as
    // Cinder's dict of zones keeps them.
    let mut zones: Vec<(String, bool)> = Vec::new();
    for service in services {
        match zones
            .iter_mut()
            .find(|(name, _)| *name == service.availability_zone)
        {
            Some((_, available)) => *available |= !service.disabled,
            None => zones.push((service.availability_zone.clone(), !service.disabled)),
        }
    }
    Ok(zones)
}

/// The names of the volume services' availability zones, kept for
/// `az_cache_duration` as Cinder's API keeps them for creates: a create
/// then costs no read of the services table, and a zone the cache does not
/// know makes it read the table again at once, so a new zone is usable as
/// soon as its service has registered.
#[derive(Debug, Default)]
pub struct ZoneCache {
    cached: std::sync::Mutex<Option<(std::time::Instant, Vec<String>)>>,
}

impl ZoneCache {
    /// The known zone names (with the configured storage zone), read anew
    /// when the cache is older than `az_cache_duration` or lacks one of
    /// `wanted`.
    ///
    /// # Errors
    /// Database failures.
    pub async fn known(&self, state: &ApiState, wanted: &[&str]) -> ApiResult<Vec<String>> {
        let max_age = state.config.default.az_cache_duration;
        if let Ok(cached) = self.cached.lock()
            && let Some((at, zones)) = cached.as_ref()
            && at.elapsed() < max_age
            && wanted.iter().all(|w| zones.iter().any(|z| z == w))
        {
            return Ok(zones.clone());
        }
        let mut zones: Vec<String> = availability_zones(state)
            .await?
            .into_iter()
            .map(|(zone, _)| zone)
            .collect();
        let storage = &state.config.default.storage_availability_zone;
        if !zones.contains(storage) {
            zones.push(storage.clone());
        }
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some((std::time::Instant::now(), zones.clone()));
        }
        Ok(zones)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn over(resource: &str, limit: i64, in_use: i64, requested: i64) -> OverQuota {
        OverQuota {
            resource: resource.into(),
            limit,
            in_use,
            requested,
        }
    }

    #[test]
    fn quota_texts_are_cinder_exceptions() {
        assert_eq!(
            quota_error(
                &over("volumes", 10, 10, 1),
                QuotaAction::CreateVolume { size: 1 }
            )
            .user_message(),
            "VolumeLimitExceeded: Maximum number of volumes allowed (10) exceeded for quota 'volumes'."
        );
        assert_eq!(
            quota_error(
                &over("gigabytes", 5, 4, 3),
                QuotaAction::CreateVolume { size: 3 }
            )
            .user_message(),
            "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested 3G, quota is 5G and 4G has been consumed."
        );
        assert_eq!(
            quota_error(
                &over("per_volume_gigabytes", 2, 0, 5),
                QuotaAction::CreateVolume { size: 5 }
            )
            .user_message(),
            "VolumeSizeExceedsLimit: Requested volume size 5G is larger than maximum allowed limit 2G."
        );
        assert_eq!(
            quota_error(
                &over("snapshots", 3, 3, 1),
                QuotaAction::CreateSnapshot { size: 1 }
            )
            .user_message(),
            "SnapshotLimitExceeded: Maximum number of snapshots allowed (3) exceeded"
        );
    }
}
