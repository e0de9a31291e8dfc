//! Generic groups through the real scheduler and volume services (SQLite,
//! in-process bus, file backends): group placement across backends, and
//! the settling of every group journal row after a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use clinker_config::{Config, ConfigEnv, Ini};
use clinker_db::testsuite::{Engine, TestDatabase, new_volume};
use clinker_db::{
    DbHandle, FilterValue, GroupDeleteStart, NewGroup, NewGroupSnapshot, NewGroupType,
    NewVolumeType, SnapshotColumn, SnapshotQuery,
};
use clinker_exec::HostRunner;
use clinker_rpc::local::LocalTransport;
use clinker_rpc::scheduler::{
    ScheduleCreateGroupArgs, ScheduleCreateVolumeArgs, SchedulerRpcClient,
};
use clinker_rpc::{RequestContext, TransportHandle};
use clinker_service::{RunningService, ServiceContext, start_scheduler, start_volume};
use clinker_types::group::Group;
use clinker_types::group_status::{GroupSnapshotStatus, GroupStatus};
use clinker_types::request_spec::{FilterProperties, RequestSpec, TypeSpec};
use clinker_types::{
    GroupId, GroupSnapshotId, GroupTypeId, SnapshotStatus, SystemClock, VolumeId, VolumeStatus,
    VolumeTypeId,
};

struct Cluster {
    db: DbHandle,
    transport: TransportHandle,
    services: Vec<RunningService>,
    dir: tempfile::TempDir,
    _test_db: TestDatabase,
    config: Arc<Config>,
}

impl Cluster {
    async fn start(backends: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[DEFAULT]\nhost = node1\nstate_path = {}\nreport_interval = 1\nperiodic_interval = 1\n\
             periodic_fuzzy_delay = 0\nscheduler_driver_init_wait_time = 5\n{backends}",
            dir.path().display()
        );
        let mut ini = Ini::default();
        ini.merge_text(&text, "test.conf").unwrap();
        let config = Config::from_ini(
            &ini,
            &ConfigEnv {
                hostname: "node1".into(),
            },
        )
        .unwrap();
        let test_db = TestDatabase::open(Engine::Sqlite).await.unwrap();
        let mut cluster = Cluster {
            db: Arc::new(test_db.db.clone()),
            transport: Arc::new(LocalTransport::new()),
            services: Vec::new(),
            dir,
            _test_db: test_db,
            config: Arc::new(config),
        };
        cluster.start_services().await;
        cluster
    }

    async fn start_services(&mut self) {
        let ctx = ServiceContext {
            db: self.db.clone(),
            transport: self.transport.clone(),
            config: self.config.clone(),
            clock: Arc::new(SystemClock),
        };
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

    fn file(&self, backend: &str, name: &str) -> std::path::PathBuf {
        self.dir.path().join("volumes").join(backend).join(name)
    }

    async fn volume_type(&self, name: &str, backend_name: Option<&str>) -> VolumeTypeId {
        let mut extra_specs = BTreeMap::new();
        if let Some(b) = backend_name {
            extra_specs.insert("volume_backend_name".to_owned(), b.to_owned());
        }
        self.db
            .create_volume_type(NewVolumeType {
                name: name.into(),
                description: None,
                is_public: true,
                extra_specs,
            })
            .await
            .unwrap()
            .id
    }

    async fn group_type(&self) -> GroupTypeId {
        self.db
            .create_group_type(NewGroupType {
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
    async fn create_group(&self, gt: GroupTypeId, types: Vec<VolumeTypeId>) -> GroupId {
        let group = self
            .db
            .create_group(NewGroup {
                id: GroupId::new_random(),
                user_id: "u1".into(),
                project_id: "p1".into(),
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

    async fn schedule_group(&self, id: GroupId) {
        self.scheduler()
            .create_group(
                &RequestContext::internal("test"),
                &ScheduleCreateGroupArgs { group_id: id },
            )
            .await
            .unwrap();
    }

    async fn wait_group(
        &self,
        id: GroupId,
        want: impl Fn(Option<&Group>) -> bool,
    ) -> Option<Group> {
        for _ in 0..500 {
            let g = self.db.get_group(id).await.ok();
            if want(g.as_ref()) {
                return g;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "group {id} never settled: {:?}",
            self.db.get_group(id).await.map(|g| g.status)
        );
    }

    /// What the API does for a volume of `group` (pinned to its backend).
    async fn member(&self, group: &Group, vt: VolumeTypeId, type_name: &str) -> VolumeId {
        let mut new = new_volume("p1", 1, vt);
        new.volume_type_name = type_name.into();
        new.group_id = Some(group.id.to_string());
        let volume = self.db.create_volume(new).await.unwrap();
        let backend = group
            .host
            .as_deref()
            .unwrap()
            .split('#')
            .next()
            .unwrap()
            .to_owned();
        let spec = RequestSpec {
            volume_id: volume.id,
            size: 1,
            availability_zone: None,
            availability_zones: Vec::new(),
            volume_type: TypeSpec {
                id: Some(vt),
                name: Some(type_name.into()),
                extra_specs: BTreeMap::new(),
            },
            snapshot_id: None,
            source_volid: None,
            resource_backend: Some(backend),
            project_id: "p1".into(),
            scheduler_hints: BTreeMap::new(),
        };
        self.scheduler()
            .create_volume(
                &RequestContext::internal("test"),
                &ScheduleCreateVolumeArgs {
                    request_spec: spec,
                    filter_properties: FilterProperties::default(),
                },
            )
            .await
            .unwrap();
        for _ in 0..500 {
            if self.db.get_volume(volume.id).await.unwrap().status == VolumeStatus::Available {
                return volume.id;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("member {} never became available", volume.id);
    }
}

const TWO_BACKENDS: &str = "enabled_backends = fast,slow\n\
    [fast]\nvolume_driver = file\nvolume_backend_name = fast\n\
    [slow]\nvolume_driver = file\nvolume_backend_name = slow\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_go_where_every_type_fits() {
    let mut c = Cluster::start(TWO_BACKENDS).await;
    let fast = c.volume_type("fast", Some("fast")).await;
    let slow = c.volume_type("slow", Some("slow")).await;
    let any = c.volume_type("any", None).await;
    let gt = c.group_type().await;

    let g = c.create_group(gt, vec![any, slow]).await;
    c.schedule_group(g).await;
    let placed = c
        .wait_group(g, |g| g.is_some_and(|g| g.status != GroupStatus::Creating))
        .await
        .unwrap();
    assert_eq!(placed.status, GroupStatus::Available);
    assert_eq!(placed.host.as_deref(), Some("node1@slow#slow"));
    // A volume of the group lands on the group's backend.
    let v = c.member(&placed, any, "any").await;
    assert_eq!(
        c.db.get_volume(v).await.unwrap().host.as_deref(),
        Some("node1@slow#slow")
    );
    assert!(c.file("slow", &format!("volume-{v}")).exists());

    // No backend serves both types: the group fails, with nothing claimed.
    let none = c.create_group(gt, vec![fast, slow]).await;
    c.schedule_group(none).await;
    let failed = c
        .wait_group(none, |g| {
            g.is_some_and(|g| g.status != GroupStatus::Creating)
        })
        .await
        .unwrap();
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
    let mut c = Cluster::start("enabled_backends = file\n[file]\nvolume_driver = file\n").await;
    let vt =
        c.db.get_volume_type_by_name("__DEFAULT__")
            .await
            .unwrap()
            .id;
    let gt = c.group_type().await;
    let mut groups = Vec::new();
    for _ in 0..2 {
        let g = c.create_group(gt, vec![vt]).await;
        c.schedule_group(g).await;
        groups.push(
            c.wait_group(g, |g| g.is_some_and(|g| g.status == GroupStatus::Available))
                .await
                .unwrap(),
        );
    }
    let doomed = c.member(&groups[0], vt, "__DEFAULT__").await;
    let snapped = c.member(&groups[1], vt, "__DEFAULT__").await;
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
        project_id: "p1".into(),
        display_name: None,
        display_description: None,
    })
    .await
    .unwrap();
    let placed = c.create_group(gt, vec![vt]).await;
    c.db.place_group(placed, "node1@file#file").await.unwrap();
    let unplaced = c.create_group(gt, vec![vt]).await;

    c.start_services().await;
    assert!(
        c.db.get_group(groups[0].id).await.is_err(),
        "the interrupted group delete was resumed"
    );
    assert!(c.db.get_volume(doomed).await.is_err());
    assert!(!c.file("file", &format!("volume-{doomed}")).exists());
    let failed = c.db.get_group_snapshot(gs).await.unwrap();
    assert_eq!(failed.status, GroupSnapshotStatus::Error);
    let members =
        c.db.list_snapshots(&SnapshotQuery {
            filters: vec![(
                SnapshotColumn::GroupSnapshotId,
                FilterValue::Eq(gs.to_string()),
            )],
            ..SnapshotQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].volume_id, snapped);
    assert_eq!(members[0].status, SnapshotStatus::Error);
    assert_eq!(
        c.db.get_group(placed).await.unwrap().status,
        GroupStatus::Available,
        "a generic group has nothing on the backend to lose"
    );
    // The scheduler places creates nobody placed.
    let resumed = c
        .wait_group(unplaced, |g| {
            g.is_some_and(|g| g.status == GroupStatus::Available)
        })
        .await
        .unwrap();
    assert_eq!(resumed.host.as_deref(), Some("node1@file#file"));
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
    for resource in ["groups", "volumes", "snapshots", "gigabytes"] {
        assert_eq!(
            usage.get(resource).copied().unwrap_or(0),
            recount.get(resource).copied().unwrap_or(0),
            "{resource}"
        );
    }
    c.stop_services().await;
}
