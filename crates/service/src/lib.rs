//! The seed's `Service`: what turns a manager into a running service.
//!
//! For the scheduler and for every `enabled_backends` entry (a volume
//! service named `host@backend`), [`start_scheduler`] / [`start_volume`]:
//! register the `services` row; start the heartbeat on its own task (it
//! never waits behind driver work, and reports the driver's health as
//! `backend_state` separately from liveness); run the manager's start-up
//! (`init_host`); consume RPC on the topic queue, the `topic.host` queue and
//! the topic's fanout; and run the periodic tasks every `periodic_interval`
//! after a random `0..periodic_fuzzy_delay` start. [`RunningService::stop`]
//! stops consuming, lets in-flight driver work finish (with a deadline) and
//! stops the workers.
//!
//! [`start_backup`] does the same for the backup service (`cinder-backup`
//! on `host`), whose start-up settles the backups a crash left.
//!
//! Depends on every lower layer (it wires managers to the bus and the
//! database); only the binary depends on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use clinker_backup_manager::{BackupManager, BackupManagerOptions};
use clinker_config::{BackendConfig, BackupDriverKind, Config};
use clinker_db::{DbError, DbHandle, ServiceRegistration};
use clinker_exec::CommandRunner;
use clinker_rpc::backup::BackupEndpoint;
use clinker_rpc::notify::Notifier;
use clinker_rpc::scheduler::{SchedulerEndpoint, SchedulerRpcClient};
use clinker_rpc::volume::{VolumeEndpoint, VolumeRpcClient};
use clinker_rpc::{ConsumerHandle, RequestContext, Subscription, Target, TransportHandle};
use clinker_runtime::{CancellationToken, Gate, Worker, fuzzy_delay, spawn_worker};
use clinker_scheduler::{SchedulerManager, SchedulerOptions};
use clinker_types::{Clock, Host};
use clinker_volume::{ManagerOptions, VolumeManager};

pub mod metrics;
use tokio::task::JoinHandle;

/// `cinder-volume`.
pub const VOLUME_BINARY: &str = "cinder-volume";
/// `cinder-scheduler`.
pub const SCHEDULER_BINARY: &str = "cinder-scheduler";
/// `cinder-backup`.
pub const BACKUP_BINARY: &str = clinker_types::backup::BINARY;

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The database refused the registration.
    #[error("cannot register service {host}/{binary}: {source}")]
    Register {
        /// Host.
        host: String,
        /// Binary.
        binary: String,
        /// Cause.
        source: DbError,
    },
    /// The bus refused the consumers.
    #[error("cannot consume RPC for {host}: {source}")]
    Consume {
        /// Host.
        host: String,
        /// Cause.
        source: clinker_rpc::RpcError,
    },
    /// A configured filter, weigher or driver does not exist.
    #[error("{0}")]
    Config(String),
}

/// What every service needs.
#[derive(Clone, Debug)]
pub struct ServiceContext {
    /// The database.
    pub db: DbHandle,
    /// The bus.
    pub transport: TransportHandle,
    /// The configuration.
    pub config: Arc<Config>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

impl ServiceContext {
    fn rpc_timeout(&self) -> Duration {
        Duration::from_secs(self.config.default.rpc_response_timeout)
    }
}

/// How the heartbeat learns the backend's health.
type HealthProbe = Arc<dyn Fn() -> Option<(String, Option<String>)> + Send + Sync>;

/// The heartbeat (Cinder's `report_state`).
struct Heartbeat {
    db: DbHandle,
    registration: ServiceRegistration,
    service_id: AtomicI64,
    interval: Duration,
    health: Option<HealthProbe>,
    failing: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Worker for Heartbeat {
    fn name(&self) -> &str {
        "report_state"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    async fn run_once(&self) {
        let health = self.health.as_ref().and_then(|probe| probe());
        let state = health.as_ref().map(|(s, r)| (s.as_str(), r.as_deref()));
        let id = self.service_id.load(Ordering::SeqCst);
        let result = match self.db.report_service_state(id, state).await {
            Err(DbError::NotFound { .. }) => {
                // The row was deleted (by an operator): recreate it, as
                // Cinder's report_state does.
                match self.db.register_service(&self.registration).await {
                    Ok(service) => {
                        self.service_id.store(service.id, Ordering::SeqCst);
                        self.db.report_service_state(service.id, state).await
                    }
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        match result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::SeqCst) {
                    tracing::info!(host = %self.registration.host, "heartbeat recovered");
                }
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::SeqCst) {
                    tracing::warn!(host = %self.registration.host, error = %e, "heartbeat failed; will retry");
                }
            }
        }
    }
}

/// A function run periodically by a service.
struct Periodic<F> {
    name: &'static str,
    interval: Duration,
    run: F,
}

#[async_trait::async_trait]
impl<F, Fut> Worker for Periodic<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    fn name(&self) -> &str {
        self.name
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    async fn run_once(&self) {
        (self.run)().await;
    }
}

/// A started service.
#[derive(Debug)]
pub struct RunningService {
    /// `host` or `host@backend`.
    pub host: String,
    /// `cinder-volume` / `cinder-scheduler`.
    pub binary: &'static str,
    consumers: Vec<ConsumerHandle>,
    workers_cancel: CancellationToken,
    workers: Vec<JoinHandle<()>>,
    gate: Option<Gate>,
    /// The volume manager, for volume services.
    pub volume_manager: Option<Arc<VolumeManager>>,
    /// The scheduler manager, for the scheduler.
    pub scheduler_manager: Option<Arc<SchedulerManager>>,
    /// The backup manager, for the backup service.
    pub backup_manager: Option<Arc<BackupManager>>,
}

impl RunningService {
    /// Stops consuming, waits for in-flight driver work up to `deadline`,
    /// then stops the periodic tasks and the heartbeat.
    pub async fn stop(self, deadline: Duration) {
        for consumer in self.consumers {
            consumer.stop().await;
        }
        if let Some(gate) = &self.gate {
            let left = gate.close_and_wait(deadline).await;
            if left > 0 {
                tracing::warn!(host = %self.host, left, "in-flight operations did not finish before the deadline; the journal will settle them at the next start");
            }
        }
        self.workers_cancel.cancel();
        for worker in self.workers {
            let _ = worker.await;
        }
        tracing::info!(host = %self.host, binary = self.binary, "service stopped");
    }
}

async fn register(
    ctx: &ServiceContext,
    registration: &ServiceRegistration,
) -> Result<i64, ServiceError> {
    ctx.db
        .register_service(registration)
        .await
        .map(|s| s.id)
        .map_err(|source| ServiceError::Register {
            host: registration.host.clone(),
            binary: registration.binary.clone(),
            source,
        })
}

fn start_heartbeat(
    ctx: &ServiceContext,
    registration: ServiceRegistration,
    service_id: i64,
    health: Option<HealthProbe>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let interval = Duration::from_secs(ctx.config.default.report_interval);
    let heartbeat = Arc::new(Heartbeat {
        db: ctx.db.clone(),
        registration,
        service_id: AtomicI64::new(service_id),
        interval,
        health,
        failing: std::sync::atomic::AtomicBool::new(false),
    });
    // First beat at once so the service shows up-to-date immediately (and
    // its backend state with it); then every report_interval.
    spawn_worker(heartbeat, Duration::ZERO, cancel)
}

/// Caps the volume RPC versions a client sends at the lowest version any
/// registered volume service serves (Cinder's `LAST_RPC_VERSIONS`), so a
/// rolling upgrade never sends an old service a message it cannot read.
pub async fn pin_volume_rpc_versions(db: &DbHandle, volume_rpc: &VolumeRpcClient) {
    let Ok(services) = db.list_services(None, Some(VOLUME_BINARY)).await else {
        return;
    };
    let lowest = services
        .iter()
        .filter_map(|s| s.rpc_current_version.as_deref())
        .filter_map(|v| v.parse::<clinker_rpc::Version>().ok())
        .min();
    if let Some(cap) = lowest {
        volume_rpc.set_version_cap(cap);
        tracing::info!(%cap, "volume RPC versions pinned to the oldest volume service");
    }
}

/// Starts the scheduler service on `host`.
///
/// # Errors
/// Registration, consumers or configuration failures.
pub async fn start_scheduler(
    ctx: &ServiceContext,
    host: &str,
) -> Result<RunningService, ServiceError> {
    let config = &ctx.config.default;
    let filters = clinker_scheduler::filters::build_filters(&config.scheduler_default_filters)
        .map_err(|name| {
            ServiceError::Config(format!(
                "unknown scheduler filter {name} in scheduler_default_filters"
            ))
        })?;
    let weighers = clinker_scheduler::weighers::build_weighers(
        &config.scheduler_default_weighers,
        config.capacity_weight_multiplier,
    )
    .map_err(|name| {
        ServiceError::Config(format!(
            "unknown scheduler weigher {name} in scheduler_default_weighers"
        ))
    })?;
    let registration = ServiceRegistration {
        host: host.to_owned(),
        binary: SCHEDULER_BINARY.into(),
        topic: clinker_rpc::scheduler::TOPIC.into(),
        availability_zone: config.storage_availability_zone.clone(),
        rpc_current_version: clinker_rpc::scheduler::CURRENT_VERSION.to_string(),
    };
    let service_id = register(ctx, &registration).await?;
    let cancel = CancellationToken::new();
    let mut workers = vec![start_heartbeat(
        ctx,
        registration,
        service_id,
        None,
        cancel.clone(),
    )];
    let volume_rpc = VolumeRpcClient::new(ctx.transport.clone(), ctx.rpc_timeout());
    pin_volume_rpc_versions(&ctx.db, &volume_rpc).await;
    let manager = Arc::new(SchedulerManager::new(
        ctx.db.clone(),
        volume_rpc,
        Notifier::new(
            ctx.transport.clone(),
            format!("scheduler.{host}"),
            ctx.clock.clone(),
        ),
        filters,
        weighers,
        SchedulerOptions {
            max_attempts: config.scheduler_max_attempts,
            service_down_time: config.service_down_time,
            message_ttl: config.message_ttl,
            init_wait: Duration::from_secs(config.scheduler_driver_init_wait_time),
        },
        ctx.clock.clone(),
    ));
    let topic = clinker_rpc::scheduler::TOPIC;
    let consumer = ctx
        .transport
        .consume(
            vec![
                Subscription::Queue(Target::topic(topic)),
                Subscription::Queue(Target::server(topic, host)),
                Subscription::Fanout(topic.to_owned()),
            ],
            Arc::new(SchedulerEndpoint::new(manager.clone())),
        )
        .await
        .map_err(|source| ServiceError::Consume {
            host: host.to_owned(),
            source,
        })?;
    // Ask every volume service for its capabilities now instead of waiting
    // for their next periodic report.
    let volume_rpc = VolumeRpcClient::new(ctx.transport.clone(), ctx.rpc_timeout());
    if let Err(e) = volume_rpc
        .publish_service_capabilities(&RequestContext::internal("scheduler"))
        .await
    {
        tracing::warn!(error = %e, "could not ask volume services for capabilities");
    }
    // Creates that no scheduler placed before a crash are placed now (a
    // task, so start-up does not wait for capability reports); later ones
    // are picked up by the periodic pass once their cast is surely lost.
    let resumer = manager.clone();
    workers.push(tokio::spawn(async move {
        resumer.resume_unplaced_creates(Duration::ZERO).await
    }));
    let lost_after = ctx.rpc_timeout() * 2;
    let reaper = manager.clone();
    workers.push(spawn_worker(
        Arc::new(Periodic {
            name: "scheduler_cleanup",
            interval: Duration::from_secs(config.periodic_interval),
            run: move || {
                let reaper = reaper.clone();
                async move {
                    reaper.resume_unplaced_creates(lost_after).await;
                    reaper.reap_expired_messages().await;
                }
            },
        }),
        fuzzy_delay(config.periodic_fuzzy_delay),
        cancel.clone(),
    ));
    tracing::info!(host, "scheduler started");
    Ok(RunningService {
        host: host.to_owned(),
        binary: SCHEDULER_BINARY,
        consumers: vec![consumer],
        workers_cancel: cancel,
        workers,
        gate: None,
        volume_manager: None,
        scheduler_manager: Some(manager),
        backup_manager: None,
    })
}

/// The image data path of one backend: the Glance client `[DEFAULT]`
/// configures, `qemu-img` under the conversion limits, the backend's
/// conversion settings. `None` (logged) when the Glance client cannot be
/// built: the backend then refuses image operations.
fn image_transfer(
    options: &clinker_config::ImageOptions,
    backend: &str,
    runner: Arc<dyn CommandRunner>,
) -> Option<Arc<clinker_image::ImageTransfer>> {
    let glance = match clinker_image::GlanceClient::new(
        clinker_image::GlanceSettings::from_options(options),
    ) {
        Ok(glance) => Arc::new(glance),
        Err(e) => {
            tracing::error!(backend, error = %e, "no image service for this backend");
            return None;
        }
    };
    Some(Arc::new(clinker_image::ImageTransfer::new(
        glance,
        runner,
        clinker_image::qemu::QemuImgLimits::from_options(options),
        clinker_image::TransferSettings::from_options(options, backend),
    )))
}

/// Starts the volume service of one backend, named `host@backend`.
///
/// # Errors
/// Registration, consumers or driver construction failures (a driver that
/// builds but fails to initialise does not fail the start: the backend is
/// reported down and the service stays visible).
pub async fn start_volume(
    ctx: &ServiceContext,
    backend: &BackendConfig,
    runner: Arc<dyn CommandRunner>,
) -> Result<RunningService, ServiceError> {
    let config = &ctx.config.default;
    let node = backend
        .backend_host
        .clone()
        .unwrap_or_else(|| config.host.clone());
    let host = Host::backend(node, backend.name.clone()).service_host();
    let images = image_transfer(&ctx.config.image, &backend.name, runner.clone());
    let driver = clinker_drivers::build_driver(backend, runner)
        .map_err(|e| ServiceError::Config(format!("backend [{}]: {e}", backend.name)))?;
    let registration = ServiceRegistration {
        host: host.clone(),
        binary: VOLUME_BINARY.into(),
        topic: clinker_rpc::volume::TOPIC.into(),
        availability_zone: backend
            .availability_zone
            .clone()
            .unwrap_or_else(|| config.storage_availability_zone.clone()),
        rpc_current_version: clinker_rpc::volume::CURRENT_VERSION.to_string(),
    };
    let service_id = register(ctx, &registration).await?;
    let manager = VolumeManager::new(
        ManagerOptions {
            host: host.clone(),
            message_ttl: config.message_ttl,
        },
        backend.clone(),
        driver,
        ctx.db.clone(),
        SchedulerRpcClient::new(ctx.transport.clone(), ctx.rpc_timeout()),
        Notifier::new(
            ctx.transport.clone(),
            format!("volume.{host}"),
            ctx.clock.clone(),
        ),
        ctx.clock.clone(),
    );
    let manager = manager.with_image_cache(clinker_volume::ImageCacheSettings::from_options(
        &ctx.config.image,
        &backend.name,
    ));
    let manager = Arc::new(match images {
        Some(images) => manager.with_images(images),
        None => manager,
    });
    // Staged image files a crash left behind (Cinder's
    // `_clean_image_conversion_dir` … on every start).
    match clinker_image::cleanup_conversion_dir(
        &ctx.config.image.image_conversion_dir,
        &backend.name,
    )
    .await
    {
        Ok(0) => {}
        Ok(removed) => {
            tracing::info!(backend = %backend.name, removed, "removed staged image files")
        }
        Err(e) => {
            tracing::warn!(backend = %backend.name, error = %e, "cannot clean the image conversion directory")
        }
    }
    let cancel = CancellationToken::new();
    let probe_manager = manager.clone();
    let health: HealthProbe = Arc::new(move || {
        let h = probe_manager.health();
        Some((
            if h.up {
                "up".to_owned()
            } else {
                "down".to_owned()
            },
            h.reason,
        ))
    });
    let mut workers = vec![start_heartbeat(
        ctx,
        registration,
        service_id,
        Some(health),
        cancel.clone(),
    )];
    manager.init_host().await;
    // Show the outcome of the driver's initialisation at once rather than
    // at the next heartbeat.
    let h = manager.health();
    let state = if h.up { "up" } else { "down" };
    if let Err(e) = ctx
        .db
        .report_service_state(service_id, Some((state, h.reason.as_deref())))
        .await
    {
        tracing::warn!(host = %host, error = %e, "could not record the backend state");
    }
    let topic = clinker_rpc::volume::TOPIC;
    let consumer = ctx
        .transport
        .consume(
            vec![
                Subscription::Queue(Target::topic(topic)),
                Subscription::Queue(Target::server(topic, &host)),
                Subscription::Fanout(topic.to_owned()),
            ],
            Arc::new(VolumeEndpoint::new(manager.clone())),
        )
        .await
        .map_err(|source| ServiceError::Consume {
            host: host.clone(),
            source,
        })?;
    let periodic_manager = manager.clone();
    let stale_after = ctx.rpc_timeout() * 2;
    workers.push(spawn_worker(
        Arc::new(Periodic {
            name: "volume_periodic_tasks",
            interval: Duration::from_secs(
                config
                    .periodic_interval
                    .min(config.backend_stats_polling_interval),
            ),
            run: move || {
                let manager = periodic_manager.clone();
                async move {
                    let context = RequestContext::internal("periodic");
                    if manager.retry_initialize().await {
                        manager.recover(&context, Some(stale_after)).await;
                    }
                    manager.publish_capabilities(&context).await;
                }
            },
        }),
        fuzzy_delay(config.periodic_fuzzy_delay),
        cancel.clone(),
    ));
    tracing::info!(host = %host, driver = backend.driver.short_name(), up = manager.health().up, "volume service started");
    Ok(RunningService {
        host,
        binary: VOLUME_BINARY,
        consumers: vec![consumer],
        workers_cancel: cancel,
        gate: Some(manager.gate().clone()),
        workers,
        volume_manager: Some(manager),
        scheduler_manager: None,
        backup_manager: None,
    })
}

/// Starts the backup service on `[DEFAULT] host`: the `backup_driver`
/// (POSIX under `backup_posix_path` when unset), its services row and
/// heartbeat, `init_host` recovery, then the `cinder-backup`,
/// `cinder-backup.<host>` and fanout consumers.
///
/// # Errors
/// Registration, consumers, or a driver that cannot be built.
pub async fn start_backup(ctx: &ServiceContext) -> Result<RunningService, ServiceError> {
    let config = &ctx.config.default;
    let host = config.host.clone();
    let driver = ctx.config.backup.driver.unwrap_or(BackupDriverKind::Posix);
    let registration = ServiceRegistration {
        host: host.clone(),
        binary: BACKUP_BINARY.into(),
        topic: clinker_rpc::backup::TOPIC.into(),
        availability_zone: config.storage_availability_zone.clone(),
        rpc_current_version: clinker_rpc::backup::CURRENT_VERSION.to_string(),
    };
    let manager = Arc::new(BackupManager::new(
        BackupManagerOptions {
            host: host.clone(),
            availability_zone: config.storage_availability_zone.clone(),
            driver,
            options: ctx.config.backup.clone(),
            message_ttl: config.message_ttl,
        },
        ctx.db.clone(),
        VolumeRpcClient::new(ctx.transport.clone(), ctx.rpc_timeout()),
        Notifier::new(
            ctx.transport.clone(),
            format!("backup.{host}"),
            ctx.clock.clone(),
        ),
    ));
    manager
        .check_driver()
        .map_err(|e| ServiceError::Config(format!("backup_driver {}: {e}", driver.class_path())))?;
    let service_id = register(ctx, &registration).await?;
    let cancel = CancellationToken::new();
    let workers = vec![start_heartbeat(
        ctx,
        registration,
        service_id,
        None,
        cancel.clone(),
    )];
    manager.init_host().await;
    let topic = clinker_rpc::backup::TOPIC;
    let consumer = ctx
        .transport
        .consume(
            vec![
                Subscription::Queue(Target::topic(topic)),
                Subscription::Queue(Target::server(topic, &host)),
                Subscription::Fanout(topic.to_owned()),
            ],
            Arc::new(BackupEndpoint::new(manager.clone())),
        )
        .await
        .map_err(|source| ServiceError::Consume {
            host: host.clone(),
            source,
        })?;
    tracing::info!(host = %host, driver = driver.class_path(), "backup service started");
    Ok(RunningService {
        host,
        binary: BACKUP_BINARY,
        consumers: vec![consumer],
        workers_cancel: cancel,
        gate: Some(manager.gate().clone()),
        workers,
        volume_manager: None,
        scheduler_manager: None,
        backup_manager: Some(manager),
    })
}
