//! The file driver: each volume is a sparse raw file `volume-<uuid>` in the
//! backend's directory; snapshots are files `snapshot-<uuid>` beside them.
//!
//! Snapshots and clones are made with `cp --reflink=<mode> --sparse=always`
//! (a reflink where the filesystem supports it, otherwise a copy that keeps
//! holes) into a temporary name that is renamed into place, so a crash never
//! leaves a half-copied file under a volume's name. The driver refuses any
//! name that is not one of its own, so it never touches a path outside its
//! directory.
//!
//! Exports are local (`driver_volume_type: local`, the file's path) unless
//! the backend sets `target_helper`: then the file is the backing store of
//! an iSCSI target (tgtd, LIO fileio, or the fake helper) and the driver
//! answers with the helper's `provider_location`, CHAP credentials and
//! iSCSI `connection_info`, like the LVM driver.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clinker_config::{BackendConfig, FileDriverOptions, OverSubscription, ReflinkMode};
use clinker_exec::{Command, CommandRunner};
use clinker_types::connection::{ConnectionInfo, Connector};
use serde_json::{Map, Value, json};

use crate::manage::{ManageRef, ManageableObject, ceil_gib, id_in_name};
use crate::targets::{ReconcileReport, TargetHelper, WantedExport, connector_initiator};
use crate::{
    DriverError, GIB, LocalDevice, ModelUpdate, SnapshotSpec, VolumeDriver, VolumeSpec, gib,
};

/// Prefix of temporary copies, swept at start-up.
const TEMP_PREFIX: &str = ".tmp-";

/// The file driver.
#[derive(Debug)]
pub struct FileDriver {
    dir: PathBuf,
    options: FileDriverOptions,
    backend_name: String,
    reserved_percentage: u8,
    max_over_subscription_ratio: OverSubscription,
    runner: Arc<dyn CommandRunner>,
    target: Option<Arc<dyn TargetHelper>>,
}

/// Whether `name` is one of the driver's own object names:
/// `volume-<uuid>` or `snapshot-<uuid>` (lowercase hex and hyphens).
fn is_own_name(name: &str) -> bool {
    let uuid_part = name
        .strip_prefix("volume-")
        .or_else(|| name.strip_prefix("snapshot-"));
    match uuid_part {
        Some(u) => u.len() == 36 && u.chars().all(|c| c.is_ascii_hexdigit() || c == '-'),
        None => false,
    }
}

/// Whether `name` may name an existing file to manage: a plain name in
/// the volumes directory (no path separator, not hidden, so neither the
/// driver's temporary copies nor its probe), like an LV name in a VG.
fn is_manageable_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
}

/// Which kind of object a manage request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Managed {
    Volume,
    Snapshot,
}

impl Managed {
    fn prefix(self) -> &'static str {
        match self {
            Managed::Volume => "volume-",
            Managed::Snapshot => "snapshot-",
        }
    }
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> DriverError {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            DriverError::NotFound(format!("{what} {}: not found", path.display()))
        }
        std::io::ErrorKind::StorageFull => {
            DriverError::NoSpace(format!("{what} {}: no space left", path.display()))
        }
        std::io::ErrorKind::PermissionDenied => {
            DriverError::Unavailable(format!("{what} {}: permission denied", path.display()))
        }
        _ => DriverError::Backend(format!("{what} {}: {e}", path.display())),
    }
}

fn size_bytes(size_gb: i64) -> Result<u64, DriverError> {
    u64::try_from(size_gb)
        .ok()
        .and_then(|g| g.checked_mul(GIB))
        .ok_or_else(|| DriverError::InvalidInput(format!("invalid size {size_gb} GiB")))
}

impl FileDriver {
    /// A driver for one backend section.
    pub fn new(
        backend: &BackendConfig,
        options: FileDriverOptions,
        runner: Arc<dyn CommandRunner>,
    ) -> Self {
        Self {
            dir: options.volumes_dir.clone(),
            options,
            backend_name: backend.volume_backend_name.clone(),
            reserved_percentage: backend.reserved_percentage,
            max_over_subscription_ratio: backend.max_over_subscription_ratio,
            runner,
            target: None,
        }
    }

    /// Exports volumes through `target` instead of locally.
    #[must_use]
    pub fn with_target(mut self, target: Option<Arc<dyn TargetHelper>>) -> Self {
        self.target = target;
        self
    }

    /// The directory holding the volume files.
    pub fn volumes_dir(&self) -> &Path {
        &self.dir
    }

    /// The path of one of the driver's objects; refuses any other name.
    ///
    /// # Errors
    /// [`DriverError::InvalidInput`] for a foreign name.
    pub fn path_of(&self, name: &str) -> Result<PathBuf, DriverError> {
        if !is_own_name(name) {
            return Err(DriverError::InvalidInput(format!(
                "refusing object name {name:?}"
            )));
        }
        Ok(self.dir.join(name))
    }

    async fn blocking<T, F>(f: F) -> Result<T, DriverError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, DriverError> + Send + 'static,
    {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| DriverError::Backend(format!("file operation panicked: {e}")))?
    }

    /// Creates or grows a sparse file to `bytes` (never shrinks).
    async fn allocate(path: PathBuf, bytes: u64) -> Result<(), DriverError> {
        Self::blocking(move || {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| io_error("create", &path, &e))?;
            let current = file
                .metadata()
                .map_err(|e| io_error("stat", &path, &e))?
                .len();
            if current < bytes {
                file.set_len(bytes)
                    .map_err(|e| io_error("resize", &path, &e))?;
            }
            Ok(())
        })
        .await
    }

    /// Copies `src` to `dst` through a temporary name, keeping holes and
    /// sharing extents where the filesystem can.
    async fn copy(&self, src: &Path, dst: &Path) -> Result<(), DriverError> {
        let Some(file_name) = dst.file_name().and_then(|n| n.to_str()) else {
            return Err(DriverError::InvalidInput(format!(
                "bad destination {}",
                dst.display()
            )));
        };
        let temp = self.dir.join(format!("{TEMP_PREFIX}{file_name}"));
        let reflink = match self.options.reflink {
            ReflinkMode::Auto => "--reflink=auto",
            ReflinkMode::Always => "--reflink=always",
            ReflinkMode::Never => "--reflink=never",
        };
        let src_text = src.display().to_string();
        let temp_text = temp.display().to_string();
        let cmd = Command::new("cp").args([
            reflink,
            "--sparse=always",
            "--",
            src_text.as_str(),
            temp_text.as_str(),
        ]);
        let out = self.runner.run(&cmd).await?;
        if !out.success() {
            let _ = tokio::fs::remove_file(&temp).await;
            let stderr = out.stderr.trim().to_owned();
            return Err(if stderr.contains("No such file") {
                DriverError::NotFound(format!("copy source {} is missing", src.display()))
            } else if stderr.contains("No space") {
                DriverError::NoSpace(format!("copy to {}: {stderr}", dst.display()))
            } else {
                DriverError::Backend(format!(
                    "copy {} to {}: {stderr}",
                    src.display(),
                    dst.display()
                ))
            });
        }
        tokio::fs::rename(&temp, dst)
            .await
            .map_err(|e| io_error("rename", dst, &e))
    }

    async fn remove(path: PathBuf) -> Result<(), DriverError> {
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("remove", &path, &e)),
        }
    }

    /// What a create stores: the file's path for local exports. With a
    /// target helper `provider_location` is the export's, set by
    /// `create_export`.
    fn local_update(&self, name: &str) -> Result<ModelUpdate, DriverError> {
        let path = self.path_of(name)?;
        if self.target.is_some() {
            return Ok(ModelUpdate::default());
        }
        Ok(ModelUpdate {
            provider_location: Some(path.display().to_string()),
            ..ModelUpdate::default()
        })
    }

    async fn require_file(&self, name: &str) -> Result<std::path::PathBuf, DriverError> {
        let path = self.path_of(name)?;
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            Ok(path)
        } else {
            Err(DriverError::NotFound(format!(
                "volume file {} is missing",
                path.display()
            )))
        }
    }

    /// The file a manage reference names: `source-name` is a file name in
    /// the volumes directory, `source-id` the id of a file named like one
    /// of the driver's own (`volume-<id>` / `snapshot-<id>`).
    fn referenced_path(
        &self,
        reference: &ManageRef,
        kind: Managed,
    ) -> Result<PathBuf, DriverError> {
        let name = match (reference.source_name(), reference.source_id()) {
            (Some(name), _) => name.to_owned(),
            (None, Some(id)) => format!("{}{id}", kind.prefix()),
            (None, None) => {
                return Err(
                    reference.invalid("Reference must contain source-id or source-name element.")
                );
            }
        };
        if !is_manageable_name(&name) {
            return Err(reference.invalid("Specified file name is not a file of this backend."));
        }
        Ok(self.dir.join(name))
    }

    /// The size of the referenced file, which must be a regular file.
    async fn referenced_size(
        &self,
        reference: &ManageRef,
        kind: Managed,
    ) -> Result<(PathBuf, i64), DriverError> {
        let path = self.referenced_path(reference, kind)?;
        let meta = match tokio::fs::symlink_metadata(&path).await {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(reference.invalid("Specified file does not exist."));
            }
            Err(e) => return Err(io_error("stat", &path, &e)),
        };
        if !meta.file_type().is_file() {
            return Err(reference.invalid("Specified file is not a regular file."));
        }
        Ok((path, ceil_gib(meta.len())))
    }

    /// Renames the referenced file to `target` (one of the driver's own
    /// names), refusing to replace an existing file, and grows it to whole
    /// GiB: afterwards it is indistinguishable from a file this driver
    /// created. Managing a file already under its target name renames
    /// nothing.
    async fn take_over(
        &self,
        reference: &ManageRef,
        kind: Managed,
        target: &str,
        size_gb: i64,
    ) -> Result<(), DriverError> {
        let (source, _) = self.referenced_size(reference, kind).await?;
        let target_path = self.path_of(target)?;
        if source != target_path {
            if tokio::fs::try_exists(&target_path).await.unwrap_or(true) {
                return Err(DriverError::AlreadyExists(format!(
                    "{} already exists",
                    target_path.display()
                )));
            }
            tokio::fs::rename(&source, &target_path)
                .await
                .map_err(|e| io_error("rename", &source, &e))?;
        }
        Self::allocate(target_path, size_bytes(size_gb)?).await
    }

    /// The regular files of the directory that could be managed as `kind`.
    async fn manageable(
        &self,
        kind: Managed,
        managed_ids: &std::collections::HashSet<String>,
    ) -> Result<Vec<ManageableObject>, DriverError> {
        let mut found = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.dir)
            .await
            .map_err(|e| io_error("list", &self.dir, &e))?;
        while let Ok(Some(entry)) = entries.next_entry().await {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let is_snapshot = name.starts_with(Managed::Snapshot.prefix());
            if !is_manageable_name(&name) || is_snapshot != (kind == Managed::Snapshot) {
                continue;
            }
            let Ok(meta) = tokio::fs::symlink_metadata(entry.path()).await else {
                continue;
            };
            if !meta.file_type().is_file() {
                continue;
            }
            let id = id_in_name(&name, kind.prefix());
            found.push(ManageableObject::named(
                &name,
                ceil_gib(meta.len()),
                id,
                managed_ids,
            ));
        }
        Ok(found)
    }

    /// Sum of the apparent sizes of the volume and snapshot files.
    async fn provisioned_bytes(&self) -> Result<(u64, usize), DriverError> {
        let dir = self.dir.clone();
        Self::blocking(move || {
            let mut total = 0u64;
            let mut volumes = 0usize;
            let entries = std::fs::read_dir(&dir).map_err(|e| io_error("list", &dir, &e))?;
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if !is_own_name(name) {
                    continue;
                }
                if name.starts_with("volume-") {
                    volumes += 1;
                }
                if let Ok(meta) = entry.metadata() {
                    total = total.saturating_add(meta.len());
                }
            }
            Ok((total, volumes))
        })
        .await
    }
}

#[async_trait::async_trait]
impl VolumeDriver for FileDriver {
    fn driver_name(&self) -> &'static str {
        "file"
    }

    async fn do_setup(&self) -> Result<(), DriverError> {
        if let Some(target) = &self.target {
            target.do_setup().await?;
        }
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| io_error("create directory", &self.dir, &e))?;
        // Sweep temporary copies a crash may have left behind.
        let mut entries = tokio::fs::read_dir(&self.dir)
            .await
            .map_err(|e| io_error("list", &self.dir, &e))?;
        while let Ok(Some(entry)) = entries.next_entry().await {
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(TEMP_PREFIX))
            {
                tracing::info!(path = %entry.path().display(), "removing interrupted copy");
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
        Ok(())
    }

    async fn check_for_setup_error(&self) -> Result<(), DriverError> {
        let probe = self.dir.join(".clinker-probe");
        tokio::fs::write(&probe, b"ok").await.map_err(|e| {
            DriverError::Unavailable(format!(
                "volumes directory {} is not writable: {e}",
                self.dir.display()
            ))
        })?;
        let _ = tokio::fs::remove_file(&probe).await;
        match &self.target {
            Some(target) => target.check_for_setup_error().await,
            None => Ok(()),
        }
    }

    async fn get_volume_stats(&self) -> Result<Map<String, Value>, DriverError> {
        let dir = self.dir.clone();
        let fs = Self::blocking(move || {
            nix::sys::statvfs::statvfs(&dir)
                .map_err(|e| DriverError::Unavailable(format!("statvfs {}: {e}", dir.display())))
                .map(|s| {
                    let frag = s.fragment_size();
                    (
                        s.blocks().saturating_mul(frag),
                        s.blocks_available().saturating_mul(frag),
                    )
                })
        })
        .await?;
        let (provisioned, volume_count) = self.provisioned_bytes().await?;
        let (fs_total, fs_free) = fs;
        let fixed_capacity = self.options.capacity_gb > 0.0;
        // A fixed capacity is a thick pool: what is provisioned is used. The
        // filesystem's size is a thin pool over sparse files.
        let (total_gb, free_gb) = if fixed_capacity {
            let provisioned_gb = gib(provisioned);
            (
                self.options.capacity_gb,
                (self.options.capacity_gb - provisioned_gb).max(0.0),
            )
        } else {
            (gib(fs_total), gib(fs_free))
        };
        let mosr = match self.max_over_subscription_ratio {
            OverSubscription::Ratio(r) => r,
            // `auto`: provisioned over used, at least 1 (Cinder's formula
            // without the +1 offset).
            OverSubscription::Auto => {
                let used = fs_total.saturating_sub(fs_free).max(1);
                #[allow(clippy::cast_precision_loss)]
                let ratio = provisioned as f64 / used as f64;
                ratio.max(1.0)
            }
        };
        let pool = json!({
            "pool_name": self.backend_name,
            "total_capacity_gb": total_gb,
            "free_capacity_gb": free_gb,
            "reserved_percentage": self.reserved_percentage,
            "provisioned_capacity_gb": gib(provisioned),
            "max_over_subscription_ratio": mosr,
            "thin_provisioning_support": !fixed_capacity,
            "thick_provisioning_support": fixed_capacity,
            "total_volumes": volume_count,
            "multiattach": true,
            "QoS_support": false,
            "location_info": format!("FileDriver:{}", self.dir.display()),
            "backend_state": "up",
        });
        let mut report = Map::new();
        report.insert("volume_backend_name".into(), json!(self.backend_name));
        report.insert("vendor_name".into(), json!("Open Source"));
        report.insert("driver_version".into(), json!(env!("CARGO_PKG_VERSION")));
        let protocol = self
            .target
            .as_ref()
            .map_or("local", |t| t.storage_protocol());
        report.insert("storage_protocol".into(), json!(protocol));
        report.insert("sparse_copy_volume".into(), json!(true));
        report.insert("online_extend_support".into(), json!(true));
        report.insert("pools".into(), json!([pool]));
        Ok(report)
    }

    async fn create_volume(&self, volume: &VolumeSpec) -> Result<ModelUpdate, DriverError> {
        let path = self.path_of(&volume.name)?;
        Self::allocate(path, size_bytes(volume.size_gb)?).await?;
        self.local_update(&volume.name)
    }

    async fn create_volume_from_snapshot(
        &self,
        volume: &VolumeSpec,
        snapshot: &SnapshotSpec,
    ) -> Result<ModelUpdate, DriverError> {
        let src = self.path_of(&snapshot.name)?;
        let dst = self.path_of(&volume.name)?;
        self.copy(&src, &dst).await?;
        Self::allocate(dst, size_bytes(volume.size_gb)?).await?;
        self.local_update(&volume.name)
    }

    async fn create_cloned_volume(
        &self,
        volume: &VolumeSpec,
        source: &VolumeSpec,
    ) -> Result<ModelUpdate, DriverError> {
        let src = self.path_of(&source.name)?;
        let dst = self.path_of(&volume.name)?;
        self.copy(&src, &dst).await?;
        Self::allocate(dst, size_bytes(volume.size_gb)?).await?;
        self.local_update(&volume.name)
    }

    async fn delete_volume(&self, volume: &VolumeSpec) -> Result<(), DriverError> {
        Self::remove(self.path_of(&volume.name)?).await
    }

    async fn extend_volume(
        &self,
        volume: &VolumeSpec,
        new_size_gb: i64,
    ) -> Result<(), DriverError> {
        let path = self.require_file(&volume.name).await?;
        Self::allocate(path, size_bytes(new_size_gb)?).await?;
        if let Some(target) = &self.target {
            target.extend_target(volume).await?;
        }
        Ok(())
    }

    async fn create_snapshot(&self, snapshot: &SnapshotSpec) -> Result<ModelUpdate, DriverError> {
        let src = self.path_of(&snapshot.volume.name)?;
        let dst = self.path_of(&snapshot.name)?;
        self.copy(&src, &dst).await?;
        self.local_update(&snapshot.name)
    }

    async fn delete_snapshot(&self, snapshot: &SnapshotSpec) -> Result<(), DriverError> {
        Self::remove(self.path_of(&snapshot.name)?).await
    }

    /// Copies the snapshot file back over the volume file (through the
    /// command runner, like every copy), via a temporary name renamed into
    /// place: a crash leaves either the old data or the snapshot's, never a
    /// mix. Cinder's generic revert copies from a temporary volume made
    /// from the snapshot; for files the snapshot file is that volume.
    async fn revert_to_snapshot(
        &self,
        volume: &VolumeSpec,
        snapshot: &SnapshotSpec,
    ) -> Result<(), DriverError> {
        let src = self.path_of(&snapshot.name)?;
        let dst = self.require_file(&volume.name).await?;
        self.copy(&src, &dst).await?;
        Self::allocate(dst, size_bytes(volume.size_gb)?).await
    }

    /// Renames the temporary volume's file to the migrated volume's name
    /// with a hard link and an unlink: `link(2)` refuses to replace an
    /// existing name, so a file of that name that is not the renamed one
    /// is never overwritten, and a crash between the two leaves both names
    /// on the same data (the second run removes the temporary one).
    async fn update_migrated_volume(
        &self,
        volume: &VolumeSpec,
        new_volume: &VolumeSpec,
    ) -> Result<ModelUpdate, DriverError> {
        let from = self.path_of(&new_volume.name)?;
        let to = self.path_of(&volume.name)?;
        Self::blocking(move || {
            use std::os::unix::fs::MetadataExt;
            let source = match std::fs::metadata(&from) {
                Ok(m) => Some(m),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_error("stat", &from, &e)),
            };
            let existing = match std::fs::metadata(&to) {
                Ok(m) => Some(m),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_error("stat", &to, &e)),
            };
            match (source, existing) {
                (None, Some(_)) => Ok(()),
                (None, None) => Err(DriverError::NotFound(format!(
                    "neither {} nor {} exists",
                    from.display(),
                    to.display()
                ))),
                (Some(s), Some(e)) if (s.dev(), s.ino()) == (e.dev(), e.ino()) => {
                    std::fs::remove_file(&from).map_err(|e| io_error("remove", &from, &e))
                }
                (Some(_), Some(_)) => Err(DriverError::AlreadyExists(format!(
                    "{} already exists; refusing to replace it",
                    to.display()
                ))),
                (Some(_), None) => {
                    std::fs::hard_link(&from, &to).map_err(|e| match e.kind() {
                        std::io::ErrorKind::AlreadyExists => DriverError::AlreadyExists(format!(
                            "{} already exists; refusing to replace it",
                            to.display()
                        )),
                        _ => io_error("link", &to, &e),
                    })?;
                    std::fs::remove_file(&from).map_err(|e| io_error("remove", &from, &e))
                }
            }
        })
        .await?;
        self.local_update(&volume.name)
    }

    async fn create_export(
        &self,
        volume: &VolumeSpec,
        _connector: &Connector,
    ) -> Result<ModelUpdate, DriverError> {
        let path = self.require_file(&volume.name).await?;
        match &self.target {
            Some(target) => target.create_export(volume, &path).await,
            None => Ok(ModelUpdate::default()),
        }
    }

    async fn ensure_export(&self, volume: &VolumeSpec) -> Result<(), DriverError> {
        let path = self.require_file(&volume.name).await?;
        match &self.target {
            Some(target) => target.ensure_export(volume, &path).await,
            None => Ok(()),
        }
    }

    async fn remove_export(&self, volume: &VolumeSpec) -> Result<(), DriverError> {
        match &self.target {
            Some(target) => target.remove_export(volume).await,
            None => Ok(()),
        }
    }

    async fn initialize_connection(
        &self,
        volume: &VolumeSpec,
        connector: &Connector,
    ) -> Result<ConnectionInfo, DriverError> {
        if let Some(target) = &self.target {
            return target.initialize_connection(volume, connector).await;
        }
        let path = self.path_of(&volume.name)?;
        let mut data = Map::new();
        data.insert("device_path".into(), json!(path.display().to_string()));
        Ok(ConnectionInfo {
            driver_volume_type: "local".into(),
            data,
        })
    }

    async fn terminate_connection(
        &self,
        volume: &VolumeSpec,
        connector: Option<&Connector>,
    ) -> Result<(), DriverError> {
        match &self.target {
            Some(target) => target.terminate_connection(volume, connector).await,
            None => Ok(()),
        }
    }

    async fn local_device(&self, volume: &VolumeSpec) -> Result<Option<LocalDevice>, DriverError> {
        Ok(Some(LocalDevice {
            path: self.path_of(&volume.name)?,
            new_reads_as_zero: true,
        }))
    }

    /// Sparse files give discarded blocks back to the filesystem (and tgt
    /// passes UNMAP through to its file backing store).
    fn report_discard_supported(&self) -> bool {
        true
    }

    fn validate_connector(&self, connector: &Connector) -> Result<(), DriverError> {
        match &self.target {
            Some(_) => connector_initiator(connector).map(|_| ()),
            None => Ok(()),
        }
    }

    async fn reconcile_exports(
        &self,
        exported: &[VolumeSpec],
    ) -> Result<Option<ReconcileReport>, DriverError> {
        let Some(target) = &self.target else {
            return Ok(None);
        };
        let mut wanted = Vec::with_capacity(exported.len());
        for volume in exported {
            wanted.push(WantedExport {
                volume: volume.clone(),
                path: self.path_of(&volume.name)?,
            });
        }
        target.reconcile_targets(&wanted, &self.dir).await.map(Some)
    }

    async fn manage_existing_get_size(
        &self,
        _volume: &VolumeSpec,
        reference: &ManageRef,
    ) -> Result<i64, DriverError> {
        Ok(self.referenced_size(reference, Managed::Volume).await?.1)
    }

    /// Renames the file to `volume-<id>` (Cinder's LVM driver renames the
    /// LV the same way) and grows it to the volume's whole GiB.
    async fn manage_existing(
        &self,
        volume: &VolumeSpec,
        reference: &ManageRef,
    ) -> Result<ModelUpdate, DriverError> {
        self.take_over(reference, Managed::Volume, &volume.name, volume.size_gb)
            .await?;
        self.local_update(&volume.name)
    }

    async fn manage_existing_snapshot_get_size(
        &self,
        _snapshot: &SnapshotSpec,
        reference: &ManageRef,
    ) -> Result<i64, DriverError> {
        Ok(self.referenced_size(reference, Managed::Snapshot).await?.1)
    }

    async fn manage_existing_snapshot(
        &self,
        snapshot: &SnapshotSpec,
        reference: &ManageRef,
    ) -> Result<ModelUpdate, DriverError> {
        self.take_over(
            reference,
            Managed::Snapshot,
            &snapshot.name,
            snapshot.size_gb,
        )
        .await?;
        self.local_update(&snapshot.name)
    }

    async fn get_manageable_volumes(
        &self,
        managed_ids: &std::collections::HashSet<String>,
    ) -> Result<Vec<ManageableObject>, DriverError> {
        self.manageable(Managed::Volume, managed_ids).await
    }

    async fn get_manageable_snapshots(
        &self,
        managed_ids: &std::collections::HashSet<String>,
    ) -> Result<Vec<ManageableObject>, DriverError> {
        self.manageable(Managed::Snapshot, managed_ids).await
    }

    async fn list_volume_names(&self) -> Result<Option<Vec<String>>, DriverError> {
        let mut names = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.dir)
            .await
            .map_err(|e| io_error("list", &self.dir, &e))?;
        while let Ok(Some(entry)) = entries.next_entry().await {
            if let Some(name) = entry.file_name().to_str()
                && is_own_name(name)
            {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(Some(names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_its_own_names() {
        assert!(is_own_name("volume-4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1"));
        assert!(is_own_name("snapshot-4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1"));
        assert!(!is_own_name("volume-../../etc/passwd-0000000000000000000"));
        assert!(!is_own_name(
            "volume-4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1/x"
        ));
        assert!(!is_own_name(
            ".tmp-volume-4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1"
        ));
        assert!(!is_own_name("clinker.sqlite"));
    }

    #[test]
    fn manages_only_plain_names() {
        assert!(is_manageable_name(
            "volume-4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1"
        ));
        assert!(is_manageable_name("legacy disk.img"));
        assert!(!is_manageable_name(""));
        assert!(!is_manageable_name("../etc/passwd"));
        assert!(!is_manageable_name("a/b"));
        assert!(!is_manageable_name(".tmp-volume-x"));
        assert!(!is_manageable_name(".clinker-probe"));
        assert!(!is_manageable_name(".."));
    }
}
