//! Generic volume groups in the volume manager (Cinder's `create_group`,
//! `delete_group`, `create_group_snapshot`, `delete_group_snapshot` with
//! their `_generic` fallbacks, which are the only implementation here: no
//! Clinker driver has group support of its own).
//!
//! A group has no backend object: accepting one only needs a working
//! driver. Its volumes and snapshots go through the very same paths as
//! single ones (`VolumeManager::delete_volume`,
//! `VolumeManager::create_snapshot`, …), so quota, capacity claims
//! and files stay consistent; the group's own row is finished by one more
//! transaction once its members are done. Every group operation is covered
//! by one journal row (`Group` / `GroupSnapshot`) that recovery settles.

use clinker_db::{DbError, FilterValue, GroupDeleteEnd, SnapshotColumn, SnapshotQuery};
use clinker_db::{VolumeColumn, VolumeQuery};
use clinker_rpc::RequestContext;
use clinker_rpc::volume::{
    CreateGroupArgs, CreateGroupSnapshotArgs, CreateSnapshotArgs, DeleteGroupArgs,
    DeleteGroupSnapshotArgs, DeleteSnapshotArgs, DeleteVolumeArgs,
};
use clinker_types::group::{Group, GroupSnapshot};
use clinker_types::group_status::{GroupSnapshotStatus, GroupStatus};
use clinker_types::model::JournalEntry;
use clinker_types::{GroupId, GroupSnapshotId, RemoteError, SnapshotStatus, VolumeStatus};
use serde_json::{Value, json};

use crate::manager::{VolumeManager, db_remote};

/// The payload of `group.*` notifications (Cinder's `_usage_from_group`).
fn group_payload(group: &Group) -> Value {
    json!({
        "tenant_id": group.project_id,
        "user_id": group.user_id,
        "availability_zone": group.availability_zone,
        "group_id": group.id,
        "group_type": group.group_type_id,
        "name": group.display_name,
        "created_at": group.created_at.to_iso8601(),
        "status": group.status.as_str(),
    })
}

/// The payload of `group_snapshot.*` notifications.
fn group_snapshot_payload(group_snapshot: &GroupSnapshot) -> Value {
    json!({
        "tenant_id": group_snapshot.project_id,
        "user_id": group_snapshot.user_id,
        "group_snapshot_id": group_snapshot.id,
        "name": group_snapshot.display_name,
        "group_id": group_snapshot.group_id,
        "group_type": group_snapshot.group_type_id,
        "created_at": group_snapshot.created_at.to_iso8601(),
        "status": group_snapshot.status.as_str(),
    })
}

impl VolumeManager {
    /// Accepts a group placed on this backend: `available` when the driver
    /// works, `error` otherwise (Cinder's `require_driver_initialized`).
    pub(crate) async fn create_group(
        &self,
        _context: &RequestContext,
        args: CreateGroupArgs,
    ) -> Result<(), RemoteError> {
        let group_id = args.group_id;
        let group = match self.db.get_group(group_id).await {
            Ok(g) => g,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        };
        if group.status != GroupStatus::Creating {
            return Ok(());
        }
        if group.is_from_source() {
            // Its volumes finish it; see `settle_group_member`.
            self.settle_group(group_id).await;
            return Ok(());
        }
        self.notifier
            .info("group.create.start", group_payload(&group))
            .await;
        let outcome = if self.health().up {
            self.db.finish_group_create(group_id).await
        } else {
            tracing::warn!(group_id = %group_id, "driver not initialized; group create failed");
            self.db.fail_group_create(group_id).await
        };
        match outcome {
            Ok(done) if done.status == GroupStatus::Available => {
                self.notifier
                    .info("group.create.end", group_payload(&done))
                    .await;
                Ok(())
            }
            Ok(failed) => {
                self.notifier
                    .error("group.create.error", group_payload(&failed))
                    .await;
                Ok(())
            }
            // Deleted or reset meanwhile.
            Err(DbError::NotFound { .. } | DbError::InvalidState(_)) => Ok(()),
            Err(e) => Err(db_remote(e)),
        }
    }

    /// After one of a group's volumes finished or failed its create: a
    /// group created from a source becomes available (or error) once none
    /// of its volumes is still being created.
    pub(crate) async fn settle_group(&self, group_id: GroupId) {
        match self.db.settle_group_create(group_id).await {
            Ok(Some(group)) if group.status == GroupStatus::Available => {
                self.notifier
                    .info("group.create.end", group_payload(&group))
                    .await;
            }
            Ok(Some(group)) => {
                tracing::warn!(group_id = %group_id, "a volume of the group failed; group is error");
                self.notifier
                    .error("group.create.error", group_payload(&group))
                    .await;
            }
            Ok(None) | Err(DbError::NotFound { .. }) => {}
            Err(e) => {
                // The journal row stays; recovery settles the group later.
                tracing::warn!(group_id = %group_id, error = %e, "cannot settle group create");
            }
        }
    }

    /// [`VolumeManager::settle_group`] for the `group_id` column of a volume.
    pub(crate) async fn settle_group_member(&self, group_id: Option<&str>) {
        if let Some(id) = group_id.and_then(|g| g.parse::<GroupId>().ok()) {
            self.settle_group(id).await;
        }
    }

    /// Deletes the group's `deleting` volumes through the volume delete
    /// path, then the group (or leaves it `error` when one could not go).
    pub(crate) async fn delete_group(
        &self,
        context: &RequestContext,
        args: DeleteGroupArgs,
    ) -> Result<(), RemoteError> {
        let group_id = args.group_id;
        let group = match self.db.get_group(group_id).await {
            Ok(g) => g,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        };
        if group.status != GroupStatus::Deleting {
            return Ok(());
        }
        self.notifier
            .info("group.delete.start", group_payload(&group))
            .await;
        let volumes = self
            .db
            .list_volumes(&VolumeQuery {
                filters: vec![
                    (VolumeColumn::GroupId, FilterValue::Eq(group_id.to_string())),
                    (
                        VolumeColumn::Status,
                        FilterValue::Eq(VolumeStatus::Deleting.as_str().to_owned()),
                    ),
                ],
                ..VolumeQuery::default()
            })
            .await
            .map_err(db_remote)?;
        for volume in volumes {
            // A volume another task is deleting is left to it; the group
            // waits (its journal row brings this back).
            let Some(_active) = self.begin(volume.id.to_string())? else {
                continue;
            };
            let args = DeleteVolumeArgs {
                volume_id: volume.id,
                cascade: false,
            };
            if let Err(e) = self.delete_volume(context, args).await {
                tracing::warn!(group_id = %group_id, volume_id = %volume.id, error = %e,
                    "could not delete a volume of the group");
            }
        }
        match self.db.finish_group_delete(group_id).await {
            Ok(GroupDeleteEnd::Deleted(gone)) => {
                self.notifier
                    .info("group.delete.end", group_payload(&gone))
                    .await;
                Ok(())
            }
            Ok(GroupDeleteEnd::Failed(failed)) => {
                tracing::warn!(group_id = %group_id, "a volume of the group could not be deleted; group is error");
                self.notifier
                    .error("group.delete.error", group_payload(&failed))
                    .await;
                Ok(())
            }
            Ok(GroupDeleteEnd::Pending) => Ok(()),
            Err(DbError::NotFound { .. } | DbError::InvalidState(_)) => Ok(()),
            Err(e) => Err(db_remote(e)),
        }
    }

    async fn group_snapshot_members(
        &self,
        group_snapshot_id: GroupSnapshotId,
        status: SnapshotStatus,
    ) -> Result<Vec<clinker_types::model::Snapshot>, RemoteError> {
        self.db
            .list_snapshots(&SnapshotQuery {
                filters: vec![
                    (
                        SnapshotColumn::GroupSnapshotId,
                        FilterValue::Eq(group_snapshot_id.to_string()),
                    ),
                    (
                        SnapshotColumn::Status,
                        FilterValue::Eq(status.as_str().to_owned()),
                    ),
                ],
                ..SnapshotQuery::default()
            })
            .await
            .map_err(db_remote)
    }

    /// Takes every member snapshot through the snapshot create path, then
    /// finishes the group snapshot (`error` when one failed).
    pub(crate) async fn create_group_snapshot(
        &self,
        context: &RequestContext,
        args: CreateGroupSnapshotArgs,
    ) -> Result<(), RemoteError> {
        let group_snapshot_id = args.group_snapshot_id;
        let group_snapshot = match self.db.get_group_snapshot(group_snapshot_id).await {
            Ok(g) => g,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        };
        if group_snapshot.status != GroupSnapshotStatus::Creating {
            return Ok(());
        }
        self.notifier
            .info(
                "group_snapshot.create.start",
                group_snapshot_payload(&group_snapshot),
            )
            .await;
        for member in self
            .group_snapshot_members(group_snapshot_id, SnapshotStatus::Creating)
            .await?
        {
            let args = CreateSnapshotArgs {
                snapshot_id: member.id,
                volume_id: member.volume_id,
            };
            self.create_snapshot(context, args).await?;
        }
        match self
            .db
            .finish_group_snapshot_create(group_snapshot_id)
            .await
        {
            Ok(done) if done.status == GroupSnapshotStatus::Available => {
                self.notifier
                    .info("group_snapshot.create.end", group_snapshot_payload(&done))
                    .await;
                Ok(())
            }
            Ok(failed) => {
                tracing::warn!(group_snapshot_id = %group_snapshot_id, "a member snapshot failed; group snapshot is error");
                self.notifier
                    .error(
                        "group_snapshot.create.error",
                        group_snapshot_payload(&failed),
                    )
                    .await;
                Ok(())
            }
            Err(DbError::NotFound { .. } | DbError::InvalidState(_)) => Ok(()),
            Err(e) => Err(db_remote(e)),
        }
    }

    /// Deletes every member snapshot through the snapshot delete path, then
    /// the group snapshot (or leaves it `error`).
    pub(crate) async fn delete_group_snapshot(
        &self,
        context: &RequestContext,
        args: DeleteGroupSnapshotArgs,
    ) -> Result<(), RemoteError> {
        let group_snapshot_id = args.group_snapshot_id;
        let group_snapshot = match self.db.get_group_snapshot(group_snapshot_id).await {
            Ok(g) => g,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        };
        if group_snapshot.status != GroupSnapshotStatus::Deleting {
            return Ok(());
        }
        self.notifier
            .info(
                "group_snapshot.delete.start",
                group_snapshot_payload(&group_snapshot),
            )
            .await;
        for member in self
            .group_snapshot_members(group_snapshot_id, SnapshotStatus::Deleting)
            .await?
        {
            let args = DeleteSnapshotArgs {
                snapshot_id: member.id,
            };
            if let Err(e) = self.delete_snapshot(context, args).await {
                tracing::warn!(group_snapshot_id = %group_snapshot_id, snapshot_id = %member.id,
                    error = %e, "could not delete a member snapshot");
            }
        }
        match self
            .db
            .finish_group_snapshot_delete(group_snapshot_id)
            .await
        {
            Ok(GroupDeleteEnd::Deleted(gone)) => {
                self.notifier
                    .info("group_snapshot.delete.end", group_snapshot_payload(&gone))
                    .await;
                Ok(())
            }
            Ok(GroupDeleteEnd::Failed(failed)) => {
                tracing::warn!(group_snapshot_id = %group_snapshot_id, "a member snapshot could not be deleted; group snapshot is error");
                self.notifier
                    .error(
                        "group_snapshot.delete.error",
                        group_snapshot_payload(&failed),
                    )
                    .await;
                Ok(())
            }
            Ok(GroupDeleteEnd::Pending) => Ok(()),
            Err(DbError::NotFound { .. } | DbError::InvalidState(_)) => Ok(()),
            Err(e) => Err(db_remote(e)),
        }
    }

    /// Settles a `Group` journal row at start-up or when its message was
    /// lost: a create is finished (a generic group has nothing on the
    /// backend to lose), one from a source waits for its volumes, a delete
    /// resumes once the driver works.
    pub(crate) async fn settle_group_entry(
        &self,
        context: &RequestContext,
        entry: &JournalEntry,
    ) -> Result<(), RemoteError> {
        let Ok(id) = entry.resource_id.parse::<GroupId>() else {
            return Ok(());
        };
        let group = match self.db.get_group(id).await {
            Ok(g) => g,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        };
        match group.status {
            GroupStatus::Creating => {
                tracing::info!(group_id = %id, "settling an interrupted group create");
                self.create_group(context, CreateGroupArgs { group_id: id })
                    .await
            }
            GroupStatus::Deleting if self.health().up => {
                tracing::info!(group_id = %id, "resuming an interrupted group delete");
                self.delete_group(context, DeleteGroupArgs { group_id: id })
                    .await
            }
            _ => Ok(()),
        }
    }

    /// Settles a `GroupSnapshot` journal row: an interrupted create fails
    /// (members and all, as single snapshot creates do), a delete resumes
    /// once the driver works.
    pub(crate) async fn settle_group_snapshot_entry(
        &self,
        context: &RequestContext,
        entry: &JournalEntry,
    ) -> Result<(), RemoteError> {
        let Ok(id) = entry.resource_id.parse::<GroupSnapshotId>() else {
            return Ok(());
        };
        let group_snapshot = match self.db.get_group_snapshot(id).await {
            Ok(g) => g,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        };
        match group_snapshot.status {
            GroupSnapshotStatus::Creating => {
                tracing::warn!(group_snapshot_id = %id, "group snapshot create was interrupted; marking it error");
                match self.db.fail_group_snapshot_create(id).await {
                    Ok(_) | Err(DbError::NotFound { .. } | DbError::InvalidState(_)) => Ok(()),
                    Err(e) => Err(db_remote(e)),
                }
            }
            GroupSnapshotStatus::Deleting if self.health().up => {
                tracing::info!(group_snapshot_id = %id, "resuming an interrupted group snapshot delete");
                let args = DeleteGroupSnapshotArgs {
                    group_snapshot_id: id,
                };
                self.delete_group_snapshot(context, args).await
            }
            _ => Ok(()),
        }
    }
}
