//! Attaching volumes on the all-in-one cluster over real HTTP: the
//! attachments API from reservation to delete, the legacy attach actions,
//! the race of two reservations, multiattach types and a forced detach.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use clinker_testkit::http::connector as connector_of;
use common::{Cluster, FILE_BACKEND};
use futures_util::future::join_all;
use serde_json::{Value, json};

const INSTANCE: &str = "d5c4c6b7-8e0f-4a2b-9c3d-1e2f3a4b5c6d";
const OTHER_INSTANCE: &str = "a1b2c3d4-e5f6-4711-8899-aabbccddeeff";

/// A file backend exported through the fake iSCSI target helper (CHAP
/// credentials and iSCSI connection info, no target daemon).
const FAKE_ISCSI_BACKEND: &str = "enabled_backends = file\n[file]\nvolume_driver = file\ntarget_helper = fake\ntarget_ip_address = 127.0.0.1\n";

/// The attachments API's microversion here.
const V: &str = "3.54";

fn connector() -> Value {
    connector_of("iqn.2004-10.org.clinker:test")
}

async fn volume(c: &Cluster, id: &str) -> Value {
    let (status, body) = c.at("3.48").get(&format!("/volumes/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body["volume"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attachment_create_update_complete_delete() {
    let mut c = Cluster::start("", FAKE_ISCSI_BACKEND).await;
    let id = c.available_volume(json!({"size": 1})).await;

    let (status, made) = c
        .at(V)
        .post("/attachments", json!({"attachment": {"volume_uuid": id}}))
        .await;
    assert_eq!(status, 200, "{made}");
    assert_eq!(made["attachment"]["status"], "reserved");
    let attachment = made["attachment"]["id"].as_str().unwrap().to_owned();
    assert_eq!(volume(&c, &id).await["status"], "reserved");

    let (status, updated) = c
        .at(V)
        .put(
            &format!("/attachments/{attachment}"),
            json!({"attachment": {"connector": connector()}}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    let a = &updated["attachment"];
    assert_eq!(a["status"], "attaching");
    assert_eq!(a["attach_mode"], "rw");
    assert_ne!(a["attached_at"], "");
    let info = &a["connection_info"];
    assert_eq!(info["driver_volume_type"], "iscsi");
    assert_eq!(
        info["target_iqn"],
        format!("iqn.2010-10.org.openstack:volume-{id}")
    );
    assert_eq!(info["target_portal"], "127.0.0.1:3260");
    assert_eq!(info["target_lun"], 0);
    assert_eq!(info["auth_method"], "CHAP");
    assert_eq!(info["auth_username"].as_str().unwrap().len(), 20);
    assert_eq!(info["auth_password"].as_str().unwrap().len(), 16);
    assert_eq!(info["attachment_id"], attachment);
    assert_eq!(info["access_mode"], "rw");
    assert_eq!(info["discard"], true);
    assert!(info.get("data").is_none(), "the attachments API flattens");
    assert_eq!(volume(&c, &id).await["status"], "attaching");
    // Shown again, the stored connection is the one handed out.
    let (_, shown) = c.at(V).get(&format!("/attachments/{attachment}")).await;
    assert_eq!(shown["attachment"]["connection_info"], *info);

    let (status, body) = c
        .at(V)
        .post(
            &format!("/attachments/{attachment}/action"),
            json!({"os-complete": {}}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let in_use = volume(&c, &id).await;
    assert_eq!(in_use["status"], "in-use");
    let shown = in_use["attachments"].as_array().unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0]["attachment_id"], attachment);
    assert_eq!(shown[0]["host_name"], "test");
    assert_eq!(shown[0]["device"], "na");
    // Attached: not deletable.
    let (status, _) = c.delete(&format!("/volumes/{id}")).await;
    assert_eq!(status, 400);

    let (status, remaining) = c.at(V).delete(&format!("/attachments/{attachment}")).await;
    assert_eq!(status, 200, "{remaining}");
    assert_eq!(remaining, json!({"attachments": []}));
    let free = volume(&c, &id).await;
    assert_eq!(free["status"], "available");
    assert_eq!(free["attachments"], json!([]));
    assert!(free["metadata"].get("attached_mode").is_none());
    let (status, _) = c.at(V).get(&format!("/attachments/{attachment}")).await;
    assert_eq!(status, 404);

    // A server's attachment made in one step (create with a connector):
    // users may not delete it.
    let server = json!({"attachment": {"volume_uuid": id, "instance_uuid": INSTANCE, "connector": connector()}});
    let (status, made) = c.at(V).post("/attachments", server).await;
    assert_eq!(status, 200, "{made}");
    assert_eq!(made["attachment"]["status"], "attaching");
    let server_attachment = made["attachment"]["id"].as_str().unwrap().to_owned();
    let (status, refused) = c
        .at(V)
        .delete(&format!("/attachments/{server_attachment}"))
        .await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(
        refused["conflictingRequest"]["message"],
        format!(
            "ConflictNovaUsingAttachment: Detach volume from instance {INSTANCE} using the Compute API"
        )
    );
    assert_eq!(volume(&c, &id).await["status"], "attaching");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn legacy_reserve_initialize_attach_detach() {
    let mut c = Cluster::start("", FILE_BACKEND).await;
    let id = c.available_volume(json!({"size": 1})).await;
    let action = |body: Value| {
        let c = &c;
        let id = id.clone();
        async move { c.post(&format!("/volumes/{id}/action"), body).await }
    };
    let (status, body) = action(json!({"os-reserve": {}})).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(volume(&c, &id).await["status"], "attaching");
    let (status, init) =
        action(json!({"os-initialize_connection": {"connector": connector()}})).await;
    assert_eq!(status, 200, "{init}");
    let info = &init["connection_info"];
    assert_eq!(info["driver_volume_type"], "local");
    assert_eq!(
        info["data"]["device_path"],
        c.volumes_dir()
            .join(format!("volume-{id}"))
            .display()
            .to_string()
    );
    assert_eq!(info["data"]["access_mode"], "rw");
    assert_eq!(info["enforce_multipath"], false);
    let (status, body) = action(
        json!({"os-attach": {"instance_uuid": INSTANCE, "mountpoint": "/dev/vdb", "mode": "rw"}}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let attached = volume(&c, &id).await;
    assert_eq!(attached["status"], "in-use");
    assert_eq!(attached["attachments"][0]["server_id"], INSTANCE);
    assert_eq!(attached["attachments"][0]["device"], "/dev/vdb");
    assert_eq!(attached["metadata"]["attached_mode"], "rw");

    let (status, _) = action(json!({"os-begin_detaching": {}})).await;
    assert_eq!(status, 202);
    assert_eq!(volume(&c, &id).await["status"], "detaching");
    let (status, body) =
        action(json!({"os-terminate_connection": {"connector": connector()}})).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = action(json!({"os-detach": {}})).await;
    assert_eq!(status, 202, "{body}");
    let free = volume(&c, &id).await;
    assert_eq!(free["status"], "available");
    assert_eq!(free["attachments"], json!([]));

    // An abandoned legacy attach: reserve, initialize, terminate.
    action(json!({"os-reserve": {}})).await;
    action(json!({"os-initialize_connection": {"connector": connector()}})).await;
    let (status, _) = action(json!({"os-terminate_connection": {"connector": connector()}})).await;
    assert_eq!(status, 202);
    assert_eq!(volume(&c, &id).await["status"], "available");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_attachment_creates_one_wins() {
    let mut c = Cluster::start("", FILE_BACKEND).await;
    for _ in 0..3 {
        let id = c.available_volume(json!({"size": 1})).await;
        let api = c.at(V);
        let tries = [INSTANCE, OTHER_INSTANCE].map(|instance| {
            let body = json!({"attachment": {"volume_uuid": id, "instance_uuid": instance, "connector": connector()}});
            let api = api.clone();
            async move { api.post("/attachments", body).await }
        });
        let mut statuses: Vec<u16> = join_all(tries).await.iter().map(|(s, _)| *s).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 400]);
        let (_, listed) = c.at(V).get(&format!("/attachments?volume_id={id}")).await;
        assert_eq!(listed["attachments"].as_array().unwrap().len(), 1);
        assert_eq!(volume(&c, &id).await["status"], "attaching");
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_multiattach_type_lets_two_instances_attach() {
    let mut c = Cluster::start("", FAKE_ISCSI_BACKEND).await;
    c.create_type("multi", json!({"multiattach": "<is> True"}))
        .await;
    let id = c
        .available_volume(json!({"size": 1, "volume_type": "multi"}))
        .await;
    assert_eq!(volume(&c, &id).await["multiattach"], true);
    let mut iqns = Vec::new();
    for instance in [INSTANCE, OTHER_INSTANCE] {
        let made = c
            .attach(json!({"volume_uuid": id, "instance_uuid": instance, "connector": connector()}))
            .await;
        iqns.push(made["connection_info"]["target_iqn"].clone());
        assert_eq!(volume(&c, &id).await["status"], "in-use");
    }
    // One export serves both.
    assert_eq!(iqns[0], iqns[1]);
    let both = volume(&c, &id).await;
    let servers: Vec<&str> = both["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["server_id"].as_str().unwrap())
        .collect();
    assert_eq!(servers.len(), 2);
    assert!(servers.contains(&INSTANCE) && servers.contains(&OTHER_INSTANCE));
    // Not multiattach: the second instance is refused.
    let single = c.available_volume(json!({"size": 1})).await;
    let (status, _) = c
        .at(V)
        .post(
            "/attachments",
            json!({"attachment": {"volume_uuid": single, "instance_uuid": INSTANCE}}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, refused) = c
        .at(V)
        .post(
            "/attachments",
            json!({"attachment": {"volume_uuid": single, "instance_uuid": OTHER_INSTANCE}}),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn force_detach_of_a_volume_reset_to_error() {
    let mut c = Cluster::start("", FILE_BACKEND).await;
    let id = c.available_volume(json!({"size": 1})).await;
    let attach = json!({"os-attach": {"instance_uuid": INSTANCE, "mountpoint": "/dev/vdb"}});
    c.action_ok(&id, attach).await;
    let attachment = volume(&c, &id).await["attachments"][0]["attachment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    c.action_ok(&id, json!({"os-reset_status": {"status": "error"}}))
        .await;
    assert_eq!(volume(&c, &id).await["status"], "error");
    c.action_ok(
        &id,
        json!({"os-force_detach": {"connector": null, "attachment_id": attachment}}),
    )
    .await;
    let free = volume(&c, &id).await;
    assert_eq!(free["status"], "available");
    assert_eq!(free["attachments"], json!([]));
    c.stop().await;
}
