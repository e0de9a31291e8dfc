//! The volume service's RPC API (Cinder's `volume/rpcapi.py`): messages,
//! the client the API and the scheduler use, and the handler trait the
//! volume manager implements.
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

use std::sync::Arc;
use std::time::Duration;

use clinker_types::connection::{ConnectionInfo, Connector};
use clinker_types::request_spec::{FilterProperties, RequestSpec};
use clinker_types::{
    AttachmentId, ErrorKind, GroupId, GroupSnapshotId, Host, RemoteError, SnapshotId, VolumeId,
    VolumeTypeId,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dispatch::{DispatchError, Endpoint, decode_args};
use crate::{RequestContext, RpcError, RpcHandler, RpcMessage, Target, TransportHandle, Version};

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

/// The answer of a manager that does not serve group operations.
fn groups_not_served(method: &str) -> RemoteError {
    RemoteError::new(
        ErrorKind::NotImplemented,
        format!("{method} is not served by this volume manager"),
    )
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

fn not_served(method: &str) -> RemoteError {
    RemoteError::new(
        ErrorKind::NotImplemented,
        format!("{method} is not served by this volume service"),
    )
}

/// What the volume manager serves. Casts return `()`; calls return data.
#[async_trait::async_trait]
pub trait VolumeManagerApi: Send + Sync + 'static {
    /// Creates a volume on the backend (blank, from a snapshot, or a clone).
    async fn create_volume(
        &self,
        context: RequestContext,
        args: CreateVolumeArgs,
    ) -> Result<(), RemoteError>;
    /// Deletes a volume (and its snapshots when cascading).
    async fn delete_volume(
        &self,
        context: RequestContext,
        args: DeleteVolumeArgs,
    ) -> Result<(), RemoteError>;
    /// Takes a snapshot.
    async fn create_snapshot(
        &self,
        context: RequestContext,
        args: CreateSnapshotArgs,
    ) -> Result<(), RemoteError>;
    /// Deletes a snapshot.
    async fn delete_snapshot(
        &self,
        context: RequestContext,
        args: DeleteSnapshotArgs,
    ) -> Result<(), RemoteError>;
    /// Grows a volume.
    async fn extend_volume(
        &self,
        context: RequestContext,
        args: ExtendVolumeArgs,
    ) -> Result<(), RemoteError>;
    /// The backend's capabilities (`GET /capabilities/{host}`).
    async fn get_capabilities(
        &self,
        context: RequestContext,
        args: GetCapabilitiesArgs,
    ) -> Result<Value, RemoteError>;
    /// Reports capabilities to the schedulers now (fanout from a starting
    /// scheduler).
    async fn publish_service_capabilities(
        &self,
        context: RequestContext,
    ) -> Result<(), RemoteError>;
    /// Exports the volume to the connector and connects the attachment;
    /// returns the flattened connection info.
    async fn attachment_update(
        &self,
        context: RequestContext,
        args: AttachmentUpdateArgs,
    ) -> Result<serde_json::Map<String, Value>, RemoteError>;
    /// Disconnects and removes an attachment.
    async fn attachment_delete(
        &self,
        context: RequestContext,
        args: AttachmentDeleteArgs,
    ) -> Result<(), RemoteError>;
    /// The legacy export; returns the nested connection info.
    async fn initialize_connection(
        &self,
        context: RequestContext,
        args: InitializeConnectionArgs,
    ) -> Result<ConnectionInfo, RemoteError>;
    /// Ends one host's connection.
    async fn terminate_connection(
        &self,
        context: RequestContext,
        args: TerminateConnectionArgs,
    ) -> Result<(), RemoteError>;
    /// The legacy detach.
    async fn detach_volume(
        &self,
        context: RequestContext,
        args: DetachVolumeArgs,
    ) -> Result<(), RemoteError>;
    /// Removes a volume's export when nothing needs it any more.
    async fn remove_export(
        &self,
        context: RequestContext,
        args: RemoveExportArgs,
    ) -> Result<(), RemoteError>;
    /// Accepts a generic group placed on this backend.
    async fn create_group(
        &self,
        _context: RequestContext,
        _args: CreateGroupArgs,
    ) -> Result<(), RemoteError> {
        Err(groups_not_served("create_group"))
    }
    /// Deletes a group's volumes, then the group.
    async fn delete_group(
        &self,
        _context: RequestContext,
        _args: DeleteGroupArgs,
    ) -> Result<(), RemoteError> {
        Err(groups_not_served("delete_group"))
    }
    /// Takes a snapshot of every volume of a group.
    async fn create_group_snapshot(
        &self,
        _context: RequestContext,
        _args: CreateGroupSnapshotArgs,
    ) -> Result<(), RemoteError> {
        Err(groups_not_served("create_group_snapshot"))
    }
    /// Deletes a group snapshot's member snapshots, then the group snapshot.
    async fn delete_group_snapshot(
        &self,
        _context: RequestContext,
        _args: DeleteGroupSnapshotArgs,
    ) -> Result<(), RemoteError> {
        Err(groups_not_served("delete_group_snapshot"))
    }
    /// Reverts a volume to its latest snapshot (3.15).
    async fn revert_to_snapshot(
        &self,
        _context: RequestContext,
        _args: RevertToSnapshotArgs,
    ) -> Result<(), RemoteError> {
        Err(not_served("revert_to_snapshot"))
    }
    /// Changes a volume's type in place, or migrates it when allowed.
    async fn retype(&self, _context: RequestContext, _args: RetypeArgs) -> Result<(), RemoteError> {
        Err(not_served("retype"))
    }
    /// Migrates a volume to another backend (on the source backend).
    async fn migrate_volume(
        &self,
        _context: RequestContext,
        _args: MigrateVolumeArgs,
    ) -> Result<(), RemoteError> {
        Err(not_served("migrate_volume"))
    }
    /// Completes (or, with `error`, abandons) a migration; returns the id
    /// of the volume that is kept.
    async fn migrate_volume_completion(
        &self,
        _context: RequestContext,
        _args: MigrateVolumeCompletionArgs,
    ) -> Result<VolumeId, RemoteError> {
        Err(not_served("migrate_volume_completion"))
    }
    /// Gives a migrated volume its temporary volume's backing (on the
    /// destination backend).
    async fn update_migrated_volume(
        &self,
        _context: RequestContext,
        _args: UpdateMigratedVolumeArgs,
    ) -> Result<MigratedVolumeUpdate, RemoteError> {
        Err(not_served("update_migrated_volume"))
    }

    /// Takes an existing backend object under management as a volume.
    async fn manage_existing(
        &self,
        _context: RequestContext,
        _args: ManageExistingArgs,
    ) -> Result<(), RemoteError> {
        Err(not_served("manage_existing"))
    }
    /// Takes an existing backend object under management as a snapshot.
    async fn manage_existing_snapshot(
        &self,
        _context: RequestContext,
        _args: ManageExistingSnapshotArgs,
    ) -> Result<(), RemoteError> {
        Err(not_served("manage_existing_snapshot"))
    }
    /// Removes a volume from management; its data stays on the backend.
    async fn unmanage_volume(
        &self,
        _context: RequestContext,
        _args: UnmanageVolumeArgs,
    ) -> Result<(), RemoteError> {
        Err(not_served("unmanage_volume"))
    }
    /// Removes a snapshot from management; its data stays on the backend.
    async fn unmanage_snapshot(
        &self,
        _context: RequestContext,
        _args: UnmanageSnapshotArgs,
    ) -> Result<(), RemoteError> {
        Err(not_served("unmanage_snapshot"))
    }
    /// The backend objects that could be managed as volumes (Cinder's
    /// manageable-volume dicts, unsorted).
    async fn get_manageable_volumes(
        &self,
        _context: RequestContext,
    ) -> Result<Vec<Value>, RemoteError> {
        Err(not_served("get_manageable_volumes"))
    }
    /// The backend objects that could be managed as snapshots.
    async fn get_manageable_snapshots(
        &self,
        _context: RequestContext,
    ) -> Result<Vec<Value>, RemoteError> {
        Err(not_served("get_manageable_snapshots"))
    }
}

const METHODS: &[&str] = &[
    "create_volume",
    "delete_volume",
    "create_snapshot",
    "delete_snapshot",
    "extend_volume",
    "get_capabilities",
    "publish_service_capabilities",
    "attachment_update",
    "attachment_delete",
    "initialize_connection",
    "terminate_connection",
    "detach_volume",
    "remove_export",
    "create_group",
    "delete_group",
    "create_group_snapshot",
    "delete_group_snapshot",
    "revert_to_snapshot",
    "retype",
    "migrate_volume",
    "migrate_volume_completion",
    "update_migrated_volume",
    "manage_existing",
    "manage_existing_snapshot",
    "unmanage_volume",
    "unmanage_snapshot",
    "get_manageable_volumes",
    "get_manageable_snapshots",
];

/// Dispatches volume RPC messages to a [`VolumeManagerApi`].
pub struct VolumeEndpoint {
    api: Arc<dyn VolumeManagerApi>,
    endpoint: Endpoint,
}

impl std::fmt::Debug for VolumeEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeEndpoint")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl VolumeEndpoint {
    /// Serves `api` at [`CURRENT_VERSION`].
    pub fn new(api: Arc<dyn VolumeManagerApi>) -> Self {
        Self::with_version(api, CURRENT_VERSION)
    }

    /// Serves `api` at another version (rolling-upgrade tests).
    pub fn with_version(api: Arc<dyn VolumeManagerApi>, version: Version) -> Self {
        Self {
            api,
            endpoint: Endpoint::new(version, METHODS),
        }
    }
}

fn unit(result: Result<(), RemoteError>) -> Result<Value, RemoteError> {
    result.map(|()| Value::Null)
}

#[async_trait::async_trait]
impl RpcHandler for VolumeEndpoint {
    async fn handle(&self, message: RpcMessage) -> Result<Value, RemoteError> {
        self.endpoint.check(&message)?;
        let ctx = message.context.clone();
        match message.method.as_str() {
            "create_volume" => unit(self.api.create_volume(ctx, decode_args(&message)?).await),
            "delete_volume" => unit(self.api.delete_volume(ctx, decode_args(&message)?).await),
            "create_snapshot" => unit(self.api.create_snapshot(ctx, decode_args(&message)?).await),
            "delete_snapshot" => unit(self.api.delete_snapshot(ctx, decode_args(&message)?).await),
            "extend_volume" => unit(self.api.extend_volume(ctx, decode_args(&message)?).await),
            "get_capabilities" => self.api.get_capabilities(ctx, decode_args(&message)?).await,
            "publish_service_capabilities" => {
                unit(self.api.publish_service_capabilities(ctx).await)
            }
            "attachment_update" => self
                .api
                .attachment_update(ctx, decode_args(&message)?)
                .await
                .map(Value::Object),
            "attachment_delete" => unit(
                self.api
                    .attachment_delete(ctx, decode_args(&message)?)
                    .await,
            ),
            "initialize_connection" => self
                .api
                .initialize_connection(ctx, decode_args(&message)?)
                .await
                .map(|info| info.to_nested_json()),
            "terminate_connection" => unit(
                self.api
                    .terminate_connection(ctx, decode_args(&message)?)
                    .await,
            ),
            "detach_volume" => unit(self.api.detach_volume(ctx, decode_args(&message)?).await),
            "remove_export" => unit(self.api.remove_export(ctx, decode_args(&message)?).await),
            "create_group" => unit(self.api.create_group(ctx, decode_args(&message)?).await),
            "delete_group" => unit(self.api.delete_group(ctx, decode_args(&message)?).await),
            "create_group_snapshot" => unit(
                self.api
                    .create_group_snapshot(ctx, decode_args(&message)?)
                    .await,
            ),
            "delete_group_snapshot" => unit(
                self.api
                    .delete_group_snapshot(ctx, decode_args(&message)?)
                    .await,
            ),
            "revert_to_snapshot" => unit(
                self.api
                    .revert_to_snapshot(ctx, decode_args(&message)?)
                    .await,
            ),
            "retype" => unit(self.api.retype(ctx, decode_args(&message)?).await),
            "migrate_volume" => unit(self.api.migrate_volume(ctx, decode_args(&message)?).await),
            "migrate_volume_completion" => self
                .api
                .migrate_volume_completion(ctx, decode_args(&message)?)
                .await
                .map(|id| Value::String(id.to_string())),
            "update_migrated_volume" => self
                .api
                .update_migrated_volume(ctx, decode_args(&message)?)
                .await
                .and_then(|u| {
                    serde_json::to_value(u)
                        .map_err(|e| RemoteError::new(ErrorKind::Internal, e.to_string()))
                }),
            "manage_existing" => unit(self.api.manage_existing(ctx, decode_args(&message)?).await),
            "manage_existing_snapshot" => unit(
                self.api
                    .manage_existing_snapshot(ctx, decode_args(&message)?)
                    .await,
            ),
            "unmanage_volume" => unit(self.api.unmanage_volume(ctx, decode_args(&message)?).await),
            "unmanage_snapshot" => unit(
                self.api
                    .unmanage_snapshot(ctx, decode_args(&message)?)
                    .await,
            ),
            "get_manageable_volumes" => {
                self.api.get_manageable_volumes(ctx).await.map(Value::Array)
            }
            "get_manageable_snapshots" => self
                .api
                .get_manageable_snapshots(ctx)
                .await
                .map(Value::Array),
            other => Err(DispatchError::NoSuchMethod {
                method: other.to_owned(),
            }
            .into()),
        }
    }
}

/// The client (Cinder's `VolumeAPI` in `volume/rpcapi.py`).
#[derive(Clone, Debug)]
pub struct VolumeRpcClient {
    transport: TransportHandle,
    timeout: Duration,
    version_cap: Arc<std::sync::RwLock<Version>>,
}

impl VolumeRpcClient {
    /// A client with `rpc_response_timeout`.
    pub fn new(transport: TransportHandle, timeout: Duration) -> Self {
        Self {
            transport,
            timeout,
            version_cap: Arc::new(std::sync::RwLock::new(CURRENT_VERSION)),
        }
    }

    /// Caps the versions sent (the lowest version any volume service
    /// reported), as Cinder pins `LAST_RPC_VERSIONS`.
    pub fn set_version_cap(&self, cap: Version) {
        if let Ok(mut c) = self.version_cap.write() {
            *c = cap.min(CURRENT_VERSION);
        }
    }

    /// The current cap.
    pub fn version_cap(&self) -> Version {
        self.version_cap
            .read()
            .map(|c| *c)
            .unwrap_or(CURRENT_VERSION)
    }

    /// Whether a message of `version` may be sent under the cap.
    pub fn can_send_version(&self, version: Version) -> bool {
        self.version_cap().can_serve(version)
    }

    fn message(
        &self,
        context: &RequestContext,
        method: &str,
        version: Version,
        args: Value,
    ) -> Result<RpcMessage, RpcError> {
        if !self.can_send_version(version) {
            return Err(RpcError::Transport(format!(
                "cannot send {method} at version {version}: the volume services are pinned to {}",
                self.version_cap()
            )));
        }
        Ok(RpcMessage {
            method: method.to_owned(),
            version,
            args,
            context: context.clone(),
        })
    }

    /// The queue of a backend, from a `host@backend[#pool]` string.
    pub fn target_for(host: &str) -> Target {
        let service_host = host
            .parse::<Host>()
            .map(|h| h.service_host())
            .unwrap_or_else(|_| host.to_owned());
        Target::server(TOPIC, &service_host)
    }

    async fn cast(
        &self,
        context: &RequestContext,
        host: &str,
        method: &str,
        version: Version,
        args: Value,
    ) -> Result<(), RpcError> {
        let message = self.message(context, method, version, args)?;
        self.transport.cast(&Self::target_for(host), message).await
    }

    fn to_value<T: Serialize>(args: &T) -> Result<Value, RpcError> {
        serde_json::to_value(args).map_err(|e| RpcError::Payload(e.to_string()))
    }

    /// Casts `create_volume` to the backend the volume was placed on.
    ///
    /// # Errors
    /// No consumer for that backend, transport failures.
    pub async fn create_volume(
        &self,
        context: &RequestContext,
        host: &str,
        args: &CreateVolumeArgs,
    ) -> Result<(), RpcError> {
        self.cast(
            context,
            host,
            "create_volume",
            Version::new(3, 0),
            Self::to_value(args)?,
        )
        .await
    }

    /// Casts `delete_volume`.
    ///
    /// # Errors
    /// As [`VolumeRpcClient::create_volume`].
    pub async fn delete_volume(
        &self,
        context: &RequestContext,
        host: &str,
        args: &DeleteVolumeArgs,
    ) -> Result<(), RpcError> {
        self.cast(
            context,
            host,
            "delete_volume",
            Version::new(3, 0),
            Self::to_value(args)?,
        )
        .await
    }

    /// Casts `create_snapshot`.
    ///
    /// # Errors
    /// As [`VolumeRpcClient::create_volume`].
    pub async fn create_snapshot(
        &self,
        context: &RequestContext,
        host: &str,
        args: &CreateSnapshotArgs,
    ) -> Result<(), RpcError> {
        self.cast(
            context,
            host,
            "create_snapshot",
            Version::new(3, 0),
            Self::to_value(args)?,
        )
        .await
    }

    /// Casts `delete_snapshot`.
    ///
    /// # Errors
    /// As [`VolumeRpcClient::create_volume`].
    pub async fn delete_snapshot(
        &self,
        context: &RequestContext,
        host: &str,
        args: &DeleteSnapshotArgs,
    ) -> Result<(), RpcError> {
        self.cast(
            context,
            host,
            "delete_snapshot",
            Version::new(3, 0),
            Self::to_value(args)?,
        )
        .await
    }

    /// Casts `extend_volume`.
    ///
    /// # Errors
    /// As [`VolumeRpcClient::create_volume`].
    pub async fn extend_volume(
        &self,
        context: &RequestContext,
        host: &str,
        args: &ExtendVolumeArgs,
    ) -> Result<(), RpcError> {
        self.cast(
            context,
            host,
            "extend_volume",
            Version::new(3, 0),
            Self::to_value(args)?,
        )
        .await
    }

    /// Calls `get_capabilities` on one backend.
    ///
    /// # Errors
    /// No consumer, timeout, remote failure.
    pub async fn get_capabilities(
        &self,
        context: &RequestContext,
        host: &str,
        discover: bool,
    ) -> Result<Value, RpcError> {
        let message = self.message(
            context,
            "get_capabilities",
            Version::new(3, 0),
            Self::to_value(&GetCapabilitiesArgs { discover })?,
        )?;
        self.transport
            .call(&Self::target_for(host), message, self.timeout)
            .await
    }

    /// Casts `revert_to_snapshot` to the volume's backend.
    ///
    /// # Errors
    /// As [`VolumeRpcClient::create_volume`].
    pub async fn revert_to_snapshot(
        &self,
        context: &RequestContext,
        host: &str,
        args: &RevertToSnapshotArgs,
    ) -> Result<(), RpcError> {
        self.cast(
            context,
            host,
            "revert_to_snapshot",
            Version::new(3, 15),
            Self::to_value(args)?,
        )
        .await
    }

    /// Casts `retype` to the backend the volume lives on (`host`, its
    /// current `host@backend#pool`; the target is in the arguments).
    ///
    /// # Errors
    /// As [`VolumeRpcClient::create_volume`].
    pub async fn retype(
        &self,
        context: &RequestContext,
        host: &str,
        args: &RetypeArgs,
    ) -> Result<(), RpcError> {
        self.cast(
            context,
            host,
            "retype",
            Version::new(3, 5),
            Self::to_value(args)?,
        )
        .await
    }

    /// Casts `migrate_volume` to the volume's current backend.
    ///
    /// # Errors
    /// As [`VolumeRpcClient::create_volume`].
    pub async fn migrate_volume(
        &self,
        context: &RequestContext,
        host: &str,
        args: &MigrateVolumeArgs,
    ) -> Result<(), RpcError> {
        self.cast(
            context,
            host,
            "migrate_volume",
            Version::new(3, 0),
            Self::to_value(args)?,
        )
        .await
    }

    /// Calls `migrate_volume_completion` on the source volume's backend;
    /// returns the id of the volume kept.
    ///
    /// # Errors
    /// No consumer, timeout, remote failure, a malformed reply.
    pub async fn migrate_volume_completion(
        &self,
        context: &RequestContext,
        host: &str,
        args: &MigrateVolumeCompletionArgs,
    ) -> Result<VolumeId, RpcError> {
        self.call_decoded(
            context,
            host,
            "migrate_volume_completion",
            Version::new(3, 0),
            args,
        )
        .await
    }

    /// Calls `update_migrated_volume` on the destination backend.
    ///
    /// # Errors
    /// No consumer, timeout, remote failure, a malformed reply.
    pub async fn update_migrated_volume(
        &self,
        context: &RequestContext,
        host: &str,
        args: &UpdateMigratedVolumeArgs,
    ) -> Result<MigratedVolumeUpdate, RpcError> {
        self.call_decoded(
            context,
            host,
            "update_migrated_volume",
            Version::new(3, 0),
            args,
        )
        .await
    }

    /// Asks every volume service to report capabilities now (fanout).
    ///
    /// # Errors
    /// Transport failures.
    pub async fn publish_service_capabilities(
        &self,
        context: &RequestContext,
    ) -> Result<(), RpcError> {
        let message = self.message(
            context,
            "publish_service_capabilities",
            Version::new(3, 0),
            Value::Object(Default::default()),
        )?;
        self.transport.fanout_cast(TOPIC, message).await
    }

    async fn call(
        &self,
        context: &RequestContext,
        host: &str,
        method: &str,
        version: Version,
        args: Value,
    ) -> Result<Value, RpcError> {
        let message = self.message(context, method, version, args)?;
        self.transport
            .call(&Self::target_for(host), message, self.timeout)
            .await
    }

    /// A call with typed arguments whose reply is decoded, naming the
    /// method when the reply does not decode.
    async fn call_decoded<A: Serialize, T: serde::de::DeserializeOwned>(
        &self,
        context: &RequestContext,
        host: &str,
        method: &str,
        version: Version,
        args: &A,
    ) -> Result<T, RpcError> {
        let reply = self
            .call(context, host, method, version, Self::to_value(args)?)
            .await?;
        serde_json::from_value(reply)
            .map_err(|e| RpcError::Payload(format!("reply to {method}: {e}")))
    }

    /// Calls `attachment_update` on the volume's backend; returns the
    /// flattened connection info.
    ///
    /// # Errors
    /// No consumer, timeout, remote failure, a malformed reply.
    pub async fn attachment_update(
        &self,
        context: &RequestContext,
        host: &str,
        args: &AttachmentUpdateArgs,
    ) -> Result<serde_json::Map<String, Value>, RpcError> {
        self.call_decoded(context, host, "attachment_update", Version::new(3, 9), args)
            .await
    }

    /// Calls `attachment_delete` on the volume's backend.
    ///
    /// # Errors
    /// No consumer, timeout, remote failure.
    pub async fn attachment_delete(
        &self,
        context: &RequestContext,
        host: &str,
        args: &AttachmentDeleteArgs,
    ) -> Result<(), RpcError> {
        self.call(
            context,
            host,
            "attachment_delete",
            Version::new(3, 9),
            Self::to_value(args)?,
        )
        .await
        .map(|_| ())
    }

    /// Calls `initialize_connection` on the volume's backend; returns the
    /// nested connection info.
    ///
    /// # Errors
    /// No consumer, timeout, remote failure, a malformed reply.
    pub async fn initialize_connection(
        &self,
        context: &RequestContext,
        host: &str,
        args: &InitializeConnectionArgs,
    ) -> Result<ConnectionInfo, RpcError> {
        self.call_decoded(
            context,
            host,
            "initialize_connection",
            Version::new(3, 0),
            args,
        )
        .await
    }

    /// Calls `terminate_connection` on the volume's backend.
    ///
    /// # Errors
    /// No consumer, timeout, remote failure.
    pub async fn terminate_connection(
        &self,
        context: &RequestContext,
        host: &str,
        args: &TerminateConnectionArgs,
    ) -> Result<(), RpcError> {
        self.call(
            context,
            host,
            "terminate_connection",
            Version::new(3, 0),
            Self::to_value(args)?,
        )
        .await
        .map(|_| ())
    }

    /// Calls `detach_volume` on the volume's backend.
    ///
    /// # Errors
    /// No consumer, timeout, remote failure.
    pub async fn detach_volume(
        &self,
        context: &RequestContext,
        host: &str,
        args: &DetachVolumeArgs,
    ) -> Result<(), RpcError> {
        self.call(
            context,
            host,
            "detach_volume",
            Version::new(3, 0),
            Self::to_value(args)?,
        )
        .await
        .map(|_| ())
    }

    /// Casts `remove_export` to the volume's backend.
    ///
    /// # Errors
    /// No consumer for that backend, transport failures.
    pub async fn remove_export(
        &self,
        context: &RequestContext,
        host: &str,
        args: &RemoveExportArgs,
    ) -> Result<(), RpcError> {
        self.cast(
            context,
            host,
            "remove_export",
            Version::new(3, 0),
            Self::to_value(args)?,
        )
        .await
    }

    /// Casts `create_group` to the backend the group was placed on.
    ///
    /// # Errors
    /// As [`VolumeRpcClient::create_volume`].
    pub async fn create_group(
        &self,
        context: &RequestContext,
        host: &str,
        args: &CreateGroupArgs,
    ) -> Result<(), RpcError> {
        self.cast(
            context,
            host,
            "create_group",
            Version::new(3, 0),
            Self::to_value(args)?,
        )
        .await
    }

    /// Casts `delete_group` to the group's backend.
    ///
    /// # Errors
    /// As [`VolumeRpcClient::create_volume`].
    pub async fn delete_group(
        &self,
        context: &RequestContext,
        host: &str,
        args: &DeleteGroupArgs,
    ) -> Result<(), RpcError> {
        self.cast(
            context,
            host,
            "delete_group",
            Version::new(3, 0),
            Self::to_value(args)?,
        )
        .await
    }

    /// Casts `create_group_snapshot` to the group's backend.
    ///
    /// # Errors
    /// As [`VolumeRpcClient::create_volume`].
    pub async fn create_group_snapshot(
        &self,
        context: &RequestContext,
        host: &str,
        args: &CreateGroupSnapshotArgs,
    ) -> Result<(), RpcError> {
        self.cast(
            context,
            host,
            "create_group_snapshot",
            Version::new(3, 0),
            Self::to_value(args)?,
        )
        .await
    }

    /// Casts `delete_group_snapshot` to the group's backend.
    ///
    /// # Errors
    /// As [`VolumeRpcClient::create_volume`].
    pub async fn delete_group_snapshot(
        &self,
        context: &RequestContext,
        host: &str,
        args: &DeleteGroupSnapshotArgs,
    ) -> Result<(), RpcError> {
        self.cast(
            context,
            host,
            "delete_group_snapshot",
            Version::new(3, 0),
            Self::to_value(args)?,
        )
        .await
    }

    /// Casts `manage_existing` to the backend named in the request.
    ///
    /// # Errors
    /// As [`VolumeRpcClient::create_volume`].
    pub async fn manage_existing(
        &self,
        context: &RequestContext,
        host: &str,
        args: &ManageExistingArgs,
    ) -> Result<(), RpcError> {
        self.cast(
            context,
            host,
            "manage_existing",
            Version::new(3, 0),
            Self::to_value(args)?,
        )
        .await
    }

    /// Casts `manage_existing_snapshot` to the volume's backend.
    ///
    /// # Errors
    /// As [`VolumeRpcClient::create_volume`].
    pub async fn manage_existing_snapshot(
        &self,
        context: &RequestContext,
        host: &str,
        args: &ManageExistingSnapshotArgs,
    ) -> Result<(), RpcError> {
        self.cast(
            context,
            host,
            "manage_existing_snapshot",
            Version::new(3, 0),
            Self::to_value(args)?,
        )
        .await
    }

    /// Casts `unmanage_volume` to the volume's backend.
    ///
    /// # Errors
    /// As [`VolumeRpcClient::create_volume`].
    pub async fn unmanage_volume(
        &self,
        context: &RequestContext,
        host: &str,
        args: &UnmanageVolumeArgs,
    ) -> Result<(), RpcError> {
        self.cast(
            context,
            host,
            "unmanage_volume",
            Version::new(3, 0),
            Self::to_value(args)?,
        )
        .await
    }

    /// Casts `unmanage_snapshot` to the snapshot's backend.
    ///
    /// # Errors
    /// As [`VolumeRpcClient::create_volume`].
    pub async fn unmanage_snapshot(
        &self,
        context: &RequestContext,
        host: &str,
        args: &UnmanageSnapshotArgs,
    ) -> Result<(), RpcError> {
        self.cast(
            context,
            host,
            "unmanage_snapshot",
            Version::new(3, 0),
            Self::to_value(args)?,
        )
        .await
    }

    /// Calls `get_manageable_volumes` on one backend.
    ///
    /// # Errors
    /// No consumer, timeout, remote failure, a malformed reply.
    pub async fn get_manageable_volumes(
        &self,
        context: &RequestContext,
        host: &str,
    ) -> Result<Vec<Value>, RpcError> {
        self.call_decoded(
            context,
            host,
            "get_manageable_volumes",
            Version::new(3, 0),
            &serde_json::Map::new(),
        )
        .await
    }

    /// Calls `get_manageable_snapshots` on one backend.
    ///
    /// # Errors
    /// As [`VolumeRpcClient::get_manageable_volumes`].
    pub async fn get_manageable_snapshots(
        &self,
        context: &RequestContext,
        host: &str,
    ) -> Result<Vec<Value>, RpcError> {
        self.call_decoded(
            context,
            host,
            "get_manageable_snapshots",
            Version::new(3, 0),
            &serde_json::Map::new(),
        )
        .await
    }
}
