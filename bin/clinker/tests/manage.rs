//! Manage / unmanage end to end on the all-in-one cluster over HTTP: data
//! written to a volume and a snapshot survives unmanage, a restart (whose
//! orphan sweep removes backend objects without rows) and manage back under
//! new ids, and quota usage equals a recount throughout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use clinker_testkit::files::{read_at, write_at};
use clinker_testkit::poll::{self, Every};
use common::{Cluster, FILE_BACKEND};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unmanaged_data_survives_a_restart_and_is_managed_back() {
    let mut c = Cluster::start("", FILE_BACKEND).await;
    let (status, id, body) = c.create_volume(json!({"size": 1, "name": "orig"})).await;
    assert_eq!(status, 202, "{body}");
    let id = id.unwrap();
    let original = c.wait_volume(&id, |s| s == Some("available")).await;
    let old_path = c.volumes_dir().join(format!("volume-{id}"));
    write_at(&old_path, 3 << 20, b"volume-payload");

    let snap_id = c
        .available_snapshot(json!({"volume_id": id, "name": "s"}))
        .await;
    let snap_path = c.volumes_dir().join(format!("snapshot-{snap_id}"));
    write_at(&snap_path, 5 << 20, b"snapshot-payload");

    // Unmanage the snapshot, then the volume; their files stay.
    c.post_ok(
        202,
        &format!("/snapshots/{snap_id}/action"),
        json!({"os-unmanage": {}}),
    )
    .await;
    c.wait_gone(&format!("/snapshots/{snap_id}")).await;
    c.action_ok(&id, json!({"os-unmanage": {}})).await;
    c.wait_volume(&id, |s| s.is_none()).await;
    assert!(old_path.exists() && snap_path.exists());
    c.assert_quota_consistent("admin").await;

    // The restart's orphan sweep must keep unmanaged data. A file with no
    // row and no unmanage record shows when the sweep has run: it goes.
    let orphan = c
        .volumes_dir()
        .join(format!("volume-{}", clinker_types::VolumeId::new_random()));
    std::fs::write(&orphan, b"orphan").unwrap();
    c.restart().await;
    c.wait_services(Every::ms(20, 10), &[("testnode@file", "state", "up")])
        .await;
    poll::until_true(
        Every::ms(10, 10),
        "the orphan sweep did not run",
        async || !orphan.exists(),
    )
    .await;
    assert!(old_path.exists(), "the sweep deleted an unmanaged volume");
    assert!(
        snap_path.exists(),
        "the sweep deleted an unmanaged snapshot"
    );

    // The file shows up as manageable and safe.
    let (status, list) = c
        .at("3.8")
        .get("/manageable_volumes?host=testnode@file")
        .await;
    assert_eq!(status, 200, "{list}");
    let listed = list["manageable-volumes"].as_array().unwrap();
    assert!(
        listed.iter().any(
            |e| e["reference"]["source-name"] == format!("volume-{id}").as_str()
                && e["safe_to_manage"] == true
        ),
        "{list}"
    );

    // Manage it back, as Tempest does.
    let managed = c
        .post_ok(
            202,
            "/os-volume-manage",
            json!({"volume": {
                "host": original["os-vol-host-attr:host"],
                "ref": {"source-name": format!("volume-{id}")},
                "name": "managed",
                "volume_type": original["volume_type"],
                "availability_zone": original["availability_zone"],
            }}),
        )
        .await;
    let new_id = managed["volume"]["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id);
    let shown = c.wait_volume(&new_id, |s| s == Some("available")).await;
    for key in [
        "size",
        "volume_type",
        "availability_zone",
        "os-vol-host-attr:host",
    ] {
        assert_eq!(shown[key], original[key], "{key}");
    }
    assert_eq!(shown["name"], "managed");
    let new_path = c.volumes_dir().join(format!("volume-{new_id}"));
    assert_eq!(read_at(&new_path, 3 << 20, 14), b"volume-payload");
    assert!(!old_path.exists());

    // And the snapshot, onto the managed volume.
    let managed_snap = c
        .post_ok(
            202,
            "/os-snapshot-manage",
            json!({"snapshot": {
                "volume_id": new_id,
                "ref": {"source-name": format!("snapshot-{snap_id}")},
                "name": "managed-snap",
                "metadata": {"k": "v"},
            }}),
        )
        .await;
    let new_snap = managed_snap["snapshot"]["id"].as_str().unwrap().to_owned();
    let snap_shown = c.wait_snapshot(&new_snap, "available").await;
    assert_eq!(snap_shown["size"], 1);
    assert_eq!(snap_shown["metadata"], json!({"k": "v"}));
    let new_snap_path = c.volumes_dir().join(format!("snapshot-{new_snap}"));
    assert_eq!(read_at(&new_snap_path, 5 << 20, 16), b"snapshot-payload");
    c.assert_quota_consistent("admin").await;

    // A bad reference: the volume ends in error (error_managing shown as
    // error), nothing on the backend changes, and it can be deleted.
    let before: Vec<_> = std::fs::read_dir(c.volumes_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let bad = c
        .post_ok(
            202,
            "/os-volume-manage",
            json!({"volume": {"host": "testnode@file#file", "ref": {"source-name": "nothing"}}}),
        )
        .await;
    let bad_id = bad["volume"]["id"].as_str().unwrap().to_owned();
    c.wait_volume(&bad_id, |s| s == Some("error")).await;
    let after: Vec<_> = std::fs::read_dir(c.volumes_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before.len(), after.len());
    c.assert_quota_consistent("admin").await;

    // Cleanup deletes the managed objects like any other.
    let (status, _) = c.delete(&format!("/volumes/{bad_id}")).await;
    assert_eq!(status, 202);
    let (status, _) = c.delete(&format!("/snapshots/{new_snap}")).await;
    assert_eq!(status, 202);
    c.wait_gone(&format!("/snapshots/{new_snap}")).await;
    let (status, _) = c.delete(&format!("/volumes/{new_id}")).await;
    assert_eq!(status, 202);
    c.wait_volume(&new_id, |s| s.is_none()).await;
    c.wait_volume(&bad_id, |s| s.is_none()).await;
    let leftovers: Vec<_> = std::fs::read_dir(c.volumes_dir()).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    c.assert_quota_consistent("admin").await;
    c.stop().await;
}
