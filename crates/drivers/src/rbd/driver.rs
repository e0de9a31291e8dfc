//! What the RBD driver does with the cluster, operation by operation.
//!
//! Cinder behaviours kept, and where they come from in `rbd.py`:
//! * snapshots are created and protected (`create_snapshot`), so clones of
//!   them work with clone format v1 and v2 alike;
//! * a volume cloned from a volume goes through a temporary snapshot
//!   `<new volume>.clone_snap` of the source (`create_cloned_volume`);
//! * a new clone is flattened once the chain behind it would exceed
//!   `rbd_max_clone_depth` (and always with `rbd_flatten_volume_from_snapshot`
//!   for volumes from snapshots), with at most
//!   `rbd_concurrent_flatten_operations` flattens at a time;
//! * deleting a volume that still has clones of a `.clone_snap` renames it
//!   `<name>.deleted` instead: hidden from Cinder, kept for its clones, and
//!   really removed when its last clone goes (`_delete_volume`,
//!   `_delete_clone_parent_refs`);
//! * deleting a snapshot whose clones still depend on it flattens them first
//!   (`delete_snapshot`, since bug 1969643), so it is `Busy` only when they
//!   cannot be flattened;
//! * a volume whose removal fails because of snapshots Cinder no longer
//!   tracks has their clones flattened, and goes to the RBD trash if the
//!   snapshots remain (`_delete_volume`).
//!
//! Where Clinker differs: removing a clone always releases its parent's
//! `.clone_snap` (Cinder's "fast path" skips that, leaking the hidden
//! parent); a `.clone_snap` whose clone is gone no longer hides its volume;
//! the clone depth counts every parent link, so it also bounds volumes made
//! from snapshots; a cluster that is down makes the capacity report fail
//! (the backend reports `down`) rather than report `unknown` capacities.

use std::sync::Arc;

use clinker_config::{BackendConfig, OverSubscription, RbdDriverOptions};
use clinker_exec::CommandRunner;
use clinker_types::connection::{ConnectionInfo, Connector};
use serde_json::{Map, Value, json};
use tokio::sync::{OnceCell, Semaphore};

use super::capacity::{auto_over_subscription_ratio, pool_capacity, provisioned_gb};
use super::cli::{CephCli, CephCommand, Deadline, ImageSpec, SnapSpec};
use super::error::{CephError, CephErrorKind};
use super::json::{
    ChildInfo, ClusterDf, Fsid, ImageInfo, LongListEntry, MonMap, PoolQuota, SnapInfo, parse,
};
use super::lineage::clone_snap_name;
use crate::{
    DriverError, ImageLocations, ImageSink, ImageSource, ModelUpdate, SnapshotSpec, VolumeDriver,
    VolumeSpec,
};

const MIB: u64 = 1 << 20;

/// Whether `name` is `<prefix><uuid>` (lowercase hex and hyphens), the only
/// names the driver creates or touches.
pub(super) fn is_own_name(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix).is_some_and(|u| {
        u.len() == 36
            && u.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c) || c == '-')
    })
}

/// Whether `name` is a snapshot of the Ceph backup driver
/// (`backup.<backup id>.snap.<time>`).
fn is_backup_snapshot(name: &str) -> bool {
    name.strip_prefix("backup.")
        .and_then(|rest| rest.split_once(".snap."))
        .is_some_and(|(id, time)| {
            !id.is_empty()
                && !time.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

pub(super) fn size_mib(size_gb: i64) -> Result<u64, DriverError> {
    u64::try_from(size_gb)
        .ok()
        .filter(|gb| *gb > 0)
        .and_then(|gb| gb.checked_mul(1024))
        .ok_or_else(|| DriverError::InvalidInput(format!("invalid size {size_gb} GiB")))
}

/// The RBD driver for one backend.
#[derive(Debug)]
pub struct RbdDriver {
    pub(super) options: RbdDriverOptions,
    backend_name: String,
    reserved_percentage: u8,
    max_over_subscription_ratio: OverSubscription,
    pub(super) cli: CephCli,
    /// `None` when flattens are unlimited.
    pub(super) flatten_slots: Option<Arc<Semaphore>>,
    fsid: OnceCell<String>,
}

impl RbdDriver {
    /// A driver for one backend section.
    pub fn new(
        backend: &BackendConfig,
        options: RbdDriverOptions,
        runner: Arc<dyn CommandRunner>,
    ) -> Self {
        let flatten_slots = match options.concurrent_flatten_operations {
            0 => None,
            n => Some(Arc::new(Semaphore::new(
                usize::try_from(n).unwrap_or(usize::MAX),
            ))),
        };
        Self {
            cli: CephCli::new(&options, runner),
            options,
            backend_name: backend.volume_backend_name.clone(),
            reserved_percentage: backend.reserved_percentage,
            max_over_subscription_ratio: backend.max_over_subscription_ratio,
            flatten_slots,
            fsid: OnceCell::new(),
        }
    }

    /// The image of one of the driver's volumes; refuses any other name
    /// (it becomes a command-line argument).
    fn image(&self, volume_name: &str) -> Result<ImageSpec, DriverError> {
        if !is_own_name(volume_name, "volume-") {
            return Err(DriverError::InvalidInput(format!(
                "refusing volume name {volume_name:?}"
            )));
        }
        Ok(ImageSpec::new(&self.options.pool, volume_name))
    }

    /// The RBD snapshot of a Cinder snapshot.
    fn snapshot(&self, snapshot: &SnapshotSpec) -> Result<SnapSpec, DriverError> {
        if !is_own_name(&snapshot.name, "snapshot-") {
            return Err(DriverError::InvalidInput(format!(
                "refusing snapshot name {:?}",
                snapshot.name
            )));
        }
        Ok(self.image(&snapshot.volume.name)?.snap(&snapshot.name))
    }

    /// Runs one command through the backend's CLI.
    pub(super) async fn run(&self, cmd: CephCommand) -> Result<String, CephError> {
        self.cli.run(&cmd).await
    }

    /// `rbd info`; `None` when the image does not exist.
    pub(super) async fn info(&self, image: &ImageSpec) -> Result<Option<ImageInfo>, CephError> {
        let cmd = self.cli.info(image);
        match self.cli.run(&cmd).await {
            Ok(stdout) => parse(&cmd.what, &stdout).map(Some),
            Err(e) if e.kind == CephErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `rbd snap ls`.
    pub(super) async fn snapshots(&self, image: &ImageSpec) -> Result<Vec<SnapInfo>, CephError> {
        let cmd = self.cli.snap_ls(image);
        let stdout = self.cli.run(&cmd).await?;
        parse(&cmd.what, &stdout)
    }

    /// `rbd children --all` of a snapshot.
    pub(super) async fn children(&self, snap: &SnapSpec) -> Result<Vec<ChildInfo>, CephError> {
        let cmd = self.cli.children(snap);
        let stdout = self.cli.run(&cmd).await?;
        parse(&cmd.what, &stdout)
    }

    /// Grows an image to `size_gb`; refuses to shrink it.
    async fn resize(&self, image: &ImageSpec, size_gb: i64) -> Result<(), DriverError> {
        match self.run(self.cli.resize(image, size_mib(size_gb)?)).await {
            Ok(_) => Ok(()),
            // Already that size: a redelivered extend, or a clone of a
            // source whose size the request did not know.
            Err(e) if e.says("new size is equal to original size") => Ok(()),
            Err(e) if e.kind == CephErrorKind::InvalidArgument && e.says("shrinking") => Err(
                DriverError::InvalidInput(format!("{image} is larger than {size_gb} GiB: {e}")),
            ),
            Err(e) => Err(e.into()),
        }
    }

    /// The cluster's fsid (the default `rbd_secret_uuid`, and part of
    /// `location_info`), asked once.
    pub(super) async fn fsid(&self) -> Result<String, CephError> {
        self.fsid
            .get_or_try_init(|| async {
                let cmd = self.cli.fsid();
                let stdout = self.cli.run(&cmd).await?;
                parse::<Fsid>(&cmd.what, &stdout).map(|f| f.fsid)
            })
            .await
            .cloned()
    }

    /// The reason a failed setup check gives, naming what to fix.
    fn setup_failure(&self, e: &CephError) -> String {
        let user = self.options.user.as_deref().unwrap_or("admin");
        let pool = &self.options.pool;
        match e.kind {
            CephErrorKind::Unreachable | CephErrorKind::TimedOut => format!(
                "cannot reach ceph cluster {} as client.{user} (conf {}): {e}",
                self.options.cluster_name,
                self.options
                    .ceph_conf
                    .as_ref()
                    .map_or_else(|| "default".to_owned(), |c| c.display().to_string()),
            ),
            CephErrorKind::PermissionDenied => format!(
                "permission denied: client.{user} may not use pool {pool} (its caps should be \
                 mon 'profile rbd' osd 'profile rbd pool={pool}'): {e}"
            ),
            CephErrorKind::PoolMissing => format!(
                "pool {pool} does not exist in ceph cluster {}: {e}",
                self.options.cluster_name
            ),
            _ => e.to_string(),
        }
    }

    /// Cinder's `location_info`: `cluster:conf:fsid:user:pool`.
    fn location_info(&self, fsid: &str) -> String {
        format!(
            "{}:{}:{fsid}:{}:{}",
            self.options.cluster_name,
            self.options
                .ceph_conf
                .as_ref()
                .map(|c| c.display().to_string())
                .unwrap_or_default(),
            // Python's str(None), as Cinder formats an unset rbd_user.
            self.options.user.as_deref().unwrap_or("None"),
            self.options.pool
        )
    }
}

#[async_trait::async_trait]
impl VolumeDriver for RbdDriver {
    fn driver_name(&self) -> &'static str {
        "rbd"
    }

    async fn do_setup(&self) -> Result<(), DriverError> {
        // Nothing to prepare: every command connects on its own, and the
        // cluster is checked by check_for_setup_error.
        Ok(())
    }

    async fn check_for_setup_error(&self) -> Result<(), DriverError> {
        // Lists the pool as the configured user: proves the configuration,
        // the keyring, the monitors, the pool and the user's read caps.
        let cmd = self.cli.ls(Deadline::Probe);
        let listed = match self.cli.run(&cmd).await {
            Ok(stdout) => parse::<Vec<String>>(&cmd.what, &stdout),
            Err(e) => Err(e),
        };
        let names = match listed {
            Ok(names) => names,
            Err(e) => return Err(DriverError::Unavailable(self.setup_failure(&e))),
        };
        if let Err(e) = self.fsid().await {
            return Err(DriverError::Unavailable(self.setup_failure(&e)));
        }
        self.collect_hidden_volumes(&names).await;
        Ok(())
    }

    async fn get_volume_stats(&self) -> Result<Map<String, Value>, DriverError> {
        let df_cmd = self.cli.df();
        let df: ClusterDf = parse(&df_cmd.what, &self.cli.run(&df_cmd).await?)?;
        let quota_cmd = self.cli.pool_quota();
        let quota: PoolQuota = parse(&quota_cmd.what, &self.cli.run(&quota_cmd).await?)?;
        let pool = &self.options.pool;
        let capacity = pool_capacity(
            &df,
            pool,
            quota.quota_max_bytes,
            self.options.report_dynamic_total_capacity,
        )
        .ok_or_else(|| {
            DriverError::Unavailable(format!("pool {pool} is missing from `ceph df`"))
        })?;
        let auto_ratio = self.max_over_subscription_ratio == OverSubscription::Auto;
        // An exclusive pool's provisioned size is what the manager counts
        // (allocated_capacity_gb); Cinder only asks the cluster otherwise.
        let provisioned = if !self.options.exclusive_cinder_pool || auto_ratio {
            let cmd = self.cli.ls_long();
            let listed = match self.cli.run(&cmd).await {
                Ok(stdout) => parse::<Vec<LongListEntry>>(&cmd.what, &stdout),
                Err(e) => Err(e),
            };
            match listed {
                Ok(images) => Some(provisioned_gb(&images)),
                Err(e) => {
                    tracing::warn!(backend = %self.backend_name, error = %e, "cannot list image sizes");
                    None
                }
            }
        } else {
            None
        };
        let ratio = match self.max_over_subscription_ratio {
            OverSubscription::Ratio(r) => r,
            OverSubscription::Auto => {
                #[allow(clippy::cast_precision_loss)] // GiB counts are far below 2^52
                let gb = provisioned.unwrap_or(0) as f64;
                auto_over_subscription_ratio(gb, capacity)
            }
        };
        let fsid = self.fsid().await?;
        let mut pool_stats = json!({
            "pool_name": self.backend_name,
            "total_capacity_gb": capacity.total_gb,
            "free_capacity_gb": capacity.free_gb,
            "reserved_percentage": self.reserved_percentage,
            "max_over_subscription_ratio": ratio,
            "thin_provisioning_support": true,
            "thick_provisioning_support": false,
            "multiattach": true,
            "QoS_support": false,
            "location_info": self.location_info(&fsid),
            "backend_state": "up",
        });
        if let (Some(gb), false, Some(map)) = (
            provisioned,
            self.options.exclusive_cinder_pool,
            pool_stats.as_object_mut(),
        ) {
            map.insert("provisioned_capacity_gb".into(), json!(gb));
        }
        let mut report = Map::new();
        report.insert("volume_backend_name".into(), json!(self.backend_name));
        report.insert("vendor_name".into(), json!("Open Source"));
        report.insert("driver_version".into(), json!(env!("CARGO_PKG_VERSION")));
        report.insert("storage_protocol".into(), json!("ceph"));
        report.insert("replication_enabled".into(), json!(false));
        report.insert("online_extend_support".into(), json!(true));
        report.insert("pools".into(), json!([pool_stats]));
        Ok(report)
    }

    async fn create_volume(&self, volume: &VolumeSpec) -> Result<ModelUpdate, DriverError> {
        let image = self.image(&volume.name)?;
        let size = size_mib(volume.size_gb)?;
        let object_mib = u64::from(self.options.store_chunk_size_mb);
        match self.run(self.cli.create(&image, size, object_mib)).await {
            Ok(_) => {}
            Err(e) if e.kind == CephErrorKind::Exists => {
                // A redelivered request: make sure it has its size.
                tracing::info!(image = %image, "image exists already (redelivered request)");
                let current = self.info(&image).await?.map_or(0, |i| i.size);
                if current < size * MIB {
                    self.resize(&image, volume.size_gb).await?;
                }
            }
            Err(e) => return Err(e.into()),
        }
        Ok(ModelUpdate::default())
    }

    /// `rbd import -` in place of the empty image `create_volume` made,
    /// then grown to the volume's size (Cinder's RBD `copy_image_to_volume`
    /// deletes and imports the same way).
    async fn image_sink(
        &self,
        volume: &VolumeSpec,
    ) -> Result<Option<Box<dyn ImageSink>>, DriverError> {
        let image = self.image(&volume.name)?;
        Ok(Some(Box::new(
            self.start_import(image, volume.size_gb).await?,
        )))
    }

    /// A temporary image's extents written into the volume's emptied head
    /// (see `image`): the volume's snapshots and their clones stay valid.
    async fn image_overwrite_sink(
        &self,
        volume: &VolumeSpec,
    ) -> Result<Option<Box<dyn ImageSink>>, DriverError> {
        let image = self.image(&volume.name)?;
        self.start_overwrite(volume, image).await.map(Some)
    }

    /// `rbd export <volume> -` (Cinder's RBD `copy_volume_to_image` exports
    /// to a temporary file first; this streams).
    async fn image_source(&self, volume: &VolumeSpec) -> Result<Option<ImageSource>, DriverError> {
        let image = self.image(&volume.name)?;
        self.export_volume(volume, image).await.map(Some)
    }

    async fn clone_image(
        &self,
        volume: &VolumeSpec,
        image: &ImageLocations,
    ) -> Result<Option<ModelUpdate>, DriverError> {
        let dest = self.image(&volume.name)?;
        self.clone_from_image(volume, dest, image).await
    }

    async fn create_volume_from_snapshot(
        &self,
        volume: &VolumeSpec,
        snapshot: &SnapshotSpec,
    ) -> Result<ModelUpdate, DriverError> {
        let snap = self.snapshot(snapshot)?;
        let dest = self.image(&volume.name)?;
        size_mib(volume.size_gb)?;
        let Some(source) = self.info(&snap.image).await? else {
            return Err(DriverError::NotFound(format!(
                "volume image {} of snapshot {} does not exist",
                snap.image, snapshot.name
            )));
        };
        self.clone_snapshot(&snap, &dest, self.clone_object_mib(&source))
            .await?;
        let finish = async {
            if self.options.flatten_volume_from_snapshot
                || self.exceeds_clone_depth(&source).await?
            {
                self.flatten(&dest, volume.size_gb).await?;
            }
            if volume.size_gb > snapshot.size_gb {
                self.resize(&dest, volume.size_gb).await?;
            }
            Ok::<(), DriverError>(())
        };
        if let Err(e) = finish.await {
            self.discard_new_image(&dest).await;
            return Err(e);
        }
        Ok(ModelUpdate::default())
    }

    async fn create_cloned_volume(
        &self,
        volume: &VolumeSpec,
        source: &VolumeSpec,
    ) -> Result<ModelUpdate, DriverError> {
        let src = self.image(&source.name)?;
        let dest = self.image(&volume.name)?;
        size_mib(volume.size_gb)?;
        if self.options.max_clone_depth == 0 {
            // Copy-on-write clones disabled: a full copy, as Cinder does.
            let copy = self.cli.copy(&src, &dest, source.size_gb);
            match self.cli.run(&copy).await {
                Ok(_) => {}
                Err(e) if e.kind == CephErrorKind::Exists => {
                    // An earlier attempt may have died mid-copy: start over.
                    self.run(self.cli.rm(&dest)).await?;
                    self.cli.run(&copy).await?;
                }
                Err(e) => return Err(e.into()),
            }
            if volume.size_gb > source.size_gb
                && let Err(e) = self.resize(&dest, volume.size_gb).await
            {
                self.discard_new_image(&dest).await;
                return Err(e);
            }
            return Ok(ModelUpdate::default());
        }
        let Some(source_info) = self.info(&src).await? else {
            return Err(DriverError::NotFound(format!(
                "source volume image {src} does not exist"
            )));
        };
        let clone_snap = src.snap(clone_snap_name(&dest.image));
        match self.run(self.cli.snap_create(&clone_snap)).await {
            Ok(_) => {}
            Err(e) if e.kind == CephErrorKind::Exists => {}
            Err(e) => return Err(e.into()),
        }
        let cloned = async {
            self.protect(&clone_snap).await?;
            self.clone_snapshot(&clone_snap, &dest, self.clone_object_mib(&source_info))
                .await
        };
        if let Err(e) = cloned.await {
            self.drop_snapshot_quietly(&clone_snap).await;
            return Err(e.into());
        }
        let finish = async {
            if self.exceeds_clone_depth(&source_info).await? {
                tracing::info!(
                    image = %dest,
                    max_clone_depth = self.options.max_clone_depth,
                    "maximum clone depth reached; flattening the new volume"
                );
                self.flatten(&dest, volume.size_gb).await?;
                self.unprotect(&clone_snap).await?;
                self.remove_snapshot(&clone_snap).await?;
            }
            if volume.size_gb > source.size_gb {
                self.resize(&dest, volume.size_gb).await?;
            }
            Ok::<(), DriverError>(())
        };
        if let Err(e) = finish.await {
            self.discard_new_image(&dest).await;
            self.drop_snapshot_quietly(&clone_snap).await;
            return Err(e);
        }
        Ok(ModelUpdate::default())
    }

    async fn delete_volume(&self, volume: &VolumeSpec) -> Result<(), DriverError> {
        let image = self.image(&volume.name)?;
        let Some(info) = self.info(&image).await? else {
            tracing::info!(image = %image, "volume image is gone already");
            return Ok(());
        };
        let mut snapshots = self.snapshots(&image).await?;
        // The Ceph backup driver's snapshots (`backup.<id>.snap.<time>`,
        // kept for the next incremental backup) go with the volume, as
        // Cinder's `_delete_backup_snaps` removes them. One that cannot go
        // (protected, with clones: not the backup driver's) stays for the
        // untracked-snapshot handling below.
        let mut removed = Vec::new();
        for snapshot in snapshots.iter().filter(|s| is_backup_snapshot(&s.name)) {
            match self
                .run(self.cli.snap_rm(&image.snap(&snapshot.name)))
                .await
            {
                Ok(_) => removed.push(snapshot.name.clone()),
                Err(e) if e.kind == CephErrorKind::NotFound => removed.push(snapshot.name.clone()),
                Err(e) => {
                    tracing::warn!(image = %image, snapshot = %snapshot.name, error = %e, "cannot remove a backup snapshot of the volume");
                }
            }
        }
        snapshots.retain(|s| !removed.contains(&s.name));
        if self.has_clone_children(&image, &snapshots).await? {
            // Its clones still read from it: hide it until the last goes.
            self.hide(&image).await?;
            return Ok(());
        }
        self.remove_image(&image, volume.size_gb).await?;
        self.release_parent(image.image, info.parent).await;
        Ok(())
    }

    async fn extend_volume(
        &self,
        volume: &VolumeSpec,
        new_size_gb: i64,
    ) -> Result<(), DriverError> {
        let image = self.image(&volume.name)?;
        self.resize(&image, new_size_gb).await
    }

    async fn create_snapshot(&self, snapshot: &SnapshotSpec) -> Result<ModelUpdate, DriverError> {
        let snap = self.snapshot(snapshot)?;
        match self.run(self.cli.snap_create(&snap)).await {
            Ok(_) => {}
            Err(e) if e.kind == CephErrorKind::Exists => {}
            Err(e) => return Err(e.into()),
        }
        self.protect(&snap).await?;
        Ok(ModelUpdate::default())
    }

    async fn delete_snapshot(&self, snapshot: &SnapshotSpec) -> Result<(), DriverError> {
        let snap = self.snapshot(snapshot)?;
        match self.unprotect(&snap).await {
            Ok(()) => {}
            Err(e) if e.kind == CephErrorKind::NotFound => return Ok(()),
            Err(e) if e.kind == CephErrorKind::Busy => {
                // Volumes were made from it: make them independent (Cinder's
                // behaviour since bug 1969643), then try again.
                self.flatten_children(&snap, snapshot.size_gb).await?;
                match self.unprotect(&snap).await {
                    Ok(()) => {}
                    Err(e) if e.kind == CephErrorKind::NotFound => return Ok(()),
                    Err(e) if e.kind == CephErrorKind::Busy => {
                        return Err(DriverError::Busy(format!(
                            "snapshot {} still has dependent volumes: {e}",
                            snapshot.name
                        )));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
        self.remove_snapshot(&snap).await?;
        Ok(())
    }

    async fn create_export(
        &self,
        _volume: &VolumeSpec,
        _connector: &Connector,
    ) -> Result<ModelUpdate, DriverError> {
        Ok(ModelUpdate::default())
    }

    async fn ensure_export(&self, _volume: &VolumeSpec) -> Result<(), DriverError> {
        Ok(())
    }

    async fn remove_export(&self, _volume: &VolumeSpec) -> Result<(), DriverError> {
        Ok(())
    }

    async fn initialize_connection(
        &self,
        volume: &VolumeSpec,
        _connector: &Connector,
    ) -> Result<ConnectionInfo, DriverError> {
        let image = self.image(&volume.name)?;
        let cmd = self.cli.mon_dump();
        let monmap: MonMap = parse(&cmd.what, &self.cli.run(&cmd).await?)?;
        let (hosts, ports) = monmap.hosts_and_ports();
        if hosts.is_empty() {
            return Err(DriverError::Backend(
                "the monmap lists no monitor address".into(),
            ));
        }
        let secret_uuid = match &self.options.secret_uuid {
            Some(uuid) => uuid.clone(),
            None => monmap.fsid.clone(),
        };
        let _ = self.fsid.set(monmap.fsid);
        let mut data = Map::new();
        data.insert("name".into(), json!(image.to_string()));
        data.insert("hosts".into(), json!(hosts));
        data.insert("ports".into(), json!(ports));
        data.insert("cluster_name".into(), json!(self.options.cluster_name));
        data.insert("auth_enabled".into(), json!(self.options.user.is_some()));
        data.insert("auth_username".into(), json!(self.options.user));
        data.insert("secret_type".into(), json!("ceph"));
        data.insert("secret_uuid".into(), json!(secret_uuid));
        data.insert("volume_id".into(), json!(volume.id.to_string()));
        data.insert("discard".into(), json!(true));

        Ok(ConnectionInfo {
            driver_volume_type: "rbd".into(),
            data,
        })
    }

    async fn terminate_connection(
        &self,
        _volume: &VolumeSpec,
        _connector: Option<&Connector>,
    ) -> Result<(), DriverError> {
        Ok(())
    }

    async fn list_volume_names(&self) -> Result<Option<Vec<String>>, DriverError> {
        // The manager removes listed volumes that have no row on this
        // backend. Only an exclusive pool (Cinder's meaning: every image in
        // it is one of this backend's volumes) makes that safe; in a pool
        // shared with other volume services or deployments, their volumes
        // would look like orphans.
        if !self.options.exclusive_cinder_pool {
            return Ok(None);
        }
        let cmd = self.cli.ls(Deadline::Control);
        let names: Vec<String> = parse(&cmd.what, &self.cli.run(&cmd).await?)?;
        // Hidden volumes and foreign images are not Cinder volumes.
        let mut names: Vec<String> = names
            .into_iter()
            .filter(|n| is_own_name(n, "volume-"))
            .collect();
        names.sort();
        Ok(Some(names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_own_and_foreign_names() {
        let v = "volume-4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1";
        assert!(is_own_name(v, "volume-"));
        assert!(!is_own_name(&format!("{v}.deleted"), "volume-"));
        assert!(!is_own_name("volume--rf", "volume-"));
        assert!(!is_own_name(
            "volume-4F2C1E1A-8A4C-4E4B-9A57-0F8CBBD3F0A1",
            "volume-"
        ));
    }

    #[test]
    fn recognises_backup_snapshots() {
        assert!(is_backup_snapshot(
            "backup.0b9c5b3e-3f0e-4f8a-9d8e-1d2c3b4a5f60.snap.1733590000.5"
        ));
        assert!(!is_backup_snapshot(
            "snapshot-0b9c5b3e-3f0e-4f8a-9d8e-1d2c3b4a5f60"
        ));
        assert!(!is_backup_snapshot("backup.x.snap."));
        assert!(!is_backup_snapshot("volume-1.clone_snap"));
    }

    #[test]
    fn sizes_are_whole_positive_gib() {
        assert_eq!(size_mib(1).unwrap(), 1024);
        assert!(size_mib(0).is_err());
        assert!(size_mib(-3).is_err());
        assert!(size_mib(i64::MAX).is_err());
    }
}
