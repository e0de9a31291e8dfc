//! Generic groups through the real scheduler and volume services (SQLite,
//! in-process bus, file backends): group placement across backends, and
//! the settling of every group journal row after a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use clinker_db::testsuite::new_volume;
use clinker_db::{GroupDeleteStart, NewGroup, NewGroupSnapshot, NewGroupType};
use clinker_rpc::RequestContext;
use clinker_rpc::scheduler::ScheduleCreateGroupArgs;
use clinker_testkit::cluster::{PROJECT, SETTLE, ServiceCluster};
use clinker_testkit::config::FILE_BACKEND;
use clinker_testkit::{poll, quota};
use clinker_types::group::Group;
use clinker_types::group_status::{GroupSnapshotStatus, GroupStatus};
use clinker_types::request_spec::TypeSpec;
use clinker_types::{
    GroupId, GroupSnapshotId, GroupTypeId, SnapshotStatus, VolumeId, VolumeTypeId,
};

async fn group_type(c: &ServiceCluster) -> GroupTypeId {
    c.db.create_group_type(NewGroupType {
        name: "gt".into(),
        description: None,
        is_public: true,
        group_specs: BTreeMap::new(),
    })
    .await
    .unwrap()
    .id
}

/// What the API does for `POST /groups`, without waiting.
async fn create_group(c: &ServiceCluster, gt: GroupTypeId, types: Vec<VolumeTypeId>) -> GroupId {
    let group =
        c.db.create_group(NewGroup {
            id: GroupId::new_random(),
            user_id: "u1".into(),
            project_id: PROJECT.into(),
            availability_zone: "nova".into(),
            display_name: None,
            display_description: None,
            group_type_id: gt,
            volume_type_ids: types,
            host: None,
            group_snapshot_id: None,
            source_group_id: None,
        })
        .await
        .unwrap();
    group.id
}

async fn schedule_group(c: &ServiceCluster, id: GroupId) {
    c.scheduler()
        .create_group(
            &RequestContext::internal("test"),
            &ScheduleCreateGroupArgs { group_id: id },
        )
        .await
        .unwrap();
}

/// Polls the group until it leaves `creating`, or reaches `want` when
/// given; the row.
async fn wait_group(c: &ServiceCluster, id: GroupId, want: Option<GroupStatus>) -> Group {
    poll::until(SETTLE, async || {
        let g = c.db.get_group(id).await.ok();
        match (&g, want) {
            (Some(g), Some(want)) if g.status == want => Ok(g.clone()),
            (Some(g), None) if g.status != GroupStatus::Creating => Ok(g.clone()),
            _ => Err(format!(
                "group {id} never settled: {:?}",
                g.map(|g| g.status)
            )),
        }
    })
    .await
}

/// What the API does for a volume of `group` (pinned to its backend),
/// then waits until it is available.
async fn member(c: &ServiceCluster, group: &Group, vt: VolumeTypeId, type_name: &str) -> VolumeId {
    let mut new = new_volume(PROJECT, 1, vt);
    new.volume_type_name = type_name.into();
    new.group_id = Some(group.id.to_string());
    let volume = c.db.create_volume(new).await.unwrap();
    let backend = group.host.as_deref().unwrap().split('#').next().unwrap();
    let volume_type = TypeSpec {
        id: Some(vt),
        name: Some(type_name.into()),
        extra_specs: BTreeMap::new(),
    };
    c.schedule_create(&volume, volume_type, Some(backend.to_owned()))
        .await;
    c.wait_available(volume.id).await;
    volume.id
}

const TWO_BACKENDS: &str = "enabled_backends = fast,slow\n\
    [fast]\nvolume_driver = file\nvolume_backend_name = fast\n\
    [slow]\nvolume_driver = file\nvolume_backend_name = slow\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_go_where_every_type_fits() {
    let mut c = ServiceCluster::start(TWO_BACKENDS).await;
    let fast = c.volume_type("fast", Some("fast")).await;
    let slow = c.volume_type("slow", Some("slow")).await;
    let any = c.volume_type("any", None).await;
    let gt = group_type(&c).await;

    let g = create_group(&c, gt, vec![any, slow]).await;
    schedule_group(&c, g).await;
    let placed = wait_group(&c, g, None).await;
    assert_eq!(placed.status, GroupStatus::Available);
    assert_eq!(placed.host.as_deref(), Some("node1@slow#slow"));
    // A volume of the group lands on the group's backend.
    let v = member(&c, &placed, any, "any").await;
    assert_eq!(
        c.db.get_volume(v).await.unwrap().host.as_deref(),
        Some("node1@slow#slow")
    );
    assert!(c.file("slow", &format!("volume-{v}")).exists());

    // No backend serves both types: the group fails, with nothing claimed.
    let none = create_group(&c, gt, vec![fast, slow]).await;
    schedule_group(&c, none).await;
    let failed = wait_group(&c, none, None).await;
    assert_eq!((failed.status, failed.host), (GroupStatus::Error, None));
    assert!(
        clinker_db::JournalRepository::unplaced_journal(
            c.db.as_ref(),
            clinker_types::Timestamp(i64::MAX)
        )
        .await
        .unwrap()
        .is_empty()
    );
    c.stop_services().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_settles_every_group_operation() {
    let mut c = ServiceCluster::start(FILE_BACKEND).await;
    let vt = c.default_type().await;
    let gt = group_type(&c).await;
    let mut groups = Vec::new();
    for _ in 0..2 {
        let g = create_group(&c, gt, vec![vt]).await;
        schedule_group(&c, g).await;
        groups.push(wait_group(&c, g, Some(GroupStatus::Available)).await);
    }
    let doomed = member(&c, &groups[0], vt, "__DEFAULT__").await;
    let snapped = member(&c, &groups[1], vt, "__DEFAULT__").await;
    c.stop_services().await;

    // While the services are down, four group operations lose their casts:
    // a delete, a group snapshot, a placed group create and an unplaced one.
    assert!(matches!(
        c.db.begin_group_delete(groups[0].id, true).await.unwrap(),
        GroupDeleteStart::Started(_)
    ));
    let gs = GroupSnapshotId::new_random();
    c.db.create_group_snapshot(NewGroupSnapshot {
        id: gs,
        group_id: groups[1].id,
        user_id: "u1".into(),
        project_id: PROJECT.into(),
        display_name: None,
        display_description: None,
    })
    .await
    .unwrap();
    let placed = create_group(&c, gt, vec![vt]).await;
    c.db.place_group(placed, "node1@file#file").await.unwrap();
    let unplaced = create_group(&c, gt, vec![vt]).await;

    c.start_services().await;
    assert!(
        c.db.get_group(groups[0].id).await.is_err(),
        "the interrupted group delete was resumed"
    );
    assert!(c.db.get_volume(doomed).await.is_err());
    assert!(!c.file("file", &format!("volume-{doomed}")).exists());
    let failed = c.db.get_group_snapshot(gs).await.unwrap();
    assert_eq!(failed.status, GroupSnapshotStatus::Error);
    let members = quota::group_snapshot_members(c.db.as_ref(), gs).await;
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].volume_id, snapped);
    assert_eq!(members[0].status, SnapshotStatus::Error);
    assert_eq!(
        c.db.get_group(placed).await.unwrap().status,
        GroupStatus::Available,
        "a generic group has nothing on the backend to lose"
    );
    // The scheduler places creates nobody placed.
    let resumed = wait_group(&c, unplaced, Some(GroupStatus::Available)).await;
    assert_eq!(resumed.host.as_deref(), Some("node1@file#file"));
    assert!(
        clinker_db::JournalRepository::journal_for_backend(c.db.as_ref(), "node1@file")
            .await
            .unwrap()
            .is_empty()
    );
    let resources = ["groups", "volumes", "snapshots", "gigabytes"];
    quota::assert_recount_matches(c.db.as_ref(), PROJECT, &resources).await;
    c.stop_services().await;
}
