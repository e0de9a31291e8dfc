//! [`BackupRepository`] for [`Db`].

use clinker_types::backup::BINARY as BACKUP_BINARY;
use clinker_types::{SnapshotStatus, VolumeStatus};

use super::*;
use crate::{ServiceRepository, SnapshotRepository};

#[async_trait::async_trait]
impl BackupRepository for Db {
    async fn create_backup(&self, new: NewBackup) -> Result<Backup, DbError> {
        in_transaction!(self, |tx| {
            let volume = self.lock_volume(&mut tx, new.volume_id).await?;
            let snapshot = match new.snapshot_id {
                Some(id) => Some(self.lock_snapshot(&mut tx, id).await?),
                None => None,
            };
            if let Some(snapshot) = &snapshot {
                if snapshot.volume_id != volume.id {
                    return Err(DbError::InvalidState(format!(
                        "Volume {} does not match with snapshot.volume_id {}.",
                        volume.id, snapshot.volume_id
                    )));
                }
                if snapshot.status != SnapshotStatus::Available {
                    return Err(DbError::InvalidState(format!(
                        "Snapshot to be backed up must be available, but the current status is \"{}\".",
                        snapshot.status
                    )));
                }
            } else {
                match volume.status {
                    VolumeStatus::Available => {}
                    VolumeStatus::InUse if new.force => {}
                    VolumeStatus::InUse => {
                        return Err(DbError::InvalidState(
                            "Backing up an in-use volume must use the force flag.".into(),
                        ));
                    }
                    other => {
                        return Err(DbError::InvalidState(format!(
                            "Volume to be backed up must be available or in-use, but the current \
                             status is \"{other}\"."
                        )));
                    }
                }
            }
            // A snapshot's backup holds the data of the snapshot's time;
            // its parent must be older than that.
            let taken_at = snapshot.as_ref().map(|s| s.created_at.as_micros());
            let parent_id: Option<String> = if new.incremental {
                let parent: Option<String> = sqlx::query_scalar(self.q(
                    "SELECT id FROM backups WHERE volume_id = ? AND project_id = ? AND status = 'available' \
                     AND data_timestamp < ? ORDER BY data_timestamp DESC, created_at DESC LIMIT 1",
                ))
                .bind(new.volume_id.to_string())
                .bind(new.project_id.as_str())
                .bind(taken_at.unwrap_or(i64::MAX))
                .fetch_optional(&mut *tx)
                .await?;
                Some(parent.ok_or_else(|| {
                    DbError::InvalidState(
                        "No backups available to do an incremental backup.".into(),
                    )
                })?)
            } else {
                None
            };
            charge_quota(
                self,
                &mut tx,
                &new.project_id,
                &backup_charges(volume.size, 1),
            )
            .await?;
            match &snapshot {
                Some(snapshot) => {
                    self.cas_snapshot_status(
                        &mut tx,
                        snapshot.id,
                        &[SnapshotStatus::Available],
                        SnapshotStatus::BackingUp,
                        "",
                        vec![],
                    )
                    .await?;
                }
                None => {
                    self.cas_volume_status(
                        &mut tx,
                        volume.id,
                        &[volume.status],
                        VolumeStatus::BackingUp,
                        ", previous_status = ?",
                        vec![Arg::Text(volume.status.as_str().to_owned())],
                    )
                    .await?;
                }
            }
            let now = self.now().as_micros();
            let row = BackupRow {
                status: BackupStatus::Creating,
                service_metadata: None,
                size: volume.size,
                object_count: 0,
                parent_id,
                data_timestamp: taken_at.unwrap_or(now),
                encryption_key_id: volume.encryption_key_id.as_deref(),
                created_at: now,
                updated_at: None,
            };
            self.insert_backup_row(&mut tx, &new, row).await
        })?;
        self.get_backup(new.id).await
    }

    async fn get_backup(&self, id: BackupId) -> Result<Backup, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {BACKUP_COLUMNS} FROM backups b WHERE b.id = ?"
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.to_string())
            .fetch_optional(&mut *self.reader().await?)
            .await?
            .ok_or_else(|| DbError::not_found("backup", id))?;
        let mut found = vec![decode(&row)?];
        self.load_backup_metadata(&mut found).await?;
        found.pop().ok_or_else(|| DbError::not_found("backup", id))
    }

    async fn list_backups(&self, query: &BackupQuery) -> Result<Vec<Backup>, DbError> {
        let mut args = Vec::new();
        let where_sql = Self::backup_where(query, &mut args);
        let found = self
            .fetch_page(
                &query::ListTable {
                    columns: BACKUP_COLUMNS,
                    from: "backups b",
                    id: "b.id",
                    project: "b.project_id",
                },
                &where_sql,
                args,
                &query.sort,
                query.project_id.as_deref(),
                &query.page,
            )
            .await?;
        let mut backups = found.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        self.load_backup_metadata(&mut backups).await?;
        Ok(backups)
    }

    async fn count_backups(&self, query: &BackupQuery) -> Result<i64, DbError> {
        let mut args = Vec::new();
        let sql = self.dynamic(format!(
            "SELECT COUNT(*) FROM backups b{}",
            Self::backup_where(query, &mut args)
        ));
        let row = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
            .fetch_one(&mut *self.reader().await?)
            .await?;
        Ok(sqlx::Row::try_get::<i64, _>(&row, 0)?)
    }

    async fn update_backup(
        &self,
        id: BackupId,
        display_name: Option<Option<String>>,
        display_description: Option<Option<String>>,
        metadata: Option<&BTreeMap<String, String>>,
    ) -> Result<Backup, DbError> {
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
            "UPDATE backups SET updated_at = ?{sets} WHERE id = ?"
        ));
        in_transaction!(self, |tx| {
            if bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 0
            {
                return Err(DbError::not_found("backup", id));
            }
            if let Some(metadata) = metadata {
                sqlx::query(self.q("DELETE FROM backup_metadata WHERE backup_id = ?"))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
                self.insert_backup_metadata(&mut tx, id, metadata).await?;
            }
            Ok::<_, DbError>(())
        })?;
        self.get_backup(id).await
    }

    async fn record_backup_location(
        &self,
        id: BackupId,
        location: &BackupLocation,
    ) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            self.cas_backup_status(
                &mut tx,
                id,
                &[BackupStatus::Creating],
                BackupStatus::Creating,
                ", container = ?, service_metadata = ?",
                vec![
                    Arg::Text(location.container.clone()),
                    Arg::Text(location.service_metadata.clone()),
                ],
            )
            .await
        })
    }

    async fn finish_backup_create(
        &self,
        id: BackupId,
        location: &BackupLocation,
        object_count: i64,
    ) -> Result<Backup, DbError> {
        in_transaction!(self, |tx| {
            let backup = self.lock_backup(&mut tx, id).await?;
            self.cas_backup_status(
                &mut tx,
                id,
                &[BackupStatus::Creating],
                BackupStatus::Available,
                ", container = ?, service_metadata = ?, object_count = ?, fail_reason = NULL",
                vec![
                    Arg::Text(location.container.clone()),
                    Arg::Text(location.service_metadata.clone()),
                    Arg::Int(object_count),
                ],
            )
            .await?;
            self.end_backing_up(&mut tx, &backup).await
        })?;
        self.get_backup(id).await
    }

    async fn fail_backup_create(&self, id: BackupId, reason: &str) -> Result<Backup, DbError> {
        in_transaction!(self, |tx| {
            let backup = self.lock_backup(&mut tx, id).await?;
            self.cas_backup_status(
                &mut tx,
                id,
                &[BackupStatus::Creating],
                BackupStatus::Error,
                ", fail_reason = ?",
                vec![Arg::Text(truncate(reason))],
            )
            .await?;
            self.end_backing_up(&mut tx, &backup).await
        })?;
        self.get_backup(id).await
    }

    async fn begin_backup_delete(&self, id: BackupId, force: bool) -> Result<Backup, DbError> {
        in_transaction!(self, |tx| {
            let backup = self.lock_backup(&mut tx, id).await?;
            let from: &[BackupStatus] = if force {
                &[
                    BackupStatus::Available,
                    BackupStatus::Error,
                    BackupStatus::ErrorDeleting,
                    BackupStatus::Creating,
                    BackupStatus::Restoring,
                ]
            } else {
                &[BackupStatus::Available, BackupStatus::Error]
            };
            if !from.contains(&backup.status) {
                return Err(DbError::InvalidState(
                    "Backup status must be available or error".into(),
                ));
            }
            if backup.has_dependent_backups() {
                return Err(DbError::InvalidState(
                    "Incremental backups exist for this backup.".into(),
                ));
            }
            self.cas_backup_status(&mut tx, id, from, BackupStatus::Deleting, "", vec![])
                .await?;
            if backup.status == BackupStatus::Creating {
                self.end_backing_up(&mut tx, &backup).await?;
            }
            Ok::<_, DbError>(())
        })?;
        self.get_backup(id).await
    }

    async fn finish_backup_delete(&self, id: BackupId) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            let backup = self.lock_backup(&mut tx, id).await?;
            if backup.status != BackupStatus::Deleting {
                return Err(DbError::InvalidState(format!(
                    "backup {id} is {}",
                    backup.status
                )));
            }
            sqlx::query(self.q("DELETE FROM backup_metadata WHERE backup_id = ?"))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            sqlx::query(self.q("DELETE FROM backups WHERE id = ? AND status = 'deleting'"))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            charge_quota(
                self,
                &mut tx,
                &backup.project_id,
                &backup_charges(backup.size, -1),
            )
            .await
        })
    }

    async fn fail_backup_delete(&self, id: BackupId, reason: &str) -> Result<Backup, DbError> {
        in_transaction!(self, |tx| {
            self.cas_backup_status(
                &mut tx,
                id,
                &[BackupStatus::Deleting],
                BackupStatus::ErrorDeleting,
                ", fail_reason = ?",
                vec![Arg::Text(truncate(reason))],
            )
            .await
        })?;
        self.get_backup(id).await
    }

    async fn begin_backup_restore(
        &self,
        id: BackupId,
        volume_id: VolumeId,
    ) -> Result<Backup, DbError> {
        in_transaction!(self, |tx| {
            let backup = self.lock_backup(&mut tx, id).await?;
            if backup.status != BackupStatus::Available {
                return Err(DbError::InvalidState(
                    "Backup status must be available".into(),
                ));
            }
            let volume = self.lock_volume(&mut tx, volume_id).await?;
            if volume.status != VolumeStatus::Available {
                return Err(DbError::InvalidState(
                    "Volume to be restored to must be available".into(),
                ));
            }
            if volume.size < backup.size {
                return Err(DbError::InvalidState(format!(
                    "volume size {} is too small to restore backup of size {}.",
                    volume.size, backup.size
                )));
            }
            self.cas_backup_status(
                &mut tx,
                id,
                &[BackupStatus::Available],
                BackupStatus::Restoring,
                ", restore_volume_id = ?",
                vec![Arg::Text(volume_id.to_string())],
            )
            .await?;
            self.cas_volume_status(
                &mut tx,
                volume_id,
                &[VolumeStatus::Available],
                VolumeStatus::RestoringBackup,
                "",
                vec![],
            )
            .await
        })?;
        self.get_backup(id).await
    }

    async fn finish_backup_restore(
        &self,
        id: BackupId,
        volume_id: VolumeId,
        succeeded: bool,
    ) -> Result<Backup, DbError> {
        in_transaction!(self, |tx| {
            self.cas_backup_status(
                &mut tx,
                id,
                &[BackupStatus::Restoring],
                BackupStatus::Available,
                ", restore_volume_id = NULL",
                vec![],
            )
            .await?;
            let volume = match self.lock_volume(&mut tx, volume_id).await {
                Ok(v) => v,
                // Deleted meanwhile: the backup is still whole.
                Err(DbError::NotFound { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
            // A volume created from the backup (3.47) was `creating`
            // before: Cinder ends a failed one `error`, and records its
            // launch when it succeeds.
            let created = volume.previous_status.as_deref() == Some("creating");
            let to = match (succeeded, created) {
                (true, _) => VolumeStatus::Available,
                (false, true) => VolumeStatus::Error,
                (false, false) => VolumeStatus::ErrorRestoring,
            };
            let (sets, args) = if created && succeeded {
                (
                    ", previous_status = NULL, launched_at = ?",
                    vec![Arg::Int(self.now().as_micros())],
                )
            } else if created {
                (", previous_status = NULL", vec![])
            } else {
                ("", vec![])
            };
            match self
                .cas_volume_status(
                    &mut tx,
                    volume_id,
                    &[VolumeStatus::RestoringBackup],
                    to,
                    sets,
                    args,
                )
                .await
            {
                // The volume was reset meanwhile: the backup is still
                // whole.
                Ok(()) | Err(DbError::NotFound { .. } | DbError::InvalidState(_)) => Ok(()),
                Err(e) => Err(e),
            }
        })?;
        self.get_backup(id).await
    }

    async fn set_backup_status(
        &self,
        id: BackupId,
        status: BackupStatus,
    ) -> Result<Backup, DbError> {
        let done =
            sqlx::query(self.q("UPDATE backups SET status = ?, updated_at = ? WHERE id = ?"))
                .bind(status.as_str())
                .bind(self.now().as_micros())
                .bind(id.to_string())
                .execute(&mut *self.writer().await?)
                .await?
                .rows_affected();
        if done == 0 {
            return Err(DbError::not_found("backup", id));
        }
        self.get_backup(id).await
    }

    async fn import_backup(&self, imported: ImportedBackup) -> Result<Backup, DbError> {
        let new = &imported.backup;
        in_transaction!(self, |tx| {
            let taken: Option<String> =
                sqlx::query_scalar(self.q("SELECT id FROM backups WHERE id = ?"))
                    .bind(new.id.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
            if taken.is_some() {
                return Err(DbError::InvalidState(
                    "Backup already exists in database.".into(),
                ));
            }
            charge_quota(
                self,
                &mut tx,
                &new.project_id,
                &backup_charges(imported.size, 1),
            )
            .await?;
            let now = self.now().as_micros();
            let row = BackupRow {
                status: BackupStatus::Available,
                service_metadata: Some(imported.service_metadata.as_str()),
                size: imported.size,
                object_count: imported.object_count,
                parent_id: imported.parent_id.map(|p| p.to_string()),
                data_timestamp: imported.data_timestamp.map_or(now, |t| t.as_micros()),
                encryption_key_id: None,
                created_at: imported.created_at.map_or(now, |t| t.as_micros()),
                updated_at: Some(now),
            };
            self.insert_backup_row(&mut tx, new, row).await
        })?;
        self.get_backup(new.id).await
    }

    async fn backups_on_host(&self, host: &str) -> Result<Vec<Backup>, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {BACKUP_COLUMNS} FROM backups b WHERE b.host = ? ORDER BY b.created_at, b.id"
        ));
        let found = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(host)
            .fetch_all(&mut *self.reader().await?)
            .await?;
        let mut backups = found.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        self.load_backup_metadata(&mut backups).await?;
        Ok(backups)
    }

    async fn set_backup_temp(&self, id: BackupId, temp: BackupTemp) -> Result<(), DbError> {
        let (column, value) = match temp {
            BackupTemp::Volume(v) => ("temp_volume_id", v.map(|v| v.to_string())),
            BackupTemp::Snapshot(s) => ("temp_snapshot_id", s.map(|s| s.to_string())),
        };
        let sql = self.dynamic(format!(
            "UPDATE backups SET {column} = ?, updated_at = ? WHERE id = ?"
        ));
        let done = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(value)
            .bind(self.now().as_micros())
            .bind(id.to_string())
            .execute(&mut *self.writer().await?)
            .await?
            .rows_affected();
        if done == 0 {
            return Err(DbError::not_found("backup", id));
        }
        Ok(())
    }

    async fn create_backup_temp_snapshot(
        &self,
        id: BackupId,
        new: NewSnapshot,
    ) -> Result<Snapshot, DbError> {
        let new = NewSnapshot {
            use_quota: false,
            ..new
        };
        in_transaction!(self, |tx| {
            let backup = self.lock_backup(&mut tx, id).await?;
            if backup.status != BackupStatus::Creating {
                return Err(DbError::InvalidState(format!(
                    "backup {id} is {}",
                    backup.status
                )));
            }
            let volume = self.lock_volume(&mut tx, new.volume_id).await?;
            if volume.status != VolumeStatus::BackingUp {
                return Err(DbError::InvalidState(format!(
                    "volume {} is {}",
                    volume.id, volume.status
                )));
            }
            self.insert_snapshot_in(&mut tx, &new, &volume).await?;
            self.cas_backup_status(
                &mut tx,
                id,
                &[BackupStatus::Creating],
                BackupStatus::Creating,
                ", temp_snapshot_id = ?",
                vec![Arg::Text(new.id.to_string())],
            )
            .await
        })?;
        self.get_snapshot(new.id).await
    }

    async fn up_backup_services(
        &self,
        now: Timestamp,
        down_time_secs: u64,
    ) -> Result<Vec<BackupService>, DbError> {
        let services = self.list_services(None, Some(BACKUP_BINARY)).await?;
        let busy: Vec<(Option<String>, i64)> = sqlx::query_as(self.q(
            "SELECT host, COUNT(*) FROM backups WHERE status IN ('creating', 'restoring', 'deleting') \
             GROUP BY host",
        ))
        .fetch_all(&mut *self.reader().await?)
        .await?;
        Ok(services
            .into_iter()
            .filter(|s| !s.disabled && s.is_up(now, down_time_secs))
            .map(|s| BackupService {
                operations: busy
                    .iter()
                    .find(|(host, _)| host.as_deref() == Some(s.host.as_str()))
                    .map_or(0, |(_, n)| *n),
                host: s.host,
                availability_zone: s.availability_zone,
            })
            .collect())
    }

    async fn begin_volume_restore_from_backup(
        &self,
        id: BackupId,
        volume_id: VolumeId,
        backup_host: &str,
        provider: ProviderUpdate,
    ) -> Result<Backup, DbError> {
        in_transaction!(self, |tx| {
            let backup = self.lock_backup(&mut tx, id).await?;
            if backup.status != BackupStatus::Available {
                return Err(DbError::InvalidState(
                    "Backup status must be available".into(),
                ));
            }
            self.cas_backup_status(
                &mut tx,
                id,
                &[BackupStatus::Available],
                BackupStatus::Restoring,
                ", restore_volume_id = ?, host = ?",
                vec![
                    Arg::Text(volume_id.to_string()),
                    Arg::Text(backup_host.to_owned()),
                ],
            )
            .await?;
            let opt = |v: Option<String>| v.map_or(Arg::Null, Arg::Text);
            self.cas_volume_status_ending_journal(
                &mut tx,
                volume_id,
                &[VolumeStatus::Creating],
                VolumeStatus::RestoringBackup,
                ", previous_status = 'creating', provider_location = ?, provider_auth = ?, provider_id = ?",
                vec![
                    opt(provider.provider_location.clone()),
                    opt(provider.provider_auth.clone()),
                    opt(provider.provider_id.clone()),
                ],
            )
            .await
        })?;
        self.get_backup(id).await
    }
}
