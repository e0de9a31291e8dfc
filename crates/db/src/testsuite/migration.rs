//! Conformance checks of volume migration (run on every engine by `conformance_checks!`).

use super::surface::available_snapshot;
use super::*;

async fn allocations_match_recount(db: &Db) {
    let claimed: BTreeMap<String, i64> = db
        .pool_allocations()
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, gb)| *gb != 0)
        .collect();
    assert_eq!(claimed, db.recount_pool_allocations().await.unwrap());
}

/// The whole life of a migration: the API's refusals, the temporary
/// volume, a failure that gives everything back, and a retype's migration
/// whose completion moves host, backing, type, quota and claims at once.
pub async fn migration_moves_backing_type_quota_and_claims(db: &Db) {
    let old = default_type(db).await;
    let gold = db
        .create_volume_type(NewVolumeType {
            name: "gold".into(),
            description: None,
            is_public: true,
            extra_specs: BTreeMap::new(),
        })
        .await
        .unwrap();
    let mut new = new_volume("p-mig", 2, old);
    new.volume_type_name = "__DEFAULT__".into();
    let v = db.create_volume(new).await.unwrap().id;
    place(db, v, 2).await;
    db.finish_volume_create(
        v,
        ProviderUpdate {
            provider_location: Some("/old/place".into()),
            ..ProviderUpdate::default()
        },
    )
    .await
    .unwrap();
    let detail = serde_json::json!({"migration": {"host": "node1@file2"}});

    // Refusals change nothing: same backend, same pool, snapshots.
    for dest in ["node1@file", "node1@file#file"] {
        assert!(matches!(
            db.begin_volume_migration(v, dest, false, detail.clone())
                .await,
            Err(DbError::InvalidState(_))
        ));
    }
    let snap = available_snapshot(db, "p-mig", v).await;
    assert!(matches!(
        db.begin_volume_migration(v, "node1@file2", false, detail.clone())
            .await,
        Err(DbError::InvalidState(_))
    ));
    db.begin_snapshot_delete(snap, SnapshotTransition::Delete)
        .await
        .unwrap();
    db.finish_snapshot_delete(snap).await.unwrap();
    assert_eq!(
        db.get_volume(v).await.unwrap().migration_status,
        None::<String>
    );

    // A locked migration puts the volume in maintenance; a second start is
    // refused while it runs.
    let started = db
        .begin_volume_migration(v, "node1@file2", true, detail.clone())
        .await
        .unwrap();
    assert_eq!(
        (started.status, started.migration_status.as_deref()),
        (VolumeStatus::Maintenance, Some("starting"))
    );
    assert_eq!(
        db.journal_detail(&v.to_string()).await.unwrap(),
        Some(detail.clone())
    );
    assert!(matches!(
        db.begin_volume_migration(v, "node1@file3", false, detail.clone())
            .await,
        Err(DbError::InvalidState(_))
    ));
    let target_id = VolumeId::new_random();
    let target = db
        .create_migration_target(
            v,
            NewMigrationTarget {
                id: target_id,
                pool: "node1@file2#file2".into(),
                availability_zone: "nova".into(),
                volume_type_id: old,
            },
        )
        .await
        .unwrap();
    assert_eq!(target.status, VolumeStatus::Creating);
    assert_eq!(target.migration_status, Some(migration_target_status(v)));
    assert!(!target.use_quota);
    assert_eq!(
        db.migration_target_of(v).await.unwrap().map(|t| t.id),
        Some(target_id)
    );
    // Only administrators list the temporary volume.
    let ids = |found: Vec<clinker_types::model::Volume>| -> Vec<VolumeId> {
        found.into_iter().map(|x| x.id).collect()
    };
    let everyone = VolumeQuery {
        hide_migration_targets: true,
        ..VolumeQuery::default()
    };
    assert_eq!(ids(db.list_volumes(&everyone).await.unwrap()), vec![v]);
    assert_eq!(
        ids(db.list_volumes(&VolumeQuery::default()).await.unwrap()).len(),
        2
    );
    assert_eq!(
        db.get_volume(v).await.unwrap().migration_status.as_deref(),
        Some("migrating")
    );
    assert_usage_matches_recount(db, "p-mig").await;
    allocations_match_recount(db).await;
    let journal = db.journal_for_backend("node1@file2").await.unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].resource_id, target_id.to_string());

    // Failing gives the status back and sends the temporary volume to be
    // deleted on its backend.
    let failed = db.fail_volume_migration(v).await.unwrap();
    assert_eq!(
        (
            failed.volume.status,
            failed.volume.migration_status.as_deref()
        ),
        (VolumeStatus::Available, Some("error"))
    );
    let doomed = failed.target.unwrap();
    assert_eq!(doomed.status, VolumeStatus::Deleting);
    assert!(
        db.journal_for_backend("node1@file")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        db.journal_for_backend("node1@file2").await.unwrap()[0].status,
        "deleting"
    );
    db.finish_volume_delete(doomed.id).await.unwrap();
    allocations_match_recount(db).await;
    assert!(matches!(
        db.fail_volume_migration(v).await,
        Err(DbError::InvalidState(_))
    ));

    // A retype's migration: the type, the quota, the host and the backing
    // move together at completion.
    db.begin_volume_retype(v, gold.id, serde_json::json!({}))
        .await
        .unwrap();
    db.begin_retype_migration(v, detail.clone()).await.unwrap();
    let target_id = VolumeId::new_random();
    db.create_migration_target(
        v,
        NewMigrationTarget {
            id: target_id,
            pool: "node1@file2#file2".into(),
            availability_zone: "zone2".into(),
            volume_type_id: gold.id,
        },
    )
    .await
    .unwrap();
    db.finish_volume_create(target_id, ProviderUpdate::default())
        .await
        .unwrap();
    // Not completing yet: refused.
    assert!(matches!(
        db.finish_volume_migration(v, target_id, Some(gold.id), ProviderUpdate::default())
            .await,
        Err(DbError::InvalidState(_))
    ));
    db.cas_migration_status(v, "migrating", "completing")
        .await
        .unwrap();
    let (done, old_backing) = db
        .finish_volume_migration(
            v,
            target_id,
            Some(gold.id),
            ProviderUpdate {
                provider_location: Some("/new/place".into()),
                ..ProviderUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(done.status, VolumeStatus::Available);
    assert_eq!(done.migration_status.as_deref(), Some("success"));
    assert_eq!(done.host.as_deref(), Some("node1@file2#file2"));
    assert_eq!(done.availability_zone, "zone2");
    assert_eq!(done.provider_location.as_deref(), Some("/new/place"));
    assert_eq!(done.volume_type_id, gold.id);
    assert!(matches!(
        db.get_volume(target_id).await,
        Err(DbError::NotFound { .. })
    ));
    let usage = db.quota_usages("p-mig").await.unwrap();
    assert_eq!(usage.get("volumes_gold"), Some(&1));
    assert_eq!(usage.get("gigabytes_gold"), Some(&2));
    assert_eq!(usage.get("volumes___DEFAULT__"), Some(&0));
    assert_usage_matches_recount(db, "p-mig").await;
    allocations_match_recount(db).await;

    // The old backing is journaled on the source backend until removed.
    assert_eq!(old_backing.volume_id, v);
    assert_eq!(old_backing.provider_location.as_deref(), Some("/old/place"));
    let journal = db.journal_for_backend("node1@file").await.unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].status, MIGRATION_CLEANUP);
    let detail = db
        .journal_detail(&target_id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        OldBacking::from_detail(target_id, &detail),
        Some(old_backing)
    );
    db.finish_migration_cleanup(target_id).await.unwrap();
    assert!(
        db.journal_for_backend("node1@file")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        db.journal_for_backend("node1@file2")
            .await
            .unwrap()
            .is_empty()
    );
}
