//! What the API hands the scheduler to place a volume, and the retry state
//! the scheduler and the volume service pass back and forth on reschedule.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{SnapshotId, VolumeId, VolumeTypeId};

/// The volume type as the scheduler needs it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TypeSpec {
    /// Type id.
    pub id: Option<VolumeTypeId>,
    /// Type name.
    pub name: Option<String>,
    /// Extra specs, matched by CapabilitiesFilter.
    pub extra_specs: BTreeMap<String, String>,
}

/// Cinder's `request_spec` for a volume create.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestSpec {
    /// The volume being placed.
    pub volume_id: VolumeId,
    /// Requested size in GiB.
    pub size: i64,
    /// The requested availability zone.
    pub availability_zone: Option<String>,
    /// Zones allowed by the type's `RESKEY:availability_zones`.
    pub availability_zones: Vec<String>,
    /// The volume type.
    pub volume_type: TypeSpec,
    /// Source snapshot.
    pub snapshot_id: Option<SnapshotId>,
    /// Source volume.
    pub source_volid: Option<VolumeId>,
    /// The Glance image the volume is filled from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// The backup the volume is restored from (3.47; Cinder's
    /// `backup_id`, scheduler RPC 3.10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<crate::BackupId>,
    /// Pins placement to this `host@backend[#pool]` (creating from a
    /// snapshot or a clone must stay on the source's backend).
    pub resource_backend: Option<String>,
    /// The owner project (for user messages).
    pub project_id: String,
    /// Scheduler hints from the request (`OS-SCH-HNT:scheduler_hints`).
    #[serde(default)]
    pub scheduler_hints: BTreeMap<String, serde_json::Value>,
}

/// Retry bookkeeping (`filter_properties['retry']`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RetryState {
    /// Attempts made so far.
    pub num_attempts: u32,
    /// Backends (`host@backend#pool`) already tried.
    pub backends: Vec<String>,
    /// The last failure, for the log and the user message.
    pub exc: Option<String>,
}

/// Cinder's `filter_properties` subset Clinker carries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FilterProperties {
    /// Retry state; absent when rescheduling is disabled
    /// (`scheduler_max_attempts = 1`).
    pub retry: Option<RetryState>,
}
