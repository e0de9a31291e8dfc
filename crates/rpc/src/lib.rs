//! Clinker's RPC between the API, the scheduler and the volume services.
//!
//! - [`Transport`]: cast, call (with `rpc_response_timeout`), fanout cast,
//!   consumers and notifications. [`local::LocalTransport`] runs everything
//!   in one process; [`amqp::AmqpTransport`] implements the same trait on
//!   RabbitMQ for multi-node deployments.
//! - [`dispatch`]: the seed's versioned dispatch (serve a message when its
//!   major equals the server's and its minor is not higher), with distinct
//!   errors for an unsupported version and a missing method.
//! - [`api`]: `rpc_api!`, which declares an RPC API once and generates its
//!   handler trait, version table, dispatch and typed client.
//! - [`volume`], [`scheduler`] and [`backup`]: the APIs declared with it
//!   (Cinder's `rpcapi.py`): argument types and the method lists.
//! - [`notify`]: usage notifications in oslo.messaging's envelope.
//!
//! Depends on `clinker-types` and `clinker-runtime`.

pub mod amqp;
pub mod api;
pub mod backoff;
pub mod backup;
pub mod cast;
pub mod dispatch;
pub mod local;
pub mod notify;
pub mod scheduler;
pub mod version;
pub mod volume;

#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

use std::sync::Arc;
use std::time::Duration;

use clinker_types::{ErrorKind, RemoteError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use version::Version;

/// Who asked, carried with every message (Cinder's serialized
/// `RequestContext`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestContext {
    /// `req-<uuid>` of the API request.
    pub request_id: String,
    /// The caller's `X-OpenStack-Request-ID`, when it sent one.
    #[serde(default)]
    pub global_request_id: Option<String>,
    /// User id.
    pub user_id: String,
    /// Project id.
    pub project_id: String,
    /// Admin context.
    #[serde(default)]
    pub is_admin: bool,
    /// Role names.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The domain of the caller's project (Keystone tokens only).
    #[serde(default)]
    pub project_domain_id: Option<String>,
    /// Role names of a valid `X-Service-Token` sent with the request
    /// (keystonemiddleware's `X-Service-Roles`); empty without one.
    #[serde(default)]
    pub service_roles: Vec<String>,
    /// Whether the request came with a service token carrying one of
    /// `[keystone_authtoken] service_token_roles` (Cinder's
    /// `is_service_request`, which the attachment-delete safety check of
    /// CVE-2023-2088 relies on).
    #[serde(default)]
    pub is_service: bool,
    /// The caller's token (Keystone only), forwarded to the services that
    /// act for the user (Glance), as Cinder's serialized context carries
    /// `auth_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<AuthToken>,
    /// The caller's service catalog, reduced to the services Cinder keeps
    /// (Keystone only, and only when something needs it: the Glance
    /// endpoint when `glance_api_servers` is unset).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_catalog: Vec<clinker_types::catalog::CatalogService>,
}

/// A token that never shows in logs (`Debug` prints a placeholder).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuthToken(pub String);

impl AuthToken {
    /// The token.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthToken(***)")
    }
}

impl RequestContext {
    /// An admin context for internal work (periodic tasks, recovery).
    pub fn internal(reason: &str) -> Self {
        Self {
            request_id: format!("req-{}", uuid::Uuid::new_v4()),
            global_request_id: None,
            user_id: reason.to_owned(),
            project_id: reason.to_owned(),
            is_admin: true,
            roles: vec!["admin".to_owned()],
            ..Self::default()
        }
    }
}

/// One RPC message: oslo.messaging's `{method, args, version}` plus the
/// request context.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RpcMessage {
    /// Method name.
    pub method: String,
    /// Message version.
    pub version: Version,
    /// Named arguments.
    pub args: Value,
    /// The request context.
    pub context: RequestContext,
}

/// Where a cast or call goes: a topic, optionally one server's queue on it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// `cinder-volume`, `cinder-scheduler`, …
    pub topic: String,
    /// A server on the topic (`host@backend`); `None` for the shared queue.
    pub server: Option<String>,
}

impl Target {
    /// The shared queue of a topic.
    pub fn topic(topic: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            server: None,
        }
    }

    /// One server's queue.
    pub fn server(topic: &str, server: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            server: Some(server.to_owned()),
        }
    }

    /// The queue name, oslo.messaging's `topic` or `topic.server`.
    pub fn queue(&self) -> String {
        match &self.server {
            Some(server) => format!("{}.{server}", self.topic),
            None => self.topic.clone(),
        }
    }
}

/// What a consumer subscribes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subscription {
    /// A queue (shared topic queue or a server queue).
    Queue(Target),
    /// The fanout exchange of a topic (`<topic>_fanout`).
    Fanout(String),
}

/// Why an RPC failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    /// Nobody consumes the target queue (AMQP `mandatory` return).
    #[error("no consumer for queue {queue}: the service is not running")]
    Unroutable {
        /// The queue.
        queue: String,
    },
    /// A call got no reply in time.
    #[error("timed out after {after:?} waiting for a reply to {method} on {queue}")]
    Timeout {
        /// The method.
        method: String,
        /// The queue.
        queue: String,
        /// The timeout.
        after: Duration,
    },
    /// The remote side answered with an error.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The transport itself failed (connection lost, broker refused).
    #[error("transport failure: {0}")]
    Transport(String),
    /// A message or reply could not be (de)serialized.
    #[error("malformed RPC payload: {0}")]
    Payload(String),
}

impl RpcError {
    /// The classification.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RpcError::Unroutable { .. } | RpcError::Timeout { .. } | RpcError::Transport(_) => {
                ErrorKind::Unavailable
            }
            RpcError::Remote(e) => e.kind,
            RpcError::Payload(_) => ErrorKind::Internal,
        }
    }
}

/// Serves messages delivered to a consumer.
#[async_trait::async_trait]
pub trait RpcHandler: Send + Sync + 'static {
    /// Handles one message; the value is the reply to a call (ignored for
    /// casts).
    async fn handle(&self, message: RpcMessage) -> Result<Value, RemoteError>;
}

/// A running consumer; stops consuming when stopped or dropped.
#[derive(Debug)]
pub struct ConsumerHandle {
    stop: clinker_runtime::CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ConsumerHandle {
    /// Wraps a consumer task.
    pub fn new(
        stop: clinker_runtime::CancellationToken,
        task: tokio::task::JoinHandle<()>,
    ) -> Self {
        Self {
            stop,
            task: Some(task),
        }
    }

    /// Stops taking new messages and waits for the consumer loop to exit
    /// (messages already being handled run on). Once this returns, a cast
    /// to a queue that no other consumer serves is
    /// [`RpcError::Unroutable`].
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ConsumerHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A notification in oslo.messaging's envelope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique id.
    pub message_id: String,
    /// `volume.<host>` and friends.
    pub publisher_id: String,
    /// `volume.create.end`, …
    pub event_type: String,
    /// `INFO` or `ERROR`.
    pub priority: String,
    /// The usage payload.
    pub payload: Value,
    /// `YYYY-MM-DD HH:MM:SS.ffffff`.
    pub timestamp: String,
}

/// Moves messages between services.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + std::fmt::Debug + 'static {
    /// Fire-and-forget to one queue. Fails fast when nobody consumes it.
    ///
    /// # Errors
    /// [`RpcError::Unroutable`], [`RpcError::Transport`].
    async fn cast(&self, target: &Target, message: RpcMessage) -> Result<(), RpcError>;

    /// Request/reply to one queue, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RpcError::Unroutable`], [`RpcError::Timeout`], [`RpcError::Remote`].
    async fn call(
        &self,
        target: &Target,
        message: RpcMessage,
        timeout: Duration,
    ) -> Result<Value, RpcError>;

    /// Delivers to every consumer of a topic's fanout (none is not an error).
    ///
    /// # Errors
    /// [`RpcError::Transport`].
    async fn fanout_cast(&self, topic: &str, message: RpcMessage) -> Result<(), RpcError>;

    /// Starts consuming `subscriptions`, handing each message to `handler`
    /// (concurrently; a call's reply is sent when its handler returns).
    /// Returns once the subscriptions are live: a cast or fanout cast sent
    /// after this returns reaches the new consumer.
    ///
    /// # Errors
    /// [`RpcError::Transport`].
    async fn consume(
        &self,
        subscriptions: Vec<Subscription>,
        handler: Arc<dyn RpcHandler>,
    ) -> Result<ConsumerHandle, RpcError>;

    /// Publishes a notification (`notifications.<priority>`).
    ///
    /// # Errors
    /// [`RpcError::Transport`].
    async fn notify(&self, notification: Notification) -> Result<(), RpcError>;
}

/// A shared transport.
pub type TransportHandle = Arc<dyn Transport>;

#[cfg(test)]
mod context_tests {
    use super::RequestContext;

    #[test]
    fn contexts_from_older_senders_still_decode() {
        // A message serialized before the service-token fields existed.
        let old = serde_json::json!({
            "request_id": "req-1", "user_id": "u", "project_id": "p",
            "is_admin": false, "roles": ["member"],
        });
        let ctx: RequestContext = serde_json::from_value(old).unwrap();
        assert!(!ctx.is_service);
        assert!(ctx.service_roles.is_empty());
        assert_eq!(ctx.project_domain_id, None);
    }
}
