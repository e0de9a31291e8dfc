use std::collections::BTreeSet;
use std::sync::Arc;

use clinker_config::{LvmType, OverSubscription, TargetConfig, TargetHelperKind, VolumeClear};
use clinker_exec::{FakeRunner, Output};
use clinker_types::SnapshotId;
use serde_json::json;

use super::super::*;
use super::{Lv, Lvm, MIB, VG, backend, driver, lv, options, thin, thin_pool, volume};
use crate::targets::fake::FakeTarget;
use crate::testing::fixture;

// ---- set-up ------------------------------------------------------------------

#[tokio::test]
async fn thin_and_auto_set_up_the_pool_like_cinder() {
    // auto on an empty VG: thin, with a pool of 95 % of the free space.
    let lvm = Lvm::new(10, vec![]);
    let d = driver(&lvm, options(LvmType::Auto, VolumeClear::Zero)).await;
    assert_eq!(d.resolved_provisioning(), Some(Provisioning::Thin));
    let pool = lvm.model.lock().unwrap().lvs[0].clone();
    assert!(pool.is_pool);
    // 95 % of 10 GiB, in whole 4 MiB extents.
    assert_eq!(pool.size, (10u64 << 30) / 100 * 95 / (4 * MIB) * (4 * MIB));
    // auto with a pool already there: thin, nothing created.
    let lvm = Lvm::new(10, vec![thin_pool(9), lv("volume-x", 1)]);
    let target = Arc::new(FakeTarget::new(
        &backend(&options(LvmType::Auto, VolumeClear::Zero)).target,
    ));
    let d = LvmDriver::new(
        &backend(&options(LvmType::Auto, VolumeClear::Zero)),
        options(LvmType::Auto, VolumeClear::Zero),
        Arc::new(lvm.fake.clone()),
        target,
    );
    assert_eq!(d.resolved_provisioning(), None);
    assert!(matches!(
        d.create_volume(&volume(1)).await,
        Err(DriverError::Unavailable(_))
    ));
    d.check_for_setup_error().await.unwrap();
    assert_eq!(d.resolved_provisioning(), Some(Provisioning::Thin));
    assert!(lvm.changes().is_empty(), "{:?}", lvm.changes());
    // auto on a VG with thick LVs: thick.
    let lvm = Lvm::new(10, vec![lv("volume-x", 1)]);
    let d = driver(&lvm, options(LvmType::Auto, VolumeClear::Zero)).await;
    assert_eq!(d.resolved_provisioning(), Some(Provisioning::Thick));
    // auto with mirrors: thick.
    let lvm = Lvm::new(10, vec![]);
    let mut mirrored = options(LvmType::Auto, VolumeClear::Zero);
    mirrored.lvm_mirrors = 1;
    let d = driver(&lvm, mirrored).await;
    assert_eq!(d.resolved_provisioning(), Some(Provisioning::Thick));
}

#[tokio::test]
async fn set_up_errors_are_unavailable_with_a_reason() {
    let lvm = Lvm::new(10, vec![]);
    lvm.model.lock().unwrap().vg_missing = true;
    let opts = options(LvmType::Default, VolumeClear::Zero);
    let target = Arc::new(FakeTarget::new(&backend(&opts).target));
    let d = LvmDriver::new(
        &backend(&opts),
        opts.clone(),
        Arc::new(lvm.fake.clone()),
        target.clone(),
    );
    let err = d.check_for_setup_error().await.unwrap_err();
    assert!(
        matches!(err, DriverError::Unavailable(ref m) if m == "volume group cinder-volumes does not exist"),
        "{err:?}"
    );
    assert!(matches!(
        d.get_volume_stats().await,
        Err(DriverError::Unavailable(_))
    ));

    // No LVM at all.
    let fake = FakeRunner::new();
    fake.on(
        "env LC_ALL=C lvm version",
        Output::failed(127, "env: 'lvm': No such file or directory"),
    );
    let d = LvmDriver::new(&backend(&opts), opts, Arc::new(fake), target.clone());
    assert!(
        matches!(d.check_for_setup_error().await, Err(DriverError::Unavailable(m)) if m.contains("LVM version"))
    );

    // A thin pool the kernel cannot make (this host: no device-mapper).
    let lvm = Lvm::new(10, vec![]);
    lvm.fake.on(
        "env LC_ALL=C lvcreate -T -L",
        fixture("lvm/nodm/lvcreate-thin-pool"),
    );
    let thin = options(LvmType::Thin, VolumeClear::Zero);
    let d = LvmDriver::new(&backend(&thin), thin, Arc::new(lvm.fake.clone()), target);
    let err = d.check_for_setup_error().await.unwrap_err();
    assert!(
        matches!(err, DriverError::Unavailable(ref m) if m.contains("cannot create the thin pool") && m.contains("device-mapper")),
        "{err:?}"
    );
}

#[tokio::test]
async fn lvm_conf_file_sets_lvm_system_dir_when_it_exists() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("lvm.conf"), "global { activation = 0 }\n").unwrap();
    let lvm = Lvm::new(10, vec![]);
    let mut opts = options(LvmType::Default, VolumeClear::None);
    opts.lvm_conf_file = Some(tmp.path().join("lvm.conf"));
    opts.lvm_suppress_fd_warnings = true;
    let d = driver(&lvm, opts.clone()).await;
    let v = volume(1);
    d.create_volume(&v).await.unwrap();
    assert_eq!(
        lvm.changes(),
        [format!(
            "env LC_ALL=C LVM_SYSTEM_DIR={} LVM_SUPPRESS_FD_WARNINGS=1 lvcreate -n {} cinder-volumes -L 1g",
            tmp.path().display(),
            v.name
        )]
    );
    // A configured file that does not exist is ignored, as in Cinder.
    let lvm = Lvm::new(10, vec![]);
    opts.lvm_conf_file = Some(tmp.path().join("missing.conf"));
    opts.lvm_suppress_fd_warnings = false;
    let d = driver(&lvm, opts).await;
    d.create_volume(&v).await.unwrap();
    assert_eq!(
        lvm.changes(),
        [format!(
            "env LC_ALL=C lvcreate -n {} cinder-volumes -L 1g",
            v.name
        )]
    );
}

// ---- create ----------------------------------------------------------------

#[tokio::test]
async fn creates_thick_mirrored_and_thin_volumes() {
    let lvm = Lvm::new(10_000, vec![]);
    let d = driver(&lvm, options(LvmType::Default, VolumeClear::Zero)).await;
    let v = volume(2);
    assert_eq!(d.create_volume(&v).await.unwrap(), ModelUpdate::default());
    assert_eq!(
        lvm.changes(),
        [format!(
            "env LC_ALL=C lvcreate -n {} cinder-volumes -L 2g",
            v.name
        )]
    );

    let lvm = Lvm::new(10_000, vec![]);
    let mut mirrored = options(LvmType::Default, VolumeClear::Zero);
    mirrored.lvm_mirrors = 2;
    let d = driver(&lvm, mirrored).await;
    let big = volume(1600);
    d.create_volume(&big).await.unwrap();
    assert_eq!(
        lvm.changes(),
        [format!(
            "env LC_ALL=C lvcreate -n {} cinder-volumes -L 1600g --type=mirror -m 2 --nosync --mirrorlog mirrored -R 2",
            big.name
        )]
    );

    let lvm = Lvm::new(10, vec![thin_pool(9)]);
    let d = driver(&lvm, options(LvmType::Thin, VolumeClear::Zero)).await;
    let thin = volume(50);
    d.create_volume(&thin).await.unwrap();
    assert_eq!(
        lvm.changes(),
        [format!(
            "env LC_ALL=C lvcreate -T -V 50g -n {} cinder-volumes/cinder-volumes-pool",
            thin.name
        )]
    );
}

#[tokio::test]
async fn create_is_idempotent_and_classifies_failures() {
    let lvm = Lvm::new(4, vec![]);
    let d = driver(&lvm, options(LvmType::Default, VolumeClear::Zero)).await;
    let v = volume(1);
    d.create_volume(&v).await.unwrap();
    // A redelivered create finds the LV it made.
    d.create_volume(&v).await.unwrap();
    let mut bigger = v.clone();
    bigger.size_gb = 2;
    assert!(matches!(
        d.create_volume(&bigger).await,
        Err(DriverError::AlreadyExists(_))
    ));
    assert!(matches!(
        d.create_volume(&volume(8)).await,
        Err(DriverError::NoSpace(_))
    ));
    assert!(matches!(
        d.create_volume(&volume(0)).await,
        Err(DriverError::InvalidInput(_))
    ));
    lvm.model.lock().unwrap().vg_missing = true;
    lvm.fake.on(
        "env LC_ALL=C lvcreate",
        fixture("lvm/nodm/lvcreate-missing-vg"),
    );
    assert!(matches!(
        d.create_volume(&volume(1)).await,
        Err(DriverError::Unavailable(_))
    ));
}

// ---- snapshots, clones -----------------------------------------------------

#[tokio::test]
async fn snapshots_thick_and_thin() {
    let origin = volume(1);
    let lvm = Lvm::new(10, vec![lv(&origin.name, 1)]);
    let d = driver(&lvm, options(LvmType::Default, VolumeClear::Zero)).await;
    let snapshot = SnapshotSpec::new(SnapshotId::new_random(), origin.clone(), 1);
    d.create_snapshot(&snapshot).await.unwrap();
    d.create_snapshot(&snapshot).await.unwrap();
    assert_eq!(
        lvm.changes(),
        [format!(
            "env LC_ALL=C lvcreate --name _{} --snapshot cinder-volumes/{} -L 1073741824b",
            snapshot.name, origin.name
        )]
    );
    let orphan = SnapshotSpec::new(SnapshotId::new_random(), volume(1), 1);
    assert!(matches!(
        d.create_snapshot(&orphan).await,
        Err(DriverError::NotFound(_))
    ));

    let lvm = Lvm::new(10, vec![thin_pool(9), thin(&origin.name, 1)]);
    let d = driver(&lvm, options(LvmType::Thin, VolumeClear::Zero)).await;
    d.create_snapshot(&snapshot).await.unwrap();
    assert_eq!(
        lvm.changes(),
        [format!(
            "env LC_ALL=C lvcreate --name _{} --snapshot cinder-volumes/{}",
            snapshot.name, origin.name
        )]
    );
}

#[tokio::test]
async fn thin_volume_from_snapshot_and_clone_are_thin_snapshots() {
    let origin = volume(1);
    let snapshot = SnapshotSpec::new(SnapshotId::new_random(), origin.clone(), 1);
    let snap_lv = format!("_{}", snapshot.name);
    let pool = Some("cinder-volumes-pool".to_owned());
    let lvm = Lvm::new(
        10,
        vec![
            thin_pool(9),
            Lv {
                pool: pool.clone(),
                ..lv(&origin.name, 1)
            },
            Lv {
                pool: pool.clone(),
                origin: Some(origin.name.clone()),
                ..lv(&snap_lv, 1)
            },
        ],
    );
    let d = driver(&lvm, options(LvmType::Thin, VolumeClear::Zero)).await;
    let v = volume(2);
    d.create_volume_from_snapshot(&v, &snapshot).await.unwrap();
    assert_eq!(
        lvm.changes(),
        [
            format!(
                "env LC_ALL=C lvcreate --name {} --snapshot cinder-volumes/{snap_lv}",
                v.name
            ),
            format!("env LC_ALL=C lvextend -L 2g cinder-volumes/{}", v.name),
            format!("env LC_ALL=C lvchange -a y --yes -K cinder-volumes/{snap_lv}"),
            format!(
                "env LC_ALL=C lvchange -a y --yes -k n cinder-volumes/{}",
                v.name
            ),
        ]
    );
    lvm.fake.clear_calls();
    let clone = volume(1);
    d.create_cloned_volume(&clone, &origin).await.unwrap();
    assert_eq!(
        lvm.changes(),
        [
            format!(
                "env LC_ALL=C lvcreate --name {} --snapshot cinder-volumes/{}",
                clone.name, origin.name
            ),
            format!(
                "env LC_ALL=C lvchange -a y --yes -k n cinder-volumes/{}",
                clone.name
            ),
        ]
    );
    // A thin volume made from the snapshot does not pin it; the origin is
    // pinned by its snapshot.
    assert!(matches!(
        d.delete_volume(&origin).await,
        Err(DriverError::Busy(_))
    ));
    d.delete_snapshot(&snapshot).await.unwrap();
    d.delete_volume(&origin).await.unwrap();
    assert!(lvm.names().contains(&v.name) && lvm.names().contains(&clone.name));
}

#[tokio::test]
async fn thick_volume_from_snapshot_is_a_dd_copy() {
    let origin = volume(1);
    let snapshot = SnapshotSpec::new(SnapshotId::new_random(), origin.clone(), 1);
    let snap_lv = format!("_{}", snapshot.name);
    let lvm = Lvm::new(
        10,
        vec![
            lv(&origin.name, 1),
            Lv {
                thick_snapshot: true,
                origin: Some(origin.name.clone()),
                ..lv(&snap_lv, 1)
            },
        ],
    );
    let d = driver(&lvm, options(LvmType::Default, VolumeClear::Zero)).await;
    let v = volume(3);
    d.create_volume_from_snapshot(&v, &snapshot).await.unwrap();
    let c = d.commands();
    assert_eq!(
        lvm.changes(),
        [
            format!("env LC_ALL=C lvcreate -n {} cinder-volumes -L 3g", v.name),
            format!("env LC_ALL=C lvchange -a y --yes -K cinder-volumes/{snap_lv}"),
            format!(
                "dd if={} of={} count=1073741824 bs=1M iflag=count_bytes,direct oflag=direct conv=nocreat",
                c.mapper_path(&snap_lv).display(),
                c.mapper_path(&v.name).display()
            ),
        ]
    );
}

#[tokio::test]
async fn a_failed_copy_leaves_no_volume_behind() {
    let origin = volume(1);
    let snapshot = SnapshotSpec::new(SnapshotId::new_random(), origin.clone(), 1);
    let snap_lv = format!("_{}", snapshot.name);
    let lvm = Lvm::new(
        10,
        vec![
            lv(&origin.name, 1),
            Lv {
                thick_snapshot: true,
                origin: Some(origin.name.clone()),
                ..lv(&snap_lv, 1)
            },
        ],
    );
    lvm.fake.on(
        "dd if=/dev/mapper",
        Output::failed(1, "dd: error reading '/dev/mapper/x': Input/output error"),
    );
    let d = driver(&lvm, options(LvmType::Default, VolumeClear::None)).await;
    let v = volume(1);
    let err = d
        .create_volume_from_snapshot(&v, &snapshot)
        .await
        .unwrap_err();
    assert!(matches!(err, DriverError::Backend(_)), "{err:?}");
    assert!(!lvm.names().contains(&v.name));
    assert!(lvm.changes().last().unwrap().contains(&format!(
        "lvremove --config activation {{ retry_deactivation = 1}}  -f cinder-volumes/{}",
        v.name
    )));
}

#[tokio::test]
async fn thick_clone_copies_a_temporary_snapshot_and_wipes_it_in_the_background() {
    let source = volume(1);
    let lvm = Lvm::new(10, vec![lv(&source.name, 1)]);
    let d = driver(&lvm, options(LvmType::Default, VolumeClear::Zero)).await;
    let clone = volume(1);
    d.create_cloned_volume(&clone, &source).await.unwrap();
    d.wiper().wait_idle().await;
    let temp = format!("clone-snap-{}", clone.id);
    let wiped = format!("_wipe-{temp}");
    let c = d.commands();
    assert_eq!(
        lvm.changes(),
        [
            format!(
                "env LC_ALL=C lvcreate --name {temp} --snapshot cinder-volumes/{} -L 1073741824b",
                source.name
            ),
            format!(
                "env LC_ALL=C lvcreate -n {} cinder-volumes -L 1g",
                clone.name
            ),
            format!("env LC_ALL=C lvchange -a y --yes -K cinder-volumes/{temp}"),
            format!(
                "dd if={} of={} count=1073741824 bs=1M iflag=count_bytes,direct oflag=direct conv=nocreat",
                c.mapper_path(&temp).display(),
                c.mapper_path(&clone.name).display()
            ),
            format!("env LC_ALL=C lvrename cinder-volumes {temp} {wiped}"),
            format!("env LC_ALL=C lvchange -a y --yes -K cinder-volumes/{wiped}"),
            format!(
                "dd if=/dev/zero of={} count=1073741824 bs=1M iflag=count_bytes oflag=direct conv=nocreat",
                c.cow_path(&wiped).display()
            ),
            format!(
                "env LC_ALL=C lvremove --config activation {{ retry_deactivation = 1}}  -f cinder-volumes/{wiped}"
            ),
        ]
    );
    assert_eq!(
        lvm.names(),
        BTreeSet::from([source.name.clone(), clone.name.clone()])
    );
}

// ---- extend ----------------------------------------------------------------

#[tokio::test]
async fn extend_plain_origin_same_size_and_errors() {
    let v = volume(1);
    let lvm = Lvm::new(8, vec![lv(&v.name, 1)]);
    let d = driver(&lvm, options(LvmType::Default, VolumeClear::Zero)).await;
    d.extend_volume(&v, 2).await.unwrap();
    assert_eq!(
        lvm.changes(),
        [format!(
            "env LC_ALL=C lvextend -L 2g cinder-volumes/{}",
            v.name
        )]
    );
    lvm.fake.clear_calls();
    d.extend_volume(&v, 2).await.unwrap();
    assert!(lvm.changes().is_empty(), "same size: nothing to do");
    assert!(matches!(
        d.extend_volume(&v, 1).await,
        Err(DriverError::InvalidInput(_))
    ));
    assert!(matches!(
        d.extend_volume(&v, 20).await,
        Err(DriverError::NoSpace(_))
    ));
    assert!(matches!(
        d.extend_volume(&volume(1), 2).await,
        Err(DriverError::NotFound(_))
    ));

    // A thick origin with a snapshot is deactivated around the resize.
    let snapshot = SnapshotSpec::new(SnapshotId::new_random(), v.clone(), 2);
    d.create_snapshot(&snapshot).await.unwrap();
    lvm.fake.clear_calls();
    d.extend_volume(&v, 3).await.unwrap();
    assert_eq!(
        lvm.changes(),
        [
            format!("env LC_ALL=C lvchange -a n cinder-volumes/{}", v.name),
            format!("env LC_ALL=C lvextend -L 3g cinder-volumes/{}", v.name),
            format!(
                "env LC_ALL=C lvchange -a y --yes -K cinder-volumes/{}",
                v.name
            ),
        ]
    );
}

// ---- delete and wipe ---------------------------------------------------------

#[tokio::test]
async fn delete_refuses_volumes_with_snapshots_or_open() {
    let v = volume(1);
    let lvm = Lvm::new(4, vec![lv(&v.name, 1)]);
    let d = driver(&lvm, options(LvmType::Default, VolumeClear::Zero)).await;
    let snapshot = SnapshotSpec::new(SnapshotId::new_random(), v.clone(), 1);
    d.create_snapshot(&snapshot).await.unwrap();
    lvm.fake.clear_calls();
    let err = d.delete_volume(&v).await.unwrap_err();
    assert!(
        matches!(err, DriverError::Busy(ref m) if m.contains(&snapshot.name)),
        "{err:?}"
    );
    assert!(lvm.changes().is_empty());
    assert_eq!(err.kind(), clinker_types::ErrorKind::InvalidState);
    let open = volume(1);
    lvm.model.lock().unwrap().lvs.push(Lv {
        open: true,
        ..lv(&open.name, 1)
    });
    assert!(matches!(
        d.delete_volume(&open).await,
        Err(DriverError::Busy(_))
    ));
    // Absent: success, nothing run.
    d.delete_volume(&volume(1)).await.unwrap();
    assert!(lvm.changes().is_empty());
}

#[tokio::test]
async fn delete_with_volume_clear_none_removes_at_once() {
    let v = volume(1);
    let lvm = Lvm::new(4, vec![lv(&v.name, 1)]);
    let d = driver(&lvm, options(LvmType::Default, VolumeClear::None)).await;
    d.delete_volume(&v).await.unwrap();
    assert_eq!(
        lvm.changes(),
        [format!(
            "env LC_ALL=C lvremove --config activation {{ retry_deactivation = 1}}  -f cinder-volumes/{}",
            v.name
        )]
    );
    assert!(lvm.names().is_empty());
}

#[tokio::test]
async fn delete_with_volume_clear_zero_returns_before_the_wipe() {
    let v = volume(1);
    let lvm = Lvm::new(4, vec![lv(&v.name, 1)]);
    // Hold dd until the test has seen delete_volume return.
    let gate = Arc::new(std::sync::Barrier::new(2));
    let g = gate.clone();
    lvm.fake.on_with("dd if=/dev/zero", move |_| {
        g.wait();
        Output::ok("")
    });
    let d = driver(&lvm, options(LvmType::Default, VolumeClear::Zero)).await;
    d.delete_volume(&v).await.unwrap();
    let wiped = format!("_wipe-{}", v.name);
    assert_eq!(
        lvm.names(),
        BTreeSet::from([wiped.clone()]),
        "renamed, not yet removed"
    );
    assert_eq!(d.wiper().pending(), std::slice::from_ref(&wiped));
    assert!(d.list_volume_names().await.unwrap().unwrap().is_empty());
    tokio::task::spawn_blocking(move || gate.wait())
        .await
        .unwrap();
    d.wiper().wait_idle().await;
    assert!(lvm.names().is_empty());
    assert_eq!(
        lvm.changes(),
        [
            format!("env LC_ALL=C lvrename cinder-volumes {} {wiped}", v.name),
            format!("env LC_ALL=C lvchange -a y --yes -K cinder-volumes/{wiped}"),
            format!(
                "dd if=/dev/zero of=/dev/mapper/cinder--volumes-{} count=1073741824 bs=1M iflag=count_bytes oflag=direct conv=nocreat",
                wiped.replace('-', "--")
            ),
            format!(
                "env LC_ALL=C lvremove --config activation {{ retry_deactivation = 1}}  -f cinder-volumes/{wiped}"
            ),
        ]
    );
    assert_eq!(d.wiper().failures(), 0);
}

#[tokio::test]
async fn volume_clear_size_and_ionice_limit_the_wipe() {
    let v = volume(2);
    let lvm = Lvm::new(4, vec![lv(&v.name, 2)]);
    let mut opts = options(LvmType::Default, VolumeClear::Zero);
    opts.volume_clear_size_mib = 100;
    opts.volume_clear_ionice = Some("-c3".into());
    let d = driver(&lvm, opts).await;
    d.delete_volume(&v).await.unwrap();
    d.wiper().wait_idle().await;
    let dd: Vec<String> = lvm
        .changes()
        .into_iter()
        .filter(|c| c.contains(" dd "))
        .collect();
    assert_eq!(
        dd,
        [format!(
            "ionice -c3 dd if=/dev/zero of=/dev/mapper/cinder--volumes-_wipe--{} count=104857600 bs=1M iflag=count_bytes oflag=direct conv=nocreat",
            v.name.replace('-', "--")
        )]
    );
}

#[tokio::test]
async fn thin_lvs_are_removed_without_a_wipe() {
    let v = volume(1);
    let lvm = Lvm::new(10, vec![thin_pool(9), thin(&v.name, 1)]);
    let d = driver(&lvm, options(LvmType::Thin, VolumeClear::Zero)).await;
    d.delete_volume(&v).await.unwrap();
    assert_eq!(
        lvm.changes(),
        [format!(
            "env LC_ALL=C lvremove --config activation {{ retry_deactivation = 1}}  -f cinder-volumes/{}",
            v.name
        )]
    );
}

#[tokio::test]
async fn snapshots_are_wiped_through_their_cow_before_their_origin() {
    let v = volume(1);
    let lvm = Lvm::new(4, vec![lv(&v.name, 1)]);
    let gate = Arc::new(std::sync::Barrier::new(2));
    let g = gate.clone();
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    lvm.fake.on_with("dd if=/dev/zero", move |_| {
        if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            g.wait();
        }
        Output::ok("")
    });
    let d = driver(&lvm, options(LvmType::Default, VolumeClear::Zero)).await;
    let snapshot = SnapshotSpec::new(SnapshotId::new_random(), v.clone(), 1);
    d.create_snapshot(&snapshot).await.unwrap();
    d.delete_snapshot(&snapshot).await.unwrap();
    // The snapshot waits for its wipe; the volume can be deleted already
    // (its renamed snapshot is not a user's snapshot).
    d.delete_volume(&v).await.unwrap();
    tokio::task::spawn_blocking(move || gate.wait())
        .await
        .unwrap();
    d.wiper().wait_idle().await;
    assert!(lvm.names().is_empty());
    let snap_wiped = format!("_wipe-_{}", snapshot.name);
    let vol_wiped = format!("_wipe-{}", v.name);
    let c = d.commands();
    let dd: Vec<String> = lvm
        .changes()
        .into_iter()
        .filter(|l| l.starts_with("dd ") || l.contains("lvremove"))
        .collect();
    assert_eq!(
        dd,
        [
            format!(
                "dd if=/dev/zero of={} count=1073741824 bs=1M iflag=count_bytes oflag=direct conv=nocreat",
                c.cow_path(&snap_wiped).display()
            ),
            format!(
                "env LC_ALL=C lvremove --config activation {{ retry_deactivation = 1}}  -f cinder-volumes/{snap_wiped}"
            ),
            format!(
                "dd if=/dev/zero of={} count=1073741824 bs=1M iflag=count_bytes oflag=direct conv=nocreat",
                c.mapper_path(&vol_wiped).display()
            ),
            format!(
                "env LC_ALL=C lvremove --config activation {{ retry_deactivation = 1}}  -f cinder-volumes/{vol_wiped}"
            ),
        ]
    );
}

#[tokio::test]
async fn lvremove_is_retried_after_udev_settles() {
    let v = volume(1);
    let lvm = Lvm::new(4, vec![lv(&v.name, 1)]);
    lvm.fake.on_times(
        "env LC_ALL=C lvremove",
        1,
        Output::failed(
            5,
            "  Logical volume cinder-volumes/x contains a filesystem in use.\n",
        ),
    );
    let d = driver(&lvm, options(LvmType::Default, VolumeClear::None)).await;
    d.delete_volume(&v).await.unwrap();
    assert_eq!(
        lvm.changes(),
        [
            format!(
                "env LC_ALL=C lvremove --config activation {{ retry_deactivation = 1}}  -f cinder-volumes/{}",
                v.name
            ),
            "udevadm settle".to_owned(),
            format!(
                "env LC_ALL=C lvremove --config activation {{ retry_deactivation = 1}} devices {{ ignore_suspended_devices = 1}} -f cinder-volumes/{}",
                v.name
            ),
        ]
    );
    // Both attempts failing is Busy for an LV in use.
    let w = volume(1);
    lvm.model.lock().unwrap().lvs.push(lv(&w.name, 1));
    lvm.fake.on(
        "env LC_ALL=C lvremove",
        Output::failed(
            5,
            "  Logical volume cinder-volumes/x contains a filesystem in use.\n",
        ),
    );
    assert!(matches!(
        d.delete_volume(&w).await,
        Err(DriverError::Busy(_))
    ));
}

#[tokio::test]
async fn interrupted_wipes_resume_at_start_up_and_failures_keep_the_lv() {
    let lvm = Lvm::new(
        4,
        vec![lv("_wipe-volume-left-over", 1), lv("volume-kept", 1)],
    );
    let d = driver(&lvm, options(LvmType::Default, VolumeClear::Zero)).await;
    d.wiper().wait_idle().await;
    assert_eq!(lvm.names(), BTreeSet::from(["volume-kept".to_owned()]));

    let lvm = Lvm::new(4, vec![lv("_wipe-volume-left-over", 1)]);
    lvm.fake.on(
        "dd if=/dev/zero",
        Output::failed(
            1,
            "dd: failed to open '/dev/mapper/x': No such file or directory",
        ),
    );
    let d = driver(&lvm, options(LvmType::Default, VolumeClear::Zero)).await;
    d.wiper().wait_idle().await;
    assert_eq!(d.wiper().failures(), 1);
    assert_eq!(
        lvm.names(),
        BTreeSet::from(["_wipe-volume-left-over".to_owned()]),
        "kept for the next start"
    );
}

// ---- stats, exports, listing ------------------------------------------------

#[tokio::test]
async fn capability_report_thick_thin_and_mirrored() {
    let lvm = Lvm::new(10, vec![lv("volume-a", 2), lv("volume-b", 1)]);
    let d = driver(&lvm, options(LvmType::Default, VolumeClear::Zero)).await;
    let report = d.get_volume_stats().await.unwrap();
    assert_eq!(
        serde_json::Value::Object(report),
        json!({
            "volume_backend_name": "lvm-1",
            "vendor_name": "Open Source",
            "driver_version": "3.0.0",
            "storage_protocol": "iSCSI",
            "shared_targets": false,
            "sparse_copy_volume": false,
            "pools": [{
                "pool_name": "lvm-1",
                "total_capacity_gb": 10.0,
                "free_capacity_gb": 7.0,
                "reserved_percentage": 5,
                "location_info": "LVMVolumeDriver:node1:cinder-volumes:default:0",
                "QoS_support": false,
                "provisioned_capacity_gb": 3.0,
                "max_over_subscription_ratio": 20.0,
                "thin_provisioning_support": false,
                "thick_provisioning_support": true,
                "total_volumes": 2,
                "filter_function": null,
                "goodness_function": null,
                "multiattach": true,
                "backend_state": "up",
            }]
        })
    );

    let lvm = Lvm::new(
        10,
        vec![
            Lv {
                is_pool: true,
                data_percent: 25.0,
                ..lv("cinder-volumes-pool", 8)
            },
            thin("volume-a", 20),
            thin("volume-b", 5),
        ],
    );
    let mut opts = options(LvmType::Auto, VolumeClear::Zero);
    opts.volume_group = VG.into();
    let target = Arc::new(FakeTarget::new(&backend(&opts).target));
    let mut b = backend(&opts);
    b.max_over_subscription_ratio = OverSubscription::Auto;
    let d = LvmDriver::new(&b, opts, Arc::new(lvm.fake.clone()), target).with_hostname("node1");
    d.check_for_setup_error().await.unwrap();
    let report = d.get_volume_stats().await.unwrap();
    let pool = &report["pools"][0];
    assert_eq!(pool["total_capacity_gb"], 8.0);
    assert_eq!(pool["free_capacity_gb"], 6.0);
    assert_eq!(pool["provisioned_capacity_gb"], 25.0);
    assert_eq!(pool["thin_provisioning_support"], true);
    assert_eq!(
        pool["location_info"],
        "LVMVolumeDriver:node1:cinder-volumes:thin:0"
    );
    // auto: 1 + provisioned / (used + 1) = 1 + 25 / 3.
    assert_eq!(pool["max_over_subscription_ratio"], 1.0 + 25.0 / 3.0);
    assert_eq!(report["sparse_copy_volume"], true);

    let lvm = Lvm::new(30, vec![]);
    lvm.model.lock().unwrap().pvs = vec![
        ("/dev/sdb".into(), 10 << 30, 10 << 30),
        ("/dev/sdc".into(), 10 << 30, 10 << 30),
        ("/dev/sdd".into(), 10 << 30, 5 << 30),
    ];
    let mut mirrored = options(LvmType::Default, VolumeClear::Zero);
    mirrored.lvm_mirrors = 1;
    let d = driver(&lvm, mirrored).await;
    let pool = &d.get_volume_stats().await.unwrap()["pools"][0];
    assert_eq!(pool["total_capacity_gb"], 15.0, "VG free / (mirrors + 1)");
    assert_eq!(pool["free_capacity_gb"], 10.0, "paired PV extents");
    assert_eq!(
        pool["location_info"],
        "LVMVolumeDriver:node1:cinder-volumes:default:1"
    );
}

#[tokio::test]
async fn exports_activate_the_lv_and_hand_its_device_to_the_target() {
    let tmp = tempfile::tempdir().unwrap();
    let v = volume(1);
    let lvm = Lvm::new(4, vec![lv(&v.name, 1)]);
    let tgt_listing = format!(
        "Target 1: iqn.2010-10.org.openstack:{}\n    LUN information:\n        LUN: 0\n        LUN: 1\n",
        v.name
    );
    lvm.fake.on("tgt-admin --show", Output::ok(tgt_listing));
    let opts = options(LvmType::Default, VolumeClear::Zero);
    let mut b = backend(&opts);
    b.target = TargetConfig::with_defaults(TargetHelperKind::Tgtadm, tmp.path().to_path_buf());
    let runner: Arc<dyn clinker_exec::CommandRunner> = Arc::new(lvm.fake.clone());
    let d = crate::build_driver(&b, runner).unwrap();
    d.check_for_setup_error().await.unwrap();
    lvm.fake.clear_calls();
    let connector = json!({"initiator": "iqn.1993-08.org.debian:01:c1"})
        .as_object()
        .unwrap()
        .clone();
    d.validate_connector(&connector).unwrap();
    assert!(d.validate_connector(&serde_json::Map::new()).is_err());
    let update = d.create_export(&v, &connector).await.unwrap();
    assert_eq!(
        lvm.changes(),
        [
            format!(
                "env LC_ALL=C lvchange -a y --yes -K cinder-volumes/{}",
                v.name
            ),
            format!("tgt-admin --update iqn.2010-10.org.openstack:{}", v.name),
            "tgt-admin --show".to_owned(),
        ]
    );
    let file = std::fs::read_to_string(tmp.path().join(&v.name)).unwrap();
    assert!(
        file.contains(&format!(
            "    backing-store /dev/cinder-volumes/{}\n",
            v.name
        )),
        "{file}"
    );
    assert_eq!(
        update.provider_location.as_deref(),
        Some(format!("127.0.0.1:3260,1 iqn.2010-10.org.openstack:{} 1", v.name).as_str())
    );
    let mut exported = v.clone();
    exported.provider_location = update.provider_location;
    exported.provider_auth = update.provider_auth;
    let info = d
        .initialize_connection(&exported, &connector)
        .await
        .unwrap();
    assert_eq!(info.driver_volume_type, "iscsi");
    assert_eq!(info.data["target_lun"], 1);
    assert_eq!(info.data["volume_id"], v.id.to_string());
    let missing = volume(1);
    assert!(matches!(
        d.create_export(&missing, &connector).await,
        Err(DriverError::NotFound(_))
    ));
}

#[tokio::test]
async fn lists_only_volume_lvs() {
    let lvm = Lvm::new(
        10,
        vec![
            lv("volume-b", 1),
            lv("_wipe-volume-c", 1),
            lv("_snapshot-d", 1),
            lv("clone-snap-e", 1),
            lv("volume-a", 1),
            lv("other", 1),
        ],
    );
    let d = driver(&lvm, options(LvmType::Default, VolumeClear::None)).await;
    assert_eq!(
        d.list_volume_names().await.unwrap().unwrap(),
        ["volume-a", "volume-b"]
    );
    assert_eq!(escape_snapshot_name("snapshot-1"), "_snapshot-1");
    assert_eq!(escape_snapshot_name("volume-1"), "volume-1");
}

// ---- manage and unmanage -------------------------------------------------------

#[tokio::test]
async fn manage_existing_renames_the_lv_with_lvrename() {
    let lvm = Lvm::new(10, vec![lv("legacy-disk", 2), lv("other", 1)]);
    let d = driver(&lvm, options(LvmType::Default, VolumeClear::None)).await;
    let reference = ManageRef(json!({"source-name": "legacy-disk"}));
    let v = volume(0);
    // Sizing reads the report and changes nothing.
    assert_eq!(d.manage_existing_get_size(&v, &reference).await.unwrap(), 2);
    assert!(lvm.changes().is_empty());
    d.manage_existing(&v, &reference).await.unwrap();
    assert_eq!(
        lvm.changes(),
        [format!(
            "env LC_ALL=C lvrename cinder-volumes legacy-disk {}",
            v.name
        )]
    );
    assert!(lvm.names().contains(&v.name));
    assert!(!lvm.names().contains("legacy-disk"));
    // The volume is now an ordinary volume of the backend.
    assert!(
        d.list_volume_names()
            .await
            .unwrap()
            .unwrap()
            .contains(&v.name)
    );
}

#[tokio::test]
async fn manage_existing_refuses_bad_references_with_cinders_texts() {
    let lvm = Lvm::new(10, vec![lv("cinder-volumes-pool", 5)]);
    lvm.model.lock().unwrap().lvs[0].is_pool = true;
    let d = driver(&lvm, options(LvmType::Default, VolumeClear::None)).await;
    let v = volume(0);
    let err = d
        .manage_existing_get_size(&v, &ManageRef(json!({"source-id": "x"})))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Manage existing volume failed due to invalid backend reference {'source-id': 'x'}: Reference must contain source-name element."
    );
    assert_eq!(err.kind(), clinker_types::ErrorKind::InvalidInput);
    for missing in ["nothing", "cinder-volumes-pool"] {
        let err = d
            .manage_existing(&v, &ManageRef(json!({ "source-name": missing })))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Manage existing volume failed due to invalid backend reference {{'source-name': '{missing}'}}: Specified logical volume does not exist."
            )
        );
    }
    assert!(lvm.changes().is_empty());
}

#[tokio::test]
async fn manage_existing_snapshot_renames_to_the_escaped_name() {
    let v = volume(1);
    let lvm = Lvm::new(10, vec![lv(&v.name, 1)]);
    let d = driver(&lvm, options(LvmType::Default, VolumeClear::None)).await;
    let old = SnapshotSpec::new(SnapshotId::new_random(), v.clone(), 1);
    d.create_snapshot(&old).await.unwrap();
    // Unmanaging leaves the LV under its escaped name.
    let left = d.unmanage_snapshot(&old).await.unwrap();
    assert_eq!(left, format!("_{}", old.name));
    lvm.fake.clear_calls();
    let new = SnapshotSpec::new(SnapshotId::new_random(), v.clone(), 1);
    let reference = ManageRef(json!(left));
    assert_eq!(
        d.manage_existing_snapshot_get_size(&new, &reference)
            .await
            .unwrap(),
        1
    );
    d.manage_existing_snapshot(&new, &reference).await.unwrap();
    assert_eq!(
        lvm.changes(),
        [format!(
            "env LC_ALL=C lvrename cinder-volumes {left} _{}",
            new.name
        )]
    );
}

#[tokio::test]
async fn manageable_lists_split_volumes_and_snapshots() {
    let managed = volume(1);
    let lvm = Lvm::new(
        20,
        vec![
            lv(&managed.name, 1),
            lv("legacy", 3),
            Lv {
                open: true,
                ..lv("busy", 1)
            },
            lv("_wipe-volume-x", 1),
        ],
    );
    let d = driver(&lvm, options(LvmType::Default, VolumeClear::None)).await;
    let snap = SnapshotSpec::new(SnapshotId::new_random(), managed.clone(), 1);
    d.create_snapshot(&snap).await.unwrap();
    let ids = std::collections::HashSet::from([managed.id.to_string()]);
    let mut volumes = d.get_manageable_volumes(&ids).await.unwrap();
    volumes.sort_by_key(|e| e.reference["source-name"].as_str().unwrap().to_owned());
    let summary: Vec<(String, i64, bool, Option<String>)> = volumes
        .iter()
        .map(|e| {
            (
                e.reference["source-name"].as_str().unwrap().to_owned(),
                e.size,
                e.safe_to_manage,
                e.reason_not_safe.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "busy".to_owned(),
                1,
                false,
                Some("volume in use".to_owned())
            ),
            ("legacy".to_owned(), 3, true, None),
            (
                managed.name.clone(),
                1,
                false,
                Some("already managed".to_owned())
            ),
        ]
    );
    assert_eq!(volumes[2].cinder_id, Some(managed.id.to_string()));
    let snapshots = d.get_manageable_snapshots(&ids).await.unwrap();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(
        snapshots[0].reference,
        json!({"source-name": format!("_{}", snap.name)})
    );
    assert!(
        snapshots[0].safe_to_manage,
        "its id is no managed snapshot's"
    );
    assert_eq!(
        snapshots[0].source_reference,
        Some(json!({"source-name": managed.name}))
    );
}
