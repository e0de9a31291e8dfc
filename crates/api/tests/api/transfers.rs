//! Volume transfers: both paths, the views per microversion, the auth key,
//! the ownership and quota move on accept, and the refusals.

use clinker_db::{EncryptionRepository, NewEncryption, QuotaRepository, VolumeRepository};
use clinker_types::VolumeStatus;
use clinker_types::volume_type_extras::ControlLocation;
use serde_json::json;

use crate::common::Verbs;
use crate::common::{PROJECT, sorted_keys};
use crate::surface_support::{MEMBER, at, harness, member_volume};

const TAKER: (&str, &str) = ("x-auth-token", "taker:dddd3333");

#[tokio::test]
async fn legacy_transfer_round_trip_moves_ownership_and_quota() {
    let h = harness().await;
    let volume = h.available_volume(2).await;
    let snapshot = h.available_snapshot(volume).await;

    let created = h
        .post(
            "/v3/os-volume-transfer",
            json!({"transfer": {"volume_id": volume.to_string(), "name": " t1 "}}),
        )
        .await;
    assert_eq!(created.status, 202, "{}", created.text);
    let transfer = &created.body["transfer"];
    assert_eq!(
        sorted_keys(transfer),
        ["auth_key", "created_at", "id", "links", "name", "volume_id"]
    );
    assert_eq!(transfer["name"], "t1");
    let id = transfer["id"].as_str().unwrap().to_owned();
    let auth_key = transfer["auth_key"].as_str().unwrap().to_owned();
    assert_eq!(auth_key.len(), 16);
    assert_eq!(
        transfer["links"][0]["href"],
        format!("http://api.test:8776/v3/os-volume-transfer/{id}")
    );
    assert_eq!(
        h.volume_status(volume).await,
        VolumeStatus::AwaitingTransfer
    );
    // The key is not stored, only its salted hash.
    let stored = clinker_db::TransferRepository::get_transfer(&h.db, id.parse().unwrap())
        .await
        .unwrap();
    assert_ne!(stored.crypt_hash, auth_key);
    assert!(!stored.crypt_hash.contains(&auth_key));

    let shown = h.get(&format!("/v3/os-volume-transfer/{id}")).await;
    assert_eq!(shown.status, 200);
    assert_eq!(
        sorted_keys(&shown.body["transfer"]),
        ["created_at", "id", "links", "name", "volume_id"]
    );
    let summary = h.get("/v3/os-volume-transfer").await;
    assert_eq!(sorted_keys(&summary.body), ["transfers"]);
    assert_eq!(
        sorted_keys(&summary.body["transfers"][0]),
        ["id", "links", "name", "volume_id"]
    );
    let detail = h.get("/v3/os-volume-transfer/detail").await;
    assert_eq!(
        sorted_keys(&detail.body["transfers"][0]),
        ["created_at", "id", "links", "name", "volume_id"]
    );

    // Another project does not see the offer.
    let hidden = h
        .with_headers(&[MEMBER])
        .get(&format!("/v3/os-volume-transfer/{id}"))
        .await;
    assert_eq!(
        hidden.refusal(404),
        format!("Transfer {id} could not be found.")
    );
    let empty = h
        .with_headers(&[MEMBER])
        .get("/v3/os-volume-transfer?all_tenants=1")
        .await;
    assert_eq!(empty.body["transfers"], json!([]));

    // A wrong key changes nothing.
    let before = h.usage().await;
    let wrong = h
        .with_headers(&[TAKER])
        .post(
            &format!("/v3/os-volume-transfer/{id}/accept"),
            json!({"accept": {"auth_key": "0000000000000000"}}),
        )
        .await;
    assert_eq!(
        wrong.refusal(400),
        format!("Invalid auth key: Attempt to transfer {id} with invalid auth key.")
    );
    assert_eq!(h.usage().await, before);

    let accepted = h
        .with_headers(&[TAKER])
        .post(
            &format!("/v3/os-volume-transfer/{id}/accept"),
            json!({"accept": {"auth_key": auth_key}}),
        )
        .await;
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    assert_eq!(
        sorted_keys(&accepted.body["transfer"]),
        ["id", "links", "name", "volume_id"]
    );
    let moved = h.db.get_volume(volume).await.unwrap();
    assert_eq!(
        (
            moved.status,
            moved.project_id.as_str(),
            moved.user_id.as_str()
        ),
        (VolumeStatus::Available, "dddd3333", "taker")
    );
    let snap = clinker_db::SnapshotRepository::get_snapshot(&h.db, snapshot)
        .await
        .unwrap();
    assert_eq!(snap.project_id, "dddd3333");
    // Quota moved: the giver is empty, the taker has volume and snapshot.
    assert!(h.usage().await.is_empty(), "{:?}", h.usage().await);
    let taker = h.db.quota_usages("dddd3333").await.unwrap();
    assert_eq!(taker.get("volumes"), Some(&1));
    assert_eq!(taker.get("snapshots"), Some(&1));
    assert_eq!(taker.get("gigabytes"), Some(&4));
    for project in [PROJECT, "dddd3333"] {
        let counters: std::collections::BTreeMap<_, _> =
            h.db.quota_usages(project)
                .await
                .unwrap()
                .into_iter()
                .filter(|(_, v)| *v != 0)
                .collect();
        let recount: std::collections::BTreeMap<_, _> =
            h.db.recount_usages(project)
                .await
                .unwrap()
                .into_iter()
                .filter(|(_, v)| *v != 0)
                .collect();
        assert_eq!(counters, recount, "{project}");
    }
    let gone = h.get(&format!("/v3/os-volume-transfer/{id}")).await;
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn volume_transfers_views_follow_the_microversion() {
    let h = harness().await;
    let volume = h.available_volume(1).await;
    let below = h
        .with_headers(&[at("volume 3.54")])
        .get("/v3/volume-transfers")
        .await;
    assert_eq!(below.status, 404);

    // Legacy path refuses no_snapshots.
    let legacy = h
        .with_headers(&[at("volume 3.55")])
        .post(
            "/v3/os-volume-transfer",
            json!({"transfer": {"volume_id": volume.to_string(), "no_snapshots": true}}),
        )
        .await;
    assert_eq!(legacy.status, 400);

    let created = h
        .with_headers(&[at("volume 3.55")])
        .post(
            "/v3/volume-transfers",
            json!({"transfer": {"volume_id": volume.to_string(), "no_snapshots": "true"}}),
        )
        .await;
    assert_eq!(created.status, 202, "{}", created.text);
    assert_eq!(
        sorted_keys(&created.body["transfer"]),
        [
            "auth_key",
            "created_at",
            "id",
            "links",
            "name",
            "no_snapshots",
            "volume_id"
        ]
    );
    assert_eq!(created.body["transfer"]["no_snapshots"], true);
    assert_eq!(created.body["transfer"]["name"], json!(null));
    let id = created.id::<String>("transfer");
    let history = h
        .with_headers(&[at("volume 3.57")])
        .get(&format!("/v3/volume-transfers/{id}"))
        .await;
    assert_eq!(
        sorted_keys(&history.body["transfer"]),
        [
            "accepted",
            "created_at",
            "destination_project_id",
            "id",
            "links",
            "name",
            "no_snapshots",
            "source_project_id",
            "volume_id"
        ]
    );
    assert_eq!(history.body["transfer"]["source_project_id"], PROJECT);
    assert_eq!(history.body["transfer"]["accepted"], false);
    assert_eq!(
        history.body["transfer"]["destination_project_id"],
        json!(null)
    );

    // Pagination and sorting from 3.59.
    let second = h.available_volume(1).await;
    let other = h
        .with_headers(&[at("volume 3.59")])
        .post(
            "/v3/volume-transfers",
            json!({"transfer": {"volume_id": second.to_string(), "name": "b"}}),
        )
        .await;
    assert_eq!(other.status, 202);
    let page = h
        .with_headers(&[at("volume 3.59")])
        .get("/v3/volume-transfers/detail?limit=1&sort=created_at:asc")
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(page.body["transfers"].as_array().unwrap().len(), 1);
    assert_eq!(page.body["transfers"][0]["id"], id.as_str());
    let next = page.body["transfers_links"][0]["href"].as_str().unwrap();
    assert!(next.contains(&format!("marker={id}")), "{next}");
    let by_name = h
        .with_headers(&[at("volume 3.59")])
        .get("/v3/volume-transfers?name=b")
        .await;
    assert_eq!(by_name.body["transfers"].as_array().unwrap().len(), 1);
    let unknown_filter = h
        .with_headers(&[at("volume 3.59")])
        .get("/v3/volume-transfers?bogus=1")
        .await;
    assert_eq!(unknown_filter.body["transfers"], json!([]));

    // Deleting the offer makes the volume available again.
    let deleted = h
        .with_headers(&[at("volume 3.55")])
        .delete(&format!("/v3/volume-transfers/{id}"))
        .await;
    assert_eq!(deleted.status, 202);
    assert_eq!(h.volume_status(volume).await, VolumeStatus::Available);
}

#[tokio::test]
async fn transfer_refusals_use_cinder_texts_and_change_nothing() {
    let h = harness().await;
    let volume = h.available_volume(3).await;
    let snapshot = h.available_snapshot(volume).await;
    let create = |version: &'static str, body: serde_json::Value| {
        let h = &h;
        async move {
            h.with_headers(&[at(version)])
                .post("/v3/volume-transfers", body)
                .await
        }
    };

    let unknown = create(
        "volume 3.55",
        json!({"transfer": {"volume_id": "4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1"}}),
    )
    .await;
    assert_eq!(
        unknown.refusal(404),
        "Volume 4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1 could not be found."
    );
    let not_uuid = create("volume 3.55", json!({"transfer": {"volume_id": "x"}})).await;
    assert_eq!(not_uuid.status, 400);

    clinker_db::SnapshotRepository::set_snapshot_status(
        &h.db,
        snapshot,
        clinker_types::SnapshotStatus::Error,
        None,
    )
    .await
    .unwrap();
    let busy_snapshot = create(
        "volume 3.55",
        json!({"transfer": {"volume_id": volume.to_string()}}),
    )
    .await;
    assert_eq!(
        busy_snapshot.refusal(400),
        format!("Invalid snapshot: snapshot: {snapshot} status must be available")
    );
    // Leaving the snapshots behind is allowed.
    let ok = create(
        "volume 3.55",
        json!({"transfer": {"volume_id": volume.to_string(), "no_snapshots": true}}),
    )
    .await;
    assert_eq!(ok.status, 202);
    let id = ok.id::<String>("transfer");
    let key = ok.body["transfer"]["auth_key"].as_str().unwrap().to_owned();
    let again = create(
        "volume 3.55",
        json!({"transfer": {"volume_id": volume.to_string(), "no_snapshots": true}}),
    )
    .await;
    assert_eq!(
        again.refusal(400),
        "Invalid volume: status must be available"
    );

    // Quota of the accepting project: refused with Cinder's 413s.
    h.db.set_project_quota("dddd3333", "volumes", 0)
        .await
        .unwrap();
    let refused = h
        .with_headers(&[TAKER, at("volume 3.55")])
        .post(
            &format!("/v3/volume-transfers/{id}/accept"),
            json!({"accept": {"auth_key": key}}),
        )
        .await;
    assert_eq!(refused.status, 413);
    assert_eq!(refused.header("retry-after"), Some("0"));
    assert_eq!(
        refused.fault("overLimit"),
        "VolumeLimitExceeded: Maximum number of volumes allowed (0) exceeded for quota 'volumes'."
    );
    h.db.set_project_quota("dddd3333", "volumes", 10)
        .await
        .unwrap();
    h.db.set_project_quota("dddd3333", "gigabytes", 2)
        .await
        .unwrap();
    let refused = h
        .with_headers(&[TAKER, at("volume 3.55")])
        .post(
            &format!("/v3/volume-transfers/{id}/accept"),
            json!({"accept": {"auth_key": key}}),
        )
        .await;
    assert_eq!(
        refused.refusal(413),
        "Requested volume or snapshot exceeds allowed gigabytes quota. Requested 3G, quota is 2G and 0G has been consumed."
    );
    assert_eq!(
        h.volume_status(volume).await,
        VolumeStatus::AwaitingTransfer
    );
    assert_eq!(h.usage().await.get("volumes"), Some(&1));

    let bad_body = h
        .with_headers(&[TAKER, at("volume 3.55")])
        .post(
            &format!("/v3/volume-transfers/{id}/accept"),
            json!({"accept": {}}),
        )
        .await;
    assert_eq!(bad_body.status, 400);
    let unknown_transfer = h
        .with_headers(&[TAKER, at("volume 3.55")])
        .post(
            "/v3/volume-transfers/4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1/accept",
            json!({"accept": {"auth_key": "x"}}),
        )
        .await;
    assert_eq!(unknown_transfer.status, 404);
}

#[tokio::test]
async fn encrypted_volumes_transfer_from_3_70_with_their_snapshots() {
    let h = harness().await;
    let type_id = crate::surface_support::create_type(&h, "secret", json!({})).await;
    h.db.create_type_encryption(
        type_id.parse().unwrap(),
        NewEncryption {
            provider: "luks".into(),
            cipher: None,
            key_size: None,
            control_location: ControlLocation::FrontEnd,
        },
    )
    .await
    .unwrap();
    let volume = h
        .create_volume(json!({"size": 1, "volume_type": "secret"}))
        .await;
    h.make_available(volume).await;
    let body = json!({"transfer": {"volume_id": volume.to_string()}});
    let refused = h
        .with_headers(&[at("volume 3.69")])
        .post("/v3/volume-transfers", body.clone())
        .await;
    assert_eq!(
        refused.refusal(400),
        "Invalid volume: transferring encrypted volume is not supported"
    );
    let without_snapshots = h
        .with_headers(&[at("volume 3.70")])
        .post(
            "/v3/volume-transfers",
            json!({"transfer": {"volume_id": volume.to_string(), "no_snapshots": true}}),
        )
        .await;
    assert_eq!(
        without_snapshots.refusal(400),
        "Invalid volume: transferring an encrypted volume without its snapshots is not supported"
    );
    let allowed = h
        .with_headers(&[at("volume 3.70")])
        .post("/v3/volume-transfers", body)
        .await;
    assert_eq!(allowed.status, 202, "{}", allowed.text);
}

#[tokio::test]
async fn members_transfer_their_own_volumes() {
    let h = harness().await;
    let volume = member_volume(&h).await;
    // A member of another project cannot even see it.
    let stranger = h
        .with_headers(&[("x-auth-token", "member:eeee4444")])
        .post(
            "/v3/os-volume-transfer",
            json!({"transfer": {"volume_id": volume.to_string()}}),
        )
        .await;
    assert_eq!(stranger.status, 404);
    let offered = h
        .with_headers(&[MEMBER])
        .post(
            "/v3/os-volume-transfer",
            json!({"transfer": {"volume_id": volume.to_string()}}),
        )
        .await;
    assert_eq!(offered.status, 202, "{}", offered.text);
    let id = offered.id::<String>("transfer");
    let listed = h
        .with_headers(&[MEMBER])
        .get("/v3/os-volume-transfer")
        .await;
    assert_eq!(listed.body["transfers"].as_array().unwrap().len(), 1);
    // A member of another project accepts with the key (and an integer
    // key is compared as text).
    let wrong_int = h
        .with_headers(&[("x-auth-token", "member:eeee4444")])
        .post(
            &format!("/v3/os-volume-transfer/{id}/accept"),
            json!({"accept": {"auth_key": 12345}}),
        )
        .await;
    assert_eq!(wrong_int.status, 400);
    let key = offered.body["transfer"]["auth_key"].as_str().unwrap();
    let accepted = h
        .with_headers(&[("x-auth-token", "member:eeee4444")])
        .post(
            &format!("/v3/os-volume-transfer/{id}/accept"),
            json!({"accept": {"auth_key": key}}),
        )
        .await;
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    assert_eq!(
        h.db.get_volume(volume).await.unwrap().project_id,
        "eeee4444"
    );
}
