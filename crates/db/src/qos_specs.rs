//! QoS specs and their association with volume types
//! ([`QosSpecsRepository`], Cinder's `qos_specs_*` and
//! `volume_type_qos_*` db API).
//!
//! A type points at its specs through `volume_types.qos_specs_id`; a specs
//! row is "in use" while any type points at it.

use std::collections::BTreeMap;

use clinker_types::volume_type_extras::{QosConsumer, QosSpecs};
use clinker_types::{QosSpecsId, Timestamp, VolumeTypeId};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::error::DbError;
use crate::pool::{Db, in_transaction};
use crate::query::{Arg, bind_all, placeholders};
use crate::{Page, SortDir};

/// QoS specs to create.
#[derive(Clone, Debug)]
pub struct NewQosSpecs {
    /// Unique name (already trimmed).
    pub name: String,
    /// Who enforces them.
    pub consumer: QosConsumer,
    /// The specs.
    pub specs: BTreeMap<String, String>,
}

/// A column QoS specs lists filter and sort on (Cinder allows `id`,
/// `name` and `consumer` as filters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QosSpecsColumn {
    /// `id`.
    Id,
    /// `name`.
    Name,
    /// `consumer`.
    Consumer,
    /// `created_at`.
    CreatedAt,
    /// `updated_at`.
    UpdatedAt,
}

impl QosSpecsColumn {
    fn sql(self) -> &'static str {
        match self {
            QosSpecsColumn::Id => "q.id",
            QosSpecsColumn::Name => "q.name",
            QosSpecsColumn::Consumer => "q.consumer",
            QosSpecsColumn::CreatedAt => "q.created_at",
            QosSpecsColumn::UpdatedAt => "q.updated_at",
        }
    }

    fn is_integer(self) -> bool {
        matches!(self, QosSpecsColumn::CreatedAt | QosSpecsColumn::UpdatedAt)
    }
}

/// A QoS specs list request.
#[derive(Clone, Debug, Default)]
pub struct QosSpecsQuery {
    /// Exact-match filters.
    pub filters: Vec<(QosSpecsColumn, String)>,
    /// Sort keys (the id is always the final tie-breaker); empty means
    /// `created_at` descending, Cinder's default.
    pub sort: Vec<(QosSpecsColumn, SortDir)>,
    /// Paging.
    pub page: Page<QosSpecsId>,
}

/// A volume type associated with QoS specs (`qos_associations`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QosAssociation {
    /// The type's id.
    pub volume_type_id: VolumeTypeId,
    /// The type's name.
    pub name: String,
}

/// QoS specs repository.
#[async_trait::async_trait]
pub trait QosSpecsRepository {
    /// Creates QoS specs.
    ///
    /// # Errors
    /// [`DbError::Conflict`] when the name is taken.
    async fn create_qos_specs(&self, new: NewQosSpecs) -> Result<QosSpecs, DbError>;

    /// One QoS specs.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn get_qos_specs(&self, id: QosSpecsId) -> Result<QosSpecs, DbError>;

    /// A page of QoS specs.
    ///
    /// # Errors
    /// [`DbError::NotFound`] for a marker that does not exist.
    async fn list_qos_specs(&self, query: &QosSpecsQuery) -> Result<Vec<QosSpecs>, DbError>;

    /// Sets the consumer (when given) and merges `specs` (a `None` value
    /// is stored as null, as Cinder stores it).
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn update_qos_specs(
        &self,
        id: QosSpecsId,
        consumer: Option<QosConsumer>,
        specs: &BTreeMap<String, Option<String>>,
    ) -> Result<QosSpecs, DbError>;

    /// Deletes keys, all or nothing.
    ///
    /// # Errors
    /// [`DbError::NotFound`] for the specs, or with `resource` `"qos spec
    /// key"` and the first missing key (nothing is deleted then).
    async fn delete_qos_specs_keys(&self, id: QosSpecsId, keys: &[String]) -> Result<(), DbError>;

    /// Deletes QoS specs; with `force` its associations go too, without it
    /// associated specs are refused.
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::InvalidState`] while associated.
    async fn delete_qos_specs(&self, id: QosSpecsId, force: bool) -> Result<(), DbError>;

    /// The types associated with the specs.
    ///
    /// # Errors
    /// [`DbError::NotFound`] for the specs.
    async fn qos_associations(&self, id: QosSpecsId) -> Result<Vec<QosAssociation>, DbError>;

    /// Associates a type with the specs (a no-op when it already is).
    ///
    /// # Errors
    /// [`DbError::NotFound`] with resource `"qos specs"` or `"volume
    /// type"`; [`DbError::Conflict`] carrying the other specs' id when the
    /// type is associated with other specs.
    async fn associate_qos_specs(
        &self,
        id: QosSpecsId,
        volume_type_id: VolumeTypeId,
    ) -> Result<(), DbError>;

    /// Removes a type's association with the specs (a no-op when the type
    /// is not associated with them).
    ///
    /// # Errors
    /// [`DbError::NotFound`] with resource `"qos specs"` or `"volume type"`.
    async fn disassociate_qos_specs(
        &self,
        id: QosSpecsId,
        volume_type_id: VolumeTypeId,
    ) -> Result<(), DbError>;

    /// Removes every association of the specs.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn disassociate_all_qos_specs(&self, id: QosSpecsId) -> Result<(), DbError>;
}

const QOS_COLUMNS: &str = "q.id, q.name, q.consumer, q.created_at, q.updated_at";

fn decode(row: &AnyRow) -> Result<QosSpecs, DbError> {
    let get = |e: sqlx::Error| DbError::Internal(format!("qos_specs row: {e}"));
    let id: String = row.try_get("id").map_err(get)?;
    let consumer: String = row.try_get("consumer").map_err(get)?;
    Ok(QosSpecs {
        id: id
            .parse()
            .map_err(|_| DbError::Internal(format!("corrupt qos specs id {id:?}")))?,
        name: row.try_get("name").map_err(get)?,
        consumer: consumer
            .parse()
            .map_err(|_| DbError::Internal(format!("corrupt qos consumer {consumer:?}")))?,
        specs: BTreeMap::new(),
        created_at: Timestamp(row.try_get("created_at").map_err(get)?),
        updated_at: row
            .try_get::<Option<i64>, _>("updated_at")
            .map_err(get)?
            .map(Timestamp),
    })
}

impl Db {
    async fn load_qos_items(&self, specs: &mut [QosSpecs]) -> Result<(), DbError> {
        if specs.is_empty() {
            return Ok(());
        }
        let args: Vec<Arg> = specs.iter().map(|s| Arg::Text(s.id.to_string())).collect();
        let sql = self.dynamic(format!(
            "SELECT qos_specs_id, spec_key, spec_value FROM qos_specs_items WHERE qos_specs_id IN ({})",
            placeholders(args.len())
        ));
        let mut by_id: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
        for row in bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
            .fetch_all(&mut *self.reader().await?)
            .await?
        {
            by_id
                .entry(row.try_get(0)?)
                .or_default()
                .insert(row.try_get(1)?, row.try_get(2)?);
        }
        for s in specs.iter_mut() {
            if let Some(items) = by_id.remove(&s.id.to_string()) {
                s.specs = items;
            }
        }
        Ok(())
    }

    /// Locks the specs row for a change; [`DbError::NotFound`] when absent.
    async fn lock_qos_specs(
        &self,
        conn: &mut AnyConnection,
        id: QosSpecsId,
    ) -> Result<(), DbError> {
        let sql = self.dynamic(format!(
            "SELECT id FROM qos_specs WHERE id = ?{}",
            self.dialect.for_update()
        ));
        let found: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
        match found {
            Some(_) => Ok(()),
            None => Err(DbError::not_found("qos specs", id)),
        }
    }

    /// The type's current QoS specs id, locking the type row.
    async fn lock_type_qos(
        &self,
        conn: &mut AnyConnection,
        volume_type_id: VolumeTypeId,
    ) -> Result<Option<String>, DbError> {
        let sql = self.dynamic(format!(
            "SELECT qos_specs_id FROM volume_types WHERE id = ?{}",
            self.dialect.for_update()
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(volume_type_id.to_string())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| DbError::not_found("volume type", volume_type_id))?;
        Ok(row.try_get(0)?)
    }

    async fn touch_qos_specs(
        &self,
        conn: &mut AnyConnection,
        id: QosSpecsId,
    ) -> Result<(), DbError> {
        sqlx::query(self.q("UPDATE qos_specs SET updated_at = ? WHERE id = ?"))
            .bind(self.now().as_micros())
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl QosSpecsRepository for Db {
    async fn create_qos_specs(&self, new: NewQosSpecs) -> Result<QosSpecs, DbError> {
        let id = QosSpecsId::new_random();
        in_transaction!(self, |tx| {
            let existing: Option<String> =
                sqlx::query_scalar(self.q("SELECT id FROM qos_specs WHERE name = ?"))
                    .bind(new.name.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            if existing.is_some() {
                return Err(DbError::Conflict(format!("qos specs {} exist", new.name)));
            }
            sqlx::query(self.q(
                "INSERT INTO qos_specs (id, name, consumer, created_at, updated_at) VALUES (?, ?, ?, ?, NULL)",
            ))
            .bind(id.to_string())
            .bind(new.name.as_str())
            .bind(new.consumer.as_str())
            .bind(self.now().as_micros())
            .execute(&mut *tx)
            .await?;
            for (key, value) in &new.specs {
                sqlx::query(self.q(
                    "INSERT INTO qos_specs_items (qos_specs_id, spec_key, spec_value) VALUES (?, ?, ?)",
                ))
                .bind(id.to_string())
                .bind(key.as_str())
                .bind(value.as_str())
                .execute(&mut *tx)
                .await?;
            }
            Ok::<_, DbError>(())
        })?;
        self.get_qos_specs(id).await
    }

    async fn get_qos_specs(&self, id: QosSpecsId) -> Result<QosSpecs, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {QOS_COLUMNS} FROM qos_specs q WHERE q.id = ?"
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.to_string())
            .fetch_optional(&mut *self.reader().await?)
            .await?
            .ok_or_else(|| DbError::not_found("qos specs", id))?;
        let mut found = vec![decode(&row)?];
        self.load_qos_items(&mut found).await?;
        found
            .pop()
            .ok_or_else(|| DbError::not_found("qos specs", id))
    }

    async fn list_qos_specs(&self, query: &QosSpecsQuery) -> Result<Vec<QosSpecs>, DbError> {
        let sort = crate::query::complete_sort(
            query.sort.clone(),
            QosSpecsColumn::CreatedAt,
            QosSpecsColumn::Id,
        );
        let keys: Vec<(String, SortDir)> = sort
            .iter()
            .map(|(c, d)| (crate::query::sort_expr(c.sql(), c.is_integer()), *d))
            .collect();
        let mut args = Vec::new();
        let mut sql = format!("SELECT {QOS_COLUMNS} FROM qos_specs q WHERE 1 = 1");
        for (column, value) in &query.filters {
            sql.push_str(&format!(" AND {} = ?", column.sql()));
            args.push(Arg::Text(value.clone()));
        }
        if let Some(marker) = query.page.marker {
            let exprs: Vec<&str> = keys.iter().map(|(e, _)| e.as_str()).collect();
            let marker_sql = self.dynamic(format!(
                "SELECT {} FROM qos_specs q WHERE q.id = ?",
                exprs.join(", ")
            ));
            let row = sqlx::query(sqlx::AssertSqlSafe(marker_sql.as_str()))
                .bind(marker.to_string())
                .fetch_optional(&mut *self.reader().await?)
                .await?
                .ok_or_else(|| DbError::not_found("marker", marker))?;
            let flags: Vec<bool> = sort.iter().map(|(c, _)| c.is_integer()).collect();
            let values = crate::query::marker_args(&row, &flags)?;
            sql.push_str(&crate::query::keyset_condition(&keys, &values, &mut args));
        }
        sql.push_str(&crate::query::order_by(&keys));
        crate::query::push_limit(&mut sql, &mut args, query.page.limit, query.page.offset);
        let sql = self.dynamic(sql);
        let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
            .fetch_all(&mut *self.reader().await?)
            .await?;
        let mut specs = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        self.load_qos_items(&mut specs).await?;
        Ok(specs)
    }

    async fn update_qos_specs(
        &self,
        id: QosSpecsId,
        consumer: Option<QosConsumer>,
        specs: &BTreeMap<String, Option<String>>,
    ) -> Result<QosSpecs, DbError> {
        in_transaction!(self, |tx| {
            self.lock_qos_specs(&mut tx, id).await?;
            if let Some(consumer) = consumer {
                sqlx::query(self.q("UPDATE qos_specs SET consumer = ? WHERE id = ?"))
                    .bind(consumer.as_str())
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            for (key, value) in specs {
                sqlx::query(
                    self.q("DELETE FROM qos_specs_items WHERE qos_specs_id = ? AND spec_key = ?"),
                )
                .bind(id.to_string())
                .bind(key.as_str())
                .execute(&mut *tx)
                .await?;
                sqlx::query(self.q(
                    "INSERT INTO qos_specs_items (qos_specs_id, spec_key, spec_value) VALUES (?, ?, ?)",
                ))
                .bind(id.to_string())
                .bind(key.as_str())
                .bind(value.as_deref())
                .execute(&mut *tx)
                .await?;
            }
            self.touch_qos_specs(&mut tx, id).await
        })?;
        self.get_qos_specs(id).await
    }

    async fn delete_qos_specs_keys(&self, id: QosSpecsId, keys: &[String]) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            self.lock_qos_specs(&mut tx, id).await?;
            // Check every key first: a request naming a missing key changes
            // nothing (Cinder deletes up to the first missing key).
            for key in keys {
                let present: Option<String> = sqlx::query_scalar(self.q(
                    "SELECT spec_key FROM qos_specs_items WHERE qos_specs_id = ? AND spec_key = ?",
                ))
                .bind(id.to_string())
                .bind(key.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                if present.is_none() {
                    return Err(DbError::not_found("qos spec key", key));
                }
            }
            for key in keys {
                sqlx::query(
                    self.q("DELETE FROM qos_specs_items WHERE qos_specs_id = ? AND spec_key = ?"),
                )
                .bind(id.to_string())
                .bind(key.as_str())
                .execute(&mut *tx)
                .await?;
            }
            self.touch_qos_specs(&mut tx, id).await
        })
    }

    async fn delete_qos_specs(&self, id: QosSpecsId, force: bool) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            self.lock_qos_specs(&mut tx, id).await?;
            let associated: i64 = sqlx::query_scalar(
                self.q("SELECT COUNT(*) FROM volume_types WHERE qos_specs_id = ?"),
            )
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await?;
            if associated > 0 && !force {
                return Err(DbError::InvalidState(format!(
                    "qos specs {id} are associated with {associated} volume types"
                )));
            }
            sqlx::query(self.q(
                "UPDATE volume_types SET qos_specs_id = NULL, updated_at = ? WHERE qos_specs_id = ?",
            ))
            .bind(self.now().as_micros())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
            for sql in [
                "DELETE FROM qos_specs_items WHERE qos_specs_id = ?",
                "DELETE FROM qos_specs WHERE id = ?",
            ] {
                sqlx::query(self.q(sql))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            Ok::<_, DbError>(())
        })
    }

    async fn qos_associations(&self, id: QosSpecsId) -> Result<Vec<QosAssociation>, DbError> {
        let exists: Option<String> =
            sqlx::query_scalar(self.q("SELECT id FROM qos_specs WHERE id = ?"))
                .bind(id.to_string())
                .fetch_optional(&mut *self.reader().await?)
                .await?;
        if exists.is_none() {
            return Err(DbError::not_found("qos specs", id));
        }
        let rows: Vec<(String, String)> =
            sqlx::query_as(self.q(
                "SELECT id, name FROM volume_types WHERE qos_specs_id = ? ORDER BY created_at, id",
            ))
            .bind(id.to_string())
            .fetch_all(&mut *self.reader().await?)
            .await?;
        rows.into_iter()
            .map(|(type_id, name)| {
                Ok(QosAssociation {
                    volume_type_id: type_id.parse().map_err(|_| {
                        DbError::Internal(format!("corrupt volume type id {type_id:?}"))
                    })?,
                    name,
                })
            })
            .collect()
    }

    async fn associate_qos_specs(
        &self,
        id: QosSpecsId,
        volume_type_id: VolumeTypeId,
    ) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            self.lock_qos_specs(&mut tx, id).await?;
            match self.lock_type_qos(&mut tx, volume_type_id).await? {
                Some(current) if current == id.to_string() => return Ok(()),
                Some(other) => return Err(DbError::Conflict(other)),
                None => {}
            }
            sqlx::query(
                self.q("UPDATE volume_types SET qos_specs_id = ?, updated_at = ? WHERE id = ?"),
            )
            .bind(id.to_string())
            .bind(self.now().as_micros())
            .bind(volume_type_id.to_string())
            .execute(&mut *tx)
            .await?;
            Ok::<_, DbError>(())
        })
    }

    async fn disassociate_qos_specs(
        &self,
        id: QosSpecsId,
        volume_type_id: VolumeTypeId,
    ) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            self.lock_qos_specs(&mut tx, id).await?;
            self.lock_type_qos(&mut tx, volume_type_id).await?;
            sqlx::query(self.q(
                "UPDATE volume_types SET qos_specs_id = NULL, updated_at = ? WHERE id = ? AND qos_specs_id = ?",
            ))
            .bind(self.now().as_micros())
            .bind(volume_type_id.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
            Ok::<_, DbError>(())
        })
    }

    async fn disassociate_all_qos_specs(&self, id: QosSpecsId) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            self.lock_qos_specs(&mut tx, id).await?;
            sqlx::query(self.q(
                "UPDATE volume_types SET qos_specs_id = NULL, updated_at = ? WHERE qos_specs_id = ?",
            ))
            .bind(self.now().as_micros())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
            Ok::<_, DbError>(())
        })
    }
}
