//! Per-project default volume types ([`DefaultTypeRepository`], API 3.62;
//! Cinder's `project_default_volume_type_*` db API).

use clinker_types::VolumeTypeId;
use clinker_types::volume_type_extras::DefaultVolumeType;

use crate::error::DbError;
use crate::pool::{Db, in_transaction};

/// Default type repository.
#[async_trait::async_trait]
pub trait DefaultTypeRepository {
    /// Sets (or replaces) a project's default type.
    ///
    /// # Errors
    /// [`DbError::NotFound`] when the type does not exist.
    async fn set_project_default_type(
        &self,
        project_id: &str,
        volume_type_id: VolumeTypeId,
    ) -> Result<DefaultVolumeType, DbError>;

    /// A project's default type, if it has one.
    ///
    /// # Errors
    /// Database failures.
    async fn get_project_default_type(
        &self,
        project_id: &str,
    ) -> Result<Option<DefaultVolumeType>, DbError>;

    /// Every project's default type, by project.
    ///
    /// # Errors
    /// Database failures.
    async fn list_project_default_types(&self) -> Result<Vec<DefaultVolumeType>, DbError>;

    /// The projects whose default is `volume_type_id` (such a type may not
    /// be deleted).
    ///
    /// # Errors
    /// Database failures.
    async fn projects_with_default_type(
        &self,
        volume_type_id: VolumeTypeId,
    ) -> Result<Vec<String>, DbError>;

    /// Removes a project's default type (a no-op when it has none).
    ///
    /// # Errors
    /// Database failures.
    async fn unset_project_default_type(&self, project_id: &str) -> Result<(), DbError>;
}

fn to_model(project_id: String, type_id: &str) -> Result<DefaultVolumeType, DbError> {
    Ok(DefaultVolumeType {
        project_id,
        volume_type_id: type_id
            .parse()
            .map_err(|_| DbError::Internal(format!("corrupt volume type id {type_id:?}")))?,
    })
}

#[async_trait::async_trait]
impl DefaultTypeRepository for Db {
    async fn set_project_default_type(
        &self,
        project_id: &str,
        volume_type_id: VolumeTypeId,
    ) -> Result<DefaultVolumeType, DbError> {
        in_transaction!(self, |tx| {
            // Share the type's fate: a type deleted concurrently is either
            // seen missing here or sees this default and refuses.
            let sql = self.dynamic(format!(
                "SELECT id FROM volume_types WHERE id = ?{}",
                self.dialect.for_update()
            ));
            let found: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(volume_type_id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
            if found.is_none() {
                return Err(DbError::not_found("volume type", volume_type_id));
            }
            let now = self.now().as_micros();
            let updated = sqlx::query(self.q(
                "UPDATE default_volume_types SET volume_type_id = ?, updated_at = ? WHERE project_id = ?",
            ))
            .bind(volume_type_id.to_string())
            .bind(now)
            .bind(project_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                sqlx::query(self.q(
                    "INSERT INTO default_volume_types (project_id, volume_type_id, created_at, updated_at) \
                     VALUES (?, ?, ?, NULL)",
                ))
                .bind(project_id)
                .bind(volume_type_id.to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            Ok::<_, DbError>(())
        })?;
        Ok(DefaultVolumeType {
            project_id: project_id.to_owned(),
            volume_type_id,
        })
    }

    async fn get_project_default_type(
        &self,
        project_id: &str,
    ) -> Result<Option<DefaultVolumeType>, DbError> {
        let found: Option<String> = sqlx::query_scalar(
            self.q("SELECT volume_type_id FROM default_volume_types WHERE project_id = ?"),
        )
        .bind(project_id)
        .fetch_optional(&mut *self.reader().await?)
        .await?;
        found
            .map(|type_id| to_model(project_id.to_owned(), &type_id))
            .transpose()
    }

    async fn list_project_default_types(&self) -> Result<Vec<DefaultVolumeType>, DbError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT project_id, volume_type_id FROM default_volume_types ORDER BY project_id",
        )
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.into_iter()
            .map(|(project, type_id)| to_model(project, &type_id))
            .collect()
    }

    async fn projects_with_default_type(
        &self,
        volume_type_id: VolumeTypeId,
    ) -> Result<Vec<String>, DbError> {
        Ok(sqlx::query_scalar(self.q(
            "SELECT project_id FROM default_volume_types WHERE volume_type_id = ? ORDER BY project_id",
        ))
        .bind(volume_type_id.to_string())
        .fetch_all(&mut *self.reader().await?)
        .await?)
    }

    async fn unset_project_default_type(&self, project_id: &str) -> Result<(), DbError> {
        sqlx::query(self.q("DELETE FROM default_volume_types WHERE project_id = ?"))
            .bind(project_id)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }
}
