//! Group types: [`GroupTypeRepository`] over the shared implementation.

use std::collections::BTreeMap;

use clinker_types::GroupTypeId;
use clinker_types::group::GroupType;
use sqlx::any::AnyRow;

use super::{DeleteGuard, NewTypeRow, TypeModel, TypeTables};
use crate::error::DbError;
use crate::group_rows;
use crate::groups::{GroupTypeRepository, NewGroupType};
use crate::pool::Db;

impl TypeModel for GroupType {
    type Id = GroupTypeId;
    const TABLES: TypeTables = TypeTables {
        kind: "group type",
        spec_kind: "group spec",
        access_kind: "group type access",
        table: "group_types",
        columns: &[
            "id",
            "name",
            "description",
            "is_public",
            "created_at",
            "updated_at",
        ],
        specs: "group_type_specs",
        projects: "group_type_projects",
        fk: "group_type_id",
        renames_quotas: false,
        specs_stamp_type: true,
        // Group snapshots keep their group's type too, but they cannot
        // outlive their group, so the groups are the users to count.
        delete_guards: &[DeleteGuard {
            sql: "SELECT COUNT(*) FROM volume_groups WHERE group_type_id = ?",
            message: |id, _| format!("group type {id} is still in use"),
        }],
        delete_also: &[],
    };
    fn from_row(row: &AnyRow) -> Result<Self, DbError> {
        group_rows::group_type(row)
    }
    fn key(&self) -> String {
        self.id.to_string()
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn specs_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.group_specs
    }
}

#[async_trait::async_trait]
impl GroupTypeRepository for Db {
    async fn create_group_type(&self, new: NewGroupType) -> Result<GroupType, DbError> {
        let row = NewTypeRow {
            name: &new.name,
            description: new.description.as_deref(),
            is_public: new.is_public,
            specs: &new.group_specs,
        };
        self.create_type(GroupTypeId::new_random(), row).await
    }

    async fn get_group_type(&self, id: GroupTypeId) -> Result<GroupType, DbError> {
        self.one_type("id", &id.to_string()).await
    }

    async fn get_group_type_by_name(&self, name: &str) -> Result<GroupType, DbError> {
        self.one_type("name", name).await
    }

    async fn list_group_types(
        &self,
        is_public: Option<bool>,
        visible_to: Option<&str>,
    ) -> Result<Vec<GroupType>, DbError> {
        self.list_types(is_public, visible_to).await
    }

    async fn update_group_type(
        &self,
        id: GroupTypeId,
        name: Option<String>,
        description: Option<Option<String>>,
        is_public: Option<bool>,
    ) -> Result<GroupType, DbError> {
        self.update_type(id, name, description, is_public).await
    }

    async fn delete_group_type(&self, id: GroupTypeId) -> Result<(), DbError> {
        self.delete_type::<GroupType>(id).await
    }

    async fn set_group_specs(
        &self,
        id: GroupTypeId,
        specs: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, DbError> {
        self.set_specs::<GroupType>(id, specs).await
    }

    async fn delete_group_spec(&self, id: GroupTypeId, key: &str) -> Result<(), DbError> {
        self.delete_spec::<GroupType>(id, key).await
    }

    async fn list_group_type_access(&self, id: GroupTypeId) -> Result<Vec<String>, DbError> {
        self.list_access::<GroupType>(id).await
    }

    async fn add_group_type_access(
        &self,
        id: GroupTypeId,
        project_id: &str,
    ) -> Result<(), DbError> {
        self.add_access::<GroupType>(id, project_id).await
    }

    async fn remove_group_type_access(
        &self,
        id: GroupTypeId,
        project_id: &str,
    ) -> Result<(), DbError> {
        self.remove_access::<GroupType>(id, project_id).await
    }
}
