//! The Ceph backup driver (Cinder's `CephBackupDriver`): every backup is
//! a snapshot `backup.<id>.snap.<time>` of a base image in
//! `backup_ceph_pool`, so an incremental backup stores only what changed
//! and a restore reads one snapshot, never a chain.
//!
//! * **RBD volumes** are snapshotted under the same name and the change
//!   since the parent's snapshot moves as
//!   `rbd export-diff [--from-snap parent] vol@snap - | rbd import-diff - base`,
//!   which also creates the snapshot on the base image (Cinder's
//!   `_backup_rbd`). The source snapshots stay, as in Cinder, for the next
//!   incremental (`backup_ceph_max_snapshots` keeps only the newest N);
//!   the RBD volume driver removes them with the volume.
//! * **Other volumes** (file, LVM) are read here and written as an RBD
//!   diff stream into `rbd import-diff`: a full backup sends the non-zero
//!   blocks, an incremental one the blocks that differ from the parent's
//!   snapshot (read back with `rbd export`). Cinder streams them into a
//!   snapshot-less image and refuses incremental backups of them; its
//!   restore reads Clinker's base-and-snapshot backups all the same.
//! * **Restore** into a new, empty RBD volume is
//!   `export-diff base@snap | import-diff` (the snapshot import-diff leaves
//!   on the volume is removed, the volume grown back to its size); into
//!   anything else, the snapshot is read with `rbd export -` and written
//!   whole, zeros included unless the volume is new.
//! * **Delete** removes the backup's snapshot of its base image, and the
//!   image once no backup snapshot is left; then the metadata object.
//!
//! The driver names what it will write in `service_metadata` before it
//! writes anything, so a backup interrupted at any point is deleted like a
//! finished one.

pub(crate) mod cli;
mod delete;
pub(crate) mod diff;
mod naming;
mod restore;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;

use clinker_config::CephBackupOptions;
use clinker_exec::CommandRunner;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWriteExt};

pub use cli::CephAccess;

use crate::engine::{BackupRecord, Control, RestoreOutcome};
use crate::error::{BackupError, RbdFailure};
use cli::{Cli, Cmd, is_ceph_name};
use diff::{Baseline, DiffWriter, copy_blocks};

const GIB: u64 = 1 << 30;
/// The largest block compared and written at once: the RBD object size,
/// the unit a snapshot copies on write anyway.
pub(crate) const MAX_BLOCK: u64 = 4 << 20;
/// Tries to remove a base image that is busy (Cinder's retry).
const REMOVE_TRIES: u32 = 3;

/// An RBD image the backup service reaches: a volume of an RBD backend.
#[derive(Clone, Debug)]
pub struct RbdVolume {
    /// How to reach its cluster.
    pub access: CephAccess,
    /// Its pool.
    pub pool: String,
    /// Its image.
    pub image: String,
}

impl RbdVolume {
    /// The volume an `rbd` connection (`initialize_connection`) describes,
    /// reached with the backup host's Ceph configuration `conf`
    /// (`backup_ceph_conf`) and the connection's monitors and user.
    ///
    /// # Errors
    /// Unusable connection info.
    pub fn from_connection(
        data: &serde_json::Map<String, serde_json::Value>,
        conf: &std::path::Path,
    ) -> Result<Self, BackupError> {
        let (access, pool, image) = CephAccess::from_connection(data, conf)?;
        Ok(Self {
            access,
            pool,
            image,
        })
    }

    pub(crate) fn spec(&self) -> String {
        format!("{}/{}", self.pool, self.image)
    }
}

/// Where a volume's data is, for the Ceph driver.
#[derive(Clone, Debug)]
pub enum VolumeData {
    /// A local file or block device.
    Local(PathBuf),
    /// An RBD image.
    Rbd(RbdVolume),
}

/// The volume a restore writes.
#[derive(Clone, Debug)]
pub struct RestoreTarget {
    /// Its id.
    pub volume_id: String,
    /// Where its data is.
    pub data: VolumeData,
    /// Its size.
    pub size_gb: u64,
    /// Whether it was made for this restore (zeroed, so holes can stay).
    pub is_new: bool,
}

/// A backup to make.
#[derive(Clone, Debug)]
pub struct CephBackupRequest {
    /// The backup's id.
    pub backup_id: String,
    /// The volume's id.
    pub volume_id: String,
    /// The volume's size.
    pub volume_size_gb: u64,
    /// The container (pool) the user asked for.
    pub container: Option<String>,
    /// The parent of an incremental backup.
    pub parent: Option<BackupRecord>,
    /// The volume's metadata (Cinder's `get_metadata` JSON), kept in the
    /// object `backup.<id>.meta`.
    pub volume_meta: Option<String>,
}

/// A backup whose location is decided: record `container` and
/// `service_metadata` before [`CephBackupDriver::run_backup`].
#[derive(Clone, Debug)]
pub struct PreparedCephBackup {
    /// The request.
    pub request: CephBackupRequest,
    /// The pool.
    pub container: String,
    /// `{"base": "<image>"}`.
    pub service_metadata: String,
    base: String,
    /// The parent's snapshot name is looked up when the backup runs.
    parent_id: Option<String>,
}

/// What the driver reads with `rbd snap ls --format json`.
#[derive(Clone, Debug, Deserialize)]
struct SnapInfo {
    name: String,
    size: u64,
}

/// Cinder's Ceph backup driver over the `rbd` and `rados` tools.
#[derive(Clone, Debug)]
pub struct CephBackupDriver {
    cli: Cli,
    access: CephAccess,
    options: CephBackupOptions,
    block: usize,
}

/// A step stopped by the caller's cancellation; the operation's entry
/// point turns it into Cinder's cancelled errors.
fn interrupted() -> BackupError {
    BackupError::Internal("cancelled".into())
}

fn not_found(e: &BackupError) -> bool {
    matches!(
        e,
        BackupError::Rbd {
            failure: RbdFailure::NotFound,
            ..
        }
    )
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, stdout: &str) -> Result<T, BackupError> {
    serde_json::from_str(stdout)
        .map_err(|e| BackupError::Internal(format!("{what}: unexpected output: {e}")))
}

fn io(e: std::io::Error) -> BackupError {
    BackupError::VolumeIo(e)
}

impl CephBackupDriver {
    /// The driver for `backup_ceph_*`, running `rbd` and `rados` through
    /// `runner`.
    pub fn new(options: &CephBackupOptions, runner: Arc<dyn CommandRunner>) -> Self {
        let block = usize::try_from(options.chunk_size.clamp(4096, MAX_BLOCK)).unwrap_or(4096);
        Self {
            cli: Cli::new(runner),
            access: CephAccess::with_conf(&options.user, &options.conf),
            options: options.clone(),
            block,
        }
    }

    /// Checks the options can name things (Cinder's
    /// `check_for_setup_error` checks they are set).
    ///
    /// # Errors
    /// An unusable `backup_ceph_user` or `backup_ceph_pool`.
    pub fn check_options(&self) -> Result<(), BackupError> {
        for (option, value) in [
            ("backup_ceph_user", &self.options.user),
            ("backup_ceph_pool", &self.options.pool),
        ] {
            if !is_ceph_name(value) {
                return Err(BackupError::Store(crate::error::StoreError::Config(
                    format!("{option} = {value:?} is not a Ceph name"),
                )));
            }
        }
        Ok(())
    }

    /// Decides the pool and base image of a backup.
    ///
    /// # Errors
    /// A container that is not a pool name.
    pub fn prepare_backup(
        &self,
        request: CephBackupRequest,
    ) -> Result<PreparedCephBackup, BackupError> {
        let (container, base) = match &request.parent {
            // The parent's base holds the snapshot the diff starts from.
            Some(parent) => (
                parent.container.clone(),
                naming::base_of(&parent.service_metadata)
                    .unwrap_or_else(|| naming::legacy_base(&request.volume_id)),
            ),
            None => (
                request
                    .container
                    .clone()
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| self.options.pool.clone()),
                naming::full_base(&request.volume_id, &request.backup_id),
            ),
        };
        if !is_ceph_name(&container) {
            return Err(BackupError::InvalidBackup(format!(
                "container {container:?} is not a Ceph pool name"
            )));
        }
        if !is_ceph_name(&base) {
            return Err(BackupError::InvalidBackup(format!(
                "base image {base:?} is not an RBD image name"
            )));
        }
        Ok(PreparedCephBackup {
            parent_id: request.parent.as_ref().map(|p| p.id.clone()),
            service_metadata: naming::service_metadata(&base),
            container,
            base,
            request,
        })
    }

    // -- reading the backup pool -----------------------------------------

    async fn run(&self, cmd: &Cmd, read_only: bool) -> Result<String, BackupError> {
        self.cli.run(cmd, read_only).await
    }

    async fn snapshots(
        &self,
        access: &CephAccess,
        spec: &str,
    ) -> Result<Vec<SnapInfo>, BackupError> {
        let cmd = Cli::rbd(access, &["snap", "ls", "--format", "json", spec]);
        parse("rbd snap ls", &self.run(&cmd, true).await?)
    }

    /// The snapshot of `backup_id` on an image; more than one is an error
    /// (Cinder's `_get_backup_snap_name`).
    async fn backup_snap(
        &self,
        access: &CephAccess,
        spec: &str,
        backup_id: &str,
    ) -> Result<Option<SnapInfo>, BackupError> {
        let mut found: Vec<SnapInfo> = self
            .snapshots(access, spec)
            .await?
            .into_iter()
            .filter(|s| naming::snap_backup_id(&s.name) == Some(backup_id))
            .collect();
        if found.len() > 1 {
            return Err(BackupError::InvalidBackup(format!(
                "Backup should only have one snapshot but instead has {}",
                found.len()
            )));
        }
        Ok(found.pop())
    }

    async fn image_size(&self, spec: &str) -> Result<Option<u64>, BackupError> {
        self.cli.image_size(&self.access, spec).await
    }

    /// The base image holding `record`: the one its `service_metadata`
    /// names, else Cinder's names for a full copy and for the legacy base.
    async fn find_base(
        &self,
        record: &BackupRecord,
        volume_id: &str,
    ) -> Result<Option<(String, u64)>, BackupError> {
        let candidates = match naming::base_of(&record.service_metadata) {
            Some(base) => vec![base],
            None => vec![
                naming::full_base(volume_id, &record.id),
                naming::legacy_base(volume_id),
            ],
        };
        for base in candidates {
            if !is_ceph_name(&base) {
                continue;
            }
            if let Some(size) = self
                .image_size(&format!("{}/{base}", record.container))
                .await?
            {
                return Ok(Some((base, size)));
            }
        }
        Ok(None)
    }

    // -- backup -----------------------------------------------------------

    /// Makes the backup: data, then the metadata object. On failure,
    /// whatever this backup created is removed again.
    ///
    /// # Errors
    /// The cluster, the volume, or cancellation.
    pub async fn run_backup(
        &self,
        prepared: &PreparedCephBackup,
        source: &VolumeData,
        control: &Control,
    ) -> Result<(), BackupError> {
        let request = &prepared.request;
        let length = request.volume_size_gb.saturating_mul(GIB);
        control.progress.set_total(length);
        let base_spec = format!("{}/{}", prepared.container, prepared.base);
        let parent = match &prepared.parent_id {
            None => None,
            Some(parent_id) => Some(
                self.backup_snap(&self.access, &base_spec, parent_id)
                    .await?
                    .ok_or_else(|| {
                        BackupError::InvalidBackup(format!(
                            "Can't find snapshot from parent {parent_id} and base name image {}.",
                            prepared.base
                        ))
                    })?,
            ),
        };
        let created_base = parent.is_none();
        if created_base {
            self.create_base(&base_spec, length).await?;
        }
        let snap = naming::new_snap(&request.backup_id, jiff::Timestamp::now());
        let result = async {
            match source {
                VolumeData::Rbd(volume) => {
                    self.backup_rbd(volume, &base_spec, &snap, parent.as_ref(), length, control)
                        .await?;
                }
                VolumeData::Local(path) => {
                    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
                    self.backup_stream(
                        &mut file,
                        &base_spec,
                        &snap,
                        parent.as_ref(),
                        length,
                        control,
                    )
                    .await?;
                }
            }
            if let Some(meta) = &request.volume_meta {
                self.put_meta(&prepared.container, &request.backup_id, meta)
                    .await?;
            }
            Ok::<(), BackupError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(backup_id = %request.backup_id, error = %e, "ceph backup failed; removing what it wrote");
            let record = BackupRecord {
                id: request.backup_id.clone(),
                container: prepared.container.clone(),
                service_metadata: prepared.service_metadata.clone(),
            };
            if let Err(cleanup) = self.delete_backup(&record, &request.volume_id).await {
                tracing::warn!(backup_id = %request.backup_id, error = %cleanup, "cannot remove the failed backup's snapshot or image");
            }
            if control.cancel.is_cancelled() {
                return Err(BackupError::BackupCancelled {
                    backup_id: request.backup_id.clone(),
                });
            }
            return Err(e);
        }
        Ok(())
    }

    /// Cinder's `_create_base_image`: layering, exclusive-lock, object-map
    /// and fast-diff (journaling with `backup_ceph_image_journals`),
    /// striped as configured. A leftover of an interrupted attempt of the
    /// same backup (no snapshot yet) is replaced.
    async fn create_base(&self, spec: &str, length: u64) -> Result<(), BackupError> {
        let size = format!("{}M", length >> 20);
        let mut features = "layering,exclusive-lock,object-map,fast-diff".to_owned();
        if self.options.image_journals {
            features.push_str(",journaling");
        }
        let (unit, count) = (
            self.options.stripe_unit.to_string(),
            self.options.stripe_count.to_string(),
        );
        let mut args = vec![
            "create",
            "--no-progress",
            "--size",
            &size,
            "--image-format",
            "2",
            "--image-feature",
            &features,
        ];
        if self.options.stripe_unit > 0 {
            args.extend(["--stripe-unit", &unit]);
        }
        if self.options.stripe_count > 0 {
            args.extend(["--stripe-count", &count]);
        }
        args.push(spec);
        let cmd = Cli::rbd(&self.access, &args);
        match self.run(&cmd, false).await {
            Ok(_) => Ok(()),
            Err(BackupError::Rbd {
                failure: RbdFailure::Exists,
                ..
            }) if self.snapshots(&self.access, spec).await?.is_empty() => {
                tracing::info!(image = %spec, "base image left by an interrupted attempt; creating it again");
                self.run(
                    &Cli::rbd(&self.access, &["rm", "--no-progress", spec]),
                    false,
                )
                .await?;
                self.run(&cmd, false).await.map(drop)
            }
            Err(e) => Err(e),
        }
    }

    /// An RBD volume: snapshot it, then move the diff since the parent's
    /// snapshot (or everything) into the base image.
    async fn backup_rbd(
        &self,
        volume: &RbdVolume,
        base_spec: &str,
        snap: &str,
        parent: Option<&SnapInfo>,
        length: u64,
        control: &Control,
    ) -> Result<(), BackupError> {
        let source = volume.spec();
        let source_snap = format!("{source}@{snap}");
        self.run(
            &Cli::rbd(
                &volume.access,
                &["snap", "create", "--no-progress", &source_snap],
            ),
            false,
        )
        .await?;
        let moved = async {
            // export-diff --from-snap needs the parent's snapshot on the
            // source too; without it (pruned, or the parent was made from
            // a temporary volume) the blocks are compared instead.
            let from = match parent {
                Some(p) => {
                    let kept = self
                        .snapshots(&volume.access, &source)
                        .await?
                        .iter()
                        .any(|s| s.name == p.name);
                    if !kept {
                        tracing::info!(volume = %source, snapshot = %p.name, "the parent's snapshot is gone from the volume; comparing blocks");
                        let (mut export, what) = self
                            .cli
                            .reading(&Cli::rbd_stream(
                                &volume.access,
                                &["export", "--no-progress", &source_snap, "-"],
                            ))
                            .await?;
                        let streamed = self
                            .backup_stream(export.stdout(), base_spec, snap, parent, length, control)
                            .await;
                        let exited = Cli::check(&what, export.finish().await);
                        return streamed.and(exited);
                    }
                    Some(p.name.as_str())
                }
                None => None,
            };
            let mut args = vec!["export-diff", "--no-progress"];
            if let Some(from) = from {
                args.extend(["--from-snap", from]);
            }
            args.extend([source_snap.as_str(), "-"]);
            let export = Cli::rbd_stream(&volume.access, &args);
            let import = Cli::rbd_stream(&self.access, &["import-diff", "--no-progress", "-", base_spec]);
            self.pipe(&export, &import, control).await?;
            control.progress.add(length, 0);
            Ok::<(), BackupError>(())
        }
        .await;
        if let Err(e) = moved {
            let rm = Cli::rbd(
                &volume.access,
                &["snap", "rm", "--no-progress", &source_snap],
            );
            if let Err(rm) = self.run(&rm, false).await {
                tracing::warn!(snapshot = %source_snap, error = %rm, "cannot remove the source snapshot of a failed backup");
            }
            return Err(e);
        }
        self.prune_source_snapshots(volume).await;
        Ok(())
    }

    /// `backup_ceph_max_snapshots`: only the newest N backup snapshots stay
    /// on the source volume (best effort, as in Cinder).
    async fn prune_source_snapshots(&self, volume: &RbdVolume) {
        let keep = self.options.max_snapshots as usize;
        if keep == 0 {
            return;
        }
        let source = volume.spec();
        let snaps = match self.snapshots(&volume.access, &source).await {
            Ok(snaps) => snaps,
            Err(e) => {
                tracing::warn!(volume = %source, error = %e, "cannot list the volume's backup snapshots");
                return;
            }
        };
        // `rbd snap ls` lists in creation order.
        let backups: Vec<&SnapInfo> = snaps
            .iter()
            .filter(|s| naming::snap_backup_id(&s.name).is_some())
            .collect();
        for old in backups.iter().take(backups.len().saturating_sub(keep)) {
            let spec = format!("{source}@{}", old.name);
            if let Err(e) = self
                .run(
                    &Cli::rbd(&volume.access, &["snap", "rm", "--no-progress", &spec]),
                    false,
                )
                .await
            {
                tracing::warn!(snapshot = %spec, error = %e, "cannot remove an old backup snapshot");
            }
        }
    }

    /// Data read here (a local volume, or an RBD volume whose parent
    /// snapshot is gone) written as a diff stream into the base image.
    async fn backup_stream<R>(
        &self,
        source: &mut R,
        base_spec: &str,
        snap: &str,
        parent: Option<&SnapInfo>,
        length: u64,
        control: &Control,
    ) -> Result<(), BackupError>
    where
        R: AsyncRead + Unpin + Send + ?Sized,
    {
        let mut parent_export = match parent {
            Some(p) => Some(
                self.cli
                    .reading(&Cli::rbd_stream(
                        &self.access,
                        &[
                            "export",
                            "--no-progress",
                            &format!("{base_spec}@{}", p.name),
                            "-",
                        ],
                    ))
                    .await?,
            ),
            None => None,
        };
        let import = Cli::rbd_stream(
            &self.access,
            &["import-diff", "--no-progress", "-", base_spec],
        );
        let (mut importer, import_what) = self.cli.piped(&import).await?;
        let written = async {
            let baseline = match (&mut parent_export, parent) {
                (Some((export, _)), Some(p)) => Baseline::Stream {
                    reader: export.stdout(),
                    len: p.size,
                },
                _ => Baseline::Empty,
            };
            let mut out = DiffWriter::begin(
                importer.stdin(),
                parent.map(|p| p.name.as_str()),
                Some(snap),
                length,
            )
            .await?;
            copy_blocks(source, baseline, length, self.block, &mut out, |n| {
                control.progress.add(n, 0);
                if control.cancel.is_cancelled() {
                    return Err(std::io::Error::other("cancelled"));
                }
                Ok(())
            })
            .await?;
            out.end().await?;
            Ok::<(), std::io::Error>(())
        }
        .await;
        if control.cancel.is_cancelled() {
            // import-diff must not create the snapshot of a cut stream:
            // the stream ends without its `e` record, which it refuses.
            drop(importer);
            return Err(interrupted());
        }
        let imported = Cli::check(&import_what, importer.finish().await);
        if let Some((export, what)) = parent_export {
            let exported = Cli::check(&what, export.finish().await);
            written.map_err(io)?;
            imported?;
            // All of the parent was read: an exit on a signal after that
            // is Ceph 16's librados abort at exit, not lost data.
            if let Err(e) = exported {
                tracing::warn!(error = %e, "rbd export of the parent backup exited badly after its data");
            }
            return Ok(());
        }
        written.map_err(io)?;
        imported
    }

    /// `export | import` between two processes.
    async fn pipe(&self, export: &Cmd, import: &Cmd, control: &Control) -> Result<(), BackupError> {
        let (mut exporter, export_what) = self.cli.reading(export).await?;
        let (mut importer, import_what) = self.cli.piped(import).await?;
        let copied = tokio::select! {
            copied = tokio::io::copy(exporter.stdout(), importer.stdin()) => copied,
            () = control.cancel.cancelled() => Err(std::io::Error::other("cancelled")),
        };
        if control.cancel.is_cancelled() {
            drop(importer);
            drop(exporter);
            return Err(interrupted());
        }
        // The importer's verdict first: it saw the whole stream or not.
        let imported = Cli::check(&import_what, importer.finish().await);
        let exported = Cli::check(&export_what, exporter.finish().await);
        imported?;
        copied.map_err(io)?;
        if let Err(e) = exported {
            // import-diff accepted a complete stream (it ends with `e`).
            tracing::warn!(error = %e, "the exporting rbd exited badly after a complete stream");
        }
        Ok(())
    }

    async fn put_meta(&self, pool: &str, backup_id: &str, meta: &str) -> Result<(), BackupError> {
        let object = naming::meta_object(backup_id);
        let cmd = Cli::rados(&self.access, pool, &["put", &object, "-"]);
        let (mut child, what) = self.cli.piped(&cmd).await?;
        child.stdin().write_all(meta.as_bytes()).await.map_err(io)?;
        Cli::check(&what, child.finish().await)
    }

    async fn get_meta(&self, pool: &str, backup_id: &str) -> Result<Option<String>, BackupError> {
        let object = naming::meta_object(backup_id);
        match self
            .run(
                &Cli::rados(&self.access, pool, &["get", &object, "-"]),
                true,
            )
            .await
        {
            Ok(meta) => Ok(Some(meta)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
