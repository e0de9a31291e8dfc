//! The Ceph backup driver (`backup_driver = ceph`) against a real
//! single-node Ceph, for both kinds of source: an RBD volume (snapshots and
//! `export-diff | import-diff`) and a file volume (read by Clinker and
//! written as an RBD diff stream). Per kind: a full backup of random data,
//! about 1 % of the blocks changed, an incremental backup; each restored
//! to a new volume and the full one onto the original, byte for byte the
//! data at that backup's time; deletes in the right order leave the
//! `backups` pool empty, and deleted RBD volumes leave no snapshots or
//! trash behind.
//!
//! Runs with `CLINKER_SYSTEM_TESTS=1` or `CI=true` (missing Ceph tools are
//! then a failure); otherwise it is skipped with a message.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use clinker_testkit::ceph::Ceph;
use clinker_testkit::files::{Patches, assert_holds};
use common::Cluster;
use rand::RngCore;
use serde_json::{Value, json};

const GIB: u64 = 1 << 30;

fn random_patches(at: &[(u64, usize)]) -> Patches {
    at.iter()
        .map(|(offset, len)| {
            let mut data = vec![0u8; *len];
            rand::rng().fill_bytes(&mut data);
            (*offset, data)
        })
        .collect()
}

async fn wait_backup(c: &Cluster, id: &str, want: &str) -> Value {
    let every = clinker_testkit::poll::Every::ms(200, 600);
    c.wait_for_every(every, &format!("/backups/{id}"), |_, b| {
        let status = b["backup"]["status"].as_str();
        assert_ne!(status, Some("error"), "backup failed: {b}");
        status == Some(want)
    })
    .await["backup"]
        .clone()
}

async fn create_backup(c: &Cluster, body: Value) -> Value {
    let (status, made) = c.post("/backups", json!({ "backup": body })).await;
    assert_eq!(status, 202, "{made}");
    let id = made["backup"]["id"].as_str().unwrap().to_owned();
    wait_backup(c, &id, "available").await
}

/// Restores `backup` into `volume_id` (an existing volume) or a new one;
/// returns the volume.
async fn restore(c: &Cluster, backup: &str, volume_id: Option<&str>) -> String {
    let body = match volume_id {
        Some(v) => json!({"restore": {"volume_id": v}}),
        None => json!({"restore": {"name": "restored"}}),
    };
    let (status, restored) = c.post(&format!("/backups/{backup}/restore"), body).await;
    assert_eq!(status, 202, "{restored}");
    let volume = restored["restore"]["volume_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_backup(c, backup, "available").await;
    let v = c
        .wait_volume(&volume, |s| {
            s == Some("available") || s == Some("error_restoring")
        })
        .await;
    assert_eq!(v["status"], "available", "restore failed: {v}");
    volume
}

/// Where the test reads a volume of either kind.
struct Kind<'a> {
    ceph: &'a Ceph,
    c: &'a Cluster,
    scratch: &'a Path,
    rbd: bool,
}

impl Kind<'_> {
    fn name(&self) -> &'static str {
        if self.rbd { "ceph" } else { "local" }
    }

    fn write(&self, volume: &str, patches: &[(u64, Vec<u8>)]) {
        if self.rbd {
            self.ceph
                .write(&format!("volumes/volume-{volume}"), patches, self.scratch);
        } else {
            let path = self.c.volumes_dir().join(format!("volume-{volume}"));
            let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            for (offset, data) in patches {
                f.seek(SeekFrom::Start(*offset)).unwrap();
                f.write_all(data).unwrap();
            }
            f.sync_all().unwrap();
        }
    }

    fn assert_holds(&self, volume: &str, patches: &[(u64, Vec<u8>)], what: &str) {
        let file = if self.rbd {
            self.ceph
                .export_to_file(&format!("volumes/volume-{volume}"), self.scratch)
        } else {
            self.c.volumes_dir().join(format!("volume-{volume}"))
        };
        assert_holds(&file, GIB, patches, &format!("{} {what}", self.name()));
    }
}

impl Kind<'_> {
    /// Makes this kind the default type (restores make volumes too) and a
    /// 1 GiB volume of it with random data at the start, in the middle and
    /// at the end, the rest holes: its id and data.
    async fn source_volume(&self) -> (String, Patches) {
        let (status, body) = self
            .c
            .at("3.62")
            .put(
                "/default-types/admin",
                json!({"default_type": {"volume_type": self.name()}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let vol = self
            .c
            .available_volume(json!({"size": 1, "volume_type": self.name(), "name": "src"}))
            .await;
        let data = random_patches(&[
            (0, 6 << 20),
            (300 << 20, 1 << 20),
            (GIB - (1 << 20), 1 << 20),
        ]);
        self.write(&vol, &data);
        self.assert_holds(&vol, &data, "source");
        (vol, data)
    }

    /// Changes about 1 % of the volume's 4 MiB blocks; its data after.
    fn change(&self, vol: &str, before: &Patches) -> Patches {
        let changes =
            random_patches(&[(3 << 22, 32 << 10), (77 << 22, 32 << 10), (190 << 22, 4096)]);
        self.write(vol, &changes);
        let mut after = before.clone();
        after.extend(changes);
        after
    }
}

async fn backup_restore_delete(kind: &Kind<'_>) {
    let (c, ceph) = (kind.c, kind.ceph);
    let (vol, at_full) = kind.source_volume().await;

    let full = create_backup(c, json!({"volume_id": vol, "name": "full"})).await;
    let full_id = full["id"].as_str().unwrap().to_owned();
    assert_eq!(full["is_incremental"], false);
    assert_eq!(full["container"], "backups", "{full}");
    let base = format!("volume-{vol}.backup.{full_id}");
    assert_eq!(
        ceph.names(&["ls", "--format", "json", "backups"]),
        [base.as_str()]
    );
    let base_snaps = ceph.names(&["snap", "ls", "--format", "json", &format!("backups/{base}")]);
    assert_eq!(base_snaps.len(), 1, "{base_snaps:?}");
    assert!(base_snaps[0].starts_with(&format!("backup.{full_id}.snap.")));
    let source_snaps = |ceph: &Ceph| {
        ceph.names(&[
            "snap",
            "ls",
            "--format",
            "json",
            &format!("volumes/volume-{vol}"),
        ])
    };
    if kind.rbd {
        // The RBD source keeps the same snapshot for the next diff.
        assert_eq!(source_snaps(ceph), base_snaps);
    }

    let at_incr = kind.change(&vol, &at_full);
    let incr = create_backup(
        c,
        json!({"volume_id": vol, "incremental": true, "name": "incr"}),
    )
    .await;
    let incr_id = incr["id"].as_str().unwrap().to_owned();
    assert_eq!(incr["is_incremental"], true, "{incr}");
    // Same base, one more snapshot; the diff holds only what changed.
    assert_eq!(
        ceph.names(&["ls", "--format", "json", "backups"]),
        [base.as_str()]
    );
    let snaps = ceph.names(&["snap", "ls", "--format", "json", &format!("backups/{base}")]);
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    let incr_snap = snaps
        .iter()
        .find(|s| s.starts_with(&format!("backup.{incr_id}.snap.")))
        .unwrap();
    let diff = ceph.rbd_json(&[
        "diff",
        "--format",
        "json",
        "--from-snap",
        &base_snaps[0],
        &format!("backups/{base}@{incr_snap}"),
    ]);
    let changed: u64 = diff
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["length"].as_u64().unwrap())
        .sum();
    assert!(
        changed > 0 && changed <= 3 * (4 << 20),
        "the incremental backup stored {changed} bytes"
    );

    // Each backup restores to a new volume as it was at its time.
    let restored_full = restore(c, &full_id, None).await;
    kind.assert_holds(
        &restored_full,
        &at_full,
        "full backup restored to a new volume",
    );
    let restored_incr = restore(c, &incr_id, None).await;
    kind.assert_holds(
        &restored_incr,
        &at_incr,
        "incremental backup restored to a new volume",
    );
    let (_, shown) = c.get(&format!("/volumes/{restored_incr}")).await;
    assert_eq!(shown["volume"]["volume_type"], kind.name(), "{shown}");
    if kind.rbd {
        // The diff restore leaves no snapshot on the new volume.
        assert_eq!(
            ceph.names(&[
                "snap",
                "ls",
                "--format",
                "json",
                &format!("volumes/volume-{restored_incr}")
            ]),
            Vec::<String>::new()
        );
    }
    // And the full one back onto the original, which holds more now.
    restore(c, &full_id, Some(&vol)).await;
    kind.assert_holds(&vol, &at_full, "full backup restored onto the original");

    // The full backup cannot go while the incremental depends on it.
    let (status, err) = c.delete(&format!("/backups/{full_id}")).await;
    assert_eq!(status, 400, "{err}");
    let (status, _) = c.delete(&format!("/backups/{incr_id}")).await;
    assert_eq!(status, 202);
    c.wait_gone(&format!("/backups/{incr_id}")).await;
    assert_eq!(
        ceph.names(&["snap", "ls", "--format", "json", &format!("backups/{base}")]),
        [base_snaps[0].clone()]
    );
    let (status, _) = c.delete(&format!("/backups/{full_id}")).await;
    assert_eq!(status, 202);
    c.wait_gone(&format!("/backups/{full_id}")).await;
    // The pool is empty: no image, and no object but the pool's own
    // (`rbd_directory`, `rbd_info`, …).
    assert_eq!(
        ceph.names(&["ls", "--format", "json", "backups"]),
        Vec::<String>::new()
    );
    assert_eq!(
        ceph.leftover_objects("backups"),
        Vec::<String>::new(),
        "objects left in the backups pool"
    );

    for v in [&restored_full, &restored_incr, &vol] {
        let (status, _) = c.delete(&format!("/volumes/{v}")).await;
        assert_eq!(status, 202);
        c.wait_volume(v, |s| s.is_none()).await;
    }
    if kind.rbd {
        // The source's backup snapshots went with it: nothing hidden, nothing
        // in the trash.
        assert_eq!(
            ceph.names(&["ls", "--format", "json", "volumes"]),
            Vec::<String>::new()
        );
        assert_eq!(
            ceph.rbd_json(&["trash", "ls", "--format", "json", "volumes"]),
            json!([])
        );
    }
    c.assert_quota_consistent("admin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ceph_backups_of_rbd_and_file_volumes_restore_byte_for_byte() {
    let scratch = tempfile::tempdir().unwrap();
    let Some(ceph) = Ceph::start(
        "the Ceph backup driver test (needs scripts/install-ceph.sh)",
        scratch.path().join("ceph"),
        &["backups"],
    ) else {
        return;
    };
    let conf = ceph.conf();
    let backends = format!(
        "enabled_backends = file,ceph\n[file]\nvolume_driver = file\nvolume_backend_name = local\n\
         [ceph]\nvolume_driver = cinder.volume.drivers.rbd.RBDDriver\nvolume_backend_name = ceph\n\
         rbd_pool = volumes\nrbd_user = cinder\nrbd_ceph_conf = {}\n\
         rados_connect_timeout = 5\n",
        conf.display(),
    );
    let mut c = Cluster::start(
        &format!(
            "quota_volumes = -1\nbackup_driver = cinder.backup.drivers.ceph.CephBackupDriver\n\
             backup_ceph_conf = {}\nbackup_ceph_user = cinder\nbackup_ceph_pool = backups\n\
             backup_ceph_chunk_size = 4194304\n",
            conf.display()
        ),
        &backends,
    )
    .await;
    for (name, backend) in [("ceph", "ceph"), ("local", "local")] {
        let (status, body) = c
            .post(
                "/types",
                json!({"volume_type": {"name": name, "extra_specs": {"volume_backend_name": backend}}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, services) = c.get("/os-services?binary=cinder-backup").await;
    assert_eq!(services["services"][0]["state"], "up", "{services}");
    for rbd in [true, false] {
        backup_restore_delete(&Kind {
            ceph: &ceph,
            c: &c,
            scratch: scratch.path(),
            rbd,
        })
        .await;
    }
    c.stop().await;
}

/// The files under a POSIX backup path (the store is empty when there are
/// none; empty container directories may stay, as in Cinder).
fn stored_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The bytes of the volume a backup's metadata object (Cinder's
/// `<prefix>_metadata`) says it stored.
fn stored_bytes(dir: &Path, backup_id: &str) -> u64 {
    let metadata = stored_files(dir)
        .into_iter()
        .find(|f| {
            f.to_str().unwrap().ends_with("_metadata")
                && std::fs::read_to_string(f)
                    .unwrap()
                    .contains(&format!("\"backup_id\": \"{backup_id}\""))
        })
        .unwrap_or_else(|| panic!("no metadata object for backup {backup_id}"));
    let meta: Value = serde_json::from_slice(&std::fs::read(metadata).unwrap()).unwrap();
    meta["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let (_, info) = o.as_object().unwrap().iter().next().unwrap();
            info["length"].as_u64().unwrap()
        })
        .sum()
}

/// The POSIX driver (Cinder's chunked format) backing up RBD volumes: read
/// with `rbd export -`, restored with `rbd import-diff -`. A full backup
/// of random data, ~1 % of the blocks changed, an incremental backup that
/// stores only them; each restored to a new volume and onto the original
/// (which keeps its size and its snapshot), byte for byte; deletes in
/// order leave the store empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn posix_backups_of_rbd_volumes_restore_byte_for_byte() {
    let scratch = tempfile::tempdir().unwrap();
    let Some(ceph) = Ceph::start(
        "the chunked backup drivers over RBD volumes (needs scripts/install-ceph.sh)",
        scratch.path().join("ceph"),
        &[],
    ) else {
        return;
    };
    let conf = ceph.conf();
    let store = scratch.path().join("posix");
    let backends = format!(
        "enabled_backends = ceph\n[ceph]\nvolume_driver = cinder.volume.drivers.rbd.RBDDriver\n\
         volume_backend_name = ceph\nrbd_pool = volumes\nrbd_user = cinder\nrbd_ceph_conf = {}\n\
         rados_connect_timeout = 5\n",
        conf.display(),
    );
    // 64 MiB objects: a 1 GiB volume is 16 of them, and the incremental
    // backup's changed runs are cut at their edges.
    let mut c = Cluster::start(
        &format!(
            "quota_volumes = -1\nbackup_driver = cinder.backup.drivers.posix.PosixBackupDriver\n\
             backup_posix_path = {}\nbackup_file_size = 67108864\nbackup_ceph_conf = {}\n",
            store.display(),
            conf.display()
        ),
        &backends,
    )
    .await;
    c.create_type("ceph", json!({"volume_backend_name": "ceph"}))
        .await;
    let kind = Kind {
        ceph: &ceph,
        c: &c,
        scratch: scratch.path(),
        rbd: true,
    };
    let (vol, at_full) = kind.source_volume().await;

    let full = create_backup(&c, json!({"volume_id": vol, "name": "full"})).await;
    let full_id = full["id"].as_str().unwrap().to_owned();
    assert_eq!(full["is_incremental"], false, "{full}");
    assert_eq!(stored_bytes(&store, &full_id), GIB, "the full backup");
    // The volume's image is untouched by the backup: no snapshot left.
    let image = format!("volumes/volume-{vol}");
    assert_eq!(
        ceph.names(&["snap", "ls", "--format", "json", &image]),
        Vec::<String>::new()
    );

    let at_incr = kind.change(&vol, &at_full);
    let incr = create_backup(
        &c,
        json!({"volume_id": vol, "incremental": true, "name": "incr"}),
    )
    .await;
    let incr_id = incr["id"].as_str().unwrap().to_owned();
    assert_eq!(incr["is_incremental"], true, "{incr}");
    // Only the changed 32 KiB hash blocks (`backup_sha_block_size_bytes`).
    assert_eq!(
        stored_bytes(&store, &incr_id),
        3 * 32768,
        "the incremental backup"
    );

    // A snapshot of the original, which a restore onto it must keep.
    let snapshot = c
        .available_snapshot(json!({"volume_id": vol, "name": "kept"}))
        .await;

    // Each backup restores to a new volume as it was at its time.
    let restored_full = restore(&c, &full_id, None).await;
    kind.assert_holds(&restored_full, &at_full, "full backup to a new volume");
    let restored_incr = restore(&c, &incr_id, None).await;
    kind.assert_holds(
        &restored_incr,
        &at_incr,
        "incremental backup to a new volume",
    );
    // And onto the original: the full one (which holds less), then the
    // incremental one; the image keeps its size and its snapshot.
    restore(&c, &full_id, Some(&vol)).await;
    kind.assert_holds(&vol, &at_full, "full backup onto the original");
    restore(&c, &incr_id, Some(&vol)).await;
    kind.assert_holds(&vol, &at_incr, "incremental backup onto the original");
    let info = ceph.rbd_json(&["info", "--format", "json", &image]);
    assert_eq!(info["size"], GIB, "{info}");
    let snap_file = ceph.export_to_file(&format!("{image}@snapshot-{snapshot}"), scratch.path());
    assert_holds(&snap_file, GIB, &at_incr, "the original's snapshot");
    let (status, _) = c.delete(&format!("/snapshots/{snapshot}")).await;
    assert_eq!(status, 202);
    c.wait_gone(&format!("/snapshots/{snapshot}")).await;

    // The full backup cannot go while the incremental depends on it.
    let (status, err) = c.delete(&format!("/backups/{full_id}")).await;
    assert_eq!(status, 400, "{err}");
    for id in [&incr_id, &full_id] {
        let (status, _) = c.delete(&format!("/backups/{id}")).await;
        assert_eq!(status, 202);
        c.wait_gone(&format!("/backups/{id}")).await;
    }
    assert_eq!(stored_files(&store), Vec::<PathBuf>::new(), "objects left");

    for v in [&restored_full, &restored_incr, &vol] {
        let (status, _) = c.delete(&format!("/volumes/{v}")).await;
        assert_eq!(status, 202);
        c.wait_volume(v, |s| s.is_none()).await;
    }
    assert_eq!(ceph.images(), Vec::<String>::new());
    c.assert_quota_consistent("admin").await;
    c.stop().await;
}
