//! The invariants every end-to-end test ends on: a project's usage
//! counters equal a recount from the rows, and so do the pools' capacity
//! claims; and the rows tests look up by something other than their id.

use std::collections::BTreeMap;

use clinker_db::{
    CapacityRepository, FilterValue, QuotaRepository, SnapshotColumn, SnapshotQuery,
    SnapshotRepository,
};
use clinker_types::GroupSnapshotId;
use clinker_types::model::Snapshot;

use crate::poll::{self, Every};

fn nonzero(map: BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    map.into_iter().filter(|(_, v)| *v != 0).collect()
}

/// `project`'s usage counters that are not zero.
pub async fn usage(db: &(impl QuotaRepository + ?Sized), project: &str) -> BTreeMap<String, i64> {
    nonzero(db.quota_usages(project).await.unwrap())
}

/// `project`'s counters equal a recount of its rows.
pub async fn assert_usage_matches_recount(db: &(impl QuotaRepository + ?Sized), project: &str) {
    let recount = nonzero(db.recount_usages(project).await.unwrap());
    assert_eq!(usage(db, project).await, recount, "quota usage drifted");
}

/// `project`'s counters of `resources` equal a recount of its rows (a
/// resource with no counter counts as 0).
pub async fn assert_recount_matches(
    db: &(impl QuotaRepository + ?Sized),
    project: &str,
    resources: &[&str],
) {
    let usage = db.quota_usages(project).await.unwrap();
    let recount = db.recount_usages(project).await.unwrap();
    for resource in resources {
        let count = |map: &BTreeMap<String, i64>| map.get(*resource).copied().unwrap_or(0);
        assert_eq!(count(&usage), count(&recount), "{resource}");
    }
}

/// The pools' claims equal a recount of the placed rows; the claims.
///
/// Placements may still be running: the claims and the recount are read at
/// two instants, so this waits (10 s at most) for a moment when nothing
/// moves. Real drift never converges and still fails.
pub async fn assert_claims_match_recount(
    db: &(impl CapacityRepository + ?Sized),
) -> BTreeMap<String, i64> {
    poll::until(Every::ms(50, 10), async || {
        let claims = nonzero(db.pool_allocations().await.unwrap());
        let recount = db.recount_pool_allocations().await.unwrap();
        if claims == recount {
            Ok(claims)
        } else {
            Err(format!("pool claims drifted: {claims:?} != {recount:?}"))
        }
    })
    .await
}

/// Both: usage and claims equal their recounts.
pub async fn assert_consistent(
    db: &(impl QuotaRepository + CapacityRepository + ?Sized),
    project: &str,
) {
    assert_usage_matches_recount(db, project).await;
    assert_claims_match_recount(db).await;
}

/// The snapshots a group snapshot made, one per member volume.
pub async fn group_snapshot_members(
    db: &(impl SnapshotRepository + ?Sized),
    group_snapshot: GroupSnapshotId,
) -> Vec<Snapshot> {
    let filter = (
        SnapshotColumn::GroupSnapshotId,
        FilterValue::Eq(group_snapshot.to_string()),
    );
    db.list_snapshots(&SnapshotQuery {
        filters: vec![filter],
        ..SnapshotQuery::default()
    })
    .await
    .unwrap()
}
