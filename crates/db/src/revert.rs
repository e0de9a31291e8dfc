//! Reverting a volume to its latest snapshot ([`RevertRepository`], API
//! 3.40): the volume goes `available → reverting` and the snapshot
//! `available → restoring` in one transaction with the journal row, and
//! both come back in one transaction with its removal.

use clinker_types::model::{JournalResource, Snapshot, Volume};
use clinker_types::status::{SnapshotTransition, VolumeTransition};
use clinker_types::{SnapshotId, VolumeId, VolumeStatus};
use sqlx::AnyConnection;

use crate::error::DbError;
use crate::pool::{Db, in_transaction};
use crate::query::Arg;
use crate::{SnapshotRepository, VolumeRepository};

/// How a revert ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevertOutcome {
    /// The volume holds the snapshot's data: back to `available`.
    Reverted,
    /// The revert was refused before any data changed (the backend cannot
    /// revert): back to `available`.
    Untouched,
    /// The revert failed after it may have changed data: `error`, as
    /// Cinder leaves it.
    Failed,
}

/// Revert repository.
#[async_trait::async_trait]
pub trait RevertRepository {
    /// The newest snapshot of a volume (Cinder's `get_latest_snapshot`:
    /// by creation time, whatever its status).
    ///
    /// # Errors
    /// Database failures.
    async fn latest_snapshot_of_volume(
        &self,
        volume_id: VolumeId,
    ) -> Result<Option<SnapshotId>, DbError>;

    /// Starts a revert: checks the snapshot is still the volume's latest,
    /// moves the volume to `reverting` and the snapshot to `restoring`, and
    /// journals the operation with the snapshot's id.
    ///
    /// # Errors
    /// [`DbError::NotFound`] (volume), [`DbError::InvalidState`] naming
    /// `volume` or `snapshot` when either is not `available` or the
    /// snapshot is not the latest.
    async fn begin_volume_revert(
        &self,
        volume_id: VolumeId,
        snapshot_id: SnapshotId,
    ) -> Result<(Volume, Snapshot), DbError>;

    /// Ends a revert: the volume leaves `reverting` as `outcome` says, the
    /// snapshot goes back to `available`, the journal row goes.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless the volume is `reverting`.
    async fn finish_volume_revert(
        &self,
        volume_id: VolumeId,
        snapshot_id: SnapshotId,
        outcome: RevertOutcome,
    ) -> Result<Volume, DbError>;
}

impl Db {
    async fn latest_snapshot_in(
        &self,
        conn: &mut AnyConnection,
        volume_id: VolumeId,
    ) -> Result<Option<SnapshotId>, DbError> {
        let sql = self.dynamic(
            "SELECT id FROM snapshots WHERE volume_id = ? ORDER BY created_at DESC, id DESC LIMIT 1"
                .to_owned(),
        );
        let found: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(volume_id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
        found
            .map(|id| {
                id.parse()
                    .map_err(|_| DbError::Internal(format!("corrupt snapshot id {id:?}")))
            })
            .transpose()
    }
}

#[async_trait::async_trait]
impl RevertRepository for Db {
    async fn latest_snapshot_of_volume(
        &self,
        volume_id: VolumeId,
    ) -> Result<Option<SnapshotId>, DbError> {
        let mut conn = self.reader().await?;
        self.latest_snapshot_in(&mut conn, volume_id).await
    }

    async fn begin_volume_revert(
        &self,
        volume_id: VolumeId,
        snapshot_id: SnapshotId,
    ) -> Result<(Volume, Snapshot), DbError> {
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, volume_id).await?;
            if self.latest_snapshot_in(&mut tx, volume_id).await? != Some(snapshot_id) {
                return Err(DbError::InvalidState(format!(
                    "snapshot {snapshot_id} is not the latest of volume {volume_id}"
                )));
            }
            let row = VolumeTransition::BeginRevert.transition();
            self.cas_volume_status(
                &mut tx,
                volume_id,
                row.from,
                row.to,
                ", previous_status = ?",
                vec![Arg::Text(volume.status.as_str().to_owned())],
            )
            .await
            .map_err(|e| match e {
                DbError::InvalidState(m) => DbError::InvalidState(format!("volume: {m}")),
                other => other,
            })?;
            let row = SnapshotTransition::BeginRestore.transition();
            self.cas_snapshot_status(&mut tx, snapshot_id, row.from, row.to, "", Vec::new())
                .await
                .map_err(|e| match e {
                    DbError::InvalidState(m) => DbError::InvalidState(format!("snapshot: {m}")),
                    other => other,
                })?;
            self.journal_volume(
                &mut tx,
                volume_id,
                VolumeStatus::Reverting,
                volume.host.as_deref(),
                Some(serde_json::json!({"snapshot_id": snapshot_id.to_string()})),
            )
            .await
        })?;
        Ok((
            self.get_volume(volume_id).await?,
            self.get_snapshot(snapshot_id).await?,
        ))
    }

    async fn finish_volume_revert(
        &self,
        volume_id: VolumeId,
        snapshot_id: SnapshotId,
        outcome: RevertOutcome,
    ) -> Result<Volume, DbError> {
        let transition = match outcome {
            RevertOutcome::Reverted | RevertOutcome::Untouched => VolumeTransition::FinishRevert,
            RevertOutcome::Failed => VolumeTransition::FailRevert,
        };
        in_transaction!(self, |tx| {
            let row = transition.transition();
            self.cas_volume_status(
                &mut tx,
                volume_id,
                row.from,
                row.to,
                ", previous_status = NULL",
                Vec::new(),
            )
            .await?;
            let row = SnapshotTransition::FinishRestore.transition();
            match self
                .cas_snapshot_status(&mut tx, snapshot_id, row.from, row.to, "", Vec::new())
                .await
            {
                // An administrator may have reset or force-deleted the
                // snapshot meanwhile; the volume's outcome stands.
                Ok(()) | Err(DbError::InvalidState(_) | DbError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            self.remove_journal(&mut tx, JournalResource::Volume, &volume_id.to_string())
                .await
        })?;
        self.get_volume(volume_id).await
    }
}
