//! The RBD driver against a scripted runner: exact command lines for each
//! operation (answered with real captured outputs), error classification at
//! the trait boundary, and multi-step behaviours on an in-memory pool.

#![allow(clippy::unwrap_used)]

mod images;
mod model;
mod scenarios;

use std::sync::Arc;
use std::time::Duration;

use clinker_config::{BackendConfig, DriverConfig, RbdDriverOptions};
use clinker_exec::{Command, CommandRunner, ExecError, FakeRunner, Output};
use clinker_types::{SnapshotId, VolumeId};
use serde_json::json;

use super::RbdDriver;
use crate::{DriverError, SnapshotSpec, VolumeDriver, VolumeSpec};

pub(crate) const CONN: &str = "--id cinder --cluster ceph --conf /etc/ceph/ceph.conf \
     --client_mount_timeout 5 --rados_mon_op_timeout 5 --rados_osd_op_timeout 5";

pub(crate) fn rbd(rest: &str) -> String {
    format!("rbd {CONN} {rest}")
}

pub(crate) fn ceph(rest: &str) -> String {
    format!("ceph {CONN} {rest}")
}

pub(crate) fn options() -> RbdDriverOptions {
    RbdDriverOptions {
        pool: "volumes".into(),
        user: Some("cinder".into()),
        ceph_conf: Some("/etc/ceph/ceph.conf".into()),
        rados_connect_timeout: Some(5),
        rados_connection_retries: 0,
        rados_connection_interval: 0,
        ..RbdDriverOptions::default()
    }
}

pub(crate) fn driver_with(runner: Arc<dyn CommandRunner>, options: RbdDriverOptions) -> RbdDriver {
    let target = clinker_testkit::config::no_target(&std::env::temp_dir());
    let driver = DriverConfig::Rbd(options.clone());
    let backend = BackendConfig {
        reserved_percentage: 5,
        ..clinker_testkit::config::backend("ceph", driver, target)
    };
    RbdDriver::new(&backend, options, runner)
}

pub(crate) fn driver(fake: &FakeRunner) -> RbdDriver {
    driver_with(Arc::new(fake.clone()), options())
}

pub(crate) fn volume(size_gb: i64) -> VolumeSpec {
    VolumeSpec::new(VolumeId::new_random(), size_gb)
}

pub(crate) fn snapshot(of: &VolumeSpec) -> SnapshotSpec {
    SnapshotSpec::new(SnapshotId::new_random(), of.clone(), of.size_gb)
}

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../fixtures/", $name))
    };
}

const PLAIN_INFO: &str = fixture!("info-plain.json");

#[tokio::test]
async fn create_volume_passes_size_object_size_and_connection_options() {
    let fake = FakeRunner::new();
    let d = driver(&fake);
    let v = volume(2);
    d.create_volume(&v).await.unwrap();
    assert_eq!(
        fake.calls(),
        [rbd(&format!(
            "create --no-progress --size 2048M --object-size 4M volumes/{}",
            v.name
        ))]
    );
    assert_eq!(
        fake.commands()[0].timeout,
        Some(Duration::from_secs(120)),
        "every command has a deadline"
    );
}

#[tokio::test]
async fn connection_options_are_only_those_configured() {
    let fake = FakeRunner::new();
    let configured = RbdDriverOptions {
        pool: "volumes".into(),
        store_chunk_size_mb: 8,
        ..RbdDriverOptions::default()
    };
    let d = driver_with(Arc::new(fake.clone()), configured);
    let v = volume(1);
    d.create_volume(&v).await.unwrap();
    assert_eq!(
        fake.calls(),
        [format!(
            "rbd --cluster ceph create --no-progress --size 1024M --object-size 8M volumes/{}",
            v.name
        )]
    );
    let fake = FakeRunner::new();
    let configured = RbdDriverOptions {
        keyring_conf: Some("/srv/k".into()),
        cluster_name: "prod".into(),
        user: Some("c".into()),
        ..RbdDriverOptions::default()
    };
    let d = driver_with(Arc::new(fake.clone()), configured);
    d.list_volume_names().await.unwrap_err();
    assert_eq!(
        fake.calls(),
        ["rbd --id c --cluster prod --keyring /srv/k ls --format json rbd"]
    );
}

#[tokio::test]
async fn create_volume_again_is_idempotent() {
    let fake = FakeRunner::new();
    fake.on(
        &rbd("create"),
        Output::failed(17, fixture!("stderr-create-exists.txt")),
    );
    fake.on(&rbd("info"), Output::ok(PLAIN_INFO));
    let d = driver(&fake);
    let v = volume(1);
    d.create_volume(&v).await.unwrap();
    assert_eq!(fake.calls().len(), 2, "{:?}", fake.calls());
    assert_eq!(
        fake.calls()[1],
        rbd(&format!("info --format json volumes/{}", v.name))
    );
}

#[tokio::test]
async fn snapshots_are_created_protected_and_unprotected_before_removal() {
    let fake = FakeRunner::new();
    let d = driver(&fake);
    let v = volume(1);
    let s = snapshot(&v);
    d.create_snapshot(&s).await.unwrap();
    d.delete_snapshot(&s).await.unwrap();
    let spec = format!("volumes/{}@{}", v.name, s.name);
    assert_eq!(
        fake.calls(),
        [
            rbd(&format!("snap create --no-progress {spec}")),
            rbd(&format!("snap protect {spec}")),
            rbd(&format!("snap unprotect {spec}")),
            rbd(&format!("snap rm --no-progress {spec}")),
        ]
    );
}

#[tokio::test]
async fn snapshot_create_and_delete_tolerate_redelivery() {
    let fake = FakeRunner::new();
    fake.on(
        &rbd("snap create"),
        Output::failed(17, "rbd: failed to create snapshot: (17) File exists"),
    );
    fake.on(
        &rbd("snap protect"),
        Output::failed(16, fixture!("stderr-protect-protected.txt")),
    );
    let d = driver(&fake);
    let v = volume(1);
    let s = snapshot(&v);
    d.create_snapshot(&s).await.unwrap();

    let fake = FakeRunner::new();
    fake.on(
        &rbd("snap unprotect"),
        Output::failed(22, fixture!("stderr-unprotect-unprotected.txt")),
    );
    fake.on(
        &rbd("snap rm"),
        Output::failed(2, fixture!("stderr-snap-rm-missing.txt")),
    );
    driver(&fake).delete_snapshot(&s).await.unwrap();

    let fake = FakeRunner::new();
    fake.on(
        &rbd("snap unprotect"),
        Output::failed(2, fixture!("stderr-unprotect-missing.txt")),
    );
    driver(&fake).delete_snapshot(&s).await.unwrap();
    assert_eq!(
        fake.calls().len(),
        1,
        "a missing snapshot is deleted already"
    );
}

#[tokio::test]
async fn snapshot_of_a_missing_volume_is_not_found() {
    let fake = FakeRunner::new();
    fake.on(
        &rbd("snap create"),
        Output::failed(2, fixture!("stderr-info-missing.txt")),
    );
    let v = volume(1);
    let err = driver(&fake)
        .create_snapshot(&snapshot(&v))
        .await
        .unwrap_err();
    assert!(matches!(err, DriverError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn snapshot_with_clones_that_cannot_be_flattened_is_busy() {
    let fake = FakeRunner::new();
    fake.on(
        &rbd("snap unprotect"),
        Output::failed(16, fixture!("stderr-unprotect-children.txt")),
    );
    fake.on(&rbd("children"), Output::ok(fixture!("children.json")));
    let d = driver(&fake);
    let v = volume(1);
    let s = snapshot(&v);
    let err = d.delete_snapshot(&s).await.unwrap_err();
    assert!(matches!(err, DriverError::Busy(_)), "{err:?}");
    let spec = format!("volumes/{}@{}", v.name, s.name);
    assert_eq!(
        fake.calls(),
        [
            rbd(&format!("snap unprotect {spec}")),
            rbd(&format!("children --all --format json {spec}")),
            rbd("flatten --no-progress volumes/volume-22222222-2222-4222-8222-222222222222"),
            rbd(&format!("snap unprotect {spec}")),
        ]
    );
    // Flattening gets a deadline proportional to the data it copies.
    assert_eq!(
        fake.commands()[2].timeout,
        Some(Duration::from_secs(600 + 20))
    );
}

#[tokio::test]
async fn volume_from_snapshot_is_a_clone_grown_to_the_requested_size() {
    let fake = FakeRunner::new();
    fake.on(&rbd("info"), Output::ok(PLAIN_INFO));
    let d = driver(&fake);
    let source = volume(1);
    let s = snapshot(&source);
    let v = volume(3);
    d.create_volume_from_snapshot(&v, &s).await.unwrap();
    assert_eq!(
        fake.calls(),
        [
            rbd(&format!("info --format json volumes/{}", source.name)),
            rbd(&format!(
                "clone --object-size 4M volumes/{}@{} volumes/{}",
                source.name, s.name, v.name
            )),
            rbd(&format!(
                "resize --no-progress --size 3072M volumes/{}",
                v.name
            )),
        ]
    );
}

#[tokio::test]
async fn volume_from_snapshot_is_flattened_when_configured_and_discarded_on_failure() {
    let fake = FakeRunner::new();
    fake.on(&rbd("info"), Output::ok(PLAIN_INFO));
    fake.on(
        &rbd("flatten"),
        Output::failed(28, "rbd: flatten error: (28) No space left on device"),
    );
    let configured = RbdDriverOptions {
        flatten_volume_from_snapshot: true,
        ..options()
    };
    let d = driver_with(Arc::new(fake.clone()), configured);
    let source = volume(1);
    let v = volume(1);
    let err = d
        .create_volume_from_snapshot(&v, &snapshot(&source))
        .await
        .unwrap_err();
    assert!(matches!(err, DriverError::NoSpace(_)), "{err:?}");
    let calls = fake.calls();
    assert_eq!(
        calls[2],
        rbd(&format!("flatten --no-progress volumes/{}", v.name))
    );
    assert_eq!(
        calls[3],
        rbd(&format!("rm --no-progress volumes/{}", v.name)),
        "a failed create leaves nothing behind"
    );
}

#[tokio::test]
async fn clone_of_a_volume_goes_through_a_protected_temporary_snapshot() {
    let fake = FakeRunner::new();
    fake.on(&rbd("info"), Output::ok(PLAIN_INFO));
    let d = driver(&fake);
    let source = volume(1);
    let v = volume(1);
    d.create_cloned_volume(&v, &source).await.unwrap();
    let snap = format!("volumes/{}@{}.clone_snap", source.name, v.name);
    assert_eq!(
        fake.calls(),
        [
            rbd(&format!("info --format json volumes/{}", source.name)),
            rbd(&format!("snap create --no-progress {snap}")),
            rbd(&format!("snap protect {snap}")),
            rbd(&format!("clone --object-size 4M {snap} volumes/{}", v.name)),
        ]
    );
}

#[tokio::test]
async fn clone_depth_zero_means_a_full_copy() {
    let fake = FakeRunner::new();
    let configured = RbdDriverOptions {
        max_clone_depth: 0,
        ..options()
    };
    let d = driver_with(Arc::new(fake.clone()), configured);
    let source = volume(2);
    let v = volume(4);
    d.create_cloned_volume(&v, &source).await.unwrap();
    assert_eq!(
        fake.calls(),
        [
            rbd(&format!(
                "cp --no-progress volumes/{} volumes/{}",
                source.name, v.name
            )),
            rbd(&format!(
                "resize --no-progress --size 4096M volumes/{}",
                v.name
            )),
        ]
    );
    assert_eq!(
        fake.commands()[0].timeout,
        Some(Duration::from_secs(600 + 2 * 20))
    );
}

#[tokio::test]
async fn deleting_a_plain_volume_and_a_missing_one() {
    let fake = FakeRunner::new();
    fake.on(&rbd("info"), Output::ok(PLAIN_INFO));
    fake.on(&rbd("snap ls"), Output::ok("[]"));
    let d = driver(&fake);
    let v = volume(1);
    d.delete_volume(&v).await.unwrap();
    assert_eq!(
        fake.calls(),
        [
            rbd(&format!("info --format json volumes/{}", v.name)),
            rbd(&format!("snap ls --format json volumes/{}", v.name)),
            rbd(&format!("rm --no-progress volumes/{}", v.name)),
        ]
    );

    let fake = FakeRunner::new();
    fake.on(
        &rbd("info"),
        Output::failed(2, fixture!("stderr-info-missing.txt")),
    );
    driver(&fake).delete_volume(&v).await.unwrap();
    assert_eq!(fake.calls().len(), 1);
}

#[tokio::test]
async fn deleting_an_open_volume_is_busy() {
    let fake = FakeRunner::new();
    fake.on(&rbd("info"), Output::ok(PLAIN_INFO));
    fake.on(&rbd("snap ls"), Output::ok("[]"));
    fake.on(
        &rbd("rm"),
        Output::failed(16, fixture!("stderr-rm-watchers.txt")),
    );
    let err = driver(&fake).delete_volume(&volume(1)).await.unwrap_err();
    match err {
        DriverError::Busy(m) => assert!(m.contains("still open by a client"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn extend_resizes_and_refuses_to_shrink() {
    let fake = FakeRunner::new();
    let d = driver(&fake);
    let v = volume(1);
    d.extend_volume(&v, 5).await.unwrap();
    assert_eq!(
        fake.calls(),
        [rbd(&format!(
            "resize --no-progress --size 5120M volumes/{}",
            v.name
        ))]
    );
    let fake = FakeRunner::new();
    fake.on(
        &rbd("resize"),
        Output::failed(22, fixture!("stderr-resize-shrink.txt")),
    );
    let err = driver(&fake).extend_volume(&v, 1).await.unwrap_err();
    assert!(matches!(err, DriverError::InvalidInput(_)), "{err:?}");
    let fake = FakeRunner::new();
    fake.on(
        &rbd("resize"),
        Output::failed(22, fixture!("stderr-resize-equal.txt")),
    );
    driver(&fake).extend_volume(&v, 1).await.unwrap();
    let fake = FakeRunner::new();
    fake.on(
        &rbd("resize"),
        Output::failed(2, fixture!("stderr-info-missing.txt")),
    );
    let err = driver(&fake).extend_volume(&v, 2).await.unwrap_err();
    assert!(matches!(err, DriverError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn connection_info_is_cinders_rbd_shape() {
    let fake = FakeRunner::new();
    fake.on(
        &ceph("mon dump"),
        Output::ok(fixture!("ceph-mon-dump.json")),
    );
    let d = driver(&fake);
    let v = volume(1);
    let info = d
        .initialize_connection(&v, &serde_json::Map::new())
        .await
        .unwrap();
    assert_eq!(
        info.to_nested_json(),
        json!({
            "driver_volume_type": "rbd",
            "data": {
                "name": format!("volumes/{}", v.name),
                "hosts": ["127.0.0.1"],
                "ports": ["6789"],
                "cluster_name": "ceph",
                "auth_enabled": true,
                "auth_username": "cinder",
                "secret_type": "ceph",
                "secret_uuid": "a917357d-39bd-4232-bca2-b6192def3c59",
                "volume_id": v.id.to_string(),
                "discard": true,
            }
        })
    );
    assert_eq!(fake.calls(), [ceph("mon dump --format json")]);

    let fake = FakeRunner::new();
    fake.on(
        "ceph --cluster ceph",
        Output::ok(fixture!("ceph-mon-dump.json")),
    );
    let configured = RbdDriverOptions {
        user: None,
        secret_uuid: Some("457eb676-33da-42ec-9a8c-9293d545c337".into()),
        ..options()
    };
    let d = driver_with(Arc::new(fake.clone()), configured);
    let info = d
        .initialize_connection(&v, &serde_json::Map::new())
        .await
        .unwrap();
    assert_eq!(info.data["auth_enabled"], false);
    assert_eq!(info.data["auth_username"], serde_json::Value::Null);
    assert_eq!(
        info.data["secret_uuid"],
        "457eb676-33da-42ec-9a8c-9293d545c337"
    );
}

#[tokio::test]
async fn capacity_report_from_ceph_df_and_the_pool_quota() {
    let fake = FakeRunner::new();
    fake.on(&ceph("df"), Output::ok(fixture!("ceph-df.json")));
    fake.on(
        &ceph("osd pool get-quota"),
        Output::ok(fixture!("ceph-get-quota.json")),
    );
    fake.on(&ceph("fsid"), Output::ok(fixture!("ceph-fsid.json")));
    let d = driver(&fake);
    let stats = d.get_volume_stats().await.unwrap();
    assert_eq!(
        serde_json::Value::Object(stats),
        json!({
            "volume_backend_name": "ceph",
            "vendor_name": "Open Source",
            "driver_version": env!("CARGO_PKG_VERSION"),
            "storage_protocol": "ceph",
            "replication_enabled": false,
            "online_extend_support": true,
            "pools": [{
                "pool_name": "ceph",
                "total_capacity_gb": 3.8,
                "free_capacity_gb": 3.8,
                "reserved_percentage": 5,
                "max_over_subscription_ratio": 20.0,
                "thin_provisioning_support": true,
                "thick_provisioning_support": false,
                "multiattach": true,
                "QoS_support": false,
                "location_info":
                    "ceph:/etc/ceph/ceph.conf:a917357d-39bd-4232-bca2-b6192def3c59:cinder:volumes",
                "backend_state": "up",
            }],
        })
    );
    assert_eq!(
        fake.calls(),
        [
            ceph("df --format json"),
            ceph("osd pool get-quota volumes --format json"),
            ceph("fsid --format json"),
        ]
    );
    // The fsid is asked once.
    d.get_volume_stats().await.unwrap();
    assert_eq!(fake.calls().len(), 5);
}

#[tokio::test]
async fn a_shared_pool_reports_its_provisioned_capacity() {
    let fake = FakeRunner::new();
    fake.on(&ceph("df"), Output::ok(fixture!("ceph-df.json")));
    fake.on(
        &ceph("osd pool get-quota"),
        Output::ok(fixture!("ceph-get-quota.json")),
    );
    fake.on(&ceph("fsid"), Output::ok(fixture!("ceph-fsid.json")));
    fake.on(&rbd("ls --long"), Output::ok(fixture!("ls-long.json")));
    let configured = RbdDriverOptions {
        exclusive_cinder_pool: false,
        ..options()
    };
    let stats = driver_with(Arc::new(fake.clone()), configured)
        .get_volume_stats()
        .await
        .unwrap();
    assert_eq!(stats["pools"][0]["provisioned_capacity_gb"], 3);
    assert!(
        fake.calls()
            .contains(&rbd("ls --long --format json volumes"))
    );
}

#[tokio::test]
async fn setup_check_names_what_is_wrong() {
    for (code, stderr, expected) in [
        (
            1,
            fixture!("stderr-ls-permission-denied.txt"),
            "permission denied: client.cinder may not use pool volumes",
        ),
        (
            2,
            fixture!("stderr-pool-missing.txt"),
            "pool volumes does not exist in ceph cluster ceph",
        ),
        (
            110,
            fixture!("stderr-unreachable.txt"),
            "cannot reach ceph cluster ceph as client.cinder (conf /etc/ceph/ceph.conf)",
        ),
        (
            2,
            fixture!("stderr-no-keyring.txt"),
            "no keyring found for the user",
        ),
    ] {
        let fake = FakeRunner::new();
        fake.on(&rbd("ls"), Output::failed(code, stderr));
        let err = driver(&fake).check_for_setup_error().await.unwrap_err();
        match err {
            DriverError::Unavailable(reason) => {
                assert!(reason.contains(expected), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(fake.calls(), [rbd("ls --format json volumes")]);
        assert_eq!(fake.commands()[0].timeout, Some(Duration::from_secs(15)));
    }

    let fake = FakeRunner::new();
    fake.fail_spawn_once("rbd");
    let err = driver(&fake).check_for_setup_error().await.unwrap_err();
    assert!(
        matches!(&err, DriverError::Unavailable(m) if m.contains("install ceph-common")),
        "{err:?}"
    );

    let fake = FakeRunner::new();
    fake.on(&rbd("ls"), Output::ok("[]"));
    fake.on(&ceph("fsid"), Output::ok(fixture!("ceph-fsid.json")));
    driver(&fake).check_for_setup_error().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_cluster_is_retried_like_cinder() {
    let fake = FakeRunner::new();
    fake.on_times(
        &rbd("ls"),
        2,
        Output::failed(110, fixture!("stderr-unreachable.txt")),
    );
    fake.on(&rbd("ls"), Output::ok(fixture!("ls.json")));
    let configured = RbdDriverOptions {
        rados_connection_retries: 3,
        ..options()
    };
    let d = driver_with(Arc::new(fake.clone()), configured);
    let names = d.list_volume_names().await.unwrap().unwrap();
    assert_eq!(names.len(), 3);
    assert_eq!(fake.calls().len(), 3);

    // Other failures are not retried: the command may have done something.
    let fake = FakeRunner::new();
    fake.on(
        &rbd("rm"),
        Output::failed(16, fixture!("stderr-rm-watchers.txt")),
    );
    fake.on(&rbd("info"), Output::ok(PLAIN_INFO));
    fake.on(&rbd("snap ls"), Output::ok("[]"));
    let retrying = RbdDriverOptions {
        rados_connection_retries: 3,
        ..options()
    };
    let d = driver_with(Arc::new(fake.clone()), retrying);
    d.delete_volume(&volume(1)).await.unwrap_err();
    assert_eq!(fake.calls().len(), 3);
}

#[tokio::test]
async fn a_write_that_times_out_on_a_full_pool_is_no_space() {
    let fake = FakeRunner::new();
    fake.on(
        &rbd("create"),
        Output::failed(110, fixture!("stderr-create-pool-full.txt")),
    );
    fake.on(
        &ceph("osd pool ls detail"),
        Output::ok(fixture!("ceph-pool-ls-detail.json")),
    );
    let configured = RbdDriverOptions {
        pool: "full".into(),
        ..options()
    };
    let d = driver_with(Arc::new(fake.clone()), configured);
    let v = volume(1);
    let err = d.create_volume(&v).await.unwrap_err();
    assert!(
        matches!(&err, DriverError::NoSpace(m) if m.contains("pool full is full")),
        "{err:?}"
    );
    assert_eq!(fake.calls()[1], ceph("osd pool ls detail --format json"));

    // The same timeout on a pool that is not full is the cluster's fault.
    let d = driver(&fake);
    let err = d.create_volume(&v).await.unwrap_err();
    assert!(matches!(err, DriverError::Unavailable(_)), "{err:?}");
}

/// A runner whose commands all hang past their deadline.
#[derive(Debug)]
struct HangingRunner;

#[async_trait::async_trait]
impl CommandRunner for HangingRunner {
    async fn run(&self, cmd: &Command) -> Result<Output, ExecError> {
        Err(ExecError::Timeout {
            command: cmd.command_line(),
            timeout: cmd.timeout.unwrap_or_default(),
        })
    }
}

#[tokio::test]
async fn a_hung_cluster_is_unavailable() {
    let d = driver_with(Arc::new(HangingRunner), options());
    let err = d.check_for_setup_error().await.unwrap_err();
    assert!(
        matches!(&err, DriverError::Unavailable(m) if m.contains("no answer from the cluster within 15s")),
        "{err:?}"
    );
    let err = d.get_volume_stats().await.unwrap_err();
    assert!(matches!(err, DriverError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn foreign_names_are_refused_before_any_command() {
    let fake = FakeRunner::new();
    let d = driver(&fake);
    let mut evil = volume(1);
    evil.name = "--help".into();
    assert!(matches!(
        d.create_volume(&evil).await,
        Err(DriverError::InvalidInput(_))
    ));
    assert!(matches!(
        d.delete_volume(&evil).await,
        Err(DriverError::InvalidInput(_))
    ));
    let mut s = snapshot(&volume(1));
    s.name = "x;y".into();
    assert!(matches!(
        d.create_snapshot(&s).await,
        Err(DriverError::InvalidInput(_))
    ));
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn list_volume_names_skips_hidden_and_foreign_images() {
    let fake = FakeRunner::new();
    let v = "volume-4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1";
    fake.on(
        &rbd("ls"),
        Output::ok(json!([v, format!("{v}.deleted"), "glance-image", "volume-x"]).to_string()),
    );
    let names = driver(&fake).list_volume_names().await.unwrap().unwrap();
    assert_eq!(names, [v]);
}

#[tokio::test]
async fn a_shared_pool_offers_no_names_to_reap() {
    let fake = FakeRunner::new();
    let configured = RbdDriverOptions {
        exclusive_cinder_pool: false,
        ..options()
    };
    let d = driver_with(Arc::new(fake.clone()), configured);
    assert_eq!(d.list_volume_names().await.unwrap(), None);
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn a_read_whose_tool_crashed_runs_again_and_a_write_does_not() {
    let fake = FakeRunner::new();
    fake.on_times(
        &rbd("ls"),
        1,
        Output::failed(-6, fixture!("stderr-du-abort.txt")),
    );
    fake.on(&rbd("ls"), Output::ok(fixture!("ls.json")));
    let d = driver(&fake);
    let names = d.list_volume_names().await.unwrap().unwrap();
    assert_eq!(names.len(), 3);
    assert_eq!(fake.calls().len(), 2);

    // Three crashes in a row are an error, not a loop.
    let fake = FakeRunner::new();
    fake.on(
        &rbd("ls"),
        Output::failed(-6, fixture!("stderr-du-abort.txt")),
    );
    let err = driver(&fake).list_volume_names().await.unwrap_err();
    assert!(
        matches!(&err, DriverError::Backend(m) if m.contains("crashed (signal 6)")),
        "{err:?}"
    );
    assert_eq!(fake.calls().len(), 3);

    // A create that crashed may have created the image: not run again.
    let fake = FakeRunner::new();
    fake.on(
        &rbd("create"),
        Output::failed(-6, fixture!("stderr-du-abort.txt")),
    );
    let err = driver(&fake).create_volume(&volume(1)).await.unwrap_err();
    assert!(matches!(err, DriverError::Backend(_)), "{err:?}");
    assert_eq!(
        fake.calls()
            .iter()
            .filter(|c| c.starts_with(&rbd("create")))
            .count(),
        1
    );
}
