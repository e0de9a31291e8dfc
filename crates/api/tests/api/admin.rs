//! Types, quotas, limits, services, zones, pools, capabilities, messages.

use clinker_db::{MessageRepository, QuotaRepository, VolumeTypeRepository};
use clinker_types::model::UserMessage;
use clinker_types::{MessageId, Timestamp};
use serde_json::{Value, json};

use crate::common::{BACKEND, Harness, Options, POOL, PROJECT, sorted_keys};
use crate::common::{Verbs, harness};

#[tokio::test]
async fn volume_type_crud() {
    let h = harness().await;
    let specs = json!({"volume_backend_name": "file"});
    let gold = json!({"name": "gold", "description": "fast", "extra_specs": specs});
    let reply = h.post("/v3/types", json!({ "volume_type": gold })).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let t = &reply.body["volume_type"];
    assert_eq!(
        sorted_keys(t),
        vec![
            "description",
            "extra_specs",
            "id",
            "is_public",
            "name",
            "os-volume-type-access:is_public",
        ]
    );
    assert_eq!(t["extra_specs"], json!({"volume_backend_name": "file"}));
    assert_eq!(t["is_public"], true);
    let id = t["id"].as_str().unwrap().to_owned();

    let dup = h
        .post("/v3/types", json!({"volume_type": {"name": "gold"}}))
        .await;
    assert_eq!(dup.refusal(409), "Volume Type gold already exists.");
    let empty = h
        .post("/v3/types", json!({"volume_type": {"name": ""}}))
        .await;
    assert_eq!(empty.status, 400);
    let blank = h
        .post("/v3/types", json!({"volume_type": {"name": "   "}}))
        .await;
    assert_eq!(
        blank.fault("badRequest"),
        "An invalid 'name' value was provided. The 'name' can not be empty."
    );

    let listed = h.get("/v3/types").await;
    let names: Vec<&str> = listed.body["volume_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"gold") && names.contains(&"__DEFAULT__"));

    let shown = h.get(&format!("/v3/types/{id}")).await;
    assert_eq!(shown.body["volume_type"]["name"], "gold");
    let default = h.get("/v3/types/default").await;
    assert_eq!(default.body["volume_type"]["name"], "__DEFAULT__");
    let missing = h
        .get("/v3/types/4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1")
        .await;
    assert_eq!(
        missing.fault("itemNotFound"),
        "Volume type 4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1 could not be found."
    );

    let updated = h
        .put(
            &format!("/v3/types/{id}"),
            json!({"volume_type": {"name": "platinum", "is_public": false}}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.body["volume_type"]["name"], "platinum");
    assert_eq!(updated.body["volume_type"]["is_public"], false);
    assert!(
        updated.body["volume_type"]
            .get("os-volume-type-access:is_public")
            .is_none()
    );
    let nothing = h
        .put(&format!("/v3/types/{id}"), json!({"volume_type": {}}))
        .await;
    assert_eq!(
        nothing.fault("badRequest"),
        "Specify volume type name, description, is_public or a combination thereof."
    );
    // Private types only show up when asked for.
    let public_only = h.get("/v3/types").await;
    assert_eq!(
        public_only.body["volume_types"].as_array().unwrap().len(),
        1
    );
    let private = h.get("/v3/types?is_public=false").await;
    assert_eq!(private.body["volume_types"][0]["name"], "platinum");
    let all = h.get("/v3/types?is_public=None").await;
    assert_eq!(all.body["volume_types"].as_array().unwrap().len(), 2);
    assert_eq!(h.get("/v3/types?is_public=maybe").await.status, 400);

    // Access to a private type.
    let access = format!("/v3/types/{id}/os-volume-type-access");
    assert_eq!(h.get(&access).await.body, json!({"volume_type_access": []}));
    let action = format!("/v3/types/{id}/action");
    let granted = h
        .post(&action, json!({"addProjectAccess": {"project": "p2"}}))
        .await;
    assert_eq!(granted.status, 202, "{}", granted.text);
    assert_eq!(
        h.get(&access).await.body,
        json!({"volume_type_access": [{"volume_type_id": id, "project_id": "p2"}]})
    );
    let again = h
        .post(&action, json!({"addProjectAccess": {"project": "p2"}}))
        .await;
    assert_eq!(again.status, 409);
    let removed = h
        .post(&action, json!({"removeProjectAccess": {"project": "p2"}}))
        .await;
    assert_eq!(removed.status, 202);
    assert_eq!(
        h.post(&action, json!({"removeProjectAccess": {"project": "p2"}}))
            .await
            .status,
        404
    );

    // In use: no delete, no extra spec changes.
    let volume = h
        .post(
            "/v3/volumes",
            json!({"volume": {"size": 1, "volume_type": "platinum"}}),
        )
        .await;
    assert_eq!(volume.status, 202, "{}", volume.text);
    assert_eq!(volume.body["volume"]["volume_type"], "platinum");
    let refused = h.delete(&format!("/v3/types/{id}")).await;
    assert_eq!(
        refused.fault("badRequest"),
        "Target volume type is still in use."
    );
    let refused = h
        .post(
            &format!("/v3/types/{id}/extra_specs"),
            json!({"extra_specs": {"a": "b"}}),
        )
        .await;
    assert_eq!(
        refused.fault("badRequest"),
        "Volume Type is currently in use."
    );
    let default_id = default.id::<String>("volume_type");
    let refused = h.delete(&format!("/v3/types/{default_id}")).await;
    assert_eq!(
        refused.fault("badRequest"),
        format!("The volume type {default_id} is a default volume type and cannot be deleted.")
    );
    let volume_id = volume.body["volume"]["id"].as_str().unwrap();
    assert_eq!(
        h.delete(&format!("/v3/volumes/{volume_id}")).await.status,
        202
    );
    assert_eq!(h.delete(&format!("/v3/types/{id}")).await.status, 202);
    assert_eq!(h.get(&format!("/v3/types/{id}")).await.status, 404);
}

#[tokio::test]
async fn extra_specs_routes() {
    let h = harness().await;
    let t =
        h.db.create_volume_type(clinker_db::NewVolumeType {
            name: "silver".into(),
            description: None,
            is_public: true,
            extra_specs: Default::default(),
        })
        .await
        .unwrap();
    let base = format!("/v3/types/{}/extra_specs", t.id);
    let reply = h
        .post(&base, json!({"extra_specs": {"k1": "v1", "k2": "v2"}}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body, json!({"extra_specs": {"k1": "v1", "k2": "v2"}}));
    assert_eq!(
        h.get(&base).await.body,
        json!({"extra_specs": {"k1": "v1", "k2": "v2"}})
    );
    assert_eq!(h.get(&format!("{base}/k1")).await.body, json!({"k1": "v1"}));
    let updated = h.put(&format!("{base}/k1"), json!({"k1": "new"})).await;
    assert_eq!(updated.body, json!({"k1": "new"}));
    let mismatch = h.put(&format!("{base}/k1"), json!({"k2": "x"})).await;
    assert_eq!(
        mismatch.fault("badRequest"),
        "Request body and URI mismatch"
    );
    let two = h
        .put(&format!("{base}/k1"), json!({"k1": "x", "k2": "y"}))
        .await;
    assert_eq!(two.status, 400);
    assert_eq!(h.delete(&format!("{base}/k2")).await.status, 202);
    let gone = h.get(&format!("{base}/k2")).await;
    assert_eq!(
        gone.fault("itemNotFound"),
        format!("Volume Type {} has no extra specs with key k2.", t.id)
    );
    assert_eq!(h.delete(&format!("{base}/k2")).await.status, 404);
    let bad = h
        .post(&base, json!({"extra_specs": {"bad key!": "v"}}))
        .await;
    assert_eq!(bad.status, 400);
    let none = h.call("POST", &base, None).await;
    assert_eq!(none.status, 400);
    let missing_type = h
        .get("/v3/types/4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1/extra_specs")
        .await;
    assert_eq!(missing_type.status, 404);
    let specs = h.db.get_volume_type(t.id).await.unwrap().extra_specs;
    assert_eq!(specs.len(), 1);
}

#[tokio::test]
async fn quota_sets() {
    let h = harness().await;
    h.create_volume(json!({"size": 3})).await;
    let uri = format!("/v3/os-quota-sets/{PROJECT}");
    let shown = h.get(&uri).await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    let set = &shown.body["quota_set"];
    assert_eq!(set["id"], PROJECT);
    assert_eq!(set["volumes"], 10);
    assert_eq!(set["gigabytes"], 1000);
    assert_eq!(set["per_volume_gigabytes"], -1);
    assert_eq!(set["groups"], 10);
    assert_eq!(set["volumes___DEFAULT__"], -1);
    let usage = h.get(&format!("{uri}?usage=true")).await;
    assert_eq!(
        usage.body["quota_set"]["gigabytes"],
        json!({"limit": 1000, "in_use": 3, "reserved": 0})
    );
    assert_eq!(
        usage.body["quota_set"]["volumes"],
        json!({"limit": 10, "in_use": 1, "reserved": 0})
    );

    let updated = h
        .put(
            &uri,
            json!({"quota_set": {"volumes": 5, "gigabytes": "20"}}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.body["quota_set"]["volumes"], 5);
    assert_eq!(updated.body["quota_set"]["gigabytes"], 20);
    assert!(updated.body["quota_set"].get("id").is_none());
    let cases: &[(Value, &str)] = &[
        (
            json!({"quota_set": {"volumes": "x"}}),
            "volumes must be an integer",
        ),
        (
            json!({"quota_set": {"volumes": -2}}),
            "volumes must be >= -1",
        ),
        (
            json!({"quota_set": {"bogus": 1}}),
            "Invalid input received: Bad key(s) in quota set: bogus",
        ),
        (
            json!({"quota_set": {"gigabytes": 2}}),
            "Quota gigabytes limit must be equal or greater than existing resources. Current usage is 3 and the requested limit is 2.",
        ),
        (
            json!({"quota_set": {}}),
            "Invalid input for field/attribute quota_set. Value: {}. {} should be non-empty",
        ),
    ];
    for (body, message) in cases {
        let reply = h.put(&uri, body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert_eq!(reply.fault("badRequest"), *message, "{body}");
    }
    assert_eq!(
        h.db.quota_limits(PROJECT).await.unwrap().get("gigabytes"),
        Some(&20)
    );
    let defaults = h.get(&format!("{uri}/defaults")).await;
    assert_eq!(defaults.body["quota_set"]["gigabytes"], 1000);
    assert_eq!(defaults.body["quota_set"]["id"], PROJECT);
    let deleted = h.delete(&uri).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(
        h.db.quota_limits(PROJECT).await.unwrap().get("volumes"),
        Some(&10)
    );

    let class = h.get("/v3/os-quota-class-sets/default").await;
    assert_eq!(class.body["quota_class_set"]["id"], "default");
    assert_eq!(class.body["quota_class_set"]["snapshots"], 10);
    let class = h
        .put(
            "/v3/os-quota-class-sets/default",
            json!({"quota_class_set": {"snapshots": 7}}),
        )
        .await;
    assert_eq!(class.status, 200, "{}", class.text);
    assert_eq!(class.body["quota_class_set"]["snapshots"], 7);
    let bad = h
        .put(
            "/v3/os-quota-class-sets/default",
            json!({"quota_class_set": {"bogus": 7}}),
        )
        .await;
    assert_eq!(
        bad.fault("badRequest"),
        "Invalid input received: Bad key(s) in quota class set: bogus"
    );
    let shown = h.get(&uri).await;
    assert_eq!(shown.body["quota_set"]["snapshots"], 7);
}

#[tokio::test]
async fn absolute_limits() {
    let h = harness().await;
    h.create_volume(json!({"size": 4})).await;
    let reply = h.get("/v3/limits").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["limits"]["rate"], json!([]));
    assert_eq!(
        reply.body["limits"]["absolute"],
        json!({
            "maxTotalVolumes": 10,
            "maxTotalSnapshots": 10,
            "maxTotalVolumeGigabytes": 1000,
            "maxTotalBackups": 10,
            "maxTotalBackupGigabytes": 1000,
            "totalVolumesUsed": 1,
            "totalSnapshotsUsed": 0,
            "totalGigabytesUsed": 4,
            "totalBackupsUsed": 0,
            "totalBackupGigabytesUsed": 0,
        })
    );
    let other = h.at("3.39").get("/v3/limits?project_id=someone-else").await;
    assert_eq!(other.body["limits"]["absolute"]["totalVolumesUsed"], 0);
}

#[tokio::test]
async fn services_zones_and_state() {
    let h = harness().await;
    let reply = h.get("/v3/os-services").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let service = &reply.body["services"][0];
    assert_eq!(
        sorted_keys(service),
        vec![
            "active_backend_id",
            "binary",
            "disabled_reason",
            "frozen",
            "host",
            "replication_status",
            "state",
            "status",
            "updated_at",
            "zone"
        ]
    );
    assert_eq!(service["host"], BACKEND);
    assert_eq!(service["state"], "up");
    assert_eq!(service["status"], "enabled");
    assert_eq!(service["replication_status"], "not-capable");
    let newer = h.at("3.49").get("/v3/os-services").await;
    assert!(newer.body["services"][0].get("backend_state").is_some());
    assert!(newer.body["services"][0].get("cluster").is_some());

    // A service whose last heartbeat is older than service_down_time is down.
    {
        let mut now = h.clock.0.lock().unwrap();
        *now = now.plus_micros(61_000_000);
    }
    let later = h.get("/v3/os-services?binary=cinder-volume").await;
    assert_eq!(later.body["services"][0]["state"], "down");
    let filtered = h.get("/v3/os-services?host=elsewhere").await;
    assert_eq!(filtered.body, json!({"services": []}));

    let disabled = h
        .put(
            "/v3/os-services/disable-log-reason",
            json!({"host": BACKEND, "binary": "cinder-volume", "disabled_reason": "maintenance"}),
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.text);
    assert_eq!(
        disabled.body,
        json!({"host": BACKEND, "service": "", "binary": "cinder-volume", "status": "disabled", "disabled": true, "disabled_reason": "maintenance"})
    );
    let zones = h.get("/v3/os-availability-zone").await;
    assert_eq!(
        zones.body,
        json!({"availabilityZoneInfo": [{"zoneName": "nova", "zoneState": {"available": false}}]})
    );
    let enabled = h
        .put(
            "/v3/os-services/enable",
            json!({"host": BACKEND, "binary": "cinder-volume"}),
        )
        .await;
    assert_eq!(enabled.body["status"], "enabled");
    let zones = h.get("/v3/os-availability-zone").await;
    assert_eq!(
        zones.body["availabilityZoneInfo"][0]["zoneState"]["available"],
        true
    );

    let missing = h
        .put(
            "/v3/os-services/enable",
            json!({"host": "invalid_host", "binary": "cinder-volume"}),
        )
        .await;
    assert_eq!(missing.status, 404);
    let no_reason = h
        .put(
            "/v3/os-services/disable-log-reason",
            json!({"host": BACKEND, "binary": "cinder-volume", "disabled_reason": null}),
        )
        .await;
    assert_eq!(no_reason.status, 400);
    let no_host = h
        .put(
            "/v3/os-services/disable",
            json!({"binary": "cinder-volume"}),
        )
        .await;
    assert_eq!(
        no_host.fault("badRequest"),
        "Invalid input received: Host field is missing."
    );
    let freeze = h
        .put("/v3/os-services/freeze", json!({"host": "invalid_host"}))
        .await;
    assert_eq!(
        freeze.fault("badRequest"),
        "No service found with host=invalid_host"
    );
    let thaw = h
        .put("/v3/os-services/thaw", json!({"host": "invalid_host"}))
        .await;
    assert_eq!(thaw.status, 400);
}

#[tokio::test]
async fn pools_and_capabilities_are_rpc_calls() {
    let h = harness().await;
    let summary = h.get("/v3/scheduler-stats/get_pools").await;
    assert_eq!(summary.status, 200, "{}", summary.text);
    assert_eq!(summary.body, json!({"pools": [{"name": POOL}]}));
    let detail = h.get("/v3/scheduler-stats/get_pools?detail=true").await;
    assert_eq!(
        detail.body["pools"][0]["capabilities"]["storage_protocol"],
        "file"
    );
    assert_eq!(
        detail.body["pools"][0]["capabilities"]["total_capacity_gb"],
        100
    );
    let caps = h.get(&format!("/v3/capabilities/{BACKEND}")).await;
    assert_eq!(caps.status, 200, "{}", caps.text);
    assert_eq!(
        caps.body["namespace"],
        format!("OS::Storage::Capabilities::{BACKEND}")
    );
    assert_eq!(caps.body["vendor_name"], "Open Source");
    assert_eq!(caps.body["replication_targets"], json!([]));
    let unknown = h.get("/v3/capabilities/nowhere@x").await;
    assert_eq!(
        unknown.fault("itemNotFound"),
        "Can't find service: nowhere@x"
    );
    assert_eq!(
        Harness::wait_for(&h.scheduler, 2).await,
        vec!["get_pools", "get_pools"]
    );
    assert_eq!(
        Harness::wait_for(&h.volume, 1).await,
        vec!["get_capabilities"]
    );

    let lonely = Harness::with(Options {
        scheduler: false,
        volume: false,
        ..Options::default()
    })
    .await;
    lonely.register_volume_service("nova").await;
    let reply = lonely.get("/v3/scheduler-stats/get_pools").await;
    assert_eq!(reply.status, 503);
    let reply = lonely.get(&format!("/v3/capabilities/{BACKEND}")).await;
    assert_eq!(reply.status, 503);
}

#[tokio::test]
async fn user_messages() {
    let h = harness().await;
    let now = Timestamp(1_800_000_000_000_000);
    let mut ids = Vec::new();
    for i in 0..3 {
        let message = UserMessage {
            id: MessageId::new_random(),
            project_id: PROJECT.into(),
            request_id: Some("req-1".into()),
            resource_type: "VOLUME".into(),
            resource_uuid: Some("4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1".into()),
            event_id: "VOLUME_VOLUME_001_002".into(),
            message_level: "ERROR".into(),
            user_message: "schedule allocate volume:Could not find any available weighted backend."
                .into(),
            created_at: now.plus_micros(i),
            expires_at: now.plus_micros(1_000_000 + i),
        };
        ids.push(message.id);
        h.db.create_message(&message).await.unwrap();
    }
    let list = h.at("3.3").get("/v3/messages").await;
    assert_eq!(list.status, 200, "{}", list.text);
    let first = &list.body["messages"][0];
    assert_eq!(
        sorted_keys(first),
        vec![
            "created_at",
            "event_id",
            "guaranteed_until",
            "id",
            "links",
            "message_level",
            "request_id",
            "resource_type",
            "resource_uuid",
            "user_message"
        ]
    );
    assert_eq!(first["id"], ids[2].to_string());
    let page = h.at("3.5").get("/v3/messages?limit=1").await;
    assert_eq!(page.body["messages"].as_array().unwrap().len(), 1);
    assert!(
        page.body["messages_links"][0]["href"]
            .as_str()
            .unwrap()
            .contains("marker=")
    );
    let shown = h.at("3.3").get(&format!("/v3/messages/{}", ids[0])).await;
    assert_eq!(shown.body["message"]["event_id"], "VOLUME_VOLUME_001_002");
    let deleted = h
        .at("3.3")
        .delete(&format!("/v3/messages/{}", ids[0]))
        .await;
    assert_eq!(deleted.status, 204);
    let gone = h.at("3.3").get(&format!("/v3/messages/{}", ids[0])).await;
    assert_eq!(
        gone.fault("itemNotFound"),
        format!("Message {} could not be found.", ids[0])
    );
}

#[tokio::test]
async fn hosts_resource_filters_and_healthcheck() {
    let h = harness().await;
    h.available_volume(2).await;
    let list = h.get("/v3/os-hosts").await;
    assert_eq!(list.status, 200, "{}", list.text);
    let host = &list.body["hosts"][0];
    assert_eq!(host["host_name"], BACKEND);
    assert_eq!(host["service"], "cinder-volume");
    assert_eq!(host["service-status"], "available");
    assert_eq!(host["service-state"], "enabled");
    let show = h.get(&format!("/v3/os-hosts/{BACKEND}")).await;
    assert_eq!(show.status, 200, "{}", show.text);
    assert_eq!(
        show.body["host"][0]["resource"],
        json!({"host": BACKEND, "project": "(total)", "volume_count": "1", "total_volume_gb": "2", "snapshot_count": "0", "total_snapshot_gb": "0"})
    );
    assert_eq!(show.body["host"][1]["resource"]["project"], PROJECT);
    assert_eq!(h.get("/v3/os-hosts/nowhere").await.status, 404);

    let filters = h
        .at("3.33")
        .get("/v3/resource_filters?resource=snapshot")
        .await;
    assert_eq!(
        filters.body,
        json!({"resource_filters": [{"resource": "snapshot", "filters": ["name", "status", "volume_id", "metadata", "availability_zone", "consumes_quota"]}]})
    );
    assert_eq!(h.get("/v3/resource_filters").await.status, 404);

    let health = h.with_headers(&[]).get("/healthcheck").await;
    assert_eq!((health.status, health.text.as_str()), (200, "OK"));
}
