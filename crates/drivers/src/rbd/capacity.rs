//! The pool's capacity as Cinder's `RBDDriver._get_pool_stats` computes it
//! from `ceph df` and the pool quota, and the `auto` over-subscription ratio
//! as Cinder's scheduler computes it (`calculate_max_over_subscription_ratio`).

use super::json::{ClusterDf, LongListEntry};
use crate::{GIB, gib};

/// Total and free capacity of the pool, in GiB with two decimals.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct PoolCapacity {
    /// `total_capacity_gb`.
    pub(crate) total_gb: f64,
    /// `free_capacity_gb`.
    pub(crate) free_gb: f64,
}

/// The pool's capacity. With a byte quota the total is the quota and free
/// is what the quota and the cluster still allow; without one, free is the
/// pool's `max_avail` and the total the raw cluster size. With
/// `dynamic_total` (Cinder's `report_dynamic_total_capacity`, the default)
/// the total becomes stored + free, which stays right as other pools grow.
/// `None` when `ceph df` does not list the pool.
pub(crate) fn pool_capacity(
    df: &ClusterDf,
    pool: &str,
    quota_max_bytes: u64,
    dynamic_total: bool,
) -> Option<PoolCapacity> {
    let stats = &df.pools.iter().find(|p| p.name == pool)?.stats;
    let used = stats.stored();
    let (total, free) = if quota_max_bytes > 0 {
        let left = quota_max_bytes.saturating_sub(used);
        (quota_max_bytes, left.min(stats.max_avail))
    } else {
        (df.stats.total_bytes, stats.max_avail)
    };
    let total = if dynamic_total {
        free.saturating_add(used)
    } else {
        total
    };
    Some(PoolCapacity {
        total_gb: gib(total),
        free_gb: gib(free),
    })
}

/// The provisioned size of every image in the pool (snapshots excluded),
/// rounded up to whole GiB, as Cinder's `_get_usage_info`: all images
/// count, not only this backend's, since they all take space.
pub(crate) fn provisioned_gb(images: &[LongListEntry]) -> u64 {
    let bytes: u64 = images
        .iter()
        .filter(|e| e.snapshot.is_none())
        .map(|e| e.size)
        .fold(0, u64::saturating_add);
    bytes.div_ceil(GIB)
}

/// Cinder's `auto` ratio: 1 + provisioned / (used + 1), or 20 while
/// nothing is provisioned.
pub(crate) fn auto_over_subscription_ratio(provisioned_gb: f64, capacity: PoolCapacity) -> f64 {
    const INITIAL_AUTO_RATIO: f64 = 20.0;
    if provisioned_gb == 0.0 {
        return INITIAL_AUTO_RATIO;
    }
    let used = capacity.total_gb - capacity.free_gb;
    1.0 + provisioned_gb / (used + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbd::json::{ClusterStats, PoolDf, PoolDfStats, parse};

    fn df(total: u64, stored: u64, max_avail: u64) -> ClusterDf {
        ClusterDf {
            stats: ClusterStats { total_bytes: total },
            pools: vec![PoolDf {
                name: "volumes".into(),
                stats: PoolDfStats {
                    stored: Some(stored),
                    bytes_used: stored * 3,
                    max_avail,
                },
            }],
        }
    }

    #[test]
    fn dynamic_total_is_stored_plus_free() {
        let c = pool_capacity(&df(300 * GIB, 10 * GIB, 90 * GIB), "volumes", 0, true).unwrap();
        assert_eq!(
            c,
            PoolCapacity {
                total_gb: 100.0,
                free_gb: 90.0
            }
        );
    }

    #[test]
    fn static_total_is_the_raw_cluster_size_without_a_quota() {
        let c = pool_capacity(&df(300 * GIB, 10 * GIB, 90 * GIB), "volumes", 0, false).unwrap();
        assert_eq!(
            c,
            PoolCapacity {
                total_gb: 300.0,
                free_gb: 90.0
            }
        );
    }

    #[test]
    fn a_quota_caps_total_and_free() {
        let d = df(300 * GIB, 10 * GIB, 90 * GIB);
        let c = pool_capacity(&d, "volumes", 50 * GIB, false).unwrap();
        assert_eq!(
            c,
            PoolCapacity {
                total_gb: 50.0,
                free_gb: 40.0
            }
        );
        let c = pool_capacity(&d, "volumes", 50 * GIB, true).unwrap();
        assert_eq!(
            c,
            PoolCapacity {
                total_gb: 50.0,
                free_gb: 40.0
            }
        );
        // A quota larger than the cluster can hold: free is what it holds.
        let c = pool_capacity(&d, "volumes", 500 * GIB, false).unwrap();
        assert_eq!(
            c,
            PoolCapacity {
                total_gb: 500.0,
                free_gb: 90.0
            }
        );
        // Over quota: nothing free, never negative.
        let c = pool_capacity(&d, "volumes", 5 * GIB, false).unwrap();
        assert_eq!(c.free_gb, 0.0);
    }

    #[test]
    fn real_ceph_df_output() {
        let d: ClusterDf = parse("df", include_str!("fixtures/ceph-df.json")).unwrap();
        let c = pool_capacity(&d, "volumes", 0, true).unwrap();
        assert_eq!(
            c,
            PoolCapacity {
                total_gb: 3.8,
                free_gb: 3.8
            }
        );
        let c = pool_capacity(&d, "volumes", 0, false).unwrap();
        assert_eq!(c.total_gb, 4.0);
        assert_eq!(pool_capacity(&d, "nopool", 0, true), None);
    }

    #[test]
    fn provisioned_counts_images_not_snapshots_rounded_up() {
        let entries: Vec<LongListEntry> =
            parse("ls -l", include_str!("fixtures/ls-long.json")).unwrap();
        assert_eq!(provisioned_gb(&entries), 3);
        let odd = vec![LongListEntry {
            image: "x".into(),
            snapshot: None,
            size: GIB + 1,
        }];
        assert_eq!(provisioned_gb(&odd), 2);
        assert_eq!(provisioned_gb(&[]), 0);
    }

    #[test]
    fn auto_ratio_follows_cinder() {
        let c = PoolCapacity {
            total_gb: 100.0,
            free_gb: 90.0,
        };
        assert_eq!(auto_over_subscription_ratio(0.0, c), 20.0);
        assert_eq!(auto_over_subscription_ratio(55.0, c), 6.0);
    }
}
