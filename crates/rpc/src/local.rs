//! The in-process transport: the message bus of `clinker serve` and of the
//! integration tests.
//!
//! Queues round-robin over their consumers, fanouts deliver to every
//! consumer, a cast to a queue nobody consumes is an immediate
//! [`RpcError::Unroutable`] (as AMQP `mandatory` publishing makes it), and
//! notifications go to any number of [`LocalTransport::subscribe_notifications`]
//! listeners.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clinker_runtime::CancellationToken;
use clinker_types::RemoteError;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::cast::run_cast;
use crate::{
    ConsumerHandle, Notification, RpcError, RpcHandler, RpcMessage, Subscription, Target, Transport,
};

type Reply = oneshot::Sender<Result<Value, RemoteError>>;

#[derive(Debug)]
struct Delivery {
    message: RpcMessage,
    reply: Option<Reply>,
}

#[derive(Debug, Default)]
struct QueueState {
    consumers: Vec<mpsc::UnboundedSender<Delivery>>,
    next: usize,
}

#[derive(Debug, Default)]
struct Bus {
    queues: HashMap<String, QueueState>,
    fanouts: HashMap<String, Vec<mpsc::UnboundedSender<Delivery>>>,
}

/// The in-process message bus.
#[derive(Clone, Debug)]
pub struct LocalTransport {
    bus: Arc<Mutex<Bus>>,
    notifications: broadcast::Sender<Notification>,
}

impl Default for LocalTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalTransport {
    /// An empty bus.
    pub fn new() -> Self {
        let (notifications, _) = broadcast::channel(4096);
        Self {
            bus: Arc::new(Mutex::new(Bus::default())),
            notifications,
        }
    }

    /// Receives every notification published from now on.
    pub fn subscribe_notifications(&self) -> broadcast::Receiver<Notification> {
        self.notifications.subscribe()
    }

    fn route(&self, queue: &str, delivery: Delivery) -> Result<(), RpcError> {
        let mut bus = self
            .bus
            .lock()
            .map_err(|_| RpcError::Transport("bus lock poisoned".into()))?;
        let Some(state) = bus.queues.get_mut(queue) else {
            return Err(RpcError::Unroutable {
                queue: queue.to_owned(),
            });
        };
        state.consumers.retain(|c| !c.is_closed());
        let mut delivery = delivery;
        // Round-robin; a consumer that went away between the check and the
        // send gives the message back and the next one is tried.
        for _ in 0..state.consumers.len() {
            let index = state.next % state.consumers.len();
            state.next = state.next.wrapping_add(1);
            match state.consumers[index].send(delivery) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::SendError(back)) => delivery = back,
            }
        }
        Err(RpcError::Unroutable {
            queue: queue.to_owned(),
        })
    }
}

#[async_trait::async_trait]
impl Transport for LocalTransport {
    async fn cast(&self, target: &Target, message: RpcMessage) -> Result<(), RpcError> {
        self.route(
            &target.queue(),
            Delivery {
                message,
                reply: None,
            },
        )
    }

    async fn call(
        &self,
        target: &Target,
        message: RpcMessage,
        timeout: Duration,
    ) -> Result<Value, RpcError> {
        let (tx, rx) = oneshot::channel();
        let method = message.method.clone();
        let queue = target.queue();
        self.route(
            &queue,
            Delivery {
                message,
                reply: Some(tx),
            },
        )?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result.map_err(RpcError::Remote),
            // The consumer dropped the reply (it was stopped mid-call).
            Ok(Err(_)) => Err(RpcError::Transport(format!(
                "{queue} went away before replying to {method}"
            ))),
            Err(_) => Err(RpcError::Timeout {
                method,
                queue,
                after: timeout,
            }),
        }
    }

    async fn fanout_cast(&self, topic: &str, message: RpcMessage) -> Result<(), RpcError> {
        let mut bus = self
            .bus
            .lock()
            .map_err(|_| RpcError::Transport("bus lock poisoned".into()))?;
        if let Some(consumers) = bus.fanouts.get_mut(topic) {
            consumers.retain(|c| {
                c.send(Delivery {
                    message: message.clone(),
                    reply: None,
                })
                .is_ok()
            });
        }
        Ok(())
    }

    async fn consume(
        &self,
        subscriptions: Vec<Subscription>,
        handler: Arc<dyn RpcHandler>,
    ) -> Result<ConsumerHandle, RpcError> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
        {
            let mut bus = self
                .bus
                .lock()
                .map_err(|_| RpcError::Transport("bus lock poisoned".into()))?;
            for subscription in &subscriptions {
                match subscription {
                    Subscription::Queue(target) => {
                        bus.queues
                            .entry(target.queue())
                            .or_default()
                            .consumers
                            .push(tx.clone());
                    }
                    Subscription::Fanout(topic) => bus
                        .fanouts
                        .entry(topic.clone())
                        .or_default()
                        .push(tx.clone()),
                }
            }
        }
        drop(tx);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            loop {
                let delivery = tokio::select! {
                    () = stopped.cancelled() => break,
                    next = rx.recv() => match next {
                        Some(d) => d,
                        None => break,
                    },
                };
                let handler = handler.clone();
                let stopped = stopped.clone();
                tokio::spawn(async move {
                    match delivery.reply {
                        Some(reply) => {
                            let _ = reply.send(handler.handle(delivery.message).await);
                        }
                        // A cast runs to its end; one still failing when the
                        // consumer stops is left to the journal's recovery.
                        None => {
                            run_cast(handler.as_ref(), delivery.message, "local", &stopped).await;
                        }
                    }
                });
            }
            // Closing the receiver makes routing skip this consumer.
            rx.close();
        });
        Ok(ConsumerHandle::new(stop, task))
    }

    async fn notify(&self, notification: Notification) -> Result<(), RpcError> {
        // No listener is fine: notifications are best-effort by design.
        let _ = self.notifications.send(notification);
        Ok(())
    }
}
