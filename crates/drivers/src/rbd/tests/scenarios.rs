//! Multi-step behaviours on the in-memory pool: hidden deletion of volumes
//! with clones, clone depth, snapshot deletion with dependent volumes.

use std::sync::Arc;

use clinker_config::RbdDriverOptions;
use clinker_exec::FakeRunner;

use super::model::FakeCeph;
use super::{driver_with, options, snapshot, volume};
use crate::rbd::RbdDriver;
use crate::{DriverError, VolumeDriver};

fn cluster(options: RbdDriverOptions) -> (FakeCeph, FakeRunner, RbdDriver) {
    let ceph = FakeCeph::default();
    let runner = FakeRunner::new();
    ceph.install(&runner);
    let driver = driver_with(Arc::new(runner.clone()), options);
    (ceph, runner, driver)
}

#[tokio::test]
async fn a_volume_with_clones_is_hidden_until_its_last_clone_goes() {
    let (ceph, _, d) = cluster(options());
    let a = volume(1);
    let b = volume(1);
    let c = volume(2);
    d.create_volume(&a).await.unwrap();
    d.create_cloned_volume(&b, &a).await.unwrap();
    d.create_cloned_volume(&c, &b).await.unwrap();
    assert_eq!(
        ceph.with(|p| p.parent_name(&c.name)),
        Some((b.name.clone(), format!("{}.clone_snap", c.name)))
    );
    assert_eq!(ceph.with(|p| p.get(&c.name).map(|i| i.size)), Some(2 << 30));

    // Deleting the parents hides them: their clones still read from them.
    d.delete_volume(&a).await.unwrap();
    d.delete_volume(&b).await.unwrap();
    let hidden_a = format!("{}.deleted", a.name);
    let hidden_b = format!("{}.deleted", b.name);
    let mut expected = vec![hidden_a.clone(), hidden_b.clone(), c.name.clone()];
    expected.sort();
    assert_eq!(ceph.with(|p| p.names()), expected);
    assert_eq!(
        d.list_volume_names().await.unwrap().unwrap(),
        [c.name.as_str()]
    );
    // Deleting them again (a redelivered request) changes nothing.
    d.delete_volume(&a).await.unwrap();
    assert_eq!(ceph.with(|p| p.names()).len(), 3);

    // The last clone's deletion removes the whole hidden chain.
    d.delete_volume(&c).await.unwrap();
    assert!(
        ceph.with(|p| p.names()).is_empty(),
        "{:?}",
        ceph.with(|p| p.names())
    );
    assert!(ceph.with(|p| p.trash()).is_empty());
}

#[tokio::test]
async fn deleting_a_clone_releases_its_parents_temporary_snapshot() {
    let (ceph, _, d) = cluster(options());
    let a = volume(1);
    let b = volume(1);
    d.create_volume(&a).await.unwrap();
    d.create_cloned_volume(&b, &a).await.unwrap();
    d.delete_volume(&b).await.unwrap();
    assert!(ceph.with(|p| p.get(&a.name).unwrap().snaps.is_empty()));
    // So the parent is really removed, not hidden.
    d.delete_volume(&a).await.unwrap();
    assert!(ceph.with(|p| p.names()).is_empty());
}

#[tokio::test]
async fn a_temporary_snapshot_whose_clone_was_flattened_does_not_hide_its_volume() {
    let (ceph, runner, d) = cluster(options());
    let a = volume(1);
    let b = volume(1);
    d.create_volume(&a).await.unwrap();
    d.create_cloned_volume(&b, &a).await.unwrap();
    // Someone flattened the clone behind Cinder's back.
    ceph.with(|p| {
        let id = p
            .images
            .iter()
            .find(|(_, i)| i.name == b.name)
            .map(|(id, _)| *id);
        p.images.get_mut(&id.unwrap()).unwrap().parent = None;
    });
    runner.clear_calls();
    d.delete_volume(&a).await.unwrap();
    assert_eq!(ceph.with(|p| p.names()), [b.name.as_str()]);
}

#[tokio::test]
async fn clones_past_the_clone_depth_are_flattened() {
    let (ceph, _, d) = cluster(RbdDriverOptions {
        max_clone_depth: 2,
        ..options()
    });
    let chain: Vec<_> = (0..4).map(|_| volume(1)).collect();
    d.create_volume(&chain[0]).await.unwrap();
    for pair in chain.windows(2) {
        d.create_cloned_volume(&pair[1], &pair[0]).await.unwrap();
    }
    // 1 and 2 are clones (chains of 1 and 2); 3 would make a chain of 3.
    assert!(ceph.with(|p| p.parent_name(&chain[1].name)).is_some());
    assert!(ceph.with(|p| p.parent_name(&chain[2].name)).is_some());
    assert_eq!(ceph.with(|p| p.parent_name(&chain[3].name)), None);
    assert!(
        ceph.with(|p| p.get(&chain[2].name).unwrap().snaps.is_empty()),
        "the temporary snapshot of a flattened clone is removed"
    );

    // The same depth applies to volumes made from snapshots.
    let s = snapshot(&chain[2]);
    d.create_snapshot(&s).await.unwrap();
    let from_snapshot = volume(1);
    d.create_volume_from_snapshot(&from_snapshot, &s)
        .await
        .unwrap();
    assert_eq!(ceph.with(|p| p.parent_name(&from_snapshot.name)), None);
    let s = snapshot(&chain[0]);
    d.create_snapshot(&s).await.unwrap();
    let shallow = volume(1);
    d.create_volume_from_snapshot(&shallow, &s).await.unwrap();
    assert_eq!(
        ceph.with(|p| p.parent_name(&shallow.name)),
        Some((chain[0].name.clone(), s.name.clone()))
    );
}

#[tokio::test]
async fn deleting_a_snapshot_flattens_the_volumes_made_from_it() {
    let (ceph, _, d) = cluster(options());
    let a = volume(1);
    d.create_volume(&a).await.unwrap();
    let s = snapshot(&a);
    d.create_snapshot(&s).await.unwrap();
    let b = volume(2);
    d.create_volume_from_snapshot(&b, &s).await.unwrap();
    assert!(ceph.with(|p| p.parent_name(&b.name)).is_some());
    d.delete_snapshot(&s).await.unwrap();
    assert_eq!(ceph.with(|p| p.parent_name(&b.name)), None);
    assert!(ceph.with(|p| p.get(&a.name).unwrap().snaps.is_empty()));
    d.delete_snapshot(&s).await.unwrap();
}

#[tokio::test]
async fn an_untracked_snapshot_sends_the_volume_to_the_trash() {
    let (ceph, _, d) = cluster(options());
    let a = volume(1);
    d.create_volume(&a).await.unwrap();
    let other = "volume-99999999-9999-4999-8999-999999999999";
    ceph.with(|p| {
        p.add_snap(&a.name, "backup.1.snap.2", true);
        p.add(other, 1 << 30, Some((&a.name, "backup.1.snap.2")));
    });
    d.delete_volume(&a).await.unwrap();
    assert_eq!(ceph.with(|p| p.names()), [other]);
    assert_eq!(
        ceph.with(|p| p.parent_name(other)),
        None,
        "its clone was flattened"
    );
    assert_eq!(ceph.with(|p| p.trash()), [a.name.as_str()]);
}

#[tokio::test]
async fn an_attached_volume_cannot_be_deleted() {
    let (ceph, _, d) = cluster(options());
    let a = volume(1);
    d.create_volume(&a).await.unwrap();
    ceph.with(|p| {
        let id = p
            .images
            .iter()
            .find(|(_, i)| i.name == a.name)
            .map(|(id, _)| *id);
        p.images.get_mut(&id.unwrap()).unwrap().watched = true;
    });
    let err = d.delete_volume(&a).await.unwrap_err();
    assert!(matches!(err, DriverError::Busy(_)), "{err:?}");
    assert_eq!(ceph.with(|p| p.names()), [a.name.as_str()]);
}

#[tokio::test]
async fn a_clone_failure_removes_the_temporary_snapshot() {
    let (ceph, runner, d) = cluster(options());
    let a = volume(1);
    d.create_volume(&a).await.unwrap();
    let b = volume(1);
    runner.on(
        &super::rbd("clone"),
        clinker_exec::Output::failed(110, include_str!("../fixtures/stderr-unreachable.txt")),
    );
    let err = d.create_cloned_volume(&b, &a).await.unwrap_err();
    assert!(matches!(err, DriverError::Unavailable(_)), "{err:?}");
    assert!(ceph.with(|p| p.get(&a.name).unwrap().snaps.is_empty()));
    assert_eq!(ceph.with(|p| p.names()), [a.name.as_str()]);
}

#[tokio::test]
async fn redelivered_clone_requests_finish_the_job() {
    let (ceph, _, d) = cluster(options());
    let a = volume(1);
    d.create_volume(&a).await.unwrap();
    let s = snapshot(&a);
    d.create_snapshot(&s).await.unwrap();
    d.create_snapshot(&s).await.unwrap();
    let b = volume(3);
    d.create_volume_from_snapshot(&b, &s).await.unwrap();
    d.create_volume_from_snapshot(&b, &s).await.unwrap();
    let c = volume(1);
    d.create_cloned_volume(&c, &a).await.unwrap();
    d.create_cloned_volume(&c, &a).await.unwrap();
    assert_eq!(ceph.with(|p| p.get(&b.name).map(|i| i.size)), Some(3 << 30));
    assert_eq!(ceph.with(|p| p.names()).len(), 3);
}

#[tokio::test]
async fn hidden_volumes_left_behind_are_collected_at_start_up() {
    let (ceph, runner, d) = cluster(options());
    let a = volume(1);
    let b = volume(1);
    let c = volume(1);
    d.create_volume(&a).await.unwrap();
    d.create_cloned_volume(&b, &a).await.unwrap();
    d.create_cloned_volume(&c, &b).await.unwrap();
    d.delete_volume(&a).await.unwrap();
    d.delete_volume(&b).await.unwrap();
    // The cluster failed right after the last clone was removed: nothing
    // released the hidden parents.
    ceph.with(|p| {
        let id = p
            .images
            .iter()
            .find(|(_, i)| i.name == c.name)
            .map(|(id, _)| *id);
        p.images.remove(&id.unwrap());
    });
    assert_eq!(ceph.with(|p| p.names()).len(), 2);
    runner.on(
        &super::ceph("fsid"),
        clinker_exec::Output::ok(include_str!("../fixtures/ceph-fsid.json")),
    );
    d.check_for_setup_error().await.unwrap();
    assert!(
        ceph.with(|p| p.names()).is_empty(),
        "{:?}",
        ceph.with(|p| p.names())
    );
}
