//! Volume types and group types: one implementation over the tables of a
//! kind ([`TypeTables`]). The two kinds have the same shape in Cinder's
//! schema (a type table, a specs table keyed by the type, an access table
//! of projects) and the same repository operations; what differs is
//! declared once per kind in [`volume`] and [`group`].

mod group;
mod volume;

use std::collections::BTreeMap;
use std::fmt::Display;

use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::DbError;
use crate::pool::{Db, in_transaction};
use crate::query::{Arg, bind_all, placeholders};
use crate::rows;

pub use volume::{NewVolumeType, VolumeTypeRepository};

/// A refusal of a delete: `sql` counts users of the type (every `?` is the
/// type's id); a count above zero refuses with `message(id, count)`.
pub(crate) struct DeleteGuard {
    sql: &'static str,
    message: fn(&str, i64) -> String,
}

/// The tables and words of one kind of type.
pub(crate) struct TypeTables {
    /// The noun in errors (`volume type`).
    kind: &'static str,
    /// The noun of one spec in errors (`extra spec`).
    spec_kind: &'static str,
    /// The noun of one grant in errors (`volume type access`).
    access_kind: &'static str,
    /// The type table.
    table: &'static str,
    /// Its columns (read through [`TypeModel::from_row`]).
    columns: &'static [&'static str],
    /// The specs table (`<fk>, spec_key, spec_value`).
    specs: &'static str,
    /// The access table (`<fk>, project_id`).
    projects: &'static str,
    /// The type's id column in the specs and access tables.
    fk: &'static str,
    /// Renaming the type renames its per-type quota resources.
    renames_quotas: bool,
    /// Changing specs stamps the type's `updated_at`.
    specs_stamp_type: bool,
    /// Checks before a delete, in order.
    delete_guards: &'static [DeleteGuard],
    /// Rows of other tables removed with the type, before its own.
    delete_also: &'static [&'static str],
}

/// A model of a kind of type.
pub(crate) trait TypeModel: Sized + Send {
    /// Its id.
    type Id: Display + Copy + Send + Sync;
    /// Its tables.
    const TABLES: TypeTables;
    /// Reads the columns of [`TypeTables::columns`].
    fn from_row(row: &AnyRow) -> Result<Self, DbError>;
    /// The id as stored.
    fn key(&self) -> String;
    /// The name.
    fn name(&self) -> &str;
    /// Its specs.
    fn specs_mut(&mut self) -> &mut BTreeMap<String, String>;
}

/// A type to create, of either kind.
pub(crate) struct NewTypeRow<'a> {
    pub(crate) name: &'a str,
    pub(crate) description: Option<&'a str>,
    pub(crate) is_public: bool,
    pub(crate) specs: &'a BTreeMap<String, String>,
}

fn columns(t: &TypeTables) -> String {
    t.columns
        .iter()
        .map(|c| format!("t.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Db {
    async fn run(
        &self,
        conn: &mut AnyConnection,
        sql: String,
        args: &[Arg],
    ) -> Result<u64, DbError> {
        let sql = self.dynamic(sql);
        Ok(
            bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), args)
                .execute(&mut *conn)
                .await?
                .rows_affected(),
        )
    }

    async fn name_taken<T: TypeModel>(
        &self,
        conn: &mut AnyConnection,
        name: &str,
    ) -> Result<bool, DbError> {
        let sql = self.dynamic(format!("SELECT id FROM {} WHERE name = ?", T::TABLES.table));
        let found: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(found.is_some())
    }

    /// The type whose `column` (`id` or `name`) is `value`, with its specs
    /// joined in one query (every volume create looks its type up).
    pub(crate) async fn one_type<T: TypeModel>(
        &self,
        column: &str,
        value: &str,
    ) -> Result<T, DbError> {
        let t = &T::TABLES;
        let sql = self.dynamic(format!(
            "SELECT {}, s.spec_key, s.spec_value FROM {} t \
             LEFT JOIN {} s ON s.{} = t.id WHERE t.{column} = ?",
            columns(t),
            t.table,
            t.specs,
            t.fk
        ));
        let found = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(value)
            .fetch_all(&mut *self.reader().await?)
            .await?;
        let first = found
            .first()
            .ok_or_else(|| DbError::not_found(t.kind, value))?;
        let mut model = T::from_row(first)?;
        for row in &found {
            if let (Some(key), Some(spec)) = (
                row.try_get::<Option<String>, _>("spec_key")?,
                row.try_get::<Option<String>, _>("spec_value")?,
            ) {
                model.specs_mut().insert(key, spec);
            }
        }
        Ok(model)
    }

    async fn load_specs<T: TypeModel>(&self, types: &mut [T]) -> Result<(), DbError> {
        let t = &T::TABLES;
        let mut pairs = Vec::new();
        let ids: Vec<String> = types.iter().map(T::key).collect();
        for chunk in ids.chunks(500) {
            let args: Vec<Arg> = chunk.iter().map(|i| Arg::Text(i.clone())).collect();
            let sql = self.dynamic(format!(
                "SELECT {}, spec_key, spec_value FROM {} WHERE {} IN ({})",
                t.fk,
                t.specs,
                t.fk,
                placeholders(args.len())
            ));
            for row in bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
                .fetch_all(&mut *self.reader().await?)
                .await?
            {
                pairs.push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
            }
        }
        let mut grouped = rows::group_pairs(pairs);
        for model in types.iter_mut() {
            if let Some(specs) = grouped.remove(&model.key()) {
                *model.specs_mut() = specs;
            }
        }
        Ok(())
    }

    /// Loads a type inside a transaction, locking its row.
    pub(crate) async fn lock_type<T: TypeModel>(
        &self,
        conn: &mut AnyConnection,
        id: T::Id,
    ) -> Result<T, DbError> {
        let t = &T::TABLES;
        let sql = self.dynamic(format!(
            "SELECT {} FROM {} t WHERE t.id = ?{}",
            columns(t),
            t.table,
            self.dialect.for_update()
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| DbError::not_found(t.kind, id))?;
        T::from_row(&row)
    }

    async fn write_specs<T: TypeModel>(
        &self,
        conn: &mut AnyConnection,
        id: T::Id,
        specs: &BTreeMap<String, String>,
    ) -> Result<(), DbError> {
        let t = &T::TABLES;
        for (key, value) in specs {
            let pair = [Arg::Text(id.to_string()), Arg::Text(key.clone())];
            self.run(
                conn,
                format!(
                    "DELETE FROM {} WHERE {} = ? AND spec_key = ?",
                    t.specs, t.fk
                ),
                &pair,
            )
            .await?;
            self.run(
                conn,
                format!(
                    "INSERT INTO {} ({}, spec_key, spec_value) VALUES (?, ?, ?)",
                    t.specs, t.fk
                ),
                &[pair[0].clone(), pair[1].clone(), Arg::Text(value.clone())],
            )
            .await?;
        }
        Ok(())
    }

    pub(crate) async fn create_type<T: TypeModel>(
        &self,
        id: T::Id,
        new: NewTypeRow<'_>,
    ) -> Result<T, DbError> {
        let t = &T::TABLES;
        in_transaction!(self, |tx| {
            if self.name_taken::<T>(&mut tx, new.name).await? {
                return Err(DbError::Conflict(format!("{} {} exists", t.kind, new.name)));
            }
            self.run(
                &mut tx,
                format!(
                    "INSERT INTO {} (id, name, description, is_public, created_at, updated_at) \
                     VALUES (?, ?, ?, ?, ?, NULL)",
                    t.table
                ),
                &[
                    Arg::Text(id.to_string()),
                    Arg::Text(new.name.to_owned()),
                    new.description
                        .map_or(Arg::Null, |d| Arg::Text(d.to_owned())),
                    Arg::Int(i64::from(new.is_public)),
                    Arg::Int(self.now().as_micros()),
                ],
            )
            .await?;
            self.write_specs::<T>(&mut tx, id, new.specs).await
        })?;
        self.one_type("id", &id.to_string()).await
    }

    /// Types, optionally only public or private ones; with `visible_to`
    /// only those the project sees. As Cinder's
    /// `_process_volume_types_filters` / `_process_group_types_filters`,
    /// asking for public types with a project also yields the private ones
    /// granted to it.
    pub(crate) async fn list_types<T: TypeModel>(
        &self,
        is_public: Option<bool>,
        visible_to: Option<&str>,
    ) -> Result<Vec<T>, DbError> {
        let t = &T::TABLES;
        let mut sql = format!("SELECT {} FROM {} t WHERE 1 = 1", columns(t), t.table);
        let mut args = Vec::new();
        let granted = format!(
            " AND (t.is_public = 1 OR EXISTS (SELECT 1 FROM {} p \
             WHERE p.{} = t.id AND p.project_id = ?))",
            t.projects, t.fk
        );
        match (is_public, visible_to) {
            (Some(true) | None, Some(project)) => {
                sql.push_str(&granted);
                args.push(Arg::Text(project.to_owned()));
            }
            (Some(public), _) => {
                sql.push_str(" AND t.is_public = ?");
                args.push(Arg::Int(i64::from(public)));
            }
            (None, None) => {}
        }
        sql.push_str(" ORDER BY t.created_at, t.id");
        let sql = self.dynamic(sql);
        let found = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
            .fetch_all(&mut *self.reader().await?)
            .await?;
        let mut types = found
            .iter()
            .map(T::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        self.load_specs(&mut types).await?;
        Ok(types)
    }

    pub(crate) async fn update_type<T: TypeModel>(
        &self,
        id: T::Id,
        name: Option<String>,
        description: Option<Option<String>>,
        is_public: Option<bool>,
    ) -> Result<T, DbError> {
        let t = &T::TABLES;
        in_transaction!(self, |tx| {
            let current = self.lock_type::<T>(&mut tx, id).await?;
            let mut sets = String::from("updated_at = ?");
            let mut args = vec![Arg::Int(self.now().as_micros())];
            if let Some(new_name) = &name
                && new_name != current.name()
            {
                if self.name_taken::<T>(&mut tx, new_name).await? {
                    return Err(DbError::Conflict(format!("{} {new_name} exists", t.kind)));
                }
                sets.push_str(", name = ?");
                args.push(Arg::Text(new_name.clone()));
                if t.renames_quotas {
                    // Per-type quota resources carry the type's name.
                    for prefix in ["volumes", "snapshots", "gigabytes"] {
                        for table in ["quota_usages", "quotas"] {
                            self.run(
                                &mut tx,
                                format!("UPDATE {table} SET resource = ? WHERE resource = ?"),
                                &[
                                    Arg::Text(format!("{prefix}_{new_name}")),
                                    Arg::Text(format!("{prefix}_{}", current.name())),
                                ],
                            )
                            .await?;
                        }
                    }
                }
            }
            if let Some(d) = &description {
                sets.push_str(", description = ?");
                args.push(d.clone().map(Arg::Text).unwrap_or(Arg::Null));
            }
            if let Some(p) = is_public {
                sets.push_str(", is_public = ?");
                args.push(Arg::Int(i64::from(p)));
            }
            args.push(Arg::Text(id.to_string()));
            self.run(
                &mut tx,
                format!("UPDATE {} SET {sets} WHERE id = ?", t.table),
                &args,
            )
            .await?;
            Ok::<_, DbError>(())
        })?;
        self.one_type("id", &id.to_string()).await
    }

    pub(crate) async fn delete_type<T: TypeModel>(&self, id: T::Id) -> Result<(), DbError> {
        let t = &T::TABLES;
        let key = id.to_string();
        in_transaction!(self, |tx| {
            self.lock_type::<T>(&mut tx, id).await?;
            for guard in t.delete_guards {
                let args = vec![Arg::Text(key.clone()); guard.sql.matches('?').count()];
                let users: i64 = bind_all(sqlx::query(self.q(guard.sql)), &args)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?;
                if users > 0 {
                    return Err(DbError::InvalidState((guard.message)(&key, users)));
                }
            }
            let own = [
                format!("DELETE FROM {} WHERE {} = ?", t.specs, t.fk),
                format!("DELETE FROM {} WHERE {} = ?", t.projects, t.fk),
                format!("DELETE FROM {} WHERE id = ?", t.table),
            ];
            let also = t.delete_also.iter().map(|s| (*s).to_owned());
            for sql in also.chain(own) {
                self.run(&mut tx, sql, &[Arg::Text(key.clone())]).await?;
            }
            Ok::<_, DbError>(())
        })
    }

    pub(crate) async fn set_specs<T: TypeModel>(
        &self,
        id: T::Id,
        specs: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, DbError> {
        let t = &T::TABLES;
        in_transaction!(self, |tx| {
            self.lock_type::<T>(&mut tx, id).await?;
            self.write_specs::<T>(&mut tx, id, specs).await?;
            if t.specs_stamp_type {
                self.run(
                    &mut tx,
                    format!("UPDATE {} SET updated_at = ? WHERE id = ?", t.table),
                    &[Arg::Int(self.now().as_micros()), Arg::Text(id.to_string())],
                )
                .await?;
            }
            Ok::<_, DbError>(())
        })?;
        let mut found: T = self.one_type("id", &id.to_string()).await?;
        Ok(std::mem::take(found.specs_mut()))
    }

    pub(crate) async fn delete_spec<T: TypeModel>(
        &self,
        id: T::Id,
        key: &str,
    ) -> Result<(), DbError> {
        let t = &T::TABLES;
        self.delete_type_row::<T>(id, t.specs, "spec_key", key, || {
            DbError::not_found(t.spec_kind, key)
        })
        .await
    }

    /// Deletes the row of `table` (a specs or access table) keyed by the
    /// type and `column = value`, under the type's lock; `missing` when
    /// there is none.
    async fn delete_type_row<T: TypeModel>(
        &self,
        id: T::Id,
        table: &str,
        column: &str,
        value: &str,
        missing: impl Fn() -> DbError + Send + Sync,
    ) -> Result<(), DbError> {
        let fk = T::TABLES.fk;
        in_transaction!(self, |tx| {
            self.lock_type::<T>(&mut tx, id).await?;
            let deleted = self
                .run(
                    &mut tx,
                    format!("DELETE FROM {table} WHERE {fk} = ? AND {column} = ?"),
                    &[Arg::Text(id.to_string()), Arg::Text(value.to_owned())],
                )
                .await?;
            if deleted == 0 {
                return Err(missing());
            }
            Ok::<_, DbError>(())
        })
    }

    pub(crate) async fn list_access<T: TypeModel>(
        &self,
        id: T::Id,
    ) -> Result<Vec<String>, DbError> {
        let t = &T::TABLES;
        self.one_type::<T>("id", &id.to_string()).await?;
        let sql = self.dynamic(format!(
            "SELECT project_id FROM {} WHERE {} = ? ORDER BY project_id",
            t.projects, t.fk
        ));
        let projects: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.to_string())
            .fetch_all(&mut *self.reader().await?)
            .await?;
        Ok(projects)
    }

    pub(crate) async fn add_access<T: TypeModel>(
        &self,
        id: T::Id,
        project_id: &str,
    ) -> Result<(), DbError> {
        let t = &T::TABLES;
        let pair = [Arg::Text(id.to_string()), Arg::Text(project_id.to_owned())];
        in_transaction!(self, |tx| {
            self.lock_type::<T>(&mut tx, id).await?;
            let sql = self.dynamic(format!(
                "SELECT project_id FROM {} WHERE {} = ? AND project_id = ?",
                t.projects, t.fk
            ));
            let existing = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &pair)
                .fetch_optional(&mut *tx)
                .await?;
            if existing.is_some() {
                return Err(DbError::Conflict(format!(
                    "project {project_id} already has access to {} {id}",
                    t.kind
                )));
            }
            self.run(
                &mut tx,
                format!(
                    "INSERT INTO {} ({}, project_id) VALUES (?, ?)",
                    t.projects, t.fk
                ),
                &pair,
            )
            .await?;
            Ok::<_, DbError>(())
        })
    }

    pub(crate) async fn remove_access<T: TypeModel>(
        &self,
        id: T::Id,
        project_id: &str,
    ) -> Result<(), DbError> {
        let t = &T::TABLES;
        self.delete_type_row::<T>(id, t.projects, "project_id", project_id, || {
            DbError::not_found(t.access_kind, format!("{id}/{project_id}"))
        })
        .await
    }
}
