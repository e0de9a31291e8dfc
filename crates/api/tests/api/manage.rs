//! Manage / unmanage at the API: `os-volume-manage`, `os-snapshot-manage`,
//! `manageable_volumes` / `manageable_snapshots` (3.8), `os-unmanage`:
//! Cinder's texts, the microversion gates, the admin-only policy, and
//! nothing written on bad input.

use clinker_db::{ManageRepository, QuotaRepository, VolumeRepository};
use clinker_types::{SnapshotStatus, VolumeStatus};
use serde_json::{Value, json};

use crate::common::Verbs;
use crate::common::{Harness, PROJECT, Reply, sorted_keys};
use crate::surface_support::{MEMBER, at, harness};

async fn manage(h: &Harness, path: &str, version: &'static str, volume: Value) -> Reply {
    h.with_headers(&[at(version)])
        .post(path, json!({ "volume": volume }))
        .await
}

async fn assert_usage_is_recount(h: &Harness) {
    let recount: std::collections::BTreeMap<String, i64> =
        h.db.recount_usages(PROJECT)
            .await
            .unwrap()
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .collect();
    assert_eq!(h.usage().await, recount);
}

#[tokio::test]
async fn manage_volume_checks_input_like_cinder_and_writes_nothing_on_refusal() {
    let h = harness().await;
    let existing = h.available_volume(1).await;
    let before = h.volume_count().await;
    let path = "/v3/os-volume-manage";
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"ref": {"source-name": "x"}}),
            400,
            "Invalid input received: Host field is missing.",
        ),
        (
            json!({"host": "nope@x#y", "ref": {"source-name": "x"}}),
            503,
            "Host 'nope@x#y' not found",
        ),
        (
            json!({"host": "node1@file#file", "ref": {"source-name": "x"}, "volume_type": "gold"}),
            400,
            "Invalid volume type: Cannot find requested 'gold' volume type",
        ),
        (
            json!({"host": "node1@file#file", "ref": {"source-name": format!("volume-{existing}")}}),
            400,
            "Invalid volume: Unable to manage existing volume. The volume is already managed",
        ),
    ];
    for (body, status, text) in cases {
        let reply = manage(&h, path, "volume 3.0", body.clone()).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text);
        let fault = if status == 503 {
            "serviceUnavailable"
        } else {
            "badRequest"
        };
        assert_eq!(reply.fault(fault), text, "{body}");
    }
    // Schema: ref is required, unknown keys refused, bootable a boolean.
    for body in [
        json!({"host": "node1@file"}),
        json!({"host": "node1@file", "ref": {}, "size": 1}),
        json!({"host": "node1@file", "ref": {}, "bootable": "maybe"}),
        json!({"host": "node1@file", "ref": 3}),
    ] {
        let reply = manage(&h, path, "volume 3.0", body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
    }
    // cluster only from 3.16; both at once refused.
    let cluster = manage(
        &h,
        path,
        "volume 3.16",
        json!({"host": "node1@file", "cluster": "c", "ref": {}}),
    )
    .await;
    assert_eq!(
        cluster.fault("badRequest"),
        "Invalid input received: One and only one of cluster and host must be set."
    );
    let old = manage(&h, path, "volume 3.15", json!({"cluster": "c", "ref": {}})).await;
    assert_eq!(old.status, 400);
    // Admin only.
    let member = h
        .with_headers(&[MEMBER])
        .post(
            path,
            json!({"volume": {"host": "node1@file", "ref": {"source-name": "x"}}}),
        )
        .await;
    assert_eq!(member.status, 403);
    assert_eq!(h.volume_count().await, before);
    assert!(!h.volume.methods().contains(&"manage_existing".to_owned()));
}

#[tokio::test]
async fn manage_volume_inserts_a_managing_row_and_casts_to_the_backend() {
    let h = harness().await;
    let reply = manage(
        &h,
        &format!("/v3/{PROJECT}/os-volume-manage"),
        "volume 3.0",
        json!({
            "host": "node1@file#file",
            "ref": {"source-name": "volume-old"},
            "name": "  managed  ",
            "bootable": "true",
            "metadata": {"k": "v"},
        }),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let volume = &reply.body["volume"];
    // Cinder shows `managing` as `creating`.
    assert_eq!(volume["status"], "creating");
    assert_eq!(volume["name"], "managed");
    assert_eq!(volume["bootable"], "true");
    assert_eq!(volume["size"], 0);
    assert_eq!(volume["availability_zone"], "nova");
    let id = volume["id"].as_str().unwrap().parse().unwrap();
    let row = h.db.get_volume(id).await.unwrap();
    assert_eq!(row.status, VolumeStatus::Managing);
    assert_eq!(row.host.as_deref(), Some("node1@file#file"));
    let methods = Harness::wait_for(&h.volume, 1).await;
    assert_eq!(methods, ["manage_existing"]);
    assert_eq!(
        h.volume.seen.lock().unwrap()[0].args,
        json!({"volume_id": id.to_string(), "reference": {"source-name": "volume-old"}})
    );
    assert_eq!(h.usage().await.get("volumes"), Some(&1));
    assert_usage_is_recount(&h).await;

    // The 3.8 resource: 404 below, the same answer from 3.8.
    let below = manage(
        &h,
        "/v3/manageable_volumes",
        "volume 3.7",
        json!({"host": "node1@file", "ref": {"source-name": "x"}}),
    )
    .await;
    assert_eq!(below.status, 404);
    let v38 = manage(
        &h,
        "/v3/manageable_volumes",
        "volume 3.8",
        json!({"host": "node1@file", "ref": {"source-name": "x"}, "volume_type": "__DEFAULT__"}),
    )
    .await;
    assert_eq!(v38.status, 202, "{}", v38.text);
    assert_eq!(v38.body["volume"]["volume_type"], "__DEFAULT__");
    assert_usage_is_recount(&h).await;
}

#[tokio::test]
async fn manage_volume_on_an_unreachable_backend_is_undone() {
    let mut h = harness().await;
    h.stop_consumers().await;
    let before = h.volume_count().await;
    let reply = manage(
        &h,
        "/v3/os-volume-manage",
        "volume 3.0",
        json!({"host": "node1@file", "ref": {"source-name": "x"}}),
    )
    .await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(h.volume_count().await, before);
    assert_usage_is_recount(&h).await;
}

#[tokio::test]
async fn manageable_lists_sort_paginate_and_gate_like_cinder() {
    let h = harness().await;
    let list = |path: &'static str, version: &'static str| {
        let h = &h;
        async move { h.with_headers(&[at(version)]).get(path).await }
    };
    let below = list("/v3/manageable_volumes?host=node1@file", "volume 3.7").await;
    assert_eq!(below.status, 404);
    let summary = list("/v3/manageable_volumes?host=node1@file", "volume 3.8").await;
    assert_eq!(summary.status, 200, "{}", summary.text);
    let entries = summary.body["manageable-volumes"].as_array().unwrap();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["reference"]["source-name"].as_str().unwrap())
        .collect();
    // Default sort: reference, descending.
    assert_eq!(names, ["c-disk", "b-disk", "a-disk"]);
    assert_eq!(
        sorted_keys(&entries[0]),
        ["reference", "safe_to_manage", "size"]
    );
    let detail = list(
        "/v3/manageable_volumes/detail?host=node1@file&sort=size:asc&limit=2",
        "volume 3.8",
    )
    .await;
    let entries = detail.body["manageable-volumes"].as_array().unwrap();
    assert_eq!(
        entries
            .iter()
            .map(|e| e["size"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(
        sorted_keys(&entries[0]),
        [
            "cinder_id",
            "extra_info",
            "reason_not_safe",
            "reference",
            "safe_to_manage",
            "size"
        ]
    );
    let after = list(
        "/v3/manageable_volumes?host=node1@file&marker=%7B%22source-name%22%3A%22c-disk%22%7D",
        "volume 3.8",
    )
    .await;
    assert_eq!(
        after.body["manageable-volumes"].as_array().unwrap().len(),
        2
    );
    // The extension's list answers at any version.
    let legacy = list("/v3/os-volume-manage/detail?host=node1@file", "volume 3.0").await;
    assert_eq!(legacy.status, 200);
    let snapshots = list("/v3/manageable_snapshots?host=node1@file", "volume 3.8").await;
    assert_eq!(
        snapshots.body["manageable-snapshots"][0]["source_reference"],
        json!({"source-name": "volume-v"})
    );
    for (path, status, text) in [
        (
            "/v3/manageable_volumes?host=node1@file&sort=name",
            400,
            "Invalid sort keys passed: name",
        ),
        (
            "/v3/manageable_volumes?host=node1@file&sort_dir=up",
            400,
            "Invalid sort dirs passed: up",
        ),
        (
            "/v3/manageable_volumes",
            400,
            "Invalid input received: Host field is missing.",
        ),
        (
            "/v3/manageable_volumes?host=node1@file&marker=%7B%22source-name%22%3A%22z%22%7D",
            400,
            "Invalid input received: marker not found: {\"source-name\":\"z\"}",
        ),
        (
            "/v3/manageable_volumes?host=other@b",
            404,
            "Service None could not be found on host other@b.",
        ),
    ] {
        let reply = list(path, "volume 3.8").await;
        assert_eq!(reply.status, status, "{path}: {}", reply.text);
        let fault = if status == 404 {
            "itemNotFound"
        } else {
            "badRequest"
        };
        assert_eq!(reply.fault(fault), text, "{path}");
    }
    let member = h
        .with_headers(&[MEMBER, at("volume 3.8")])
        .get("/v3/manageable_volumes?host=node1@file")
        .await;
    assert_eq!(member.status, 403);
}

#[tokio::test]
async fn unmanage_volume_follows_the_delete_rules() {
    let h = harness().await;
    let volume = h.available_volume(1).await;
    let v = volume.to_string();
    let unmanage = |id: String| {
        let h = &h;
        async move {
            h.post(
                &format!("/v3/volumes/{id}/action"),
                json!({"os-unmanage": {}}),
            )
            .await
        }
    };
    // With a snapshot: Cinder's delete text, nothing changed.
    let snapshot = h.available_snapshot(volume).await;
    let refused = unmanage(v.clone()).await;
    assert_eq!(
        refused.refusal(400),
        "Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer."
    );
    assert_eq!(h.volume_status(volume).await, VolumeStatus::Available);
    // Snapshot unmanage first.
    let reply = h
        .post(
            &format!("/v3/snapshots/{snapshot}/action"),
            json!({"os-unmanage": null}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(
        h.snapshot_status(snapshot).await,
        SnapshotStatus::Unmanaging
    );
    let again = h
        .post(
            &format!("/v3/snapshots/{snapshot}/action"),
            json!({"os-unmanage": null}),
        )
        .await;
    assert_eq!(
        again.fault("badRequest"),
        "Invalid snapshot: Snapshot status must be available or error and must not be part of a group."
    );
    h.db.finish_snapshot_unmanage(snapshot, "snapshot-x")
        .await
        .unwrap();

    let member = h
        .with_headers(&[MEMBER])
        .post(
            &format!("/v3/volumes/{v}/action"),
            json!({"os-unmanage": {}}),
        )
        .await;
    assert_eq!(member.status, 404, "another project's volume is invisible");
    let missing = unmanage(clinker_types::VolumeId::new_random().to_string()).await;
    assert_eq!(missing.status, 404);
    let done = unmanage(v.clone()).await;
    assert_eq!(done.status, 202, "{}", done.text);
    let shown = h.get(&format!("/v3/volumes/{v}")).await;
    assert_eq!(shown.body["volume"]["status"], "unmanaging");
    let methods = Harness::wait_for(&h.volume, 4).await;
    assert!(
        methods.contains(&"unmanage_volume".to_owned()),
        "{methods:?}"
    );
    assert!(
        methods.contains(&"unmanage_snapshot".to_owned()),
        "{methods:?}"
    );
}

#[tokio::test]
async fn manage_snapshot_checks_and_casts() {
    let h = harness().await;
    let volume = h.available_volume(2).await;
    let post = |path: &'static str, version: &'static str, body: Value| {
        let h = &h;
        async move {
            h.with_headers(&[at(version)])
                .post(path, json!({ "snapshot": body }))
                .await
        }
    };
    let before = h.snapshot_count().await;
    let missing = post(
        "/v3/os-snapshot-manage",
        "volume 3.0",
        json!({"volume_id": clinker_types::VolumeId::new_random().to_string(), "ref": {"source-name": "s"}}),
    )
    .await;
    assert_eq!(missing.status, 404);
    for body in [
        json!({"ref": {"source-name": "s"}}),
        json!({"volume_id": volume.to_string()}),
        json!({"volume_id": "not-a-uuid", "ref": "s"}),
        json!({"volume_id": volume.to_string(), "ref": "s", "force": true}),
    ] {
        let reply = post("/v3/os-snapshot-manage", "volume 3.0", body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
    }
    let below = post(
        "/v3/manageable_snapshots",
        "volume 3.7",
        json!({"volume_id": volume.to_string(), "ref": {"source-name": "s"}}),
    )
    .await;
    assert_eq!(below.status, 404);
    assert_eq!(h.snapshot_count().await, before);

    let reply = post(
        "/v3/manageable_snapshots",
        "volume 3.8",
        json!({"volume_id": volume.to_string(), "ref": {"source-name": "snapshot-old"},
               "name": "managed", "metadata": {"a": "b"}}),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let snapshot = &reply.body["snapshot"];
    assert_eq!(snapshot["status"], "creating");
    assert_eq!(snapshot["name"], "managed");
    assert_eq!(snapshot["size"], 2);
    let methods = Harness::wait_for(&h.volume, 1).await;
    assert_eq!(methods, ["manage_existing_snapshot"]);
    assert_eq!(
        h.volume.seen.lock().unwrap()[0].args["reference"],
        json!({"source-name": "snapshot-old"})
    );
    assert_usage_is_recount(&h).await;
}
