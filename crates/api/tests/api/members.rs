//! A non-admin caller, through the Authenticator seam: visibility, admin-only
//! fields and operations, and the filter restrictions of 3.31.

use std::sync::Arc;

use axum::http::HeaderMap;
use clinker_api::context::Identity;
use clinker_api::{ApiError, Authenticator, NoAuth};
use serde_json::json;

use crate::common::{Harness, Options, sorted_keys};

/// noauth, except that tokens `member:<project>` are not admins.
#[derive(Debug)]
struct Members;

#[async_trait::async_trait]
impl Authenticator for Members {
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, ApiError> {
        let mut identity = NoAuth::identity(headers);
        if identity.user_id == "member" {
            identity.is_admin = false;
            // Keystone's implied roles put `reader` into every member's
            // token; Cinder's read rules ask for it.
            identity.roles = vec!["member".into(), "reader".into()];
        }
        Ok(identity)
    }
}

async fn harness() -> Harness {
    let h = Harness::with(Options {
        authenticator: Some(Arc::new(Members)),
        ..Options::default()
    })
    .await;
    h.register_volume_service("nova").await;
    h
}

const MEMBER: (&str, &str) = ("x-auth-token", "member:bbbb1111");
const OTHER: (&str, &str) = ("x-auth-token", "member:cccc2222");

#[tokio::test]
async fn members_see_their_own_volumes_without_admin_fields() {
    let h = harness().await;
    let reply = h
        .send(
            "POST",
            "/v3/volumes",
            Some(json!({"volume": {"size": 1}})),
            &[MEMBER],
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let id = reply.body["volume"]["id"].as_str().unwrap().to_owned();
    assert!(reply.body["volume"].get("migration_status").is_none());

    let shown = h
        .send("GET", &format!("/v3/volumes/{id}"), None, &[MEMBER])
        .await;
    assert_eq!(shown.status, 200);
    let keys = sorted_keys(&shown.body["volume"]);
    // Project readers see the tenant attribute (Tempest's transfer test
    // reads it as the accepting member); host and migration are admin's.
    let extended: Vec<&String> = keys.iter().filter(|k| k.starts_with("os-vol-")).collect();
    assert_eq!(extended, ["os-vol-tenant-attr:tenant_id"], "{keys:?}");
    assert_eq!(
        shown.body["volume"]["os-vol-tenant-attr:tenant_id"],
        "bbbb1111"
    );
    assert!(!keys.contains(&"migration_status".to_owned()));
    let latest = h
        .send(
            "GET",
            &format!("/v3/volumes/{id}"),
            None,
            &[MEMBER, ("OpenStack-API-Version", "volume 3.71")],
        )
        .await;
    let keys = sorted_keys(&latest.body["volume"]);
    assert!(!keys.contains(&"provider_id".to_owned()));
    assert!(!keys.contains(&"cluster_name".to_owned()));
    assert!(keys.contains(&"consumes_quota".to_owned()));

    // Another project cannot see it, not even with all_tenants.
    let foreign = h
        .send("GET", &format!("/v3/volumes/{id}"), None, &[OTHER])
        .await;
    assert_eq!(foreign.status, 404);
    assert_eq!(
        foreign.fault("itemNotFound"),
        format!("Volume {id} could not be found.")
    );
    let listed = h
        .send("GET", "/v3/volumes?all_tenants=1", None, &[OTHER])
        .await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["volumes"], json!([]));
    let deleted = h
        .send("DELETE", &format!("/v3/volumes/{id}"), None, &[OTHER])
        .await;
    assert_eq!(deleted.status, 404);
}

#[tokio::test]
async fn members_are_held_to_the_resource_filters() {
    let h = harness().await;
    let at = |v: &'static str| ("OpenStack-API-Version", v);
    let refused = h
        .send(
            "GET",
            "/v3/volumes?host=x&name=y",
            None,
            &[MEMBER, at("volume 3.31")],
        )
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.fault("badRequest"),
        "Invalid filters host are found in query options."
    );
    // all_tenants is silently dropped (cinderclient always sends it).
    let fine = h
        .send(
            "GET",
            "/v3/volumes?all_tenants=1&name=y",
            None,
            &[MEMBER, at("volume 3.31")],
        )
        .await;
    assert_eq!(fine.status, 200, "{}", fine.text);
    // Before 3.31 unknown filters are dropped, not refused.
    let legacy = h.send("GET", "/v3/volumes?host=x", None, &[MEMBER]).await;
    assert_eq!(legacy.status, 200);
    // Like filters need `name~` in resource_filters.json, which Cinder's
    // default does not configure: refused to non-admins.
    let like = h
        .send(
            "GET",
            "/v3/volumes?name~=y",
            None,
            &[MEMBER, at("volume 3.34")],
        )
        .await;
    assert_eq!(like.status, 400, "{}", like.text);
    assert_eq!(
        like.fault("badRequest"),
        "Invalid filters name~ are found in query options."
    );
}

#[tokio::test]
async fn admin_operations_are_forbidden_to_members() {
    let h = harness().await;
    let cases: &[(&str, &str, Option<serde_json::Value>)] = &[
        ("GET", "/v3/os-services", None),
        (
            "POST",
            "/v3/types",
            Some(json!({"volume_type": {"name": "t"}})),
        ),
        ("GET", "/v3/scheduler-stats/get_pools", None),
        (
            "PUT",
            "/v3/os-quota-sets/bbbb1111",
            Some(json!({"quota_set": {"volumes": 1}})),
        ),
    ];
    for (method, uri, body) in cases {
        let reply = h.send(method, uri, body.clone(), &[MEMBER]).await;
        assert_eq!(reply.status, 403, "{method} {uri}: {}", reply.text);
        assert!(reply.body["forbidden"]["message"].is_string());
    }
    // Their own quotas and limits they may read.
    let own = h
        .send("GET", "/v3/os-quota-sets/bbbb1111", None, &[MEMBER])
        .await;
    assert_eq!(own.status, 200);
    let other = h
        .send("GET", "/v3/os-quota-sets/cccc2222", None, &[MEMBER])
        .await;
    assert_eq!(other.status, 403);
    let types = h.send("GET", "/v3/types", None, &[MEMBER]).await;
    assert_eq!(types.status, 200);
    assert!(types.body["volume_types"][0].get("qos_specs_id").is_none());
}
