//! The operation journal (`workers`): one row per operation in flight.

use clinker_types::Timestamp;
use clinker_types::model::JournalEntry;
use clinker_types::request_spec::RequestSpec;

use crate::error::DbError;
use crate::pool::Db;
use crate::rows::{self, JOURNAL_COLUMNS};

/// Operation journal repository.
#[async_trait::async_trait]
pub trait JournalRepository {
    /// Unfinished operations owned by a volume service.
    ///
    /// # Errors
    /// Database failures.
    async fn journal_for_backend(&self, service_host: &str) -> Result<Vec<JournalEntry>, DbError>;

    /// Operations no backend has claimed, written before `older_than`.
    ///
    /// # Errors
    /// Database failures.
    async fn unplaced_journal(&self, older_than: Timestamp) -> Result<Vec<JournalEntry>, DbError>;

    /// The extra detail (JSON) recorded with an operation, e.g. an extend's
    /// new size.
    ///
    /// # Errors
    /// Database failures.
    async fn journal_detail(&self, resource_id: &str)
    -> Result<Option<serde_json::Value>, DbError>;

    /// The request a volume's create was accepted with, as its journal row
    /// keeps it until a backend finishes the create; `None` for rows
    /// written before Clinker kept it (or by creates that kept none).
    ///
    /// # Errors
    /// Database failures.
    async fn journal_request_spec(&self, volume_id: &str) -> Result<Option<RequestSpec>, DbError> {
        let detail = self.journal_detail(volume_id).await?;
        Ok(detail
            .and_then(|mut d| d.get_mut(REQUEST_SPEC).map(serde_json::Value::take))
            .and_then(|spec| serde_json::from_value(spec).ok()))
    }
}

/// The key of a create's journal detail that holds its request.
const REQUEST_SPEC: &str = "request_spec";

/// The journal detail of a create accepted with `spec`.
pub(crate) fn create_detail(spec: &RequestSpec) -> Result<serde_json::Value, DbError> {
    let spec = serde_json::to_value(spec)
        .map_err(|e| DbError::Internal(format!("cannot record the request spec: {e}")))?;
    Ok(serde_json::json!({ REQUEST_SPEC: spec }))
}

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
