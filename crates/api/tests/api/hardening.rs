//! Requests a client or an attacker can craft: NUL characters in strings,
//! proxy headers, project ids that are not hex.

use serde_json::json;

use crate::common::{Harness, Options, Verbs};

#[tokio::test]
async fn nul_characters_are_refused_naming_the_field_and_change_nothing() {
    let h = Harness::registered(Options::default()).await;
    let cases = [
        (
            "POST",
            "/v3/volumes",
            Some(json!({"volume": {"size": 1, "name": "a\u{0}b"}})),
            "name",
        ),
        (
            "POST",
            "/v3/volumes",
            Some(json!({"volume": {"size": 1, "description": "x\u{0}"}})),
            "description",
        ),
        (
            "POST",
            "/v3/volumes",
            Some(json!({"volume": {"size": 1, "metadata": {"k\u{0}": "v"}}})),
            "metadata",
        ),
        (
            "POST",
            "/v3/volumes",
            Some(json!({"volume": {"size": 1, "metadata": {"k": ["v\u{0}"]}}})),
            "k",
        ),
        ("GET", "/v3/volumes/detail?name=a%00b", None, "name"),
        (
            "GET",
            "/v3/volumes?metadata=%7B%22k%00%22%3A1%7D",
            None,
            "metadata",
        ),
    ];
    for (method, uri, body, field) in cases {
        let reply = h.call(method, uri, body).await;
        let message = reply.refusal(400);
        assert!(
            message.starts_with(&format!("Invalid input for field/attribute {field}. ")),
            "{method} {uri}: {message}"
        );
        assert!(message.ends_with("Null characters are not allowed."));
        assert!(!message.contains('\u{0}'), "the value is shown escaped");
    }
    assert_eq!(h.volume_count().await, 0);
    assert!(h.usage().await.values().all(|used| *used == 0));
}

#[tokio::test]
async fn proxy_headers_are_ignored_unless_the_operator_enables_them() {
    let spoofed = [
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-proto", "https"),
        ("forwarded", "for=1.2.3.4;proto=https;host=evil.example"),
    ];
    let h = Harness::new().await;
    let reply = h.with_headers(&spoofed).get("/v3/").await;
    assert_eq!(
        reply.body["versions"][0]["links"][1]["href"],
        "http://api.test:8776/v3/"
    );

    let proxied = Harness::with(Options {
        config: "[oslo_middleware]\nenable_proxy_headers_parsing = true\n".into(),
        ..Default::default()
    })
    .await;
    // RFC 7239 first, as oslo.middleware reads it.
    let reply = proxied.with_headers(&spoofed).get("/v3/").await;
    assert_eq!(
        reply.body["versions"][0]["links"][1]["href"],
        "https://evil.example/v3/"
    );
    let reply = proxied
        .with_headers(&[
            ("x-forwarded-host", "a.example, cloud.example:8443"),
            ("x-forwarded-proto", "https"),
        ])
        .get("/v3/")
        .await;
    assert_eq!(
        reply.body["versions"][0]["links"][1]["href"],
        "https://cloud.example:8443/v3/"
    );
}

#[tokio::test]
async fn any_string_is_a_project_id_where_cinder_takes_one() {
    let h = Harness::registered(Options::default()).await;
    // python-cinderclient with `--os-auth-type noauth --os-project-id admin`.
    let admin = h.with_headers(&[("x-auth-token", "admin:admin")]);
    let created = admin
        .post(
            "/v3/admin/volumes",
            json!({"volume": {"size": 1, "name": "named-project"}}),
        )
        .await;
    assert_eq!(created.status, 202, "{}", created.text);
    let id = created.body["volume"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.body["volume"]["links"][0]["href"],
        format!("http://api.test:8776/v3/admin/volumes/{id}")
    );
    let listed = admin.get("/v3/admin/volumes/detail").await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.body["volumes"][0]["id"], id.as_str());
    let services = admin.get("/v3/admin/os-services").await;
    assert_eq!(services.status, 200, "{}", services.text);
    // Routes whose first segment is a resource keep working without one.
    let plain = admin.get("/v3/volumes/detail").await;
    assert_eq!(plain.status, 200);
}

/// A body over `max_request_body_size` is refused unread with 413 in
/// Cinder's envelope and `Connection: close`, so no client sends its next
/// request on a connection the server is about to close; nothing is made.
#[tokio::test]
async fn an_oversized_body_is_refused_and_closes_the_connection() {
    let h = Harness::registered(Options::default()).await;
    let name = "x".repeat(1 << 20);
    let reply = h
        .send(
            "POST",
            "/v3/volumes",
            Some(json!({"volume": {"size": 1, "name": name}})),
            &[],
        )
        .await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert_eq!(reply.fault("overLimit"), "Request is too large.");
    assert_eq!(reply.header("connection"), Some("close"));
    assert_eq!(h.volume_count().await, 0);
}
