//! Clinker's persistence.
//!
//! Repository traits ([`VolumeRepository`], [`SnapshotRepository`], …), one
//! per resource family, implemented by [`Db`] over sqlx's `Any` driver for
//! SQLite, PostgreSQL and MariaDB. Engine differences live in
//! [`pool::Dialect`] and in the migration renderer; every repository method is
//! written once.
//!
//! The invariants the rest of Clinker relies on are enforced here, inside
//! single transactions:
//! - every status change is a compare-and-swap against a
//!   [`clinker_types::status`] transition (zero rows → [`DbError::InvalidState`]);
//! - the operation journal row (`workers`) is written with the status change
//!   that starts an operation and removed with the one that ends it;
//! - quota usage changes with the rows it counts, so it always equals a recount;
//! - pool capacity is claimed with the placement that uses it.
//!
//! Depends on `clinker-types` and `clinker-config`.

mod attachments;
mod backups;
mod batch;
pub mod cinder;
mod default_types;
mod encryption;
mod error;
mod group_rows;
mod group_snapshots_repo;
mod group_types_repo;
mod groups;
mod groups_repo;
mod manage;
mod migrate;
mod misc;
mod pool;
mod qos_specs;
mod query;
mod quota;
mod retype;
mod revert;
mod rows;
mod services;
mod snapshots;
mod transfers;
mod types_repo;
mod url;
mod volume_counts;
mod volume_migration;
mod volumes;

#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use clinker_types::model::{JournalEntry, Service, Snapshot, UserMessage, Volume, VolumeType};
use clinker_types::status::{SnapshotTransition, VolumeTransition};
use clinker_types::{
    MessageId, SnapshotId, SnapshotStatus, Timestamp, VolumeId, VolumeStatus, VolumeTypeId,
};

pub use attachments::{
    AttachmentColumn, AttachmentConnection, AttachmentQuery, AttachmentRepository, LegacyAttach,
    NewAttachment,
};
pub use backups::{
    BackupColumn, BackupLocation, BackupQuery, BackupRepository, BackupTemp, ImportedBackup,
    NewBackup,
};
pub use default_types::DefaultTypeRepository;
pub use encryption::{EncryptionRepository, EncryptionUpdate, NewEncryption};
pub use error::{DbError, OverQuota};
pub use groups::{
    GroupColumn, GroupDeleteEnd, GroupDeleteStart, GroupQuery, GroupRepository,
    GroupSnapshotColumn, GroupSnapshotQuery, GroupSnapshotRepository, GroupTypeRepository,
    GroupUpdate, NewGroup, NewGroupSnapshot, NewGroupType,
};
pub use manage::{ManageRepository, NewManagedVolume};
pub use migrate::latest_version;
pub use pool::{Db, DbOptions, Dialect, QuotaDefaults};
pub use qos_specs::{
    NewQosSpecs, QosAssociation, QosSpecsColumn, QosSpecsQuery, QosSpecsRepository,
};
pub use retype::RetypeRepository;
pub use revert::{RevertOutcome, RevertRepository};
pub use transfers::{
    AcceptRefusal, NewTransfer, TransferAcceptor, TransferColumn, TransferQuery, TransferRepository,
};
pub use url::translate_url;
pub use volume_migration::{
    FailedMigration, MIGRATION_CLEANUP, MigrationRepository, NewMigrationTarget, OldBacking,
    migration_target_status,
};

/// A shared handle on every repository.
pub type DbHandle = Arc<dyn Database>;

/// Every repository, as one object-safe trait.
pub trait Database:
    VolumeRepository
    + SnapshotRepository
    + VolumeTypeRepository
    + ServiceRepository
    + QuotaRepository
    + JournalRepository
    + CapacityRepository
    + MessageRepository
    + AttachmentRepository
    + GroupTypeRepository
    + GroupRepository
    + GroupSnapshotRepository
    + QosSpecsRepository
    + TransferRepository
    + EncryptionRepository
    + DefaultTypeRepository
    + RevertRepository
    + RetypeRepository
    + MigrationRepository
    + ManageRepository
    + BackupRepository
    + std::fmt::Debug
    + Send
    + Sync
{
}

impl<T> Database for T where
    T: VolumeRepository
        + SnapshotRepository
        + VolumeTypeRepository
        + ServiceRepository
        + QuotaRepository
        + JournalRepository
        + CapacityRepository
        + MessageRepository
        + AttachmentRepository
        + GroupTypeRepository
        + GroupRepository
        + GroupSnapshotRepository
        + QosSpecsRepository
        + TransferRepository
        + EncryptionRepository
        + DefaultTypeRepository
        + RevertRepository
        + RetypeRepository
        + MigrationRepository
        + ManageRepository
        + BackupRepository
        + std::fmt::Debug
        + Send
        + Sync
{
}

// ---------------------------------------------------------------------------
// Volumes

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

/// A filterable snapshot column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotColumn {
    /// `id`.
    Id,
    /// `display_name`.
    DisplayName,
    /// `status`.
    Status,
    /// `volume_id`.
    VolumeId,
    /// `project_id`.
    ProjectId,
    /// `user_id`.
    UserId,
    /// `volume_size`.
    VolumeSize,
    /// `created_at`.
    CreatedAt,
    /// `updated_at`.
    UpdatedAt,
    /// `use_quota`.
    UseQuota,
    /// `group_snapshot_id`.
    GroupSnapshotId,
    /// The source volume's availability zone (joined).
    AvailabilityZone,
}

impl SnapshotColumn {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            SnapshotColumn::Id => "s.id",
            SnapshotColumn::DisplayName => "s.display_name",
            SnapshotColumn::Status => "s.status",
            SnapshotColumn::VolumeId => "s.volume_id",
            SnapshotColumn::ProjectId => "s.project_id",
            SnapshotColumn::UserId => "s.user_id",
            SnapshotColumn::VolumeSize => "s.volume_size",
            SnapshotColumn::CreatedAt => "s.created_at",
            SnapshotColumn::UpdatedAt => "s.updated_at",
            SnapshotColumn::UseQuota => "s.use_quota",
            SnapshotColumn::GroupSnapshotId => "s.group_snapshot_id",
            SnapshotColumn::AvailabilityZone => {
                "(SELECT sv.availability_zone FROM volumes sv WHERE sv.id = s.volume_id)"
            }
        }
    }

    pub(crate) fn is_integer(self) -> bool {
        matches!(
            self,
            SnapshotColumn::VolumeSize
                | SnapshotColumn::CreatedAt
                | SnapshotColumn::UpdatedAt
                | SnapshotColumn::UseQuota
        )
    }

    /// The column itself where it is NOT NULL (no `COALESCE` to hide the
    /// list index from the planner).
    pub(crate) fn sort_sql(self) -> Option<&'static str> {
        match self {
            SnapshotColumn::Id
            | SnapshotColumn::Status
            | SnapshotColumn::VolumeId
            | SnapshotColumn::ProjectId
            | SnapshotColumn::UserId
            | SnapshotColumn::VolumeSize
            | SnapshotColumn::CreatedAt
            | SnapshotColumn::UseQuota => Some(self.sql()),
            _ => None,
        }
    }
}

/// A comparison in a list filter.
#[derive(Clone, Debug, PartialEq)]
pub enum FilterValue {
    /// `= text`.
    Eq(String),
    /// `= integer`.
    EqInt(i64),
    /// `IN (…)`.
    In(Vec<String>),
    /// `IS NULL`.
    IsNull,
    /// Substring match (`name~=` since 3.34).
    Contains(String),
    /// `>`, `>=`, `<`, `<=`, `<>` on an integer (3.60 time comparisons).
    Compare(CompareOp, i64),
}

/// Comparison operators for [`FilterValue::Compare`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    /// `gt`.
    Gt,
    /// `gte`.
    Gte,
    /// `lt`.
    Lt,
    /// `lte`.
    Lte,
    /// `eq`.
    Eq,
    /// `neq`.
    Neq,
}

impl CompareOp {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            CompareOp::Gt => ">",
            CompareOp::Gte => ">=",
            CompareOp::Lt => "<",
            CompareOp::Lte => "<=",
            CompareOp::Eq => "=",
            CompareOp::Neq => "<>",
        }
    }
}

/// Sort direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortDir {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

/// Paging shared by the list queries.
#[derive(Clone, Debug)]
pub struct Page<M> {
    /// Rows after this one (keyset pagination).
    pub marker: Option<M>,
    /// At most this many rows.
    pub limit: Option<u32>,
    /// Skip this many rows (after the marker).
    pub offset: Option<u32>,
}

impl<M> Default for Page<M> {
    fn default() -> Self {
        Self {
            marker: None,
            limit: None,
            offset: None,
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

/// A snapshot list request.
#[derive(Clone, Debug, Default)]
pub struct SnapshotQuery {
    /// Only this project's snapshots.
    pub project_id: Option<String>,
    /// Column filters.
    pub filters: Vec<(SnapshotColumn, FilterValue)>,
    /// Metadata that must be present.
    pub metadata: Vec<(String, String)>,
    /// Sort keys.
    pub sort: Vec<(SnapshotColumn, SortDir)>,
    /// Paging.
    pub page: Page<SnapshotId>,
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

// ---------------------------------------------------------------------------
// Snapshots

/// A snapshot row to insert.
#[derive(Clone, Debug)]
pub struct NewSnapshot {
    /// Id.
    pub id: SnapshotId,
    /// Source volume.
    pub volume_id: VolumeId,
    /// Owner.
    pub user_id: String,
    /// Owner project.
    pub project_id: String,
    /// Name.
    pub display_name: Option<String>,
    /// Description.
    pub display_description: Option<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Allow an attached source volume (`force`, or 3.66+).
    pub allow_in_use: bool,
    /// Counts against quota.
    pub use_quota: bool,
}

/// Snapshot repository.
#[async_trait::async_trait]
pub trait SnapshotRepository {
    /// Inserts a `creating` snapshot after checking the source volume's
    /// status (locking its row), charges quota and journals it.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] (volume status), [`DbError::OverQuota`],
    /// [`DbError::NotFound`] (volume).
    async fn create_snapshot(&self, new: NewSnapshot) -> Result<Snapshot, DbError>;

    /// One snapshot.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn get_snapshot(&self, id: SnapshotId) -> Result<Snapshot, DbError>;

    /// A page of snapshots.
    ///
    /// # Errors
    /// [`DbError::NotFound`] for a missing marker.
    async fn list_snapshots(&self, query: &SnapshotQuery) -> Result<Vec<Snapshot>, DbError>;

    /// How many snapshots match.
    ///
    /// # Errors
    /// Database failures.
    async fn count_snapshots(&self, query: &SnapshotQuery) -> Result<i64, DbError>;

    /// Renames / re-describes.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn update_snapshot(
        &self,
        id: SnapshotId,
        display_name: Option<Option<String>>,
        display_description: Option<Option<String>>,
    ) -> Result<Snapshot, DbError>;

    /// Merges or replaces metadata.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn set_snapshot_metadata(
        &self,
        id: SnapshotId,
        metadata: &BTreeMap<String, String>,
        replace: bool,
    ) -> Result<BTreeMap<String, String>, DbError>;

    /// Deletes a metadata key.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn delete_snapshot_metadata(&self, id: SnapshotId, key: &str) -> Result<(), DbError>;

    /// `creating → available`, progress 100%, journal removed.
    ///
    /// # Errors
    /// [`DbError::InvalidState`].
    async fn finish_snapshot_create(
        &self,
        id: SnapshotId,
        provider_location: Option<String>,
    ) -> Result<Snapshot, DbError>;

    /// `creating → error`, journal removed.
    ///
    /// # Errors
    /// [`DbError::InvalidState`].
    async fn fail_snapshot_create(&self, id: SnapshotId) -> Result<Snapshot, DbError>;

    /// Undoes a snapshot create that was never dispatched (the volume
    /// service could not be reached): removes the `creating` row, its
    /// quota and its journal row, as if the request had not happened.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless still `creating`.
    async fn discard_snapshot_create(&self, id: SnapshotId) -> Result<(), DbError>;

    /// `available|error → deleting` (any status with `force`), journaled.
    ///
    /// # Errors
    /// [`DbError::InvalidState`], [`DbError::NotFound`].
    async fn begin_snapshot_delete(
        &self,
        id: SnapshotId,
        transition: SnapshotTransition,
    ) -> Result<Snapshot, DbError>;

    /// Removes the row, releases quota and the journal row.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless `deleting`.
    async fn finish_snapshot_delete(&self, id: SnapshotId) -> Result<Snapshot, DbError>;

    /// `deleting → error_deleting` (or `available` when busy).
    ///
    /// # Errors
    /// [`DbError::InvalidState`].
    async fn fail_snapshot_delete(&self, id: SnapshotId, busy: bool) -> Result<Snapshot, DbError>;

    /// `os-reset_status` / `os-update_snapshot_status`.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn set_snapshot_status(
        &self,
        id: SnapshotId,
        status: SnapshotStatus,
        progress: Option<String>,
    ) -> Result<Snapshot, DbError>;

    /// Snapshots of one volume.
    ///
    /// # Errors
    /// Database failures.
    async fn snapshots_of_volume(&self, volume_id: VolumeId) -> Result<Vec<Snapshot>, DbError>;

    /// Snapshots whose volume lives on `service_host`.
    ///
    /// # Errors
    /// Database failures.
    async fn snapshots_on_backend(&self, service_host: &str) -> Result<Vec<Snapshot>, DbError>;
}

// ---------------------------------------------------------------------------
// Volume types

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

// ---------------------------------------------------------------------------
// Services

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

// ---------------------------------------------------------------------------
// Quotas

/// Quota repository.
#[async_trait::async_trait]
pub trait QuotaRepository {
    /// Effective limits for a project: its own rows, then the `default`
    /// class, then the configuration; per-type resources for every type.
    ///
    /// # Errors
    /// Database failures.
    async fn quota_limits(&self, project_id: &str) -> Result<BTreeMap<String, i64>, DbError>;

    /// Usage counters of a project (missing resources are 0).
    ///
    /// # Errors
    /// Database failures.
    async fn quota_usages(&self, project_id: &str) -> Result<BTreeMap<String, i64>, DbError>;

    /// Sets a project's limit for one resource.
    ///
    /// # Errors
    /// Database failures.
    async fn set_project_quota(
        &self,
        project_id: &str,
        resource: &str,
        limit: i64,
    ) -> Result<(), DbError>;

    /// Removes a project's own limits (back to defaults).
    ///
    /// # Errors
    /// Database failures.
    async fn delete_project_quotas(&self, project_id: &str) -> Result<(), DbError>;

    /// Limits of a quota class (`default`), falling back to configuration.
    ///
    /// # Errors
    /// Database failures.
    async fn quota_class_limits(&self, class_name: &str) -> Result<BTreeMap<String, i64>, DbError>;

    /// Sets a class limit.
    ///
    /// # Errors
    /// Database failures.
    async fn set_quota_class(
        &self,
        class_name: &str,
        resource: &str,
        limit: i64,
    ) -> Result<(), DbError>;

    /// Recounts a project's usage from the resource rows (what the counters
    /// must equal).
    ///
    /// # Errors
    /// Database failures.
    async fn recount_usages(&self, project_id: &str) -> Result<BTreeMap<String, i64>, DbError>;

    /// Projects that have usage rows or resources.
    ///
    /// # Errors
    /// Database failures.
    async fn projects_with_usage(&self) -> Result<Vec<String>, DbError>;

    /// Rewrites a project's counters from a recount (`clinker manage quota
    /// sync`); returns the resources that had drifted.
    ///
    /// # Errors
    /// Database failures.
    async fn sync_usages(&self, project_id: &str) -> Result<Vec<String>, DbError>;
}

// ---------------------------------------------------------------------------
// Journal, capacity, messages

/// Operation journal repository.
#[async_trait::async_trait]
pub trait JournalRepository {
    /// Unfinished operations owned by a volume service.
    ///
    /// # Errors
    /// Database failures.
    async fn journal_for_backend(&self, service_host: &str) -> Result<Vec<JournalEntry>, DbError>;

    /// Operations no backend has claimed, written before `older_than`.
    ///
    /// # Errors
    /// Database failures.
    async fn unplaced_journal(&self, older_than: Timestamp) -> Result<Vec<JournalEntry>, DbError>;

    /// The extra detail (JSON) recorded with an operation, e.g. an extend's
    /// new size.
    ///
    /// # Errors
    /// Database failures.
    async fn journal_detail(&self, resource_id: &str)
    -> Result<Option<serde_json::Value>, DbError>;
}

/// What a placement claim achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The pool had room; the volume now lives there.
    Claimed,
    /// The pool is full; try another.
    NoCapacity,
    /// The volume is no longer waiting for placement (deleted, or already
    /// placed by another scheduler).
    NotWaiting,
}

/// Capacity claims on pools.
#[async_trait::async_trait]
pub trait CapacityRepository {
    /// Places a `creating`, unplaced volume on `pool` (`host@backend#pool`)
    /// if `allocated + size <= limit_gb`, in one transaction with the
    /// volume's host and its journal row.
    ///
    /// # Errors
    /// Database failures.
    async fn claim_volume_placement(
        &self,
        id: VolumeId,
        pool: &str,
        size: i64,
        limit_gb: i64,
    ) -> Result<ClaimOutcome, DbError>;

    /// Undoes a placement for a reschedule: clears the host (only if still
    /// on `pool` and `creating`) and returns the capacity.
    ///
    /// # Errors
    /// Database failures.
    async fn release_volume_placement(&self, id: VolumeId, pool: &str) -> Result<bool, DbError>;

    /// Claims `delta` more GiB on a volume's pool for an extend.
    ///
    /// # Errors
    /// Database failures.
    async fn claim_extend(
        &self,
        pool: &str,
        delta: i64,
        limit_gb: i64,
    ) -> Result<ClaimOutcome, DbError>;

    /// Allocated GiB per pool.
    ///
    /// # Errors
    /// Database failures.
    async fn pool_allocations(&self) -> Result<BTreeMap<String, i64>, DbError>;

    /// Recounts allocations from the volume rows (what the counters must equal).
    ///
    /// # Errors
    /// Database failures.
    async fn recount_pool_allocations(&self) -> Result<BTreeMap<String, i64>, DbError>;
}

/// User messages (`/messages`).
#[async_trait::async_trait]
pub trait MessageRepository {
    /// Stores a message.
    ///
    /// # Errors
    /// Database failures.
    async fn create_message(&self, message: &UserMessage) -> Result<(), DbError>;

    /// Messages of a project (all projects for `None`), newest first.
    ///
    /// # Errors
    /// Database failures.
    async fn list_messages(
        &self,
        project_id: Option<&str>,
        page: &Page<MessageId>,
    ) -> Result<Vec<UserMessage>, DbError>;

    /// One message.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn get_message(&self, id: MessageId) -> Result<UserMessage, DbError>;

    /// Deletes a message.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn delete_message(&self, id: MessageId) -> Result<(), DbError>;

    /// Deletes messages that expired before `now`; returns how many.
    ///
    /// # Errors
    /// Database failures.
    async fn delete_expired_messages(&self, now: Timestamp) -> Result<u64, DbError>;
}
