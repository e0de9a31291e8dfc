//! `/snapshots`.

use clinker_db::{QuotaRepository, SnapshotRepository, VolumeRepository};
use clinker_types::{SnapshotStatus, VolumeStatus};
use serde_json::json;

use crate::common::{Harness, Options, PROJECT, USER, sorted_keys};
use crate::common::{Verbs, harness};

const SUMMARY_KEYS: &[&str] = &[
    "created_at",
    "description",
    "id",
    "metadata",
    "name",
    "size",
    "status",
    "updated_at",
    "volume_id",
];

fn keys(extra: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = SUMMARY_KEYS
        .iter()
        .chain(extra.iter())
        .map(|s| (*s).to_owned())
        .collect();
    all.sort();
    all
}

const EXTENDED: &[&str] = &[
    "os-extended-snapshot-attributes:progress",
    "os-extended-snapshot-attributes:project_id",
];

#[tokio::test]
async fn create_show_and_list_views() {
    let h = harness().await;
    let volume = h.available_volume(2).await;
    let s1 = json!({"volume_id": volume.to_string(), "name": " s1 ", "description": "d", "metadata": {"m": "1"}});
    let reply = h.post("/v3/snapshots", json!({ "snapshot": s1 })).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let s = &reply.body["snapshot"];
    assert_eq!(sorted_keys(s), keys(&[]));
    assert_eq!(s["status"], "creating");
    assert_eq!(s["name"], "s1");
    assert_eq!(s["size"], 2);
    assert_eq!(s["metadata"], json!({"m": "1"}));
    let id = s["id"].as_str().unwrap().to_owned();
    assert_eq!(
        Harness::wait_for(&h.volume, 1).await,
        vec!["create_snapshot"]
    );
    assert_eq!(
        h.usage().await,
        [
            ("gigabytes", 4),
            ("gigabytes___DEFAULT__", 4),
            ("snapshots", 1),
            ("snapshots___DEFAULT__", 1),
            ("volumes", 1),
            ("volumes___DEFAULT__", 1)
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    );

    let shown = h.get(&format!("/v3/snapshots/{id}")).await;
    assert_eq!(sorted_keys(&shown.body["snapshot"]), keys(EXTENDED));
    assert_eq!(
        shown.body["snapshot"]["os-extended-snapshot-attributes:project_id"],
        PROJECT
    );
    assert_eq!(
        shown.body["snapshot"]["os-extended-snapshot-attributes:progress"],
        "0%"
    );
    let latest = h.at("3.65").get(&format!("/v3/snapshots/{id}")).await;
    let mut extra = vec!["consumes_quota", "group_snapshot_id", "user_id"];
    extra.extend_from_slice(EXTENDED);
    assert_eq!(sorted_keys(&latest.body["snapshot"]), keys(&extra));
    assert_eq!(latest.body["snapshot"]["user_id"], USER);

    let list = h.at("3.65").get("/v3/snapshots").await;
    assert_eq!(sorted_keys(&list.body["snapshots"][0]), keys(&[]));
    let detail = h.get("/v3/snapshots/detail").await;
    assert_eq!(sorted_keys(&detail.body["snapshots"][0]), keys(EXTENDED));
    let created_at_363 = h
        .at("3.41")
        .post(
            "/v3/snapshots",
            json!({"snapshot": {"volume_id": volume.to_string()}}),
        )
        .await;
    assert_eq!(
        sorted_keys(&created_at_363.body["snapshot"]),
        keys(&["group_snapshot_id", "user_id"])
    );
}

#[tokio::test]
async fn create_refusals_change_nothing() {
    let h = harness().await;
    let creating = h.create_volume(json!({"size": 1})).await;
    let available = h.available_volume(1).await;
    let in_use = h.available_volume(1).await;
    h.db.reset_volume_status(in_use, Some(VolumeStatus::InUse), None, None)
        .await
        .unwrap();
    let body = |volume: &str, extra: serde_json::Value| {
        let mut snapshot = json!({"volume_id": volume});
        if let (Some(s), Some(e)) = (snapshot.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        json!({ "snapshot": snapshot })
    };
    let cases: Vec<(&str, serde_json::Value, u16, String)> = vec![
        ("3.0", body(&creating.to_string(), json!({})), 400,
         "Invalid volume: The snapshot cannot be created because volume has not been scheduled to any host.".into()),
        ("3.0", body(&in_use.to_string(), json!({})), 400,
         format!("Invalid volume: Volume {in_use} status must be available, but current status is: in-use.")),
        ("3.0", body(&in_use.to_string(), json!({"force": false})), 400,
         format!("Invalid volume: Volume {in_use} status must be available, but current status is: in-use.")),
        ("3.66", body(&in_use.to_string(), json!({"force": false})), 400,
         "Since microversion 3.66 the 'force' flag is invalid for this request.  For backward compatability, however, when the 'force' flag is passed with a value evaluating to True, it is silently ignored.".into()),
        ("3.0", body("4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1", json!({})), 404,
         "Volume 4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1 could not be found.".into()),
        ("3.0", json!({"snapshot": {"name": "x"}}), 400,
         "Invalid input for field/attribute snapshot. Value: {'name': 'x'}. 'volume_id' is a required property".into()),
        ("3.0", body(&available.to_string(), json!({"force": "perhaps"})), 400,
         "Invalid input for field/attribute force. Value: perhaps. 'perhaps' is not one of [True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', 'y', 't', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no', 'n', 'f']".into()),
        ("3.0", body(&available.to_string(), json!({"bogus": 1})), 400,
         format!("Invalid input for field/attribute snapshot. Value: {{'bogus': 1, 'volume_id': '{available}'}}. Additional properties are not allowed ('bogus' was unexpected)")),
    ];
    let usage_before = h.usage().await;
    for (version, request, status, message) in cases {
        let reply = h.at(version).post("/v3/snapshots", request.clone()).await;
        assert_eq!(reply.status, status, "{request}: {}", reply.text);
        let fault = if status == 404 {
            "itemNotFound"
        } else {
            "badRequest"
        };
        assert_eq!(reply.fault(fault), message, "{request}");
    }
    assert_eq!(h.snapshot_count().await, 0);
    assert_eq!(h.usage().await, usage_before);

    h.db.set_project_quota(PROJECT, "snapshots", 0)
        .await
        .unwrap();
    let reply = h
        .post("/v3/snapshots", body(&available.to_string(), json!({})))
        .await;
    assert_eq!(
        reply.refusal(413),
        "SnapshotLimitExceeded: Maximum number of snapshots allowed (0) exceeded"
    );
    h.db.set_project_quota(PROJECT, "snapshots", 10)
        .await
        .unwrap();
    h.db.set_project_quota(PROJECT, "gigabytes", 3)
        .await
        .unwrap();
    let reply = h
        .post("/v3/snapshots", body(&available.to_string(), json!({})))
        .await;
    assert_eq!(
        reply.fault("overLimit"),
        "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested 1G, quota is 3G and 3G has been consumed."
    );
    assert_eq!(h.snapshot_count().await, 0);

    // Attached volumes: with force below 3.66, always from 3.66.
    h.db.set_project_quota(PROJECT, "gigabytes", 100)
        .await
        .unwrap();
    let forced = h
        .post(
            "/v3/snapshots",
            body(&in_use.to_string(), json!({"force": true})),
        )
        .await;
    assert_eq!(forced.status, 202, "{}", forced.text);
    let modern = h
        .at("3.66")
        .post("/v3/snapshots", body(&in_use.to_string(), json!({})))
        .await;
    assert_eq!(modern.status, 202, "{}", modern.text);
}

#[tokio::test]
async fn unreachable_backend_discards_the_snapshot() {
    let h = Harness::with(Options {
        volume: false,
        ..Options::default()
    })
    .await;
    h.register_volume_service("nova").await;
    let volume = h.available_volume(1).await;
    let before = h.usage().await;
    let reply = h
        .post(
            "/v3/snapshots",
            json!({"snapshot": {"volume_id": volume.to_string()}}),
        )
        .await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(h.snapshot_count().await, 0);
    assert_eq!(h.usage().await, before);
}

#[tokio::test]
async fn update_delete_metadata_and_actions() {
    let h = harness().await;
    let volume = h.available_volume(1).await;
    let id = h.available_snapshot(volume).await;
    let uri = format!("/v3/snapshots/{id}");

    let reply = h
        .put(
            &uri,
            json!({"snapshot": {"display_name": "n2", "description": "d2"}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["snapshot"]["name"], "n2");
    assert_eq!(reply.body["snapshot"]["description"], "d2");
    assert_eq!(sorted_keys(&reply.body["snapshot"]), keys(&[]));
    let empty = h.put(&uri, json!({"snapshot": {}})).await;
    assert_eq!(empty.status, 400);

    let meta = format!("{uri}/metadata");
    assert_eq!(
        h.post(&meta, json!({"metadata": {"a": "1"}})).await.body,
        json!({"metadata": {"a": "1"}})
    );
    assert_eq!(
        h.put(&format!("{meta}/b"), json!({"meta": {"b": "2"}}))
            .await
            .body,
        json!({"meta": {"b": "2"}})
    );
    assert_eq!(
        h.get(&meta).await.body,
        json!({"metadata": {"a": "1", "b": "2"}})
    );
    assert_eq!(
        h.put(&meta, json!({"metadata": {"c": "3"}})).await.body,
        json!({"metadata": {"c": "3"}})
    );
    assert_eq!(h.delete(&format!("{meta}/c")).await.status, 200);
    let gone = h.get(&format!("{meta}/c")).await;
    assert_eq!(
        gone.fault("itemNotFound"),
        format!("Snapshot {id} has no metadata with key c.")
    );

    let action = format!("{uri}/action");
    let reply = h
        .post(&action, json!({"os-reset_status": {"status": "creating"}}))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let reply = h
        .post(
            &action,
            json!({"os-update_snapshot_status": {"status": "available", "progress": "90%"}}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let snapshot = h.db.get_snapshot(id).await.unwrap();
    assert_eq!(
        (snapshot.status, snapshot.progress.as_deref()),
        (SnapshotStatus::Available, Some("90%"))
    );
    let reply = h
        .post(
            &action,
            json!({"os-update_snapshot_status": {"status": "error"}}),
        )
        .await;
    assert_eq!(
        reply.fault("badRequest"),
        "Snapshot status available not allowed for update_snapshot_status"
    );
    let reply = h
        .post(&action, json!({"os-reset_status": {"status": "nope"}}))
        .await;
    assert!(
        reply
            .refusal(400)
            .starts_with("Snapshot status: nope is invalid")
    );
    let reply = h.post(&action, json!({"os-no_such_action": {}})).await;
    assert_eq!(reply.status, 400);

    // Delete needs available or error; force takes anything.
    h.db.set_snapshot_status(id, SnapshotStatus::Creating, None)
        .await
        .unwrap();
    let reply = h.delete(&uri).await;
    assert_eq!(
        reply.refusal(400),
        "Invalid snapshot: Snapshot status must be available or error and must not be part of a group."
    );
    let reply = h.post(&action, json!({"os-force_delete": {}})).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(h.snapshot_status(id).await, SnapshotStatus::Deleting);

    let other = h.available_snapshot(volume).await;
    let reply = h.delete(&format!("/v3/snapshots/{other}")).await;
    assert_eq!(reply.status, 202);
    let methods = Harness::wait_for(&h.volume, 4).await;
    assert_eq!(
        methods,
        vec![
            "create_snapshot",
            "delete_snapshot",
            "create_snapshot",
            "delete_snapshot"
        ]
    );
    let missing = h.get("/v3/snapshots/nope").await;
    assert_eq!(
        missing.fault("itemNotFound"),
        "Snapshot nope could not be found."
    );
    assert_eq!(h.volume_status(volume).await, VolumeStatus::Available);
}

#[tokio::test]
async fn snapshot_lists() {
    let h = harness().await;
    let volume = h.available_volume(1).await;
    let mut ids = Vec::new();
    for name in ["b", "a", "c"] {
        let reply = h
            .post(
                "/v3/snapshots",
                json!({"snapshot": {"volume_id": volume.to_string(), "name": name}}),
            )
            .await;
        ids.push(reply.id::<String>("snapshot"));
    }
    let names = |reply: &crate::common::Reply| -> Vec<String> {
        reply.body["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let sorted = h
        .get("/v3/snapshots?sort_key=display_name&sort_dir=asc")
        .await;
    assert_eq!(names(&sorted), vec!["a", "b", "c"]);
    let page = h.get("/v3/snapshots?sort=name:desc&limit=2").await;
    assert_eq!(names(&page), vec!["c", "b"]);
    let next = page.body["snapshots_links"][0]["href"].as_str().unwrap();
    let rest = h.get(next.trim_start_matches("http://api.test:8776")).await;
    assert_eq!(names(&rest), vec!["a"]);
    let by_name = h.get("/v3/snapshots/detail?name=a").await;
    assert_eq!(names(&by_name), vec!["a"]);
    let by_status = h.get("/v3/snapshots?status=available").await;
    assert!(names(&by_status).is_empty());
    let counted = h
        .at("3.45")
        .get("/v3/snapshots?with_count=true&limit=1")
        .await;
    assert_eq!(counted.body["count"], 3);
    let bad_marker = h
        .get("/v3/snapshots?marker=4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1")
        .await;
    assert_eq!(
        bad_marker.refusal(404),
        "Snapshot 4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1 could not be found."
    );
    let bad_sort = h.get("/v3/snapshots?sort=size").await;
    assert_eq!(
        bad_sort.fault("badRequest"),
        "Invalid input received: Invalid sort key"
    );
    let bad_limit = h.get("/v3/snapshots?limit=-1").await;
    assert_eq!(bad_limit.status, 400);
    let zero = h.get("/v3/snapshots?limit=0").await;
    assert_eq!(zero.body, json!({"snapshots": []}));
    assert_eq!(ids.len(), 3);
}
