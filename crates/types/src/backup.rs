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

/// The backup service's binary and topic (`cinder-backup`).
pub const BINARY: &str = "cinder-backup";

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
    /// The temporary volume the backup reads (of a snapshot), recorded
    /// before it is created so a restart can remove it.
    #[serde(default)]
    pub temp_volume_id: Option<VolumeId>,
    /// The temporary snapshot of an in-use volume the backup is made of,
    /// recorded in the transaction that inserts it.
    #[serde(default)]
    pub temp_snapshot_id: Option<SnapshotId>,
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

/// An enabled `cinder-backup` service that is up, with its load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupService {
    /// The service's host.
    pub host: String,
    /// Its availability zone.
    pub availability_zone: String,
    /// Backups it is making, restoring or deleting now.
    pub operations: i64,
}

/// The backup service an operation goes to (Cinder's
/// `_get_available_backup_service_host`, choosing the least busy where
/// Cinder shuffles): with `use_same_host` (`backup_use_same_host`) only
/// `preferred` (the volume's or the backup's host) if it is up in the
/// zone; otherwise the least busy up service in the zone (any zone when
/// `zone` is `None`), `preferred` first among equals, then by name.
pub fn choose_backup_host(
    services: &[BackupService],
    zone: Option<&str>,
    preferred: Option<&str>,
    use_same_host: bool,
) -> Option<String> {
    let mut in_zone: Vec<&BackupService> = services
        .iter()
        .filter(|s| zone.is_none_or(|z| z.is_empty() || s.availability_zone == z))
        .collect();
    if use_same_host && let Some(host) = preferred {
        return in_zone
            .iter()
            .find(|s| s.host == host)
            .map(|s| s.host.clone());
    }
    in_zone.sort_by(|a, b| {
        (a.operations, Some(a.host.as_str()) != preferred, &a.host).cmp(&(
            b.operations,
            Some(b.host.as_str()) != preferred,
            &b.host,
        ))
    });
    in_zone.first().map(|s| s.host.clone())
}

#[cfg(test)]
mod choice_tests {
    use super::*;

    fn service(host: &str, zone: &str, operations: i64) -> BackupService {
        BackupService {
            host: host.into(),
            availability_zone: zone.into(),
            operations,
        }
    }

    #[test]
    fn the_least_busy_service_in_the_zone_wins() {
        let services = [
            service("a", "nova", 3),
            service("b", "nova", 1),
            service("c", "other", 0),
        ];
        assert_eq!(
            choose_backup_host(&services, Some("nova"), Some("a"), false).as_deref(),
            Some("b")
        );
        assert_eq!(
            choose_backup_host(&services, None, None, false).as_deref(),
            Some("c")
        );
        assert_eq!(
            choose_backup_host(&services, Some("none"), None, false),
            None
        );
    }

    #[test]
    fn the_preferred_host_wins_ties_and_is_required_with_use_same_host() {
        let services = [service("a", "nova", 1), service("b", "nova", 1)];
        assert_eq!(
            choose_backup_host(&services, Some("nova"), Some("b"), false).as_deref(),
            Some("b")
        );
        assert_eq!(
            choose_backup_host(&services, Some("nova"), None, false).as_deref(),
            Some("a")
        );
        let busy = [service("a", "nova", 0), service("b", "nova", 9)];
        assert_eq!(
            choose_backup_host(&busy, Some("nova"), Some("b"), true).as_deref(),
            Some("b")
        );
        assert_eq!(
            choose_backup_host(&busy, Some("nova"), Some("gone"), true),
            None
        );
        assert_eq!(
            choose_backup_host(&busy, Some("other"), Some("b"), true),
            None
        );
    }
}
