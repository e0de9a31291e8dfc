//! [`GroupTypeRepository`] for [`Db`].

use std::collections::BTreeMap;

use clinker_types::GroupTypeId;
use clinker_types::group::GroupType;
use sqlx::AnyConnection;

use crate::error::DbError;
use crate::group_rows::{self, GROUP_TYPE_COLUMNS};
use crate::groups::{GroupTypeRepository, NewGroupType};
use crate::pool::{Db, in_transaction};
use crate::query::{Arg, bind_all, placeholders};
use crate::rows;

impl Db {
    async fn load_group_specs(&self, types: &mut [GroupType]) -> Result<(), DbError> {
        if types.is_empty() {
            return Ok(());
        }
        let mut pairs = Vec::new();
        let ids: Vec<String> = types.iter().map(|t| t.id.to_string()).collect();
        for chunk in ids.chunks(500) {
            let args: Vec<Arg> = chunk.iter().map(|i| Arg::Text(i.clone())).collect();
            let sql = self.dynamic(format!(
                "SELECT group_type_id, spec_key, spec_value FROM group_type_specs WHERE group_type_id IN ({})",
                placeholders(args.len())
            ));
            for row in bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
                .fetch_all(&mut *self.reader().await?)
                .await?
            {
                use sqlx::Row;
                pairs.push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
            }
        }
        let mut grouped = rows::group_pairs(pairs);
        for t in types.iter_mut() {
            if let Some(specs) = grouped.remove(&t.id.to_string()) {
                t.group_specs = specs;
            }
        }
        Ok(())
    }

    /// Loads a group type inside a transaction, locking its row.
    pub(crate) async fn lock_group_type(
        &self,
        conn: &mut AnyConnection,
        id: GroupTypeId,
    ) -> Result<GroupType, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {GROUP_TYPE_COLUMNS} FROM group_types gt WHERE gt.id = ?{}",
            self.dialect.for_update()
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| DbError::not_found("group type", id))?;
        group_rows::group_type(&row)
    }

    async fn write_group_specs(
        &self,
        conn: &mut AnyConnection,
        id: GroupTypeId,
        specs: &BTreeMap<String, String>,
    ) -> Result<(), DbError> {
        for (key, value) in specs {
            sqlx::query(
                self.q("DELETE FROM group_type_specs WHERE group_type_id = ? AND spec_key = ?"),
            )
            .bind(id.to_string())
            .bind(key.as_str())
            .execute(&mut *conn)
            .await?;
            sqlx::query(self.q(
                "INSERT INTO group_type_specs (group_type_id, spec_key, spec_value) VALUES (?, ?, ?)",
            ))
            .bind(id.to_string())
            .bind(key.as_str())
            .bind(value.as_str())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    async fn group_type_where(
        &self,
        column: &str,
        value: &str,
        missing: &str,
    ) -> Result<GroupType, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {GROUP_TYPE_COLUMNS} FROM group_types gt WHERE gt.{column} = ?"
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(value)
            .fetch_optional(&mut *self.reader().await?)
            .await?
            .ok_or_else(|| DbError::not_found("group type", missing))?;
        let mut found = vec![group_rows::group_type(&row)?];
        self.load_group_specs(&mut found).await?;
        found
            .pop()
            .ok_or_else(|| DbError::not_found("group type", missing))
    }
}

#[async_trait::async_trait]
impl GroupTypeRepository for Db {
    async fn create_group_type(&self, new: NewGroupType) -> Result<GroupType, DbError> {
        let id = GroupTypeId::new_random();
        in_transaction!(self, |tx| {
            let existing: Option<String> =
                sqlx::query_scalar(self.q("SELECT id FROM group_types WHERE name = ?"))
                    .bind(new.name.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            if existing.is_some() {
                return Err(DbError::Conflict(format!("group type {} exists", new.name)));
            }
            sqlx::query(self.q(
                "INSERT INTO group_types (id, name, description, is_public, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, NULL)",
            ))
            .bind(id.to_string())
            .bind(new.name.as_str())
            .bind(new.description.as_deref())
            .bind(i64::from(new.is_public))
            .bind(self.now().as_micros())
            .execute(&mut *tx)
            .await?;
            self.write_group_specs(&mut tx, id, &new.group_specs).await
        })?;
        self.get_group_type(id).await
    }

    async fn get_group_type(&self, id: GroupTypeId) -> Result<GroupType, DbError> {
        self.group_type_where("id", &id.to_string(), &id.to_string())
            .await
    }

    async fn get_group_type_by_name(&self, name: &str) -> Result<GroupType, DbError> {
        self.group_type_where("name", name, name).await
    }

    async fn list_group_types(
        &self,
        is_public: Option<bool>,
        visible_to: Option<&str>,
    ) -> Result<Vec<GroupType>, DbError> {
        let mut sql = format!("SELECT {GROUP_TYPE_COLUMNS} FROM group_types gt WHERE 1 = 1");
        let mut args = Vec::new();
        match (is_public, visible_to) {
            // Cinder's `_process_group_types_filters`: asking for public
            // types also yields the private ones granted to the project.
            (Some(true), Some(project)) => {
                sql.push_str(
                    " AND (gt.is_public = 1 OR EXISTS (SELECT 1 FROM group_type_projects p \
                     WHERE p.group_type_id = gt.id AND p.project_id = ?))",
                );
                args.push(Arg::Text(project.to_owned()));
            }
            (Some(public), _) => {
                sql.push_str(" AND gt.is_public = ?");
                args.push(Arg::Int(i64::from(public)));
            }
            (None, Some(project)) => {
                sql.push_str(
                    " AND (gt.is_public = 1 OR EXISTS (SELECT 1 FROM group_type_projects p \
                     WHERE p.group_type_id = gt.id AND p.project_id = ?))",
                );
                args.push(Arg::Text(project.to_owned()));
            }
            (None, None) => {}
        }
        sql.push_str(" ORDER BY gt.created_at, gt.id");
        let sql = self.dynamic(sql);
        let found = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
            .fetch_all(&mut *self.reader().await?)
            .await?;
        let mut types = found
            .iter()
            .map(group_rows::group_type)
            .collect::<Result<Vec<_>, _>>()?;
        self.load_group_specs(&mut types).await?;
        Ok(types)
    }

    async fn update_group_type(
        &self,
        id: GroupTypeId,
        name: Option<String>,
        description: Option<Option<String>>,
        is_public: Option<bool>,
    ) -> Result<GroupType, DbError> {
        in_transaction!(self, |tx| {
            let current = self.lock_group_type(&mut tx, id).await?;
            let mut sets = String::from("updated_at = ?");
            let mut args = vec![Arg::Int(self.now().as_micros())];
            if let Some(new_name) = &name
                && *new_name != current.name
            {
                let clash: Option<String> =
                    sqlx::query_scalar(self.q("SELECT id FROM group_types WHERE name = ?"))
                        .bind(new_name.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                if clash.is_some() {
                    return Err(DbError::Conflict(format!("group type {new_name} exists")));
                }
                sets.push_str(", name = ?");
                args.push(Arg::Text(new_name.clone()));
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
            let sql = self.dynamic(format!("UPDATE group_types SET {sets} WHERE id = ?"));
            bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
                .execute(&mut *tx)
                .await?;
            Ok::<_, DbError>(())
        })?;
        self.get_group_type(id).await
    }

    async fn delete_group_type(&self, id: GroupTypeId) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            self.lock_group_type(&mut tx, id).await?;
            // Group snapshots keep their group's type too, but they cannot
            // outlive their group, so the groups are the users to count.
            let users: i64 = sqlx::query_scalar(
                self.q("SELECT COUNT(*) FROM volume_groups WHERE group_type_id = ?"),
            )
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await?;
            if users > 0 {
                return Err(DbError::InvalidState(format!(
                    "group type {id} is still in use"
                )));
            }
            for sql in [
                "DELETE FROM group_type_specs WHERE group_type_id = ?",
                "DELETE FROM group_type_projects WHERE group_type_id = ?",
                "DELETE FROM group_types WHERE id = ?",
            ] {
                sqlx::query(self.q(sql))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            Ok::<_, DbError>(())
        })
    }

    async fn set_group_specs(
        &self,
        id: GroupTypeId,
        specs: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, DbError> {
        in_transaction!(self, |tx| {
            self.lock_group_type(&mut tx, id).await?;
            self.write_group_specs(&mut tx, id, specs).await?;
            sqlx::query(self.q("UPDATE group_types SET updated_at = ? WHERE id = ?"))
                .bind(self.now().as_micros())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            Ok::<_, DbError>(())
        })?;
        Ok(self.get_group_type(id).await?.group_specs)
    }

    async fn delete_group_spec(&self, id: GroupTypeId, key: &str) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            self.lock_group_type(&mut tx, id).await?;
            let deleted = sqlx::query(
                self.q("DELETE FROM group_type_specs WHERE group_type_id = ? AND spec_key = ?"),
            )
            .bind(id.to_string())
            .bind(key)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if deleted == 0 {
                return Err(DbError::not_found("group spec", key));
            }
            Ok::<_, DbError>(())
        })
    }

    async fn list_group_type_access(&self, id: GroupTypeId) -> Result<Vec<String>, DbError> {
        self.get_group_type(id).await?;
        let projects: Vec<String> = sqlx::query_scalar(self.q(
            "SELECT project_id FROM group_type_projects WHERE group_type_id = ? ORDER BY project_id",
        ))
        .bind(id.to_string())
        .fetch_all(&mut *self.reader().await?)
        .await?;
        Ok(projects)
    }

    async fn add_group_type_access(
        &self,
        id: GroupTypeId,
        project_id: &str,
    ) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            self.lock_group_type(&mut tx, id).await?;
            let existing: Option<String> = sqlx::query_scalar(self.q(
                "SELECT project_id FROM group_type_projects WHERE group_type_id = ? AND project_id = ?",
            ))
            .bind(id.to_string())
            .bind(project_id)
            .fetch_optional(&mut *tx)
            .await?;
            if existing.is_some() {
                return Err(DbError::Conflict(format!(
                    "project {project_id} already has access to group type {id}"
                )));
            }
            sqlx::query(
                self.q("INSERT INTO group_type_projects (group_type_id, project_id) VALUES (?, ?)"),
            )
            .bind(id.to_string())
            .bind(project_id)
            .execute(&mut *tx)
            .await?;
            Ok::<_, DbError>(())
        })
    }

    async fn remove_group_type_access(
        &self,
        id: GroupTypeId,
        project_id: &str,
    ) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            self.lock_group_type(&mut tx, id).await?;
            let deleted =
                sqlx::query(self.q(
                    "DELETE FROM group_type_projects WHERE group_type_id = ? AND project_id = ?",
                ))
                .bind(id.to_string())
                .bind(project_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if deleted == 0 {
                return Err(DbError::not_found(
                    "group type access",
                    format!("{id}/{project_id}"),
                ));
            }
            Ok::<_, DbError>(())
        })
    }
}
