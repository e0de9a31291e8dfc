//! Generic volume groups on the all-in-one cluster over real HTTP and the
//! file backend: a group with volumes, a group snapshot, groups created
//! from the group snapshot and from the group, membership changes, and
//! everything deleted again with quota equal to a recount and no file left.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Cluster, FILE_BACKEND};
use serde_json::{Value, json};

async fn wait_group(c: &Cluster, id: &str, status: &str) -> Value {
    let path = format!("/groups/{id}");
    let body = c
        .at("3.14")
        .wait_for(&path, |_, b| b["group"]["status"] == status)
        .await;
    body["group"].clone()
}

/// The volumes of a group, from the volume list (3.13 shows `group_id`).
async fn volumes_of(c: &Cluster, group: &str) -> Vec<Value> {
    let (_, list) = c.at("3.13").get("/volumes/detail").await;
    list["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["group_id"] == group)
        .cloned()
        .collect()
}

async fn delete_group(c: &Cluster, id: &str) {
    c.at("3.13")
        .post_ok(
            202,
            &format!("/groups/{id}/action"),
            json!({"delete": {"delete-volumes": true}}),
        )
        .await;
    c.at("3.13")
        .wait_for(&format!("/groups/{id}"), |code, _| code == 404)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn groups_snapshots_and_groups_from_sources_on_the_file_backend() {
    let mut c = Cluster::start("", FILE_BACKEND).await;
    let vt = c.create_type("gold", json!({})).await;
    let specs = json!({"consistent_group_snapshot_enabled": "<is> False"});
    let gt = c
        .at("3.11")
        .post_ok(
            202,
            "/group_types",
            json!({"group_type": {"name": "generic", "group_specs": specs}}),
        )
        .await;
    let gt = gt["group_type"]["id"].as_str().unwrap().to_owned();

    // The group: placed by the scheduler, accepted by the volume service.
    let created = c
        .at("3.13")
        .post_ok(
            202,
            "/groups",
            json!({"group": {"name": "g1", "group_type": gt, "volume_types": [vt]}}),
        )
        .await;
    let source = created["group"]["id"].as_str().unwrap().to_owned();
    let group = wait_group(&c, &source, "available").await;
    assert_eq!(group["volume_types"], json!([vt]));

    // Two volumes in it, on its backend.
    let mut volumes = Vec::new();
    for size in [1, 2] {
        let v = c
            .at("3.13")
            .post_ok(
                202,
                "/volumes",
                json!({"volume": {"size": size, "volume_type": vt, "group_id": source}}),
            )
            .await;
        let id = v["volume"]["id"].as_str().unwrap().to_owned();
        let v = c.wait_volume(&id, |s| s == Some("available")).await;
        assert_eq!(v["os-vol-host-attr:host"], "testnode@file#file");
        assert!(c.volumes_dir().join(format!("volume-{id}")).exists());
        volumes.push(id);
    }
    let listed = c
        .at("3.25")
        .wait_for(&format!("/groups/{source}?list_volume=true"), |_, _| true)
        .await;
    let mut members: Vec<String> = listed["group"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    members.sort();
    let mut expected = volumes.clone();
    expected.sort();
    assert_eq!(members, expected);

    // Tempest's update flow: out and back in again.
    for body in [
        json!({"group": {"remove_volumes": volumes[1]}}),
        json!({"group": {"add_volumes": volumes[1], "name": "renamed"}}),
    ] {
        let (status, reply) = c.at("3.13").put(&format!("/groups/{source}"), body).await;
        assert_eq!(status, 202, "{reply}");
        wait_group(&c, &source, "available").await;
    }
    assert_eq!(volumes_of(&c, &source).await.len(), 2);

    // A group snapshot: one snapshot per volume through the snapshot path.
    let gs = c
        .at("3.14")
        .post_ok(
            202,
            "/group_snapshots",
            json!({"group_snapshot": {"group_id": source, "name": "gs1"}}),
        )
        .await;
    let gs = gs["group_snapshot"]["id"].as_str().unwrap().to_owned();
    let shown = c
        .at("3.14")
        .wait_for(&format!("/group_snapshots/{gs}"), |_, b| {
            b["group_snapshot"]["status"] == "available"
        })
        .await;
    assert_eq!(shown["group_snapshot"]["group_id"], source.as_str());
    let (_, snapshots) = c.at("3.14").get("/snapshots/detail").await;
    let member_snapshots: Vec<&Value> = snapshots["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["group_snapshot_id"] == gs.as_str())
        .collect();
    assert_eq!(member_snapshots.len(), 2);
    assert!(member_snapshots.iter().all(|s| s["status"] == "available"));

    // A group from the group snapshot, and a clone of the group: every
    // volume created from its snapshot or source by the driver.
    let from_snap = c
        .at("3.14")
        .post_ok(
            202,
            "/groups/action",
            json!({"create-from-src": {"group_snapshot_id": gs, "name": "from-snap"}}),
        )
        .await;
    let from_snap = from_snap["group"]["id"].as_str().unwrap().to_owned();
    let clone = c
        .at("3.14")
        .post_ok(
            202,
            "/groups/action",
            json!({"create-from-src": {"source_group_id": source, "name": "clone"}}),
        )
        .await;
    let clone = clone["group"]["id"].as_str().unwrap().to_owned();
    for (group, origin_key) in [(&from_snap, "snapshot_id"), (&clone, "source_volid")] {
        let shown = wait_group(&c, group, "available").await;
        assert_eq!(shown["group_type"], gt.as_str());
        let copies = volumes_of(&c, group).await;
        assert_eq!(copies.len(), 2, "{copies:?}");
        for copy in &copies {
            assert_eq!(copy["status"], "available");
            assert!(copy[origin_key].is_string(), "{copy}");
            let id = copy["id"].as_str().unwrap();
            assert!(c.volumes_dir().join(format!("volume-{id}")).exists());
        }
    }
    let (_, sizes) = c.at("3.13").get("/volumes/detail").await;
    let mut sizes: Vec<i64> = sizes["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["group_id"] == from_snap.as_str())
        .map(|v| v["size"].as_i64().unwrap())
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [1, 2]);
    c.assert_quota_consistent("admin").await;

    // The source cannot go while it has a group snapshot.
    c.at("3.13")
        .post_ok(
            400,
            &format!("/groups/{source}/action"),
            json!({"delete": {"delete-volumes": true}}),
        )
        .await;

    // Delete everything, as Tempest's clean-ups do.
    delete_group(&c, &from_snap).await;
    delete_group(&c, &clone).await;
    let (status, body) = c.at("3.14").delete(&format!("/group_snapshots/{gs}")).await;
    assert_eq!(status, 202, "{body}");
    c.at("3.14")
        .wait_for(&format!("/group_snapshots/{gs}"), |code, _| code == 404)
        .await;
    delete_group(&c, &source).await;
    let (status, body) = c.at("3.11").delete(&format!("/group_types/{gt}")).await;
    assert_eq!(status, 202, "{body}");

    let (_, left) = c.get("/volumes/detail").await;
    assert_eq!(left["volumes"], json!([]));
    let (_, left) = c.get("/snapshots/detail").await;
    assert_eq!(left["snapshots"], json!([]));
    let (_, groups) = c.at("3.13").get("/groups/detail").await;
    assert_eq!(groups["groups"], json!([]));
    let leftovers: Vec<_> = std::fs::read_dir(c.volumes_dir()).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    c.assert_quota_consistent("admin").await;
    let usage = c.db().quota_usages("admin").await.unwrap();
    assert_eq!(usage.get("groups").copied().unwrap_or(0), 0);
    assert!(
        c.db()
            .journal_for_backend("testnode@file")
            .await
            .unwrap()
            .is_empty(),
        "no operation left unfinished"
    );
    c.stop().await;
}
