//! The Keystone path end to end against a fake Keystone v3 (a small axum
//! app on a loopback port answering `POST` and `GET /v3/auth/tokens`, with
//! token expiry and call counters).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clinker_api::auth::authenticator_with_clock;
use clinker_config::{Config, ConfigEnv, Ini};
use clinker_db::{AttachmentConnection, AttachmentRepository};
use clinker_types::{AttachmentId, Clock, SystemClock, Timestamp, VolumeId, VolumeStatus};
use serde_json::{Value, json};

use crate::common::Verbs;
use crate::common::{Harness, Options, TestClock};

const PA: &str = "aaaa0000aaaa0000aaaa0000aaaa0000";
const HOUR: i64 = 3_600 * 1_000_000;

/// What the fake knows of a token: user, project, roles, expiry.
type TokenRecord = (String, String, Vec<String>, Timestamp);

#[derive(Debug, Default)]
struct Fake {
    /// POST /v3/auth/tokens calls.
    issued: AtomicUsize,
    /// GET /v3/auth/tokens calls.
    validated: AtomicUsize,
    /// Service tokens Keystone currently accepts.
    service_tokens: Mutex<Vec<String>>,
    /// Subject token → (user, project, roles, expires_at).
    tokens: Mutex<HashMap<String, TokenRecord>>,
    /// The catalog of tokens made from a user's token (`methods: token`).
    catalog: Mutex<Value>,
    /// Tokens the `token` method was given, in order.
    rescoped: Mutex<Vec<String>>,
    /// The stand-in Nova's answer: status and body.
    nova_answer: Mutex<(u16, Value)>,
    /// Paths the stand-in Nova was asked, with the token it was given.
    nova_calls: Mutex<Vec<(String, String)>>,
}

impl Fake {
    fn add(&self, token: &str, user: &str, roles: &[&str], expires: Timestamp) {
        self.tokens.lock().unwrap().insert(
            token.into(),
            (
                user.into(),
                PA.into(),
                roles.iter().map(|r| (*r).to_owned()).collect(),
                expires,
            ),
        );
    }
}

fn token_body(user: &str, project: &str, roles: &[String], expires: Timestamp) -> Value {
    json!({"token": {
        "expires_at": expires.to_iso8601_seconds_z(),
        "issued_at": "2026-01-01T00:00:00.000000Z",
        "methods": ["password"],
        "user": {"id": user, "name": user, "domain": {"id": "default", "name": "Default"}},
        "project": {"id": project, "name": "p", "domain": {"id": "default", "name": "Default"}},
        "roles": roles.iter().map(|r| json!({"id": format!("id-{r}"), "name": r})).collect::<Vec<_>>(),
        "is_domain": false,
    }})
}

async fn issue(State(fake): State<Arc<Fake>>, body: axum::Json<Value>) -> Response {
    if body["auth"]["identity"]["methods"] == json!(["token"]) {
        return rescope(&fake, &body);
    }
    let user = &body["auth"]["identity"]["password"]["user"];
    if user["name"] != "cinder" || user["password"] != "secret" {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let n = fake.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let token = format!("svc-{n}");
    fake.service_tokens.lock().unwrap().push(token.clone());
    let expires = SystemClock.now().plus_micros(HOUR);
    let body = token_body(
        "cinder-user",
        "service-project",
        &["service".into(), "admin".into()],
        expires,
    );
    (
        StatusCode::CREATED,
        [("x-subject-token", token)],
        axum::Json(body),
    )
        .into_response()
}

async fn validate(State(fake): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    fake.validated.fetch_add(1, Ordering::SeqCst);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    if !fake
        .service_tokens
        .lock()
        .unwrap()
        .contains(&header("x-auth-token"))
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match fake.tokens.lock().unwrap().get(&header("x-subject-token")) {
        Some((user, project, roles, expires)) => {
            axum::Json(token_body(user, project, roles, *expires)).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// keystoneauth's `identity.Token` (what Cinder's Nova client does with
/// the caller's token): a new token for the named project, with a catalog.
fn rescope(fake: &Fake, body: &Value) -> Response {
    let given = body["auth"]["identity"]["token"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    fake.rescoped.lock().unwrap().push(given.clone());
    let Some((user, project, roles, expires)) = fake.tokens.lock().unwrap().get(&given).cloned()
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if body["auth"]["scope"]["project"]["id"] != project.as_str() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut token = token_body(&user, &project, &roles, expires);
    token["token"]["catalog"] = fake.catalog.lock().unwrap().clone();
    (
        StatusCode::CREATED,
        [("x-subject-token", format!("rescoped-{given}"))],
        axum::Json(token),
    )
        .into_response()
}

/// The stand-in Nova's `GET /servers/{id}/os-volume_attachments/{volume}`.
async fn nova_server_volume(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let token = headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let version = headers
        .get("openstack-api-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(version, "compute 2.89", "Cinder asks with 2.89");
    fake.nova_calls
        .lock()
        .unwrap()
        .push((uri.path().to_owned(), token));
    let (status, body) = fake.nova_answer.lock().unwrap().clone();
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

/// Starts the fake on a free loopback port; returns its URL.
async fn start_fake(fake: Arc<Fake>) -> String {
    let app = Router::new()
        .route("/v3/auth/tokens", post(issue).get(validate))
        .route(
            "/nova/v2.1/servers/{server}/os-volume_attachments/{volume}",
            axum::routing::get(nova_server_volume),
        )
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn keystone_config(auth_url: &str, extra: &str) -> (String, Config) {
    let text = format!(
        "auth_strategy = keystone\n\n[keystone_authtoken]\nwww_authenticate_uri = http://public.example/identity\n\
         auth_url = {auth_url}\nauth_type = password\nusername = cinder\npassword = secret\n\
         project_name = service\nuser_domain_name = Default\nproject_domain_name = Default\n\
         memcached_servers = 127.0.0.1:11211\n{extra}\n"
    );
    let mut ini = Ini::default();
    ini.merge_text(&format!("[DEFAULT]\n{text}"), "k.conf")
        .unwrap();
    let config = Config::from_ini(
        &ini,
        &ConfigEnv {
            hostname: "n".into(),
        },
    )
    .unwrap();
    (text, config)
}

/// A harness authenticating against `auth_url` with a clock the test moves.
async fn harness(auth_url: &str, extra: &str) -> (Harness, Arc<TestClock>) {
    let clock = Arc::new(TestClock(Mutex::new(SystemClock.now())));
    let (text, config) = keystone_config(auth_url, extra);
    let authenticator = authenticator_with_clock(&config, clock.clone()).unwrap();
    let h = Harness::with(Options {
        authenticator: Some(authenticator),
        config: text,
        ..Options::default()
    })
    .await;
    h.register_volume_service("nova").await;
    (h, clock)
}

fn with_token(token: &str) -> [(&str, &str); 1] {
    [("x-auth-token", token)]
}

#[tokio::test]
async fn tokens_are_validated_once_and_cached() {
    let fake = Arc::new(Fake::default());
    let url = start_fake(fake.clone()).await;
    let now = SystemClock.now();
    fake.add(
        "user-a",
        "u-a",
        &["member", "reader"],
        now.plus_micros(HOUR),
    );
    let (h, clock) = harness(&url, "token_cache_time = 300").await;

    for _ in 0..3 {
        let reply = h
            .with_headers(&with_token("user-a"))
            .get("/v3/volumes")
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    // Project in the URL must be the token's.
    let reply = h
        .with_headers(&with_token("user-a"))
        .get(&format!("/v3/{PA}/volumes"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(fake.issued.load(Ordering::SeqCst), 1, "one service token");
    assert_eq!(fake.validated.load(Ordering::SeqCst), 1, "one validation");

    // The member is a member: admin-only routes are refused.
    let services = h
        .with_headers(&with_token("user-a"))
        .get("/v3/os-services")
        .await;
    assert_eq!(services.status, 403);

    // After token_cache_time the token is validated again.
    *clock.0.lock().unwrap() = clock.now().plus_micros(301 * 1_000_000);
    let reply = h
        .with_headers(&with_token("user-a"))
        .get("/v3/volumes")
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(fake.validated.load(Ordering::SeqCst), 2);

    // An admin token maps to an admin context.
    fake.add(
        "admin-a",
        "u-admin",
        &["admin", "member", "reader"],
        now.plus_micros(HOUR),
    );
    let services = h
        .with_headers(&with_token("admin-a"))
        .get("/v3/os-services")
        .await;
    assert_eq!(services.status, 200, "{}", services.text);
}

#[tokio::test]
async fn bad_missing_and_expired_tokens_are_401_with_www_authenticate() {
    let fake = Arc::new(Fake::default());
    let url = start_fake(fake.clone()).await;
    let now = SystemClock.now();
    fake.add(
        "expired",
        "u-a",
        &["member", "reader"],
        now.plus_micros(-1_000_000),
    );
    fake.add(
        "soon",
        "u-a",
        &["member", "reader"],
        now.plus_micros(60 * 1_000_000),
    );
    let (h, clock) = harness(&url, "").await;
    for headers in [
        vec![("x-auth-token", "nonsense")],
        vec![("x-auth-token", "expired")],
        vec![("x-auth-token", "")],
    ] {
        let reply = h.with_headers(&headers).get("/v3/volumes").await;
        assert_eq!(reply.status, 401, "{headers:?}: {}", reply.text);
        assert_eq!(
            reply.fault("unauthorized"),
            "The request you have made requires authentication."
        );
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Keystone uri=\"http://public.example/identity\"")
        );
    }
    // A cached token stops working when it expires, without asking Keystone.
    let reply = h.with_headers(&with_token("soon")).get("/v3/volumes").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let validations = fake.validated.load(Ordering::SeqCst);
    *clock.0.lock().unwrap() = clock.now().plus_micros(61 * 1_000_000);
    let reply = h.with_headers(&with_token("soon")).get("/v3/volumes").await;
    assert_eq!(reply.status, 401);
    assert!(fake.validated.load(Ordering::SeqCst) <= validations + 1);
    // The unauthenticated root stays open.
    let root = h.with_headers(&[]).get("/").await;
    assert_eq!(root.status, 300);
}

#[tokio::test]
async fn service_tokens_are_recognised() {
    let fake = Arc::new(Fake::default());
    let url = start_fake(fake.clone()).await;
    let now = SystemClock.now();
    fake.add(
        "user-a",
        "u-a",
        &["member", "reader"],
        now.plus_micros(HOUR),
    );
    fake.add(
        "expired-user",
        "u-a",
        &["member", "reader"],
        now.plus_micros(-1_000_000),
    );
    fake.add("nova", "u-nova", &["service"], now.plus_micros(HOUR));
    fake.add("not-a-service", "u-b", &["member"], now.plus_micros(HOUR));
    let (h, _clock) = harness(&url, "").await;

    let created = h
        .with_headers(&[("x-auth-token", "user-a"), ("x-service-token", "nova")])
        .post("/v3/volumes", json!({"volume": {"size": 1}}))
        .await;
    assert_eq!(created.status, 202, "{}", created.text);
    Harness::wait_for(&h.scheduler, 1).await;
    let context = h.scheduler.seen.lock().unwrap()[0].context.clone();
    assert!(context.is_service, "{context:?}");
    assert_eq!(context.service_roles, vec!["service".to_owned()]);
    assert_eq!(context.user_id, "u-a");
    assert_eq!(context.project_id, PA);
    assert_eq!(context.project_domain_id.as_deref(), Some("default"));

    // Without the service role (service_token_roles_required) it is refused.
    let refused = h
        .with_headers(&[
            ("x-auth-token", "user-a"),
            ("x-service-token", "not-a-service"),
        ])
        .get("/v3/volumes")
        .await;
    assert_eq!(refused.status, 401, "{}", refused.text);
    let invalid = h
        .with_headers(&[("x-auth-token", "user-a"), ("x-service-token", "nonsense")])
        .get("/v3/volumes")
        .await;
    assert_eq!(invalid.status, 401);
    // A real service may act on a user's expired token.
    let late = h
        .with_headers(&[
            ("x-auth-token", "expired-user"),
            ("x-service-token", "nova"),
        ])
        .get("/v3/volumes")
        .await;
    assert_eq!(late.status, 200, "{}", late.text);
    // A plain user request is not a service request.
    h.with_headers(&with_token("user-a"))
        .post("/v3/volumes", json!({"volume": {"size": 1}}))
        .await;
    Harness::wait_for(&h.scheduler, 2).await;
    assert!(!h.scheduler.seen.lock().unwrap()[1].context.is_service);
}

#[tokio::test]
async fn the_service_token_is_renewed_when_keystone_refuses_it() {
    let fake = Arc::new(Fake::default());
    let url = start_fake(fake.clone()).await;
    fake.add(
        "user-a",
        "u-a",
        &["member", "reader"],
        SystemClock.now().plus_micros(HOUR),
    );
    fake.add(
        "user-b",
        "u-a",
        &["member", "reader"],
        SystemClock.now().plus_micros(HOUR),
    );
    let (h, _clock) = harness(&url, "").await;
    let reply = h
        .with_headers(&with_token("user-a"))
        .get("/v3/volumes")
        .await;
    assert_eq!(reply.status, 200);
    // Keystone forgets the service token (restart, revocation).
    fake.service_tokens.lock().unwrap().clear();
    let reply = h
        .with_headers(&with_token("user-b"))
        .get("/v3/volumes")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(fake.issued.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn keystone_down_is_503() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (h, _clock) = harness(&url, "http_connect_timeout = 2").await;
    let reply = h
        .with_headers(&with_token("user-a"))
        .get("/v3/volumes")
        .await;
    assert_eq!(
        reply.refusal(503),
        "The Keystone service is temporarily unavailable."
    );
}

#[tokio::test]
async fn the_configured_strategy_builds_the_keystone_router() {
    let fake = Arc::new(Fake::default());
    let url = start_fake(fake.clone()).await;
    fake.add(
        "user-a",
        "u-a",
        &["member", "reader"],
        SystemClock.now().plus_micros(HOUR),
    );
    let (text, _) = keystone_config(&url, "");
    // No explicit authenticator: the router reads auth_strategy.
    let h = Harness::with(Options {
        config: text,
        ..Options::default()
    })
    .await;
    let reply = h
        .with_headers(&with_token("user-a"))
        .get("/v3/volumes")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = h
        .with_headers(&with_token("admin:admin"))
        .get("/v3/volumes")
        .await;
    assert_eq!(reply.status, 401, "noauth tokens mean nothing to keystone");
}

/// CVE-2023-2088 as Cinder handles it: a user's delete of a connected
/// attachment asks Nova, as the user, whether the server still uses the
/// volume; only a "no" (404, or another attachment) lets it through.
#[tokio::test]
async fn deleting_a_connected_attachment_asks_nova_as_the_caller() {
    let fake = Arc::new(Fake::default());
    let url = start_fake(fake.clone()).await;
    let now = SystemClock.now();
    fake.add(
        "user-a",
        "u-a",
        &["member", "reader"],
        now.plus_micros(HOUR),
    );
    let (h, _clock) = harness(&url, "").await;
    let server = "d5c4c6b7-8e0f-4a2b-9c3d-1e2f3a4b5c6d";
    let as_user = [
        ("x-auth-token", "user-a"),
        ("openstack-api-version", "volume 3.44"),
    ];
    // A volume of the user's project with an attachment a server connected.
    let connected = || async {
        let created = h
            .with_headers(&as_user)
            .post("/v3/volumes", json!({"volume": {"size": 1}}))
            .await;
        assert_eq!(created.status, 202, "{}", created.text);
        let volume: VolumeId = created.id("volume");
        h.make_available(volume).await;
        let made = h
            .with_headers(&as_user)
            .post(
                "/v3/attachments",
                json!({"attachment": {"volume_uuid": volume.to_string(), "instance_uuid": server}}),
            )
            .await;
        assert_eq!(made.status, 200, "{}", made.text);
        let id: AttachmentId = made.id("attachment");
        h.db.connect_attachment(
            id,
            AttachmentConnection {
                connector: json!({"initiator": "iqn.x", "host": "compute-1"}),
                connection_info: json!({"driver_volume_type": "fake"}),
                attached_host: Some("compute-1".into()),
                mountpoint: Some("/dev/vdb".into()),
                attach_mode: "rw".into(),
            },
        )
        .await
        .unwrap();
        h.db.complete_attachment(id).await.unwrap();
        (volume, id)
    };
    let delete = |id: AttachmentId| {
        let h = &h;
        async move {
            h.with_headers(&as_user)
                .delete(&format!("/v3/attachments/{id}"))
                .await
        }
    };
    let conflict = format!(
        "ConflictNovaUsingAttachment: Detach volume from instance {server} using the Compute API"
    );

    // No Compute endpoint in the catalog: nobody to ask, so it is in use.
    let (volume, id) = connected().await;
    let refused = delete(id).await;
    assert_eq!(refused.refusal(409), conflict);
    assert_eq!(*fake.rescoped.lock().unwrap(), ["user-a"]);

    *fake.catalog.lock().unwrap() = json!([{"type": "compute", "name": "nova", "endpoints": [
        {"interface": "internal", "region_id": "RegionOne", "url": "http://127.0.0.1:9/internal"},
        {"interface": "public", "region_id": "RegionOne", "url": format!("{url}/nova/v2.1")},
    ]}]);
    // Nova says the server uses the volume through this attachment: 409,
    // nothing changes.
    *fake.nova_answer.lock().unwrap() = (
        200,
        json!({"volumeAttachment": {"id": volume.to_string(), "volumeId": volume.to_string(),
                                    "serverId": server, "attachment_id": id.to_string()}}),
    );
    let refused = delete(id).await;
    assert_eq!(refused.refusal(409), conflict);
    assert_eq!(
        *fake.nova_calls.lock().unwrap(),
        [(
            format!("/nova/v2.1/servers/{server}/os-volume_attachments/{volume}"),
            "rescoped-user-a".to_owned()
        )]
    );
    assert_eq!(h.volume_status(volume).await, VolumeStatus::InUse);

    // Nova fails: 503, nothing changes.
    *fake.nova_answer.lock().unwrap() = (500, json!({"computeFault": {"code": 500}}));
    let failed = delete(id).await;
    assert_eq!(failed.status, 503, "{}", failed.text);
    assert_eq!(h.volume_status(volume).await, VolumeStatus::InUse);

    // Nova holds another attachment of the volume: this one may go.
    *fake.nova_answer.lock().unwrap() = (
        200,
        json!({"volumeAttachment": {"attachment_id": AttachmentId::new_random().to_string()}}),
    );
    let deleted = delete(id).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    // (the volume service here is a recorder: it was asked to remove it)
    let methods = Harness::wait_for(&h.volume, 1).await;
    assert_eq!(methods, ["attachment_delete"]);

    // Nova does not know the server has the volume (attached behind its
    // back, e.g. with `openstack volume attachment create`): it may go.
    let (volume, id) = connected().await;
    *fake.nova_answer.lock().unwrap() = (404, json!({"itemNotFound": {"code": 404}}));
    let deleted = delete(id).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(Harness::wait_for(&h.volume, 2).await.len(), 2);
    assert!(
        fake.nova_calls
            .lock()
            .unwrap()
            .iter()
            .any(|(path, _)| path.ends_with(&volume.to_string())),
        "the delete did not ask nova"
    );
    // the legacy detach asks too
    let (volume2, id2) = connected().await;
    let detached = h
        .with_headers(&as_user)
        .post(
            &format!("/v3/volumes/{volume2}/action"),
            json!({"os-detach": {"attachment_id": id2.to_string()}}),
        )
        .await;
    assert_eq!(detached.status, 202, "{}", detached.text);
    assert!(
        fake.nova_calls
            .lock()
            .unwrap()
            .iter()
            .any(|(path, _)| path.ends_with(&volume2.to_string())),
        "os-detach did not ask nova"
    );
}
