//! Restoring a chain: Cinder's `restore` and `_restore_v1`. The full
//! backup is written first, then each incremental backup on top of it, in
//! order; each backup's object list must match its container's listing.
//! Unlike Cinder, each object's length and MD5 (of the uncompressed
//! bytes, which Cinder records but never checks) are verified: the length
//! before the object is written, the MD5 on another thread while it is
//! written and synced (an object is up to 2 GB, its MD5 a second or more
//! of one CPU); a mismatch fails the restore, leaving the volume
//! `error_restoring` as any failed restore does.

use std::collections::VecDeque;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::{BackupRecord, ChunkedEngine, Control};
use crate::compression::Compression;
use crate::error::BackupError;
use crate::format::{self, BackupMetadata, DRIVER_VERSION};

/// Cinder writes only the non-zero MiBs of a new (zeroed, sparse) volume.
const ZERO_SKIP_PIECE: usize = 1 << 20;
/// Bytes written between syncs of the volume; each backup of the chain
/// ends with one too.
const SYNC_BYTES: u64 = 256 << 20;

/// Where a restore writes: a volume opened for random-access writes.
#[async_trait]
pub trait VolumeWriter: Send {
    /// Writes `data` at `offset`.
    async fn write_at(&mut self, offset: u64, data: Bytes) -> std::io::Result<()>;
    /// Makes what was written durable (Cinder fsyncs after each object).
    async fn sync(&mut self) -> std::io::Result<()>;
}

/// A file or block device as a [`VolumeWriter`]: positioned writes
/// (`pwrite`) straight from the restored buffers on the blocking pool.
#[derive(Clone, Debug)]
pub struct FileWriter {
    file: Arc<std::fs::File>,
}

impl FileWriter {
    /// Writes into `file` (opened for writing).
    pub fn new(file: std::fs::File) -> Self {
        Self {
            file: Arc::new(file),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&std::fs::File) -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || f(&file))
            .await
            .map_err(std::io::Error::other)?
    }
}

#[async_trait]
impl VolumeWriter for FileWriter {
    async fn write_at(&mut self, offset: u64, data: Bytes) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.blocking(move |file| file.write_all_at(&data, offset))
            .await
    }

    async fn sync(&mut self) -> std::io::Result<()> {
        self.blocking(std::fs::File::sync_data).await
    }
}

/// What a restore did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreOutcome {
    /// The `volume_meta` of each backup of the chain that had one, in the
    /// order applied (full first): the caller applies them in turn, as
    /// Cinder's `put_metadata` does.
    pub volume_meta: Vec<String>,
    /// Data objects restored.
    pub objects: u64,
    /// Bytes written to the volume (decompressed).
    pub bytes: u64,
}

/// Where one restore writes, and what stops it.
struct Target<'a> {
    requested: &'a BackupRecord,
    volume_id: &'a str,
    volume: &'a mut dyn VolumeWriter,
    volume_is_new: bool,
    control: &'a Control,
}

struct FetchedObject {
    entry: format::ObjectEntry,
    data: Bytes,
}

impl ChunkedEngine {
    /// Restores `chain` (the full backup first, the backup asked for last)
    /// into `volume`. With `volume_is_new` the volume is taken to be zeroed
    /// and only the full backup's non-zero MiBs are written, keeping it
    /// sparse.
    pub async fn restore_backup(
        &self,
        chain: &[BackupRecord],
        volume_id: &str,
        volume: &mut dyn VolumeWriter,
        volume_is_new: bool,
        control: &Control,
    ) -> Result<RestoreOutcome, BackupError> {
        let Some(requested) = chain.last() else {
            return Err(BackupError::InvalidBackup(
                "nothing to restore: the backup chain is empty".into(),
            ));
        };
        let mut metadata = Vec::with_capacity(chain.len());
        for record in chain {
            let meta = self.read_metadata(record).await?;
            if meta.version != DRIVER_VERSION {
                return Err(BackupError::InvalidBackup(format!(
                    "No support to restore backup version {}",
                    meta.version
                )));
            }
            metadata.push(meta);
        }
        let total = metadata
            .iter()
            .flat_map(|m| m.objects.iter())
            .map(|o| o.info.length)
            .sum();
        control.progress.set_total(total);
        let mut outcome = RestoreOutcome::default();
        let mut target = Target {
            requested,
            volume_id,
            volume,
            volume_is_new,
            control,
        };
        for (record, meta) in chain.iter().zip(metadata) {
            self.check_object_list(record, &meta).await?;
            self.restore_objects(record, &meta, &mut target, &mut outcome)
                .await?;
            // A new volume reads as zeros only until the first backup is
            // written: a later backup's zeros overwrite data, so they are
            // written like any other bytes.
            target.volume_is_new = false;
            if let Some(volume_meta) = meta.volume_meta.filter(|m| !m.is_empty()) {
                outcome.volume_meta.push(volume_meta);
            }
        }
        Ok(outcome)
    }

    /// Cinder aborts when the container holds other objects under the
    /// prefix than the metadata lists (a backup written only in part).
    async fn check_object_list(
        &self,
        record: &BackupRecord,
        meta: &BackupMetadata,
    ) -> Result<(), BackupError> {
        let prefix = &record.service_metadata;
        let skip = [
            format::metadata_name(prefix),
            format::sha256file_name(prefix),
        ];
        let mut listed: Vec<String> = self
            .store
            .list_objects(&record.container, prefix)
            .await?
            .into_iter()
            .filter(|name| !skip.contains(name))
            .collect();
        let mut expected: Vec<String> = meta.objects.iter().map(|o| o.name.clone()).collect();
        listed.sort();
        expected.sort();
        if listed != expected {
            return Err(BackupError::InvalidBackup(
                "restore_backup aborted, actual object list does not match object list stored \
                 in metadata."
                    .into(),
            ));
        }
        Ok(())
    }

    async fn restore_objects(
        &self,
        record: &BackupRecord,
        meta: &BackupMetadata,
        target: &mut Target<'_>,
        outcome: &mut RestoreOutcome,
    ) -> Result<(), BackupError> {
        let budget = self.settings.in_flight_bytes();
        let mut queue = meta.objects.iter().peekable();
        let mut fetching: VecDeque<tokio::task::JoinHandle<Result<FetchedObject, BackupError>>> =
            VecDeque::new();
        // Bytes fetched ahead (their lengths once decompressed), and bytes
        // written since the last sync.
        let (mut ahead, mut unsynced) = (0u64, 0u64);
        loop {
            while let Some(entry) = queue.next_if(|e| {
                fetching.is_empty()
                    || (fetching.len() < super::MAX_OBJECTS_IN_FLIGHT
                        && ahead + e.info.length <= budget)
            }) {
                ahead += entry.info.length;
                let store = self.store.clone();
                let container = record.container.clone();
                let entry = entry.clone();
                fetching.push_back(tokio::spawn(async move {
                    let body = store.get_object(&container, &entry.name).await?;
                    tokio::task::spawn_blocking(move || {
                        let compression = Compression::from_name(&entry.info.compression)?;
                        let data = compression.decompress(body, entry.info.length)?;
                        check_length(&entry, &data)?;
                        Ok(FetchedObject { entry, data })
                    })
                    .await
                    .map_err(|e| BackupError::Internal(format!("restore task failed: {e}")))?
                }));
            }
            let Some(next) = fetching.pop_front() else {
                break;
            };
            if target.control.cancel.is_cancelled() {
                fetching.iter().for_each(|f| f.abort());
                return Err(BackupError::RestoreCancelled {
                    backup_id: target.requested.id.clone(),
                    volume_id: target.volume_id.to_owned(),
                });
            }
            let object = next
                .await
                .map_err(|e| BackupError::Internal(format!("restore task failed: {e}")))??;
            ahead -= object.entry.info.length;
            let md5 = {
                let (entry, data) = (object.entry.clone(), object.data.clone());
                tokio::task::spawn_blocking(move || check_md5(&entry, &data))
            };
            let written = write_object(
                target.volume,
                object.entry.info.offset,
                &object.data,
                target.volume_is_new,
            )
            .await;
            // Synced every SYNC_BYTES (Cinder syncs after each object, which
            // costs an incremental of a thousand small objects a thousand
            // syncs) and at the end, while the MD5 may still be under way; a
            // mismatch fails the restore all the same.
            unsynced += object.data.len() as u64;
            let last = fetching.is_empty() && queue.peek().is_none();
            let synced = match written {
                Ok(()) if unsynced >= SYNC_BYTES || last => {
                    unsynced = 0;
                    target.volume.sync().await
                }
                other => other,
            };
            md5.await
                .map_err(|e| BackupError::Internal(format!("restore task failed: {e}")))??;
            synced.map_err(BackupError::VolumeIo)?;
            outcome.objects += 1;
            outcome.bytes += object.data.len() as u64;
            target.control.progress.add(object.data.len() as u64, 1);
        }
        tracing::debug!(backup_id = %record.id, volume_id = target.volume_id, "backup restored");
        Ok(())
    }
}

fn check_length(entry: &format::ObjectEntry, data: &[u8]) -> Result<(), BackupError> {
    if data.len() as u64 != entry.info.length {
        return Err(BackupError::InvalidBackup(format!(
            "object {} holds {} bytes, its metadata says {}",
            entry.name,
            data.len(),
            entry.info.length
        )));
    }
    Ok(())
}

fn check_md5(entry: &format::ObjectEntry, data: &[u8]) -> Result<(), BackupError> {
    let md5 = crate::store::md5_hex(data);
    if !md5.eq_ignore_ascii_case(&entry.info.md5) {
        return Err(BackupError::InvalidBackup(format!(
            "object {} has md5 {md5}, its metadata says {}",
            entry.name, entry.info.md5
        )));
    }
    Ok(())
}

/// Writes an object's bytes; into a new volume only its non-zero MiBs,
/// each run of them in one write.
async fn write_object(
    volume: &mut dyn VolumeWriter,
    offset: u64,
    data: &Bytes,
    volume_is_new: bool,
) -> std::io::Result<()> {
    if !volume_is_new {
        return volume.write_at(offset, data.clone()).await;
    }
    let mut run: Option<usize> = None;
    for start in (0..data.len()).step_by(ZERO_SKIP_PIECE) {
        let end = (start + ZERO_SKIP_PIECE).min(data.len());
        let zero = super::zeros::all_zero(&data[start..end]);
        match (zero, run) {
            (false, None) => run = Some(start),
            (true, Some(from)) => {
                volume
                    .write_at(offset + from as u64, data.slice(from..start))
                    .await?;
                run = None;
            }
            _ => {}
        }
    }
    if let Some(from) = run {
        volume
            .write_at(offset + from as u64, data.slice(from..))
            .await?;
    }
    Ok(())
}
