//! Start-up and periodic recovery (Cinder's `init_host` and
//! `CleanableManager.do_cleanup`, made stronger): every journal row this
//! backend owns is finished or failed, attached volumes are re-exported,
//! and backend objects without a row are removed, so nothing stays in
//! `creating`/`deleting` and no object outlives its row.

use std::time::Duration;

use clinker_db::DbError;
use clinker_drivers::{SnapshotSpec, VolumeSpec};
use clinker_rpc::RequestContext;
use clinker_rpc::volume::{
    DeleteSnapshotArgs, DeleteVolumeArgs, ExtendVolumeArgs, RevertToSnapshotArgs,
    UnmanageSnapshotArgs, UnmanageVolumeArgs,
};
use clinker_types::message_field as mf;
use clinker_types::model::{JournalEntry, JournalResource};
use clinker_types::status::VolumeTransition;
use clinker_types::{SnapshotId, SnapshotStatus, VolumeId, VolumeStatus};

use crate::manager::{VolumeManager, volume_spec};

impl VolumeManager {
    /// Sets the driver up, recovers unfinished work, re-exports attached
    /// volumes and removes exports nobody needs, reconciles backend objects
    /// with rows, and publishes capabilities. A driver that fails to initialise leaves the backend
    /// down (with the reason) but the service running and visible.
    pub async fn init_host(&self) {
        let context = RequestContext::internal("init_host");
        match self.initialize_driver().await {
            Ok(()) => {
                self.set_health(true, None);
                self.recover(&context, None).await;
                self.settle_uploads().await;
                self.settle_image_cache().await;
                self.ensure_exports().await;
                self.reconcile_exports().await;
                self.remove_orphans().await;
            }
            Err(reason) => {
                tracing::error!(backend = %self.host(), %reason, "driver failed to initialize; backend is down");
                self.set_health(false, Some(reason));
                // The journal still has to be settled: creates are failed,
                // deletes wait for the driver.
                self.recover(&context, None).await;
                self.settle_uploads().await;
            }
        }
        self.publish_capabilities(&context).await;
    }

    async fn initialize_driver(&self) -> Result<(), String> {
        self.driver
            .do_setup()
            .await
            .map_err(|e| format!("do_setup failed: {e}"))?;
        self.driver
            .check_for_setup_error()
            .await
            .map_err(|e| format!("{e}"))
    }

    /// Retries driver initialisation of a backend that is down; returns
    /// whether it is up now.
    pub async fn retry_initialize(&self) -> bool {
        if self.health().up {
            return true;
        }
        match self.initialize_driver().await {
            Ok(()) => {
                tracing::info!(backend = %self.host(), "driver initialized; backend is up");
                self.set_health(true, None);
                let context = RequestContext::internal("init_host");
                self.recover(&context, None).await;
                self.ensure_exports().await;
                self.reconcile_exports().await;
                self.publish_capabilities(&context).await;
                true
            }
            Err(reason) => {
                self.set_health(false, Some(reason));
                false
            }
        }
    }

    /// Settles journal rows this backend owns. At start-up (`stale_after`
    /// is `None`) every row is settled; periodically only rows older than
    /// `stale_after` that no task of this process is working on (their
    /// message was lost).
    pub async fn recover(&self, context: &RequestContext, stale_after: Option<Duration>) {
        let entries = match self.db.journal_for_backend(self.host()).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(backend = %self.host(), error = %e, "cannot read the operation journal");
                return;
            }
        };
        let now = self.clock.now();
        for entry in entries {
            if let Some(age) = stale_after {
                let last = entry.updated_at.unwrap_or(entry.created_at);
                if now.since(last) < age || self.is_in_flight(&entry.resource_id) {
                    continue;
                }
            }
            if let Err(e) = self.settle(context, &entry).await {
                tracing::warn!(resource = %entry.resource_id, error = %e, "could not settle journal entry");
            }
        }
    }

    async fn settle(
        &self,
        context: &RequestContext,
        entry: &JournalEntry,
    ) -> Result<(), clinker_types::RemoteError> {
        let Ok(Some(_active)) = self.begin(entry.resource_id.clone()) else {
            return Ok(());
        };
        match entry.resource_type {
            JournalResource::Volume => {
                // A migration is settled by its own rules whatever the
                // volume's status (available, maintenance or retyping).
                if self.settle_migration(context, entry).await? {
                    return Ok(());
                }
                let Ok(id) = entry.resource_id.parse::<VolumeId>() else {
                    return Ok(());
                };
                let volume = match self.db.get_volume(id).await {
                    Ok(v) => v,
                    Err(DbError::NotFound { .. }) => return Ok(()),
                    Err(e) => return Err(crate::manager::db_remote(e)),
                };
                match volume.status {
                    VolumeStatus::Creating | VolumeStatus::Downloading => {
                        tracing::warn!(volume_id = %id, "create was interrupted; marking the volume error");
                        if self.db.fail_volume_create(id).await.is_ok() {
                            self.record_message(
                                context,
                                &volume.project_id,
                                mf::RESOURCE_VOLUME,
                                id.to_string(),
                                mf::SCHEDULE_ALLOCATE_VOLUME,
                                mf::SERVICE_RESTARTED,
                            )
                            .await;
                            self.settle_group_member(volume.group_id.as_deref()).await;
                        }
                    }
                    VolumeStatus::Deleting => {
                        if !self.health().up {
                            return Ok(());
                        }
                        let detail = self
                            .db
                            .journal_detail(&entry.resource_id)
                            .await
                            .ok()
                            .flatten();
                        let cascade = detail
                            .as_ref()
                            .and_then(|d| d["cascade"].as_bool())
                            .unwrap_or(true);
                        tracing::info!(volume_id = %id, "resuming interrupted delete");
                        let args = DeleteVolumeArgs {
                            volume_id: id,
                            cascade,
                        };
                        self.delete_volume(context, args).await?;
                    }
                    VolumeStatus::Extending => {
                        let detail = self
                            .db
                            .journal_detail(&entry.resource_id)
                            .await
                            .ok()
                            .flatten();
                        match detail.as_ref().and_then(|d| d["new_size"].as_i64()) {
                            Some(new_size) if self.health().up => {
                                tracing::info!(volume_id = %id, new_size, "resuming interrupted extend");
                                let args = ExtendVolumeArgs {
                                    volume_id: id,
                                    new_size,
                                };
                                self.extend_volume(context, args).await?;
                            }
                            Some(new_size) => {
                                let _ = self.db.fail_volume_extend(id, new_size).await;
                            }
                            None => {}
                        }
                    }
                    VolumeStatus::Reverting => self.settle_revert(context, entry, id).await?,
                    VolumeStatus::Managing => {
                        // The manage may have stopped after the rename: the
                        // object then carries the volume's name and the row
                        // keeps it safe; the administrator decides (Cinder
                        // leaves such a volume error_managing too).
                        tracing::warn!(volume_id = %id, "manage was interrupted; marking the volume error_managing");
                        let _ = self.db.fail_volume_manage(id).await;
                    }
                    VolumeStatus::Unmanaging if self.health().up => {
                        tracing::info!(volume_id = %id, "resuming interrupted unmanage");
                        self.unmanage_volume(context, UnmanageVolumeArgs { volume_id: id })
                            .await?;
                    }
                    VolumeStatus::Retyping => {
                        // The retype's placement may be stale by now: give
                        // the volume back its status; the user retries.
                        tracing::warn!(volume_id = %id, "retype was interrupted; restoring the volume's status");
                        self.abandon_retype(context, &volume, mf::SERVICE_RESTARTED)
                            .await?;
                    }
                    _ => {}
                }
            }
            JournalResource::Snapshot => {
                let Ok(id) = entry.resource_id.parse::<SnapshotId>() else {
                    return Ok(());
                };
                let snapshot = match self.db.get_snapshot(id).await {
                    Ok(s) => s,
                    Err(DbError::NotFound { .. }) => return Ok(()),
                    Err(e) => return Err(crate::manager::db_remote(e)),
                };
                match snapshot.status {
                    SnapshotStatus::Creating => {
                        tracing::warn!(snapshot_id = %id, "snapshot create was interrupted; marking it error");
                        if self.db.fail_snapshot_create(id).await.is_ok() {
                            self.record_message(
                                context,
                                &snapshot.project_id,
                                mf::RESOURCE_SNAPSHOT,
                                id.to_string(),
                                mf::SNAPSHOT_CREATE,
                                mf::SERVICE_RESTARTED,
                            )
                            .await;
                        }
                    }
                    SnapshotStatus::Deleting if self.health().up => {
                        tracing::info!(snapshot_id = %id, "resuming interrupted snapshot delete");
                        self.delete_snapshot(context, DeleteSnapshotArgs { snapshot_id: id })
                            .await?;
                    }
                    SnapshotStatus::Unmanaging if self.health().up => {
                        tracing::info!(snapshot_id = %id, "resuming interrupted snapshot unmanage");
                        let args = UnmanageSnapshotArgs { snapshot_id: id };
                        self.unmanage_snapshot(context, args).await?;
                    }
                    _ => {}
                }
            }
            JournalResource::Group => self.settle_group_entry(context, entry).await?,
            JournalResource::GroupSnapshot => {
                self.settle_group_snapshot_entry(context, entry).await?;
            }
        }
        Ok(())
    }

    /// Runs an interrupted revert again (copying the snapshot again gives
    /// the same data); waits for the driver when it is down.
    async fn settle_revert(
        &self,
        context: &RequestContext,
        entry: &JournalEntry,
        id: VolumeId,
    ) -> Result<(), clinker_types::RemoteError> {
        if !self.health().up {
            return Ok(());
        }
        let detail = self
            .db
            .journal_detail(&entry.resource_id)
            .await
            .ok()
            .flatten();
        let Some(snapshot_id) = detail
            .as_ref()
            .and_then(|d| d["snapshot_id"].as_str())
            .and_then(|s| s.parse::<SnapshotId>().ok())
        else {
            return Ok(());
        };
        tracing::info!(volume_id = %id, snapshot_id = %snapshot_id, "resuming interrupted revert");
        let args = RevertToSnapshotArgs {
            volume_id: id,
            snapshot_id,
        };
        self.revert_to_snapshot(context, args).await
    }

    /// Re-exports attached volumes only: exporting available ones would let
    /// anyone connect (Cinder LP #1381106). A failed export puts the volume
    /// in `error`.
    async fn ensure_exports(&self) {
        let volumes = match self.db.volumes_on_backend(self.host()).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list this backend's volumes");
                return;
            }
        };
        for volume in volumes
            .into_iter()
            .filter(|v| v.status == VolumeStatus::InUse)
        {
            if let Err(e) = self.driver.ensure_export(&volume_spec(&volume)).await {
                tracing::error!(volume_id = %volume.id, error = %e, "re-exporting an attached volume failed");
                let _ = self
                    .db
                    .transition_volume(volume.id, VolumeTransition::ExportFailed)
                    .await;
            }
        }
    }

    /// Removes backend objects no row owns (a crash between a driver call
    /// and its database write). An object counts as an orphan only when no
    /// row with its id exists at all, on any backend: several volume
    /// services may share one pool (an RBD pool behind `node1@rbd` and
    /// `node2@rbd`), and one must never remove another's volumes. Drivers
    /// whose storage may hold objects of other deployments decline to list
    /// them (`rbd_exclusive_cinder_pool = false`). Objects an unmanage left
    /// behind are never orphans: Cinder never deletes unmanaged data.
    async fn remove_orphans(&self) {
        let names = match self.driver.list_volume_names().await {
            Ok(Some(names)) => names,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list backend objects");
                return;
            }
        };
        for name in names {
            match self.db.is_unmanaged_object(&name).await {
                Ok(false) => {}
                Ok(true) => {
                    tracing::debug!(object = %name, "keeping an unmanaged object");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the unmanaged objects; skipping the orphan sweep");
                    return;
                }
            }
            if let Some(id) = name.strip_prefix("volume-") {
                let Ok(volume_id) = id.parse::<VolumeId>() else {
                    continue;
                };
                match self.db.volume_exists(volume_id).await {
                    Ok(false) => {}
                    Ok(true) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot check objects against rows; skipping the orphan sweep");
                        return;
                    }
                }
                tracing::warn!(object = %name, "removing a backend volume no row owns");
                if let Err(e) = self
                    .driver
                    .delete_volume(&VolumeSpec::new(volume_id, 0))
                    .await
                {
                    tracing::warn!(object = %name, error = %e, "could not remove orphan");
                }
            } else if let Some(id) = name.strip_prefix("snapshot-") {
                let Ok(snapshot_id) = id.parse::<SnapshotId>() else {
                    continue;
                };
                match self.db.get_snapshot(snapshot_id).await {
                    Err(DbError::NotFound { .. }) => {}
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot check objects against rows; skipping the orphan sweep");
                        return;
                    }
                }
                tracing::warn!(object = %name, "removing a backend snapshot no row owns");
                let spec =
                    SnapshotSpec::new(snapshot_id, VolumeSpec::new(VolumeId::new_random(), 0), 0);
                if let Err(e) = self.driver.delete_snapshot(&spec).await {
                    tracing::warn!(object = %name, error = %e, "could not remove orphan");
                }
            }
        }
    }
}
