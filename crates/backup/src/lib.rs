//! Volume backups in Cinder's format: the chunked backup engine of
//! `cinder/backup/chunkeddriver.py` (object naming, the `_metadata` and
//! `_sha256file` objects, incremental backups against the parent's block
//! hashes, none/zlib/bz2/zstd compression, restore of a chain, delete) and
//! the object stores it writes to: a POSIX directory, S3, Swift. A backup
//! Cinder 29 wrote restores here and the reverse. Beside it, the Ceph
//! driver of `cinder/backup/drivers/ceph.py` ([`ceph`]): base images,
//! one snapshot per backup, `rbd export-diff | rbd import-diff`, with
//! Cinder's names, run through `clinker-exec`'s `CommandRunner`.
//!
//! This crate knows nothing of backup rows, RPC or volumes: the backup
//! service gives it a readable or writable volume and the row's fields and
//! keeps what it returns (`container`, `service_metadata`,
//! `object_count`). It depends on `clinker-types`, `clinker-config`,
//! `clinker-runtime` and `clinker-exec` only.
//!
//! ```text
//! let BackupDriver::Chunked(engine) = build_driver(kind, &config.backup, zone, user)?;
//! let prepared = engine.prepare_backup(request).await?;   // record container + service_metadata
//! // A local path or an RBD image (`rbd export -`, `rbd import-diff -`):
//! let outcome = engine.backup_volume(&prepared, &VolumeData::Local(path), &control).await?;
//! engine.restore_volume(&chain, &target, &control).await?;
//! // Or any reader and writer:
//! let outcome = engine.run_backup(&prepared, &mut volume, &control).await?;
//! engine.restore_backup(&chain, volume_id, &mut FileWriter::new(file), is_new, &control).await?;
//! engine.delete_backup(&record).await?;
//! ```

pub mod ceph;
pub mod compression;
pub mod driver;
pub mod engine;
pub mod error;
pub mod format;
pub mod store;

pub use ceph::{
    CephAccess, CephBackupDriver, CephBackupRequest, PreparedCephBackup, RbdVolume, RestoreTarget,
    VolumeData,
};
pub use compression::Compression;
pub use driver::{BackupDriver, UserContext, build_driver};
pub use engine::{
    BackupOutcome, BackupRecord, BackupRequest, ChunkedEngine, Control, EngineSettings, FileWriter,
    ParentBackup, PreparedBackup, Progress, RestoreOutcome, VolumeWriter,
};
pub use error::{BackupError, RbdFailure, StoreError};
pub use format::{BackupMetadata, ObjectNaming, Sha256File};
pub use store::ObjectStore;
