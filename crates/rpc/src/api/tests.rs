//! `rpc_api!` on two small APIs that use every shape (casts, calls with and
//! without a reply or arguments, fanouts, a serialized method, both
//! routes), end to end over the in-process transport; and the two real
//! APIs' tables against their endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clinker_types::connection::ConnectionInfo;
use clinker_types::{ErrorKind, RemoteError, VolumeId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::local::LocalTransport;
use crate::testsuite::eventually;
use crate::{
    RequestContext, RpcError, RpcHandler, RpcMessage, Subscription, Target, Transport, Version,
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct MakeArgs {
    id: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct FetchArgs {
    n: u64,
}

// The demo clients and tables are only partly used.
#[macro_use]
#[allow(dead_code)]
mod by_host {
    use super::*;

    crate::api::rpc_api! {
        module: api::tests::by_host,
        service: "demo service",
        topic: "demo",
        version: Version::new(1, 4),
        route: host,
        /// Demo handler.
        handler: DemoApi,
        /// Demo endpoint.
        endpoint: DemoEndpoint,
        /// Demo client.
        client: DemoClient,
        /// Demo serve.
        serve: serve_demo_api,
        methods: {
            /// A cast serialized per id.
            cast make(args: MakeArgs) { since: 1.0, serialized_by: args.id }
            /// A call with a reply.
            call fetch(args: FetchArgs) -> Vec<u64> { since: 1.2 }
            /// A call without a reply.
            call forget(args: FetchArgs) { since: 1.4 }
            /// A call without arguments.
            call list() -> Vec<Value> { since: 1.0 }
            /// A fanout without arguments.
            fanout ping() { since: 1.0 }
        }
    }
}

#[macro_use]
#[allow(dead_code)]
mod by_topic {
    use super::*;

    crate::api::rpc_api! {
        module: api::tests::by_topic,
        service: "planner",
        topic: "demo-planner",
        version: Version::new(2, 1),
        route: topic,
        /// Demo handler.
        handler: PlannerApi,
        /// Demo endpoint.
        endpoint: PlannerEndpoint,
        /// Demo client.
        client: PlannerClient,
        /// Demo serve.
        serve: serve_planner_api,
        methods: {
            /// A cast to the shared queue.
            cast place(args: MakeArgs) { since: 2.0 }
            /// A call to the shared queue.
            call pools(args: FetchArgs) -> Value { since: 2.1 }
            /// A fanout with arguments.
            fanout report(args: MakeArgs) { since: 2.0 }
        }
    }
}

use by_host::{DemoApi, DemoClient, DemoEndpoint};
use by_topic::{PlannerClient, PlannerEndpoint};

/// Serves both demo APIs from inherent methods and logs what happens.
#[derive(Debug, Default)]
struct Recorder {
    log: Mutex<Vec<String>>,
}

/// Logs its release.
struct Guard<'a> {
    log: &'a Mutex<Vec<String>>,
    resource: String,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.log
            .lock()
            .unwrap()
            .push(format!("release {}", self.resource));
    }
}

impl Recorder {
    fn note(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    async fn take(&self, resource: String) -> Result<Guard<'_>, RemoteError> {
        self.note(format!("hold {resource}"));
        Ok(Guard {
            log: &self.log,
            resource,
        })
    }

    async fn make(&self, context: &RequestContext, args: MakeArgs) -> Result<(), RemoteError> {
        self.note(format!("make {} for {}", args.id, context.request_id));
        Ok(())
    }

    async fn fetch(
        &self,
        _context: &RequestContext,
        args: FetchArgs,
    ) -> Result<Vec<u64>, RemoteError> {
        Ok((0..args.n).collect())
    }

    async fn forget(&self, _context: &RequestContext, args: FetchArgs) -> Result<(), RemoteError> {
        self.note(format!("forget {}", args.n));
        Ok(())
    }

    async fn list(&self, _context: &RequestContext) -> Result<Vec<Value>, RemoteError> {
        Ok(vec![json!("a")])
    }

    async fn ping(&self, _context: &RequestContext) -> Result<(), RemoteError> {
        self.note("ping".into());
        Ok(())
    }

    async fn place(&self, _context: &RequestContext, args: MakeArgs) -> Result<(), RemoteError> {
        self.note(format!("place {}", args.id));
        Ok(())
    }

    async fn pools(
        &self,
        _context: &RequestContext,
        args: FetchArgs,
    ) -> Result<Value, RemoteError> {
        Ok(json!({"pools": args.n}))
    }

    async fn report(&self, _context: &RequestContext, args: MakeArgs) -> Result<(), RemoteError> {
        self.note(format!("report {}", args.id));
        Ok(())
    }
}

serve_demo_api!(Recorder, hold = take);
serve_planner_api!(Recorder);

/// Records every message on the wire, then hands it to the endpoint.
struct Tap<E> {
    seen: Mutex<Vec<RpcMessage>>,
    endpoint: E,
}

#[async_trait::async_trait]
impl<E: RpcHandler> RpcHandler for Tap<E> {
    async fn handle(&self, message: RpcMessage) -> Result<Value, RemoteError> {
        self.seen.lock().unwrap().push(message.clone());
        self.endpoint.handle(message).await
    }
}

impl<E> Tap<E> {
    fn wire(&self) -> Vec<(String, Version, Value)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|m| (m.method.clone(), m.version, m.args.clone()))
            .collect()
    }
}

fn context() -> RequestContext {
    RequestContext {
        request_id: "req-1".into(),
        ..RequestContext::default()
    }
}

#[tokio::test]
async fn a_host_routed_api_round_trips_every_shape() {
    let transport = Arc::new(LocalTransport::new());
    let recorder = Arc::new(Recorder::default());
    let tap = Arc::new(Tap {
        seen: Mutex::new(Vec::new()),
        endpoint: DemoEndpoint::new(recorder.clone()),
    });
    let _server = transport
        .consume(
            vec![
                Subscription::Queue(Target::server("demo", "node1@be")),
                Subscription::Fanout("demo".into()),
            ],
            tap.clone(),
        )
        .await
        .unwrap();
    let client = DemoClient::new(transport.clone(), Duration::from_secs(5));
    let ctx = context();
    // The pool part of a host does not change the queue.
    client
        .make(&ctx, "node1@be#pool", &MakeArgs { id: 7 })
        .await
        .unwrap();
    assert_eq!(
        client
            .fetch(&ctx, "node1@be", &FetchArgs { n: 3 })
            .await
            .unwrap(),
        vec![0, 1, 2]
    );
    client
        .forget(&ctx, "node1@be", &FetchArgs { n: 2 })
        .await
        .unwrap();
    assert_eq!(
        client.list(&ctx, "node1@be").await.unwrap(),
        vec![json!("a")]
    );
    client.ping(&ctx).await.unwrap();
    eventually(|| recorder.lines().contains(&"ping".to_owned())).await;

    // Each method went at the version that introduced it, with its
    // arguments struct (`{}` without one) as `args`.
    let v = Version::new;
    assert_eq!(
        tap.wire(),
        vec![
            ("make".to_owned(), v(1, 0), json!({"id": 7})),
            ("fetch".to_owned(), v(1, 2), json!({"n": 3})),
            ("forget".to_owned(), v(1, 4), json!({"n": 2})),
            ("list".to_owned(), v(1, 0), json!({})),
            ("ping".to_owned(), v(1, 0), json!({})),
        ]
    );
    // The serialized cast held its resource around the handler only.
    assert_eq!(
        recorder.lines(),
        vec![
            "hold 7",
            "make 7 for req-1",
            "release 7",
            "forget 2",
            "ping"
        ]
    );
    // Another backend's queue has no consumer: the cast fails at once.
    let err = client
        .make(&ctx, "node2@be", &MakeArgs { id: 1 })
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Unroutable { .. }), "{err:?}");
}

#[tokio::test]
async fn a_topic_routed_api_uses_the_shared_queue_and_the_fanout() {
    let transport = Arc::new(LocalTransport::new());
    let first = Arc::new(Recorder::default());
    let second = Arc::new(Recorder::default());
    let mut consumers = Vec::new();
    for recorder in [&first, &second] {
        consumers.push(
            transport
                .consume(
                    vec![
                        Subscription::Queue(Target::topic("demo-planner")),
                        Subscription::Fanout("demo-planner".into()),
                    ],
                    Arc::new(PlannerEndpoint::new(recorder.clone())),
                )
                .await
                .unwrap(),
        );
    }
    let client = PlannerClient::new(transport.clone(), Duration::from_secs(5));
    let ctx = context();
    client.place(&ctx, &MakeArgs { id: 1 }).await.unwrap();
    assert_eq!(
        client.pools(&ctx, &FetchArgs { n: 2 }).await.unwrap(),
        json!({"pools": 2})
    );
    client.report(&ctx, &MakeArgs { id: 9 }).await.unwrap();
    let placed = || {
        [&first, &second]
            .iter()
            .filter(|r| r.lines().contains(&"place 1".to_owned()))
            .count()
    };
    eventually(|| {
        placed() == 1
            && first.lines().contains(&"report 9".to_owned())
            && second.lines().contains(&"report 9".to_owned())
    })
    .await;
}

#[tokio::test]
async fn the_version_cap_holds_back_newer_methods() {
    let transport = Arc::new(LocalTransport::new());
    let _server = transport
        .consume(
            vec![Subscription::Queue(Target::server("demo", "node1@be"))],
            Arc::new(DemoEndpoint::new(Arc::new(Recorder::default()))),
        )
        .await
        .unwrap();
    let client = DemoClient::new(transport.clone(), Duration::from_secs(5));
    client.set_version_cap(Version::new(1, 1));
    assert_eq!(client.version_cap(), Version::new(1, 1));
    let ctx = context();
    let err = client
        .fetch(&ctx, "node1@be", &FetchArgs { n: 1 })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RpcError::Transport(m) if m.contains("demo services are pinned to 1.1")),
        "{err:?}"
    );
    assert!(client.list(&ctx, "node1@be").await.is_ok());
    // A cap above the API's own version is the API's version.
    client.set_version_cap(Version::new(1, 9));
    assert_eq!(client.version_cap(), Version::new(1, 4));
}

/// A handler that implements nothing.
struct Bare;

impl DemoApi for Bare {}
impl crate::volume::VolumeManagerApi for Bare {}
impl crate::scheduler::SchedulerManagerApi for Bare {}

fn message(method: &str, version: Version, args: Value) -> RpcMessage {
    RpcMessage {
        method: method.into(),
        version,
        args,
        context: context(),
    }
}

#[tokio::test]
async fn unimplemented_methods_answer_not_implemented_and_unknown_ones_no_such_method() {
    let endpoint = DemoEndpoint::new(Arc::new(Bare));
    let err = endpoint
        .handle(message("make", Version::new(1, 0), json!({"id": 1})))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotImplemented);
    assert_eq!(err.message, "make is not served by this demo service");
    let err = endpoint
        .handle(message("frobnicate", Version::new(1, 0), json!({})))
        .await
        .unwrap_err();
    assert!(err.message.starts_with("NoSuchMethod"), "{err:?}");
    // Arguments that do not decode never reach the handler.
    let err = endpoint
        .handle(message("make", Version::new(1, 0), json!({"id": "x"})))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
}

/// Every row of the real APIs' version tables is served by a dispatch arm
/// that calls the handler method of that name: with `{}` as arguments the
/// answer names the method, either as arguments that did not decode (the
/// arm was reached) or as the default "not served" body of that very
/// method; never as an unknown method or version.
#[tokio::test]
async fn every_declared_method_is_dispatched() {
    let volume = crate::volume::VolumeEndpoint::new(Arc::new(Bare));
    let scheduler = crate::scheduler::SchedulerEndpoint::new(Arc::new(Bare));
    let tables: [(&dyn RpcHandler, &[crate::api::MethodSpec], Version); 2] = [
        (
            &volume,
            crate::volume::METHODS,
            crate::volume::CURRENT_VERSION,
        ),
        (
            &scheduler,
            crate::scheduler::METHODS,
            crate::scheduler::CURRENT_VERSION,
        ),
    ];
    for (endpoint, methods, current) in tables {
        assert!(!methods.is_empty());
        for spec in methods {
            assert!(current.can_serve(spec.since), "{spec:?}");
            let err = endpoint
                .handle(message(spec.name, spec.since, json!({})))
                .await
                .unwrap_err();
            let reached_the_arm = err
                .message
                .starts_with(&format!("malformed arguments for {}:", spec.name));
            let reached_the_handler = err
                .message
                .starts_with(&format!("{} is not served by this ", spec.name));
            assert!(
                reached_the_arm || reached_the_handler,
                "{}: {err:?}",
                spec.name
            );
        }
        let mut names: Vec<_> = methods.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), methods.len(), "a method is declared twice");
    }
}

/// The replies keep the shape they had before the APIs were declared:
/// the nested connection info, a volume id as its string, `null` for
/// nothing.
#[test]
fn replies_keep_their_wire_shape() {
    let info = ConnectionInfo {
        driver_volume_type: "iscsi".into(),
        data: json!({"target_lun": 1}).as_object().unwrap().clone(),
    };
    assert_eq!(
        crate::api::encode_reply(Ok(info.clone())).unwrap(),
        info.to_nested_json()
    );
    let id = VolumeId::new_random();
    assert_eq!(
        crate::api::encode_reply(Ok(id)).unwrap(),
        Value::String(id.to_string())
    );
    assert_eq!(crate::api::encode_reply(Ok(())).unwrap(), Value::Null);
    let refused: Result<(), RemoteError> = Err(RemoteError::new(ErrorKind::InvalidState, "no"));
    assert_eq!(
        crate::api::encode_reply(refused).unwrap_err().kind,
        ErrorKind::InvalidState
    );
}
