//! [`VolumeRepository`](super::VolumeRepository) for [`Db`].

use std::collections::{BTreeMap, BTreeSet};

use clinker_types::model::{JournalResource, Volume};
use clinker_types::status::VolumeTransition;
use clinker_types::{AttachStatus, Timestamp, VolumeId, VolumeStatus};

use super::ops::service_host_of;
use super::ops::{VOLUME_BY_ID, extend_charges, volume_from_rows};
use crate::batch::{Batch, in_batched_transaction};
use crate::error::DbError;
use crate::pool::{Db, in_transaction};
use crate::query::{Arg, bind_all};
use crate::quota::charge_quota;
use crate::rows::{self, VOLUME_COLUMNS, VOLUME_FROM};
use crate::{
    DeleteOptions, DeleteStart, MetadataKind, NewVolume, ProviderUpdate, VolumeQuery,
    VolumeRepository, VolumeUpdate,
};

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
                self.delete_volume_rows(tx, &volume).await?;
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
            self.delete_volume_rows(tx, &volume).await?;
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
