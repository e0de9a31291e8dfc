//! Consumers: declare the queues of a [`Subscription`] list, consume them
//! with manual acks, hand each delivery to the handler concurrently, and
//! re-declare everything when the connection is replaced or the broker
//! cancels a consumer.
//!
//! Queues (oslo.messaging's rabbit driver, defaults
//! `amqp_durable_queues=False`, `amqp_auto_delete=False`):
//! - `Subscription::Queue(target)`: queue `target.queue()` (`<topic>` or
//!   `<topic>.<server>`), bound to the control exchange with that routing
//!   key; non-exclusive, not auto-deleted (messages wait in it while the
//!   service reconnects or restarts after a crash), durable only with
//!   `amqp_durable_queues`.
//! - `Subscription::Fanout(topic)`: a fresh `<topic>_fanout_<uuid>` queue,
//!   exclusive and auto-deleted, bound to the `<topic>_fanout` exchange. A
//!   new name on every declare, so a re-declare never collides with the
//!   exclusive queue of a dead connection (cinder-inventory §5 item 7).
//!
//! Each delivery runs in its own task, bounded by the channel's prefetch
//! (`basic.qos`), and is acknowledged after its handler returned (and its
//! reply, for a call, was published): handlers are idempotent, so a
//! redelivery after a crash is safe, a loss would not be. A body that is
//! not an [`RpcMessage`](crate::RpcMessage) is rejected without requeue.
//!
//! Stopping a consumer cancels it, lets the running handlers finish (up to
//! `stop_grace`), closes its channel — which requeues deliveries that were
//! prefetched but not started — and deletes its fanout queue and every
//! other queue it consumed that is now unused and empty, so a cast to a
//! deliberately stopped service is unroutable instead of piling up. A
//! crashed service's queues stay, with their messages, for its restart.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use clinker_runtime::CancellationToken;
use clinker_types::{ErrorKind, RemoteError};
use futures_util::stream::{self, BoxStream, SelectAll};
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::ShutdownGuard;
use super::connection::{NoSession, Session, Shared};
use super::publisher::{self, Outgoing, Prepare};
use super::wire;
use crate::cast::{CastOutcome, run_cast};
use crate::{ConsumerHandle, RpcError, RpcHandler, Subscription};

/// How long an attachment must have served for a loss to restart the
/// re-declare backoff from its first step.
const STABLE_ATTACHMENT: std::time::Duration = std::time::Duration::from_secs(30);

/// What one `consume` call asked for.
struct Spec {
    /// Short id for logs.
    id: String,
    subscriptions: Vec<Subscription>,
    handler: Arc<dyn RpcHandler>,
}

impl Spec {
    fn describe(&self) -> String {
        self.subscriptions
            .iter()
            .map(|subscription| match subscription {
                Subscription::Queue(target) => target.queue(),
                Subscription::Fanout(topic) => format!("{topic}_fanout"),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QueueKind {
    /// A topic or server queue, shared with other consumers and restarts.
    Shared,
    /// This consumer's own fanout queue.
    Fanout,
}

enum Incoming {
    Delivery {
        queue: Arc<str>,
        // Boxed: a delivery is far larger than the end marker.
        delivery: Box<Result<Delivery, lapin::Error>>,
    },
    Ended {
        queue: Arc<str>,
    },
}

/// A spec declared and consuming on one session.
struct Attached {
    session: Arc<Session>,
    channel: Channel,
    tags: Vec<ShortString>,
    queues: Vec<(String, QueueKind)>,
    deliveries: SelectAll<BoxStream<'static, Incoming>>,
    in_flight: TaskTracker,
}

enum Ended {
    Stopped,
    Lost(String),
}

/// Starts consuming: the first declare happens before this returns (so a
/// cast right after finds the queues), later ones in the background.
pub(crate) async fn start(
    shared: Arc<Shared>,
    guard: Arc<ShutdownGuard>,
    subscriptions: Vec<Subscription>,
    handler: Arc<dyn RpcHandler>,
) -> Result<ConsumerHandle, RpcError> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let spec = Arc::new(Spec {
        id: id[..8].to_owned(),
        subscriptions,
        handler,
    });
    let deadline = Instant::now() + shared.options.reconnect_wait;
    let mut backoff = shared.backoff();
    let attached = loop {
        let session = shared.usable_session(deadline).await?;
        match attach(&shared, &session, &spec).await {
            Ok(attached) => break attached,
            Err(e) => {
                let delay = backoff.next_delay();
                if Instant::now() + delay >= deadline {
                    return Err(RpcError::Transport(format!(
                        "cannot consume {}: {e}",
                        spec.describe()
                    )));
                }
                tracing::debug!(consumer = %spec.id, queues = %spec.describe(), error = %e, "declare failed; retrying");
                if !session.connection_alive() {
                    session.mark_broken(&format!("consumer declare failed: {e}"));
                }
                tokio::time::sleep(delay).await;
            }
        }
    };
    tracing::debug!(consumer = %spec.id, queues = %spec.describe(), "consuming");
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(shared, guard, spec, attached, stop.clone()));
    Ok(ConsumerHandle::new(stop, task))
}

/// Declares the queues of `spec` on `session` and starts consuming them,
/// within `connect_timeout` (a broker that stops answering mid-declare must
/// not hang `consume` or a re-declare).
async fn attach(
    shared: &Shared,
    session: &Arc<Session>,
    spec: &Arc<Spec>,
) -> Result<Attached, String> {
    let timeout = shared.options.connect_timeout;
    let channel = match tokio::time::timeout(timeout, session.open_channel()).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err(format!("no channel within {timeout:?}")),
    };
    let mut queues = Vec::new();
    let declared = tokio::time::timeout(
        timeout,
        declare_and_consume(shared, &channel, spec, &mut queues),
    )
    .await
    .unwrap_or_else(|_| Err(format!("declare not answered within {timeout:?}")));
    match declared {
        Ok((tags, deliveries)) => Ok(Attached {
            session: session.clone(),
            channel,
            tags,
            queues,
            deliveries,
            in_flight: TaskTracker::new(),
        }),
        Err(e) => {
            // Don't leave a half-declared consumer behind: its fanout queue
            // would collect messages until the connection closes.
            let session = session.clone();
            tokio::spawn(async move {
                close_channel(&channel, "declare failed").await;
                delete_queues(&session, &queues).await;
            });
            Err(e)
        }
    }
}

async fn declare_and_consume(
    shared: &Shared,
    channel: &Channel,
    spec: &Spec,
    queues: &mut Vec<(String, QueueKind)>,
) -> Result<(Vec<ShortString>, SelectAll<BoxStream<'static, Incoming>>), String> {
    declare_and_consume_inner(shared, channel, spec, queues)
        .await
        .map_err(|e| e.to_string())
}

async fn declare_and_consume_inner(
    shared: &Shared,
    channel: &Channel,
    spec: &Spec,
    queues: &mut Vec<(String, QueueKind)>,
) -> Result<(Vec<ShortString>, SelectAll<BoxStream<'static, Incoming>>), lapin::Error> {
    let options = &shared.options;
    channel
        .basic_qos(options.prefetch_count, BasicQosOptions::default())
        .await?;
    publisher::declare_control_exchange(channel, options).await?;
    let mut tags = Vec::new();
    let mut deliveries = SelectAll::new();
    for subscription in &spec.subscriptions {
        let queue = match subscription {
            Subscription::Queue(target) => {
                let queue = target.queue();
                channel
                    .queue_declare(
                        queue.as_str().into(),
                        QueueDeclareOptions {
                            durable: options.amqp_durable_queues,
                            ..Default::default()
                        },
                        FieldTable::default(),
                    )
                    .await?;
                queues.push((queue.clone(), QueueKind::Shared));
                channel
                    .queue_bind(
                        queue.as_str().into(),
                        options.control_exchange.as_str().into(),
                        queue.as_str().into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                queue
            }
            Subscription::Fanout(topic) => {
                let exchange = format!("{topic}_fanout");
                publisher::declare_fanout_exchange(channel, &exchange).await?;
                let queue = format!("{topic}_fanout_{}", uuid::Uuid::new_v4().simple());
                channel
                    .queue_declare(
                        queue.as_str().into(),
                        QueueDeclareOptions {
                            exclusive: true,
                            auto_delete: true,
                            ..Default::default()
                        },
                        FieldTable::default(),
                    )
                    .await?;
                queues.push((queue.clone(), QueueKind::Fanout));
                channel
                    .queue_bind(
                        queue.as_str().into(),
                        exchange.as_str().into(),
                        topic.as_str().into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                queue
            }
        };
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                format!("clinker-{}-{}", spec.id, tags.len()).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tags.push(consumer.tag());
        let name: Arc<str> = Arc::from(queue.as_str());
        let ended = name.clone();
        deliveries.push(
            consumer
                .map(move |delivery| Incoming::Delivery {
                    queue: name.clone(),
                    delivery: Box::new(delivery),
                })
                .chain(stream::once(
                    async move { Incoming::Ended { queue: ended } },
                ))
                .boxed(),
        );
    }
    Ok((tags, deliveries))
}

/// Serves `attached` and re-attaches after every loss, until stopped.
async fn run(
    shared: Arc<Shared>,
    // Keeps the connection up while this consumer runs, even if every
    // transport handle was dropped.
    _guard: Arc<ShutdownGuard>,
    spec: Arc<Spec>,
    mut attached: Attached,
    stop: CancellationToken,
) {
    let mut backoff = shared.backoff();
    loop {
        let attached_at = Instant::now();
        let reason = match serve(&shared, &spec, &mut attached, &stop).await {
            Ended::Stopped => {
                detach(&shared, &spec, attached).await;
                return;
            }
            Ended::Lost(reason) => reason,
        };
        // An attachment that held for a while starts the schedule over; one
        // cancelled right away (a queue someone keeps deleting) backs off.
        if attached_at.elapsed() > STABLE_ATTACHMENT {
            backoff.reset();
        }
        let old_session = attached.session.clone();
        retire(attached);
        if !old_session.connection_alive() {
            old_session.mark_broken(&format!("consumer channel closed: {reason}"));
        }
        tracing::warn!(
            consumer = %spec.id,
            queues = %spec.describe(),
            reason = %reason,
            "consumer lost; re-declaring"
        );
        attached = loop {
            // Jittered, so that many consumers don't re-declare in lockstep
            // and a broker that keeps cancelling isn't hammered.
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(backoff.next_delay()) => {}
            }
            let session = match shared.wait_for_session(None, Some(&stop)).await {
                Ok(session) => session,
                Err(NoSession::Stopped | NoSession::Shutdown | NoSession::Deadline) => return,
            };
            match attach(&shared, &session, &spec).await {
                Ok(attached) => break attached,
                Err(e) => {
                    tracing::warn!(
                        consumer = %spec.id,
                        queues = %spec.describe(),
                        error = %e,
                        "re-declare failed; retrying"
                    );
                    if !session.connection_alive() {
                        session.mark_broken(&format!("consumer declare failed: {e}"));
                    }
                }
            }
        };
        tracing::info!(
            consumer = %spec.id,
            queues = %spec.describe(),
            generation = attached.session.generation,
            "consumer re-declared"
        );
    }
}

/// Hands deliveries to the handler until stopped or a consumer ends.
async fn serve(
    shared: &Arc<Shared>,
    spec: &Arc<Spec>,
    attached: &mut Attached,
    stop: &CancellationToken,
) -> Ended {
    let mut last_error = None;
    loop {
        let incoming = tokio::select! {
            biased;
            () = stop.cancelled() => return Ended::Stopped,
            incoming = attached.deliveries.next() => incoming,
        };
        match incoming {
            Some(Incoming::Delivery { queue, delivery }) => match *delivery {
                Ok(delivery) => {
                    attached.in_flight.spawn(handle_delivery(
                        shared.clone(),
                        spec.handler.clone(),
                        queue,
                        delivery,
                        stop.clone(),
                    ));
                }
                Err(e) => last_error = Some(format!("{queue}: {e}")),
            },
            Some(Incoming::Ended { queue }) => {
                return Ended::Lost(
                    last_error
                        .unwrap_or_else(|| format!("the broker cancelled the consumer of {queue}")),
                );
            }
            None => return Ended::Lost("no consumer left".to_owned()),
        }
    }
}

/// Runs one message: decode, handle, reply (calls), then acknowledge.
async fn handle_delivery(
    shared: Arc<Shared>,
    handler: Arc<dyn RpcHandler>,
    queue: Arc<str>,
    delivery: Delivery,
    stop: CancellationToken,
) {
    let message = match wire::decode_message(&delivery.data) {
        Ok(message) => message,
        Err(e) => {
            tracing::warn!(
                queue = %queue,
                delivery_tag = delivery.delivery_tag,
                error = %e,
                "rejecting an undecodable message"
            );
            if let Err(e) = delivery
                .acker
                .reject(BasicRejectOptions { requeue: false })
                .await
            {
                tracing::debug!(queue = %queue, error = %e, "reject failed");
            }
            return;
        }
    };
    let method = message.method.clone();
    let reply_to = delivery.properties.reply_to().clone();
    let correlation_id = delivery.properties.correlation_id().clone();
    let call = reply_to.is_some() && correlation_id.is_some();
    // A panicking handler must not leave its message unacknowledged: it
    // would be redelivered (and panic again) after every reconnect.
    let (result, poisoned) = if call {
        match AssertUnwindSafe(handler.handle(message))
            .catch_unwind()
            .await
        {
            Ok(result) => (result, false),
            Err(_) => {
                tracing::error!(queue = %queue, method, "handler panicked; dropping the message");
                let error = RemoteError::new(ErrorKind::Internal, format!("{method} failed"));
                (Err(error), true)
            }
        }
    } else {
        // A cast: run to its end (transient failures retried, every
        // failure logged); a stop mid-retry leaves it for redelivery.
        match AssertUnwindSafe(run_cast(handler.as_ref(), message, &queue, &stop))
            .catch_unwind()
            .await
        {
            Ok(CastOutcome::Done | CastOutcome::Failed) => (Ok(serde_json::Value::Null), false),
            Ok(CastOutcome::Interrupted) => {
                if let Err(e) = delivery
                    .acker
                    .reject(BasicRejectOptions { requeue: true })
                    .await
                {
                    tracing::debug!(queue = %queue, method, error = %e, "requeue failed; the broker redelivers on channel close");
                }
                return;
            }
            Err(_) => {
                tracing::error!(queue = %queue, method, "handler panicked; dropping the message");
                (Ok(serde_json::Value::Null), true)
            }
        }
    };
    if let (Some(reply_to), Some(correlation_id)) = (reply_to, correlation_id) {
        send_reply(&shared, &queue, &method, reply_to, correlation_id, result).await;
    }
    if poisoned {
        if let Err(e) = delivery
            .acker
            .reject(BasicRejectOptions { requeue: false })
            .await
        {
            tracing::debug!(queue = %queue, method, error = %e, "reject failed");
        }
        return;
    }
    if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
        // The channel is gone; the broker redelivers the message to another
        // (or the re-declared) consumer. Handlers are idempotent.
        tracing::debug!(queue = %queue, method, error = %e, "ack failed; the message will be redelivered");
    }
}

async fn send_reply(
    shared: &Shared,
    queue: &str,
    method: &str,
    reply_to: ShortString,
    correlation_id: ShortString,
    result: Result<serde_json::Value, RemoteError>,
) {
    let payload = match wire::encode_reply(result) {
        Ok(payload) => payload,
        Err(e) => {
            tracing::error!(queue, method, error = %e, "cannot encode a reply");
            return;
        }
    };
    // Through the default exchange straight to the caller's reply queue;
    // mandatory, so a caller that went away is noticed rather than guessed.
    let outgoing = Outgoing {
        exchange: String::new(),
        routing_key: reply_to.as_str().to_owned(),
        payload,
        properties: BasicProperties::default().with_correlation_id(correlation_id),
        mandatory: true,
        prepare: Prepare::Nothing,
    };
    match publisher::send(shared, &outgoing).await {
        Ok(()) => {}
        Err(RpcError::Unroutable { .. }) => tracing::debug!(
            queue,
            method,
            reply_to = %outgoing.routing_key,
            "the caller is gone; reply dropped"
        ),
        Err(e) => tracing::warn!(queue, method, error = %e, "reply not sent"),
    }
}

/// Graceful stop: see the module docs.
async fn detach(shared: &Shared, spec: &Spec, attached: Attached) {
    let Attached {
        session,
        channel,
        tags,
        queues,
        deliveries,
        in_flight,
    } = attached;
    for tag in tags {
        let cancel = channel.basic_cancel(tag, BasicCancelOptions::default());
        if let Err(e) = with_timeout(cancel).await {
            tracing::debug!(consumer = %spec.id, error = %e, "basic.cancel failed");
        }
    }
    drop(deliveries);
    in_flight.close();
    if tokio::time::timeout(shared.options.stop_grace, in_flight.wait())
        .await
        .is_ok()
    {
        close_channel(&channel, "consumer stopped").await;
        delete_queues(&session, &queues).await;
        tracing::debug!(consumer = %spec.id, queues = %spec.describe(), "consumer stopped");
        return;
    }
    tracing::info!(
        consumer = %spec.id,
        queues = %spec.describe(),
        handlers = in_flight.len(),
        "consumer stopped; handlers still running will finish in the background"
    );
    tokio::spawn(async move {
        in_flight.wait().await;
        close_channel(&channel, "consumer stopped").await;
        delete_queues(&session, &queues).await;
    });
}

/// After a loss: let running handlers finish on the old channel (their acks
/// may fail; the broker then redelivers), then close it and drop the old
/// fanout queues (the re-declare made fresh ones).
fn retire(attached: Attached) {
    let Attached {
        session,
        channel,
        tags,
        queues,
        deliveries,
        in_flight,
    } = attached;
    drop(deliveries);
    in_flight.close();
    tokio::spawn(async move {
        if channel.status().connected() {
            for tag in tags {
                let _ =
                    with_timeout(channel.basic_cancel(tag, BasicCancelOptions::default())).await;
            }
        }
        in_flight.wait().await;
        close_channel(&channel, "consumer replaced").await;
        let fanout: Vec<(String, QueueKind)> = queues
            .into_iter()
            .filter(|(_, kind)| *kind == QueueKind::Fanout)
            .collect();
        delete_queues(&session, &fanout).await;
    });
}

async fn close_channel(channel: &Channel, reason: &str) {
    if channel.status().connected() {
        let _ = with_timeout(channel.close(200, reason.into())).await;
    }
}

/// Deletes fanout queues, and shared queues only when nobody consumes them
/// and nothing waits in them. Each delete gets its own channel: a refused
/// conditional delete (406) closes the channel it was sent on.
async fn delete_queues(session: &Session, queues: &[(String, QueueKind)]) {
    for (queue, kind) in queues {
        if !session.connection_alive() {
            return;
        }
        let Ok(channel) = with_timeout(session.open_channel()).await else {
            return;
        };
        if *kind == QueueKind::Shared {
            // Another service still consuming the shared queue (or messages
            // waiting in it) is the usual case on a clean shutdown: ask
            // first, because a refused conditional delete is a channel
            // error the broker and the client log as PRECONDITION_FAILED.
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            match with_timeout(channel.queue_declare(
                queue.as_str().into(),
                passive,
                FieldTable::default(),
            ))
            .await
            {
                Ok(q) if q.consumer_count() == 0 && q.message_count() == 0 => {}
                _ => {
                    tracing::debug!(queue = %queue, "kept a shared queue still in use");
                    close_channel(&channel, "queue cleanup").await;
                    continue;
                }
            }
        }
        let options = match kind {
            QueueKind::Fanout => QueueDeleteOptions::default(),
            QueueKind::Shared => QueueDeleteOptions {
                if_unused: true,
                if_empty: true,
                ..Default::default()
            },
        };
        match with_timeout(channel.queue_delete(queue.as_str().into(), options)).await {
            Ok(_) => tracing::debug!(queue = %queue, "deleted the queue of a stopped consumer"),
            Err(e) => {
                tracing::debug!(queue = %queue, error = %e, "kept the queue of a stopped consumer")
            }
        }
        close_channel(&channel, "queue cleanup").await;
    }
}

/// Bounds a broker round-trip during cleanup: a dead peer must not hang a
/// stop.
async fn with_timeout<T>(
    operation: impl Future<Output = Result<T, lapin::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(std::time::Duration::from_secs(5), operation).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_owned()),
    }
}
