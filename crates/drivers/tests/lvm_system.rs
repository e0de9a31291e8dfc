//! The LVM driver against real LVM on a loop device.
//!
//! Runs with `CLINKER_SYSTEM_TESTS=1` or `CI=true` (see `clinker_testkit::dataplane`). Each test
//! builds its own VG on a sparse file behind a loop device, with a private
//! `lvm.conf` (through the driver's own `lvm_conf_file` option) whose filter
//! admits only that loop device, so no other VG on the host is seen or
//! touched. `global { activation = 0 }` keeps LVM to metadata on kernels
//! without device-mapper (the development machines): create, extend,
//! rename, delete, reports and "VG full" are real; snapshots are not
//! possible there and must come back as `Unavailable`.
//!
//! The wipe test stands a loop device over the LV's extents of the PV's
//! backing file in for `/dev/mapper/<vg>-<lv>`, so the background `dd` really
//! zeroes the LV's bytes.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use clinker_config::{
    DriverConfig, LvmDriverOptions, LvmType, TargetConfig, TargetHelperKind, VolumeClear,
};
use clinker_drivers::lvm::{LvmDriver, Provisioning};
use clinker_drivers::targets::fake::FakeTarget;
use clinker_drivers::{DriverError, GIB, SnapshotSpec, VolumeDriver, VolumeSpec};
use clinker_exec::HostRunner;
use clinker_testkit::dataplane::{self, LoopVg};
use clinker_types::{SnapshotId, VolumeId};

const MIB: u64 = 1 << 20;
const TOOLS: &[&str] = &["losetup", "pvcreate", "vgcreate", "lvs", "lvcreate", "dd"];

fn options(vg: &LoopVg, clear: VolumeClear) -> LvmDriverOptions {
    vg.driver_options(LvmType::Default, clear, 0)
}

async fn driver(vg: &LoopVg, options: LvmDriverOptions, dev_root: Option<&Path>) -> LvmDriver {
    let target = TargetConfig::with_defaults(TargetHelperKind::Fake, vg.dir.path().join("targets"));
    let driver = DriverConfig::Lvm(options.clone());
    let backend = clinker_testkit::config::backend("lvm", driver, target.clone());
    let mut d = LvmDriver::new(
        &backend,
        options,
        Arc::new(HostRunner::new()),
        Arc::new(FakeTarget::new(&target)),
    );
    if let Some(root) = dev_root {
        d = d.with_dev_root(root.to_path_buf());
    }
    d.do_setup().await.unwrap();
    d.check_for_setup_error().await.unwrap();
    d
}

fn has_device_mapper() -> bool {
    std::fs::read_to_string("/proc/misc").is_ok_and(|m| m.contains("device-mapper"))
}

#[tokio::test]
async fn lvm_metadata_operations_on_a_real_volume_group() {
    const TEST: &str = "lvm_metadata_operations_on_a_real_volume_group";
    if !dataplane::ready(TEST, TOOLS) {
        return;
    }
    let started = Instant::now();
    let vg = LoopVg::create(5, false).await;
    let setup = started.elapsed();
    let d = driver(&vg, options(&vg, VolumeClear::None), None).await;
    assert_eq!(d.resolved_provisioning(), Some(Provisioning::Thick));

    let stats = d.get_volume_stats().await.unwrap();
    let pool = &stats["pools"][0];
    let total = pool["total_capacity_gb"].as_f64().unwrap();
    assert!((4.9..=5.0).contains(&total), "{total}");
    assert_eq!(pool["free_capacity_gb"], pool["total_capacity_gb"]);
    assert_eq!(pool["total_volumes"], 0);

    let v1 = VolumeSpec::new(VolumeId::new_random(), 1);
    let v2 = VolumeSpec::new(VolumeId::new_random(), 2);
    let t = Instant::now();
    d.create_volume(&v1).await.unwrap();
    let create_latency = t.elapsed();
    d.create_volume(&v2).await.unwrap();
    d.create_volume(&v1).await.unwrap(); // redelivered: idempotent
    assert_eq!(d.list_volume_names().await.unwrap().unwrap(), {
        let mut names = vec![v1.name.clone(), v2.name.clone()];
        names.sort();
        names
    });
    let pool = d.get_volume_stats().await.unwrap()["pools"][0].clone();
    assert_eq!(pool["provisioned_capacity_gb"], 3.0);
    assert_eq!(pool["total_volumes"], 2);
    let free = pool["free_capacity_gb"].as_f64().unwrap();
    assert!((total - 3.0 - free).abs() < 0.011, "{total} - 3 != {free}");

    let t = Instant::now();
    d.extend_volume(&v1, 2).await.unwrap();
    let extend_latency = t.elapsed();
    d.extend_volume(&v1, 2).await.unwrap(); // same size: nothing to do
    assert!(matches!(
        d.extend_volume(&v1, 1).await,
        Err(DriverError::InvalidInput(_))
    ));

    // The VG is full: creates and extends say NoSpace, from LVM's own words.
    let big = VolumeSpec::new(VolumeId::new_random(), 9);
    let err = d.create_volume(&big).await.unwrap_err();
    assert!(
        matches!(err, DriverError::NoSpace(ref m) if m.contains("insufficient free space")),
        "{err:?}"
    );
    assert!(matches!(
        d.extend_volume(&v2, 10).await,
        Err(DriverError::NoSpace(_))
    ));
    let mut clash = v1.clone();
    clash.size_gb = 3;
    assert!(matches!(
        d.create_volume(&clash).await,
        Err(DriverError::AlreadyExists(_))
    ));

    // Snapshots need device-mapper.
    let snapshot = SnapshotSpec::new(SnapshotId::new_random(), v1.clone(), 2);
    if !has_device_mapper() {
        let err = d.create_snapshot(&snapshot).await.unwrap_err();
        assert!(
            matches!(err, DriverError::Unavailable(ref m) if m.contains("device-mapper")),
            "{err:?}"
        );
    }

    let t = Instant::now();
    d.delete_volume(&v1).await.unwrap();
    let delete_latency = t.elapsed();
    d.delete_volume(&v2).await.unwrap();
    d.delete_volume(&v2).await.unwrap(); // absent: success
    assert!(vg.lv_names().await.is_empty());
    let pool = d.get_volume_stats().await.unwrap()["pools"][0].clone();
    assert_eq!(pool["free_capacity_gb"].as_f64().unwrap(), total);
    eprintln!(
        "timings: vg setup {setup:?}, create {create_latency:?}, extend {extend_latency:?}, delete {delete_latency:?}"
    );
}

#[tokio::test]
async fn lvm_wipes_after_delete_returns_and_finishes_after_a_restart() {
    const TEST: &str = "lvm_wipes_after_delete_returns_and_finishes_after_a_restart";
    if !dataplane::ready(TEST, TOOLS) {
        return;
    }
    let vg = LoopVg::create(3, false).await;
    let dev_root = vg.dir.path().join("dev");
    let d = driver(&vg, options(&vg, VolumeClear::Zero), Some(&dev_root)).await;
    let pattern = vec![0xab_u8; MIB as usize];
    let offsets = [0, GIB / 2, GIB - MIB];

    // 1. A wipe that runs while the manager has moved on.
    let v1 = VolumeSpec::new(VolumeId::new_random(), 1);
    d.create_volume(&v1).await.unwrap();
    let (lv_offset, lv_len) = vg.lv_extent_range(&v1.name).await;
    assert_eq!(lv_len, GIB);
    for o in offsets {
        vg.write_at(lv_offset + o, &pattern);
    }
    let wiped = format!("_wipe-{}", v1.name);
    vg.emulate_device(&v1.name, &d.commands().mapper_path(&wiped))
        .await;
    let t = Instant::now();
    d.delete_volume(&v1).await.unwrap();
    let delete_latency = t.elapsed();
    assert!(
        !d.list_volume_names()
            .await
            .unwrap()
            .unwrap()
            .contains(&v1.name)
    );
    let t = Instant::now();
    d.wiper().wait_idle().await;
    let wipe_duration = t.elapsed();
    assert_eq!(d.wiper().failures(), 0);
    assert!(vg.lv_names().await.is_empty(), "{:?}", vg.lv_names().await);
    for o in offsets {
        assert!(
            vg.read_at(lv_offset + o, MIB as usize)
                .iter()
                .all(|b| *b == 0),
            "offset {o} not zeroed"
        );
    }
    assert!(
        delete_latency < wipe_duration,
        "delete ({delete_latency:?}) must not wait for the wipe ({wipe_duration:?})"
    );

    // 2. A wipe that cannot run keeps the LV, and the next start finishes it.
    let v2 = VolumeSpec::new(VolumeId::new_random(), 1);
    d.create_volume(&v2).await.unwrap();
    let (v2_offset, _) = vg.lv_extent_range(&v2.name).await;
    vg.write_at(v2_offset, &pattern);
    d.delete_volume(&v2).await.unwrap();
    d.wiper().wait_idle().await;
    assert_eq!(d.wiper().failures(), 1, "no device for the wipe yet");
    let wiped2 = format!("_wipe-{}", v2.name);
    assert_eq!(vg.lv_names().await, std::slice::from_ref(&wiped2));
    assert_eq!(
        vg.read_at(v2_offset, 16),
        vec![0xab; 16],
        "not wiped, not freed"
    );
    drop(d);
    vg.emulate_device(
        &wiped2,
        &dev_root.join("mapper").join(format!(
            "{}-{}",
            vg.vg.replace('-', "--"),
            wiped2.replace('-', "--")
        )),
    )
    .await;
    let restarted = driver(&vg, options(&vg, VolumeClear::Zero), Some(&dev_root)).await;
    restarted.wiper().wait_idle().await;
    assert_eq!(restarted.wiper().failures(), 0);
    assert!(vg.lv_names().await.is_empty());
    assert!(vg.read_at(v2_offset, MIB as usize).iter().all(|b| *b == 0));
    eprintln!(
        "timings: delete returned after {delete_latency:?}; wiping 1 GiB took {wipe_duration:?}"
    );
}
