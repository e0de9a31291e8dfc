//! The scheduler's RPC API (Cinder's `scheduler/rpcapi.py`): the messages'
//! argument types and one declaration of its methods, from which
//! [`crate::api`] generates [`SchedulerManagerApi`] (served with
//! [`serve_scheduler_api!`](crate::serve_scheduler_api)), [`METHODS`],
//! [`SchedulerEndpoint`] and [`SchedulerRpcClient`]. Casts and calls go to
//! the schedulers' shared queue (`cinder-scheduler`).
//!
//! Version history (Cinder's numbering):
//! - 3.0: create_volume, get_pools.
//! - 3.2: extend_volume.
//! - create_group is a 3.0 method (Cinder's 2.x, kept at 3.0).
//! - 3.3: update_service_capabilities carries a timestamp.
//! - 3.0 (Cinder baseline): retype.
//! - 3.12: current.

use clinker_types::request_spec::{FilterProperties, RequestSpec};
use clinker_types::{GroupId, VolumeId, VolumeTypeId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Version;
use crate::volume::MigrationPolicy;

/// The scheduler's topic.
pub const TOPIC: &str = "cinder-scheduler";
/// The highest version this build serves and sends.
pub const CURRENT_VERSION: Version = Version::new(3, 12);

/// `create_volume` (cast to any scheduler).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleCreateVolumeArgs {
    /// What to place.
    pub request_spec: RequestSpec,
    /// Retry state (backends already tried).
    pub filter_properties: FilterProperties,
}

/// `extend_volume`: find room for the growth on the volume's pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleExtendVolumeArgs {
    /// The volume (its row is `extending`).
    pub volume_id: VolumeId,
    /// The new size in GiB.
    pub new_size: i64,
}

/// `update_service_capabilities` (fanout from each volume service).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateServiceCapabilitiesArgs {
    /// `volume`.
    pub service_name: String,
    /// `host@backend`.
    pub host: String,
    /// The driver's report (backend keys plus `pools`).
    pub capabilities: Value,
    /// When the report was made (microseconds), to ignore stale ones.
    pub timestamp: i64,
}

/// `get_pools`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GetPoolsArgs {
    /// Filters (`name`, `volume_type`, capability keys).
    #[serde(default)]
    pub filters: serde_json::Map<String, Value>,
}

/// `create_group`: find a backend that can hold every volume type of the
/// group and cast the group's creation there. The scheduler reads the
/// group's zone and types from its row, so a lost cast can be redone from
/// the database alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleCreateGroupArgs {
    /// The group (its row is `creating`, unplaced).
    pub group_id: GroupId,
}

/// `retype`: decide whether the volume's backend can keep it under the new
/// type, and cast the retype to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRetypeArgs {
    /// The volume (its row is `retyping`).
    pub volume_id: VolumeId,
    /// The type it should have.
    pub new_type_id: VolumeTypeId,
    /// Whether a migration is allowed.
    pub migration_policy: MigrationPolicy,
}

/// `migrate_volume`: check that a backend can take the volume and cast
/// the migration to the volume's backend (Cinder's `migrate_volume`,
/// formerly `migrate_volume_to_host`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleMigrateVolumeArgs {
    /// The volume (its `migration_status` is `starting`).
    pub volume_id: VolumeId,
    /// The destination the administrator named: `host@backend[#pool]`.
    pub host: String,
    /// Skip driver-assisted migration.
    pub force_host_copy: bool,
}

crate::api::rpc_api! {
    module: scheduler,
    service: "scheduler",
    topic: TOPIC,
    version: CURRENT_VERSION,
    route: topic,
    /// What the scheduler manager serves. Every method has a default
    /// answering `NotImplemented`; the scheduler manager implements all of
    /// them through [`serve_scheduler_api!`](crate::serve_scheduler_api).
    handler: SchedulerManagerApi,
    /// Dispatches scheduler RPC messages to a [`SchedulerManagerApi`].
    endpoint: SchedulerEndpoint,
    /// The client (Cinder's `SchedulerAPI`).
    client: SchedulerRpcClient,
    /// Implements [`SchedulerManagerApi`](crate::scheduler::SchedulerManagerApi)
    /// for a type by forwarding every method to the type's inherent method
    /// of the same name, which takes the context by reference:
    /// `serve_scheduler_api!(SchedulerManager)`.
    serve: serve_scheduler_api,
    methods: {
        /// Places a volume and casts its creation to the chosen backend.
        cast create_volume(args: ScheduleCreateVolumeArgs) { since: 3.0 }
        /// Checks room for an extend and casts it to the volume's backend.
        cast extend_volume(args: ScheduleExtendVolumeArgs) { since: 3.2 }
        /// Stores a capability report (every volume service fans its
        /// reports out to every scheduler).
        fanout update_service_capabilities(args: UpdateServiceCapabilitiesArgs) { since: 3.3 }
        /// The pools it knows (`scheduler-stats/get_pools`).
        call get_pools(args: GetPoolsArgs) -> Value { since: 3.0 }
        /// Places a generic group and casts its creation to the chosen
        /// backend.
        cast create_group(args: ScheduleCreateGroupArgs) { since: 3.0 }
        /// Places a retype (in place, or on another backend when a
        /// migration is allowed) and casts it to the volume's backend.
        cast retype(args: ScheduleRetypeArgs) { since: 3.0 }
        /// Checks the destination of a migration and casts it to the
        /// volume's backend.
        cast migrate_volume(args: ScheduleMigrateVolumeArgs) { since: 3.0 }
    }
}
