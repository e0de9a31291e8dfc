//! Capability reports: the driver's stats plus the manager's own figures,
//! fanned out to every scheduler (Cinder's `_report_driver_status` and
//! `_publish_service_capabilities`).

use clinker_rpc::RequestContext;
use clinker_rpc::scheduler::UpdateServiceCapabilitiesArgs;
use clinker_rpc::volume::GetCapabilitiesArgs;
use clinker_types::RemoteError;
use serde_json::{Map, Value, json};

use crate::manager::VolumeManager;

/// The pool's capacity gauges from its report, in bytes (Prometheus's
/// base unit; the report's GiB), `infinite` and `unknown` capacities left
/// out rather than shown as a number.
const GIB: f64 = 1_073_741_824.0;

fn record_pool_capacity(pool_key: &str, pool: &Map<String, Value>) {
    use clinker_runtime::metrics;
    for (kind, field) in [
        ("total", "total_capacity_gb"),
        ("free", "free_capacity_gb"),
        ("allocated", "allocated_capacity_gb"),
        ("provisioned", "provisioned_capacity_gb"),
    ] {
        if let Some(value) = pool.get(field).and_then(Value::as_f64) {
            metrics::gauge!(metrics::POOL_CAPACITY_BYTES, "pool" => pool_key.to_owned(), "kind" => kind)
                .set(value * GIB);
        }
    }
}

impl VolumeManager {
    /// Asks the driver for its stats and adds `allocated_capacity_gb` per
    /// pool (from the database's claims) and the backend state. A driver
    /// that is down reports an empty pool list with `backend_state: down`.
    pub async fn collect_stats(&self) -> Map<String, Value> {
        let health = self.health();
        let mut stats = if health.up {
            match self.driver.get_volume_stats().await {
                Ok(stats) => stats,
                Err(e) => {
                    tracing::warn!(backend = %self.host(), error = %e, "driver stats failed");
                    // A backend that cannot be reached is down until the
                    // periodic re-initialisation finds it again (Cinder
                    // reports `unknown` capacities instead, which the
                    // CapacityFilter then lets through).
                    if e.kind() == clinker_types::ErrorKind::Unavailable {
                        self.set_health(false, Some(format!("{e}")));
                    }
                    let mut down = Map::new();
                    down.insert("backend_state".into(), json!("down"));
                    down.insert("pools".into(), json!([]));
                    down
                }
            }
        } else {
            let mut down = Map::new();
            down.insert("backend_state".into(), json!("down"));
            down.insert("pools".into(), json!([]));
            down
        };
        stats
            .entry("volume_backend_name")
            .or_insert_with(|| json!(self.backend.volume_backend_name));
        if !health.up {
            stats.insert("backend_state".into(), json!("down"));
        }
        let allocations = self.db.pool_allocations().await.unwrap_or_default();
        if let Some(Value::Array(pools)) = stats.get_mut("pools") {
            for pool in pools.iter_mut() {
                let Some(pool) = pool.as_object_mut() else {
                    continue;
                };
                let name = pool
                    .get("pool_name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let key = format!("{}#{name}", self.host());
                let allocated = allocations.get(&key).copied().unwrap_or(0);
                pool.insert("allocated_capacity_gb".into(), json!(allocated));
                record_pool_capacity(&key, pool);
            }
        }
        if let Ok(mut last) = self.last_stats.write() {
            *last = Some(stats.clone());
        }
        stats
    }

    /// Reports capabilities to every scheduler now.
    pub async fn publish_capabilities(&self, context: &RequestContext) {
        let stats = self.collect_stats().await;
        let args = UpdateServiceCapabilitiesArgs {
            service_name: "volume".into(),
            host: self.host().to_owned(),
            capabilities: Value::Object(stats),
            timestamp: self.clock.now().as_micros(),
        };
        if let Err(e) = self
            .scheduler_rpc
            .update_service_capabilities(context, &args)
            .await
        {
            tracing::warn!(backend = %self.host(), error = %e, "could not publish capabilities");
        }
    }

    /// Serves `get_capabilities`: the last report, or a fresh one when
    /// asked to discover or when none was made yet.
    pub(crate) async fn get_capabilities(
        &self,
        _context: &RequestContext,
        args: GetCapabilitiesArgs,
    ) -> Result<Value, RemoteError> {
        let last = self.last_stats.read().ok().and_then(|s| s.clone());
        let stats = match last {
            Some(stats) if !args.discover => stats,
            _ => self.collect_stats().await,
        };
        Ok(Value::Object(stats))
    }

    /// Serves `publish_service_capabilities` (a starting scheduler asks);
    /// a report that cannot be sent is logged, not answered.
    pub(crate) async fn publish_service_capabilities(
        &self,
        context: &RequestContext,
    ) -> Result<(), RemoteError> {
        self.publish_capabilities(context).await;
        Ok(())
    }
}
