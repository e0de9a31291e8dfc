//! [`VolumeRepository`] for [`Db`].

use std::collections::{BTreeMap, BTreeSet};

use clinker_types::model::{JournalResource, Volume};
use clinker_types::status::VolumeTransition;
use clinker_types::{AttachStatus, Host, SnapshotStatus, Timestamp, VolumeId, VolumeStatus};
use sqlx::AnyConnection;

use crate::batch::{Batch, BatchTx, Outcome, in_batched_transaction};
use crate::error::DbError;
use crate::pool::{Db, in_transaction};
use crate::query::{self, Arg, bind_all, placeholders};
use crate::quota::{QuotaCharge, charge_quota, limits_from, push_limits_read, volume_charges};
use crate::rows::{self, ATTACHMENT_COLUMNS, VOLUME_COLUMNS, VOLUME_FROM};
use crate::volume_counts::volume_page_from;
use crate::{
    DeleteOptions, DeleteStart, MetadataKind, NewVolume, ProviderUpdate, VolumeQuery,
    VolumeRepository, VolumeUpdate,
};

/// The gigabytes charges of growing a volume by `delta`.
fn extend_charges(volume: &Volume, delta: i64) -> Vec<(String, i64)> {
    let mut charges = vec![("gigabytes".to_owned(), delta)];
    if let Some(name) = &volume.volume_type_name {
        charges.push((format!("gigabytes_{name}"), delta));
    }
    charges
}

/// `host@backend` of a volume's `host@backend#pool`.
pub(crate) fn service_host_of(host: &str) -> String {
    host.parse::<Host>()
        .map(|h| h.service_host())
        .unwrap_or_else(|_| host.to_owned())
}

/// One volume with its metadata joined (one result row per metadata entry,
/// at least one), by id.
const VOLUME_BY_ID: &str = "SELECT v.id, v.user_id, v.project_id, v.host, v.size, v.availability_zone, v.status, \
     v.attach_status, v.migration_status, v.display_name, v.display_description, v.provider_location, \
     v.provider_auth, v.provider_id, v.volume_type_id, v.snapshot_id, v.source_volid, v.bootable, v.multiattach, \
     v.encryption_key_id, v.consistencygroup_id, v.group_id, v.replication_status, v.previous_status, \
     v.service_uuid, v.shared_targets, v.use_quota, v.cluster_name, v.created_at, v.updated_at, v.scheduled_at, \
     v.launched_at, t.name AS volume_type_name, m.kind AS meta_kind, m.meta_key, m.meta_value \
     FROM volumes v LEFT JOIN volume_types t ON t.id = v.volume_type_id \
     LEFT JOIN volume_metadata m ON m.volume_id = v.id WHERE v.id = ?";

/// A volume (without attachments) from the rows of [`VOLUME_BY_ID`].
fn volume_from_rows(id: VolumeId, found: &[sqlx::any::AnyRow]) -> Result<Volume, DbError> {
    let Some(first) = found.first() else {
        return Err(DbError::not_found("volume", id));
    };
    let mut volume = rows::volume(first)?;
    for row in found {
        use sqlx::Row;
        let kind: Option<String> = row.try_get("meta_kind")?;
        let (Some(kind), Some(key), Some(value)) = (
            kind,
            row.try_get::<Option<String>, _>("meta_key")?,
            row.try_get::<Option<String>, _>("meta_value")?,
        ) else {
            continue;
        };
        match kind.as_str() {
            "user" => volume.metadata.insert(key, value),
            "admin" => volume.admin_metadata.insert(key, value),
            "glance" => volume.glance_metadata.insert(key, value),
            _ => None,
        };
    }
    Ok(volume)
}

impl Db {
    /// Loads one volume row (no children) inside a transaction, locking it
    /// on engines that have row locks.
    pub(crate) async fn lock_volume(
        &self,
        conn: &mut AnyConnection,
        id: VolumeId,
    ) -> Result<Volume, DbError> {
        let mut batch = Batch::new();
        let read = self.push_lock_volume(&mut batch, id);
        let outcomes = batch.run(self, conn).await?;
        Self::locked_volume(&outcomes[read], id)
    }

    /// Adds [`Self::lock_volume`]'s read to `batch`; decode its outcome
    /// with [`Self::locked_volume`].
    pub(crate) fn push_lock_volume(&self, batch: &mut Batch, id: VolumeId) -> usize {
        batch.push(
            self,
            format!(
                "SELECT {VOLUME_COLUMNS} FROM {VOLUME_FROM} WHERE v.id = ?{}",
                if self.dialect == crate::Dialect::Postgres {
                    " FOR UPDATE OF v"
                } else {
                    self.dialect.for_update()
                }
            ),
            vec![Arg::Text(id.to_string())],
        )
    }

    /// The volume read by [`Self::push_lock_volume`].
    pub(crate) fn locked_volume(outcome: &Outcome, id: VolumeId) -> Result<Volume, DbError> {
        let row = outcome
            .rows
            .first()
            .ok_or_else(|| DbError::not_found("volume", id))?;
        rows::volume(row)
    }

    /// Fills metadata and live attachments of `volumes`.
    pub(crate) async fn load_volume_children(&self, volumes: &mut [Volume]) -> Result<(), DbError> {
        self.load_metadata(volumes).await?;
        self.load_attachments(volumes).await
    }

    fn index_by_id(volumes: &[Volume]) -> BTreeMap<String, usize> {
        volumes
            .iter()
            .enumerate()
            .map(|(i, v)| (v.id.to_string(), i))
            .collect()
    }

    /// Fills the three kinds of metadata with one query per 500 volumes.
    async fn load_metadata(&self, volumes: &mut [Volume]) -> Result<(), DbError> {
        if volumes.is_empty() {
            return Ok(());
        }
        let by_id = Self::index_by_id(volumes);
        let ids: Vec<String> = volumes.iter().map(|v| v.id.to_string()).collect();
        // Chunk to stay far below every engine's bind-parameter limit.
        for chunk in ids.chunks(500) {
            let args: Vec<Arg> = chunk.iter().map(|i| Arg::Text(i.clone())).collect();
            let sql = self.dynamic(format!(
                "SELECT volume_id, kind, meta_key, meta_value FROM volume_metadata WHERE volume_id IN ({})",
                placeholders(chunk.len())
            ));
            for row in bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
                .fetch_all(&mut *self.reader().await?)
                .await?
            {
                use sqlx::Row;
                let volume_id: String = row.try_get(0)?;
                let kind: String = row.try_get(1)?;
                let (key, value): (String, String) = (row.try_get(2)?, row.try_get(3)?);
                let Some(&i) = by_id.get(&volume_id) else {
                    continue;
                };
                let target = match kind.as_str() {
                    "user" => &mut volumes[i].metadata,
                    "admin" => &mut volumes[i].admin_metadata,
                    "glance" => &mut volumes[i].glance_metadata,
                    _ => continue,
                };
                target.insert(key, value);
            }
        }
        Ok(())
    }

    /// Fills the live attachments. Only volumes that are (being) attached
    /// can have any: the attach paths set `attach_status` or one of these
    /// statuses before writing an attachment row, so the others cost no
    /// query.
    pub(crate) async fn load_attachments(&self, volumes: &mut [Volume]) -> Result<(), DbError> {
        let attachable: Vec<String> = volumes
            .iter()
            .filter(|v| {
                v.attach_status != clinker_types::AttachStatus::Detached
                    || matches!(
                        v.status,
                        VolumeStatus::Reserved
                            | VolumeStatus::Attaching
                            | VolumeStatus::InUse
                            | VolumeStatus::Detaching
                    )
            })
            .map(|v| v.id.to_string())
            .collect();
        if attachable.is_empty() {
            return Ok(());
        }
        let by_id = Self::index_by_id(volumes);
        for chunk in attachable.chunks(500) {
            let args: Vec<Arg> = chunk.iter().map(|i| Arg::Text(i.clone())).collect();
            let sql = self.dynamic(format!(
                "SELECT {ATTACHMENT_COLUMNS} FROM volume_attachment WHERE volume_id IN ({}) \
                 AND attach_status NOT IN ('detached', 'deleted') ORDER BY created_at",
                placeholders(chunk.len())
            ));
            for row in bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
                .fetch_all(&mut *self.reader().await?)
                .await?
            {
                let attachment = rows::attachment(&row)?;
                if let Some(&i) = by_id.get(&attachment.volume_id.to_string()) {
                    volumes[i].attachments.push(attachment);
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn insert_journal(
        &self,
        conn: &mut AnyConnection,
        resource: JournalResource,
        resource_id: &str,
        status: &str,
        service_host: Option<&str>,
        detail: Option<serde_json::Value>,
    ) -> Result<(), DbError> {
        let mut batch = Batch::new();
        self.push_journal(
            &mut batch,
            resource,
            resource_id,
            status,
            service_host,
            detail,
        );
        batch.run(self, conn).await?;
        Ok(())
    }

    /// Adds the upsert of a resource's journal row to `batch`.
    pub(crate) fn push_journal(
        &self,
        batch: &mut Batch,
        resource: JournalResource,
        resource_id: &str,
        status: &str,
        service_host: Option<&str>,
        detail: Option<serde_json::Value>,
    ) {
        let sql = self.dialect.upsert(
            "workers (resource_type, resource_id, status, service_host, detail_json, created_at, updated_at)",
            "(?, ?, ?, ?, ?, ?, ?)",
            "resource_type, resource_id",
            &[
                "status",
                "service_host",
                "detail_json",
                "created_at",
                "updated_at",
            ],
        );
        let now = self.now().as_micros();
        batch.push(
            self,
            sql,
            vec![
                Arg::Text(resource.as_str().to_owned()),
                Arg::Text(resource_id.to_owned()),
                Arg::Text(status.to_owned()),
                service_host.map_or(Arg::Null, |h| Arg::Text(h.to_owned())),
                detail.map_or(Arg::Null, |d| Arg::Text(d.to_string())),
                Arg::Int(now),
                Arg::Int(now),
            ],
        );
    }

    pub(crate) async fn journal_volume(
        &self,
        conn: &mut AnyConnection,
        id: VolumeId,
        status: VolumeStatus,
        host: Option<&str>,
        detail: Option<serde_json::Value>,
    ) -> Result<(), DbError> {
        let service_host = host.map(service_host_of);
        self.insert_journal(
            conn,
            JournalResource::Volume,
            &id.to_string(),
            status.as_str(),
            service_host.as_deref(),
            detail,
        )
        .await
    }

    pub(crate) async fn journal_snapshot(
        &self,
        conn: &mut AnyConnection,
        id: clinker_types::SnapshotId,
        status: SnapshotStatus,
        host: Option<&str>,
    ) -> Result<(), DbError> {
        let service_host = host.map(service_host_of);
        self.insert_journal(
            conn,
            JournalResource::Snapshot,
            &id.to_string(),
            status.as_str(),
            service_host.as_deref(),
            None,
        )
        .await
    }

    pub(crate) async fn remove_journal(
        &self,
        conn: &mut AnyConnection,
        resource: JournalResource,
        id: &str,
    ) -> Result<(), DbError> {
        let mut batch = Batch::new();
        self.push_remove_journal(&mut batch, resource, id);
        batch.run(self, conn).await?;
        Ok(())
    }

    /// Compare-and-swap of the status inside a transaction; distinguishes a
    /// missing row from a row in another status.
    pub(crate) async fn cas_volume_status(
        &self,
        conn: &mut AnyConnection,
        id: VolumeId,
        from: &[VolumeStatus],
        to: VolumeStatus,
        extra_sets: &str,
        extra_args: Vec<Arg>,
    ) -> Result<(), DbError> {
        let mut batch = Batch::new();
        let cas = self.push_volume_cas(&mut batch, id, from, to, extra_sets, extra_args);
        self.run_volume_cas(conn, id, from, batch, cas).await
    }

    /// [`Self::cas_volume_status`] that also ends the volume's journal row,
    /// in one batch: the status change that finishes an operation.
    pub(crate) async fn cas_volume_status_ending_journal(
        &self,
        conn: &mut AnyConnection,
        id: VolumeId,
        from: &[VolumeStatus],
        to: VolumeStatus,
        extra_sets: &str,
        extra_args: Vec<Arg>,
    ) -> Result<(), DbError> {
        let mut batch = Batch::new();
        let cas =
            self.push_volume_cas_ending_journal(&mut batch, id, from, to, extra_sets, extra_args);
        self.run_volume_cas(conn, id, from, batch, cas).await
    }

    /// Adds a volume's status swap and the removal of its journal row to
    /// `batch`; returns the swap's index. A refused swap must fail the
    /// transaction, which takes the journal removal back with it.
    pub(crate) fn push_volume_cas_ending_journal(
        &self,
        batch: &mut Batch,
        id: VolumeId,
        from: &[VolumeStatus],
        to: VolumeStatus,
        extra_sets: &str,
        extra_args: Vec<Arg>,
    ) -> usize {
        let cas = self.push_volume_cas(batch, id, from, to, extra_sets, extra_args);
        self.push_remove_journal(batch, JournalResource::Volume, &id.to_string());
        cas
    }

    /// Runs `batch` and checks its swap (statement `cas`).
    async fn run_volume_cas(
        &self,
        conn: &mut AnyConnection,
        id: VolumeId,
        from: &[VolumeStatus],
        batch: Batch,
        cas: usize,
    ) -> Result<(), DbError> {
        let outcomes = batch.run(self, &mut *conn).await?;
        self.check_volume_cas(conn, id, from, &outcomes[cas]).await
    }

    /// Adds a volume's status compare-and-swap to `batch`; check its
    /// outcome with [`Self::check_volume_cas`].
    pub(crate) fn push_volume_cas(
        &self,
        batch: &mut Batch,
        id: VolumeId,
        from: &[VolumeStatus],
        to: VolumeStatus,
        extra_sets: &str,
        extra_args: Vec<Arg>,
    ) -> usize {
        let mut args = vec![
            Arg::Text(to.as_str().to_owned()),
            Arg::Int(self.now().as_micros()),
        ];
        args.extend(extra_args);
        args.push(Arg::Text(id.to_string()));
        args.extend(from.iter().map(|s| Arg::Text(s.as_str().to_owned())));
        batch.push(
            self,
            format!(
                "UPDATE volumes SET status = ?, updated_at = ?{extra_sets} WHERE id = ? AND status IN ({})",
                placeholders(from.len())
            ),
            args,
        )
    }

    /// Turns a swap that matched no row into the error that says why: the
    /// volume is gone, or in another status.
    pub(crate) async fn check_volume_cas(
        &self,
        conn: &mut AnyConnection,
        id: VolumeId,
        from: &[VolumeStatus],
        outcome: &Outcome,
    ) -> Result<(), DbError> {
        if outcome.affected == 1 {
            return Ok(());
        }
        let current: Option<String> =
            sqlx::query_scalar(self.q("SELECT status FROM volumes WHERE id = ?"))
                .bind(id.to_string())
                .fetch_optional(&mut *conn)
                .await?;
        match current {
            None => Err(DbError::not_found("volume", id)),
            Some(status) => Err(DbError::InvalidState(format!(
                "volume {id} is {status}, expected one of {}",
                from.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Adds the removal of a resource's journal row to `batch`.
    pub(crate) fn push_remove_journal(
        &self,
        batch: &mut Batch,
        resource: JournalResource,
        id: &str,
    ) {
        batch.push(
            self,
            "DELETE FROM workers WHERE resource_type = ? AND resource_id = ?",
            vec![
                Arg::Text(resource.as_str().to_owned()),
                Arg::Text(id.to_owned()),
            ],
        );
    }

    pub(crate) async fn delete_volume_rows(
        &self,
        conn: &mut AnyConnection,
        volume: &Volume,
    ) -> Result<(), DbError> {
        let charges = Self::release_charges(volume);
        let release = QuotaCharge::new(&volume.project_id, &charges);
        let mut batch = Batch::new();
        let update = self.push_delete_volume_rows(&mut batch, volume, &release);
        let outcomes = batch.run(self, &mut *conn).await?;
        release
            .finish_release(self, conn, update.map(|i| &outcomes[i]))
            .await
    }

    /// [`Self::delete_volume_rows`] in a batched transaction.
    async fn delete_volume_rows_in(
        &self,
        tx: &mut BatchTx,
        volume: &Volume,
    ) -> Result<(), DbError> {
        let charges = Self::release_charges(volume);
        let release = QuotaCharge::new(&volume.project_id, &charges);
        let mut batch = Batch::new();
        let update = self.push_delete_volume_rows(&mut batch, volume, &release);
        let outcomes = tx.run(self, batch).await?;
        release
            .finish_release(self, tx.conn(self).await?, update.map(|i| &outcomes[i]))
            .await
    }

    /// The usage a deleted volume gives back.
    fn release_charges(volume: &Volume) -> Vec<(String, i64)> {
        if volume.use_quota {
            volume_charges(volume.volume_type_name.as_deref(), volume.size, -1)
        } else {
            Vec::new()
        }
    }

    /// Adds the statements that remove a volume: the usage given back
    /// (returns that statement's index, for
    /// [`QuotaCharge::finish_release`]), the pool's capacity released, the
    /// rows and the journal entry gone.
    fn push_delete_volume_rows(
        &self,
        batch: &mut Batch,
        volume: &Volume,
        release: &QuotaCharge<'_>,
    ) -> Option<usize> {
        let id = volume.id.to_string();
        let update = release.push_release(self, batch);
        if let Some(host) = &volume.host {
            batch.push(
                self,
                "UPDATE pool_allocations SET allocated_gb = allocated_gb - ? WHERE pool = ?",
                vec![Arg::Int(volume.size), Arg::Text(host.clone())],
            );
        }
        for sql in [
            "DELETE FROM volume_metadata WHERE volume_id = ?",
            "DELETE FROM volume_attachment WHERE volume_id = ?",
            // A force-deleted volume may still be offered for transfer.
            "DELETE FROM transfers WHERE volume_id = ?",
            "DELETE FROM volumes WHERE id = ?",
        ] {
            batch.push(self, sql, vec![Arg::Text(id.clone())]);
        }
        self.push_volume_count(batch, &volume.project_id, -1, -volume.size);
        self.push_remove_journal(batch, JournalResource::Volume, &id);
        update
    }

    /// Inserts a `creating` volume with its metadata, its quota charges and
    /// its journal row inside the caller's transaction (a plain create, or
    /// the members of a group created from a source, all in one).
    pub(crate) async fn insert_new_volume(
        &self,
        conn: &mut AnyConnection,
        new: &NewVolume,
        now: i64,
    ) -> Result<(), DbError> {
        // Two round trips: the quota reads, then every write.
        let (charges, wanted) = Self::new_volume_quota(new);
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let charge = QuotaCharge::new(&new.project_id, &charges);
        let mut reads = Batch::new();
        let limits_read = push_limits_read(self, &mut reads, &new.project_id, &wanted);
        let usage_read = charge.push_usage_read(self, &mut reads);
        let mut read = if reads.is_empty() {
            Vec::new()
        } else {
            reads.run(self, &mut *conn).await?
        };
        let limits = match limits_read {
            Some(i) => limits_from(self, &read[i].rows, &wanted)?,
            None => BTreeMap::new(),
        };
        let usage_rows = usage_read.map_or_else(Vec::new, |i| std::mem::take(&mut read[i].rows));
        let (writes, update) =
            self.new_volume_writes(new, now, &charge, &limits, Some(&usage_rows))?;
        let written = writes.run(self, conn).await?;
        // A refused quota update fails the transaction, which takes the
        // inserts back with it.
        charge.check(update.map(|i| &written[i]))
    }

    /// The quota charges of a new volume and the resources whose limits
    /// it is checked against.
    fn new_volume_quota(new: &NewVolume) -> (Vec<(String, i64)>, Vec<String>) {
        if !new.use_quota {
            return (Vec::new(), Vec::new());
        }
        let charges = volume_charges(Some(&new.volume_type_name), new.size, 1);
        let mut wanted: Vec<String> = charges.iter().map(|(r, _)| r.clone()).collect();
        wanted.push("per_volume_gigabytes".to_owned());
        (charges, wanted)
    }

    /// The limits a new volume is checked against, read before its
    /// transaction (as Cinder reads them before reserving): the writer is
    /// not held for them.
    async fn new_volume_limits(&self, new: &NewVolume) -> Result<BTreeMap<String, i64>, DbError> {
        let (_, wanted) = Self::new_volume_quota(new);
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let mut conn = self.reader().await?;
        crate::quota::limits_for(self, &mut conn, &new.project_id, &wanted).await
    }

    /// [`Self::insert_new_volume`] in a batched transaction, with the
    /// limits already read. On SQLite the charge needs no usage read either
    /// ([`QuotaCharge::push_unread_update`]), so the insert goes with the
    /// transaction's `BEGIN` in one round trip.
    async fn insert_new_volume_in(
        &self,
        tx: &mut BatchTx,
        new: &NewVolume,
        now: i64,
        limits: &BTreeMap<String, i64>,
    ) -> Result<Volume, DbError> {
        let (charges, _) = Self::new_volume_quota(new);
        let charge = QuotaCharge::new(&new.project_id, &charges);
        let unread = self.dialect == crate::Dialect::Sqlite;
        let usage_rows = if unread {
            None
        } else {
            let mut reads = Batch::new();
            match charge.push_usage_read(self, &mut reads) {
                Some(i) => Some(std::mem::take(&mut tx.run(self, reads).await?[i].rows)),
                None => Some(Vec::new()),
            }
        };
        let (mut writes, update) =
            self.new_volume_writes(new, now, &charge, limits, usage_rows.as_deref())?;
        // The answer is read in the same transaction and round trip as the
        // writes: a committed create must never turn into an error because
        // a second connection could not be had afterwards.
        let read_back = writes.push(self, VOLUME_BY_ID, vec![Arg::Text(new.id.to_string())]);
        let mut written = tx.run(self, writes).await?;
        let rows = std::mem::take(&mut written[read_back].rows);
        let update = update.map(|i| &written[i]);
        if unread {
            charge.check_unread(self, update, limits).await?;
        } else {
            charge.check(update)?;
        }
        volume_from_rows(new.id, &rows)
    }

    /// The statements that insert a new volume: its quota charge (after a
    /// usage read, or without one when `usage_rows` is `None`), its row,
    /// metadata and journal row. Also returns the index of the charge's
    /// `UPDATE`, to check once the batch ran.
    ///
    /// # Errors
    /// The size is over `per_volume_gigabytes`, or (with a usage read) a
    /// charge is over its limit.
    fn new_volume_writes(
        &self,
        new: &NewVolume,
        now: i64,
        charge: &QuotaCharge<'_>,
        limits: &BTreeMap<String, i64>,
        usage_rows: Option<&[sqlx::any::AnyRow]>,
    ) -> Result<(Batch, Option<usize>), DbError> {
        // Cinder checks per_volume_gigabytes before reserving.
        let per_volume = limits.get("per_volume_gigabytes").copied().unwrap_or(-1);
        if new.use_quota && per_volume >= 0 && new.size > per_volume {
            return Err(DbError::OverQuota(crate::OverQuota {
                resource: "per_volume_gigabytes".into(),
                limit: per_volume,
                in_use: 0,
                requested: new.size,
            }));
        }
        let mut writes = Batch::new();
        let quota_update = match usage_rows {
            None => charge.push_unread_update(self, &mut writes, limits),
            Some(rows) => charge.push_update(self, &mut writes, rows, limits)?,
        };
        self.push_type_lock_for_new_volume(&mut writes, new.volume_type_id);
        let (key_type, key_id) = Self::new_volume_key_args(new.volume_type_id);
        let opt = |v: Option<String>| v.map_or(Arg::Null, Arg::Text);
        writes.push(
            self,
            "INSERT INTO volumes (id, user_id, project_id, host, size, availability_zone, status, attach_status, \
             display_name, display_description, volume_type_id, snapshot_id, source_volid, bootable, multiattach, \
             group_id, use_quota, replication_status, created_at, updated_at, encryption_key_id) \
             VALUES (?, ?, ?, NULL, ?, ?, 'creating', 'detached', ?, ?, ?, ?, ?, ?, ?, ?, ?, 'disabled', ?, NULL, \
             CASE WHEN EXISTS (SELECT 1 FROM encryption e WHERE e.volume_type_id = ?) THEN ? ELSE NULL END)",
            vec![
                Arg::Text(new.id.to_string()),
                Arg::Text(new.user_id.clone()),
                Arg::Text(new.project_id.clone()),
                Arg::Int(new.size),
                Arg::Text(new.availability_zone.clone()),
                opt(new.display_name.clone()),
                opt(new.display_description.clone()),
                Arg::Text(new.volume_type_id.to_string()),
                opt(new.snapshot_id.map(|s| s.to_string())),
                opt(new.source_volid.map(|s| s.to_string())),
                Arg::Int(i64::from(new.bootable)),
                Arg::Int(i64::from(new.multiattach)),
                opt(new.group_id.clone()),
                Arg::Int(i64::from(new.use_quota)),
                Arg::Int(now),
                Arg::Text(key_type),
                Arg::Text(key_id),
            ],
        );
        self.push_volume_count(&mut writes, &new.project_id, 1, new.size);
        self.push_metadata_inserts(&mut writes, new.id, MetadataKind::User, &new.metadata);
        self.push_metadata_inserts(
            &mut writes,
            new.id,
            MetadataKind::Glance,
            &new.glance_metadata,
        );
        // A brand-new volume has no journal row to replace.
        writes.push(
            self,
            "INSERT INTO workers (resource_type, resource_id, status, service_host, detail_json, created_at, updated_at) \
             VALUES ('Volume', ?, 'creating', NULL, NULL, ?, ?)",
            vec![Arg::Text(new.id.to_string()), Arg::Int(now), Arg::Int(now)],
        );
        Ok((writes, quota_update))
    }

    /// Inserts metadata of a row that has none yet.
    pub(crate) async fn insert_metadata(
        &self,
        conn: &mut AnyConnection,
        id: VolumeId,
        kind: MetadataKind,
        metadata: &BTreeMap<String, String>,
    ) -> Result<(), DbError> {
        let mut batch = Batch::new();
        self.push_metadata_inserts(&mut batch, id, kind, metadata);
        batch.run(self, conn).await?;
        Ok(())
    }

    /// Adds the inserts of metadata a row has none of yet to `batch`.
    fn push_metadata_inserts(
        &self,
        batch: &mut Batch,
        id: VolumeId,
        kind: MetadataKind,
        metadata: &BTreeMap<String, String>,
    ) {
        for (key, value) in metadata {
            batch.push(
                self,
                "INSERT INTO volume_metadata (volume_id, kind, meta_key, meta_value) VALUES (?, ?, ?, ?)",
                vec![
                    Arg::Text(id.to_string()),
                    Arg::Text(kind.as_str().to_owned()),
                    Arg::Text(key.clone()),
                    Arg::Text(value.clone()),
                ],
            );
        }
    }

    async fn write_metadata(
        &self,
        conn: &mut AnyConnection,
        id: VolumeId,
        kind: MetadataKind,
        metadata: &BTreeMap<String, String>,
    ) -> Result<(), DbError> {
        for (key, value) in metadata {
            sqlx::query(self.q(
                "DELETE FROM volume_metadata WHERE volume_id = ? AND kind = ? AND meta_key = ?",
            ))
            .bind(id.to_string())
            .bind(kind.as_str())
            .bind(key.as_str())
            .execute(&mut *conn)
            .await?;
            sqlx::query(self.q("INSERT INTO volume_metadata (volume_id, kind, meta_key, meta_value) VALUES (?, ?, ?, ?)"))
                .bind(id.to_string())
                .bind(kind.as_str())
                .bind(key.as_str())
                .bind(value.as_str())
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// The page query of a volume list and its arguments.
    pub(crate) async fn volume_page_query(
        &self,
        query: &VolumeQuery,
    ) -> Result<(String, Vec<Arg>), DbError> {
        let mut args = Vec::new();
        let where_sql = self.volume_where(query, &mut args);
        let page_from = volume_page_from(self.dialect);
        self.page_query(
            &query::ListTable {
                columns: VOLUME_COLUMNS,
                from: VOLUME_FROM,
                id: "v.id",
                project: "v.project_id",
            },
            page_from.as_deref(),
            &where_sql,
            args,
            &query.sort,
            query.project_id.as_deref(),
            &query.page,
        )
        .await
    }

    fn volume_where(&self, query: &VolumeQuery, args: &mut Vec<Arg>) -> String {
        let mut sql = String::from(" WHERE 1 = 1");
        if let Some(project) = &query.project_id {
            sql.push_str(" AND v.project_id = ?");
            args.push(Arg::Text(project.clone()));
        }
        for (column, value) in &query.filters {
            query::push_filter(&mut sql, args, column.sql(), column.is_integer(), value);
        }
        if query.hide_migration_targets {
            sql.push_str(
                " AND (v.migration_status IS NULL OR v.migration_status NOT LIKE 'target:%')",
            );
        }
        for (kind, pairs) in [
            ("user", &query.metadata),
            ("glance", &query.glance_metadata),
        ] {
            for (key, value) in pairs {
                // Driven by the matching metadata rows (`volume_metadata_value`),
                // not by a probe of every volume of the project.
                sql.push_str(
                    " AND v.id IN (SELECT m.volume_id FROM volume_metadata m WHERE m.kind = ? \
                     AND m.meta_key = ? AND m.meta_value = ?)",
                );
                args.push(Arg::Text(kind.to_owned()));
                args.push(Arg::Text(key.clone()));
                args.push(Arg::Text(value.clone()));
            }
        }
        sql
    }
}

#[async_trait::async_trait]
impl VolumeRepository for Db {
    async fn create_volume(&self, new: NewVolume) -> Result<Volume, DbError> {
        let now = self.now().as_micros();
        let limits = self.new_volume_limits(&new).await?;
        in_batched_transaction!(self, |tx| self
            .insert_new_volume_in(tx, &new, now, &limits)
            .await)
    }

    async fn get_volume(&self, id: VolumeId) -> Result<Volume, DbError> {
        // One query: the row with its metadata joined (one result row per
        // metadata entry, at least one). Status polls hit this path.
        let found = sqlx::query(self.q(VOLUME_BY_ID))
            .bind(id.to_string())
            .fetch_all(&mut *self.reader().await?)
            .await?;
        let mut volume = volume_from_rows(id, &found)?;
        self.load_attachments(std::slice::from_mut(&mut volume))
            .await?;
        Ok(volume)
    }

    async fn list_volumes(&self, query: &VolumeQuery) -> Result<Vec<Volume>, DbError> {
        let (sql, args) = self.volume_page_query(query).await?;
        let found = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
            .fetch_all(&mut *self.reader().await?)
            .await?;
        let mut volumes = found
            .iter()
            .map(rows::volume)
            .collect::<Result<Vec<_>, _>>()?;
        self.load_volume_children(&mut volumes).await?;
        Ok(volumes)
    }

    async fn count_volumes(&self, query: &VolumeQuery) -> Result<i64, DbError> {
        if let Some(count) = self.fast_volume_count(query).await? {
            return Ok(count);
        }
        // Filtered: counted over the list indexes (no type join needed).
        let mut args = Vec::new();
        let sql = self.dynamic(format!(
            "SELECT COUNT(*) FROM volumes v{}",
            self.volume_where(query, &mut args)
        ));
        let row = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
            .fetch_one(&mut *self.reader().await?)
            .await?;
        Ok(sqlx::Row::try_get::<i64, _>(&row, 0)?)
    }

    async fn volume_summary(&self, project_id: Option<&str>) -> Result<(i64, i64), DbError> {
        self.counted_volumes(project_id).await
    }

    async fn volume_summary_metadata(
        &self,
        project_id: Option<&str>,
    ) -> Result<BTreeMap<String, BTreeSet<String>>, DbError> {
        self.distinct_volume_metadata(project_id).await
    }

    async fn update_volume(&self, id: VolumeId, update: VolumeUpdate) -> Result<Volume, DbError> {
        let mut sets = String::new();
        let mut args = vec![Arg::Int(self.now().as_micros())];
        if let Some(name) = &update.display_name {
            sets.push_str(", display_name = ?");
            args.push(name.clone().map(Arg::Text).unwrap_or(Arg::Null));
        }
        if let Some(description) = &update.display_description {
            sets.push_str(", display_description = ?");
            args.push(description.clone().map(Arg::Text).unwrap_or(Arg::Null));
        }
        if let Some(bootable) = update.bootable {
            sets.push_str(", bootable = ?");
            args.push(Arg::Int(i64::from(bootable)));
        }
        args.push(Arg::Text(id.to_string()));
        let sql = self.dynamic(format!(
            "UPDATE volumes SET updated_at = ?{sets} WHERE id = ?"
        ));
        let updated = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
            .execute(&mut *self.writer().await?)
            .await?
            .rows_affected();
        if updated == 0 {
            return Err(DbError::not_found("volume", id));
        }
        self.get_volume(id).await
    }

    async fn set_volume_metadata(
        &self,
        id: VolumeId,
        kind: MetadataKind,
        metadata: &BTreeMap<String, String>,
        replace: bool,
    ) -> Result<BTreeMap<String, String>, DbError> {
        in_transaction!(self, |tx| {
            self.lock_volume(&mut tx, id).await?;
            if replace {
                sqlx::query(self.q("DELETE FROM volume_metadata WHERE volume_id = ? AND kind = ?"))
                    .bind(id.to_string())
                    .bind(kind.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            self.write_metadata(&mut tx, id, kind, metadata).await?;
            sqlx::query(self.q("UPDATE volumes SET updated_at = ? WHERE id = ?"))
                .bind(self.now().as_micros())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            Ok::<_, DbError>(())
        })?;
        let volume = self.get_volume(id).await?;
        Ok(match kind {
            MetadataKind::User => volume.metadata,
            MetadataKind::Admin => volume.admin_metadata,
            MetadataKind::Glance => volume.glance_metadata,
        })
    }

    async fn delete_volume_metadata(
        &self,
        id: VolumeId,
        kind: MetadataKind,
        key: &str,
    ) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            self.lock_volume(&mut tx, id).await?;
            let deleted = sqlx::query(self.q(
                "DELETE FROM volume_metadata WHERE volume_id = ? AND kind = ? AND meta_key = ?",
            ))
            .bind(id.to_string())
            .bind(kind.as_str())
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

    async fn transition_volume(
        &self,
        id: VolumeId,
        transition: VolumeTransition,
    ) -> Result<Volume, DbError> {
        let row = transition.transition();
        in_transaction!(self, |tx| self
            .cas_volume_status(&mut tx, id, row.from, row.to, "", Vec::new())
            .await)?;
        self.get_volume(id).await
    }

    async fn finish_volume_create(
        &self,
        id: VolumeId,
        update: ProviderUpdate,
    ) -> Result<Timestamp, DbError> {
        let row = VolumeTransition::CreateSucceeded.transition();
        let launched_at = self.now();
        in_batched_transaction!(self, |tx| {
            let args = vec![
                Arg::Int(launched_at.as_micros()),
                update
                    .provider_location
                    .clone()
                    .map(Arg::Text)
                    .unwrap_or(Arg::Null),
                update
                    .provider_auth
                    .clone()
                    .map(Arg::Text)
                    .unwrap_or(Arg::Null),
                update
                    .provider_id
                    .clone()
                    .map(Arg::Text)
                    .unwrap_or(Arg::Null),
            ];
            let mut batch = Batch::new();
            let cas = self.push_volume_cas_ending_journal(
                &mut batch,
                id,
                row.from,
                row.to,
                ", launched_at = ?, provider_location = ?, provider_auth = ?, provider_id = ?",
                args,
            );
            let outcomes = tx.run(self, batch).await?;
            self.check_volume_cas(tx.conn(self).await?, id, row.from, &outcomes[cas])
                .await
        })?;
        Ok(launched_at)
    }

    async fn fail_volume_create(&self, id: VolumeId) -> Result<Volume, DbError> {
        let row = VolumeTransition::CreateFailed.transition();
        in_transaction!(self, |tx| {
            self.cas_volume_status_ending_journal(&mut tx, id, row.from, row.to, "", Vec::new())
                .await
        })?;
        self.get_volume(id).await
    }

    async fn begin_volume_delete(
        &self,
        id: VolumeId,
        options: DeleteOptions,
    ) -> Result<DeleteStart, DbError> {
        let outcome = in_batched_transaction!(self, |tx| {
            // One round trip reads the volume and its snapshots, one more
            // writes the change.
            let mut reads = Batch::new();
            let locked = self.push_lock_volume(&mut reads, id);
            let snapshot_read = reads.push(
                self,
                "SELECT id, status FROM snapshots WHERE volume_id = ?",
                vec![Arg::Text(id.to_string())],
            );
            let read = tx.run(self, reads).await?;
            let mut volume = Self::locked_volume(&read[locked], id)?;
            if volume.status == VolumeStatus::Deleting {
                return Ok(DeleteStart::AlreadyDeleting(volume));
            }
            if volume.host.is_none() {
                // Never placed on a backend (no valid host, or still waiting
                // for the scheduler): there is nothing to delete there, so
                // the row goes now, as Cinder's API does. A scheduler that
                // later tries to place it finds no row to claim.
                self.delete_volume_rows_in(tx, &volume).await?;
                return Ok(DeleteStart::DeletedWithoutBackend(volume));
            }
            let status_ok = options.force || VolumeTransition::Delete.allows(volume.status);
            let migrating = volume
                .migration_status
                .as_deref()
                .is_some_and(|m| !matches!(m, "deleting" | "error" | "success" | "none"));
            let grouped = volume.group_id.is_some() || volume.consistencygroup_id.is_some();
            if !status_ok || volume.attach_status == AttachStatus::Attached || migrating || grouped
            {
                return Err(DbError::InvalidState(format!(
                    "volume {id} cannot be deleted in status {}",
                    volume.status
                )));
            }
            let snapshots = read[snapshot_read]
                .rows
                .iter()
                .map(|row| {
                    use sqlx::Row;
                    Ok((row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?))
                })
                .collect::<Result<Vec<_>, DbError>>()?;
            let mut writes = Batch::new();
            if !snapshots.is_empty() {
                if !options.cascade {
                    return Err(DbError::InvalidState(format!("volume {id} has snapshots")));
                }
                let undeletable = snapshots
                    .iter()
                    .any(|(_, s)| s != "available" && s != "error" && s != "deleting");
                if undeletable && !options.force {
                    return Err(DbError::InvalidState(format!(
                        "volume {id} has snapshots that cannot be deleted"
                    )));
                }
                writes.push(
                    self,
                    "UPDATE snapshots SET status = 'deleting', updated_at = ? WHERE volume_id = ?",
                    vec![Arg::Int(self.now().as_micros()), Arg::Text(id.to_string())],
                );
            }
            let previous = volume.status;
            writes.push(
                self,
                "UPDATE volumes SET status = 'deleting', previous_status = ?, updated_at = ? WHERE id = ?",
                vec![
                    Arg::Text(previous.as_str().to_owned()),
                    Arg::Int(self.now().as_micros()),
                    Arg::Text(id.to_string()),
                ],
            );
            self.push_journal(
                &mut writes,
                JournalResource::Volume,
                &id.to_string(),
                VolumeStatus::Deleting.as_str(),
                volume.host.as_deref().map(service_host_of).as_deref(),
                Some(serde_json::json!({"cascade": options.cascade})),
            );
            tx.run_and_commit(self, writes).await?;
            volume.status = VolumeStatus::Deleting;
            Ok::<_, DbError>(DeleteStart::Started(volume))
        })?;
        Ok(outcome)
    }

    async fn finish_volume_delete(&self, id: VolumeId) -> Result<Volume, DbError> {
        in_batched_transaction!(self, |tx| {
            let mut reads = Batch::new();
            let locked = self.push_lock_volume(&mut reads, id);
            let count = reads.push(
                self,
                "SELECT COUNT(*) FROM snapshots WHERE volume_id = ?",
                vec![Arg::Text(id.to_string())],
            );
            let read = tx.run(self, reads).await?;
            let volume = Self::locked_volume(&read[locked], id)?;
            if volume.status != VolumeStatus::Deleting {
                return Err(DbError::InvalidState(format!(
                    "volume {id} is {}, not deleting",
                    volume.status
                )));
            }
            let remaining: i64 = match read[count].rows.first() {
                Some(row) => sqlx::Row::try_get(row, 0)?,
                None => 0,
            };
            if remaining > 0 {
                return Err(DbError::InvalidState(format!(
                    "volume {id} still has {remaining} snapshots"
                )));
            }
            self.delete_volume_rows_in(tx, &volume).await?;
            Ok::<_, DbError>(volume)
        })
    }

    async fn fail_volume_delete(&self, id: VolumeId, busy: bool) -> Result<Volume, DbError> {
        let transition = if busy {
            VolumeTransition::DeleteBusy
        } else {
            VolumeTransition::DeleteFailed
        };
        let row = transition.transition();
        in_transaction!(self, |tx| {
            self.cas_volume_status_ending_journal(&mut tx, id, row.from, row.to, "", Vec::new())
                .await
        })?;
        self.get_volume(id).await
    }

    async fn begin_volume_extend(
        &self,
        id: VolumeId,
        new_size: i64,
        allow_in_use: bool,
    ) -> Result<Volume, DbError> {
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, id).await?;
            let transition = match volume.status {
                VolumeStatus::Available => VolumeTransition::ExtendAvailable,
                VolumeStatus::InUse if allow_in_use => VolumeTransition::ExtendInUse,
                other => return Err(DbError::InvalidState(format!("volume {id} is {other}"))),
            };
            if new_size <= volume.size {
                return Err(DbError::InvalidState(format!(
                    "new size {new_size} is not larger than {}",
                    volume.size
                )));
            }
            let delta = new_size - volume.size;
            if volume.use_quota {
                charge_quota(
                    self,
                    &mut tx,
                    &volume.project_id,
                    &extend_charges(&volume, delta),
                )
                .await?;
            }
            let row = transition.transition();
            self.cas_volume_status(
                &mut tx,
                id,
                row.from,
                row.to,
                ", previous_status = ?",
                vec![Arg::Text(volume.status.as_str().to_owned())],
            )
            .await?;
            self.journal_volume(
                &mut tx,
                id,
                VolumeStatus::Extending,
                volume.host.as_deref(),
                Some(serde_json::json!({"new_size": new_size, "previous_status": volume.status.as_str()})),
            )
            .await
        })?;
        self.get_volume(id).await
    }

    async fn finish_volume_extend(&self, id: VolumeId, new_size: i64) -> Result<Volume, DbError> {
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, id).await?;
            let transition = match volume.previous_status.as_deref() {
                Some("in-use") => VolumeTransition::ExtendSucceededInUse,
                _ => VolumeTransition::ExtendSucceededAvailable,
            };
            let row = transition.transition();
            self.cas_volume_status_ending_journal(
                &mut tx,
                id,
                row.from,
                row.to,
                ", size = ?, previous_status = NULL",
                vec![Arg::Int(new_size)],
            )
            .await?;
            self.change_volume_count(&mut tx, &volume.project_id, 0, new_size - volume.size)
                .await
        })?;
        self.get_volume(id).await
    }

    async fn fail_volume_extend(&self, id: VolumeId, new_size: i64) -> Result<Volume, DbError> {
        self.end_volume_extend(id, new_size, true).await
    }

    async fn abort_volume_extend(&self, id: VolumeId, new_size: i64) -> Result<Volume, DbError> {
        self.end_volume_extend(id, new_size, false).await
    }

    async fn reset_volume_status(
        &self,
        id: VolumeId,
        status: Option<VolumeStatus>,
        attach_status: Option<AttachStatus>,
        migration_status: Option<Option<String>>,
    ) -> Result<Volume, DbError> {
        let mut sets = String::new();
        let mut args = vec![Arg::Int(self.now().as_micros())];
        if let Some(s) = status {
            sets.push_str(", status = ?");
            args.push(Arg::Text(s.as_str().to_owned()));
        }
        if let Some(a) = attach_status {
            sets.push_str(", attach_status = ?");
            args.push(Arg::Text(a.as_str().to_owned()));
        }
        if let Some(m) = migration_status {
            sets.push_str(", migration_status = ?");
            args.push(m.map(Arg::Text).unwrap_or(Arg::Null));
        }
        args.push(Arg::Text(id.to_string()));
        let sql = self.dynamic(format!(
            "UPDATE volumes SET updated_at = ?{sets} WHERE id = ?"
        ));
        in_transaction!(self, |tx| {
            let updated = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if updated == 0 {
                return Err(DbError::not_found("volume", id));
            }
            if status.is_some() {
                // The operation that owned the old status is abandoned by the
                // administrator; its journal row must not resume it.
                self.remove_journal(&mut tx, JournalResource::Volume, &id.to_string())
                    .await?;
            }
            Ok::<_, DbError>(())
        })?;
        self.get_volume(id).await
    }

    async fn volumes_on_backend(&self, service_host: &str) -> Result<Vec<Volume>, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {VOLUME_COLUMNS} FROM {VOLUME_FROM} WHERE v.host = ? OR v.host LIKE ? ESCAPE '!' ORDER BY v.created_at"
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
        let mut volumes = found
            .iter()
            .map(rows::volume)
            .collect::<Result<Vec<_>, _>>()?;
        self.load_volume_children(&mut volumes).await?;
        Ok(volumes)
    }

    async fn volume_exists(&self, id: VolumeId) -> Result<bool, DbError> {
        let found: Option<String> =
            sqlx::query_scalar(self.q("SELECT id FROM volumes WHERE id = ?"))
                .bind(id.to_string())
                .fetch_optional(&mut *self.reader().await?)
                .await?;
        Ok(found.is_some())
    }
}

impl Db {
    /// Ends an extend that did not happen: `error_extending` when the
    /// backend failed (its claimed capacity is returned), or the previous
    /// status when the scheduler found no room (nothing was claimed).
    pub(crate) async fn end_volume_extend(
        &self,
        id: VolumeId,
        new_size: i64,
        backend_failed: bool,
    ) -> Result<Volume, DbError> {
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, id).await?;
            if volume.status != VolumeStatus::Extending {
                return Err(DbError::InvalidState(format!(
                    "volume {id} is {}, not extending",
                    volume.status
                )));
            }
            let delta = new_size - volume.size;
            if volume.use_quota && delta > 0 {
                charge_quota(
                    self,
                    &mut tx,
                    &volume.project_id,
                    &extend_charges(&volume, -delta),
                )
                .await?;
            }
            let to = if backend_failed {
                if let (Some(host), true) = (&volume.host, delta > 0) {
                    sqlx::query(self.q("UPDATE pool_allocations SET allocated_gb = allocated_gb - ? WHERE pool = ?"))
                        .bind(delta)
                        .bind(host.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                VolumeStatus::ErrorExtending
            } else {
                volume
                    .previous_status
                    .as_deref()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(VolumeStatus::Available)
            };
            self.cas_volume_status_ending_journal(
                &mut tx,
                id,
                &[VolumeStatus::Extending],
                to,
                ", previous_status = NULL",
                Vec::new(),
            )
            .await
        })?;
        self.get_volume(id).await
    }
}
