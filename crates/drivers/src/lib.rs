//! Volume drivers: the backend adapters of Clinker.
//!
//! [`VolumeDriver`] is Cinder's driver interface (create, delete, snapshot,
//! clone, extend, export, connection, stats) reduced to what the volume
//! manager calls. Drivers never touch the database or the bus (the manager
//! does), and never spawn processes themselves: an injected
//! [`clinker_exec::CommandRunner`] does.
//!
//! Block drivers (`lvm`, `file`) export volumes through a
//! [`targets::TargetHelper`] (tgtd, LIO or a fake one) composed at build time
//! from the backend's `target_helper` option, as Cinder's drivers compose
//! `cinder/volume/targets/*`.
//!
//! Depends on `clinker-types`, `clinker-config` and `clinker-exec`.

pub mod fake;
pub mod file;
pub mod lvm;
pub mod manage;
pub mod rbd;
mod retype;
pub mod targets;
#[cfg(test)]
mod testing;

use std::sync::Arc;

use clinker_config::{BackendConfig, DriverConfig};
use clinker_exec::{CommandRunner, ExecError};
use clinker_types::connection::{ConnectionInfo, Connector};
use clinker_types::{ErrorKind, SnapshotId, VolumeId};
use serde_json::{Map, Value};

pub use manage::{ManageRef, ManageableObject};
pub use retype::RetypeDiff;

/// Why a driver operation failed, classified where it arose.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DriverError {
    /// The backend object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The object is in use (has dependants, is exported); Cinder's
    /// `VolumeIsBusy` / `SnapshotIsBusy`.
    #[error("{0}")]
    Busy(String),
    /// The backend is out of space.
    #[error("{0}")]
    NoSpace(String),
    /// An object of that name already exists and is not the one asked for.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request cannot be honoured by this backend.
    #[error("{0}")]
    InvalidInput(String),
    /// The backend cannot be reached or is not set up.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else the backend reported.
    #[error("{0}")]
    Backend(String),
    /// The driver does not implement this optional capability (Cinder's
    /// `NotImplementedError`); the caller falls back or refuses, and
    /// nothing was changed.
    #[error("{0}")]
    NotSupported(String),
}

impl DriverError {
    /// The classification.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DriverError::NotFound(_) => ErrorKind::NotFound,
            DriverError::Busy(_) => ErrorKind::InvalidState,
            DriverError::NoSpace(_) => ErrorKind::Unavailable,
            DriverError::AlreadyExists(_) => ErrorKind::Conflict,
            DriverError::InvalidInput(_) => ErrorKind::InvalidInput,
            DriverError::Unavailable(_) => ErrorKind::Unavailable,
            DriverError::Backend(_) => ErrorKind::Internal,
            DriverError::NotSupported(_) => ErrorKind::NotImplemented,
        }
    }
}

impl From<ExecError> for DriverError {
    fn from(e: ExecError) -> Self {
        match e.kind() {
            ErrorKind::Unavailable => DriverError::Unavailable(e.to_string()),
            _ => DriverError::Backend(e.to_string()),
        }
    }
}

/// What a driver needs to know about a volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeSpec {
    /// The volume id.
    pub id: VolumeId,
    /// `volume-<uuid>`.
    pub name: String,
    /// Size in GiB.
    pub size_gb: i64,
    /// What the driver stored at create time.
    pub provider_location: Option<String>,
    /// Export credentials the driver stored.
    pub provider_auth: Option<String>,
}

impl VolumeSpec {
    /// The spec of a volume with the standard name.
    pub fn new(id: VolumeId, size_gb: i64) -> Self {
        Self {
            id,
            name: clinker_types::model::volume_name(id),
            size_gb,
            provider_location: None,
            provider_auth: None,
        }
    }
}

/// What a driver needs to know about a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotSpec {
    /// The snapshot id.
    pub id: SnapshotId,
    /// `snapshot-<uuid>`.
    pub name: String,
    /// Its source volume.
    pub volume: VolumeSpec,
    /// Size in GiB (the volume's size when taken).
    pub size_gb: i64,
    /// What the driver stored at create time.
    pub provider_location: Option<String>,
}

impl SnapshotSpec {
    /// The spec of a snapshot with the standard name.
    pub fn new(id: SnapshotId, volume: VolumeSpec, size_gb: i64) -> Self {
        Self {
            id,
            name: clinker_types::model::snapshot_name(id),
            volume,
            size_gb,
            provider_location: None,
        }
    }
}

/// Fields a driver asks the manager to store on the volume or snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelUpdate {
    /// `provider_location`.
    pub provider_location: Option<String>,
    /// `provider_auth`.
    pub provider_auth: Option<String>,
    /// `provider_id`.
    pub provider_id: Option<String>,
}

/// A volume as a local file or block device (see
/// [`VolumeDriver::local_device`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalDevice {
    /// The file or device.
    pub path: std::path::PathBuf,
    /// A volume just created by [`VolumeDriver::create_volume`] reads as
    /// zeros without being written (a sparse file, a thin LV): writers may
    /// skip zero blocks.
    pub new_reads_as_zero: bool,
}

/// See [`VolumeDriver::image_sink`].
#[async_trait::async_trait]
pub trait ImageSink: Send {
    /// Where the bytes go.
    fn writer(&mut self) -> &mut (dyn tokio::io::AsyncWrite + Send + Unpin);

    /// Ends the stream and makes the volume whole (its size).
    ///
    /// # Errors
    /// The backend's: the volume then holds nothing usable.
    async fn finish(self: Box<Self>) -> Result<(), DriverError>;

    /// Gives the stream up after the data failed: whatever the sink made
    /// on the side is removed, and an existing volume is left as it was
    /// where the backend can. The default just drops it.
    async fn abort(self: Box<Self>) {}
}

/// A Glance image as [`VolumeDriver::clone_image`] sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageLocations {
    /// The image id (for logs).
    pub image_id: String,
    /// Its `disk_format` (only `raw` images can be cloned).
    pub disk_format: Option<String>,
    /// Where its data is stored: the `locations` Glance shows, then its
    /// `direct_url` (Cinder's `get_location`), whatever their scheme.
    pub urls: Vec<String>,
}

/// A volume's raw bytes, streamed by the backend (see
/// [`VolumeDriver::image_source`]).
pub struct ImageSource {
    /// The bytes from offset 0.
    pub reader: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    /// How many bytes the reader yields: the volume's size.
    pub length: u64,
    /// Waits for the producer once the reader was read to its end or
    /// dropped, and says whether it succeeded.
    pub finish:
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), DriverError>> + Send>>,
}

impl std::fmt::Debug for ImageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageSource")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

/// A backend driver.
#[async_trait::async_trait]
pub trait VolumeDriver: Send + Sync + std::fmt::Debug {
    /// Short name for logs (`file`, `fake`, `lvm`, `rbd`).
    fn driver_name(&self) -> &'static str;

    /// One-time set-up (create directories, connect to the cluster).
    async fn do_setup(&self) -> Result<(), DriverError>;

    /// Verifies the backend is usable; a failure leaves the backend down
    /// with this error as the reason.
    async fn check_for_setup_error(&self) -> Result<(), DriverError>;

    /// The capability report: backend keys and a `pools` list.
    async fn get_volume_stats(&self) -> Result<Map<String, Value>, DriverError>;

    /// Creates a blank volume. Must be idempotent for a redelivered request.
    async fn create_volume(&self, volume: &VolumeSpec) -> Result<ModelUpdate, DriverError>;

    /// Creates a volume holding a snapshot's data (grown to the volume's size).
    async fn create_volume_from_snapshot(
        &self,
        volume: &VolumeSpec,
        snapshot: &SnapshotSpec,
    ) -> Result<ModelUpdate, DriverError>;

    /// Creates a volume holding another volume's data.
    async fn create_cloned_volume(
        &self,
        volume: &VolumeSpec,
        source: &VolumeSpec,
    ) -> Result<ModelUpdate, DriverError>;

    /// Deletes a volume; an absent volume is success (deletes are resumed
    /// after crashes and must be idempotent).
    async fn delete_volume(&self, volume: &VolumeSpec) -> Result<(), DriverError>;

    /// Grows a volume to `new_size_gb`.
    async fn extend_volume(&self, volume: &VolumeSpec, new_size_gb: i64)
    -> Result<(), DriverError>;

    /// Takes a snapshot.
    async fn create_snapshot(&self, snapshot: &SnapshotSpec) -> Result<ModelUpdate, DriverError>;

    /// Deletes a snapshot; an absent one is success.
    async fn delete_snapshot(&self, snapshot: &SnapshotSpec) -> Result<(), DriverError>;

    /// Exports a volume for attachment (target creation, CHAP credentials).
    async fn create_export(
        &self,
        volume: &VolumeSpec,
        connector: &Connector,
    ) -> Result<ModelUpdate, DriverError>;

    /// Re-creates the export of an attached volume after a restart.
    async fn ensure_export(&self, volume: &VolumeSpec) -> Result<(), DriverError>;

    /// Removes the export (last detach, delete).
    async fn remove_export(&self, volume: &VolumeSpec) -> Result<(), DriverError>;

    /// Returns how the connector's host reaches the volume.
    async fn initialize_connection(
        &self,
        volume: &VolumeSpec,
        connector: &Connector,
    ) -> Result<ConnectionInfo, DriverError>;

    /// Ends one host's connection.
    async fn terminate_connection(
        &self,
        volume: &VolumeSpec,
        connector: Option<&Connector>,
    ) -> Result<(), DriverError>;

    /// Names of the volume objects on the backend, for reconciling rows and
    /// objects at start-up; `None` when the driver cannot list them.
    async fn list_volume_names(&self) -> Result<Option<Vec<String>>, DriverError>;

    /// Checks that a connector carries what this driver's exports need
    /// (Cinder's `validate_connector`: the iSCSI helpers need `initiator`).
    ///
    /// # Errors
    /// [`DriverError::InvalidInput`] naming the missing key.
    fn validate_connector(&self, _connector: &Connector) -> Result<(), DriverError> {
        Ok(())
    }

    /// The volume as a file or block device this host can open for image
    /// data (create from image, upload to image): Cinder's `local_path`.
    /// `None` when the backend has no local path for it (the manager then
    /// refuses image operations on this backend). The default is `None`.
    ///
    /// # Errors
    /// [`DriverError::InvalidInput`] for a name the driver refuses.
    async fn local_device(&self, _volume: &VolumeSpec) -> Result<Option<LocalDevice>, DriverError> {
        Ok(None)
    }

    /// For backends without a [`Self::local_device`]: a stream that
    /// replaces the content of `volume` (just made by
    /// [`Self::create_volume`]) with raw disk bytes written from offset 0,
    /// the rest of the volume reading as zeros (`rbd import -`). `None`
    /// when the backend has no such stream. The default is `None`.
    ///
    /// # Errors
    /// The backend's, starting the stream.
    async fn image_sink(
        &self,
        _volume: &VolumeSpec,
    ) -> Result<Option<Box<dyn ImageSink>>, DriverError> {
        Ok(None)
    }

    /// Like [`Self::image_sink`], but into an existing volume whose
    /// snapshots (and their clones) must stay as they are (reimage): the
    /// volume's data is replaced by the bytes written, the rest reading as
    /// zeros. `None` when the backend has no such stream. The default is
    /// `None`.
    ///
    /// # Errors
    /// The backend's, starting the stream.
    async fn image_overwrite_sink(
        &self,
        _volume: &VolumeSpec,
    ) -> Result<Option<Box<dyn ImageSink>>, DriverError> {
        Ok(None)
    }

    /// For backends without a [`Self::local_device`]: the volume's raw
    /// bytes as a stream (upload to image: `rbd export -`). `None` when the
    /// backend has no such stream. The default is `None`.
    ///
    /// # Errors
    /// [`DriverError::NotFound`] when the volume is gone; the backend's,
    /// starting the stream.
    async fn image_source(&self, _volume: &VolumeSpec) -> Result<Option<ImageSource>, DriverError> {
        Ok(None)
    }

    /// Makes `volume` (not created yet) from the image's data where the
    /// backend already stores it, without moving data (Cinder's
    /// `clone_image`: the RBD driver clones a `rbd://fsid/pool/image/snap`
    /// location on its own cluster). `None` when it cannot, and nothing
    /// was made: the manager then creates the volume and copies the image
    /// into it. The default is `None`.
    ///
    /// # Errors
    /// The backend's, after which nothing of the volume is left.
    async fn clone_image(
        &self,
        _volume: &VolumeSpec,
        _image: &ImageLocations,
    ) -> Result<Option<ModelUpdate>, DriverError> {
        Ok(None)
    }

    /// Whether hosts may discard (unmap) blocks of this backend's volumes:
    /// the manager then adds `discard: true` to the connection info, as
    /// Cinder does for `report_discard_supported` (drivers that know the
    /// answer themselves put `discard` in their connection data instead).
    fn report_discard_supported(&self) -> bool {
        false
    }

    /// Reverts `volume` to `snapshot`, its latest snapshot, in place: after
    /// success the volume holds the snapshot's data.
    ///
    /// The default answers [`DriverError::NotSupported`] without touching
    /// anything, which makes the manager use Cinder's generic fallback
    /// where one exists (see `VolumeManager::revert_to_snapshot`). Native
    /// reverts this trait leaves to the drivers that can: the file driver
    /// copies the snapshot file back; LVM would `lvconvert --merge` a
    /// thick snapshot (consuming it, so Cinder re-creates it) and RBD would
    /// `rbd snap rollback`.
    ///
    /// # Errors
    /// [`DriverError::NotSupported`] by default; backend failures.
    async fn revert_to_snapshot(
        &self,
        volume: &VolumeSpec,
        snapshot: &SnapshotSpec,
    ) -> Result<(), DriverError> {
        let _ = (volume, snapshot);
        Err(DriverError::NotSupported(format!(
            "the {} driver cannot revert a volume to a snapshot in place",
            self.driver_name()
        )))
    }

    /// Changes a volume's type on the backend without moving it; returns
    /// whether it did (Cinder's `retype`, whose base driver declines).
    ///
    /// The default accepts a retype whose differences are all
    /// [`RetypeDiff::is_backend_neutral`] (there is nothing to change on the
    /// backend) and declines any other, so the manager needs a migration.
    ///
    /// # Errors
    /// Backend failures (the manager treats them as a decline).
    async fn retype(&self, volume: &VolumeSpec, diff: &RetypeDiff) -> Result<bool, DriverError> {
        let _ = volume;
        Ok(diff.is_backend_neutral())
    }

    /// Finishes a migration on the destination backend (Cinder's
    /// `update_migrated_volume`): `new_volume`, the temporary volume that
    /// now holds the data, takes `volume`'s backend name, so the migrated
    /// volume keeps its id and its object name. Returns the provider
    /// fields the volume gets.
    ///
    /// Must be idempotent (a completion interrupted by a crash is run
    /// again): when `new_volume`'s object is gone and `volume`'s exists, the
    /// rename already happened. Must never replace an existing object of
    /// `volume`'s name that is not the renamed one (two backends sharing
    /// one storage): that is [`DriverError::AlreadyExists`], and the
    /// migration fails with nothing lost.
    ///
    /// The default answers [`DriverError::NotSupported`] (Cinder would keep
    /// the temporary name in `_name_id`, which Clinker does not have): the
    /// migration then fails cleanly and the temporary volume is deleted.
    ///
    /// # Errors
    /// [`DriverError::NotSupported`] by default, [`DriverError::NotFound`]
    /// when neither object exists, backend failures.
    async fn update_migrated_volume(
        &self,
        volume: &VolumeSpec,
        new_volume: &VolumeSpec,
    ) -> Result<ModelUpdate, DriverError> {
        let _ = (volume, new_volume);
        Err(DriverError::NotSupported(format!(
            "the {} driver cannot rename a migrated volume",
            self.driver_name()
        )))
    }

    /// The size in GiB (rounded up) of the backend object `reference`
    /// names, to be managed as `volume` (Cinder's
    /// `manage_existing_get_size`). Changes nothing.
    ///
    /// # Errors
    /// [`DriverError::InvalidInput`] for a reference the driver cannot
    /// use or that names nothing (Cinder's
    /// `ManageExistingInvalidReference`); [`DriverError::NotSupported`] by
    /// default.
    async fn manage_existing_get_size(
        &self,
        volume: &VolumeSpec,
        reference: &ManageRef,
    ) -> Result<i64, DriverError> {
        let _ = (volume, reference);
        Err(manage::not_supported(self.driver_name(), "volume"))
    }

    /// Takes the backend object `reference` names under management as
    /// `volume`, renaming it to `volume.name` where the backend names its
    /// objects (Cinder's LVM driver does; the object then looks exactly
    /// like a volume this driver created).
    ///
    /// # Errors
    /// As [`VolumeDriver::manage_existing_get_size`], and failures of the
    /// rename.
    async fn manage_existing(
        &self,
        volume: &VolumeSpec,
        reference: &ManageRef,
    ) -> Result<ModelUpdate, DriverError> {
        let _ = (volume, reference);
        Err(manage::not_supported(self.driver_name(), "volume"))
    }

    /// The size in GiB of the backend snapshot `reference` names.
    ///
    /// # Errors
    /// As [`VolumeDriver::manage_existing_get_size`].
    async fn manage_existing_snapshot_get_size(
        &self,
        snapshot: &SnapshotSpec,
        reference: &ManageRef,
    ) -> Result<i64, DriverError> {
        let _ = (snapshot, reference);
        Err(manage::not_supported(self.driver_name(), "snapshot"))
    }

    /// Takes the backend snapshot `reference` names under management as
    /// `snapshot` (renamed to the snapshot's own backend name).
    ///
    /// # Errors
    /// As [`VolumeDriver::manage_existing`].
    async fn manage_existing_snapshot(
        &self,
        snapshot: &SnapshotSpec,
        reference: &ManageRef,
    ) -> Result<ModelUpdate, DriverError> {
        let _ = (snapshot, reference);
        Err(manage::not_supported(self.driver_name(), "snapshot"))
    }

    /// The backend objects that could be managed as volumes, unsorted;
    /// those whose name carries one of `managed_ids` are marked "already
    /// managed". The default lists nothing, as Cinder answers for drivers
    /// without the method.
    ///
    /// # Errors
    /// Backend failures.
    async fn get_manageable_volumes(
        &self,
        managed_ids: &std::collections::HashSet<String>,
    ) -> Result<Vec<ManageableObject>, DriverError> {
        let _ = managed_ids;
        Ok(Vec::new())
    }

    /// The backend objects that could be managed as snapshots (see
    /// [`VolumeDriver::get_manageable_volumes`]).
    ///
    /// # Errors
    /// Backend failures.
    async fn get_manageable_snapshots(
        &self,
        managed_ids: &std::collections::HashSet<String>,
    ) -> Result<Vec<ManageableObject>, DriverError> {
        let _ = managed_ids;
        Ok(Vec::new())
    }

    /// Lets go of a volume: its data stays on the backend, under the
    /// returned name (Cinder's `unmanage`, a no-op for most drivers).
    /// The manager records that name so the orphan sweep never removes
    /// it.
    ///
    /// # Errors
    /// Backend failures.
    async fn unmanage(&self, volume: &VolumeSpec) -> Result<String, DriverError> {
        Ok(volume.name.clone())
    }

    /// Lets go of a snapshot; returns the name its data stays under.
    ///
    /// # Errors
    /// Backend failures.
    async fn unmanage_snapshot(&self, snapshot: &SnapshotSpec) -> Result<String, DriverError> {
        Ok(snapshot.name.clone())
    }

    /// Makes the backend's exports match `exported` (the volumes that should
    /// be exported, with their stored `provider_auth`): removes targets of
    /// ours that no volume needs and re-creates missing ones. Called once at
    /// start-up; `None` when the driver has no exports to reconcile.
    async fn reconcile_exports(
        &self,
        _exported: &[VolumeSpec],
    ) -> Result<Option<targets::ReconcileReport>, DriverError> {
        Ok(None)
    }
}

/// Builds the driver a backend section asks for.
///
/// # Errors
/// A driver that cannot be built from its options.
pub fn build_driver(
    backend: &BackendConfig,
    runner: Arc<dyn CommandRunner>,
) -> Result<Arc<dyn VolumeDriver>, DriverError> {
    let target = targets::build_target_helper(&backend.target, runner.clone())?;
    match &backend.driver {
        DriverConfig::File(options) => Ok(Arc::new(
            file::FileDriver::new(backend, options.clone(), runner).with_target(target),
        )),
        DriverConfig::Fake(options) => {
            Ok(Arc::new(fake::FakeDriver::new(backend, options.clone())))
        }
        DriverConfig::Lvm(options) => {
            let Some(target) = target else {
                return Err(DriverError::InvalidInput(format!(
                    "backend {}: the lvm driver needs a target_helper",
                    backend.name
                )));
            };
            Ok(Arc::new(lvm::LvmDriver::new(
                backend,
                options.clone(),
                runner,
                target,
            )))
        }
        DriverConfig::Rbd(options) => Ok(Arc::new(rbd::RbdDriver::new(
            backend,
            options.clone(),
            runner,
        ))),
    }
}

/// Resolves `max_over_subscription_ratio` for a report: a fixed ratio as
/// configured; `auto` as Cinder's `calculate_max_over_subscription_ratio`
/// does (`1 + provisioned / (used + 1)`, or 20 while nothing is provisioned;
/// 1 for pools without thin provisioning).
pub fn resolve_over_subscription(
    configured: clinker_config::OverSubscription,
    thin: bool,
    total_gb: f64,
    free_gb: f64,
    provisioned_gb: f64,
) -> f64 {
    match configured {
        clinker_config::OverSubscription::Ratio(r) => r,
        clinker_config::OverSubscription::Auto if !thin => 1.0,
        clinker_config::OverSubscription::Auto if provisioned_gb == 0.0 => 20.0,
        clinker_config::OverSubscription::Auto => {
            let used = total_gb - free_gb;
            1.0 + provisioned_gb / (used + 1.0)
        }
    }
}

/// This machine's host name (Cinder's `socket.gethostname()`), for
/// `location_info`.
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The GiB in bytes.
pub const GIB: u64 = 1 << 30;

/// Formats a capacity in GiB with two decimals, as drivers report it.
pub fn gib(bytes: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)] // capacities are far below 2^52 bytes
    let gb = bytes as f64 / GIB as f64;
    (gb * 100.0).round() / 100.0
}
