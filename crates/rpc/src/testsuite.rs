//! The transport conformance suite: the same checks for every
//! [`Transport`] (in-process here; AMQP runs it too).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clinker_types::{ErrorKind, RemoteError};
use serde_json::{Value, json};

use crate::dispatch::Endpoint;
use crate::*;

/// Echoes calls, counts casts, sleeps on `slow`, fails on `fail`.
#[derive(Debug)]
pub struct Echo {
    pub name: String,
    pub seen: AtomicUsize,
    pub endpoint: Endpoint,
}

impl Echo {
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            seen: AtomicUsize::new(0),
            endpoint: Endpoint::new(Version::new(3, 5), &["echo", "slow", "fail", "count"]),
        })
    }
}

#[async_trait::async_trait]
impl RpcHandler for Echo {
    async fn handle(&self, message: RpcMessage) -> Result<Value, RemoteError> {
        self.endpoint.check(&message)?;
        self.seen.fetch_add(1, Ordering::SeqCst);
        match message.method.as_str() {
            "echo" => Ok(
                json!({"server": self.name, "args": message.args, "request_id": message.context.request_id}),
            ),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(Value::Null)
            }
            "fail" => Err(RemoteError::new(
                ErrorKind::InvalidState,
                "refused on purpose",
            )),
            _ => Ok(Value::Null),
        }
    }
}

pub fn message(method: &str, version: &str) -> RpcMessage {
    RpcMessage {
        method: method.into(),
        version: version.parse().unwrap(),
        args: json!({"n": 1}),
        context: RequestContext {
            request_id: "req-test".into(),
            ..Default::default()
        },
    }
}

/// Runs every check; `make` builds a fresh transport (sharing a broker
/// between the returned handles is the transport's business).
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = TransportHandle>,
{
    call_and_reply(make().await).await;
    cast_round_robin_and_server_queues(make().await).await;
    fanout_reaches_every_consumer(make().await).await;
    call_times_out(make().await).await;
    cast_to_nobody_is_unroutable(make().await).await;
    version_rules_over_the_wire(make().await).await;
    remote_errors_keep_their_kind(make().await).await;
    stopped_consumer_gets_nothing(make().await).await;
}

/// Waits for `check`; the bound only decides when to give up, so it is
/// generous for a broker on a loaded machine.
pub async fn eventually(check: impl Fn() -> bool) {
    for _ in 0..1000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 10 s");
}

pub async fn call_and_reply(t: TransportHandle) {
    let echo = Echo::new("a");
    let _c = t
        .consume(
            vec![Subscription::Queue(Target::topic("svc"))],
            echo.clone(),
        )
        .await
        .unwrap();
    let reply = t
        .call(
            &Target::topic("svc"),
            message("echo", "3.0"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(
        reply,
        json!({"server": "a", "args": {"n": 1}, "request_id": "req-test"})
    );
}

pub async fn cast_round_robin_and_server_queues(t: TransportHandle) {
    let a = Echo::new("a");
    let b = Echo::new("b");
    let _ca = t
        .consume(
            vec![
                Subscription::Queue(Target::topic("svc")),
                Subscription::Queue(Target::server("svc", "a")),
            ],
            a.clone(),
        )
        .await
        .unwrap();
    let _cb = t
        .consume(
            vec![
                Subscription::Queue(Target::topic("svc")),
                Subscription::Queue(Target::server("svc", "b")),
            ],
            b.clone(),
        )
        .await
        .unwrap();
    for _ in 0..10 {
        t.cast(&Target::topic("svc"), message("count", "3.0"))
            .await
            .unwrap();
    }
    eventually(|| a.seen.load(Ordering::SeqCst) + b.seen.load(Ordering::SeqCst) == 10).await;
    assert!(
        a.seen.load(Ordering::SeqCst) > 0 && b.seen.load(Ordering::SeqCst) > 0,
        "shared queue spreads work"
    );
    let before_b = b.seen.load(Ordering::SeqCst);
    for _ in 0..3 {
        t.cast(&Target::server("svc", "a"), message("count", "3.0"))
            .await
            .unwrap();
    }
    eventually(|| a.seen.load(Ordering::SeqCst) + b.seen.load(Ordering::SeqCst) == 13).await;
    assert_eq!(
        b.seen.load(Ordering::SeqCst),
        before_b,
        "a server queue reaches only its server"
    );
    let reply = t
        .call(
            &Target::server("svc", "b"),
            message("echo", "3.1"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(reply["server"], "b");
}

pub async fn fanout_reaches_every_consumer(t: TransportHandle) {
    let a = Echo::new("a");
    let b = Echo::new("b");
    let _ca = t
        .consume(vec![Subscription::Fanout("svc".into())], a.clone())
        .await
        .unwrap();
    let _cb = t
        .consume(vec![Subscription::Fanout("svc".into())], b.clone())
        .await
        .unwrap();
    // No settling delay: `consume` returns once the subscription is live.
    t.fanout_cast("svc", message("count", "3.0")).await.unwrap();
    eventually(|| a.seen.load(Ordering::SeqCst) == 1 && b.seen.load(Ordering::SeqCst) == 1).await;
    // A fanout nobody listens to is not an error.
    t.fanout_cast("nobody", message("count", "3.0"))
        .await
        .unwrap();
}

pub async fn call_times_out(t: TransportHandle) {
    let echo = Echo::new("a");
    let _c = t
        .consume(vec![Subscription::Queue(Target::topic("svc"))], echo)
        .await
        .unwrap();
    let err = t
        .call(
            &Target::topic("svc"),
            message("slow", "3.0"),
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Timeout { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}

pub async fn cast_to_nobody_is_unroutable(t: TransportHandle) {
    let err = t
        .cast(&Target::server("svc", "ghost"), message("count", "3.0"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RpcError::Unroutable { queue } if queue == "svc.ghost"),
        "{err:?}"
    );
    let err = t
        .call(
            &Target::topic("nobody-home"),
            message("echo", "3.0"),
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Unroutable { .. }), "{err:?}");
}

pub async fn version_rules_over_the_wire(t: TransportHandle) {
    let echo = Echo::new("a");
    let _c = t
        .consume(vec![Subscription::Queue(Target::topic("svc"))], echo)
        .await
        .unwrap();
    let ok = t
        .call(
            &Target::topic("svc"),
            message("echo", "3.5"),
            Duration::from_secs(5),
        )
        .await;
    assert!(ok.is_ok());
    let newer = t
        .call(
            &Target::topic("svc"),
            message("echo", "3.6"),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&newer, RpcError::Remote(e) if e.message.starts_with("UnsupportedVersion")),
        "{newer:?}"
    );
    let major = t
        .call(
            &Target::topic("svc"),
            message("echo", "4.0"),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&major, RpcError::Remote(e) if e.message.starts_with("UnsupportedVersion")),
        "{major:?}"
    );
    let missing = t
        .call(
            &Target::topic("svc"),
            message("nope", "3.0"),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, RpcError::Remote(e) if e.message.starts_with("NoSuchMethod")),
        "{missing:?}"
    );
}

pub async fn remote_errors_keep_their_kind(t: TransportHandle) {
    let echo = Echo::new("a");
    let _c = t
        .consume(vec![Subscription::Queue(Target::topic("svc"))], echo)
        .await
        .unwrap();
    let err = t
        .call(
            &Target::topic("svc"),
            message("fail", "3.0"),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert!(err.to_string().contains("refused on purpose"));
}

pub async fn stopped_consumer_gets_nothing(t: TransportHandle) {
    let echo = Echo::new("a");
    let consumer = t
        .consume(
            vec![Subscription::Queue(Target::server("svc", "gone"))],
            echo.clone(),
        )
        .await
        .unwrap();
    t.call(
        &Target::server("svc", "gone"),
        message("echo", "3.0"),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    // No settling delay: once `stop` returns the queue is unroutable.
    consumer.stop().await;
    let err = t
        .cast(&Target::server("svc", "gone"), message("count", "3.0"))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Unroutable { .. }), "{err:?}");
}
