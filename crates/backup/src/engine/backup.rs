//! Making a backup: Cinder's `ChunkedBackupDriver.backup` in two steps, so
//! the caller can record `container` and `service_metadata` in the backup
//! row before the first object is written (a crash then leaves objects the
//! restart can find and delete).

use std::collections::VecDeque;

use bytes::Bytes;
use sha2::Digest as _;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinSet;

use super::{BackupRecord, ChunkedEngine, Control, zeros};
use crate::error::{BackupError, StoreError};
use crate::format::{self, BackupMetadata, DRIVER_VERSION, ObjectEntry, ObjectInfo, Sha256File};

/// A backup to make.
#[derive(Clone, Debug)]
pub struct BackupRequest {
    /// The backup's id.
    pub backup_id: String,
    /// The volume's id.
    pub volume_id: String,
    /// The volume's size in GiB (the row's `size`); 0 is refused as in
    /// Cinder.
    pub volume_size_gb: u64,
    /// `display_name`.
    pub name: Option<String>,
    /// `display_description`.
    pub description: Option<String>,
    /// Python's `str()` of the row's `created_at`
    /// ([`format::python_datetime_str`]).
    pub created_at: String,
    /// The container the user asked for, if any.
    pub container: Option<String>,
    /// The parent for an incremental backup.
    pub parent: Option<ParentBackup>,
    /// The volume's metadata as Cinder's `BackupMetadataAPI.get` serialises
    /// it, stored as `volume_meta`.
    pub volume_meta: Option<String>,
    /// When the backup starts (the object prefix's timestamp).
    pub started_at: jiff::Timestamp,
}

/// The parent of an incremental backup.
#[derive(Clone, Debug)]
pub struct ParentBackup {
    /// Where the parent's objects are.
    pub record: BackupRecord,
    /// The parent's `size` in GiB.
    pub size_gb: u64,
}

/// A backup whose container exists and whose names are chosen; record
/// `container` and `service_metadata` before calling
/// [`ChunkedEngine::run_backup`].
#[derive(Clone, Debug)]
pub struct PreparedBackup {
    request: BackupRequest,
    /// The container the objects go to (the row's `container`).
    pub container: String,
    /// The object prefix (the row's `service_metadata`).
    pub service_metadata: String,
    parent_sha256s: Option<Vec<String>>,
}

impl PreparedBackup {
    /// This backup as a record (for deleting what a failed run left).
    pub fn record(&self) -> BackupRecord {
        BackupRecord {
            id: self.request.backup_id.clone(),
            container: self.container.clone(),
            service_metadata: self.service_metadata.clone(),
        }
    }
}

/// What a finished backup is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupOutcome {
    /// The row's `container`.
    pub container: String,
    /// The row's `service_metadata`.
    pub service_metadata: String,
    /// The row's `object_count`: data objects (not the metadata and
    /// sha256file).
    pub object_count: u64,
    /// Bytes read from the volume.
    pub bytes_read: u64,
    /// Bytes of the volume stored (all for a full backup, the changed
    /// blocks for an incremental one), before compression.
    pub bytes_changed: u64,
    /// Bytes written to the store for data objects, after compression.
    pub bytes_stored: u64,
}

/// One data object ready to store.
struct PreparedObject {
    offset: u64,
    length: u64,
    /// MD5 of the uncompressed bytes (the metadata's `md5`).
    md5: String,
    compression: String,
    payload: Bytes,
    /// MD5 of `payload`, which the store checks on arrival.
    payload_md5: String,
}

/// One piece of the volume after hashing, diffing and compressing.
struct PreparedPiece {
    length: u64,
    sha256s: Vec<String>,
    objects: Vec<PreparedObject>,
}

impl ChunkedEngine {
    /// Checks the request against Cinder's rules, reads the parent's
    /// sha256file for an incremental backup, creates the container and
    /// chooses the object prefix.
    pub async fn prepare_backup(
        &self,
        request: BackupRequest,
    ) -> Result<PreparedBackup, BackupError> {
        let settings = &self.settings;
        if settings.sha_block_size == 0
            || !settings.chunk_size.is_multiple_of(settings.sha_block_size)
        {
            return Err(BackupError::InvalidBackup(
                "Chunk size is not multiple of block size for creating hash.".into(),
            ));
        }
        let parent_sha256s = match &request.parent {
            None => None,
            Some(parent) => {
                let sha256file = self.read_sha256file(&parent.record).await?;
                if sha256file.chunk_size != settings.sha_block_size {
                    return Err(BackupError::InvalidBackup(format!(
                        "Hash block size has changed since the last backup. New hash block \
                         size: {}. Old hash block size: {}. Do a full backup.",
                        settings.sha_block_size, sha256file.chunk_size
                    )));
                }
                if request.volume_size_gb > parent.size_gb {
                    return Err(BackupError::InvalidBackup(
                        "Volume size increased since the last backup. Do a full backup.".into(),
                    ));
                }
                Some(sha256file.sha256s)
            }
        };
        if request.volume_size_gb == 0 {
            return Err(BackupError::InvalidVolume(format!(
                "volume size {} is invalid.",
                request.volume_size_gb
            )));
        }
        let container = settings
            .naming
            .container(&request.backup_id, request.container.as_deref());
        self.store
            .ensure_container(&container, settings.create_containers)
            .await?;
        let service_metadata =
            settings
                .naming
                .prefix(&request.volume_id, &request.backup_id, request.started_at);
        Ok(PreparedBackup {
            request,
            container,
            service_metadata,
            parent_sha256s,
        })
    }

    /// Reads the volume from `volume` to its end and stores it. On any
    /// failure or cancellation the objects written so far are deleted
    /// (best effort) before the error is returned.
    pub async fn run_backup<R>(
        &self,
        prepared: &PreparedBackup,
        volume: &mut R,
        control: &Control,
    ) -> Result<BackupOutcome, BackupError>
    where
        R: AsyncRead + Unpin + Send + ?Sized,
    {
        control
            .progress
            .set_total(prepared.request.volume_size_gb.saturating_mul(1 << 30));
        let mut puts = JoinSet::new();
        match self
            .write_backup(prepared, volume, control, &mut puts)
            .await
        {
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                // Uploads still under way finish (or fail) first, so the
                // listing below sees every object that will exist.
                while puts.join_next().await.is_some() {}
                if let Err(cleanup) = self.delete_backup(&prepared.record()).await {
                    tracing::warn!(
                        backup_id = %prepared.request.backup_id,
                        error = %cleanup,
                        "could not delete the objects of a failed backup"
                    );
                }
                Err(e)
            }
        }
    }

    async fn write_backup<R>(
        &self,
        prepared: &PreparedBackup,
        volume: &mut R,
        control: &Control,
        puts: &mut JoinSet<Result<u64, StoreError>>,
    ) -> Result<BackupOutcome, BackupError>
    where
        R: AsyncRead + Unpin + Send + ?Sized,
    {
        let settings = &self.settings;
        let parallelism = settings.parallelism.max(1);
        let chunk_size = usize::try_from(settings.chunk_size)
            .map_err(|_| BackupError::InvalidBackup("object size too large".into()))?;
        let blocks_per_chunk = settings.chunk_size / settings.sha_block_size;
        let mut pieces: VecDeque<tokio::task::JoinHandle<Result<PreparedPiece, BackupError>>> =
            VecDeque::new();
        let mut entries: Vec<ObjectEntry> = Vec::new();
        let mut sha256s: Vec<String> = Vec::new();
        let mut offset = 0u64;
        let mut bytes_changed = 0u64;
        let mut bytes_stored = 0u64;
        let mut piece_index = 0u64;
        let mut at_end = false;
        loop {
            while !at_end && pieces.len() < parallelism {
                if control.cancel.is_cancelled() {
                    return Err(self.cancelled(prepared));
                }
                let data = read_piece(volume, chunk_size).await?;
                if data.is_empty() {
                    at_end = true;
                    break;
                }
                let parent = prepared.parent_sha256s.as_ref().map(|shas| {
                    let first =
                        usize::try_from(piece_index * blocks_per_chunk).unwrap_or(usize::MAX);
                    shas.iter()
                        .skip(first)
                        .take(usize::try_from(blocks_per_chunk).unwrap_or(usize::MAX))
                        .cloned()
                        .collect::<Vec<_>>()
                });
                let block = settings.sha_block_size;
                let compression = settings.compression.clone();
                let piece_offset = offset;
                offset += data.len() as u64;
                piece_index += 1;
                pieces.push_back(tokio::task::spawn_blocking(move || {
                    prepare_piece(data, piece_offset, block, parent.as_deref(), &compression)
                }));
            }
            let Some(next) = pieces.pop_front() else {
                break;
            };
            let piece = next
                .await
                .map_err(|e| BackupError::Internal(format!("backup task failed: {e}")))??;
            sha256s.extend(piece.sha256s);
            for object in piece.objects {
                let name =
                    format::data_object_name(&prepared.service_metadata, entries.len() as u64 + 1);
                bytes_changed += object.length;
                entries.push(ObjectEntry {
                    name: name.clone(),
                    info: ObjectInfo {
                        compression: object.compression,
                        length: object.length,
                        md5: object.md5,
                        offset: object.offset,
                    },
                });
                while puts.len() >= parallelism {
                    bytes_stored += joined(puts.join_next().await)?;
                }
                let store = self.store.clone();
                let container = prepared.container.clone();
                let progress = control.progress.clone();
                puts.spawn(async move {
                    let stored = object.payload.len() as u64;
                    store
                        .put_object_with_md5(&container, &name, object.payload, &object.payload_md5)
                        .await?;
                    progress.add(0, 1);
                    Ok(stored)
                });
            }
            control.progress.add(piece.length, 0);
        }
        while let Some(done) = puts.join_next().await {
            bytes_stored += joined(Some(done))?;
        }
        if control.cancel.is_cancelled() {
            return Err(self.cancelled(prepared));
        }
        self.finalize(prepared, entries.clone(), sha256s).await?;
        Ok(BackupOutcome {
            container: prepared.container.clone(),
            service_metadata: prepared.service_metadata.clone(),
            object_count: entries.len() as u64,
            bytes_read: offset,
            bytes_changed,
            bytes_stored,
        })
    }

    fn cancelled(&self, prepared: &PreparedBackup) -> BackupError {
        BackupError::BackupCancelled {
            backup_id: prepared.request.backup_id.clone(),
        }
    }

    /// Writes the sha256file, then the metadata (Cinder's
    /// `_finalize_backup` order): the metadata's presence marks a complete
    /// backup.
    async fn finalize(
        &self,
        prepared: &PreparedBackup,
        objects: Vec<ObjectEntry>,
        sha256s: Vec<String>,
    ) -> Result<(), BackupError> {
        let request = &prepared.request;
        let sha256file = Sha256File {
            backup_description: request.description.clone(),
            backup_id: request.backup_id.clone(),
            backup_name: request.name.clone(),
            chunk_size: self.settings.sha_block_size,
            created_at: request.created_at.clone(),
            sha256s,
            version: DRIVER_VERSION.into(),
            volume_id: request.volume_id.clone(),
        };
        let metadata = BackupMetadata {
            backup_description: request.description.clone(),
            backup_id: request.backup_id.clone(),
            backup_name: request.name.clone(),
            created_at: request.created_at.clone(),
            extra_metadata: None,
            objects,
            parent_id: request.parent.as_ref().map(|p| p.record.id.clone()),
            version: DRIVER_VERSION.into(),
            volume_id: request.volume_id.clone(),
            volume_meta: request.volume_meta.clone(),
        };
        let prefix = &prepared.service_metadata;
        self.store
            .put_object(
                &prepared.container,
                &format::sha256file_name(prefix),
                Bytes::from(format::to_python_json(&sha256file)?),
            )
            .await?;
        self.store
            .put_object(
                &prepared.container,
                &format::metadata_name(prefix),
                Bytes::from(format::to_python_json(&metadata)?),
            )
            .await?;
        Ok(())
    }
}

fn joined(
    done: Option<Result<Result<u64, StoreError>, tokio::task::JoinError>>,
) -> Result<u64, BackupError> {
    match done {
        None => Ok(0),
        Some(Ok(result)) => Ok(result?),
        Some(Err(e)) => Err(BackupError::Internal(format!(
            "object upload task failed: {e}"
        ))),
    }
}

/// Reads up to `size` bytes, short only at the end of the volume (Python's
/// `file.read(n)`).
async fn read_piece<R>(volume: &mut R, size: usize) -> Result<Bytes, BackupError>
where
    R: AsyncRead + Unpin + Send + ?Sized,
{
    let mut buffer = Vec::with_capacity(size);
    while buffer.len() < size {
        let read = (&mut *volume)
            .take((size - buffer.len()) as u64)
            .read_buf(&mut buffer)
            .await
            .map_err(BackupError::from_volume_io)?;
        if read == 0 {
            break;
        }
    }
    Ok(Bytes::from(buffer))
}

/// Hashes a piece per block and chooses what to store: the whole piece for
/// a full backup; for an incremental one, each run of blocks whose hash
/// differs from the parent's, as Cinder groups them (a run ends at the
/// first unchanged block, the last run at the end of the piece).
fn prepare_piece(
    data: Bytes,
    offset: u64,
    block: u64,
    parent: Option<&[String]>,
    compression: &crate::compression::Compression,
) -> Result<PreparedPiece, BackupError> {
    let block = usize::try_from(block).unwrap_or(usize::MAX);
    let hash_blocks = || -> Vec<String> {
        data.chunks(block)
            .map(|b| {
                if zeros::all_zero(b) {
                    zeros::sha256_hex(b.len())
                } else {
                    hex::encode(sha2::Sha256::digest(b))
                }
            })
            .collect()
    };
    // A full backup stores the whole piece, so its hashes can be computed
    // beside the compression; an incremental one needs them first.
    let (runs, early_sha256s) = match parent {
        None => (vec![(0, data.len())], None),
        Some(parent) => {
            let sha256s = hash_blocks();
            (
                changed_runs(&sha256s, parent, block, data.len()),
                Some(sha256s),
            )
        }
    };
    // Compression (the slow part) on its own thread, the MD5s (and a full
    // backup's hashes) on this one.
    let (packed, md5s, sha256s) = std::thread::scope(|scope| {
        let packer = scope.spawn(|| {
            runs.iter()
                .map(|&(start, end)| {
                    let run = &data[start..end];
                    if zeros::all_zero(run) {
                        zeros::compress(compression, run.len())
                    } else {
                        compression.compress(run)
                    }
                })
                .collect::<Result<Vec<_>, _>>()
        });
        let md5s: Vec<String> = runs
            .iter()
            .map(|&(start, end)| {
                let run = &data[start..end];
                if zeros::all_zero(run) {
                    zeros::md5_hex(run.len())
                } else {
                    crate::store::md5_hex(run)
                }
            })
            .collect();
        let sha256s = early_sha256s.unwrap_or_else(hash_blocks);
        let packed = packer
            .join()
            .map_err(|_| BackupError::Internal("the compression thread panicked".into()));
        (packed, md5s, sha256s)
    });
    let mut objects = Vec::with_capacity(runs.len());
    for (((start, end), packed), md5) in runs.into_iter().zip(packed??).zip(md5s) {
        let (compression, payload, payload_md5) = match packed {
            Some(packed) => {
                let payload_md5 = crate::store::md5_hex(&packed);
                (
                    compression.name().to_owned(),
                    Bytes::from(packed),
                    payload_md5,
                )
            }
            // Stored as read: a slice of the piece, not a copy.
            None => ("none".to_owned(), data.slice(start..end), md5.clone()),
        };
        objects.push(PreparedObject {
            offset: offset + start as u64,
            length: (end - start) as u64,
            md5,
            compression,
            payload,
            payload_md5,
        });
    }
    Ok(PreparedPiece {
        length: data.len() as u64,
        sha256s,
        objects,
    })
}

/// The runs of blocks whose hash differs from the parent's, as Cinder
/// groups them: a run ends at the first unchanged block, the last one at
/// the end of the piece. Byte ranges within the piece.
fn changed_runs(
    sha256s: &[String],
    parent: &[String],
    block: usize,
    len: usize,
) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start: Option<usize> = None;
    for (index, sha) in sha256s.iter().enumerate() {
        let changed = parent.get(index) != Some(sha);
        match (changed, start) {
            (true, None) => start = Some(index * block),
            (false, Some(s)) => {
                runs.push((s, index * block));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push((s, len));
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::Compression;

    #[test]
    fn changed_blocks_are_grouped_as_cinder_groups_them() {
        let block = 4u64;
        let data: Vec<u8> = (0..40u8).collect();
        let parent: Vec<String> = data
            .chunks(4)
            .map(|b| hex::encode(sha2::Sha256::digest(b)))
            .collect();
        let mut changed = data.clone();
        for i in [0usize, 5, 9, 13, 14, 39] {
            changed[i] ^= 0xff;
        }
        let piece = prepare_piece(
            Bytes::from(changed),
            1000,
            block,
            Some(&parent),
            &Compression::none(),
        )
        .unwrap();
        let runs: Vec<(u64, u64)> = piece.objects.iter().map(|o| (o.offset, o.length)).collect();
        // Bytes 0, 5, 9 and 13-14 change blocks 0 to 3 (one run); byte 39
        // changes block 9, the last, alone.
        assert_eq!(runs, [(1000, 16), (1036, 4)]);
        assert_eq!(piece.sha256s.len(), 10);
        let unchanged = prepare_piece(
            Bytes::from(data.clone()),
            0,
            block,
            Some(&parent),
            &Compression::none(),
        )
        .unwrap();
        assert!(unchanged.objects.is_empty());
        let full = prepare_piece(
            Bytes::from(data.clone()),
            0,
            block,
            None,
            &Compression::none(),
        )
        .unwrap();
        assert_eq!(full.objects.len(), 1);
        assert_eq!(full.objects[0].md5, crate::store::md5_hex(&data));
    }
}
