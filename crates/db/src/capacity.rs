//! Pool capacity claims (`pool_allocations`).

use std::collections::BTreeMap;

use clinker_types::VolumeId;

use crate::batch::{Batch, in_batched_transaction};
use crate::error::DbError;
use crate::pool::{Db, in_transaction};
use crate::query::Arg;
use crate::volumes::service_host_of;

/// What a placement claim achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The pool had room; the volume now lives there.
    Claimed,
    /// The pool is full; try another.
    NoCapacity,
    /// The volume is no longer waiting for placement (deleted, or already
    /// placed by another scheduler).
    NotWaiting,
}

/// Capacity claims on pools.
#[async_trait::async_trait]
pub trait CapacityRepository {
    /// Places a `creating`, unplaced volume on `pool` (`host@backend#pool`)
    /// if `allocated + size <= limit_gb`, in one transaction with the
    /// volume's host and its journal row.
    ///
    /// # Errors
    /// Database failures.
    async fn claim_volume_placement(
        &self,
        id: VolumeId,
        pool: &str,
        size: i64,
        limit_gb: i64,
    ) -> Result<ClaimOutcome, DbError>;

    /// Undoes a placement for a reschedule: clears the host (only if still
    /// on `pool` and `creating`) and returns the capacity.
    ///
    /// # Errors
    /// Database failures.
    async fn release_volume_placement(&self, id: VolumeId, pool: &str) -> Result<bool, DbError>;

    /// Claims `delta` more GiB on a volume's pool for an extend.
    ///
    /// # Errors
    /// Database failures.
    async fn claim_extend(
        &self,
        pool: &str,
        delta: i64,
        limit_gb: i64,
    ) -> Result<ClaimOutcome, DbError>;

    /// Allocated GiB per pool.
    ///
    /// # Errors
    /// Database failures.
    async fn pool_allocations(&self) -> Result<BTreeMap<String, i64>, DbError>;

    /// Recounts allocations from the volume rows (what the counters must equal).
    ///
    /// # Errors
    /// Database failures.
    async fn recount_pool_allocations(&self) -> Result<BTreeMap<String, i64>, DbError>;
}

impl Db {
    pub(crate) async fn ensure_pool_row(
        &self,
        conn: &mut sqlx::AnyConnection,
        pool: &str,
    ) -> Result<(), DbError> {
        let insert = self.dynamic(
            self.dialect
                .insert_ignore("pool_allocations (pool, allocated_gb)", "(?, 0)"),
        );
        sqlx::query(sqlx::AssertSqlSafe(insert.as_str()))
            .bind(pool)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl CapacityRepository for Db {
    async fn claim_volume_placement(
        &self,
        id: VolumeId,
        pool: &str,
        size: i64,
        limit_gb: i64,
    ) -> Result<ClaimOutcome, DbError> {
        let now = self.now().as_micros();
        let service_host = service_host_of(pool);
        // Why a claim's transaction rolled back without an error.
        const NOT_WAITING: &str = "the volume is not waiting for a placement";
        const POOL_FULL: &str = "pool full";
        let claim_sql = "UPDATE pool_allocations SET allocated_gb = allocated_gb + ? \
                         WHERE pool = ? AND allocated_gb + ? <= ?";
        let claim_args = || {
            vec![
                Arg::Int(size),
                Arg::Text(pool.to_owned()),
                Arg::Int(size),
                Arg::Int(limit_gb),
            ]
        };
        in_batched_transaction!(self, |tx| {
            // One round trip: take the volume (if it is gone or placed,
            // claim nothing), claim the capacity, name the journal's
            // service. A refusal rolls all three back.
            let mut batch = Batch::new();
            let placed = batch.push(
                self,
                "UPDATE volumes SET host = ?, scheduled_at = ?, updated_at = ? \
                 WHERE id = ? AND status = 'creating' AND host IS NULL",
                vec![
                    Arg::Text(pool.to_owned()),
                    Arg::Int(now),
                    Arg::Int(now),
                    Arg::Text(id.to_string()),
                ],
            );
            let claim = batch.push(self, claim_sql, claim_args());
            batch.push(
                self,
                "UPDATE workers SET service_host = ?, updated_at = ? \
                 WHERE resource_type = 'Volume' AND resource_id = ?",
                vec![
                    Arg::Text(service_host.clone()),
                    Arg::Int(now),
                    Arg::Text(id.to_string()),
                ],
            );
            let outcomes = tx.run(self, batch).await?;
            if outcomes[placed].affected == 0 {
                return Err(DbError::InvalidState(NOT_WAITING.into()));
            }
            if outcomes[claim].affected == 0 {
                // Full, or the pool's first claim: its row is made on first
                // use, then the claim is tried once more.
                self.ensure_pool_row(tx.conn(self).await?, pool).await?;
                let mut retry = Batch::new();
                let claim = retry.push(self, claim_sql, claim_args());
                if tx.run(self, retry).await?[claim].affected == 0 {
                    return Err(DbError::InvalidState(POOL_FULL.into()));
                }
            }
            Ok::<_, DbError>(ClaimOutcome::Claimed)
        })
        .or_else(|e| match e {
            DbError::InvalidState(reason) if reason == NOT_WAITING => Ok(ClaimOutcome::NotWaiting),
            DbError::InvalidState(reason) if reason == POOL_FULL => Ok(ClaimOutcome::NoCapacity),
            other => Err(other),
        })
    }

    async fn release_volume_placement(&self, id: VolumeId, pool: &str) -> Result<bool, DbError> {
        let now = self.now().as_micros();
        in_transaction!(self, |tx| {
            let size: Option<i64> =
                sqlx::query_scalar(self.q(
                    "SELECT size FROM volumes WHERE id = ? AND host = ? AND status = 'creating'",
                ))
                .bind(id.to_string())
                .bind(pool)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(size) = size else { return Ok(false) };
            sqlx::query(self.q("UPDATE volumes SET host = NULL, updated_at = ? WHERE id = ?"))
                .bind(now)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                self.q(
                    "UPDATE pool_allocations SET allocated_gb = allocated_gb - ? WHERE pool = ?",
                ),
            )
            .bind(size)
            .bind(pool)
            .execute(&mut *tx)
            .await?;
            sqlx::query(self.q("UPDATE workers SET service_host = NULL, updated_at = ? WHERE resource_type = 'Volume' AND resource_id = ?"))
                .bind(now)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            Ok::<_, DbError>(true)
        })
    }

    async fn claim_extend(
        &self,
        pool: &str,
        delta: i64,
        limit_gb: i64,
    ) -> Result<ClaimOutcome, DbError> {
        in_transaction!(self, |tx| {
            self.ensure_pool_row(&mut tx, pool).await?;
            let claimed = sqlx::query(self.q(
                "UPDATE pool_allocations SET allocated_gb = allocated_gb + ? WHERE pool = ? AND allocated_gb + ? <= ?",
            ))
            .bind(delta)
            .bind(pool)
            .bind(delta)
            .bind(limit_gb)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            Ok::<_, DbError>(if claimed == 1 {
                ClaimOutcome::Claimed
            } else {
                ClaimOutcome::NoCapacity
            })
        })
    }

    async fn pool_allocations(&self) -> Result<BTreeMap<String, i64>, DbError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT pool, allocated_gb FROM pool_allocations")
                .fetch_all(&mut *self.reader().await?)
                .await?;
        Ok(rows.into_iter().collect())
    }

    async fn recount_pool_allocations(&self) -> Result<BTreeMap<String, i64>, DbError> {
        let sql = format!(
            "SELECT host, {} FROM volumes WHERE host IS NOT NULL GROUP BY host",
            self.dialect.sum_int("size")
        );
        let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .fetch_all(&mut *self.reader().await?)
            .await?;
        Ok(rows.into_iter().collect())
    }
}
