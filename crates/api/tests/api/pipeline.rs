//! The pipeline: versions documents, microversion negotiation, headers on
//! every response, body checks, project ids in URLs, routing faults.

use axum::body::Body;
use axum::http::Request;
use serde_json::json;

use crate::common::Verbs;
use crate::common::{Harness, PROJECT};

fn is_request_id(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        v.strip_prefix("req-")
            .is_some_and(|u| uuid::Uuid::parse_str(u).is_ok())
    })
}

#[tokio::test]
async fn root_lists_versions_with_300() {
    let h = Harness::new().await;
    let reply = h.with_headers(&[]).get("/").await;
    assert_eq!(reply.status, 300);
    assert!(is_request_id(reply.header("x-openstack-request-id")));
    let v = &reply.body["versions"][0];
    assert_eq!(v["id"], "v3.0");
    assert_eq!(v["status"], "CURRENT");
    assert_eq!(v["version"], "3.71");
    assert_eq!(v["min_version"], "3.0");
    assert_eq!(v["updated"], "2023-08-31T00:00:00Z");
    assert_eq!(v["links"][0]["rel"], "describedby");
    assert_eq!(
        v["links"][1],
        json!({"rel": "self", "href": "http://api.test:8776/v3/"})
    );
    assert_eq!(
        v["media-types"][0]["type"],
        "application/vnd.openstack.volume+json;version=3"
    );
    // The unversioned root is not a v3 response.
    assert_eq!(reply.header("openstack-api-version"), None);
}

#[tokio::test]
async fn v3_root_is_200_and_public_endpoint_wins() {
    let h = Harness::with(crate::common::Options {
        config: "public_endpoint = https://cloud.example/volume/".into(),
        ..Default::default()
    })
    .await;
    for path in ["/v3/", "/v3"] {
        let reply = h.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(
            reply.body["versions"][0]["links"][1]["href"],
            "https://cloud.example/volume/v3/"
        );
        assert_eq!(reply.header("openstack-api-version"), Some("volume 3.0"));
        assert_eq!(reply.header("vary"), Some("OpenStack-API-Version"));
    }
}

#[tokio::test]
async fn negotiates_microversions() {
    let h = Harness::new().await;
    let cases: &[(Option<&str>, u16, Option<&str>)] = &[
        (None, 200, Some("volume 3.0")),
        (Some("volume 3.0"), 200, Some("volume 3.0")),
        (Some("volume latest"), 200, Some("volume 3.71")),
        (Some("volume 3.71"), 200, Some("volume 3.71")),
        (Some("compute 2.1, volume 3.44"), 200, Some("volume 3.44")),
        (Some("volume 3.72"), 406, None),
        (Some("volume 2.0"), 406, None),
        (Some("volume 3.x"), 400, None),
        (Some("volume garbage"), 400, None),
    ];
    for (header, status, echoed) in cases {
        let headers: Vec<(&str, &str)> = header
            .map(|v| vec![("OpenStack-API-Version", v)])
            .unwrap_or_default();
        let reply = h.with_headers(&headers).get("/v3/volumes").await;
        assert_eq!(reply.status, *status, "{header:?}: {}", reply.text);
        assert_eq!(reply.header("openstack-api-version"), *echoed, "{header:?}");
        assert_eq!(reply.header("vary"), Some("OpenStack-API-Version"));
        assert!(is_request_id(reply.header("x-openstack-request-id")));
    }
    let reply = h.at("3.72").get("/v3/volumes").await;
    assert_eq!(
        reply.fault("computeFault"),
        "Version 3.72 is not supported by the API. Minimum is 3.0 and maximum is 3.71."
    );
    let reply = h.at("3.x").get("/v3/volumes").await;
    assert_eq!(
        reply.fault("badRequest"),
        "API Version String 3.x is of invalid format. Must be of format MajorNum.MinorNum."
    );
}

#[tokio::test]
async fn errors_carry_headers_and_the_fault_envelope() {
    let h = Harness::new().await;
    let reply = h.at("3.45").get("/v3/volumes/not-a-uuid").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("openstack-api-version"), Some("volume 3.45"));
    assert_eq!(reply.header("vary"), Some("OpenStack-API-Version"));
    assert!(is_request_id(reply.header("x-openstack-request-id")));
    assert_eq!(
        reply.body,
        json!({"itemNotFound": {"code": 404, "message": "Volume not-a-uuid could not be found."}})
    );
}

#[tokio::test]
async fn below_min_version_is_a_bare_404() {
    let h = Harness::new().await;
    let reply = h.get("/v3/messages").await;
    assert_eq!(reply.refusal(404), "The resource could not be found.");
    let reply = h.at("3.3").get("/v3/messages").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = h.at("3.11").get("/v3/volumes/summary").await;
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn body_checks() {
    let h = Harness::new().await;
    let malformed = Request::builder()
        .method("POST")
        .uri("/v3/volumes")
        .header("content-type", "application/json")
        .body(Body::from("{\"volume\": "))
        .unwrap();
    let reply = h.raw(malformed).await;
    assert_eq!(reply.refusal(400), "Malformed request body");

    let xml = Request::builder()
        .method("POST")
        .uri("/v3/volumes")
        .header("content-type", "application/xml")
        .body(Body::from("<volume/>"))
        .unwrap();
    let reply = h.raw(xml).await;
    assert_eq!(reply.status, 415);
    assert_eq!(reply.fault("badMediaType"), "Unsupported Content-Type");

    // Without a Content-Type the body is ignored, as Cinder does.
    let untyped = Request::builder()
        .method("POST")
        .uri("/v3/volumes")
        .body(Body::from("{\"volume\": {\"size\": 1}}"))
        .unwrap();
    let reply = h.raw(untyped).await;
    assert_eq!(reply.refusal(400), "None is not of type 'object'");

    let name = "n".repeat(1024 * 1024);
    let reply = h
        .post("/v3/volumes", json!({"volume": {"size": 1, "name": name}}))
        .await;
    assert_eq!(reply.status, 413);
    assert!(
        reply.body["overLimit"]["message"].is_string(),
        "{}",
        reply.text
    );
    assert!(is_request_id(reply.header("x-openstack-request-id")));
    assert_eq!(h.volume_count().await, 0);
}

#[tokio::test]
async fn project_id_in_url_is_optional_but_must_match() {
    let h = Harness::new().await;
    h.register_volume_service("nova").await;
    let id = h.available_volume(1).await;
    let with = h.get(&format!("/v3/{PROJECT}/volumes/{id}")).await;
    assert_eq!(with.status, 200, "{}", with.text);
    assert_eq!(
        with.body["volume"]["links"][0]["href"],
        format!("http://api.test:8776/v3/{PROJECT}/volumes/{id}")
    );
    assert_eq!(
        with.body["volume"]["links"][1]["href"],
        format!("http://api.test:8776/{PROJECT}/volumes/{id}")
    );
    let without = h.get(&format!("/v3/volumes/{id}")).await;
    assert_eq!(without.status, 200);
    assert_eq!(
        without.body["volume"]["links"][0]["href"],
        format!("http://api.test:8776/v3/volumes/{id}")
    );
    let other = h.get("/v3/abcdef0123/volumes").await;
    assert_eq!(other.refusal(400), "Malformed request url");
    // Any string is a project id where no route starts with it (Cinder
    // takes any string there); another project's is refused the same way.
    let named = h.get("/v3/not-a-project/volumes").await;
    assert_eq!(named.refusal(400), "Malformed request url");
    // An unknown path under a project is still an unknown path.
    let unknown = h.get(&format!("/v3/{PROJECT}/no-such-thing")).await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn noauth_tokens_and_global_request_ids() {
    let h = Harness::new().await;
    h.register_volume_service("nova").await;
    // No token at all: admin in project admin.
    let reply = h
        .with_headers(&[("x-auth-token", "")])
        .post("/v3/volumes", json!({"volume": {"size": 1}}))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let id = reply.id::<String>("volume");
    let shown = h
        .with_headers(&[("x-auth-token", "admin")])
        .get(&format!("/v3/volumes/{id}"))
        .await;
    assert_eq!(
        shown.body["volume"]["os-vol-tenant-attr:tenant_id"],
        "admin"
    );
    assert_eq!(shown.body["volume"]["user_id"], "admin");
    // The global request id reaches the scheduler with the request context.
    let global = "req-4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1";
    let reply = h
        .with_headers(&[("X-OpenStack-Request-ID", global)])
        .post("/v3/volumes", json!({"volume": {"size": 1}}))
        .await;
    assert_eq!(reply.status, 202);
    let local = reply.header("x-openstack-request-id").unwrap().to_owned();
    assert_ne!(local, global);
    Harness::wait_for(&h.scheduler, 2).await;
    let seen = h.scheduler.seen.lock().unwrap();
    let last = seen.last().unwrap();
    assert_eq!(last.context.global_request_id.as_deref(), Some(global));
    assert_eq!(last.context.request_id, local);
    assert_eq!(last.context.project_id, PROJECT);
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let h = Harness::new().await;
    assert_eq!(h.get("/v3/nothing-here").await.status, 404);
    assert_eq!(h.get("/v3/volumes/").await.status, 404);
    assert_eq!(h.delete("/v3/volumes/").await.status, 404);
    let reply = h.call("PATCH", "/v3/volumes", None).await;
    assert_eq!(reply.status, 405);
    assert!(reply.body["badMethod"]["message"].is_string());
    assert!(is_request_id(reply.header("x-openstack-request-id")));
}

#[tokio::test]
async fn extensions_are_listed() {
    let h = Harness::new().await;
    let reply = h.get("/v3/extensions").await;
    assert_eq!(reply.status, 200);
    let aliases: Vec<&str> = reply.body["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["alias"].as_str().unwrap())
        .collect();
    for alias in [
        "os-admin-actions",
        "os-availability-zone",
        "os-extended-snapshot-attributes",
        "os-quota-sets",
        "os-services",
        "os-vol-host-attr",
        "os-volume-type-access",
        "scheduler-stats",
    ] {
        assert!(aliases.contains(&alias), "{alias} missing");
    }
    let first = &reply.body["extensions"][0];
    assert_eq!(
        crate::common::sorted_keys(first),
        vec!["alias", "description", "links", "name", "updated"]
    );
}
