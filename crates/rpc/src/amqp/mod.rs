//! The AMQP 0-9-1 (RabbitMQ) transport of multi-node deployments, on lapin.
//!
//! # Topology (oslo.messaging's rabbit driver, as Cinder uses it)
//!
//! | what | AMQP object |
//! |---|---|
//! | control exchange | topic exchange `control_exchange` (default `cinder`) |
//! | cast/call to a topic | queue `<topic>`, routing key `<topic>` on the control exchange |
//! | cast/call to a server | queue `<topic>.<server>`, routing key `<topic>.<server>` |
//! | fanout cast | fanout exchange `<topic>_fanout`; one exclusive auto-delete queue `<topic>_fanout_<uuid>` per consumer |
//! | replies | one exclusive auto-delete queue `reply_<uuid>` per connection, via the default exchange |
//! | notifications | control exchange, routing key and queue `notifications.<priority>` (`notifications.info`, `notifications.error`) |
//!
//! Topic and server queues follow oslo's defaults: durable only with
//! `amqp_durable_queues` (off by default: RPC messages are short-lived and
//! transient queues are cheaper for the broker) and never auto-deleted, so
//! messages wait while a service reconnects. A consumer that is *stopped*
//! removes the queues it leaves unused and empty (see `consumer.rs`).
//!
//! # Delivery guarantees
//!
//! - Casts and calls are published with publisher confirms and `mandatory`:
//!   success means the broker routed the message to a queue; a queue
//!   nobody declared is [`RpcError::Unroutable`] at once.
//! - Consumers acknowledge after the handler (and the reply) completed.
//! - Fanout casts are not `mandatory` (nobody listening is fine).
//!
//! # Robustness
//!
//! AMQP heartbeats (default 30 s) detect dead peers; a supervisor
//! reconnects with jittered exponential backoff over the failover hosts and
//! every registered consumer re-declares its queues by itself on the new
//! connection. Publishes during a disconnection wait up to
//! `reconnect_wait` for the reconnect; calls whose reply queue died fail at
//! once. See `connection.rs` for the details.
//!
//! # TLS
//!
//! `amqps://`, `?ssl=1` or `[oslo_messaging_rabbit] ssl = true` connect
//! with rustls (`tls.rs`): the broker's certificate is verified against
//! `ssl_ca_file` (or the system's roots) and the host name; a failed
//! handshake is an error naming the broker, never a plain-text retry.

mod call;
mod connection;
mod consumer;
mod publisher;
mod tls;
pub mod url;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use clinker_config::RabbitSslOptions;
use clinker_runtime::CancellationToken;
use lapin::BasicProperties;
use serde_json::Value;

pub use url::{BrokerAddress, TransportUrl, UrlError};

use connection::Shared;
use publisher::{Outgoing, Prepare};

use crate::{
    ConsumerHandle, Notification, RpcError, RpcHandler, RpcMessage, Subscription, Target, Transport,
};

/// How to reach and use the broker. [`AmqpOptions::new`] gives oslo's and
/// Clinker's defaults.
#[derive(Clone)]
pub struct AmqpOptions {
    /// `transport_url`, e.g. `rabbit://user:pass@host:5672/vhost`.
    pub transport_url: String,
    /// `control_exchange`: the topic exchange of RPC and notifications.
    pub control_exchange: String,
    /// `amqp_durable_queues`: declare the control exchange, topic, server
    /// and notification queues durable.
    pub amqp_durable_queues: bool,
    /// AMQP heartbeat interval asked of the broker (the lower of this and
    /// the broker's wins); zero follows the broker.
    pub heartbeat: Duration,
    /// Bound on connecting and setting up one connection.
    pub connect_timeout: Duration,
    /// First reconnect delay (doubling, jittered).
    pub reconnect_interval: Duration,
    /// Cap of the reconnect delay.
    pub reconnect_max_interval: Duration,
    /// How long a publish or a new consumer waits for a reconnect before
    /// failing with [`RpcError::Transport`].
    pub reconnect_wait: Duration,
    /// How long one publish waits for the broker's answers (declares and
    /// the confirm) before failing with [`RpcError::Transport`].
    pub publish_timeout: Duration,
    /// Unacknowledged deliveries per consumer: the bound on concurrent
    /// handlers of one queue.
    pub prefetch_count: u16,
    /// How long stopping a consumer waits for its running handlers before
    /// leaving them to finish in the background.
    pub stop_grace: Duration,
    /// oslo's `notification_topics` (one topic): routing keys are
    /// `<topic>.<priority>`.
    pub notification_topic: String,
    /// Shown as the connection name in `rabbitmqctl list_connections`.
    pub connection_name: String,
    /// `[oslo_messaging_rabbit] ssl` and its files; the `transport_url`
    /// (`amqps://`, `?ssl=`) overrides `ssl.enabled`.
    pub ssl: RabbitSslOptions,
}

impl AmqpOptions {
    /// Defaults for `transport_url`.
    pub fn new(transport_url: impl Into<String>) -> Self {
        Self {
            transport_url: transport_url.into(),
            control_exchange: "cinder".to_owned(),
            amqp_durable_queues: false,
            heartbeat: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            reconnect_interval: Duration::from_millis(200),
            reconnect_max_interval: Duration::from_secs(10),
            reconnect_wait: Duration::from_secs(5),
            publish_timeout: Duration::from_secs(10),
            prefetch_count: 64,
            stop_grace: Duration::from_secs(5),
            notification_topic: "notifications".to_owned(),
            connection_name: "clinker".to_owned(),
            ssl: RabbitSslOptions::default(),
        }
    }
}

impl std::fmt::Debug for AmqpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpOptions")
            .field("transport_url", &url::redact(&self.transport_url))
            .field("control_exchange", &self.control_exchange)
            .field("amqp_durable_queues", &self.amqp_durable_queues)
            .field("heartbeat", &self.heartbeat)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect_interval", &self.reconnect_interval)
            .field("reconnect_max_interval", &self.reconnect_max_interval)
            .field("reconnect_wait", &self.reconnect_wait)
            .field("publish_timeout", &self.publish_timeout)
            .field("prefetch_count", &self.prefetch_count)
            .field("stop_grace", &self.stop_grace)
            .field("notification_topic", &self.notification_topic)
            .field("connection_name", &self.connection_name)
            .field("ssl", &self.ssl)
            .finish()
    }
}

/// Shuts the connection down when the last transport handle and the last
/// consumer are gone.
#[derive(Debug)]
struct ShutdownGuard(CancellationToken);

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// The RabbitMQ transport. Cheap to clone; clones share one connection.
#[derive(Clone, Debug)]
pub struct AmqpTransport {
    shared: Arc<Shared>,
    guard: Arc<ShutdownGuard>,
}

impl AmqpTransport {
    /// Parses the URL, connects to the first broker that answers (trying
    /// each once, from a random one, as oslo shuffles its hosts) and starts
    /// the reconnect supervisor.
    ///
    /// # Errors
    /// [`RpcError::Transport`] for a bad URL, unusable TLS files, or when
    /// no broker answers (a failed TLS handshake included).
    pub async fn connect(options: AmqpOptions) -> Result<Self, RpcError> {
        let url = TransportUrl::parse(&options.transport_url)
            .map_err(|e| RpcError::Transport(e.to_string()))?;
        let use_tls = url.ssl.unwrap_or(options.ssl.enabled);
        let tls = if use_tls {
            Some(tls::connector(&options.ssl).map_err(RpcError::Transport)?)
        } else {
            let ssl = &options.ssl;
            if ssl.ca_file.is_some() || ssl.cert_file.is_some() {
                tracing::warn!(
                    broker = %url,
                    "[oslo_messaging_rabbit] ssl files are set but TLS is off (ssl = false or ?ssl=0 in transport_url): the broker is reached in plain text"
                );
            }
            None
        };
        let shared = Shared::new(options, url, tls);
        let first = rand::random_range(0..shared.url.hosts.len());
        let (session, events, index) =
            connection::connect_any(&shared, first, 1)
                .await
                .map_err(|e| {
                    RpcError::Transport(format!(
                        "cannot connect to the message broker {}: {e}",
                        shared.url
                    ))
                })?;
        tracing::info!(
            broker = %session.broker,
            tls = shared.tls.is_some(),
            vhost = %shared.url.virtual_host,
            control_exchange = %shared.options.control_exchange,
            "connected to the message broker"
        );
        shared.install(session.clone());
        tokio::spawn(connection::supervise(
            shared.clone(),
            session,
            events,
            index,
        ));
        let guard = Arc::new(ShutdownGuard(shared.shutdown.clone()));
        Ok(Self { shared, guard })
    }

    /// What [`AmqpTransport::connect`] checks before connecting: the URL,
    /// and with TLS on the `ssl_*` files (`clinker manage config check`).
    /// Whether TLS is on.
    ///
    /// # Errors
    /// [`RpcError::Transport`] naming the URL problem or the option.
    pub fn check(options: &AmqpOptions) -> Result<bool, RpcError> {
        let url = TransportUrl::parse(&options.transport_url)
            .map_err(|e| RpcError::Transport(e.to_string()))?;
        let use_tls = url.ssl.unwrap_or(options.ssl.enabled);
        if use_tls {
            tls::connector(&options.ssl).map_err(RpcError::Transport)?;
        }
        Ok(use_tls)
    }

    /// The parsed `transport_url` (printable: no passwords).
    pub fn url(&self) -> &TransportUrl {
        &self.shared.url
    }
}

#[async_trait::async_trait]
impl Transport for AmqpTransport {
    async fn cast(&self, target: &Target, message: RpcMessage) -> Result<(), RpcError> {
        let outgoing = Outgoing {
            exchange: self.shared.options.control_exchange.clone(),
            routing_key: target.queue(),
            payload: wire::encode_message(&message)?,
            properties: BasicProperties::default(),
            mandatory: true,
            prepare: Prepare::Nothing,
        };
        publisher::send(&self.shared, &outgoing).await
    }

    async fn call(
        &self,
        target: &Target,
        message: RpcMessage,
        timeout: Duration,
    ) -> Result<Value, RpcError> {
        call::call(&self.shared, target, message, timeout).await
    }

    async fn fanout_cast(&self, topic: &str, message: RpcMessage) -> Result<(), RpcError> {
        let outgoing = Outgoing {
            exchange: format!("{topic}_fanout"),
            routing_key: topic.to_owned(),
            payload: wire::encode_message(&message)?,
            properties: BasicProperties::default(),
            mandatory: false,
            prepare: Prepare::FanoutExchange,
        };
        publisher::send(&self.shared, &outgoing).await
    }

    async fn consume(
        &self,
        subscriptions: Vec<Subscription>,
        handler: Arc<dyn RpcHandler>,
    ) -> Result<ConsumerHandle, RpcError> {
        consumer::start(
            self.shared.clone(),
            self.guard.clone(),
            subscriptions,
            handler,
        )
        .await
    }

    async fn notify(&self, notification: Notification) -> Result<(), RpcError> {
        let outgoing = Outgoing {
            exchange: self.shared.options.control_exchange.clone(),
            routing_key: wire::notification_routing_key(
                &self.shared.options.notification_topic,
                &notification.priority,
            ),
            payload: wire::encode_notification(&notification)?,
            // Persistent: kept across a broker restart when the queues are
            // durable (`amqp_durable_queues`).
            properties: BasicProperties::default().with_delivery_mode(2),
            mandatory: false,
            prepare: Prepare::NotificationQueue,
        };
        publisher::send(&self.shared, &outgoing).await
    }
}
