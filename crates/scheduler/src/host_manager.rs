//! The capability cache (Cinder's `HostManager`): the latest report of every
//! volume service, turned into [`PoolState`]s for the up, enabled ones.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use clinker_types::capabilities::{Capacity, pools_from_report};
use clinker_types::model::Service;
use clinker_types::{Host, Timestamp};
use serde_json::{Map, Value};

use crate::filters::PoolState;

#[derive(Clone, Debug)]
struct BackendReport {
    capabilities: Map<String, Value>,
    timestamp: i64,
}

/// Latest capability reports, by `host@backend`.
#[derive(Debug, Default)]
pub struct HostManager {
    reports: RwLock<HashMap<String, BackendReport>>,
    first_report: tokio::sync::Notify,
}

impl HostManager {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a report unless an equally new or newer one is already there
    /// (fanout messages can arrive out of order).
    pub fn update(&self, service_host: &str, capabilities: Map<String, Value>, timestamp: i64) {
        let Ok(mut reports) = self.reports.write() else {
            return;
        };
        if reports
            .get(service_host)
            .is_some_and(|r| r.timestamp > timestamp)
        {
            tracing::debug!(host = service_host, "ignoring a stale capability report");
            return;
        }
        reports.insert(
            service_host.to_owned(),
            BackendReport {
                capabilities,
                timestamp,
            },
        );
        drop(reports);
        self.first_report.notify_waiters();
    }

    /// How many backends have reported.
    pub fn report_count(&self) -> usize {
        self.reports.read().map(|r| r.len()).unwrap_or(0)
    }

    /// Waits until a report arrives (returns at once when one is there).
    pub async fn wait_for_report(&self) {
        let notified = self.first_report.notified();
        if self.report_count() > 0 {
            return;
        }
        notified.await;
    }

    /// The pools of every up, enabled, unfrozen volume service whose driver
    /// is up, with their claimed capacity.
    pub fn pools(
        &self,
        services: &[Service],
        allocations: &BTreeMap<String, i64>,
        now: Timestamp,
        down_time_secs: u64,
    ) -> Vec<PoolState> {
        let Ok(reports) = self.reports.read() else {
            return Vec::new();
        };
        let mut pools = Vec::new();
        for service in services {
            if service.binary != "cinder-volume" || service.disabled || service.frozen {
                continue;
            }
            if !service.is_up(now, down_time_secs) {
                tracing::debug!(host = %service.host, "skipping a down volume service");
                continue;
            }
            if service.backend_state.as_deref() == Some("down") {
                continue;
            }
            let Some(report) = reports.get(&service.host) else {
                continue;
            };
            let backend_name = service
                .host
                .parse::<Host>()
                .ok()
                .and_then(|h| h.backend)
                .unwrap_or_default();
            for capabilities in pools_from_report(&report.capabilities, &backend_name) {
                if capabilities.backend_state() == "down" {
                    continue;
                }
                let pool_name = capabilities.pool_name().unwrap_or(&backend_name).to_owned();
                let host = format!("{}#{pool_name}", service.host);
                let allocated_gb = allocations.get(&host).copied().unwrap_or(0);
                pools.push(PoolState {
                    host,
                    service_host: service.host.clone(),
                    availability_zone: service.availability_zone.clone(),
                    capabilities,
                    allocated_gb,
                });
            }
        }
        pools
    }
}

/// The most GiB the database may claim on `pool`: the usable capacity
/// (total minus reserved) times the over-subscription ratio for thin
/// provisioning. Unlimited for `infinite`/`unknown` totals.
pub fn claim_limit_gb(pool: &PoolState, thick_request: bool) -> i64 {
    let caps = &pool.capabilities;
    let Some(Capacity::Gb(total)) = caps.total_capacity_gb() else {
        return i64::MAX;
    };
    let reserved = (total * caps.reserved_percentage() / 100.0).floor();
    let usable = total - reserved;
    let thin = !thick_request && caps.thin_provisioning_support();
    let limit = if thin {
        usable * caps.max_over_subscription_ratio().max(1.0)
    } else {
        usable
    };
    if !limit.is_finite() || limit >= 9.0e15 {
        return i64::MAX;
    }
    #[allow(clippy::cast_possible_truncation)]
    let limit = limit.floor() as i64;
    limit.max(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinker_types::capabilities::PoolCapabilities;
    use serde_json::json;

    fn service(host: &str, updated: i64) -> Service {
        Service {
            id: 1,
            uuid: "u".into(),
            host: host.into(),
            binary: "cinder-volume".into(),
            topic: "cinder-volume".into(),
            report_count: 1,
            disabled: false,
            disabled_reason: None,
            availability_zone: "nova".into(),
            rpc_current_version: None,
            backend_state: Some("up".into()),
            backend_state_reason: None,
            frozen: false,
            replication_status: None,
            active_backend_id: None,
            cluster_name: None,
            created_at: Timestamp(0),
            updated_at: Some(Timestamp(updated)),
            modified_at: None,
        }
    }

    fn report() -> Map<String, Value> {
        json!({"volume_backend_name": "file", "pools": [{"pool_name": "file", "total_capacity_gb": 10, "free_capacity_gb": 10}]})
            .as_object()
            .cloned()
            .unwrap()
    }

    #[test]
    fn only_up_enabled_reporting_services_give_pools() {
        let hm = HostManager::new();
        hm.update("n1@file", report(), 5);
        hm.update("n2@file", report(), 5);
        let now = Timestamp(100_000_000);
        let mut down = service("n2@file", 0);
        down.updated_at = Some(Timestamp(0));
        let mut disabled = service("n3@file", now.as_micros());
        disabled.disabled = true;
        let services = vec![
            service("n1@file", now.as_micros()),
            down,
            disabled,
            service("n4@file", now.as_micros()),
        ];
        let allocations = BTreeMap::from([("n1@file#file".to_owned(), 3)]);
        let pools = hm.pools(&services, &allocations, now, 60);
        assert_eq!(pools.len(), 1);
        assert_eq!(pools[0].host, "n1@file#file");
        assert_eq!(pools[0].allocated_gb, 3);
    }

    #[test]
    fn stale_reports_are_ignored() {
        let hm = HostManager::new();
        hm.update("n1@file", report(), 10);
        let mut older = report();
        older.insert("volume_backend_name".into(), json!("old"));
        hm.update("n1@file", older, 5);
        let now = Timestamp(1);
        let pools = hm.pools(&[service("n1@file", 1)], &BTreeMap::new(), now, 60);
        assert_eq!(
            pools[0].capabilities.get("volume_backend_name"),
            Some(&json!("file"))
        );
    }

    #[test]
    fn claim_limits() {
        let p = |caps: Value| PoolState {
            host: "h".into(),
            service_host: "h".into(),
            availability_zone: "nova".into(),
            capabilities: PoolCapabilities(caps.as_object().cloned().unwrap()),
            allocated_gb: 0,
        };
        assert_eq!(
            claim_limit_gb(
                &p(json!({"total_capacity_gb": 10, "reserved_percentage": 15})),
                false
            ),
            9
        );
        let thin = json!({"total_capacity_gb": 10, "thin_provisioning_support": true, "max_over_subscription_ratio": 2.5});
        assert_eq!(claim_limit_gb(&p(thin.clone()), false), 25);
        assert_eq!(claim_limit_gb(&p(thin), true), 10);
        assert_eq!(
            claim_limit_gb(&p(json!({"total_capacity_gb": "infinite"})), false),
            i64::MAX
        );
    }
}
