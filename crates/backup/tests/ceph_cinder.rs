//! Cinder 29's own Ceph backup driver and Clinker's on one real cluster,
//! each restoring and deleting what the other wrote: Clinker's full and
//! incremental backups of a file volume restore byte for byte through
//! Cinder's driver (with the volume metadata Clinker stored), Cinder's
//! full copy restores through Clinker's, each side deletes the other's
//! backups, and the pool is empty at the end.
//!
//! Runs with `CLINKER_SYSTEM_TESTS=1` or `CI=true`; needs Ceph
//! (`scripts/install-ceph.sh`) and Cinder 29's venv with the Ceph bindings
//! (`scripts/install-cinder29.sh`), whose absence fails it under CI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clinker_backup::{
    BackupRecord, CephBackupDriver, CephBackupRequest, Control, RestoreTarget, VolumeData,
};
use clinker_config::CephBackupOptions;
use clinker_exec::HostRunner;
use clinker_testkit::ceph::Ceph;
use clinker_testkit::env::unmet;
use clinker_testkit::files::{Patches, assert_holds, write_at};
use rand::RngCore;
use serde_json::Value;

const TEST: &str = "the Ceph backup cross-compatibility test";
const GIB: u64 = 1 << 30;
const VOLUME: &str = "11111111-2222-4333-8444-555555555555";

/// Cinder 29's Python, when it can import cinder, rados and rbd.
fn cinder_python() -> Option<PathBuf> {
    let venv = std::env::var_os("CLINKER_CINDER_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/clinker-cinder29"))
        })?;
    let python = venv.join("bin/python");
    let imports = std::process::Command::new(&python)
        .args(["-c", "import cinder.backup.drivers.ceph, rados, rbd"])
        .output();
    match imports {
        Ok(out) if out.status.success() => Some(python),
        _ => {
            unmet(
                TEST,
                "Cinder 29's venv cannot import cinder, rados and rbd",
                "scripts/install-cinder29.sh",
            );
            None
        }
    }
}

struct Cinder<'a> {
    python: PathBuf,
    ceph: &'a Ceph,
}

impl Cinder<'_> {
    /// Runs Cinder's driver (`op` on backup `backup_id` of the volume).
    fn run(&self, op: &str, backup_id: &str, extra: &[&str]) -> Value {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cinder-ceph-backup.py");
        let conf = self.ceph.conf();
        let out = std::process::Command::new(&self.python)
            .arg(script)
            .arg(op)
            .args([
                "--conf",
                conf.to_str().unwrap(),
                "--user",
                "cinder",
                "--pool",
                "backups",
            ])
            .args(["--volume-id", VOLUME, "--backup-id", backup_id])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cinder's ceph driver {op}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
    }
}

fn random_patches(at: &[(u64, usize)]) -> Patches {
    at.iter()
        .map(|(offset, len)| {
            let mut data = vec![0u8; *len];
            rand::rng().fill_bytes(&mut data);
            (*offset, data)
        })
        .collect()
}

/// A zeroed (sparse) volume file of 1 GiB.
fn volume_file(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path).unwrap().set_len(GIB).unwrap();
    path
}

fn record(id: &str, service_metadata: &str) -> BackupRecord {
    BackupRecord {
        id: id.into(),
        container: "backups".into(),
        service_metadata: service_metadata.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cinder_and_clinker_restore_and_delete_each_others_ceph_backups() {
    let scratch = tempfile::tempdir().unwrap();
    let Some(ceph) = Ceph::start(TEST, scratch.path().join("ceph"), &["backups"]) else {
        return;
    };
    let Some(python) = cinder_python() else {
        return;
    };
    let cinder = Cinder {
        python,
        ceph: &ceph,
    };
    let options = CephBackupOptions {
        conf: ceph.conf(),
        user: "cinder".into(),
        chunk_size: 4 << 20,
        pool: "backups".into(),
        stripe_unit: 0,
        stripe_count: 0,
        image_journals: false,
        max_snapshots: 0,
        restore_discard_excess_bytes: true,
    };
    let clinker = CephBackupDriver::new(&options, Arc::new(HostRunner::new()));
    let source = volume_file(scratch.path(), "source");
    let at_full = random_patches(&[(0, 3 << 20), (GIB - (1 << 20), 1 << 20)]);
    for (offset, data) in &at_full {
        write_at(&source, *offset, data);
    }

    // Clinker: a full backup, about 1 % changed, an incremental one.
    let meta = r#"{"version": 2, "volume-metadata": {"made-by": "clinker"}}"#;
    let backup = async |id: &str, parent: Option<BackupRecord>| {
        let prepared = clinker
            .prepare_backup(CephBackupRequest {
                backup_id: id.into(),
                volume_id: VOLUME.into(),
                volume_size_gb: 1,
                container: None,
                parent,
                volume_meta: Some(meta.into()),
            })
            .unwrap();
        clinker
            .run_backup(
                &prepared,
                &VolumeData::Local(source.clone()),
                &Control::default(),
            )
            .await
            .unwrap();
        record(id, &prepared.service_metadata)
    };
    let full = backup("aaaaaaaa-0000-4000-8000-000000000001", None).await;
    let changes = random_patches(&[(5 << 22, 32 << 10), (100 << 22, 4096)]);
    for (offset, data) in &changes {
        write_at(&source, *offset, data);
    }
    let mut at_incr = at_full.clone();
    at_incr.extend(changes);
    let incr = backup("aaaaaaaa-0000-4000-8000-000000000002", Some(full.clone())).await;

    // Cinder restores each into a new volume, metadata included.
    for (b, patches, name) in [(&full, &at_full, "full"), (&incr, &at_incr, "incremental")] {
        let target = volume_file(scratch.path(), &format!("cinder-restored-{name}"));
        let restored = cinder.run(
            "restore",
            &b.id,
            &[
                "--container",
                "backups",
                "--service-metadata",
                &b.service_metadata,
                "--file",
                target.to_str().unwrap(),
                "--new",
            ],
        );
        assert_holds(
            &target,
            GIB,
            patches,
            &format!("Clinker's {name} backup restored by Cinder"),
        );
        assert_eq!(restored["metadata"], meta, "{name}");
        std::fs::remove_file(target).unwrap();
    }

    // Cinder's own backup of the volume (a full copy, no snapshot, no
    // service_metadata) restores through Clinker, onto a volume holding
    // other data.
    let cinder_id = "cccccccc-0000-4000-8000-000000000003";
    let made = cinder.run("backup", cinder_id, &["--file", source.to_str().unwrap()]);
    assert_eq!(made["container"], "backups", "{made}");
    let cinder_record = record(cinder_id, made["service_metadata"].as_str().unwrap_or(""));
    let target = volume_file(scratch.path(), "clinker-restored");
    write_at(&target, 7 << 20, &[0xee; 4096]);
    let outcome = clinker
        .restore_backup(
            &cinder_record,
            VOLUME,
            &RestoreTarget {
                volume_id: "target".into(),
                data: VolumeData::Local(target.clone()),
                size_gb: 1,
                is_new: false,
            },
            &Control::default(),
        )
        .await
        .unwrap();
    assert_holds(
        &target,
        GIB,
        &at_incr,
        "Cinder's backup restored by Clinker",
    );
    let cinder_meta: Value = serde_json::from_str(&outcome.volume_meta[0]).unwrap();
    assert_eq!(cinder_meta["volume-metadata"]["made-by"], "cinder");

    // Each deletes the other's: Cinder the incremental then the full
    // backup (the shared base goes with the last snapshot), Clinker
    // Cinder's copy.
    for b in [&incr, &full] {
        cinder.run(
            "delete",
            &b.id,
            &[
                "--container",
                "backups",
                "--service-metadata",
                &b.service_metadata,
            ],
        );
    }
    assert_eq!(
        clinker.delete_backup(&cinder_record, VOLUME).await.unwrap(),
        2
    );
    assert_eq!(ceph.leftover_objects("backups"), Vec::<String>::new());
}
