//! Volume types: [`VolumeTypeRepository`] and its row types, for [`Db`].

use std::collections::BTreeMap;

use clinker_types::VolumeTypeId;
use clinker_types::model::VolumeType;
use sqlx::AnyConnection;

use crate::error::DbError;
use crate::pool::{Db, in_transaction};
use crate::query::{Arg, bind_all, placeholders};
use crate::rows::{self, TYPE_COLUMNS};

/// A volume type to create.
#[derive(Clone, Debug)]
pub struct NewVolumeType {
    /// Unique name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Public.
    pub is_public: bool,
    /// Extra specs.
    pub extra_specs: BTreeMap<String, String>,
}

/// Volume type repository.
#[async_trait::async_trait]
pub trait VolumeTypeRepository {
    /// Creates a type.
    ///
    /// # Errors
    /// [`DbError::Conflict`] when the name exists.
    async fn create_volume_type(&self, new: NewVolumeType) -> Result<VolumeType, DbError>;

    /// One type by id.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn get_volume_type(&self, id: VolumeTypeId) -> Result<VolumeType, DbError>;

    /// One type by exact name.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn get_volume_type_by_name(&self, name: &str) -> Result<VolumeType, DbError>;

    /// Types, optionally only public ones or those `project_id` can see
    /// (public or granted).
    ///
    /// # Errors
    /// Database failures.
    async fn list_volume_types(
        &self,
        is_public: Option<bool>,
        visible_to: Option<&str>,
    ) -> Result<Vec<VolumeType>, DbError>;

    /// Updates name / description / visibility; renames the per-type quota
    /// resources with the name.
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::Conflict`].
    async fn update_volume_type(
        &self,
        id: VolumeTypeId,
        name: Option<String>,
        description: Option<Option<String>>,
        is_public: Option<bool>,
    ) -> Result<VolumeType, DbError>;

    /// Deletes a type no volume or snapshot uses.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] while in use, [`DbError::NotFound`].
    async fn delete_volume_type(&self, id: VolumeTypeId) -> Result<(), DbError>;

    /// Merges extra specs.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn set_extra_specs(
        &self,
        id: VolumeTypeId,
        specs: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, DbError>;

    /// Deletes one extra spec.
    ///
    /// # Errors
    /// [`DbError::NotFound`] for the type or the key.
    async fn delete_extra_spec(&self, id: VolumeTypeId, key: &str) -> Result<(), DbError>;

    /// Projects granted access to a private type.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn list_type_access(&self, id: VolumeTypeId) -> Result<Vec<String>, DbError>;

    /// Grants access.
    ///
    /// # Errors
    /// [`DbError::Conflict`] when already granted.
    async fn add_type_access(&self, id: VolumeTypeId, project_id: &str) -> Result<(), DbError>;

    /// Revokes access.
    ///
    /// # Errors
    /// [`DbError::NotFound`] when not granted.
    async fn remove_type_access(&self, id: VolumeTypeId, project_id: &str) -> Result<(), DbError>;

    /// Creates the named type if missing (db sync's `__DEFAULT__`).
    ///
    /// # Errors
    /// Database failures.
    async fn ensure_default_volume_type(&self, name: &str) -> Result<VolumeType, DbError>;
}

impl Db {
    /// The type whose `column` (`id` or `name`) is `value`, with its extra
    /// specs joined in one query (every volume create looks its type up).
    async fn one_volume_type(&self, column: &str, value: &str) -> Result<VolumeType, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {TYPE_COLUMNS}, s.spec_key, s.spec_value FROM volume_types \
             LEFT JOIN volume_type_extra_specs s ON s.volume_type_id = volume_types.id \
             WHERE volume_types.{column} = ?"
        ));
        let found = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(value)
            .fetch_all(&mut *self.reader().await?)
            .await?;
        let first = found
            .first()
            .ok_or_else(|| DbError::not_found("volume type", value))?;
        let mut volume_type = rows::volume_type(first)?;
        for row in &found {
            use sqlx::Row;
            if let (Some(key), Some(spec)) = (
                row.try_get::<Option<String>, _>("spec_key")?,
                row.try_get::<Option<String>, _>("spec_value")?,
            ) {
                volume_type.extra_specs.insert(key, spec);
            }
        }
        Ok(volume_type)
    }

    async fn load_extra_specs(&self, types: &mut [VolumeType]) -> Result<(), DbError> {
        if types.is_empty() {
            return Ok(());
        }
        let args: Vec<Arg> = types.iter().map(|t| Arg::Text(t.id.to_string())).collect();
        let sql = self.dynamic(format!(
            "SELECT volume_type_id, spec_key, spec_value FROM volume_type_extra_specs WHERE volume_type_id IN ({})",
            placeholders(args.len())
        ));
        let mut pairs = Vec::new();
        for row in bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
            .fetch_all(&mut *self.reader().await?)
            .await?
        {
            use sqlx::Row;
            pairs.push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
        }
        let mut grouped = rows::group_pairs(pairs);
        for t in types.iter_mut() {
            if let Some(specs) = grouped.remove(&t.id.to_string()) {
                t.extra_specs = specs;
            }
        }
        Ok(())
    }

    async fn type_exists(
        &self,
        conn: &mut AnyConnection,
        id: VolumeTypeId,
    ) -> Result<VolumeType, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {TYPE_COLUMNS} FROM volume_types WHERE id = ?{}",
            self.dialect.for_update()
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| DbError::not_found("volume type", id))?;
        rows::volume_type(&row)
    }

    async fn write_extra_specs(
        &self,
        conn: &mut AnyConnection,
        id: VolumeTypeId,
        specs: &BTreeMap<String, String>,
    ) -> Result<(), DbError> {
        for (key, value) in specs {
            sqlx::query(self.q(
                "DELETE FROM volume_type_extra_specs WHERE volume_type_id = ? AND spec_key = ?",
            ))
            .bind(id.to_string())
            .bind(key.as_str())
            .execute(&mut *conn)
            .await?;
            sqlx::query(self.q("INSERT INTO volume_type_extra_specs (volume_type_id, spec_key, spec_value) VALUES (?, ?, ?)"))
                .bind(id.to_string())
                .bind(key.as_str())
                .bind(value.as_str())
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl VolumeTypeRepository for Db {
    async fn create_volume_type(&self, new: NewVolumeType) -> Result<VolumeType, DbError> {
        let id = VolumeTypeId::new_random();
        in_transaction!(self, |tx| {
            let existing: Option<String> =
                sqlx::query_scalar(self.q("SELECT id FROM volume_types WHERE name = ?"))
                    .bind(new.name.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            if existing.is_some() {
                return Err(DbError::Conflict(format!(
                    "volume type {} exists",
                    new.name
                )));
            }
            sqlx::query(self.q(
                "INSERT INTO volume_types (id, name, description, is_public, created_at) VALUES (?, ?, ?, ?, ?)",
            ))
            .bind(id.to_string())
            .bind(new.name.as_str())
            .bind(new.description.as_deref())
            .bind(i64::from(new.is_public))
            .bind(self.now().as_micros())
            .execute(&mut *tx)
            .await?;
            self.write_extra_specs(&mut tx, id, &new.extra_specs).await
        })?;
        self.get_volume_type(id).await
    }

    async fn get_volume_type(&self, id: VolumeTypeId) -> Result<VolumeType, DbError> {
        self.one_volume_type("id", &id.to_string()).await
    }

    async fn get_volume_type_by_name(&self, name: &str) -> Result<VolumeType, DbError> {
        self.one_volume_type("name", name).await
    }

    async fn list_volume_types(
        &self,
        is_public: Option<bool>,
        visible_to: Option<&str>,
    ) -> Result<Vec<VolumeType>, DbError> {
        let mut sql = format!("SELECT {TYPE_COLUMNS} FROM volume_types t WHERE 1 = 1");
        let mut args = Vec::new();
        if let Some(public) = is_public {
            sql.push_str(" AND t.is_public = ?");
            args.push(Arg::Int(i64::from(public)));
        }
        if let Some(project) = visible_to {
            sql.push_str(
                " AND (t.is_public = 1 OR EXISTS (SELECT 1 FROM volume_type_projects p \
                 WHERE p.volume_type_id = t.id AND p.project_id = ?))",
            );
            args.push(Arg::Text(project.to_owned()));
        }
        sql.push_str(" ORDER BY t.created_at, t.id");
        let sql = self.dynamic(sql);
        let found = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
            .fetch_all(&mut *self.reader().await?)
            .await?;
        let mut types = found
            .iter()
            .map(rows::volume_type)
            .collect::<Result<Vec<_>, _>>()?;
        self.load_extra_specs(&mut types).await?;
        Ok(types)
    }

    async fn update_volume_type(
        &self,
        id: VolumeTypeId,
        name: Option<String>,
        description: Option<Option<String>>,
        is_public: Option<bool>,
    ) -> Result<VolumeType, DbError> {
        in_transaction!(self, |tx| {
            let current = self.type_exists(&mut tx, id).await?;
            let mut sets = String::from("updated_at = ?");
            let mut args = vec![Arg::Int(self.now().as_micros())];
            if let Some(new_name) = &name
                && *new_name != current.name
            {
                let clash: Option<String> =
                    sqlx::query_scalar(self.q("SELECT id FROM volume_types WHERE name = ?"))
                        .bind(new_name.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                if clash.is_some() {
                    return Err(DbError::Conflict(format!("volume type {new_name} exists")));
                }
                sets.push_str(", name = ?");
                args.push(Arg::Text(new_name.clone()));
                // Per-type quota resources carry the type's name.
                for prefix in ["volumes", "snapshots", "gigabytes"] {
                    for table in ["quota_usages", "quotas"] {
                        let sql = self.dynamic(format!(
                            "UPDATE {table} SET resource = ? WHERE resource = ?"
                        ));
                        sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                            .bind(format!("{prefix}_{new_name}"))
                            .bind(format!("{prefix}_{}", current.name))
                            .execute(&mut *tx)
                            .await?;
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
            let sql = self.dynamic(format!("UPDATE volume_types SET {sets} WHERE id = ?"));
            bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
                .execute(&mut *tx)
                .await?;
            Ok::<_, DbError>(())
        })?;
        self.get_volume_type(id).await
    }

    async fn delete_volume_type(&self, id: VolumeTypeId) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            self.type_exists(&mut tx, id).await?;
            let users: i64 = sqlx::query_scalar(self.q(
                "SELECT (SELECT COUNT(*) FROM volumes WHERE volume_type_id = ?) + \
                 (SELECT COUNT(*) FROM snapshots WHERE volume_type_id = ?) + \
                 (SELECT COUNT(*) FROM group_volume_types WHERE volume_type_id = ?)",
            ))
            .bind(id.to_string())
            .bind(id.to_string())
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await?;
            if users > 0 {
                return Err(DbError::InvalidState(format!(
                    "volume type {id} is still in use"
                )));
            }
            // A project's default type may not go (checked here too so a
            // concurrent default-type set cannot be left dangling).
            let defaults: i64 = sqlx::query_scalar(
                self.q("SELECT COUNT(*) FROM default_volume_types WHERE volume_type_id = ?"),
            )
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await?;
            if defaults > 0 {
                return Err(DbError::InvalidState(format!(
                    "volume type {id} is the default of {defaults} projects"
                )));
            }
            for sql in [
                "DELETE FROM encryption WHERE volume_type_id = ?",
                "DELETE FROM volume_type_extra_specs WHERE volume_type_id = ?",
                "DELETE FROM volume_type_projects WHERE volume_type_id = ?",
                "DELETE FROM volume_types WHERE id = ?",
            ] {
                sqlx::query(self.q(sql))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            Ok::<_, DbError>(())
        })
    }

    async fn set_extra_specs(
        &self,
        id: VolumeTypeId,
        specs: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, DbError> {
        in_transaction!(self, |tx| {
            self.type_exists(&mut tx, id).await?;
            self.write_extra_specs(&mut tx, id, specs).await
        })?;
        Ok(self.get_volume_type(id).await?.extra_specs)
    }

    async fn delete_extra_spec(&self, id: VolumeTypeId, key: &str) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            self.type_exists(&mut tx, id).await?;
            let deleted = sqlx::query(self.q(
                "DELETE FROM volume_type_extra_specs WHERE volume_type_id = ? AND spec_key = ?",
            ))
            .bind(id.to_string())
            .bind(key)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if deleted == 0 {
                return Err(DbError::not_found("extra spec", key));
            }
            Ok::<_, DbError>(())
        })
    }

    async fn list_type_access(&self, id: VolumeTypeId) -> Result<Vec<String>, DbError> {
        self.get_volume_type(id).await?;
        let projects: Vec<String> =
            sqlx::query_scalar(self.q("SELECT project_id FROM volume_type_projects WHERE volume_type_id = ? ORDER BY project_id"))
                .bind(id.to_string())
                .fetch_all(&mut *self.reader().await?)
                .await?;
        Ok(projects)
    }

    async fn add_type_access(&self, id: VolumeTypeId, project_id: &str) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            self.type_exists(&mut tx, id).await?;
            let existing: Option<String> = sqlx::query_scalar(self.q(
                "SELECT project_id FROM volume_type_projects WHERE volume_type_id = ? AND project_id = ?",
            ))
            .bind(id.to_string())
            .bind(project_id)
            .fetch_optional(&mut *tx)
            .await?;
            if existing.is_some() {
                return Err(DbError::Conflict(format!(
                    "project {project_id} already has access to volume type {id}"
                )));
            }
            sqlx::query(
                self.q(
                    "INSERT INTO volume_type_projects (volume_type_id, project_id) VALUES (?, ?)",
                ),
            )
            .bind(id.to_string())
            .bind(project_id)
            .execute(&mut *tx)
            .await?;
            Ok::<_, DbError>(())
        })
    }

    async fn remove_type_access(&self, id: VolumeTypeId, project_id: &str) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            self.type_exists(&mut tx, id).await?;
            let deleted =
                sqlx::query(self.q(
                    "DELETE FROM volume_type_projects WHERE volume_type_id = ? AND project_id = ?",
                ))
                .bind(id.to_string())
                .bind(project_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if deleted == 0 {
                return Err(DbError::not_found(
                    "volume type access",
                    format!("{id}/{project_id}"),
                ));
            }
            Ok::<_, DbError>(())
        })
    }

    async fn ensure_default_volume_type(&self, name: &str) -> Result<VolumeType, DbError> {
        match self.get_volume_type_by_name(name).await {
            Ok(found) => Ok(found),
            Err(DbError::NotFound { .. }) => {
                let created = self
                    .create_volume_type(NewVolumeType {
                        name: name.to_owned(),
                        description: Some("Default Volume Type".to_owned()),
                        is_public: true,
                        extra_specs: BTreeMap::new(),
                    })
                    .await;
                match created {
                    Ok(t) => Ok(t),
                    // Another process created it between our read and write.
                    Err(DbError::Conflict(_)) => self.get_volume_type_by_name(name).await,
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }
}
