//! Volume types: [`VolumeTypeRepository`] and its row types.

use std::collections::BTreeMap;

use clinker_types::VolumeTypeId;
use clinker_types::model::VolumeType;
use sqlx::any::AnyRow;

use super::{DeleteGuard, NewTypeRow, TypeModel, TypeTables};
use crate::error::DbError;
use crate::pool::Db;
use crate::rows;

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

impl TypeModel for VolumeType {
    type Id = VolumeTypeId;
    const TABLES: TypeTables = TypeTables {
        kind: "volume type",
        spec_kind: "extra spec",
        access_kind: "volume type access",
        table: "volume_types",
        columns: &[
            "id",
            "name",
            "description",
            "is_public",
            "qos_specs_id",
            "created_at",
            "updated_at",
        ],
        specs: "volume_type_extra_specs",
        projects: "volume_type_projects",
        fk: "volume_type_id",
        renames_quotas: true,
        specs_stamp_type: false,
        delete_guards: &[
            DeleteGuard {
                sql: "SELECT (SELECT COUNT(*) FROM volumes WHERE volume_type_id = ?) + \
                      (SELECT COUNT(*) FROM snapshots WHERE volume_type_id = ?) + \
                      (SELECT COUNT(*) FROM group_volume_types WHERE volume_type_id = ?)",
                message: |id, _| format!("volume type {id} is still in use"),
            },
            // A project's default type may not go (checked here too so a
            // concurrent default-type set cannot be left dangling).
            DeleteGuard {
                sql: "SELECT COUNT(*) FROM default_volume_types WHERE volume_type_id = ?",
                message: |id, n| format!("volume type {id} is the default of {n} projects"),
            },
        ],
        delete_also: &["DELETE FROM encryption WHERE volume_type_id = ?"],
    };
    fn from_row(row: &AnyRow) -> Result<Self, DbError> {
        rows::volume_type(row)
    }
    fn key(&self) -> String {
        self.id.to_string()
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn specs_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.extra_specs
    }
}

#[async_trait::async_trait]
impl VolumeTypeRepository for Db {
    async fn create_volume_type(&self, new: NewVolumeType) -> Result<VolumeType, DbError> {
        let row = NewTypeRow {
            name: &new.name,
            description: new.description.as_deref(),
            is_public: new.is_public,
            specs: &new.extra_specs,
        };
        self.create_type(VolumeTypeId::new_random(), row).await
    }

    async fn get_volume_type(&self, id: VolumeTypeId) -> Result<VolumeType, DbError> {
        self.one_type("id", &id.to_string()).await
    }

    async fn get_volume_type_by_name(&self, name: &str) -> Result<VolumeType, DbError> {
        self.one_type("name", name).await
    }

    async fn list_volume_types(
        &self,
        is_public: Option<bool>,
        visible_to: Option<&str>,
    ) -> Result<Vec<VolumeType>, DbError> {
        self.list_types(is_public, visible_to).await
    }

    async fn update_volume_type(
        &self,
        id: VolumeTypeId,
        name: Option<String>,
        description: Option<Option<String>>,
        is_public: Option<bool>,
    ) -> Result<VolumeType, DbError> {
        self.update_type(id, name, description, is_public).await
    }

    async fn delete_volume_type(&self, id: VolumeTypeId) -> Result<(), DbError> {
        self.delete_type::<VolumeType>(id).await
    }

    async fn set_extra_specs(
        &self,
        id: VolumeTypeId,
        specs: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, DbError> {
        self.set_specs::<VolumeType>(id, specs).await
    }

    async fn delete_extra_spec(&self, id: VolumeTypeId, key: &str) -> Result<(), DbError> {
        self.delete_spec::<VolumeType>(id, key).await
    }

    async fn list_type_access(&self, id: VolumeTypeId) -> Result<Vec<String>, DbError> {
        self.list_access::<VolumeType>(id).await
    }

    async fn add_type_access(&self, id: VolumeTypeId, project_id: &str) -> Result<(), DbError> {
        self.add_access::<VolumeType>(id, project_id).await
    }

    async fn remove_type_access(&self, id: VolumeTypeId, project_id: &str) -> Result<(), DbError> {
        self.remove_access::<VolumeType>(id, project_id).await
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
