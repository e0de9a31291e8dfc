//! The services wired together in one process (scheduler + volume backends
//! on SQLite and the in-process bus), driven the way the API drives them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use clinker_db::testsuite::{Engine, TestDatabase, new_volume};
use clinker_db::{DbHandle, NewSnapshot};
use clinker_rpc::RequestContext;
use clinker_rpc::local::LocalTransport;
use clinker_rpc::scheduler::ScheduleExtendVolumeArgs;
use clinker_rpc::volume::{CreateSnapshotArgs, DeleteVolumeArgs, VolumeRpcClient};
use clinker_testkit::cluster::{PROJECT, SETTLE, ServiceCluster};
use clinker_testkit::config::FILE_BACKEND;
use clinker_testkit::{poll, quota};
use clinker_types::model::UserMessage;
use clinker_types::request_spec::TypeSpec;
use clinker_types::{SnapshotId, SnapshotStatus, VolumeId, VolumeStatus};

/// What the API does for a create: the row, then the placement cast (to
/// the source's backend when there is a source).
async fn create(
    c: &ServiceCluster,
    size: i64,
    extra_specs: &[(&str, &str)],
    source: Option<(Option<SnapshotId>, Option<VolumeId>)>,
) -> VolumeId {
    let type_id = c.default_type().await;
    let mut new = new_volume(PROJECT, size, type_id);
    (new.snapshot_id, new.source_volid) = source.unwrap_or((None, None));
    let volume = c.db.create_volume(new).await.unwrap();
    let pin = match (volume.snapshot_id, volume.source_volid) {
        (Some(s), _) => c.db.get_snapshot(s).await.unwrap().host,
        (_, Some(v)) => c.db.get_volume(v).await.unwrap().host,
        _ => None,
    };
    let volume_type = TypeSpec {
        id: Some(type_id),
        name: Some("__DEFAULT__".into()),
        extra_specs: extra_specs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    c.schedule_create(&volume, volume_type, pin).await;
    volume.id
}

/// The user messages of the project about `volume`.
async fn messages_about(c: &ServiceCluster, volume: VolumeId) -> Vec<UserMessage> {
    let all =
        c.db.list_messages(Some(PROJECT), &Default::default())
            .await
            .unwrap();
    let id = volume.to_string();
    all.into_iter()
        .filter(|m| m.resource_uuid.as_deref() == Some(id.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_lifecycle_on_the_file_backend() {
    let c = ServiceCluster::start(FILE_BACKEND).await;
    let mut notifications = c.local.subscribe_notifications();
    let services = c.db.list_services(None, None).await.unwrap();
    let hosts: Vec<_> = services
        .iter()
        .map(|s| {
            (
                s.host.as_str(),
                s.binary.as_str(),
                s.backend_state.as_deref(),
            )
        })
        .collect();
    assert!(hosts.contains(&("node1", "cinder-scheduler", None)));
    assert!(hosts.contains(&("node1@file", "cinder-volume", Some("up"))));

    let id = create(&c, 1, &[], None).await;
    let v = c.wait_available(id).await;
    assert_eq!(v.host.as_deref(), Some("node1@file#file"));
    assert!(c.file("file", &v.name()).exists());

    // Snapshot through the volume RPC, as the API casts it.
    let snap =
        c.db.create_snapshot(NewSnapshot {
            id: SnapshotId::new_random(),
            volume_id: id,
            user_id: "u".into(),
            project_id: "p1".into(),
            display_name: None,
            display_description: None,
            metadata: BTreeMap::new(),
            allow_in_use: false,
            use_quota: true,
        })
        .await
        .unwrap();
    c.volume_rpc()
        .create_snapshot(
            &RequestContext::internal("t"),
            "node1@file#file",
            &CreateSnapshotArgs {
                snapshot_id: snap.id,
                volume_id: id,
            },
        )
        .await
        .unwrap();
    poll::until_true(SETTLE, "the snapshot never became available", async || {
        c.db.get_snapshot(snap.id).await.unwrap().status == SnapshotStatus::Available
    })
    .await;
    assert!(c.file("file", &format!("snapshot-{}", snap.id)).exists());

    // From the snapshot, and a clone of the volume: pinned to its backend.
    let from_snap = create(&c, 2, &[], Some((Some(snap.id), None))).await;
    let clone = create(&c, 1, &[], Some((None, Some(id)))).await;
    for v in [from_snap, clone] {
        let done = c.wait_available(v).await;
        assert_eq!(
            std::fs::metadata(c.file("file", &done.name()))
                .unwrap()
                .len(),
            u64::try_from(done.size).unwrap() << 30
        );
    }

    // Extend through the scheduler.
    c.db.begin_volume_extend(id, 3, false).await.unwrap();
    c.scheduler()
        .extend_volume(
            &RequestContext::internal("t"),
            &ScheduleExtendVolumeArgs {
                volume_id: id,
                new_size: 3,
            },
        )
        .await
        .unwrap();
    let grown = c.wait_available(id).await;
    assert_eq!(grown.size, 3);
    assert_eq!(
        std::fs::metadata(c.file("file", &grown.name()))
            .unwrap()
            .len(),
        3 << 30
    );

    // Cascade delete takes the snapshot along.
    let volume = match c
        .db
        .begin_volume_delete(
            id,
            clinker_db::DeleteOptions {
                cascade: true,
                force: false,
            },
        )
        .await
        .unwrap()
    {
        clinker_db::DeleteStart::Started(v) => v,
        other => panic!("{other:?}"),
    };
    c.cast_delete(&volume, true).await;
    c.wait_volume(id, |s| s.is_none()).await;
    assert!(!c.file("file", &format!("snapshot-{}", snap.id)).exists());
    c.delete(from_snap).await;
    c.delete(clone).await;
    let usage = clinker_db::QuotaRepository::quota_usages(c.db.as_ref(), "p1")
        .await
        .unwrap();
    assert_eq!(usage.get("volumes"), Some(&0));
    assert_eq!(usage.get("gigabytes"), Some(&0));
    let leftovers: Vec<_> = std::fs::read_dir(c.dir.path().join("volumes/file"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Usage notifications went out for every step, from the backend.
    let mut events = Vec::new();
    while let Ok(n) = notifications.try_recv() {
        assert_eq!(n.publisher_id, "volume.node1@file");
        if n.event_type == "volume.create.end" {
            // The finished volume as stored, without reading it back.
            assert_eq!(n.payload["status"], "available", "{:?}", n.payload);
            assert!(
                n.payload["launched_at"]
                    .as_str()
                    .is_some_and(|t| t.len() > 10),
                "{:?}",
                n.payload
            );
            assert_eq!(n.payload["host"], "node1@file#file", "{:?}", n.payload);
        }
        events.push(n.event_type);
    }
    for wanted in [
        "volume.create.start",
        "volume.create.end",
        "snapshot.create.start",
        "snapshot.create.end",
        "volume.resize.start",
        "volume.resize.end",
        "snapshot.delete.end",
        "volume.delete.start",
        "volume.delete.end",
    ] {
        assert!(
            events.iter().any(|e| e == wanted),
            "no {wanted} in {events:?}"
        );
    }
    assert_eq!(
        events.iter().filter(|e| *e == "volume.create.end").count(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_creates_are_rescheduled_then_fail_with_a_message() {
    let c = ServiceCluster::start(
        "enabled_backends = bad,good\n[bad]\nvolume_driver = fake\nfake_fail_create = true\nfake_capacity_gb = 1000\n\
         [good]\nvolume_driver = fake\nfake_capacity_gb = 10\n",
    )
    .await;
    // "bad" has more room, so the weigher tries it first; the create fails
    // there and is rescheduled to "good".
    let id = create(&c, 1, &[], None).await;
    let v = c.wait_available(id).await;
    assert_eq!(v.host.as_deref(), Some("node1@good#good"));
    let allocations = clinker_db::CapacityRepository::pool_allocations(c.db.as_ref())
        .await
        .unwrap();
    assert_eq!(
        allocations.get("node1@bad#bad").copied().unwrap_or(0),
        0,
        "the failed attempt gave its claim back"
    );

    // Only the failing backend matches: error after the retries, with a message.
    let id = create(&c, 1, &[("volume_backend_name", "bad")], None).await;
    c.wait_volume(id, |s| s == Some(VolumeStatus::Error)).await;
    assert!(!messages_about(&c, id).await.is_empty());

    // Nothing matches at all.
    let id = create(&c, 1, &[("volume_backend_name", "nowhere")], None).await;
    c.wait_volume(id, |s| s == Some(VolumeStatus::Error)).await;
    let messages = messages_about(&c, id).await;
    let m = &messages[0];
    assert_eq!(
        m.user_message,
        "schedule allocate volume:Could not find any available weighted backend."
    );
    assert_eq!(m.event_id, "VOLUME_VOLUME_001_003");

    // A pool that is full fails the placement too (10 GiB thin, ratio 20).
    let id = create(&c, 201, &[("volume_backend_name", "good")], None).await;
    c.wait_volume(id, |s| s == Some(VolumeStatus::Error)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_deletes_fails_creates_and_removes_orphans() {
    let mut c = ServiceCluster::start(FILE_BACKEND).await;
    let keep = create(&c, 1, &[], None).await;
    let doomed = create(&c, 1, &[], None).await;
    let kept = c.wait_available(keep).await;
    let doomed_volume = c.wait_available(doomed).await;
    c.stop_services().await;

    // While the services are down: a delete is journaled (its cast is lost),
    // a create is placed but never run, and an object without a row appears.
    c.db.begin_volume_delete(doomed, Default::default())
        .await
        .unwrap();
    let type_id = c.default_type().await;
    // A row placed on `pool` whose create never ran.
    let placed_row = async |pool: &str| {
        let v = c.db.create_volume(new_volume(PROJECT, 1, type_id)).await;
        let v = v.unwrap();
        let claimed = c.db.claim_volume_placement(v.id, pool, 1, 1_000_000);
        claimed.await.unwrap();
        v
    };
    let stuck = placed_row("node1@file#file").await;
    let orphan = format!("volume-{}", VolumeId::new_random());
    std::fs::write(c.file("file", &orphan), b"").unwrap();
    // An object whose row lives on another backend (a pool shared by
    // several volume hosts) is not this service's to remove.
    let elsewhere = placed_row("node2@file#file").await;
    std::fs::write(c.file("file", &elsewhere.name()), b"").unwrap();

    c.start_services().await;
    assert!(
        c.db.get_volume(doomed).await.is_err(),
        "the interrupted delete was resumed"
    );
    assert!(!c.file("file", &doomed_volume.name()).exists());
    assert_eq!(
        c.db.get_volume(stuck.id).await.unwrap().status,
        VolumeStatus::Error,
        "the interrupted create failed"
    );
    assert!(
        !c.file("file", &orphan).exists(),
        "the object without a row was removed"
    );
    assert!(c.file("file", &kept.name()).exists(), "owned objects stay");
    assert!(
        c.file("file", &elsewhere.name()).exists(),
        "objects with a row on another backend stay"
    );
    assert!(
        clinker_db::JournalRepository::journal_for_backend(c.db.as_ref(), "node1@file")
            .await
            .unwrap()
            .is_empty()
    );
    quota::assert_recount_matches(c.db.as_ref(), PROJECT, &["volumes"]).await;
}

/// Records the create casts a backend's queue receives.
struct Recorder(tokio::sync::mpsc::UnboundedSender<clinker_rpc::RpcMessage>);

#[async_trait::async_trait]
impl clinker_rpc::RpcHandler for Recorder {
    async fn handle(
        &self,
        message: clinker_rpc::RpcMessage,
    ) -> Result<serde_json::Value, clinker_types::RemoteError> {
        let _ = self.0.send(message);
        Ok(serde_json::Value::Null)
    }
}

/// A backend that is up by its heartbeat but whose queue has no consumer
/// right now (re-declaring after a broker restart) is waited for: the create
/// reaches it once it consumes again, and is not failed as "No valid
/// backend was found".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_waits_for_a_backend_whose_queue_is_briefly_unconsumed() {
    let mut c = ServiceCluster::start(FILE_BACKEND).await;
    let warm = create(&c, 1, &[], None).await;
    c.wait_available(warm).await;
    c.stop_volume_services().await;

    let id = create(&c, 1, &[], None).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        c.db.get_volume(id).await.unwrap().status,
        VolumeStatus::Creating,
        "an unconsumed queue is not a failed placement"
    );
    // The backend's queue is consumed again (without a restart, so no
    // init_host settles the row): the waiting create arrives there.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _consumer = c
        .transport
        .consume(
            vec![clinker_rpc::Subscription::Queue(
                clinker_rpc::Target::server("cinder-volume", "node1@file"),
            )],
            Arc::new(Recorder(tx)),
        )
        .await
        .unwrap();
    let message = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("the create reached the backend")
        .unwrap();
    assert_eq!(message.method, "create_volume");
    assert_eq!(message.args["volume_id"], id.to_string());
    assert_eq!(
        c.db.get_volume(id).await.unwrap().status,
        VolumeStatus::Creating
    );
    assert!(messages_about(&c, id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_whose_driver_fails_is_down_but_visible() {
    let c = ServiceCluster::start("enabled_backends = broken\n[broken]\nvolume_driver = file\nfile_volumes_dir = /proc/clinker/nowhere\n").await;
    let services =
        c.db.list_services(Some("node1@broken"), None)
            .await
            .unwrap();
    assert_eq!(services.len(), 1);
    assert_eq!(services[0].backend_state.as_deref(), Some("down"));
    assert!(
        services[0]
            .backend_state_reason
            .as_deref()
            .unwrap_or_default()
            .contains("do_setup")
    );
    // Nothing can be placed there.
    let id = create(&c, 1, &[], None).await;
    c.wait_volume(id, |s| s == Some(VolumeStatus::Error)).await;
}

/// Rolling upgrade: a client caps the versions it sends at the oldest
/// registered volume service, so an old service never gets a message it
/// cannot read.
#[tokio::test]
async fn volume_rpc_versions_are_pinned_to_the_oldest_service() {
    let test_db = TestDatabase::open(Engine::Sqlite).await.unwrap();
    let db: DbHandle = Arc::new(test_db.db.clone());
    for (host, version) in [("new@file", "3.20"), ("old@file", "3.8")] {
        db.register_service(&clinker_db::ServiceRegistration {
            host: host.into(),
            binary: "cinder-volume".into(),
            topic: "cinder-volume".into(),
            availability_zone: "nova".into(),
            rpc_current_version: version.into(),
        })
        .await
        .unwrap();
    }
    let client = VolumeRpcClient::new(Arc::new(LocalTransport::new()), Duration::from_secs(1));
    assert!(client.can_send_version(clinker_rpc::Version::new(3, 9)));
    clinker_service::pin_volume_rpc_versions(&db, &client).await;
    assert_eq!(client.version_cap(), clinker_rpc::Version::new(3, 8));
    assert!(client.can_send_version(clinker_rpc::Version::new(3, 0)));
    assert!(
        !client.can_send_version(clinker_rpc::Version::new(3, 9)),
        "3.9 messages would break the 3.8 service"
    );
    // A message above the cap is refused before it reaches the bus.
    let err = client
        .delete_volume(
            &RequestContext::internal("t"),
            "old@file",
            &DeleteVolumeArgs {
                volume_id: VolumeId::new_random(),
                cascade: false,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, clinker_rpc::RpcError::Unroutable { .. }),
        "3.0 messages still go out: {err:?}"
    );
}
