//! Repositories of generic volume groups (Cinder's `group_*` and
//! `group_snapshot_*` database API): group types with their specs and
//! access lists, groups with their volume types, and group snapshots.
//!
//! The same invariants as for volumes hold, inside single transactions:
//! every status change is a compare-and-swap against a
//! [`clinker_types::group_status`] transition; the `workers` journal row of
//! a group operation (`Group`, `GroupSnapshot`) is written with the change
//! that starts it and removed with the one that ends it; the `groups` quota
//! and the member volumes' and snapshots' quotas change with the rows they
//! count.
//!
//! Member volumes and snapshots of group operations get no journal rows of
//! their own: the group's row stands for all of them, and the volume
//! service settles them together.

use std::collections::BTreeMap;

use clinker_types::group::{Group, GroupSnapshot, GroupType};
use clinker_types::group_status::{GroupSnapshotStatus, GroupStatus};
use clinker_types::{GroupId, GroupSnapshotId, GroupTypeId, VolumeId, VolumeTypeId};

use crate::error::DbError;
use crate::{ClaimOutcome, FilterValue, NewVolume, Page, SortDir};

// ---------------------------------------------------------------------------
// Group types

/// A group type to create.
#[derive(Clone, Debug)]
pub struct NewGroupType {
    /// Unique name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Visible to every project.
    pub is_public: bool,
    /// Group specs.
    pub group_specs: BTreeMap<String, String>,
}

/// Group type repository.
#[async_trait::async_trait]
pub trait GroupTypeRepository {
    /// Creates a type with its specs.
    ///
    /// # Errors
    /// [`DbError::Conflict`] when the name exists.
    async fn create_group_type(&self, new: NewGroupType) -> Result<GroupType, DbError>;

    /// One type by id.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn get_group_type(&self, id: GroupTypeId) -> Result<GroupType, DbError>;

    /// One type by exact name.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn get_group_type_by_name(&self, name: &str) -> Result<GroupType, DbError>;

    /// Types, optionally only public (`Some(true)`) or private ones, and
    /// optionally only those `visible_to` a project (public or granted).
    ///
    /// # Errors
    /// Database failures.
    async fn list_group_types(
        &self,
        is_public: Option<bool>,
        visible_to: Option<&str>,
    ) -> Result<Vec<GroupType>, DbError>;

    /// Updates name / description / visibility.
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::Conflict`] for a taken name.
    async fn update_group_type(
        &self,
        id: GroupTypeId,
        name: Option<String>,
        description: Option<Option<String>>,
        is_public: Option<bool>,
    ) -> Result<GroupType, DbError>;

    /// Deletes a type no group uses, with its specs and access list.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] while groups use it, [`DbError::NotFound`].
    async fn delete_group_type(&self, id: GroupTypeId) -> Result<(), DbError>;

    /// Creates or replaces specs; returns all of the type's specs.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn set_group_specs(
        &self,
        id: GroupTypeId,
        specs: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, DbError>;

    /// Deletes one spec.
    ///
    /// # Errors
    /// [`DbError::NotFound`] for the type or the key.
    async fn delete_group_spec(&self, id: GroupTypeId, key: &str) -> Result<(), DbError>;

    /// Projects granted access to a private type.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn list_group_type_access(&self, id: GroupTypeId) -> Result<Vec<String>, DbError>;

    /// Grants a project access to a type.
    ///
    /// # Errors
    /// [`DbError::Conflict`] when already granted, [`DbError::NotFound`].
    async fn add_group_type_access(&self, id: GroupTypeId, project_id: &str)
    -> Result<(), DbError>;

    /// Revokes a project's access.
    ///
    /// # Errors
    /// [`DbError::NotFound`] when not granted.
    async fn remove_group_type_access(
        &self,
        id: GroupTypeId,
        project_id: &str,
    ) -> Result<(), DbError>;
}

// ---------------------------------------------------------------------------
// Groups

/// A group row to insert (status `creating`).
#[derive(Clone, Debug)]
pub struct NewGroup {
    /// Id (chosen by the API).
    pub id: GroupId,
    /// Owner.
    pub user_id: String,
    /// Owner project.
    pub project_id: String,
    /// Zone.
    pub availability_zone: String,
    /// Name.
    pub display_name: Option<String>,
    /// Description.
    pub display_description: Option<String>,
    /// Group type (must exist).
    pub group_type_id: GroupTypeId,
    /// The volume types its volumes may have (must exist), in order.
    pub volume_type_ids: Vec<VolumeTypeId>,
    /// `host@backend#pool` when known at creation (a group created from a
    /// source lives where its source lives); `None` until the scheduler
    /// places it otherwise.
    pub host: Option<String>,
    /// The group snapshot it is created from.
    pub group_snapshot_id: Option<GroupSnapshotId>,
    /// The group it is cloned from.
    pub source_group_id: Option<GroupId>,
}

/// A filterable, sortable group column (the model attributes Cinder's
/// `group_get_all` filters on with `filter_by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupColumn {
    /// `id`.
    Id,
    /// `name`.
    Name,
    /// `description`.
    Description,
    /// `status`.
    Status,
    /// `availability_zone`.
    AvailabilityZone,
    /// `host`.
    Host,
    /// `cluster_name`.
    ClusterName,
    /// `user_id`.
    UserId,
    /// `project_id`.
    ProjectId,
    /// `group_type_id`.
    GroupTypeId,
    /// `group_snapshot_id`.
    GroupSnapshotId,
    /// `source_group_id`.
    SourceGroupId,
    /// `replication_status`.
    ReplicationStatus,
    /// `created_at`.
    CreatedAt,
    /// `updated_at`.
    UpdatedAt,
}

impl GroupColumn {
    /// The column of an API filter or sort key, `None` for keys that are
    /// not attributes of a group.
    pub fn from_key(key: &str) -> Option<Self> {
        Some(match key {
            "id" => GroupColumn::Id,
            "name" => GroupColumn::Name,
            "description" => GroupColumn::Description,
            "status" => GroupColumn::Status,
            "availability_zone" => GroupColumn::AvailabilityZone,
            "host" => GroupColumn::Host,
            "cluster_name" => GroupColumn::ClusterName,
            "user_id" => GroupColumn::UserId,
            "project_id" => GroupColumn::ProjectId,
            "group_type_id" => GroupColumn::GroupTypeId,
            "group_snapshot_id" => GroupColumn::GroupSnapshotId,
            "source_group_id" => GroupColumn::SourceGroupId,
            "replication_status" => GroupColumn::ReplicationStatus,
            "created_at" => GroupColumn::CreatedAt,
            "updated_at" => GroupColumn::UpdatedAt,
            _ => return None,
        })
    }

    pub(crate) fn sql(self) -> &'static str {
        match self {
            GroupColumn::Id => "g.id",
            GroupColumn::Name => "g.display_name",
            GroupColumn::Description => "g.display_description",
            GroupColumn::Status => "g.status",
            GroupColumn::AvailabilityZone => "g.availability_zone",
            GroupColumn::Host => "g.host",
            GroupColumn::ClusterName => "g.cluster_name",
            GroupColumn::UserId => "g.user_id",
            GroupColumn::ProjectId => "g.project_id",
            GroupColumn::GroupTypeId => "g.group_type_id",
            GroupColumn::GroupSnapshotId => "g.group_snapshot_id",
            GroupColumn::SourceGroupId => "g.source_group_id",
            GroupColumn::ReplicationStatus => "g.replication_status",
            GroupColumn::CreatedAt => "g.created_at",
            GroupColumn::UpdatedAt => "g.updated_at",
        }
    }

    pub(crate) fn is_integer(self) -> bool {
        matches!(self, GroupColumn::CreatedAt | GroupColumn::UpdatedAt)
    }
}

/// A group list request.
#[derive(Clone, Debug, Default)]
pub struct GroupQuery {
    /// Only this project's groups (`None`: every project).
    pub project_id: Option<String>,
    /// Column filters (all must hold).
    pub filters: Vec<(GroupColumn, FilterValue)>,
    /// Sort keys (`created_at` and the id complete them, as Cinder does).
    pub sort: Vec<(GroupColumn, SortDir)>,
    /// Paging.
    pub page: Page<GroupId>,
}

/// Changes of `PUT /groups/{id}`.
#[derive(Clone, Debug, Default)]
pub struct GroupUpdate {
    /// New name (`Some(None)` clears it).
    pub display_name: Option<Option<String>>,
    /// New description.
    pub display_description: Option<Option<String>>,
    /// Volumes to add: each must be the group's project's, of one of its
    /// volume types, on its backend, in no group, and available or in-use.
    pub add_volumes: Vec<VolumeId>,
    /// Volumes to remove: each must be in the group and available, in-use,
    /// error or error_deleting.
    pub remove_volumes: Vec<VolumeId>,
}

/// What `begin_group_delete` did.
#[derive(Clone, Debug)]
pub enum GroupDeleteStart {
    /// The group and its volumes are `deleting` and journaled; cast the
    /// delete to the group's backend.
    Started(Group),
    /// It was already `deleting` (an idempotent repeat); re-cast to be safe.
    AlreadyDeleting(Group),
    /// It was never placed on a backend, so its row was removed at once.
    DeletedWithoutBackend(Group),
}

/// How a group or group snapshot delete ended.
#[derive(Clone, Debug)]
pub enum GroupDeleteEnd<T> {
    /// Every member is gone; so is the row.
    Deleted(T),
    /// A member could not be deleted: the row is now `error`.
    Failed(T),
    /// Members are still being deleted by another task; nothing changed.
    Pending,
}

/// Group repository.
#[async_trait::async_trait]
pub trait GroupRepository {
    /// Inserts a `creating` group with its volume types, charges the
    /// `groups` quota and journals it, in one transaction.
    ///
    /// # Errors
    /// [`DbError::OverQuota`] (nothing written), [`DbError::Conflict`].
    async fn create_group(&self, new: NewGroup) -> Result<Group, DbError>;

    /// Inserts a `creating` group placed where its source lives together
    /// with its `creating` member volumes (each charged and journaled as a
    /// volume create, waiting for the scheduler), in one transaction.
    ///
    /// # Errors
    /// [`DbError::OverQuota`] (nothing written), [`DbError::Conflict`].
    async fn create_group_from_source(
        &self,
        new: NewGroup,
        volumes: Vec<NewVolume>,
    ) -> Result<Group, DbError>;

    /// One group with its volume types.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn get_group(&self, id: GroupId) -> Result<Group, DbError>;

    /// A page of groups.
    ///
    /// # Errors
    /// [`DbError::NotFound`] for a marker that does not exist in scope.
    async fn list_groups(&self, query: &GroupQuery) -> Result<Vec<Group>, DbError>;

    /// Places a `creating`, unplaced group on `host` (`host@backend#pool`)
    /// and assigns its journal row to that backend.
    ///
    /// # Errors
    /// Database failures.
    async fn place_group(&self, id: GroupId, host: &str) -> Result<ClaimOutcome, DbError>;

    /// `creating → available`, journal removed.
    ///
    /// # Errors
    /// [`DbError::InvalidState`], [`DbError::NotFound`].
    async fn finish_group_create(&self, id: GroupId) -> Result<Group, DbError>;

    /// `creating → error`, journal removed.
    ///
    /// # Errors
    /// [`DbError::InvalidState`], [`DbError::NotFound`].
    async fn fail_group_create(&self, id: GroupId) -> Result<Group, DbError>;

    /// For a group created from a source: once none of its volumes is
    /// `creating` any more, `creating → available` (or `error` when one of
    /// them failed) and the journal row removed. `None` while volumes are
    /// still being created, or when the group is not such a group in
    /// `creating`.
    ///
    /// # Errors
    /// Database failures, [`DbError::NotFound`].
    async fn settle_group_create(&self, id: GroupId) -> Result<Option<Group>, DbError>;

    /// Undoes a group create that was never dispatched: removes the
    /// `creating` group, its unplaced `creating` volumes, their quota and
    /// journal rows, as if the request had not happened.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless the group is still `creating`.
    async fn discard_group_create(&self, id: GroupId) -> Result<(), DbError>;

    /// Renames / re-describes and adds or removes volumes, re-checking
    /// every rule under the group's and the volumes' row locks; with
    /// volumes to add or remove the group must be `available`.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] when a rule does not hold (nothing
    /// written), [`DbError::NotFound`].
    async fn update_group(&self, id: GroupId, update: GroupUpdate) -> Result<Group, DbError>;

    /// Starts a delete: checks Cinder's preconditions (no group snapshots,
    /// no attached volumes, no volumes with snapshots, volumes only with
    /// `delete_volumes`, not the source of a group being created), moves
    /// the group and its volumes to `deleting` and journals it.
    ///
    /// # Errors
    /// [`DbError::InvalidState`], [`DbError::NotFound`].
    async fn begin_group_delete(
        &self,
        id: GroupId,
        delete_volumes: bool,
    ) -> Result<GroupDeleteStart, DbError>;

    /// Ends a delete once the volume service has deleted the volumes: with
    /// none left the row, its volume types, the `groups` quota and the
    /// journal row go; if one could not be deleted the group becomes
    /// `error`.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless `deleting`, [`DbError::NotFound`].
    async fn finish_group_delete(&self, id: GroupId) -> Result<GroupDeleteEnd<Group>, DbError>;

    /// `reset_status` (admin): sets any status, removing a stale journal
    /// row.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn reset_group_status(&self, id: GroupId, status: GroupStatus) -> Result<Group, DbError>;
}

// ---------------------------------------------------------------------------
// Group snapshots

/// A group snapshot to take.
#[derive(Clone, Debug)]
pub struct NewGroupSnapshot {
    /// Id (chosen by the API).
    pub id: GroupSnapshotId,
    /// The group.
    pub group_id: GroupId,
    /// Owner.
    pub user_id: String,
    /// Owner project.
    pub project_id: String,
    /// Name (also given to every member snapshot).
    pub display_name: Option<String>,
    /// Description (also given to every member snapshot).
    pub display_description: Option<String>,
}

/// A filterable, sortable group snapshot column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupSnapshotColumn {
    /// `id`.
    Id,
    /// `group_id`.
    GroupId,
    /// `name`.
    Name,
    /// `description`.
    Description,
    /// `status`.
    Status,
    /// `user_id`.
    UserId,
    /// `project_id`.
    ProjectId,
    /// `group_type_id`.
    GroupTypeId,
    /// `created_at`.
    CreatedAt,
    /// `updated_at`.
    UpdatedAt,
}

impl GroupSnapshotColumn {
    /// The column of an API filter or sort key, `None` for keys that are
    /// not attributes of a group snapshot.
    pub fn from_key(key: &str) -> Option<Self> {
        Some(match key {
            "id" => GroupSnapshotColumn::Id,
            "group_id" => GroupSnapshotColumn::GroupId,
            "name" => GroupSnapshotColumn::Name,
            "description" => GroupSnapshotColumn::Description,
            "status" => GroupSnapshotColumn::Status,
            "user_id" => GroupSnapshotColumn::UserId,
            "project_id" => GroupSnapshotColumn::ProjectId,
            "group_type_id" => GroupSnapshotColumn::GroupTypeId,
            "created_at" => GroupSnapshotColumn::CreatedAt,
            "updated_at" => GroupSnapshotColumn::UpdatedAt,
            _ => return None,
        })
    }

    pub(crate) fn sql(self) -> &'static str {
        match self {
            GroupSnapshotColumn::Id => "gs.id",
            GroupSnapshotColumn::GroupId => "gs.group_id",
            GroupSnapshotColumn::Name => "gs.display_name",
            GroupSnapshotColumn::Description => "gs.display_description",
            GroupSnapshotColumn::Status => "gs.status",
            GroupSnapshotColumn::UserId => "gs.user_id",
            GroupSnapshotColumn::ProjectId => "gs.project_id",
            GroupSnapshotColumn::GroupTypeId => "gs.group_type_id",
            GroupSnapshotColumn::CreatedAt => "gs.created_at",
            GroupSnapshotColumn::UpdatedAt => "gs.updated_at",
        }
    }

    pub(crate) fn is_integer(self) -> bool {
        matches!(
            self,
            GroupSnapshotColumn::CreatedAt | GroupSnapshotColumn::UpdatedAt
        )
    }
}

/// A group snapshot list request.
#[derive(Clone, Debug, Default)]
pub struct GroupSnapshotQuery {
    /// Only this project's group snapshots (`None`: every project).
    pub project_id: Option<String>,
    /// Column filters.
    pub filters: Vec<(GroupSnapshotColumn, FilterValue)>,
    /// Sort keys.
    pub sort: Vec<(GroupSnapshotColumn, SortDir)>,
    /// Paging.
    pub page: Page<GroupSnapshotId>,
}

/// Group snapshot repository.
#[async_trait::async_trait]
pub trait GroupSnapshotRepository {
    /// Takes the group's row lock, checks its volumes can be snapshotted
    /// (placed, `available` or `in-use`, not in maintenance or migrating),
    /// charges the snapshots' quota and inserts the `creating` group
    /// snapshot with one `creating` snapshot per volume, journaled once.
    ///
    /// # Errors
    /// [`DbError::InvalidState`], [`DbError::OverQuota`] (nothing written),
    /// [`DbError::NotFound`] (group).
    async fn create_group_snapshot(&self, new: NewGroupSnapshot) -> Result<GroupSnapshot, DbError>;

    /// One group snapshot.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn get_group_snapshot(&self, id: GroupSnapshotId) -> Result<GroupSnapshot, DbError>;

    /// A page of group snapshots.
    ///
    /// # Errors
    /// [`DbError::NotFound`] for a marker that does not exist in scope.
    async fn list_group_snapshots(
        &self,
        query: &GroupSnapshotQuery,
    ) -> Result<Vec<GroupSnapshot>, DbError>;

    /// Ends a create once the member snapshots are done: `available` when
    /// all are, `error` otherwise; journal removed.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless `creating`.
    async fn finish_group_snapshot_create(
        &self,
        id: GroupSnapshotId,
    ) -> Result<GroupSnapshot, DbError>;

    /// A create was interrupted: `creating` members and the group snapshot
    /// become `error`; journal removed.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless `creating`.
    async fn fail_group_snapshot_create(
        &self,
        id: GroupSnapshotId,
    ) -> Result<GroupSnapshot, DbError>;

    /// Undoes a create that was never dispatched: the group snapshot, its
    /// members, their quota and the journal row go.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless `creating`.
    async fn discard_group_snapshot_create(&self, id: GroupSnapshotId) -> Result<(), DbError>;

    /// `available|error → deleting` with every member, unless a group is
    /// being created from it; journaled.
    ///
    /// # Errors
    /// [`DbError::InvalidState`], [`DbError::NotFound`].
    async fn begin_group_snapshot_delete(
        &self,
        id: GroupSnapshotId,
    ) -> Result<GroupSnapshot, DbError>;

    /// Ends a delete once the members were deleted (each through the
    /// snapshot delete path): with none left the row and the journal row
    /// go; with a member left over the group snapshot becomes `error`.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless `deleting`.
    async fn finish_group_snapshot_delete(
        &self,
        id: GroupSnapshotId,
    ) -> Result<GroupDeleteEnd<GroupSnapshot>, DbError>;

    /// `reset_status` (admin): sets any status, removing a stale journal
    /// row.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn reset_group_snapshot_status(
        &self,
        id: GroupSnapshotId,
        status: GroupSnapshotStatus,
    ) -> Result<GroupSnapshot, DbError>;
}
