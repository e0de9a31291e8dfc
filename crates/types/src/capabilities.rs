//! Backend capability reports and the pool view the scheduler works on.
//!
//! A driver reports one dictionary per backend (`volume_backend_name`,
//! `vendor_name`, `storage_protocol`, …) with a `pools` list; the scheduler
//! merges the backend keys into each pool, which is also what
//! `scheduler-stats/get_pools?detail=true` shows. The dictionaries stay JSON
//! because filters match arbitrary, driver-defined keys (CapabilitiesFilter
//! walks nested ones); [`PoolCapabilities`] adds typed accessors for the keys
//! the scheduler's arithmetic needs.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A capacity figure as drivers report it: a number of GiB, or one of the
/// two words Cinder allows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Capacity {
    /// A number of GiB.
    Gb(f64),
    /// `"infinite"`: never limits placement.
    Infinite,
    /// `"unknown"`: treated like infinite by CapacityFilter, weighed lowest.
    Unknown,
}

impl Capacity {
    /// Reads a capacity from a JSON value (number, numeric string, or word).
    pub fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::Number(n) => n.as_f64().map(Capacity::Gb),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "infinite" => Some(Capacity::Infinite),
                "unknown" => Some(Capacity::Unknown),
                other => other.parse::<f64>().ok().map(Capacity::Gb),
            },
            _ => None,
        }
    }

    /// The number, if it is one.
    pub fn as_gb(self) -> Option<f64> {
        match self {
            Capacity::Gb(v) => Some(v),
            _ => None,
        }
    }
}

/// One pool's merged capabilities (backend keys plus pool keys).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PoolCapabilities(pub Map<String, Value>);

impl PoolCapabilities {
    /// A raw key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// `pool_name`.
    pub fn pool_name(&self) -> Option<&str> {
        self.0.get("pool_name").and_then(Value::as_str)
    }

    /// `total_capacity_gb`.
    pub fn total_capacity_gb(&self) -> Option<Capacity> {
        self.0
            .get("total_capacity_gb")
            .and_then(Capacity::from_json)
    }

    /// `free_capacity_gb`.
    pub fn free_capacity_gb(&self) -> Option<Capacity> {
        self.0.get("free_capacity_gb").and_then(Capacity::from_json)
    }

    /// `provisioned_capacity_gb`, falling back to `allocated_capacity_gb` as
    /// Cinder's `PoolState.update_from_volume_capability` does.
    pub fn provisioned_capacity_gb(&self) -> f64 {
        self.number("provisioned_capacity_gb")
            .or_else(|| self.number("allocated_capacity_gb"))
            .unwrap_or(0.0)
    }

    /// `allocated_capacity_gb`.
    pub fn allocated_capacity_gb(&self) -> f64 {
        self.number("allocated_capacity_gb").unwrap_or(0.0)
    }

    /// `reserved_percentage` (0 when absent).
    pub fn reserved_percentage(&self) -> f64 {
        self.number("reserved_percentage").unwrap_or(0.0)
    }

    /// `max_over_subscription_ratio` (1.0 when absent or unparsable; the
    /// volume service resolves `auto` before reporting).
    pub fn max_over_subscription_ratio(&self) -> f64 {
        self.number("max_over_subscription_ratio").unwrap_or(1.0)
    }

    /// `thin_provisioning_support`.
    pub fn thin_provisioning_support(&self) -> bool {
        self.flag("thin_provisioning_support")
    }

    /// `thick_provisioning_support` (true when absent, as for most drivers).
    pub fn thick_provisioning_support(&self) -> bool {
        self.0
            .get("thick_provisioning_support")
            .map(truthy)
            .unwrap_or(true)
    }

    /// `backend_state` (`up` unless the driver says otherwise).
    pub fn backend_state(&self) -> &str {
        self.0
            .get("backend_state")
            .and_then(Value::as_str)
            .unwrap_or("up")
    }

    /// A numeric key, accepting numbers and numeric strings.
    pub fn number(&self, key: &str) -> Option<f64> {
        match self.0.get(key)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// A boolean key, accepting booleans and Cinder's truthy strings.
    pub fn flag(&self, key: &str) -> bool {
        self.0.get(key).map(truthy).unwrap_or(false)
    }
}

/// Cinder's `strutils.bool_from_string` over a JSON value.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|v| v != 0.0),
        Value::String(s) => {
            matches!(
                s.trim().to_ascii_lowercase().as_str(),
                "1" | "t" | "true" | "on" | "y" | "yes"
            )
        }
        _ => false,
    }
}

/// Splits a backend report into merged per-pool capabilities. A report
/// without `pools` becomes one pool named after `volume_backend_name` (or
/// `default_pool`), as Cinder's `BackendState.update_pools` does.
pub fn pools_from_report(report: &Map<String, Value>, backend_name: &str) -> Vec<PoolCapabilities> {
    let mut shared = report.clone();
    let pools = shared.remove("pools");
    let Some(Value::Array(pools)) = pools else {
        let mut single = shared;
        let name = single
            .get("volume_backend_name")
            .and_then(Value::as_str)
            .unwrap_or(backend_name)
            .to_owned();
        single.insert("pool_name".into(), Value::String(name));
        return vec![PoolCapabilities(single)];
    };
    pools
        .into_iter()
        .filter_map(|pool| match pool {
            Value::Object(pool_keys) => {
                let mut merged = shared.clone();
                merged.extend(pool_keys);
                Some(PoolCapabilities(merged))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn capacity_words_and_numbers() {
        assert_eq!(Capacity::from_json(&json!(10.5)), Some(Capacity::Gb(10.5)));
        assert_eq!(
            Capacity::from_json(&json!("infinite")),
            Some(Capacity::Infinite)
        );
        assert_eq!(
            Capacity::from_json(&json!("Unknown")),
            Some(Capacity::Unknown)
        );
        assert_eq!(Capacity::from_json(&json!("12")), Some(Capacity::Gb(12.0)));
        assert_eq!(Capacity::from_json(&json!(null)), None);
    }

    #[test]
    fn merges_backend_keys_into_pools() {
        let report = json!({
            "volume_backend_name": "lvm",
            "storage_protocol": "iSCSI",
            "pools": [{"pool_name": "a", "total_capacity_gb": 10}, {"pool_name": "b", "total_capacity_gb": 20}]
        });
        let pools = pools_from_report(report.as_object().unwrap(), "lvm");
        assert_eq!(pools.len(), 2);
        assert_eq!(pools[1].pool_name(), Some("b"));
        assert_eq!(pools[1].get("storage_protocol"), Some(&json!("iSCSI")));
        assert!(pools[0].get("pools").is_none());
    }

    #[test]
    fn report_without_pools_is_one_pool() {
        let report = json!({"volume_backend_name": "fast", "total_capacity_gb": 5});
        let pools = pools_from_report(report.as_object().unwrap(), "b1");
        assert_eq!(pools.len(), 1);
        assert_eq!(pools[0].pool_name(), Some("fast"));
    }

    #[test]
    fn truthy_strings() {
        assert!(truthy(&json!("True")));
        assert!(truthy(&json!("<is> True".trim_start_matches("<is> "))));
        assert!(!truthy(&json!("false")));
        assert!(!truthy(&json!(null)));
    }
}
