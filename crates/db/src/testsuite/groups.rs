//! Conformance checks of the group repositories (group types, groups,
//! group snapshots), run on every engine with the rest of the suite.

use std::collections::BTreeMap;

use clinker_types::group::{DEFAULT_CGSNAPSHOT_TYPE_ID, DEFAULT_CGSNAPSHOT_TYPE_NAME};
use clinker_types::group_status::{GroupSnapshotStatus, GroupStatus};
use clinker_types::model::JournalResource;
use clinker_types::{
    GroupId, GroupSnapshotId, GroupTypeId, SnapshotStatus, Timestamp, VolumeId, VolumeStatus,
    VolumeTypeId,
};

use super::{assert_usage_matches_recount, default_type, new_volume};
use crate::*;

const POOL: &str = "node1@file#file";

async fn group_type(db: &Db, name: &str) -> GroupTypeId {
    db.create_group_type(NewGroupType {
        name: name.into(),
        description: None,
        is_public: true,
        group_specs: BTreeMap::new(),
    })
    .await
    .unwrap()
    .id
}

fn new_group(project: &str, group_type_id: GroupTypeId, types: Vec<VolumeTypeId>) -> NewGroup {
    NewGroup {
        id: GroupId::new_random(),
        user_id: "u1".into(),
        project_id: project.into(),
        availability_zone: "nova".into(),
        display_name: Some("grp".into()),
        display_description: None,
        group_type_id,
        volume_type_ids: types,
        host: None,
        group_snapshot_id: None,
        source_group_id: None,
    }
}

/// An available group placed on [`POOL`].
async fn available_group(db: &Db, project: &str, gt: GroupTypeId, vt: VolumeTypeId) -> GroupId {
    let g = db
        .create_group(new_group(project, gt, vec![vt]))
        .await
        .unwrap();
    assert_eq!(
        db.place_group(g.id, POOL).await.unwrap(),
        ClaimOutcome::Claimed
    );
    db.finish_group_create(g.id).await.unwrap();
    g.id
}

/// An available volume on [`POOL`] in `group`.
async fn member(db: &Db, project: &str, vt: VolumeTypeId, group: Option<GroupId>) -> VolumeId {
    let mut new = new_volume(project, 1, vt);
    new.volume_type_name = db.get_volume_type(vt).await.unwrap().name;
    new.group_id = group.map(|g| g.to_string());
    let id = new.id;
    db.create_volume(new).await.unwrap();
    assert_eq!(
        db.claim_volume_placement(id, POOL, 1, 1_000_000)
            .await
            .unwrap(),
        ClaimOutcome::Claimed
    );
    db.finish_volume_create(id, ProviderUpdate::default())
        .await
        .unwrap();
    id
}

fn journal_has(entries: &[clinker_types::model::JournalEntry], id: &str, status: &str) -> bool {
    entries
        .iter()
        .any(|j| j.resource_id == id && j.status == status)
}

pub async fn group_types_specs_and_access(db: &Db) {
    // db sync creates Cinder's type for migrated consistency groups.
    let cg = db
        .get_group_type_by_name(DEFAULT_CGSNAPSHOT_TYPE_NAME)
        .await
        .unwrap();
    assert_eq!(cg.id.to_string(), DEFAULT_CGSNAPSHOT_TYPE_ID);
    assert!(cg.is_default_cgsnapshot_type());
    assert_eq!(
        cg.group_specs
            .get("consistent_group_snapshot_enabled")
            .map(String::as_str),
        Some("<is> True")
    );

    let private = db
        .create_group_type(NewGroupType {
            name: "gold".into(),
            description: Some("d".into()),
            is_public: false,
            group_specs: BTreeMap::from([("k1".to_owned(), "v1".to_owned())]),
        })
        .await
        .unwrap();
    assert_eq!(
        private.group_specs.get("k1").map(String::as_str),
        Some("v1")
    );
    assert!(matches!(
        db.create_group_type(NewGroupType {
            name: "gold".into(),
            description: None,
            is_public: true,
            group_specs: BTreeMap::new(),
        })
        .await,
        Err(DbError::Conflict(_))
    ));
    let public = group_type(db, "silver").await;
    assert_eq!(
        db.get_group_type_by_name("gold").await.unwrap().id,
        private.id
    );
    assert!(matches!(
        db.get_group_type(GroupTypeId::new_random()).await,
        Err(DbError::NotFound { .. })
    ));

    let names = |types: Vec<clinker_types::group::GroupType>| -> Vec<String> {
        types.into_iter().map(|t| t.name).collect()
    };
    assert_eq!(
        names(db.list_group_types(Some(false), None).await.unwrap()),
        ["gold"]
    );
    let visible = names(db.list_group_types(None, Some("p1")).await.unwrap());
    assert!(visible.contains(&"silver".to_owned()) && !visible.contains(&"gold".to_owned()));
    db.add_group_type_access(private.id, "p1").await.unwrap();
    assert!(matches!(
        db.add_group_type_access(private.id, "p1").await,
        Err(DbError::Conflict(_))
    ));
    assert_eq!(db.list_group_type_access(private.id).await.unwrap(), ["p1"]);
    let visible = names(db.list_group_types(Some(true), Some("p1")).await.unwrap());
    assert!(visible.contains(&"gold".to_owned()), "{visible:?}");
    db.remove_group_type_access(private.id, "p1").await.unwrap();
    assert!(matches!(
        db.remove_group_type_access(private.id, "p1").await,
        Err(DbError::NotFound { .. })
    ));
    assert_eq!(db.list_group_types(None, None).await.unwrap().len(), 3);

    // Update: rename, clear the description, make public; a taken name
    // conflicts.
    let renamed = db
        .update_group_type(private.id, Some("platinum".into()), Some(None), Some(true))
        .await
        .unwrap();
    assert_eq!(
        (
            renamed.name.as_str(),
            renamed.description,
            renamed.is_public
        ),
        ("platinum", None, true)
    );
    assert!(renamed.updated_at.is_some());
    assert!(matches!(
        db.update_group_type(private.id, Some("silver".into()), None, None)
            .await,
        Err(DbError::Conflict(_))
    ));

    // Specs merge; one can be deleted; a missing one is not found.
    let specs = db
        .set_group_specs(
            private.id,
            &BTreeMap::from([
                ("k1".to_owned(), "changed".to_owned()),
                ("k2".to_owned(), "v2".to_owned()),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(
        specs,
        BTreeMap::from([
            ("k1".to_owned(), "changed".to_owned()),
            ("k2".to_owned(), "v2".to_owned())
        ])
    );
    db.delete_group_spec(private.id, "k1").await.unwrap();
    assert!(matches!(
        db.delete_group_spec(private.id, "k1").await,
        Err(DbError::NotFound { .. })
    ));
    assert!(matches!(
        db.set_group_specs(GroupTypeId::new_random(), &BTreeMap::new())
            .await,
        Err(DbError::NotFound { .. })
    ));

    // A type in use cannot be deleted; an unused one can.
    let vt = default_type(db).await;
    let g = db
        .create_group(new_group("p1", public, vec![vt]))
        .await
        .unwrap();
    assert!(matches!(
        db.delete_group_type(public).await,
        Err(DbError::InvalidState(_))
    ));
    assert!(matches!(
        db.delete_volume_type(vt).await,
        Err(DbError::InvalidState(_))
    ));
    assert!(matches!(
        db.begin_group_delete(g.id, false).await.unwrap(),
        GroupDeleteStart::DeletedWithoutBackend(_)
    ));
    db.delete_group_type(public).await.unwrap();
    db.delete_group_type(private.id).await.unwrap();
    assert!(matches!(
        db.get_group_type(private.id).await,
        Err(DbError::NotFound { .. })
    ));
    assert_usage_matches_recount(db, "p1").await;
}

pub async fn group_lifecycle_keeps_quota_and_journal(db: &Db) {
    let vt = default_type(db).await;
    let other_type = db
        .create_volume_type(NewVolumeType {
            name: "other".into(),
            description: None,
            is_public: true,
            extra_specs: BTreeMap::new(),
        })
        .await
        .unwrap()
        .id;
    let gt = group_type(db, "gt-life").await;

    // Unknown types are refused with nothing written.
    assert!(matches!(
        db.create_group(new_group("g1", GroupTypeId::new_random(), vec![vt]))
            .await,
        Err(DbError::NotFound { .. })
    ));
    assert!(matches!(
        db.create_group(new_group("g1", gt, vec![VolumeTypeId::new_random()]))
            .await,
        Err(DbError::NotFound { .. })
    ));
    assert_eq!(db.quota_usages("g1").await.unwrap().get("groups"), None);

    // Create: `creating`, charged, journaled without a backend.
    let g = db
        .create_group(new_group("g1", gt, vec![other_type, vt, other_type]))
        .await
        .unwrap();
    assert_eq!(g.status, GroupStatus::Creating);
    assert_eq!(g.volume_type_ids, vec![other_type, vt], "order kept, once");
    assert_eq!(db.quota_usages("g1").await.unwrap().get("groups"), Some(&1));
    assert_usage_matches_recount(db, "g1").await;
    let unplaced = db.unplaced_journal(Timestamp(i64::MAX)).await.unwrap();
    assert!(unplaced.iter().any(|j| j.resource_id == g.id.to_string()
        && j.resource_type == JournalResource::Group
        && j.status == "creating"));

    // Placement: once; the journal row follows the group to its backend.
    assert_eq!(
        db.place_group(g.id, POOL).await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        db.place_group(g.id, "other@x#y").await.unwrap(),
        ClaimOutcome::NotWaiting
    );
    assert!(journal_has(
        &db.journal_for_backend("node1@file").await.unwrap(),
        &g.id.to_string(),
        "creating"
    ));
    let g = db.finish_group_create(g.id).await.unwrap();
    assert_eq!(
        (g.status, g.host.as_deref()),
        (GroupStatus::Available, Some(POOL))
    );
    assert!(matches!(
        db.finish_group_create(g.id).await,
        Err(DbError::InvalidState(_))
    ));
    assert!(
        db.journal_for_backend("node1@file")
            .await
            .unwrap()
            .is_empty()
    );

    // A volume of the group cannot be deleted on its own.
    let inside = member(db, "g1", vt, Some(g.id)).await;
    assert!(matches!(
        db.begin_volume_delete(inside, DeleteOptions::default())
            .await,
        Err(DbError::InvalidState(_))
    ));

    // Membership changes are checked under the locks; a refusal writes
    // nothing.
    let outside = member(db, "g1", vt, None).await;
    let wrong_type = member(db, "g1", other_type, None).await;
    let foreign = member(db, "g2", vt, None).await;
    for bad in [
        GroupUpdate {
            add_volumes: vec![foreign],
            ..GroupUpdate::default()
        },
        GroupUpdate {
            add_volumes: vec![VolumeId::new_random()],
            ..GroupUpdate::default()
        },
        GroupUpdate {
            display_name: Some(Some("renamed".into())),
            remove_volumes: vec![outside],
            ..GroupUpdate::default()
        },
    ] {
        assert!(matches!(
            db.update_group(g.id, bad).await,
            Err(DbError::InvalidState(_))
        ));
    }
    let unchanged = db.get_group(g.id).await.unwrap();
    assert_eq!(unchanged.display_name.as_deref(), Some("grp"));
    assert_eq!(db.get_volume(outside).await.unwrap().group_id, None);
    // The wrong type is fine: the group allows both types.
    let g = db
        .update_group(
            g.id,
            GroupUpdate {
                display_name: Some(Some("renamed".into())),
                display_description: Some(Some("desc".into())),
                add_volumes: vec![outside, wrong_type],
                remove_volumes: vec![inside],
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (g.display_name.as_deref(), g.display_description.as_deref()),
        (Some("renamed"), Some("desc"))
    );
    let group_text = g.id.to_string();
    for (volume, expected) in [
        (inside, None),
        (outside, Some(group_text.as_str())),
        (wrong_type, Some(group_text.as_str())),
    ] {
        assert_eq!(
            db.get_volume(volume).await.unwrap().group_id.as_deref(),
            expected
        );
    }
    // A group that is not available cannot change membership.
    db.reset_group_status(g.id, GroupStatus::Error)
        .await
        .unwrap();
    assert!(matches!(
        db.update_group(
            g.id,
            GroupUpdate {
                add_volumes: vec![inside],
                ..GroupUpdate::default()
            }
        )
        .await,
        Err(DbError::InvalidState(_))
    ));
    // Renaming alone works in any status.
    db.update_group(
        g.id,
        GroupUpdate {
            display_name: Some(None),
            ..GroupUpdate::default()
        },
    )
    .await
    .unwrap();
    db.reset_group_status(g.id, GroupStatus::Available)
        .await
        .unwrap();

    // Delete: volumes need the flag; attached volumes block it.
    assert!(matches!(
        db.begin_group_delete(g.id, false).await,
        Err(DbError::InvalidState(_))
    ));
    db.reset_volume_status(
        outside,
        None,
        Some(clinker_types::AttachStatus::Attached),
        None,
    )
    .await
    .unwrap();
    assert!(matches!(
        db.begin_group_delete(g.id, true).await,
        Err(DbError::InvalidState(_))
    ));
    db.reset_volume_status(
        outside,
        None,
        Some(clinker_types::AttachStatus::Detached),
        None,
    )
    .await
    .unwrap();
    let GroupDeleteStart::Started(deleting) = db.begin_group_delete(g.id, true).await.unwrap()
    else {
        panic!("expected a started delete")
    };
    assert_eq!(deleting.status, GroupStatus::Deleting);
    assert_eq!(deleting.volume_type_ids.len(), 2);
    assert!(matches!(
        db.begin_group_delete(g.id, true).await.unwrap(),
        GroupDeleteStart::AlreadyDeleting(_)
    ));
    for v in [outside, wrong_type] {
        assert_eq!(
            db.get_volume(v).await.unwrap().status,
            VolumeStatus::Deleting
        );
    }
    let journal = db.journal_for_backend("node1@file").await.unwrap();
    assert!(journal_has(&journal, &g.id.to_string(), "deleting"));
    // Members get no journal rows of their own.
    assert_eq!(journal.len(), 1, "{journal:?}");
    assert!(matches!(
        db.finish_group_delete(g.id).await.unwrap(),
        GroupDeleteEnd::Pending
    ));
    db.finish_volume_delete(outside).await.unwrap();
    db.fail_volume_delete(wrong_type, false).await.unwrap();
    let GroupDeleteEnd::Failed(failed) = db.finish_group_delete(g.id).await.unwrap() else {
        panic!("a member failed")
    };
    assert_eq!(failed.status, GroupStatus::Error);
    assert!(
        db.journal_for_backend("node1@file")
            .await
            .unwrap()
            .is_empty()
    );
    // A retry takes the volume whose delete failed.
    assert!(matches!(
        db.begin_group_delete(g.id, true).await.unwrap(),
        GroupDeleteStart::Started(_)
    ));
    db.finish_volume_delete(wrong_type).await.unwrap();
    assert!(matches!(
        db.finish_group_delete(g.id).await.unwrap(),
        GroupDeleteEnd::Deleted(_)
    ));
    assert!(matches!(
        db.get_group(g.id).await,
        Err(DbError::NotFound { .. })
    ));
    assert_eq!(db.quota_usages("g1").await.unwrap().get("groups"), Some(&0));
    assert_usage_matches_recount(db, "g1").await;

    // A failed or discarded create.
    let failed = db
        .create_group(new_group("g1", gt, vec![vt]))
        .await
        .unwrap();
    assert_eq!(
        db.fail_group_create(failed.id).await.unwrap().status,
        GroupStatus::Error
    );
    let discarded = db
        .create_group(new_group("g1", gt, vec![vt]))
        .await
        .unwrap();
    db.discard_group_create(discarded.id).await.unwrap();
    assert!(matches!(
        db.get_group(discarded.id).await,
        Err(DbError::NotFound { .. })
    ));
    assert!(matches!(
        db.discard_group_create(failed.id).await,
        Err(DbError::InvalidState(_))
    ));
    assert!(
        db.unplaced_journal(Timestamp(i64::MAX))
            .await
            .unwrap()
            .iter()
            .all(|j| j.resource_id != failed.id.to_string()
                && j.resource_id != discarded.id.to_string())
    );
    // Quota: a project out of groups is refused with nothing written.
    db.set_project_quota("g1", "groups", 1).await.unwrap();
    assert!(matches!(
        db.create_group(new_group("g1", gt, vec![vt])).await,
        Err(DbError::OverQuota(o)) if o.resource == "groups" && o.limit == 1
    ));
    db.reset_group_status(failed.id, GroupStatus::Available)
        .await
        .unwrap();
    assert!(matches!(
        db.begin_group_delete(failed.id, false).await.unwrap(),
        GroupDeleteStart::DeletedWithoutBackend(_)
    ));
    assert_usage_matches_recount(db, "g1").await;
    assert!(matches!(
        db.reset_group_status(GroupId::new_random(), GroupStatus::Error)
            .await,
        Err(DbError::NotFound { .. })
    ));
}

pub async fn group_snapshots_and_groups_from_sources(db: &Db) {
    let vt = default_type(db).await;
    let gt = group_type(db, "gt-snap").await;
    let g = available_group(db, "s1", gt, vt).await;
    let a = member(db, "s1", vt, Some(g)).await;
    let b = member(db, "s1", vt, Some(g)).await;

    // Quota is checked for all members at once; a refusal writes nothing.
    db.set_project_quota("s1", "snapshots", 1).await.unwrap();
    let refused = db
        .create_group_snapshot(NewGroupSnapshot {
            id: GroupSnapshotId::new_random(),
            group_id: g,
            user_id: "u1".into(),
            project_id: "s1".into(),
            display_name: Some("gs".into()),
            display_description: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, DbError::OverQuota(o) if o.resource == "snapshots"),
        "{refused:?}"
    );
    assert_eq!(
        db.count_snapshots(&SnapshotQuery::default()).await.unwrap(),
        0
    );
    db.set_project_quota("s1", "snapshots", 10).await.unwrap();

    let gs_id = GroupSnapshotId::new_random();
    let gs = db
        .create_group_snapshot(NewGroupSnapshot {
            id: gs_id,
            group_id: g,
            user_id: "u1".into(),
            project_id: "s1".into(),
            display_name: Some("gs".into()),
            display_description: Some("d".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        (gs.status, gs.group_id, gs.group_type_id, gs.host.as_deref()),
        (GroupSnapshotStatus::Creating, g, gt, Some(POOL))
    );
    let members = db
        .list_snapshots(&SnapshotQuery {
            filters: vec![(
                SnapshotColumn::GroupSnapshotId,
                FilterValue::Eq(gs_id.to_string()),
            )],
            ..SnapshotQuery::default()
        })
        .await
        .unwrap();
    let mut member_volumes: Vec<VolumeId> = members.iter().map(|s| s.volume_id).collect();
    member_volumes.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(member_volumes, expected);
    assert!(
        members.iter().all(
            |s| s.status == SnapshotStatus::Creating && s.display_name.as_deref() == Some("gs")
        )
    );
    let journal = db.journal_for_backend("node1@file").await.unwrap();
    assert!(journal_has(&journal, &gs_id.to_string(), "creating"));
    assert_eq!(journal.len(), 1, "members are covered by the group row");
    assert_eq!(
        db.quota_usages("s1").await.unwrap().get("snapshots"),
        Some(&2)
    );
    assert_usage_matches_recount(db, "s1").await;

    // A group with a snapshot cannot be deleted.
    assert!(matches!(
        db.begin_group_delete(g, true).await,
        Err(DbError::InvalidState(_))
    ));
    // Members finish through the snapshot path, then the group snapshot.
    for s in &members {
        db.finish_snapshot_create(s.id, None).await.unwrap();
    }
    let gs = db.finish_group_snapshot_create(gs_id).await.unwrap();
    assert_eq!(gs.status, GroupSnapshotStatus::Available);
    assert!(
        db.journal_for_backend("node1@file")
            .await
            .unwrap()
            .is_empty()
    );

    // A group from the group snapshot: the group and its volumes in one
    // transaction, placed where the source lives.
    let from_snap = GroupId::new_random();
    let mut new = new_group("s1", gt, vec![vt]);
    new.id = from_snap;
    new.host = Some(POOL.into());
    new.group_snapshot_id = Some(gs_id);
    let volumes: Vec<NewVolume> = members
        .iter()
        .map(|s| {
            let mut v = new_volume("s1", s.volume_size, vt);
            v.snapshot_id = Some(s.id);
            v.group_id = Some(from_snap.to_string());
            v
        })
        .collect();
    let member_ids: Vec<VolumeId> = volumes.iter().map(|v| v.id).collect();
    let created = db.create_group_from_source(new, volumes).await.unwrap();
    assert_eq!(
        (
            created.status,
            created.host.as_deref(),
            created.group_snapshot_id
        ),
        (GroupStatus::Creating, Some(POOL), Some(gs_id))
    );
    assert_eq!(
        db.quota_usages("s1").await.unwrap().get("volumes"),
        Some(&4)
    );
    assert!(journal_has(
        &db.journal_for_backend("node1@file").await.unwrap(),
        &from_snap.to_string(),
        "creating"
    ));
    // The source cannot go while a group is being created from it.
    assert!(matches!(
        db.begin_group_snapshot_delete(gs_id).await,
        Err(DbError::InvalidState(_))
    ));
    assert!(db.settle_group_create(from_snap).await.unwrap().is_none());
    for id in &member_ids {
        assert_eq!(
            db.claim_volume_placement(*id, POOL, 1, 1_000_000)
                .await
                .unwrap(),
            ClaimOutcome::Claimed
        );
    }
    db.finish_volume_create(member_ids[0], ProviderUpdate::default())
        .await
        .unwrap();
    assert!(
        db.settle_group_create(from_snap).await.unwrap().is_none(),
        "a member is still creating"
    );
    db.finish_volume_create(member_ids[1], ProviderUpdate::default())
        .await
        .unwrap();
    let settled = db.settle_group_create(from_snap).await.unwrap().unwrap();
    assert_eq!(settled.status, GroupStatus::Available);
    assert!(db.settle_group_create(from_snap).await.unwrap().is_none());
    // A plain group is not settled by its members.
    assert!(db.settle_group_create(g).await.unwrap().is_none());

    // Delete the group snapshot: members through the snapshot path.
    let deleting = db.begin_group_snapshot_delete(gs_id).await.unwrap();
    assert_eq!(deleting.status, GroupSnapshotStatus::Deleting);
    assert!(matches!(
        db.begin_group_snapshot_delete(gs_id).await,
        Err(DbError::InvalidState(_))
    ));
    assert!(matches!(
        db.finish_group_snapshot_delete(gs_id).await.unwrap(),
        GroupDeleteEnd::Pending
    ));
    for s in &members {
        assert_eq!(
            db.get_snapshot(s.id).await.unwrap().status,
            SnapshotStatus::Deleting
        );
        db.finish_snapshot_delete(s.id).await.unwrap();
    }
    assert!(matches!(
        db.finish_group_snapshot_delete(gs_id).await.unwrap(),
        GroupDeleteEnd::Deleted(_)
    ));
    assert!(matches!(
        db.get_group_snapshot(gs_id).await,
        Err(DbError::NotFound { .. })
    ));
    assert_usage_matches_recount(db, "s1").await;

    // A clone of a group whose member fails ends in error.
    let clone = GroupId::new_random();
    let mut new = new_group("s1", gt, vec![vt]);
    new.id = clone;
    new.host = Some(POOL.into());
    new.source_group_id = Some(g);
    let mut v = new_volume("s1", 1, vt);
    v.source_volid = Some(a);
    v.group_id = Some(clone.to_string());
    let clone_member = v.id;
    db.create_group_from_source(new, vec![v]).await.unwrap();
    assert!(matches!(
        db.begin_group_delete(g, true).await,
        Err(DbError::InvalidState(_))
    ));
    db.fail_volume_create(clone_member).await.unwrap();
    assert_eq!(
        db.settle_group_create(clone).await.unwrap().unwrap().status,
        GroupStatus::Error
    );

    // Failed, discarded and reset group snapshots.
    let failing = GroupSnapshotId::new_random();
    db.create_group_snapshot(NewGroupSnapshot {
        id: failing,
        group_id: g,
        user_id: "u1".into(),
        project_id: "s1".into(),
        display_name: None,
        display_description: None,
    })
    .await
    .unwrap();
    let failed = db.fail_group_snapshot_create(failing).await.unwrap();
    assert_eq!(failed.status, GroupSnapshotStatus::Error);
    let statuses: Vec<SnapshotStatus> = db
        .list_snapshots(&SnapshotQuery {
            filters: vec![(
                SnapshotColumn::GroupSnapshotId,
                FilterValue::Eq(failing.to_string()),
            )],
            ..SnapshotQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.status)
        .collect();
    assert_eq!(statuses, [SnapshotStatus::Error, SnapshotStatus::Error]);
    let reset = db
        .reset_group_snapshot_status(failing, GroupSnapshotStatus::Available)
        .await
        .unwrap();
    assert_eq!(reset.status, GroupSnapshotStatus::Available);
    let discarded = GroupSnapshotId::new_random();
    db.create_group_snapshot(NewGroupSnapshot {
        id: discarded,
        group_id: g,
        user_id: "u1".into(),
        project_id: "s1".into(),
        display_name: None,
        display_description: None,
    })
    .await
    .unwrap();
    db.discard_group_snapshot_create(discarded).await.unwrap();
    assert!(matches!(
        db.get_group_snapshot(discarded).await,
        Err(DbError::NotFound { .. })
    ));
    assert_eq!(
        db.count_snapshots(&SnapshotQuery::default()).await.unwrap(),
        2,
        "only the failed group snapshot's members remain"
    );
    // Snapshots of a group that is not available are refused.
    db.reset_group_status(g, GroupStatus::Deleting)
        .await
        .unwrap();
    assert!(matches!(
        db.create_group_snapshot(NewGroupSnapshot {
            id: GroupSnapshotId::new_random(),
            group_id: g,
            user_id: "u1".into(),
            project_id: "s1".into(),
            display_name: None,
            display_description: None,
        })
        .await,
        Err(DbError::InvalidState(_))
    ));
    assert_usage_matches_recount(db, "s1").await;
}

pub async fn group_lists_filter_sort_and_paginate(db: &Db) {
    let vt = default_type(db).await;
    let gt = group_type(db, "gt-list").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut new = new_group(if i < 4 { "l1" } else { "l2" }, gt, vec![vt]);
        new.display_name = Some(format!("g-{i}"));
        ids.push(db.create_group(new).await.unwrap().id);
    }
    let scope = Some("l1".to_owned());
    let all = db
        .list_groups(&GroupQuery {
            project_id: scope.clone(),
            ..GroupQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|g| g.volume_type_ids == vec![vt]));
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let page = db
            .list_groups(&GroupQuery {
                project_id: scope.clone(),
                sort: vec![(GroupColumn::Name, SortDir::Asc)],
                page: Page {
                    marker,
                    limit: Some(3),
                    offset: None,
                },
                ..GroupQuery::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        marker = page.last().map(|g| g.id);
        seen.extend(page.into_iter().filter_map(|g| g.display_name));
    }
    assert_eq!(seen, ["g-0", "g-1", "g-2", "g-3"]);
    let named = db
        .list_groups(&GroupQuery {
            filters: vec![(GroupColumn::Name, FilterValue::Eq("g-4".into()))],
            ..GroupQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(named.iter().map(|g| g.id).collect::<Vec<_>>(), [ids[4]]);
    assert!(matches!(
        db.list_groups(&GroupQuery {
            project_id: scope.clone(),
            page: Page {
                marker: Some(ids[4]),
                limit: None,
                offset: None
            },
            ..GroupQuery::default()
        })
        .await,
        Err(DbError::NotFound { .. })
    ));

    // Group snapshots of two groups, listed per group and paged.
    let g = available_group(db, "l1", gt, vt).await;
    member(db, "l1", vt, Some(g)).await;
    let mut snaps = Vec::new();
    for i in 0..3 {
        let id = GroupSnapshotId::new_random();
        db.create_group_snapshot(NewGroupSnapshot {
            id,
            group_id: g,
            user_id: "u1".into(),
            project_id: "l1".into(),
            display_name: Some(format!("gs-{i}")),
            display_description: None,
        })
        .await
        .unwrap();
        snaps.push(id);
    }
    let page = db
        .list_group_snapshots(&GroupSnapshotQuery {
            project_id: scope.clone(),
            filters: vec![(GroupSnapshotColumn::GroupId, FilterValue::Eq(g.to_string()))],
            sort: vec![(GroupSnapshotColumn::Name, SortDir::Desc)],
            page: Page {
                marker: Some(snaps[2]),
                limit: Some(1),
                offset: None,
            },
        })
        .await
        .unwrap();
    assert_eq!(page.iter().map(|s| s.id).collect::<Vec<_>>(), [snaps[1]]);
    assert!(
        db.list_group_snapshots(&GroupSnapshotQuery {
            project_id: Some("l2".into()),
            ..GroupSnapshotQuery::default()
        })
        .await
        .unwrap()
        .is_empty()
    );
    assert_usage_matches_recount(db, "l1").await;
}
