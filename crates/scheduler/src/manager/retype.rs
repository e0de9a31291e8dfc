//! Placing a retype (Cinder's `SchedulerManager.retype` and
//! `FilterScheduler.find_retype_backend`).
//!
//! The volume's own pool is checked against the new type with every filter
//! but `CapacityFilter` (the volume already lives there). If it passes, the
//! retype is cast to the volume's backend to be done in place. If not,
//! `migration_policy = never` ends the retype here (status restored, user
//! message); `on-demand` picks the best other pool and casts the retype to
//! the volume's backend with that target, where the migration decision is
//! made.

use clinker_db::DbError;
use clinker_rpc::RequestContext;
use clinker_rpc::scheduler::ScheduleRetypeArgs;
use clinker_rpc::volume::{MigrationPolicy, RetypeArgs};
use clinker_types::message_field::{self as mf, Detail};
use clinker_types::model::{Volume, VolumeType};
use clinker_types::{RemoteError, VolumeStatus};

use super::SchedulerManager;
use crate::filters::{FilterRequest, PoolState};
use crate::weighers::order_by_weight;

/// The filters a volume's own pool must pass for a retype in place.
const SKIPPED_FOR_OWN_POOL: &str = "CapacityFilter";

/// What the new type asks of a pool (Cinder's retype request spec: the
/// type's zones, or the volume's own zone).
pub(super) fn retype_request(volume: &Volume, new_type: &VolumeType) -> FilterRequest {
    let type_zones: Vec<String> = new_type
        .extra_specs
        .get("RESKEY:availability_zones")
        .map(|zones| {
            zones
                .split(',')
                .map(|z| z.trim().to_owned())
                .filter(|z| !z.is_empty())
                .collect()
        })
        .unwrap_or_default();
    FilterRequest {
        size: volume.size,
        availability_zone: None,
        availability_zones: if type_zones.is_empty() {
            vec![volume.availability_zone.clone()]
        } else {
            type_zones
        },
        extra_specs: new_type.extra_specs.clone(),
        extend_attached: false,
    }
}

impl SchedulerManager {
    /// Whether `pool` can take the volume under `request`; the volume's own
    /// pool skips the capacity check.
    pub(super) fn passes_for_retype(
        &self,
        pool: &PoolState,
        own: bool,
        request: &FilterRequest,
    ) -> bool {
        self.filters
            .iter()
            .filter(|f| !(own && f.name() == SKIPPED_FOR_OWN_POOL))
            .all(|f| f.passes(pool, request))
    }

    /// Serves `retype`.
    pub(crate) async fn retype(
        &self,
        context: &RequestContext,
        args: ScheduleRetypeArgs,
    ) -> Result<(), RemoteError> {
        self.wait_until_ready().await;
        let volume = match self.db.get_volume(args.volume_id).await {
            Ok(v) => v,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(Self::db_error(e)),
        };
        if volume.status != VolumeStatus::Retyping {
            return Ok(());
        }
        let new_type = match self.db.get_volume_type(args.new_type_id).await {
            Ok(t) => t,
            Err(DbError::NotFound { .. }) => {
                return self
                    .abandon_retype(context, &volume, mf::UNKNOWN_ERROR)
                    .await;
            }
            Err(e) => return Err(Self::db_error(e)),
        };
        let Some(current) = volume.host.clone() else {
            return self
                .abandon_retype(context, &volume, mf::NO_BACKEND_AVAILABLE)
                .await;
        };
        let request = retype_request(&volume, &new_type);
        let pools = self.current_pools().await?;
        let own_fits = pools
            .iter()
            .any(|p| p.host == current && self.passes_for_retype(p, true, &request));
        let target = if own_fits {
            current.clone()
        } else {
            match args.migration_policy {
                MigrationPolicy::Never => {
                    tracing::info!(volume_id = %volume.id, pool = %current, new_type = %new_type.name,
                        "current backend not valid for the new type, migration not allowed");
                    return self
                        .abandon_retype(context, &volume, mf::RETYPE_REQUIRES_MIGRATION)
                        .await;
                }
                MigrationPolicy::OnDemand => {
                    let others: Vec<PoolState> = pools
                        .into_iter()
                        .filter(|p| p.host != current && self.passes_for_retype(p, false, &request))
                        .collect();
                    match order_by_weight(others, &request, &self.weighers)
                        .into_iter()
                        .next()
                    {
                        Some(best) => best.host,
                        None => {
                            return self
                                .abandon_retype(context, &volume, mf::NO_BACKEND_AVAILABLE)
                                .await;
                        }
                    }
                }
            }
        };
        let cast = RetypeArgs {
            volume_id: volume.id,
            new_type_id: new_type.id,
            host: target,
            migration_policy: args.migration_policy,
        };
        if let Err(e) = self.volume_rpc.retype(context, &current, &cast).await {
            tracing::warn!(volume_id = %volume.id, error = %e, "cannot cast retype to the volume's backend");
            return self
                .abandon_retype(context, &volume, mf::REQUEST_LOST)
                .await;
        }
        Ok(())
    }

    /// Restores the volume's status (Cinder's `_retype_volume_set_error`)
    /// and tells the user why.
    async fn abandon_retype(
        &self,
        context: &RequestContext,
        volume: &Volume,
        detail: Detail,
    ) -> Result<(), RemoteError> {
        match self.db.abort_volume_retype(volume.id).await {
            Ok(_) => {}
            Err(DbError::NotFound { .. } | DbError::InvalidState(_)) => return Ok(()),
            Err(e) => return Err(Self::db_error(e)),
        }
        self.record_message(
            context,
            &volume.project_id,
            volume.id,
            mf::RETYPE_VOLUME,
            detail,
        )
        .await;
        Ok(())
    }
}
