//! The tgtadm target helper against a real tgtd, with a file-backed volume
//! and a userspace initiator.
//!
//! Runs with `CLINKER_SYSTEM_TESTS=1` or `CI=true` (see `clinker_testkit::dataplane`). The test
//! starts its own tgtd on 127.0.0.1 with a random iSCSI port and a random
//! control port (so parallel runs and a system tgtd do not collide) and a
//! private tgt configuration that includes only its own `volumes_dir`; the
//! daemon is stopped even when the test fails. The `connection_info` the
//! driver returns is used unmodified to build the initiator's
//! `iscsi://user%password@portal/iqn/lun` URL: qemu-io writes and reads back
//! a pattern through it, libiscsi checks the size and that a wrong CHAP
//! password is refused.
//!
//! qemu-io needs qemu's iscsi block module; the installed qemu may lack it,
//! so `scripts/install-dataplane-tools.sh` extracts a matching qemu 7.2 pair
//! privately and the test uses `CLINKER_QEMU_BIN` and `QEMU_MODULE_DIR`
//! (defaulting to that script's location).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use clinker_drivers::{VolumeSpec, build_driver};
use clinker_exec::{Command, HostRunner};
use clinker_testkit::dataplane::{
    self, READ_PATTERNS, Tgtd, WRITE_PATTERNS, assert_chap_refuses, iscsi_url, run, run_ok,
};
use clinker_testkit::files::read_at;
use clinker_types::VolumeId;
use clinker_types::connection::Connector;
use serde_json::json;

const TOOLS: &[&str] = &[
    "tgtd",
    "tgtadm",
    "tgt-admin",
    "iscsi-inq",
    "iscsi-readcapacity16",
];

#[tokio::test]
async fn tgtadm_exports_a_file_volume_to_a_chap_initiator() {
    const TEST: &str = "tgtadm_exports_a_file_volume_to_a_chap_initiator";
    let Some(qemu) = dataplane::ready_with_qemu(TEST, TOOLS) else {
        return;
    };
    let started = Instant::now();
    let tgtd = Tgtd::start().await;
    let tgtd_start = started.elapsed();

    let vols = tgtd.dir.path().join("vols");
    let backend = clinker_testkit::config::file_backend(&vols, tgtd.target_config());
    let d = build_driver(&backend, std::sync::Arc::new(HostRunner::new())).unwrap();
    d.do_setup().await.unwrap();
    d.check_for_setup_error().await.unwrap();
    let connector: Connector =
        json!({"initiator": "iqn.2008-11.org.linux-kvm", "ip": "127.0.0.1", "host": "test"})
            .as_object()
            .unwrap()
            .clone();

    let mut volume = VolumeSpec::new(VolumeId::new_random(), 1);
    d.create_volume(&volume).await.unwrap();
    let t = Instant::now();
    let export = d.create_export(&volume, &connector).await.unwrap();
    let export_latency = t.elapsed();
    let iqn = format!("iqn.2010-10.org.openstack:{}", volume.name);
    // A fresh tgtd hands out tid 1.
    assert_eq!(
        export.provider_location.as_deref(),
        Some(format!("127.0.0.1:{},1 {iqn} 1", tgtd.port).as_str())
    );
    volume.provider_location = export.provider_location.clone();
    volume.provider_auth = export.provider_auth.clone();
    assert!(tgtd.target_iqns().await.contains(&iqn));
    assert!(tgtd.volumes_dir().join(&volume.name).is_file());

    let info = d.initialize_connection(&volume, &connector).await.unwrap();
    assert_eq!(
        info.data["target_portal"],
        format!("127.0.0.1:{}", tgtd.port)
    );
    assert_eq!(info.data["target_lun"], 1);
    let url = iscsi_url(&info.driver_volume_type, &info.data);

    // Write through the initiator, read back, and find the bytes in the file.
    let t = Instant::now();
    qemu.check("write", WRITE_PATTERNS, &url).await;
    let write_latency = t.elapsed();
    let t = Instant::now();
    qemu.check("read -P (pattern check)", READ_PATTERNS, &url)
        .await;
    let read_latency = t.elapsed();
    assert_eq!(
        read_at(&vols.join(&volume.name), 1020 << 20, 16),
        [0xa5; 16],
        "the initiator wrote into the volume's file"
    );

    let capacity = run_ok(Command::new("iscsi-readcapacity16").arg(url.clone())).await;
    assert!(capacity.contains("Total size:1073741824"), "{capacity}");

    // CHAP is enforced: a wrong password and no credentials are refused.
    let user = info.data["auth_username"].as_str().unwrap();
    let target_path = format!("127.0.0.1:{}/{iqn}/1", tgtd.port);
    assert_chap_refuses(user, &target_path).await;
    let anonymous = run(Command::new("iscsi-inq").arg(format!("iscsi://{target_path}"))).await;
    assert_ne!(anonymous.code, 0);
    let right = run(Command::new("iscsi-inq").arg(url.clone())).await;
    assert!(right.success(), "{right:?}");

    // A re-export keeps the credentials; extend refreshes the target's size.
    let again = d.create_export(&volume, &connector).await.unwrap();
    assert_eq!(again.provider_auth, volume.provider_auth);
    d.extend_volume(&volume, 2).await.unwrap();
    let capacity = run_ok(Command::new("iscsi-readcapacity16").arg(url.clone())).await;
    assert!(
        capacity.contains("Total size:2147483648"),
        "extend_target: {capacity}"
    );

    // Removing the export while a session is open (force delete).
    let session = tokio::spawn(run(qemu.on(&["sleep 5000"], &url)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    d.terminate_connection(&volume, Some(&connector))
        .await
        .unwrap();
    let t = Instant::now();
    d.remove_export(&volume).await.unwrap();
    let remove_latency = t.elapsed();
    assert!(
        !tgtd.target_iqns().await.contains(&iqn),
        "gone from tgt-admin --show"
    );
    assert!(!tgtd.volumes_dir().join(&volume.name).exists());
    // The initiator keeps trying to reconnect to the deleted target; dropping
    // its task kills it.
    session.abort();
    d.remove_export(&volume).await.unwrap(); // again: nothing to do

    // Start-up reconcile: a stale target of ours goes, a wanted one comes back.
    let stale = VolumeSpec::new(VolumeId::new_random(), 1);
    d.create_volume(&stale).await.unwrap();
    d.create_export(&stale, &connector).await.unwrap();
    let report = d
        .reconcile_exports(&[volume.clone()])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        report.removed,
        [format!("iqn.2010-10.org.openstack:{}", stale.name)]
    );
    assert_eq!(report.created, std::slice::from_ref(&iqn));
    assert_eq!(tgtd.target_iqns().await, std::slice::from_ref(&iqn));
    d.remove_export(&volume).await.unwrap();
    assert!(tgtd.target_iqns().await.is_empty());

    eprintln!(
        "timings: tgtd up {tgtd_start:?}; create_export {export_latency:?}; qemu-io write 8 MiB {write_latency:?}, read+verify {read_latency:?}; remove_export with a session {remove_latency:?}"
    );
}
