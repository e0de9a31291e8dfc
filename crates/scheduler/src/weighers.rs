//! Cinder's weighers: each gives a pool a number, numbers are normalised to
//! [0, 1] across the candidates, multiplied and summed; the highest wins.

use clinker_types::capabilities::Capacity;

use crate::filters::{FilterRequest, PoolState, capacity_factors};

/// A weigher.
pub trait Weigher: Send + Sync + std::fmt::Debug {
    /// Cinder's class name.
    fn name(&self) -> &'static str;
    /// The multiplier (`capacity_weight_multiplier`, …).
    fn multiplier(&self) -> f64;
    /// The raw weight of one pool.
    fn weigh(&self, pool: &PoolState, request: &FilterRequest) -> f64;
}

/// `CapacityWeigher`: virtual free capacity (spreading by default);
/// `infinite`/`unknown` weigh lowest.
#[derive(Debug)]
pub struct CapacityWeigher {
    /// `capacity_weight_multiplier`.
    pub multiplier: f64,
}

impl Weigher for CapacityWeigher {
    fn name(&self) -> &'static str {
        "CapacityWeigher"
    }

    fn multiplier(&self) -> f64 {
        self.multiplier
    }

    fn weigh(&self, pool: &PoolState, request: &FilterRequest) -> f64 {
        let caps = &pool.capabilities;
        let (total, free) = match (caps.total_capacity_gb(), caps.free_capacity_gb()) {
            (Some(Capacity::Gb(t)), Some(Capacity::Gb(f))) => (t, f),
            _ => {
                return if self.multiplier > 0.0 {
                    -1.0
                } else {
                    f64::INFINITY
                };
            }
        };
        let thin_support = caps.thin_provisioning_support();
        let mosr = if thin_support {
            caps.max_over_subscription_ratio()
        } else {
            1.0
        };
        let (_, virtual_free) = capacity_factors(
            total,
            free,
            pool.provisioned_gb(),
            thin_support,
            mosr,
            caps.reserved_percentage(),
            !request.is_thick(),
        );
        virtual_free
    }
}

/// `AllocatedCapacityWeigher` (multiplier -1.0 by default: least allocated wins).
#[derive(Debug)]
pub struct AllocatedCapacityWeigher {
    /// `allocated_capacity_weight_multiplier`.
    pub multiplier: f64,
}

impl Weigher for AllocatedCapacityWeigher {
    fn name(&self) -> &'static str {
        "AllocatedCapacityWeigher"
    }

    fn multiplier(&self) -> f64 {
        self.multiplier
    }

    fn weigh(&self, pool: &PoolState, _request: &FilterRequest) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let claimed = pool.allocated_gb as f64;
        claimed.max(pool.capabilities.allocated_capacity_gb())
    }
}

/// Normalises raw weights to [0, 1] (all zero when they are equal), as
/// Cinder's `weights.normalize`.
pub fn normalize(weights: &[f64]) -> Vec<f64> {
    let finite: Vec<f64> = weights.iter().copied().filter(|w| w.is_finite()).collect();
    let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let range = max - min;
    weights
        .iter()
        .map(|w| {
            if !w.is_finite() {
                if *w > 0.0 { 1.0 } else { 0.0 }
            } else if range <= 0.0 {
                0.0
            } else {
                (w - min) / range
            }
        })
        .collect()
}

/// Orders `pools` best first by the weighted sum of every weigher.
/// Equal totals keep their input order (Cinder's stable sort).
pub fn order_by_weight(
    pools: Vec<PoolState>,
    request: &FilterRequest,
    weighers: &[Box<dyn Weigher>],
) -> Vec<PoolState> {
    let mut totals = vec![0.0; pools.len()];
    for weigher in weighers {
        let raw: Vec<f64> = pools.iter().map(|p| weigher.weigh(p, request)).collect();
        for (total, normalized) in totals.iter_mut().zip(normalize(&raw)) {
            *total += normalized * weigher.multiplier();
        }
    }
    let mut indexed: Vec<(f64, PoolState)> = totals.into_iter().zip(pools).collect();
    indexed.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    indexed.into_iter().map(|(_, p)| p).collect()
}

/// Builds the configured weighers (`scheduler_default_weighers`).
///
/// # Errors
/// The first unknown weigher name.
pub fn build_weighers(
    names: &[String],
    capacity_multiplier: f64,
) -> Result<Vec<Box<dyn Weigher>>, String> {
    names
        .iter()
        .map(|name| -> Result<Box<dyn Weigher>, String> {
            match name.as_str() {
                "CapacityWeigher" => Ok(Box::new(CapacityWeigher {
                    multiplier: capacity_multiplier,
                })),
                "AllocatedCapacityWeigher" => {
                    Ok(Box::new(AllocatedCapacityWeigher { multiplier: -1.0 }))
                }
                other => Err(other.to_owned()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinker_types::capabilities::PoolCapabilities;
    use serde_json::json;

    fn pool(name: &str, caps: serde_json::Value, allocated: i64) -> PoolState {
        PoolState {
            host: name.into(),
            service_host: name.into(),
            availability_zone: "nova".into(),
            capabilities: PoolCapabilities(caps.as_object().cloned().unwrap_or_default()),
            allocated_gb: allocated,
        }
    }

    #[test]
    fn normalizes_like_cinder() {
        assert_eq!(normalize(&[10.0, 20.0, 30.0]), vec![0.0, 0.5, 1.0]);
        assert_eq!(normalize(&[5.0, 5.0]), vec![0.0, 0.0]);
        assert_eq!(normalize(&[]), Vec::<f64>::new());
    }

    #[test]
    fn capacity_weigher_spreads_and_ranks_infinite_last() {
        let w: Vec<Box<dyn Weigher>> = vec![Box::new(CapacityWeigher { multiplier: 1.0 })];
        let r = FilterRequest {
            size: 1,
            ..Default::default()
        };
        let thick = |free: f64| json!({"total_capacity_gb": 100, "free_capacity_gb": free, "thick_provisioning_support": true});
        let pools = vec![
            pool("small", thick(10.0), 0),
            pool(
                "inf",
                json!({"total_capacity_gb": "infinite", "free_capacity_gb": "infinite"}),
                0,
            ),
            pool("big", thick(90.0), 0),
        ];
        let order: Vec<String> = order_by_weight(pools, &r, &w)
            .into_iter()
            .map(|p| p.host)
            .collect();
        assert_eq!(order, vec!["big", "small", "inf"]);
        // Claims recorded in the database lower a pool's weight at once.
        let pools = vec![pool("a", thick(90.0), 85), pool("b", thick(50.0), 0)];
        let order: Vec<String> = order_by_weight(pools, &r, &w)
            .into_iter()
            .map(|p| p.host)
            .collect();
        assert_eq!(order, vec!["b", "a"]);
        // A negative multiplier stacks.
        let w: Vec<Box<dyn Weigher>> = vec![Box::new(CapacityWeigher { multiplier: -1.0 })];
        let pools = vec![pool("small", thick(10.0), 0), pool("big", thick(90.0), 0)];
        assert_eq!(order_by_weight(pools, &r, &w)[0].host, "small");
    }

    #[test]
    fn builds_configured_weighers() {
        assert!(build_weighers(&["CapacityWeigher".into()], 1.0).is_ok());
        assert_eq!(
            build_weighers(&["GoodnessWeigher".into()], 1.0).unwrap_err(),
            "GoodnessWeigher"
        );
    }
}
