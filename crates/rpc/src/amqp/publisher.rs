//! Publishing with publisher confirms and the `mandatory` flag.
//!
//! A `mandatory` message that no queue binds is handed back by the broker
//! (`basic.return`) before its confirm, which makes "nobody consumes this
//! queue" an immediate [`RpcError::Unroutable`] rather than a message lost
//! in an exchange.
//!
//! lapin attaches a returned message to whichever confirm it resolves
//! next. With several publishes awaiting confirms on one channel that may
//! be the wrong one (confirms can be batched with `multiple`, and a
//! persistent message's confirm can trail a later transient one's return).
//! Each publisher channel therefore carries at most one unconfirmed message
//! at a time; a small pool of channels per connection keeps publishes
//! concurrent. The returned message's `message_id` is checked against ours
//! as a tripwire.

use std::sync::PoisonError;
use std::sync::atomic::{AtomicUsize, Ordering};

use lapin::Confirmation;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use tokio::sync::{Mutex, MutexGuard};
use tokio::time::Instant;

use super::AmqpOptions;
use super::connection::{Session, Shared};
use super::wire;
use crate::RpcError;

/// Publisher channels per connection: how many publishes may await their
/// confirm at the same time.
const PUBLISHER_CHANNELS: usize = 4;

/// The publisher channels of one connection.
#[derive(Debug)]
pub(crate) struct PublisherPool {
    channels: Vec<Mutex<Channel>>,
    next: AtomicUsize,
}

impl PublisherPool {
    /// Opens the channels (confirm mode) and declares the control exchange.
    pub(crate) async fn open(
        connection: &Connection,
        options: &AmqpOptions,
    ) -> Result<Self, lapin::Error> {
        let mut channels = Vec::with_capacity(PUBLISHER_CHANNELS);
        for _ in 0..PUBLISHER_CHANNELS {
            channels.push(Mutex::new(
                open_publisher_channel(connection, options).await?,
            ));
        }
        Ok(Self {
            channels,
            next: AtomicUsize::new(0),
        })
    }

    /// A free channel if there is one, else the next in turn.
    async fn acquire(&self) -> MutexGuard<'_, Channel> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for offset in 0..self.channels.len() {
            let slot = &self.channels[(start + offset) % self.channels.len()];
            if let Ok(channel) = slot.try_lock() {
                return channel;
            }
        }
        self.channels[start % self.channels.len()].lock().await
    }
}

async fn open_publisher_channel(
    connection: &Connection,
    options: &AmqpOptions,
) -> Result<Channel, lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    declare_control_exchange(&channel, options).await?;
    Ok(channel)
}

/// The topic exchange every topic and server queue binds to (oslo's
/// `control_exchange`). Durable only with `amqp_durable_queues`, never
/// auto-deleted: oslo's defaults, so that a restarted broker and existing
/// OpenStack tooling agree on its properties.
pub(crate) async fn declare_control_exchange(
    channel: &Channel,
    options: &AmqpOptions,
) -> Result<(), lapin::Error> {
    channel
        .exchange_declare(
            options.control_exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: options.amqp_durable_queues,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
}

/// The fanout exchange of a topic, `<topic>_fanout`.
///
/// Unlike oslo (auto-delete), it is never auto-deleted: an auto-delete
/// exchange disappears with its last queue, and a fanout cast racing that
/// deletion gets a 404 that closes the publishing channel. A leftover
/// fanout exchange with no queue costs nothing.
pub(crate) async fn declare_fanout_exchange(
    channel: &Channel,
    exchange: &str,
) -> Result<(), lapin::Error> {
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// What to make sure exists before publishing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prepare {
    /// The exchange is declared when the session starts.
    Nothing,
    /// Declare the fanout exchange (consumers may not have yet).
    FanoutExchange,
    /// Declare the queue named by the routing key, bound to the exchange,
    /// once per connection, so notifications are kept until a consumer
    /// (Ceilometer) reads them (oslo's `_publish_and_creates_default_queue`).
    NotificationQueue,
}

/// One message to publish.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) exchange: String,
    pub(crate) routing_key: String,
    pub(crate) payload: Vec<u8>,
    /// `content_type` and `message_id` are added by [`publish`].
    pub(crate) properties: BasicProperties,
    pub(crate) mandatory: bool,
    pub(crate) prepare: Prepare,
}

/// Why a publish did not go through.
#[derive(Debug)]
pub(crate) enum PublishFailure {
    /// `mandatory` and no queue is bound for the routing key.
    Unroutable,
    /// The broker refused the message (`basic.nack`: an internal error).
    Nacked,
    /// No answer in time (a blocked or overloaded broker).
    NoAnswer,
    /// The channel or connection failed; the message may or may not have
    /// reached the broker.
    Lost(String),
}

impl PublishFailure {
    pub(crate) fn into_rpc_error(self, queue: &str) -> RpcError {
        match self {
            PublishFailure::Unroutable => RpcError::Unroutable {
                queue: queue.to_owned(),
            },
            PublishFailure::Nacked => {
                RpcError::Transport(format!("the message broker refused a message for {queue}"))
            }
            PublishFailure::NoAnswer => RpcError::Transport(format!(
                "the message broker did not answer in time while publishing to {queue}"
            )),
            PublishFailure::Lost(reason) => {
                RpcError::Transport(format!("publishing to {queue} failed: {reason}"))
            }
        }
    }
}

/// Reports a [`PublishFailure::Lost`]: when the connection itself is down
/// the session is replaced; a channel-only failure is repaired on the
/// channel's next use.
pub(crate) fn note_lost(session: &Session, reason: &str) {
    if !session.connection_alive() {
        session.mark_broken(&format!("publish failed: {reason}"));
    }
}

/// Publishes one message on `session` and waits for its confirm.
///
/// Bounded by `publish_timeout` as a whole: a broker under a resource alarm
/// stops reading from publishing connections, and neither a declare nor a
/// confirm would ever come back.
pub(crate) async fn publish(
    session: &Session,
    options: &AmqpOptions,
    outgoing: &Outgoing,
) -> Result<(), PublishFailure> {
    let mut channel = session.publishers.acquire().await;
    let bounded = tokio::time::timeout(
        options.publish_timeout,
        publish_on(&mut channel, session, options, outgoing),
    );
    match bounded.await {
        Ok(result) => result,
        Err(_) => {
            // A late answer (a confirm, a declare-ok) would be paired with
            // the next publish on this channel: retire it instead; the next
            // use opens a fresh one.
            let retired = channel.clone();
            tokio::spawn(async move {
                let _ = retired.close(200, "broker answer timed out".into()).await;
            });
            Err(PublishFailure::NoAnswer)
        }
    }
}

async fn publish_on(
    channel: &mut Channel,
    session: &Session,
    options: &AmqpOptions,
    outgoing: &Outgoing,
) -> Result<(), PublishFailure> {
    let lost = |e: lapin::Error| PublishFailure::Lost(e.to_string());
    if !channel.status().connected() {
        if !session.connection_alive() {
            return Err(PublishFailure::Lost("the connection is closed".into()));
        }
        // A channel-level error (say a 404 on an exchange an operator
        // deleted) closed this channel; the connection is fine.
        tracing::info!(broker = %session.broker, "reopening a closed publisher channel");
        *channel = open_publisher_channel(&session.connection, options)
            .await
            .map_err(lost)?;
    }
    match outgoing.prepare {
        Prepare::Nothing => {}
        Prepare::FanoutExchange => declare_fanout_exchange(channel, &outgoing.exchange)
            .await
            .map_err(lost)?,
        Prepare::NotificationQueue => {
            declare_notification_queue(session, channel, options, outgoing)
                .await
                .map_err(lost)?;
        }
    }
    let message_id = uuid::Uuid::new_v4().simple().to_string();
    let properties = outgoing
        .properties
        .clone()
        .with_content_type(wire::CONTENT_TYPE.into())
        .with_message_id(message_id.as_str().into());
    let confirm = channel
        .basic_publish(
            outgoing.exchange.as_str().into(),
            outgoing.routing_key.as_str().into(),
            BasicPublishOptions {
                mandatory: outgoing.mandatory,
                ..Default::default()
            },
            &outgoing.payload,
            properties,
        )
        .await
        .map_err(lost)?;
    match confirm.await.map_err(lost)? {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Nack(None) => Err(PublishFailure::Nacked),
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
            let returned_id = returned.delivery.properties.message_id().clone();
            if returned_id.as_ref().map(|id| id.as_str()) != Some(message_id.as_str()) {
                tracing::warn!(
                    routing_key = %outgoing.routing_key,
                    returned_message_id = ?returned_id,
                    message_id = %message_id,
                    "a returned message was paired with another publish"
                );
            }
            tracing::debug!(
                exchange = %outgoing.exchange,
                routing_key = %outgoing.routing_key,
                reply_code = returned.reply_code,
                reply_text = %returned.reply_text,
                "the broker returned an unroutable message"
            );
            Err(PublishFailure::Unroutable)
        }
    }
}

async fn declare_notification_queue(
    session: &Session,
    channel: &Channel,
    options: &AmqpOptions,
    outgoing: &Outgoing,
) -> Result<(), lapin::Error> {
    let already = session
        .notification_queues
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(&outgoing.routing_key);
    if already {
        return Ok(());
    }
    let queue = outgoing.routing_key.as_str();
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: options.amqp_durable_queues,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            queue.into(),
            outgoing.exchange.as_str().into(),
            queue.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    session
        .notification_queues
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(outgoing.routing_key.clone());
    Ok(())
}

/// Publishes `outgoing` on the current session, waiting up to
/// `reconnect_wait` for a reconnect when there is none, and publishing
/// again on the new session if the connection failed under the publish
/// (handlers are idempotent, so a duplicate is harmless; a loss is not).
pub(crate) async fn send(shared: &Shared, outgoing: &Outgoing) -> Result<(), RpcError> {
    let deadline = Instant::now() + shared.options.reconnect_wait;
    let mut last_failure = None;
    loop {
        let session = match shared.usable_session(deadline).await {
            Ok(session) => session,
            Err(e) => {
                return Err(match last_failure {
                    Some(reason) => RpcError::Transport(format!(
                        "publishing to {} failed: {reason}; no reconnect within {:?}",
                        outgoing.routing_key, shared.options.reconnect_wait
                    )),
                    None => e,
                });
            }
        };
        match publish(&session, &shared.options, outgoing).await {
            Ok(()) => return Ok(()),
            Err(PublishFailure::Lost(reason)) => {
                tracing::debug!(
                    routing_key = %outgoing.routing_key,
                    reason = %reason,
                    "publish failed; retrying"
                );
                note_lost(&session, &reason);
                if Instant::now() >= deadline {
                    return Err(PublishFailure::Lost(reason).into_rpc_error(&outgoing.routing_key));
                }
                last_failure = Some(reason);
                // A channel failure is repaired on the next attempt; a
                // connection failure waits for the supervisor.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(other) => return Err(other.into_rpc_error(&outgoing.routing_key)),
        }
    }
}
