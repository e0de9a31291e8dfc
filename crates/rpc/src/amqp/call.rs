//! Request/reply: calls wait for a reply on their connection's exclusive
//! reply queue, matched by `correlation_id`.
//!
//! Every pending call is recorded with the session generation whose reply
//! queue it named in `reply_to`. When that session is withdrawn the queue
//! is gone with the connection, so the call can never be answered: it fails
//! at once with [`RpcError::Transport`] instead of hanging until its
//! timeout. Registration checks the generation is still live under the
//! same lock the supervisor uses to withdraw it, so no call can slip in
//! between.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::BasicProperties;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::connection::{Session, Shared};
use super::publisher::{self, Outgoing, Prepare, PublishFailure};
use super::wire;
use crate::{RpcError, RpcMessage, Target};

type ReplySender = oneshot::Sender<Result<Value, RpcError>>;

/// The calls waiting for a reply.
#[derive(Debug, Default)]
pub(crate) struct PendingCalls {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The generation calls may register on; `None` while reconnecting.
    live_generation: Option<u64>,
    waiting: HashMap<String, Waiter>,
}

#[derive(Debug)]
struct Waiter {
    generation: u64,
    reply: ReplySender,
}

impl PendingCalls {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a call on `generation`; `None` if that session is being
    /// withdrawn.
    fn register(
        &self,
        generation: u64,
    ) -> Option<(String, oneshot::Receiver<Result<Value, RpcError>>)> {
        let mut inner = self.lock();
        if inner.live_generation != Some(generation) {
            return None;
        }
        let correlation_id = uuid::Uuid::new_v4().simple().to_string();
        let (reply, receiver) = oneshot::channel();
        inner
            .waiting
            .insert(correlation_id.clone(), Waiter { generation, reply });
        Some((correlation_id, receiver))
    }

    fn forget(&self, correlation_id: &str) {
        self.lock().waiting.remove(correlation_id);
    }

    /// Hands a reply to its caller; false if nobody waits for it.
    fn resolve(&self, correlation_id: &str, result: Result<Value, RpcError>) -> bool {
        let waiter = self.lock().waiting.remove(correlation_id);
        match waiter {
            // A caller that gave up in the meantime dropped its receiver.
            Some(waiter) => waiter.reply.send(result).is_ok(),
            None => false,
        }
    }

    /// Lets calls register on `generation`.
    pub(crate) fn open(&self, generation: u64) {
        self.lock().live_generation = Some(generation);
    }

    /// Stops registrations on `generation` and fails its waiting calls.
    pub(crate) fn close(&self, generation: u64, reason: &str) {
        let failed: Vec<Waiter> = {
            let mut inner = self.lock();
            if inner.live_generation == Some(generation) {
                inner.live_generation = None;
            }
            let ids: Vec<String> = inner
                .waiting
                .iter()
                .filter(|(_, waiter)| waiter.generation <= generation)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter()
                .filter_map(|id| inner.waiting.remove(id))
                .collect()
        };
        if !failed.is_empty() {
            tracing::warn!(
                calls = failed.len(),
                generation,
                reason,
                "failing calls whose reply queue was lost with the connection"
            );
        }
        for waiter in failed {
            let _ = waiter.reply.send(Err(RpcError::Transport(format!(
                "connection to the message broker lost while waiting for a reply: {reason}"
            ))));
        }
    }
}

/// Sends `message` to `target` and waits at most `timeout` for the reply.
pub(crate) async fn call(
    shared: &Shared,
    target: &Target,
    message: RpcMessage,
    timeout: Duration,
) -> Result<Value, RpcError> {
    let queue = target.queue();
    let method = message.method.clone();
    let body = wire::encode_message(&message)?;
    let started = Instant::now();
    let deadline = started + timeout;
    let reconnect_deadline = deadline.min(started + shared.options.reconnect_wait);
    let timed_out = || RpcError::Timeout {
        method: method.clone(),
        queue: queue.clone(),
        after: timeout,
    };

    let (correlation_id, reply) = loop {
        let session = match shared.usable_session(reconnect_deadline).await {
            Ok(session) => session,
            Err(_) if Instant::now() >= deadline => return Err(timed_out()),
            Err(e) => return Err(e),
        };
        let Some((correlation_id, reply)) = shared.calls.register(session.generation) else {
            // Being withdrawn right now; the next session will do.
            session.mark_broken("withdrawn while a call registered");
            continue;
        };
        // The request expires with the call: a server that comes back
        // later must not run a call nobody waits for any more.
        let remaining = deadline.saturating_duration_since(Instant::now());
        let outgoing = Outgoing {
            exchange: shared.options.control_exchange.clone(),
            routing_key: queue.clone(),
            payload: body.clone(),
            properties: BasicProperties::default()
                .with_reply_to(session.reply_queue.as_str().into())
                .with_correlation_id(correlation_id.as_str().into())
                .with_expiration(remaining.as_millis().max(1).to_string().into()),
            mandatory: true,
            prepare: Prepare::Nothing,
        };
        match publisher::publish(&session, &shared.options, &outgoing).await {
            Ok(()) => break (correlation_id, reply),
            Err(PublishFailure::Unroutable) => {
                shared.calls.forget(&correlation_id);
                return Err(RpcError::Unroutable { queue });
            }
            Err(PublishFailure::Lost(reason)) => {
                shared.calls.forget(&correlation_id);
                publisher::note_lost(&session, &reason);
                if Instant::now() >= reconnect_deadline {
                    return Err(PublishFailure::Lost(reason).into_rpc_error(&queue));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(other) => {
                shared.calls.forget(&correlation_id);
                return Err(other.into_rpc_error(&queue));
            }
        }
    };

    match tokio::time::timeout_at(deadline, reply).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(RpcError::Transport(format!(
            "the reply to {method} on {queue} was dropped"
        ))),
        Err(_) => {
            shared.calls.forget(&correlation_id);
            Err(timed_out())
        }
    }
}

/// Reads `session`'s reply queue until the connection ends, waking callers.
pub(crate) async fn receive_replies(
    shared: Arc<Shared>,
    session: Arc<Session>,
    mut replies: lapin::Consumer,
) {
    while let Some(delivery) = replies.next().await {
        let delivery = match delivery {
            Ok(delivery) => delivery,
            Err(e) => {
                session.mark_broken(&format!("reply consumer failed: {e}"));
                return;
            }
        };
        let Some(correlation_id) = delivery.properties.correlation_id().clone() else {
            tracing::warn!(
                reply_queue = %session.reply_queue,
                "dropping a reply without correlation_id"
            );
            continue;
        };
        let result = wire::decode_reply(&delivery.data);
        if !shared.calls.resolve(correlation_id.as_str(), result) {
            tracing::debug!(
                correlation_id = correlation_id.as_str(),
                "dropping a reply nobody waits for (the call timed out)"
            );
        }
    }
    // The stream ends when the broker cancels the consumer (the queue was
    // deleted) or the connection closes; either way this session can no
    // longer receive replies.
    if !shared.shutdown.is_cancelled() {
        session.mark_broken("the reply queue consumer ended");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn closing_a_generation_fails_its_calls_and_refuses_new_ones() {
        let calls = PendingCalls::default();
        assert!(calls.register(1).is_none(), "nothing live yet");
        calls.open(1);
        let (_id, mut receiver) = calls.register(1).unwrap();
        calls.close(1, "test");
        assert!(matches!(
            receiver.try_recv(),
            Ok(Err(RpcError::Transport(_)))
        ));
        assert!(calls.register(1).is_none());
        calls.open(2);
        let (id, mut receiver) = calls.register(2).unwrap();
        assert!(calls.resolve(&id, Ok(Value::Bool(true))));
        assert!(matches!(receiver.try_recv(), Ok(Ok(Value::Bool(true)))));
        assert!(!calls.resolve(&id, Ok(Value::Null)), "resolved once");
    }
}
