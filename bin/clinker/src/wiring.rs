//! Builds the pieces from the configuration and runs them.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clinker_config::{Config, ConfigEnv};
use clinker_db::{Db, DbHandle, DbOptions, QuotaDefaults};
use clinker_exec::HostRunner;
use clinker_rpc::TransportHandle;
use clinker_rpc::amqp::{AmqpOptions, AmqpTransport};
use clinker_rpc::local::LocalTransport;
use clinker_rpc::scheduler::SchedulerRpcClient;
use clinker_rpc::volume::VolumeRpcClient;
use clinker_runtime::CancellationToken;
use clinker_service::{
    RunningService, ServiceContext, start_backup, start_scheduler, start_volume,
};
use clinker_types::{Clock, SystemClock};

/// This machine's host name (the default of `[DEFAULT] host`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Loads and validates the configuration, logging its warnings.
pub fn load_config(files: &[PathBuf]) -> anyhow::Result<Config> {
    let config = Config::load(
        files,
        &ConfigEnv {
            hostname: hostname(),
        },
    )?;
    log_config_warnings(config)
}

/// [`load_config`] for `clinker serve`, whose files may leave out
/// `enabled_backends` ([`Config::load_all_in_one`]).
pub fn load_all_in_one_config(files: &[PathBuf]) -> anyhow::Result<Config> {
    let config = Config::load_all_in_one(
        files,
        &ConfigEnv {
            hostname: hostname(),
        },
    )?;
    log_config_warnings(config)
}

fn log_config_warnings(config: Config) -> anyhow::Result<Config> {
    clinker_runtime::init_tracing(
        config.default.debug,
        config.ops.log_format == clinker_config::LogFormat::Json,
    );
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    Ok(config)
}

/// Opens the database and applies migrations (what `manage db sync` does).
pub async fn open_database(config: &Config) -> anyhow::Result<Db> {
    let mut options = DbOptions::new(config.database.connection.clone());
    options.max_pool_size = config.database.max_pool_size;
    options.max_overflow = config.database.max_overflow;
    options.acquire_timeout = std::time::Duration::from_secs(config.database.pool_timeout);
    options.max_lifetime = std::time::Duration::from_secs(config.database.connection_recycle_time);
    options.quota_defaults = QuotaDefaults::from_config(&config.default);
    let db = Db::connect(&options).await.with_context(|| {
        format!(
            "cannot open the database ({})",
            redact(&config.database.connection)
        )
    })?;
    Ok(db)
}

/// Hides the passwords of a connection URL for messages.
pub fn redact(url: &str) -> String {
    clinker_types::redact::redact_url(url)
}

/// The AMQP transport's options for `role` from `transport_url` and
/// `[oslo_messaging_rabbit]`.
fn amqp_options(config: &Config, url: &str, role: &str) -> AmqpOptions {
    let mut options = AmqpOptions::new(url.to_owned());
    options.control_exchange = config.default.control_exchange.clone();
    options.amqp_durable_queues = config.messaging.amqp_durable_queues;
    options.heartbeat = Duration::from_secs(config.messaging.heartbeat_timeout_threshold);
    options.connection_name = format!("clinker-{role}@{}", config.default.host);
    options.ssl = config.messaging.ssl.clone();
    options
}

/// The in-process bus, or RabbitMQ when `transport_url` is set.
async fn transport_for(config: &Config, role: &str) -> anyhow::Result<TransportHandle> {
    match &config.default.transport_url {
        None => Ok(Arc::new(LocalTransport::new())),
        Some(url) => {
            let options = amqp_options(config, url, role);
            let transport = AmqpTransport::connect(options)
                .await
                .with_context(|| format!("cannot reach the message broker at {}", redact(url)))?;
            Ok(Arc::new(transport))
        }
    }
}

/// Refuses to expose an unauthenticated API beyond this machine unless the
/// operator says so explicitly.
fn check_listen_policy(config: &Config, addr: &SocketAddr) -> anyhow::Result<()> {
    if config.default.auth_strategy.is_noauth()
        && !addr.ip().is_loopback()
        && !config.default.noauth_allow_remote
    {
        bail!(
            "refusing to serve auth_strategy = {} on {addr}: anyone who can reach it would be an administrator. \
             Listen on 127.0.0.1, configure keystone, or set noauth_allow_remote = true",
            config.default.auth_strategy.as_str()
        );
    }
    Ok(())
}

/// How the API authenticates and authorizes.
struct ApiAccess {
    authenticator: Arc<dyn clinker_api::Authenticator>,
    policy: Arc<clinker_api::policy::Policy>,
}

/// Sets up the API's authenticator and policy before anything starts, so a
/// bad `[keystone_authtoken]`, htpasswd or policy file stops start-up with
/// the reason instead of refusing requests later.
fn api_access(config: &Config) -> anyhow::Result<ApiAccess> {
    let authenticator = clinker_api::auth::authenticator_from_config(config)
        .context("cannot set up API authentication")?;
    let policy = clinker_api::policy::Policy::from_config(config)?;
    if let Some(path) = policy.source() {
        tracing::info!(policy_file = %path.display(), "policy overrides loaded");
    }
    Ok(ApiAccess {
        authenticator,
        policy,
    })
}

/// What start-up checks before serving the API, without serving it
/// (`clinker manage config check`): authentication, policy, `[ssl]` and
/// the `transport_url` with its TLS files.
///
/// # Errors
/// The first problem found.
pub fn check_api_setup(config: &Config) -> anyhow::Result<()> {
    api_access(config)?;
    clinker_api::server::tls_acceptor(&config.ops.ssl)?;
    if let Some(url) = &config.default.transport_url {
        AmqpTransport::check(&amqp_options(config, url, "check"))
            .with_context(|| format!("transport_url {}", redact(url)))?;
    }
    Ok(())
}

async fn stop_all(services: Vec<RunningService>, deadline: Duration) {
    // Volume and backup services first (they hold in-flight driver work),
    // then the scheduler.
    let (volumes, others): (Vec<_>, Vec<_>) = services
        .into_iter()
        .partition(|s| s.volume_manager.is_some() || s.backup_manager.is_some());
    let mut stops = Vec::new();
    for service in volumes {
        stops.push(tokio::spawn(service.stop(deadline)));
    }
    for stop in stops {
        let _ = stop.await;
    }
    for service in others {
        service.stop(deadline).await;
    }
}

/// A running all-in-one Clinker: API, scheduler and volume services in
/// this process.
#[derive(Debug)]
pub struct AllInOne {
    /// `http://<addr>/v3` (`https` with `[ssl]`).
    pub endpoint: String,
    /// The address the API listens on.
    pub local_addr: SocketAddr,
    /// The database handle the services use.
    pub db: DbHandle,
    /// The `host@backend` of each volume service.
    pub backends: Vec<String>,
    /// Where `/metrics` answers, when it does.
    pub metrics_addr: Option<SocketAddr>,
    metrics: Option<crate::ops::MetricsServer>,
    db_pools: Db,
    services: Vec<RunningService>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    stop_serving: CancellationToken,
    deadline: Duration,
}

/// Starts everything `clinker serve` runs, on the configured address (port
/// 0 picks a free one).
///
/// # Errors
/// Bad listen address, database or service start-up failures.
pub async fn start_all_in_one(config: Arc<Config>) -> anyhow::Result<AllInOne> {
    if config.backends.is_empty() {
        bail!("enabled_backends is empty: clinker serve needs at least one backend section");
    }
    let ip: IpAddr = config
        .default
        .osapi_volume_listen
        .parse()
        .with_context(|| {
            format!(
                "osapi_volume_listen {:?} is not an IP address",
                config.default.osapi_volume_listen
            )
        })?;
    let addr = SocketAddr::new(ip, config.default.osapi_volume_listen_port);
    check_listen_policy(&config, &addr)?;
    let access = api_access(&config)?;
    let tls = clinker_api::server::tls_acceptor(&config.ops.ssl)?;
    let scheme = if tls.is_some() { "https" } else { "http" };

    let db_pools = open_database(&config).await?;
    db_pools
        .migrate(&config.default.default_volume_type)
        .await
        .context("database migration failed")?;
    let db: DbHandle = Arc::new(db_pools.clone());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let transport = transport_for(&config, "serve").await?;
    let ctx = ServiceContext {
        db: db.clone(),
        transport: transport.clone(),
        config: config.clone(),
        clock: clock.clone(),
    };

    // The recorder first: what the services report as they start (the
    // first capability report, say) is recorded, not dropped.
    let metrics = crate::ops::start_metrics(&config, Some((db.clone(), clock.clone()))).await?;
    let mut services = vec![start_scheduler(&ctx, &config.default.host).await?];
    for backend in &config.backends {
        services.push(start_volume(&ctx, backend, Arc::new(HostRunner::new())).await?);
    }
    services.push(start_backup(&ctx).await?);
    let rpc_timeout = Duration::from_secs(config.default.rpc_response_timeout);
    let state = clinker_api::ApiState {
        db: db.clone(),
        scheduler_rpc: SchedulerRpcClient::new(transport.clone(), rpc_timeout),
        volume_rpc: VolumeRpcClient::new(transport.clone(), rpc_timeout),
        config: config.clone(),
        glance: clinker_api::services::images::glance_client(&config),
        clock,
        zones: std::sync::Arc::default(),
    };
    let app = clinker_api::router_with_policy(state, access.authenticator, access.policy);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local_addr = listener.local_addr()?;
    let stop_serving = CancellationToken::new();
    let stopped = stop_serving.clone();
    let server = tokio::spawn(clinker_api::server::serve(listener, app, tls, async move {
        stopped.cancelled().await
    }));
    let backends = services
        .iter()
        .filter(|s| s.volume_manager.is_some())
        .map(|s| s.host.clone())
        .collect();
    Ok(AllInOne {
        endpoint: format!("{scheme}://{local_addr}/v3"),
        local_addr,
        db,
        backends,
        metrics_addr: metrics.as_ref().map(|m| m.local_addr),
        metrics,
        db_pools,
        services,
        server,
        stop_serving,
        deadline: Duration::from_secs(config.default.graceful_shutdown_timeout),
    })
}

impl AllInOne {
    /// Stops accepting requests, lets in-flight requests and driver work
    /// finish (up to `graceful_shutdown_timeout`), stops the services and
    /// closes the database.
    ///
    /// # Errors
    /// The HTTP server failed.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop_serving.cancel();
        let served = self.server.await;
        tracing::info!("stopped accepting requests; finishing in-flight work");
        stop_all(self.services, self.deadline).await;
        if let Some(metrics) = self.metrics {
            metrics.stop().await;
        }
        self.db_pools.close().await;
        served
            .context("the API server task failed")?
            .context("the API server failed")?;
        Ok(())
    }
}

/// `clinker serve`.
pub async fn serve(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    // Before anything serves: a SIGTERM from then on stops cleanly.
    let signal = clinker_runtime::ShutdownSignal::install();
    let config = Arc::new(load_all_in_one_config(files)?);
    let running = start_all_in_one(config.clone()).await?;
    let endpoint = running.endpoint.clone();
    println!(
        "Clinker {} serves the Block Storage API v3 at {endpoint}",
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "  auth: {}   database: {}   backends: {}",
        config.default.auth_strategy.as_str(),
        redact(&config.database.connection),
        running.backends.join(", ")
    );
    if config.default.auth_strategy.is_noauth() {
        println!(
            "  try:  openstack --os-auth-type none --os-endpoint {endpoint} volume create --size 1 demo"
        );
    }
    if let Some(addr) = running.metrics_addr {
        println!("  metrics: http://{addr}/metrics");
    }
    println!(
        "  ready in {} ms; Ctrl-C stops it",
        started.elapsed().as_millis()
    );
    tracing::info!(%endpoint, "ready");
    let lifecycle = crate::ops::Lifecycle::ready(&format!("serving {endpoint}"));
    signal.recv().await;
    lifecycle.stopping();
    running.stop().await?;
    tracing::info!("clean shutdown");
    Ok(ExitCode::SUCCESS)
}

/// A multi-node role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `clinker api`.
    Api,
    /// `clinker scheduler`.
    Scheduler,
    /// `clinker volume`: every enabled backend as its own service (tasks in
    /// this process, each with its own services row, queue, gate and
    /// heartbeat).
    Volume,
    /// `clinker backup`: the backup service (`cinder-backup`) of this host.
    Backup,
}

/// Runs one role until Ctrl-C/SIGTERM.
pub async fn run_role(files: &[PathBuf], role: Role) -> anyhow::Result<ExitCode> {
    // Before anything serves: a SIGTERM from then on stops cleanly.
    let signal = clinker_runtime::ShutdownSignal::install();
    let config = Arc::new(load_config(files)?);
    if config.default.transport_url.is_none() {
        bail!(
            "clinker api/scheduler/volume/backup run as separate processes and need transport_url (rabbit://…); use clinker serve for all-in-one"
        );
    }
    let db_pools = open_database(&config).await?;
    db_pools
        .migrate(&config.default.default_volume_type)
        .await
        .context("database migration failed")?;
    let db: DbHandle = Arc::new(db_pools.clone());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let role_name = match role {
        Role::Api => "api",
        Role::Scheduler => "scheduler",
        Role::Volume => "volume",
        Role::Backup => "backup",
    };
    let transport = transport_for(&config, role_name).await?;
    let ctx = ServiceContext {
        db: db.clone(),
        transport: transport.clone(),
        config: config.clone(),
        clock: clock.clone(),
    };
    let deadline = Duration::from_secs(config.default.graceful_shutdown_timeout);
    match role {
        Role::Scheduler | Role::Volume | Role::Backup => {
            // Before the services start, so their start-up reports count.
            let metrics = crate::ops::start_metrics(&config, None).await?;
            let mut services = Vec::new();
            if role == Role::Scheduler {
                services.push(start_scheduler(&ctx, &config.default.host).await?);
            } else if role == Role::Backup {
                services.push(start_backup(&ctx).await?);
            } else {
                if config.backends.is_empty() {
                    bail!(
                        "enabled_backends is empty: clinker volume needs at least one backend section"
                    );
                }
                for backend in &config.backends {
                    services.push(start_volume(&ctx, backend, Arc::new(HostRunner::new())).await?);
                }
            }
            let names: Vec<String> = services.iter().map(|s| s.host.clone()).collect();
            println!("clinker {role:?} running: {}", names.join(", "));
            let lifecycle =
                crate::ops::Lifecycle::ready(&format!("{role_name} running: {}", names.join(", ")));
            signal.recv().await;
            lifecycle.stopping();
            stop_all(services, deadline).await;
            if let Some(metrics) = metrics {
                metrics.stop().await;
            }
        }
        Role::Api => {
            let ip: IpAddr = config
                .default
                .osapi_volume_listen
                .parse()
                .with_context(|| {
                    format!(
                        "osapi_volume_listen {:?} is not an IP address",
                        config.default.osapi_volume_listen
                    )
                })?;
            let addr = SocketAddr::new(ip, config.default.osapi_volume_listen_port);
            check_listen_policy(&config, &addr)?;
            let access = api_access(&config)?;
            let tls = clinker_api::server::tls_acceptor(&config.ops.ssl)?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            let rpc_timeout = Duration::from_secs(config.default.rpc_response_timeout);
            let volume_rpc = VolumeRpcClient::new(transport.clone(), rpc_timeout);
            clinker_service::pin_volume_rpc_versions(&db, &volume_rpc).await;
            let metrics =
                crate::ops::start_metrics(&config, Some((db.clone(), clock.clone()))).await?;
            let state = clinker_api::ApiState {
                db: db.clone(),
                scheduler_rpc: SchedulerRpcClient::new(transport.clone(), rpc_timeout),
                volume_rpc,
                config: config.clone(),
                glance: clinker_api::services::images::glance_client(&config),
                clock,
                zones: std::sync::Arc::default(),
            };
            let app = clinker_api::router_with_policy(state, access.authenticator, access.policy);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            let endpoint = format!("{scheme}://{}/v3", listener.local_addr()?);
            println!("clinker api serving {endpoint}");
            let lifecycle = crate::ops::Lifecycle::ready(&format!("serving {endpoint}"));
            let stopping = CancellationToken::new();
            let stopped = stopping.clone();
            let served = tokio::spawn(clinker_api::server::serve(listener, app, tls, async move {
                stopped.cancelled().await;
            }));
            signal.recv().await;
            lifecycle.stopping();
            stopping.cancel();
            served
                .await
                .context("the API server task failed")?
                .context("the API server failed")?;
            if let Some(metrics) = metrics {
                metrics.stop().await;
            }
        }
    }
    db_pools.close().await;
    tracing::info!("clean shutdown");
    Ok(ExitCode::SUCCESS)
}
