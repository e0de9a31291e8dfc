//! The volume manager (Cinder's `volume/manager.py`): one per backend.
//!
//! Every operation follows the same shape: enter the [`Gate`] (shutdown
//! waits for it) and mark the resource in flight (the endpoint does both
//! through `VolumeManager::begin_serialized` for the methods the API
//! declares `serialized_by`), re-read the row and check its status is
//! still the one the API set (the status is the lock; a redelivered
//! message finds it moved on), call the driver, then finish or fail
//! through one database transaction that also removes the journal row.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};

use clinker_config::BackendConfig;
use clinker_db::{DbError, DbHandle, ProviderUpdate};
use clinker_drivers::{DriverError, ModelUpdate, SnapshotSpec, VolumeDriver, VolumeSpec};
use clinker_rpc::RequestContext;
use clinker_rpc::notify::Notifier;
use clinker_rpc::scheduler::{ScheduleCreateVolumeArgs, SchedulerRpcClient};
use clinker_rpc::volume::{
    CreateSnapshotArgs, CreateVolumeArgs, DeleteSnapshotArgs, DeleteVolumeArgs, ExtendVolumeArgs,
    VolumeRpcClient,
};
use clinker_runtime::{Gate, GateGuard};
use clinker_types::message_field::{self as mf, Action, Detail};
use clinker_types::model::{Snapshot, Volume};
use clinker_types::request_spec::FilterProperties;
use clinker_types::{Clock, ErrorKind, RemoteError, SnapshotId, SnapshotStatus, VolumeStatus};
use serde_json::Value;

use crate::image::CreateFailure;
use crate::locks::KeyedLocks;
use crate::usage::{snapshot_payload, volume_payload};

/// Settings of a volume manager.
#[derive(Clone, Debug)]
pub struct ManagerOptions {
    /// `host@backend`.
    pub host: String,
    /// `message_ttl` seconds.
    pub message_ttl: u64,
}

/// The backend's health as the manager knows it (reported separately from
/// process liveness: the service heartbeats even when the driver is down).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendHealth {
    /// Whether the driver initialised.
    pub up: bool,
    /// Why it is down.
    pub reason: Option<String>,
}

/// One backend's volume manager.
pub struct VolumeManager {
    pub(crate) options: ManagerOptions,
    pub(crate) backend: BackendConfig,
    pub(crate) driver: Arc<dyn VolumeDriver>,
    pub(crate) db: DbHandle,
    pub(crate) scheduler_rpc: SchedulerRpcClient,
    /// Other backends' volume services (a migration's destination).
    pub(crate) volume_rpc: VolumeRpcClient,
    pub(crate) notifier: Notifier,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) gate: Gate,
    pub(crate) health: RwLock<BackendHealth>,
    pub(crate) in_flight: Mutex<HashSet<String>>,
    /// Signalled whenever a resource leaves `in_flight`.
    pub(crate) in_flight_released: tokio::sync::Notify,
    pub(crate) locks: KeyedLocks,
    pub(crate) last_stats: RwLock<Option<serde_json::Map<String, Value>>>,
    /// The image data path (`with_images`).
    pub(crate) images: Option<Arc<clinker_image::ImageTransfer>>,
    /// The image-volume cache, when on (`with_image_cache`).
    pub(crate) image_cache: Option<crate::image_cache::ImageCacheSettings>,
}

impl std::fmt::Debug for VolumeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeManager")
            .field("host", &self.options.host)
            .field("driver", &self.driver)
            .finish()
    }
}

/// Marks a resource in flight for as long as it lives.
pub(crate) struct InFlight<'a> {
    set: &'a Mutex<HashSet<String>>,
    released: &'a tokio::sync::Notify,
    key: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.key);
        }
        self.released.notify_waiters();
    }
}

pub(crate) fn volume_spec(volume: &Volume) -> VolumeSpec {
    VolumeSpec {
        id: volume.id,
        name: volume.name(),
        size_gb: volume.size,
        provider_location: volume.provider_location.clone(),
        provider_auth: volume.provider_auth.clone(),
    }
}

pub(crate) fn snapshot_spec(snapshot: &Snapshot, volume: &VolumeSpec) -> SnapshotSpec {
    let mut spec = SnapshotSpec::new(snapshot.id, volume.clone(), snapshot.volume_size);
    spec.provider_location = snapshot.provider_location.clone();
    spec
}

pub(crate) fn provider(update: ModelUpdate) -> ProviderUpdate {
    ProviderUpdate {
        provider_location: update.provider_location,
        provider_auth: update.provider_auth,
        provider_id: update.provider_id,
    }
}

pub(crate) fn db_remote(e: DbError) -> RemoteError {
    RemoteError::new(e.kind(), e.to_string())
}

impl VolumeManager {
    /// A manager for one backend.
    pub fn new(
        options: ManagerOptions,
        backend: BackendConfig,
        driver: Arc<dyn VolumeDriver>,
        db: DbHandle,
        scheduler_rpc: SchedulerRpcClient,
        notifier: Notifier,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            options,
            backend,
            // Every driver operation is counted and timed (metrics.rs).
            driver: Arc::new(crate::metered::MeteredDriver::new(driver)),
            db,
            volume_rpc: VolumeRpcClient::new(scheduler_rpc.transport(), scheduler_rpc.timeout()),
            scheduler_rpc,
            notifier,
            clock,
            gate: Gate::new(),
            health: RwLock::new(BackendHealth {
                up: false,
                reason: Some("driver not initialized yet".into()),
            }),
            in_flight: Mutex::new(HashSet::new()),
            in_flight_released: tokio::sync::Notify::new(),
            locks: KeyedLocks::default(),
            last_stats: RwLock::new(None),
            images: None,
            image_cache: None,
        }
    }

    /// `host@backend`.
    pub fn host(&self) -> &str {
        &self.options.host
    }

    /// The backend section.
    pub fn backend(&self) -> &BackendConfig {
        &self.backend
    }

    /// The driver's health.
    pub fn health(&self) -> BackendHealth {
        self.health
            .read()
            .map(|h| h.clone())
            .unwrap_or(BackendHealth {
                up: false,
                reason: None,
            })
    }

    /// The gate in-flight operations hold; shutdown closes it and waits.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    pub(crate) fn set_health(&self, up: bool, reason: Option<String>) {
        if let Ok(mut h) = self.health.write() {
            *h = BackendHealth { up, reason };
        }
    }

    /// Enters the gate and marks `key` in flight; `None` when shutting down
    /// or when the resource is already being worked on (a duplicate message).
    pub(crate) fn begin(
        &self,
        key: String,
    ) -> Result<Option<(GateGuard, InFlight<'_>)>, RemoteError> {
        let Some(guard) = self.gate.enter() else {
            return Err(RemoteError::new(
                ErrorKind::Unavailable,
                "volume service is shutting down",
            ));
        };
        let inserted = self
            .in_flight
            .lock()
            .map(|mut s| s.insert(key.clone()))
            .unwrap_or(false);
        if !inserted {
            return Ok(None);
        }
        Ok(Some((
            guard,
            InFlight {
                set: &self.in_flight,
                released: &self.in_flight_released,
                key,
            },
        )))
    }

    /// Like [`Self::begin`] for an RPC message (the hold of the methods the
    /// volume API declares `serialized_by`): when another task is
    /// working on the same resource, waits for it to finish instead of
    /// dropping the message. A delete cast right after a create committed
    /// `available` can arrive while the create's task is still publishing
    /// `volume.create.end`; dropping it as a duplicate left the volume in
    /// `deleting`. A redelivered duplicate runs after the original and finds
    /// the status already moved on (every handler checks it first).
    pub(crate) async fn begin_serialized(
        &self,
        key: String,
    ) -> Result<(GateGuard, InFlight<'_>), RemoteError> {
        loop {
            let released = self.in_flight_released.notified();
            tokio::pin!(released);
            // Registered before looking, so a release in between is seen.
            released.as_mut().enable();
            if let Some(active) = self.begin(key.clone())? {
                return Ok(active);
            }
            released.await;
        }
    }

    pub(crate) fn is_in_flight(&self, key: &str) -> bool {
        self.in_flight
            .lock()
            .map(|s| s.contains(key))
            .unwrap_or(false)
    }

    pub(crate) async fn record_message(
        &self,
        context: &RequestContext,
        project_id: &str,
        resource_type: &str,
        resource_uuid: String,
        action: Action,
        detail: Detail,
    ) {
        let message = mf::build_message(
            project_id,
            Some(&context.request_id),
            resource_type,
            Some(resource_uuid),
            action,
            detail,
            self.clock.now(),
            self.options.message_ttl,
        );
        if let Err(e) = self.db.create_message(&message).await {
            tracing::warn!(error = %e, "could not store user message");
        }
    }

    pub(crate) fn driver_ready(&self) -> Result<(), DriverError> {
        let health = self.health();
        if health.up {
            Ok(())
        } else {
            Err(DriverError::Unavailable(
                health
                    .reason
                    .unwrap_or_else(|| "driver not initialized".into()),
            ))
        }
    }

    async fn run_create(&self, volume: &Volume) -> Result<ModelUpdate, DriverError> {
        self.driver_ready()?;
        let spec = volume_spec(volume);
        if let Some(snapshot_id) = volume.snapshot_id {
            // Keep the snapshot from being deleted while it is copied.
            let _lock = self
                .locks
                .lock(&format!("{snapshot_id}-delete_snapshot"))
                .await;
            let snapshot = self.db.get_snapshot(snapshot_id).await.map_err(|e| {
                DriverError::NotFound(format!("source snapshot {snapshot_id}: {e}"))
            })?;
            // `backing-up`: the backup service reads a snapshot through a
            // temporary volume made from it (its data is unchanged).
            if !matches!(
                snapshot.status,
                SnapshotStatus::Available | SnapshotStatus::BackingUp
            ) {
                return Err(DriverError::InvalidInput(format!(
                    "source snapshot {snapshot_id} is {}",
                    snapshot.status
                )));
            }
            let source = self.db.get_volume(snapshot.volume_id).await.map_err(|e| {
                DriverError::NotFound(format!("volume of snapshot {snapshot_id}: {e}"))
            })?;
            let snap = snapshot_spec(&snapshot, &volume_spec(&source));
            return self.driver.create_volume_from_snapshot(&spec, &snap).await;
        }
        if let Some(source_id) = volume.source_volid {
            let _lock = self.locks.lock(&format!("{source_id}-delete_volume")).await;
            let source =
                self.db.get_volume(source_id).await.map_err(|e| {
                    DriverError::NotFound(format!("source volume {source_id}: {e}"))
                })?;
            return self
                .driver
                .create_cloned_volume(&spec, &volume_spec(&source))
                .await;
        }
        self.driver.create_volume(&spec).await
    }

    /// Reschedules a failed create to another backend when allowed; returns
    /// whether it did.
    async fn reschedule(
        &self,
        context: &RequestContext,
        volume: &Volume,
        args: &CreateVolumeArgs,
        failure: &DriverError,
    ) -> bool {
        let Some(mut retry) = args.filter_properties.retry.clone() else {
            return false;
        };
        if !args.allow_reschedule
            || matches!(
                failure,
                DriverError::NotFound(_) | DriverError::InvalidInput(_)
            )
        {
            return false;
        }
        // A clone or a volume from a snapshot must stay with its source.
        if volume.snapshot_id.is_some() || volume.source_volid.is_some() {
            return false;
        }
        let Some(pool) = volume.host.clone() else {
            return false;
        };
        if let Err(e) = self.driver.delete_volume(&volume_spec(volume)).await {
            tracing::warn!(volume_id = %volume.id, error = %e, "could not clean up a failed create before rescheduling");
        }
        match self.db.release_volume_placement(volume.id, &pool).await {
            Ok(true) => {}
            _ => return false,
        }
        retry.exc = Some(format!("{failure}"));
        let cast = ScheduleCreateVolumeArgs {
            request_spec: args.request_spec.clone(),
            filter_properties: FilterProperties { retry: Some(retry) },
        };
        match self.scheduler_rpc.create_volume(context, &cast).await {
            Ok(()) => {
                tracing::info!(volume_id = %volume.id, from = %pool, error = %failure, "rescheduling volume create");
                true
            }
            Err(e) => {
                tracing::warn!(volume_id = %volume.id, error = %e, "could not reach the scheduler to reschedule");
                false
            }
        }
    }

    pub(crate) async fn create_volume(
        &self,
        context: &RequestContext,
        args: CreateVolumeArgs,
    ) -> Result<(), RemoteError> {
        let volume = match self.db.get_volume(args.volume_id).await {
            Ok(v) => v,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        };
        if volume.status != VolumeStatus::Creating {
            return Ok(());
        }
        self.notifier
            .info("volume.create.start", volume_payload(&volume))
            .await;
        let created = match args.request_spec.image_id.as_deref() {
            Some(image_id) => self.create_from_image(context, &volume, image_id).await,
            None => self.run_create(&volume).await.map_err(CreateFailure::from),
        };
        // A volume from a backup (3.47): the backend made it empty, the
        // backup service fills it.
        if let (Some(backup_id), Ok(update)) = (args.request_spec.backup_id, &created) {
            return self
                .restore_into_new_volume(context, &volume, backup_id, update.clone())
                .await;
        }
        let outcome = match created {
            Ok(update) => match self
                .db
                .finish_volume_create(volume.id, provider(update.clone()))
                .await
            {
                Ok(launched_at) => {
                    // Cinder's "Created volume successfully." (info, with
                    // the request's ids from the RPC span).
                    tracing::info!(volume_id = %volume.id, backend = %self.host(), "created volume successfully");
                    let done = Volume {
                        status: VolumeStatus::Available,
                        launched_at: Some(launched_at),
                        updated_at: Some(launched_at),
                        provider_location: update.provider_location,
                        provider_auth: update.provider_auth,
                        provider_id: update.provider_id,
                        ..volume.clone()
                    };
                    self.notifier
                        .info("volume.create.end", volume_payload(&done))
                        .await;
                    Ok(())
                }
                // Deleted by force while being created: the delete that
                // did it removes the backend object.
                Err(DbError::InvalidState(_) | DbError::NotFound { .. }) => Ok(()),
                Err(e) => Err(db_remote(e)),
            },
            Err(CreateFailure {
                error: failure,
                message,
                reschedulable,
            }) => {
                tracing::warn!(volume_id = %volume.id, error = %failure, "volume create failed");
                if reschedulable && self.reschedule(context, &volume, &args, &failure).await {
                    return Ok(());
                }
                let (action, detail) =
                    if matches!(failure, DriverError::Unavailable(_)) && !self.health().up {
                        (mf::SCHEDULE_ALLOCATE_VOLUME, mf::DRIVER_NOT_INITIALIZED)
                    } else {
                        message.unwrap_or((mf::SCHEDULE_ALLOCATE_VOLUME, mf::DRIVER_FAILED_CREATE))
                    };
                match self.db.fail_volume_create(volume.id).await {
                    Ok(failed) => {
                        self.record_message(
                            context,
                            &volume.project_id,
                            mf::RESOURCE_VOLUME,
                            volume.id.to_string(),
                            action,
                            detail,
                        )
                        .await;
                        self.notifier
                            .error("volume.create.error", volume_payload(&failed))
                            .await;
                        Ok(())
                    }
                    Err(DbError::InvalidState(_) | DbError::NotFound { .. }) => Ok(()),
                    Err(e) => Err(db_remote(e)),
                }
            }
        };
        // A group created from a source is done when its last volume is.
        self.settle_group_member(volume.group_id.as_deref()).await;
        outcome
    }

    /// Deletes a volume whose row is `deleting` (also the resume path after
    /// a restart).
    pub(crate) async fn delete_volume(
        &self,
        context: &RequestContext,
        args: DeleteVolumeArgs,
    ) -> Result<(), RemoteError> {
        let DeleteVolumeArgs { volume_id, cascade } = args;
        let volume = match self.db.get_volume(volume_id).await {
            Ok(v) => v,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        };
        if volume.status != VolumeStatus::Deleting {
            return Ok(());
        }
        let _lock = self.locks.lock(&format!("{volume_id}-delete_volume")).await;
        if cascade {
            let snapshots = self
                .db
                .snapshots_of_volume(volume_id)
                .await
                .map_err(db_remote)?;
            for snapshot in snapshots
                .into_iter()
                .filter(|s| s.status == SnapshotStatus::Deleting)
            {
                let args = DeleteSnapshotArgs {
                    snapshot_id: snapshot.id,
                };
                self.delete_snapshot(context, args).await?;
            }
        }
        self.notifier
            .info("volume.delete.start", volume_payload(&volume))
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
            self.driver.delete_volume(&spec).await
        }
        .await;
        match outcome {
            Ok(()) => match self.db.finish_volume_delete(volume_id).await {
                Ok(gone) => {
                    self.notifier
                        .info("volume.delete.end", volume_payload(&gone))
                        .await;
                    Ok(())
                }
                Err(DbError::NotFound { .. }) => Ok(()),
                Err(e) => Err(db_remote(e)),
            },
            Err(failure) => {
                let busy = matches!(failure, DriverError::Busy(_));
                tracing::warn!(volume_id = %volume_id, error = %failure, busy, "volume delete failed");
                self.db
                    .fail_volume_delete(volume_id, busy)
                    .await
                    .map_err(db_remote)?;
                self.record_message(
                    context,
                    &volume.project_id,
                    mf::RESOURCE_VOLUME,
                    volume_id.to_string(),
                    mf::DELETE_VOLUME,
                    if busy {
                        mf::VOLUME_INVALID_STATE
                    } else {
                        mf::DRIVER_FAILED_DELETE
                    },
                )
                .await;
                Ok(())
            }
        }
    }

    /// The snapshot when it is in `status`, with its driver spec, after
    /// publishing `start_event`; `None` when it is gone or has moved on (a
    /// duplicate message). Callers hold the snapshot's delete lock.
    pub(crate) async fn snapshot_in(
        &self,
        snapshot_id: SnapshotId,
        status: SnapshotStatus,
        start_event: &str,
    ) -> Result<Option<(Snapshot, SnapshotSpec)>, RemoteError> {
        let snapshot = match self.db.get_snapshot(snapshot_id).await {
            Ok(s) => s,
            Err(DbError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(db_remote(e)),
        };
        if snapshot.status != status {
            return Ok(None);
        }
        let volume = self
            .db
            .get_volume(snapshot.volume_id)
            .await
            .map_err(db_remote)?;
        self.notifier
            .info(start_event, snapshot_payload(&snapshot))
            .await;
        let spec = snapshot_spec(&snapshot, &volume_spec(&volume));
        Ok(Some((snapshot, spec)))
    }

    pub(crate) async fn delete_snapshot(
        &self,
        context: &RequestContext,
        args: DeleteSnapshotArgs,
    ) -> Result<(), RemoteError> {
        let snapshot_id = args.snapshot_id;
        let _lock = self
            .locks
            .lock(&format!("{snapshot_id}-delete_snapshot"))
            .await;
        let Some((snapshot, spec)) = self
            .snapshot_in(
                snapshot_id,
                SnapshotStatus::Deleting,
                "snapshot.delete.start",
            )
            .await?
        else {
            return Ok(());
        };
        let outcome = async {
            self.driver_ready()?;
            self.driver.delete_snapshot(&spec).await
        }
        .await;
        match outcome {
            Ok(()) => {
                let gone = self
                    .db
                    .finish_snapshot_delete(snapshot_id)
                    .await
                    .map_err(db_remote)?;
                self.notifier
                    .info("snapshot.delete.end", snapshot_payload(&gone))
                    .await;
            }
            Err(failure) => {
                let busy = matches!(failure, DriverError::Busy(_));
                tracing::warn!(snapshot_id = %snapshot_id, error = %failure, "snapshot delete failed");
                self.db
                    .fail_snapshot_delete(snapshot_id, busy)
                    .await
                    .map_err(db_remote)?;
                self.record_message(
                    context,
                    &snapshot.project_id,
                    mf::RESOURCE_SNAPSHOT,
                    snapshot_id.to_string(),
                    mf::SNAPSHOT_DELETE,
                    if busy {
                        mf::SNAPSHOT_IS_BUSY
                    } else {
                        mf::SNAPSHOT_DELETE_ERROR
                    },
                )
                .await;
            }
        }
        Ok(())
    }

    pub(crate) async fn create_snapshot(
        &self,
        context: &RequestContext,
        args: CreateSnapshotArgs,
    ) -> Result<(), RemoteError> {
        let snapshot_id = args.snapshot_id;
        let snapshot = match self.db.get_snapshot(snapshot_id).await {
            Ok(s) => s,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        };
        if snapshot.status != SnapshotStatus::Creating {
            return Ok(());
        }
        let volume = self
            .db
            .get_volume(snapshot.volume_id)
            .await
            .map_err(db_remote)?;
        self.notifier
            .info("snapshot.create.start", snapshot_payload(&snapshot))
            .await;
        let spec = snapshot_spec(&snapshot, &volume_spec(&volume));
        let outcome = async {
            self.driver_ready()?;
            self.driver.create_snapshot(&spec).await
        }
        .await;
        match outcome {
            Ok(update) => match self
                .db
                .finish_snapshot_create(snapshot_id, update.provider_location)
                .await
            {
                Ok(done) => {
                    self.notifier
                        .info("snapshot.create.end", snapshot_payload(&done))
                        .await
                }
                Err(DbError::InvalidState(_) | DbError::NotFound { .. }) => {}
                Err(e) => return Err(db_remote(e)),
            },
            Err(failure) => {
                tracing::warn!(snapshot_id = %snapshot_id, error = %failure, "snapshot create failed");
                match self.db.fail_snapshot_create(snapshot_id).await {
                    Ok(_) | Err(DbError::InvalidState(_) | DbError::NotFound { .. }) => {}
                    Err(e) => return Err(db_remote(e)),
                }
                self.record_message(
                    context,
                    &snapshot.project_id,
                    mf::RESOURCE_SNAPSHOT,
                    snapshot_id.to_string(),
                    mf::SNAPSHOT_CREATE,
                    mf::SNAPSHOT_CREATE_ERROR,
                )
                .await;
            }
        }
        Ok(())
    }

    pub(crate) async fn extend_volume(
        &self,
        context: &RequestContext,
        args: ExtendVolumeArgs,
    ) -> Result<(), RemoteError> {
        let ExtendVolumeArgs {
            volume_id,
            new_size,
        } = args;
        let volume = match self.db.get_volume(volume_id).await {
            Ok(v) => v,
            Err(DbError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(db_remote(e)),
        };
        if volume.status != VolumeStatus::Extending {
            return Ok(());
        }
        self.notifier
            .info("volume.resize.start", volume_payload(&volume))
            .await;
        let outcome = async {
            self.driver_ready()?;
            self.driver
                .extend_volume(&volume_spec(&volume), new_size)
                .await
        }
        .await;
        match outcome {
            Ok(()) => {
                let done = self
                    .db
                    .finish_volume_extend(volume_id, new_size)
                    .await
                    .map_err(db_remote)?;
                self.notifier
                    .info("volume.resize.end", volume_payload(&done))
                    .await;
            }
            Err(failure) => {
                tracing::warn!(volume_id = %volume_id, error = %failure, "volume extend failed");
                self.db
                    .fail_volume_extend(volume_id, new_size)
                    .await
                    .map_err(db_remote)?;
                self.record_message(
                    context,
                    &volume.project_id,
                    mf::RESOURCE_VOLUME,
                    volume_id.to_string(),
                    mf::EXTEND_VOLUME,
                    mf::DRIVER_FAILED_EXTEND,
                )
                .await;
            }
        }
        Ok(())
    }
}

// The volume RPC API is served by the inherent methods of the same names,
// here and in `attach.rs`, `groups.rs`, `manage.rs`, `migration.rs`,
// `retype.rs`, `revert.rs` and `stats.rs`. A message of a method declared
// `serialized_by` first waits in `begin_serialized` for any other task on
// the same resource; the methods themselves claim nothing, so recovery and
// group operations, which already hold the resource, call them directly.
clinker_rpc::serve_volume_api!(VolumeManager, hold = begin_serialized);

#[cfg(test)]
mod in_flight_tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use clinker_db::DeleteOptions;
    use clinker_rpc::volume::{DeleteVolumeArgs, VolumeEndpoint};
    use clinker_rpc::{RequestContext, RpcHandler, RpcMessage, Version};

    use crate::test_support::{TestDriver, TestManager};

    /// A delete that arrives while another task still works on the same
    /// volume (the create publishing `volume.create.end` after committing
    /// `available`) waits for it and then runs; it was once dropped as a
    /// duplicate, leaving the volume in `deleting` until a restart.
    #[tokio::test]
    async fn a_delete_behind_an_in_flight_task_runs_after_it() {
        let t = TestManager::new(TestDriver::Fake).await;
        let id = t.volume("__DEFAULT__").await;
        let busy = t.manager.begin(id.to_string()).unwrap().unwrap();
        t.db.begin_volume_delete(id, DeleteOptions::default())
            .await
            .unwrap();
        let endpoint = VolumeEndpoint::new(t.manager.clone());
        let message = RpcMessage {
            method: "delete_volume".into(),
            version: Version::new(3, 0),
            args: serde_json::to_value(DeleteVolumeArgs {
                volume_id: id,
                cascade: false,
            })
            .unwrap(),
            context: RequestContext::internal("test"),
        };
        let delete = endpoint.handle(message);
        tokio::pin!(delete);
        // It waits while the other task holds the volume...
        assert!(
            tokio::time::timeout(Duration::from_millis(100), delete.as_mut())
                .await
                .is_err()
        );
        assert!(t.db.volume_exists(id).await.unwrap());
        // ...and deletes it once that task is done.
        drop(busy);
        tokio::time::timeout(Duration::from_secs(10), delete)
            .await
            .unwrap()
            .unwrap();
        assert!(!t.db.volume_exists(id).await.unwrap());
    }

    /// Two messages for different resources never wait for each other.
    #[tokio::test]
    async fn other_resources_do_not_wait() {
        let t = TestManager::new(TestDriver::Fake).await;
        let _busy = t.manager.begin("a".into()).unwrap().unwrap();
        let other = tokio::time::timeout(
            Duration::from_secs(5),
            t.manager.begin_serialized("b".into()),
        )
        .await
        .unwrap();
        assert!(other.is_ok());
    }
}
