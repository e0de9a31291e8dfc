//! Services: [`ServiceRepository`] and its row types, for [`Db`].

use clinker_types::model::Service;

use crate::error::DbError;
use crate::pool::{Db, in_transaction};
use crate::query::{Arg, bind_all};
use crate::rows::{self, SERVICE_COLUMNS};

/// A service registering at start-up.
#[derive(Clone, Debug)]
pub struct ServiceRegistration {
    /// `host` or `host@backend`.
    pub host: String,
    /// `cinder-volume`, `cinder-scheduler`, …
    pub binary: String,
    /// Topic.
    pub topic: String,
    /// Zone.
    pub availability_zone: String,
    /// The RPC version it serves.
    pub rpc_current_version: String,
}

/// Service repository.
#[async_trait::async_trait]
pub trait ServiceRepository {
    /// Creates or refreshes the `(host, binary)` row (keeping `disabled`).
    ///
    /// # Errors
    /// Database failures.
    async fn register_service(
        &self,
        registration: &ServiceRegistration,
    ) -> Result<Service, DbError>;

    /// One heartbeat: `report_count + 1`, `updated_at = now`, and the
    /// backend's health when given.
    ///
    /// # Errors
    /// [`DbError::NotFound`] when the row was deleted (re-register).
    async fn report_service_state(
        &self,
        id: i64,
        backend_state: Option<(&str, Option<&str>)>,
    ) -> Result<(), DbError>;

    /// Services, optionally filtered.
    ///
    /// # Errors
    /// Database failures.
    async fn list_services(
        &self,
        host: Option<&str>,
        binary: Option<&str>,
    ) -> Result<Vec<Service>, DbError>;

    /// Enables or disables a service.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn set_service_disabled(
        &self,
        host: &str,
        binary: &str,
        disabled: bool,
        reason: Option<&str>,
    ) -> Result<Service, DbError>;

    /// Removes a service row.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn delete_service(&self, id: i64) -> Result<(), DbError>;
}

impl Db {
    async fn service_by_host_binary(
        &self,
        host: &str,
        binary: &str,
    ) -> Result<Option<Service>, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {SERVICE_COLUMNS} FROM services WHERE host = ? AND binary_name = ?"
        ));
        sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(host)
            .bind(binary)
            .fetch_optional(&mut *self.writer().await?)
            .await?
            .map(|r| rows::service(&r))
            .transpose()
    }
}

#[async_trait::async_trait]
impl ServiceRepository for Db {
    async fn register_service(
        &self,
        registration: &ServiceRegistration,
    ) -> Result<Service, DbError> {
        let now = self.now().as_micros();
        let r = registration;
        in_transaction!(self, |tx| {
            let updated = sqlx::query(self.q(
                "UPDATE services SET topic = ?, availability_zone = ?, rpc_current_version = ?, updated_at = ? \
                 WHERE host = ? AND binary_name = ?",
            ))
            .bind(r.topic.as_str())
            .bind(r.availability_zone.as_str())
            .bind(r.rpc_current_version.as_str())
            .bind(now)
            .bind(r.host.as_str())
            .bind(r.binary.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                let insert = self.dynamic(self.dialect.insert_ignore(
                    "services (uuid, host, binary_name, topic, availability_zone, rpc_current_version, report_count, \
                     disabled, frozen, created_at, updated_at)",
                    "(?, ?, ?, ?, ?, ?, 0, 0, 0, ?, ?)",
                ));
                sqlx::query(sqlx::AssertSqlSafe(insert.as_str()))
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(r.host.as_str())
                    .bind(r.binary.as_str())
                    .bind(r.topic.as_str())
                    .bind(r.availability_zone.as_str())
                    .bind(r.rpc_current_version.as_str())
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok::<_, DbError>(())
        })?;
        self.service_by_host_binary(&r.host, &r.binary)
            .await?
            .ok_or_else(|| DbError::not_found("service", format!("{}/{}", r.host, r.binary)))
    }

    async fn report_service_state(
        &self,
        id: i64,
        backend_state: Option<(&str, Option<&str>)>,
    ) -> Result<(), DbError> {
        // One statement, no transaction and no retry: a heartbeat that cannot
        // be written now is simply skipped (Cinder bug 2018595).
        let now = self.now().as_micros();
        let result = match backend_state {
            Some((state, reason)) => {
                sqlx::query(self.q(
                    "UPDATE services SET report_count = report_count + 1, updated_at = ?, backend_state = ?, \
                     backend_state_reason = ? WHERE id = ?",
                ))
                .bind(now)
                .bind(state)
                .bind(reason)
                .bind(id)
                .execute(&mut *self.writer().await?)
                .await?
            }
            None => {
                sqlx::query(self.q("UPDATE services SET report_count = report_count + 1, updated_at = ? WHERE id = ?"))
                    .bind(now)
                    .bind(id)
                    .execute(&mut *self.writer().await?)
                    .await?
            }
        };
        if result.rows_affected() == 0 {
            return Err(DbError::not_found("service", id));
        }
        Ok(())
    }

    async fn list_services(
        &self,
        host: Option<&str>,
        binary: Option<&str>,
    ) -> Result<Vec<Service>, DbError> {
        let mut sql = format!("SELECT {SERVICE_COLUMNS} FROM services WHERE 1 = 1");
        let mut args = Vec::new();
        if let Some(h) = host {
            sql.push_str(" AND host = ?");
            args.push(Arg::Text(h.to_owned()));
        }
        if let Some(b) = binary {
            sql.push_str(" AND binary_name = ?");
            args.push(Arg::Text(b.to_owned()));
        }
        sql.push_str(" ORDER BY id");
        let sql = self.dynamic(sql);
        let found = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
            .fetch_all(&mut *self.reader().await?)
            .await?;
        found.iter().map(rows::service).collect()
    }

    async fn set_service_disabled(
        &self,
        host: &str,
        binary: &str,
        disabled: bool,
        reason: Option<&str>,
    ) -> Result<Service, DbError> {
        let updated = sqlx::query(self.q(
            "UPDATE services SET disabled = ?, disabled_reason = ?, modified_at = ? WHERE host = ? AND binary_name = ?",
        ))
        .bind(i64::from(disabled))
        .bind(if disabled { reason } else { None })
        .bind(self.now().as_micros())
        .bind(host)
        .bind(binary)
        .execute(&mut *self.writer().await?)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(DbError::not_found("service", format!("{host}/{binary}")));
        }
        self.service_by_host_binary(host, binary)
            .await?
            .ok_or_else(|| DbError::not_found("service", format!("{host}/{binary}")))
    }

    async fn delete_service(&self, id: i64) -> Result<(), DbError> {
        let deleted = sqlx::query(self.q("DELETE FROM services WHERE id = ?"))
            .bind(id)
            .execute(&mut *self.writer().await?)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(DbError::not_found("service", id));
        }
        Ok(())
    }
}
