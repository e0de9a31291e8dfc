//! Cinder's backend filters. Each decides, for one pool and one request,
//! whether the pool can take the volume.

pub mod extra_specs_ops;

use std::collections::BTreeMap;

use clinker_types::capabilities::{Capacity, PoolCapabilities};
use serde_json::Value;

/// A pool the scheduler can place on: its merged capabilities plus what the
/// database knows (zone, claimed capacity).
#[derive(Clone, Debug, PartialEq)]
pub struct PoolState {
    /// `host@backend#pool`.
    pub host: String,
    /// `host@backend` of the owning volume service.
    pub service_host: String,
    /// The service's availability zone.
    pub availability_zone: String,
    /// The report's keys, backend and pool merged.
    pub capabilities: PoolCapabilities,
    /// GiB claimed in the database for volumes placed on this pool.
    pub allocated_gb: i64,
}

impl PoolState {
    /// Provisioned capacity for the arithmetic: the larger of what the
    /// driver reported and what the database has claimed (which is never
    /// stale).
    pub fn provisioned_gb(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let claimed = self.allocated_gb as f64;
        self.capabilities.provisioned_capacity_gb().max(claimed)
    }
}

/// What is being placed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FilterRequest {
    /// GiB needed (the growth, for an extend).
    pub size: i64,
    /// A zone the volume asked for.
    pub availability_zone: Option<String>,
    /// Zones the type allows (`RESKEY:availability_zones`).
    pub availability_zones: Vec<String>,
    /// The type's extra specs.
    pub extra_specs: BTreeMap<String, String>,
    /// An extend of an attached volume (needs `online_extend_support`).
    pub extend_attached: bool,
}

impl FilterRequest {
    /// Whether the type forces thick provisioning (`provisioning:type=thick`).
    pub fn is_thick(&self) -> bool {
        self.extra_specs
            .get("provisioning:type")
            .is_some_and(|v| v == "thick")
    }
}

/// A backend filter.
pub trait Filter: Send + Sync + std::fmt::Debug {
    /// Cinder's class name (`CapacityFilter`).
    fn name(&self) -> &'static str;
    /// Whether `pool` can take `request`.
    fn passes(&self, pool: &PoolState, request: &FilterRequest) -> bool;
}

/// `AvailabilityZoneFilter`.
#[derive(Debug, Default)]
pub struct AvailabilityZoneFilter;

impl Filter for AvailabilityZoneFilter {
    fn name(&self) -> &'static str {
        "AvailabilityZoneFilter"
    }

    fn passes(&self, pool: &PoolState, request: &FilterRequest) -> bool {
        if !request.availability_zones.is_empty() {
            return request.availability_zones.contains(&pool.availability_zone);
        }
        match &request.availability_zone {
            Some(zone) => *zone == pool.availability_zone,
            None => true,
        }
    }
}

/// Cinder's `calculate_capacity_factors`, reduced to what the filter and
/// the weigher use: `(total_available_capacity, virtual_free_capacity)`.
pub fn capacity_factors(
    total: f64,
    free: f64,
    provisioned: f64,
    thin_support: bool,
    max_over_subscription_ratio: f64,
    reserved_percentage: f64,
    thin: bool,
) -> (f64, f64) {
    let reserved_capacity = (total * reserved_percentage / 100.0).floor();
    let total_reserved_available = total - reserved_capacity;
    if thin && thin_support {
        let total_available = total_reserved_available * max_over_subscription_ratio;
        (total_available, total_available - provisioned)
    } else {
        let total_available = total_reserved_available;
        let calculated_free = total_available - provisioned;
        (total_available, calculated_free.min(free))
    }
}

/// `CapacityFilter`: thin/thick arithmetic with reserved percentage and
/// over-subscription, exactly as Cinder's.
#[derive(Debug, Default)]
pub struct CapacityFilter;

impl Filter for CapacityFilter {
    fn name(&self) -> &'static str {
        "CapacityFilter"
    }

    fn passes(&self, pool: &PoolState, request: &FilterRequest) -> bool {
        let requested = request.size;
        if requested == 0 {
            return true;
        }
        #[allow(clippy::cast_precision_loss)]
        let requested = requested as f64;
        let caps = &pool.capabilities;
        let reserved = caps.reserved_percentage();
        let free = match caps.free_capacity_gb() {
            None => return false,
            Some(Capacity::Infinite | Capacity::Unknown) => return true,
            Some(Capacity::Gb(f)) => f,
        };
        let total = match caps.total_capacity_gb() {
            Some(Capacity::Gb(t)) => t,
            Some(Capacity::Infinite | Capacity::Unknown) => return reserved == 0.0,
            None => return false,
        };
        if total <= 0.0 {
            return false;
        }
        let thin = !request.is_thick();
        let thin_support = caps.thin_provisioning_support();
        let mosr = if thin_support {
            caps.max_over_subscription_ratio()
        } else {
            1.0
        };
        let provisioned = pool.provisioned_gb();
        let (total_available, virtual_free) =
            capacity_factors(total, free, provisioned, thin_support, mosr, reserved, thin);
        if thin && thin_support && mosr >= 1.0 {
            if total_available <= 0.0 {
                return false;
            }
            let provisioned_ratio = (provisioned + requested) / total_available;
            if provisioned_ratio > mosr {
                return false;
            }
            return virtual_free >= requested;
        }
        virtual_free >= requested
    }
}

/// `CapabilitiesFilter`: every unscoped or `capabilities:`-scoped extra spec
/// must match the pool's (possibly nested) capability.
#[derive(Debug, Default)]
pub struct CapabilitiesFilter;

impl Filter for CapabilitiesFilter {
    fn name(&self) -> &'static str {
        "CapabilitiesFilter"
    }

    fn passes(&self, pool: &PoolState, request: &FilterRequest) -> bool {
        if request.extend_attached
            && pool.capabilities.get("online_extend_support") == Some(&Value::Bool(false))
        {
            return false;
        }
        for (key, requirement) in &request.extra_specs {
            let mut scope: Vec<&str> = key.split(':').collect();
            if scope.len() > 1 && scope[0] != "capabilities" {
                continue;
            }
            if scope[0] == "capabilities" {
                scope.remove(0);
            }
            let mut current: Option<&Value> = None;
            let mut found = true;
            for (i, part) in scope.iter().enumerate() {
                let next = if i == 0 {
                    pool.capabilities.get(part)
                } else {
                    current
                        .and_then(|c| c.as_object())
                        .and_then(|o| o.get(*part))
                };
                match next {
                    Some(v) => current = Some(v),
                    None => {
                        found = false;
                        break;
                    }
                }
            }
            if !found {
                return false;
            }
            let satisfied = match current {
                Some(Value::Array(items)) => items
                    .iter()
                    .any(|item| extra_specs_ops::matches(Some(item), requirement)),
                other => extra_specs_ops::matches(other, requirement),
            };
            if !satisfied {
                return false;
            }
        }
        true
    }
}

/// Builds the configured filters (`scheduler_default_filters`); unknown
/// names are reported so start-up can refuse them.
///
/// # Errors
/// The first unknown filter name.
pub fn build_filters(names: &[String]) -> Result<Vec<Box<dyn Filter>>, String> {
    names
        .iter()
        .map(|name| -> Result<Box<dyn Filter>, String> {
            match name.as_str() {
                "AvailabilityZoneFilter" => Ok(Box::new(AvailabilityZoneFilter)),
                "CapacityFilter" => Ok(Box::new(CapacityFilter)),
                "CapabilitiesFilter" => Ok(Box::new(CapabilitiesFilter)),
                other => Err(other.to_owned()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
