//! The operation journal, pool capacity claims and user messages.

use std::collections::BTreeMap;

use clinker_types::model::{JournalEntry, UserMessage};
use clinker_types::{MessageId, Timestamp, VolumeId};

use crate::batch::{Batch, in_batched_transaction};
use crate::error::DbError;
use crate::pool::{Db, in_transaction};
use crate::query::Arg;
use crate::rows::{self, JOURNAL_COLUMNS, MESSAGE_COLUMNS};
use crate::volumes::service_host_of;
use crate::{CapacityRepository, ClaimOutcome, JournalRepository, MessageRepository, Page};

#[async_trait::async_trait]
impl JournalRepository for Db {
    async fn journal_for_backend(&self, service_host: &str) -> Result<Vec<JournalEntry>, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {JOURNAL_COLUMNS} FROM workers WHERE service_host = ? ORDER BY id"
        ));
        let found = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(service_host)
            .fetch_all(&mut *self.reader().await?)
            .await?;
        found.iter().map(rows::journal).collect()
    }

    async fn unplaced_journal(&self, older_than: Timestamp) -> Result<Vec<JournalEntry>, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {JOURNAL_COLUMNS} FROM workers WHERE service_host IS NULL AND created_at < ? ORDER BY id"
        ));
        let found = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(older_than.as_micros())
            .fetch_all(&mut *self.reader().await?)
            .await?;
        found.iter().map(rows::journal).collect()
    }

    async fn journal_detail(
        &self,
        resource_id: &str,
    ) -> Result<Option<serde_json::Value>, DbError> {
        let text: Option<Option<String>> =
            sqlx::query_scalar(self.q("SELECT detail_json FROM workers WHERE resource_id = ?"))
                .bind(resource_id)
                .fetch_optional(&mut *self.reader().await?)
                .await?;
        Ok(text.flatten().and_then(|t| serde_json::from_str(&t).ok()))
    }
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

#[async_trait::async_trait]
impl MessageRepository for Db {
    async fn create_message(&self, m: &UserMessage) -> Result<(), DbError> {
        sqlx::query(self.q(
            "INSERT INTO messages (id, project_id, request_id, resource_type, resource_uuid, event_id, message_level, \
             user_message, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(m.id.to_string())
        .bind(m.project_id.as_str())
        .bind(m.request_id.as_deref())
        .bind(m.resource_type.as_str())
        .bind(m.resource_uuid.as_deref())
        .bind(m.event_id.as_str())
        .bind(m.message_level.as_str())
        .bind(m.user_message.as_str())
        .bind(m.created_at.as_micros())
        .bind(m.expires_at.as_micros())
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    async fn list_messages(
        &self,
        project_id: Option<&str>,
        page: &Page<MessageId>,
    ) -> Result<Vec<UserMessage>, DbError> {
        use crate::query::{Arg, bind_all};
        let mut sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE 1 = 1");
        let mut args = Vec::new();
        if let Some(p) = project_id {
            sql.push_str(" AND project_id = ?");
            args.push(Arg::Text(p.to_owned()));
        }
        if let Some(marker) = page.marker {
            let found: Option<(i64, String)> =
                sqlx::query_as(self.q("SELECT created_at, id FROM messages WHERE id = ?"))
                    .bind(marker.to_string())
                    .fetch_optional(&mut *self.reader().await?)
                    .await?;
            let (created, id) = found.ok_or_else(|| DbError::not_found("marker", marker))?;
            sql.push_str(" AND (created_at < ? OR (created_at = ? AND id < ?))");
            args.extend([Arg::Int(created), Arg::Int(created), Arg::Text(id)]);
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC");
        crate::query::push_limit(&mut sql, &mut args, page.limit, page.offset);
        let sql = self.dynamic(sql);
        let found = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
            .fetch_all(&mut *self.reader().await?)
            .await?;
        found.iter().map(rows::message).collect()
    }

    async fn get_message(&self, id: MessageId) -> Result<UserMessage, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?"
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.to_string())
            .fetch_optional(&mut *self.reader().await?)
            .await?
            .ok_or_else(|| DbError::not_found("message", id))?;
        rows::message(&row)
    }

    async fn delete_message(&self, id: MessageId) -> Result<(), DbError> {
        let deleted = sqlx::query(self.q("DELETE FROM messages WHERE id = ?"))
            .bind(id.to_string())
            .execute(&mut *self.writer().await?)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(DbError::not_found("message", id));
        }
        Ok(())
    }

    async fn delete_expired_messages(&self, now: Timestamp) -> Result<u64, DbError> {
        Ok(
            sqlx::query(self.q("DELETE FROM messages WHERE expires_at < ?"))
                .bind(now.as_micros())
                .execute(&mut *self.writer().await?)
                .await?
                .rows_affected(),
        )
    }
}
