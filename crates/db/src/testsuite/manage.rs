//! Conformance checks for managing and unmanaging (run on every engine by
//! `conformance_checks!`).

use std::collections::BTreeMap;

use clinker_types::{SnapshotId, SnapshotStatus, VolumeId, VolumeStatus};

use super::{assert_usage_matches_recount, default_type, new_volume, place};
use crate::*;

const POOL: &str = "node1@file#file";

fn managed(project: &str, type_id: clinker_types::VolumeTypeId) -> NewManagedVolume {
    NewManagedVolume {
        id: VolumeId::new_random(),
        user_id: "u1".into(),
        project_id: project.into(),
        host: "node1@file".into(),
        availability_zone: "nova".into(),
        display_name: Some("managed".into()),
        display_description: None,
        volume_type_id: type_id,
        volume_type_name: "__DEFAULT__".into(),
        multiattach: false,
        bootable: true,
        metadata: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
    }
}

/// A managed volume charges one volume at once and its gigabytes when its
/// size is known; a failed manage gives the gigabytes back; unmanage
/// removes the row with its quota and records the object's name; managing
/// it again forgets the record. Usage equals a recount after every step.
pub async fn manage_and_unmanage_volumes(db: &Db) {
    let type_id = default_type(db).await;
    let project = "p-manage";
    let new = managed(project, type_id);
    let id = new.id;
    let v = db.create_managed_volume(new).await.unwrap();
    assert_eq!(
        (v.status, v.size, v.host.as_deref(), v.bootable),
        (VolumeStatus::Managing, 0, Some("node1@file"), true)
    );
    assert_eq!(v.metadata.get("k").map(String::as_str), Some("v"));
    let journal = db.journal_for_backend("node1@file").await.unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].status, "managing");
    let usage = db.quota_usages(project).await.unwrap();
    assert_eq!(usage.get("volumes"), Some(&1));
    assert_usage_matches_recount(db, project).await;

    // The size: gigabytes charged within the limits, capacity claimed on
    // the pool, the pool filled into the host.
    db.set_project_quota(project, "gigabytes", 5).await.unwrap();
    let refused = db.size_managed_volume(id, 6, POOL).await.unwrap_err();
    assert!(
        matches!(&refused, DbError::OverQuota(o) if o.resource == "gigabytes"),
        "{refused:?}"
    );
    assert_eq!(db.get_volume(id).await.unwrap().size, 0);
    let sized = db.size_managed_volume(id, 2, POOL).await.unwrap();
    assert_eq!((sized.size, sized.host.as_deref()), (2, Some(POOL)));
    assert_eq!(db.pool_allocations().await.unwrap().get(POOL), Some(&2));
    assert_usage_matches_recount(db, project).await;

    let done = db
        .finish_volume_manage(
            id,
            ProviderUpdate {
                provider_location: Some("/x".into()),
                ..ProviderUpdate::default()
            },
            "volume-old",
        )
        .await
        .unwrap();
    assert_eq!(done.status, VolumeStatus::Available);
    assert_eq!(done.provider_location.as_deref(), Some("/x"));
    assert!(done.launched_at.is_some());
    assert!(
        db.journal_for_backend("node1@file")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        db.finish_volume_manage(id, ProviderUpdate::default(), "volume-old")
            .await,
        Err(DbError::InvalidState(_))
    ));

    // Unmanage: refused while it has snapshots, like a delete.
    let snap = db
        .create_snapshot(NewSnapshot {
            id: SnapshotId::new_random(),
            volume_id: id,
            user_id: "u1".into(),
            project_id: project.into(),
            display_name: None,
            display_description: None,
            metadata: BTreeMap::new(),
            allow_in_use: false,
            use_quota: true,
        })
        .await
        .unwrap();
    assert!(matches!(
        db.begin_volume_unmanage(id).await,
        Err(DbError::InvalidState(_))
    ));
    assert_eq!(
        db.get_volume(id).await.unwrap().status,
        VolumeStatus::Available
    );
    db.discard_snapshot_create(snap.id).await.unwrap();

    let name = format!("volume-{id}");
    assert!(!db.is_unmanaged_object(&name).await.unwrap());
    let unmanaging = db.begin_volume_unmanage(id).await.unwrap();
    assert_eq!(unmanaging.status, VolumeStatus::Unmanaging);
    assert_eq!(
        db.journal_for_backend("node1@file").await.unwrap()[0].status,
        "unmanaging"
    );
    // The driver refused: error_unmanaging, journal gone; then a retry.
    let failed = db.fail_volume_unmanage(id).await.unwrap();
    assert_eq!(failed.status, VolumeStatus::ErrorUnmanaging);
    assert!(matches!(
        db.begin_volume_unmanage(id).await,
        Err(DbError::InvalidState(_))
    ));
    db.reset_volume_status(id, Some(VolumeStatus::Available), None, None)
        .await
        .unwrap();
    db.begin_volume_unmanage(id).await.unwrap();
    db.finish_volume_unmanage(id, &name).await.unwrap();
    assert!(!db.volume_exists(id).await.unwrap());
    assert!(db.is_unmanaged_object(&name).await.unwrap());
    assert_eq!(db.pool_allocations().await.unwrap().get(POOL), Some(&0));
    assert_eq!(
        db.quota_usages(project).await.unwrap().get("volumes"),
        Some(&0)
    );
    assert_usage_matches_recount(db, project).await;

    // Managed again under a new id: the record is forgotten.
    let again = managed(project, type_id);
    let again_id = again.id;
    db.create_managed_volume(again).await.unwrap();
    db.size_managed_volume(again_id, 2, POOL).await.unwrap();
    db.finish_volume_manage(again_id, ProviderUpdate::default(), &name)
        .await
        .unwrap();
    assert!(!db.is_unmanaged_object(&name).await.unwrap());

    // A failed manage keeps the row (error_managing, size 0) and gives the
    // gigabytes and capacity back; deleting it releases the volume.
    let bad = managed(project, type_id);
    let bad_id = bad.id;
    db.create_managed_volume(bad).await.unwrap();
    db.size_managed_volume(bad_id, 1, POOL).await.unwrap();
    let failed = db.fail_volume_manage(bad_id).await.unwrap();
    assert_eq!(
        (failed.status, failed.size),
        (VolumeStatus::ErrorManaging, 0)
    );
    assert_eq!(db.pool_allocations().await.unwrap().get(POOL), Some(&2));
    assert_usage_matches_recount(db, project).await;
    db.begin_volume_delete(bad_id, DeleteOptions::default())
        .await
        .unwrap();
    db.finish_volume_delete(bad_id).await.unwrap();
    assert_usage_matches_recount(db, project).await;
}

/// A managed snapshot is an ordinary `creating` snapshot whose size is
/// corrected when known; unmanaging records its name.
pub async fn manage_and_unmanage_snapshots(db: &Db) {
    let type_id = default_type(db).await;
    let project = "p-manage-snap";
    let new = new_volume(project, 2, type_id);
    let volume_id = new.id;
    db.create_volume(new).await.unwrap();
    place(db, volume_id, 2).await;
    db.finish_volume_create(volume_id, ProviderUpdate::default())
        .await
        .unwrap();
    let snapshot = db
        .create_snapshot(NewSnapshot {
            id: SnapshotId::new_random(),
            volume_id,
            user_id: "u1".into(),
            project_id: project.into(),
            display_name: Some("m".into()),
            display_description: None,
            metadata: BTreeMap::new(),
            allow_in_use: true,
            use_quota: true,
        })
        .await
        .unwrap();
    assert_eq!(snapshot.volume_size, 2);
    let sized = db.size_managed_snapshot(snapshot.id, 1).await.unwrap();
    assert_eq!(sized.volume_size, 1);
    assert_usage_matches_recount(db, project).await;
    let usage = db.quota_usages(project).await.unwrap();
    assert_eq!(
        (usage.get("gigabytes"), usage.get("snapshots")),
        (Some(&3), Some(&1))
    );
    let done = db
        .finish_snapshot_manage(snapshot.id, None, "snapshot-old")
        .await
        .unwrap();
    assert_eq!(done.status, SnapshotStatus::Available);
    assert!(
        db.journal_for_backend("node1@file")
            .await
            .unwrap()
            .is_empty()
    );

    let unmanaging = db.begin_snapshot_unmanage(snapshot.id).await.unwrap();
    assert_eq!(unmanaging.status, SnapshotStatus::Unmanaging);
    assert!(matches!(
        db.begin_snapshot_unmanage(snapshot.id).await,
        Err(DbError::InvalidState(_))
    ));
    let failed = db.fail_snapshot_unmanage(snapshot.id).await.unwrap();
    assert_eq!(failed.status, SnapshotStatus::ErrorDeleting);
    db.set_snapshot_status(snapshot.id, SnapshotStatus::Available, None)
        .await
        .unwrap();
    db.begin_snapshot_unmanage(snapshot.id).await.unwrap();
    let name = format!("snapshot-{}", snapshot.id);
    db.finish_snapshot_unmanage(snapshot.id, &name)
        .await
        .unwrap();
    assert!(matches!(
        db.get_snapshot(snapshot.id).await,
        Err(DbError::NotFound { .. })
    ));
    assert!(db.is_unmanaged_object(&name).await.unwrap());
    assert!(
        db.journal_for_backend("node1@file")
            .await
            .unwrap()
            .is_empty()
    );
    assert_usage_matches_recount(db, project).await;
    assert_eq!(
        db.quota_usages(project).await.unwrap().get("snapshots"),
        Some(&0)
    );
}
