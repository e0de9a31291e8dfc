//! Checking the destination of `os-migrate_volume` (Cinder's
//! `SchedulerManager.migrate_volume` and
//! `FilterScheduler.backend_passes_filters`).
//!
//! The administrator names the destination; the scheduler only checks that
//! it passes every filter (capacity included) for the volume's size and
//! type, then casts the migration to the volume's own backend with the
//! destination pool. A refusal ends the migration: `migration_status =
//! error`, the status back from `maintenance`, and a user message.

use clinker_db::DbError;
use clinker_rpc::RequestContext;
use clinker_rpc::scheduler::ScheduleMigrateVolumeArgs;
use clinker_rpc::volume::MigrateVolumeArgs;
use clinker_types::RemoteError;
use clinker_types::message_field::{self as mf, Detail};
use clinker_types::model::Volume;

use super::SchedulerManager;
use super::retype::retype_request;
use crate::weighers::order_by_weight;

/// Whether pool `pool` (`host@backend#pool`) is what `wanted` names: the
/// pool itself, or its backend when `wanted` has no pool.
fn names_pool(wanted: &str, pool: &str) -> bool {
    if wanted.contains('#') {
        pool == wanted
    } else {
        pool.split('#').next() == Some(wanted)
    }
}

impl SchedulerManager {
    /// Serves `migrate_volume`.
    pub(crate) async fn migrate_volume(
        &self,
        context: &RequestContext,
        args: ScheduleMigrateVolumeArgs,
    ) -> Result<(), RemoteError> {
        self.wait_until_ready().await;
        let volume = match self.db.get_volume(args.volume_id).await {
            Ok(v) => v,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(Self::db_error(e)),
        };
        if volume.migration_status.as_deref() != Some("starting") {
            return Ok(());
        }
        let Some(current) = volume.host.clone() else {
            return self
                .fail_migration(context, &volume, mf::MIGRATION_DESTINATION_REFUSED)
                .await;
        };
        let volume_type = match self.db.get_volume_type(volume.volume_type_id).await {
            Ok(t) => t,
            Err(DbError::NotFound { .. }) => {
                return self
                    .fail_migration(context, &volume, mf::UNKNOWN_ERROR)
                    .await;
            }
            Err(e) => return Err(Self::db_error(e)),
        };
        let request = retype_request(&volume, &volume_type);
        let candidates: Vec<_> = self
            .current_pools()
            .await?
            .into_iter()
            .filter(|p| p.host != current && names_pool(&args.host, &p.host))
            .filter(|p| self.passes_for_retype(p, false, &request))
            .collect();
        let Some(target) = order_by_weight(candidates, &request, &self.weighers)
            .into_iter()
            .next()
        else {
            tracing::warn!(volume_id = %volume.id, backend = %args.host,
                "cannot place volume {} on {}", volume.id, args.host);
            return self
                .fail_migration(context, &volume, mf::MIGRATION_DESTINATION_REFUSED)
                .await;
        };
        let cast = MigrateVolumeArgs {
            volume_id: volume.id,
            host: target.host,
            force_host_copy: args.force_host_copy,
            new_type_id: None,
        };
        if let Err(e) = self
            .volume_rpc
            .migrate_volume(context, &current, &cast)
            .await
        {
            tracing::warn!(volume_id = %volume.id, error = %e, "cannot cast the migration to the volume's backend");
            return self
                .fail_migration(context, &volume, mf::REQUEST_LOST)
                .await;
        }
        Ok(())
    }

    /// Cinder's `_migrate_volume_set_error`, with a user message.
    async fn fail_migration(
        &self,
        context: &RequestContext,
        volume: &Volume,
        detail: Detail,
    ) -> Result<(), RemoteError> {
        match self.db.fail_volume_migration(volume.id).await {
            Ok(_) => {}
            Err(DbError::NotFound { .. } | DbError::InvalidState(_)) => return Ok(()),
            Err(e) => return Err(Self::db_error(e)),
        }
        self.record_message(
            context,
            &volume.project_id,
            volume.id,
            mf::MIGRATE_VOLUME,
            detail,
        )
        .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::names_pool;

    #[test]
    fn a_destination_names_a_backend_or_one_pool() {
        assert!(names_pool("n@file2", "n@file2#file2"));
        assert!(names_pool("n@file2#file2", "n@file2#file2"));
        assert!(!names_pool("n@file2#other", "n@file2#file2"));
        assert!(!names_pool("n@file", "n@file2#file2"));
    }
}
