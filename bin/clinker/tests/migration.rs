//! Volume migration end to end: two file backends in one all-in-one
//! Clinker over real HTTP, a retype with `migration_policy = on-demand`
//! and an administrator's `os-migrate_volume`, the data checked byte for
//! byte on the destination, the quota against a recount.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use clinker_testkit::files::{read_at, write_at};
use common::{Cluster, TWO_FILE_BACKENDS};
use serde_json::json;

const PATTERN: &[u8] = b"clinker moves this volume, bytes and holes";
const OFFSET: u64 = 300 * 1024 * 1024 + 11;

fn volume_file(c: &Cluster, backend: &str, id: &str) -> std::path::PathBuf {
    c.dir
        .path()
        .join("volumes")
        .join(backend)
        .join(format!("volume-{id}"))
}

async fn volume_count(c: &Cluster) -> usize {
    let (_, body) = c.get("/volumes/detail?all_tenants=1").await;
    body["volumes"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retype_on_demand_and_os_migrate_volume_move_the_data_between_backends() {
    let mut c = Cluster::start("", TWO_FILE_BACKENDS).await;
    for (name, backend) in [("src", "file"), ("dst", "file2")] {
        c.create_type(name, json!({"volume_backend_name": backend}))
            .await;
    }
    let (status, id, body) = c
        .create_volume(json!({"size": 1, "name": "mover", "volume_type": "src"}))
        .await;
    assert_eq!(status, 202, "{body}");
    let id = id.unwrap();
    let before = c.wait_volume(&id, |s| s == Some("available")).await;
    assert_eq!(before["os-vol-host-attr:host"], "testnode@file#file");
    let source = volume_file(&c, "file", &id);
    write_at(&source, OFFSET, PATTERN);

    // Retype to a type only the other backend serves: the volume moves.
    c.action_ok(
        &id,
        json!({"os-retype": {"new_type": "dst", "migration_policy": "on-demand"}}),
    )
    .await;
    let after = c
        .wait_volume_until(&id, |v| v["volume_type"] == "dst")
        .await;
    assert_eq!(after["status"], "available");
    assert_eq!(after["os-vol-mig-status-attr:migstat"], "success");
    assert_eq!(after["migration_status"], "success");
    assert_eq!(after["os-vol-host-attr:host"], "testnode@file2#file2");
    for key in [
        "id",
        "size",
        "name",
        "user_id",
        "os-vol-tenant-attr:tenant_id",
    ] {
        assert_eq!(after[key], before[key], "{key}");
    }
    let moved = volume_file(&c, "file2", &id);
    assert_eq!(read_at(&moved, OFFSET, PATTERN.len()), PATTERN);
    assert_eq!(read_at(&moved, 0, 4096), vec![0; 4096]);
    assert_eq!(std::fs::metadata(&moved).unwrap().len(), 1 << 30);
    assert!(!source.exists(), "the old backing is removed");
    // The temporary volume is gone with the completion.
    assert_eq!(volume_count(&c).await, 1);
    let (_, quota) = c.get("/os-quota-sets/admin?usage=true").await;
    assert_eq!(quota["quota_set"]["volumes_dst"]["in_use"], 1);
    assert_eq!(quota["quota_set"]["volumes_src"]["in_use"], 0);
    c.assert_quota_consistent("admin").await;

    // Its type pins file2: the scheduler refuses to move it back to file.
    c.action_ok(&id, json!({"os-migrate_volume": {"host": "testnode@file"}}))
        .await;
    let refused = c
        .wait_volume_until(&id, |v| v["migration_status"] == "error")
        .await;
    assert_eq!(refused["os-vol-host-attr:host"], "testnode@file2#file2");
    assert_eq!(refused["status"], "available");

    // A type without a backend pin may go anywhere: back to file.
    c.create_type("anywhere", json!({})).await;
    c.action_ok(&id, json!({"os-retype": {"new_type": "anywhere"}}))
        .await;
    c.wait_volume_until(&id, |v| v["volume_type"] == "anywhere")
        .await;
    c.action_ok(
        &id,
        json!({"os-migrate_volume": {"host": "testnode@file", "lock_volume": true}}),
    )
    .await;
    let back = c
        .wait_volume_until(&id, |v| v["migration_status"] == "success")
        .await;
    assert_eq!(back["os-vol-host-attr:host"], "testnode@file#file");
    assert_eq!(back["status"], "available");
    assert_eq!(back["volume_type"], "anywhere");
    let home = volume_file(&c, "file", &id);
    assert_eq!(read_at(&home, OFFSET, PATTERN.len()), PATTERN);
    assert!(!moved.exists());
    assert_eq!(volume_count(&c).await, 1);
    c.assert_quota_consistent("admin").await;

    // A migrated volume is an ordinary volume: it deletes cleanly.
    let (status, _) = c.delete(&format!("/volumes/{id}")).await;
    assert_eq!(status, 202);
    c.wait_volume(&id, |s| s.is_none()).await;
    assert!(!home.exists());
    c.assert_quota_consistent("admin").await;
    c.stop().await;
}
