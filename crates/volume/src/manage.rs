//! Managing existing backend objects and unmanaging volumes and snapshots
//! (Cinder's `manage_existing`, `manage_existing_snapshot`,
//! `get_manageable_*` and the `unmanage_only` paths of `delete_volume` /
//! `delete_snapshot`).
//!
//! Order of a volume manage, as Cinder's flow: size the object (the driver
//! only reads), record the size with its quota and pool capacity (one
//! transaction, refused over quota), then let the driver rename the object,
//! then finish. A failure before the rename changes nothing on the
//! backend; the row is left `error_managing` with size 0.
//!
//! Unmanage never deletes data: the driver lets go of the object and the
//! transaction that removes the row records the object's name, which the
//! orphan sweep ([`crate::recovery`]) respects.

use std::collections::HashSet;

use clinker_db::{DbError, ProviderUpdate};
use clinker_drivers::manage::already_managed;
use clinker_drivers::{DriverError, ManageRef, ModelUpdate};
use clinker_rpc::RequestContext;
use clinker_rpc::volume::{
    ManageExistingArgs, ManageExistingSnapshotArgs, UnmanageSnapshotArgs, UnmanageVolumeArgs,
};
use clinker_types::model::{Snapshot, Volume};
use clinker_types::{
    ErrorKind, Host, RemoteError, SnapshotId, SnapshotStatus, VolumeId, VolumeStatus,
};
use serde_json::Value;

use crate::manager::{VolumeManager, db_remote, snapshot_spec, volume_spec};
use crate::usage::{snapshot_payload, volume_payload};

fn provider(update: ModelUpdate) -> ProviderUpdate {
    ProviderUpdate {
        provider_location: update.provider_location,
        provider_auth: update.provider_auth,
        provider_id: update.provider_id,
    }
}

/// Why a manage did not happen: the driver's or the database's reason.
#[derive(Debug)]
enum ManageFailure {
    Driver(DriverError),
    Db(DbError),
}

impl std::fmt::Display for ManageFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManageFailure::Driver(e) => write!(f, "{e}"),
            ManageFailure::Db(e) => write!(f, "{e}"),
        }
    }
}

impl From<DriverError> for ManageFailure {
    fn from(e: DriverError) -> Self {
        ManageFailure::Driver(e)
    }
}

impl From<DbError> for ManageFailure {
    fn from(e: DbError) -> Self {
        ManageFailure::Db(e)
    }
}

/// The backend name a reference points at, for the "already managed"
/// check and for forgetting an unmanaged record (`source-id` names the
/// object of that id for drivers that accept it).
fn referenced_name(reference: &ManageRef, prefix: &str) -> Option<String> {
    reference
        .source_name()
        .map(str::to_owned)
        .or_else(|| reference.source_id().map(|id| format!("{prefix}{id}")))
}

impl VolumeManager {
    /// Whether `name` is the backend name of a volume or snapshot that has
    /// a row (Cinder's `check_already_managed_volume`, extended to
    /// snapshots): managing it again would take it from its owner.
    async fn name_has_row(&self, name: &str) -> Result<bool, DbError> {
        if let Some(id) = name
            .strip_prefix("volume-")
            .and_then(|i| i.parse::<VolumeId>().ok())
        {
            return self.db.volume_exists(id).await;
        }
        let snapshot = name
            .strip_prefix("_snapshot-")
            .or_else(|| name.strip_prefix("snapshot-"))
            .and_then(|i| i.parse::<SnapshotId>().ok());
        if let Some(id) = snapshot {
            return match self.db.get_snapshot(id).await {
                Ok(_) => Ok(true),
                Err(DbError::NotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            };
        }
        Ok(false)
    }

    async fn refuse_managed(&self, name: Option<&str>) -> Result<(), ManageFailure> {
        if let Some(name) = name
            && self.name_has_row(name).await?
        {
            return Err(already_managed(name).into());
        }
        Ok(())
    }

    /// The volume's host with its pool: a request naming only
    /// `host@backend` gets the backend's pool when it has exactly one, so
    /// the capacity it holds is counted where the scheduler looks.
    fn host_with_pool(&self, host: &str) -> String {
        if host.contains('#') {
            return host.to_owned();
        }
        let pools: Vec<String> = self
            .last_stats
            .read()
            .ok()
            .and_then(|s| s.clone())
            .and_then(|stats| stats.get("pools").and_then(Value::as_array).cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|p| {
                p.get("pool_name")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect();
        match pools.as_slice() {
            [pool] => host
                .parse::<Host>()
                .map(|h| format!("{}#{pool}", h.service_host()))
                .unwrap_or_else(|_| host.to_owned()),
            _ => host.to_owned(),
        }
    }

    async fn run_manage_existing(
        &self,
        volume: &Volume,
        reference: &ManageRef,
    ) -> Result<Volume, ManageFailure> {
        self.driver_ready()?;
        let source = referenced_name(reference, "volume-");
        self.refuse_managed(source.as_deref()).await?;
        let mut spec = volume_spec(volume);
        let size = self
            .driver
            .manage_existing_get_size(&spec, reference)
            .await?;
        let host = self.host_with_pool(volume.host.as_deref().unwrap_or(self.host()));
        self.db.size_managed_volume(volume.id, size, &host).await?;
        spec.size_gb = size;
        let update = self.driver.manage_existing(&spec, reference).await?;
        Ok(self
            .db
            .finish_volume_manage(volume.id, provider(update), source.as_deref().unwrap_or(""))
            .await?)
    }

    /// Manages the object `args.reference` names as the `managing` volume.
    pub(crate) async fn manage_existing(
        &self,
        _context: &RequestContext,
        args: ManageExistingArgs,
    ) -> Result<(), RemoteError> {
        let volume = match self.db.get_volume(args.volume_id).await {
            Ok(v) => v,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        };
        if volume.status != VolumeStatus::Managing {
            return Ok(());
        }
        self.notifier
            .info("volume.manage_existing.start", volume_payload(&volume))
            .await;
        let reference = ManageRef(args.reference.clone());
        match self.run_manage_existing(&volume, &reference).await {
            Ok(done) => {
                tracing::info!(volume_id = %done.id, size = done.size, "manage existing volume completed successfully");
                self.notifier
                    .info("volume.manage_existing.end", volume_payload(&done))
                    .await;
                Ok(())
            }
            Err(failure) => {
                tracing::error!(volume_id = %volume.id, reference = %reference.display(), error = %failure, "volume manage failed");
                match self.db.fail_volume_manage(volume.id).await {
                    Ok(failed) => {
                        self.notifier
                            .error("volume.manage_existing.error", volume_payload(&failed))
                            .await;
                        Ok(())
                    }
                    Err(DbError::InvalidState(_) | DbError::NotFound { .. }) => Ok(()),
                    Err(e) => Err(db_remote(e)),
                }
            }
        }
    }

    async fn run_manage_existing_snapshot(
        &self,
        snapshot: &Snapshot,
        reference: &ManageRef,
    ) -> Result<Snapshot, ManageFailure> {
        self.driver_ready()?;
        let source = referenced_name(reference, "snapshot-");
        self.refuse_managed(source.as_deref()).await?;
        let volume = self.db.get_volume(snapshot.volume_id).await?;
        let mut spec = snapshot_spec(snapshot, &volume_spec(&volume));
        let size = self
            .driver
            .manage_existing_snapshot_get_size(&spec, reference)
            .await?;
        self.db.size_managed_snapshot(snapshot.id, size).await?;
        spec.size_gb = size;
        let update = self
            .driver
            .manage_existing_snapshot(&spec, reference)
            .await?;
        Ok(self
            .db
            .finish_snapshot_manage(
                snapshot.id,
                update.provider_location,
                source.as_deref().unwrap_or(""),
            )
            .await?)
    }

    /// Manages the object `args.reference` names as the `creating`
    /// snapshot the API inserted.
    pub(crate) async fn manage_existing_snapshot(
        &self,
        context: &RequestContext,
        args: ManageExistingSnapshotArgs,
    ) -> Result<(), RemoteError> {
        let snapshot = match self.db.get_snapshot(args.snapshot_id).await {
            Ok(s) => s,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        };
        if snapshot.status != SnapshotStatus::Creating {
            return Ok(());
        }
        self.notifier
            .info(
                "snapshot.manage_existing_snapshot.start",
                snapshot_payload(&snapshot),
            )
            .await;
        let reference = ManageRef(args.reference.clone());
        match self
            .run_manage_existing_snapshot(&snapshot, &reference)
            .await
        {
            Ok(done) => {
                self.notifier
                    .info(
                        "snapshot.manage_existing_snapshot.end",
                        snapshot_payload(&done),
                    )
                    .await;
                Ok(())
            }
            Err(failure) => {
                tracing::error!(snapshot_id = %snapshot.id, reference = %reference.display(), error = %failure, "snapshot manage failed");
                match self.db.fail_snapshot_create(snapshot.id).await {
                    Ok(_) | Err(DbError::InvalidState(_) | DbError::NotFound { .. }) => {}
                    Err(e) => return Err(db_remote(e)),
                }
                self.record_message(
                    context,
                    &snapshot.project_id,
                    clinker_types::message_field::RESOURCE_SNAPSHOT,
                    snapshot.id.to_string(),
                    clinker_types::message_field::SNAPSHOT_CREATE,
                    clinker_types::message_field::SNAPSHOT_CREATE_ERROR,
                )
                .await;
                Ok(())
            }
        }
    }

    /// Unmanages an `unmanaging` volume (also the resume path after a
    /// restart): the export goes, the driver lets go, and the row is
    /// removed with the object's name recorded.
    pub(crate) async fn unmanage_volume(
        &self,
        _context: &RequestContext,
        args: UnmanageVolumeArgs,
    ) -> Result<(), RemoteError> {
        let volume_id = args.volume_id;
        let _lock = self.locks.lock(&format!("{volume_id}-delete_volume")).await;
        let volume = match self.db.get_volume(volume_id).await {
            Ok(v) => v,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        };
        if volume.status != VolumeStatus::Unmanaging {
            return Ok(());
        }
        self.notifier
            .info("volume.unmanage.start", volume_payload(&volume))
            .await;
        let spec = volume_spec(&volume);
        let outcome = async {
            self.driver_ready()?;
            self.driver
                .remove_export(&spec)
                .await
                .or_else(|e| match e {
                    DriverError::NotFound(_) => Ok(()),
                    other => Err(other),
                })?;
            self.driver.unmanage(&spec).await
        }
        .await;
        match outcome {
            Ok(name) => match self.db.finish_volume_unmanage(volume_id, &name).await {
                Ok(gone) => {
                    tracing::info!(volume_id = %volume_id, object = %name, "unmanaged volume successfully");
                    self.notifier
                        .info("volume.unmanage.end", volume_payload(&gone))
                        .await;
                    Ok(())
                }
                Err(DbError::NotFound { .. } | DbError::InvalidState(_)) => Ok(()),
                Err(e) => Err(db_remote(e)),
            },
            Err(failure) => {
                tracing::error!(volume_id = %volume_id, error = %failure, "volume unmanage failed");
                match self.db.fail_volume_unmanage(volume_id).await {
                    Ok(_) | Err(DbError::NotFound { .. } | DbError::InvalidState(_)) => Ok(()),
                    Err(e) => Err(db_remote(e)),
                }
            }
        }
    }

    /// Unmanages an `unmanaging` snapshot (also the resume path).
    pub(crate) async fn unmanage_snapshot(
        &self,
        _context: &RequestContext,
        args: UnmanageSnapshotArgs,
    ) -> Result<(), RemoteError> {
        let snapshot_id = args.snapshot_id;
        let _lock = self
            .locks
            .lock(&format!("{snapshot_id}-delete_snapshot"))
            .await;
        let Some((_, spec)) = self
            .snapshot_in(
                snapshot_id,
                SnapshotStatus::Unmanaging,
                "snapshot.unmanage.start",
            )
            .await?
        else {
            return Ok(());
        };
        let outcome = async {
            self.driver_ready()?;
            self.driver.unmanage_snapshot(&spec).await
        }
        .await;
        match outcome {
            Ok(name) => match self.db.finish_snapshot_unmanage(snapshot_id, &name).await {
                Ok(gone) => {
                    tracing::info!(snapshot_id = %snapshot_id, object = %name, "unmanage snapshot completed successfully");
                    self.notifier
                        .info("snapshot.unmanage.end", snapshot_payload(&gone))
                        .await;
                    Ok(())
                }
                Err(DbError::NotFound { .. } | DbError::InvalidState(_)) => Ok(()),
                Err(e) => Err(db_remote(e)),
            },
            Err(failure) => {
                tracing::error!(snapshot_id = %snapshot_id, error = %failure, "snapshot unmanage failed");
                match self.db.fail_snapshot_unmanage(snapshot_id).await {
                    Ok(_) | Err(DbError::NotFound { .. } | DbError::InvalidState(_)) => Ok(()),
                    Err(e) => Err(db_remote(e)),
                }
            }
        }
    }

    fn require_driver_for_listing(&self) -> Result<(), RemoteError> {
        self.driver_ready()
            .map_err(|e| RemoteError::new(ErrorKind::Unavailable, e.to_string()))
    }

    /// The backend objects that could be managed as volumes, as Cinder's
    /// manageable-volume dicts.
    pub(crate) async fn get_manageable_volumes(
        &self,
        _context: &RequestContext,
    ) -> Result<Vec<Value>, RemoteError> {
        self.require_driver_for_listing()?;
        let managed: HashSet<String> = self
            .db
            .volumes_on_backend(self.host())
            .await
            .map_err(db_remote)?
            .into_iter()
            .map(|v| v.id.to_string())
            .collect();
        let entries = self
            .driver
            .get_manageable_volumes(&managed)
            .await
            .map_err(|e| RemoteError::new(e.kind(), e.to_string()))?;
        Ok(entries.iter().map(|e| e.to_json(false)).collect())
    }

    /// The backend objects that could be managed as snapshots.
    pub(crate) async fn get_manageable_snapshots(
        &self,
        _context: &RequestContext,
    ) -> Result<Vec<Value>, RemoteError> {
        self.require_driver_for_listing()?;
        let managed: HashSet<String> = self
            .db
            .snapshots_on_backend(self.host())
            .await
            .map_err(db_remote)?
            .into_iter()
            .map(|s| s.id.to_string())
            .collect();
        let entries = self
            .driver
            .get_manageable_snapshots(&managed)
            .await
            .map_err(|e| RemoteError::new(e.kind(), e.to_string()))?;
        Ok(entries.iter().map(|e| e.to_json(true)).collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use clinker_db::NewManagedVolume;
    use serde_json::json;

    use super::*;
    use crate::test_support::{TestDriver, TestManager};

    fn ctx() -> RequestContext {
        RequestContext::internal("test")
    }

    /// A `managing` row as the API inserts it.
    async fn managing(t: &TestManager, host: &str) -> VolumeId {
        let volume_type = t.db.get_volume_type_by_name("__DEFAULT__").await.unwrap();
        let new = NewManagedVolume {
            id: VolumeId::new_random(),
            user_id: "u1".into(),
            project_id: "p1".into(),
            host: host.into(),
            availability_zone: "nova".into(),
            display_name: Some("managed".into()),
            display_description: None,
            volume_type_id: volume_type.id,
            volume_type_name: volume_type.name,
            multiattach: false,
            bootable: false,
            metadata: BTreeMap::new(),
        };
        t.db.create_managed_volume(new).await.unwrap().id
    }

    async fn manage(t: &TestManager, id: VolumeId, reference: Value) {
        t.manager
            .manage_existing(
                &ctx(),
                ManageExistingArgs {
                    volume_id: id,
                    reference,
                },
            )
            .await
            .unwrap();
    }

    async fn assert_quota_is_recount(t: &TestManager) {
        let nonzero = |m: BTreeMap<String, i64>| -> BTreeMap<String, i64> {
            m.into_iter().filter(|(_, v)| *v != 0).collect()
        };
        assert_eq!(
            nonzero(t.db.quota_usages("p1").await.unwrap()),
            nonzero(t.db.recount_usages("p1").await.unwrap())
        );
    }

    /// THE safety property: an unmanaged volume's file survives a restart
    /// (the orphan sweep), and managing it back under a new id keeps its
    /// data.
    #[tokio::test]
    async fn unmanaged_data_survives_the_sweep_and_is_managed_back() {
        let t = TestManager::new(TestDriver::File).await;
        let old = t.volume("__DEFAULT__").await;
        let old_path = t._dir.path().join(format!("volume-{old}"));
        std::fs::write(&old_path, b"precious").unwrap();
        t.db.begin_volume_unmanage(old).await.unwrap();
        let args = UnmanageVolumeArgs { volume_id: old };
        t.manager.unmanage_volume(&ctx(), args).await.unwrap();
        assert!(!t.db.volume_exists(old).await.unwrap());
        assert!(old_path.exists());

        // A restart runs the orphan sweep: the file has no row but stays.
        t.manager.init_host().await;
        assert!(old_path.exists(), "the sweep removed unmanaged data");
        // A truly orphaned file (a crash between driver and database) goes.
        let orphan = t
            ._dir
            .path()
            .join(format!("volume-{}", VolumeId::new_random()));
        std::fs::write(&orphan, b"x").unwrap();
        t.manager.init_host().await;
        assert!(!orphan.exists());
        assert!(old_path.exists());

        let new = managing(&t, "node1@file").await;
        manage(&t, new, json!({"source-name": format!("volume-{old}")})).await;
        let managed = t.db.get_volume(new).await.unwrap();
        assert_eq!(managed.status, VolumeStatus::Available);
        assert_eq!(managed.size, 1);
        // The pool was filled in from the capability report's one pool.
        assert_eq!(managed.host.as_deref(), Some("node1@file#file"));
        let new_path = t._dir.path().join(format!("volume-{new}"));
        assert_eq!(&std::fs::read(&new_path).unwrap()[..8], b"precious");
        assert!(!old_path.exists());
        assert!(
            !t.db
                .is_unmanaged_object(&format!("volume-{old}"))
                .await
                .unwrap()
        );
        assert_quota_is_recount(&t).await;
        assert!(
            t.db.journal_for_backend("node1@file")
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn bad_references_leave_error_managing_and_change_nothing() {
        let t = TestManager::new(TestDriver::File).await;
        let owned = t.volume("__DEFAULT__").await;
        let owned_path = t._dir.path().join(format!("volume-{owned}"));
        for reference in [
            json!({"source-name": "missing"}),
            json!({"nothing": "here"}),
            // Already another volume's: Cinder refuses to take it over.
            json!({"source-name": format!("volume-{owned}")}),
        ] {
            let id = managing(&t, "node1@file#file").await;
            manage(&t, id, reference).await;
            let failed = t.db.get_volume(id).await.unwrap();
            assert_eq!(
                (failed.status, failed.size),
                (VolumeStatus::ErrorManaging, 0)
            );
            assert!(owned_path.exists());
            assert_eq!(
                t.db.get_volume(owned).await.unwrap().status,
                VolumeStatus::Available
            );
        }
        assert_quota_is_recount(&t).await;
        assert!(
            t.db.journal_for_backend("node1@file")
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn drivers_without_manage_refuse_and_the_row_says_error() {
        let t = TestManager::new(TestDriver::Rbd).await;
        let id = managing(&t, "node1@ceph#ceph").await;
        manage(&t, id, json!({"source-name": "image"})).await;
        assert_eq!(
            t.db.get_volume(id).await.unwrap().status,
            VolumeStatus::ErrorManaging
        );
    }

    #[tokio::test]
    async fn snapshots_unmanage_survive_and_are_managed_back() {
        let t = TestManager::new(TestDriver::File).await;
        let volume = t.volume("__DEFAULT__").await;
        let old = t.snapshot(volume).await;
        let old_path = t._dir.path().join(format!("snapshot-{old}"));
        std::fs::write(&old_path, b"snapdata").unwrap();
        t.db.begin_snapshot_unmanage(old).await.unwrap();
        let args = UnmanageSnapshotArgs { snapshot_id: old };
        t.manager.unmanage_snapshot(&ctx(), args).await.unwrap();
        assert!(t.db.get_snapshot(old).await.is_err());
        t.manager.init_host().await;
        assert!(old_path.exists(), "the sweep removed an unmanaged snapshot");

        let new =
            t.db.create_snapshot(clinker_db::NewSnapshot {
                id: SnapshotId::new_random(),
                volume_id: volume,
                user_id: "u1".into(),
                project_id: "p1".into(),
                display_name: Some("managed".into()),
                display_description: None,
                metadata: BTreeMap::new(),
                allow_in_use: true,
                use_quota: true,
            })
            .await
            .unwrap();
        t.manager
            .manage_existing_snapshot(
                &ctx(),
                ManageExistingSnapshotArgs {
                    snapshot_id: new.id,
                    reference: json!({"source-name": format!("snapshot-{old}")}),
                },
            )
            .await
            .unwrap();
        let managed = t.db.get_snapshot(new.id).await.unwrap();
        assert_eq!(managed.status, SnapshotStatus::Available);
        let new_path = t._dir.path().join(format!("snapshot-{}", new.id));
        assert_eq!(&std::fs::read(&new_path).unwrap()[..8], b"snapdata");
        assert_quota_is_recount(&t).await;

        // The manageable list shows the managed snapshot as managed.
        let listed = t.manager.get_manageable_snapshots(&ctx()).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["cinder_id"], json!(new.id.to_string()));
        assert_eq!(listed[0]["safe_to_manage"], json!(false));
    }

    #[tokio::test]
    async fn an_interrupted_unmanage_is_finished_at_start_up() {
        let t = TestManager::new(TestDriver::File).await;
        let volume = t.volume("__DEFAULT__").await;
        let path = t._dir.path().join(format!("volume-{volume}"));
        t.db.begin_volume_unmanage(volume).await.unwrap();
        t.manager.init_host().await;
        assert!(!t.db.volume_exists(volume).await.unwrap());
        assert!(path.exists());
        assert!(
            t.db.journal_for_backend("node1@file")
                .await
                .unwrap()
                .is_empty()
        );
        // An interrupted manage is left error_managing.
        let id = managing(&t, "node1@file#file").await;
        t.manager.recover(&ctx(), None).await;
        assert_eq!(
            t.db.get_volume(id).await.unwrap().status,
            VolumeStatus::ErrorManaging
        );
    }
}
