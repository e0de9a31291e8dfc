//! Restores: a backup's snapshot into an RBD volume (a diff into an empty
//! one, every block otherwise) or a local one (`rbd export -`).

use super::*;

impl CephBackupDriver {
    /// Restores `record` (a backup of `volume_id`) into `target`. Returns
    /// the backup's volume metadata to apply.
    ///
    /// # Errors
    /// The backup's image is missing, the cluster, the target, or
    /// cancellation.
    pub async fn restore_backup(
        &self,
        record: &BackupRecord,
        volume_id: &str,
        target: &RestoreTarget,
        control: &Control,
    ) -> Result<RestoreOutcome, BackupError> {
        self.restore(record, volume_id, target, control)
            .await
            .map_err(|e| {
                if control.cancel.is_cancelled() {
                    BackupError::RestoreCancelled {
                        backup_id: record.id.clone(),
                        volume_id: target.volume_id.clone(),
                    }
                } else {
                    e
                }
            })
    }

    async fn restore(
        &self,
        record: &BackupRecord,
        volume_id: &str,
        target: &RestoreTarget,
        control: &Control,
    ) -> Result<RestoreOutcome, BackupError> {
        let (target_size_gb, volume_is_new) = (target.size_gb, target.is_new);
        if !is_ceph_name(&record.container) {
            return Err(BackupError::InvalidBackup(format!(
                "backup {} has no usable container",
                record.id
            )));
        }
        let (base, head_size) = self.find_base(record, volume_id).await?.ok_or_else(|| {
            BackupError::InvalidBackup(format!(
                "the image of backup {} is not in pool {}",
                record.id, record.container
            ))
        })?;
        let base_spec = format!("{}/{base}", record.container);
        let point = self
            .backup_snap(&self.access, &base_spec, &record.id)
            .await?;
        let (source, backup_len) = match &point {
            Some(s) => (format!("{base_spec}@{}", s.name), s.size),
            // A full copy without snapshots (Cinder's non-RBD backups).
            None => (base_spec.clone(), head_size),
        };
        let length = target_size_gb.saturating_mul(GIB);
        if backup_len > length {
            return Err(BackupError::InvalidBackup(format!(
                "backup {} holds {backup_len} bytes, more than the volume's {length}",
                record.id
            )));
        }
        control.progress.set_total(length);
        match &target.data {
            VolumeData::Rbd(volume) => {
                let empty = volume_is_new && !self.has_extents(volume).await?;
                match (&point, empty) {
                    (Some(point), true) => {
                        self.diff_restore(
                            volume,
                            &source,
                            &point.name,
                            backup_len,
                            length,
                            control,
                        )
                        .await?;
                    }
                    _ => {
                        self.full_restore_rbd(volume, &source, length, empty, control)
                            .await?
                    }
                }
            }
            VolumeData::Local(path) => {
                self.full_restore_local(path, &source, backup_len, length, volume_is_new, control)
                    .await?;
            }
        }
        let meta = self.get_meta(&record.container, &record.id).await?;
        Ok(RestoreOutcome {
            volume_meta: meta.into_iter().collect(),
            objects: 0,
            bytes: length,
        })
    }

    /// Whether an RBD volume has any data (Cinder's `_rbd_has_extents`).
    async fn has_extents(&self, volume: &RbdVolume) -> Result<bool, BackupError> {
        let cmd = Cli::rbd(
            &volume.access,
            &["diff", "--format", "json", &volume.spec()],
        );
        let extents: Vec<serde_json::Value> = parse("rbd diff", &self.run(&cmd, true).await?)?;
        Ok(!extents.is_empty())
    }

    /// Cinder's `_diff_restore_rbd`: the snapshot's extents into an empty
    /// volume; import-diff leaves the volume at the backup's size and with
    /// the snapshot, so it is grown back and the snapshot removed.
    async fn diff_restore(
        &self,
        volume: &RbdVolume,
        source: &str,
        snap: &str,
        backup_len: u64,
        length: u64,
        control: &Control,
    ) -> Result<(), BackupError> {
        let target = volume.spec();
        let export = Cli::rbd_stream(&self.access, &["export-diff", "--no-progress", source, "-"]);
        let import = Cli::rbd_stream(
            &volume.access,
            &["import-diff", "--no-progress", "-", &target],
        );
        self.pipe(&export, &import, control).await?;
        let left = format!("{target}@{snap}");
        match self
            .run(
                &Cli::rbd(&volume.access, &["snap", "rm", "--no-progress", &left]),
                false,
            )
            .await
        {
            Ok(_) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(e),
        }
        if backup_len != length {
            let size = format!("{}M", length >> 20);
            self.run(
                &Cli::rbd(
                    &volume.access,
                    &["resize", "--no-progress", "--size", &size, &target],
                ),
                false,
            )
            .await?;
        }
        control.progress.add(length, 0);
        Ok(())
    }

    /// Every block of the backup onto an RBD volume (zeros as discards
    /// unless the volume is known empty), at the volume's size.
    async fn full_restore_rbd(
        &self,
        volume: &RbdVolume,
        source: &str,
        length: u64,
        empty: bool,
        control: &Control,
    ) -> Result<(), BackupError> {
        let (mut export, export_what) = self
            .cli
            .reading(&Cli::rbd_stream(
                &self.access,
                &["export", "--no-progress", source, "-"],
            ))
            .await?;
        let target = volume.spec();
        let (mut importer, import_what) = self
            .cli
            .piped(&Cli::rbd_stream(
                &volume.access,
                &["import-diff", "--no-progress", "-", &target],
            ))
            .await?;
        let written = async {
            let mut out = DiffWriter::begin(importer.stdin(), None, None, length).await?;
            let baseline = if empty {
                Baseline::Empty
            } else {
                Baseline::Unknown
            };
            copy_blocks(
                export.stdout(),
                baseline,
                length,
                self.block,
                &mut out,
                |n| {
                    control.progress.add(n, 0);
                    if control.cancel.is_cancelled() {
                        return Err(std::io::Error::other("cancelled"));
                    }
                    Ok(())
                },
            )
            .await?;
            out.end().await?;
            Ok::<(), std::io::Error>(())
        }
        .await;
        if control.cancel.is_cancelled() {
            return Err(interrupted());
        }
        let imported = Cli::check(&import_what, importer.finish().await);
        let exported = Cli::check(&export_what, export.finish().await);
        written.map_err(io)?;
        imported?;
        if let Err(e) = exported {
            tracing::warn!(error = %e, "rbd export of the backup exited badly after its data");
        }
        Ok(())
    }

    /// The backup read with `rbd export -` into a local volume; a new
    /// volume keeps its holes, an existing one gets zeros where the backup
    /// has them and after its end (`restore_discard_excess_bytes`).
    async fn full_restore_local(
        &self,
        path: &std::path::Path,
        source: &str,
        backup_len: u64,
        length: u64,
        volume_is_new: bool,
        control: &Control,
    ) -> Result<(), BackupError> {
        use tokio::io::AsyncSeekExt;
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .await
            .map_err(io)?;
        let (mut export, what) = self
            .cli
            .reading(&Cli::rbd_stream(
                &self.access,
                &["export", "--no-progress", source, "-"],
            ))
            .await?;
        let end = if volume_is_new || !self.options.restore_discard_excess_bytes {
            backup_len
        } else {
            length
        };
        let written = async {
            let mut data = vec![0u8; self.block];
            let mut offset = 0u64;
            while offset < end {
                let len =
                    usize::try_from((end - offset).min(self.block as u64)).unwrap_or(self.block);
                let from_backup = usize::try_from(backup_len.saturating_sub(offset))
                    .unwrap_or(usize::MAX)
                    .min(len);
                let piece = &mut data[..len];
                let got = diff::read_full(export.stdout(), &mut piece[..from_backup]).await?;
                if got < from_backup {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("the backup's export ended at byte {}", offset + got as u64),
                    ));
                }
                piece[from_backup..].fill(0);
                if !(volume_is_new && crate::engine::zeros::all_zero(piece)) {
                    file.seek(std::io::SeekFrom::Start(offset)).await?;
                    file.write_all(piece).await?;
                }
                offset += len as u64;
                control.progress.add(len as u64, 0);
                if control.cancel.is_cancelled() {
                    return Err(std::io::Error::other("cancelled"));
                }
            }
            file.flush().await?;
            file.sync_data().await
        }
        .await;
        if control.cancel.is_cancelled() {
            return Err(interrupted());
        }
        let exported = Cli::check(&what, export.finish().await);
        written.map_err(io)?;
        if let Err(e) = exported {
            tracing::warn!(error = %e, "rbd export of the backup exited badly after its data");
        }
        Ok(())
    }
}
