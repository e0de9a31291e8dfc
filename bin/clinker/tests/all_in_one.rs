//! The all-in-one cluster over real HTTP: the flows, the concurrency
//! invariants (quota, capacity claims) and bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Cluster, FILE_BACKEND};
use futures_util::future::join_all;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn volume_snapshot_clone_extend_delete_on_the_file_backend() {
    let mut c = Cluster::start("", FILE_BACKEND).await;
    let (status, id, body) = c.create_volume(json!({"size": 1, "name": "demo"})).await;
    assert_eq!(status, 202, "{body}");
    let id = id.unwrap();
    assert_eq!(body["volume"]["status"], "creating");
    let v = c.wait_volume(&id, |s| s == Some("available")).await;
    assert_eq!(v["os-vol-host-attr:host"], "testnode@file#file");
    assert!(c.volumes_dir().join(format!("volume-{id}")).exists());

    let snap_id = c
        .available_snapshot(json!({"volume_id": id, "name": "s1"}))
        .await;

    let (status, from_snap, _) = c
        .create_volume(json!({"size": 2, "snapshot_id": snap_id}))
        .await;
    assert_eq!(status, 202);
    let (status, clone, _) = c.create_volume(json!({"source_volid": id})).await;
    assert_eq!(status, 202);
    let from_snap = from_snap.unwrap();
    let clone = clone.unwrap();
    let fs = c.wait_volume(&from_snap, |s| s == Some("available")).await;
    assert_eq!(fs["snapshot_id"], snap_id.as_str());
    let cl = c.wait_volume(&clone, |s| s == Some("available")).await;
    assert_eq!(
        (cl["source_volid"].as_str(), cl["size"].as_i64()),
        (Some(id.as_str()), Some(1))
    );

    c.action_ok(&id, json!({"os-extend": {"new_size": 3}}))
        .await;
    let grown = c.wait_volume(&id, |s| s == Some("available")).await;
    let grown = if grown["size"] == 3 {
        grown
    } else {
        c.wait_volume(&id, |_| true).await
    };
    assert_eq!(grown["size"], 3);
    assert_eq!(
        std::fs::metadata(c.volumes_dir().join(format!("volume-{id}")))
            .unwrap()
            .len(),
        3 << 30
    );

    let (_, list) = c.get("/volumes/detail").await;
    assert_eq!(list["volumes"].as_array().unwrap().len(), 3);

    // A volume with snapshots is refused without cascade.
    let (status, err) = c.delete(&format!("/volumes/{id}")).await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["badRequest"]["message"]
            .as_str()
            .unwrap()
            .contains("have snapshots")
    );
    for (path, ok) in [
        (format!("/volumes/{from_snap}"), 202),
        (format!("/volumes/{clone}"), 202),
        (format!("/volumes/{id}?cascade=true"), 202),
    ] {
        let (status, body) = c.delete(&path).await;
        assert_eq!(status, ok, "{path}: {body}");
    }
    for v in [&id, &from_snap, &clone] {
        c.wait_volume(v, |s| s.is_none()).await;
    }
    let (status, _) = c.get(&format!("/snapshots/{snap_id}")).await;
    assert_eq!(status, 404);
    let leftovers: Vec<_> = std::fs::read_dir(c.volumes_dir()).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    c.assert_quota_consistent("admin").await;

    let (_, services) = c.get("/os-services").await;
    let states: Vec<(String, String)> = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["host"].as_str().unwrap().to_owned(),
                s["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        states.contains(&("testnode".to_owned(), "up".to_owned())),
        "{states:?}"
    );
    assert!(
        states.contains(&("testnode@file".to_owned(), "up".to_owned())),
        "{states:?}"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_holds_under_50_concurrent_creates() {
    let mut c = Cluster::start("quota_volumes = 20\nquota_gigabytes = -1", FILE_BACKEND).await;
    let results = join_all((0..50).map(|i| {
        let c = &c;
        async move {
            c.create_volume(json!({"size": 1, "name": format!("q{i}")}))
                .await
        }
    }))
    .await;
    let accepted: Vec<String> = results
        .iter()
        .filter(|r| r.0 == 202)
        .filter_map(|r| r.1.clone())
        .collect();
    let refused: Vec<_> = results.iter().filter(|r| r.0 == 413).collect();
    assert_eq!(accepted.len(), 20);
    assert_eq!(refused.len(), 30);
    let message = refused[0].2["overLimit"]["message"].as_str().unwrap();
    assert!(message.contains("VolumeLimitExceeded"), "{message}");
    c.assert_quota_consistent("admin").await;
    for id in &accepted {
        c.wait_volume(id, |s| s == Some("available")).await;
    }
    let (_, q) = c.get("/os-quota-sets/admin?usage=true").await;
    assert_eq!(q["quota_set"]["volumes"]["in_use"], 20);
    assert_eq!(q["quota_set"]["volumes"]["limit"], 20);
    // Deleting them all brings the usage back to zero, still equal to a recount.
    let paths: Vec<String> = accepted.iter().map(|id| format!("/volumes/{id}")).collect();
    join_all(paths.iter().map(|p| c.delete(p))).await;
    for id in &accepted {
        c.wait_volume(id, |s| s.is_none()).await;
    }
    c.assert_quota_consistent("admin").await;
    let (_, q) = c.get("/os-quota-sets/admin?usage=true").await;
    assert_eq!(q["quota_set"]["volumes"]["in_use"], 0);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn capacity_claims_never_overcommit_a_pool() {
    let mut c = Cluster::start(
        "quota_volumes = -1\nquota_gigabytes = -1",
        "enabled_backends = small\n[small]\nvolume_driver = file\nfile_capacity_gb = 10\n",
    )
    .await;
    let results = join_all((0..30).map(|i| {
        let c = &c;
        async move {
            c.create_volume(json!({"size": 1, "name": format!("cap{i}")}))
                .await
        }
    }))
    .await;
    let ids: Vec<String> = results.into_iter().map(|r| r.1.unwrap()).collect();
    let mut available = 0;
    let mut errors = Vec::new();
    for id in &ids {
        let v = c
            .wait_volume(id, |s| matches!(s, Some("available" | "error")))
            .await;
        if v["status"] == "available" {
            available += 1;
        } else {
            errors.push(id.clone());
        }
    }
    assert_eq!(
        available, 10,
        "a 10 GiB pool holds exactly ten 1 GiB volumes"
    );
    assert_eq!(errors.len(), 20);
    let (_, messages) = c.at("3.3").get("/messages").await;
    let texts: Vec<&str> = messages["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["user_message"].as_str())
        .collect();
    assert_eq!(texts.len(), 20, "{messages}");
    assert!(
        texts.iter().all(
            |t| *t == "schedule allocate volume:Could not find any available weighted backend."
        )
    );
    let allocations = c.db().pool_allocations().await.unwrap();
    assert_eq!(allocations.get("testnode@small#small"), Some(&10));
    c.assert_quota_consistent("admin").await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_refused_and_changes_nothing() {
    let mut c = Cluster::start("", FILE_BACKEND).await;
    let (status, id, _) = c.create_volume(json!({"size": 1})).await;
    assert_eq!(status, 202);
    c.wait_volume(&id.unwrap(), |s| s == Some("available"))
        .await;
    let before = c.db().quota_usages("admin").await.unwrap();

    let raw = |body: &'static str, version: &'static str| {
        let c = &c;
        async move {
            let resp = c
                .http
                .post(format!("{}/volumes", c.base))
                .header("Content-Type", "application/json")
                .header("OpenStack-API-Version", format!("volume {version}"))
                .body(body)
                .send()
                .await
                .unwrap();
            resp.status().as_u16()
        }
    };
    assert_eq!(raw("{not json", "3.0").await, 400);
    assert_eq!(
        raw(r#"{"volume": {"size": 1, "bogus": 1}}"#, "3.53").await,
        400
    );
    for size in [
        json!(0),
        json!(-1),
        json!(9_223_372_036_854_775_807_i64),
        json!("abc"),
        json!(1.5),
    ] {
        let (status, _, body) = c.create_volume(json!({"size": size})).await;
        assert_eq!(status, 400, "size {size}: {body}");
    }
    let huge_name = "x".repeat(1 << 20);
    let (status, _, _) = c.create_volume(json!({"size": 1, "name": huge_name})).await;
    assert!(
        status == 400 || status == 413,
        "1 MiB name answered {status}"
    );
    let (status, _, body) = c
        .create_volume(json!({"size": 1, "volume_type": "no-such-type"}))
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = c
        .get("/volumes/detail?marker=00000000-0000-0000-0000-000000000000")
        .await;
    assert!(
        status == 400 || status == 404,
        "bad marker answered {status}"
    );
    let (status, _) = c.get("/volumes/detail?sort=color:asc").await;
    assert_eq!(status, 400);
    let (status, _) = c.get("/volumes/not-a-uuid").await;
    assert_eq!(status, 404);

    let (_, list) = c.get("/volumes").await;
    assert_eq!(
        list["volumes"].as_array().unwrap().len(),
        1,
        "nothing was created"
    );
    assert_eq!(
        c.db().quota_usages("admin").await.unwrap(),
        before,
        "quota unchanged"
    );
    c.assert_quota_consistent("admin").await;
    c.stop().await;
}
