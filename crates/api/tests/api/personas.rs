//! Policy and project isolation with Keystone-like callers: a static token
//! table (an admin, a member in each of two projects, a reader, a user
//! without roles) behind the Authenticator seam, Cinder's default rules,
//! and a policy file's overrides.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use clinker_api::context::Identity;
use clinker_api::{ApiError, Authenticator};
use clinker_db::{MessageRepository, SnapshotRepository};
use clinker_types::model::UserMessage;
use clinker_types::{ErrorKind, MessageId, SnapshotId, Timestamp, VolumeId};
use serde_json::{Value, json};

use crate::common::Verbs;
use crate::common::{Harness, Options};

/// Project of the admin, `member-a` and `reader-a`.
const PA: &str = "aaaa0000aaaa0000aaaa0000aaaa0000";
/// Project of `member-b`.
const PB: &str = "bbbb1111bbbb1111bbbb1111bbbb1111";

/// Tokens as a Keystone with its default implied roles would issue them.
#[derive(Debug)]
pub struct StaticTokens;

#[async_trait::async_trait]
impl Authenticator for StaticTokens {
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, ApiError> {
        let token = headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let (user, project, roles): (&str, &str, &[&str]) = match token {
            "admin" => ("u-admin", PA, &["admin", "member", "reader"]),
            "member-a" => ("u-member-a", PA, &["member", "reader"]),
            "member-b" => ("u-member-b", PB, &["member", "reader"]),
            "reader-a" => ("u-reader-a", PA, &["reader"]),
            "norole-a" => ("u-norole-a", PA, &[]),
            _ => return Err(ApiError::new(ErrorKind::Unauthorized, "no such token")),
        };
        Ok(Identity {
            user_id: user.into(),
            project_id: project.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            ..Identity::default()
        })
    }
}

fn token(name: &str) -> [(&'static str, &str); 2] {
    [
        ("x-auth-token", name),
        ("OpenStack-API-Version", "volume 3.71"),
    ]
}

async fn harness_with(config: &str) -> Harness {
    Harness::registered(Options {
        authenticator: Some(Arc::new(StaticTokens)),
        config: config.to_owned(),
        ..Options::default()
    })
    .await
}

async fn harness() -> Harness {
    harness_with("").await
}

/// An available volume and snapshot of project A, created by `member-a`
/// through the API.
async fn resources_of_a(h: &Harness) -> (VolumeId, SnapshotId) {
    let created = h
        .with_headers(&token("member-a"))
        .post(
            "/v3/volumes",
            json!({"volume": {"size": 1, "name": "a-vol", "metadata": {"k": "v"}}}),
        )
        .await;
    assert_eq!(created.status, 202, "{}", created.text);
    let volume: VolumeId = created.id("volume");
    h.make_available(volume).await;
    let snap = h
        .with_headers(&token("member-a"))
        .post(
            "/v3/snapshots",
            json!({"snapshot": {"volume_id": volume.to_string(), "name": "a-snap"}}),
        )
        .await;
    assert_eq!(snap.status, 202, "{}", snap.text);
    let snapshot: SnapshotId = snap.id("snapshot");
    h.db.finish_snapshot_create(snapshot, None).await.unwrap();
    h.db.create_message(&UserMessage {
        id: MessageId::new_random(),
        project_id: PA.into(),
        request_id: Some("req-1".into()),
        resource_type: "VOLUME".into(),
        resource_uuid: Some(volume.to_string()),
        event_id: "VOLUME_VOLUME_001_002".into(),
        message_level: "ERROR".into(),
        user_message: "schedule allocate volume:Could not find any available weighted backend."
            .into(),
        created_at: Timestamp(1_700_000_000_000_000),
        expires_at: Timestamp(4_000_000_000_000_000),
    })
    .await
    .unwrap();
    (volume, snapshot)
}

/// Every route that reads or acts on one volume or snapshot.
fn resource_routes(v: VolumeId, s: SnapshotId) -> Vec<(&'static str, String, Option<Value>)> {
    let vol = format!("/v3/volumes/{v}");
    let snap = format!("/v3/snapshots/{s}");
    vec![
        ("GET", vol.clone(), None),
        ("PUT", vol.clone(), Some(json!({"volume": {"name": "x"}}))),
        ("GET", format!("{vol}/metadata"), None),
        (
            "POST",
            format!("{vol}/metadata"),
            Some(json!({"metadata": {"a": "b"}})),
        ),
        (
            "PUT",
            format!("{vol}/metadata"),
            Some(json!({"metadata": {"a": "b"}})),
        ),
        ("GET", format!("{vol}/metadata/k"), None),
        (
            "PUT",
            format!("{vol}/metadata/k"),
            Some(json!({"meta": {"k": "w"}})),
        ),
        ("DELETE", format!("{vol}/metadata/k"), None),
        (
            "POST",
            format!("{vol}/action"),
            Some(json!({"os-extend": {"new_size": 2}})),
        ),
        (
            "POST",
            format!("{vol}/action"),
            Some(json!({"os-set_bootable": {"bootable": true}})),
        ),
        (
            "POST",
            format!("{vol}/action"),
            Some(json!({"os-update_readonly_flag": {"readonly": true}})),
        ),
        (
            "POST",
            format!("{vol}/action"),
            Some(json!({"os-show_image_metadata": {}})),
        ),
        (
            "POST",
            format!("{vol}/action"),
            Some(json!({"os-set_image_metadata": {"metadata": {"a": "b"}}})),
        ),
        ("DELETE", vol.clone(), None),
        ("GET", snap.clone(), None),
        (
            "PUT",
            snap.clone(),
            Some(json!({"snapshot": {"name": "x"}})),
        ),
        ("GET", format!("{snap}/metadata"), None),
        (
            "POST",
            format!("{snap}/metadata"),
            Some(json!({"metadata": {"a": "b"}})),
        ),
        ("GET", format!("{snap}/metadata/k"), None),
        ("DELETE", format!("{snap}/metadata/k"), None),
        (
            "POST",
            format!("{snap}/action"),
            Some(json!({"os-update_snapshot_status": {"status": "available"}})),
        ),
        ("DELETE", snap.clone(), None),
    ]
}

#[tokio::test]
async fn another_project_finds_nothing() {
    let h = harness().await;
    let (v, s) = resources_of_a(&h).await;
    for (method, uri, body) in resource_routes(v, s) {
        let reply = h.send(method, &uri, body, &token("member-b")).await;
        assert_eq!(reply.status, 404, "{method} {uri}: {}", reply.text);
        assert!(reply.body["itemNotFound"]["message"].is_string());
    }
    // Nor can it snapshot or clone A's volume.
    let snap = h
        .with_headers(&token("member-b"))
        .post(
            "/v3/snapshots",
            json!({"snapshot": {"volume_id": v.to_string()}}),
        )
        .await;
    assert_eq!(snap.status, 404, "{}", snap.text);
    let clone = h
        .with_headers(&token("member-b"))
        .post(
            "/v3/volumes",
            json!({"volume": {"size": 1, "source_volid": v.to_string()}}),
        )
        .await;
    assert_eq!(clone.status, 404, "{}", clone.text);

    // Lists, counts and summaries see nothing, all_tenants included.
    for uri in [
        "/v3/volumes?with_count=true",
        "/v3/volumes/detail?with_count=true&all_tenants=1",
        "/v3/snapshots?with_count=true",
        "/v3/snapshots/detail?all_tenants=true&with_count=true",
    ] {
        let reply = h.with_headers(&token("member-b")).get(uri).await;
        assert_eq!(reply.status, 200, "{uri}: {}", reply.text);
        let key = if uri.contains("snapshots") {
            "snapshots"
        } else {
            "volumes"
        };
        assert_eq!(reply.body[key], json!([]), "{uri}");
        assert_eq!(reply.body["count"], 0, "{uri}");
    }
    let summary = h
        .with_headers(&token("member-b"))
        .get("/v3/volumes/summary?all_tenants=1")
        .await;
    assert_eq!(
        summary.body["volume-summary"]["total_count"], 0,
        "{}",
        summary.text
    );
    assert_eq!(summary.body["volume-summary"]["total_size"], 0);
    let messages = h.with_headers(&token("member-b")).get("/v3/messages").await;
    assert_eq!(messages.body["messages"], json!([]), "{}", messages.text);
    let message_id = h
        .with_headers(&token("member-a"))
        .get("/v3/messages")
        .await
        .body["messages"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (method, uri) in [
        ("GET", format!("/v3/messages/{message_id}")),
        ("DELETE", format!("/v3/messages/{message_id}")),
        ("GET", format!("/v3/messages?marker={message_id}")),
    ] {
        let reply = h.send(method, &uri, None, &token("member-b")).await;
        assert_eq!(reply.status, 404, "{method} {uri}: {}", reply.text);
    }

    // A's ids as markers are not found in B's scope.
    let marker = h
        .with_headers(&token("member-b"))
        .get(&format!("/v3/volumes?marker={v}"))
        .await;
    assert_eq!(
        marker.refusal(404),
        format!("Volume {v} could not be found.")
    );
    let marker = h
        .with_headers(&token("member-b"))
        .get(&format!("/v3/snapshots?marker={s}"))
        .await;
    assert_eq!(marker.status, 404, "{}", marker.text);

    // B's limits and quota usage count nothing of A's; A's quotas are
    // not B's to read, not even through ?project_id=.
    let limits = h
        .with_headers(&token("member-b"))
        .get(&format!("/v3/limits?project_id={PA}"))
        .await;
    assert_eq!(limits.body["limits"]["absolute"]["totalVolumesUsed"], 0);
    assert_eq!(limits.body["limits"]["absolute"]["totalSnapshotsUsed"], 0);
    let own = h
        .with_headers(&token("member-b"))
        .get(&format!("/v3/os-quota-sets/{PB}?usage=true"))
        .await;
    assert_eq!(own.status, 200, "{}", own.text);
    assert_eq!(own.body["quota_set"]["volumes"]["in_use"], 0);
    let foreign = h
        .with_headers(&token("member-b"))
        .get(&format!("/v3/os-quota-sets/{PA}"))
        .await;
    assert_eq!(
        foreign.refusal(403),
        "Policy doesn't allow volume_extension:quotas:show to be performed."
    );

    // A still sees its own, and the admin sees A's with all_tenants.
    let a = h
        .with_headers(&token("member-a"))
        .get("/v3/volumes?with_count=true")
        .await;
    assert_eq!(a.body["count"], 1, "{}", a.text);
    let limits = h.with_headers(&token("member-a")).get("/v3/limits").await;
    assert_eq!(limits.body["limits"]["absolute"]["totalVolumesUsed"], 1);
    let all = h
        .with_headers(&token("admin"))
        .get("/v3/volumes?all_tenants=1&with_count=true")
        .await;
    assert_eq!(all.body["count"], 1, "{}", all.text);
}

#[tokio::test]
async fn readers_read_and_cannot_write() {
    let h = harness().await;
    let (v, s) = resources_of_a(&h).await;
    for uri in [
        "/v3/volumes".to_owned(),
        "/v3/volumes/detail".to_owned(),
        "/v3/volumes/summary".to_owned(),
        format!("/v3/volumes/{v}"),
        format!("/v3/volumes/{v}/metadata"),
        format!("/v3/volumes/{v}/metadata/k"),
        "/v3/snapshots".to_owned(),
        "/v3/snapshots/detail".to_owned(),
        format!("/v3/snapshots/{s}"),
        format!("/v3/snapshots/{s}/metadata"),
        "/v3/types".to_owned(),
        "/v3/types/default".to_owned(),
        "/v3/limits".to_owned(),
        format!("/v3/os-quota-sets/{PA}?usage=true"),
        format!("/v3/os-quota-sets/{PA}/defaults"),
        "/v3/messages".to_owned(),
        "/v3/os-availability-zone".to_owned(),
        "/v3/extensions".to_owned(),
    ] {
        let reply = h.with_headers(&token("reader-a")).get(&uri).await;
        assert_eq!(reply.status, 200, "GET {uri}: {}", reply.text);
    }
    let shown = h
        .with_headers(&token("reader-a"))
        .post(
            &format!("/v3/volumes/{v}/action"),
            json!({"os-show_image_metadata": {}}),
        )
        .await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    let limits = h.with_headers(&token("reader-a")).get("/v3/limits").await;
    assert_eq!(limits.body["limits"]["absolute"]["totalVolumesUsed"], 1);

    let mut writes = resource_routes(v, s);
    let is_read = |method: &str, body: &Option<Value>| {
        method == "GET"
            || body
                .as_ref()
                .is_some_and(|b| b.get("os-show_image_metadata").is_some())
    };
    writes.retain(|(method, _, body)| !is_read(method, body));
    writes.push((
        "POST",
        "/v3/volumes".into(),
        Some(json!({"volume": {"size": 1}})),
    ));
    writes.push((
        "POST",
        "/v3/snapshots".into(),
        Some(json!({"snapshot": {"volume_id": v.to_string()}})),
    ));
    let message_id = h
        .with_headers(&token("reader-a"))
        .get("/v3/messages")
        .await
        .body["messages"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    writes.push(("DELETE", format!("/v3/messages/{message_id}"), None));
    let volumes_before = h.volume_count().await;
    for (method, uri, body) in writes {
        let reply = h.send(method, &uri, body, &token("reader-a")).await;
        assert_eq!(reply.status, 403, "{method} {uri}: {}", reply.text);
        assert!(
            reply
                .fault("forbidden")
                .starts_with("Policy doesn't allow "),
            "{}",
            reply.text
        );
    }
    // Nothing was written.
    assert_eq!(h.volume_count().await, volumes_before);
    let volume = h
        .with_headers(&token("admin"))
        .get(&format!("/v3/volumes/{v}"))
        .await;
    assert_eq!(volume.body["volume"]["name"], "a-vol");
    assert_eq!(volume.body["volume"]["metadata"], json!({"k": "v"}));
    assert_eq!(volume.body["volume"]["size"], 1);
}

#[tokio::test]
async fn callers_without_a_role_get_nothing() {
    let h = harness().await;
    let (v, s) = resources_of_a(&h).await;
    // Cinder hides a volume the caller may not read; a snapshot it refuses.
    let volume = h
        .with_headers(&token("norole-a"))
        .get(&format!("/v3/volumes/{v}"))
        .await;
    assert_eq!(volume.status, 404, "{}", volume.text);
    let snapshot = h
        .with_headers(&token("norole-a"))
        .get(&format!("/v3/snapshots/{s}"))
        .await;
    assert_eq!(snapshot.status, 403, "{}", snapshot.text);
    for uri in [
        "/v3/volumes",
        "/v3/snapshots",
        "/v3/types",
        "/v3/messages",
        "/v3/volumes/summary",
    ] {
        let reply = h.with_headers(&token("norole-a")).get(uri).await;
        assert_eq!(reply.status, 403, "{uri}: {}", reply.text);
    }
    // Limits are shown without usage (os-used-limits needs a reader).
    let limits = h.with_headers(&token("norole-a")).get("/v3/limits").await;
    assert_eq!(limits.status, 200);
    let absolute = &limits.body["limits"]["absolute"];
    assert!(absolute.get("maxTotalVolumes").is_some());
    assert!(absolute.get("totalVolumesUsed").is_none(), "{absolute}");
    // Unknown tokens are 401.
    let reply = h.with_headers(&token("nobody")).get("/v3/volumes").await;
    assert_eq!(reply.status, 401);
    assert!(reply.body["unauthorized"]["message"].is_string());
}

#[tokio::test]
async fn members_cannot_do_what_admins_can() {
    let h = harness().await;
    let (v, s) = resources_of_a(&h).await;
    let type_id = h
        .with_headers(&token("admin"))
        .get("/v3/types/default")
        .await
        .body["volume_type"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cases: Vec<(&str, String, Option<Value>)> = vec![
        (
            "POST",
            "/v3/types".into(),
            Some(json!({"volume_type": {"name": "gold"}})),
        ),
        (
            "PUT",
            format!("/v3/types/{type_id}"),
            Some(json!({"volume_type": {"description": "d"}})),
        ),
        (
            "POST",
            format!("/v3/types/{type_id}/extra_specs"),
            Some(json!({"extra_specs": {"a": "b"}})),
        ),
        (
            "GET",
            format!("/v3/types/{type_id}/os-volume-type-access"),
            None,
        ),
        (
            "POST",
            format!("/v3/volumes/{v}/action"),
            Some(json!({"os-reset_status": {"status": "error"}})),
        ),
        (
            "POST",
            format!("/v3/snapshots/{s}/action"),
            Some(json!({"os-reset_status": {"status": "error"}})),
        ),
        ("GET", "/v3/os-services".into(), None),
        (
            "PUT",
            "/v3/os-services/disable".into(),
            Some(json!({"host": "node1@file", "binary": "cinder-volume"})),
        ),
        (
            "PUT",
            format!("/v3/os-quota-sets/{PA}"),
            Some(json!({"quota_set": {"volumes": 5}})),
        ),
        ("DELETE", format!("/v3/os-quota-sets/{PA}"), None),
        ("GET", format!("/v3/os-quota-sets/{PB}"), None),
        ("GET", "/v3/os-quota-class-sets/default".into(), None),
        ("GET", "/v3/scheduler-stats/get_pools".into(), None),
        ("GET", "/v3/os-hosts".into(), None),
        ("GET", "/v3/capabilities/node1@file".into(), None),
        ("DELETE", format!("/v3/volumes/{v}?force=true"), None),
        (
            "POST",
            format!("/v3/volumes/{v}/action"),
            Some(json!({"os-force_delete": {}})),
        ),
        (
            "POST",
            format!("/v3/snapshots/{s}/action"),
            Some(json!({"os-force_delete": {}})),
        ),
        ("DELETE", format!("/v3/types/{type_id}"), None),
    ];
    for (method, uri, body) in &cases {
        let reply = h.send(method, uri, body.clone(), &token("member-a")).await;
        assert_eq!(reply.status, 403, "member {method} {uri}: {}", reply.text);
    }
    for (method, uri, body) in &cases {
        let reply = h.send(method, uri, body.clone(), &token("admin")).await;
        assert_ne!(reply.status, 403, "admin {method} {uri}: {}", reply.text);
        assert_ne!(reply.status, 401, "admin {method} {uri}: {}", reply.text);
    }
}

#[tokio::test]
async fn non_admin_filters_are_checked_from_3_31() {
    let h = harness().await;
    resources_of_a(&h).await;
    let at = |v: &'static str| ("OpenStack-API-Version", v);
    let refused = h
        .with_headers(&[("x-auth-token", "member-a"), at("volume 3.31")])
        .get("/v3/snapshots?project_id=x&name=a")
        .await;
    assert_eq!(
        refused.refusal(400),
        "Invalid filters project_id are found in query options."
    );
    let messages = h
        .with_headers(&[("x-auth-token", "member-a"), at("volume 3.31")])
        .get("/v3/messages?host=x")
        .await;
    assert_eq!(
        messages.refusal(400),
        "Invalid filters host are found in query options."
    );
    // Admins may filter on anything.
    let admin = h
        .with_headers(&[("x-auth-token", "admin"), at("volume 3.31")])
        .get("/v3/volumes?host=x")
        .await;
    assert_eq!(admin.status, 200, "{}", admin.text);
}

fn policy_file(text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("clinker-policy-{}.yaml", uuid::Uuid::new_v4()));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn policy_file_overrides_take_effect() {
    let path = policy_file(
        "# operators' overrides\n\"volume:create\": \"rule:admin_api\"\n\"volume:get_all\": \"not role:reader or role:member\"\n",
    );
    let h = harness_with(&format!(
        "\n[oslo_policy]\npolicy_file = {}\n",
        path.display()
    ))
    .await;
    let body = || Some(json!({"volume": {"size": 1}}));
    let member = h
        .send("POST", "/v3/volumes", body(), &token("member-a"))
        .await;
    assert_eq!(
        member.refusal(403),
        "Policy doesn't allow volume:create to be performed."
    );
    let admin = h.send("POST", "/v3/volumes", body(), &token("admin")).await;
    assert_eq!(admin.status, 202, "{}", admin.text);
    let reader = h.with_headers(&token("reader-a")).get("/v3/volumes").await;
    assert_eq!(reader.status, 403, "{}", reader.text);
    let member = h.with_headers(&token("member-a")).get("/v3/volumes").await;
    assert_eq!(member.status, 200, "{}", member.text);
    // Rules the file does not name keep Cinder's defaults.
    let snapshots = h
        .with_headers(&token("reader-a"))
        .get("/v3/snapshots")
        .await;
    assert_eq!(snapshots.status, 200);
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn a_bad_policy_file_is_refused_naming_the_rule() {
    let path = policy_file("\"volume:create\": \"role:admin or\"\n");
    let mut ini = clinker_config::Ini::default();
    ini.merge_text(
        &format!("[oslo_policy]\npolicy_file = {}\n", path.display()),
        "t.conf",
    )
    .unwrap();
    let config = clinker_config::Config::from_ini(
        &ini,
        &clinker_config::ConfigEnv {
            hostname: "n".into(),
        },
    )
    .unwrap();
    let err = clinker_api::policy::Policy::from_config(&config).unwrap_err();
    assert!(err.to_string().contains("volume:create"), "{err}");
    // A router built without the start-up check refuses every action.
    let h = harness_with(&format!(
        "\n[oslo_policy]\npolicy_file = {}\n",
        path.display()
    ))
    .await;
    let reply = h.with_headers(&token("admin")).get("/v3/volumes").await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn http_basic_users_are_admins_of_their_project() {
    let dir = std::env::temp_dir().join(format!("clinker-htpasswd-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("htpasswd");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    // htpasswd -B writes $2y$, the same algorithm.
    std::fs::write(
        &file,
        format!("alice:{}\n", hash.replacen("$2b$", "$2y$", 1)),
    )
    .unwrap();
    let h = Harness::with(Options {
        config: format!(
            "auth_strategy = http_basic\nhttp_basic_auth_user_file = {}\n",
            file.display()
        ),
        ..Options::default()
    })
    .await;
    let basic = |user: &str, password: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    };
    let ok_header = basic("alice", "s3cret");
    let headers: BTreeMap<&str, &str> = [
        ("authorization", ok_header.as_str()),
        ("x-project-id", PA),
        ("x-auth-token", ""),
    ]
    .into();
    let headers: Vec<(&str, &str)> = headers.into_iter().collect();
    for _ in 0..2 {
        let reply = h
            .with_headers(&headers)
            .get(&format!("/v3/{PA}/os-services"))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let wrong = basic("alice", "guess");
    let reply = h
        .with_headers(&[("authorization", wrong.as_str()), ("x-auth-token", "")])
        .get("/v3/volumes")
        .await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Basic realm=\"clinker\"")
    );
    let reply = h
        .with_headers(&[("x-auth-token", "")])
        .get("/v3/volumes")
        .await;
    assert_eq!(reply.status, 401);
    let reply = h
        .with_headers(&[("authorization", "Bearer x"), ("x-auth-token", "")])
        .get("/v3/volumes")
        .await;
    assert_eq!(reply.status, 400);
    // Users added to the file are picked up without a restart.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let bob = bcrypt::hash("pw", 4).unwrap();
    std::fs::write(&file, format!("alice:{hash}\nbob:{bob}\n")).unwrap();
    let bob_header = basic("bob", "pw");
    let reply = h
        .with_headers(&[("authorization", bob_header.as_str()), ("x-auth-token", "")])
        .get("/v3/volumes")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let _ = std::fs::remove_dir_all(dir);
}
