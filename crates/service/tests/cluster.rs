//! The services wired together in one process (scheduler + volume backends
//! on SQLite and the in-process bus), driven the way the API drives them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use clinker_config::{Config, ConfigEnv, Ini};
use clinker_db::testsuite::{Engine, TestDatabase, new_volume};
use clinker_db::{DbHandle, NewSnapshot};
use clinker_exec::HostRunner;
use clinker_rpc::local::LocalTransport;
use clinker_rpc::scheduler::{
    ScheduleCreateVolumeArgs, ScheduleExtendVolumeArgs, SchedulerRpcClient,
};
use clinker_rpc::volume::{CreateSnapshotArgs, DeleteVolumeArgs, VolumeRpcClient};
use clinker_rpc::{RequestContext, TransportHandle};
use clinker_service::{RunningService, ServiceContext, start_scheduler, start_volume};
use clinker_types::request_spec::{FilterProperties, RequestSpec, TypeSpec};
use clinker_types::{SnapshotId, SnapshotStatus, SystemClock, VolumeId, VolumeStatus};

struct Cluster {
    local: Arc<LocalTransport>,
    db: DbHandle,
    transport: TransportHandle,
    services: Vec<RunningService>,
    dir: tempfile::TempDir,
    _test_db: TestDatabase,
    config: Arc<Config>,
}

fn config(extra: &str, dir: &std::path::Path) -> Config {
    let text = format!(
        "[DEFAULT]\nhost = node1\nstate_path = {}\nreport_interval = 1\nperiodic_interval = 1\nperiodic_fuzzy_delay = 0\n\
         scheduler_driver_init_wait_time = 5\n{extra}",
        dir.display()
    );
    let mut ini = Ini::default();
    ini.merge_text(&text, "test.conf").unwrap();
    Config::from_ini(
        &ini,
        &ConfigEnv {
            hostname: "node1".into(),
        },
    )
    .unwrap()
}

impl Cluster {
    async fn start(extra: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let test_db = TestDatabase::open(Engine::Sqlite).await.unwrap();
        let db: DbHandle = Arc::new(test_db.db.clone());
        let local = Arc::new(LocalTransport::new());
        let transport: TransportHandle = local.clone();
        let config = Arc::new(config(extra, dir.path()));
        let mut cluster = Cluster {
            local,
            db,
            transport,
            services: Vec::new(),
            dir,
            _test_db: test_db,
            config,
        };
        cluster.start_services().await;
        cluster
    }

    fn ctx(&self) -> ServiceContext {
        ServiceContext {
            db: self.db.clone(),
            transport: self.transport.clone(),
            config: self.config.clone(),
            clock: Arc::new(SystemClock),
        }
    }

    async fn start_services(&mut self) {
        let ctx = self.ctx();
        self.services
            .push(start_scheduler(&ctx, "node1").await.unwrap());
        for backend in &self.config.backends {
            self.services.push(
                start_volume(&ctx, backend, Arc::new(HostRunner::new()))
                    .await
                    .unwrap(),
            );
        }
    }

    async fn stop_services(&mut self) {
        for s in self.services.drain(..) {
            s.stop(Duration::from_secs(5)).await;
        }
    }

    fn scheduler(&self) -> SchedulerRpcClient {
        SchedulerRpcClient::new(self.transport.clone(), Duration::from_secs(5))
    }

    fn volume_rpc(&self) -> VolumeRpcClient {
        VolumeRpcClient::new(self.transport.clone(), Duration::from_secs(5))
    }

    /// What the API does for a create.
    async fn create(
        &self,
        size: i64,
        extra_specs: &[(&str, &str)],
        source: Option<(Option<SnapshotId>, Option<VolumeId>)>,
    ) -> VolumeId {
        let type_id = clinker_db::VolumeTypeRepository::get_volume_type_by_name(
            self.db.as_ref(),
            "__DEFAULT__",
        )
        .await
        .unwrap()
        .id;
        let mut new = new_volume("p1", size, type_id);
        let (snapshot_id, source_volid) = source.unwrap_or((None, None));
        new.snapshot_id = snapshot_id;
        new.source_volid = source_volid;
        let volume = self.db.create_volume(new).await.unwrap();
        let pin = match (snapshot_id, source_volid) {
            (Some(s), _) => {
                clinker_db::SnapshotRepository::get_snapshot(self.db.as_ref(), s)
                    .await
                    .unwrap()
                    .host
            }
            (_, Some(v)) => self.db.get_volume(v).await.unwrap().host,
            _ => None,
        };
        let spec = RequestSpec {
            volume_id: volume.id,
            size,
            availability_zone: None,
            availability_zones: Vec::new(),
            volume_type: TypeSpec {
                id: Some(type_id),
                name: Some("__DEFAULT__".into()),
                extra_specs: extra_specs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            },
            snapshot_id,
            source_volid,
            resource_backend: pin,
            project_id: "p1".into(),
            scheduler_hints: BTreeMap::new(),
        };
        let args = ScheduleCreateVolumeArgs {
            request_spec: spec,
            filter_properties: FilterProperties::default(),
        };
        self.scheduler()
            .create_volume(&RequestContext::internal("test"), &args)
            .await
            .unwrap();
        volume.id
    }

    async fn wait_volume(
        &self,
        id: VolumeId,
        want: impl Fn(Option<VolumeStatus>) -> bool,
    ) -> Option<clinker_types::model::Volume> {
        for _ in 0..500 {
            let v = self.db.get_volume(id).await.ok();
            if want(v.as_ref().map(|v| v.status)) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "volume {id} never reached the wanted state: {:?}",
            self.db.get_volume(id).await.map(|v| v.status)
        );
    }

    async fn delete(&self, id: VolumeId) {
        let volume = match self
            .db
            .begin_volume_delete(id, Default::default())
            .await
            .unwrap()
        {
            clinker_db::DeleteStart::Started(v) | clinker_db::DeleteStart::AlreadyDeleting(v) => v,
            clinker_db::DeleteStart::DeletedWithoutBackend(_) => return,
        };
        self.volume_rpc()
            .delete_volume(
                &RequestContext::internal("test"),
                volume.host.as_deref().unwrap(),
                &DeleteVolumeArgs {
                    volume_id: id,
                    cascade: false,
                },
            )
            .await
            .unwrap();
        self.wait_volume(id, |s| s.is_none()).await;
    }

    fn file(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join("volumes").join("file").join(name)
    }
}

const FILE_BACKEND: &str = "enabled_backends = file\n[file]\nvolume_driver = file\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_lifecycle_on_the_file_backend() {
    let c = Cluster::start(FILE_BACKEND).await;
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

    let id = c.create(1, &[], None).await;
    let v = c
        .wait_volume(id, |s| s == Some(VolumeStatus::Available))
        .await
        .unwrap();
    assert_eq!(v.host.as_deref(), Some("node1@file#file"));
    assert!(c.file(&v.name()).exists());

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
    for _ in 0..500 {
        if clinker_db::SnapshotRepository::get_snapshot(c.db.as_ref(), snap.id)
            .await
            .unwrap()
            .status
            == SnapshotStatus::Available
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(c.file(&format!("snapshot-{}", snap.id)).exists());

    // From the snapshot, and a clone of the volume: pinned to its backend.
    let from_snap = c.create(2, &[], Some((Some(snap.id), None))).await;
    let clone = c.create(1, &[], Some((None, Some(id)))).await;
    for v in [from_snap, clone] {
        let done = c
            .wait_volume(v, |s| s == Some(VolumeStatus::Available))
            .await
            .unwrap();
        assert_eq!(
            std::fs::metadata(c.file(&done.name())).unwrap().len(),
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
    let grown = c
        .wait_volume(id, |s| s == Some(VolumeStatus::Available))
        .await
        .unwrap();
    assert_eq!(grown.size, 3);
    assert_eq!(
        std::fs::metadata(c.file(&grown.name())).unwrap().len(),
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
    c.volume_rpc()
        .delete_volume(
            &RequestContext::internal("t"),
            volume.host.as_deref().unwrap(),
            &DeleteVolumeArgs {
                volume_id: id,
                cascade: true,
            },
        )
        .await
        .unwrap();
    c.wait_volume(id, |s| s.is_none()).await;
    assert!(!c.file(&format!("snapshot-{}", snap.id)).exists());
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
    let c = Cluster::start(
        "enabled_backends = bad,good\n[bad]\nvolume_driver = fake\nfake_fail_create = true\nfake_capacity_gb = 1000\n\
         [good]\nvolume_driver = fake\nfake_capacity_gb = 10\n",
    )
    .await;
    // "bad" has more room, so the weigher tries it first; the create fails
    // there and is rescheduled to "good".
    let id = c.create(1, &[], None).await;
    let v = c
        .wait_volume(id, |s| s == Some(VolumeStatus::Available))
        .await
        .unwrap();
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
    let id = c.create(1, &[("volume_backend_name", "bad")], None).await;
    c.wait_volume(id, |s| s == Some(VolumeStatus::Error)).await;
    let messages = clinker_db::MessageRepository::list_messages(
        c.db.as_ref(),
        Some("p1"),
        &Default::default(),
    )
    .await
    .unwrap();
    assert!(
        messages
            .iter()
            .any(|m| m.resource_uuid.as_deref() == Some(&id.to_string())),
        "{messages:?}"
    );

    // Nothing matches at all.
    let id = c
        .create(1, &[("volume_backend_name", "nowhere")], None)
        .await;
    c.wait_volume(id, |s| s == Some(VolumeStatus::Error)).await;
    let messages = clinker_db::MessageRepository::list_messages(
        c.db.as_ref(),
        Some("p1"),
        &Default::default(),
    )
    .await
    .unwrap();
    let m = messages
        .iter()
        .find(|m| m.resource_uuid.as_deref() == Some(&id.to_string()))
        .unwrap();
    assert_eq!(
        m.user_message,
        "schedule allocate volume:Could not find any available weighted backend."
    );
    assert_eq!(m.event_id, "VOLUME_VOLUME_001_003");

    // A pool that is full fails the placement too (10 GiB thin, ratio 20).
    let id = c
        .create(201, &[("volume_backend_name", "good")], None)
        .await;
    c.wait_volume(id, |s| s == Some(VolumeStatus::Error)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_deletes_fails_creates_and_removes_orphans() {
    let mut c = Cluster::start(FILE_BACKEND).await;
    let keep = c.create(1, &[], None).await;
    let doomed = c.create(1, &[], None).await;
    let kept = c
        .wait_volume(keep, |s| s == Some(VolumeStatus::Available))
        .await
        .unwrap();
    let doomed_volume = c
        .wait_volume(doomed, |s| s == Some(VolumeStatus::Available))
        .await
        .unwrap();
    c.stop_services().await;

    // While the services are down: a delete is journaled (its cast is lost),
    // a create is placed but never run, and an object without a row appears.
    c.db.begin_volume_delete(doomed, Default::default())
        .await
        .unwrap();
    let type_id =
        clinker_db::VolumeTypeRepository::get_volume_type_by_name(c.db.as_ref(), "__DEFAULT__")
            .await
            .unwrap()
            .id;
    let stuck =
        c.db.create_volume(new_volume("p1", 1, type_id))
            .await
            .unwrap();
    clinker_db::CapacityRepository::claim_volume_placement(
        c.db.as_ref(),
        stuck.id,
        "node1@file#file",
        1,
        1_000_000,
    )
    .await
    .unwrap();
    let orphan = format!("volume-{}", VolumeId::new_random());
    std::fs::write(c.file(&orphan), b"").unwrap();
    // An object whose row lives on another backend (a pool shared by
    // several volume hosts) is not this service's to remove.
    let elsewhere =
        c.db.create_volume(new_volume("p1", 1, type_id))
            .await
            .unwrap();
    clinker_db::CapacityRepository::claim_volume_placement(
        c.db.as_ref(),
        elsewhere.id,
        "node2@file#file",
        1,
        1_000_000,
    )
    .await
    .unwrap();
    std::fs::write(c.file(&elsewhere.name()), b"").unwrap();

    c.start_services().await;
    assert!(
        c.db.get_volume(doomed).await.is_err(),
        "the interrupted delete was resumed"
    );
    assert!(!c.file(&doomed_volume.name()).exists());
    assert_eq!(
        c.db.get_volume(stuck.id).await.unwrap().status,
        VolumeStatus::Error,
        "the interrupted create failed"
    );
    assert!(
        !c.file(&orphan).exists(),
        "the object without a row was removed"
    );
    assert!(c.file(&kept.name()).exists(), "owned objects stay");
    assert!(
        c.file(&elsewhere.name()).exists(),
        "objects with a row on another backend stay"
    );
    assert!(
        clinker_db::JournalRepository::journal_for_backend(c.db.as_ref(), "node1@file")
            .await
            .unwrap()
            .is_empty()
    );
    let usage = clinker_db::QuotaRepository::quota_usages(c.db.as_ref(), "p1")
        .await
        .unwrap();
    let recount = clinker_db::QuotaRepository::recount_usages(c.db.as_ref(), "p1")
        .await
        .unwrap();
    assert_eq!(usage.get("volumes"), recount.get("volumes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_whose_driver_fails_is_down_but_visible() {
    let c = Cluster::start("enabled_backends = broken\n[broken]\nvolume_driver = file\nfile_volumes_dir = /proc/clinker/nowhere\n").await;
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
    let id = c.create(1, &[], None).await;
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
