//! The broker connection ("session") and the supervisor that replaces it.
//!
//! A [`Session`] is one AMQP connection with everything that lives and dies
//! with it: the publisher channels, the exclusive reply queue and its
//! consumer. Sessions are numbered (`generation`); the current one is
//! published through a `watch` channel, `None` while reconnecting.
//!
//! The supervisor notices a loss through any of: an error event from lapin
//! while the connection is no longer open (socket error, missed heartbeats,
//! `connection.close` from the broker; channel errors arrive on the same
//! stream and are not losses), the connection status turning closed
//! (checked every second as a backstop), or a component marking the session broken (the reply consumer
//! ending, a publish failing on a closed connection). It then withdraws the
//! session — pending calls of that generation fail at once with
//! [`RpcError::Transport`], since their reply queue died with the connection
//! — and reconnects with jittered exponential backoff, rotating over the
//! failover hosts. Consumers watch the same channel and re-declare their
//! queues on the new session by themselves (see `consumer.rs`).

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clinker_runtime::CancellationToken;
use futures_util::{Stream, StreamExt};
use lapin::tcp::{AMQPUriTcpExt, RustlsConnector, TLSConfig};
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{Channel, Connection, ConnectionProperties, Event};
use tokio::sync::watch;
use tokio::time::Instant;

use super::AmqpOptions;
use super::call::{PendingCalls, receive_replies};
use super::publisher::PublisherPool;
use super::url::{BrokerAddress, TransportUrl};
use crate::RpcError;
use crate::backoff::Backoff;

/// Lapin's connection events, boxed so a reconnect can swap the stream.
pub(crate) type Events = Pin<Box<dyn Stream<Item = Event> + Send>>;

/// State shared by the transport handle, the supervisor and the consumers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) options: AmqpOptions,
    pub(crate) url: TransportUrl,
    /// The TLS connector when the broker is reached over TLS.
    pub(crate) tls: Option<RustlsConnector>,
    pub(crate) calls: PendingCalls,
    /// Cancelled when the last transport handle and consumer are gone.
    pub(crate) shutdown: CancellationToken,
    session: watch::Sender<Option<Arc<Session>>>,
}

/// Why waiting for a session ended without one.
#[derive(Debug)]
pub(crate) enum NoSession {
    /// The deadline passed while disconnected.
    Deadline,
    /// The caller's stop token fired.
    Stopped,
    /// The transport is shutting down.
    Shutdown,
}

impl Shared {
    pub(crate) fn new(
        options: AmqpOptions,
        url: TransportUrl,
        tls: Option<RustlsConnector>,
    ) -> Arc<Self> {
        let (session, _) = watch::channel(None);
        Arc::new(Self {
            options,
            url,
            tls,
            calls: PendingCalls::default(),
            shutdown: CancellationToken::new(),
            session,
        })
    }

    /// A fresh schedule for reconnects and re-declares.
    pub(crate) fn backoff(&self) -> Backoff {
        Backoff::new(
            self.options.reconnect_interval,
            self.options.reconnect_max_interval,
        )
    }

    /// The current session, waiting for a reconnect until `deadline`.
    ///
    /// # Errors
    /// [`RpcError::Transport`] when still disconnected at the deadline or
    /// shutting down.
    pub(crate) async fn usable_session(&self, deadline: Instant) -> Result<Arc<Session>, RpcError> {
        match self.wait_for_session(Some(deadline), None).await {
            Ok(session) => Ok(session),
            Err(NoSession::Shutdown | NoSession::Stopped) => Err(RpcError::Transport(
                "the amqp transport is shut down".into(),
            )),
            Err(NoSession::Deadline) => Err(RpcError::Transport(format!(
                "not connected to the message broker ({}); no reconnect within {:?}",
                self.url, self.options.reconnect_wait
            ))),
        }
    }

    /// Waits for a usable session until `deadline` (forever if `None`), or
    /// until `stop` fires.
    pub(crate) async fn wait_for_session(
        &self,
        deadline: Option<Instant>,
        stop: Option<&CancellationToken>,
    ) -> Result<Arc<Session>, NoSession> {
        let mut current = self.session.subscribe();
        let never = CancellationToken::new();
        let stop = stop.unwrap_or(&never);
        loop {
            if let Some(session) = current.borrow_and_update().clone() {
                if session.is_usable() {
                    return Ok(session);
                }
                // The supervisor may not have noticed yet; tell it.
                session.mark_broken("connection found closed");
            }
            let deadline = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.shutdown.cancelled() => return Err(NoSession::Shutdown),
                () = stop.cancelled() => return Err(NoSession::Stopped),
                () = deadline => return Err(NoSession::Deadline),
                changed = current.changed() => {
                    if changed.is_err() {
                        return Err(NoSession::Shutdown);
                    }
                }
            }
        }
    }

    /// Makes `session` the current one and lets calls register on it.
    pub(crate) fn install(&self, session: Arc<Session>) {
        self.calls.open(session.generation);
        self.session.send_replace(Some(session));
    }

    /// Takes `session` out of service: nobody gets it any more, and calls
    /// waiting for a reply on its reply queue fail now rather than at their
    /// timeout.
    fn withdraw(&self, session: &Session, reason: &str) {
        session.mark_broken(reason);
        self.session.send_if_modified(|current| match current {
            Some(installed) if installed.generation == session.generation => {
                *current = None;
                true
            }
            _ => false,
        });
        self.calls.close(session.generation, reason);
    }
}

/// One AMQP connection and what lives and dies with it.
pub(crate) struct Session {
    pub(crate) generation: u64,
    /// `host:port`, for logs.
    pub(crate) broker: String,
    /// This connection's exclusive reply queue (`reply_<uuid>`).
    pub(crate) reply_queue: String,
    pub(crate) connection: Connection,
    pub(crate) publishers: PublisherPool,
    /// Notification queues declared on this connection (declared once per
    /// connection, as oslo does).
    pub(crate) notification_queues: Mutex<HashSet<String>>,
    broken: CancellationToken,
    broken_reason: Mutex<Option<String>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("generation", &self.generation)
            .field("broker", &self.broker)
            .field("reply_queue", &self.reply_queue)
            .field("broken", &self.broken.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Not marked broken and the connection is open.
    pub(crate) fn is_usable(&self) -> bool {
        !self.broken.is_cancelled() && self.connection_alive()
    }

    /// The AMQP connection is open (channels may still fail on their own).
    pub(crate) fn connection_alive(&self) -> bool {
        self.connection.status().connected()
    }

    /// Asks the supervisor to replace this session. The first reason wins.
    pub(crate) fn mark_broken(&self, reason: &str) {
        if self.broken.is_cancelled() {
            return;
        }
        let mut slot = self
            .broken_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(reason.to_owned());
        }
        drop(slot);
        self.broken.cancel();
    }

    fn broken_reason(&self) -> String {
        self.broken_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| "marked broken".to_owned())
    }

    /// A new channel on this connection.
    pub(crate) async fn open_channel(&self) -> Result<Channel, lapin::Error> {
        self.connection.create_channel().await
    }

    async fn close_quietly(&self, reason: &str) {
        if !self.connection_alive() {
            return;
        }
        let close = self.connection.close(200, reason.into());
        match tokio::time::timeout(Duration::from_secs(2), close).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(broker = %self.broker, error = %e, "closing an old connection failed")
            }
            Err(_) => tracing::debug!(broker = %self.broker, "closing an old connection timed out"),
        }
    }
}

/// Connects to `broker` and sets up a session: publisher channels (with
/// publisher confirms), the control exchange, the reply queue and its
/// consumer. Bounded by `connect_timeout`.
pub(crate) async fn establish(
    shared: &Arc<Shared>,
    broker: &BrokerAddress,
    generation: u64,
) -> Result<(Arc<Session>, Events), String> {
    match tokio::time::timeout(
        shared.options.connect_timeout,
        establish_unbounded(shared, broker, generation),
    )
    .await
    {
        Ok(Ok(established)) => Ok(established),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no connection within {:?}",
            shared.options.connect_timeout
        )),
    }
}

async fn establish_unbounded(
    shared: &Arc<Shared>,
    broker: &BrokerAddress,
    generation: u64,
) -> Result<(Arc<Session>, Events), lapin::Error> {
    let options = &shared.options;
    let uri = AMQPUri {
        scheme: AMQPScheme::AMQP,
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo {
                username: broker.username.clone(),
                password: broker.password.clone(),
            },
            host: broker.host.clone(),
            port: broker.port,
        },
        vhost: shared.url.virtual_host.clone(),
        query: AMQPQueryString {
            heartbeat: Some(u16::try_from(options.heartbeat.as_secs()).unwrap_or(u16::MAX)),
            ..AMQPQueryString::default()
        },
    };
    let properties = ConnectionProperties::default().with_connection_name(
        format!(
            "{} pid {} generation {generation}",
            options.connection_name,
            std::process::id()
        )
        .into(),
    );
    let connection = match &shared.tls {
        None => Connection::connect_uri(uri, properties).await?,
        Some(connector) => connect_tls(uri, properties, connector.clone(), broker).await?,
    };
    // Subscribe before anything can fail: lapin drops events nobody listens to.
    let events: Events = Box::pin(connection.events_listener());
    let publishers = PublisherPool::open(&connection, options).await?;

    let reply_channel = connection.create_channel().await?;
    let reply_queue = format!("reply_{}", uuid::Uuid::new_v4().simple());
    // Exclusive + auto-delete: the queue dies with this connection, so a
    // reconnect never finds a stale, locked queue of the same name; the next
    // session declares a fresh one.
    reply_channel
        .queue_declare(
            reply_queue.as_str().into(),
            lapin::options::QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await?;
    // Replies are not acknowledged: a reply nobody waits for any more is
    // worthless, and one lost with the connection fails its call anyway.
    let replies = reply_channel
        .basic_consume(
            reply_queue.as_str().into(),
            "".into(),
            lapin::options::BasicConsumeOptions {
                no_ack: true,
                exclusive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await?;
    let session = Arc::new(Session {
        generation,
        broker: broker.to_string(),
        reply_queue,
        connection,
        publishers,
        notification_queues: Mutex::new(HashSet::new()),
        broken: CancellationToken::new(),
        broken_reason: Mutex::new(None),
    });
    tokio::spawn(receive_replies(shared.clone(), session.clone(), replies));
    Ok((session, events))
}

/// Connects over TLS: a plain TCP connection, then the handshake with the
/// broker's host name (or IP address) as the name its certificate must
/// carry. A failed handshake fails the connection, naming the broker.
async fn connect_tls(
    uri: AMQPUri,
    properties: ConnectionProperties,
    connector: RustlsConnector,
    broker: &BrokerAddress,
) -> Result<Connection, lapin::Error> {
    let broker = broker.to_string();
    let runtime = lapin::runtime::default_runtime()?;
    Connection::connector(
        uri,
        runtime,
        async move |uri: AMQPUri, runtime| {
            let plain = uri
                .connect_with_config_async(TLSConfig::default(), &runtime)
                .await?;
            plain
                .into_rustls(&connector, &uri.authority.host)
                .await
                .map_err(|e| {
                    lapin::Error::from(std::io::Error::new(
                        e.kind(),
                        format!("TLS handshake with the message broker {broker} failed: {e}"),
                    ))
                })
        },
        properties,
    )
    .await
}

/// Tries every broker once, starting at `first`. Returns the session and
/// the index of the broker that answered.
pub(crate) async fn connect_any(
    shared: &Arc<Shared>,
    first: usize,
    generation: u64,
) -> Result<(Arc<Session>, Events, usize), String> {
    let hosts = &shared.url.hosts;
    let mut failures = Vec::new();
    for offset in 0..hosts.len() {
        let index = (first + offset) % hosts.len();
        let broker = &hosts[index];
        match establish(shared, broker, generation).await {
            Ok((session, events)) => return Ok((session, events, index)),
            Err(e) => {
                tracing::warn!(broker = %broker, error = %e, "cannot connect to the message broker");
                failures.push(format!("{broker}: {e}"));
            }
        }
    }
    Err(failures.join("; "))
}

/// Keeps a live session installed until shutdown, starting from the
/// installed `session`.
pub(crate) async fn supervise(
    shared: Arc<Shared>,
    mut session: Arc<Session>,
    mut events: Events,
    mut broker_index: usize,
) {
    let mut backoff = shared.backoff();
    loop {
        let reason = tokio::select! {
            // A shutdown closes the connection itself; it is not a loss.
            biased;
            () = shared.shutdown.cancelled() => {
                shared.withdraw(&session, "the amqp transport is shut down");
                session.close_quietly("transport shut down").await;
                tracing::debug!(broker = %session.broker, "amqp transport shut down");
                return;
            }
            reason = watch_for_loss(&session, &mut events) => reason,
        };
        tracing::warn!(
            broker = %session.broker,
            generation = session.generation,
            reason = %reason,
            "lost the message broker connection; reconnecting"
        );
        shared.withdraw(&session, &reason);
        let old = session.clone();
        tokio::spawn(async move { old.close_quietly("replaced after a failure").await });

        backoff.reset();
        let generation = session.generation + 1;
        let mut attempt = 0u32;
        (session, events) = loop {
            attempt += 1;
            let delay = backoff.next_delay();
            tokio::select! {
                () = shared.shutdown.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            // Rotate: after a failure, start with the next broker of the list.
            broker_index = (broker_index + 1) % shared.url.hosts.len();
            let broker = &shared.url.hosts[broker_index];
            match establish(&shared, broker, generation).await {
                Ok(established) => break established,
                Err(e) => tracing::warn!(
                    broker = %broker,
                    attempt,
                    error = %e,
                    "reconnect attempt failed"
                ),
            }
        };
        tracing::info!(
            broker = %session.broker,
            generation,
            attempt,
            "reconnected to the message broker"
        );
        shared.install(session.clone());
    }
}

/// Returns why `session` is lost, once it is.
async fn watch_for_loss(session: &Session, events: &mut Events) -> String {
    let mut status_check = tokio::time::interval(Duration::from_secs(1));
    let mut events_open = true;
    loop {
        tokio::select! {
            () = session.broken.cancelled() => return session.broken_reason(),
            event = events.next(), if events_open => match event {
                // lapin reports channel errors here as well (a refused
                // conditional queue delete, a 404 on a publish); only a
                // connection that is no longer open is lost. lapin marks the
                // connection failed before it emits the event.
                Some(Event::Error(e)) if !session.connection_alive() => {
                    return format!("connection error: {e}");
                }
                Some(Event::Error(e)) => tracing::debug!(
                    broker = %session.broker,
                    error = %e,
                    "channel error on a healthy connection"
                ),
                Some(Event::ConnectionBlocked(reason)) => tracing::warn!(
                    broker = %session.broker,
                    reason = %reason,
                    "the broker blocks publishing (resource alarm)"
                ),
                Some(Event::ConnectionUnblocked) => tracing::info!(
                    broker = %session.broker,
                    "the broker unblocked publishing"
                ),
                Some(_) => {}
                // Fall back on the status check.
                None => events_open = false,
            },
            _ = status_check.tick() => {
                if !session.connection_alive() {
                    return "the connection is no longer open".to_owned();
                }
            }
        }
    }
}
