//! The volume service's RPC API (Cinder's `volume/rpcapi.py`): the
//! messages' argument types and one declaration of its methods, from which
//! [`crate::api`] generates the handler trait the volume manager implements
//! ([`VolumeManagerApi`], served with [`serve_volume_api!`](crate::serve_volume_api)),
//! the version table ([`METHODS`]), the dispatch ([`VolumeEndpoint`]) and
//! the client the API and the scheduler use ([`VolumeRpcClient`]). Casts
//! and calls go to the backend's own queue (`cinder-volume.host@backend`).
//!
//! Version history (Cinder's numbering, so a Cinder developer can map it):
//! - 3.0: create_volume, delete_volume, create_snapshot, delete_snapshot,
//!   extend_volume, get_capabilities, publish_service_capabilities;
//!   initialize_connection, terminate_connection, detach_volume and
//!   remove_export (the legacy attach flow, which predates 3.0 in Cinder).
//! - 3.5: retype carries the target backend (cluster-aware in Cinder).
//! - 3.9: attachment_update, attachment_delete (new attach flow).
//! - create_group, delete_group, create_group_snapshot and
//!   delete_group_snapshot are 3.0 methods (Cinder's 2.5/2.6, kept at 3.0).
//! - 3.15: revert_to_snapshot.
//! - migrate_volume, migrate_volume_completion and update_migrated_volume
//!   are 3.0 methods (Cinder has them since 1.x).
//! - manage_existing, manage_existing_snapshot, get_manageable_volumes,
//!   get_manageable_snapshots are 3.0 methods in Cinder; unmanage is
//!   Cinder's `delete_volume` / `delete_snapshot` with `unmanage_only`, here
//!   its own methods `unmanage_volume` / `unmanage_snapshot` (3.0).
//! - 3.20: current.

use clinker_types::connection::{ConnectionInfo, Connector};
use clinker_types::request_spec::{FilterProperties, RequestSpec};
use clinker_types::{AttachmentId, GroupId, GroupSnapshotId, SnapshotId, VolumeId, VolumeTypeId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Version;

/// The volume service's topic.
pub const TOPIC: &str = "cinder-volume";
/// The highest version this build serves and sends.
pub const CURRENT_VERSION: Version = Version::new(3, 20);

/// `create_volume` (cast to the chosen backend).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreateVolumeArgs {
    /// The volume (its row is `creating`, placed on this backend).
    pub volume_id: VolumeId,
    /// What the API asked for.
    pub request_spec: RequestSpec,
    /// Retry state.
    pub filter_properties: FilterProperties,
    /// Whether a driver failure may be rescheduled.
    pub allow_reschedule: bool,
}

/// `copy_volume_to_image` (`os-volume_upload_image`): the volume is
/// `uploading` and the image record exists (`queued`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyVolumeToImageArgs {
    /// The volume.
    pub volume_id: VolumeId,
    /// The Glance image to fill.
    pub image_id: String,
}

/// `reimage` (`os-reimage`, 3.68): the volume is `downloading`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReimageArgs {
    /// The volume.
    pub volume_id: VolumeId,
    /// The Glance image to write.
    pub image_id: String,
    /// The status to return to (`available`, `error` or `reserved`).
    pub previous_status: clinker_types::VolumeStatus,
}

/// `delete_volume`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteVolumeArgs {
    /// The volume (its row is `deleting`).
    pub volume_id: VolumeId,
    /// Delete its snapshots first.
    pub cascade: bool,
}

/// `create_snapshot`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSnapshotArgs {
    /// The snapshot (its row is `creating`).
    pub snapshot_id: SnapshotId,
    /// Its volume.
    pub volume_id: VolumeId,
}

/// `delete_snapshot`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteSnapshotArgs {
    /// The snapshot (its row is `deleting`).
    pub snapshot_id: SnapshotId,
}

/// `extend_volume`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendVolumeArgs {
    /// The volume (its row is `extending`).
    pub volume_id: VolumeId,
    /// The new size in GiB.
    pub new_size: i64,
}

/// `get_capabilities`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetCapabilitiesArgs {
    /// Ask the driver afresh instead of using the last report.
    pub discover: bool,
}

/// `attachment_update` (call, 3.9): export the volume to a connector and
/// connect an attachment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttachmentUpdateArgs {
    /// The volume.
    pub volume_id: VolumeId,
    /// The attachment (reserved by the API).
    pub attachment_id: AttachmentId,
    /// What the host sent.
    pub connector: Connector,
}

/// `attachment_delete` (call, 3.9): end an attachment's connection, remove
/// the export when no other attachment needs it, and remove the attachment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentDeleteArgs {
    /// The volume.
    pub volume_id: VolumeId,
    /// The attachment.
    pub attachment_id: AttachmentId,
}

/// `initialize_connection` (call, 3.0): the legacy export.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InitializeConnectionArgs {
    /// The volume.
    pub volume_id: VolumeId,
    /// What the host sent.
    pub connector: Connector,
}

/// `terminate_connection` (call, 3.0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TerminateConnectionArgs {
    /// The volume.
    pub volume_id: VolumeId,
    /// The host whose connection ends (`None`: every host, `os-force_detach`).
    pub connector: Option<Connector>,
    /// Cinder's `force` (administrator cleanup).
    pub force: bool,
}

/// `detach_volume` (call, 3.0): the legacy detach.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachVolumeArgs {
    /// The volume.
    pub volume_id: VolumeId,
    /// The attachment (resolved by the API). `None`, or an attachment that
    /// is gone, removes nothing and only settles the volume's status.
    pub attachment_id: Option<AttachmentId>,
}

/// `remove_export` (cast, 3.0).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveExportArgs {
    /// The volume; its export goes only if nothing still needs it.
    pub volume_id: VolumeId,
}

/// `create_group` (cast to the backend the group was placed on).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateGroupArgs {
    /// The group (its row is `creating`, placed on this backend).
    pub group_id: GroupId,
}

/// `delete_group`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteGroupArgs {
    /// The group (its row and its volumes' are `deleting`).
    pub group_id: GroupId,
}

/// `create_group_snapshot`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateGroupSnapshotArgs {
    /// The group snapshot (its row and its members' are `creating`).
    pub group_snapshot_id: GroupSnapshotId,
}

/// `delete_group_snapshot`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteGroupSnapshotArgs {
    /// The group snapshot (its row and its members' are `deleting`).
    pub group_snapshot_id: GroupSnapshotId,
}

/// `revert_to_snapshot` (3.15).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertToSnapshotArgs {
    /// The volume (its row is `reverting`).
    pub volume_id: VolumeId,
    /// Its latest snapshot (its row is `restoring`).
    pub snapshot_id: SnapshotId,
}

/// `os-retype`'s `migration_policy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MigrationPolicy {
    /// Retype in place or not at all (Cinder's default).
    #[default]
    #[serde(rename = "never")]
    Never,
    /// Migrate to another backend when the current one cannot serve the
    /// new type.
    #[serde(rename = "on-demand")]
    OnDemand,
}

impl MigrationPolicy {
    /// Cinder's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationPolicy::Never => "never",
            MigrationPolicy::OnDemand => "on-demand",
        }
    }
}

/// `retype` (cast to the volume's current backend).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetypeArgs {
    /// The volume (its row is `retyping`).
    pub volume_id: VolumeId,
    /// The type it should have.
    pub new_type_id: VolumeTypeId,
    /// The pool (`host@backend#pool`) the scheduler chose: the volume's own
    /// pool for a retype in place, another one when a migration is needed.
    pub host: String,
    /// Whether a migration is allowed.
    pub migration_policy: MigrationPolicy,
}

/// `migrate_volume` (cast to the volume's current backend).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateVolumeArgs {
    /// The volume (its `migration_status` is `starting`).
    pub volume_id: VolumeId,
    /// The destination pool (`host@backend#pool`) the scheduler checked.
    pub host: String,
    /// Skip driver-assisted migration and copy through the host.
    pub force_host_copy: bool,
    /// The type the volume gets when the migration is a retype's.
    #[serde(default)]
    pub new_type_id: Option<VolumeTypeId>,
}

/// `migrate_volume_completion` (call to the source volume's backend):
/// Nova's answer after swapping an attached volume, or its error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateVolumeCompletionArgs {
    /// The volume being migrated.
    pub volume_id: VolumeId,
    /// Its temporary volume on the destination.
    pub new_volume_id: VolumeId,
    /// Whether the copy failed.
    pub error: bool,
}

/// `update_migrated_volume` (call to the destination backend): rename the
/// temporary volume's backing to the migrated volume's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateMigratedVolumeArgs {
    /// The migrated volume.
    pub volume_id: VolumeId,
    /// Its temporary volume on this backend.
    pub new_volume_id: VolumeId,
}

/// The provider fields `update_migrated_volume` gives the migrated volume.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigratedVolumeUpdate {
    /// `provider_location`.
    pub provider_location: Option<String>,
    /// `provider_auth`.
    pub provider_auth: Option<String>,
    /// `provider_id`.
    pub provider_id: Option<String>,
}

/// `manage_existing` (cast to the backend named in the request).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManageExistingArgs {
    /// The volume (its row is `managing`, placed on this backend).
    pub volume_id: VolumeId,
    /// The driver-specific reference to the backend object.
    pub reference: Value,
}

/// `manage_existing_snapshot` (cast to the volume's backend).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManageExistingSnapshotArgs {
    /// The snapshot (its row is `creating`).
    pub snapshot_id: SnapshotId,
    /// The driver-specific reference to the backend object.
    pub reference: Value,
}

/// `unmanage_volume` (Cinder's `delete_volume(unmanage_only=True)`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmanageVolumeArgs {
    /// The volume (its row is `unmanaging`).
    pub volume_id: VolumeId,
}

/// `unmanage_snapshot` (Cinder's `delete_snapshot(unmanage_only=True)`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmanageSnapshotArgs {
    /// The snapshot (its row is `unmanaging`).
    pub snapshot_id: SnapshotId,
}

crate::api::rpc_api! {
    module: volume,
    service: "volume service",
    topic: TOPIC,
    version: CURRENT_VERSION,
    route: host,
    /// What the volume manager serves. Casts return `()`; calls return
    /// data. Every method has a default answering `NotImplemented`; the
    /// volume manager implements all of them through
    /// [`serve_volume_api!`](crate::serve_volume_api).
    handler: VolumeManagerApi,
    /// Dispatches volume RPC messages to a [`VolumeManagerApi`].
    endpoint: VolumeEndpoint,
    /// The client (Cinder's `VolumeAPI` in `volume/rpcapi.py`).
    client: VolumeRpcClient,
    /// Implements [`VolumeManagerApi`](crate::volume::VolumeManagerApi)
    /// for a type by forwarding every method to the type's inherent
    /// method of the same name, which takes the context by reference:
    /// `serve_volume_api!(VolumeManager, hold = begin_serialized)`; `hold`
    /// names the inherent method that serializes the messages declared
    /// `serialized_by`.
    serve: serve_volume_api,
    methods: {
        /// Creates a volume on the backend it was placed on (blank, from a
        /// snapshot, or a clone).
        cast create_volume(args: CreateVolumeArgs) { since: 3.0, serialized_by: args.volume_id }
        /// Deletes a volume (and its snapshots when cascading).
        cast delete_volume(args: DeleteVolumeArgs) { since: 3.0, serialized_by: args.volume_id }
        /// Takes a snapshot.
        cast create_snapshot(args: CreateSnapshotArgs) {
            since: 3.0,
            serialized_by: args.snapshot_id,
        }
        /// Deletes a snapshot.
        cast delete_snapshot(args: DeleteSnapshotArgs) {
            since: 3.0,
            serialized_by: args.snapshot_id,
        }
        /// Grows a volume.
        cast extend_volume(args: ExtendVolumeArgs) { since: 3.0, serialized_by: args.volume_id }
        /// The backend's capabilities (`GET /capabilities/{host}`).
        call get_capabilities(args: GetCapabilitiesArgs) -> Value { since: 3.0 }
        /// Reports capabilities to the schedulers now (a starting scheduler
        /// asks every volume service).
        fanout publish_service_capabilities() { since: 3.0 }
        /// Exports the volume to the connector and connects the attachment;
        /// returns the flattened connection info.
        call attachment_update(args: AttachmentUpdateArgs) -> serde_json::Map<String, Value> {
            since: 3.9,
        }
        /// Disconnects and removes an attachment.
        call attachment_delete(args: AttachmentDeleteArgs) { since: 3.9 }
        /// The legacy export; returns the nested connection info.
        call initialize_connection(args: InitializeConnectionArgs) -> ConnectionInfo { since: 3.0 }
        /// Ends one host's connection.
        call terminate_connection(args: TerminateConnectionArgs) { since: 3.0 }
        /// The legacy detach.
        call detach_volume(args: DetachVolumeArgs) { since: 3.0 }
        /// Removes a volume's export when nothing needs it any more.
        cast remove_export(args: RemoveExportArgs) { since: 3.0 }
        /// Accepts a generic group placed on this backend.
        cast create_group(args: CreateGroupArgs) { since: 3.0, serialized_by: args.group_id }
        /// Deletes a group's volumes, then the group.
        cast delete_group(args: DeleteGroupArgs) { since: 3.0, serialized_by: args.group_id }
        /// Takes a snapshot of every volume of a group.
        cast create_group_snapshot(args: CreateGroupSnapshotArgs) {
            since: 3.0,
            serialized_by: args.group_snapshot_id,
        }
        /// Deletes a group snapshot's member snapshots, then the group
        /// snapshot.
        cast delete_group_snapshot(args: DeleteGroupSnapshotArgs) {
            since: 3.0,
            serialized_by: args.group_snapshot_id,
        }
        /// Reverts a volume to its latest snapshot.
        cast revert_to_snapshot(args: RevertToSnapshotArgs) {
            since: 3.15,
            serialized_by: args.volume_id,
        }
        /// Changes a volume's type in place, or migrates it when allowed;
        /// sent to the backend the volume lives on (the target is in the
        /// arguments).
        cast retype(args: RetypeArgs) { since: 3.5, serialized_by: args.volume_id }
        /// Migrates a volume to another backend (sent to the source
        /// backend).
        cast migrate_volume(args: MigrateVolumeArgs) { since: 3.0, serialized_by: args.volume_id }
        /// Completes (or, with `error`, abandons) a migration on the source
        /// volume's backend; returns the id of the volume that is kept.
        call migrate_volume_completion(args: MigrateVolumeCompletionArgs) -> VolumeId { since: 3.0 }
        /// Gives a migrated volume its temporary volume's backing (on the
        /// destination backend).
        call update_migrated_volume(args: UpdateMigratedVolumeArgs) -> MigratedVolumeUpdate {
            since: 3.0,
        }
        /// Takes an existing backend object under management as a volume.
        cast manage_existing(args: ManageExistingArgs) { since: 3.0, serialized_by: args.volume_id }
        /// Takes an existing backend object under management as a snapshot.
        cast manage_existing_snapshot(args: ManageExistingSnapshotArgs) {
            since: 3.0,
            serialized_by: args.snapshot_id,
        }
        /// Removes a volume from management; its data stays on the backend.
        cast unmanage_volume(args: UnmanageVolumeArgs) { since: 3.0, serialized_by: args.volume_id }
        /// Removes a snapshot from management; its data stays on the
        /// backend.
        cast unmanage_snapshot(args: UnmanageSnapshotArgs) {
            since: 3.0,
            serialized_by: args.snapshot_id,
        }
        /// The backend objects that could be managed as volumes (Cinder's
        /// manageable-volume dicts, unsorted).
        call get_manageable_volumes() -> Vec<Value> { since: 3.0 }
        /// The backend objects that could be managed as snapshots.
        call get_manageable_snapshots() -> Vec<Value> { since: 3.0 }
        /// Rewrites a volume from a Glance image.
        cast reimage(args: ReimageArgs) { since: 3.0, serialized_by: args.volume_id }
        /// Sends a volume's data to a new Glance image.
        cast copy_volume_to_image(args: CopyVolumeToImageArgs) {
            since: 3.0,
            serialized_by: args.volume_id,
        }
    }
}
