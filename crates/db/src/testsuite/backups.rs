//! Conformance checks for backups (run on every engine by `run_all`).

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
        id: BackupId::new_random(),
        volume_id: vol,
        user_id: "u2".into(),
        project_id: project.into(),
        host: "node1".into(),
        availability_zone: Some("nova".into()),
        display_name: Some("imp".into()),
        display_description: None,
        location: location("snapbackup"),
        service: "cinder.backup.drivers.posix.PosixBackupDriver".into(),
        size: 1,
        object_count: 2,
        parent_id: None,
        snapshot_id: Some(snap.id),
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
