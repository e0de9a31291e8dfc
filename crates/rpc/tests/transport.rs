//! The transport conformance suite on the in-process transport.

use std::sync::Arc;

use clinker_rpc::TransportHandle;
use clinker_rpc::local::LocalTransport;
use clinker_rpc::testsuite::run_all;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_transport_conformance() {
    run_all(|| async { Arc::new(LocalTransport::new()) as TransportHandle }).await;
}

#[tokio::test]
async fn local_notifications_reach_subscribers() {
    let transport = Arc::new(LocalTransport::new());
    let mut rx = transport.subscribe_notifications();
    let notifier = clinker_rpc::notify::Notifier::new(
        transport.clone(),
        "volume.node1@file",
        Arc::new(clinker_types::SystemClock),
    );
    notifier
        .info("volume.create.end", serde_json::json!({"volume_id": "x"}))
        .await;
    let n = rx.recv().await.unwrap();
    assert_eq!(
        (
            n.event_type.as_str(),
            n.priority.as_str(),
            n.publisher_id.as_str()
        ),
        ("volume.create.end", "INFO", "volume.node1@file")
    );
    assert_eq!(n.payload["volume_id"], "x");
    assert_eq!(n.timestamp.len(), "2026-01-01 00:00:00.000000".len());
}
