//! The gauges read from the database for the Prometheus endpoint: volumes
//! and snapshots by status, the operation journal's backlog per backend,
//! and each service's heartbeat age. One process collects them (the one
//! serving `/metrics` with the API: all of these are deployment-wide).

use std::sync::Arc;
use std::time::Duration;

use clinker_db::{DbHandle, FilterValue, SnapshotColumn, SnapshotQuery, VolumeColumn, VolumeQuery};
use clinker_runtime::metrics;
use clinker_runtime::{CancellationToken, Worker, spawn_worker};
use clinker_types::Clock;
use clinker_types::status::{SnapshotStatus, VolumeStatus};
use tokio::task::JoinHandle;

use crate::VOLUME_BINARY;

/// How often the gauges are read again (a Prometheus scrape interval).
pub const COLLECT_INTERVAL: Duration = Duration::from_secs(10);

struct Collector {
    db: DbHandle,
    clock: Arc<dyn Clock>,
    failing: std::sync::atomic::AtomicBool,
}

impl Collector {
    async fn collect(&self) -> Result<(), clinker_db::DbError> {
        for status in VolumeStatus::ALL {
            let query = VolumeQuery {
                filters: vec![(
                    VolumeColumn::Status,
                    FilterValue::Eq(status.as_str().into()),
                )],
                ..VolumeQuery::default()
            };
            let count = self.db.count_volumes(&query).await?;
            metrics::gauge!(metrics::VOLUMES, "status" => status.as_str()).set(count as f64);
        }
        for status in SnapshotStatus::ALL {
            let query = SnapshotQuery {
                filters: vec![(
                    SnapshotColumn::Status,
                    FilterValue::Eq(status.as_str().into()),
                )],
                ..SnapshotQuery::default()
            };
            let count = self.db.count_snapshots(&query).await?;
            metrics::gauge!(metrics::SNAPSHOTS, "status" => status.as_str()).set(count as f64);
        }
        let now = self.clock.now().as_micros();
        for service in self.db.list_services(None, None).await? {
            let last = service.updated_at.unwrap_or(service.created_at).as_micros();
            let age = now.saturating_sub(last) as f64 / 1e6;
            metrics::gauge!(
                metrics::HEARTBEAT_AGE_SECONDS,
                "binary" => service.binary.clone(),
                "host" => service.host.clone()
            )
            .set(age.max(0.0));
            if service.binary == VOLUME_BINARY {
                let backlog = self.db.journal_for_backend(&service.host).await?.len();
                metrics::gauge!(metrics::JOURNAL_BACKLOG, "host" => service.host.clone())
                    .set(backlog as f64);
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Worker for Collector {
    fn name(&self) -> &str {
        "metrics_collector"
    }

    fn interval(&self) -> Duration {
        COLLECT_INTERVAL
    }

    async fn run_once(&self) {
        use std::sync::atomic::Ordering;
        match self.collect().await {
            Ok(()) => {
                if self.failing.swap(false, Ordering::SeqCst) {
                    tracing::info!("metrics collection recovered");
                }
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::SeqCst) {
                    tracing::warn!(error = %e, "cannot read the metrics from the database; will retry");
                }
            }
        }
    }
}

/// Reads the database gauges now and every [`COLLECT_INTERVAL`] until
/// `cancel`.
pub fn spawn_metrics_collector(
    db: DbHandle,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let collector = Arc::new(Collector {
        db,
        clock,
        failing: std::sync::atomic::AtomicBool::new(false),
    });
    spawn_worker(collector, Duration::ZERO, cancel)
}
