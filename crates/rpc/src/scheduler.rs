//! The scheduler's RPC API (Cinder's `scheduler/rpcapi.py`).
//!
//! Version history (Cinder's numbering):
//! - 3.0: create_volume, get_pools.
//! - 3.2: extend_volume.
//! - create_group is a 3.0 method (Cinder's 2.x, kept at 3.0).
//! - 3.3: update_service_capabilities carries a timestamp.
//! - 3.0 (Cinder baseline): retype.
//! - 3.12: current.

use std::sync::Arc;
use std::time::Duration;

use clinker_types::request_spec::{FilterProperties, RequestSpec};
use clinker_types::{ErrorKind, GroupId, RemoteError, VolumeId, VolumeTypeId};

use crate::volume::MigrationPolicy;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dispatch::{DispatchError, Endpoint, decode_args};
use crate::{RequestContext, RpcError, RpcHandler, RpcMessage, Target, TransportHandle, Version};

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

/// What the scheduler manager serves.
#[async_trait::async_trait]
pub trait SchedulerManagerApi: Send + Sync + 'static {
    /// Places a volume and casts its creation to the chosen backend.
    async fn create_volume(
        &self,
        context: RequestContext,
        args: ScheduleCreateVolumeArgs,
    ) -> Result<(), RemoteError>;
    /// Checks room for an extend and casts it to the volume's backend.
    async fn extend_volume(
        &self,
        context: RequestContext,
        args: ScheduleExtendVolumeArgs,
    ) -> Result<(), RemoteError>;
    /// Stores a capability report.
    async fn update_service_capabilities(
        &self,
        context: RequestContext,
        args: UpdateServiceCapabilitiesArgs,
    ) -> Result<(), RemoteError>;
    /// The pools it knows (`scheduler-stats/get_pools`).
    async fn get_pools(
        &self,
        context: RequestContext,
        args: GetPoolsArgs,
    ) -> Result<Value, RemoteError>;
    /// Places a generic group and casts its creation to the chosen backend.
    async fn create_group(
        &self,
        _context: RequestContext,
        _args: ScheduleCreateGroupArgs,
    ) -> Result<(), RemoteError> {
        Err(RemoteError::new(
            ErrorKind::NotImplemented,
            "create_group is not served by this scheduler",
        ))
    }
    /// Places a retype (in place, or on another backend when a migration
    /// is allowed) and casts it to the volume's backend.
    async fn retype(
        &self,
        _context: RequestContext,
        _args: ScheduleRetypeArgs,
    ) -> Result<(), RemoteError> {
        Err(RemoteError::new(
            ErrorKind::NotImplemented,
            "retype is not served by this scheduler",
        ))
    }
    /// Checks the destination of a migration and casts it to the volume's
    /// backend.
    async fn migrate_volume(
        &self,
        _context: RequestContext,
        _args: ScheduleMigrateVolumeArgs,
    ) -> Result<(), RemoteError> {
        Err(RemoteError::new(
            ErrorKind::NotImplemented,
            "migrate_volume is not served by this scheduler",
        ))
    }
}

const METHODS: &[&str] = &[
    "create_volume",
    "extend_volume",
    "update_service_capabilities",
    "get_pools",
    "create_group",
    "retype",
    "migrate_volume",
];

/// Dispatches scheduler RPC messages to a [`SchedulerManagerApi`].
pub struct SchedulerEndpoint {
    api: Arc<dyn SchedulerManagerApi>,
    endpoint: Endpoint,
}

impl std::fmt::Debug for SchedulerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerEndpoint")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl SchedulerEndpoint {
    /// Serves `api` at [`CURRENT_VERSION`].
    pub fn new(api: Arc<dyn SchedulerManagerApi>) -> Self {
        Self {
            api,
            endpoint: Endpoint::new(CURRENT_VERSION, METHODS),
        }
    }
}

#[async_trait::async_trait]
impl RpcHandler for SchedulerEndpoint {
    async fn handle(&self, message: RpcMessage) -> Result<Value, RemoteError> {
        self.endpoint.check(&message)?;
        let ctx = message.context.clone();
        match message.method.as_str() {
            "create_volume" => self
                .api
                .create_volume(ctx, decode_args(&message)?)
                .await
                .map(|()| Value::Null),
            "extend_volume" => self
                .api
                .extend_volume(ctx, decode_args(&message)?)
                .await
                .map(|()| Value::Null),
            "update_service_capabilities" => self
                .api
                .update_service_capabilities(ctx, decode_args(&message)?)
                .await
                .map(|()| Value::Null),
            "get_pools" => self.api.get_pools(ctx, decode_args(&message)?).await,
            "create_group" => self
                .api
                .create_group(ctx, decode_args(&message)?)
                .await
                .map(|()| Value::Null),
            "retype" => self
                .api
                .retype(ctx, decode_args(&message)?)
                .await
                .map(|()| Value::Null),
            "migrate_volume" => self
                .api
                .migrate_volume(ctx, decode_args(&message)?)
                .await
                .map(|()| Value::Null),
            other => Err(DispatchError::NoSuchMethod {
                method: other.to_owned(),
            }
            .into()),
        }
    }
}

/// The client (Cinder's `SchedulerAPI`).
#[derive(Clone, Debug)]
pub struct SchedulerRpcClient {
    transport: TransportHandle,
    timeout: Duration,
}

impl SchedulerRpcClient {
    /// A client with `rpc_response_timeout`.
    pub fn new(transport: TransportHandle, timeout: Duration) -> Self {
        Self { transport, timeout }
    }

    /// The transport it sends on (the volume manager reaches other
    /// backends over the same bus).
    pub fn transport(&self) -> TransportHandle {
        self.transport.clone()
    }

    /// `rpc_response_timeout`.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn message<T: Serialize>(
        context: &RequestContext,
        method: &str,
        version: Version,
        args: &T,
    ) -> Result<RpcMessage, RpcError> {
        Ok(RpcMessage {
            method: method.to_owned(),
            version,
            args: serde_json::to_value(args).map_err(|e| RpcError::Payload(e.to_string()))?,
            context: context.clone(),
        })
    }

    /// Casts `create_volume` to the schedulers' shared queue.
    ///
    /// # Errors
    /// No scheduler running, transport failures.
    pub async fn create_volume(
        &self,
        context: &RequestContext,
        args: &ScheduleCreateVolumeArgs,
    ) -> Result<(), RpcError> {
        let message = Self::message(context, "create_volume", Version::new(3, 0), args)?;
        self.transport.cast(&Target::topic(TOPIC), message).await
    }

    /// Casts `extend_volume`.
    ///
    /// # Errors
    /// As [`SchedulerRpcClient::create_volume`].
    pub async fn extend_volume(
        &self,
        context: &RequestContext,
        args: &ScheduleExtendVolumeArgs,
    ) -> Result<(), RpcError> {
        let message = Self::message(context, "extend_volume", Version::new(3, 2), args)?;
        self.transport.cast(&Target::topic(TOPIC), message).await
    }

    /// Casts `retype` to the schedulers' shared queue.
    ///
    /// # Errors
    /// As [`SchedulerRpcClient::create_volume`].
    pub async fn retype(
        &self,
        context: &RequestContext,
        args: &ScheduleRetypeArgs,
    ) -> Result<(), RpcError> {
        let message = Self::message(context, "retype", Version::new(3, 0), args)?;
        self.transport.cast(&Target::topic(TOPIC), message).await
    }

    /// Casts `migrate_volume` to the schedulers.
    ///
    /// # Errors
    /// As [`SchedulerRpcClient::create_volume`].
    pub async fn migrate_volume(
        &self,
        context: &RequestContext,
        args: &ScheduleMigrateVolumeArgs,
    ) -> Result<(), RpcError> {
        let message = Self::message(context, "migrate_volume", Version::new(3, 0), args)?;
        self.transport.cast(&Target::topic(TOPIC), message).await
    }

    /// Fanout-casts a capability report to every scheduler.
    ///
    /// # Errors
    /// Transport failures.
    pub async fn update_service_capabilities(
        &self,
        context: &RequestContext,
        args: &UpdateServiceCapabilitiesArgs,
    ) -> Result<(), RpcError> {
        let message = Self::message(
            context,
            "update_service_capabilities",
            Version::new(3, 3),
            args,
        )?;
        self.transport.fanout_cast(TOPIC, message).await
    }

    /// Calls `get_pools` on one scheduler.
    ///
    /// # Errors
    /// No scheduler, timeout, remote failure.
    pub async fn get_pools(
        &self,
        context: &RequestContext,
        args: &GetPoolsArgs,
    ) -> Result<Value, RpcError> {
        let message = Self::message(context, "get_pools", Version::new(3, 0), args)?;
        self.transport
            .call(&Target::topic(TOPIC), message, self.timeout)
            .await
    }

    /// Casts `create_group` to the schedulers' shared queue.
    ///
    /// # Errors
    /// As [`SchedulerRpcClient::create_volume`].
    pub async fn create_group(
        &self,
        context: &RequestContext,
        args: &ScheduleCreateGroupArgs,
    ) -> Result<(), RpcError> {
        let message = Self::message(context, "create_group", Version::new(3, 0), args)?;
        self.transport.cast(&Target::topic(TOPIC), message).await
    }
}
