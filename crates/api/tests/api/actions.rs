//! `POST /volumes/{id}/action`.

use clinker_db::{QuotaRepository, VolumeRepository};
use clinker_types::VolumeStatus;
use serde_json::json;

use crate::common::{Harness, Options, PROJECT};
use crate::common::{Verbs, harness};

#[tokio::test]
async fn extend_charges_quota_and_casts() {
    let h = harness().await;
    let id = h.available_volume(1).await;
    let uri = format!("/v3/volumes/{id}/action");
    let reply = h.post(&uri, json!({"os-extend": {"new_size": 3}})).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let volume = h.db.get_volume(id).await.unwrap();
    assert_eq!(volume.status, VolumeStatus::Extending);
    assert_eq!(h.usage().await.get("gigabytes"), Some(&3));
    let methods = Harness::wait_for(&h.scheduler, 2).await;
    assert_eq!(methods, vec!["create_volume", "extend_volume"]);
    let seen = h.scheduler.seen.lock().unwrap();
    assert_eq!(
        seen[1].args,
        json!({"volume_id": id.to_string(), "new_size": 3})
    );
}

#[tokio::test]
async fn extend_refusals() {
    let h = harness().await;
    let id = h.available_volume(2).await;
    let uri = format!("/v3/volumes/{id}/action");
    let reply = h.post(&uri, json!({"os-extend": {"new_size": 2}})).await;
    assert_eq!(
        reply.refusal(400),
        "Invalid input received: New size for extend must be greater than current size. (current: 2, extended: 2)."
    );
    for bad in [json!(null), json!("abc"), json!(0), json!(1.5)] {
        let reply = h.post(&uri, json!({"os-extend": {"new_size": bad}})).await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text);
    }
    let reply = h.post(&uri, json!({"os-extend": {}})).await;
    assert_eq!(
        reply.fault("badRequest"),
        "Invalid input for field/attribute os-extend. Value: {}. 'new_size' is a required property"
    );
    h.db.reset_volume_status(id, Some(VolumeStatus::InUse), None, None)
        .await
        .unwrap();
    let reply = h.post(&uri, json!({"os-extend": {"new_size": 3}})).await;
    assert_eq!(
        reply.refusal(400),
        format!(
            "Invalid volume: Volume {id} status must be '{{'status': 'available'}}' to extend, currently in-use."
        )
    );
    let online = h
        .at("3.42")
        .post(&uri, json!({"os-extend": {"new_size": 3}}))
        .await;
    assert_eq!(online.status, 202, "{}", online.text);
    // Nothing was charged by the refusals.
    assert_eq!(h.usage().await.get("gigabytes"), Some(&3));

    let other = h.available_volume(1).await;
    let uri = format!("/v3/volumes/{other}/action");
    h.db.set_project_quota(PROJECT, "gigabytes", 5)
        .await
        .unwrap();
    let reply = h.post(&uri, json!({"os-extend": {"new_size": 4}})).await;
    assert_eq!(
        reply.refusal(413),
        "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested 3G, quota is 5G and 4G has been consumed."
    );
    h.db.set_project_quota(PROJECT, "per_volume_gigabytes", 2)
        .await
        .unwrap();
    let reply = h.post(&uri, json!({"os-extend": {"new_size": 3}})).await;
    assert_eq!(
        reply.fault("overLimit"),
        "VolumeSizeExceedsLimit: Requested volume size 3G is larger than maximum allowed limit 2G."
    );
    assert_eq!(h.volume_status(other).await, VolumeStatus::Available);
    let missing = h
        .post(
            "/v3/volumes/4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1/action",
            json!({"os-extend": {"new_size": 3}}),
        )
        .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn extend_without_scheduler_is_aborted() {
    let mut h = harness().await;
    let id = h.available_volume(1).await;
    h.stop_consumers().await;
    let reply = h
        .post(
            &format!("/v3/volumes/{id}/action"),
            json!({"os-extend": {"new_size": 2}}),
        )
        .await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    let volume = h.db.get_volume(id).await.unwrap();
    assert_eq!((volume.status, volume.size), (VolumeStatus::Available, 1));
    assert_eq!(
        h.db.quota_usages(PROJECT).await.unwrap().get("gigabytes"),
        Some(&1)
    );
}

#[tokio::test]
async fn simple_actions() {
    let h = harness().await;
    let id = h.available_volume(1).await;
    let uri = format!("/v3/volumes/{id}/action");
    let show = format!("/v3/volumes/{id}");

    let reply = h
        .post(&uri, json!({"os-set_bootable": {"bootable": "True"}}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(h.get(&show).await.body["volume"]["bootable"], "true");
    let reply = h
        .post(&uri, json!({"os-set_bootable": {"bootable": "maybe"}}))
        .await;
    assert_eq!(reply.status, 400);

    let reply = h
        .post(&uri, json!({"os-update_readonly_flag": {"readonly": true}}))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(
        h.get(&show).await.body["volume"]["metadata"]["readonly"],
        "True"
    );

    let reply = h
        .post(&uri, json!({"os-reset_status": {"status": "error"}}))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(h.volume_status(id).await, VolumeStatus::Error);
    let reply = h
        .post(&uri, json!({"os-reset_status": {"status": "bogus"}}))
        .await;
    assert!(reply.refusal(400).starts_with(
        "Volume status: bogus is invalid, valid statuses are: ('creating', 'available'"
    ));
    let reply = h.post(&uri, json!({"os-reset_status": {}})).await;
    assert_eq!(
        reply.fault("badRequest"),
        "Must specify 'status', 'attach_status' or 'migration_status' for update."
    );
    let reply = h
        .post(&uri, json!({"os-reset_status": {"status": "in-use"}}))
        .await;
    assert_eq!(
        reply.fault("badRequest"),
        "Cannot reset-state to in-use because volume does not have any attachments."
    );
    let reply = h
        .post(
            &uri,
            json!({"os-update_readonly_flag": {"readonly": false}}),
        )
        .await;
    assert_eq!(
        reply.fault("badRequest"),
        format!(
            "Invalid volume: Volume {id} status must be available to update readonly flag, but current status is: error."
        )
    );

    let reply = h.post(&uri, json!({"os-force_delete": {}})).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(h.volume_status(id).await, VolumeStatus::Deleting);
    assert_eq!(Harness::wait_for(&h.volume, 1).await, vec!["delete_volume"]);
}

#[tokio::test]
async fn image_metadata_actions() {
    let h = harness().await;
    let id = h.available_volume(1).await;
    let uri = format!("/v3/volumes/{id}/action");
    let reply = h
        .post(
            &uri,
            json!({"os-set_image_metadata": {"metadata": {"image_name": "cirros"}}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body, json!({"metadata": {"image_name": "cirros"}}));
    let reply = h.post(&uri, json!({"os-show_image_metadata": null})).await;
    assert_eq!(reply.body, json!({"metadata": {"image_name": "cirros"}}));
    let shown = h.get(&format!("/v3/volumes/{id}")).await;
    assert_eq!(
        shown.body["volume"]["volume_image_metadata"],
        json!({"image_name": "cirros"})
    );
    let reply = h
        .post(
            &uri,
            json!({"os-unset_image_metadata": {"key": "image_name"}}),
        )
        .await;
    assert_eq!(reply.status, 200);
    let reply = h
        .post(
            &uri,
            json!({"os-unset_image_metadata": {"key": "image_name"}}),
        )
        .await;
    assert_eq!(reply.status, 404);
    let shown = h.get(&format!("/v3/volumes/{id}")).await;
    assert!(shown.body["volume"].get("volume_image_metadata").is_none());
}

#[tokio::test]
async fn unknown_and_legacy_actions() {
    let h = harness().await;
    let id = h.available_volume(1).await;
    let uri = format!("/v3/volumes/{id}/action");
    // The legacy attach family and os-retype are served (see
    // `attachments.rs` and `revert_retype.rs`).
    for action in ["os-foo", "os-bar"] {
        let reply = h.post(&uri, json!({ action: {} })).await;
        assert_eq!(
            reply.refusal(400),
            format!(
                "There is no such action: {action}. Verify the request body and Content-Type header and try again."
            )
        );
    }
    let reply = h.call("POST", &uri, None).await;
    assert_eq!(
        reply.fault("badRequest"),
        "There is no such action: None. Verify the request body and Content-Type header and try again."
    );
    let reply = h
        .post(&uri, json!({"os-extend": {"new_size": 2}, "os-foo": {}}))
        .await;
    assert_eq!(reply.fault("badRequest"), "Malformed request body");
    assert_eq!(h.volume_status(id).await, VolumeStatus::Available);
}

#[tokio::test]
async fn force_delete_of_a_creating_volume_needs_no_backend() {
    let h = Harness::with(Options {
        volume: false,
        ..Options::default()
    })
    .await;
    h.register_volume_service("nova").await;
    let id = h.create_volume(json!({"size": 1})).await;
    let reply = h
        .post(
            &format!("/v3/volumes/{id}/action"),
            json!({"os-force_delete": {}}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert!(!h.db.volume_exists(id).await.unwrap());
    assert!(h.usage().await.is_empty());
}
