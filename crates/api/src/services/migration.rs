//! `os-migrate_volume` and `os-migrate_volume_completion` (Cinder's
//! `volume/api.py::migrate_volume` and `migrate_volume_completion`): the
//! API's checks and texts, the `starting` transition, and the casts.

use clinker_db::DbError;
use clinker_rpc::RequestContext;
use clinker_rpc::scheduler::ScheduleMigrateVolumeArgs;
use clinker_rpc::volume::MigrateVolumeCompletionArgs;
use clinker_types::VolumeId;

use super::lookup_error;
use super::volumes::{authorized_volume, get_volume, volume_not_found};
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};

/// `volume_extension:volume_admin_actions:migrate_volume`.
pub const MIGRATE_POLICY: &str = "volume_extension:volume_admin_actions:migrate_volume";
/// `volume_extension:volume_admin_actions:migrate_volume_completion`.
pub const MIGRATE_COMPLETION_POLICY: &str =
    "volume_extension:volume_admin_actions:migrate_volume_completion";

/// Where to migrate: a `host@backend[#pool]`, or (3.16) a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// `host`.
    Host(String),
    /// `cluster`.
    Cluster(String),
}

/// What `os-migrate_volume` asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrateRequest {
    /// The destination.
    pub destination: Destination,
    /// `force_host_copy`.
    pub force_host_copy: bool,
    /// `lock_volume`.
    pub lock_volume: bool,
}

/// Cinder's `InvalidVolume` when the conditional update does not apply.
fn migration_refused(volume_id: VolumeId) -> ApiError {
    ApiError::invalid_state(format!(
        "Invalid volume: Volume {volume_id} status must be available or in-use, must not be migrating, have snapshots, be replicated, be part of a group and destination host/cluster must be different than the current one"
    ))
}

/// `host@backend` of a `host@backend[#pool]`.
fn backend_of(host: &str) -> &str {
    host.split('#').next().unwrap_or(host)
}

/// The destination's volume service, which must be up and enabled
/// (Cinder's `Service.get_by_id(..., is_up=True, disabled=False)`); returns
/// the host to migrate to (a cluster resolves to one of its services).
async fn destination_host(state: &ApiState, destination: &Destination) -> ApiResult<String> {
    let (named, service_host) = match destination {
        Destination::Host(h) => (h.as_str(), Some(backend_of(h))),
        Destination::Cluster(c) => (c.as_str(), None),
    };
    let services = state
        .db
        .list_services(service_host, Some("cinder-volume"))
        .await
        .map_err(ApiError::from)?;
    let now = state.clock.now();
    let down_time = state.config.default.service_down_time;
    let found = services.into_iter().find(|s| {
        let matches = match destination {
            Destination::Host(_) => true,
            Destination::Cluster(c) => {
                s.cluster_name.as_deref().map(backend_of) == Some(backend_of(c))
            }
        };
        matches && !s.disabled && s.is_up(now, down_time)
    });
    match (found, destination) {
        (Some(_), Destination::Host(h)) => Ok(h.clone()),
        (Some(s), Destination::Cluster(_)) => Ok(s.host),
        (None, _) => Err(ApiError::bad_request(format!(
            "Invalid host: No available service named '{named}'"
        ))),
    }
}

/// Starts migrating `volume_id`.
///
/// # Errors
/// 404, 403, 400 with Cinder's texts, 503 when no scheduler takes the cast.
pub async fn migrate_volume(
    state: &ApiState,
    ctx: &RequestContext,
    volume_id: &str,
    request: MigrateRequest,
) -> ApiResult<()> {
    let volume = authorized_volume(state, ctx, volume_id, MIGRATE_POLICY).await?;
    let host = destination_host(state, &request.destination).await?;
    let detail = serde_json::json!({
        "migration": {
            "host": host,
            "force_host_copy": request.force_host_copy,
            "lock_volume": request.lock_volume,
        }
    });
    state
        .db
        .begin_volume_migration(volume.id, &host, request.lock_volume, detail)
        .await
        .map_err(|e| match e {
            DbError::InvalidState(_) => migration_refused(volume.id),
            other => lookup_error(other, || volume_not_found(volume_id)),
        })?;
    let args = ScheduleMigrateVolumeArgs {
        volume_id: volume.id,
        host,
        force_host_copy: request.force_host_copy,
    };
    if let Err(err) = state.scheduler_rpc.migrate_volume(ctx, &args).await {
        tracing::error!(volume_id = %volume.id, error = %err, "cannot cast the migration to the scheduler; undoing");
        if let Err(undo) = state.db.fail_volume_migration(volume.id).await {
            tracing::error!(volume_id = %volume.id, error = %undo, "cannot undo the undispatched migration");
        }
        return Err(ApiError::unavailable());
    }
    tracing::info!(volume_id = %volume.id, destination = %args.host, "migrate volume request issued");
    Ok(())
}

/// Completes (or, with `error`, abandons) the migration of `volume_id`
/// to `new_volume_id`; returns the id of the volume kept.
///
/// # Errors
/// 404, 403, 400 with Cinder's texts, 501 for a swap between volumes that
/// are not migrating but attached, 500/503 from the volume service.
pub async fn migrate_volume_completion(
    state: &ApiState,
    ctx: &RequestContext,
    volume_id: &str,
    new_volume_id: &str,
    error: bool,
) -> ApiResult<VolumeId> {
    let volume = authorized_volume(state, ctx, volume_id, MIGRATE_COMPLETION_POLICY).await?;
    let new_volume = get_volume(state, ctx, new_volume_id).await?;
    if volume.migration_status.is_none() && new_volume.migration_status.is_none() {
        // Nova swapping two volumes that are not migrating: Cinder moves
        // the legacy attachments from one to the other.
        if !error && !volume.attachments.is_empty() {
            return Err(ApiError::not_implemented(
                "Swapping the attachments of volumes that are not migrating is not supported.",
            ));
        }
        return Ok(new_volume.id);
    }
    if volume.migration_status.is_none() {
        return Err(ApiError::invalid_state(
            "Invalid volume: Source volume not mid-migration.",
        ));
    }
    let Some(target_status) = new_volume.migration_status.as_deref() else {
        return Err(ApiError::invalid_state(
            "Invalid volume: Destination volume not mid-migration.",
        ));
    };
    let expected = clinker_db::migration_target_status(volume.id);
    if target_status != expected {
        return Err(ApiError::invalid_state(format!(
            "Invalid volume: Destination has migration_status {target_status}, expected {expected}."
        )));
    }
    let Some(host) = volume.host.clone() else {
        return Err(ApiError::invalid_state(
            "Invalid volume: Source volume not mid-migration.",
        ));
    };
    let args = MigrateVolumeCompletionArgs {
        volume_id: volume.id,
        new_volume_id: new_volume.id,
        error,
    };
    state
        .volume_rpc
        .migrate_volume_completion(ctx, &host, &args)
        .await
        .map_err(ApiError::from)
}
