//! Backups end to end against the all-in-one service: a volume of random
//! data on the file backend, a full backup, changed data, an incremental
//! backup, each restored to a new volume and compared byte for byte;
//! deletes in the right order leave the backup directory empty and the
//! quota equal to a recount; bad input gets Cinder's errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use clinker_testkit::http::Api;
use common::{Cluster, FILE_BACKEND};
use rand::RngCore;
use serde_json::{Value, json};

/// Small objects, so a backup has several and an incremental one skips
/// unchanged ones: 64 × 32 KiB = 2 MiB per object.
const BACKUP_OPTIONS: &str = "backup_file_size = 2097152\nbackup_sha_block_size_bytes = 32768\n";

fn volume_file(c: &Cluster, id: &str) -> PathBuf {
    c.volumes_dir().join(format!("volume-{id}"))
}

/// Writes random bytes over `len` bytes at `offset`.
fn scribble(path: &Path, offset: u64, len: usize) {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&data).unwrap();
    f.sync_all().unwrap();
}

fn read_all(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    std::fs::File::open(path)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

async fn wait_backup(api: &Api, id: &str, want: &str) -> Value {
    // A debug build reads and hashes 1 GiB per full backup: on a loaded
    // machine that takes longer than the default 30 s.
    let every = clinker_testkit::poll::Every::ms(200, 300);
    api.wait_for_every(every, &format!("/backups/{id}"), |_, b| {
        let status = b["backup"]["status"].as_str();
        assert_ne!(status, Some("error"), "backup failed: {b}");
        status == Some(want)
    })
    .await["backup"]
        .clone()
}

async fn create_backup(api: &Api, body: Value) -> String {
    let (status, made) = api.post("/backups", json!({ "backup": body })).await;
    assert_eq!(status, 202, "{made}");
    let id = made["backup"]["id"].as_str().unwrap().to_owned();
    assert_eq!(made["backup"]["links"].as_array().map(Vec::len), Some(2));
    wait_backup(api, &id, "available").await;
    id
}

/// Restores `backup` into a new volume; its file.
async fn restore_to_new(c: &Cluster, backup: &str) -> (String, PathBuf) {
    let (status, restored) = c
        .post(
            &format!("/backups/{backup}/restore"),
            json!({"restore": {"name": "restored"}}),
        )
        .await;
    assert_eq!(status, 202, "{restored}");
    assert_eq!(restored["restore"]["backup_id"], backup);
    assert_eq!(restored["restore"]["volume_name"], "restored");
    let volume = restored["restore"]["volume_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_backup(c, backup, "available").await;
    c.wait_volume(&volume, |s| s == Some("available")).await;
    let file = volume_file(c, &volume);
    (volume, file)
}

/// A new 1 GiB volume (`extra` adds to its create body) with random
/// bytes at each `(offset, length)`: its id, its file under
/// `volumes_dir`, and its whole data.
async fn scribbled_volume(
    api: &Api,
    volumes_dir: &Path,
    extra: Value,
    patches: &[(u64, usize)],
) -> (String, PathBuf, Vec<u8>) {
    let mut body = json!({"size": 1});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let vol = api.available_volume(body).await;
    let file = volumes_dir.join(format!("volume-{vol}"));
    for (offset, len) in patches {
        scribble(&file, *offset, *len);
    }
    let data = read_all(&file);
    (vol, file, data)
}

/// Attaches `vol` to an instance (3.54 attachments, completed) and waits
/// until it is `in-use`.
async fn attach_in_use(api: &Api, vol: &str) {
    let attach = api.at("3.54");
    let (status, made) = attach
        .post(
            "/attachments",
            json!({"attachment": {"volume_uuid": vol,
                "instance_uuid": "d5c4c6b7-8e0f-4a2b-9c3d-1e2f3a4b5c6d",
                "connector": clinker_testkit::http::connector("iqn.2004-10.org.clinker:test")}}),
        )
        .await;
    assert_eq!(status, 200, "{made}");
    let attachment = made["attachment"]["id"].as_str().unwrap().to_owned();
    let (status, body) = attach
        .post(
            &format!("/attachments/{attachment}/action"),
            json!({"os-complete": {}}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    api.wait_volume(vol, |st| st == Some("in-use")).await;
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_and_incremental_backups_restore_byte_for_byte() {
    let mut c = Cluster::start(BACKUP_OPTIONS, FILE_BACKEND).await;
    let backup_dir = c.dir.path().join("backup");
    let vol = c.available_volume(json!({"size": 1, "name": "src"})).await;
    let src = volume_file(&c, &vol);
    // Random data in the first 6 MiB and near the end; the rest stays a
    // hole.
    scribble(&src, 0, 6 << 20);
    scribble(&src, (1 << 30) - (1 << 20), 1 << 20);
    let at_full = read_all(&src);

    let full = create_backup(
        &c,
        json!({"volume_id": vol, "name": "full", "description": "first"}),
    )
    .await;
    let v = c.wait_volume(&vol, |s| s == Some("available")).await;
    assert_eq!(v["status"], "available");
    let (_, shown) = c.at("3.64").get(&format!("/backups/{full}")).await;
    let b = &shown["backup"];
    assert_eq!(
        (
            b["name"].as_str(),
            b["description"].as_str(),
            b["size"].as_i64(),
            b["is_incremental"].as_bool(),
            b["volume_id"].as_str(),
        ),
        (
            Some("full"),
            Some("first"),
            Some(1),
            Some(false),
            Some(vol.as_str())
        )
    );
    assert!(b["object_count"].as_i64().unwrap() >= 3, "{b}");
    assert_eq!(b["metadata"], json!({}));
    assert_eq!(b["user_id"], "admin");
    assert_eq!(b["os-backup-project-attr:project_id"], "admin");
    let (_, old) = c.at("3.0").get(&format!("/backups/{full}")).await;
    assert!(old["backup"].get("metadata").is_none(), "{old}");
    assert!(old["backup"].get("user_id").is_none(), "{old}");
    assert!(!files_under(&backup_dir).is_empty());

    // Change about 1 % of the blocks, then an incremental backup.
    for block in [3u64, 77, 190, 250] {
        scribble(&src, block * (4 << 20), 32 << 10);
    }
    let at_incr = read_all(&src);
    assert_ne!(at_full, at_incr);
    let incr = create_backup(
        &c,
        json!({"volume_id": vol, "incremental": true, "name": "incr"}),
    )
    .await;
    let (_, shown) = c.get(&format!("/backups/{incr}")).await;
    assert_eq!(shown["backup"]["is_incremental"], true);
    let (_, parent) = c.get(&format!("/backups/{full}")).await;
    assert_eq!(parent["backup"]["has_dependent_backups"], true);

    // List, detail, update.
    let (status, list) = c.get("/backups").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["backups"].as_array().unwrap().len(), 2);
    assert!(list["backups"][0].get("status").is_none());
    let (_, detail) = c
        .at("3.45")
        .get("/backups/detail?with_count=true&name=incr")
        .await;
    assert_eq!(detail["count"], 1, "{detail}");
    assert_eq!(detail["backups"][0]["id"], incr.as_str());
    let (status, updated) = c
        .at("3.9")
        .put(
            &format!("/backups/{incr}"),
            json!({"backup": {"name": "renamed"}}),
        )
        .await;
    assert_eq!(
        (status, updated["backup"]["name"].as_str()),
        (200, Some("renamed")),
        "{updated}"
    );
    let (status, _) = c
        .at("3.8")
        .put(
            &format!("/backups/{incr}"),
            json!({"backup": {"name": "x"}}),
        )
        .await;
    assert_eq!(status, 404);

    // Restore each to a new volume: the data as it was at that backup.
    let (restored_full, file) = restore_to_new(&c, &full).await;
    assert!(
        read_all(&file) == at_full,
        "the full backup restored other data"
    );
    let (restored_incr, file) = restore_to_new(&c, &incr).await;
    assert!(
        read_all(&file) == at_incr,
        "the incremental backup restored other data"
    );
    // And the full one back onto the original volume.
    let (status, body) = c
        .post(
            &format!("/backups/{full}/restore"),
            json!({"restore": {"volume_id": vol}}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    c.wait_volume(&vol, |s| s == Some("available")).await;
    wait_backup(&c, &full, "available").await;
    assert!(
        read_all(&src) == at_full,
        "restoring onto the volume failed"
    );
    c.assert_quota_consistent("admin").await;

    // The full backup cannot go while the incremental one depends on it.
    let (status, err) = c.delete(&format!("/backups/{full}")).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(
        err["badRequest"]["message"],
        "Invalid backup: Incremental backups exist for this backup."
    );
    let (status, _) = c.delete(&format!("/backups/{incr}")).await;
    assert_eq!(status, 202);
    c.wait_gone(&format!("/backups/{incr}")).await;
    let (status, _) = c.delete(&format!("/backups/{full}")).await;
    assert_eq!(status, 202);
    c.wait_gone(&format!("/backups/{full}")).await;
    assert_eq!(files_under(&backup_dir), Vec::<PathBuf>::new());
    for v in [&restored_full, &restored_incr, &vol] {
        let (status, _) = c.delete(&format!("/volumes/{v}")).await;
        assert_eq!(status, 202);
        c.wait_volume(v, |s| s.is_none()).await;
    }
    c.assert_quota_consistent("admin").await;
    let (_, quota) = c.get("/os-quota-sets/admin?usage=true").await;
    assert_eq!(quota["quota_set"]["backups"]["in_use"], 0, "{quota}");
    assert_eq!(
        quota["quota_set"]["backup_gigabytes"]["in_use"], 0,
        "{quota}"
    );
    c.stop().await;
}

/// The volume's metadata travels in the backup and comes back on restore
/// (keys already on the target kept); a snapshot's backup holds the
/// snapshot's data; 3.43 updates answer the summary; an exported record
/// imports under a new id and restores the same data.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metadata_snapshots_and_records_round_trip() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    let mut c = Cluster::start(BACKUP_OPTIONS, FILE_BACKEND).await;
    let backup_dir = c.dir.path().join("backup");
    let vol = c
        .available_volume(json!({"size": 1, "name": "src-meta", "description": "d",
            "metadata": {"vm1": "a", "vm2": "b"}}))
        .await;
    let src = volume_file(&c, &vol);
    scribble(&src, 0, 3 << 20);
    let at_snapshot = read_all(&src);
    let snap = c
        .available_snapshot(json!({"volume_id": vol, "name": "s"}))
        .await;
    // The volume changes after the snapshot; its backup keeps the old data.
    scribble(&src, 0, 1 << 20);
    let at_full = read_all(&src);
    assert_ne!(at_full, at_snapshot);

    let full = create_backup(&c, json!({"volume_id": vol, "name": "full"})).await;
    // 3.43 update: metadata replaced, the summary answered.
    let (status, updated) = c
        .at("3.43")
        .put(
            &format!("/backups/{full}"),
            json!({"backup": {"name": "full2", "metadata": {"t": "1"}}}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    let mut keys: Vec<&String> = updated["backup"].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["id", "links", "name"], "{updated}");
    let (_, shown) = c.at("3.43").get(&format!("/backups/{full}")).await;
    assert_eq!(shown["backup"]["metadata"], json!({"t": "1"}));
    assert_eq!(shown["backup"]["name"], "full2");

    // Restored to a new volume: the source's metadata and name.
    let (status, restored) = c
        .post(
            &format!("/backups/{full}/restore"),
            json!({"restore": null}),
        )
        .await;
    assert_eq!(status, 202, "{restored}");
    let new_vol = restored["restore"]["volume_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_backup(&c, &full, "available").await;
    let v = c.wait_volume(&new_vol, |s| s == Some("available")).await;
    assert_eq!(v["metadata"]["vm1"], "a", "{v}");
    assert_eq!(v["metadata"]["vm2"], "b", "{v}");
    assert_eq!(v["metadata"]["src_backup_id"], full.as_str(), "{v}");
    assert_eq!(v["name"], "src-meta", "{v}");
    assert!(read_all(&volume_file(&c, &new_vol)) == at_full);
    // Onto an existing volume: its own keys and name stay.
    let target = c
        .available_volume(json!({"size": 1, "name": "mine", "metadata": {"vm1": "kept"}}))
        .await;
    let (status, body) = c
        .post(
            &format!("/backups/{full}/restore"),
            json!({"restore": {"volume_id": target}}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    wait_backup(&c, &full, "available").await;
    let t = c.wait_volume(&target, |s| s == Some("available")).await;
    assert_eq!(t["metadata"]["vm1"], "kept", "{t}");
    assert_eq!(t["metadata"]["vm2"], "b", "{t}");
    assert_eq!(t["name"], "mine", "{t}");

    // A snapshot's backup: the snapshot's data, the snapshot back to
    // available, `snapshot_id` shown; a snapshot of another volume refused.
    let other = c.available_volume(json!({"size": 1})).await;
    let (status, err) = c
        .post(
            "/backups",
            json!({"backup": {"volume_id": other, "snapshot_id": snap}}),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(
        err["badRequest"]["message"],
        format!("Invalid volume: Volume {other} does not match with snapshot.volume_id {vol}.")
    );
    let from_snap = create_backup(&c, json!({"volume_id": vol, "snapshot_id": snap})).await;
    c.wait_snapshot(&snap, "available").await;
    let (_, shown) = c.get(&format!("/backups/{from_snap}")).await;
    assert_eq!(shown["backup"]["snapshot_id"], snap.as_str(), "{shown}");
    let (snap_vol, file) = restore_to_new(&c, &from_snap).await;
    assert!(
        read_all(&file) == at_snapshot,
        "the snapshot's backup restored other data"
    );

    // Export, then import under a new id: the same objects, restorable.
    let (status, exported) = c.get(&format!("/backups/{full}/export_record")).await;
    assert_eq!(status, 200, "{exported}");
    let record = &exported["backup-record"];
    assert_eq!(
        record["backup_service"],
        "cinder.backup.drivers.posix.PosixBackupDriver"
    );
    let mut decoded: Value = serde_json::from_slice(
        &STANDARD
            .decode(record["backup_url"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(decoded["id"], full.as_str());
    let (status, err) = c
        .post("/backups/import_record", json!({"backup-record": record}))
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(
        err["badRequest"]["message"],
        "Invalid backup: Backup already exists in database."
    );
    let new_id = uuid::Uuid::new_v4().to_string();
    decoded["id"] = json!(new_id);
    let url = STANDARD.encode(decoded.to_string());
    let (status, imported) = c
        .post(
            "/backups/import_record",
            json!({"backup-record": {"backup_service": record["backup_service"], "backup_url": url}}),
        )
        .await;
    assert_eq!(status, 201, "{imported}");
    assert_eq!(imported["backup"]["id"], new_id.as_str());
    let shown = wait_backup(&c, &new_id, "available").await;
    assert_eq!(shown["volume_id"], vol.as_str());
    let (imported_vol, file) = restore_to_new(&c, &new_id).await;
    assert!(
        read_all(&file) == at_full,
        "the imported backup restored other data"
    );
    let (status, _) = c
        .post(
            "/backups/import_record",
            json!({"backup-record": {"backup_service": "x", "backup_url": "!!"}}),
        )
        .await;
    assert_eq!(status, 400);
    c.assert_quota_consistent("admin").await;

    // Both records of the same objects delete cleanly.
    for b in [&new_id, &full, &from_snap] {
        let (status, _) = c.delete(&format!("/backups/{b}")).await;
        assert_eq!(status, 202);
        c.wait_gone(&format!("/backups/{b}")).await;
    }
    assert_eq!(files_under(&backup_dir), Vec::<PathBuf>::new());
    let (status, _) = c.delete(&format!("/snapshots/{snap}")).await;
    assert_eq!(status, 202);
    c.wait_gone(&format!("/snapshots/{snap}")).await;
    for v in [&new_vol, &target, &other, &snap_vol, &imported_vol, &vol] {
        let (status, _) = c.delete(&format!("/volumes/{v}")).await;
        assert_eq!(status, 202);
        c.wait_volume(v, |s| s.is_none()).await;
    }
    // No temporary volume is left behind.
    assert_eq!(c.volumes().await, Vec::<Value>::new());
    c.assert_quota_consistent("admin").await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_backup_requests_get_cinders_errors_and_change_nothing() {
    let mut c = Cluster::start(BACKUP_OPTIONS, FILE_BACKEND).await;
    // `clinker serve` runs the backup service with its services row.
    let (status, services) = c.get("/os-services?binary=cinder-backup").await;
    assert_eq!(status, 200, "{services}");
    let backup_services = services["services"].as_array().unwrap();
    assert_eq!(backup_services.len(), 1, "{services}");
    assert_eq!(
        (
            backup_services[0]["host"].as_str(),
            backup_services[0]["state"].as_str(),
            backup_services[0]["status"].as_str()
        ),
        (Some("testnode"), Some("up"), Some("enabled"))
    );
    let unknown = "8b6e3fa4-1d4e-4bd2-9b8f-0d1d3c0f2a11";
    let (status, err) = c
        .post("/backups", json!({"backup": {"volume_id": unknown}}))
        .await;
    assert_eq!(status, 404, "{err}");
    assert_eq!(
        err["itemNotFound"]["message"],
        format!("Volume {unknown} could not be found.")
    );
    let vol = c.available_volume(json!({"size": 1})).await;
    for bad in [
        json!({"backup": {"volume_id": vol, "bogus": 1}}),
        json!({"backup": {"volume_id": vol, "incremental": "perhaps"}}),
        json!({"backup": {"volume_id": "not-a-uuid"}}),
        json!({"backup": {}}),
        json!({"backup": {"volume_id": vol, "metadata": {"k": "v"}}}),
    ] {
        let (status, err) = c.post("/backups", bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {err}");
        assert!(err["badRequest"]["message"].is_string(), "{err}");
    }
    // An incremental backup needs a full one first.
    let (status, err) = c
        .post(
            "/backups",
            json!({"backup": {"volume_id": vol, "incremental": true}}),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(
        err["badRequest"]["message"],
        "Invalid backup: No backups available to do an incremental backup."
    );
    // Over quota.
    let (status, _) = c
        .put("/os-quota-sets/admin", json!({"quota_set": {"backups": 0}}))
        .await;
    assert_eq!(status, 200);
    let (status, err) = c
        .post("/backups", json!({"backup": {"volume_id": vol}}))
        .await;
    assert_eq!(status, 413, "{err}");
    assert_eq!(
        err["overLimit"]["message"],
        "BackupLimitExceeded: Maximum number of backups allowed (0) exceeded"
    );
    let (_, list) = c.get("/backups").await;
    assert_eq!(list["backups"], json!([]));
    let (status, err) = c
        .at("3.47")
        .post(
            "/volumes",
            json!({"volume": {"size": 1, "backup_id": unknown}}),
        )
        .await;
    assert_eq!(status, 404, "{err}");
    assert_eq!(
        err["itemNotFound"]["message"],
        format!("Backup {unknown} could not be found.")
    );
    let v = c.wait_volume(&vol, |_| true).await;
    assert_eq!(v["status"], "available");
    let (status, _) = c.get(&format!("/backups/{unknown}")).await;
    assert_eq!(status, 404);
    let (status, err) = c.get("/backups/detail?limit=-1").await;
    assert_eq!(status, 400, "{err}");
    c.assert_quota_consistent("admin").await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_settles_backups_left_creating_or_restoring() {
    let mut c = Cluster::start(BACKUP_OPTIONS, FILE_BACKEND).await;
    let vol = c.available_volume(json!({"size": 1})).await;
    scribble(&volume_file(&c, &vol), 0, 1 << 20);
    let full = create_backup(&c, json!({"volume_id": vol})).await;
    let target = c.available_volume(json!({"size": 1})).await;
    // What a crash leaves, written as the API would before its casts: a
    // restore under way, and a backup `creating` with its volume
    // `backing-up`.
    let db = c.db();
    let backup_id: clinker_types::BackupId = full.parse().unwrap();
    let target_id: clinker_types::VolumeId = target.parse().unwrap();
    db.begin_backup_restore(backup_id, target_id).await.unwrap();
    let stuck = db
        .create_backup(clinker_db::NewBackup {
            id: clinker_types::BackupId::new_random(),
            volume_id: vol.parse().unwrap(),
            user_id: "admin".into(),
            project_id: "admin".into(),
            display_name: None,
            display_description: None,
            container: None,
            incremental: false,
            force: false,
            host: "testnode".into(),
            availability_zone: Some("nova".into()),
            service: "cinder.backup.drivers.posix.PosixBackupDriver".into(),
            snapshot_id: None,
            metadata: Default::default(),
        })
        .await
        .unwrap();
    let (_, busy) = c.get(&format!("/volumes/{vol}")).await;
    assert_eq!(busy["volume"]["status"], "backing-up");
    c.restart().await;
    wait_backup(&c, &full, "available").await;
    let (_, err) = c.get(&format!("/backups/{}", stuck.id)).await;
    assert_eq!(err["backup"]["status"], "error", "{err}");
    assert_eq!(
        err["backup"]["fail_reason"],
        "incomplete backup reset on manager restart"
    );
    c.wait_volume(&vol, |s| s == Some("available")).await;
    c.wait_volume(&target, |s| s == Some("error_restoring"))
        .await;
    c.assert_quota_consistent("admin").await;
    c.stop().await;
}

/// `clinker serve` killed with SIGKILL while a backup is being written:
/// after the restart the backup is `error`, its partial objects are gone,
/// the volume is back to `available` and the quota equals a recount.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_mid_backup_leaves_nothing_stuck_or_orphaned() {
    use clinker_testkit::poll::{self, Every};
    use clinker_testkit::process::Server;

    let mut s = Server::new(
        env!("CARGO_BIN_EXE_clinker"),
        // Slow enough to be caught in the middle: bz2 on random data, in
        // 1 MiB objects.
        "host = killnode\nbackup_file_size = 1048576\nbackup_compression_algorithm = bz2\n",
        FILE_BACKEND,
    );
    s.start().await;
    let vol = s.api.available_volume(json!({"size": 1})).await;
    let file = s.volumes_dir("file").join(format!("volume-{vol}"));
    scribble(&file, 0, 256 << 20);
    let backup_dir = s.dir.path().join("backup");
    let (status, made) = s
        .api
        .post("/backups", json!({"backup": {"volume_id": vol}}))
        .await;
    assert_eq!(status, 202, "{made}");
    let id = made["backup"]["id"].as_str().unwrap().to_owned();
    // Kill once some objects are written (and before the backup ends).
    poll::until_true(Every::ms(5, 120), "backup objects appear", async || {
        files_under(&backup_dir).len() >= 3
    })
    .await;
    let (_, shown) = s.api.get(&format!("/backups/{id}")).await;
    assert_eq!(
        shown["backup"]["status"], "creating",
        "finished too fast: {shown}"
    );
    s.serve.kill9().await;

    s.start().await;
    let settled = s
        .api
        .wait_for(&format!("/backups/{id}"), |_, b| {
            b["backup"]["status"] == "error"
        })
        .await;
    assert_eq!(
        settled["backup"]["fail_reason"],
        "incomplete backup reset on manager restart"
    );
    s.api.wait_volume(&vol, |st| st == Some("available")).await;
    assert_eq!(files_under(&backup_dir), Vec::<PathBuf>::new());
    let (status, _) = s.api.delete(&format!("/backups/{id}")).await;
    assert_eq!(status, 202);
    s.api.wait_gone(&format!("/backups/{id}")).await;
    s.assert_quota_checks().await;
    s.serve.terminate().await;
}

/// 3.47 `backup_id` in `POST /volumes`: the size defaults to the backup's,
/// the volume holds the backup's data and Cinder's `src_backup_id`, the
/// quota is charged as for any create; Cinder's 400s and 404s for a
/// backup that is not `available`, too big for the size asked, or given
/// with another source change nothing; a restore that fails leaves the
/// volume `error` with Cinder's user message and the backup `available`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn volumes_created_from_backups_hold_their_data() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    let mut c = Cluster::start(BACKUP_OPTIONS, FILE_BACKEND).await;
    let backup_dir = c.dir.path().join("backup");
    let (vol, src, at_backup) = scribbled_volume(
        &c,
        &c.volumes_dir(),
        json!({"name": "origin", "metadata": {"m": "1"}}),
        &[(0, 3 << 20), ((1 << 30) - (1 << 20), 1 << 20)],
    )
    .await;
    let full = create_backup(&c, json!({"volume_id": vol, "name": "full"})).await;
    scribble(&src, 0, 1 << 20);

    let api = c.at("3.47");
    let (status, made) = api
        .post(
            "/volumes",
            json!({"volume": {"backup_id": full, "name": "from-backup"}}),
        )
        .await;
    assert_eq!(status, 202, "{made}");
    assert_eq!(made["volume"]["status"], "creating", "{made}");
    assert_eq!(made["volume"]["size"], 1, "{made}");
    let new_vol = made["volume"]["id"].as_str().unwrap().to_owned();
    let v = wait_restored(&c, &new_vol, "available").await;
    assert_eq!(v["metadata"]["src_backup_id"], full.as_str(), "{v}");
    assert_eq!(v["metadata"]["m"], "1", "{v}");
    assert_eq!(v["name"], "from-backup", "{v}");
    assert!(
        read_all(&volume_file(&c, &new_vol)) == at_backup,
        "the volume created from the backup holds other data"
    );
    let b = wait_backup(&c, &full, "available").await;
    assert_eq!(b["status"], "available");
    let (_, quota) = c.get("/os-quota-sets/admin?usage=true").await;
    assert_eq!(quota["quota_set"]["volumes"]["in_use"], 2, "{quota}");
    assert_eq!(quota["quota_set"]["gigabytes"]["in_use"], 2, "{quota}");
    c.assert_quota_consistent("admin").await;

    // Cinder reads `backup_id` below 3.47 too; only 3.47 checks it is a
    // UUID.
    let (status, err) = c
        .at("3.46")
        .post("/volumes", json!({"volume": {"backup_id": "nope"}}))
        .await;
    assert_eq!(status, 404, "{err}");
    assert_eq!(
        err["itemNotFound"]["message"],
        "Backup nope could not be found."
    );
    let (status, err) = api
        .post("/volumes", json!({"volume": {"backup_id": "nope"}}))
        .await;
    assert_eq!(status, 400, "{err}");
    // Another source with it.
    let snap = c
        .available_snapshot(json!({"volume_id": vol, "name": "s"}))
        .await;
    let (status, err) = api
        .post(
            "/volumes",
            json!({"volume": {"backup_id": full, "snapshot_id": snap}}),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(
        err["badRequest"]["message"],
        "Invalid input received: May specify only one of backup, imageRef, snapshot, source volume"
    );
    // Smaller than the backup: its record imported as a 2 GiB backup.
    let (_, exported) = c.get(&format!("/backups/{full}/export_record")).await;
    let record = &exported["backup-record"];
    let mut decoded: Value = serde_json::from_slice(
        &STANDARD
            .decode(record["backup_url"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let big = uuid::Uuid::new_v4().to_string();
    decoded["id"] = json!(big);
    decoded["size"] = json!(2);
    let (status, imported) = c
        .post(
            "/backups/import_record",
            json!({"backup-record": {"backup_service": record["backup_service"],
                "backup_url": STANDARD.encode(decoded.to_string())}}),
        )
        .await;
    assert_eq!(status, 201, "{imported}");
    wait_backup(&c, &big, "available").await;
    let (status, err) = api
        .post("/volumes", json!({"volume": {"backup_id": big, "size": 1}}))
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(
        err["badRequest"]["message"],
        "Invalid input received: Volume size 1GB cannot be smaller than the backup size 2GB. It must be >= backup size."
    );
    // Not available.
    let (status, _) = c
        .post(
            &format!("/backups/{big}/action"),
            json!({"os-reset_status": {"status": "error"}}),
        )
        .await;
    assert_eq!(status, 202);
    wait_backup_status(&c, &big, "error").await;
    let (status, err) = api
        .post("/volumes", json!({"volume": {"backup_id": big}}))
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(
        err["badRequest"]["message"],
        "Invalid backup: Originating backup status must be one of 'available' values"
    );
    assert_eq!(c.volumes().await.len(), 2, "a refused create left a volume");
    c.assert_quota_consistent("admin").await;

    // A restore that fails: the backup's objects are gone.
    for file in files_under(&backup_dir) {
        std::fs::remove_file(file).unwrap();
    }
    let (status, made) = api
        .post("/volumes", json!({"volume": {"backup_id": full}}))
        .await;
    assert_eq!(status, 202, "{made}");
    let failed_vol = made["volume"]["id"].as_str().unwrap().to_owned();
    wait_restored(&c, &failed_vol, "error").await;
    wait_backup(&c, &full, "available").await;
    let messages = c.messages_about(&full).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(
        messages[0]["user_message"],
        "restore backup:Backup driver failed to restore backup."
    );
    assert_eq!(messages[0]["resource_type"], "VOLUME_BACKUP");
    c.assert_quota_consistent("admin").await;
    c.stop().await;
}

/// A create from a backup (3.47) whose cast to the scheduler was lost
/// with the process that held it: its row and journal row as the API
/// writes them, never cast. The scheduler's periodic pass places it again
/// with the request its journal row kept, so the volume ends holding the
/// backup's data, not empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_create_from_a_backup_still_holds_its_data() {
    use clinker_types::request_spec::{RequestSpec, TypeSpec};

    // The scheduler's periodic pass places creates unplaced for twice the
    // RPC timeout: 1 s passes, a 3 s timeout.
    let mut c = Cluster::start(
        &format!(
            "{BACKUP_OPTIONS}periodic_interval = 1\nperiodic_fuzzy_delay = 0\n\
             rpc_response_timeout = 3\n"
        ),
        FILE_BACKEND,
    )
    .await;
    let (vol, _, at_backup) =
        scribbled_volume(&c, &c.volumes_dir(), json!({}), &[(0, 3 << 20)]).await;
    let full = create_backup(&c, json!({"volume_id": vol})).await;

    let db = c.db();
    let origin = db.get_volume(vol.parse().unwrap()).await.unwrap();
    let volume_type = db.get_volume_type(origin.volume_type_id).await.unwrap();
    let id = clinker_types::VolumeId::new_random();
    let spec = RequestSpec {
        volume_id: id,
        size: 1,
        availability_zone: Some(origin.availability_zone.clone()),
        availability_zones: Vec::new(),
        volume_type: TypeSpec {
            id: Some(volume_type.id),
            name: Some(volume_type.name.clone()),
            extra_specs: volume_type.extra_specs.clone(),
        },
        snapshot_id: None,
        source_volid: None,
        image_id: None,
        backup_id: Some(full.parse().unwrap()),
        resource_backend: None,
        project_id: origin.project_id.clone(),
        scheduler_hints: Default::default(),
    };
    // The row and journal row as the API writes them.
    let mut new = clinker_db::testsuite::new_volume(&origin.project_id, 1, volume_type.id);
    new.id = id;
    new.request_spec = Some(spec);
    db.create_volume(new).await.unwrap();
    drop(db);

    let id = id.to_string();
    let v = wait_restored(&c, &id, "available").await;
    assert_eq!(v["metadata"]["src_backup_id"], full.as_str(), "{v}");
    assert!(
        read_all(&volume_file(&c, &id)) == at_backup,
        "the lost create from a backup does not hold the backup's data"
    );
    wait_backup(&c, &full, "available").await;
    c.assert_quota_consistent("admin").await;
    c.stop().await;
}

/// Waits for a volume being restored to reach `want` (a loaded debug
/// build decompresses slowly: longer than the default 30 s).
async fn wait_restored(api: &Api, id: &str, want: &str) -> Value {
    let every = clinker_testkit::poll::Every::ms(200, 600);
    api.wait_for_every(every, &format!("/volumes/{id}"), |_, b| {
        b["volume"]["status"] == want
    })
    .await["volume"]
        .clone()
}

async fn wait_backup_status(api: &Api, id: &str, want: &str) {
    api.wait_for(&format!("/backups/{id}"), |_, b| {
        b["backup"]["status"] == want
    })
    .await;
}

/// With `backup_max_operations = 1` a second backup waits for the first:
/// it writes nothing (its location is still unrecorded) while the first
/// one is writing objects, then completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_max_operations_bounds_concurrent_backups() {
    use clinker_testkit::poll::{self, Every};

    let mut c = Cluster::start(
        "backup_max_operations = 1\nbackup_file_size = 1048576\nbackup_compression_algorithm = bz2\n",
        FILE_BACKEND,
    )
    .await;
    let backup_dir = c.dir.path().join("backup");
    let first_vol = c.available_volume(json!({"size": 1})).await;
    scribble(&volume_file(&c, &first_vol), 0, 64 << 20);
    let second_vol = c.available_volume(json!({"size": 1})).await;
    let post = |volume: String| {
        let api = c.api.clone();
        async move {
            let (status, made) = api
                .post("/backups", json!({"backup": {"volume_id": volume}}))
                .await;
            assert_eq!(status, 202, "{made}");
            made["backup"]["id"]
                .as_str()
                .unwrap()
                .parse::<clinker_types::BackupId>()
                .unwrap()
        }
    };
    let first: clinker_types::BackupId = post(first_vol).await;
    poll::until_true(Every::ms(5, 120), "the first backup writes", async || {
        files_under(&backup_dir).len() >= 3
    })
    .await;
    let second: clinker_types::BackupId = post(second_vol).await;
    let db = c.db();
    // Long enough for an unbounded service to have started the second.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let first_row = db.get_backup(first).await.unwrap();
    let second_row = db.get_backup(second).await.unwrap();
    assert_eq!(
        first_row.status,
        clinker_types::backup::BackupStatus::Creating,
        "the first backup finished too fast to tell"
    );
    assert_eq!(
        (second_row.status, second_row.service_metadata),
        (clinker_types::backup::BackupStatus::Creating, None),
        "the second backup started while the first ran"
    );
    wait_backup(&c, &first.to_string(), "available").await;
    wait_backup(&c, &second.to_string(), "available").await;
    c.assert_quota_consistent("admin").await;
    c.stop().await;
}

/// A `force` backup of an in-use volume reads a temporary snapshot of it
/// (seen while the backup runs, recorded on the backup row, gone after),
/// the volume staying `in-use`. Killed with SIGKILL in the middle of such
/// a backup, `clinker serve` starts again and removes the temporary
/// snapshot and volume the interrupted backup left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_use_backups_read_a_temporary_snapshot_removed_after_a_crash() {
    use clinker_testkit::poll::{self, Every};
    use clinker_testkit::process::Server;

    let mut s = Server::new(
        env!("CARGO_BIN_EXE_clinker"),
        "host = killnode\nbackup_file_size = 1048576\nbackup_compression_algorithm = bz2\n",
        FILE_BACKEND,
    );
    s.start().await;
    let (vol, _, at_backup) =
        scribbled_volume(&s.api, &s.volumes_dir("file"), json!({}), &[(0, 128 << 20)]).await;
    attach_in_use(&s.api, &vol).await;
    let (status, err) = s
        .api
        .post("/backups", json!({"backup": {"volume_id": vol}}))
        .await;
    assert_eq!(status, 400, "{err}");

    let backup_dir = s.dir.path().join("backup");
    let snapshots = |api: Api| async move {
        let (_, body) = api.get("/snapshots/detail?all_tenants=1").await;
        body["snapshots"].as_array().cloned().unwrap_or_default()
    };
    let start_backup = |api: Api, vol: String| async move {
        let (status, made) = api
            .post(
                "/backups",
                json!({"backup": {"volume_id": vol, "force": true}}),
            )
            .await;
        assert_eq!(status, 202, "{made}");
        made["backup"]["id"].as_str().unwrap().to_owned()
    };

    // Interrupted: killed while objects are written from the temporary
    // volume made from the temporary snapshot.
    let id = start_backup(s.api.clone(), vol.clone()).await;
    poll::until_true(Every::ms(5, 120), "backup objects appear", async || {
        files_under(&backup_dir).len() >= 3
    })
    .await;
    let during = snapshots(s.api.clone()).await;
    assert_eq!(during.len(), 1, "{during:?}");
    assert_eq!(during[0]["name"], format!("backup-snap-{vol}"));
    assert_eq!(s.api.volumes().await.len(), 2, "no temporary volume");
    let (_, shown) = s.api.get(&format!("/backups/{id}")).await;
    assert_eq!(
        shown["backup"]["status"], "creating",
        "finished too fast: {shown}"
    );
    s.serve.kill9().await;
    s.start().await;
    s.api
        .wait_for(&format!("/backups/{id}"), |_, b| {
            b["backup"]["status"] == "error"
        })
        .await;
    poll::until_true(Every::ms(50, 120), "temporaries removed", async || {
        snapshots(s.api.clone()).await.is_empty() && s.api.volumes().await.len() == 1
    })
    .await;
    s.api.wait_volume(&vol, |st| st == Some("in-use")).await;
    assert_eq!(files_under(&backup_dir), Vec::<PathBuf>::new());
    let (status, _) = s.api.delete(&format!("/backups/{id}")).await;
    assert_eq!(status, 202);
    s.api.wait_gone(&format!("/backups/{id}")).await;

    // To the end: the data of the snapshot's moment, nothing left over.
    let id = start_backup(s.api.clone(), vol.clone()).await;
    poll::until_true(
        Every::ms(5, 120),
        "temporary snapshot appears",
        async || !snapshots(s.api.clone()).await.is_empty(),
    )
    .await;
    wait_backup(&s.api, &id, "available").await;
    s.api.wait_volume(&vol, |st| st == Some("in-use")).await;
    poll::until_true(Every::ms(50, 120), "temporaries removed", async || {
        snapshots(s.api.clone()).await.is_empty() && s.api.volumes().await.len() == 1
    })
    .await;
    let (status, restored) = s
        .api
        .post(&format!("/backups/{id}/restore"), json!({"restore": {}}))
        .await;
    assert_eq!(status, 202, "{restored}");
    let target = restored["restore"]["volume_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_restored(&s.api, &target, "available").await;
    let restored_file = s.volumes_dir("file").join(format!("volume-{target}"));
    assert!(
        read_all(&restored_file) == at_backup,
        "the in-use backup restored other data"
    );
    s.assert_quota_checks().await;
    s.serve.terminate().await;
}
