//! `os-migrate_volume` and `os-migrate_volume_completion` at the API:
//! Cinder's checks and texts, the `starting` lock, and the casts.

use clinker_db::{
    MigrationRepository, NewMigrationTarget, ServiceRegistration, ServiceRepository,
    VolumeRepository,
};
use clinker_types::{VolumeId, VolumeStatus};
use serde_json::{Value, json};

use crate::common::Verbs;
use crate::common::{Harness, Reply};
use crate::surface_support::{MEMBER, at, harness};

async fn migrate(h: &Harness, volume: VolumeId, body: Value, version: &'static str) -> Reply {
    h.with_headers(&[at(version)])
        .post(
            &format!("/v3/volumes/{volume}/action"),
            json!({ "os-migrate_volume": body }),
        )
        .await
}

async fn register_second_backend(h: &Harness) {
    h.db.register_service(&ServiceRegistration {
        host: "node1@file2".into(),
        binary: "cinder-volume".into(),
        topic: "cinder-volume".into(),
        availability_zone: "nova".into(),
        rpc_current_version: "3.20".into(),
    })
    .await
    .unwrap();
}

fn refused(volume: VolumeId) -> String {
    format!(
        "Invalid volume: Volume {volume} status must be available or in-use, must not be migrating, have snapshots, be replicated, be part of a group and destination host/cluster must be different than the current one"
    )
}

#[tokio::test]
async fn migrate_volume_checks_the_destination_and_the_volume() {
    let h = harness().await;
    register_second_backend(&h).await;
    let volume = h.available_volume(1).await;

    let no_host = migrate(&h, volume, json!({}), "volume 3.0").await;
    assert_eq!(no_host.status, 400, "{}", no_host.text);
    for body in [json!({}), json!({"host": "node1@file2", "cluster": "c1"})] {
        let both = migrate(&h, volume, body, "volume 3.16").await;
        assert_eq!(
            both.fault("badRequest"),
            "Invalid input received: One and only one of cluster and host must be set."
        );
    }
    let bad_flag = migrate(
        &h,
        volume,
        json!({"host": "node1@file2", "force_host_copy": "maybe"}),
        "volume 3.0",
    )
    .await;
    assert_eq!(bad_flag.status, 400);
    let unknown = migrate(&h, volume, json!({"host": "node1@nowhere"}), "volume 3.0").await;
    assert_eq!(
        unknown.fault("badRequest"),
        "Invalid host: No available service named 'node1@nowhere'"
    );
    let no_cluster = migrate(&h, volume, json!({"cluster": "c9"}), "volume 3.16").await;
    assert_eq!(
        no_cluster.fault("badRequest"),
        "Invalid host: No available service named 'c9'"
    );
    // Its own backend, or its own pool, is not a destination.
    for here in ["node1@file", "node1@file#file"] {
        let same = migrate(&h, volume, json!({"host": here}), "volume 3.0").await;
        assert_eq!(same.fault("badRequest"), refused(volume));
    }
    // Only administrators migrate.
    let member = h
        .with_headers(&[MEMBER])
        .post(
            &format!("/v3/volumes/{volume}/action"),
            json!({"os-migrate_volume": {"host": "node1@file2"}}),
        )
        .await;
    assert!(matches!(member.status, 403 | 404), "{}", member.text);
    // A volume with snapshots stays where it is.
    let with_snapshot = h.available_volume(1).await;
    h.available_snapshot(with_snapshot).await;
    let snap = migrate(
        &h,
        with_snapshot,
        json!({"host": "node1@file2"}),
        "volume 3.0",
    )
    .await;
    assert_eq!(snap.fault("badRequest"), refused(with_snapshot));
    assert_eq!(
        h.db.get_volume(with_snapshot)
            .await
            .unwrap()
            .migration_status,
        None
    );
    let before = h.scheduler.methods().len();

    let accepted = migrate(
        &h,
        volume,
        json!({"host": "node1@file2", "lock_volume": true, "force_host_copy": "true"}),
        "volume 3.0",
    )
    .await;
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    let v = h.db.get_volume(volume).await.unwrap();
    assert_eq!(
        (v.status, v.migration_status.as_deref()),
        (VolumeStatus::Maintenance, Some("starting"))
    );
    let methods = Harness::wait_for(&h.scheduler, before + 1).await;
    assert_eq!(methods.last().map(String::as_str), Some("migrate_volume"));
    let cast = h
        .scheduler
        .seen
        .lock()
        .unwrap()
        .last()
        .unwrap()
        .args
        .clone();
    assert_eq!(cast["host"], "node1@file2");
    assert_eq!(cast["force_host_copy"], true);
    // A migrating volume cannot start another migration.
    let again = migrate(&h, volume, json!({"host": "node1@file2"}), "volume 3.0").await;
    assert_eq!(again.fault("badRequest"), refused(volume));
    // Administrators see the migration status.
    let shown = h.get(&format!("/v3/volumes/{volume}")).await;
    assert_eq!(
        shown.body["volume"]["os-vol-mig-status-attr:migstat"],
        "starting"
    );
    assert_eq!(shown.body["volume"]["migration_status"], "starting");
}

#[tokio::test]
async fn migrate_volume_completion_checks_both_volumes() {
    let h = harness().await;
    register_second_backend(&h).await;
    let volume = h.available_volume(1).await;
    let other = h.available_volume(1).await;
    let complete = |source: VolumeId, target: VolumeId| {
        let h = &h;
        async move {
            h.post(
                &format!("/v3/volumes/{source}/action"),
                json!({"os-migrate_volume_completion": {"new_volume": target.to_string()}}),
            )
            .await
        }
    };
    // Two volumes that are not migrating: Nova's swap, nothing to do.
    let swap = complete(volume, other).await;
    assert_eq!(swap.status, 200, "{}", swap.text);
    assert_eq!(swap.body["save_volume_id"], other.to_string());

    let accepted = migrate(&h, volume, json!({"host": "node1@file2"}), "volume 3.0").await;
    assert_eq!(accepted.status, 202);
    let not_target = complete(volume, other).await;
    assert_eq!(
        not_target.fault("badRequest"),
        "Invalid volume: Destination volume not mid-migration."
    );
    let not_source = complete(other, volume).await;
    assert_eq!(
        not_source.fault("badRequest"),
        "Invalid volume: Source volume not mid-migration."
    );
    let target =
        h.db.create_migration_target(
            volume,
            NewMigrationTarget {
                id: VolumeId::new_random(),
                pool: "node1@file2#file2".into(),
                availability_zone: "nova".into(),
                volume_type_id: h.db.get_volume(volume).await.unwrap().volume_type_id,
            },
        )
        .await
        .unwrap();
    let third = h.available_volume(1).await;
    h.db.begin_volume_migration(third, "node1@file2", false, json!({}))
        .await
        .unwrap();
    let wrong = complete(third, target.id).await;
    assert_eq!(
        wrong.fault("badRequest"),
        format!(
            "Invalid volume: Destination has migration_status target:{volume}, expected target:{third}."
        )
    );
    let before = h.volume.methods().len();
    let completion = json!({"new_volume": target.id.to_string(), "error": false});
    let done = h
        .post(
            &format!("/v3/volumes/{volume}/action"),
            json!({ "os-migrate_volume_completion": completion }),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.body["save_volume_id"], volume.to_string());
    let methods = Harness::wait_for(&h.volume, before + 1).await;
    assert_eq!(
        methods.last().map(String::as_str),
        Some("migrate_volume_completion")
    );
    let bad = h
        .post(
            &format!("/v3/volumes/{volume}/action"),
            json!({"os-migrate_volume_completion": {"new_volume": "not-a-uuid"}}),
        )
        .await;
    assert_eq!(bad.status, 400);
}
