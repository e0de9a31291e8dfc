//! The attach data path end to end: an all-in-one cluster whose file backend
//! exports through a real tgtd, driven over HTTP like Nova would, with the
//! `connection_info` the API returns used unmodified by a userspace iSCSI
//! initiator (qemu-io over libiscsi).
//!
//! Runs with `CLINKER_SYSTEM_TESTS=1` or `CI=true` and skips with a message
//! otherwise; under `CI=true` a missing tool fails. The test starts its own
//! tgtd on 127.0.0.1 with a random iSCSI port, a random control port and a
//! private configuration that includes only its own `volumes_dir`, and
//! stops it even when the test fails (see the drivers' system tests, whose
//! helpers it shares). qemu-io needs qemu's iscsi module:
//! `scripts/install-dataplane-tools.sh --print-env` gives `CLINKER_QEMU_BIN`
//! and `QEMU_MODULE_DIR`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use clinker_exec::Command;
use clinker_testkit::dataplane::{
    self, READ_PATTERNS, Tgtd, WRITE_PATTERNS, assert_chap_refuses, iscsi_url,
};
use clinker_testkit::http::connector;
use common::Cluster;
use serde_json::{Map, Value, json};

const TEST: &str = "attach_dataplane";
const TOOLS: &[&str] = &["tgtd", "tgtadm", "tgt-admin", "iscsi-inq"];
const INITIATOR: &str = "iqn.2004-10.org.clinker:test";

/// The initiator's URL, from the attachments API's flattened connection
/// info, exactly as handed out (Nova would pop `driver_volume_type` and
/// `attachment_id` and give the rest to os-brick).
fn url_of(info: &Map<String, Value>) -> String {
    iscsi_url(
        info["driver_volume_type"].as_str().unwrap_or_default(),
        info,
    )
}

/// Attaches a volume through the attachments API (reserve and connect in
/// one call, then complete) and returns the attachment id and its
/// connection info.
async fn attach(c: &Cluster, volume: &str) -> (String, Map<String, Value>) {
    let made = c
        .attach(json!({"volume_uuid": volume, "connector": connector(INITIATOR)}))
        .await;
    let info = made["connection_info"].as_object().unwrap().clone();
    (made["id"].as_str().unwrap().to_owned(), info)
}

async fn detach(c: &Cluster, attachment: &str) {
    let path = format!("/attachments/{attachment}");
    let (status, body) = c.at("3.54").delete(&path).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attachments_api_connection_info_reaches_the_data() {
    let Some(qemu) = dataplane::ready_with_qemu(TEST, TOOLS) else {
        return;
    };
    let started = Instant::now();
    let tgtd = Tgtd::start().await;
    let backend = format!(
        "enabled_backends = file\n[file]\nvolume_driver = file\n{}",
        tgtd.target_options()
    );
    let mut c = Cluster::start("", &backend).await;
    let volume = c.available_volume(json!({"size": 1, "name": "data"})).await;
    // Not exported before it is attached (Cinder LP #1381106).
    assert!(tgtd.target_iqns().await.is_empty());

    let t = Instant::now();
    let (attachment, info) = attach(&c, &volume).await;
    let attach_latency = t.elapsed();
    let iqn = format!("iqn.2010-10.org.openstack:volume-{volume}");
    assert_eq!(info["target_iqn"], iqn.as_str());
    assert_eq!(info["target_portal"], format!("127.0.0.1:{}", tgtd.port));
    assert_eq!(info["target_lun"], 1);
    assert_eq!(tgtd.target_iqns().await, std::slice::from_ref(&iqn));
    let url = url_of(&info);

    // Write a pattern through the initiator.
    qemu.check("write", WRITE_PATTERNS, &url).await;

    // A wrong CHAP password is refused.
    let user = info["auth_username"].as_str().unwrap();
    let target_path = format!("127.0.0.1:{}/{iqn}/1", tgtd.port);
    assert_chap_refuses(user, &target_path).await;

    // Snapshot the attached volume (3.66: no force needed), clone it.
    let snapshot = c
        .at("3.66")
        .available_snapshot(json!({"volume_id": volume, "name": "s"}))
        .await;
    let clone = c
        .available_volume(json!({"size": 1, "snapshot_id": snapshot}))
        .await;

    // Attach the clone and read the pattern back through its own
    // connection info.
    let (clone_attachment, clone_info) = attach(&c, &clone).await;
    let clone_iqn = format!("iqn.2010-10.org.openstack:volume-{clone}");
    assert_eq!(clone_info["target_iqn"], clone_iqn.as_str());
    assert_ne!(
        clone_info["auth_password"], info["auth_password"],
        "each export has its own CHAP secret"
    );
    let t = Instant::now();
    let on_clone = url_of(&clone_info);
    qemu.check(
        "read -P (pattern check) on the clone",
        READ_PATTERNS,
        &on_clone,
    )
    .await;
    let read_latency = t.elapsed();

    // Detaching removes each target.
    let t = Instant::now();
    detach(&c, &attachment).await;
    let detach_latency = t.elapsed();
    assert_eq!(tgtd.target_iqns().await, std::slice::from_ref(&clone_iqn));
    detach(&c, &clone_attachment).await;
    assert!(
        tgtd.target_iqns().await.is_empty(),
        "gone from tgt-admin --show"
    );
    assert!(!tgtd.volumes_dir().join(format!("volume-{volume}")).exists());
    for id in [&volume, &clone] {
        let (_, v) = c.get(&format!("/volumes/{id}")).await;
        assert_eq!(v["volume"]["status"], "available");
    }
    // The old connection no longer reaches anything.
    let stale = dataplane::run(Command::new("iscsi-inq").arg(url.clone())).await;
    assert_ne!(stale.code, 0, "{stale:?}");

    c.stop().await;
    eprintln!(
        "timings: total {:?}; attach (reserve+export+connect) {attach_latency:?}; \
         read+verify 8 MiB on the clone {read_latency:?}; detach {detach_latency:?}",
        started.elapsed()
    );
    drop(tgtd);
    // Give the daemon's exit a moment before the next test binds ports.
    tokio::time::sleep(Duration::from_millis(10)).await;
}
