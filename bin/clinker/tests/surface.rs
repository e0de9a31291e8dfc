//! The all-in-one cluster over real HTTP for transfers (ownership and
//! quota on both sides), revert on the file backend (the data really comes
//! back) and retype in place (and refused without migration).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use clinker_testkit::files::{read_at, write_at};
use clinker_testkit::http::in_use;
use common::{Cluster, FILE_BACKEND};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transfer_moves_the_volume_and_its_quota_to_the_accepting_project() {
    let mut c = Cluster::start("", FILE_BACKEND).await;
    let id = c.available_volume(json!({"size": 2, "name": "gift"})).await;
    c.available_snapshot(json!({"volume_id": id})).await;
    let (_, giver_before) = c.get("/os-quota-sets/admin?usage=true").await;
    let (_, taker_before) = c.get("/os-quota-sets/p2?usage=true").await;

    let taker = c.as_token("u2:p2");
    let transfer = c
        .post_ok(
            202,
            "/os-volume-transfer",
            json!({"transfer": {"volume_id": id}}),
        )
        .await;
    let transfer_id = transfer["transfer"]["id"].as_str().unwrap();
    let auth_key = transfer["transfer"]["auth_key"].as_str().unwrap();
    c.wait_volume(&id, |s| s == Some("awaiting-transfer")).await;

    let (status, accepted) = taker
        .post(
            &format!("/os-volume-transfer/{transfer_id}/accept"),
            json!({"accept": {"auth_key": auth_key}}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let (status, moved) = taker.get(&format!("/volumes/{id}")).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["volume"]["status"], "available");
    assert_eq!(moved["volume"]["user_id"], "u2");
    assert_eq!(moved["volume"]["os-vol-tenant-attr:tenant_id"], "p2");

    // Tempest's test_quota_usage_after_volume_transfer, plus snapshots.
    let (_, giver_after) = c.get("/os-quota-sets/admin?usage=true").await;
    let (_, taker_after) = c.get("/os-quota-sets/p2?usage=true").await;
    assert_eq!(
        in_use(&giver_before, "volumes") - in_use(&giver_after, "volumes"),
        in_use(&taker_after, "volumes") - in_use(&taker_before, "volumes")
    );
    assert_eq!(in_use(&taker_after, "volumes"), 1);
    assert_eq!(in_use(&taker_after, "snapshots"), 1);
    assert_eq!(
        in_use(&taker_before, "gigabytes") + 4,
        in_use(&taker_after, "gigabytes")
    );
    assert_eq!(
        in_use(&giver_before, "gigabytes") - 4,
        in_use(&giver_after, "gigabytes")
    );
    c.assert_quota_consistent("admin").await;
    c.assert_quota_consistent("p2").await;

    // The new owner can use and delete it; the usage follows.
    let (status, _) = taker.delete(&format!("/volumes/{id}?cascade=true")).await;
    assert_eq!(status, 202);
    c.wait_volume(&id, |s| s.is_none()).await;
    c.assert_quota_consistent("p2").await;
    let (_, taker_end) = c.get("/os-quota-sets/p2?usage=true").await;
    assert_eq!(in_use(&taker_end, "volumes"), 0);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revert_brings_back_the_snapshot_data_on_the_file_backend() {
    let mut c = Cluster::start("", FILE_BACKEND).await;
    let id = c.available_volume(json!({"size": 1})).await;
    let file = c.volumes_dir().join(format!("volume-{id}"));
    write_at(&file, 1 << 20, b"data-in-the-snapshot");

    let snap_id = c.available_snapshot(json!({"volume_id": id})).await;

    write_at(&file, 1 << 20, b"written-after-it-was");
    write_at(&file, 300 << 20, b"late");
    assert_eq!(read_at(&file, 1 << 20, 20), b"written-after-it-was");

    let (status, body) = c
        .at("3.40")
        .action(&id, json!({"revert": {"snapshot_id": snap_id}}))
        .await;
    assert_eq!(status, 202, "{body}");
    let v = c.wait_volume(&id, |s| s == Some("available")).await;
    assert_eq!(v["size"], 1);
    let s = c.wait_snapshot(&snap_id, "available").await;
    assert_eq!(s["status"], "available");
    assert_eq!(read_at(&file, 1 << 20, 20), b"data-in-the-snapshot");
    assert_eq!(read_at(&file, 300 << 20, 4), vec![0; 4]);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 1 << 30);

    let (status, _) = c.delete(&format!("/volumes/{id}?cascade=true")).await;
    assert_eq!(status, 202);
    c.wait_volume(&id, |s| s.is_none()).await;
    c.assert_quota_consistent("admin").await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retype_happens_in_place_or_not_at_all() {
    let mut c = Cluster::start("", FILE_BACKEND).await;
    for (name, specs) in [
        ("bronze", json!({})),
        ("silver", json!({"volume_backend_name": "file"})),
        ("elsewhere", json!({"volume_backend_name": "nowhere"})),
    ] {
        c.create_type(name, specs).await;
    }
    let (_, id, _) = c
        .create_volume(json!({"size": 1, "volume_type": "bronze"}))
        .await;
    let id = id.unwrap();
    let before = c.wait_volume(&id, |s| s == Some("available")).await;
    c.available_snapshot(json!({"volume_id": id})).await;

    c.action_ok(
        &id,
        json!({"os-retype": {"new_type": "silver", "migration_policy": "never"}}),
    )
    .await;
    let after = c.wait_volume(&id, |s| s == Some("available")).await;
    assert_eq!(after["volume_type"], "silver");
    assert_eq!(
        after["os-vol-host-attr:host"],
        before["os-vol-host-attr:host"]
    );
    assert_eq!(after["migration_status"], Value::Null);
    let (_, quota) = c.get("/os-quota-sets/admin?usage=true").await;
    assert_eq!(in_use(&quota, "volumes_silver"), 1);
    assert_eq!(in_use(&quota, "volumes_bronze"), 0);
    assert_eq!(in_use(&quota, "snapshots_silver"), 1);
    assert_eq!(in_use(&quota, "gigabytes_silver"), 2);
    c.assert_quota_consistent("admin").await;

    // The backend is not "nowhere": without migration the retype ends
    // with the volume as it was and a user message.
    c.action_ok(&id, json!({"os-retype": {"new_type": "elsewhere"}}))
        .await;
    let message = c.wait_messages(&id, 1).await.remove(0);
    assert_eq!(
        message["user_message"],
        "retype volume:Retype requires migration but is not allowed."
    );
    let unchanged = c.wait_volume(&id, |s| s == Some("available")).await;
    assert_eq!(unchanged["volume_type"], "silver");
    // on-demand finds no other backend to migrate to: the same outcome.
    c.action_ok(
        &id,
        json!({"os-retype": {"new_type": "elsewhere", "migration_policy": "on-demand"}}),
    )
    .await;
    c.wait_messages(&id, 2).await;
    let unchanged = c.wait_volume(&id, |s| s == Some("available")).await;
    assert_eq!(unchanged["volume_type"], "silver");
    c.assert_quota_consistent("admin").await;
    c.stop().await;
}
