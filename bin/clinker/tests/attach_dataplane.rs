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

#[path = "../../../crates/drivers/tests/common/mod.rs"]
mod dataplane;

mod common;

use std::time::{Duration, Instant};

use clinker_exec::Command;
use common::Cluster;
use dataplane::{Tgtd, qemu, qemu_io};
use reqwest::Method;
use serde_json::{Map, Value, json};

const TEST: &str = "attach_dataplane";
const TOOLS: &[&str] = &["tgtd", "tgtadm", "tgt-admin", "iscsi-inq"];

/// The initiator's URL, from the attachments API's flattened connection
/// info, exactly as handed out (Nova would pop `driver_volume_type` and
/// `attachment_id` and give the rest to os-brick).
fn iscsi_url(info: &Map<String, Value>) -> String {
    let s = |k: &str| {
        info.get(k)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{k} missing from {info:?}"))
    };
    assert_eq!(s("driver_volume_type"), "iscsi");
    assert_eq!(s("auth_method"), "CHAP");
    format!(
        "iscsi://{}%{}@{}/{}/{}",
        s("auth_username"),
        s("auth_password"),
        s("target_portal"),
        s("target_iqn"),
        info["target_lun"]
    )
}

fn connector() -> Value {
    json!({"initiator": "iqn.2004-10.org.clinker:test", "ip": "127.0.0.1", "host": "test", "multipath": false})
}

async fn wait_available(c: &Cluster, id: &str) {
    c.wait_volume(id, |s| s == Some("available")).await;
}

/// Attaches a volume through the attachments API (reserve and connect in
/// one call, then complete) and returns the attachment id and its
/// connection info.
async fn attach(c: &Cluster, volume: &str) -> (String, Map<String, Value>) {
    let (status, made) = c
        .request(
            Method::POST,
            "/attachments",
            Some(json!({"attachment": {"volume_uuid": volume, "connector": connector()}})),
            Some("3.54"),
        )
        .await;
    assert_eq!(status, 200, "{made}");
    let id = made["attachment"]["id"].as_str().unwrap().to_owned();
    let info = made["attachment"]["connection_info"]
        .as_object()
        .unwrap()
        .clone();
    let (status, body) = c
        .request(
            Method::POST,
            &format!("/attachments/{id}/action"),
            Some(json!({"os-complete": {}})),
            Some("3.54"),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    (id, info)
}

async fn detach(c: &Cluster, attachment: &str) {
    let (status, body) = c
        .request(
            Method::DELETE,
            &format!("/attachments/{attachment}"),
            None,
            Some("3.54"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attachments_api_connection_info_reaches_the_data() {
    if !dataplane::enabled(TEST) || !dataplane::prerequisites(TEST, TOOLS) {
        return;
    }
    let Some(qemu_io) = qemu_io() else {
        dataplane::unmet(
            TEST,
            "qemu-io with the iscsi module (CLINKER_QEMU_BIN, QEMU_MODULE_DIR) is missing",
        );
        return;
    };
    let started = Instant::now();
    let tgtd = Tgtd::start().await;
    let backend = format!(
        "enabled_backends = file\n[file]\nvolume_driver = file\ntarget_helper = tgtadm\n\
         target_ip_address = 127.0.0.1\ntarget_port = {}\nvolumes_dir = {}\ntgt_conf_file = {}\n\
         tgt_control_port = {}\n",
        tgtd.port,
        tgtd.volumes_dir().display(),
        tgtd.conf_file().display(),
        tgtd.control_port
    );
    let mut c = Cluster::start("", &backend).await;

    let (status, id, body) = c.create_volume(json!({"size": 1, "name": "data"})).await;
    assert_eq!(status, 202, "{body}");
    let volume = id.unwrap();
    wait_available(&c, &volume).await;
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
    let url = iscsi_url(&info);

    // Write a pattern through the initiator.
    let out = dataplane::run(qemu(
        &qemu_io,
        &["write -P 0x5a 0 4M", "write -P 0xa5 1020M 4M"],
        &url,
    ))
    .await;
    assert!(
        out.success(),
        "qemu-io write: {} {}",
        out.stdout,
        out.stderr
    );

    // A wrong CHAP password is refused.
    let user = info["auth_username"].as_str().unwrap();
    let target_path = format!("127.0.0.1:{}/{iqn}/1", tgtd.port);
    let wrong = dataplane::run(
        Command::new("iscsi-inq").arg(format!("iscsi://{user}%wrongpassword@{target_path}")),
    )
    .await;
    assert_ne!(wrong.code, 0, "a wrong CHAP password must be refused");
    assert!(
        wrong.stderr.contains("Authentication failure")
            || wrong.stdout.contains("Authentication failure"),
        "{wrong:?}"
    );

    // Snapshot the attached volume (3.66: no force needed), clone it.
    let (status, snap) = c
        .request(
            Method::POST,
            "/snapshots",
            Some(json!({"snapshot": {"volume_id": volume, "name": "s"}})),
            Some("3.66"),
        )
        .await;
    assert_eq!(status, 202, "{snap}");
    let snapshot = snap["snapshot"]["id"].as_str().unwrap().to_owned();
    c.wait_snapshot(&snapshot, "available").await;
    let (status, clone, body) = c
        .create_volume(json!({"size": 1, "snapshot_id": snapshot}))
        .await;
    assert_eq!(status, 202, "{body}");
    let clone = clone.unwrap();
    wait_available(&c, &clone).await;

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
    let out = dataplane::run(qemu(
        &qemu_io,
        &["read -P 0x5a 0 4M", "read -P 0xa5 1020M 4M"],
        &iscsi_url(&clone_info),
    ))
    .await;
    let read_latency = t.elapsed();
    assert!(
        out.success(),
        "qemu-io read -P (pattern check) on the clone: {} {}",
        out.stdout,
        out.stderr
    );

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
