//! The persisted resources, as the database returns them.
//!
//! Field names follow Cinder's tables (`cinder/db/models.py`) so that a Cinder
//! developer recognises them; the API views rename them (`display_name` →
//! `name`) exactly where Cinder's views do.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{AttachmentId, MessageId, SnapshotId, VolumeId, VolumeTypeId};
use crate::status::{AttachStatus, SnapshotStatus, VolumeStatus};
use crate::time::Timestamp;

/// A row of `volumes`, with its metadata, type name and live attachments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    /// The volume id.
    pub id: VolumeId,
    /// The owner user.
    pub user_id: String,
    /// The owner project.
    pub project_id: String,
    /// `host@backend#pool` once scheduled.
    pub host: Option<String>,
    /// Size in GiB.
    pub size: i64,
    /// Availability zone.
    pub availability_zone: String,
    /// Status (the lock).
    pub status: VolumeStatus,
    /// Volume-level attach status.
    pub attach_status: AttachStatus,
    /// Migration status, when migrating.
    pub migration_status: Option<String>,
    /// User-visible name.
    pub display_name: Option<String>,
    /// User-visible description.
    pub display_description: Option<String>,
    /// Driver-private location (e.g. an iSCSI portal and IQN).
    pub provider_location: Option<String>,
    /// Driver-private credentials (`CHAP <user> <password>`). Never shown to
    /// non-admins.
    pub provider_auth: Option<String>,
    /// Driver-assigned id on the backend.
    pub provider_id: Option<String>,
    /// The volume type.
    pub volume_type_id: VolumeTypeId,
    /// The volume type's name (joined for the views).
    pub volume_type_name: Option<String>,
    /// The snapshot it was created from.
    pub snapshot_id: Option<SnapshotId>,
    /// The volume it was cloned from.
    pub source_volid: Option<VolumeId>,
    /// Bootable flag.
    pub bootable: bool,
    /// Whether the volume may have several attachments (from its type).
    pub multiattach: bool,
    /// Encryption key id, when encrypted.
    pub encryption_key_id: Option<String>,
    /// Legacy consistency group.
    pub consistencygroup_id: Option<String>,
    /// Generic group.
    pub group_id: Option<String>,
    /// Replication status.
    pub replication_status: Option<String>,
    /// Status before a transient operation (extend, retype, …).
    pub previous_status: Option<String>,
    /// The uuid of the service that owns the volume.
    pub service_uuid: Option<String>,
    /// Whether the backend shares targets between volumes (`None` = unknown).
    pub shared_targets: Option<bool>,
    /// Whether it counts against quota (false for temporary volumes).
    pub use_quota: bool,
    /// The cluster, when clustered.
    pub cluster_name: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Option<Timestamp>,
    /// When it was placed by the scheduler.
    pub scheduled_at: Option<Timestamp>,
    /// When it became available.
    pub launched_at: Option<Timestamp>,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
    /// Admin metadata (`readonly`, `attached_mode`).
    pub admin_metadata: BTreeMap<String, String>,
    /// Glance image metadata (`volume_image_metadata`).
    pub glance_metadata: BTreeMap<String, String>,
    /// Live attachments (not detached/deleted).
    pub attachments: Vec<Attachment>,
}

impl Volume {
    /// The backend object name, Cinder's `volume_name_template`.
    pub fn name(&self) -> String {
        volume_name(self.id)
    }
}

/// `volume-<uuid>`, the name every driver gives a volume's backend object.
pub fn volume_name(id: VolumeId) -> String {
    format!("volume-{id}")
}

/// `snapshot-<uuid>`, Cinder's `snapshot_name_template`.
pub fn snapshot_name(id: SnapshotId) -> String {
    format!("snapshot-{id}")
}

/// A row of `volume_attachment`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// Attachment id.
    pub id: AttachmentId,
    /// The attached volume.
    pub volume_id: VolumeId,
    /// The Nova instance.
    pub instance_uuid: Option<String>,
    /// The host it is attached to (legacy `host_name`).
    pub attached_host: Option<String>,
    /// Mount point or device.
    pub mountpoint: Option<String>,
    /// When it was attached.
    pub attach_time: Option<Timestamp>,
    /// When it was detached.
    pub detach_time: Option<Timestamp>,
    /// Attach status.
    pub attach_status: AttachStatus,
    /// `rw` or `ro`.
    pub attach_mode: Option<String>,
    /// The connection info handed to the initiator, as JSON.
    pub connection_info: Option<serde_json::Value>,
    /// The connector the initiator sent, as JSON.
    pub connector: Option<serde_json::Value>,
}

/// A row of `snapshots`, with its metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Snapshot id.
    pub id: SnapshotId,
    /// Source volume.
    pub volume_id: VolumeId,
    /// Owner user.
    pub user_id: String,
    /// Owner project.
    pub project_id: String,
    /// Status (the lock).
    pub status: SnapshotStatus,
    /// Progress text (`0%` … `100%`).
    pub progress: Option<String>,
    /// Size in GiB (the volume's size at snapshot time).
    pub volume_size: i64,
    /// Name.
    pub display_name: Option<String>,
    /// Description.
    pub display_description: Option<String>,
    /// Driver-private location.
    pub provider_location: Option<String>,
    /// The source volume's type.
    pub volume_type_id: VolumeTypeId,
    /// Group snapshot, when part of one.
    pub group_snapshot_id: Option<String>,
    /// Whether it counts against quota.
    pub use_quota: bool,
    /// `host@backend#pool` of the source volume.
    pub host: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Option<Timestamp>,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
}

/// A row of `volume_types`, with its extra specs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VolumeType {
    /// Type id.
    pub id: VolumeTypeId,
    /// Unique name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Visible to every project.
    pub is_public: bool,
    /// Associated QoS specs.
    pub qos_specs_id: Option<String>,
    /// Extra specs (scheduler hints and driver options).
    pub extra_specs: BTreeMap<String, String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Option<Timestamp>,
}

/// The name of the type `clinker manage db sync` creates, as Cinder does.
pub const DEFAULT_VOLUME_TYPE_NAME: &str = "__DEFAULT__";

impl VolumeType {
    /// Whether this type makes volumes multiattach (`multiattach="<is> True"`).
    pub fn is_multiattach(&self) -> bool {
        self.extra_specs
            .get("multiattach")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("<is> true"))
    }
}

/// A row of `services`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Row id.
    pub id: i64,
    /// Stable uuid.
    pub uuid: String,
    /// `host` for the scheduler, `host@backend` for volume services.
    pub host: String,
    /// `cinder-volume`, `cinder-scheduler`, …
    pub binary: String,
    /// RPC topic.
    pub topic: String,
    /// Heartbeats so far.
    pub report_count: i64,
    /// Administratively disabled.
    pub disabled: bool,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// Availability zone.
    pub availability_zone: String,
    /// The highest RPC version it serves.
    pub rpc_current_version: Option<String>,
    /// Driver health, `up` or `down` (volume services only).
    pub backend_state: Option<String>,
    /// Why the backend is down.
    pub backend_state_reason: Option<String>,
    /// Frozen (replication).
    pub frozen: bool,
    /// Replication status.
    pub replication_status: Option<String>,
    /// Active replication backend.
    pub active_backend_id: Option<String>,
    /// Cluster name.
    pub cluster_name: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last heartbeat (or update).
    pub updated_at: Option<Timestamp>,
    /// Last administrative change.
    pub modified_at: Option<Timestamp>,
}

impl Service {
    /// Cinder's `is_up`: the last heartbeat is no older than `down_time`.
    pub fn is_up(&self, now: Timestamp, down_time_secs: u64) -> bool {
        let last = self.updated_at.unwrap_or(self.created_at);
        let down_micros =
            i64::try_from(down_time_secs.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
        now.as_micros().saturating_sub(last.as_micros()) <= down_micros
    }
}

/// A row of `messages` (user messages, API 3.3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserMessage {
    /// Message id.
    pub id: MessageId,
    /// The project that may read it.
    pub project_id: String,
    /// The request that caused it.
    pub request_id: Option<String>,
    /// `VOLUME`, `SNAPSHOT`, …
    pub resource_type: String,
    /// The resource it is about.
    pub resource_uuid: Option<String>,
    /// `VOLUME_<resource>_<action>_<detail>`.
    pub event_id: String,
    /// `ERROR`.
    pub message_level: String,
    /// The user message text.
    pub user_message: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Expiry time (`message_ttl`).
    pub expires_at: Timestamp,
}

/// The kind of resource an operation-journal row is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JournalResource {
    /// A volume.
    Volume,
    /// A snapshot.
    Snapshot,
    /// A generic volume group (its create or delete, volumes included).
    Group,
    /// A group snapshot (its member snapshots included).
    GroupSnapshot,
}

impl JournalResource {
    /// The `workers.resource_type` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JournalResource::Volume => "Volume",
            JournalResource::Snapshot => "Snapshot",
            JournalResource::Group => "Group",
            JournalResource::GroupSnapshot => "GroupSnapshot",
        }
    }

    /// Parses the `workers.resource_type` spelling.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "Volume" => Some(JournalResource::Volume),
            "Snapshot" => Some(JournalResource::Snapshot),
            "Group" => Some(JournalResource::Group),
            "GroupSnapshot" => Some(JournalResource::GroupSnapshot),
            _ => None,
        }
    }
}

/// A row of the operation journal (Cinder's `workers` table): the durable
/// intent of an operation that a volume service must finish or fail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Row id.
    pub id: i64,
    /// What it is about.
    pub resource_type: JournalResource,
    /// The resource's id.
    pub resource_id: String,
    /// The status the operation put the resource in (`creating`, `deleting`,
    /// `extending`, …): the operation is unfinished while the resource still
    /// has it.
    pub status: String,
    /// `host@backend` of the service that owns the work; `None` while the
    /// scheduler has not placed it yet.
    pub service_host: Option<String>,
    /// When the intent was written.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Option<Timestamp>,
}
