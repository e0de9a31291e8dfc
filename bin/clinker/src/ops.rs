//! What an operator runs beside the services: the Prometheus endpoint
//! (`[metrics] listen`) and systemd's readiness and watchdog.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::http::header;
use axum::response::IntoResponse;
use clinker_config::Config;
use clinker_db::DbHandle;
use clinker_runtime::CancellationToken;
use clinker_types::Clock;
use tokio::task::JoinHandle;

/// The running `/metrics` endpoint and the database gauges' collector.
#[derive(Debug)]
pub struct MetricsServer {
    /// Where `GET /metrics` answers.
    pub local_addr: SocketAddr,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl MetricsServer {
    /// Stops serving and collecting.
    pub async fn stop(self) {
        self.cancel.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Starts the Prometheus endpoint when `[metrics] listen` asks for one,
/// with the database gauges when `collect` gives the database (the API's
/// process: those gauges are deployment-wide). A default address that is
/// taken (another all-in-one on this machine) is a warning; an address the
/// operator set is a start-up error.
///
/// # Errors
/// The configured address cannot be bound, or another metrics recorder
/// owns the process.
pub async fn start_metrics(
    config: &Config,
    collect: Option<(DbHandle, Arc<dyn Clock>)>,
) -> anyhow::Result<Option<MetricsServer>> {
    let Some(addr) = config.ops.metrics.listen else {
        return Ok(None);
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) if !config.ops.metrics.explicit => {
            tracing::warn!(%addr, error = %e, "metrics endpoint not started: its default address is taken; set [metrics] listen");
            return Ok(None);
        }
        Err(e) => {
            return Err(e).with_context(|| format!("cannot listen on [metrics] listen = {addr}"));
        }
    };
    let local_addr = listener.local_addr()?;
    let handle = clinker_runtime::metrics::install_prometheus()
        .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
    let cancel = CancellationToken::new();
    let mut tasks = Vec::new();
    if let Some((db, clock)) = collect {
        tasks.push(clinker_service::metrics::spawn_metrics_collector(
            db,
            clock,
            cancel.clone(),
        ));
    }
    let render = handle.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = render.clone();
            async move {
                handle.run_upkeep();
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
                    .into_response()
            }
        }),
    );
    let stopped = cancel.clone();
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await
        {
            tracing::error!(error = %e, "the metrics endpoint failed");
        }
    }));
    tracing::info!(%local_addr, "metrics served at /metrics");
    Ok(Some(MetricsServer {
        local_addr,
        cancel,
        tasks,
    }))
}

/// systemd's view of the process: `READY=1` and the watchdog once it
/// serves, `STOPPING=1` when it begins to stop.
#[derive(Debug)]
pub struct Lifecycle {
    watchdog: CancellationToken,
}

impl Lifecycle {
    /// Tells systemd the process serves (`status` shows in `systemctl
    /// status`) and starts the watchdog pings if systemd asked for them.
    pub fn ready(status: &str) -> Self {
        clinker_runtime::systemd::notify_ready(status);
        let watchdog = CancellationToken::new();
        clinker_runtime::systemd::spawn_watchdog(watchdog.clone());
        Self { watchdog }
    }

    /// Tells systemd shutdown has begun. The watchdog keeps pinging while
    /// in-flight work finishes; it stops when this is dropped.
    pub fn stopping(&self) {
        clinker_runtime::systemd::notify_stopping();
    }
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        self.watchdog.cancel();
    }
}
