//! The file driver against a real directory and the real `cp`.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use clinker_config::{
    BackendConfig, DriverConfig, FileDriverOptions, ReflinkMode, TargetConfig, TargetHelperKind,
};
use clinker_drivers::file::FileDriver;
use clinker_drivers::{DriverError, GIB, SnapshotSpec, VolumeDriver, VolumeSpec};
use clinker_exec::{FakeRunner, HostRunner, Output};
use clinker_testkit::config::{backend as backend_config, no_target};
use clinker_testkit::files::{read_at, write_at as write_pattern};
use clinker_types::{SnapshotId, VolumeId};

fn backend(
    dir: &std::path::Path,
    capacity_gb: f64,
    reflink: ReflinkMode,
) -> (BackendConfig, FileDriverOptions) {
    let options = FileDriverOptions {
        volumes_dir: dir.to_path_buf(),
        capacity_gb,
        reflink,
    };
    let driver = DriverConfig::File(options.clone());
    (backend_config("file", driver, no_target(dir)), options)
}

async fn driver(dir: &std::path::Path, capacity_gb: f64) -> FileDriver {
    let (b, o) = backend(dir, capacity_gb, ReflinkMode::Auto);
    let d = FileDriver::new(&b, o, Arc::new(HostRunner::new()));
    d.do_setup().await.unwrap();
    d.check_for_setup_error().await.unwrap();
    d
}

#[tokio::test]
async fn volumes_snapshots_and_clones_keep_data_and_holes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path(), 0.0).await;
    let volume = VolumeSpec::new(VolumeId::new_random(), 1);
    let update = d.create_volume(&volume).await.unwrap();
    let path = d.path_of(&volume.name).unwrap();
    assert_eq!(
        update.provider_location.as_deref(),
        Some(path.to_str().unwrap())
    );
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), GIB);
    assert!(meta.blocks() * 512 < 1024 * 1024, "a new volume is sparse");
    // Idempotent create (a redelivered message).
    d.create_volume(&volume).await.unwrap();

    write_pattern(&path, 512 * 1024 * 1024, b"clinker-pattern");
    let snapshot = SnapshotSpec::new(SnapshotId::new_random(), volume.clone(), 1);
    d.create_snapshot(&snapshot).await.unwrap();
    // Writing to the volume after the snapshot does not change the snapshot.
    write_pattern(&path, 512 * 1024 * 1024, b"overwritten-xxxx");

    let clone = VolumeSpec::new(VolumeId::new_random(), 2);
    d.create_volume_from_snapshot(&clone, &snapshot)
        .await
        .unwrap();
    let clone_path = d.path_of(&clone.name).unwrap();
    assert_eq!(
        read_at(&clone_path, 512 * 1024 * 1024, 15),
        b"clinker-pattern"
    );
    let meta = std::fs::metadata(&clone_path).unwrap();
    assert_eq!(meta.len(), 2 * GIB, "grown to the requested size");
    assert!(
        meta.blocks() * 512 < 16 * 1024 * 1024,
        "holes survive the copy"
    );

    let clone2 = VolumeSpec::new(VolumeId::new_random(), 1);
    d.create_cloned_volume(&clone2, &volume).await.unwrap();
    assert_eq!(
        read_at(&d.path_of(&clone2.name).unwrap(), 512 * 1024 * 1024, 16),
        b"overwritten-xxxx"
    );

    d.extend_volume(&volume, 3).await.unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 * GIB);

    let names = d.list_volume_names().await.unwrap().unwrap();
    assert_eq!(names.len(), 4);

    let stats = d.get_volume_stats().await.unwrap();
    let pool = &stats["pools"][0];
    assert_eq!(pool["pool_name"], "file");
    assert_eq!(pool["provisioned_capacity_gb"], 7.0);
    assert_eq!(pool["thin_provisioning_support"], true);
    assert_eq!(stats["storage_protocol"], "local");

    let info = d
        .initialize_connection(&volume, &Default::default())
        .await
        .unwrap();
    assert_eq!(info.driver_volume_type, "local");
    assert_eq!(info.data["device_path"], path.to_str().unwrap());

    d.delete_snapshot(&snapshot).await.unwrap();
    d.delete_volume(&volume).await.unwrap();
    d.delete_volume(&volume).await.unwrap();
    assert!(!path.exists());
    assert!(matches!(
        d.extend_volume(&volume, 5).await,
        Err(DriverError::NotFound(_))
    ));
}

#[tokio::test]
async fn fixed_capacity_is_a_thick_pool() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path(), 10.0).await;
    d.create_volume(&VolumeSpec::new(VolumeId::new_random(), 4))
        .await
        .unwrap();
    let stats = d.get_volume_stats().await.unwrap();
    let pool = &stats["pools"][0];
    assert_eq!(pool["total_capacity_gb"], 10.0);
    assert_eq!(pool["free_capacity_gb"], 6.0);
    assert_eq!(pool["thick_provisioning_support"], true);
    assert_eq!(pool["thin_provisioning_support"], false);
}

#[tokio::test]
async fn refuses_foreign_names_and_cleans_interrupted_copies() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(".tmp-volume-x"), b"partial").unwrap();
    let d = driver(tmp.path(), 0.0).await;
    assert!(
        !tmp.path().join(".tmp-volume-x").exists(),
        "do_setup sweeps interrupted copies"
    );
    let mut evil = VolumeSpec::new(VolumeId::new_random(), 1);
    evil.name = "../../etc/passwd".into();
    assert!(matches!(
        d.create_volume(&evil).await,
        Err(DriverError::InvalidInput(_))
    ));
    assert!(matches!(
        d.delete_volume(&evil).await,
        Err(DriverError::InvalidInput(_))
    ));
}

#[tokio::test]
async fn copies_use_cp_with_the_configured_reflink_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, o) = backend(tmp.path(), 0.0, ReflinkMode::Always);
    let fake = FakeRunner::new();
    fake.on(
        "cp",
        Output::failed(1, "cp: failed to clone: Operation not supported"),
    );
    let d = FileDriver::new(&b, o, Arc::new(fake.clone()));
    d.do_setup().await.unwrap();
    let volume = VolumeSpec::new(VolumeId::new_random(), 1);
    let snapshot = SnapshotSpec::new(SnapshotId::new_random(), volume.clone(), 1);
    let err = d.create_snapshot(&snapshot).await.unwrap_err();
    assert!(matches!(err, DriverError::Backend(_)), "{err:?}");
    let calls = fake.calls();
    assert_eq!(
        calls,
        vec![format!(
            "cp --reflink=always --sparse=always -- {} {}",
            tmp.path().join(&volume.name).display(),
            tmp.path().join(format!(".tmp-{}", snapshot.name)).display()
        )]
    );
    assert!(
        !tmp.path().join(&snapshot.name).exists(),
        "a failed copy leaves no object"
    );
}

#[tokio::test]
async fn unwritable_directory_fails_the_setup_check() {
    let (b, o) = backend(
        std::path::Path::new("/proc/clinker-nowhere"),
        0.0,
        ReflinkMode::Auto,
    );
    let d = FileDriver::new(&b, o, Arc::new(HostRunner::new()));
    assert!(d.do_setup().await.is_err());
    assert!(matches!(
        d.check_for_setup_error().await,
        Err(DriverError::Unavailable(_))
    ));
}

#[tokio::test]
async fn exports_through_a_target_helper_when_one_is_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut b, _) = backend(&tmp.path().join("vols"), 0.0, ReflinkMode::Auto);
    b.target = TargetConfig::with_defaults(TargetHelperKind::Fake, tmp.path().join("targets"));
    let d = clinker_drivers::build_driver(&b, Arc::new(HostRunner::new())).unwrap();
    d.do_setup().await.unwrap();
    d.check_for_setup_error().await.unwrap();
    let mut volume = VolumeSpec::new(VolumeId::new_random(), 1);
    let created = d.create_volume(&volume).await.unwrap();
    assert_eq!(
        created.provider_location, None,
        "the export sets provider_location"
    );
    let connector = serde_json::json!({"initiator": "iqn.1993-08.org.debian:01:c1"})
        .as_object()
        .unwrap()
        .clone();
    d.validate_connector(&connector).unwrap();
    assert!(d.validate_connector(&serde_json::Map::new()).is_err());
    let export = d.create_export(&volume, &connector).await.unwrap();
    let iqn = format!("iqn.2010-10.org.openstack:{}", volume.name);
    assert_eq!(
        export.provider_location.as_deref(),
        Some(format!("127.0.0.1:3260,0 {iqn} 0").as_str())
    );
    volume.provider_location = export.provider_location;
    volume.provider_auth = export.provider_auth;
    let info = d.initialize_connection(&volume, &connector).await.unwrap();
    assert_eq!(info.driver_volume_type, "iscsi");
    assert_eq!(info.data["target_iqn"], iqn);
    assert_eq!(info.data["auth_method"], "CHAP");
    let stats = d.get_volume_stats().await.unwrap();
    assert_eq!(stats["storage_protocol"], "iSCSI");
    d.extend_volume(&volume, 2).await.unwrap();
    d.terminate_connection(&volume, Some(&connector))
        .await
        .unwrap();
    d.remove_export(&volume).await.unwrap();
    assert!(
        d.reconcile_exports(&[volume.clone()])
            .await
            .unwrap()
            .is_some()
    );
    d.delete_volume(&volume).await.unwrap();
    // A missing file cannot be exported.
    assert!(matches!(
        d.create_export(&volume, &connector).await,
        Err(DriverError::NotFound(_))
    ));
}

#[tokio::test]
async fn revert_copies_the_snapshot_back_and_keeps_the_size() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path(), 0.0).await;
    let volume = VolumeSpec::new(VolumeId::new_random(), 1);
    d.create_volume(&volume).await.unwrap();
    let path = d.path_of(&volume.name).unwrap();
    write_pattern(&path, 4096, b"before-snapshot");
    let snapshot = SnapshotSpec::new(SnapshotId::new_random(), volume.clone(), 1);
    d.create_snapshot(&snapshot).await.unwrap();
    write_pattern(&path, 4096, b"after--snapshot");
    write_pattern(&path, 700 * 1024 * 1024, b"late-write");

    d.revert_to_snapshot(&volume, &snapshot).await.unwrap();
    assert_eq!(read_at(&path, 4096, 15), b"before-snapshot");
    assert_eq!(read_at(&path, 700 * 1024 * 1024, 10), vec![0; 10]);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), GIB);
    // The snapshot is still there, unchanged, and no temporary is left.
    let snapshot_path = d.path_of(&snapshot.name).unwrap();
    assert_eq!(read_at(&snapshot_path, 4096, 15), b"before-snapshot");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty());

    // A missing snapshot file is NotFound and leaves the volume alone.
    let gone = SnapshotSpec::new(SnapshotId::new_random(), volume.clone(), 1);
    write_pattern(&path, 4096, b"kept-after-fail");
    assert!(matches!(
        d.revert_to_snapshot(&volume, &gone).await,
        Err(DriverError::NotFound(_))
    ));
    assert_eq!(read_at(&path, 4096, 15), b"kept-after-fail");
}

#[tokio::test]
async fn a_migrated_volume_takes_its_name_back_without_replacing_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path(), 0.0).await;
    let volume = VolumeSpec::new(VolumeId::new_random(), 1);
    let temporary = VolumeSpec::new(VolumeId::new_random(), 1);
    d.create_volume(&temporary).await.unwrap();
    let temp_path = d.path_of(&temporary.name).unwrap();
    write_pattern(&temp_path, 4096, b"migrated-data");

    let update = d.update_migrated_volume(&volume, &temporary).await.unwrap();
    let path = d.path_of(&volume.name).unwrap();
    assert_eq!(
        update.provider_location.as_deref(),
        Some(path.to_str().unwrap())
    );
    assert_eq!(read_at(&path, 4096, 13), b"migrated-data");
    assert!(!temp_path.exists());
    // A second run (after a crash) finds the rename done.
    d.update_migrated_volume(&volume, &temporary).await.unwrap();
    assert_eq!(read_at(&path, 4096, 13), b"migrated-data");

    // Another object of that name is never replaced.
    let other = VolumeSpec::new(VolumeId::new_random(), 1);
    d.create_volume(&other).await.unwrap();
    assert!(matches!(
        d.update_migrated_volume(&volume, &other).await,
        Err(DriverError::AlreadyExists(_))
    ));
    assert_eq!(read_at(&path, 4096, 13), b"migrated-data");
    assert!(d.path_of(&other.name).unwrap().exists());
    // Nothing to rename at all.
    let ghost = VolumeSpec::new(VolumeId::new_random(), 1);
    assert!(matches!(
        d.update_migrated_volume(&ghost, &VolumeSpec::new(VolumeId::new_random(), 1))
            .await,
        Err(DriverError::NotFound(_))
    ));
}

/// Unmanage leaves the file; managing it again under another id renames it
/// to the new volume's name with its data, and bad references change
/// nothing.
#[tokio::test]
async fn manage_renames_files_and_keeps_their_data() {
    use clinker_drivers::ManageRef;
    use serde_json::json;

    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path(), 0.0).await;
    let old = VolumeSpec::new(VolumeId::new_random(), 1);
    d.create_volume(&old).await.unwrap();
    let old_path = d.path_of(&old.name).unwrap();
    write_pattern(&old_path, 4096, b"managed-data");
    assert_eq!(d.unmanage(&old).await.unwrap(), old.name);
    assert!(old_path.exists(), "unmanage keeps the data");

    let mut new = VolumeSpec::new(VolumeId::new_random(), 0);
    let by_name = ManageRef(json!({"source-name": old.name}));
    new.size_gb = d.manage_existing_get_size(&new, &by_name).await.unwrap();
    assert_eq!(new.size_gb, 1);
    let update = d.manage_existing(&new, &by_name).await.unwrap();
    let new_path = d.path_of(&new.name).unwrap();
    assert_eq!(
        update.provider_location.as_deref(),
        Some(new_path.to_str().unwrap())
    );
    assert!(!old_path.exists());
    assert_eq!(read_at(&new_path, 4096, 12), b"managed-data");

    // A foreign file of 1.5 GiB by source-name: grown to 2 whole GiB.
    let foreign = tmp.path().join("legacy.img");
    std::fs::File::create(&foreign)
        .unwrap()
        .set_len(GIB + GIB / 2)
        .unwrap();
    let mut third = VolumeSpec::new(VolumeId::new_random(), 0);
    let legacy = ManageRef(json!({"source-name": "legacy.img"}));
    third.size_gb = d.manage_existing_get_size(&third, &legacy).await.unwrap();
    assert_eq!(third.size_gb, 2);
    d.manage_existing(&third, &legacy).await.unwrap();
    assert_eq!(
        std::fs::metadata(d.path_of(&third.name).unwrap())
            .unwrap()
            .len(),
        2 * GIB
    );

    // source-id names the driver's own file of that id.
    let fourth = VolumeSpec::new(VolumeId::new_random(), 1);
    let by_id = ManageRef(json!({"source-id": new.id.to_string()}));
    assert_eq!(
        d.manage_existing_get_size(&fourth, &by_id).await.unwrap(),
        1
    );

    // Bad references: Cinder's texts, nothing renamed.
    let before: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    for (reference, reason) in [
        (
            json!({"source-name": "absent"}),
            "Specified file does not exist.",
        ),
        (
            json!({"source-name": "../escape"}),
            "Specified file name is not a file of this backend.",
        ),
        (
            json!({"other": 1}),
            "Reference must contain source-id or source-name element.",
        ),
    ] {
        let reference = ManageRef(reference);
        let err = d.manage_existing(&fourth, &reference).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Manage existing volume failed due to invalid backend reference {}: {reason}",
                reference.display()
            )
        );
        assert!(matches!(err, DriverError::InvalidInput(_)));
    }
    std::fs::create_dir(tmp.path().join("adir")).unwrap();
    assert!(matches!(
        d.manage_existing_get_size(&fourth, &ManageRef(json!({"source-name": "adir"})))
            .await,
        Err(DriverError::InvalidInput(_))
    ));
    std::fs::remove_dir(tmp.path().join("adir")).unwrap();
    let after: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
}

#[tokio::test]
async fn manage_snapshots_and_list_manageable_files() {
    use clinker_drivers::ManageRef;
    use serde_json::json;

    let tmp = tempfile::tempdir().unwrap();
    let d = driver(tmp.path(), 0.0).await;
    let volume = VolumeSpec::new(VolumeId::new_random(), 1);
    d.create_volume(&volume).await.unwrap();
    let old = SnapshotSpec::new(SnapshotId::new_random(), volume.clone(), 1);
    d.create_snapshot(&old).await.unwrap();
    assert_eq!(d.unmanage_snapshot(&old).await.unwrap(), old.name);
    std::fs::write(tmp.path().join("loose"), b"x").unwrap();

    let managed = std::collections::HashSet::from([volume.id.to_string()]);
    let mut volumes = d.get_manageable_volumes(&managed).await.unwrap();
    volumes.sort_by_key(|e| e.reference["source-name"].as_str().unwrap().to_owned());
    assert_eq!(volumes.len(), 2, "{volumes:?}");
    assert_eq!(volumes[0].reference, json!({"source-name": "loose"}));
    assert!(volumes[0].safe_to_manage);
    assert_eq!(volumes[1].reference, json!({"source-name": volume.name}));
    assert_eq!(volumes[1].cinder_id, Some(volume.id.to_string()));
    assert!(!volumes[1].safe_to_manage);
    let snapshots = d.get_manageable_snapshots(&managed).await.unwrap();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].reference, json!({"source-name": old.name}));
    assert!(snapshots[0].safe_to_manage);

    let new = SnapshotSpec::new(SnapshotId::new_random(), volume.clone(), 0);
    let reference = ManageRef(json!({"source-name": old.name}));
    assert_eq!(
        d.manage_existing_snapshot_get_size(&new, &reference)
            .await
            .unwrap(),
        1
    );
    d.manage_existing_snapshot(&new, &reference).await.unwrap();
    assert!(d.path_of(&new.name).unwrap().exists());
    assert!(!d.path_of(&old.name).unwrap().exists());
    // The managed snapshot is an ordinary one: a volume can be made of it.
    let from = VolumeSpec::new(VolumeId::new_random(), 1);
    d.create_volume_from_snapshot(&from, &new).await.unwrap();
}
