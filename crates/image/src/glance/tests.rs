//! The client's own logic: endpoints, retries and the classification of
//! Glance's answers, against a scripted HTTP responder on loopback. The
//! real Glance is exercised in `tests/glance.rs`.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use clinker_types::ErrorKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

fn settings(servers: Option<Vec<String>>) -> GlanceSettings {
    GlanceSettings {
        servers,
        num_retries: 2,
        request_timeout: Some(Duration::from_secs(5)),
        retry_delay: Duration::from_millis(1),
        ..GlanceSettings::with_servers(Vec::new())
    }
}

/// Answers each connection with the next scripted `(status, body)` and
/// records the request heads.
async fn responder(script: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        for (status, body) in script {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 65536];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    (url, seen)
}

const IMAGE: &str = r#"{"id": "0f3d5d4a-1111-2222-3333-444455556666", "status": "active", "name": "x", "size": 3, "disk_format": "raw", "custom": "yes"}"#;

#[tokio::test]
async fn a_503_is_retried_on_the_next_server_and_the_token_forwarded() {
    let (url, seen) = responder(vec![(503, "{}"), (200, IMAGE)]).await;
    // The first server refuses connections outright.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let client = GlanceClient::new(settings(Some(vec![url.clone(), dead, url]))).unwrap();
    let ctx = ImageContext {
        auth_token: Some("tok".into()),
        service_token: Some("svc".into()),
        ..ImageContext::default()
    };
    let image = client
        .show_image(&ctx, "0f3d5d4a-1111-2222-3333-444455556666")
        .await
        .unwrap();
    assert_eq!(image.properties["custom"], "yes");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    let head = seen[1].to_ascii_lowercase();
    assert!(
        head.starts_with("get /v2/images/0f3d5d4a-1111-2222-3333-444455556666 "),
        "{head}"
    );
    assert!(head.contains("x-auth-token: tok") && head.contains("x-service-token: svc"));
    assert!(!head.contains("expect:"));
}

#[tokio::test]
async fn answers_are_classified_with_cinders_texts() {
    let (url, _) = responder(vec![
        (404, "{}"),
        (403, "{}"),
        (400, r#"{"message": "bad property"}"#),
        (413, "{}"),
        (503, "{}"),
        (503, "{}"),
        (503, "{}"),
    ])
    .await;
    let client = GlanceClient::new(settings(Some(vec![url]))).unwrap();
    let ctx = ImageContext::default();
    let id = "0f3d5d4a-1111-2222-3333-444455556666";
    let err = client.show_image(&ctx, id).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.to_string()),
        (
            ErrorKind::NotFound,
            format!("Image {id} could not be found.")
        )
    );
    let err = client.show_image(&ctx, id).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.to_string()),
        (
            ErrorKind::Forbidden,
            format!("Not authorized for image {id}.")
        )
    );
    let err = client.create_image(&ctx, &Map::new()).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.to_string()),
        (ErrorKind::InvalidInput, "bad property".to_owned())
    );
    let err = client.create_image(&ctx, &Map::new()).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.to_string()),
        (ErrorKind::OverQuota, "Image quota exceeded".to_owned())
    );
    // Three 503s exhaust 1 + glance_num_retries attempts.
    let err = client.show_image(&ctx, id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        err.to_string().starts_with("Connection to glance failed: "),
        "{err}"
    );
}

#[tokio::test]
async fn ids_that_would_leave_the_path_are_not_sent() {
    let client = GlanceClient::new(settings(Some(vec!["http://127.0.0.1:9".into()]))).unwrap();
    for id in ["../schemas", "a/b", "", "..", "x?y"] {
        let err = client
            .show_image(&ImageContext::default(), id)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{id}");
    }
}

#[test]
fn the_endpoint_comes_from_the_catalog_when_no_server_is_set() {
    let client = GlanceClient::new(settings(None)).unwrap();
    let endpoint = |interface: &str, url: &str| CatalogEndpoint {
        interface: interface.into(),
        region: Some("RegionOne".into()),
        url: url.into(),
    };
    let ctx = ImageContext {
        service_catalog: vec![
            CatalogService {
                service_type: "identity".into(),
                name: Some("keystone".into()),
                endpoints: vec![endpoint("public", "http://k:5000")],
            },
            CatalogService {
                service_type: "image".into(),
                name: Some("glance".into()),
                endpoints: vec![
                    endpoint("internal", "http://glance-int:9292"),
                    endpoint("public", "http://glance:9292/"),
                ],
            },
        ],
        ..ImageContext::default()
    };
    assert_eq!(client.endpoints(&ctx).unwrap(), ["http://glance:9292"]);
    let err = client.endpoints(&ImageContext::default()).unwrap_err();
    assert!(err.to_string().contains("glance_api_servers"), "{err}");
}

#[test]
fn servers_are_spread_and_https_is_refused_without_tls() {
    let client =
        GlanceClient::new(settings(Some(vec!["http://a".into(), "http://b".into()]))).unwrap();
    let ctx = ImageContext::default();
    let first = client.endpoints(&ctx).unwrap();
    let second = client.endpoints(&ctx).unwrap();
    assert_eq!(first.len(), 2);
    assert_ne!(first[0], second[0]);
    let err = GlanceClient::new(settings(Some(vec!["https://g".into()]))).unwrap_err();
    assert!(err.to_string().contains("needs TLS"), "{err}");
}

#[test]
fn glance_error_bodies_are_read() {
    assert_eq!(glance_message(r#"{"message": "m"}"#).as_deref(), Some("m"));
    assert_eq!(
        glance_message("<html><head><title>409 Conflict</title></head><body><h1>409 Conflict</h1>Image status transition from active to saving is not allowed</body></html>")
            .as_deref(),
        Some("409 Conflict 409 Conflict Image status transition from active to saving is not allowed")
    );
    assert_eq!(glance_message(""), None);
}

#[tokio::test]
async fn uploads_announce_their_length_and_never_expect_100_continue() {
    let (url, seen) = responder(vec![(204, "")]).await;
    let client = GlanceClient::new(settings(Some(vec![url]))).unwrap();
    let body = vec![7u8; 3000];
    client
        .upload(
            &ImageContext::default(),
            "0f3d5d4a-1111-2222-3333-444455556666",
            UploadData::Reader {
                reader: Box::new(std::io::Cursor::new(body)),
                length: 3000,
            },
        )
        .await
        .unwrap();
    let head = seen.lock().unwrap()[0].to_ascii_lowercase();
    assert!(
        head.starts_with("put /v2/images/0f3d5d4a-1111-2222-3333-444455556666/file "),
        "{head}"
    );
    assert!(head.contains("content-length: 3000"), "{head}");
    assert!(
        head.contains("content-type: application/octet-stream"),
        "{head}"
    );
    assert!(
        !head.contains("expect:") && !head.contains("transfer-encoding"),
        "{head}"
    );
}
