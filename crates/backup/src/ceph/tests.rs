//! The driver's exact `rbd` / `rados` command lines and the diff streams
//! it feeds `import-diff`, against the scripted `FakeRunner` (the real
//! cluster is exercised by `bin/clinker/tests/ceph_backup.rs`).

use std::sync::Arc;

use clinker_config::CephBackupOptions;
use clinker_exec::{FakeRunner, Output};
use serde_json::json;

use super::*;

const B: &str = "rbd --id backup --conf /etc/ceph/backup.conf";
const VOL: &str = "4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1";
const FULL: &str = "0b9c5b3e-3f0e-4f8a-9d8e-1d2c3b4a5f60";
const INCR: &str = "7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6";

fn options() -> CephBackupOptions {
    CephBackupOptions {
        conf: "/etc/ceph/backup.conf".into(),
        user: "backup".into(),
        chunk_size: 128 << 20,
        pool: "backups".into(),
        stripe_unit: 0,
        stripe_count: 0,
        image_journals: false,
        max_snapshots: 0,
        restore_discard_excess_bytes: true,
    }
}

fn driver(runner: &FakeRunner) -> CephBackupDriver {
    CephBackupDriver::new(&options(), Arc::new(runner.clone()))
}

fn rbd_volume() -> VolumeData {
    let data = json!({
        "name": format!("volumes/volume-{VOL}"), "hosts": ["127.0.0.1"], "ports": ["6789"],
        "cluster_name": "ceph", "auth_enabled": true, "auth_username": "cinder",
    });
    VolumeData::Rbd(
        RbdVolume::from_connection(data.as_object().unwrap(), "/etc/ceph/ceph.conf".as_ref())
            .unwrap(),
    )
}

const S: &str = "rbd --id cinder --cluster ceph --conf /etc/ceph/ceph.conf -m 127.0.0.1:6789";

fn request(backup_id: &str, parent: Option<BackupRecord>) -> CephBackupRequest {
    CephBackupRequest {
        backup_id: backup_id.into(),
        volume_id: VOL.into(),
        volume_size_gb: 1,
        container: None,
        parent,
        volume_meta: Some(r#"{"version": 2}"#.into()),
    }
}

fn full_record() -> BackupRecord {
    BackupRecord {
        id: FULL.into(),
        container: "backups".into(),
        service_metadata: format!(r#"{{"base": "volume-{VOL}.backup.{FULL}"}}"#),
    }
}

/// Every call with its snapshot timestamp replaced by `<t>`.
fn calls(runner: &FakeRunner) -> Vec<String> {
    runner
        .calls()
        .into_iter()
        .map(|c| {
            c.split(' ')
                .map(|word| match word.find(".snap.") {
                    Some(at) => format!("{}.snap.<t>", &word[..at]),
                    None => word.to_owned(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[tokio::test]
async fn full_backup_of_an_rbd_volume_is_a_snapshot_and_a_diff() {
    let runner = FakeRunner::new();
    let d = driver(&runner);
    let prepared = d.prepare_backup(request(FULL, None)).unwrap();
    assert_eq!(prepared.container, "backups");
    assert_eq!(prepared.service_metadata, full_record().service_metadata);
    d.run_backup(&prepared, &rbd_volume(), &Control::default())
        .await
        .unwrap();
    let base = format!("backups/volume-{VOL}.backup.{FULL}");
    let source = format!("volumes/volume-{VOL}@backup.{FULL}.snap.<t>");
    assert_eq!(
        calls(&runner),
        [
            format!(
                "{B} create --no-progress --size 1024M --image-format 2 --image-feature \
                 layering,exclusive-lock,object-map,fast-diff {base}"
            ),
            format!("{S} snap create --no-progress {source}"),
            format!("{S} export-diff --no-progress {source} -"),
            format!("{B} import-diff --no-progress - {base}"),
            format!(
                "rados --id backup --conf /etc/ceph/backup.conf --pool backups put backup.{FULL}.meta -"
            ),
        ]
    );
    let meta = runner.commands().pop().unwrap();
    assert_eq!(meta.stdin.as_deref(), Some(&br#"{"version": 2}"#[..]));
}

#[tokio::test]
async fn incremental_backup_of_an_rbd_volume_starts_from_the_parents_snapshot() {
    let runner = FakeRunner::new();
    let parent_snap = format!("backup.{FULL}.snap.1733590000.000001");
    let base = format!("backups/volume-{VOL}.backup.{FULL}");
    runner.on(
        &format!("{B} snap ls --format json {base}"),
        Output::ok(json!([{"id": 4, "name": parent_snap, "size": 1u64 << 30}]).to_string()),
    );
    runner.on(
        &format!("{S} snap ls --format json volumes/volume-{VOL}"),
        Output::ok(json!([{"id": 9, "name": parent_snap, "size": 1u64 << 30}]).to_string()),
    );
    let d = driver(&runner);
    let prepared = d
        .prepare_backup(request(INCR, Some(full_record())))
        .unwrap();
    // The incremental shares its parent's base.
    assert_eq!(prepared.service_metadata, full_record().service_metadata);
    d.run_backup(&prepared, &rbd_volume(), &Control::default())
        .await
        .unwrap();
    let source = format!("volumes/volume-{VOL}@backup.{INCR}.snap.<t>");
    assert_eq!(
        calls(&runner)[..5],
        [
            format!("{B} snap ls --format json {base}"),
            format!("{S} snap create --no-progress {source}"),
            format!("{S} snap ls --format json volumes/volume-{VOL}"),
            format!("{S} export-diff --no-progress --from-snap backup.{FULL}.snap.<t> {source} -"),
            format!("{B} import-diff --no-progress - {base}"),
        ]
    );
}

#[tokio::test]
async fn a_failed_transfer_removes_the_new_snapshot_and_base() {
    let runner = FakeRunner::new();
    runner.on(
        &format!("{B} import-diff"),
        Output::failed(28, "rbd: import-diff failed: (28) No space left on device"),
    );
    runner.on(
        &format!("{B} info --format json"),
        Output::ok(json!({"size": 1u64 << 30}).to_string()),
    );
    runner.on(&format!("{B} snap ls --format json"), Output::ok("[]"));
    let d = driver(&runner);
    let prepared = d.prepare_backup(request(FULL, None)).unwrap();
    let err = d
        .run_backup(&prepared, &rbd_volume(), &Control::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    let base = format!("backups/volume-{VOL}.backup.{FULL}");
    let calls = calls(&runner);
    assert!(
        calls.contains(&format!(
            "{S} snap rm --no-progress volumes/volume-{VOL}@backup.{FULL}.snap.<t>"
        )),
        "{calls:#?}"
    );
    assert!(
        calls.contains(&format!("{B} rm --no-progress {base}")),
        "{calls:#?}"
    );
}

/// A parsed diff stream: from, to, size, and (tag, offset, length) records.
type Diff = (Option<String>, Option<String>, u64, Vec<(u8, u64, u64)>);

/// Parses a diff stream.
fn parse_diff(bytes: &[u8]) -> Diff {
    let mut rest = bytes.strip_prefix(b"rbd diff v1\n").unwrap();
    let (mut from, mut to, mut size, mut records) = (None, None, 0, Vec::new());
    let u64_at = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().unwrap());
    loop {
        let (tag, tail) = rest.split_first().unwrap();
        rest = tail;
        match tag {
            b'f' | b't' => {
                let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
                let name = String::from_utf8(rest[4..4 + len].to_vec()).unwrap();
                rest = &rest[4 + len..];
                if *tag == b'f' {
                    from = Some(name);
                } else {
                    to = Some(name);
                }
            }
            b's' => {
                size = u64_at(rest);
                rest = &rest[8..];
            }
            b'w' | b'z' => {
                let (offset, len) = (u64_at(rest), u64_at(&rest[8..]));
                rest = &rest[16..];
                if *tag == b'w' {
                    rest = &rest[len as usize..];
                }
                records.push((*tag, offset, len));
            }
            b'e' => {
                assert!(rest.is_empty());
                return (from, to, size, records);
            }
            other => panic!("unexpected tag {other}"),
        }
    }
}

#[tokio::test]
async fn a_local_volume_is_written_as_a_diff_stream() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("volume");
    // 12 MiB: data in the first and third 4 MiB blocks.
    let mut data = vec![0u8; 12 << 20];
    data[10] = 1;
    data[(8 << 20) + 5] = 2;
    std::fs::write(&path, &data).unwrap();
    let mut options = options();
    options.chunk_size = 4 << 20;
    let runner = FakeRunner::new();
    let d = CephBackupDriver::new(&options, Arc::new(runner.clone()));
    let mut req = request(FULL, None);
    req.volume_meta = None;
    let prepared = d.prepare_backup(req).unwrap();
    d.run_backup(
        &prepared,
        &VolumeData::Local(path.clone()),
        &Control::default(),
    )
    .await
    .unwrap();
    let import = runner
        .commands()
        .into_iter()
        .find(|c| c.args.contains(&"import-diff".to_owned()))
        .unwrap();
    let (from, to, size, records) = parse_diff(import.stdin.as_deref().unwrap());
    assert_eq!(from, None);
    assert!(to.unwrap().starts_with(&format!("backup.{FULL}.snap.")));
    // The volume's size (1 GiB), not the file's: the rest reads as zeros.
    assert_eq!(size, 1 << 30);
    assert_eq!(records, [(b'w', 0, 4 << 20), (b'w', 8 << 20, 4 << 20)]);

    // The incremental compares with the parent's snapshot as exported.
    let parent_snap = format!("backup.{FULL}.snap.1733590000.000001");
    let base = format!("backups/volume-{VOL}.backup.{FULL}");
    let runner = FakeRunner::new();
    runner.on(
        &format!("{B} snap ls --format json {base}"),
        Output::ok(json!([{"id": 4, "name": parent_snap, "size": 12u64 << 20}]).to_string()),
    );
    // The parent as exported: ASCII, as the fake's output is text.
    let mut parent = vec![0u8; 12 << 20];
    parent[10] = 1;
    parent[(4 << 20) + 7] = b'x';
    runner.on(
        &format!("{B} export --no-progress {base}@{parent_snap} -"),
        Output::ok(String::from_utf8(parent).unwrap()),
    );
    let d = CephBackupDriver::new(&options, Arc::new(runner.clone()));
    let mut req = request(INCR, Some(full_record()));
    req.volume_meta = None;
    let prepared = d.prepare_backup(req).unwrap();
    d.run_backup(&prepared, &VolumeData::Local(path), &Control::default())
        .await
        .unwrap();
    let import = runner
        .commands()
        .into_iter()
        .find(|c| c.args.contains(&"import-diff".to_owned()))
        .unwrap();
    let (from, _, _, records) = parse_diff(import.stdin.as_deref().unwrap());
    assert_eq!(from.as_deref(), Some(parent_snap.as_str()));
    // Block 0 is unchanged, block 1 became zeros, block 2 is new.
    assert_eq!(
        records,
        [(b'z', 4 << 20, 4 << 20), (b'w', 8 << 20, 4 << 20)]
    );
    assert!(
        !runner.calls().iter().any(|c| c.contains(" create ")),
        "an incremental backup made a base image"
    );
}

#[tokio::test]
async fn delete_removes_the_snapshot_then_the_empty_base_then_the_metadata() {
    let runner = FakeRunner::new();
    let base = format!("backups/volume-{VOL}.backup.{FULL}");
    let snap = format!("backup.{FULL}.snap.1733590000.000001");
    runner.on(
        &format!("{B} info --format json {base}"),
        Output::ok(json!({"size": 1u64 << 30}).to_string()),
    );
    runner.on_times(
        &format!("{B} snap ls --format json {base}"),
        1,
        Output::ok(json!([{"id": 4, "name": snap, "size": 1u64 << 30}]).to_string()),
    );
    runner.on(
        &format!("{B} snap ls --format json {base}"),
        Output::ok("[]"),
    );
    let removed = driver(&runner)
        .delete_backup(&full_record(), VOL)
        .await
        .unwrap();
    assert_eq!(removed, 3);
    assert_eq!(
        runner.calls(),
        [
            format!("{B} info --format json {base}"),
            format!("{B} snap ls --format json {base}"),
            format!("{B} snap rm --no-progress {base}@{snap}"),
            format!("{B} snap ls --format json {base}"),
            format!("{B} rm --no-progress {base}"),
            format!(
                "rados --id backup --conf /etc/ceph/backup.conf --pool backups rm backup.{FULL}.meta"
            ),
        ]
    );
}

#[tokio::test]
async fn delete_keeps_a_base_other_backups_still_use() {
    let runner = FakeRunner::new();
    let base = format!("backups/volume-{VOL}.backup.{FULL}");
    runner.on(
        &format!("{B} info --format json {base}"),
        Output::ok(json!({"size": 1u64 << 30}).to_string()),
    );
    runner.on(
        &format!("{B} snap ls --format json {base}"),
        Output::ok(
            json!([{"id": 4, "name": format!("backup.{FULL}.snap.1.5"), "size": 1u64 << 30}])
                .to_string(),
        ),
    );
    // Deleting the incremental: its snapshot is gone already, the full
    // backup's stays, and so does the base.
    let record = BackupRecord {
        id: INCR.into(),
        ..full_record()
    };
    driver(&runner).delete_backup(&record, VOL).await.unwrap();
    assert!(
        !runner
            .calls()
            .iter()
            .any(|c| c.contains(" rm --no-progress backups/")),
        "{:#?}",
        runner.calls()
    );
}

#[tokio::test]
async fn cinders_snapshotless_full_copy_restores_into_a_local_volume() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("volume");
    std::fs::write(&path, vec![b'?'; 8 << 20]).unwrap();
    let runner = FakeRunner::new();
    // No service_metadata: Cinder's full copy of a non-RBD volume, found
    // under its per-backup name, read from its head.
    let image = format!("backups/volume-{VOL}.backup.{FULL}");
    runner.on(
        &format!("{B} info --format json"),
        Output::failed(2, "rbd: error opening image: (2) No such file or directory"),
    );
    runner.on(
        &format!("{B} info --format json {image}"),
        Output::ok(json!({"size": 6u64 << 20}).to_string()),
    );
    runner.on(
        &format!("{B} snap ls --format json {image}"),
        Output::ok("[]"),
    );
    let mut backup = vec![b'a'; 6 << 20];
    backup[..(1 << 20)].fill(0);
    runner.on(
        &format!("{B} export --no-progress {image} -"),
        Output::ok(String::from_utf8(backup.clone()).unwrap()),
    );
    runner.on("rados", Output::failed(2, "No such file or directory"));
    let record = BackupRecord {
        service_metadata: String::new(),
        ..full_record()
    };
    let mut options = options();
    options.chunk_size = 1 << 20;
    let d = CephBackupDriver::new(&options, Arc::new(runner.clone()));
    let target = RestoreTarget {
        volume_id: "other".into(),
        data: VolumeData::Local(path.clone()),
        size_gb: 1,
        is_new: true,
    };
    let outcome = d
        .restore_backup(&record, VOL, &target, &Control::default())
        .await
        .unwrap();
    assert!(outcome.volume_meta.is_empty());
    // A new volume keeps its holes: the zero MiB is not written (the
    // '?' left there shows it), nothing after the backup's end either.
    let restored = std::fs::read(&path).unwrap();
    assert_eq!(restored.len(), 8 << 20);
    assert!(restored[..(1 << 20)].iter().all(|b| *b == b'?'));
    assert_eq!(&restored[(1 << 20)..backup.len()], &backup[(1 << 20)..]);
    assert!(restored[backup.len()..].iter().all(|b| *b == b'?'));
}
