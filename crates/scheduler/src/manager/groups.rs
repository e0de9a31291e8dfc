//! Group placement (Cinder's `FilterScheduler.schedule_create_group`): a
//! group goes to a backend that can hold a volume of every one of its
//! volume types, and all its volumes will live on that backend.
//!
//! Nothing is consumed: Cinder's generic group holds no capacity of its
//! own; its volumes claim theirs when they are placed.

use clinker_db::{ClaimOutcome, DbError};
use clinker_rpc::RequestContext;
use clinker_rpc::scheduler::ScheduleCreateGroupArgs;
use clinker_rpc::volume::CreateGroupArgs;
use clinker_types::group::Group;
use clinker_types::group_status::GroupStatus;
use clinker_types::model::JournalEntry;
use clinker_types::{GroupId, RemoteError};
use serde_json::json;

use super::SchedulerManager;
use crate::filters::{FilterRequest, PoolState};
use crate::weighers::order_by_weight;

impl SchedulerManager {
    /// The pools that can hold volumes of every type of `group`, best first
    /// (the ranking of the group's first type, as Cinder keeps it), each on
    /// a backend that passed for all the types.
    async fn group_candidates(&self, group: &Group) -> Result<Vec<PoolState>, RemoteError> {
        let pools = self.current_pools().await?;
        let mut ranked: Option<Vec<PoolState>> = None;
        for type_id in &group.volume_type_ids {
            let extra_specs = match self.db.get_volume_type(*type_id).await {
                Ok(t) => t.extra_specs,
                // A type deleted since (it cannot be while the group uses
                // it, but the row may be racing a reset): nothing fits.
                Err(DbError::NotFound { .. }) => return Ok(Vec::new()),
                Err(e) => return Err(Self::db_error(e)),
            };
            // Cinder places a group with size 0, in the group's zone.
            let request = FilterRequest {
                size: 0,
                availability_zone: Some(group.availability_zone.clone()),
                extra_specs,
                ..FilterRequest::default()
            };
            let passing: Vec<PoolState> = pools
                .iter()
                .filter(|p| self.filters.iter().all(|f| f.passes(p, &request)))
                .cloned()
                .collect();
            let ordered = order_by_weight(passing, &request, &self.weighers);
            ranked = Some(match ranked {
                None => ordered,
                // Backend level, not pool level: a group's volumes may use
                // any pool of its backend.
                Some(previous) => previous
                    .into_iter()
                    .filter(|p| ordered.iter().any(|o| o.service_host == p.service_host))
                    .collect(),
            });
        }
        Ok(ranked.unwrap_or_default())
    }

    /// Places a `creating` group and casts its creation to the backend;
    /// with no backend for it (or none reachable) the group becomes
    /// `error`, as Cinder's scheduler leaves it.
    pub(crate) async fn create_group(
        &self,
        context: &RequestContext,
        args: ScheduleCreateGroupArgs,
    ) -> Result<(), RemoteError> {
        let group_id = args.group_id;
        self.wait_until_ready().await;
        let group = match self.db.get_group(group_id).await {
            Ok(g) => g,
            // Deleted meanwhile: nothing to place.
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(Self::db_error(e)),
        };
        if group.status != GroupStatus::Creating || group.host.is_some() {
            return Ok(());
        }
        if let Some(pool) = self.group_candidates(&group).await?.into_iter().next() {
            match self
                .db
                .place_group(group_id, &pool.host)
                .await
                .map_err(Self::db_error)?
            {
                ClaimOutcome::Claimed => {}
                // Placed by another scheduler, or deleted: not ours.
                ClaimOutcome::NotWaiting | ClaimOutcome::NoCapacity => return Ok(()),
            }
            let cast = CreateGroupArgs { group_id };
            match self
                .volume_rpc
                .create_group(context, &pool.host, &cast)
                .await
            {
                Ok(()) => {
                    tracing::debug!(group_id = %group_id, pool = %pool.host, "placed group");
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(group_id = %group_id, pool = %pool.host, error = %e,
                        "cannot cast create_group to the chosen backend");
                }
            }
        } else {
            tracing::warn!(group_id = %group_id, "no valid backend for group");
        }
        match self.db.fail_group_create(group_id).await {
            Ok(_) => {
                self.notifier
                    .error(
                        "scheduler.create_group",
                        json!({"group_id": group_id, "state": "error", "method": "create_group",
                               "reason": "No valid backend was found. No weighed backends available"}),
                    )
                    .await;
                Ok(())
            }
            // Deleted or reset meanwhile: nothing to report.
            Err(DbError::NotFound { .. } | DbError::InvalidState(_)) => Ok(()),
            Err(e) => Err(Self::db_error(e)),
        }
    }

    /// Places again a group create whose request was lost (see
    /// `resume_unplaced_creates`); the group row has everything needed.
    pub(crate) async fn resume_unplaced_group(&self, entry: &JournalEntry) {
        let Ok(group_id) = entry.resource_id.parse::<GroupId>() else {
            return;
        };
        tracing::info!(group_id = %group_id, "placing a group create whose request was lost");
        let context = RequestContext::internal("scheduler");
        if let Err(e) = self
            .create_group(&context, ScheduleCreateGroupArgs { group_id })
            .await
        {
            tracing::warn!(group_id = %group_id, error = %e, "could not place a lost group create");
        }
    }
}
