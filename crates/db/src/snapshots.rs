//! Snapshots: [`SnapshotRepository`], its row types and queries, for [`Db`].

use std::collections::BTreeMap;

use clinker_types::model::{JournalResource, Snapshot};
use clinker_types::status::SnapshotTransition;
use clinker_types::{SnapshotId, SnapshotStatus, VolumeId, VolumeStatus};
use sqlx::AnyConnection;

use crate::error::DbError;
use crate::pool::{Db, in_transaction};
use crate::query::{self, Arg, bind_all, placeholders};
use crate::quota::{charge_quota, snapshot_charges};
use crate::rows::{self, SNAPSHOT_COLUMNS};
use crate::{FilterValue, Page, SortDir};

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

impl Db {
    /// Inserts a `creating` snapshot of the locked `volume` with its
    /// metadata, quota charge (when it uses quota) and journal row, inside
    /// the caller's transaction.
    pub(crate) async fn insert_snapshot_in(
        &self,
        tx: &mut AnyConnection,
        new: &NewSnapshot,
        volume: &clinker_types::model::Volume,
    ) -> Result<(), DbError> {
        if new.use_quota {
            let charges =
                snapshot_charges(self, volume.volume_type_name.as_deref(), volume.size, 1);
            charge_quota(self, tx, &new.project_id, &charges).await?;
        }
        let now = self.now().as_micros();
        sqlx::query(self.q(
            "INSERT INTO snapshots (id, volume_id, user_id, project_id, status, progress, volume_size, display_name, \
             display_description, volume_type_id, use_quota, created_at, updated_at) \
             VALUES (?, ?, ?, ?, 'creating', '0%', ?, ?, ?, ?, ?, ?, NULL)",
        ))
        .bind(new.id.to_string())
        .bind(new.volume_id.to_string())
        .bind(new.user_id.as_str())
        .bind(new.project_id.as_str())
        .bind(volume.size)
        .bind(new.display_name.as_deref())
        .bind(new.display_description.as_deref())
        .bind(volume.volume_type_id.to_string())
        .bind(i64::from(new.use_quota))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        self.write_snapshot_metadata(&mut *tx, new.id, &new.metadata)
            .await?;
        self.journal_snapshot(
            &mut *tx,
            new.id,
            SnapshotStatus::Creating,
            volume.host.as_deref(),
        )
        .await
    }

    pub(crate) async fn lock_snapshot(
        &self,
        conn: &mut AnyConnection,
        id: SnapshotId,
    ) -> Result<Snapshot, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM snapshots s WHERE s.id = ?{}",
            self.dialect.for_update()
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| DbError::not_found("snapshot", id))?;
        rows::snapshot(&row)
    }

    async fn load_snapshot_metadata(&self, snapshots: &mut [Snapshot]) -> Result<(), DbError> {
        if snapshots.is_empty() {
            return Ok(());
        }
        let mut pairs = Vec::new();
        let ids: Vec<String> = snapshots.iter().map(|s| s.id.to_string()).collect();
        for chunk in ids.chunks(500) {
            let args: Vec<Arg> = chunk.iter().map(|i| Arg::Text(i.clone())).collect();
            let sql = self.dynamic(format!(
                "SELECT snapshot_id, meta_key, meta_value FROM snapshot_metadata WHERE snapshot_id IN ({})",
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
        let mut grouped = rows::group_pairs(pairs);
        for snapshot in snapshots.iter_mut() {
            if let Some(meta) = grouped.remove(&snapshot.id.to_string()) {
                snapshot.metadata = meta;
            }
        }
        Ok(())
    }

    pub(crate) async fn cas_snapshot_status(
        &self,
        conn: &mut AnyConnection,
        id: SnapshotId,
        from: &[SnapshotStatus],
        to: SnapshotStatus,
        extra_sets: &str,
        extra_args: Vec<Arg>,
    ) -> Result<(), DbError> {
        let sql = self.dynamic(format!(
            "UPDATE snapshots SET status = ?, updated_at = ?{extra_sets} WHERE id = ? AND status IN ({})",
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
            sqlx::query_scalar(self.q("SELECT status FROM snapshots WHERE id = ?"))
                .bind(id.to_string())
                .fetch_optional(&mut *conn)
                .await?;
        match current {
            None => Err(DbError::not_found("snapshot", id)),
            Some(status) => Err(DbError::InvalidState(format!("snapshot {id} is {status}"))),
        }
    }

    pub(crate) async fn snapshot_type_name(
        &self,
        conn: &mut AnyConnection,
        snapshot: &Snapshot,
    ) -> Result<Option<String>, DbError> {
        Ok(
            sqlx::query_scalar(self.q("SELECT name FROM volume_types WHERE id = ?"))
                .bind(snapshot.volume_type_id.to_string())
                .fetch_optional(&mut *conn)
                .await?,
        )
    }

    fn snapshot_where(&self, query: &SnapshotQuery, args: &mut Vec<Arg>) -> String {
        let mut sql = String::from(" WHERE 1 = 1");
        if let Some(project) = &query.project_id {
            sql.push_str(" AND s.project_id = ?");
            args.push(Arg::Text(project.clone()));
        }
        for (column, value) in &query.filters {
            query::push_filter(&mut sql, args, column.sql(), column.is_integer(), value);
        }
        for (key, value) in &query.metadata {
            sql.push_str(
                " AND EXISTS (SELECT 1 FROM snapshot_metadata m WHERE m.snapshot_id = s.id AND m.meta_key = ? AND m.meta_value = ?)",
            );
            args.push(Arg::Text(key.clone()));
            args.push(Arg::Text(value.clone()));
        }
        sql
    }

    pub(crate) async fn write_snapshot_metadata(
        &self,
        conn: &mut AnyConnection,
        id: SnapshotId,
        metadata: &BTreeMap<String, String>,
    ) -> Result<(), DbError> {
        for (key, value) in metadata {
            sqlx::query(
                self.q("DELETE FROM snapshot_metadata WHERE snapshot_id = ? AND meta_key = ?"),
            )
            .bind(id.to_string())
            .bind(key.as_str())
            .execute(&mut *conn)
            .await?;
            sqlx::query(self.q("INSERT INTO snapshot_metadata (snapshot_id, meta_key, meta_value) VALUES (?, ?, ?)"))
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
impl SnapshotRepository for Db {
    async fn create_snapshot(&self, new: NewSnapshot) -> Result<Snapshot, DbError> {
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, new.volume_id).await?;
            let allowed = volume.status == VolumeStatus::Available
                || (new.allow_in_use && volume.status == VolumeStatus::InUse);
            if !allowed {
                return Err(DbError::InvalidState(format!(
                    "volume {} is {}",
                    volume.id, volume.status
                )));
            }
            self.insert_snapshot_in(&mut tx, &new, &volume).await
        })?;
        self.get_snapshot(new.id).await
    }

    async fn get_snapshot(&self, id: SnapshotId) -> Result<Snapshot, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM snapshots s WHERE s.id = ?"
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.to_string())
            .fetch_optional(&mut *self.reader().await?)
            .await?
            .ok_or_else(|| DbError::not_found("snapshot", id))?;
        let mut found = vec![rows::snapshot(&row)?];
        self.load_snapshot_metadata(&mut found).await?;
        found
            .pop()
            .ok_or_else(|| DbError::not_found("snapshot", id))
    }

    async fn list_snapshots(&self, query: &SnapshotQuery) -> Result<Vec<Snapshot>, DbError> {
        let mut args = Vec::new();
        let where_sql = self.snapshot_where(query, &mut args);
        let found = self
            .fetch_page(
                &query::ListTable {
                    columns: SNAPSHOT_COLUMNS,
                    from: "snapshots s",
                    id: "s.id",
                    project: "s.project_id",
                },
                &where_sql,
                args,
                &query.sort,
                query.project_id.as_deref(),
                &query.page,
            )
            .await?;
        let mut snapshots = found
            .iter()
            .map(rows::snapshot)
            .collect::<Result<Vec<_>, _>>()?;
        self.load_snapshot_metadata(&mut snapshots).await?;
        Ok(snapshots)
    }

    async fn count_snapshots(&self, query: &SnapshotQuery) -> Result<i64, DbError> {
        let mut args = Vec::new();
        let sql = self.dynamic(format!(
            "SELECT COUNT(*) FROM snapshots s{}",
            self.snapshot_where(query, &mut args)
        ));
        let row = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
            .fetch_one(&mut *self.reader().await?)
            .await?;
        Ok(sqlx::Row::try_get::<i64, _>(&row, 0)?)
    }

    async fn update_snapshot(
        &self,
        id: SnapshotId,
        display_name: Option<Option<String>>,
        display_description: Option<Option<String>>,
    ) -> Result<Snapshot, DbError> {
        let mut sets = String::new();
        let mut args = vec![Arg::Int(self.now().as_micros())];
        if let Some(name) = display_name {
            sets.push_str(", display_name = ?");
            args.push(name.map(Arg::Text).unwrap_or(Arg::Null));
        }
        if let Some(description) = display_description {
            sets.push_str(", display_description = ?");
            args.push(description.map(Arg::Text).unwrap_or(Arg::Null));
        }
        args.push(Arg::Text(id.to_string()));
        let sql = self.dynamic(format!(
            "UPDATE snapshots SET updated_at = ?{sets} WHERE id = ?"
        ));
        if bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
            .execute(&mut *self.writer().await?)
            .await?
            .rows_affected()
            == 0
        {
            return Err(DbError::not_found("snapshot", id));
        }
        self.get_snapshot(id).await
    }

    async fn set_snapshot_metadata(
        &self,
        id: SnapshotId,
        metadata: &BTreeMap<String, String>,
        replace: bool,
    ) -> Result<BTreeMap<String, String>, DbError> {
        in_transaction!(self, |tx| {
            self.lock_snapshot(&mut tx, id).await?;
            if replace {
                sqlx::query(self.q("DELETE FROM snapshot_metadata WHERE snapshot_id = ?"))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            self.write_snapshot_metadata(&mut tx, id, metadata).await
        })?;
        Ok(self.get_snapshot(id).await?.metadata)
    }

    async fn delete_snapshot_metadata(&self, id: SnapshotId, key: &str) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            self.lock_snapshot(&mut tx, id).await?;
            let deleted = sqlx::query(
                self.q("DELETE FROM snapshot_metadata WHERE snapshot_id = ? AND meta_key = ?"),
            )
            .bind(id.to_string())
            .bind(key)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if deleted == 0 {
                return Err(DbError::not_found("metadata key", key));
            }
            Ok::<_, DbError>(())
        })
    }

    async fn finish_snapshot_create(
        &self,
        id: SnapshotId,
        provider_location: Option<String>,
    ) -> Result<Snapshot, DbError> {
        let row = SnapshotTransition::CreateSucceeded.transition();
        in_transaction!(self, |tx| {
            self.cas_snapshot_status(
                &mut tx,
                id,
                row.from,
                row.to,
                ", progress = '100%', provider_location = ?",
                vec![
                    provider_location
                        .clone()
                        .map(Arg::Text)
                        .unwrap_or(Arg::Null),
                ],
            )
            .await?;
            self.remove_journal(&mut tx, JournalResource::Snapshot, &id.to_string())
                .await
        })?;
        self.get_snapshot(id).await
    }

    async fn fail_snapshot_create(&self, id: SnapshotId) -> Result<Snapshot, DbError> {
        let row = SnapshotTransition::CreateFailed.transition();
        in_transaction!(self, |tx| {
            self.cas_snapshot_status(&mut tx, id, row.from, row.to, "", Vec::new())
                .await?;
            self.remove_journal(&mut tx, JournalResource::Snapshot, &id.to_string())
                .await
        })?;
        self.get_snapshot(id).await
    }

    async fn discard_snapshot_create(&self, id: SnapshotId) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            let snapshot = self.lock_snapshot(&mut tx, id).await?;
            if snapshot.status != SnapshotStatus::Creating {
                return Err(DbError::InvalidState(format!(
                    "snapshot {id} is {}, not creating",
                    snapshot.status
                )));
            }
            if snapshot.use_quota {
                let type_name = self.snapshot_type_name(&mut tx, &snapshot).await?;
                let charges =
                    snapshot_charges(self, type_name.as_deref(), snapshot.volume_size, -1);
                charge_quota(self, &mut tx, &snapshot.project_id, &charges).await?;
            }
            sqlx::query(self.q("DELETE FROM snapshot_metadata WHERE snapshot_id = ?"))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            sqlx::query(self.q("DELETE FROM snapshots WHERE id = ?"))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            self.remove_journal(&mut tx, JournalResource::Snapshot, &id.to_string())
                .await
        })
    }

    async fn begin_snapshot_delete(
        &self,
        id: SnapshotId,
        transition: SnapshotTransition,
    ) -> Result<Snapshot, DbError> {
        let row = transition.transition();
        in_transaction!(self, |tx| {
            let snapshot = self.lock_snapshot(&mut tx, id).await?;
            self.cas_snapshot_status(&mut tx, id, row.from, row.to, "", Vec::new())
                .await?;
            self.journal_snapshot(
                &mut tx,
                id,
                SnapshotStatus::Deleting,
                snapshot.host.as_deref(),
            )
            .await
        })?;
        self.get_snapshot(id).await
    }

    async fn finish_snapshot_delete(&self, id: SnapshotId) -> Result<Snapshot, DbError> {
        let before = self.get_snapshot(id).await?;
        in_transaction!(self, |tx| {
            let snapshot = self.lock_snapshot(&mut tx, id).await?;
            if snapshot.status != SnapshotStatus::Deleting {
                return Err(DbError::InvalidState(format!(
                    "snapshot {id} is {}, not deleting",
                    snapshot.status
                )));
            }
            if snapshot.use_quota {
                let type_name = self.snapshot_type_name(&mut tx, &snapshot).await?;
                let charges =
                    snapshot_charges(self, type_name.as_deref(), snapshot.volume_size, -1);
                charge_quota(self, &mut tx, &snapshot.project_id, &charges).await?;
            }
            sqlx::query(self.q("DELETE FROM snapshot_metadata WHERE snapshot_id = ?"))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            sqlx::query(self.q("DELETE FROM snapshots WHERE id = ?"))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            self.remove_journal(&mut tx, JournalResource::Snapshot, &id.to_string())
                .await
        })?;
        Ok(before)
    }

    async fn fail_snapshot_delete(&self, id: SnapshotId, busy: bool) -> Result<Snapshot, DbError> {
        let transition = if busy {
            SnapshotTransition::DeleteBusy
        } else {
            SnapshotTransition::DeleteFailed
        };
        let row = transition.transition();
        in_transaction!(self, |tx| {
            self.cas_snapshot_status(&mut tx, id, row.from, row.to, "", Vec::new())
                .await?;
            self.remove_journal(&mut tx, JournalResource::Snapshot, &id.to_string())
                .await
        })?;
        self.get_snapshot(id).await
    }

    async fn set_snapshot_status(
        &self,
        id: SnapshotId,
        status: SnapshotStatus,
        progress: Option<String>,
    ) -> Result<Snapshot, DbError> {
        in_transaction!(self, |tx| {
            let mut sets = String::from("status = ?, updated_at = ?");
            let mut args = vec![
                Arg::Text(status.as_str().to_owned()),
                Arg::Int(self.now().as_micros()),
            ];
            if let Some(p) = &progress {
                sets.push_str(", progress = ?");
                args.push(Arg::Text(p.clone()));
            }
            args.push(Arg::Text(id.to_string()));
            let sql = self.dynamic(format!("UPDATE snapshots SET {sets} WHERE id = ?"));
            if bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 0
            {
                return Err(DbError::not_found("snapshot", id));
            }
            self.remove_journal(&mut tx, JournalResource::Snapshot, &id.to_string())
                .await
        })?;
        self.get_snapshot(id).await
    }

    async fn snapshots_of_volume(&self, volume_id: VolumeId) -> Result<Vec<Snapshot>, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM snapshots s WHERE s.volume_id = ? ORDER BY s.created_at"
        ));
        let found = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(volume_id.to_string())
            .fetch_all(&mut *self.reader().await?)
            .await?;
        let mut snapshots = found
            .iter()
            .map(rows::snapshot)
            .collect::<Result<Vec<_>, _>>()?;
        self.load_snapshot_metadata(&mut snapshots).await?;
        Ok(snapshots)
    }

    async fn snapshots_on_backend(&self, service_host: &str) -> Result<Vec<Snapshot>, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM snapshots s JOIN volumes v ON v.id = s.volume_id \
             WHERE v.host = ? OR v.host LIKE ? ESCAPE '!' ORDER BY s.created_at"
        ));
        let prefix = format!(
            "{}#%",
            service_host
                .replace('!', "!!")
                .replace('%', "!%")
                .replace('_', "!_")
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(service_host)
            .bind(prefix)
            .fetch_all(&mut *self.reader().await?)
            .await?;
        found.iter().map(rows::snapshot).collect()
    }
}
