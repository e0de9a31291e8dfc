//! The write paths of volumes: create, status changes, delete, extend.

use std::collections::BTreeMap;

use clinker_types::model::{JournalResource, Volume};
use clinker_types::{Host, SnapshotStatus, VolumeId, VolumeStatus};
use sqlx::AnyConnection;

use crate::batch::{Batch, BatchTx, Outcome, Tx};
use crate::error::DbError;
use crate::pool::Db;
use crate::query::{self, Arg, bind_all, placeholders};
use crate::quota::{QuotaCharge, limits_from, push_limits_read, volume_charges};
use crate::rows::{self, ATTACHMENT_COLUMNS, VOLUME_COLUMNS, VOLUME_FROM};
use crate::volume_counts::volume_page_from;
use crate::{MetadataKind, NewVolume, VolumeQuery};

/// The gigabytes charges of growing a volume by `delta`.
pub(super) fn extend_charges(volume: &Volume, delta: i64) -> Vec<(String, i64)> {
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
pub(super) const VOLUME_BY_ID: &str = "SELECT v.id, v.user_id, v.project_id, v.host, v.size, v.availability_zone, v.status, \
     v.attach_status, v.migration_status, v.display_name, v.display_description, v.provider_location, \
     v.provider_auth, v.provider_id, v.volume_type_id, v.snapshot_id, v.source_volid, v.bootable, v.multiattach, \
     v.encryption_key_id, v.consistencygroup_id, v.group_id, v.replication_status, v.previous_status, \
     v.service_uuid, v.shared_targets, v.use_quota, v.cluster_name, v.created_at, v.updated_at, v.scheduled_at, \
     v.launched_at, t.name AS volume_type_name, m.kind AS meta_kind, m.meta_key, m.meta_value \
     FROM volumes v LEFT JOIN volume_types t ON t.id = v.volume_type_id \
     LEFT JOIN volume_metadata m ON m.volume_id = v.id WHERE v.id = ?";

/// A volume (without attachments) from the rows of [`VOLUME_BY_ID`].
pub(super) fn volume_from_rows(
    id: VolumeId,
    found: &[sqlx::any::AnyRow],
) -> Result<Volume, DbError> {
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

    /// Removes a volume's rows, gives back its usage and its pool's
    /// capacity, inside the caller's transaction of either kind.
    pub(crate) async fn delete_volume_rows(
        &self,
        tx: &mut impl Tx,
        volume: &Volume,
    ) -> Result<(), DbError> {
        let charges = Self::release_charges(volume);
        let release = QuotaCharge::new(&volume.project_id, &charges);
        let mut batch = Batch::new();
        let update = self.push_delete_volume_rows(&mut batch, volume, &release);
        let outcomes = tx.run_batch(self, batch).await?;
        release
            .finish_release(
                self,
                tx.connection(self).await?,
                update.map(|i| &outcomes[i]),
            )
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
            // A cached image-volume deleted by anyone leaves the cache
            // (Cinder's `evict` in `delete_volume`).
            "DELETE FROM image_volume_cache_entries WHERE volume_id = ?",
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
    pub(super) async fn new_volume_limits(
        &self,
        new: &NewVolume,
    ) -> Result<BTreeMap<String, i64>, DbError> {
        let (_, wanted) = Self::new_volume_quota(new);
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let mut conn = self.reader().await?;
        crate::quota::limits_for(self, &mut conn, &new.project_id, &wanted).await
    }

    /// [`Self::insert_new_volume`] in a batched transaction, with the
    /// limits already read. On SQLite the charge needs no usage read either
    /// ([`QuotaCharge::push_unread_update`]), so the insert goes with the
    /// transaction's `BEGIN` in one round trip.
    pub(super) async fn insert_new_volume_in(
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
        // A brand-new volume has no journal row to replace. Its detail is
        // the create's request, for a scheduler that must place it again.
        let detail = match &new.request_spec {
            Some(spec) => Arg::Text(crate::journal::create_detail(spec)?.to_string()),
            None => Arg::Null,
        };
        writes.push(
            self,
            "INSERT INTO workers (resource_type, resource_id, status, service_host, detail_json, created_at, updated_at) \
             VALUES ('Volume', ?, 'creating', NULL, ?, ?, ?)",
            vec![
                Arg::Text(new.id.to_string()),
                detail,
                Arg::Int(now),
                Arg::Int(now),
            ],
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

    pub(super) async fn write_metadata(
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

    pub(super) fn volume_where(&self, query: &VolumeQuery, args: &mut Vec<Arg>) -> String {
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
