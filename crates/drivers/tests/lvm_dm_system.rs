//! The LVM driver on a kernel with device-mapper and LIO: what the
//! metadata-only host tests cannot reach.
//!
//! Runs only with `CLINKER_DM_TESTS=1` (it then fails, not skips, when the
//! kernel lacks device-mapper or LIO): on a CI runner with a full kernel, or
//! inside a VM on development machines whose kernel has neither. Each test
//! builds its own VG on a loop device (private `lvm.conf`, filter limited to
//! that device, activation on) and checks data, not just commands:
//!
//! * thin: the pool made by `lvm_type = auto`, thin volumes, a thin snapshot,
//!   a volume from it (grown) and a clone hold the right bytes; the volume is
//!   exported through a private tgtd and read back over iSCSI with CHAP.
//! * thick: a snapshot keeps the old bytes through copy-on-write, a volume
//!   from it and a clone are `dd` copies, an origin with a snapshot is
//!   resized (deactivate, extend, activate); the volume is exported through
//!   LIO (configfs) with a per-initiator ACL and CHAP; deletes return before
//!   the background wipe, which zeroes `volume_clear_size` of each LV.

#![allow(clippy::unwrap_used)]

use std::io::{Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use clinker_config::{
    DriverConfig, LvmDriverOptions, LvmType, TargetConfig, TargetHelperKind, VolumeClear,
};
use clinker_drivers::lvm::{LvmDriver, Provisioning};
use clinker_drivers::targets::build_target_helper;
use clinker_drivers::targets::lio::CONFIGFS_TARGET_ROOT;
use clinker_drivers::{DriverError, GIB, SnapshotSpec, VolumeDriver, VolumeSpec};
use clinker_exec::{Command, HostRunner};
use clinker_testkit::dataplane::{LoopVg, QemuIo, Tgtd, iscsi_url, run, run_ok};
use clinker_testkit::files::{read_at, write_at};
use clinker_types::connection::Connector;
use clinker_types::{SnapshotId, VolumeId};
use serde_json::json;

const MIB: u64 = 1 << 20;

fn enabled(test: &str) -> bool {
    if std::env::var("CLINKER_DM_TESTS").is_ok_and(|v| v == "1") {
        let misc = std::fs::read_to_string("/proc/misc").unwrap_or_default();
        assert!(
            misc.contains("device-mapper"),
            "{test}: CLINKER_DM_TESTS=1 but the kernel has no device-mapper"
        );
        return true;
    }
    eprintln!("skipping {test}: set CLINKER_DM_TESTS=1 on a kernel with device-mapper and LIO");
    false
}

async fn driver(options: LvmDriverOptions, target: TargetConfig) -> LvmDriver {
    let driver = DriverConfig::Lvm(options.clone());
    let backend = clinker_testkit::config::backend("lvm", driver, target.clone());
    let runner = Arc::new(HostRunner::new());
    let helper = build_target_helper(&target, runner.clone())
        .unwrap()
        .unwrap();
    let d = LvmDriver::new(&backend, options, runner, helper);
    d.do_setup().await.unwrap();
    d.check_for_setup_error().await.unwrap();
    d
}

fn write_device(path: &Path, offset: u64, byte: u8) {
    write_at(path, offset, &vec![byte; MIB as usize]);
}

fn read_device(path: &Path, offset: u64) -> Vec<u8> {
    read_at(path, offset, MIB as usize)
}

fn device_size(path: &Path) -> u64 {
    std::fs::File::open(path)
        .unwrap()
        .seek(SeekFrom::End(0))
        .unwrap()
}

fn connector(initiator: &str) -> Connector {
    json!({"initiator": initiator, "ip": "127.0.0.1", "host": "dm-test"})
        .as_object()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn thin_lvm_volumes_snapshots_clones_and_a_tgt_export() {
    const TEST: &str = "thin_lvm_volumes_snapshots_clones_and_a_tgt_export";
    if !enabled(TEST) {
        return;
    }
    let t0 = Instant::now();
    let vg = LoopVg::create(3, true).await;
    let tgtd = Tgtd::start().await;
    let options = vg.driver_options(LvmType::Auto, VolumeClear::Zero, 0);
    let d = driver(options, tgtd.target_config()).await;
    assert_eq!(d.resolved_provisioning(), Some(Provisioning::Thin));
    assert!(vg.lv_names().await.contains(&format!("{}-pool", vg.vg)));
    let dev = |v: &VolumeSpec| d.commands().mapper_path(&v.name);

    let v1 = VolumeSpec::new(VolumeId::new_random(), 1);
    d.create_volume(&v1).await.unwrap();
    write_device(&dev(&v1), 0, 0xa1);
    write_device(&dev(&v1), 512 * MIB, 0xa2);
    let s1 = SnapshotSpec::new(SnapshotId::new_random(), v1.clone(), 1);
    d.create_snapshot(&s1).await.unwrap();
    write_device(&dev(&v1), 0, 0xb1);

    let v2 = VolumeSpec::new(VolumeId::new_random(), 2);
    d.create_volume_from_snapshot(&v2, &s1).await.unwrap();
    assert_eq!(device_size(&dev(&v2)), 2 * GIB);
    assert_eq!(
        read_device(&dev(&v2), 0),
        vec![0xa1; MIB as usize],
        "the snapshot's bytes"
    );
    assert_eq!(read_device(&dev(&v2), 512 * MIB), vec![0xa2; MIB as usize]);
    let v3 = VolumeSpec::new(VolumeId::new_random(), 1);
    d.create_cloned_volume(&v3, &v1).await.unwrap();
    assert_eq!(
        read_device(&dev(&v3), 0),
        vec![0xb1; MIB as usize],
        "the source's bytes now"
    );

    // LVM volume -> tgtd -> iSCSI with CHAP, the connection_info unmodified.
    let c = connector("iqn.2008-11.org.linux-kvm:clinker-dm-test");
    let mut exported = v2.clone();
    let update = d.create_export(&exported, &c).await.unwrap();
    exported.provider_location = update.provider_location;
    exported.provider_auth = update.provider_auth;
    let file = std::fs::read_to_string(tgtd.volumes_dir().join(&v2.name)).unwrap();
    assert!(
        file.contains(&format!("backing-store /dev/{}/{}", vg.vg, v2.name)),
        "{file}"
    );
    let info = d.initialize_connection(&exported, &c).await.unwrap();
    let url = iscsi_url(&info.driver_volume_type, &info.data);
    let qemu = QemuIo::find().expect("qemu-io with the iscsi module");
    let patterns = ["read -P 0xa1 0 1M", "read -P 0xa2 512M 1M"];
    qemu.check("read -P over tgt", &patterns, &url).await;
    d.extend_volume(&exported, 3).await.unwrap();
    let capacity = run_ok(Command::new("iscsi-readcapacity16").arg(url.clone())).await;
    assert!(
        capacity.contains(&format!("Total size:{}", 3 * GIB)),
        "{capacity}"
    );
    d.remove_export(&exported).await.unwrap();
    assert!(tgtd.target_iqns().await.is_empty());

    let stats = d.get_volume_stats().await.unwrap();
    let pool = &stats["pools"][0];
    assert_eq!(pool["thin_provisioning_support"], true);
    // v1 1 + s1 1 + v2 3 + v3 1 GiB of thin LVs.
    assert_eq!(pool["provisioned_capacity_gb"], 6.0);

    assert!(matches!(
        d.delete_volume(&v1).await,
        Err(DriverError::Busy(_))
    ));
    d.delete_snapshot(&s1).await.unwrap();
    for v in [&v1, &exported, &v3] {
        d.delete_volume(v).await.unwrap();
    }
    assert_eq!(
        vg.lv_names().await,
        [format!("{}-pool", vg.vg)],
        "thin LVs go without a wipe"
    );
    eprintln!("thin suite took {:?}", t0.elapsed());
}

#[tokio::test]
async fn thick_lvm_copies_resizes_a_lio_export_and_background_wipes() {
    const TEST: &str = "thick_lvm_copies_resizes_a_lio_export_and_background_wipes";
    if !enabled(TEST) {
        return;
    }
    assert!(
        Path::new(CONFIGFS_TARGET_ROOT).is_dir(),
        "{TEST}: CLINKER_DM_TESTS=1 but LIO's configfs ({CONFIGFS_TARGET_ROOT}) is missing"
    );
    let t0 = Instant::now();
    // v1 (2 after the extend), s1, v2, v3, and the clone's temporary snapshot
    // until its wipe: 6 GiB at most.
    let vg = LoopVg::create(8, true).await;
    let mut target =
        TargetConfig::with_defaults(TargetHelperKind::Lioadm, vg.dir.path().join("lio"));
    target.target_port = 3260;
    let d = driver(
        vg.driver_options(LvmType::Default, VolumeClear::Zero, 64),
        target,
    )
    .await;
    assert_eq!(d.resolved_provisioning(), Some(Provisioning::Thick));
    let dev = |name: &str| d.commands().mapper_path(name);

    let v1 = VolumeSpec::new(VolumeId::new_random(), 1);
    d.create_volume(&v1).await.unwrap();
    write_device(&dev(&v1.name), 0, 0xa1);
    write_device(&dev(&v1.name), 100 * MIB, 0xa2);
    let s1 = SnapshotSpec::new(SnapshotId::new_random(), v1.clone(), 1);
    d.create_snapshot(&s1).await.unwrap();
    write_device(&dev(&v1.name), 0, 0xb1);

    let t = Instant::now();
    let v2 = VolumeSpec::new(VolumeId::new_random(), 1);
    d.create_volume_from_snapshot(&v2, &s1).await.unwrap();
    let copy_time = t.elapsed();
    assert_eq!(
        read_device(&dev(&v2.name), 0),
        vec![0xa1; MIB as usize],
        "copy-on-write kept the old bytes"
    );
    assert_eq!(
        read_device(&dev(&v2.name), 100 * MIB),
        vec![0xa2; MIB as usize]
    );
    let v3 = VolumeSpec::new(VolumeId::new_random(), 1);
    d.create_cloned_volume(&v3, &v2).await.unwrap();
    assert_eq!(read_device(&dev(&v3.name), 0), vec![0xa1; MIB as usize]);

    // A thick origin with a snapshot is resized while inactive.
    d.extend_volume(&v1, 2).await.unwrap();
    assert_eq!(device_size(&dev(&v1.name)), 2 * GIB);
    assert_eq!(read_device(&dev(&v1.name), 0), vec![0xb1; MIB as usize]);

    // LVM volume -> LIO -> iSCSI: only the admitted initiator, only with CHAP.
    let initiator = "iqn.2008-11.org.linux-kvm:clinker-dm-test";
    let c = connector(initiator);
    let mut exported = v2.clone();
    let update = d.create_export(&exported, &c).await.unwrap();
    exported.provider_location = update.provider_location.clone();
    exported.provider_auth = update.provider_auth.clone();
    let iqn = format!("iqn.2010-10.org.openstack:{}", v2.name);
    assert_eq!(
        update.provider_location.as_deref(),
        Some(format!("127.0.0.1:3260,{iqn} {iqn} 0").as_str())
    );
    let info = d.initialize_connection(&exported, &c).await.unwrap();
    assert_eq!(info.data["target_lun"], 0);
    let url = iscsi_url(&info.driver_volume_type, &info.data);
    let readcapacity = |who: &str| {
        Command::new("iscsi-readcapacity16")
            .args(["-i", who])
            .arg(url.clone())
    };
    let admitted = run(readcapacity(initiator)).await;
    assert!(
        admitted.success() && admitted.stdout.contains(&format!("Total size:{GIB}")),
        "{admitted:?}"
    );
    let stranger = run(readcapacity("iqn.2008-11.org.linux-kvm:stranger")).await;
    assert_ne!(stranger.code, 0, "an initiator without an ACL is refused");
    let user = info.data["auth_username"].as_str().unwrap();
    let wrong = run(Command::new("iscsi-inq")
        .args(["-i", initiator])
        .arg(format!(
            "iscsi://{user}%wrongpassword@127.0.0.1:3260/{iqn}/0"
        )))
    .await;
    assert_ne!(wrong.code, 0, "a wrong CHAP password is refused");
    if let Some(qemu) = QemuIo::find() {
        let secret = info.data["auth_password"].as_str().unwrap();
        let opts = format!(
            "driver=raw,file.driver=iscsi,file.transport=tcp,file.portal=127.0.0.1:3260,file.target={iqn},file.lun=0,file.user={user},file.password-secret=sec0,file.initiator-name={initiator}"
        );
        let args = [
            "--image-opts".to_owned(),
            opts,
            "--object".to_owned(),
            format!("secret,id=sec0,data={secret}"),
        ];
        let cmd = qemu.command(&["read -P 0xa1 0 1M", "read -P 0xa2 100M 1M"], args);
        let out = run(cmd).await;
        assert!(out.success(), "reading the pattern over LIO: {out:?}");
    }
    d.terminate_connection(&exported, Some(&c)).await.unwrap();
    assert_ne!(
        run(readcapacity(initiator)).await.code,
        0,
        "the ACL is gone"
    );
    d.remove_export(&exported).await.unwrap();
    let root = Path::new(CONFIGFS_TARGET_ROOT);
    assert!(!root.join("iscsi").join(&iqn).exists());
    assert!(!root.join("core/iblock_0").join(&iqn).exists());

    // Deletes return at once; the wiper zeroes 64 MiB of each LV.
    let (v2_offset, _) = vg.lv_extent_range(&v2.name).await;
    assert!(matches!(
        d.delete_volume(&v1).await,
        Err(DriverError::Busy(_))
    ));
    let t = Instant::now();
    d.delete_snapshot(&s1).await.unwrap();
    for v in [&v1, &v2, &v3] {
        d.delete_volume(v).await.unwrap();
    }
    let delete_time = t.elapsed();
    let t = Instant::now();
    d.wiper().wait_idle().await;
    let wipe_time = t.elapsed();
    assert_eq!(d.wiper().failures(), 0);
    assert!(vg.lv_names().await.is_empty(), "{:?}", vg.lv_names().await);
    assert!(
        vg.read_at(v2_offset, MIB as usize).iter().all(|b| *b == 0),
        "wiped"
    );
    assert_eq!(
        vg.read_at(v2_offset + 100 * MIB, 16),
        vec![0xa2; 16],
        "volume_clear_size = 64 MiB"
    );
    eprintln!(
        "thick suite took {:?}: 1 GiB dd copy {copy_time:?}; four deletes {delete_time:?}; their wipes {wipe_time:?}",
        t0.elapsed()
    );
}
