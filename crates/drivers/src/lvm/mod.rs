//! The LVM driver: each volume is a logical volume `volume-<uuid>` in one
//! volume group, exported through a target helper (Cinder's
//! `cinder/volume/drivers/lvm.py`).
//!
//! * Thick volumes are `lvcreate -L`, optionally mirrored; thin volumes live
//!   in the thin pool `<vg>-pool` (created at start-up, 95 % of the VG's
//!   free space). `lvm_type = auto` picks thin when the VG is empty or
//!   already holds the pool, as Cinder does.
//! * Snapshots are LVM snapshots named `_snapshot-<uuid>` (LVM reserves names
//!   starting with `snapshot`). Thin snapshots, clones and volumes from
//!   snapshots are thin snapshots of snapshots; thick ones are new LVs filled
//!   by `dd` from the snapshot (clones through a temporary snapshot
//!   `clone-snap-<volume id>`).
//! * Deleting a thick LV with `volume_clear = zero` renames it and wipes it
//!   in the background ([`wipe`]), so the manager never waits for a
//!   full-volume `dd`.
//! * Every LVM failure is classified where it happens ([`errors`]): a full
//!   VG or pool is [`DriverError::NoSpace`], an LV with snapshots or open
//!   is [`DriverError::Busy`], and so on.
//!
//! Exports happen at attach time: `/dev/<vg>/<volume name>` is activated and
//! handed to the target helper.

pub mod commands;
pub mod errors;
pub mod report;
pub mod vg;
pub mod wipe;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use clinker_config::{BackendConfig, LvmDriverOptions, LvmType, OverSubscription, VolumeClear};
use clinker_exec::CommandRunner;
use clinker_types::connection::{ConnectionInfo, Connector};
use serde_json::{Map, Value, json};

use self::commands::{Activation, LvmCommands};
use self::errors::LvmRunner;
use self::report::LogicalVolume;
use self::vg::Vg;
use self::wipe::{WIPE_PREFIX, Wiper, wipe_name};
use crate::manage::{ManageRef, ManageableObject, ceil_gib, id_in_name};
use crate::targets::{ReconcileReport, TargetHelper, WantedExport, connector_initiator};
use crate::{
    DriverError, GIB, LocalDevice, ModelUpdate, SnapshotSpec, VolumeDriver, VolumeSpec, gib,
    resolve_over_subscription,
};

/// Cinder's `LVMVolumeDriver.VERSION`, reported as `driver_version`.
pub const DRIVER_VERSION: &str = "3.0.0";

/// Thin provisioning needs LVM 2.02.95 (Cinder's check).
const MIN_THIN_VERSION: (u32, u32, u32) = (2, 2, 95);

/// How the backend provisions LVs once `lvm_type` is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provisioning {
    /// Thick LVs.
    Thick,
    /// Thin LVs in `<vg>-pool`.
    Thin,
}

impl Provisioning {
    /// The `lvm_type` word for `location_info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provisioning::Thick => "default",
            Provisioning::Thin => "thin",
        }
    }
}

/// LVM reserves LV names starting with `snapshot`: Cinder prefixes `_`.
pub fn escape_snapshot_name(name: &str) -> String {
    if name.starts_with("snapshot") {
        format!("_{name}")
    } else {
        name.to_owned()
    }
}

fn size_gb(size_gb: i64) -> Result<u64, DriverError> {
    u64::try_from(size_gb)
        .ok()
        .filter(|g| *g > 0 && g.checked_mul(GIB).is_some())
        .ok_or_else(|| DriverError::InvalidInput(format!("invalid size {size_gb} GiB")))
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// The LVM driver.
#[derive(Debug)]
pub struct LvmDriver {
    backend_name: String,
    hostname: String,
    reserved_percentage: u8,
    max_over_subscription_ratio: OverSubscription,
    options: LvmDriverOptions,
    vg: Vg,
    wiper: Wiper,
    target: Arc<dyn TargetHelper>,
    provisioning: RwLock<Option<Provisioning>>,
}

impl LvmDriver {
    /// A driver for one backend section, exporting through `target`.
    pub fn new(
        backend: &BackendConfig,
        options: LvmDriverOptions,
        runner: Arc<dyn CommandRunner>,
        target: Arc<dyn TargetHelper>,
    ) -> Self {
        // Cinder uses lvm_conf_file only when it exists, through
        // LVM_SYSTEM_DIR (LVM reads <dir>/lvm.conf).
        let lvm_system_dir = options
            .lvm_conf_file
            .as_deref()
            .filter(|f| f.is_file())
            .and_then(|f| f.parent())
            .map(PathBuf::from);
        let cmd = LvmCommands::new(
            &options.volume_group,
            lvm_system_dir.as_deref(),
            options.lvm_suppress_fd_warnings,
            &options.volume_dd_blocksize,
            options.volume_clear_ionice.as_deref(),
        );
        let vg = Vg {
            cmd,
            run: LvmRunner::new(runner),
        };
        let provisioning = match options.lvm_type {
            LvmType::Default => Some(Provisioning::Thick),
            LvmType::Thin => Some(Provisioning::Thin),
            LvmType::Auto if options.lvm_mirrors > 0 => Some(Provisioning::Thick),
            LvmType::Auto => None,
        };
        Self {
            backend_name: backend.volume_backend_name.clone(),
            hostname: crate::local_hostname(),
            reserved_percentage: backend.reserved_percentage,
            max_over_subscription_ratio: backend.max_over_subscription_ratio,
            wiper: Wiper::new(vg.clone(), Self::clear_size(&options)),
            vg,
            options,
            target,
            provisioning: RwLock::new(provisioning),
        }
    }

    fn clear_size(options: &LvmDriverOptions) -> Option<u64> {
        (options.volume_clear_size_mib > 0).then(|| u64::from(options.volume_clear_size_mib) << 20)
    }

    /// Uses `hostname` in `location_info` instead of this machine's name.
    #[must_use]
    pub fn with_hostname(mut self, hostname: &str) -> Self {
        hostname.clone_into(&mut self.hostname);
        self
    }

    /// Looks for LV devices under `root` instead of `/dev` (tests that stand
    /// in loop devices for LVs on a kernel without device-mapper).
    #[must_use]
    pub fn with_dev_root(mut self, root: PathBuf) -> Self {
        self.vg.cmd = self.vg.cmd.clone().with_dev_root(root);
        self.wiper = Wiper::new(self.vg.clone(), Self::clear_size(&self.options));
        self
    }

    /// The background wiper (tests wait on it).
    pub fn wiper(&self) -> &Wiper {
        &self.wiper
    }

    /// The command builders (tests compute expected command lines).
    pub fn commands(&self) -> &LvmCommands {
        &self.vg.cmd
    }

    /// The resolved provisioning, once known.
    pub fn resolved_provisioning(&self) -> Option<Provisioning> {
        self.provisioning.read().ok().and_then(|p| *p)
    }

    /// The thin pool's name, `<vg>-pool`.
    pub fn thin_pool_name(&self) -> String {
        format!("{}-pool", self.options.volume_group)
    }

    fn provisioning(&self) -> Result<Provisioning, DriverError> {
        self.resolved_provisioning().ok_or_else(|| {
            DriverError::Unavailable(
                "lvm_type = auto is resolved by check_for_setup_error, which has not succeeded"
                    .into(),
            )
        })
    }

    /// `lvm_type = auto`: thin when LVM supports it and the VG is empty or
    /// already has the pool (Cinder's `check_for_setup_error`).
    fn resolve_auto(&self, version: (u32, u32, u32), lvs: &[LogicalVolume]) -> Provisioning {
        let pool = self.thin_pool_name();
        if version >= MIN_THIN_VERSION && (lvs.is_empty() || lvs.iter().any(|lv| lv.name == pool)) {
            Provisioning::Thin
        } else {
            Provisioning::Thick
        }
    }

    async fn ensure_thin_pool(&self, lvs: &[LogicalVolume]) -> Result<(), DriverError> {
        let pool = self.thin_pool_name();
        if lvs.iter().any(|lv| lv.name == pool) {
            return Ok(());
        }
        let vg = self.vg.require().await?;
        // Leave 5 % of the free space for the pool's metadata and spare
        // metadata LVs, as Cinder does; whole extents.
        let extent = vg.extent_size_bytes.max(1);
        let size = vg.free_bytes / 100 * 95 / extent * extent;
        if size == 0 {
            return Err(DriverError::Unavailable(format!(
                "volume group {} has no free space for the thin pool {pool}",
                vg.name
            )));
        }
        let cmd = self.vg.cmd.create_thin_pool(&pool, size);
        if let Err(e) = self
            .vg
            .run
            .run(&format!("create thin pool {pool}"), &cmd)
            .await
        {
            // Another service on this host may have created it meanwhile.
            if self.vg.lv(&pool).await?.is_none() {
                return Err(DriverError::Unavailable(format!(
                    "cannot create the thin pool: {e}"
                )));
            }
        }
        tracing::info!(pool, bytes = size, "created the thin pool");
        Ok(())
    }

    /// Creates an LV of the backend's kind; a redelivered create of an LV
    /// that already exists with at least the size is success.
    async fn create_lv(&self, name: &str, size: u64) -> Result<Provisioning, DriverError> {
        let provisioning = self.provisioning()?;
        let cmd = match provisioning {
            Provisioning::Thin => self.vg.cmd.create_thin(name, size, &self.thin_pool_name()),
            Provisioning::Thick => self
                .vg
                .cmd
                .create_thick(name, size, self.options.lvm_mirrors),
        };
        match self.vg.run.run(&format!("create {name}"), &cmd).await {
            Ok(_) => Ok(provisioning),
            Err(DriverError::AlreadyExists(message)) => match self.vg.lv(name).await? {
                Some(lv) if lv.size_bytes >= size * GIB && lv.origin.is_none() => Ok(provisioning),
                _ => Err(DriverError::AlreadyExists(message)),
            },
            // The VG or the thin pool went away.
            Err(DriverError::NotFound(message)) => Err(DriverError::Unavailable(message)),
            Err(e) => Err(e),
        }
    }

    /// A thin snapshot turned volume: `lvcreate --snapshot` of `source`,
    /// grown to `size` GiB, activated for good.
    async fn create_thin_copy(
        &self,
        name: &str,
        source: &LogicalVolume,
        size: u64,
    ) -> Result<(), DriverError> {
        let cmd = self.vg.cmd.create_snapshot(name, &source.name, None);
        match self
            .vg
            .run
            .run(&format!("create {name} from {}", source.name), &cmd)
            .await
        {
            Ok(_) => {}
            Err(DriverError::AlreadyExists(message)) => {
                let existing = self.vg.lv(name).await?;
                if existing.and_then(|lv| lv.origin).as_deref() != Some(source.name.as_str()) {
                    return Err(DriverError::AlreadyExists(message));
                }
            }
            Err(e) => return Err(e),
        }
        if size * GIB > source.size_bytes {
            self.extend_lv(name, size).await?;
        }
        // Some LVM configurations do not activate thin snapshots by
        // themselves; the new volume must also activate at boot.
        if source.name.starts_with("_snapshot-") {
            self.vg
                .activate(&source.name, Activation::IgnoreSkip)
                .await?;
        }
        self.vg.activate(name, Activation::Permanent).await
    }

    /// A thick copy: a new LV filled by `dd` from `source_device`. A failed
    /// copy removes the new LV so a retry starts clean.
    async fn create_dd_copy(
        &self,
        name: &str,
        source: &LogicalVolume,
        bytes: u64,
        size: u64,
    ) -> Result<(), DriverError> {
        let provisioning = self.create_lv(name, size).await?;
        let copied = async {
            self.vg
                .activate(&source.name, Activation::IgnoreSkip)
                .await?;
            self.vg
                .copy(
                    &self.vg.cmd.mapper_path(&source.name),
                    &self.vg.cmd.mapper_path(name),
                    bytes.min(size * GIB),
                    provisioning == Provisioning::Thin,
                )
                .await
        }
        .await;
        if let Err(e) = copied {
            if let Err(cleanup) = self.delete_lv(name, false).await {
                tracing::warn!(lv = name, error = %cleanup, "cannot remove a half-copied volume");
            }
            return Err(e);
        }
        Ok(())
    }

    /// `lvextend`, with a thick origin deactivated around it (LVM resizes
    /// snapshot origins only while inactive). The same size is success.
    async fn extend_lv(&self, name: &str, size: u64) -> Result<(), DriverError> {
        let lv = self.vg.lv(name).await?.ok_or_else(|| {
            DriverError::NotFound(format!("logical volume {name} does not exist"))
        })?;
        if lv.size_bytes == size * GIB {
            return Ok(());
        }
        if lv.size_bytes > size * GIB {
            return Err(DriverError::InvalidInput(format!(
                "{name} is {} bytes; cannot shrink it to {size} GiB",
                lv.size_bytes
            )));
        }
        let deactivate = lv.is_snapshot_origin();
        if deactivate {
            self.vg
                .run
                .run(&format!("deactivate {name}"), &self.vg.cmd.deactivate(name))
                .await?;
        }
        let extended = self
            .vg
            .run
            .run(&format!("extend {name}"), &self.vg.cmd.extend(name, size))
            .await;
        if deactivate {
            self.vg.activate(name, Activation::IgnoreSkip).await?;
        }
        match extended {
            Ok(_) => Ok(()),
            Err(DriverError::Backend(m)) if m.contains("matches existing size") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes an LV (absent is success). With `check_snapshots`, refuses an
    /// LV that snapshots depend on. Thick LVs are wiped in the background
    /// when `volume_clear = zero`; so are origins whose renamed snapshots
    /// still wait for their wipe (`lvremove -f` would take them along
    /// unwiped).
    async fn delete_lv(&self, name: &str, check_snapshots: bool) -> Result<(), DriverError> {
        let lvs = self.vg.lvs().await?;
        let wiped = wipe_name(name);
        let Some(lv) = lvs.iter().find(|lv| lv.name == name) else {
            // Renamed by an earlier attempt that did not finish: make sure
            // the wipe is queued.
            if lvs.iter().any(|lv| lv.name == wiped) {
                self.wiper.enqueue(&wiped);
            }
            return Ok(());
        };
        let dependants: Vec<&LogicalVolume> = lvs
            .iter()
            .filter(|c| c.origin.as_deref() == Some(name))
            .collect();
        if check_snapshots {
            let snapshots: Vec<&str> = dependants
                .iter()
                .filter(|c| !c.name.starts_with(WIPE_PREFIX))
                // Thin volumes made from a thin LV are independent of it.
                .filter(|c| c.is_thick_snapshot() || c.name.starts_with("_snapshot-"))
                .map(|c| c.name.as_str())
                .collect();
            if !snapshots.is_empty() {
                return Err(DriverError::Busy(format!(
                    "volume {name} has snapshots: {}",
                    snapshots.join(", ")
                )));
            }
        }
        if lv.is_open() {
            return Err(DriverError::Busy(format!(
                "logical volume {name} is in use"
            )));
        }
        let pending_children = dependants.iter().any(|c| c.name.starts_with(WIPE_PREFIX));
        let clear =
            (self.options.volume_clear == VolumeClear::Zero && !lv.is_thin()) || pending_children;
        if !clear {
            return self.vg.remove(name).await;
        }
        self.vg.rename(name, &wiped).await?;
        self.wiper.enqueue(&wiped);
        tracing::info!(lv = name, "renamed for a background wipe");
        Ok(())
    }

    fn require_lv<'a>(
        lvs: &'a [LogicalVolume],
        name: &str,
        what: &str,
    ) -> Result<&'a LogicalVolume, DriverError> {
        lvs.iter()
            .find(|lv| lv.name == name)
            .ok_or_else(|| DriverError::NotFound(format!("{what} {name} does not exist")))
    }

    async fn capacity(
        &self,
        provisioning: Provisioning,
        lvs: &[LogicalVolume],
    ) -> Result<(f64, f64, f64), DriverError> {
        let vg = self.vg.require().await?;
        let mirrors = self.options.lvm_mirrors;
        if mirrors > 0 {
            let pvs = self.vg.pvs().await?;
            let free: Vec<u64> = pvs.iter().map(|pv| pv.free_bytes).collect();
            let total = gib(vg.free_bytes / (u64::from(mirrors) + 1));
            let free = gib(report::mirror_free_space(&free, mirrors));
            return Ok((total, free, round2(total - free)));
        }
        if provisioning == Provisioning::Thin {
            let pool_name = self.thin_pool_name();
            let pool = Self::require_lv(lvs, &pool_name, "thin pool")
                .map_err(|e| DriverError::Unavailable(e.to_string()))?;
            let used = pool.data_percent.unwrap_or(0.0) / 100.0;
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let free_bytes = (pool.size_bytes as f64 * (1.0 - used)).max(0.0) as u64;
            let provisioned: u64 = lvs
                .iter()
                .filter(|lv| lv.name != pool_name)
                .map(|lv| lv.size_bytes)
                .sum();
            return Ok((gib(pool.size_bytes), gib(free_bytes), gib(provisioned)));
        }
        let total = gib(vg.size_bytes);
        let free = gib(vg.free_bytes);
        Ok((total, free, round2(total - free)))
    }
}

/// Whether an LV is one of the snapshots a manageable list shows as
/// such: a thick snapshot, or a thin one named like Cinder's
/// (`_snapshot-…`).
fn is_manageable_snapshot(lv: &LogicalVolume) -> bool {
    lv.is_thick_snapshot() || lv.name.starts_with("_snapshot-")
}

/// LVs that are never offered for management: thin pools, LVM's hidden
/// internal LVs (`[…]`), and LVs waiting to be wiped.
fn is_internal_lv(lv: &LogicalVolume) -> bool {
    lv.is_thin_pool() || lv.name.starts_with('[') || lv.name.starts_with(WIPE_PREFIX)
}

impl LvmDriver {
    /// The LV a manage reference names (Cinder's LVM driver accepts only
    /// `source-name`) and its size in whole GiB.
    async fn referenced_lv(&self, reference: &ManageRef) -> Result<(String, i64), DriverError> {
        let Some(name) = reference.source_name() else {
            return Err(reference.invalid("Reference must contain source-name element."));
        };
        match self.vg.lv(name).await? {
            Some(lv) if !is_internal_lv(&lv) => Ok((lv.name, ceil_gib(lv.size_bytes))),
            _ => Err(reference.invalid("Specified logical volume does not exist.")),
        }
    }

    /// Renames the referenced LV to `target` (Cinder's `manage_existing`).
    async fn take_over(&self, reference: &ManageRef, target: &str) -> Result<(), DriverError> {
        let (name, _) = self.referenced_lv(reference).await?;
        if name != target {
            self.vg.rename(&name, target).await.map_err(|e| {
                DriverError::Backend(format!(
                    "Failed to rename logical volume {name}, error message was: {e}"
                ))
            })?;
        }
        Ok(())
    }

    async fn manageable(
        &self,
        snapshots: bool,
        managed_ids: &std::collections::HashSet<String>,
    ) -> Result<Vec<ManageableObject>, DriverError> {
        let kind = if snapshots { "snapshot" } else { "volume" };
        let mut found = Vec::new();
        for lv in self.vg.lvs().await? {
            if is_internal_lv(&lv) || is_manageable_snapshot(&lv) != snapshots {
                continue;
            }
            let id = if snapshots {
                id_in_name(&lv.name, "_snapshot-")
            } else {
                id_in_name(&lv.name, "volume-")
            };
            let mut entry =
                ManageableObject::named(&lv.name, ceil_gib(lv.size_bytes), id, managed_ids);
            if entry.safe_to_manage && lv.is_open() {
                entry.safe_to_manage = false;
                entry.reason_not_safe = Some(format!("{kind} in use"));
            }
            if snapshots {
                entry.source_reference = Some(json!({ "source-name": lv.origin.clone() }));
            }
            found.push(entry);
        }
        Ok(found)
    }
}

#[async_trait::async_trait]
impl VolumeDriver for LvmDriver {
    fn driver_name(&self) -> &'static str {
        "lvm"
    }

    async fn do_setup(&self) -> Result<(), DriverError> {
        self.target.do_setup().await
    }

    async fn check_for_setup_error(&self) -> Result<(), DriverError> {
        let version = self.vg.lvm_version().await?;
        self.vg.require().await?;
        let lvs = self.vg.lvs().await?;
        let provisioning = match self.options.lvm_type {
            LvmType::Default => Provisioning::Thick,
            LvmType::Thin if version < MIN_THIN_VERSION => {
                return Err(DriverError::Unavailable(format!(
                    "thin provisioning needs LVM 2.02.95 or later; this is {}.{:02}.{}",
                    version.0, version.1, version.2
                )));
            }
            LvmType::Thin => Provisioning::Thin,
            LvmType::Auto if self.options.lvm_mirrors > 0 => Provisioning::Thick,
            LvmType::Auto => self.resolve_auto(version, &lvs),
        };
        if provisioning == Provisioning::Thin {
            self.ensure_thin_pool(&lvs).await?;
        }
        if let Ok(mut p) = self.provisioning.write() {
            *p = Some(provisioning);
        }
        tracing::info!(
            volume_group = %self.options.volume_group,
            lvm_type = provisioning.as_str(),
            "lvm backend ready"
        );
        // Finish the wipes an earlier run did not.
        for lv in lvs.iter().filter(|lv| lv.name.starts_with(WIPE_PREFIX)) {
            tracing::info!(lv = %lv.name, "resuming an interrupted wipe");
            self.wiper.enqueue(&lv.name);
        }
        self.target.check_for_setup_error().await
    }

    async fn get_volume_stats(&self) -> Result<Map<String, Value>, DriverError> {
        let provisioning = self.provisioning()?;
        let lvs = self.vg.lvs().await?;
        let (total, free, provisioned) = self.capacity(provisioning, &lvs).await?;
        let thin = provisioning == Provisioning::Thin;
        let location_info = format!(
            "LVMVolumeDriver:{}:{}:{}:{}",
            self.hostname,
            self.options.volume_group,
            provisioning.as_str(),
            self.options.lvm_mirrors
        );
        let pool = json!({
            "pool_name": self.backend_name,
            "total_capacity_gb": total,
            "free_capacity_gb": free,
            "reserved_percentage": self.reserved_percentage,
            "location_info": location_info,
            "QoS_support": false,
            "provisioned_capacity_gb": provisioned,
            "max_over_subscription_ratio": resolve_over_subscription(
                self.max_over_subscription_ratio, thin, total, free, provisioned
            ),
            "thin_provisioning_support": thin,
            "thick_provisioning_support": !thin,
            "total_volumes": lvs.len(),
            "filter_function": Value::Null,
            "goodness_function": Value::Null,
            "multiattach": true,
            "backend_state": "up",
        });
        let mut report = Map::new();
        report.insert("volume_backend_name".into(), json!(self.backend_name));
        report.insert("vendor_name".into(), json!("Open Source"));
        report.insert("driver_version".into(), json!(DRIVER_VERSION));
        report.insert(
            "storage_protocol".into(),
            json!(self.target.storage_protocol()),
        );
        report.insert(
            "shared_targets".into(),
            json!(self.options.lvm_share_target),
        );
        report.insert("sparse_copy_volume".into(), json!(thin));
        report.insert("pools".into(), json!([pool]));
        Ok(report)
    }

    async fn create_volume(&self, volume: &VolumeSpec) -> Result<ModelUpdate, DriverError> {
        self.create_lv(&volume.name, size_gb(volume.size_gb)?)
            .await?;
        Ok(ModelUpdate::default())
    }

    /// The LV's device-mapper node (Cinder's `local_path`); a new thin LV
    /// reads as zeros, a thick one holds whatever the extents held.
    async fn local_device(&self, volume: &VolumeSpec) -> Result<Option<LocalDevice>, DriverError> {
        Ok(Some(LocalDevice {
            path: self.commands().mapper_path(&volume.name),
            new_reads_as_zero: self.resolved_provisioning() == Some(Provisioning::Thin),
        }))
    }

    /// `lvrename` of the temporary LV to the migrated volume's name (the
    /// LVs of one volume group, so a name in use is refused by LVM itself);
    /// a second run finds the rename done.
    async fn update_migrated_volume(
        &self,
        volume: &VolumeSpec,
        new_volume: &VolumeSpec,
    ) -> Result<ModelUpdate, DriverError> {
        let lvs = self.vg.lvs().await?;
        let has = |name: &str| lvs.iter().any(|lv| lv.name == name);
        match (has(&new_volume.name), has(&volume.name)) {
            (false, true) => {}
            (false, false) => {
                return Err(DriverError::NotFound(format!(
                    "neither {} nor {} exists",
                    new_volume.name, volume.name
                )));
            }
            (true, true) => {
                return Err(DriverError::AlreadyExists(format!(
                    "logical volume {} already exists",
                    volume.name
                )));
            }
            (true, false) => self.vg.rename(&new_volume.name, &volume.name).await?,
        }
        Ok(ModelUpdate::default())
    }

    async fn create_volume_from_snapshot(
        &self,
        volume: &VolumeSpec,
        snapshot: &SnapshotSpec,
    ) -> Result<ModelUpdate, DriverError> {
        let size = size_gb(volume.size_gb)?;
        let snapshot_lv = escape_snapshot_name(&snapshot.name);
        let lvs = self.vg.lvs().await?;
        let source = Self::require_lv(&lvs, &snapshot_lv, "snapshot")?;
        if source.is_thin() {
            self.create_thin_copy(&volume.name, source, size).await?;
        } else {
            // The snapshot holds the volume as it was: its size then.
            let bytes = u64::try_from(snapshot.size_gb)
                .ok()
                .filter(|g| *g > 0)
                .map_or(source.size_bytes, |g| g * GIB);
            self.create_dd_copy(&volume.name, source, bytes, size)
                .await?;
        }
        Ok(ModelUpdate::default())
    }

    async fn create_cloned_volume(
        &self,
        volume: &VolumeSpec,
        source: &VolumeSpec,
    ) -> Result<ModelUpdate, DriverError> {
        let size = size_gb(volume.size_gb)?;
        let lvs = self.vg.lvs().await?;
        let source_lv = Self::require_lv(&lvs, &source.name, "volume")?.clone();
        if source_lv.is_thin() {
            self.create_thin_copy(&volume.name, &source_lv, size)
                .await?;
            return Ok(ModelUpdate::default());
        }
        // A thick LV can change while it is copied: copy a snapshot of it.
        let temp = format!("clone-snap-{}", volume.id);
        if !lvs.iter().any(|lv| lv.name == temp) {
            let cmd =
                self.vg
                    .cmd
                    .create_snapshot(&temp, &source_lv.name, Some(source_lv.size_bytes));
            self.vg
                .run
                .run(&format!("snapshot {} for a clone", source_lv.name), &cmd)
                .await?;
        }
        let temp_lv = LogicalVolume {
            name: temp.clone(),
            ..source_lv.clone()
        };
        let copied = self
            .create_dd_copy(&volume.name, &temp_lv, source_lv.size_bytes, size)
            .await;
        if let Err(e) = self.delete_lv(&temp, false).await {
            tracing::warn!(lv = %temp, error = %e, "cannot remove the clone's temporary snapshot");
        }
        copied?;
        Ok(ModelUpdate::default())
    }

    async fn delete_volume(&self, volume: &VolumeSpec) -> Result<(), DriverError> {
        self.delete_lv(&volume.name, true).await
    }

    async fn extend_volume(
        &self,
        volume: &VolumeSpec,
        new_size_gb: i64,
    ) -> Result<(), DriverError> {
        self.extend_lv(&volume.name, size_gb(new_size_gb)?).await?;
        self.target.extend_target(volume).await.map_err(|e| {
            DriverError::Backend(format!(
                "volume {} was extended but its target could not be updated: {e}",
                volume.id
            ))
        })
    }

    async fn create_snapshot(&self, snapshot: &SnapshotSpec) -> Result<ModelUpdate, DriverError> {
        let name = escape_snapshot_name(&snapshot.name);
        let lvs = self.vg.lvs().await?;
        let origin = Self::require_lv(&lvs, &snapshot.volume.name, "volume")?;
        if let Some(existing) = lvs.iter().find(|lv| lv.name == name) {
            return if existing.origin.as_deref() == Some(origin.name.as_str()) {
                Ok(ModelUpdate::default())
            } else {
                Err(DriverError::AlreadyExists(format!(
                    "logical volume {name} exists and is not a snapshot of {}",
                    origin.name
                )))
            };
        }
        let thick_size = (!origin.is_thin()).then_some(origin.size_bytes);
        let cmd = self.vg.cmd.create_snapshot(&name, &origin.name, thick_size);
        self.vg
            .run
            .run(&format!("snapshot {} as {name}", origin.name), &cmd)
            .await?;
        Ok(ModelUpdate::default())
    }

    async fn delete_snapshot(&self, snapshot: &SnapshotSpec) -> Result<(), DriverError> {
        self.delete_lv(&escape_snapshot_name(&snapshot.name), false)
            .await
    }

    async fn create_export(
        &self,
        volume: &VolumeSpec,
        _connector: &Connector,
    ) -> Result<ModelUpdate, DriverError> {
        if self.vg.lv(&volume.name).await?.is_none() {
            return Err(DriverError::NotFound(format!(
                "logical volume {} does not exist",
                volume.name
            )));
        }
        self.vg
            .activate(&volume.name, Activation::IgnoreSkip)
            .await?;
        self.target
            .create_export(volume, &self.vg.cmd.device_path(&volume.name))
            .await
    }

    async fn ensure_export(&self, volume: &VolumeSpec) -> Result<(), DriverError> {
        self.vg
            .activate(&volume.name, Activation::IgnoreSkip)
            .await?;
        self.target
            .ensure_export(volume, &self.vg.cmd.device_path(&volume.name))
            .await
    }

    async fn remove_export(&self, volume: &VolumeSpec) -> Result<(), DriverError> {
        self.target.remove_export(volume).await
    }

    async fn initialize_connection(
        &self,
        volume: &VolumeSpec,
        connector: &Connector,
    ) -> Result<ConnectionInfo, DriverError> {
        self.target.initialize_connection(volume, connector).await
    }

    async fn terminate_connection(
        &self,
        volume: &VolumeSpec,
        connector: Option<&Connector>,
    ) -> Result<(), DriverError> {
        self.target.terminate_connection(volume, connector).await
    }

    async fn manage_existing_get_size(
        &self,
        _volume: &VolumeSpec,
        reference: &ManageRef,
    ) -> Result<i64, DriverError> {
        Ok(self.referenced_lv(reference).await?.1)
    }

    async fn manage_existing(
        &self,
        volume: &VolumeSpec,
        reference: &ManageRef,
    ) -> Result<ModelUpdate, DriverError> {
        self.take_over(reference, &volume.name).await?;
        Ok(ModelUpdate::default())
    }

    async fn manage_existing_snapshot_get_size(
        &self,
        _snapshot: &SnapshotSpec,
        reference: &ManageRef,
    ) -> Result<i64, DriverError> {
        Ok(self.referenced_lv(reference).await?.1)
    }

    async fn manage_existing_snapshot(
        &self,
        snapshot: &SnapshotSpec,
        reference: &ManageRef,
    ) -> Result<ModelUpdate, DriverError> {
        self.take_over(reference, &escape_snapshot_name(&snapshot.name))
            .await?;
        Ok(ModelUpdate::default())
    }

    async fn get_manageable_volumes(
        &self,
        managed_ids: &std::collections::HashSet<String>,
    ) -> Result<Vec<ManageableObject>, DriverError> {
        self.manageable(false, managed_ids).await
    }

    async fn get_manageable_snapshots(
        &self,
        managed_ids: &std::collections::HashSet<String>,
    ) -> Result<Vec<ManageableObject>, DriverError> {
        self.manageable(true, managed_ids).await
    }

    /// The snapshot's LV keeps its escaped name (`_snapshot-<id>`).
    async fn unmanage_snapshot(&self, snapshot: &SnapshotSpec) -> Result<String, DriverError> {
        Ok(escape_snapshot_name(&snapshot.name))
    }

    async fn list_volume_names(&self) -> Result<Option<Vec<String>>, DriverError> {
        let mut names: Vec<String> = self
            .vg
            .lvs()
            .await?
            .into_iter()
            .map(|lv| lv.name)
            .filter(|n| n.starts_with("volume-"))
            .collect();
        names.sort();
        Ok(Some(names))
    }

    fn validate_connector(&self, connector: &Connector) -> Result<(), DriverError> {
        connector_initiator(connector).map(|_| ())
    }

    async fn reconcile_exports(
        &self,
        exported: &[VolumeSpec],
    ) -> Result<Option<ReconcileReport>, DriverError> {
        let wanted: Vec<WantedExport> = exported
            .iter()
            .map(|volume| WantedExport {
                volume: volume.clone(),
                path: self.vg.cmd.device_path(&volume.name),
            })
            .collect();
        self.target
            .reconcile_targets(&wanted, &self.vg.cmd.device_dir())
            .await
            .map(Some)
    }
}

#[cfg(test)]
mod tests;
