//! The services wired together in one process: a real scheduler and one
//! real volume service per backend, on a fresh SQLite database and the
//! in-process bus, driven the way the API drives them (rows written
//! through the repositories, then a cast to the scheduler).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clinker_config::Config;
use clinker_db::testsuite::{Engine, TestDatabase};
use clinker_db::{DbHandle, DeleteStart, NewVolumeType};
use clinker_exec::HostRunner;
use clinker_rpc::local::LocalTransport;
use clinker_rpc::scheduler::{ScheduleCreateVolumeArgs, SchedulerRpcClient};
use clinker_rpc::volume::{DeleteVolumeArgs, VolumeRpcClient};
use clinker_rpc::{RequestContext, TransportHandle};
use clinker_service::{RunningService, ServiceContext, start_scheduler, start_volume};
use clinker_types::model::Volume;
use clinker_types::request_spec::{FilterProperties, RequestSpec, TypeSpec};
use clinker_types::{SystemClock, VolumeId, VolumeStatus, VolumeTypeId};

use crate::poll::{self, Every};

/// The host every service of the cluster runs on.
pub const HOST: &str = "node1";
/// The project the cluster's volumes belong to.
pub const PROJECT: &str = "p1";
/// How long the in-process services are given: every 10 ms for 5 s.
pub const SETTLE: Every = Every::ms(10, 5);

/// The scheduler and the volume services of one host.
pub struct ServiceCluster {
    /// The bus (its notifications can be subscribed to).
    pub local: Arc<LocalTransport>,
    /// The database every service uses.
    pub db: DbHandle,
    /// The same bus, as the services see it.
    pub transport: TransportHandle,
    /// The validated configuration the services run with.
    pub config: Arc<Config>,
    /// `state_path`: the file backends keep volumes in `volumes/<backend>`.
    pub dir: tempfile::TempDir,
    services: Vec<RunningService>,
    _database: TestDatabase,
}

impl std::fmt::Debug for ServiceCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceCluster")
            .field("dir", &self.dir.path())
            .field("services", &self.services.len())
            .finish_non_exhaustive()
    }
}

impl ServiceCluster {
    /// Starts the scheduler and the volume services of `backends` (which
    /// sets `enabled_backends` and their sections) on host `node1`.
    pub async fn start(backends: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text =
            crate::config::default_section(HOST, dir.path(), "periodic_interval = 1") + backends;
        let database = TestDatabase::open(Engine::Sqlite).await.unwrap();
        let local = Arc::new(LocalTransport::new());
        let mut cluster = Self {
            db: Arc::new(database.db.clone()),
            transport: local.clone(),
            local,
            config: Arc::new(crate::config::parse(&text, HOST)),
            dir,
            services: Vec::new(),
            _database: database,
        };
        cluster.start_services().await;
        cluster
    }

    /// Starts the services (again, after [`ServiceCluster::stop_services`]:
    /// their `init_host` runs).
    pub async fn start_services(&mut self) {
        let ctx = ServiceContext {
            db: self.db.clone(),
            transport: self.transport.clone(),
            config: self.config.clone(),
            clock: Arc::new(SystemClock),
        };
        self.services
            .push(start_scheduler(&ctx, HOST).await.unwrap());
        for backend in &self.config.backends {
            let runner = Arc::new(HostRunner::new());
            self.services
                .push(start_volume(&ctx, backend, runner).await.unwrap());
        }
    }

    /// Stops the volume services only (the scheduler, started first, keeps
    /// running); their heartbeats stay fresh until `service_down_time`.
    pub async fn stop_volume_services(&mut self) {
        for s in self.services.drain(1..) {
            s.stop(Duration::from_secs(5)).await;
        }
    }

    /// Stops every service, as a shutdown does.
    pub async fn stop_services(&mut self) {
        for s in self.services.drain(..) {
            s.stop(Duration::from_secs(5)).await;
        }
    }

    /// A scheduler RPC client on the bus.
    pub fn scheduler(&self) -> SchedulerRpcClient {
        SchedulerRpcClient::new(self.transport.clone(), Duration::from_secs(5))
    }

    /// A volume RPC client on the bus.
    pub fn volume_rpc(&self) -> VolumeRpcClient {
        VolumeRpcClient::new(self.transport.clone(), Duration::from_secs(5))
    }

    /// The file backend `backend`'s object `name`.
    pub fn file(&self, backend: &str, name: &str) -> PathBuf {
        self.dir.path().join("volumes").join(backend).join(name)
    }

    /// A public volume type, pinned to `backend_name` if given.
    pub async fn volume_type(&self, name: &str, backend_name: Option<&str>) -> VolumeTypeId {
        let extra_specs = backend_name
            .map(|b| ("volume_backend_name".to_owned(), b.to_owned()))
            .into_iter()
            .collect();
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

    /// The id of `__DEFAULT__`.
    pub async fn default_type(&self) -> VolumeTypeId {
        self.db
            .get_volume_type_by_name("__DEFAULT__")
            .await
            .unwrap()
            .id
    }

    /// Casts the placement of the `creating` row `volume` to the scheduler,
    /// as the API does after inserting it: its type as `volume_type`, on
    /// `backend` when it must go there (a source's or a group's).
    pub async fn schedule_create(
        &self,
        volume: &Volume,
        volume_type: TypeSpec,
        backend: Option<String>,
    ) {
        let request_spec = RequestSpec {
            volume_id: volume.id,
            size: volume.size,
            availability_zone: None,
            availability_zones: Vec::new(),
            volume_type,
            snapshot_id: volume.snapshot_id,
            source_volid: volume.source_volid,
            image_id: None,
            backup_id: None,
            resource_backend: backend,
            project_id: volume.project_id.clone(),
            scheduler_hints: BTreeMap::new(),
        };
        let args = ScheduleCreateVolumeArgs {
            request_spec,
            filter_properties: FilterProperties::default(),
        };
        self.scheduler()
            .create_volume(&RequestContext::internal("test"), &args)
            .await
            .unwrap();
    }

    /// Polls a volume row until `want(status)` (`None`: the row is gone);
    /// the row.
    pub async fn wait_volume(
        &self,
        id: VolumeId,
        want: impl Fn(Option<VolumeStatus>) -> bool,
    ) -> Option<Volume> {
        poll::until(SETTLE, async || {
            let v = self.db.get_volume(id).await.ok();
            if want(v.as_ref().map(|v| v.status)) {
                Ok(v)
            } else {
                Err(format!(
                    "volume {id} never reached the wanted state: {:?}",
                    v.map(|v| v.status)
                ))
            }
        })
        .await
    }

    /// Polls until the volume is `available`; the row.
    pub async fn wait_available(&self, id: VolumeId) -> Volume {
        self.wait_volume(id, |s| s == Some(VolumeStatus::Available))
            .await
            .unwrap()
    }

    /// Casts the delete of `volume` (whose delete has begun in the
    /// database) to its backend, as the API does.
    pub async fn cast_delete(&self, volume: &Volume, cascade: bool) {
        let args = DeleteVolumeArgs {
            volume_id: volume.id,
            cascade,
        };
        let host = volume.host.as_deref().unwrap();
        self.volume_rpc()
            .delete_volume(&RequestContext::internal("test"), host, &args)
            .await
            .unwrap();
    }

    /// What the API does for a delete without cascade, then waits until
    /// the row is gone.
    pub async fn delete(&self, id: VolumeId) {
        let begun = self.db.begin_volume_delete(id, Default::default()).await;
        match begun.unwrap() {
            DeleteStart::Started(v) | DeleteStart::AlreadyDeleting(v) => {
                self.cast_delete(&v, false).await;
            }
            DeleteStart::DeletedWithoutBackend(_) => return,
        }
        self.wait_volume(id, |s| s.is_none()).await;
    }
}
