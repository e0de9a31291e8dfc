//! Making a backup: Cinder's `ChunkedBackupDriver.backup` in two steps, so
//! the caller can record `container` and `service_metadata` in the backup
//! row before the first object is written (a crash then leaves objects the
//! restart can find and delete).

use std::collections::VecDeque;

use bytes::Bytes;
use tokio::io::AsyncRead;
use tokio::task::JoinSet;

use super::pieces::{self, PieceWork, PreparedPiece};
use super::{BackupRecord, ChunkedEngine, Control};
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
        let (Ok(chunk_size), Ok(block)) = (
            usize::try_from(settings.chunk_size),
            usize::try_from(settings.sha_block_size),
        ) else {
            return Err(BackupError::InvalidBackup("object size too large".into()));
        };
        let work = PieceWork::new(block, chunk_size, settings.compression.clone());
        let blocks_per_chunk = chunk_size / block;
        let mut pieces: VecDeque<tokio::task::JoinHandle<Result<PreparedPiece, BackupError>>> =
            VecDeque::new();
        let mut entries: Vec<ObjectEntry> = Vec::new();
        let mut sha256s: Vec<String> = Vec::new();
        let mut offset = 0u64;
        let mut bytes_changed = 0u64;
        let mut bytes_stored = 0u64;
        // Bytes of the objects being stored.
        let mut putting = 0u64;
        let mut piece_index = 0usize;
        let mut at_end = false;
        loop {
            while !at_end && pieces.len() < parallelism {
                if control.cancel.is_cancelled() {
                    return Err(self.cancelled(prepared));
                }
                let parent = prepared.parent_sha256s.as_ref().map(|shas| {
                    shas.iter()
                        .skip(piece_index * blocks_per_chunk)
                        .take(blocks_per_chunk)
                        .cloned()
                        .collect::<Vec<_>>()
                });
                let Some(piece) =
                    pieces::read_piece(volume, &work, offset, parent, &control.progress).await?
                else {
                    at_end = true;
                    break;
                };
                offset += piece.len;
                piece_index += 1;
                let work = work.clone();
                pieces.push_back(tokio::spawn(async move { piece.finish(&work).await }));
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
                let stored: u64 = object.parts.iter().map(|p| p.len() as u64).sum();
                while !puts.is_empty()
                    && (puts.len() >= super::MAX_OBJECTS_IN_FLIGHT
                        || putting + stored > settings.in_flight_bytes())
                {
                    let done = joined(puts.join_next().await)?;
                    bytes_stored += done;
                    putting -= done;
                }
                putting += stored;
                let store = self.store.clone();
                let container = prepared.container.clone();
                let progress = control.progress.clone();
                puts.spawn(async move {
                    store
                        .put_object_parts(&container, &name, object.parts, &object.payload_md5)
                        .await?;
                    progress.add(0, 1);
                    Ok(stored)
                });
            }
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
