//! `/attachments` (3.27+) and the legacy attach actions: version gates,
//! request schemas, views, Cinder's texts and status codes, and that a
//! refused request leaves nothing behind. The volume service is a stand-in
//! that records calls, so backend effects are checked in the cluster tests.

use clinker_db::{AttachmentConnection, AttachmentRepository, VolumeRepository};
use clinker_types::{AttachmentId, VolumeId, VolumeStatus};
use serde_json::{Value, json};

use crate::common::{Harness, sorted_keys};
use crate::common::{Verbs, harness};
use crate::surface_support::{MEMBER, OTHER, member_volume};

const INSTANCE: &str = "d5c4c6b7-8e0f-4a2b-9c3d-1e2f3a4b5c6d";
const OTHER_INSTANCE: &str = "a1b2c3d4-e5f6-4711-8899-aabbccddeeff";

async fn create(h: &Harness, version: &str, attachment: Value) -> crate::common::Reply {
    h.at(version)
        .post("/v3/attachments", json!({ "attachment": attachment }))
        .await
}

fn attachment_id(reply: &crate::common::Reply) -> String {
    reply.body["attachment"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no attachment in {}", reply.text))
        .to_owned()
}

/// Records a connection as the volume manager would.
async fn connect(h: &Harness, id: &str) {
    h.db.connect_attachment(
        id.parse().unwrap(),
        AttachmentConnection {
            connector: json!({"initiator": "iqn.x", "host": "compute-1"}),
            connection_info: json!({"driver_volume_type": "fake"}),
            attached_host: Some("compute-1".into()),
            mountpoint: Some("/dev/vdb".into()),
            attach_mode: "rw".into(),
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn attachments_exist_from_3_27_and_complete_from_3_44() {
    let h = harness().await;
    for version in [None, Some("3.26")] {
        let reply = match version {
            None => h.get("/v3/attachments").await,
            Some(v) => h.at(v).get("/v3/attachments").await,
        };
        assert_eq!(reply.status, 404, "{version:?}: {}", reply.text);
        assert_eq!(
            reply.fault("itemNotFound"),
            "The resource could not be found."
        );
    }
    let reply = h.at("3.27").get("/v3/attachments").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body, json!({"attachments": []}));
    assert!(
        reply
            .header("OpenStack-API-Version")
            .is_some_and(|v| v == "volume 3.27")
    );

    let volume = h.available_volume(1).await;
    let made = create(&h, "3.27", json!({"volume_uuid": volume.to_string()})).await;
    let id = attachment_id(&made);
    let early = h
        .at("3.43")
        .post(
            &format!("/v3/attachments/{id}/action"),
            json!({"os-complete": null}),
        )
        .await;
    assert_eq!(early.status, 404, "{}", early.text);
    let unknown = h
        .at("3.44")
        .post(
            &format!("/v3/attachments/{id}/action"),
            json!({"os-finish": null}),
        )
        .await;
    assert!(
        unknown
            .refusal(400)
            .starts_with("There is no such action: os-finish.")
    );
}

#[tokio::test]
async fn create_reserves_once_and_renders_cinder_views() {
    let h = harness().await;
    let volume = h.available_volume(1).await;
    let made = create(
        &h,
        "3.27",
        json!({"volume_uuid": volume.to_string(), "instance_uuid": INSTANCE}),
    )
    .await;
    assert_eq!(made.status, 200, "{}", made.text);
    let a = &made.body["attachment"];
    assert_eq!(
        sorted_keys(a),
        [
            "attach_mode",
            "attached_at",
            "connection_info",
            "detached_at",
            "id",
            "instance",
            "status",
            "volume_id"
        ]
    );
    assert_eq!(a["status"], "reserved");
    assert_eq!(a["instance"], INSTANCE);
    assert_eq!(a["volume_id"], volume.to_string());
    assert_eq!(a["attach_mode"], "null");
    assert_eq!(a["attached_at"], "");
    assert_eq!(a["detached_at"], "");
    assert_eq!(a["connection_info"], json!({}));
    // No connector: the volume service was not asked.
    assert!(!h.volume.methods().contains(&"attachment_update".to_owned()));
    let shown = h.get(&format!("/v3/volumes/{volume}")).await;
    assert_eq!(shown.body["volume"]["status"], "reserved");
    assert_eq!(shown.body["volume"]["attachments"], json!([]));

    // A second instance: Cinder's 400, and no second row.
    let refused = create(
        &h,
        "3.27",
        json!({"volume_uuid": volume.to_string(), "instance_uuid": OTHER_INSTANCE}),
    )
    .await;
    assert_eq!(
        refused.refusal(400),
        format!(
            "Invalid volume: Volume {volume} status must be available or downloading to reserve, but the current status is reserved."
        )
    );
    let listed = h.at("3.27").get("/v3/attachments/detail").await;
    assert_eq!(listed.body["attachments"].as_array().unwrap().len(), 1);
    // The summary list has four keys per item.
    let summary = h.at("3.27").get("/v3/attachments").await;
    assert_eq!(
        sorted_keys(&summary.body["attachments"][0]),
        ["id", "instance", "status", "volume_id"]
    );
    // Show.
    let id = attachment_id(&made);
    let shown = h.at("3.27").get(&format!("/v3/attachments/{id}")).await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body["attachment"], made.body["attachment"]);
    let missing = AttachmentId::new_random();
    let gone = h
        .at("3.27")
        .get(&format!("/v3/attachments/{missing}"))
        .await;
    assert_eq!(
        gone.refusal(404),
        format!("Volume attachment could not be found with filter: attachment_id = {missing}.")
    );
}

/// `openstack volume attachment create` without `--connect` sends
/// `"connector": {}` (python-openstackclient 10). Cinder tests the
/// connector's truthiness, so an empty one only reserves, as no connector
/// does: the volume service is not asked and the volume stays `reserved`.
#[tokio::test]
async fn an_empty_connector_only_reserves() {
    let h = harness().await;
    let volume = h.available_volume(1).await;
    let made = create(
        &h,
        "3.54",
        json!({"volume_uuid": volume.to_string(), "instance_uuid": INSTANCE,
               "connector": {}, "mode": "rw"}),
    )
    .await;
    assert_eq!(made.status, 200, "{}", made.text);
    let a = &made.body["attachment"];
    assert_eq!(a["status"], "reserved");
    assert_eq!(a["attach_mode"], "rw");
    assert_eq!(a["connection_info"], json!({}));
    assert!(!h.volume.methods().contains(&"attachment_update".to_owned()));
    let shown = h.get(&format!("/v3/volumes/{volume}")).await;
    assert_eq!(shown.body["volume"]["status"], "reserved");
}

#[tokio::test]
async fn create_validates_and_refuses_without_writing() {
    let h = harness().await;
    let volume = h.available_volume(1).await;
    // `mode` is a 3.54 field.
    let early = create(
        &h,
        "3.53",
        json!({"volume_uuid": volume.to_string(), "mode": "ro"}),
    )
    .await;
    assert!(
        early
            .refusal(400)
            .contains("Additional properties are not allowed ('mode' was unexpected)"),
        "{}",
        early.text
    );
    let bad_mode = create(
        &h,
        "3.54",
        json!({"volume_uuid": volume.to_string(), "mode": "rx"}),
    )
    .await;
    assert_eq!(bad_mode.status, 400);
    let no_volume = create(&h, "3.27", json!({"instance_uuid": INSTANCE})).await;
    assert!(
        no_volume
            .refusal(400)
            .contains("'volume_uuid' is a required property")
    );
    let missing = VolumeId::new_random();
    let unknown = create(&h, "3.27", json!({"volume_uuid": missing.to_string()})).await;
    assert_eq!(
        unknown.refusal(404),
        format!("Volume {missing} could not be found.")
    );
    // A volume in error.
    h.db.reset_volume_status(volume, Some(VolumeStatus::Error), None, None)
        .await
        .unwrap();
    let errored = create(&h, "3.27", json!({"volume_uuid": volume.to_string()})).await;
    assert_eq!(
        errored.refusal(400),
        format!(
            "Invalid volume: Volume attachments can not be created if the volume is in an error state. The Volume {volume} currently has a status of: error "
        )
    );
    let untouched = h.db.get_volume(volume).await.unwrap();
    assert_eq!(untouched.status, VolumeStatus::Error);
    assert!(untouched.attachments.is_empty());
    // 3.54 with a mode is stored; the readonly flag overrides it.
    h.db.reset_volume_status(volume, Some(VolumeStatus::Available), None, None)
        .await
        .unwrap();
    let ro = h
        .post(
            &format!("/v3/volumes/{volume}/action"),
            json!({"os-update_readonly_flag": {"readonly": true}}),
        )
        .await;
    assert_eq!(ro.status, 202);
    let made = create(
        &h,
        "3.54",
        json!({"volume_uuid": volume.to_string(), "mode": "rw"}),
    )
    .await;
    assert_eq!(made.status, 200, "{}", made.text);
    assert_eq!(made.body["attachment"]["attach_mode"], "ro");
}

#[tokio::test]
async fn a_connector_goes_to_the_backend_and_an_unreachable_one_undoes_the_reservation() {
    let mut h = harness().await;
    let volume = h.available_volume(1).await;
    let connector = json!({"initiator": "iqn.2004-10.org.clinker:test", "ip": "127.0.0.1", "host": "test", "multipath": false});
    let made = create(
        &h,
        "3.44",
        json!({"volume_uuid": volume.to_string(), "connector": connector}),
    )
    .await;
    assert_eq!(made.status, 200, "{}", made.text);
    let seen = h.volume.seen.lock().unwrap().clone();
    let update = seen
        .iter()
        .find(|m| m.method == "attachment_update")
        .expect("attachment_update was called");
    assert_eq!(update.args["connector"], connector);
    assert_eq!(update.args["attachment_id"], made.body["attachment"]["id"]);
    assert_eq!(update.args["volume_id"], volume.to_string());
    assert_eq!(update.version.to_string(), "3.9");
    // Undo it, then try again with the volume service gone: 503 and the
    // reservation is undone.
    let id = attachment_id(&made);
    h.db.detach_attachment(volume, Some(id.parse().unwrap()))
        .await
        .unwrap();
    h.stop_consumers().await;
    let refused = create(
        &h,
        "3.44",
        json!({"volume_uuid": volume.to_string(), "connector": connector}),
    )
    .await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    let after = h.db.get_volume(volume).await.unwrap();
    assert_eq!(after.status, VolumeStatus::Available);
    assert!(after.attachments.is_empty());
}

#[tokio::test]
async fn update_complete_and_delete_follow_cinder() {
    let h = harness().await;
    let volume = h.available_volume(1).await;
    let made = create(&h, "3.44", json!({"volume_uuid": volume.to_string()})).await;
    let id = attachment_id(&made);
    // Update validates its body.
    let empty = h
        .at("3.44")
        .put(
            &format!("/v3/attachments/{id}"),
            json!({"attachment": {"connector": {}}}),
        )
        .await;
    assert_eq!(empty.status, 400, "{}", empty.text);
    let updated = h
        .at("3.44")
        .put(
            &format!("/v3/attachments/{id}"),
            json!({"attachment": {"connector": {"initiator": "iqn.x", "host": "h"}}}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert!(h.volume.methods().contains(&"attachment_update".to_owned()));
    connect(&h, &id).await;

    // os-complete: 204, in use, attached, and shown in the volume.
    let done = h
        .at("3.44")
        .post(
            &format!("/v3/attachments/{id}/action"),
            json!({"os-complete": null}),
        )
        .await;
    assert_eq!(done.status, 204, "{}", done.text);
    assert!(done.text.is_empty());
    let shown = h.at("3.48").get(&format!("/v3/volumes/{volume}")).await;
    let v = &shown.body["volume"];
    assert_eq!(v["status"], "in-use");
    assert_eq!(v["metadata"]["attached_mode"], "rw");
    let attachments = v["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0]["attachment_id"], id);
    assert_eq!(attachments[0]["id"], volume.to_string());
    assert_eq!(attachments[0]["device"], "/dev/vdb");
    assert_eq!(attachments[0]["host_name"], "compute-1");

    // An update while the volume is in error: 409.
    h.db.reset_volume_status(volume, Some(VolumeStatus::Error), None, None)
        .await
        .unwrap();
    let conflict = h
        .at("3.44")
        .put(
            &format!("/v3/attachments/{id}"),
            json!({"attachment": {"connector": {"initiator": "iqn.x"}}}),
        )
        .await;
    assert_eq!(
        conflict.refusal(409),
        format!(
            "Resource conflict: Volume attachments can not be updated if the volume is in an error state. The Volume {volume} currently has a status of: error "
        )
    );
    h.db.reset_volume_status(volume, Some(VolumeStatus::InUse), None, None)
        .await
        .unwrap();

    // Delete without an instance: the volume service is asked.
    let deleted = h.at("3.44").delete(&format!("/v3/attachments/{id}")).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert!(deleted.body["attachments"].is_array());
    let methods = Harness::wait_for(&h.volume, 2).await;
    assert!(
        methods.contains(&"attachment_delete".to_owned()),
        "{methods:?}"
    );
}

#[tokio::test]
async fn attachments_in_use_by_a_server_cannot_be_deleted_by_users() {
    let mut h = harness().await;
    let volume = h.available_volume(1).await;
    let made = create(
        &h,
        "3.44",
        json!({"volume_uuid": volume.to_string(), "instance_uuid": INSTANCE}),
    )
    .await;
    let id = attachment_id(&made);
    connect(&h, &id).await;
    h.db.complete_attachment(id.parse().unwrap()).await.unwrap();
    let refused = h.at("3.44").delete(&format!("/v3/attachments/{id}")).await;
    assert_eq!(
        refused.refusal(409),
        format!(
            "ConflictNovaUsingAttachment: Detach volume from instance {INSTANCE} using the Compute API"
        )
    );
    // The legacy paths are refused the same way.
    for body in [
        json!({"os-detach": {"attachment_id": id}}),
        json!({"os-terminate_connection": {"connector": {"initiator": "iqn.x"}}}),
        json!({"os-force_detach": {"attachment_id": id}}),
    ] {
        let reply = h.post(&format!("/v3/volumes/{volume}/action"), body).await;
        assert_eq!(reply.status, 409, "{}", reply.text);
    }
    assert_eq!(h.volume_status(volume).await, VolumeStatus::InUse);
    assert!(h.volume.methods().is_empty(), "nothing reached the backend");

    // A reservation that never connected may go: no backend call, the
    // volume is available again, the remaining list is empty.
    let other = h.available_volume(1).await;
    let reserved = create(
        &h,
        "3.44",
        json!({"volume_uuid": other.to_string(), "instance_uuid": INSTANCE}),
    )
    .await;
    let rid = attachment_id(&reserved);
    let deleted = h.at("3.44").delete(&format!("/v3/attachments/{rid}")).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(deleted.body, json!({"attachments": []}));
    assert_eq!(h.volume_status(other).await, VolumeStatus::Available);
    // Without a volume service, a connected attachment without an instance
    // is removed locally (the service's start-up reconcile drops the
    // export).
    let third = h.available_volume(1).await;
    let made = create(&h, "3.44", json!({"volume_uuid": third.to_string()})).await;
    let tid = attachment_id(&made);
    connect(&h, &tid).await;
    h.stop_consumers().await;
    let deleted = h.at("3.44").delete(&format!("/v3/attachments/{tid}")).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(h.volume_status(third).await, VolumeStatus::Available);
}

const V3_31: (&str, &str) = ("OpenStack-API-Version", "volume 3.31");

#[tokio::test]
async fn lists_filter_and_stay_in_the_project() {
    let h = crate::surface_support::harness().await;
    let volume = member_volume(&h).await;
    let made = h
        .with_headers(&[MEMBER, V3_31])
        .post(
            "/v3/attachments",
            json!({"attachment": {"volume_uuid": volume.to_string(), "instance_uuid": INSTANCE}}),
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.text);
    let id = attachment_id(&made);
    let list = |query: &'static str, who: (&'static str, &'static str)| {
        let h = &h;
        async move {
            h.with_headers(&[who, V3_31])
                .get(&format!("/v3/attachments{query}"))
                .await
        }
    };
    let mine = list("", MEMBER).await;
    assert_eq!(mine.body["attachments"][0]["id"], id);
    let theirs = list("", OTHER).await;
    assert_eq!(theirs.body["attachments"], json!([]));
    let hidden = h
        .with_headers(&[OTHER, V3_31])
        .get(&format!("/v3/attachments/{id}"))
        .await;
    assert_eq!(hidden.status, 404);
    for query in [
        "?instance_id=d5c4c6b7-8e0f-4a2b-9c3d-1e2f3a4b5c6d",
        "?status=reserved",
        "?attach_status=reserved",
    ] {
        let found = list(query, MEMBER).await;
        assert_eq!(
            found.body["attachments"].as_array().unwrap().len(),
            1,
            "{query}"
        );
    }
    let none = list("?attach_status=attached", MEMBER).await;
    assert_eq!(none.body["attachments"], json!([]));
    let refused = list("?attached_host=x", MEMBER).await;
    assert_eq!(
        refused.refusal(400),
        "Invalid filters attached_host are found in query options."
    );
    let bad_sort = list("?sort=bogus:asc", MEMBER).await;
    assert_eq!(bad_sort.status, 400);
    // A member cannot force a detach.
    let forced = h
        .with_headers(&[MEMBER])
        .post(
            &format!("/v3/volumes/{volume}/action"),
            json!({"os-force_detach": {}}),
        )
        .await;
    assert_eq!(forced.status, 403, "{}", forced.text);
}

#[tokio::test]
async fn legacy_reserve_attach_and_detach_actions() {
    let h = harness().await;
    let volume = h.available_volume(1).await;
    let act = |body: Value| {
        let h = &h;
        async move { h.post(&format!("/v3/volumes/{volume}/action"), body).await }
    };
    let status = || async { h.volume_status(volume).await };

    assert_eq!(act(json!({"os-reserve": {}})).await.status, 202);
    assert_eq!(status().await, VolumeStatus::Attaching);
    let again = act(json!({"os-reserve": null})).await;
    assert_eq!(
        again.refusal(400),
        "Invalid volume: Volume status must be available to reserve, but the status is attaching."
    );
    assert_eq!(act(json!({"os-unreserve": {}})).await.status, 202);
    assert_eq!(status().await, VolumeStatus::Available);
    let missing = h
        .post(
            &format!("/v3/volumes/{}/action", VolumeId::new_random()),
            json!({"os-reserve": {}}),
        )
        .await;
    assert_eq!(missing.status, 404);

    // os-initialize_connection: 200 and the nested shape.
    let init = act(json!({"os-initialize_connection": {"connector": {"initiator": "iqn.x", "enforce_multipath": true}}}))
        .await;
    assert_eq!(init.status, 200, "{}", init.text);
    let info = &init.body["connection_info"];
    assert_eq!(info["driver_volume_type"], "fake");
    assert_eq!(info["data"]["volume_id"], volume.to_string());
    assert_eq!(info["enforce_multipath"], true);
    let stringly = act(json!({"os-initialize_connection": {"connector": "iqn.x"}})).await;
    assert_eq!(stringly.status, 400);

    // os-attach: schema, then in use with the attachment shown.
    let neither = act(json!({"os-attach": {"mountpoint": "/dev/vdb"}})).await;
    assert_eq!(neither.status, 400);
    let attached =
        act(json!({"os-attach": {"instance_uuid": INSTANCE, "mountpoint": "/dev/vdb"}})).await;
    assert_eq!(attached.status, 202, "{}", attached.text);
    let shown = h.get(&format!("/v3/volumes/{volume}")).await;
    let v = &shown.body["volume"];
    assert_eq!(v["status"], "in-use");
    assert_eq!(v["attachments"][0]["server_id"], INSTANCE);
    assert_eq!(v["attachments"][0]["device"], "/dev/vdb");
    assert_eq!(v["metadata"]["readonly"], "False");
    let second =
        act(json!({"os-attach": {"instance_uuid": OTHER_INSTANCE, "mountpoint": "/dev/vdc"}}))
            .await;
    assert_eq!(
        second.refusal(400),
        "Error attaching volume - InvalidVolume: Invalid volume: volume is already attached and multiple attachments are not enabled"
    );

    // Detaching: begin, roll back, begin on a free volume is refused.
    assert_eq!(act(json!({"os-begin_detaching": {}})).await.status, 202);
    assert_eq!(status().await, VolumeStatus::Detaching);
    assert_eq!(act(json!({"os-roll_detaching": {}})).await.status, 202);
    assert_eq!(status().await, VolumeStatus::InUse);

    // os-terminate_connection and os-detach reach the backend (a legacy
    // attachment was never connected through Cinder, so users may).
    let terminated =
        act(json!({"os-terminate_connection": {"connector": {"initiator": "iqn.x"}}})).await;
    assert_eq!(terminated.status, 202, "{}", terminated.text);
    let detached = act(json!({"os-detach": {}})).await;
    assert_eq!(detached.status, 202, "{}", detached.text);
    let methods = Harness::wait_for(&h.volume, 3).await;
    assert_eq!(
        methods,
        [
            "initialize_connection",
            "terminate_connection",
            "detach_volume"
        ]
    );
    let seen = h.volume.seen.lock().unwrap().clone();
    let attachment = h.db.get_volume(volume).await.unwrap().attachments[0].id;
    assert_eq!(seen[2].args["attachment_id"], attachment.to_string());
    // The stand-in did not detach; do it, then begin_detaching is refused.
    h.db.detach_attachment(volume, Some(attachment))
        .await
        .unwrap();
    let refused = act(json!({"os-begin_detaching": {}})).await;
    assert_eq!(
        refused.refusal(400),
        "Invalid volume: Unable to detach volume. Volume status must be 'in-use' and attach_status must be 'attached' to detach."
    );

    // A read-only volume attaches read-only only.
    let ro = act(json!({"os-update_readonly_flag": {"readonly": true}})).await;
    assert_eq!(ro.status, 202);
    let rw =
        act(json!({"os-attach": {"host_name": "Backup_Host", "mountpoint": "/dev/vdb"}})).await;
    assert_eq!(
        rw.refusal(400),
        format!("Invalid attaching mode 'rw' for volume {volume}.")
    );
    let by_host = act(
        json!({"os-attach": {"host_name": "Backup_Host", "mountpoint": "/dev/vdb", "mode": "ro"}}),
    )
    .await;
    assert_eq!(by_host.status, 202);
    let host = &h.db.get_volume(volume).await.unwrap().attachments[0];
    assert_eq!(host.attached_host.as_deref(), Some("backup-host"));

    // os-reset_status to detached clears the attachments.
    let reset =
        act(json!({"os-reset_status": {"status": "available", "attach_status": "detached"}})).await;
    assert_eq!(reset.status, 202);
    let cleared = h.db.get_volume(volume).await.unwrap();
    assert_eq!(cleared.status, VolumeStatus::Available);
    assert!(cleared.attachments.is_empty());
    assert!(
        h.db.list_attachments(&Default::default())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn detach_needs_an_attachment_id_when_there_are_several() {
    let h = harness().await;
    let volume = h.available_volume(1).await;
    let attached = h
        .post(
            &format!("/v3/volumes/{volume}/action"),
            json!({"os-attach": {"instance_uuid": INSTANCE, "mountpoint": "/dev/vdb"}}),
        )
        .await;
    assert_eq!(attached.status, 202, "{}", attached.text);
    // The same instance may hold a second attachment (live migration).
    let again = create(
        &h,
        "3.27",
        json!({"volume_uuid": volume.to_string(), "instance_uuid": INSTANCE}),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(h.db.get_volume(volume).await.unwrap().attachments.len(), 2);
    // Which one? Cinder cannot tell whose it is: 409.
    let unnamed = h
        .post(
            &format!("/v3/volumes/{volume}/action"),
            json!({"os-detach": null}),
        )
        .await;
    assert_eq!(
        unnamed.refusal(409),
        "ConflictNovaUsingAttachment: Detach volume from instance  using the Compute API"
    );
    let bad = h
        .post(
            &format!("/v3/volumes/{volume}/action"),
            json!({"os-detach": {"attachment_id": "not-a-uuid"}}),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(h.volume.methods().is_empty());
    assert_eq!(h.db.get_volume(volume).await.unwrap().attachments.len(), 2);
}
