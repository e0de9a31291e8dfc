//! Volume backups (Cinder's `backup_*` database API): the `backups` rows
//! with their metadata, the `backups` and `backup_gigabytes` quotas, and
//! the volume status changes that go with a backup or a restore.
//!
//! As for volumes: every status change is a compare-and-swap; a backup's
//! quota is charged in the transaction that inserts its row (and released
//! in the one that removes it); the volume moves to `backing-up` (keeping
//! its status in `previous_status`) in the same transaction as the backup
//! row is inserted, and back when the backup ends, so a crash leaves
//! nothing the backup service's start-up cannot settle from the rows
//! alone. A backup's dependents are counted from `parent_id`, so
//! `has_dependent_backups` cannot drift.

use std::collections::BTreeMap;

use clinker_types::backup::{Backup, BackupService, BackupStatus};
use clinker_types::model::Snapshot;
use clinker_types::{BackupId, SnapshotId, Timestamp, VolumeId};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::error::DbError;
use crate::pool::{Db, in_transaction};
use crate::query::{self, Arg, bind_all, placeholders};
use crate::quota::charge_quota;
use crate::{FilterValue, NewSnapshot, Page, ProviderUpdate, SortDir};

mod repo;

/// A backup to insert.
#[derive(Clone, Debug)]
pub struct NewBackup {
    /// Id.
    pub id: BackupId,
    /// The volume to back up.
    pub volume_id: VolumeId,
    /// Owner.
    pub user_id: String,
    /// Owner project (the volume's; Cinder charges the volume's project).
    pub project_id: String,
    /// Name.
    pub display_name: Option<String>,
    /// Description.
    pub display_description: Option<String>,
    /// The container asked for.
    pub container: Option<String>,
    /// Incremental: the parent is the volume's latest `available` backup.
    pub incremental: bool,
    /// Allow an `in-use` volume.
    pub force: bool,
    /// The backup service that will make it.
    pub host: String,
    /// Its availability zone.
    pub availability_zone: Option<String>,
    /// The driver's class path.
    pub service: String,
    /// Metadata (3.43).
    pub metadata: BTreeMap<String, String>,
    /// Back up this `available` snapshot of the volume (it moves to
    /// `backing-up` instead of the volume).
    pub snapshot_id: Option<SnapshotId>,
}

/// A backup record to import (`import_record`): the fields a create
/// names ([`NewBackup`]: id kept, since incremental backups name their
/// parent by it; `container` is where the objects are; `incremental` and
/// `force` mean nothing here), owned by the importing project, and what
/// only a finished backup carries.
#[derive(Clone, Debug)]
pub struct ImportedBackup {
    /// The row's fields a create also has.
    pub backup: NewBackup,
    /// The object prefix (`service_metadata`).
    pub service_metadata: String,
    /// GiB.
    pub size: i64,
    /// Objects.
    pub object_count: i64,
    /// Parent of an incremental backup.
    pub parent_id: Option<BackupId>,
    /// When its data was taken.
    pub data_timestamp: Option<Timestamp>,
    /// Its creation time.
    pub created_at: Option<Timestamp>,
}

/// A temporary resource a backup records (Cinder's `temp_volume_id` and
/// `temp_snapshot_id`); `None` forgets it once it is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackupTemp {
    /// The temporary volume the backup reads.
    Volume(Option<VolumeId>),
    /// The temporary snapshot of an in-use volume.
    Snapshot(Option<SnapshotId>),
}

/// Where a finished backup's objects are.
#[derive(Clone, Debug, Default)]
pub struct BackupLocation {
    /// `container`.
    pub container: String,
    /// `service_metadata`.
    pub service_metadata: String,
}

/// A filterable, sortable backup column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackupColumn {
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
    /// `size`.
    Size,
    /// `availability_zone`.
    AvailabilityZone,
    /// `parent_id`.
    ParentId,
    /// `snapshot_id`.
    SnapshotId,
    /// `host`.
    Host,
    /// `container`.
    Container,
    /// `data_timestamp`.
    DataTimestamp,
    /// `created_at`.
    CreatedAt,
    /// `updated_at`.
    UpdatedAt,
}

impl BackupColumn {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            BackupColumn::Id => "b.id",
            BackupColumn::DisplayName => "b.display_name",
            BackupColumn::Status => "b.status",
            BackupColumn::VolumeId => "b.volume_id",
            BackupColumn::ProjectId => "b.project_id",
            BackupColumn::UserId => "b.user_id",
            BackupColumn::Size => "b.size",
            BackupColumn::AvailabilityZone => "b.availability_zone",
            BackupColumn::ParentId => "b.parent_id",
            BackupColumn::SnapshotId => "b.snapshot_id",
            BackupColumn::Host => "b.host",
            BackupColumn::Container => "b.container",
            BackupColumn::DataTimestamp => "b.data_timestamp",
            BackupColumn::CreatedAt => "b.created_at",
            BackupColumn::UpdatedAt => "b.updated_at",
        }
    }

    pub(crate) fn is_integer(self) -> bool {
        matches!(
            self,
            BackupColumn::Size
                | BackupColumn::DataTimestamp
                | BackupColumn::CreatedAt
                | BackupColumn::UpdatedAt
        )
    }
}

crate::query::sort_column!(BackupColumn);

/// A backup list request.
#[derive(Clone, Debug, Default)]
pub struct BackupQuery {
    /// Only this project's backups.
    pub project_id: Option<String>,
    /// Column filters.
    pub filters: Vec<(BackupColumn, FilterValue)>,
    /// Metadata that must be present.
    pub metadata: Vec<(String, String)>,
    /// Sort keys.
    pub sort: Vec<(BackupColumn, SortDir)>,
    /// Paging.
    pub page: Page<BackupId>,
}

/// Backup repository.
#[async_trait::async_trait]
pub trait BackupRepository {
    /// Inserts a `creating` backup: checks the volume's status (locking its
    /// row), chooses the parent of an incremental backup (the volume's
    /// `available` backup with the latest `data_timestamp`), charges
    /// `backups` and `backup_gigabytes` and moves the volume to
    /// `backing-up`, all in one transaction.
    ///
    /// # Errors
    /// [`DbError::NotFound`] (volume), [`DbError::InvalidState`] (volume
    /// status, no parent for an incremental backup),
    /// [`DbError::OverQuota`].
    async fn create_backup(&self, new: NewBackup) -> Result<Backup, DbError>;

    /// One backup, with its metadata.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn get_backup(&self, id: BackupId) -> Result<Backup, DbError>;

    /// A page of backups.
    ///
    /// # Errors
    /// [`DbError::NotFound`] for a missing marker.
    async fn list_backups(&self, query: &BackupQuery) -> Result<Vec<Backup>, DbError>;

    /// How many backups match.
    ///
    /// # Errors
    /// Database failures.
    async fn count_backups(&self, query: &BackupQuery) -> Result<i64, DbError>;

    /// Renames / re-describes (3.9); `metadata` replaces the backup's
    /// metadata (3.43), in the same transaction.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn update_backup(
        &self,
        id: BackupId,
        display_name: Option<Option<String>>,
        display_description: Option<Option<String>>,
        metadata: Option<&BTreeMap<String, String>>,
    ) -> Result<Backup, DbError>;

    /// Records where a `creating` backup writes, before its first object.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless `creating`.
    async fn record_backup_location(
        &self,
        id: BackupId,
        location: &BackupLocation,
    ) -> Result<(), DbError>;

    /// `creating → available` with the object count, and the volume back
    /// from `backing-up` to its previous status.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless `creating`.
    async fn finish_backup_create(
        &self,
        id: BackupId,
        location: &BackupLocation,
        object_count: i64,
    ) -> Result<Backup, DbError>;

    /// `creating → error` with the reason, and the volume back from
    /// `backing-up` to its previous status. The quota stays charged until
    /// the backup is deleted, as in Cinder.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless `creating`.
    async fn fail_backup_create(&self, id: BackupId, reason: &str) -> Result<Backup, DbError>;

    /// `available|error → deleting` (with `force` also `creating` and
    /// `restoring`). Refused while incremental backups depend on it.
    ///
    /// # Errors
    /// [`DbError::InvalidState`], [`DbError::NotFound`].
    async fn begin_backup_delete(&self, id: BackupId, force: bool) -> Result<Backup, DbError>;

    /// Removes a `deleting` row with its metadata and releases its quota.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless `deleting`.
    async fn finish_backup_delete(&self, id: BackupId) -> Result<(), DbError>;

    /// `deleting → error_deleting` with the reason.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless `deleting`.
    async fn fail_backup_delete(&self, id: BackupId, reason: &str) -> Result<Backup, DbError>;

    /// `available → restoring` and the target volume `available →
    /// restoring-backup`, in one transaction; the volume must be at least
    /// the backup's size.
    ///
    /// # Errors
    /// [`DbError::InvalidState`], [`DbError::NotFound`].
    async fn begin_backup_restore(
        &self,
        id: BackupId,
        volume_id: VolumeId,
    ) -> Result<Backup, DbError>;

    /// Ends a restore: the backup back to `available`, the volume to
    /// `available` (success) or `error_restoring`.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless `restoring`.
    async fn finish_backup_restore(
        &self,
        id: BackupId,
        volume_id: VolumeId,
        succeeded: bool,
    ) -> Result<Backup, DbError>;

    /// `os-reset_status` (`available` or `error`).
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn set_backup_status(
        &self,
        id: BackupId,
        status: BackupStatus,
    ) -> Result<Backup, DbError>;

    /// Inserts an imported backup (`available`), charging `backups` and
    /// `backup_gigabytes` in the same transaction.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] when the id is taken,
    /// [`DbError::OverQuota`].
    async fn import_backup(&self, imported: ImportedBackup) -> Result<Backup, DbError>;

    /// The backups a backup service owns (for its start-up).
    ///
    /// # Errors
    /// Database failures.
    async fn backups_on_host(&self, host: &str) -> Result<Vec<Backup>, DbError>;

    /// Records (or, with `None`, forgets) a temporary resource of a
    /// backup. A temporary volume is recorded before its row is inserted,
    /// so a crash never leaves one the backup service's start-up cannot
    /// find.
    ///
    /// # Errors
    /// [`DbError::NotFound`].
    async fn set_backup_temp(&self, id: BackupId, temp: BackupTemp) -> Result<(), DbError>;

    /// Inserts the temporary snapshot a `creating` backup of a
    /// `backing-up` volume reads (outside quota, `creating`, journaled)
    /// and records it as the backup's `temp_snapshot_id`, in one
    /// transaction.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless the backup is `creating` and the
    /// volume `backing-up`; [`DbError::NotFound`].
    async fn create_backup_temp_snapshot(
        &self,
        id: BackupId,
        new: NewSnapshot,
    ) -> Result<Snapshot, DbError>;

    /// The enabled `cinder-backup` services whose heartbeat is no older
    /// than `down_time_secs` at `now`, each with the number of backups it
    /// is making, restoring or deleting: the one list every choice of a
    /// backup host starts from.
    ///
    /// # Errors
    /// Database failures.
    async fn up_backup_services(
        &self,
        now: Timestamp,
        down_time_secs: u64,
    ) -> Result<Vec<BackupService>, DbError>;

    /// Hands a volume created from a backup (3.47) to the backup service:
    /// the volume `creating → restoring-backup` (its provider fields
    /// stored, its create journal row ended, `previous_status` =
    /// `creating` so a failed restore ends it `error`) and the backup
    /// `available → restoring` on `backup_host`, in one transaction.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] unless the backup is `available` and the
    /// volume `creating`; [`DbError::NotFound`].
    async fn begin_volume_restore_from_backup(
        &self,
        id: BackupId,
        volume_id: VolumeId,
        backup_host: &str,
        provider: ProviderUpdate,
    ) -> Result<Backup, DbError>;
}

pub(crate) const BACKUP_COLUMNS: &str = "b.id, b.volume_id, b.user_id, b.project_id, b.host, b.availability_zone, \
     b.display_name, b.display_description, b.container, b.status, b.fail_reason, b.service_metadata, b.service, \
     b.size, b.object_count, b.parent_id, b.snapshot_id, b.data_timestamp, b.restore_volume_id, b.encryption_key_id, \
     b.temp_volume_id, b.temp_snapshot_id, b.created_at, b.updated_at, \
     (SELECT COUNT(*) FROM backups d WHERE d.parent_id = b.id) AS num_dependent_backups";

fn decode(row: &AnyRow) -> Result<Backup, DbError> {
    use sqlx::Row;
    fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T, DbError>
    where
        T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        row.try_get(name)
            .map_err(|e| DbError::Internal(format!("column {name}: {e}")))
    }
    fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, DbError> {
        text.parse()
            .map_err(|_| DbError::Internal(format!("corrupt {what} {text:?} in database")))
    }
    fn opt<T: std::str::FromStr>(text: Option<String>, what: &str) -> Result<Option<T>, DbError> {
        text.map(|t| parse(&t, what)).transpose()
    }
    let id: String = col(row, "id")?;
    let volume_id: String = col(row, "volume_id")?;
    let status: String = col(row, "status")?;
    Ok(Backup {
        id: parse(&id, "backup id")?,
        volume_id: parse(&volume_id, "volume id")?,
        user_id: col(row, "user_id")?,
        project_id: col(row, "project_id")?,
        host: col(row, "host")?,
        availability_zone: col(row, "availability_zone")?,
        display_name: col(row, "display_name")?,
        display_description: col(row, "display_description")?,
        container: col(row, "container")?,
        status: parse(&status, "backup status")?,
        fail_reason: col(row, "fail_reason")?,
        service_metadata: col(row, "service_metadata")?,
        service: col(row, "service")?,
        size: col(row, "size")?,
        object_count: col(row, "object_count")?,
        parent_id: opt(col(row, "parent_id")?, "backup id")?,
        snapshot_id: opt(col(row, "snapshot_id")?, "snapshot id")?,
        data_timestamp: Timestamp(col(row, "data_timestamp")?),
        restore_volume_id: opt(col(row, "restore_volume_id")?, "volume id")?,
        temp_volume_id: opt(col(row, "temp_volume_id")?, "volume id")?,
        temp_snapshot_id: opt(col(row, "temp_snapshot_id")?, "snapshot id")?,
        encryption_key_id: col(row, "encryption_key_id")?,
        num_dependent_backups: col(row, "num_dependent_backups")?,
        created_at: Timestamp(col(row, "created_at")?),
        updated_at: col::<Option<i64>>(row, "updated_at")?.map(Timestamp),
        metadata: BTreeMap::new(),
    })
}

/// The charges of one backup (negate `sign` to release).
fn backup_charges(size: i64, sign: i64) -> Vec<(String, i64)> {
    vec![
        ("backups".to_owned(), sign),
        ("backup_gigabytes".to_owned(), sign * size),
    ]
}

impl Db {
    async fn insert_backup_metadata(
        &self,
        conn: &mut AnyConnection,
        id: BackupId,
        metadata: &BTreeMap<String, String>,
    ) -> Result<(), DbError> {
        for (key, value) in metadata {
            sqlx::query(self.q(
                "INSERT INTO backup_metadata (backup_id, meta_key, meta_value) VALUES (?, ?, ?)",
            ))
            .bind(id.to_string())
            .bind(key.as_str())
            .bind(value.as_str())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    async fn load_backup_metadata(&self, backups: &mut [Backup]) -> Result<(), DbError> {
        if backups.is_empty() {
            return Ok(());
        }
        let mut pairs = Vec::new();
        let ids: Vec<String> = backups.iter().map(|b| b.id.to_string()).collect();
        for chunk in ids.chunks(500) {
            let args: Vec<Arg> = chunk.iter().map(|i| Arg::Text(i.clone())).collect();
            let sql = self.dynamic(format!(
                "SELECT backup_id, meta_key, meta_value FROM backup_metadata WHERE backup_id IN ({})",
                placeholders(chunk.len())
            ));
            for row in bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
                .fetch_all(&mut *self.reader().await?)
                .await?
            {
                use sqlx::Row;
                pairs.push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
            }
        }
        let mut grouped = crate::rows::group_pairs(pairs);
        for backup in backups.iter_mut() {
            if let Some(meta) = grouped.remove(&backup.id.to_string()) {
                backup.metadata = meta;
            }
        }
        Ok(())
    }

    async fn lock_backup(&self, conn: &mut AnyConnection, id: BackupId) -> Result<Backup, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {BACKUP_COLUMNS} FROM backups b WHERE b.id = ?{}",
            self.dialect.for_update()
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| DbError::not_found("backup", id))?;
        decode(&row)
    }

    /// Swaps a backup's status; zero rows is `InvalidState` (or
    /// `NotFound`).
    async fn cas_backup_status(
        &self,
        conn: &mut AnyConnection,
        id: BackupId,
        from: &[BackupStatus],
        to: BackupStatus,
        extra_sets: &str,
        extra_args: Vec<Arg>,
    ) -> Result<(), DbError> {
        let sql = self.dynamic(format!(
            "UPDATE backups SET status = ?, updated_at = ?{extra_sets} WHERE id = ? AND status IN ({})",
            placeholders(from.len())
        ));
        let mut args = vec![
            Arg::Text(to.as_str().to_owned()),
            Arg::Int(self.now().as_micros()),
        ];
        args.extend(extra_args);
        args.push(Arg::Text(id.to_string()));
        args.extend(from.iter().map(|s| Arg::Text(s.as_str().to_owned())));
        if bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
            .execute(&mut *conn)
            .await?
            .rows_affected()
            == 1
        {
            return Ok(());
        }
        let current: Option<String> =
            sqlx::query_scalar(self.q("SELECT status FROM backups WHERE id = ?"))
                .bind(id.to_string())
                .fetch_optional(&mut *conn)
                .await?;
        match current {
            None => Err(DbError::not_found("backup", id)),
            Some(status) => Err(DbError::InvalidState(format!("backup {id} is {status}"))),
        }
    }

    /// Puts a `backing-up` volume back to the status it had (the backup's
    /// end). A volume an administrator moved meanwhile is left alone.
    async fn end_volume_backing_up(
        &self,
        conn: &mut AnyConnection,
        volume_id: VolumeId,
    ) -> Result<(), DbError> {
        sqlx::query(self.q(
            "UPDATE volumes SET status = COALESCE(previous_status, 'available'), previous_status = NULL, \
             updated_at = ? WHERE id = ? AND status = 'backing-up'",
        ))
        .bind(self.now().as_micros())
        .bind(volume_id.to_string())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Ends what a backup's start moved to `backing-up`: its snapshot back
    /// to `available`, or its volume back to its previous status.
    async fn end_backing_up(
        &self,
        conn: &mut AnyConnection,
        backup: &Backup,
    ) -> Result<(), DbError> {
        match backup.snapshot_id {
            Some(snapshot_id) => {
                sqlx::query(self.q(
                    "UPDATE snapshots SET status = 'available', updated_at = ? WHERE id = ? AND status = 'backing-up'",
                ))
                .bind(self.now().as_micros())
                .bind(snapshot_id.to_string())
                .execute(&mut *conn)
                .await?;
                Ok(())
            }
            None => self.end_volume_backing_up(conn, backup.volume_id).await,
        }
    }

    fn backup_where(query: &BackupQuery, args: &mut Vec<Arg>) -> String {
        let mut sql = String::from(" WHERE 1 = 1");
        if let Some(project) = &query.project_id {
            sql.push_str(" AND b.project_id = ?");
            args.push(Arg::Text(project.clone()));
        }
        for (column, value) in &query.filters {
            query::push_filter(&mut sql, args, column.sql(), column.is_integer(), value);
        }
        for (key, value) in &query.metadata {
            sql.push_str(
                " AND EXISTS (SELECT 1 FROM backup_metadata m WHERE m.backup_id = b.id AND m.meta_key = ? AND m.meta_value = ?)",
            );
            args.push(Arg::Text(key.clone()));
            args.push(Arg::Text(value.clone()));
        }
        sql
    }

    /// Inserts a backup row with its metadata: a create's (`creating`) or
    /// an imported record's (`available`).
    async fn insert_backup_row(
        &self,
        conn: &mut AnyConnection,
        new: &NewBackup,
        row: BackupRow<'_>,
    ) -> Result<(), DbError> {
        sqlx::query(self.q(
            "INSERT INTO backups (id, volume_id, user_id, project_id, host, availability_zone, display_name, \
             display_description, container, status, service_metadata, service, size, object_count, parent_id, \
             snapshot_id, data_timestamp, encryption_key_id, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(new.id.to_string())
        .bind(new.volume_id.to_string())
        .bind(new.user_id.as_str())
        .bind(new.project_id.as_str())
        .bind(new.host.as_str())
        .bind(new.availability_zone.as_deref())
        .bind(new.display_name.as_deref())
        .bind(new.display_description.as_deref())
        .bind(new.container.as_deref())
        .bind(row.status.as_str())
        .bind(row.service_metadata)
        .bind(new.service.as_str())
        .bind(row.size)
        .bind(row.object_count)
        .bind(row.parent_id)
        .bind(new.snapshot_id.map(|s| s.to_string()))
        .bind(row.data_timestamp)
        .bind(row.encryption_key_id)
        .bind(row.created_at)
        .bind(row.updated_at)
        .execute(&mut *conn)
        .await?;
        self.insert_backup_metadata(conn, new.id, &new.metadata)
            .await
    }
}

/// The columns of a new backup row beyond what [`NewBackup`] names.
struct BackupRow<'a> {
    status: BackupStatus,
    service_metadata: Option<&'a str>,
    size: i64,
    object_count: i64,
    parent_id: Option<String>,
    data_timestamp: i64,
    encryption_key_id: Option<&'a str>,
    created_at: i64,
    updated_at: Option<i64>,
}

/// `fail_reason` is a VARCHAR(255).
fn truncate(reason: &str) -> String {
    reason.chars().take(255).collect()
}
