//! A volume manager over a real SQLite database and the in-process bus,
//! with a driver of the test's choosing, for the revert and retype tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use clinker_config::{
    BackendConfig, DriverConfig, FakeDriverOptions, FileDriverOptions, OverSubscription,
    RbdDriverOptions, ReflinkMode, TargetConfig, TargetHelperKind,
};
use clinker_db::testsuite::{Engine, TestDatabase, new_volume};
use clinker_db::{DbHandle, NewSnapshot, ProviderUpdate};
use clinker_drivers::VolumeDriver;
use clinker_rpc::local::LocalTransport;
use clinker_rpc::notify::Notifier;
use clinker_rpc::scheduler::SchedulerRpcClient;
use clinker_types::{SnapshotId, SystemClock, VolumeId};

use crate::manager::{ManagerOptions, VolumeManager};

/// Which driver the manager gets.
pub(crate) enum TestDriver {
    /// The fake driver (reverts and retypes succeed).
    Fake,
    /// The file driver in a temporary directory (the real `cp`).
    File,
    /// The RBD driver, never called for data: it has no in-place revert.
    Rbd,
}

/// A manager for `node1@<backend>` whose driver is up.
pub(crate) struct TestManager {
    pub(crate) manager: VolumeManager,
    pub(crate) db: DbHandle,
    pub(crate) pool: String,
    pub(crate) driver: Arc<dyn VolumeDriver>,
    pub(crate) _dir: tempfile::TempDir,
    _test_db: TestDatabase,
}

impl TestManager {
    pub(crate) async fn new(kind: TestDriver) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (name, driver) = match kind {
            TestDriver::Fake => (
                "fake",
                DriverConfig::Fake(FakeDriverOptions {
                    capacity_gb: 0.0,
                    fail_create: false,
                }),
            ),
            TestDriver::File => (
                "file",
                DriverConfig::File(FileDriverOptions {
                    volumes_dir: dir.path().to_path_buf(),
                    capacity_gb: 0.0,
                    reflink: ReflinkMode::Auto,
                }),
            ),
            TestDriver::Rbd => ("ceph", DriverConfig::Rbd(RbdDriverOptions::default())),
        };
        let backend = BackendConfig {
            name: name.into(),
            volume_backend_name: name.into(),
            backend_host: None,
            availability_zone: None,
            reserved_percentage: 0,
            max_over_subscription_ratio: OverSubscription::Ratio(20.0),
            driver,
            target: TargetConfig::with_defaults(TargetHelperKind::None, dir.path().join("t")),
        };
        let runner: Arc<dyn clinker_exec::CommandRunner> = match kind {
            TestDriver::File => Arc::new(clinker_exec::HostRunner::new()),
            _ => Arc::new(clinker_exec::FakeRunner::new()),
        };
        let driver = clinker_drivers::build_driver(&backend, runner).unwrap();
        if matches!(kind, TestDriver::File) {
            driver.do_setup().await.unwrap();
        }
        let test_db = TestDatabase::open(Engine::Sqlite).await.unwrap();
        let db: DbHandle = Arc::new(test_db.db.clone());
        let transport = Arc::new(LocalTransport::new());
        let clock = Arc::new(SystemClock);
        let host = format!("node1@{name}");
        let manager = VolumeManager::new(
            ManagerOptions {
                host: host.clone(),
                message_ttl: 3600,
            },
            backend,
            driver.clone(),
            db.clone(),
            SchedulerRpcClient::new(transport.clone(), std::time::Duration::from_secs(1)),
            Notifier::new(transport, format!("volume.{host}"), clock.clone()),
            clock,
        );
        manager.set_health(true, None);
        Self {
            manager,
            db,
            pool: format!("{host}#{name}"),
            driver,
            _dir: dir,
            _test_db: test_db,
        }
    }

    /// An `available` volume of `type_name` on this backend (created on
    /// the driver too).
    pub(crate) async fn volume(&self, type_name: &str) -> VolumeId {
        let t = self.db.get_volume_type_by_name(type_name).await.unwrap();
        let mut new = new_volume("p1", 1, t.id);
        new.volume_type_name = t.name.clone();
        let v = self.db.create_volume(new).await.unwrap();
        self.db
            .claim_volume_placement(v.id, &self.pool, 1, 1_000_000)
            .await
            .unwrap();
        let placed = self.db.get_volume(v.id).await.unwrap();
        let update = self
            .driver
            .create_volume(&crate::manager::volume_spec(&placed))
            .await
            .unwrap();
        self.db
            .finish_volume_create(
                v.id,
                ProviderUpdate {
                    provider_location: update.provider_location,
                    ..ProviderUpdate::default()
                },
            )
            .await
            .unwrap();
        v.id
    }

    /// An `available` snapshot of `volume` (created on the driver too).
    pub(crate) async fn snapshot(&self, volume: VolumeId) -> SnapshotId {
        let s = self
            .db
            .create_snapshot(NewSnapshot {
                id: SnapshotId::new_random(),
                volume_id: volume,
                user_id: "u1".into(),
                project_id: "p1".into(),
                display_name: None,
                display_description: None,
                metadata: BTreeMap::new(),
                allow_in_use: false,
                use_quota: true,
            })
            .await
            .unwrap();
        let v = self.db.get_volume(volume).await.unwrap();
        let spec = crate::manager::snapshot_spec(&s, &crate::manager::volume_spec(&v));
        let update = self.driver.create_snapshot(&spec).await.unwrap();
        self.db
            .finish_snapshot_create(s.id, update.provider_location)
            .await
            .unwrap();
        s.id
    }

    /// The user messages about `resource`.
    pub(crate) async fn messages(&self, resource: impl ToString) -> Vec<String> {
        let page = clinker_db::Page::default();
        self.db
            .list_messages(None, &page)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.resource_uuid.as_deref() == Some(resource.to_string().as_str()))
            .map(|m| m.user_message)
            .collect()
    }
}
