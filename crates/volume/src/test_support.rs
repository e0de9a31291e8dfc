//! A volume manager over a real SQLite database and the in-process bus,
//! with a driver of the test's choosing, for the revert and retype tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use clinker_config::{
    DriverConfig, FakeDriverOptions, RbdDriverOptions, TargetConfig, TargetHelperKind,
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
    pub(crate) manager: Arc<VolumeManager>,
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
                DriverConfig::File(clinker_testkit::config::file_options(dir.path())),
            ),
            TestDriver::Rbd => ("ceph", DriverConfig::Rbd(RbdDriverOptions::default())),
        };
        let target = TargetConfig::with_defaults(TargetHelperKind::None, dir.path().join("t"));
        let backend = clinker_testkit::config::backend(name, driver, target);
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
            manager: Arc::new(manager),
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

/// Two file backends, `node1@file` and `node1@file2`, with their managers
/// on one database and one in-process bus, each consuming its own queue
/// (what a migration between them needs).
pub(crate) struct TwoBackends {
    pub(crate) source: Arc<VolumeManager>,
    pub(crate) dest: Arc<VolumeManager>,
    pub(crate) db: DbHandle,
    pub(crate) source_dir: tempfile::TempDir,
    pub(crate) dest_dir: tempfile::TempDir,
    _consumers: Vec<clinker_rpc::ConsumerHandle>,
    _test_db: TestDatabase,
}

/// A manager for `node1@<name>` over a file driver in `dir`, its driver up,
/// and the driver (or a fake one, failing creates when told).
async fn backend_manager(
    name: &str,
    dir: &std::path::Path,
    fake: Option<bool>,
    db: &DbHandle,
    transport: &Arc<LocalTransport>,
) -> Arc<VolumeManager> {
    let driver = match fake {
        Some(fail_create) => DriverConfig::Fake(FakeDriverOptions {
            capacity_gb: 0.0,
            fail_create,
        }),
        None => DriverConfig::File(clinker_testkit::config::file_options(dir)),
    };
    let target = TargetConfig::with_defaults(TargetHelperKind::None, dir.join("t"));
    let backend = clinker_testkit::config::backend(name, driver, target);
    let driver =
        clinker_drivers::build_driver(&backend, Arc::new(clinker_exec::HostRunner::new())).unwrap();
    driver.do_setup().await.unwrap();
    let clock = Arc::new(SystemClock);
    let host = format!("node1@{name}");
    let manager = VolumeManager::new(
        ManagerOptions {
            host: host.clone(),
            message_ttl: 3600,
        },
        backend,
        driver,
        db.clone(),
        SchedulerRpcClient::new(transport.clone(), std::time::Duration::from_secs(5)),
        Notifier::new(transport.clone(), format!("volume.{host}"), clock.clone()),
        clock,
    );
    manager.set_health(true, None);
    Arc::new(manager)
}

impl TwoBackends {
    /// Both backends on files; `dest_fake` puts the destination on the
    /// fake driver instead (`Some(fail_create)`).
    pub(crate) async fn new(dest_fake: Option<bool>) -> Self {
        let source_dir = tempfile::tempdir().unwrap();
        let dest_dir = tempfile::tempdir().unwrap();
        let test_db = TestDatabase::open(Engine::Sqlite).await.unwrap();
        let db: DbHandle = Arc::new(test_db.db.clone());
        let transport = Arc::new(LocalTransport::new());
        let source = backend_manager("file", source_dir.path(), None, &db, &transport).await;
        let dest = backend_manager("file2", dest_dir.path(), dest_fake, &db, &transport).await;
        let mut consumers = Vec::new();
        for manager in [&source, &dest] {
            let topic = clinker_rpc::volume::TOPIC;
            let handle = clinker_rpc::Transport::consume(
                transport.as_ref(),
                vec![clinker_rpc::Subscription::Queue(
                    clinker_rpc::Target::server(topic, manager.host()),
                )],
                Arc::new(clinker_rpc::volume::VolumeEndpoint::new(manager.clone())),
            )
            .await
            .unwrap();
            consumers.push(handle);
        }
        Self {
            source,
            dest,
            db,
            source_dir,
            dest_dir,
            _consumers: consumers,
            _test_db: test_db,
        }
    }

    /// An `available` volume of `type_name` on the source backend, created
    /// on its driver, with `pattern` written 1 MiB + 7 bytes in.
    pub(crate) async fn volume(&self, type_name: &str, pattern: &[u8]) -> VolumeId {
        let t = self.db.get_volume_type_by_name(type_name).await.unwrap();
        let mut new = new_volume("p1", 1, t.id);
        new.volume_type_name = t.name.clone();
        let v = self.db.create_volume(new).await.unwrap();
        self.db
            .claim_volume_placement(v.id, "node1@file#file", 1, 1_000_000)
            .await
            .unwrap();
        let placed = self.db.get_volume(v.id).await.unwrap();
        let update = self
            .source
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
        let path = self.source_dir.path().join(format!("volume-{}", v.id));
        write_at(&path, 1024 * 1024 + 7, pattern);
        v.id
    }
}

/// Writes `data` at `offset` of an existing file.
pub(crate) fn write_at(path: &std::path::Path, offset: u64, data: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(data).unwrap();
}

/// Reads `len` bytes at `offset`.
pub(crate) fn read_at(path: &std::path::Path, offset: u64, len: usize) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0; len];
    f.read_exact(&mut buf).unwrap();
    buf
}
