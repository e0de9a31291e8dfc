//! `/volumes`: views per microversion, lists, bad input, quotas, undo on
//! an unreachable scheduler, update, delete, metadata.

use clinker_db::{QuotaRepository, SnapshotRepository, VolumeRepository};
use clinker_types::{VolumeId, VolumeStatus};
use serde_json::{Value, json};

use crate::common::{Harness, Options, POOL, PROJECT, USER, sorted_keys};

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

async fn harness() -> Harness {
    let h = Harness::new().await;
    h.register_volume_service("nova").await;
    h
}

#[tokio::test]
async fn create_response_has_no_extension_attributes() {
    let h = harness().await;
    let reply = h
        .call(
            "POST",
            "/v3/volumes",
            Some(json!({"volume": {"size": 1, "name": "  first  ", "metadata": {"k": "v"}}})),
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
        .call_at(
            "3.71",
            "POST",
            "/v3/volumes",
            Some(json!({"volume": {"size": 2}})),
        )
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
    let seen = h.scheduler.seen.lock().unwrap();
    let spec = &seen[1].args["request_spec"];
    assert_eq!(spec["size"], 2);
    assert_eq!(spec["volume_type"]["name"], "__DEFAULT__");
    assert_eq!(spec["availability_zone"], "nova");
    assert_eq!(spec["project_id"], PROJECT);
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
        let reply = h.call_at(version, "GET", &uri, None).await;
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
    let at48 = h.call_at("3.48", "GET", &uri, None).await;
    assert_eq!(at48.body["volume"]["shared_targets"], true);
    let at69 = h.call_at("3.69", "GET", &uri, None).await;
    assert_eq!(at69.body["volume"]["shared_targets"], Value::Null);
    let at63 = h.call_at("3.63", "GET", &uri, None).await;
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
async fn lists_paginate_with_links_and_count() {
    let h = harness().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            h.create_volume(json!({"size": i + 1, "name": format!("v{i}")}))
                .await,
        );
    }
    let page = h
        .call("GET", "/v3/volumes?limit=2&sort=size:asc", None)
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    let items = page.body["volumes"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(sorted_keys(&items[0]), vec!["id", "links", "name"]);
    assert_eq!(items[0]["id"], ids[0].to_string());
    let next = page.body["volumes_links"][0]["href"].as_str().unwrap();
    assert_eq!(page.body["volumes_links"][0]["rel"], "next");
    assert_eq!(
        next,
        format!(
            "http://api.test:8776/v3/volumes?limit=2&sort=size%3Aasc&marker={}",
            ids[1]
        )
    );
    let path = next.trim_start_matches("http://api.test:8776");
    let second = h.call("GET", path, None).await;
    let sizes: Vec<i64> = second.body["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let id: VolumeId = v["id"].as_str().unwrap().parse().unwrap();
            ids.iter().position(|x| *x == id).unwrap() as i64 + 1
        })
        .collect();
    assert_eq!(sizes, vec![3, 4]);
    // The last partial page has no next link.
    let last = h
        .call(
            "GET",
            &format!("/v3/volumes?limit=2&sort=size:asc&marker={}", ids[3]),
            None,
        )
        .await;
    assert_eq!(last.body["volumes"].as_array().unwrap().len(), 1);
    assert!(last.body.get("volumes_links").is_none());

    let detail = h
        .call_at(
            "3.45",
            "GET",
            "/v3/volumes/detail?limit=3&with_count=true",
            None,
        )
        .await;
    assert_eq!(detail.status, 200, "{}", detail.text);
    assert_eq!(detail.body["count"], 5);
    assert_eq!(detail.body["volumes"].as_array().unwrap().len(), 3);
    assert!(
        detail.body["volumes_links"][0]["href"]
            .as_str()
            .unwrap()
            .starts_with("http://api.test:8776/v3/volumes/detail?limit=3&with_count=true&marker=")
    );
    // Default order: newest first.
    assert_eq!(detail.body["volumes"][0]["id"], ids[4].to_string());
    // Before 3.45 `with_count` is neither honoured nor an error.
    let old = h
        .call("GET", "/v3/volumes/detail?with_count=true", None)
        .await;
    assert!(old.body.get("count").is_none());
    assert_eq!(
        old.body["volumes"].as_array().unwrap().len(),
        0,
        "an unknown filter matches nothing"
    );
    // limit=0 returns nothing and no link.
    let zero = h.call("GET", "/v3/volumes?limit=0", None).await;
    assert_eq!(zero.body, json!({"volumes": []}));
}

#[tokio::test]
async fn list_parameters_are_validated() {
    let h = harness().await;
    h.create_volume(json!({"size": 1})).await;
    let cases: &[(&str, u16, &str)] = &[
        (
            "sort=bogus",
            400,
            "Invalid input received: Invalid sort key",
        ),
        (
            "sort_key=size&sort_dir=up",
            400,
            "Invalid input received: Unknown sort direction, must be 'desc' or 'asc'.",
        ),
        (
            "sort=size&sort_key=size",
            400,
            "The 'sort_key' and 'sort_dir' parameters are deprecated and cannot be used with the 'sort' parameter.",
        ),
        ("limit=-1", 400, "limit param must be positive"),
        ("limit=abc", 400, "limit param must be an integer"),
        ("offset=abc", 400, "offset must be an integer"),
        (
            "marker=4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1",
            404,
            "Volume 4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1 could not be found.",
        ),
        ("marker=junk", 404, "Volume junk could not be found."),
        (
            "all_tenants=maybe",
            400,
            "Value 'maybe' for 'all_tenants' is not a boolean.",
        ),
    ];
    for (query, status, message) in cases {
        let reply = h
            .call("GET", &format!("/v3/volumes/detail?{query}"), None)
            .await;
        assert_eq!(reply.status, *status, "{query}: {}", reply.text);
        let fault = if *status == 404 {
            "itemNotFound"
        } else {
            "badRequest"
        };
        assert_eq!(reply.fault(fault), *message, "{query}");
    }
    let reply = h
        .call_at("3.2", "GET", "/v3/volumes?bootable=maybe", None)
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.fault("badRequest"),
        "Invalid input received: 'bootable = maybe'"
    );
    let reply = h
        .call_at(
            "3.60",
            "GET",
            "/v3/volumes?created_at=after:2020-01-01",
            None,
        )
        .await;
    assert_eq!(reply.fault("badRequest"), "Invalid after operator");
}

#[tokio::test]
async fn list_filters() {
    let h = harness().await;
    let gold = h
        .create_volume(json!({"size": 1, "name": "gold-1", "metadata": {"tier": "gold"}}))
        .await;
    let iron = h
        .create_volume(json!({"size": 2, "name": "iron-1", "metadata": {"tier": "iron"}}))
        .await;
    h.make_available(iron).await;
    let ids = |reply: &crate::common::Reply| -> Vec<String> {
        let mut ids: Vec<String> = reply.body["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let by_name = h.call("GET", "/v3/volumes?name=gold-1", None).await;
    assert_eq!(ids(&by_name), vec![gold.to_string()]);
    let by_status = h
        .call("GET", "/v3/volumes/detail?status=available", None)
        .await;
    assert_eq!(ids(&by_status), vec![iron.to_string()]);
    let python = h
        .call(
            "GET",
            "/v3/volumes?metadata=%7B%27tier%27%3A+%27gold%27%7D",
            None,
        )
        .await;
    assert_eq!(ids(&python), vec![gold.to_string()]);
    let json_meta = h
        .call(
            "GET",
            "/v3/volumes?metadata=%7B%22tier%22%3A%22iron%22%7D",
            None,
        )
        .await;
    assert_eq!(ids(&json_meta), vec![iron.to_string()]);
    let by_size = h.call("GET", "/v3/volumes?size=2", None).await;
    assert_eq!(ids(&by_size), vec![iron.to_string()]);
    let not_bootable = h.call("GET", "/v3/volumes?bootable=false", None).await;
    assert_eq!(ids(&not_bootable).len(), 2);
    let like = h
        .call_at("3.34", "GET", "/v3/volumes?name~=GOLD", None)
        .await;
    assert_eq!(ids(&like), vec![gold.to_string()]);
    let recent = h
        .call_at(
            "3.60",
            "GET",
            "/v3/volumes?created_at=gt:2000-01-01T00:00:00",
            None,
        )
        .await;
    assert_eq!(ids(&recent).len(), 2);
    let future = h
        .call_at(
            "3.60",
            "GET",
            "/v3/volumes?created_at=gt:2999-01-01T00:00:00",
            None,
        )
        .await;
    assert!(ids(&future).is_empty());

    // Another project's volume: only visible to an admin asking for all.
    let other = h
        .send(
            "POST",
            "/v3/volumes",
            Some(json!({"volume": {"size": 1}})),
            &[("x-auth-token", "u2:aaaa0000")],
        )
        .await;
    assert_eq!(other.status, 202);
    assert_eq!(ids(&h.call("GET", "/v3/volumes", None).await).len(), 2);
    assert_eq!(
        ids(&h.call("GET", "/v3/volumes?all_tenants=1", None).await).len(),
        3
    );
    let other_id = other.body["volume"]["id"].as_str().unwrap();
    // Admins see any volume by id, like Cinder.
    assert_eq!(
        h.call("GET", &format!("/v3/volumes/{other_id}"), None)
            .await
            .status,
        200
    );
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
        let reply = h
            .call_at(version, "POST", "/v3/volumes", Some(body.clone()))
            .await;
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
        .call_at(
            "3.52",
            "POST",
            "/v3/volumes",
            Some(json!({"volume": {"size": 1, "bogus": 1}})),
        )
        .await;
    assert_eq!(lenient.status, 202, "{}", lenient.text);
}

#[tokio::test]
async fn quota_refusals_use_cinder_texts() {
    let h = harness().await;
    h.db.set_project_quota(PROJECT, "volumes", 1).await.unwrap();
    h.create_volume(json!({"size": 1})).await;
    let reply = h
        .call("POST", "/v3/volumes", Some(json!({"volume": {"size": 1}})))
        .await;
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
    let reply = h
        .call("POST", "/v3/volumes", Some(json!({"volume": {"size": 5}})))
        .await;
    assert_eq!(
        reply.fault("overLimit"),
        "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested 5G, quota is 5G and 1G has been consumed."
    );
    h.db.set_project_quota(PROJECT, "per_volume_gigabytes", 2)
        .await
        .unwrap();
    let reply = h
        .call("POST", "/v3/volumes", Some(json!({"volume": {"size": 3}})))
        .await;
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
    let reply = h
        .call("POST", "/v3/volumes", Some(json!({"volume": {"size": 3}})))
        .await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(
        reply.fault("serviceUnavailable"),
        "Service is unavailable at this time."
    );
    assert_eq!(h.volume_count().await, 0);
    assert!(h.usage().await.is_empty(), "{:?}", h.usage().await);
}

#[tokio::test]
async fn update_volume() {
    let h = harness().await;
    let id = h.available_volume(1).await;
    let uri = format!("/v3/volumes/{id}");
    let reply = h
        .call(
            "PUT",
            &uri,
            Some(json!({"volume": {"name": "renamed", "display_description": "d", "metadata": {"a": "1"}}})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["volume"]["name"], "renamed");
    assert_eq!(reply.body["volume"]["description"], "d");
    assert_eq!(reply.body["volume"]["metadata"], json!({"a": "1"}));
    assert_eq!(sorted_keys(&reply.body["volume"]), keys(&[]));
    assert_eq!(
        h.call("PUT", &uri, Some(json!({"volume": {}})))
            .await
            .status,
        200
    );
    let strict = h
        .call_at("3.53", "PUT", &uri, Some(json!({"volume": {}})))
        .await;
    assert_eq!(strict.status, 400);
    assert_eq!(
        strict.fault("badRequest"),
        "Invalid input for field/attribute volume. Value: {}. {} is not valid under any of the given schemas"
    );
    let unknown = h
        .call("PUT", &uri, Some(json!({"volume": {"size": 5}})))
        .await;
    assert_eq!(unknown.status, 400);
    let missing = h
        .call(
            "PUT",
            "/v3/volumes/4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1",
            Some(json!({"volume": {"name": "x"}})),
        )
        .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn delete_volume() {
    let h = harness().await;
    let id = h.available_volume(1).await;
    let uri = format!("/v3/volumes/{id}");
    let reply = h.call("DELETE", &uri, None).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(reply.text, "");
    assert_eq!(
        h.db.get_volume(id).await.unwrap().status,
        VolumeStatus::Deleting
    );
    // Idempotent: deleting again is accepted and re-cast.
    assert_eq!(h.call("DELETE", &uri, None).await.status, 202);
    let methods = Harness::wait_for(&h.volume, 2).await;
    assert_eq!(methods, vec!["delete_volume", "delete_volume"]);
    assert_eq!(
        h.volume.seen.lock().unwrap()[0].args["volume_id"],
        id.to_string()
    );

    // Never placed: gone at once, quota released.
    let unplaced = h.create_volume(json!({"size": 2})).await;
    assert_eq!(
        h.call("DELETE", &format!("/v3/volumes/{unplaced}"), None)
            .await
            .status,
        202
    );
    assert!(!h.db.volume_exists(unplaced).await.unwrap());

    // Wrong status: Cinder's text.
    let busy = h.available_volume(1).await;
    h.db.reset_volume_status(busy, Some(VolumeStatus::InUse), None, None)
        .await
        .unwrap();
    let reply = h.call("DELETE", &format!("/v3/volumes/{busy}"), None).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.fault("badRequest"),
        "Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer."
    );
    // force needs 3.23; below it the parameter is ignored.
    assert_eq!(
        h.call("DELETE", &format!("/v3/volumes/{busy}?force=true"), None)
            .await
            .status,
        400
    );
    let forced = h
        .call_at(
            "3.23",
            "DELETE",
            &format!("/v3/volumes/{busy}?force=true"),
            None,
        )
        .await;
    assert_eq!(forced.status, 202, "{}", forced.text);

    // Snapshots block a plain delete; cascade takes them along.
    let parent = h.available_volume(1).await;
    let snap = h.available_snapshot(parent).await;
    let reply = h
        .call("DELETE", &format!("/v3/volumes/{parent}"), None)
        .await;
    assert_eq!(reply.status, 400);
    let reply = h
        .call(
            "DELETE",
            &format!("/v3/volumes/{parent}?cascade=true"),
            None,
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(
        h.db.get_snapshot(snap).await.unwrap().status,
        clinker_types::SnapshotStatus::Deleting
    );
    let reply = h
        .call(
            "DELETE",
            &format!("/v3/volumes/{parent}?cascade=maybe"),
            None,
        )
        .await;
    assert_eq!(
        reply.fault("badRequest"),
        "Value 'maybe' for 'cascade' is not a boolean."
    );

    let missing = h.call("DELETE", "/v3/volumes/nope", None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.fault("itemNotFound"),
        "Volume nope could not be found."
    );
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
    let reply = h.call("DELETE", &format!("/v3/volumes/{id}"), None).await;
    assert_eq!(reply.status, 202);
    // The journal row lets the volume service resume it.
    assert_eq!(
        h.db.get_volume(id).await.unwrap().status,
        VolumeStatus::Deleting
    );
}

#[tokio::test]
async fn volume_metadata_routes() {
    let h = harness().await;
    let id = h.available_volume(1).await;
    let base = format!("/v3/volumes/{id}/metadata");
    let reply = h
        .call(
            "POST",
            &base,
            Some(json!({"metadata": {"a": "1", "b": "2"}})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body, json!({"metadata": {"a": "1", "b": "2"}}));
    let reply = h
        .call("PUT", &base, Some(json!({"metadata": {"c": "3"}})))
        .await;
    assert_eq!(reply.body, json!({"metadata": {"c": "3"}}));
    assert_eq!(
        h.call("GET", &base, None).await.body,
        json!({"metadata": {"c": "3"}})
    );
    let reply = h
        .call(
            "PUT",
            &format!("{base}/d"),
            Some(json!({"meta": {"d": "4"}})),
        )
        .await;
    assert_eq!(reply.body, json!({"meta": {"d": "4"}}));
    let reply = h.call("GET", &format!("{base}/d"), None).await;
    assert_eq!(reply.body, json!({"meta": {"d": "4"}}));
    let mismatch = h
        .call(
            "PUT",
            &format!("{base}/e"),
            Some(json!({"meta": {"d": "4"}})),
        )
        .await;
    assert_eq!(
        mismatch.fault("badRequest"),
        "Request body and URI mismatch"
    );
    let two = h
        .call(
            "PUT",
            &format!("{base}/d"),
            Some(json!({"meta": {"d": "4", "e": "5"}})),
        )
        .await;
    assert_eq!(two.status, 400);
    let deleted = h.call("DELETE", &format!("{base}/d"), None).await;
    assert_eq!(deleted.status, 200);
    let gone = h.call("GET", &format!("{base}/d"), None).await;
    assert_eq!(gone.status, 404);
    assert_eq!(
        gone.fault("itemNotFound"),
        format!("Volume {id} has no metadata with key d.")
    );
    assert_eq!(
        h.call("DELETE", &format!("{base}/d"), None).await.status,
        404
    );
    let bad = h
        .call(
            "POST",
            &base,
            Some(json!({"metadata": {"k": "v".repeat(256)}})),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        h.db.get_volume(id).await.unwrap().metadata,
        std::collections::BTreeMap::from([("c".to_owned(), "3".to_owned())])
    );
}

#[tokio::test]
async fn volume_summary() {
    let h = harness().await;
    h.create_volume(json!({"size": 2, "metadata": {"k": "a"}}))
        .await;
    h.create_volume(json!({"size": 3, "metadata": {"k": "b"}}))
        .await;
    let reply = h.call_at("3.12", "GET", "/v3/volumes/summary", None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body,
        json!({"volume-summary": {"total_count": 2, "total_size": 5}})
    );
    let reply = h.call_at("3.36", "GET", "/v3/volumes/summary", None).await;
    assert_eq!(
        reply.body["volume-summary"]["metadata"],
        json!({"k": ["a", "b"]})
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
        .call(
            "POST",
            "/v3/volumes",
            Some(json!({"volume": {"source_volid": source.to_string(), "size": 1}})),
        )
        .await;
    assert_eq!(small.status, 400);
    assert_eq!(
        small.fault("badRequest"),
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
        .call(
            "POST",
            "/v3/volumes",
            Some(json!({"volume": {"source_volid": creating.to_string()}})),
        )
        .await;
    assert_eq!(
        reply.fault("badRequest"),
        "Invalid volume: Originating source volume status must be one of 'available, in-use' values"
    );
    let quota = h.db.quota_usages(PROJECT).await.unwrap();
    assert_eq!(quota.get("volumes"), Some(&4));
}
