//! Deletes: the backup's snapshot, its base image with the last snapshot,
//! its metadata object.

use super::*;

impl CephBackupDriver {
    /// Deletes a backup (Cinder's `delete_backup`): its snapshot of the
    /// base image, the base image once no backup snapshot is left on it,
    /// and the metadata object. Returns how many of these were removed; a
    /// backup whose image is gone has nothing left but its metadata.
    ///
    /// # Errors
    /// The cluster; a base image that stays busy.
    pub async fn delete_backup(
        &self,
        record: &BackupRecord,
        volume_id: &str,
    ) -> Result<u64, BackupError> {
        if record.container.is_empty() {
            return Ok(0);
        }
        if !is_ceph_name(&record.container) {
            return Err(BackupError::InvalidBackup(format!(
                "backup {} has no usable container",
                record.id
            )));
        }
        let mut removed = 0;
        match self.find_base(record, volume_id).await {
            Ok(Some((base, _))) => {
                removed += self.delete_from_base(record, &base).await?;
            }
            Ok(None) => {
                tracing::warn!(backup_id = %record.id, "the backup's image is gone; deleting its metadata");
            }
            // The pool itself is gone: so is everything in it.
            Err(e) if not_found(&e) => return Ok(0),
            Err(e) => return Err(e),
        }
        let object = naming::meta_object(&record.id);
        match self
            .run(
                &Cli::rados(&self.access, &record.container, &["rm", &object]),
                false,
            )
            .await
        {
            Ok(_) => removed += 1,
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(e),
        }
        Ok(removed)
    }

    async fn delete_from_base(
        &self,
        record: &BackupRecord,
        base: &str,
    ) -> Result<u64, BackupError> {
        let spec = format!("{}/{base}", record.container);
        let mut removed = 0;
        for attempt in 1..=REMOVE_TRIES {
            if let Some(snap) = self.backup_snap(&self.access, &spec, &record.id).await? {
                let snap_spec = format!("{spec}@{}", snap.name);
                match self
                    .run(
                        &Cli::rbd(&self.access, &["snap", "rm", "--no-progress", &snap_spec]),
                        false,
                    )
                    .await
                {
                    Ok(_) => removed += 1,
                    Err(e) if not_found(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            let remaining = self
                .snapshots(&self.access, &spec)
                .await?
                .iter()
                .filter(|s| naming::snap_backup_id(&s.name).is_some())
                .count();
            if remaining > 0 {
                tracing::info!(image = %spec, remaining, "the base image still holds other backups");
                return Ok(removed);
            }
            match self
                .run(
                    &Cli::rbd(&self.access, &["rm", "--no-progress", &spec]),
                    false,
                )
                .await
            {
                Ok(_) => return Ok(removed + 1),
                Err(e) if not_found(&e) => return Ok(removed),
                Err(BackupError::Rbd {
                    failure: RbdFailure::Busy,
                    message,
                }) if attempt < REMOVE_TRIES => {
                    tracing::info!(image = %spec, %message, attempt, "base image busy; trying again");
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }
}
