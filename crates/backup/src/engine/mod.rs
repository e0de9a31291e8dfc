//! The chunked backup engine: Cinder's `ChunkedBackupDriver` (backup,
//! restore, delete) over any [`ObjectStore`].
//!
//! A backup reads the volume in object-size pieces (`backup_file_size`,
//! `backup_s3_object_size`, `backup_swift_object_size`), so memory stays
//! within a few objects whatever the volume's size: each piece is worked
//! on in segments on every CPU while it is read (`pieces.rs`), up to
//! `parallelism` pieces are in flight, and their objects are stored
//! while the next is read (small ones many at a time). The sha256file and then the
//! metadata object are written last, so a backup whose metadata exists is
//! complete; one that fails or is cancelled has its objects deleted again.
//! The volume is a local path or an RBD image (`volume.rs`).

mod backup;
mod pieces;
mod restore;
mod volume;
pub(crate) mod zeros;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clinker_exec::CommandRunner;
use clinker_runtime::CancellationToken;

use crate::ceph::cli::Cli;
use crate::compression::Compression;
use crate::error::BackupError;
use crate::format::{self, ObjectNaming, Sha256File};
use crate::store::ObjectStore;

pub use backup::{BackupOutcome, BackupRequest, ParentBackup, PreparedBackup};
pub use pieces::SEGMENT_BYTES;
pub use restore::{FileWriter, RestoreOutcome, VolumeWriter};

/// The parameters of a chunked driver (Cinder's constructor arguments).
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Bytes of the volume per data object (and per read).
    pub chunk_size: u64,
    /// Bytes per SHA-256 of the sha256file; divides `chunk_size`.
    pub sha_block_size: u64,
    /// `backup_compression_algorithm`.
    pub compression: Compression,
    /// `backup_create_containers`.
    pub create_containers: bool,
    /// Container and prefix naming of the driver.
    pub naming: ObjectNaming,
    /// Pieces in flight at once (read, hashed/compressed, stored); memory
    /// is about `2 × parallelism × chunk_size`.
    pub parallelism: usize,
}

/// Objects stored (backup) or fetched ahead (restore) at once at most,
/// within [`EngineSettings::in_flight_bytes`]: small objects (an
/// incremental's changed runs) go many at a time, so their syncs share the
/// file system's journal commits.
const MAX_OBJECTS_IN_FLIGHT: usize = 16;

impl EngineSettings {
    /// Bytes of objects in flight at once: `parallelism` objects' worth
    /// (one object always goes, whatever its size).
    pub(crate) fn in_flight_bytes(&self) -> u64 {
        self.chunk_size
            .saturating_mul(u64::try_from(self.parallelism.max(1)).unwrap_or(1))
    }

    /// A parallelism that keeps the pieces in flight within ~512 MiB and
    /// the CPUs busy: Cinder's 2 GB POSIX objects get 1, 50 MiB objects up
    /// to 4.
    pub fn default_parallelism(chunk_size: u64) -> usize {
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        let by_memory = usize::try_from((512u64 << 20) / chunk_size.max(1)).unwrap_or(1);
        cpus.min(4).min(by_memory).max(1)
    }
}

/// A stored backup as its database row knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupRecord {
    /// `id`.
    pub id: String,
    /// `container`.
    pub container: String,
    /// `service_metadata`: the object name prefix.
    pub service_metadata: String,
}

/// Live counters of one operation, for progress notifications
/// (`backup.createprogress`) and logs; read them from another task.
#[derive(Debug, Default)]
pub struct Progress {
    total_bytes: AtomicU64,
    done_bytes: AtomicU64,
    objects: AtomicU64,
}

impl Progress {
    /// Bytes of the volume the operation covers (0 until known).
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes.load(Ordering::Relaxed)
    }

    /// Bytes of the volume read (backup) or written (restore) so far.
    pub fn done_bytes(&self) -> u64 {
        self.done_bytes.load(Ordering::Relaxed)
    }

    /// Objects stored (backup) or read (restore) so far.
    pub fn objects(&self) -> u64 {
        self.objects.load(Ordering::Relaxed)
    }

    /// Cinder's `backup_percent` (0–100).
    pub fn percent(&self) -> f64 {
        match self.total_bytes() {
            0 => 0.0,
            total => (self.done_bytes() as f64 * 100.0 / total as f64).min(100.0),
        }
    }

    pub(crate) fn set_total(&self, bytes: u64) {
        self.total_bytes.store(bytes, Ordering::Relaxed);
    }

    pub(crate) fn add(&self, bytes: u64, objects: u64) {
        self.done_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.objects.fetch_add(objects, Ordering::Relaxed);
    }
}

/// What a caller hands an operation to watch and stop it.
#[derive(Clone, Debug, Default)]
pub struct Control {
    /// Cancelled when the backup is being deleted or the restore's status
    /// changed (Cinder re-reads the row between objects; the service sets
    /// this instead).
    pub cancel: CancellationToken,
    /// Progress counters.
    pub progress: Arc<Progress>,
}

/// Cinder's chunked backup driver over one object store.
#[derive(Clone, Debug)]
pub struct ChunkedEngine {
    store: Arc<dyn ObjectStore>,
    settings: EngineSettings,
    /// Runs `rbd` for volumes that are RBD images.
    cli: Cli,
}

impl ChunkedEngine {
    /// An engine storing into `store`, reaching RBD volumes with the
    /// `rbd` tool of this host.
    pub fn new(store: Arc<dyn ObjectStore>, settings: EngineSettings) -> Self {
        Self::with_runner(store, settings, Arc::new(clinker_exec::HostRunner::new()))
    }

    /// An engine whose `rbd` commands `runner` runs.
    pub fn with_runner(
        store: Arc<dyn ObjectStore>,
        settings: EngineSettings,
        runner: Arc<dyn CommandRunner>,
    ) -> Self {
        Self {
            store,
            settings,
            cli: Cli::new(runner),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The settings.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Reads a backup's metadata object.
    pub async fn read_metadata(
        &self,
        record: &BackupRecord,
    ) -> Result<format::BackupMetadata, BackupError> {
        let body = self
            .store
            .get_object(
                &record.container,
                &format::metadata_name(&record.service_metadata),
            )
            .await?;
        format::from_json("metadata", &body)
    }

    /// Reads a backup's sha256file.
    pub async fn read_sha256file(&self, record: &BackupRecord) -> Result<Sha256File, BackupError> {
        let body = self
            .store
            .get_object(
                &record.container,
                &format::sha256file_name(&record.service_metadata),
            )
            .await?;
        format::from_json("sha256file", &body)
    }

    /// Deletes every object of a backup: the metadata first (so what is
    /// left is never taken for a complete backup), then the data objects
    /// and leftovers of an interrupted write, then the sha256file (which
    /// an incremental backup starting now might still read). Returns how
    /// many objects were deleted; a container that is gone has none.
    ///
    /// Unlike Cinder, a failed listing is an error rather than a delete
    /// that leaves the objects behind: the caller keeps the row and tries
    /// again.
    pub async fn delete_backup(&self, record: &BackupRecord) -> Result<u64, BackupError> {
        let prefix = &record.service_metadata;
        let container = &record.container;
        if prefix.is_empty() || container.is_empty() {
            return Ok(0);
        }
        let mut names = match self.store.list_objects(container, prefix).await {
            Ok(names) => names,
            Err(crate::error::StoreError::NotFound { .. }) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let metadata = format::metadata_name(prefix);
        let sha256file = format::sha256file_name(prefix);
        let rank = |name: &String| match name {
            n if *n == metadata => 0,
            n if *n == sha256file => 2,
            _ => 1,
        };
        names.sort_by_key(rank);
        for name in &names {
            self.store.delete_object(container, name).await?;
        }
        self.store.tidy_container(container).await?;
        tracing::debug!(backup_id = %record.id, objects = names.len(), "backup objects deleted");
        Ok(names.len() as u64)
    }
}
