//! Volume backups: the `backups` row and its status (Cinder's `Backup`
//! object and `BackupStatus` in `cinder/objects/fields.py`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{BackupId, SnapshotId, VolumeId};
use crate::status::{UnknownStatus, status_enum};
use crate::time::Timestamp;

status_enum!(
    /// `BackupStatus` (`backups.status`).
    BackupStatus {
        /// Error (a failed create, or reset by an administrator).
        Error => "error",
        /// Deleting failed.
        ErrorDeleting => "error_deleting",
        /// Being made.
        Creating => "creating",
        /// Complete and restorable.
        Available => "available",
        /// Being deleted.
        Deleting => "deleting",
        /// Deleted (never shown).
        Deleted => "deleted",
        /// Being restored into a volume.
        Restoring => "restoring",
    }
);

/// A row of `backups`, with its metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    /// Backup id.
    pub id: BackupId,
    /// The volume it was taken of (may since be deleted).
    pub volume_id: VolumeId,
    /// Owner user.
    pub user_id: String,
    /// Owner project.
    pub project_id: String,
    /// The backup service's host that made it (and serves it).
    pub host: Option<String>,
    /// The backup service's availability zone.
    pub availability_zone: Option<String>,
    /// Name.
    pub display_name: Option<String>,
    /// Description.
    pub display_description: Option<String>,
    /// Where the objects are (the driver's container or directory).
    pub container: Option<String>,
    /// Status (the lock).
    pub status: BackupStatus,
    /// Why the last operation failed.
    pub fail_reason: Option<String>,
    /// The object name prefix (chunked drivers).
    pub service_metadata: Option<String>,
    /// The driver's class path.
    pub service: Option<String>,
    /// Size in GiB (the volume's at backup time).
    pub size: i64,
    /// Data objects stored.
    pub object_count: i64,
    /// The backup this one is incremental to.
    pub parent_id: Option<BackupId>,
    /// The snapshot it was taken from, if any.
    pub snapshot_id: Option<SnapshotId>,
    /// When the data was captured (creation time, or the snapshot's).
    pub data_timestamp: Timestamp,
    /// The volume a restore is writing into.
    pub restore_volume_id: Option<VolumeId>,
    /// The volume's encryption key (3.64).
    pub encryption_key_id: Option<String>,
    /// Backups incremental to this one (counted, never stored).
    pub num_dependent_backups: i64,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Option<Timestamp>,
    /// User metadata (3.43).
    pub metadata: BTreeMap<String, String>,
}

impl Backup {
    /// Cinder's `is_incremental`.
    pub fn is_incremental(&self) -> bool {
        self.parent_id.is_some()
    }

    /// Cinder's `has_dependent_backups`.
    pub fn has_dependent_backups(&self) -> bool {
        self.num_dependent_backups > 0
    }
}
