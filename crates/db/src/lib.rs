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
mod capacity;
pub mod cinder;
mod default_types;
mod encryption;
mod error;
mod group_rows;
mod group_snapshots_repo;
mod groups;
mod groups_repo;
mod image_cache;
mod journal;
mod manage;
mod messages;
mod migrate;
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
mod types;
mod url;
mod volume_counts;
mod volume_migration;
mod volumes;

#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

use std::sync::Arc;

pub use attachments::{
    AttachmentColumn, AttachmentConnection, AttachmentQuery, AttachmentRepository, LegacyAttach,
    NewAttachment,
};
pub use backups::{
    BackupColumn, BackupLocation, BackupQuery, BackupRepository, BackupTemp, ImportedBackup,
    NewBackup,
};
pub use capacity::{CapacityRepository, ClaimOutcome};
pub use default_types::DefaultTypeRepository;
pub use encryption::{EncryptionRepository, EncryptionUpdate, NewEncryption};
pub use error::{DbError, OverQuota};
pub use groups::{
    GroupColumn, GroupDeleteEnd, GroupDeleteStart, GroupQuery, GroupRepository,
    GroupSnapshotColumn, GroupSnapshotQuery, GroupSnapshotRepository, GroupTypeRepository,
    GroupUpdate, NewGroup, NewGroupSnapshot, NewGroupType,
};
pub use image_cache::{ImageCacheEntry, ImageCacheRepository, NewImageCacheEntry};
pub use journal::JournalRepository;
pub use manage::{ManageRepository, NewManagedVolume};
pub use messages::MessageRepository;
pub use migrate::latest_version;
pub use pool::{Db, DbOptions, Dialect, QuotaDefaults};
pub use qos_specs::{
    NewQosSpecs, QosAssociation, QosSpecsColumn, QosSpecsQuery, QosSpecsRepository,
};
pub use query::{CompareOp, FilterValue, Page, SortDir};
pub use quota::QuotaRepository;
pub use retype::RetypeRepository;
pub use revert::{RevertOutcome, RevertRepository};
pub use services::{ServiceRegistration, ServiceRepository};
pub use snapshots::{NewSnapshot, SnapshotColumn, SnapshotQuery, SnapshotRepository};
pub use transfers::{
    AcceptRefusal, NewTransfer, TransferAcceptor, TransferColumn, TransferQuery, TransferRepository,
};
pub use types::{NewVolumeType, VolumeTypeRepository};
pub use url::translate_url;
pub use volume_migration::{
    FailedMigration, MIGRATION_CLEANUP, MigrationRepository, NewMigrationTarget, OldBacking,
    migration_target_status,
};
pub use volumes::{
    DeleteOptions, DeleteStart, MetadataKind, NewVolume, ProviderUpdate, VolumeColumn, VolumeQuery,
    VolumeRepository, VolumeUpdate,
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
    + ImageCacheRepository
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
        + ImageCacheRepository
        + std::fmt::Debug
        + Send
        + Sync
{
}
