//! Reverting a volume to its latest snapshot (Cinder's
//! `VolumeManager.revert_to_snapshot`, API 3.40).
//!
//! The API moved the volume to `reverting` and the snapshot to `restoring`
//! with a journal row; this finishes the operation through one of three
//! outcomes: reverted (both back to `available`), untouched (the backend
//! refused before changing anything: both back to `available`, with a user
//! message), or failed (the volume in `error`, as Cinder leaves it, with a
//! user message). Reverting is idempotent — copying the snapshot again
//! gives the same data — so an interrupted revert is simply run again.

use clinker_db::{DbError, RevertOutcome};
use clinker_drivers::DriverError;
use clinker_rpc::RequestContext;
use clinker_rpc::volume::RevertToSnapshotArgs;
use clinker_types::message_field::{self as mf, Detail};
use clinker_types::{RemoteError, SnapshotId, VolumeId, VolumeStatus};

use crate::manager::{VolumeManager, db_remote, snapshot_spec, volume_spec};
use crate::usage::{snapshot_payload, volume_payload};

impl VolumeManager {
    /// Cinder's generic revert (a temporary volume from the snapshot, both
    /// attached to the volume host through os-brick, a block copy) needs a
    /// host-side data path this service does not have; drivers that cannot
    /// revert in place are refused here, before anything changes.
    fn revert_generic(&self) -> Result<(), DriverError> {
        Err(DriverError::NotSupported(format!(
            "backend {} has no in-place revert and no generic copy path",
            self.host()
        )))
    }

    /// Reverts a `reverting` volume to `snapshot_id` (also the resume path
    /// of an interrupted revert).
    pub(crate) async fn revert_to_snapshot(
        &self,
        context: &RequestContext,
        args: RevertToSnapshotArgs,
    ) -> Result<(), RemoteError> {
        let RevertToSnapshotArgs {
            volume_id,
            snapshot_id,
        } = args;
        let volume = match self.db.get_volume(volume_id).await {
            Ok(v) => v,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        };
        if volume.status != VolumeStatus::Reverting {
            return Ok(());
        }
        // A (forced) delete of the snapshot or of the volume on this
        // backend waits for the copy, so it cannot re-create a file the
        // delete just removed.
        let _volume_lock = self.locks.lock(&format!("{volume_id}-delete_volume")).await;
        let _snapshot_lock = self
            .locks
            .lock(&format!("{snapshot_id}-delete_snapshot"))
            .await;
        let snapshot = match self.db.get_snapshot(snapshot_id).await {
            Ok(s) => s,
            Err(DbError::NotFound { .. }) => {
                // Force-deleted meanwhile: there is nothing to revert to.
                return self
                    .end_revert(
                        context,
                        volume_id,
                        snapshot_id,
                        RevertOutcome::Untouched,
                        Some(mf::UNKNOWN_ERROR),
                        &volume.project_id,
                    )
                    .await;
            }
            Err(e) => return Err(db_remote(e)),
        };
        self.notifier
            .info("volume.revert.start", volume_payload(&volume))
            .await;
        self.notifier
            .info("snapshot.revert.start", snapshot_payload(&snapshot))
            .await;
        let spec = volume_spec(&volume);
        let snap = snapshot_spec(&snapshot, &spec);
        let outcome = async {
            self.driver_ready()?;
            match self.driver.revert_to_snapshot(&spec, &snap).await {
                Err(DriverError::NotSupported(reason)) => {
                    tracing::info!(volume_id = %volume_id, %reason, "driver cannot revert in place; trying the generic way");
                    self.revert_generic()
                }
                other => other,
            }
        }
        .await;
        let (result, detail) = match outcome {
            Ok(()) => (RevertOutcome::Reverted, None),
            Err(DriverError::NotSupported(reason)) => {
                tracing::warn!(volume_id = %volume_id, %reason, "revert refused; the volume was not changed");
                (RevertOutcome::Untouched, Some(mf::REVERT_NOT_SUPPORTED))
            }
            Err(failure) if !self.health().up => {
                tracing::warn!(volume_id = %volume_id, error = %failure, "revert refused: the driver is not initialized");
                (RevertOutcome::Untouched, Some(mf::DRIVER_NOT_INITIALIZED))
            }
            Err(failure) => {
                tracing::error!(volume_id = %volume_id, snapshot_id = %snapshot_id, error = %failure, "revert to snapshot failed");
                (RevertOutcome::Failed, Some(mf::DRIVER_FAILED_REVERT))
            }
        };
        self.end_revert(
            context,
            volume_id,
            snapshot_id,
            result,
            detail,
            &volume.project_id,
        )
        .await?;
        self.notifier
            .info("volume.revert.end", volume_payload(&volume))
            .await;
        self.notifier
            .info("snapshot.revert.end", snapshot_payload(&snapshot))
            .await;
        Ok(())
    }

    async fn end_revert(
        &self,
        context: &RequestContext,
        volume_id: VolumeId,
        snapshot_id: SnapshotId,
        outcome: RevertOutcome,
        detail: Option<Detail>,
        project_id: &str,
    ) -> Result<(), RemoteError> {
        match self
            .db
            .finish_volume_revert(volume_id, snapshot_id, outcome)
            .await
        {
            Ok(_) => {}
            // Reset or deleted by an administrator meanwhile.
            Err(DbError::InvalidState(_) | DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        }
        if let Some(detail) = detail {
            self.record_message(
                context,
                project_id,
                mf::RESOURCE_VOLUME,
                volume_id.to_string(),
                mf::REVERT_VOLUME,
                detail,
            )
            .await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clinker_rpc::RequestContext;
    use clinker_rpc::volume::RevertToSnapshotArgs;
    use clinker_types::{SnapshotStatus, VolumeStatus};

    use crate::test_support::{TestDriver, TestManager};

    #[tokio::test]
    async fn a_driver_without_revert_changes_nothing_and_says_so() {
        let t = TestManager::new(TestDriver::Rbd).await;
        // RBD volumes are never touched here: only rows are needed.
        let volume = {
            let ty = t.db.get_volume_type_by_name("__DEFAULT__").await.unwrap();
            let v =
                t.db.create_volume(clinker_db::testsuite::new_volume("p1", 1, ty.id))
                    .await
                    .unwrap();
            clinker_db::CapacityRepository::claim_volume_placement(
                &*t.db, v.id, &t.pool, 1, 1_000_000,
            )
            .await
            .unwrap();
            t.db.finish_volume_create(v.id, clinker_db::ProviderUpdate::default())
                .await
                .unwrap();
            v.id
        };
        let snapshot = {
            let s =
                t.db.create_snapshot(clinker_db::NewSnapshot {
                    id: clinker_types::SnapshotId::new_random(),
                    volume_id: volume,
                    user_id: "u1".into(),
                    project_id: "p1".into(),
                    display_name: None,
                    display_description: None,
                    metadata: Default::default(),
                    allow_in_use: false,
                    use_quota: true,
                })
                .await
                .unwrap();
            t.db.finish_snapshot_create(s.id, None).await.unwrap();
            s.id
        };
        t.db.begin_volume_revert(volume, snapshot).await.unwrap();
        let args = RevertToSnapshotArgs {
            volume_id: volume,
            snapshot_id: snapshot,
        };
        let ctx = RequestContext::internal("test");
        t.manager.revert_to_snapshot(&ctx, args).await.unwrap();
        assert_eq!(
            t.db.get_volume(volume).await.unwrap().status,
            VolumeStatus::Available
        );
        assert_eq!(
            t.db.get_snapshot(snapshot).await.unwrap().status,
            SnapshotStatus::Available
        );
        assert!(
            t.db.journal_for_backend("node1@ceph")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            t.messages(volume).await,
            [
                "revert volume:The backend does not support reverting to a snapshot; the volume was not changed."
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_revert_leaves_the_volume_in_error() {
        let t = TestManager::new(TestDriver::File).await;
        let volume = t.volume("__DEFAULT__").await;
        let snapshot = t.snapshot(volume).await;
        // The snapshot's file is gone: the copy fails.
        let file = t._dir.path().join(format!("snapshot-{snapshot}"));
        std::fs::remove_file(&file).unwrap();
        t.db.begin_volume_revert(volume, snapshot).await.unwrap();
        let args = RevertToSnapshotArgs {
            volume_id: volume,
            snapshot_id: snapshot,
        };
        let ctx = RequestContext::internal("test");
        t.manager.revert_to_snapshot(&ctx, args).await.unwrap();
        assert_eq!(
            t.db.get_volume(volume).await.unwrap().status,
            VolumeStatus::Error
        );
        assert_eq!(
            t.db.get_snapshot(snapshot).await.unwrap().status,
            SnapshotStatus::Available
        );
        assert_eq!(
            t.messages(volume).await,
            ["revert volume:Driver failed to revert the volume to the snapshot."]
        );
    }

    #[tokio::test]
    async fn an_interrupted_revert_is_run_again_at_start_up() {
        let t = TestManager::new(TestDriver::File).await;
        let volume = t.volume("__DEFAULT__").await;
        let path = t._dir.path().join(format!("volume-{volume}"));
        std::fs::write(&path, b"before").unwrap();
        let snapshot = t.snapshot(volume).await;
        std::fs::write(&path, b"after!").unwrap();
        // The service died after the API's transaction: only the journal
        // knows about the revert.
        t.db.begin_volume_revert(volume, snapshot).await.unwrap();
        let ctx = RequestContext::internal("test");
        t.manager.recover(&ctx, None).await;
        assert_eq!(
            t.db.get_volume(volume).await.unwrap().status,
            VolumeStatus::Available
        );
        let data = std::fs::read(&path).unwrap();
        assert_eq!(&data[..6], b"before");
        assert!(
            t.db.journal_for_backend("node1@file")
                .await
                .unwrap()
                .is_empty()
        );
    }
}
