//! User messages.

use clinker_types::model::UserMessage;
use clinker_types::{MessageId, Timestamp};

use crate::Page;
use crate::error::DbError;
use crate::pool::Db;
use crate::rows::{self, MESSAGE_COLUMNS};

/// User messages (`/messages`).
#[async_trait::async_trait]
pub trait MessageRepository {
    /// Stores a message.
    ///
    /// # Errors
    /// Database failures.
    async fn create_message(&self, message: &UserMessage) -> Result<(), DbError>;

    /// Messages of a project (all projects for `None`), newest first.
    ///
    /// # Errors
    /// Database failures.
    async fn list_messages(
        &self,
        project_id: Option<&str>,
        page: &Page<MessageId>,
    ) -> Result<Vec<UserMessage>, DbError>;

    /// One message.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn get_message(&self, id: MessageId) -> Result<UserMessage, DbError>;

    /// Deletes a message.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn delete_message(&self, id: MessageId) -> Result<(), DbError>;

    /// Deletes messages that expired before `now`; returns how many.
    ///
    /// # Errors
    /// Database failures.
    async fn delete_expired_messages(&self, now: Timestamp) -> Result<u64, DbError>;
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
