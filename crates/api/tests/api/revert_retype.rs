//! The `revert` (3.40) and `os-retype` actions at the API: checks, texts,
//! the status locks and the casts.

use clinker_db::{QuotaRepository, RevertRepository, SnapshotRepository, VolumeRepository};
use clinker_types::{SnapshotStatus, VolumeStatus};
use serde_json::json;

use crate::common::Verbs;
use crate::common::{Harness, PROJECT};
use crate::surface_support::{MEMBER, at, create_type, harness, member_volume};

async fn revert(h: &Harness, volume: &str, body: serde_json::Value) -> crate::common::Reply {
    h.with_headers(&[at("volume 3.40")])
        .post(
            &format!("/v3/volumes/{volume}/action"),
            json!({ "revert": body }),
        )
        .await
}

#[tokio::test]
async fn revert_checks_and_locks() {
    let h = harness().await;
    let volume = h.available_volume(1).await;
    let v = volume.to_string();

    let below = h
        .with_headers(&[at("volume 3.39")])
        .post(
            &format!("/v3/volumes/{v}/action"),
            json!({"revert": {"snapshot_id": "x"}}),
        )
        .await;
    assert_eq!(below.status, 404);
    let none = revert(&h, &v, json!({"snapshot_id": "x"})).await;
    assert_eq!(
        none.refusal(400),
        format!("Volume {v} doesn't have any snapshots.")
    );
    let older = h.available_snapshot(volume).await;
    let latest = h.available_snapshot(volume).await;
    let stale = revert(&h, &v, json!({"snapshot_id": older.to_string()})).await;
    assert_eq!(
        stale.refusal(400),
        format!("Specified snapshot {older} is None or not the latest one of volume {v}.")
    );
    let missing = revert(&h, &v, json!({})).await;
    assert_eq!(
        missing.fault("badRequest"),
        format!("Specified snapshot None is None or not the latest one of volume {v}.")
    );
    // Another project's volume is invisible.
    let foreign = h
        .with_headers(&[MEMBER, at("volume 3.40")])
        .post(
            &format!("/v3/volumes/{v}/action"),
            json!({"revert": {"snapshot_id": latest.to_string()}}),
        )
        .await;
    assert_eq!(foreign.status, 404);

    let started = revert(&h, &v, json!({"snapshot_id": latest.to_string()})).await;
    assert_eq!(started.status, 202, "{}", started.text);
    assert_eq!(h.volume_status(volume).await, VolumeStatus::Reverting);
    assert_eq!(h.snapshot_status(latest).await, SnapshotStatus::Restoring);
    let methods = Harness::wait_for(&h.volume, 3).await;
    assert_eq!(
        methods,
        ["create_snapshot", "create_snapshot", "revert_to_snapshot"]
    );
    let args = h.volume.seen.lock().unwrap()[2].args.clone();
    assert_eq!(
        args,
        json!({"volume_id": v, "snapshot_id": latest.to_string()})
    );
    // The status is the lock: a second revert conflicts (409, as Cinder).
    let again = revert(&h, &v, json!({"snapshot_id": latest.to_string()})).await;
    assert_eq!(
        again.refusal(409),
        format!(
            "Invalid volume: Can't revert volume {v} to its latest snapshot {latest}. Volume's status must be 'available'."
        )
    );
    h.db.finish_volume_revert(volume, latest, clinker_db::RevertOutcome::Reverted)
        .await
        .unwrap();

    h.db.set_snapshot_status(latest, SnapshotStatus::Error, None)
        .await
        .unwrap();
    let bad_snapshot = revert(&h, &v, json!({"snapshot_id": latest.to_string()})).await;
    assert_eq!(
        bad_snapshot.refusal(409),
        format!(
            "Invalid snapshot: Can't revert volume {v} to its latest snapshot {latest}. Snapshot's status must be 'available'."
        )
    );
    assert_eq!(h.volume_status(volume).await, VolumeStatus::Available);
}

#[tokio::test]
async fn revert_needs_an_equal_size_and_a_reachable_backend() {
    let mut h = harness().await;
    let volume = h.available_volume(1).await;
    let snapshot = h.available_snapshot(volume).await;
    h.db.begin_volume_extend(volume, 2, false).await.unwrap();
    h.db.finish_volume_extend(volume, 2).await.unwrap();
    let grown = revert(
        &h,
        &volume.to_string(),
        json!({"snapshot_id": snapshot.to_string()}),
    )
    .await;
    assert_eq!(
        grown.refusal(400),
        format!(
            "Can't revert volume {volume} to its latest snapshot {snapshot}. The volume size must be equal to the snapshot size."
        )
    );

    let other = h.available_volume(1).await;
    let snap = h.available_snapshot(other).await;
    h.stop_consumers().await;
    let unreachable = revert(
        &h,
        &other.to_string(),
        json!({"snapshot_id": snap.to_string()}),
    )
    .await;
    assert_eq!(unreachable.status, 503);
    assert_eq!(h.volume_status(other).await, VolumeStatus::Available);
    assert_eq!(h.snapshot_status(snap).await, SnapshotStatus::Available);
}

async fn retype(h: &Harness, volume: &str, body: serde_json::Value) -> crate::common::Reply {
    h.post(
        &format!("/v3/volumes/{volume}/action"),
        json!({ "os-retype": body }),
    )
    .await
}

#[tokio::test]
async fn retype_checks_quota_and_casts_to_the_scheduler() {
    let mut h = harness().await;
    let gold = create_type(&h, "gold", json!({})).await;
    let volume = h.available_volume(2).await;
    let v = volume.to_string();

    let same = retype(&h, &v, json!({"new_type": "__DEFAULT__"})).await;
    assert_eq!(
        same.refusal(400),
        "Invalid volume: Retype needs volume to be in available or in-use state, not be part of an active migration or a consistency group, requested type has to be different that the one from the volume, and for in-use volumes front-end qos specs cannot change."
    );
    let unknown = retype(&h, &v, json!({"new_type": "nope"})).await;
    assert_eq!(
        unknown.refusal(404),
        "Volume type with name nope could not be found."
    );
    let bad_policy = retype(
        &h,
        &v,
        json!({"new_type": "gold", "migration_policy": "always"}),
    )
    .await;
    assert_eq!(bad_policy.status, 400);
    let no_type = retype(&h, &v, json!({})).await;
    assert_eq!(no_type.status, 400);

    // The new type's quota is checked now, and nothing changes on refusal.
    h.db.set_project_quota(PROJECT, "volumes_gold", 0)
        .await
        .unwrap();
    let over = retype(&h, &v, json!({"new_type": "gold"})).await;
    assert_eq!(
        over.refusal(413),
        "VolumeLimitExceeded: Maximum number of volumes allowed (0) exceeded for quota 'volumes_gold'."
    );
    assert_eq!(h.volume_status(volume).await, VolumeStatus::Available);
    h.db.set_project_quota(PROJECT, "volumes_gold", -1)
        .await
        .unwrap();

    let started = retype(
        &h,
        &v,
        json!({"new_type": gold, "migration_policy": "on-demand"}),
    )
    .await;
    assert_eq!(started.status, 202, "{}", started.text);
    let retyping = h.db.get_volume(volume).await.unwrap();
    assert_eq!(retyping.status, VolumeStatus::Retyping);
    assert_eq!(retyping.previous_status.as_deref(), Some("available"));
    let methods = Harness::wait_for(&h.scheduler, 2).await;
    assert!(methods.contains(&"retype".to_owned()), "{methods:?}");
    let cast = h
        .scheduler
        .seen
        .lock()
        .unwrap()
        .iter()
        .find(|m| m.method == "retype")
        .unwrap()
        .args
        .clone();
    assert_eq!(
        cast,
        json!({"volume_id": v, "new_type_id": gold, "migration_policy": "on-demand"})
    );
    let busy = retype(&h, &v, json!({"new_type": "gold"})).await;
    assert_eq!(busy.status, 400);
    // The type changes only when the volume service finishes.
    assert_eq!(
        h.db.get_volume(volume)
            .await
            .unwrap()
            .volume_type_name
            .as_deref(),
        Some("__DEFAULT__")
    );
    clinker_db::RetypeRepository::abort_volume_retype(&h.db, volume)
        .await
        .unwrap();

    // No scheduler: 503 and the status comes back.
    h.stop_consumers().await;
    let unreachable = retype(&h, &v, json!({"new_type": "gold"})).await;
    assert_eq!(unreachable.status, 503);
    assert_eq!(h.volume_status(volume).await, VolumeStatus::Available);
}

#[tokio::test]
async fn retype_refuses_encrypted_multiattach_and_checks_sizes() {
    let h = harness().await;
    let multi = create_type(&h, "multi", json!({"multiattach": "<is> True"})).await;
    h.post(
        &format!("/v3/types/{multi}/encryption"),
        json!({"encryption": {"provider": "luks", "control_location": "front-end"}}),
    )
    .await;
    create_type(&h, "small", json!({"provisioning:max_vol_size": "1"})).await;
    let volume = h.available_volume(2).await;
    let both = retype(&h, &volume.to_string(), json!({"new_type": "multi"})).await;
    assert_eq!(
        both.refusal(400),
        "Invalid input received: Retype requested both encryption and multi-attach, which is not supported."
    );
    let too_big = retype(&h, &volume.to_string(), json!({"new_type": "small"})).await;
    assert_eq!(
        too_big.refusal(400),
        "Invalid input received: Specified volume size of '2' is greater than the maximum allowable size of '1' for volume type 'small'."
    );
    // Members may retype their own volumes (volume:retype is owner's).
    let mine = member_volume(&h).await;
    create_type(&h, "gold", json!({})).await;
    let reply = h
        .with_headers(&[MEMBER])
        .post(
            &format!("/v3/volumes/{mine}/action"),
            json!({"os-retype": {"new_type": "gold"}}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
}
