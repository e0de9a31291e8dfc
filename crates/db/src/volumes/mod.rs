//! Volumes: the repository trait, its row types and queries.

use std::collections::{BTreeMap, BTreeSet};

use clinker_types::model::Volume;
use clinker_types::request_spec::RequestSpec;
use clinker_types::status::VolumeTransition;
use clinker_types::{SnapshotId, Timestamp, VolumeId, VolumeStatus, VolumeTypeId};

use crate::{DbError, FilterValue, Page, SortDir};

mod ops;
mod repo;

pub(crate) use ops::service_host_of;

/// Which metadata of a volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataKind {
    /// User metadata (`metadata`).
    User,
    /// Admin metadata (`readonly`, `attached_mode`).
    Admin,
    /// Image metadata (`volume_image_metadata`).
    Glance,
}

impl MetadataKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MetadataKind::User => "user",
            MetadataKind::Admin => "admin",
            MetadataKind::Glance => "glance",
        }
    }
}

/// A volume row to insert (status `creating`).
#[derive(Clone, Debug)]
pub struct NewVolume {
    /// Id (chosen by the API).
    pub id: VolumeId,
    /// Owner.
    pub user_id: String,
    /// Owner project.
    pub project_id: String,
    /// GiB.
    pub size: i64,
    /// Zone.
    pub availability_zone: String,
    /// Name.
    pub display_name: Option<String>,
    /// Description.
    pub display_description: Option<String>,
    /// Type (must exist).
    pub volume_type_id: VolumeTypeId,
    /// Type name, for per-type quota resources.
    pub volume_type_name: String,
    /// Source snapshot.
    pub snapshot_id: Option<SnapshotId>,
    /// Source volume.
    pub source_volid: Option<VolumeId>,
    /// Multiattach (from the type).
    pub multiattach: bool,
    /// Bootable (inherited from a source).
    pub bootable: bool,
    /// Group.
    pub group_id: Option<String>,
    /// Counts against quota.
    pub use_quota: bool,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
    /// Glance metadata (inherited from a source).
    pub glance_metadata: BTreeMap<String, String>,
    /// The request the create is cast to the scheduler with, kept in the
    /// create's journal row (`detail_json`, `{"request_spec": …}`): a
    /// create whose cast was lost is placed again with its source (image,
    /// backup) rather than rebuilt from the row, which does not name them.
    pub request_spec: Option<RequestSpec>,
}

/// Fields a user may change with `PUT /volumes/{id}` and the simple actions.
#[derive(Clone, Debug, Default)]
pub struct VolumeUpdate {
    /// New name (`Some(None)` clears it).
    pub display_name: Option<Option<String>>,
    /// New description.
    pub display_description: Option<Option<String>>,
    /// `os-set_bootable`.
    pub bootable: Option<bool>,
}

/// Driver results stored when a create finishes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderUpdate {
    /// `provider_location`.
    pub provider_location: Option<String>,
    /// `provider_auth`.
    pub provider_auth: Option<String>,
    /// `provider_id`.
    pub provider_id: Option<String>,
}

/// A filterable volume column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeColumn {
    /// `id`.
    Id,
    /// `display_name` (API `name`).
    DisplayName,
    /// `display_description`.
    DisplayDescription,
    /// `status`.
    Status,
    /// `attach_status`.
    AttachStatus,
    /// `bootable` (0/1).
    Bootable,
    /// `availability_zone`.
    AvailabilityZone,
    /// `size`.
    Size,
    /// `created_at` (micros).
    CreatedAt,
    /// `updated_at` (micros).
    UpdatedAt,
    /// `host`.
    Host,
    /// `user_id`.
    UserId,
    /// `project_id`.
    ProjectId,
    /// `volume_type_id`.
    VolumeTypeId,
    /// `group_id`.
    GroupId,
    /// `migration_status`.
    MigrationStatus,
    /// `use_quota` (0/1; API `consumes_quota`).
    UseQuota,
    /// `snapshot_id`.
    SnapshotId,
    /// `source_volid`.
    SourceVolid,
    /// `multiattach` (0/1).
    Multiattach,
    /// `replication_status`.
    ReplicationStatus,
}

impl VolumeColumn {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            VolumeColumn::Id => "v.id",
            VolumeColumn::DisplayName => "v.display_name",
            VolumeColumn::DisplayDescription => "v.display_description",
            VolumeColumn::Status => "v.status",
            VolumeColumn::AttachStatus => "v.attach_status",
            VolumeColumn::Bootable => "v.bootable",
            VolumeColumn::AvailabilityZone => "v.availability_zone",
            VolumeColumn::Size => "v.size",
            VolumeColumn::CreatedAt => "v.created_at",
            VolumeColumn::UpdatedAt => "v.updated_at",
            VolumeColumn::Host => "v.host",
            VolumeColumn::UserId => "v.user_id",
            VolumeColumn::ProjectId => "v.project_id",
            VolumeColumn::VolumeTypeId => "v.volume_type_id",
            VolumeColumn::GroupId => "v.group_id",
            VolumeColumn::MigrationStatus => "v.migration_status",
            VolumeColumn::UseQuota => "v.use_quota",
            VolumeColumn::SnapshotId => "v.snapshot_id",
            VolumeColumn::SourceVolid => "v.source_volid",
            VolumeColumn::Multiattach => "v.multiattach",
            VolumeColumn::ReplicationStatus => "v.replication_status",
        }
    }

    pub(crate) fn is_integer(self) -> bool {
        matches!(
            self,
            VolumeColumn::Bootable
                | VolumeColumn::Size
                | VolumeColumn::CreatedAt
                | VolumeColumn::UpdatedAt
                | VolumeColumn::UseQuota
                | VolumeColumn::Multiattach
        )
    }

    /// The NOT NULL sort key the list indexes hold (migration 11): the
    /// column itself, or the generated column that coalesces it.
    pub(crate) fn sort_sql(self) -> Option<&'static str> {
        match self {
            VolumeColumn::DisplayName => Some("v.sort_name"),
            VolumeColumn::UpdatedAt => Some("v.sort_updated_at"),
            VolumeColumn::Id
            | VolumeColumn::Status
            | VolumeColumn::AttachStatus
            | VolumeColumn::Bootable
            | VolumeColumn::AvailabilityZone
            | VolumeColumn::Size
            | VolumeColumn::CreatedAt
            | VolumeColumn::UserId
            | VolumeColumn::ProjectId
            | VolumeColumn::VolumeTypeId
            | VolumeColumn::UseQuota
            | VolumeColumn::Multiattach => Some(self.sql()),
            VolumeColumn::DisplayDescription
            | VolumeColumn::Host
            | VolumeColumn::GroupId
            | VolumeColumn::MigrationStatus
            | VolumeColumn::SnapshotId
            | VolumeColumn::SourceVolid
            | VolumeColumn::ReplicationStatus => None,
        }
    }
}

/// A volume list request.
#[derive(Clone, Debug, Default)]
pub struct VolumeQuery {
    /// Only this project's volumes (`None`: every project).
    pub project_id: Option<String>,
    /// Column filters (all must hold).
    pub filters: Vec<(VolumeColumn, FilterValue)>,
    /// User metadata that must be present.
    pub metadata: Vec<(String, String)>,
    /// Image metadata that must be present.
    pub glance_metadata: Vec<(String, String)>,
    /// Sort keys (the id is always the final tie-breaker).
    pub sort: Vec<(VolumeColumn, SortDir)>,
    /// Paging.
    pub page: Page<VolumeId>,
    /// Leave out the temporary volumes of migrations (`migration_status`
    /// `target:<id>`), which Cinder shows to administrators only.
    pub hide_migration_targets: bool,
}

/// What `begin_volume_delete` did.
#[derive(Clone, Debug)]
pub enum DeleteStart {
    /// The volume is now `deleting` and journaled; cast the delete to its
    /// backend.
    Started(Volume),
    /// It was already `deleting` (an idempotent repeat); re-cast to be safe.
    AlreadyDeleting(Volume),
    /// It was never placed on a backend, so its row was removed at once.
    DeletedWithoutBackend(Volume),
}

/// Options of a volume delete.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeleteOptions {
    /// Ignore the status (admin force).
    pub force: bool,
    /// Delete the volume's snapshots too.
    pub cascade: bool,
}

/// Volume repository.
#[async_trait::async_trait]
pub trait VolumeRepository {
    /// Inserts a `creating` volume with its metadata, charges quota and
    /// writes the journal row, in one transaction.
    ///
    /// # Errors
    /// [`DbError::OverQuota`] (nothing written), [`DbError::Conflict`] on a
    /// duplicate id.
    async fn create_volume(&self, new: NewVolume) -> Result<Volume, DbError>;

    /// One volume with metadata and live attachments.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn get_volume(&self, id: VolumeId) -> Result<Volume, DbError>;

    /// A page of volumes.
    ///
    /// # Errors
    /// [`DbError::NotFound`] for a marker that does not exist in scope.
    async fn list_volumes(&self, query: &VolumeQuery) -> Result<Vec<Volume>, DbError>;

    /// How many volumes match the query's filters (paging ignored).
    ///
    /// # Errors
    /// Database failures.
    async fn count_volumes(&self, query: &VolumeQuery) -> Result<i64, DbError>;

    /// Total size and count of a project's volumes (`volumes/summary`).
    ///
    /// # Errors
    /// Database failures.
    async fn volume_summary(&self, project_id: Option<&str>) -> Result<(i64, i64), DbError>;

    /// Every distinct user metadata value of a project's volumes (every
    /// project's with `None`), by key (`volumes/summary` from 3.36).
    ///
    /// # Errors
    /// Database failures.
    async fn volume_summary_metadata(
        &self,
        project_id: Option<&str>,
    ) -> Result<BTreeMap<String, BTreeSet<String>>, DbError>;

    /// Updates user-changeable fields.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn update_volume(&self, id: VolumeId, update: VolumeUpdate) -> Result<Volume, DbError>;

    /// Merges (`replace = false`) or replaces metadata of one kind; returns
    /// the resulting metadata.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn set_volume_metadata(
        &self,
        id: VolumeId,
        kind: MetadataKind,
        metadata: &BTreeMap<String, String>,
        replace: bool,
    ) -> Result<BTreeMap<String, String>, DbError>;

    /// Deletes one metadata key.
    ///
    /// # Errors
    /// [`DbError::NotFound`] for the volume or the key.
    async fn delete_volume_metadata(
        &self,
        id: VolumeId,
        kind: MetadataKind,
        key: &str,
    ) -> Result<(), DbError>;

    /// A plain compare-and-swap along `transition`.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] when the volume is not in a source status,
    /// [`DbError::NotFound`].
    async fn transition_volume(
        &self,
        id: VolumeId,
        transition: VolumeTransition,
    ) -> Result<Volume, DbError>;

    /// Marks a create done: `creating → available`, stores the driver's
    /// provider fields, removes the journal row. Returns the `launched_at`
    /// it stored (the rest of the row is the caller's volume with that
    /// status and those fields: no read back).
    ///
    /// # Errors
    /// [`DbError::InvalidState`] if the volume left `creating` meanwhile.
    async fn finish_volume_create(
        &self,
        id: VolumeId,
        update: ProviderUpdate,
    ) -> Result<Timestamp, DbError>;

    /// Marks a create failed: `creating → error`, removes the journal row.
    ///
    /// # Errors
    /// [`DbError::InvalidState`], [`DbError::NotFound`].
    async fn fail_volume_create(&self, id: VolumeId) -> Result<Volume, DbError>;

    /// Starts a delete: checks Cinder's preconditions (status, not attached,
    /// no snapshots unless cascading — which moves them to `deleting` too),
    /// moves to `deleting` and journals it.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] with the reason, [`DbError::NotFound`].
    async fn begin_volume_delete(
        &self,
        id: VolumeId,
        options: DeleteOptions,
    ) -> Result<DeleteStart, DbError>;

    /// Finishes a delete: removes the row and its children, releases quota
    /// and pool capacity, removes the journal row. Returns the deleted row
    /// (without metadata or attachments: the caller read those already).
    ///
    /// # Errors
    /// [`DbError::InvalidState`] if the volume is not `deleting`.
    async fn finish_volume_delete(&self, id: VolumeId) -> Result<Volume, DbError>;

    /// A delete failed: `deleting → error_deleting` (or `available` when the
    /// backend said busy), journal row removed.
    ///
    /// # Errors
    /// [`DbError::InvalidState`].
    async fn fail_volume_delete(&self, id: VolumeId, busy: bool) -> Result<Volume, DbError>;

    /// Starts an extend: `available`/`in-use` → `extending`, charges the
    /// gigabytes quota for the difference and journals the new size.
    ///
    /// # Errors
    /// [`DbError::InvalidState`], [`DbError::OverQuota`].
    async fn begin_volume_extend(
        &self,
        id: VolumeId,
        new_size: i64,
        allow_in_use: bool,
    ) -> Result<Volume, DbError>;

    /// Finishes an extend: sets the size, restores the previous status,
    /// removes the journal row.
    ///
    /// # Errors
    /// [`DbError::InvalidState`].
    async fn finish_volume_extend(&self, id: VolumeId, new_size: i64) -> Result<Volume, DbError>;

    /// An extend failed: `extending → error_extending`, returns the charged
    /// quota and claimed capacity, removes the journal row.
    ///
    /// # Errors
    /// [`DbError::InvalidState`].
    async fn fail_volume_extend(&self, id: VolumeId, new_size: i64) -> Result<Volume, DbError>;

    /// The scheduler found no room for an extend: back to the previous
    /// status, quota returned, nothing was claimed.
    ///
    /// # Errors
    /// [`DbError::InvalidState`].
    async fn abort_volume_extend(&self, id: VolumeId, new_size: i64) -> Result<Volume, DbError>;

    /// `os-reset_status`: sets any of the three statuses without checks
    /// (admin), removing a stale journal row.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn reset_volume_status(
        &self,
        id: VolumeId,
        status: Option<VolumeStatus>,
        attach_status: Option<clinker_types::AttachStatus>,
        migration_status: Option<Option<String>>,
    ) -> Result<Volume, DbError>;

    /// Volumes whose host is on `service_host` (`host@backend`), for
    /// `init_host`.
    ///
    /// # Errors
    /// Database failures.
    async fn volumes_on_backend(&self, service_host: &str) -> Result<Vec<Volume>, DbError>;

    /// Whether a volume row exists (any status, any project).
    ///
    /// # Errors
    /// Database failures.
    async fn volume_exists(&self, id: VolumeId) -> Result<bool, DbError>;
}
