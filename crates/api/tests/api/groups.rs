//! Group types (3.11), groups (3.13), group snapshots (3.14) and groups from
//! sources: views per microversion as Tempest's strict schemas expect,
//! validation with Cinder's texts, administrator-only operations, and the
//! rule that a refused request writes nothing.

use clinker_db::{FilterValue, QuotaRepository};
use clinker_db::{
    GroupQuery, GroupRepository, GroupSnapshotQuery, GroupSnapshotRepository, SnapshotRepository,
    VolumeRepository,
};
use clinker_types::group_status::{GroupSnapshotStatus, GroupStatus};
use clinker_types::{GroupId, GroupSnapshotId, SnapshotStatus, VolumeId, VolumeStatus};
use serde_json::{Value, json};

use clinker_testkit::quota::group_snapshot_members;

use crate::common::Verbs;
use crate::common::{Harness, Options, POOL, PROJECT, sorted_keys};
use crate::surface_support::{MEMBER, harness, with_members};

async fn harness_with(options: Options) -> Harness {
    Harness::registered(with_members(options)).await
}

fn keys(value: &Value) -> Vec<String> {
    sorted_keys(value)
}

async fn volume_type(h: &Harness, name: &str) -> String {
    let reply = h
        .post("/v3/types", json!({"volume_type": {"name": name}}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.id::<String>("volume_type")
}

async fn group_type(h: &Harness, name: &str) -> String {
    let reply = h
        .at("3.11")
        .post("/v3/group_types", json!({"group_type": {"name": name}}))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    reply.id::<String>("group_type")
}

/// A group created through the API and made available as the scheduler
/// and the volume service would.
async fn available_group(h: &Harness, group_type: &str, types: &[&str]) -> GroupId {
    let reply = h
        .at("3.13")
        .post(
            "/v3/groups",
            json!({"group": {"name": "g", "group_type": group_type, "volume_types": types}}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let id: GroupId = reply.id("group");
    h.db.place_group(id, POOL).await.unwrap();
    h.db.finish_group_create(id).await.unwrap();
    id
}

/// An available volume of `volume_type` in `group`.
async fn member(h: &Harness, group: GroupId, volume_type: &str) -> VolumeId {
    let scheduled = h.scheduler.methods().len();
    let volume = json!({"size": 1, "volume_type": volume_type, "group_id": group.to_string()});
    let reply = h
        .at("3.13")
        .post("/v3/volumes", json!({ "volume": volume }))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(reply.body["volume"]["group_id"], group.to_string());
    let id: VolumeId = reply.id("volume");
    // Its placement cast has arrived: tests that count casts count theirs.
    Harness::wait_for(&h.scheduler, scheduled + 1).await;
    h.make_available(id).await;
    id
}

async fn group_count(h: &Harness) -> usize {
    h.db.list_groups(&GroupQuery::default())
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn group_types_and_specs_follow_cinder() {
    let h = harness_with(Options {
        config: "default_group_type = chosen".into(),
        ..Options::default()
    })
    .await;
    // Below 3.11 the resource does not exist.
    let old = h.at("3.10").get("/v3/group_types").await;
    assert_eq!(old.status, 404);

    let specs = json!({"consistent_group_snapshot_enabled": "<is> False"});
    let private =
        json!({"name": "b-private", "description": "d", "is_public": false, "group_specs": specs});
    let created = h
        .at("3.11")
        .post("/v3/group_types", json!({ "group_type": private }))
        .await;
    assert_eq!(created.status, 202, "{}", created.text);
    let body = &created.body["group_type"];
    assert_eq!(
        keys(body),
        ["description", "group_specs", "id", "is_public", "name"]
    );
    assert_eq!(body["is_public"], false);
    let private = body["id"].as_str().unwrap().to_owned();
    let public = group_type(&h, "a-public").await;

    let again = h
        .at("3.11")
        .post(
            "/v3/group_types",
            json!({"group_type": {"name": "a-public"}}),
        )
        .await;
    assert_eq!(again.refusal(409), "Group Type a-public already exists.");
    let bad = h
        .at("3.11")
        .post(
            "/v3/group_types",
            json!({"group_type": {"name": "x", "colour": "red"}}),
        )
        .await;
    assert_eq!(bad.status, 400);

    // Sorting and visibility, as Tempest lists them (is_public=None: all).
    let names = |reply: &crate::common::Reply| -> Vec<String> {
        reply.body["group_types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let asc = h
        .at("3.11")
        .get("/v3/group_types?sort=name:asc&is_public=None")
        .await;
    assert_eq!(
        names(&asc),
        ["a-public", "b-private", "default_cgsnapshot_type"]
    );
    let desc = h
        .at("3.11")
        .get("/v3/group_types?sort=name:desc&is_public=None")
        .await;
    assert_eq!(
        names(&desc),
        ["default_cgsnapshot_type", "b-private", "a-public"]
    );
    let private_only = h.at("3.11").get("/v3/group_types?is_public=False").await;
    assert_eq!(names(&private_only), ["b-private"]);
    let public_only = h.at("3.11").get("/v3/group_types?is_public=True").await;
    assert!(!names(&public_only).contains(&"b-private".to_owned()));
    let bad = h.at("3.11").get("/v3/group_types?is_public=maybe").await;
    assert_eq!(bad.fault("badRequest"), "Invalid is_public filter [maybe]");

    // Update: 200 with the new values; blank names and empty bodies refused.
    let updated = h
        .at("3.11")
        .put(
            &format!("/v3/group_types/{private}"),
            json!({"group_type": {"name": "renamed", "description": "new"}}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(
        (
            updated.body["group_type"]["name"].as_str(),
            updated.body["group_type"]["description"].as_str()
        ),
        (Some("renamed"), Some("new"))
    );
    for (body, text) in [
        (
            json!({"group_type": {"name": "   "}}),
            "Group type name can not be empty.",
        ),
        (
            json!({"group_type": {}}),
            "Specify group type name, description or a combination thereof.",
        ),
    ] {
        let reply = h
            .at("3.11")
            .put(&format!("/v3/group_types/{private}"), body)
            .await;
        assert_eq!(reply.fault("badRequest"), text);
    }
    let clash = h
        .at("3.11")
        .put(
            &format!("/v3/group_types/{private}"),
            json!({"group_type": {"name": "a-public"}}),
        )
        .await;
    assert_eq!(clash.status, 409);

    // The default group type comes from default_group_type.
    let missing = h.at("3.11").get("/v3/group_types/default").await;
    assert_eq!(
        missing.fault("itemNotFound"),
        "Default group type can not be found."
    );
    let chosen = group_type(&h, "chosen").await;
    let default = h.at("3.11").get("/v3/group_types/default").await;
    assert_eq!(default.body["group_type"]["id"], chosen.as_str());

    // Specs, exactly as Tempest's test walks them.
    let base = format!("/v3/group_types/{public}/group_specs");
    let create = json!({"group_specs": {"key1": "value1", "key2": "value2"}});
    let reply = h.at("3.11").post(&base, create.clone()).await;
    assert_eq!((reply.status, &reply.body), (202, &create));
    let update = json!({"group_specs": {"key2": "value2-updated", "key3": "value3"}});
    let reply = h.at("3.11").post(&base, update.clone()).await;
    assert_eq!((reply.status, &reply.body), (202, &update));
    let one = h.at("3.11").get(&format!("{base}/key2")).await;
    assert_eq!(one.body, json!({"key2": "value2-updated"}));
    let item = json!({"key3": "value3-updated"});
    let reply = h
        .at("3.11")
        .put(&format!("{base}/key3"), item.clone())
        .await;
    assert_eq!((reply.status, &reply.body), (200, &item));
    let mismatch = h.at("3.11").put(&format!("{base}/key1"), item).await;
    assert_eq!(
        mismatch.fault("badRequest"),
        "Request body and URI mismatch"
    );
    let all = h.at("3.11").get(&base).await;
    assert_eq!(
        all.body,
        json!({"group_specs": {"key1": "value1", "key2": "value2-updated", "key3": "value3-updated"}})
    );
    for key in ["key1", "key2", "key3"] {
        let deleted = h.at("3.11").delete(&format!("{base}/{key}")).await;
        assert_eq!(deleted.status, 202);
        let gone = h.at("3.11").get(&format!("{base}/{key}")).await;
        assert_eq!(
            gone.fault("itemNotFound"),
            format!("Group Type {public} has no extra spec with key {key}.")
        );
    }
    let again = h.at("3.11").delete(&format!("{base}/key1")).await;
    assert_eq!(
        again.fault("itemNotFound"),
        format!("Group Type {public} has no specs with key key1.")
    );
    let spaced = h
        .at("3.11")
        .post(&base, json!({"group_specs": {"a key": "v"}}))
        .await;
    assert_eq!(spaced.status, 400);

    // A type in use cannot be deleted; then it can.
    let vt = volume_type(&h, "vt").await;
    let group = available_group(&h, &public, &[&vt]).await;
    let in_use = h
        .at("3.11")
        .delete(&format!("/v3/group_types/{public}"))
        .await;
    assert_eq!(
        in_use.fault("badRequest"),
        format!(
            "Target group type is still in use. Group Type {public} deletion is not allowed with groups present with the type."
        )
    );
    // So is the volume type the group may hold.
    let vt_in_use = h.delete(&format!("/v3/types/{vt}")).await;
    assert_eq!(vt_in_use.status, 400);
    h.db.begin_group_delete(group, false).await.unwrap();
    h.db.finish_group_delete(group).await.unwrap();
    let deleted = h
        .at("3.11")
        .delete(&format!("/v3/group_types/{public}"))
        .await;
    assert_eq!(deleted.status, 202);
    let shown = h.at("3.11").get(&format!("/v3/group_types/{public}")).await;
    assert_eq!(
        shown.fault("itemNotFound"),
        format!("Group type {public} could not be found.")
    );
}

#[tokio::test]
async fn group_types_are_managed_by_administrators() {
    let h = harness().await;
    let private = h
        .at("3.11")
        .post(
            "/v3/group_types",
            json!({"group_type": {"name": "hidden", "is_public": false}}),
        )
        .await;
    let private = private.id::<String>("group_type");
    let public = group_type(&h, "shown").await;
    let as_member = |method: &'static str, uri: String, body: Option<Value>| {
        let h = &h;
        async move {
            h.send(
                method,
                &uri,
                body,
                &[MEMBER, ("OpenStack-API-Version", "volume 3.11")],
            )
            .await
        }
    };
    let refused = as_member(
        "POST",
        "/v3/group_types".into(),
        Some(json!({"group_type": {"name": "mine"}})),
    )
    .await;
    assert_eq!(
        refused.refusal(403),
        "Policy doesn't allow group:group_types:create to be performed."
    );
    for (method, uri, body) in [
        (
            "PUT",
            format!("/v3/group_types/{public}"),
            Some(json!({"group_type": {"name": "x"}})),
        ),
        ("DELETE", format!("/v3/group_types/{public}"), None),
        ("GET", format!("/v3/group_types/{public}/group_specs"), None),
        (
            "POST",
            format!("/v3/group_types/{public}/group_specs"),
            Some(json!({"group_specs": {"k": "v"}})),
        ),
    ] {
        let reply = as_member(method, uri.clone(), body).await;
        assert_eq!(reply.status, 403, "{method} {uri}: {}", reply.text);
    }
    // Members list and show public types, without their specs.
    let list = as_member("GET", "/v3/group_types".into(), None).await;
    let listed = list.body["group_types"].as_array().unwrap();
    assert!(listed.iter().all(|t| t.get("group_specs").is_none()));
    assert!(listed.iter().all(|t| t["id"] != private.as_str()));
    assert!(listed.iter().any(|t| t["id"] == public.as_str()));
    let hidden = as_member("GET", format!("/v3/group_types/{private}"), None).await;
    assert_eq!(hidden.status, 404);
    let shown = as_member("GET", format!("/v3/group_types/{public}"), None).await;
    assert_eq!(
        keys(&shown.body["group_type"]),
        ["description", "id", "is_public", "name"]
    );
    assert_eq!(group_count(&h).await, 0);
}

#[tokio::test]
async fn groups_views_follow_the_microversion() {
    let h = harness().await;
    let vt = volume_type(&h, "vt").await;
    let gt = group_type(&h, "gt").await;
    let old = h.at("3.12").get("/v3/groups").await;
    assert_eq!(old.status, 404);

    let created = h
        .at("3.13")
        .post(
            "/v3/groups",
            json!({"group": {"name": "  g1  ", "group_type": gt, "volume_types": [vt]}}),
        )
        .await;
    assert_eq!(created.status, 202, "{}", created.text);
    assert_eq!(keys(&created.body["group"]), ["id", "name"]);
    assert_eq!(created.body["group"]["name"], "g1", "names are trimmed");
    let id: GroupId = created.id("group");
    assert_eq!(
        Harness::wait_for(&h.scheduler, 1).await,
        ["create_group"],
        "the scheduler places the group"
    );
    assert_eq!(
        h.scheduler.seen.lock().unwrap()[0].args["group_id"],
        id.to_string()
    );
    let group = h.db.get_group(id).await.unwrap();
    assert_eq!(
        (group.status, group.availability_zone.as_str()),
        (GroupStatus::Creating, "nova")
    );
    assert_eq!(h.usage().await.get("groups"), Some(&1));
    h.db.place_group(id, POOL).await.unwrap();
    h.db.finish_group_create(id).await.unwrap();
    let volume = member(&h, id, &vt).await;

    let show = |version: &'static str, query: &'static str| {
        let h = &h;
        async move { h.at(version).get(&format!("/v3/groups/{id}{query}")).await }
    };
    let base = [
        "availability_zone",
        "created_at",
        "description",
        "group_type",
        "id",
        "name",
        "status",
        "volume_types",
    ];
    let at313 = show("3.13", "").await;
    assert_eq!(keys(&at313.body["group"]), base);
    assert_eq!(at313.body["group"]["group_type"], gt.as_str());
    assert_eq!(at313.body["group"]["volume_types"], json!([vt]));
    assert_eq!(at313.body["group"]["status"], "available");
    let at314 = show("3.14", "").await;
    let mut with_sources: Vec<&str> = base.to_vec();
    with_sources.extend(["group_snapshot_id", "source_group_id"]);
    with_sources.sort_unstable();
    assert_eq!(keys(&at314.body["group"]), with_sources);
    // `volumes` only from 3.25 and only when asked.
    assert!(
        show("3.24", "?list_volume=true").await.body["group"]
            .get("volumes")
            .is_none()
    );
    assert!(
        show("3.25", "").await.body["group"]
            .get("volumes")
            .is_none()
    );
    let listed = show("3.25", "?list_volume=true").await;
    assert_eq!(listed.body["group"]["volumes"], json!([volume.to_string()]));
    let bad = show("3.25", "?list_volume=maybe").await;
    assert_eq!(
        bad.fault("badRequest"),
        "Value 'maybe' for 'list_volume' is not a boolean."
    );
    assert_eq!(
        show("3.38", "").await.body["group"]["replication_status"],
        "disabled"
    );
    assert_eq!(show("3.58", "").await.body["group"]["project_id"], PROJECT);

    let summary = h.at("3.13").get("/v3/groups").await;
    assert_eq!(summary.body["groups"].as_array().unwrap().len(), 1);
    assert_eq!(keys(&summary.body["groups"][0]), ["id", "name"]);
    assert_eq!(keys(&summary.body), ["groups"]);
    let detail = h.at("3.13").get("/v3/groups/detail").await;
    assert_eq!(keys(&detail.body["groups"][0]), base);
    let filtered = h.at("3.13").get("/v3/groups/detail?name=nope").await;
    assert_eq!(filtered.body["groups"], json!([]));
    let unknown = h.at("3.13").get("/v3/groups?colour=red").await;
    assert_eq!(unknown.body["groups"], json!([]));
    let paged = h.at("3.13").get("/v3/groups?limit=1").await;
    assert!(
        paged.body["group_links"][0]["href"]
            .as_str()
            .unwrap()
            .contains(&format!("marker={id}"))
    );

    // Volumes list their group from 3.13; a volume of a group cannot be
    // deleted on its own.
    let vol = h.at("3.13").get(&format!("/v3/volumes/{volume}")).await;
    assert_eq!(vol.body["volume"]["group_id"], id.to_string());
    let refused = h.delete(&format!("/v3/volumes/{volume}")).await;
    assert!(refused.refusal(400).contains("belong to a group"));
    let unknown = h
        .at("3.13")
        .get(&format!("/v3/groups/{}", GroupId::new_random()))
        .await;
    assert_eq!(unknown.status, 404);
    let garbage = h.at("3.13").get("/v3/groups/xyz").await;
    assert_eq!(
        garbage.fault("itemNotFound"),
        "Group xyz could not be found."
    );
}

#[tokio::test]
async fn bad_group_creates_write_nothing() {
    let h = harness().await;
    let vt = volume_type(&h, "vt").await;
    let gt = group_type(&h, "gt").await;
    let cases = [
        (
            json!({"group": {"group_type": gt, "volume_types": []}}),
            400,
            "Invalid input for field/attribute volume_types. Value: []. [] is too short".to_owned(),
        ),
        (
            json!({"group": {"group_type": gt, "volume_types": [vt, vt]}}),
            400,
            format!(
                "Invalid input for field/attribute volume_types. Value: ['{vt}', '{vt}']. ['{vt}', '{vt}'] has non-unique elements"
            ),
        ),
        (
            json!({"group": {"volume_types": [vt]}}),
            400,
            "Invalid input for field/attribute group. Value: {'volume_types': ['".to_owned()
                + &vt
                + "']}. 'group_type' is a required property",
        ),
        (
            json!({"group": {"group_type": "", "volume_types": [vt]}}),
            400,
            "Invalid input for field/attribute group_type. Value: . '' is not a 'group_type'"
                .to_owned(),
        ),
        (
            json!({"group": {"group_type": "nope", "volume_types": [vt]}}),
            404,
            "Group type with name nope could not be found.".to_owned(),
        ),
        (
            json!({"group": {"group_type": gt, "volume_types": ["nope"]}}),
            404,
            "Volume type with name nope could not be found.".to_owned(),
        ),
        (
            json!({"group": {"group_type": gt, "volume_types": [vt], "availability_zone": "mars"}}),
            400,
            "Invalid input received: Availability zone 'mars' is invalid.".to_owned(),
        ),
        (
            json!({"group": {"group_type": gt, "volume_types": [vt], "availability_zone": ""}}),
            400,
            "The 'availability_zone' can not be None.".to_owned(),
        ),
        (
            json!({"group": {"group_type": clinker_types::group::DEFAULT_CGSNAPSHOT_TYPE_ID, "volume_types": [vt]}}),
            400,
            format!(
                "Group_type {} is reserved for migrating CGs to groups. Migrated group can only be operated by CG APIs.",
                clinker_types::group::DEFAULT_CGSNAPSHOT_TYPE_ID
            ),
        ),
    ];
    for (body, status, text) in cases {
        let reply = h.at("3.13").post("/v3/groups", body).await;
        assert_eq!(reply.status, status, "{}", reply.text);
        let fault = if status == 404 {
            "itemNotFound"
        } else {
            "badRequest"
        };
        assert_eq!(reply.fault(fault), text);
    }
    assert_eq!(group_count(&h).await, 0);
    assert_eq!(h.usage().await.get("groups"), None);

    // Out of groups: 413 with Cinder's exception text, nothing written.
    h.db.set_project_quota(PROJECT, "groups", 0).await.unwrap();
    let over = h
        .at("3.13")
        .post(
            "/v3/groups",
            json!({"group": {"group_type": gt, "volume_types": [vt]}}),
        )
        .await;
    assert_eq!(
        over.refusal(413),
        "GroupLimitExceeded: Maximum number of groups allowed (0) exceeded"
    );
    assert_eq!(group_count(&h).await, 0);

    // No scheduler: 503, and the group is gone again.
    h.db.set_project_quota(PROJECT, "groups", 10).await.unwrap();
    let lonely = harness_with(Options {
        scheduler: false,
        ..Options::default()
    })
    .await;
    let vt = volume_type(&lonely, "vt").await;
    let gt = group_type(&lonely, "gt").await;
    let unavailable = lonely
        .at("3.13")
        .post(
            "/v3/groups",
            json!({"group": {"group_type": gt, "volume_types": [vt]}}),
        )
        .await;
    assert_eq!(unavailable.status, 503);
    assert_eq!(group_count(&lonely).await, 0);
    assert_eq!(lonely.usage().await.get("groups"), None);
}

#[tokio::test]
async fn volumes_join_groups_of_their_types_on_the_group_backend() {
    let h = harness().await;
    let vt = volume_type(&h, "vt").await;
    let other = volume_type(&h, "other").await;
    let gt = group_type(&h, "gt").await;
    let group = available_group(&h, &gt, &[&vt]).await;
    let create = |body: Value| {
        let h = &h;
        async move {
            h.at("3.13")
                .post("/v3/volumes", json!({ "volume": body }))
                .await
        }
    };
    let before = h.volume_count().await;
    let no_type = create(json!({"size": 1, "group_id": group.to_string()})).await;
    assert_eq!(
        no_type.fault("badRequest"),
        "Invalid input received: volume_type must be provided when creating a volume in a group."
    );
    let wrong =
        create(json!({"size": 1, "volume_type": other, "group_id": group.to_string()})).await;
    assert_eq!(
        wrong.fault("badRequest"),
        "Invalid input received: Invalid volume_type provided: other (requested type must be supported by this group)."
    );
    let missing = create(
        json!({"size": 1, "volume_type": vt, "group_id": GroupId::new_random().to_string()}),
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(h.volume_count().await, before, "refusals write nothing");

    // The create is pinned to the group's backend and zone.
    let scheduled = h.scheduler.methods().len();
    let ok = create(json!({"size": 1, "volume_type": vt, "group_id": group.to_string()})).await;
    assert_eq!(ok.status, 202, "{}", ok.text);
    assert_eq!(ok.body["volume"]["group_id"], group.to_string());
    Harness::wait_for(&h.scheduler, scheduled + 1).await;
    let cast = h.scheduler.seen.lock().unwrap()[scheduled].clone();
    assert_eq!(cast.method, "create_volume");
    assert_eq!(
        cast.args["request_spec"]["resource_backend"], "node1@file",
        "pinned to the group's backend"
    );
    assert_eq!(cast.args["request_spec"]["availability_zone"], "nova");

    // A group not placed yet cannot take volumes.
    let unplaced = h
        .at("3.13")
        .post(
            "/v3/groups",
            json!({"group": {"group_type": gt, "volume_types": [vt]}}),
        )
        .await;
    let unplaced = unplaced.id::<String>("group");
    let early = create(json!({"size": 1, "volume_type": vt, "group_id": unplaced})).await;
    assert_eq!(
        early.fault("badRequest"),
        format!("Invalid Group: Group {unplaced} has not been placed on a backend yet.")
    );
}

#[tokio::test]
async fn group_updates_check_every_volume() {
    let h = harness().await;
    let vt = volume_type(&h, "vt").await;
    let other = volume_type(&h, "other").await;
    let gt = group_type(&h, "gt").await;
    let group = available_group(&h, &gt, &[&vt]).await;
    let inside = member(&h, group, &vt).await;
    let loose = h.create_volume(json!({"size": 1, "volume_type": vt})).await;
    h.make_available(loose).await;
    let wrong_type = h
        .create_volume(json!({"size": 1, "volume_type": other}))
        .await;
    h.make_available(wrong_type).await;
    let update = |body: Value| {
        let h = &h;
        async move {
            h.at("3.13")
                .put(&format!("/v3/groups/{group}"), json!({ "group": body }))
                .await
        }
    };
    let gid = group.to_string();
    let stray = VolumeId::new_random();
    for (body, text) in [
        (
            json!({"add_volumes": format!("{loose}"), "remove_volumes": format!("{loose},{inside}")}),
            format!("Invalid volume: UUIDs ['{loose}'] are in both add and remove volume list."),
        ),
        (
            json!({"add_volumes": stray.to_string()}),
            format!(
                "Invalid volume: Cannot add volume {stray} to group {gid} because volume cannot be found."
            ),
        ),
        (
            json!({"add_volumes": wrong_type.to_string()}),
            format!(
                "Invalid volume: Cannot add volume {wrong_type} to group {gid} because volume type {other} is not supported by the group."
            ),
        ),
        (
            json!({"remove_volumes": loose.to_string()}),
            format!(
                "Invalid volume: Cannot remove volume {loose} from group {gid} because it is not in the group."
            ),
        ),
        (
            json!({"name": "g"}),
            format!(
                "Invalid Group: Cannot update group {gid} because no valid name, description, add_volumes, or remove_volumes were provided."
            ),
        ),
    ] {
        let reply = update(body).await;
        assert_eq!(reply.fault("badRequest"), text);
    }
    let empty = update(json!({})).await;
    assert_eq!(empty.status, 400);

    // A volume being extended cannot join.
    h.db.reset_volume_status(loose, Some(VolumeStatus::Extending), None, None)
        .await
        .unwrap();
    let busy = update(json!({"add_volumes": loose.to_string()})).await;
    assert_eq!(
        busy.fault("badRequest"),
        format!(
            "Invalid volume: Cannot add volume {loose} to group {gid} because volume is in an invalid state: extending. Valid states are: ('available', 'in-use')."
        )
    );
    h.db.reset_volume_status(loose, Some(VolumeStatus::Available), None, None)
        .await
        .unwrap();
    assert_eq!(h.db.get_volume(loose).await.unwrap().group_id, None);

    // Swap the members and rename, in one request (202, empty body).
    let swapped = update(json!({"name": " new ", "description": "d",
        "add_volumes": format!(",{loose},"), "remove_volumes": inside.to_string()}))
    .await;
    assert_eq!(swapped.status, 202, "{}", swapped.text);
    assert_eq!(swapped.text, "");
    assert_eq!(
        h.db.get_volume(loose).await.unwrap().group_id.as_deref(),
        Some(gid.as_str())
    );
    assert_eq!(h.db.get_volume(inside).await.unwrap().group_id, None);
    let shown = h.at("3.13").get(&format!("/v3/groups/{group}")).await;
    assert_eq!(
        (
            shown.body["group"]["name"].as_str(),
            shown.body["group"]["status"].as_str()
        ),
        (Some("new"), Some("available"))
    );
    // Membership needs an available group.
    h.db.reset_group_status(group, GroupStatus::Error)
        .await
        .unwrap();
    let not_available = update(json!({"add_volumes": inside.to_string()})).await;
    assert_eq!(
        not_available.fault("badRequest"),
        "Invalid Group: Group status must be available."
    );
}

#[tokio::test]
async fn group_deletes_follow_cinder() {
    let h = harness().await;
    let vt = volume_type(&h, "vt").await;
    let gt = group_type(&h, "gt").await;
    let group = available_group(&h, &gt, &[&vt]).await;
    let volume = member(&h, group, &vt).await;
    let delete = |delete_volumes: bool| {
        let h = &h;
        async move {
            h.at("3.13")
                .post(
                    &format!("/v3/groups/{group}/action"),
                    json!({"delete": {"delete-volumes": delete_volumes}}),
                )
                .await
        }
    };
    let without = delete(false).await;
    assert_eq!(
        without.fault("badRequest"),
        format!(
            "Invalid Group: Group {group} still contains volumes. The delete-volumes flag is required to delete it."
        )
    );
    h.available_snapshot(volume).await;
    let with_snapshot = delete(true).await;
    assert_eq!(
        with_snapshot.fault("badRequest"),
        "Invalid Group: Volume in group still has dependent snapshots."
    );
    assert_eq!(
        h.group_status(group).await,
        GroupStatus::Available,
        "refusals change nothing"
    );
    let snapshot = h.db.snapshots_of_volume(volume).await.unwrap()[0].id;
    h.db.begin_snapshot_delete(snapshot, clinker_types::status::SnapshotTransition::Delete)
        .await
        .unwrap();
    h.db.finish_snapshot_delete(snapshot).await.unwrap();
    let bad_flag = h
        .at("3.13")
        .post(
            &format!("/v3/groups/{group}/action"),
            json!({"delete": {"delete-volumes": "maybe"}}),
        )
        .await;
    assert_eq!(bad_flag.status, 400);

    let accepted = delete(true).await;
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    assert_eq!(
        Harness::wait_for(&h.volume, 2).await,
        ["create_snapshot", "delete_group"]
    );
    assert_eq!(h.group_status(group).await, GroupStatus::Deleting);
    assert_eq!(h.volume_status(volume).await, VolumeStatus::Deleting);
    // A repeat is accepted and re-cast.
    assert_eq!(delete(true).await.status, 202);
    assert_eq!(
        Harness::wait_for(&h.volume, 3).await,
        ["create_snapshot", "delete_group", "delete_group"]
    );

    // A group never placed goes at once, with its quota.
    let unplaced = h
        .at("3.13")
        .post(
            "/v3/groups",
            json!({"group": {"group_type": gt, "volume_types": [vt]}}),
        )
        .await;
    let unplaced = unplaced.id::<String>("group");
    let gone = h
        .at("3.13")
        .post(
            &format!("/v3/groups/{unplaced}/action"),
            json!({"delete": {}}),
        )
        .await;
    assert_eq!(gone.status, 202);
    let shown = h.at("3.13").get(&format!("/v3/groups/{unplaced}")).await;
    assert_eq!(shown.status, 404);
    assert_eq!(h.usage().await.get("groups"), Some(&1));
}

#[tokio::test]
async fn group_status_resets_are_for_administrators() {
    let h = harness().await;
    let vt = volume_type(&h, "vt").await;
    let gt = group_type(&h, "gt").await;
    let group = available_group(&h, &gt, &[&vt]).await;
    let reset =
        |version: &'static str, status: &'static str, token: (&'static str, &'static str)| {
            let h = &h;
            async move {
                h.with_headers(&[
                    token,
                    ("OpenStack-API-Version", &format!("volume {version}")),
                ])
                .post(
                    &format!("/v3/groups/{group}/action"),
                    json!({"reset_status": {"status": status}}),
                )
                .await
            }
        };
    let admin = ("x-auth-token", "admin:admin");
    assert_eq!(reset("3.19", "error", admin).await.status, 404);
    for status in ["creating", "available", "ERROR"] {
        let reply = reset("3.20", status, admin).await;
        assert_eq!(reply.status, 202, "{}", reply.text);
        assert_eq!(h.group_status(group).await.as_str(), status.to_lowercase());
    }
    let in_use = reset("3.20", "in-use", admin).await;
    assert_eq!(
        in_use.fault("badRequest"),
        "Invalid Group Status: Group status: in-use is invalid, valid status are: ('error', 'available', 'creating', 'deleting', 'deleted', 'updating', 'in-use', 'error_deleting')."
    );
    let blank = reset("3.20", " ", admin).await;
    assert_eq!(
        blank.fault("badRequest"),
        "Invalid Group Status: The 'status' can not be empty."
    );
    let other = h
        .at("3.20")
        .post(
            &format!("/v3/groups/{group}/action"),
            json!({"frobnicate": {}}),
        )
        .await;
    assert!(
        other
            .fault("badRequest")
            .starts_with("There is no such action: frobnicate.")
    );
    // A member cannot see an administrator's group at all.
    let member = reset("3.20", "available", MEMBER).await;
    assert_eq!(member.status, 404);
    assert_eq!(h.group_status(group).await, GroupStatus::Error);
}

#[tokio::test]
async fn group_snapshots_views_and_rules() {
    let h = harness().await;
    let vt = volume_type(&h, "vt").await;
    let gt = group_type(&h, "gt").await;
    let group = available_group(&h, &gt, &[&vt]).await;
    let a = member(&h, group, &vt).await;
    let b = member(&h, group, &vt).await;
    let old = h.at("3.13").get("/v3/group_snapshots").await;
    assert_eq!(old.status, 404);

    let gs = json!({"group_id": group.to_string(), "name": "gs", "description": "d"});
    let created = h
        .at("3.14")
        .post("/v3/group_snapshots", json!({ "group_snapshot": gs }))
        .await;
    assert_eq!(created.status, 202, "{}", created.text);
    assert_eq!(
        keys(&created.body["group_snapshot"]),
        ["group_type_id", "id", "name"]
    );
    assert_eq!(created.body["group_snapshot"]["group_type_id"], gt.as_str());
    let gs: GroupSnapshotId = created.id("group_snapshot");
    assert_eq!(
        Harness::wait_for(&h.volume, 1).await,
        ["create_group_snapshot"]
    );
    let members = group_snapshot_members(&h.db, gs).await;
    let mut covered: Vec<VolumeId> = members.iter().map(|s| s.volume_id).collect();
    covered.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(covered, expected);
    assert_eq!(h.usage().await.get("snapshots"), Some(&2));

    // Snapshots show their group snapshot from 3.14.
    let snap = members[0].id;
    let shown = h.at("3.14").get(&format!("/v3/snapshots/{snap}")).await;
    assert_eq!(shown.body["snapshot"]["group_snapshot_id"], gs.to_string());
    // A member cannot be deleted on its own, not even by force.
    let direct = h.delete(&format!("/v3/snapshots/{snap}")).await;
    assert_eq!(
        direct.fault("badRequest"),
        "Invalid snapshot: Snapshot status must be available or error and must not be part of a group."
    );
    // Nor can a group snapshot still being created.
    let early = h
        .at("3.14")
        .delete(&format!("/v3/group_snapshots/{gs}"))
        .await;
    assert_eq!(
        early.fault("badRequest"),
        "Invalid GroupSnapshot: GroupSnapshot status must be available or error, and no Group can be currently using it as source for its creation."
    );
    for m in &members {
        h.db.finish_snapshot_create(m.id, None).await.unwrap();
    }
    h.db.finish_group_snapshot_create(gs).await.unwrap();

    let show = h.at("3.14").get(&format!("/v3/group_snapshots/{gs}")).await;
    assert_eq!(
        keys(&show.body["group_snapshot"]),
        [
            "created_at",
            "description",
            "group_id",
            "group_type_id",
            "id",
            "name",
            "status"
        ]
    );
    assert_eq!(show.body["group_snapshot"]["status"], "available");
    assert_eq!(
        h.at("3.58")
            .get(&format!("/v3/group_snapshots/{gs}"))
            .await
            .body["group_snapshot"]["project_id"],
        PROJECT
    );
    let list = h.at("3.14").get("/v3/group_snapshots").await;
    assert_eq!(keys(&list.body["group_snapshots"][0]), ["id", "name"]);
    let detail = h.at("3.14").get("/v3/group_snapshots/detail").await;
    assert_eq!(
        detail.body["group_snapshots"][0]["group_id"],
        group.to_string()
    );
    // Filters and paging exist from 3.29 only.
    let ignored = h.at("3.28").get("/v3/group_snapshots?status=error").await;
    assert_eq!(ignored.body["group_snapshots"].as_array().unwrap().len(), 1);
    let filtered = h.at("3.29").get("/v3/group_snapshots?status=error").await;
    assert_eq!(filtered.body["group_snapshots"], json!([]));
    let like = h.at("3.34").get("/v3/group_snapshots?name~=G").await;
    assert_eq!(like.body["group_snapshots"].as_array().unwrap().len(), 1);

    // A group with snapshots cannot be deleted.
    let refused = h
        .at("3.13")
        .post(
            &format!("/v3/groups/{group}/action"),
            json!({"delete": {"delete-volumes": true}}),
        )
        .await;
    assert_eq!(
        refused.fault("badRequest"),
        "Invalid Group: Group has existing snapshots."
    );

    // Reset (3.19, admin), then delete: members go with it.
    let reset = |status: &'static str| {
        let h = &h;
        async move {
            h.at("3.19")
                .post(
                    &format!("/v3/group_snapshots/{gs}/action"),
                    json!({"reset_status": {"status": status}}),
                )
                .await
        }
    };
    assert_eq!(reset("error").await.status, 202);
    assert_eq!(
        h.db.get_group_snapshot(gs).await.unwrap().status,
        GroupSnapshotStatus::Error
    );
    let bad = reset("in-use").await;
    assert_eq!(
        bad.fault("badRequest"),
        "Invalid GroupSnapshot Status: Group snapshot status: in-use is invalid, valid statuses are: ('error', 'available', 'creating', 'deleting', 'deleted', 'updating', 'error_deleting')."
    );
    let deleted = h
        .at("3.14")
        .delete(&format!("/v3/group_snapshots/{gs}"))
        .await;
    assert_eq!(deleted.status, 202, "{}", deleted.text);
    Harness::wait_for(&h.volume, 2).await;
    assert_eq!(
        h.volume.methods(),
        ["create_group_snapshot", "delete_group_snapshot"]
    );
    assert!(
        h.db.snapshots_of_volume(a)
            .await
            .unwrap()
            .iter()
            .all(|s| s.status == SnapshotStatus::Deleting)
    );
}

#[tokio::test]
async fn bad_group_snapshots_write_nothing() {
    let h = harness().await;
    let vt = volume_type(&h, "vt").await;
    let gt = group_type(&h, "gt").await;
    let group = available_group(&h, &gt, &[&vt]).await;
    let volume = member(&h, group, &vt).await;
    let create = |body: Value| {
        let h = &h;
        async move { h.at("3.14").post("/v3/group_snapshots", body).await }
    };
    let missing =
        create(json!({"group_snapshot": {"group_id": GroupId::new_random().to_string()}})).await;
    assert_eq!(missing.status, 404);
    let bad_id = create(json!({"group_snapshot": {"group_id": "abc"}})).await;
    assert_eq!(bad_id.status, 400);
    h.db.reset_volume_status(volume, Some(VolumeStatus::Error), None, None)
        .await
        .unwrap();
    let in_error = create(json!({"group_snapshot": {"group_id": group.to_string()}})).await;
    assert_eq!(
        in_error.fault("badRequest"),
        "Invalid volume: The snapshot cannot be created when the volume is in error status."
    );
    h.db.reset_volume_status(volume, Some(VolumeStatus::Available), None, None)
        .await
        .unwrap();
    h.db.set_project_quota(PROJECT, "snapshots", 0)
        .await
        .unwrap();
    let over = create(json!({"group_snapshot": {"group_id": group.to_string()}})).await;
    assert_eq!(
        over.refusal(413),
        "SnapshotLimitExceeded: Maximum number of snapshots allowed (0) exceeded"
    );
    assert!(
        h.db.list_group_snapshots(&GroupSnapshotQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(h.snapshot_count().await, 0);
    assert_eq!(h.usage().await.get("snapshots"), None);
}

#[tokio::test]
async fn groups_from_sources() {
    let h = harness().await;
    let vt = volume_type(&h, "vt").await;
    let gt = group_type(&h, "gt").await;
    let source = available_group(&h, &gt, &[&vt]).await;
    let volume = member(&h, source, &vt).await;
    let from_src = |version: &'static str, body: Value| {
        let h = &h;
        async move { h.at(version).post("/v3/groups/action", body).await }
    };
    assert_eq!(
        from_src(
            "3.13",
            json!({"create-from-src": {"source_group_id": source.to_string()}})
        )
        .await
        .status,
        404
    );
    let both = from_src(
        "3.14",
        json!({"create-from-src": {"source_group_id": source.to_string(),
            "group_snapshot_id": GroupSnapshotId::new_random().to_string()}}),
    )
    .await;
    assert!(
        both.refusal(400)
            .ends_with("is not valid under any of the given schemas")
    );

    // From a group: one clone per volume, on the source's backend.
    let scheduled = h.scheduler.methods().len();
    let cloned = from_src(
        "3.14",
        json!({"create-from-src": {"source_group_id": source.to_string(), "name": "clone"}}),
    )
    .await;
    assert_eq!(cloned.status, 202, "{}", cloned.text);
    assert_eq!(keys(&cloned.body["group"]), ["id", "name"]);
    assert_eq!(cloned.body["group"]["name"], "clone");
    let clone: GroupId = cloned.id("group");
    let group = h.db.get_group(clone).await.unwrap();
    assert_eq!(
        (group.status, group.host.as_deref(), group.source_group_id),
        (GroupStatus::Creating, Some(POOL), Some(source))
    );
    let show = h.at("3.14").get(&format!("/v3/groups/{clone}")).await;
    assert_eq!(show.body["group"]["source_group_id"], source.to_string());
    assert_eq!(show.body["group"]["group_snapshot_id"], Value::Null);
    Harness::wait_for(&h.scheduler, scheduled + 1).await;
    let cast = h.scheduler.seen.lock().unwrap()[scheduled].clone();
    assert_eq!(cast.method, "create_volume");
    assert_eq!(
        cast.args["request_spec"]["source_volid"],
        volume.to_string()
    );
    assert_eq!(cast.args["request_spec"]["resource_backend"], POOL);
    let members =
        h.db.list_volumes(&clinker_db::VolumeQuery {
            filters: vec![(
                clinker_db::VolumeColumn::GroupId,
                FilterValue::Eq(clone.to_string()),
            )],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].source_volid, Some(volume));
    assert_eq!(h.usage().await.get("groups"), Some(&2));
    assert_eq!(h.usage().await.get("volumes"), Some(&2));

    // From a group snapshot whose snapshots are not ready: refused.
    let gs = h
        .at("3.14")
        .post(
            "/v3/group_snapshots",
            json!({"group_snapshot": {"group_id": source.to_string()}}),
        )
        .await;
    let gs = gs.id::<String>("group_snapshot");
    let groups_before = group_count(&h).await;
    let early = from_src(
        "3.14",
        json!({"create-from-src": {"group_snapshot_id": gs}}),
    )
    .await;
    assert!(
        early
            .refusal(400)
            .ends_with("is not in a valid state. Valid states are: ('available',)."),
        "{}",
        early.text
    );
    assert_eq!(group_count(&h).await, groups_before);

    // An empty source group is refused.
    let empty = available_group(&h, &gt, &[&vt]).await;
    let nothing = from_src(
        "3.14",
        json!({"create-from-src": {"source_group_id": empty.to_string()}}),
    )
    .await;
    assert_eq!(
        nothing.fault("badRequest"),
        "Invalid Group: Source Group is empty. No group will be created."
    );
    let missing = from_src(
        "3.14",
        json!({"create-from-src": {"group_snapshot_id": GroupSnapshotId::new_random().to_string()}}),
    )
    .await;
    assert!(missing.refusal(404).starts_with("GroupSnapshot "));
    assert_eq!(
        h.db.quota_usages(PROJECT).await.unwrap().get("groups"),
        Some(&3)
    );
}
