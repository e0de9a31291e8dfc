//! `/volumes`: views per microversion, lists, bad input, quotas, undo on
//! an unreachable scheduler, update, delete, metadata.

use clinker_db::{JournalRepository, QuotaRepository, VolumeRepository};
use clinker_types::{VolumeId, VolumeStatus};
use serde_json::{Value, json};

use crate::common::{Harness, Options, POOL, PROJECT, USER, sorted_keys};
use crate::common::{Verbs, harness};

const BASE_KEYS: &[&str] = &[
    "attachments",
    "availability_zone",
    "bootable",
    "consistencygroup_id",
    "created_at",
    "description",
    "encrypted",
    "id",
    "links",
    "metadata",
    "migration_status",
    "multiattach",
    "name",
    "replication_status",
    "size",
    "snapshot_id",
    "source_volid",
    "status",
    "updated_at",
    "user_id",
    "volume_type",
];

const EXTENSION_KEYS: &[&str] = &[
    "os-vol-host-attr:host",
    "os-vol-mig-status-attr:migstat",
    "os-vol-mig-status-attr:name_id",
    "os-vol-tenant-attr:tenant_id",
];

fn keys(extra: &[&[&str]]) -> Vec<String> {
    let mut all: Vec<String> = BASE_KEYS.iter().map(|s| (*s).to_owned()).collect();
    for group in extra {
        all.extend(group.iter().map(|s| (*s).to_owned()));
    }
    all.sort();
    all
}

#[tokio::test]
async fn create_response_has_no_extension_attributes() {
    let h = harness().await;
    let reply = h
        .post(
            "/v3/volumes",
            json!({"volume": {"size": 1, "name": "  first  ", "metadata": {"k": "v"}}}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let v = &reply.body["volume"];
    assert_eq!(sorted_keys(v), keys(&[]));
    assert_eq!(v["status"], "creating");
    assert_eq!(v["name"], "first");
    assert_eq!(v["volume_type"], "__DEFAULT__");
    assert_eq!(v["bootable"], "false");
    assert_eq!(v["encrypted"], false);
    assert_eq!(v["updated_at"], Value::Null);
    assert_eq!(v["availability_zone"], "nova");
    assert_eq!(v["user_id"], USER);
    assert_eq!(v["metadata"], json!({"k": "v"}));
    assert_eq!(v["attachments"], json!([]));
    assert!(v["created_at"].as_str().unwrap().contains('.'));

    let latest = h
        .at("3.71")
        .post("/v3/volumes", json!({"volume": {"size": 2}}))
        .await;
    assert_eq!(latest.status, 202, "{}", latest.text);
    assert_eq!(
        sorted_keys(&latest.body["volume"]),
        keys(&[&[
            "cluster_name",
            "consumes_quota",
            "group_id",
            "provider_id",
            "service_uuid",
            "shared_targets",
            "volume_type_id"
        ]])
    );
    assert_eq!(latest.body["volume"]["shared_targets"], Value::Null);
    assert_eq!(latest.body["volume"]["consumes_quota"], true);

    let methods = Harness::wait_for(&h.scheduler, 2).await;
    assert_eq!(methods, vec!["create_volume", "create_volume"]);
    let spec = h.scheduler.seen.lock().unwrap()[1].args["request_spec"].clone();
    assert_eq!(spec["size"], 2);
    assert_eq!(spec["volume_type"]["name"], "__DEFAULT__");
    assert_eq!(spec["availability_zone"], "nova");
    assert_eq!(spec["project_id"], PROJECT);
    // The journal row keeps the request the cast carried (an image or a
    // backup included), for a scheduler that must place it again if the
    // cast is lost.
    let id: VolumeId = latest.id("volume");
    let kept =
        h.db.journal_request_spec(&id.to_string())
            .await
            .unwrap()
            .expect("the create's journal row keeps its request");
    assert_eq!(serde_json::to_value(kept).unwrap(), spec);
}

#[tokio::test]
async fn detail_fields_follow_the_microversion() {
    let h = harness().await;
    let id = h.available_volume(1).await;
    let uri = format!("/v3/volumes/{id}");
    let cases: &[(&str, &[&str])] = &[
        ("3.0", &[]),
        ("3.12", &[]),
        ("3.13", &["group_id"]),
        ("3.21", &["group_id", "provider_id"]),
        (
            "3.48",
            &["group_id", "provider_id", "service_uuid", "shared_targets"],
        ),
        (
            "3.61",
            &[
                "cluster_name",
                "group_id",
                "provider_id",
                "service_uuid",
                "shared_targets",
            ],
        ),
        (
            "3.63",
            &[
                "cluster_name",
                "group_id",
                "provider_id",
                "service_uuid",
                "shared_targets",
                "volume_type_id",
            ],
        ),
        (
            "3.65",
            &[
                "cluster_name",
                "consumes_quota",
                "group_id",
                "provider_id",
                "service_uuid",
                "shared_targets",
                "volume_type_id",
            ],
        ),
        (
            "3.69",
            &[
                "cluster_name",
                "consumes_quota",
                "group_id",
                "provider_id",
                "service_uuid",
                "shared_targets",
                "volume_type_id",
            ],
        ),
        (
            "3.71",
            &[
                "cluster_name",
                "consumes_quota",
                "group_id",
                "provider_id",
                "service_uuid",
                "shared_targets",
                "volume_type_id",
            ],
        ),
    ];
    for (version, extra) in cases {
        let reply = h.at(version).get(&uri).await;
        assert_eq!(reply.status, 200, "{version}: {}", reply.text);
        assert_eq!(
            sorted_keys(&reply.body["volume"]),
            keys(&[EXTENSION_KEYS, extra]),
            "at {version}"
        );
        let v = &reply.body["volume"];
        assert_eq!(v["status"], "available");
        assert_eq!(v["os-vol-host-attr:host"], POOL);
        assert_eq!(v["os-vol-tenant-attr:tenant_id"], PROJECT);
    }
    // A null shared_targets is shown as true below 3.69 and as null from it.
    let at48 = h.at("3.48").get(&uri).await;
    assert_eq!(at48.body["volume"]["shared_targets"], true);
    let at69 = h.at("3.69").get(&uri).await;
    assert_eq!(at69.body["volume"]["shared_targets"], Value::Null);
    let at63 = h.at("3.63").get(&uri).await;
    let type_id =
        h.db.get_volume(id)
            .await
            .unwrap()
            .volume_type_id
            .to_string();
    assert_eq!(at63.body["volume"]["volume_type_id"], type_id);
    assert_eq!(at63.body["volume"]["volume_type"], "__DEFAULT__");
}

#[tokio::test]
async fn bad_input_changes_nothing() {
    let h = harness().await;
    let missing_type = "4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1";
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "3.0",
            json!({"volume": {"size": 0}}),
            400,
            "Invalid input for field/attribute size. Value: 0. 0 is less than the minimum of 1",
        ),
        (
            "3.0",
            json!({"volume": {"size": -1}}),
            400,
            "Invalid input for field/attribute size. Value: -1. -1 is less than the minimum of 1",
        ),
        (
            "3.0",
            json!({"volume": {"size": 9_223_372_036_854_775_808_u64}}),
            400,
            "Invalid input for field/attribute size. Value: 9223372036854775808. 9223372036854775808 is greater than the maximum of 2147483647",
        ),
        (
            "3.0",
            json!({"volume": {"size": "abc"}}),
            400,
            "Invalid input for field/attribute size. Value: abc. 'abc' does not match '^[0-9]+$'",
        ),
        (
            "3.0",
            json!({"volume": {"size": 1.5}}),
            400,
            "Invalid input for field/attribute size. Value: 1.5. 1.5 is not of type 'integer', 'string', 'null'",
        ),
        (
            "3.0",
            json!({"volume": {"name": "x"}}),
            400,
            "Invalid input received: Volume size 'None' must be an integer and greater than 0",
        ),
        (
            "3.0",
            json!({"volume": {"size": 1, "volume_type": missing_type}}),
            404,
            "Volume type 4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1 could not be found.",
        ),
        (
            "3.0",
            json!({"volume": {"size": 1, "volume_type": "nope"}}),
            404,
            "Volume type with name nope could not be found.",
        ),
        (
            "3.0",
            json!({"volume": {"size": 1, "availability_zone": "mars"}}),
            400,
            "Availability zone 'mars' is invalid.",
        ),
        (
            "3.0",
            json!({"volume": {"size": 1, "metadata": {"k": 1}}}),
            400,
            "Invalid input for field/attribute k. Value: 1. 1 is not of type 'string'",
        ),
        (
            "3.0",
            json!({"volume": {"size": 1, "name": "n".repeat(256)}}),
            400,
            "Invalid input received: name has 256 characters, more than 255.",
        ),
        (
            "3.0",
            json!({"volume": {"size": 1, "multiattach": true}}),
            400,
            "multiattach parameter has been removed. The default behavior is to use multiattach enabled volume types. Contact your administrator to create a multiattach enabled volume type and use it to create multiattach volumes.",
        ),
        (
            "3.0",
            json!({"volume": {"size": 1, "imageRef": "cirros"}}),
            400,
            "Invalid image identifier or unable to access requested image.",
        ),
        (
            "3.47",
            json!({"volume": {"size": 1, "backup_id": missing_type}}),
            404,
            "Backup 4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1 could not be found.",
        ),
        (
            "3.13",
            json!({"volume": {"size": 1, "group_id": "g1"}}),
            404,
            "Group g1 could not be found.",
        ),
        (
            "3.0",
            json!({"volume": {"size": 1, "snapshot_id": missing_type}}),
            404,
            "Snapshot 4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1 could not be found.",
        ),
        (
            "3.0",
            json!({"volume": {"size": 1, "source_volid": missing_type}}),
            404,
            "Volume 4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1 could not be found.",
        ),
        (
            "3.0",
            json!({"volume": {"size": 1, "snapshot_id": "nope"}}),
            400,
            "Invalid input for field/attribute snapshot_id. Value: nope. 'nope' is not valid under any of the given schemas",
        ),
        (
            "3.0",
            json!({"volume": {"size": 1}, "extra": 1}),
            400,
            "Additional properties are not allowed ('extra' was unexpected)",
        ),
        (
            "3.0",
            json!({"size": 1}),
            400,
            "'volume' is a required property",
        ),
        (
            "3.53",
            json!({"volume": {"size": 1, "bogus": 1}}),
            400,
            "Invalid input for field/attribute volume. Value: {'bogus': 1, 'size': 1}. Additional properties are not allowed ('bogus' was unexpected)",
        ),
    ];
    for (version, body, status, message) in cases {
        let reply = h.at(version).post("/v3/volumes", body.clone()).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text);
        let fault = if status == 404 {
            "itemNotFound"
        } else {
            "badRequest"
        };
        assert_eq!(reply.fault(fault), message, "{body}");
    }
    assert_eq!(h.volume_count().await, 0);
    assert!(h.usage().await.is_empty(), "{:?}", h.usage().await);
    assert!(h.scheduler.methods().is_empty());
    // Unknown keys are tolerated below 3.53.
    let lenient = h
        .at("3.52")
        .post("/v3/volumes", json!({"volume": {"size": 1, "bogus": 1}}))
        .await;
    assert_eq!(lenient.status, 202, "{}", lenient.text);
}

#[tokio::test]
async fn quota_refusals_use_cinder_texts() {
    let h = harness().await;
    h.db.set_project_quota(PROJECT, "volumes", 1).await.unwrap();
    h.create_volume(json!({"size": 1})).await;
    let reply = h.post("/v3/volumes", json!({"volume": {"size": 1}})).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.header("retry-after"), Some("0"));
    assert_eq!(reply.body["overLimit"]["retryAfter"], "0");
    assert_eq!(reply.body["overLimit"]["code"], 413);
    assert_eq!(
        reply.fault("overLimit"),
        "VolumeLimitExceeded: Maximum number of volumes allowed (1) exceeded for quota 'volumes'."
    );
    h.db.set_project_quota(PROJECT, "volumes", 10)
        .await
        .unwrap();
    h.db.set_project_quota(PROJECT, "gigabytes", 5)
        .await
        .unwrap();
    let reply = h.post("/v3/volumes", json!({"volume": {"size": 5}})).await;
    assert_eq!(
        reply.fault("overLimit"),
        "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested 5G, quota is 5G and 1G has been consumed."
    );
    h.db.set_project_quota(PROJECT, "per_volume_gigabytes", 2)
        .await
        .unwrap();
    let reply = h.post("/v3/volumes", json!({"volume": {"size": 3}})).await;
    assert_eq!(
        reply.fault("overLimit"),
        "VolumeSizeExceedsLimit: Requested volume size 3G is larger than maximum allowed limit 2G."
    );
    assert_eq!(h.volume_count().await, 1);
    assert_eq!(h.usage().await.get("gigabytes"), Some(&1));
}

#[tokio::test]
async fn unreachable_scheduler_leaves_nothing_behind() {
    let h = Harness::with(Options {
        scheduler: false,
        ..Options::default()
    })
    .await;
    h.register_volume_service("nova").await;
    let reply = h.post("/v3/volumes", json!({"volume": {"size": 3}})).await;
    assert_eq!(reply.refusal(503), "Service is unavailable at this time.");
    assert_eq!(h.volume_count().await, 0);
    assert!(h.usage().await.is_empty(), "{:?}", h.usage().await);
}

#[tokio::test]
async fn update_volume() {
    let h = harness().await;
    let id = h.available_volume(1).await;
    let uri = format!("/v3/volumes/{id}");
    let update = json!({"name": "renamed", "display_description": "d", "metadata": {"a": "1"}});
    let reply = h.put(&uri, json!({ "volume": update })).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["volume"]["name"], "renamed");
    assert_eq!(reply.body["volume"]["description"], "d");
    assert_eq!(reply.body["volume"]["metadata"], json!({"a": "1"}));
    assert_eq!(sorted_keys(&reply.body["volume"]), keys(&[]));
    assert_eq!(h.put(&uri, json!({"volume": {}})).await.status, 200);
    let strict = h.at("3.53").put(&uri, json!({"volume": {}})).await;
    assert_eq!(
        strict.refusal(400),
        "Invalid input for field/attribute volume. Value: {}. {} is not valid under any of the given schemas"
    );
    let unknown = h.put(&uri, json!({"volume": {"size": 5}})).await;
    assert_eq!(unknown.status, 400);
    let missing = h
        .put(
            "/v3/volumes/4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1",
            json!({"volume": {"name": "x"}}),
        )
        .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn delete_volume() {
    let h = harness().await;
    let id = h.available_volume(1).await;
    let uri = format!("/v3/volumes/{id}");
    let reply = h.delete(&uri).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(reply.text, "");
    assert_eq!(h.volume_status(id).await, VolumeStatus::Deleting);
    // Idempotent: deleting again is accepted and re-cast.
    assert_eq!(h.delete(&uri).await.status, 202);
    let methods = Harness::wait_for(&h.volume, 2).await;
    assert_eq!(methods, vec!["delete_volume", "delete_volume"]);
    assert_eq!(
        h.volume.seen.lock().unwrap()[0].args["volume_id"],
        id.to_string()
    );

    // Never placed: gone at once, quota released.
    let unplaced = h.create_volume(json!({"size": 2})).await;
    assert_eq!(
        h.delete(&format!("/v3/volumes/{unplaced}")).await.status,
        202
    );
    assert!(!h.db.volume_exists(unplaced).await.unwrap());

    // Wrong status: Cinder's text.
    let busy = h.available_volume(1).await;
    h.db.reset_volume_status(busy, Some(VolumeStatus::InUse), None, None)
        .await
        .unwrap();
    let reply = h.delete(&format!("/v3/volumes/{busy}")).await;
    assert_eq!(
        reply.refusal(400),
        "Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer."
    );
    // force needs 3.23; below it the parameter is ignored.
    assert_eq!(
        h.delete(&format!("/v3/volumes/{busy}?force=true"))
            .await
            .status,
        400
    );
    let forced = h
        .at("3.23")
        .delete(&format!("/v3/volumes/{busy}?force=true"))
        .await;
    assert_eq!(forced.status, 202, "{}", forced.text);

    // Snapshots block a plain delete; cascade takes them along.
    let parent = h.available_volume(1).await;
    let snap = h.available_snapshot(parent).await;
    let reply = h.delete(&format!("/v3/volumes/{parent}")).await;
    assert_eq!(reply.status, 400);
    let reply = h
        .delete(&format!("/v3/volumes/{parent}?cascade=true"))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(
        h.snapshot_status(snap).await,
        clinker_types::SnapshotStatus::Deleting
    );
    let reply = h
        .delete(&format!("/v3/volumes/{parent}?cascade=maybe"))
        .await;
    assert_eq!(
        reply.fault("badRequest"),
        "Value 'maybe' for 'cascade' is not a boolean."
    );

    let missing = h.delete("/v3/volumes/nope").await;
    assert_eq!(missing.refusal(404), "Volume nope could not be found.");
}

#[tokio::test]
async fn delete_succeeds_when_the_backend_is_down() {
    let h = Harness::with(Options {
        volume: false,
        ..Options::default()
    })
    .await;
    h.register_volume_service("nova").await;
    let id = h.available_volume(1).await;
    let reply = h.delete(&format!("/v3/volumes/{id}")).await;
    assert_eq!(reply.status, 202);
    // The journal row lets the volume service resume it.
    assert_eq!(h.volume_status(id).await, VolumeStatus::Deleting);
}

#[tokio::test]
async fn volume_metadata_routes() {
    let h = harness().await;
    let id = h.available_volume(1).await;
    let base = format!("/v3/volumes/{id}/metadata");
    let reply = h
        .post(&base, json!({"metadata": {"a": "1", "b": "2"}}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body, json!({"metadata": {"a": "1", "b": "2"}}));
    let reply = h.put(&base, json!({"metadata": {"c": "3"}})).await;
    assert_eq!(reply.body, json!({"metadata": {"c": "3"}}));
    assert_eq!(h.get(&base).await.body, json!({"metadata": {"c": "3"}}));
    let reply = h
        .put(&format!("{base}/d"), json!({"meta": {"d": "4"}}))
        .await;
    assert_eq!(reply.body, json!({"meta": {"d": "4"}}));
    let reply = h.get(&format!("{base}/d")).await;
    assert_eq!(reply.body, json!({"meta": {"d": "4"}}));
    let mismatch = h
        .put(&format!("{base}/e"), json!({"meta": {"d": "4"}}))
        .await;
    assert_eq!(
        mismatch.fault("badRequest"),
        "Request body and URI mismatch"
    );
    let two = h
        .put(&format!("{base}/d"), json!({"meta": {"d": "4", "e": "5"}}))
        .await;
    assert_eq!(two.status, 400);
    let deleted = h.delete(&format!("{base}/d")).await;
    assert_eq!(deleted.status, 200);
    let gone = h.get(&format!("{base}/d")).await;
    assert_eq!(
        gone.refusal(404),
        format!("Volume {id} has no metadata with key d.")
    );
    assert_eq!(h.delete(&format!("{base}/d")).await.status, 404);
    let bad = h
        .post(&base, json!({"metadata": {"k": "v".repeat(256)}}))
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        h.db.get_volume(id).await.unwrap().metadata,
        std::collections::BTreeMap::from([("c".to_owned(), "3".to_owned())])
    );
}

#[tokio::test]
async fn create_from_snapshot_and_clone_inherit_and_pin() {
    let h = harness().await;
    let source = h.available_volume(2).await;
    let snap = h.available_snapshot(source).await;
    let from_snap = h
        .create_volume(json!({"snapshot_id": snap.to_string()}))
        .await;
    let v = h.db.get_volume(from_snap).await.unwrap();
    assert_eq!((v.size, v.snapshot_id), (2, Some(snap)));
    let small = h
        .post(
            "/v3/volumes",
            json!({"volume": {"source_volid": source.to_string(), "size": 1}}),
        )
        .await;
    assert_eq!(
        small.refusal(400),
        "Invalid input received: Volume size '1'GB cannot be smaller than original volume size  2GB. They must be >= original volume size."
    );
    let clone = h
        .create_volume(json!({"source_volid": source.to_string()}))
        .await;
    assert_eq!(
        h.db.get_volume(clone).await.unwrap().source_volid,
        Some(source)
    );
    let methods = Harness::wait_for(&h.scheduler, 3).await;
    assert_eq!(methods.len(), 3);
    {
        let seen = h.scheduler.seen.lock().unwrap();
        assert_eq!(
            seen[0].args["request_spec"]["resource_backend"],
            Value::Null
        );
        for message in &seen[1..] {
            assert_eq!(message.args["request_spec"]["resource_backend"], POOL);
        }
    }
    let creating = h.create_volume(json!({"size": 1})).await;
    let reply = h
        .post(
            "/v3/volumes",
            json!({"volume": {"source_volid": creating.to_string()}}),
        )
        .await;
    assert_eq!(
        reply.fault("badRequest"),
        "Invalid volume: Originating source volume status must be one of 'available, in-use' values"
    );
    let quota = h.db.quota_usages(PROJECT).await.unwrap();
    assert_eq!(quota.get("volumes"), Some(&4));
}

#[tokio::test]
async fn a_zone_registered_after_the_zones_were_cached_is_usable_at_once() {
    use clinker_db::{ServiceRegistration, ServiceRepository};
    let h = harness().await;
    // The first create fills the API's zone cache with `nova`.
    h.create_volume(json!({"size": 1, "availability_zone": "nova"}))
        .await;
    let unknown = h
        .post(
            "/v3/volumes",
            json!({"volume": {"size": 1, "availability_zone": "az2"}}),
        )
        .await;
    assert_eq!(unknown.status, 400, "{}", unknown.text);
    assert!(
        unknown.text.contains("Availability zone 'az2' is invalid."),
        "{}",
        unknown.text
    );
    // A service in a new zone registers: a cached list without it must not
    // refuse the zone.
    h.db.register_service(&ServiceRegistration {
        host: "node2@file".into(),
        binary: "cinder-volume".into(),
        topic: "cinder-volume".into(),
        availability_zone: "az2".into(),
        rpc_current_version: "3.20".into(),
    })
    .await
    .unwrap();
    h.create_volume(json!({"size": 1, "availability_zone": "az2"}))
        .await;
    // And the cached zones still serve the first one.
    h.create_volume(json!({"size": 1, "availability_zone": "nova"}))
        .await;
}
