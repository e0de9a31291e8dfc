//! The backup crate's errors, each classified into an [`ErrorKind`] where
//! it arises: an object store's HTTP status or I/O error becomes a
//! [`StoreError`] with its kind in the store, never matched on text above.

use clinker_types::ErrorKind;

/// A failure of an object store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The container or object does not exist.
    #[error("{what} not found in the backup store")]
    NotFound {
        /// `container` or `container/object`.
        what: String,
    },
    /// The store refused the service's credentials (401/403), or none could
    /// be had.
    #[error("the backup store refused the credentials: {0}")]
    Unauthorized(String),
    /// The store rejected the object's checksum (S3 `BadDigest` /
    /// `InvalidDigest`, Swift 422): the bytes it received are not the bytes
    /// sent.
    #[error("the backup store rejected {object}: checksum mismatch ({detail})")]
    ChecksumRejected {
        /// The object.
        object: String,
        /// The store's answer.
        detail: String,
    },
    /// What was stored or read back does not have the checksum it should
    /// (an ETag that is not the MD5 of the body).
    #[error("integrity check failed for {object}: expected md5 {expected}, got {actual}")]
    IntegrityMismatch {
        /// The object.
        object: String,
        /// The MD5 of the bytes sent or expected.
        expected: String,
        /// The store's ETag or the MD5 of what arrived.
        actual: String,
    },
    /// The store cannot be reached, timed out, or answered 5xx.
    #[error("the backup store is unavailable: {0}")]
    Unavailable(String),
    /// The store answered in a way the client does not understand, or
    /// with an unexpected status.
    #[error("the backup store answered {status}: {detail}")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The body or the reason.
        detail: String,
    },
    /// A local file system operation (POSIX store) failed.
    #[error("backup store i/o on {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The store is misconfigured (a missing endpoint, a bad URL).
    #[error("backup store configuration: {0}")]
    Config(String),
}

impl StoreError {
    /// The error's classification.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::NotFound { .. } => ErrorKind::NotFound,
            // The service's own credentials or its store failing is a
            // dependency problem for the API user, not their request.
            StoreError::Unauthorized(_) | StoreError::Unavailable(_) => ErrorKind::Unavailable,
            StoreError::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                _ => ErrorKind::Unavailable,
            },
            StoreError::ChecksumRejected { .. }
            | StoreError::IntegrityMismatch { .. }
            | StoreError::Http { .. }
            | StoreError::Config(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// How an `rbd` or `rados` command of the Ceph driver failed, from its
/// exit code (both tools exit with the errno of the failed call).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RbdFailure {
    /// The image, snapshot, object or pool does not exist (ENOENT).
    NotFound,
    /// It exists already (EEXIST).
    Exists,
    /// In use (EBUSY), or an image that still has snapshots (ENOTEMPTY).
    Busy,
    /// The cluster could not be reached, or the tool could not be run, or
    /// it outlived its deadline.
    Unreachable,
    /// Anything else, a crash included.
    Failed,
}

/// A failure of a backup, restore or delete.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The object store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The backup cannot be made or restored as asked (Cinder's
    /// `InvalidBackup`, whose reasons are kept verbatim).
    #[error("Invalid backup: {0}")]
    InvalidBackup(String),
    /// The volume cannot be backed up (Cinder's `InvalidVolume`).
    #[error("Invalid volume: {0}")]
    InvalidVolume(String),
    /// The backup was cancelled (its status left `creating`, or the caller
    /// cancelled it); its objects have been deleted.
    #[error("backup {backup_id} was cancelled")]
    BackupCancelled {
        /// The backup.
        backup_id: String,
    },
    /// The restore was cancelled (Cinder's `BackupRestoreCancel`).
    #[error("Canceled backup {backup_id} restore on volume {volume_id}")]
    RestoreCancelled {
        /// The backup.
        backup_id: String,
        /// The volume being restored.
        volume_id: String,
    },
    /// The configured driver or mode is not available in Clinker.
    #[error("not supported by Clinker yet: {0}")]
    Unsupported(String),
    /// Reading or writing the volume failed.
    #[error("volume i/o failed: {0}")]
    VolumeIo(#[source] std::io::Error),
    /// An `rbd` or `rados` command of the Ceph driver failed.
    #[error("{message}")]
    Rbd {
        /// The classification of its exit.
        failure: RbdFailure,
        /// The command and what it said.
        message: String,
    },
    /// A bug or an unexpected failure.
    #[error("{0}")]
    Internal(String),
}

impl BackupError {
    /// A failed read or write of the volume: the classified error a
    /// volume stream carried (an `rbd export` that failed), or the I/O
    /// error itself.
    pub(crate) fn from_volume_io(e: std::io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<BackupError>()) {
            if let Some(inner) = e.into_inner()
                && let Ok(carried) = inner.downcast::<BackupError>()
            {
                return *carried;
            }
            return BackupError::Internal("a volume stream's error was lost".into());
        }
        BackupError::VolumeIo(e)
    }

    /// The error's classification.
    pub fn kind(&self) -> ErrorKind {
        match self {
            BackupError::Store(e) => e.kind(),
            BackupError::InvalidBackup(_) | BackupError::InvalidVolume(_) => {
                ErrorKind::InvalidState
            }
            BackupError::BackupCancelled { .. } | BackupError::RestoreCancelled { .. } => {
                ErrorKind::Conflict
            }
            BackupError::Unsupported(_) => ErrorKind::NotImplemented,
            BackupError::VolumeIo(_) => ErrorKind::Unavailable,
            BackupError::Rbd { failure, .. } => match failure {
                RbdFailure::NotFound => ErrorKind::NotFound,
                RbdFailure::Exists | RbdFailure::Busy => ErrorKind::Conflict,
                RbdFailure::Unreachable => ErrorKind::Unavailable,
                RbdFailure::Failed => ErrorKind::Internal,
            },
            BackupError::Internal(_) => ErrorKind::Internal,
        }
    }
}
