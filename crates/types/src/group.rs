//! Generic volume groups, group types and group snapshots as the database
//! returns them (Cinder's `Group`, `GroupType` and `GroupSnapshot` models).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::group_status::{GroupSnapshotStatus, GroupStatus};
use crate::ids::{GroupId, GroupSnapshotId, GroupTypeId, VolumeTypeId};
use crate::time::Timestamp;

/// The group type `clinker manage db sync` creates, as Cinder's initial
/// migration does, for consistency groups migrated to generic groups.
/// Groups of this type may only be operated on through the consistency
/// group API.
pub const DEFAULT_CGSNAPSHOT_TYPE_NAME: &str = "default_cgsnapshot_type";

/// The id of [`DEFAULT_CGSNAPSHOT_TYPE_NAME`]: fixed, so every database
/// synced by Clinker agrees on it (Cinder draws a random one).
pub const DEFAULT_CGSNAPSHOT_TYPE_ID: &str = "a9d4b3cb-87a5-4b35-9f3a-5e0c0f0ad3c1";

/// A row of `group_types`, with its group specs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupType {
    /// Type id.
    pub id: GroupTypeId,
    /// Unique name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Visible to every project.
    pub is_public: bool,
    /// Group specs (`consistent_group_snapshot_enabled`, …).
    pub group_specs: BTreeMap<String, String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Option<Timestamp>,
}

impl GroupType {
    /// Whether this is the type reserved for migrated consistency groups.
    pub fn is_default_cgsnapshot_type(&self) -> bool {
        self.id.to_string() == DEFAULT_CGSNAPSHOT_TYPE_ID
    }
}

/// A row of `groups`, with the volume types it may hold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Group id.
    pub id: GroupId,
    /// Owner user.
    pub user_id: String,
    /// Owner project.
    pub project_id: String,
    /// `host@backend#pool` once placed; its volumes live on that backend.
    pub host: Option<String>,
    /// The cluster, when clustered.
    pub cluster_name: Option<String>,
    /// Availability zone.
    pub availability_zone: String,
    /// Status (the lock).
    pub status: GroupStatus,
    /// Name.
    pub display_name: Option<String>,
    /// Description.
    pub display_description: Option<String>,
    /// The group type.
    pub group_type_id: GroupTypeId,
    /// The group snapshot it was created from.
    pub group_snapshot_id: Option<GroupSnapshotId>,
    /// The group it was cloned from.
    pub source_group_id: Option<GroupId>,
    /// Replication status (`disabled` for generic groups).
    pub replication_status: Option<String>,
    /// The volume types its volumes may have, in the order given.
    pub volume_type_ids: Vec<VolumeTypeId>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Option<Timestamp>,
}

impl Group {
    /// Whether the group's volumes are being created from a source (a
    /// group snapshot or another group), so it becomes available when the
    /// last of them is done rather than when its backend accepts it.
    pub fn is_from_source(&self) -> bool {
        self.group_snapshot_id.is_some() || self.source_group_id.is_some()
    }
}

/// A row of `group_snapshots`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    /// Group snapshot id.
    pub id: GroupSnapshotId,
    /// The group it is a snapshot of.
    pub group_id: GroupId,
    /// Owner user.
    pub user_id: String,
    /// Owner project.
    pub project_id: String,
    /// Status (the lock).
    pub status: GroupSnapshotStatus,
    /// Name.
    pub display_name: Option<String>,
    /// Description.
    pub display_description: Option<String>,
    /// The group's type when it was taken.
    pub group_type_id: GroupTypeId,
    /// `host@backend#pool` of the group (joined; where its snapshots live).
    pub host: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Option<Timestamp>,
}
