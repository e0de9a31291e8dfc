//! Every command the LVM driver runs, as typed argument vectors.
//!
//! LVM commands run as `env LC_ALL=C [LVM_SYSTEM_DIR=<dir>]
//! [LVM_SUPPRESS_FD_WARNINGS=1] <command> …`, as Cinder's brick LVM class
//! runs them: `LC_ALL=C` keeps the messages the error classification reads
//! in English, and `LVM_SYSTEM_DIR` points LVM at the directory of
//! `lvm_conf_file` when that file exists. Cinder runs `lvremove`,
//! `lvrename` and `lvchange` without this prefix, so there they ignore
//! `lvm_conf_file`; Clinker prefixes every LVM command so the operator's
//! LVM configuration applies uniformly.
//!
//! Reports are read as JSON in bytes (`--reportformat json --units b
//! --nosuffix`), so no float parsing of `--unit=g` text and no column
//! splitting.

use std::path::{Path, PathBuf};

use clinker_exec::Command;

/// `lvs` fields the driver reads.
pub const LVS_FIELDS: &str = "vg_name,lv_name,lv_size,lv_attr,origin,pool_lv,data_percent";
/// `vgs` fields the driver reads.
pub const VGS_FIELDS: &str = "vg_name,vg_size,vg_free,lv_count,vg_uuid,vg_extent_size";
/// `pvs` fields the driver reads.
pub const PVS_FIELDS: &str = "vg_name,pv_name,pv_size,pv_free";

/// `lvremove`'s `--config`: retry deactivation, which races with udev and
/// other openers (Cinder's LP #1270192).
pub const LVREMOVE_CONFIG: &str = "activation { retry_deactivation = 1} ";
/// Added on the retry after a failed `lvremove`: a failed `lvremove -f` can
/// leave suspended devices behind, on which later LVM commands block.
pub const LVREMOVE_RETRY_CONFIG: &str =
    "activation { retry_deactivation = 1} devices { ignore_suspended_devices = 1}";

/// How `lvchange` activates an LV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `-K`: activate now, even if the LV has the skip-activation flag.
    IgnoreSkip,
    /// `-k n`: clear the skip-activation flag, so the LV (a thin snapshot
    /// turned volume) is activated at boot like any volume.
    Permanent,
}

/// Builds the LVM driver's commands for one volume group.
#[derive(Clone, Debug)]
pub struct LvmCommands {
    vg: String,
    env: Vec<String>,
    dd_blocksize: String,
    ionice: Option<String>,
    dev_root: PathBuf,
}

impl LvmCommands {
    /// Commands on `vg`. `lvm_system_dir` is the directory of an existing
    /// `lvm_conf_file`.
    pub fn new(
        vg: &str,
        lvm_system_dir: Option<&Path>,
        suppress_fd_warnings: bool,
        dd_blocksize: &str,
        ionice: Option<&str>,
    ) -> Self {
        let mut env = vec!["LC_ALL=C".to_owned()];
        if let Some(dir) = lvm_system_dir {
            env.push(format!("LVM_SYSTEM_DIR={}", dir.display()));
        }
        if suppress_fd_warnings {
            env.push("LVM_SUPPRESS_FD_WARNINGS=1".to_owned());
        }
        Self {
            vg: vg.to_owned(),
            env,
            dd_blocksize: dd_blocksize.to_owned(),
            ionice: ionice.map(str::to_owned),
            dev_root: PathBuf::from("/dev"),
        }
    }

    /// Uses `root` instead of `/dev` for device paths (tests that stand in
    /// loop devices for LVs on a kernel without device-mapper).
    #[must_use]
    pub fn with_dev_root(mut self, root: PathBuf) -> Self {
        self.dev_root = root;
        self
    }

    /// The volume group.
    pub fn vg(&self) -> &str {
        &self.vg
    }

    fn lvm(&self, command: &str) -> Command {
        Command::new("env")
            .args(self.env.iter().cloned())
            .arg(command)
    }

    fn lv_path(&self, name: &str) -> String {
        format!("{}/{name}", self.vg)
    }

    fn report(&self, command: &str, fields: &str) -> Command {
        self.lvm(command).args([
            "--reportformat",
            "json",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            fields,
        ])
    }

    /// `/dev/<vg>`: where every LV of the group has its device node.
    pub fn device_dir(&self) -> PathBuf {
        self.dev_root.join(&self.vg)
    }

    /// `/dev/<vg>/<lv>`: what targets export (Cinder's `create_export`).
    pub fn device_path(&self, name: &str) -> PathBuf {
        self.device_dir().join(name)
    }

    /// `/dev/mapper/<vg>-<lv>` with `-` doubled: what copies and wipes use
    /// (Cinder's `local_path`).
    pub fn mapper_path(&self, name: &str) -> PathBuf {
        self.dev_root.join("mapper").join(format!(
            "{}-{}",
            self.vg.replace('-', "--"),
            name.replace('-', "--")
        ))
    }

    /// The copy-on-write store of a thick snapshot, which is what holds its
    /// data and so what a wipe must overwrite (Cinder's LP #1191812).
    pub fn cow_path(&self, name: &str) -> PathBuf {
        let mut path = self.mapper_path(name).into_os_string();
        path.push("-cow");
        PathBuf::from(path)
    }

    /// `lvm version`.
    pub fn lvm_version(&self) -> Command {
        self.lvm("lvm").arg("version")
    }

    /// `vgs … <vg>`.
    pub fn vgs(&self) -> Command {
        self.report("vgs", VGS_FIELDS).arg(&self.vg)
    }

    /// `lvs … <vg>`: every LV of the VG.
    pub fn lvs(&self) -> Command {
        self.report("lvs", LVS_FIELDS).arg(&self.vg)
    }

    /// `pvs …`: every PV (filtered to the VG by the caller, as Cinder does).
    pub fn pvs(&self) -> Command {
        self.report("pvs", PVS_FIELDS)
    }

    /// A thick LV: `lvcreate -n <name> <vg> -L <N>g`, with
    /// `--type=mirror -m <n> --nosync --mirrorlog mirrored [-R <region>]`
    /// when mirrored. From 1.5 TiB the region size (MiB) is the next power
    /// of two of the size in TiB, so the mirror log stays small enough.
    pub fn create_thick(&self, name: &str, size_gb: u64, mirrors: u32) -> Command {
        let mut cmd = self.lvm("lvcreate").args([
            "-n".to_owned(),
            name.to_owned(),
            self.vg.clone(),
            "-L".to_owned(),
            format!("{size_gb}g"),
        ]);
        if mirrors > 0 {
            cmd = cmd.args([
                "--type=mirror".to_owned(),
                "-m".to_owned(),
                mirrors.to_string(),
                "--nosync".to_owned(),
                "--mirrorlog".to_owned(),
                "mirrored".to_owned(),
            ]);
            if let Some(region) = mirror_region_size(size_gb) {
                cmd = cmd.args(["-R".to_owned(), region.to_string()]);
            }
        }
        cmd
    }

    /// The thin pool: `lvcreate -T -L <bytes>b <vg>/<pool>`.
    pub fn create_thin_pool(&self, pool: &str, size_bytes: u64) -> Command {
        self.lvm("lvcreate")
            .args(["-T", "-L"])
            .arg(format!("{size_bytes}b"))
            .arg(self.lv_path(pool))
    }

    /// A thin LV: `lvcreate -T -V <N>g -n <name> <vg>/<pool>`.
    pub fn create_thin(&self, name: &str, size_gb: u64, pool: &str) -> Command {
        self.lvm("lvcreate")
            .args(["-T", "-V"])
            .arg(format!("{size_gb}g"))
            .args(["-n", name])
            .arg(self.lv_path(pool))
    }

    /// A snapshot: `lvcreate --name <name> --snapshot <vg>/<origin>`, with
    /// `-L <bytes>b` (the origin's size) for a thick one; a thin snapshot
    /// takes its space from the pool.
    pub fn create_snapshot(
        &self,
        name: &str,
        origin: &str,
        thick_size_bytes: Option<u64>,
    ) -> Command {
        let cmd = self
            .lvm("lvcreate")
            .args(["--name", name, "--snapshot"])
            .arg(self.lv_path(origin));
        match thick_size_bytes {
            Some(bytes) => cmd.arg("-L").arg(format!("{bytes}b")),
            None => cmd,
        }
    }

    /// `lvextend -L <N>g <vg>/<name>`.
    pub fn extend(&self, name: &str, size_gb: u64) -> Command {
        self.lvm("lvextend")
            .arg("-L")
            .arg(format!("{size_gb}g"))
            .arg(self.lv_path(name))
    }

    /// `lvrename <vg> <old> <new>`.
    pub fn rename(&self, old: &str, new: &str) -> Command {
        self.lvm("lvrename").args([self.vg.as_str(), old, new])
    }

    /// `lvremove --config '<config>' -f <vg>/<name>`; `retry` adds
    /// `ignore_suspended_devices` for the second attempt.
    pub fn remove(&self, name: &str, retry: bool) -> Command {
        let config = if retry {
            LVREMOVE_RETRY_CONFIG
        } else {
            LVREMOVE_CONFIG
        };
        self.lvm("lvremove")
            .args(["--config", config, "-f"])
            .arg(self.lv_path(name))
    }

    /// `udevadm settle`, between the two `lvremove` attempts.
    pub fn udevadm_settle(&self) -> Command {
        Command::new("udevadm").arg("settle")
    }

    /// `lvchange -a y --yes (-K | -k n) <vg>/<name>`.
    pub fn activate(&self, name: &str, activation: Activation) -> Command {
        let cmd = self.lvm("lvchange").args(["-a", "y", "--yes"]);
        match activation {
            Activation::IgnoreSkip => cmd.arg("-K"),
            Activation::Permanent => cmd.args(["-k", "n"]),
        }
        .arg(self.lv_path(name))
    }

    /// `lvchange -a n <vg>/<name>` (a thick origin with snapshots can only
    /// be resized while inactive).
    pub fn deactivate(&self, name: &str) -> Command {
        self.lvm("lvchange")
            .args(["-a", "n"])
            .arg(self.lv_path(name))
    }

    fn dd(&self) -> Command {
        match &self.ionice {
            Some(flag) => Command::new("ionice").arg(flag.clone()).arg("dd"),
            None => Command::new("dd"),
        }
    }

    /// Zeroes the first `bytes` of `device` (Cinder's `clear_volume`):
    /// `[ionice <flag>] dd if=/dev/zero of=<device> count=<bytes>
    /// bs=<volume_dd_blocksize> iflag=count_bytes oflag=direct
    /// conv=nocreat`. Direct I/O keeps a wipe from evicting the page cache
    /// and makes it durable without `conv=fdatasync`. `conv=nocreat` (not in
    /// Cinder, which checks the path first) makes a missing device node an
    /// error: otherwise dd would create a regular file of that size in
    /// `/dev` (RAM) and report a wipe that never touched the LV.
    pub fn zero(&self, device: &Path, bytes: u64) -> Command {
        self.dd().args([
            "if=/dev/zero".to_owned(),
            format!("of={}", device.display()),
            format!("count={bytes}"),
            format!("bs={}", self.dd_blocksize),
            "iflag=count_bytes".to_owned(),
            "oflag=direct".to_owned(),
            "conv=nocreat".to_owned(),
        ])
    }

    /// Copies `bytes` from `src` to `dst` (Cinder's `copy_volume`): `dd
    /// if=<src> of=<dst> count=<bytes> bs=<bs> iflag=count_bytes,direct
    /// oflag=direct conv=[sparse,]nocreat`; `sparse` (thin destinations)
    /// skips writing zero blocks so the copy does not allocate them, and
    /// `nocreat` refuses a missing destination device (see [`Self::zero`]).
    pub fn copy(&self, src: &Path, dst: &Path, bytes: u64, sparse: bool) -> Command {
        let cmd = Command::new("dd").args([
            format!("if={}", src.display()),
            format!("of={}", dst.display()),
            format!("count={bytes}"),
            format!("bs={}", self.dd_blocksize),
            "iflag=count_bytes,direct".to_owned(),
            "oflag=direct".to_owned(),
        ]);
        cmd.arg(if sparse {
            "conv=sparse,nocreat"
        } else {
            "conv=nocreat"
        })
    }
}

/// The mirror region size (`-R`, MiB) for a mirrored LV of `size_gb` GiB:
/// none below 1.5 TiB, else the next power of two of the size in TiB
/// (Cinder's brick LVM `create_volume`).
pub fn mirror_region_size(size_gb: u64) -> Option<u64> {
    // Compare in GiB to stay in integers: terabytes >= 1.5 <=> GiB >= 1536.
    if size_gb < 1536 {
        return None;
    }
    let mut region = 1u64;
    // The smallest power of two >= size_gb / 1024.
    while region * 1024 < size_gb {
        region *= 2;
    }
    Some(region)
}
