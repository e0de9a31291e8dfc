//! Conformance checks for backups (run on every engine by `conformance_checks!`).

use std::collections::BTreeMap;

use clinker_types::backup::BackupStatus;
use clinker_types::{BackupId, VolumeId, VolumeStatus};

use super::{assert_usage_matches_recount, default_type, new_volume, place};
use crate::*;

fn new_backup(volume_id: VolumeId, project: &str, incremental: bool) -> NewBackup {
    NewBackup {
        id: BackupId::new_random(),
        volume_id,
        user_id: "u1".into(),
        project_id: project.into(),
        display_name: Some("b".into()),
        display_description: None,
        container: None,
        incremental,
        force: false,
        host: "node1".into(),
        availability_zone: Some("nova".into()),
        service: "cinder.backup.drivers.posix.PosixBackupDriver".into(),
        metadata: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
        snapshot_id: None,
    }
}

async fn available_volume(db: &Db, project: &str, size: i64) -> VolumeId {
    let v = db
        .create_volume(new_volume(project, size, default_type(db).await))
        .await
        .unwrap();
    place(db, v.id, size).await;
    db.finish_volume_create(v.id, ProviderUpdate::default())
        .await
        .unwrap();
    v.id
}

fn location(prefix: &str) -> BackupLocation {
    BackupLocation {
        container: "c".into(),
        service_metadata: prefix.into(),
    }
}

/// A backup charges `backups` and `backup_gigabytes` with its row and
/// moves the volume to `backing-up` and back; an incremental backup needs
/// an available parent and blocks the parent's delete; restores move the
/// backup and the target volume together; a delete releases the quota.
/// Usage equals a recount after every step, and refused steps change
/// nothing.
pub async fn backup_lifecycle_keeps_quota_and_status(db: &Db) {
    let project = "p-backup";
    let vol = available_volume(db, project, 2).await;

    // Incremental without a parent, over quota: refused, nothing changes.
    let refused = db
        .create_backup(new_backup(vol, project, true))
        .await
        .unwrap_err();
    assert!(matches!(refused, DbError::InvalidState(_)), "{refused:?}");
    db.set_project_quota(project, "backup_gigabytes", 1)
        .await
        .unwrap();
    let refused = db
        .create_backup(new_backup(vol, project, false))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, DbError::OverQuota(o) if o.resource == "backup_gigabytes"),
        "{refused:?}"
    );
    assert_eq!(
        db.get_volume(vol).await.unwrap().status,
        VolumeStatus::Available
    );
    assert_usage_matches_recount(db, project).await;
    db.set_project_quota(project, "backup_gigabytes", 100)
        .await
        .unwrap();

    // A full backup.
    let full = db
        .create_backup(new_backup(vol, project, false))
        .await
        .unwrap();
    assert_eq!(
        (
            full.status,
            full.size,
            full.parent_id,
            full.metadata.get("k").map(String::as_str)
        ),
        (BackupStatus::Creating, 2, None, Some("v"))
    );
    let v = db.get_volume(vol).await.unwrap();
    assert_eq!(
        (v.status, v.previous_status.as_deref()),
        (VolumeStatus::BackingUp, Some("available"))
    );
    let usage = db.quota_usages(project).await.unwrap();
    assert_eq!(
        (usage.get("backups"), usage.get("backup_gigabytes")),
        (Some(&1), Some(&2))
    );
    assert_usage_matches_recount(db, project).await;
    // A second backup of a volume that is backing up is refused.
    assert!(matches!(
        db.create_backup(new_backup(vol, project, false)).await,
        Err(DbError::InvalidState(_))
    ));
    db.record_backup_location(full.id, &location("p1"))
        .await
        .unwrap();
    let full = db
        .finish_backup_create(full.id, &location("p1"), 3)
        .await
        .unwrap();
    assert_eq!(
        (
            full.status,
            full.object_count,
            full.service_metadata.as_deref()
        ),
        (BackupStatus::Available, 3, Some("p1"))
    );
    assert_eq!(
        db.get_volume(vol).await.unwrap().status,
        VolumeStatus::Available
    );
    assert!(matches!(
        db.finish_backup_create(full.id, &location("p1"), 3).await,
        Err(DbError::InvalidState(_))
    ));

    // An incremental one: its parent is the full backup, which then has
    // a dependent and cannot be deleted.
    let incr = db
        .create_backup(new_backup(vol, project, true))
        .await
        .unwrap();
    assert_eq!(incr.parent_id, Some(full.id));
    let incr = db
        .fail_backup_create(incr.id, "the store is gone")
        .await
        .unwrap();
    assert_eq!(
        (incr.status, incr.fail_reason.as_deref()),
        (BackupStatus::Error, Some("the store is gone"))
    );
    assert_eq!(
        db.get_volume(vol).await.unwrap().status,
        VolumeStatus::Available
    );
    let full = db.get_backup(full.id).await.unwrap();
    assert!(full.has_dependent_backups());
    assert!(matches!(
        db.begin_backup_delete(full.id, true).await,
        Err(DbError::InvalidState(_))
    ));
    assert_usage_matches_recount(db, project).await;

    // Restore into another volume: both move, then both come back; a
    // restore into a volume that is too small is refused.
    let small = available_volume(db, project, 1).await;
    assert!(matches!(
        db.begin_backup_restore(full.id, small).await,
        Err(DbError::InvalidState(_))
    ));
    let target = available_volume(db, project, 2).await;
    let restoring = db.begin_backup_restore(full.id, target).await.unwrap();
    assert_eq!(
        (restoring.status, restoring.restore_volume_id),
        (BackupStatus::Restoring, Some(target))
    );
    assert_eq!(
        db.get_volume(target).await.unwrap().status,
        VolumeStatus::RestoringBackup
    );
    assert!(matches!(
        db.begin_backup_delete(full.id, false).await,
        Err(DbError::InvalidState(_))
    ));
    db.finish_backup_restore(full.id, target, false)
        .await
        .unwrap();
    assert_eq!(
        db.get_volume(target).await.unwrap().status,
        VolumeStatus::ErrorRestoring
    );
    assert_eq!(
        db.get_backup(full.id).await.unwrap().status,
        BackupStatus::Available
    );

    // Lists, counts, updates.
    let query = BackupQuery {
        project_id: Some(project.into()),
        filters: vec![(BackupColumn::Status, FilterValue::Eq("error".into()))],
        ..BackupQuery::default()
    };
    let listed = db.list_backups(&query).await.unwrap();
    assert_eq!(
        listed.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![incr.id]
    );
    assert_eq!(db.count_backups(&query).await.unwrap(), 1);
    let renamed = db
        .update_backup(full.id, Some(Some("new".into())), Some(None), None)
        .await
        .unwrap();
    assert_eq!(renamed.display_name.as_deref(), Some("new"));
    // 3.43 metadata replaces the old set and keeps the name.
    let tags = std::collections::BTreeMap::from([("k".to_owned(), "v".to_owned())]);
    let tagged = db
        .update_backup(full.id, None, None, Some(&tags))
        .await
        .unwrap();
    assert_eq!(tagged.metadata, tags);
    assert_eq!(tagged.display_name.as_deref(), Some("new"));
    assert_eq!(db.backups_on_host("node1").await.unwrap().len(), 2);

    // Delete the incremental one, then the full one: quota back to zero.
    db.begin_backup_delete(incr.id, false).await.unwrap();
    db.finish_backup_delete(incr.id).await.unwrap();
    assert_usage_matches_recount(db, project).await;
    let deleting = db.begin_backup_delete(full.id, false).await.unwrap();
    assert_eq!(deleting.status, BackupStatus::Deleting);
    db.fail_backup_delete(full.id, "busy").await.unwrap();
    db.set_backup_status(full.id, BackupStatus::Available)
        .await
        .unwrap();
    db.begin_backup_delete(full.id, false).await.unwrap();
    db.finish_backup_delete(full.id).await.unwrap();
    assert!(matches!(
        db.get_backup(full.id).await,
        Err(DbError::NotFound { .. })
    ));
    let usage = db.quota_usages(project).await.unwrap();
    assert_eq!(
        (usage.get("backups"), usage.get("backup_gigabytes")),
        (Some(&0), Some(&0))
    );
    assert_usage_matches_recount(db, project).await;
}

/// A snapshot's backup moves the snapshot (not the volume) to
/// `backing-up` and back, takes the snapshot's time as `data_timestamp`,
/// and is refused for a snapshot of another volume; an imported record
/// becomes an `available` backup charged to the importer and cannot reuse
/// an id.
pub async fn snapshot_backups_and_imports(db: &Db) {
    let project = "pbs";
    let vol = available_volume(db, project, 1).await;
    let other = available_volume(db, project, 1).await;
    let snap = db
        .create_snapshot(NewSnapshot {
            id: clinker_types::SnapshotId::new_random(),
            volume_id: vol,
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
    let snap = db.finish_snapshot_create(snap.id, None).await.unwrap();
    let refused = db
        .create_backup(NewBackup {
            snapshot_id: Some(snap.id),
            ..new_backup(other, project, false)
        })
        .await;
    assert!(
        matches!(refused, Err(DbError::InvalidState(_))),
        "{refused:?}"
    );
    let b = db
        .create_backup(NewBackup {
            snapshot_id: Some(snap.id),
            ..new_backup(vol, project, false)
        })
        .await
        .unwrap();
    assert_eq!(b.snapshot_id, Some(snap.id));
    assert_eq!(b.data_timestamp, snap.created_at);
    let s = db.get_snapshot(snap.id).await.unwrap();
    assert_eq!(s.status, clinker_types::SnapshotStatus::BackingUp);
    assert_eq!(
        db.get_volume(vol).await.unwrap().status,
        VolumeStatus::Available
    );
    // A second backup of the busy snapshot is refused.
    let busy = db
        .create_backup(NewBackup {
            snapshot_id: Some(snap.id),
            ..new_backup(vol, project, false)
        })
        .await;
    assert!(matches!(busy, Err(DbError::InvalidState(_))), "{busy:?}");
    let done = db
        .finish_backup_create(b.id, &location("snapbackup"), 2)
        .await
        .unwrap();
    assert_eq!(done.status, BackupStatus::Available);
    let s = db.get_snapshot(snap.id).await.unwrap();
    assert_eq!(s.status, clinker_types::SnapshotStatus::Available);
    assert_usage_matches_recount(db, project).await;

    let imported = ImportedBackup {
        backup: NewBackup {
            user_id: "u2".into(),
            display_name: Some("imp".into()),
            container: Some("c".into()),
            snapshot_id: Some(snap.id),
            metadata: BTreeMap::new(),
            ..new_backup(vol, project, false)
        },
        service_metadata: "snapbackup".into(),
        size: 1,
        object_count: 2,
        parent_id: None,
        data_timestamp: Some(snap.created_at),
        created_at: None,
    };
    let made = db.import_backup(imported.clone()).await.unwrap();
    assert_eq!(
        (made.status, made.container.as_deref(), made.object_count),
        (BackupStatus::Available, Some("c"), 2)
    );
    assert!(matches!(
        db.import_backup(imported).await,
        Err(DbError::InvalidState(_))
    ));
    assert_eq!(
        db.quota_usages(project).await.unwrap().get("backups"),
        Some(&2)
    );
    assert_usage_matches_recount(db, project).await;
}

/// A backup's temporary resources are recorded on its row (the snapshot
/// of a `backing-up` volume with the snapshot's own row, outside quota);
/// a volume created from a backup moves to `restoring-backup` with the
/// backup going `restoring` on the chosen host, and a failed restore ends
/// it `error` (an existing volume `error_restoring`); the up backup
/// services carry how many operations each runs.
pub async fn backup_temporaries_and_restores_into_new_volumes(db: &Db) {
    let project = "pbt";
    let vol = available_volume(db, project, 1).await;
    let b = db
        .create_backup(NewBackup {
            host: "bt-node".into(),
            ..new_backup(vol, project, false)
        })
        .await
        .unwrap();
    assert_eq!((b.temp_volume_id, b.temp_snapshot_id), (None, None));
    let temp_volume = VolumeId::new_random();
    db.set_backup_temp(b.id, BackupTemp::Volume(Some(temp_volume)))
        .await
        .unwrap();
    let new_snap = |volume_id| NewSnapshot {
        id: clinker_types::SnapshotId::new_random(),
        volume_id,
        user_id: "u1".into(),
        project_id: project.into(),
        display_name: Some("backup-snap".into()),
        display_description: None,
        metadata: BTreeMap::new(),
        allow_in_use: true,
        use_quota: true,
    };
    // Only a `backing-up` volume of a `creating` backup gets one.
    let other = available_volume(db, project, 1).await;
    assert!(matches!(
        db.create_backup_temp_snapshot(b.id, new_snap(other)).await,
        Err(DbError::InvalidState(_))
    ));
    let snap = db
        .create_backup_temp_snapshot(b.id, new_snap(vol))
        .await
        .unwrap();
    assert_eq!(snap.status, clinker_types::SnapshotStatus::Creating);
    let recorded = db.get_backup(b.id).await.unwrap();
    assert_eq!(
        (recorded.temp_volume_id, recorded.temp_snapshot_id),
        (Some(temp_volume), Some(snap.id))
    );
    // Outside quota: usage counts one snapshot fewer than the rows.
    assert_eq!(
        db.quota_usages(project)
            .await
            .unwrap()
            .get("snapshots")
            .copied()
            .unwrap_or(0),
        0
    );
    assert_usage_matches_recount(db, project).await;
    db.set_backup_temp(b.id, BackupTemp::Volume(None))
        .await
        .unwrap();
    db.set_backup_temp(b.id, BackupTemp::Snapshot(None))
        .await
        .unwrap();
    db.begin_snapshot_delete(
        snap.id,
        clinker_types::status::SnapshotTransition::ForceDelete,
    )
    .await
    .unwrap();
    db.finish_snapshot_delete(snap.id).await.unwrap();
    let forgotten = db.get_backup(b.id).await.unwrap();
    assert_eq!(
        (forgotten.temp_volume_id, forgotten.temp_snapshot_id),
        (None, None)
    );
    assert!(matches!(
        db.set_backup_temp(BackupId::new_random(), BackupTemp::Volume(None))
            .await,
        Err(DbError::NotFound { .. })
    ));

    // The backup's host now runs one operation.
    let now = db.now();
    db.register_service(&ServiceRegistration {
        host: "bt-node".into(),
        binary: "cinder-backup".into(),
        topic: "cinder-backup".into(),
        availability_zone: "nova".into(),
        rpc_current_version: "2.4".into(),
    })
    .await
    .unwrap();
    let up = db.up_backup_services(now, 60).await.unwrap();
    let node = up.iter().find(|s| s.host == "bt-node").unwrap();
    assert_eq!(
        (node.operations, node.availability_zone.as_str()),
        (1, "nova")
    );
    // A heartbeat older than the down time is not up.
    let later = now.plus_micros(3_600_000_000);
    let up_later = db.up_backup_services(later, 60).await.unwrap();
    assert!(
        !up_later.iter().any(|s| s.host == "bt-node"),
        "{up_later:?}"
    );
    let b = db
        .finish_backup_create(b.id, &location("pb"), 1)
        .await
        .unwrap();

    // Create from the backup: the volume is `creating`, placed.
    let created = db
        .create_volume(new_volume(project, 1, default_type(db).await))
        .await
        .unwrap();
    place(db, created.id, 1).await;
    assert!(matches!(
        db.begin_volume_restore_from_backup(b.id, other, "node2", ProviderUpdate::default())
            .await,
        Err(DbError::InvalidState(_))
    ));
    assert_eq!(
        db.get_backup(b.id).await.unwrap().status,
        BackupStatus::Available
    );
    let restoring = db
        .begin_volume_restore_from_backup(b.id, created.id, "node2", ProviderUpdate::default())
        .await
        .unwrap();
    assert_eq!(
        (
            restoring.status,
            restoring.restore_volume_id,
            restoring.host.as_deref()
        ),
        (BackupStatus::Restoring, Some(created.id), Some("node2"))
    );
    let v = db.get_volume(created.id).await.unwrap();
    assert_eq!(v.status, VolumeStatus::RestoringBackup);
    db.finish_backup_restore(b.id, created.id, false)
        .await
        .unwrap();
    assert_eq!(
        db.get_volume(created.id).await.unwrap().status,
        VolumeStatus::Error
    );
    assert_eq!(
        db.get_backup(b.id).await.unwrap().status,
        BackupStatus::Available
    );

    let second = db
        .create_volume(new_volume(project, 1, default_type(db).await))
        .await
        .unwrap();
    place(db, second.id, 1).await;
    db.begin_volume_restore_from_backup(b.id, second.id, "node1", ProviderUpdate::default())
        .await
        .unwrap();
    db.finish_backup_restore(b.id, second.id, true)
        .await
        .unwrap();
    let done = db.get_volume(second.id).await.unwrap();
    assert_eq!(done.status, VolumeStatus::Available);
    assert!(done.launched_at.is_some());
    assert_eq!(done.previous_status, None);
    assert_usage_matches_recount(db, project).await;
}
