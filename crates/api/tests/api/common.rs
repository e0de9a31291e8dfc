//! The test harness: the router driven in-process over a real SQLite
//! database and the in-process bus, with stand-in consumers for the
//! scheduler and one volume service that record what they receive.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Request};
use clinker_api::{ApiState, router};
use clinker_config::{Config, ConfigEnv, Ini};
use clinker_db::{
    CapacityRepository, GroupRepository, QuotaRepository, ServiceRepository, SnapshotQuery,
    SnapshotRepository,
};
use clinker_db::{
    ClaimOutcome, Db, DbOptions, ProviderUpdate, ServiceRegistration, VolumeQuery, VolumeRepository,
};
use clinker_rpc::local::LocalTransport;
use clinker_rpc::scheduler::SchedulerRpcClient;
use clinker_rpc::volume::VolumeRpcClient;
use clinker_rpc::{ConsumerHandle, RpcHandler, RpcMessage, Subscription, Target, Transport};
use clinker_types::group_status::GroupStatus;
use clinker_types::{
    Clock, GroupId, RemoteError, SnapshotId, SnapshotStatus, SystemClock, Timestamp, VolumeId,
    VolumeStatus,
};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The backend the stand-in volume service serves.
pub const BACKEND: &str = "node1@file";
/// The pool volumes are placed on.
pub const POOL: &str = "node1@file#file";
/// The project of the default token.
pub const PROJECT: &str = "0f8cbbd3f0a14e4b9a57aa00bb11cc22";
/// The user of the default token.
pub const USER: &str = "4f2c1e1a8a4c4e4b9a570f8cbbd3f0a1";

/// Records every message a stand-in service receives and answers calls
/// with canned data.
#[derive(Debug, Default)]
pub struct Recorder {
    /// What arrived, in order.
    pub seen: Mutex<Vec<RpcMessage>>,
}

#[async_trait::async_trait]
impl RpcHandler for Recorder {
    async fn handle(&self, message: RpcMessage) -> Result<Value, RemoteError> {
        let method = message.method.clone();
        let args = message.args.clone();
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(message);
        }
        Ok(match method.as_str() {
            "attachment_update" => json!({
                "driver_volume_type": "fake",
                "volume_id": args["volume_id"],
                "attachment_id": args["attachment_id"],
                "access_mode": "rw",
                "enforce_multipath": false,
            }),
            "initialize_connection" => json!({
                "driver_volume_type": "fake",
                "data": {"volume_id": args["volume_id"], "access_mode": "rw", "enforce_multipath": false},
            }),
            "get_pools" => json!([{
                "name": POOL,
                "capabilities": {
                    "pool_name": "file",
                    "total_capacity_gb": 100,
                    "free_capacity_gb": 90,
                    "storage_protocol": ["file", "FILE"],
                    "volume_backend_name": "file",
                    "backend_state": "up",
                }
            }]),
            "get_capabilities" => json!({
                "vendor_name": "Open Source",
                "volume_backend_name": "file",
                "pool_name": "file",
                "driver_version": "1.0.0",
                "storage_protocol": "file",
                "visibility": "pool",
                "properties": {"thin_provisioning": {"title": "Thin", "type": "boolean"}},
            }),
            "migrate_volume_completion" => args["volume_id"].clone(),
            "get_manageable_volumes" => json!([
                {"reference": {"source-name": "b-disk"}, "size": 2, "safe_to_manage": true,
                 "reason_not_safe": null, "cinder_id": null, "extra_info": null},
                {"reference": {"source-name": "a-disk"}, "size": 5, "safe_to_manage": false,
                 "reason_not_safe": "already managed", "cinder_id": "x", "extra_info": null},
                {"reference": {"source-name": "c-disk"}, "size": 1, "safe_to_manage": true,
                 "reason_not_safe": null, "cinder_id": null, "extra_info": null},
            ]),
            "get_manageable_snapshots" => json!([
                {"reference": {"source-name": "snapshot-s"}, "size": 1, "safe_to_manage": true,
                 "reason_not_safe": null, "cinder_id": null, "extra_info": null,
                 "source_reference": {"source-name": "volume-v"}},
            ]),
            _ => Value::Null,
        })
    }
}

impl Recorder {
    /// The methods received so far.
    pub fn methods(&self) -> Vec<String> {
        self.seen
            .lock()
            .map(|s| s.iter().map(|m| m.method.clone()).collect())
            .unwrap_or_default()
    }
}

/// A clock the test moves.
#[derive(Debug)]
pub struct TestClock(pub Mutex<Timestamp>);

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        self.0.lock().map(|t| *t).unwrap_or(Timestamp(0))
    }
}

/// A temp directory removed on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Options of a harness.
#[derive(Clone, Debug)]
pub struct Options {
    /// Run a stand-in scheduler.
    pub scheduler: bool,
    /// Run a stand-in volume service on [`BACKEND`].
    pub volume: bool,
    /// Extra `[DEFAULT]` lines.
    pub config: String,
    /// Replaces noauth.
    pub authenticator: Option<Arc<dyn clinker_api::Authenticator>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            scheduler: true,
            volume: true,
            config: String::new(),
            authenticator: None,
        }
    }
}

/// One response.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
    /// The raw body.
    pub text: String,
}

impl Reply {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `id` of `resource` in the body, parsed (`String`, `VolumeId`, …).
    pub fn id<T: std::str::FromStr>(&self, resource: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        self.body[resource]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no {resource} id in {}", self.text))
            .parse()
            .unwrap()
    }

    /// The fault message of a refusal with `status`, under the fault name
    /// Cinder gives that status (`404`: `itemNotFound`, …).
    pub fn refusal(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        let name = match status {
            400 => "badRequest",
            403 => "forbidden",
            404 => "itemNotFound",
            409 => "conflictingRequest",
            413 => "overLimit",
            501 => "notImplemented",
            503 => "serviceUnavailable",
            other => panic!("{other} is not a refusal"),
        };
        self.fault(name)
    }

    /// The fault message of an error body.
    pub fn fault(&self, name: &str) -> String {
        self.body[name]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} fault in {}", self.text))
            .to_owned()
    }
}

/// The verbs of a client: every request goes through `call`.
#[allow(async_fn_in_trait)] // test code: no Send bound needed
pub trait Verbs {
    /// Sends `method uri` with an optional JSON body.
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> Reply;

    /// `GET uri`.
    async fn get(&self, uri: &str) -> Reply {
        self.call("GET", uri, None).await
    }

    /// `POST uri` with a JSON body.
    async fn post(&self, uri: &str, body: Value) -> Reply {
        self.call("POST", uri, Some(body)).await
    }

    /// `PUT uri` with a JSON body.
    async fn put(&self, uri: &str, body: Value) -> Reply {
        self.call("PUT", uri, Some(body)).await
    }

    /// `DELETE uri`.
    async fn delete(&self, uri: &str) -> Reply {
        self.call("DELETE", uri, None).await
    }
}

/// The harness with headers chosen for a series of requests.
pub struct Client<'a> {
    h: &'a Harness,
    headers: Vec<(String, String)>,
}

impl Client<'_> {
    /// Also asks for microversion `version`.
    #[must_use]
    pub fn at(mut self, version: &str) -> Self {
        self.headers
            .push(("OpenStack-API-Version".into(), format!("volume {version}")));
        self
    }
}

impl Verbs for Client<'_> {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> Reply {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.h.send(method, uri, body, &headers).await
    }
}

impl Verbs for Harness {
    /// Sends a request with the default token and no version header.
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> Reply {
        self.send(method, uri, body, &[]).await
    }
}

/// A router with its database and bus.
pub struct Harness {
    /// The router under test.
    pub router: Router,
    /// The database (the same one the router uses).
    pub db: Db,
    /// What the stand-in scheduler received.
    pub scheduler: Arc<Recorder>,
    /// What the stand-in volume service received.
    pub volume: Arc<Recorder>,
    /// The API's clock.
    pub clock: Arc<TestClock>,
    consumers: Vec<ConsumerHandle>,
    _dir: TempDir,
}

impl Harness {
    /// A harness with both stand-in services.
    pub async fn new() -> Self {
        Self::with(Options::default()).await
    }

    /// A harness with the given options.
    pub async fn with(options: Options) -> Self {
        let dir = std::env::temp_dir().join(format!("clinker-api-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = Db::connect(&DbOptions::new(format!(
            "sqlite:///{}/clinker.sqlite",
            dir.display()
        )))
        .await
        .unwrap();
        db.migrate("__DEFAULT__").await.unwrap();

        let text = format!(
            "[DEFAULT]\nstate_path = {}\nenabled_backends = file\n{}\n[file]\nvolume_driver = file\nvolume_backend_name = file\n",
            dir.display(),
            options.config
        );
        let mut ini = Ini::default();
        ini.merge_text(&text, "test.conf").unwrap();
        let config = Config::from_ini(
            &ini,
            &ConfigEnv {
                hostname: "node1".into(),
            },
        )
        .unwrap();

        let transport = Arc::new(LocalTransport::new());
        let scheduler = Arc::new(Recorder::default());
        let volume = Arc::new(Recorder::default());
        let mut consumers = Vec::new();
        if options.scheduler {
            consumers.push(
                transport
                    .consume(
                        vec![Subscription::Queue(Target::topic("cinder-scheduler"))],
                        scheduler.clone(),
                    )
                    .await
                    .unwrap(),
            );
        }
        if options.volume {
            consumers.push(
                transport
                    .consume(
                        vec![Subscription::Queue(Target::server(
                            "cinder-volume",
                            BACKEND,
                        ))],
                        volume.clone(),
                    )
                    .await
                    .unwrap(),
            );
        }
        let clock = Arc::new(TestClock(Mutex::new(SystemClock.now())));
        let state = ApiState {
            db: Arc::new(db.clone()),
            scheduler_rpc: SchedulerRpcClient::new(transport.clone(), Duration::from_secs(5)),
            volume_rpc: VolumeRpcClient::new(transport.clone(), Duration::from_secs(5)),
            config: Arc::new(config),
            clock: clock.clone(),
            zones: Arc::default(),
            glance: None,
        };
        Self {
            router: match options.authenticator {
                Some(auth) => clinker_api::router_with_authenticator(state, auth),
                None => router(state),
            },
            db,
            scheduler,
            volume,
            clock,
            consumers,
            _dir: TempDir(dir),
        }
    }

    /// A harness with the given options and the volume service registered
    /// in `nova` (its zone makes volume creates valid).
    pub async fn registered(options: Options) -> Self {
        let h = Self::with(options).await;
        h.register_volume_service("nova").await;
        h
    }

    /// Requests asking for microversion `version`.
    pub fn at(&self, version: &str) -> Client<'_> {
        self.with_headers(&[]).at(version)
    }

    /// Requests with extra headers (a token replaces the default one).
    pub fn with_headers(&self, headers: &[(&str, &str)]) -> Client<'_> {
        Client {
            h: self,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// Sends a request with extra headers (the default token unless one is
    /// given).
    pub async fn send(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "api.test:8776");
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("x-auth-token"))
        {
            builder = builder.header("x-auth-token", format!("{USER}:{PROJECT}"));
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = match body {
            Some(b) => builder
                .header("content-type", "application/json")
                .body(Body::from(b.to_string()))
                .unwrap(),
            None => builder.body(Body::empty()).unwrap(),
        };
        self.raw(request).await
    }

    /// Sends a prepared request.
    pub async fn raw(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    /// Registers the volume service (its zone makes volume creates valid).
    pub async fn register_volume_service(&self, zone: &str) {
        self.db
            .register_service(&ServiceRegistration {
                host: BACKEND.into(),
                binary: "cinder-volume".into(),
                topic: "cinder-volume".into(),
                availability_zone: zone.into(),
                rpc_current_version: "3.20".into(),
            })
            .await
            .unwrap();
    }

    /// Creates a volume through the API (202 asserted) and returns its id.
    pub async fn create_volume(&self, body: Value) -> VolumeId {
        let reply = self.post("/v3/volumes", json!({ "volume": body })).await;
        assert_eq!(reply.status, 202, "{}", reply.text);
        reply.id("volume")
    }

    /// Makes a created volume `available` on [`POOL`], as the scheduler and
    /// the volume service would.
    pub async fn make_available(&self, id: VolumeId) {
        let size = self.db.get_volume(id).await.unwrap().size;
        assert_eq!(
            self.db
                .claim_volume_placement(id, POOL, size, 1_000_000)
                .await
                .unwrap(),
            ClaimOutcome::Claimed
        );
        self.db
            .finish_volume_create(id, ProviderUpdate::default())
            .await
            .unwrap();
    }

    /// An `available` volume of `size` GiB.
    pub async fn available_volume(&self, size: i64) -> VolumeId {
        let id = self
            .create_volume(json!({"size": size, "name": "vol"}))
            .await;
        self.make_available(id).await;
        id
    }

    /// An `available` snapshot of `volume`.
    pub async fn available_snapshot(&self, volume: VolumeId) -> SnapshotId {
        let reply = self
            .post(
                "/v3/snapshots",
                json!({"snapshot": {"volume_id": volume.to_string(), "name": "snap"}}),
            )
            .await;
        assert_eq!(reply.status, 202, "{}", reply.text);
        let id: SnapshotId = reply.id("snapshot");
        self.db.finish_snapshot_create(id, None).await.unwrap();
        id
    }

    /// A volume's status in the database.
    pub async fn volume_status(&self, id: VolumeId) -> VolumeStatus {
        self.db.get_volume(id).await.unwrap().status
    }

    /// A snapshot's status in the database.
    pub async fn snapshot_status(&self, id: SnapshotId) -> SnapshotStatus {
        self.db.get_snapshot(id).await.unwrap().status
    }

    /// A group's status in the database.
    pub async fn group_status(&self, id: GroupId) -> GroupStatus {
        self.db.get_group(id).await.unwrap().status
    }

    /// Volumes in the database (every project).
    pub async fn volume_count(&self) -> i64 {
        self.db
            .count_volumes(&VolumeQuery::default())
            .await
            .unwrap()
    }

    /// Snapshots in the database (every project).
    pub async fn snapshot_count(&self) -> i64 {
        self.db
            .count_snapshots(&SnapshotQuery::default())
            .await
            .unwrap()
    }

    /// The project's non-zero usage counters.
    pub async fn usage(&self) -> BTreeMap<String, i64> {
        self.db
            .quota_usages(PROJECT)
            .await
            .unwrap()
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .collect()
    }

    /// Waits until the recorder has seen `n` messages (casts are delivered
    /// on the bus's tasks).
    pub async fn wait_for(recorder: &Recorder, n: usize) -> Vec<String> {
        for _ in 0..200 {
            let methods = recorder.methods();
            if methods.len() >= n {
                return methods;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        recorder.methods()
    }

    /// Stops the stand-in services.
    pub async fn stop_consumers(&mut self) {
        for consumer in self.consumers.drain(..) {
            consumer.stop().await;
        }
    }
}

/// A harness with both stand-in services and the volume service
/// registered in `nova`.
pub async fn harness() -> Harness {
    Harness::registered(Options::default()).await
}

/// The sorted keys of a JSON object.
pub fn sorted_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// noauth, except that tokens `member:<project>` are not admins (Keystone
/// gives members the implied reader role too).
#[derive(Debug)]
pub struct Members;

#[async_trait::async_trait]
impl clinker_api::Authenticator for Members {
    async fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> Result<clinker_api::context::Identity, clinker_api::ApiError> {
        let mut identity = clinker_api::NoAuth.authenticate(headers).await?;
        if identity.user_id == "member" {
            identity.is_admin = false;
            identity.roles = vec!["member".into(), "reader".into()];
        }
        Ok(identity)
    }
}
