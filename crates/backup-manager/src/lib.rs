//! The backup service: Cinder's `backup/manager.py` over the chunked
//! engine of `clinker-backup`.
//!
//! The API inserts a `creating` backup (quota charged, volume moved to
//! `backing-up`, one transaction) and casts `create_backup` to the backup
//! host; [`BackupManager`] reaches the volume's data through the volume
//! service's legacy `initialize_connection` with a connector for this
//! host (a local path for the file backend and for LVM without a target
//! helper, an RBD image read and written with the `rbd` tool for Ceph
//! backends, whatever the driver), runs the engine, and records the result with the volume's
//! status restored in one transaction. Restores and deletes go the same
//! way. The object prefix is recorded in the row before the first object
//! is written, and the engine writes the metadata object last, so
//! [`BackupManager::init_host`] can settle every row a crash left: a
//! `creating` backup loses its partial objects and becomes `error`, a
//! `restoring` one becomes `available` again with its target volume
//! `error_restoring`, a `deleting` one is deleted.
//!
//! Depends on types, config, runtime, db, rpc and backup (never on the
//! volume crate: volumes are reached over RPC, as in Cinder).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use clinker_backup::{
    BackupDriver, BackupRecord, BackupRequest, CephBackupRequest, Control, ParentBackup, RbdVolume,
    RestoreTarget, VolumeData, build_driver, format,
};
use clinker_config::{BackupDriverKind, BackupOptions};
use clinker_db::{BackupLocation, DbError, DbHandle};
use clinker_rpc::backup::{
    CreateBackupArgs, DeleteBackupArgs, ResetBackupStatusArgs, RestoreBackupArgs,
};
use clinker_rpc::notify::Notifier;
use clinker_rpc::volume::{
    InitializeConnectionArgs, RemoveExportArgs, TerminateConnectionArgs, VolumeRpcClient,
};
use clinker_rpc::{RequestContext, serve_backup_api};
use clinker_runtime::{CancellationToken, Gate};
use clinker_types::backup::{Backup, BackupStatus};
use clinker_types::connection::Connector;
use clinker_types::message_field as mf;
use clinker_types::model::Volume;
use clinker_types::{BackupId, ErrorKind, RemoteError, VolumeId, VolumeStatus};
use serde_json::json;
use tokio::sync::Semaphore;

mod temp_volume;
mod volume_meta;

/// What the backup manager is configured with.
#[derive(Clone, Debug)]
pub struct BackupManagerOptions {
    /// The service's host (`[DEFAULT] host`, or `backup_host`).
    pub host: String,
    /// `storage_availability_zone` (part of S3 and Swift object names).
    pub availability_zone: String,
    /// The driver (`backup_driver`; POSIX when unset).
    pub driver: BackupDriverKind,
    /// The `backup_*` options.
    pub options: BackupOptions,
    /// `message_ttl` seconds (user messages of failed restores).
    pub message_ttl: u64,
}

/// Cinder's backup manager.
#[derive(Debug)]
pub struct BackupManager {
    options: BackupManagerOptions,
    db: DbHandle,
    volume_rpc: VolumeRpcClient,
    notifier: Notifier,
    gate: Gate,
    /// `backup_max_operations` (`None`: unlimited).
    operations: Option<Semaphore>,
    /// Operations under way, cancelled by a force delete.
    running: Mutex<HashMap<BackupId, CancellationToken>>,
    /// When this manager was made: rows changed since are live work (a
    /// create or restore placed while the service started), not work an
    /// earlier run left.
    started: clinker_types::Timestamp,
}

/// Whether a row last changed (`updated_at`, else `created_at`) before
/// `started`: only such rows can have been left by an earlier run.
fn changed_before(
    updated_at: Option<clinker_types::Timestamp>,
    created_at: clinker_types::Timestamp,
    started: clinker_types::Timestamp,
) -> bool {
    updated_at.unwrap_or(created_at) < started
}

/// Why one operation failed: the text recorded as `fail_reason`.
type Failure = String;

/// Removes a backup's cancellation token when its operation ends.
struct Running<'a> {
    manager: &'a BackupManager,
    id: BackupId,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Ok(mut running) = self.manager.running.lock() {
            running.remove(&self.id);
        }
    }
}

/// The volume's data (a local path, or an RBD image for the Ceph
/// driver), and how to let it go.
struct Attached {
    host: String,
    volume_id: VolumeId,
    connector: Connector,
    data: VolumeData,
}

fn remote(kind: ErrorKind, message: impl Into<String>) -> RemoteError {
    RemoteError::new(kind, message)
}

fn db_error(e: &DbError) -> RemoteError {
    remote(e.kind(), e.to_string())
}

fn record_of(backup: &Backup) -> BackupRecord {
    BackupRecord {
        id: backup.id.to_string(),
        container: backup.container.clone().unwrap_or_default(),
        service_metadata: backup.service_metadata.clone().unwrap_or_default(),
    }
}

fn jiff_time(at: clinker_types::Timestamp) -> jiff::Timestamp {
    jiff::Timestamp::from_microsecond(at.as_micros()).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

impl BackupManager {
    /// A manager; call [`Self::init_host`] before serving.
    pub fn new(
        options: BackupManagerOptions,
        db: DbHandle,
        volume_rpc: VolumeRpcClient,
        notifier: Notifier,
    ) -> Self {
        let operations = match options.options.max_operations {
            0 => None,
            n => Some(Semaphore::new(n as usize)),
        };
        Self {
            options,
            db,
            volume_rpc,
            notifier,
            gate: Gate::new(),
            operations,
            running: Mutex::new(HashMap::new()),
            started: clinker_types::Clock::now(&clinker_types::SystemClock),
        }
    }

    /// The service's host.
    pub fn host(&self) -> &str {
        &self.options.host
    }

    /// The gate in-flight operations hold (closed on stop).
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The driver's class path, as backup rows record it in `service`.
    pub fn service_name(&self) -> &'static str {
        self.options.driver.class_path()
    }

    fn driver(&self) -> Result<BackupDriver, Failure> {
        build_driver(
            self.options.driver,
            &self.options.options,
            &self.options.availability_zone,
            None,
        )
        .map_err(|e| format!("backup driver: {e}"))
    }

    /// Checks that the driver builds (at start-up, so a bad configuration
    /// shows in the log at once).
    ///
    /// # Errors
    /// The driver's configuration error.
    pub fn check_driver(&self) -> Result<(), String> {
        self.driver().map(|_| ())
    }

    /// Deletes what a backup stored, whichever driver stored it.
    async fn delete_stored(&self, backup: &Backup) -> Result<u64, Failure> {
        let record = record_of(backup);
        match self.driver()? {
            BackupDriver::Chunked(engine) => engine.delete_backup(&record).await,
            BackupDriver::Ceph(ceph) => {
                ceph.delete_backup(&record, &backup.volume_id.to_string())
                    .await
            }
        }
        .map_err(|e| e.to_string())
    }

    fn track(&self, id: BackupId) -> (Running<'_>, CancellationToken) {
        let token = CancellationToken::new();
        if let Ok(mut running) = self.running.lock() {
            running.insert(id, token.clone());
        }
        (Running { manager: self, id }, token)
    }

    async fn permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        match &self.operations {
            Some(semaphore) => semaphore.acquire().await.ok(),
            None => None,
        }
    }

    fn connector(&self) -> Connector {
        let mut connector = Connector::new();
        connector.insert("host".into(), json!(self.options.host));
        connector.insert("multipath".into(), json!(false));
        connector.insert("platform".into(), json!(std::env::consts::ARCH));
        connector.insert("os_type".into(), json!(std::env::consts::OS));
        connector
    }

    /// Connects this host to a volume and returns its local path (Cinder's
    /// `_attach_device`); only local connections are supported.
    async fn attach(&self, context: &RequestContext, volume: &Volume) -> Result<Attached, Failure> {
        let host = volume
            .host
            .clone()
            .ok_or_else(|| format!("volume {} is on no backend", volume.id))?;
        let connector = self.connector();
        let info = self
            .volume_rpc
            .initialize_connection(
                context,
                &host,
                &InitializeConnectionArgs {
                    volume_id: volume.id,
                    connector: connector.clone(),
                },
            )
            .await
            .map_err(|e| format!("cannot connect to volume {}: {e}", volume.id))?;
        // A local path (file, LVM without a target), or an RBD image the
        // `rbd` tools reach from anywhere (Cinder's os-brick RBD connector
        // without a local attach).
        let data = match info.driver_volume_type.as_str() {
            "local" => info
                .data
                .get("device_path")
                .and_then(|p| p.as_str())
                .map(PathBuf::from)
                .filter(|p| p.exists())
                .map(VolumeData::Local)
                .ok_or_else(|| format!("volume {} has no local device path", volume.id)),
            "rbd" => RbdVolume::from_connection(&info.data, &self.options.options.ceph.conf)
                .map(VolumeData::Rbd)
                .map_err(|e| format!("volume {}: {e}", volume.id)),
            protocol => Err(format!(
                "the backup service reads volumes through local paths or rbd; volume {} is \
                 reached over {protocol}",
                volume.id
            )),
        };
        let attached = Attached {
            host,
            volume_id: volume.id,
            connector,
            data: VolumeData::Local(PathBuf::new()),
        };
        match data {
            Ok(data) => Ok(Attached { data, ..attached }),
            Err(reason) => {
                self.detach(context, attached).await;
                Err(reason)
            }
        }
    }

    async fn detach(&self, context: &RequestContext, attached: Attached) {
        let terminate = TerminateConnectionArgs {
            volume_id: attached.volume_id,
            connector: Some(attached.connector),
            force: false,
        };
        if let Err(e) = self
            .volume_rpc
            .terminate_connection(context, &attached.host, &terminate)
            .await
        {
            tracing::warn!(volume_id = %attached.volume_id, error = %e, "backup: cannot disconnect the volume");
        }
        let remove = RemoveExportArgs {
            volume_id: attached.volume_id,
        };
        if let Err(e) = self
            .volume_rpc
            .remove_export(context, &attached.host, &remove)
            .await
        {
            tracing::warn!(volume_id = %attached.volume_id, error = %e, "backup: cannot remove the volume's export");
        }
    }

    async fn notify(&self, event: &str, backup: &Backup) {
        let payload = json!({
            "tenant_id": backup.project_id,
            "user_id": backup.user_id,
            "availability_zone": backup.availability_zone,
            "backup_id": backup.id,
            "host": backup.host,
            "display_name": backup.display_name,
            "created_at": backup.created_at.to_iso8601(),
            "status": backup.status.as_str(),
            "volume_id": backup.volume_id,
            "size": backup.size,
            "service_metadata": backup.service_metadata,
            "service": backup.service,
            "fail_reason": backup.fail_reason,
            "parent_id": backup.parent_id,
            "num_dependent_backups": backup.num_dependent_backups,
            "snapshot_id": backup.snapshot_id,
        });
        self.notifier
            .info(&format!("backup.{event}"), payload)
            .await;
    }

    // -- create ---------------------------------------------------------

    /// `create_backup`: makes the backup the row describes.
    ///
    /// # Errors
    /// Never for a failed backup (the row records it); only when the row
    /// cannot be read.
    pub async fn create_backup(
        &self,
        context: &RequestContext,
        args: CreateBackupArgs,
    ) -> Result<(), RemoteError> {
        let Some(_active) = self.gate.enter() else {
            return Err(remote(
                ErrorKind::Unavailable,
                "the backup service is stopping",
            ));
        };
        let _permit = self.permit().await;
        let backup = self
            .db
            .get_backup(args.backup_id)
            .await
            .map_err(|e| db_error(&e))?;
        if backup.status != BackupStatus::Creating {
            tracing::warn!(backup_id = %backup.id, status = %backup.status, "create_backup: not creating; ignored");
            return Ok(());
        }
        self.notify("create.start", &backup).await;
        let (_running, cancel) = self.track(backup.id);
        let outcome = self.run_create(context, &backup, cancel).await;
        let done = match outcome {
            Ok((location, objects)) => self
                .db
                .finish_backup_create(backup.id, &location, objects)
                .await
                .map(|b| (b, true)),
            Err(reason) => {
                tracing::error!(backup_id = %backup.id, %reason, "backup failed");
                self.db
                    .fail_backup_create(backup.id, &reason)
                    .await
                    .map(|b| (b, false))
            }
        };
        match done {
            Ok((finished, true)) => {
                tracing::info!(backup_id = %finished.id, objects = finished.object_count, "backup created");
                self.notify("create.end", &finished).await;
            }
            Ok((failed, false)) => self.notify("create.error", &failed).await,
            // Deleted (force) meanwhile: the delete owns the row now.
            Err(e) => {
                tracing::warn!(backup_id = %backup.id, error = %e, "backup finished under another status")
            }
        }
        Ok(())
    }

    async fn run_create(
        &self,
        context: &RequestContext,
        backup: &Backup,
        cancel: CancellationToken,
    ) -> Result<(BackupLocation, i64), Failure> {
        let driver = self.driver()?;
        let volume = self
            .db
            .get_volume(backup.volume_id)
            .await
            .map_err(|e| e.to_string())?;
        let parent = match backup.parent_id {
            None => None,
            Some(id) => {
                let parent = self.db.get_backup(id).await.map_err(|e| e.to_string())?;
                Some(ParentBackup {
                    record: record_of(&parent),
                    size_gb: u64::try_from(parent.size).unwrap_or(0),
                })
            }
        };
        let engine = match driver {
            BackupDriver::Chunked(engine) => engine,
            BackupDriver::Ceph(ceph) => {
                let request = CephBackupRequest {
                    backup_id: backup.id.to_string(),
                    volume_id: backup.volume_id.to_string(),
                    volume_size_gb: u64::try_from(backup.size).unwrap_or(0),
                    container: backup.container.clone(),
                    parent: parent.map(|p| p.record),
                    volume_meta: Some(volume_meta::serialise(&volume)),
                };
                let prepared = ceph.prepare_backup(request).map_err(|e| e.to_string())?;
                let location = BackupLocation {
                    container: prepared.container.clone(),
                    service_metadata: prepared.service_metadata.clone(),
                };
                self.record_and_read(context, backup, &volume, &location, async |data| {
                    let control = Control {
                        cancel,
                        ..Control::default()
                    };
                    ceph.run_backup(&prepared, data, &control)
                        .await
                        .map_err(|e| e.to_string())
                })
                .await?;
                return Ok((location, 0));
            }
        };
        let request = BackupRequest {
            backup_id: backup.id.to_string(),
            volume_id: backup.volume_id.to_string(),
            volume_size_gb: u64::try_from(backup.size).unwrap_or(0),
            name: backup.display_name.clone(),
            description: backup.display_description.clone(),
            created_at: format::python_datetime_str(jiff_time(backup.created_at), false),
            container: backup.container.clone(),
            parent,
            volume_meta: Some(volume_meta::serialise(&volume)),
            started_at: jiff::Timestamp::now(),
        };
        let prepared = engine
            .prepare_backup(request)
            .await
            .map_err(|e| e.to_string())?;
        let location = BackupLocation {
            container: prepared.container.clone(),
            service_metadata: prepared.service_metadata.clone(),
        };
        let outcome = self
            .record_and_read(context, backup, &volume, &location, async |data| {
                let control = Control {
                    cancel,
                    ..Control::default()
                };
                engine
                    .backup_volume(&prepared, data, &control)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await?;
        Ok((
            location,
            i64::try_from(outcome.object_count).unwrap_or(i64::MAX),
        ))
    }

    /// Records where the backup goes, then lets `read` read the volume
    /// (through a temporary volume for a snapshot's backup or a `force`
    /// backup of an in-use volume) and lets it go again.
    async fn record_and_read<T>(
        &self,
        context: &RequestContext,
        backup: &Backup,
        volume: &Volume,
        location: &BackupLocation,
        read: impl AsyncFnOnce(&VolumeData) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        // Recorded before the first object, so a crash leaves objects the
        // restart can find.
        self.db
            .record_backup_location(backup.id, location)
            .await
            .map_err(|e| e.to_string())?;
        // A `force` backup of an in-use volume reads a temporary snapshot
        // of it (Cinder's `_get_backup_volume_temp_snapshot`), so the
        // backup holds one moment's data while the volume stays in use.
        let temp_snapshot = if backup.snapshot_id.is_none()
            && volume.previous_status.as_deref() == Some(VolumeStatus::InUse.as_str())
        {
            Some(
                temp_volume::snapshot_of_volume(
                    &self.db,
                    &self.volume_rpc,
                    context,
                    backup,
                    volume,
                )
                .await?,
            )
        } else {
            None
        };
        let result = self
            .read_volume(
                context,
                backup,
                volume,
                backup.snapshot_id.or(temp_snapshot.as_ref().map(|s| s.id)),
                read,
            )
            .await;
        if let Some(snapshot) = &temp_snapshot {
            temp_volume::remove_snapshot(
                &self.db,
                &self.volume_rpc,
                context,
                backup.id,
                snapshot.id,
            )
            .await;
        }
        result
    }

    /// Lets `read` read the volume's data: the volume itself, or a
    /// temporary volume made from `snapshot_id` (removed at the end), as
    /// Cinder's drivers read a snapshot by default.
    async fn read_volume<T>(
        &self,
        context: &RequestContext,
        backup: &Backup,
        volume: &Volume,
        snapshot_id: Option<clinker_types::SnapshotId>,
        read: impl AsyncFnOnce(&VolumeData) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let temp = match snapshot_id {
            Some(snapshot_id) => Some(
                temp_volume::from_snapshot(
                    &self.db,
                    &self.volume_rpc,
                    context,
                    backup,
                    volume,
                    snapshot_id,
                )
                .await?,
            ),
            None => None,
        };
        let source = temp.as_ref().unwrap_or(volume);
        let attached = match self.attach(context, source).await {
            Ok(a) => a,
            Err(reason) => {
                if let Some(temp) = &temp {
                    temp_volume::remove(&self.db, &self.volume_rpc, context, backup.id, temp.id)
                        .await;
                }
                return Err(reason);
            }
        };
        let result = read(&attached.data).await;
        self.detach(context, attached).await;
        if let Some(temp) = &temp {
            temp_volume::remove(&self.db, &self.volume_rpc, context, backup.id, temp.id).await;
        }
        result
    }

    // -- restore --------------------------------------------------------

    /// `restore_backup`: writes the backup's chain into the volume.
    ///
    /// # Errors
    /// Only when the rows cannot be read.
    pub async fn restore_backup(
        &self,
        context: &RequestContext,
        args: RestoreBackupArgs,
    ) -> Result<(), RemoteError> {
        let Some(_active) = self.gate.enter() else {
            return Err(remote(
                ErrorKind::Unavailable,
                "the backup service is stopping",
            ));
        };
        let _permit = self.permit().await;
        let backup = self
            .db
            .get_backup(args.backup_id)
            .await
            .map_err(|e| db_error(&e))?;
        if backup.status != BackupStatus::Restoring {
            tracing::warn!(backup_id = %backup.id, status = %backup.status, "restore_backup: not restoring; ignored");
            return Ok(());
        }
        self.notify("restore.start", &backup).await;
        let (_running, cancel) = self.track(backup.id);
        let result = self
            .run_restore(context, &backup, args.volume_id, args.volume_is_new, cancel)
            .await;
        if let Err(reason) = &result {
            tracing::error!(backup_id = %backup.id, volume_id = %args.volume_id, %reason, "restore failed");
            // Cinder's BACKUP_RESTORE_ERROR, on the backup.
            let message = mf::build_message(
                &backup.project_id,
                Some(&context.request_id),
                mf::RESOURCE_VOLUME_BACKUP,
                Some(backup.id.to_string()),
                mf::BACKUP_RESTORE,
                mf::BACKUP_RESTORE_ERROR,
                clinker_types::Timestamp(jiff::Timestamp::now().as_microsecond()),
                self.options.message_ttl,
            );
            if let Err(e) = self.db.create_message(&message).await {
                tracing::warn!(backup_id = %backup.id, error = %e, "cannot store the user message");
            }
        }
        match self
            .db
            .finish_backup_restore(backup.id, args.volume_id, result.is_ok())
            .await
        {
            Ok(finished) => {
                if result.is_ok() {
                    tracing::info!(backup_id = %backup.id, volume_id = %args.volume_id, "backup restored");
                }
                self.notify("restore.end", &finished).await;
            }
            Err(e) => {
                tracing::warn!(backup_id = %backup.id, error = %e, "restore finished under another status")
            }
        }
        Ok(())
    }

    /// The chain from the full backup to `backup`.
    async fn chain(&self, backup: &Backup) -> Result<Vec<BackupRecord>, Failure> {
        let mut chain = vec![record_of(backup)];
        let mut next = backup.parent_id;
        while let Some(id) = next {
            if chain.len() > 10_000 {
                return Err("the backup chain does not end".into());
            }
            let parent = self
                .db
                .get_backup(id)
                .await
                .map_err(|e| format!("parent backup: {e}"))?;
            chain.push(record_of(&parent));
            next = parent.parent_id;
        }
        chain.reverse();
        Ok(chain)
    }

    async fn run_restore(
        &self,
        context: &RequestContext,
        backup: &Backup,
        volume_id: VolumeId,
        volume_is_new: bool,
        cancel: CancellationToken,
    ) -> Result<(), Failure> {
        let driver = self.driver()?;
        let volume = self
            .db
            .get_volume(volume_id)
            .await
            .map_err(|e| e.to_string())?;
        if volume.status != VolumeStatus::RestoringBackup {
            return Err(format!("volume {volume_id} is {}", volume.status));
        }
        let control = Control {
            cancel,
            ..Control::default()
        };
        let attached = self.attach(context, &volume).await?;
        let target = RestoreTarget {
            volume_id: volume_id.to_string(),
            data: attached.data.clone(),
            size_gb: u64::try_from(volume.size).unwrap_or(0),
            is_new: volume_is_new,
        };
        let result = async {
            match driver {
                BackupDriver::Chunked(engine) => {
                    let chain = self.chain(backup).await?;
                    engine.restore_volume(&chain, &target, &control).await
                }
                // Each Ceph backup is a whole snapshot: no chain to walk.
                BackupDriver::Ceph(ceph) => {
                    ceph.restore_backup(
                        &record_of(backup),
                        &backup.volume_id.to_string(),
                        &target,
                        &control,
                    )
                    .await
                }
            }
            .map_err(|e| e.to_string())
        }
        .await;
        self.detach(context, attached).await;
        let outcome = result?;
        for meta in &outcome.volume_meta {
            volume_meta::apply(&self.db, volume_id, meta).await?;
        }
        volume_meta::mark_source(
            &self.db,
            volume_id,
            backup.volume_id,
            &backup.id.to_string(),
        )
        .await
    }

    // -- delete ---------------------------------------------------------

    /// `delete_backup`: deletes the objects, then the row and its quota.
    ///
    /// # Errors
    /// Only when the row cannot be read.
    pub async fn delete_backup(
        &self,
        _context: &RequestContext,
        args: DeleteBackupArgs,
    ) -> Result<(), RemoteError> {
        let Some(_active) = self.gate.enter() else {
            return Err(remote(
                ErrorKind::Unavailable,
                "the backup service is stopping",
            ));
        };
        // A force delete stops the backup or restore under way first.
        let under_way = self
            .running
            .lock()
            .ok()
            .and_then(|r| r.get(&args.backup_id).cloned());
        if let Some(token) = under_way {
            token.cancel();
        }
        let backup = match self.db.get_backup(args.backup_id).await {
            Ok(b) => b,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_error(&e)),
        };
        if backup.status != BackupStatus::Deleting {
            tracing::warn!(backup_id = %backup.id, status = %backup.status, "delete_backup: not deleting; ignored");
            return Ok(());
        }
        self.notify("delete.start", &backup).await;
        self.run_delete(&backup).await;
        Ok(())
    }

    async fn run_delete(&self, backup: &Backup) {
        let deleted = self.delete_stored(backup).await;
        match deleted {
            Ok(objects) => match self.db.finish_backup_delete(backup.id).await {
                Ok(()) => {
                    tracing::info!(backup_id = %backup.id, objects, "backup deleted");
                    self.notify("delete.end", backup).await;
                }
                Err(e) => {
                    tracing::error!(backup_id = %backup.id, error = %e, "cannot remove the backup row")
                }
            },
            Err(reason) => {
                tracing::error!(backup_id = %backup.id, %reason, "backup delete failed");
                if let Err(e) = self.db.fail_backup_delete(backup.id, &reason).await {
                    tracing::error!(backup_id = %backup.id, error = %e, "cannot record the failed delete");
                }
            }
        }
    }

    // -- administration -------------------------------------------------

    /// `reset_status`.
    ///
    /// # Errors
    /// An unknown status, a missing backup.
    pub async fn reset_status(
        &self,
        _context: &RequestContext,
        args: ResetBackupStatusArgs,
    ) -> Result<(), RemoteError> {
        let status: BackupStatus = args.status.parse().map_err(|_| {
            remote(
                ErrorKind::InvalidInput,
                format!("unknown status {}", args.status),
            )
        })?;
        let backup = self
            .db
            .set_backup_status(args.backup_id, status)
            .await
            .map_err(|e| db_error(&e))?;
        self.notify("reset_status.end", &backup).await;
        Ok(())
    }

    /// `check_support_to_force_delete`: the chunked drivers stop an
    /// operation under way and delete what it wrote.
    ///
    /// # Errors
    /// Never.
    pub async fn check_support_to_force_delete(
        &self,
        _context: &RequestContext,
    ) -> Result<bool, RemoteError> {
        Ok(true)
    }

    /// `publish_service_capabilities`: nothing to report yet.
    ///
    /// # Errors
    /// Never.
    pub async fn publish_service_capabilities(
        &self,
        _context: &RequestContext,
    ) -> Result<(), RemoteError> {
        Ok(())
    }

    // -- start-up -------------------------------------------------------

    /// Settles the rows a previous run of this host left (Cinder's
    /// `init_host` / `_cleanup_incomplete_backup_operations`): a backup
    /// left `creating` loses its partial objects and becomes `error` (its
    /// volume back to its previous status); one left `restoring` becomes
    /// `available` with its target volume `error_restoring` (`error` for a
    /// volume being created from it); one left `deleting` is deleted; the
    /// temporary volumes and snapshots any of them still records are
    /// deleted.
    pub async fn init_host(&self) {
        let backups = match self.db.backups_on_host(&self.options.host).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "backup init_host: cannot list backups");
                return;
            }
        };
        // Rows changed since this manager was made belong to work placed
        // while the service was starting (a scheduler in the same process
        // re-placing a lost create from a backup, say): their RPC is
        // still to come, and settling them would fail live work.
        let (backups, live): (Vec<Backup>, Vec<Backup>) = backups
            .into_iter()
            .partition(|b| changed_before(b.updated_at, b.created_at, self.started));
        for backup in &live {
            tracing::debug!(backup_id = %backup.id, status = %backup.status, "init_host: changed since start, left to its operation");
        }
        let backups_with_temps: Vec<Backup> = backups
            .iter()
            .filter(|b| b.temp_volume_id.is_some() || b.temp_snapshot_id.is_some())
            .cloned()
            .collect();
        for backup in backups {
            match backup.status {
                BackupStatus::Creating => {
                    if let Err(e) = self.delete_stored(&backup).await {
                        tracing::warn!(backup_id = %backup.id, error = %e, "cannot delete the objects of an interrupted backup");
                    }
                    match self
                        .db
                        .fail_backup_create(backup.id, "incomplete backup reset on manager restart")
                        .await
                    {
                        Ok(_) => {
                            tracing::info!(backup_id = %backup.id, "interrupted backup set to error")
                        }
                        Err(e) => {
                            tracing::warn!(backup_id = %backup.id, error = %e, "cannot settle an interrupted backup")
                        }
                    }
                }
                BackupStatus::Restoring => {
                    if let Some(volume_id) = backup.restore_volume_id {
                        match self
                            .db
                            .finish_backup_restore(backup.id, volume_id, false)
                            .await
                        {
                            Ok(_) => {
                                tracing::info!(backup_id = %backup.id, %volume_id, "interrupted restore settled")
                            }
                            Err(e) => {
                                tracing::warn!(backup_id = %backup.id, error = %e, "cannot settle an interrupted restore")
                            }
                        }
                    } else if let Err(e) = self
                        .db
                        .set_backup_status(backup.id, BackupStatus::Available)
                        .await
                    {
                        tracing::warn!(backup_id = %backup.id, error = %e, "cannot settle an interrupted restore");
                    }
                }
                BackupStatus::Deleting => self.run_delete(&backup).await,
                _ => {}
            }
        }
        // Nothing runs yet: every temporary resource still recorded was
        // left by an interrupted backup (Cinder's
        // `_cleanup_temp_volumes_snapshots_for_one_backup`). The volume goes
        // first, since it was made from the snapshot.
        let context = RequestContext::internal("backup init_host");
        for backup in backups_with_temps {
            if let Some(volume_id) = backup.temp_volume_id {
                tracing::info!(backup_id = %backup.id, %volume_id, "removing a temporary volume an interrupted backup left");
                temp_volume::remove(&self.db, &self.volume_rpc, &context, backup.id, volume_id)
                    .await;
            }
            if let Some(snapshot_id) = backup.temp_snapshot_id {
                tracing::info!(backup_id = %backup.id, %snapshot_id, "removing a temporary snapshot an interrupted backup left");
                temp_volume::remove_snapshot(
                    &self.db,
                    &self.volume_rpc,
                    &context,
                    backup.id,
                    snapshot_id,
                )
                .await;
            }
        }
    }
}

serve_backup_api!(BackupManager);

#[cfg(test)]
mod start_tests {
    use clinker_types::Timestamp;

    use super::changed_before;

    #[test]
    fn only_rows_changed_before_the_start_are_an_earlier_runs() {
        let started = Timestamp(1_000_000);
        // Touched before the start: left by an earlier run.
        assert!(changed_before(
            Some(Timestamp(999_999)),
            Timestamp(1),
            started
        ));
        // Never updated, created before the start.
        assert!(changed_before(None, Timestamp(500_000), started));
        // Changed at or after the start: live work.
        assert!(!changed_before(Some(started), Timestamp(1), started));
        assert!(!changed_before(
            Some(Timestamp(1_000_001)),
            Timestamp(1),
            started
        ));
        assert!(!changed_before(None, Timestamp(1_000_001), started));
    }
}
