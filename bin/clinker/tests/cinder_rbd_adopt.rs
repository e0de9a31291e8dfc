//! Adopting a real Cinder's RBD volumes: real Cinder 29 (`cinder-api`,
//! `cinder-scheduler`, `cinder-volume` with its own
//! `cinder.volume.drivers.rbd.RBDDriver`) runs against a throw-away Ceph
//! and a MariaDB database made by its `cinder-manage db sync`, and makes
//! through its API a volume, a snapshot of it, a volume from the snapshot,
//! a larger clone of the volume and an attachment; data goes into the
//! volumes through librbd (`scripts/rbd_write.py`) between those steps.
//! Cinder is stopped, `clinker manage cinder import` takes its database,
//! and `clinker serve` started with the same `[ceph]` backend section
//! (same `host`) serves the volumes: the data reads back from the images
//! Clinker names, the imported attachment and new connections carry the
//! `connection_info` Cinder's driver gave, the capacity report counts the
//! imported volumes, a restart removes nothing as an orphan, snapshots and
//! volumes from them (Clinker's and Cinder's) hold the right bytes, and
//! deleting everything through Clinker — Cinder's snapshot with Cinder's
//! clone of it, the volume with Cinder's clone of it (hidden as
//! `.deleted` until the clone goes, as Clinker documents) — empties the
//! pool.
//!
//! Runs with `CLINKER_SYSTEM_TESTS=1` or `CI=true` and needs Ceph
//! (`scripts/install-ceph.sh`), Cinder 29's venv with the Ceph bindings
//! (`scripts/install-cinder29.sh`), MariaDB and RabbitMQ; skipped with a
//! message when absent, failed under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod cinder_common;

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use cinder_common::{
    BIN, PROJECT_A, cinder_conf, cinder_venv, import, synced_cinder_database, text,
};
use clinker_db::testsuite::{Engine, TestDatabase};
use clinker_testkit::ceph::{Ceph, POOL, USER};
use clinker_testkit::http::{Api, connector};
use clinker_testkit::poll::Every;
use clinker_testkit::process::{LogsOnFailure, Proc, free_port, run, write_file};
use clinker_testkit::rabbit::Vhost;
use rand::RngCore;
use serde_json::{Value, json};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
/// The `host` of Cinder's services, kept by Clinker.
const HOST: &str = "cinder-fixture";
/// The pool both report the backend as.
const POOL_NAME: &str = "cinder-fixture@ceph#ceph";

/// The backend as the operator's `cinder.conf` has it; Cinder and Clinker
/// are given the same text.
fn rbd_backend(ceph: &Ceph) -> String {
    format!(
        "enabled_backends = ceph\n\
         [ceph]\nvolume_driver = cinder.volume.drivers.rbd.RBDDriver\n\
         volume_backend_name = ceph\nrbd_pool = {POOL}\nrbd_user = {USER}\n\
         rbd_ceph_conf = {}\n",
        ceph.conf().display()
    )
}

/// Bytes written at an offset of a volume, and what must read back there.
#[derive(Clone)]
struct Extent {
    offset: u64,
    data: Vec<u8>,
}

impl Extent {
    fn random(offset: u64, len: u64) -> Self {
        let mut data = vec![0; usize::try_from(len).unwrap()];
        rand::rng().fill_bytes(&mut data);
        Self { offset, data }
    }
}

/// What a volume must hold: extents in the order they were written (a
/// later one wins where they overlap); zeros elsewhere.
#[derive(Clone, Default)]
struct Content(Vec<Extent>);

impl Content {
    fn with(&self, extent: &Extent) -> Self {
        let mut more = self.0.clone();
        more.push(extent.clone());
        Self(more)
    }

    /// The bytes expected at `[offset, offset + len)`.
    fn expected(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        let end = offset + len as u64;
        for e in &self.0 {
            let (from, to) = (
                e.offset.max(offset),
                (e.offset + e.data.len() as u64).min(end),
            );
            if from < to {
                let src = usize::try_from(from - e.offset).unwrap();
                let dst = usize::try_from(from - offset).unwrap();
                let n = usize::try_from(to - from).unwrap();
                out[dst..dst + n].copy_from_slice(&e.data[src..src + n]);
            }
        }
        out
    }

    /// The ranges worth reading back: each extent with a MiB of margin on
    /// both sides (where an earlier extent or zeros must show).
    fn ranges(&self, size: u64) -> Vec<(u64, usize)> {
        self.0
            .iter()
            .map(|e| {
                let from = e.offset.saturating_sub(MIB);
                let to = (e.offset + e.data.len() as u64 + MIB).min(size);
                (from, usize::try_from(to - from).unwrap())
            })
            .collect()
    }
}

/// Writes `extent` into `POOL/image` through librbd, as a guest would.
fn write(venv: &Path, ceph: &Ceph, image: &str, extent: &Extent, scratch: &Path) {
    let file = scratch.join("extent");
    std::fs::write(&file, &extent.data).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/rbd_write.py");
    let out = std::process::Command::new(venv.join("bin/python"))
        .arg(script)
        .arg(ceph.conf())
        .args([USER, POOL, image, &extent.offset.to_string()])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rbd_write.py {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Checks that `POOL/image` is `size_gb` GiB and holds `content`.
fn assert_holds(ceph: &Ceph, image: &str, size_gb: u64, content: &Content, scratch: &Path) {
    let out = scratch.join("export");
    let _ = std::fs::remove_file(&out);
    ceph.rbd(&[
        "export",
        "--no-progress",
        &format!("{POOL}/{image}"),
        &out.display().to_string(),
    ]);
    let mut file = std::fs::File::open(&out).unwrap();
    let size = file.metadata().unwrap().len();
    assert_eq!(size, size_gb * GIB, "{image}: size");
    for (offset, len) in content.ranges(size) {
        let mut got = vec![0; len];
        file.seek(SeekFrom::Start(offset)).unwrap();
        file.read_exact(&mut got).unwrap();
        assert!(
            got == content.expected(offset, len),
            "{image}: bytes {offset}..{} differ from what was written",
            offset + len as u64
        );
    }
    drop(file);
    std::fs::remove_file(&out).unwrap();
}

/// The RBD snapshots of `POOL/image`, by name.
fn rbd_snapshots(ceph: &Ceph, image: &str) -> Vec<String> {
    let listed: Value = serde_json::from_str(&ceph.rbd(&[
        "snap",
        "ls",
        &format!("{POOL}/{image}"),
        "--format",
        "json",
    ]))
    .unwrap();
    let mut names: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// A volume's id from a create's reply (202 asserted).
fn created(status: u16, id: Option<String>, body: &Value) -> String {
    assert_eq!(status, 202, "{body}");
    id.unwrap()
}

async fn available(api: &Api, id: &str) -> Value {
    let v = api
        .wait_volume(id, |s| matches!(s, Some("available" | "error")))
        .await;
    assert_eq!(v["status"], "available", "{v}");
    v
}

/// The allocated capacity of the RBD pool in `get_pools`, once reported.
async fn allocated_gb(api: &Api) -> Value {
    let body = api
        .wait_for_every(
            Every::ms(500, 120),
            "/scheduler-stats/get_pools?detail=true",
            |status, body| {
                status == 200
                    && body["pools"]
                        .as_array()
                        .is_some_and(|p| p.iter().any(|p| p["name"] == POOL_NAME))
            },
        )
        .await;
    body["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == POOL_NAME)
        .unwrap()["capabilities"]
        .clone()
}

/// Waits until `os-services` shows a service of each of `binaries` on
/// `HOST` up.
async fn wait_services_up(api: &Api, binaries: &[&str]) {
    api.wait_for_every(Every::ms(500, 120), "/os-services", |code, body| {
        code == 200
            && binaries.iter().all(|binary| {
                body["services"].as_array().is_some_and(|s| {
                    s.iter().any(|s| {
                        s["binary"] == *binary
                            && s["host"].as_str().is_some_and(|h| h.starts_with(HOST))
                            && s["state"] == "up"
                    })
                })
            })
    })
    .await;
}

/// What real Cinder made, and what it said about it.
struct FromCinder {
    /// The volume with data, a snapshot taken, more data written after.
    parent: String,
    parent_content: Content,
    /// Cinder's snapshot of `parent`, and the content it froze.
    snapshot: String,
    snapshot_content: Content,
    /// A volume Cinder made from `snapshot` (a clone of it).
    from_snapshot: String,
    /// A 2 GiB clone Cinder made of `parent`, data written past 1 GiB.
    clone: String,
    clone_content: Content,
    /// Cinder's attachment of `parent`, as its API showed it.
    attachment: Value,
    /// Cinder's `os-initialize_connection` answer for `clone`.
    clone_connection: Value,
}

/// Runs real Cinder on `conf` and makes the volumes.
async fn make_volumes_with_cinder(
    venv: &Path,
    ceph: &Ceph,
    conf: &Path,
    port: u16,
    dir: &Path,
) -> FromCinder {
    let mut services: Vec<Proc> = ["cinder-api", "cinder-scheduler", "cinder-volume"]
        .iter()
        .map(|name| Proc::new(&venv.join("bin").join(name), name, &[conf], &[], dir))
        .collect();
    for s in &mut services {
        s.start();
    }
    let api = Api::new(format!("http://127.0.0.1:{port}/v3/{PROJECT_A}"))
        .at("3.71")
        .as_token(&format!("admin:{PROJECT_A}"));
    // Both services are up (their heartbeats), then the scheduler knows
    // the backend once the pool is in its report.
    wait_services_up(&api, &["cinder-scheduler", "cinder-volume"]).await;
    allocated_gb(&api).await;

    let (status, id, body) = api
        .create_volume(json!({"size": 1, "name": "cinder-parent"}))
        .await;
    let parent = created(status, id, &body);
    let v = available(&api, &parent).await;
    assert_eq!(v["os-vol-host-attr:host"], POOL_NAME);
    let image = format!("volume-{parent}");
    let first = Extent::random(MIB, 3 * MIB);
    let last = Extent::random(GIB - 64 * 1024, 64 * 1024);
    write(venv, ceph, &image, &first, dir);
    write(venv, ceph, &image, &last, dir);
    let snapshot_content = Content::default().with(&first).with(&last);

    let snapshot = api
        .available_snapshot(json!({"volume_id": parent, "name": "cinder-snapshot"}))
        .await;
    let after = Extent::random(2 * MIB + 4096, MIB);
    write(venv, ceph, &image, &after, dir);
    let parent_content = snapshot_content.with(&after);

    let (status, id, body) = api
        .create_volume(json!({"size": 1, "snapshot_id": snapshot, "name": "cinder-from-snapshot"}))
        .await;
    let from_snapshot = created(status, id, &body);
    available(&api, &from_snapshot).await;
    let (status, id, body) = api
        .create_volume(json!({"size": 2, "source_volid": parent, "name": "cinder-clone"}))
        .await;
    let clone = created(status, id, &body);
    available(&api, &clone).await;
    let beyond = Extent::random(GIB + 300 * MIB, 2 * MIB);
    write(venv, ceph, &format!("volume-{clone}"), &beyond, dir);
    let clone_content = parent_content.with(&beyond);

    // An attachment, and a bare connection. The attachment names no
    // instance: one that does may only be removed by Nova (a service
    // token) once Clinker has it, which noauth cannot send.
    let (status, made) = api
        .post(
            "/attachments",
            json!({"attachment": {
                "volume_uuid": parent,
                "connector": connector("iqn.2026-12.org.openstack:adopt"),
                "mode": "rw",
            }}),
        )
        .await;
    assert_eq!(status, 200, "{made}");
    let attachment_id = made["attachment"]["id"].as_str().unwrap().to_owned();
    let (status, body) = api
        .post(
            &format!("/attachments/{attachment_id}/action"),
            json!({"os-complete": null}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    api.wait_volume(&parent, |s| s == Some("in-use")).await;
    let (status, attachment) = api.get(&format!("/attachments/{attachment_id}")).await;
    assert_eq!(status, 200, "{attachment}");
    let attachment = attachment["attachment"].clone();
    assert_eq!(attachment["connection_info"]["driver_volume_type"], "rbd");
    let (status, connection) = api
        .action(
            &clone,
            json!({"os-initialize_connection": {"connector": connector("iqn.2026-12.org.openstack:adopt")}}),
        )
        .await;
    assert_eq!(status, 200, "{connection}");

    for s in &mut services {
        let exited = s.terminate().await;
        assert!(exited.code().is_some(), "{exited:?}");
    }
    FromCinder {
        parent,
        parent_content,
        snapshot,
        snapshot_content,
        from_snapshot,
        clone,
        clone_content,
        attachment,
        clone_connection: connection["connection_info"].clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn volumes_written_by_cinders_rbd_driver_are_served_by_clinker() {
    if !clinker_testkit::env::system_tests(
        "the RBD adoption test (needs scripts/install-ceph.sh and scripts/install-cinder29.sh)",
    ) {
        return;
    }
    let Some(venv) = cinder_venv("the RBD adoption test", true) else {
        return;
    };
    let Some(vhost) = Vhost::create("cinder-rbd-adopt") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let scratch = dir.path();
    let ceph = Ceph::up(scratch.join("ceph"));
    let backend = rbd_backend(&ceph);

    // Real Cinder makes the volumes, then stops.
    let cinder_dir = scratch.join("cinder");
    std::fs::create_dir_all(&cinder_dir).unwrap();
    let Some((source, from, _)) = synced_cinder_database(&venv, Engine::Mysql, &cinder_dir).await
    else {
        return;
    };
    let cinder_port = free_port();
    let conf = cinder_conf(
        &cinder_dir,
        &from,
        cinder_port,
        &vhost.transport_url(),
        &backend,
    );
    let made = make_volumes_with_cinder(&venv, &ceph, &conf, cinder_port, scratch).await;
    let images_by_cinder = ceph.images();

    // Clinker takes the database, with the same host and backend section.
    let target = TestDatabase::open(Engine::Sqlite).await.unwrap();
    let port = free_port();
    let clinker_conf = write_file(
        &scratch.join("clinker.conf"),
        &format!(
            "[DEFAULT]\nhost = {HOST}\nstate_path = {}\nosapi_volume_listen_port = {port}\n\
             periodic_fuzzy_delay = 0\nbackend_stats_polling_interval = 3\n{backend}\
             [database]\nconnection = {}\n",
            scratch.display(),
            target.url
        ),
    );
    // Cinder's services stopped a moment ago; their last heartbeats are
    // still within service_down_time.
    let imported = import(&clinker_conf, &from, &["--force"]).await;
    let report = text(&imported);
    assert!(imported.status.success(), "{report}");
    assert!(report.contains("imported in one transaction"), "{report}");
    assert!(
        report.contains("enabled_backends sections the volumes need: ceph"),
        "{report}"
    );
    let mut serve = Proc::new(
        Path::new(BIN),
        "clinker",
        &[&clinker_conf],
        &["serve"],
        scratch,
    );
    serve.start();
    Api::new(format!("http://127.0.0.1:{port}/v3"))
        .wait_ready(Every::ms(50, 60))
        .await;
    let api = Api::new(format!("http://127.0.0.1:{port}/v3/{PROJECT_A}"))
        .at("3.71")
        .as_token(&format!("admin:{PROJECT_A}"));

    // Cinder's volumes, as Cinder left them.
    for (id, status, size) in [
        (&made.parent, "in-use", 1),
        (&made.from_snapshot, "available", 1),
        (&made.clone, "available", 2),
    ] {
        let (code, body) = api.get(&format!("/volumes/{id}")).await;
        assert_eq!(code, 200, "{body}");
        let v = &body["volume"];
        assert_eq!(v["status"], status, "{v}");
        assert_eq!(v["size"], size, "{v}");
        assert_eq!(v["os-vol-host-attr:host"], POOL_NAME, "{v}");
    }
    let snap = api.wait_snapshot(&made.snapshot, "available").await;
    assert_eq!(snap["volume_id"], made.parent.as_str());

    // The imported attachment carries Cinder's connection_info.
    let attachment_id = made.attachment["id"].as_str().unwrap();
    let (code, body) = api.get(&format!("/attachments/{attachment_id}")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["attachment"]["connection_info"], made.attachment["connection_info"],
        "the imported attachment's connection_info"
    );
    // A new connection through Clinker's driver: what Cinder's gave.
    let (code, body) = api
        .action(
            &made.clone,
            json!({"os-initialize_connection": {"connector": connector("iqn.2026-12.org.openstack:adopt")}}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["connection_info"], made.clone_connection,
        "Clinker's connection_info for a volume Cinder made"
    );

    // The data reads back from the images Clinker names.
    let image_of = |connection: &Value| {
        connection["data"]["name"]
            .as_str()
            .unwrap()
            .strip_prefix(&format!("{POOL}/"))
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        image_of(&body["connection_info"]),
        format!("volume-{}", made.clone)
    );
    for (id, size, content) in [
        (&made.parent, 1, &made.parent_content),
        (&made.from_snapshot, 1, &made.snapshot_content),
        (&made.clone, 2, &made.clone_content),
    ] {
        let (code, body) = api
            .action(
                id,
                json!({"os-initialize_connection": {"connector": connector("iqn.2026-12.org.openstack:adopt")}}),
            )
            .await;
        assert_eq!(code, 200, "{body}");
        assert_holds(
            &ceph,
            &image_of(&body["connection_info"]),
            size,
            content,
            scratch,
        );
    }

    // Capacity: the imported volumes are counted.
    let caps = allocated_gb(&api).await;
    assert_eq!(caps["allocated_capacity_gb"].as_f64(), Some(4.0), "{caps}");
    assert!(caps["total_capacity_gb"].as_f64().unwrap() > 0.0, "{caps}");

    // A restart removes nothing as an orphan.
    serve.terminate().await;
    serve.start();
    Api::new(format!("http://127.0.0.1:{port}/v3"))
        .wait_ready(Every::ms(50, 60))
        .await;
    wait_services_up(&api, &["cinder-volume"]).await;
    allocated_gb(&api).await;
    assert_eq!(ceph.images(), images_by_cinder, "images after a restart");
    assert_eq!(
        rbd_snapshots(&ceph, &format!("volume-{}", made.parent)),
        vec![
            format!("snapshot-{}", made.snapshot),
            format!("volume-{}.clone_snap", made.clone)
        ],
        "snapshots after a restart"
    );

    // Snapshots: Clinker's of Cinder's volume, and Cinder's, each give a
    // volume holding what they froze.
    let ours = api
        .available_snapshot(
            json!({"volume_id": made.parent, "force": true, "name": "clinker-snapshot"}),
        )
        .await;
    let (status, id, body) = api
        .create_volume(json!({"size": 1, "snapshot_id": ours}))
        .await;
    let from_ours = created(status, id, &body);
    available(&api, &from_ours).await;
    assert_holds(
        &ceph,
        &format!("volume-{from_ours}"),
        1,
        &made.parent_content,
        scratch,
    );
    let (status, id, body) = api
        .create_volume(json!({"size": 1, "snapshot_id": made.snapshot}))
        .await;
    let from_cinders = created(status, id, &body);
    available(&api, &from_cinders).await;
    assert_holds(
        &ceph,
        &format!("volume-{from_cinders}"),
        1,
        &made.snapshot_content,
        scratch,
    );

    // Deletes. Detach first.
    let (code, body) = api.delete(&format!("/attachments/{attachment_id}")).await;
    assert_eq!(code, 200, "{body}");
    available(&api, &made.parent).await;
    // Cinder's snapshot, with Cinder's and Clinker's volumes made from it:
    // those are flattened and keep their data.
    let (code, body) = api.delete(&format!("/snapshots/{}", made.snapshot)).await;
    assert_eq!(code, 202, "{body}");
    api.wait_gone(&format!("/snapshots/{}", made.snapshot))
        .await;
    assert_holds(
        &ceph,
        &format!("volume-{}", made.from_snapshot),
        1,
        &made.snapshot_content,
        scratch,
    );
    assert_holds(
        &ceph,
        &format!("volume-{from_cinders}"),
        1,
        &made.snapshot_content,
        scratch,
    );
    // The volume (with Clinker's snapshot) while Cinder's clone of it
    // lives: the image is hidden as `.deleted`, the clone keeps its data.
    let (code, body) = api
        .delete(&format!("/volumes/{}?cascade=true", made.parent))
        .await;
    assert_eq!(code, 202, "{body}");
    api.wait_volume(&made.parent, |s| s.is_none()).await;
    let images = ceph.images();
    assert!(
        images.contains(&format!("volume-{}.deleted", made.parent))
            && !images.contains(&format!("volume-{}", made.parent)),
        "{images:?}"
    );
    assert_holds(
        &ceph,
        &format!("volume-{}", made.clone),
        2,
        &made.clone_content,
        scratch,
    );
    assert_holds(
        &ceph,
        &format!("volume-{from_ours}"),
        1,
        &made.parent_content,
        scratch,
    );
    for id in [&made.clone, &made.from_snapshot, &from_ours, &from_cinders] {
        let (code, body) = api.delete(&format!("/volumes/{id}")).await;
        assert_eq!(code, 202, "{body}");
        api.wait_volume(id, |s| s.is_none()).await;
    }
    assert!(ceph.images().is_empty(), "images left: {:?}", ceph.images());
    let check = run(
        Path::new(BIN),
        &[&clinker_conf],
        &["manage", "quota", "check"],
    )
    .await;
    assert!(check.status.success(), "{}", text(&check));
    serve.terminate().await;
    target.drop_database().await;
    source.drop_database().await;
}
