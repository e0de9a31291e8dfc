//! Options of the LVM driver and of the iSCSI target helpers, with Cinder's
//! names and defaults (`cinder/volume/drivers/lvm.py`,
//! `cinder/volume/driver.py`).

use std::path::PathBuf;

use crate::reader::OptionReader;
use crate::{ConfigError, DefaultOptions};

/// `lvm_type`: how LVs are provisioned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LvmType {
    /// Thick LVs (`lvcreate -L`).
    Default,
    /// Thin LVs in the `<vg>-pool` thin pool (`lvcreate -T -V`).
    Thin,
    /// Thin when the VG is empty or already holds `<vg>-pool`, thick
    /// otherwise (resolved by the driver at start-up, as Cinder does).
    Auto,
}

impl LvmType {
    /// The option's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LvmType::Default => "default",
            LvmType::Thin => "thin",
            LvmType::Auto => "auto",
        }
    }
}

/// `volume_clear`: how the LVM driver wipes a deleted thick LV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeClear {
    /// Overwrite with zeros (`dd if=/dev/zero`).
    Zero,
    /// Do not wipe.
    None,
}

/// The LVM driver's options.
#[derive(Clone, Debug, PartialEq)]
pub struct LvmDriverOptions {
    /// `volume_group` (default `cinder-volumes`).
    pub volume_group: String,
    /// `lvm_type` (default `auto`).
    pub lvm_type: LvmType,
    /// `lvm_mirrors` (default 0): mirror count of new thick LVs.
    pub lvm_mirrors: u32,
    /// `lvm_conf_file` (default `/etc/cinder/lvm.conf`); `None` when set to
    /// `none`. When the file exists, LVM commands run with
    /// `LVM_SYSTEM_DIR=<its directory>`.
    pub lvm_conf_file: Option<PathBuf>,
    /// `lvm_suppress_fd_warnings` (default false): `LVM_SUPPRESS_FD_WARNINGS=1`.
    pub lvm_suppress_fd_warnings: bool,
    /// `lvm_share_target` (default false). Only the nvmet helper supports
    /// shared targets, which Clinker does not have, so `true` is refused.
    pub lvm_share_target: bool,
    /// `volume_clear` (default `zero`).
    pub volume_clear: VolumeClear,
    /// `volume_clear_size` in MiB (default 0 = the whole LV; at most 1024).
    pub volume_clear_size_mib: u32,
    /// `volume_clear_ionice` (e.g. `-c3`): run the wipe under `ionice`.
    pub volume_clear_ionice: Option<String>,
    /// `volume_dd_blocksize` (default `1M`), `dd`'s `bs=`.
    pub volume_dd_blocksize: String,
}

/// `target_helper`: which tool exports volumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetHelperKind {
    /// No target: the file driver's local export (a path). Clinker only.
    None,
    /// tgtd through `tgt-admin`/`tgtadm` (Cinder's default).
    Tgtadm,
    /// The kernel's LIO target through configfs.
    Lioadm,
    /// A target that exports nothing but answers like iSCSI (tests).
    Fake,
}

impl TargetHelperKind {
    /// The option's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetHelperKind::None => "none",
            TargetHelperKind::Tgtadm => "tgtadm",
            TargetHelperKind::Lioadm => "lioadm",
            TargetHelperKind::Fake => "fake",
        }
    }
}

/// `target_protocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetProtocol {
    /// iSCSI over TCP.
    Iscsi,
    /// iSCSI Extensions for RDMA.
    Iser,
}

impl TargetProtocol {
    /// The option's spelling, also the `driver_volume_type` and tgt's
    /// `driver` line.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetProtocol::Iscsi => "iscsi",
            TargetProtocol::Iser => "iser",
        }
    }
}

/// The target options of one backend (`cinder/volume/driver.py`).
#[derive(Clone, Debug, PartialEq)]
pub struct TargetConfig {
    /// `target_helper` (default `tgtadm` for LVM, `none` for the file driver).
    pub target_helper: TargetHelperKind,
    /// `target_prefix` (default `iqn.2010-10.org.openstack:`).
    pub target_prefix: String,
    /// `target_ip_address` (default `$my_ip`).
    pub target_ip_address: String,
    /// `target_secondary_ip_addresses` (deprecated name
    /// `iscsi_secondary_ip_addresses`).
    pub target_secondary_ip_addresses: Vec<String>,
    /// `target_port` (default 3260).
    pub target_port: u16,
    /// `target_protocol` (default `iscsi`).
    pub target_protocol: TargetProtocol,
    /// `volumes_dir` (default `$state_path/volumes`): tgt's per-volume
    /// target files.
    pub volumes_dir: PathBuf,
    /// `iscsi_write_cache` (`on`, the default, or `off`).
    pub iscsi_write_cache: bool,
    /// `iscsi_target_flags`: tgt's `bsoflags` (empty = none).
    pub iscsi_target_flags: Option<String>,
    /// `tgt_conf_file` (Clinker): the tgt configuration `tgt-admin` reads
    /// (`-c`); it must `include <volumes_dir>/*`. Unset = tgt's default
    /// `/etc/tgt/targets.conf`.
    pub tgt_conf_file: Option<PathBuf>,
    /// `tgt_control_port` (Clinker): tgtd's management port (`-C`, 0–32767).
    /// Unset = tgtd's default.
    pub tgt_control_port: Option<u16>,
}

impl TargetConfig {
    /// Cinder's defaults for `helper`, with targets on 127.0.0.1 and target
    /// files in `volumes_dir` (for tests and programmatic set-ups).
    pub fn with_defaults(helper: TargetHelperKind, volumes_dir: PathBuf) -> Self {
        Self {
            target_helper: helper,
            target_prefix: "iqn.2010-10.org.openstack:".into(),
            target_ip_address: "127.0.0.1".into(),
            target_secondary_ip_addresses: Vec::new(),
            target_port: 3260,
            target_protocol: TargetProtocol::Iscsi,
            volumes_dir,
            iscsi_write_cache: true,
            iscsi_target_flags: None,
            tgt_conf_file: None,
            tgt_control_port: None,
        }
    }
}

/// Whether `text` is a `dd` block size: a positive integer without a leading
/// zero, optionally followed by K, M or G (Cinder's `_check_blocksize`).
fn is_dd_blocksize(text: &str) -> bool {
    let digits = text.strip_suffix(['K', 'M', 'G']).unwrap_or(text);
    !digits.is_empty() && !digits.starts_with('0') && digits.chars().all(|c| c.is_ascii_digit())
}

/// Reads `[name]`'s LVM options.
pub(crate) fn read_lvm_options(
    r: &mut OptionReader<'_>,
    name: &str,
    fb: &[&str],
) -> Result<LvmDriverOptions, ConfigError> {
    let volume_group = r.string(name, fb, "volume_group", "cinder-volumes")?;
    if volume_group.is_empty()
        || volume_group.starts_with('-')
        || !volume_group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '_' | '.' | '-'))
    {
        return Err(ConfigError::invalid(
            name,
            "volume_group",
            &volume_group,
            "not a valid LVM volume group name".into(),
        ));
    }
    let lvm_type = match r
        .choice(name, fb, "lvm_type", "auto", &["default", "thin", "auto"])?
        .as_str()
    {
        "default" => LvmType::Default,
        "thin" => LvmType::Thin,
        _ => LvmType::Auto,
    };
    let lvm_mirrors = u32::try_from(r.int(name, fb, "lvm_mirrors", 0, 0..=64)?).unwrap_or(0);
    if lvm_type == LvmType::Thin && lvm_mirrors > 0 {
        return Err(ConfigError::invalid(
            name,
            "lvm_mirrors",
            &lvm_mirrors.to_string(),
            "mirrors need thick LVs; set lvm_type = default".into(),
        ));
    }
    let conf_text = r.string(name, fb, "lvm_conf_file", "/etc/cinder/lvm.conf")?;
    let lvm_conf_file =
        if conf_text.trim().is_empty() || conf_text.trim().eq_ignore_ascii_case("none") {
            None
        } else {
            Some(PathBuf::from(conf_text.trim()))
        };
    let lvm_share_target = r.bool(name, fb, "lvm_share_target", false)?;
    if lvm_share_target {
        return Err(ConfigError::invalid(
            name,
            "lvm_share_target",
            "true",
            "shared targets need the nvmet target helper, which Clinker does not provide".into(),
        ));
    }
    let volume_clear = match r
        .choice(name, fb, "volume_clear", "zero", &["zero", "none"])?
        .as_str()
    {
        "none" => VolumeClear::None,
        _ => VolumeClear::Zero,
    };
    let volume_clear_size_mib =
        u32::try_from(r.int(name, fb, "volume_clear_size", 0, 0..=1024)?).unwrap_or(0);
    let volume_dd_blocksize = r.string(name, fb, "volume_dd_blocksize", "1M")?;
    if !is_dd_blocksize(volume_dd_blocksize.trim()) {
        return Err(ConfigError::invalid(
            name,
            "volume_dd_blocksize",
            &volume_dd_blocksize,
            "must be a positive block size such as 512, 64K, 1M or 1G".into(),
        ));
    }
    Ok(LvmDriverOptions {
        volume_group,
        lvm_type,
        lvm_mirrors,
        lvm_conf_file,
        lvm_suppress_fd_warnings: r.bool(name, fb, "lvm_suppress_fd_warnings", false)?,
        lvm_share_target,
        volume_clear,
        volume_clear_size_mib,
        volume_clear_ionice: r.opt_string(name, fb, "volume_clear_ionice")?,
        volume_dd_blocksize: volume_dd_blocksize.trim().to_owned(),
    })
}

/// Reads `[name]`'s target options; `default_helper` depends on the driver.
pub(crate) fn read_target_config(
    r: &mut OptionReader<'_>,
    name: &str,
    fb: &[&str],
    default: &DefaultOptions,
    default_helper: TargetHelperKind,
) -> Result<TargetConfig, ConfigError> {
    let target_helper = match r
        .choice(
            name,
            fb,
            "target_helper",
            default_helper.as_str(),
            &["tgtadm", "lioadm", "fake", "none"],
        )?
        .as_str()
    {
        "tgtadm" => TargetHelperKind::Tgtadm,
        "lioadm" => TargetHelperKind::Lioadm,
        "fake" => TargetHelperKind::Fake,
        _ => TargetHelperKind::None,
    };
    let target_prefix = r.string(name, fb, "target_prefix", "iqn.2010-10.org.openstack:")?;
    if target_prefix.chars().any(char::is_whitespace) {
        return Err(ConfigError::invalid(
            name,
            "target_prefix",
            &target_prefix,
            "may not contain spaces (it is part of provider_location)".into(),
        ));
    }
    let target_ip_address = r.string(name, fb, "target_ip_address", &default.my_ip)?;
    let valid_address = |a: &str| !a.is_empty() && !a.contains([' ', ',', ';', '/']);
    if !valid_address(&target_ip_address) {
        return Err(ConfigError::invalid(
            name,
            "target_ip_address",
            &target_ip_address,
            "must be an IP address or host name".into(),
        ));
    }
    let secondary = match r.raw(name, fb, "target_secondary_ip_addresses")? {
        Some(_) => r.list(name, fb, "target_secondary_ip_addresses", &[])?,
        None => r.list(name, fb, "iscsi_secondary_ip_addresses", &[])?,
    };
    if let Some(bad) = secondary.iter().find(|a| !valid_address(a)) {
        return Err(ConfigError::invalid(
            name,
            "target_secondary_ip_addresses",
            bad,
            "must be IP addresses or host names".into(),
        ));
    }
    let target_port =
        u16::try_from(r.int(name, fb, "target_port", 3260, 1..=65_535)?).unwrap_or(3260);
    let target_protocol = match r
        .choice(name, fb, "target_protocol", "iscsi", &["iscsi", "iser"])?
        .as_str()
    {
        "iser" => TargetProtocol::Iser,
        _ => TargetProtocol::Iscsi,
    };
    let volumes_dir = r
        .opt_string(name, fb, "volumes_dir")?
        .map(PathBuf::from)
        .unwrap_or_else(|| default.state_path.join("volumes"));
    let iscsi_write_cache = r.choice(name, fb, "iscsi_write_cache", "on", &["on", "off"])? == "on";
    let iscsi_target_flags = r
        .opt_string(name, fb, "iscsi_target_flags")?
        .map(|f| f.trim().to_owned())
        .filter(|f| !f.is_empty());
    if let Some(flags) = &iscsi_target_flags
        && flags.contains(['\n', '<', '>'])
    {
        return Err(ConfigError::invalid(
            name,
            "iscsi_target_flags",
            flags,
            "must be one line of tgt bsoflags".into(),
        ));
    }
    let tgt_control_port = match r.raw(name, fb, "tgt_control_port")? {
        // tgtd refuses control ports above 32767.
        Some(_) => {
            Some(u16::try_from(r.int(name, fb, "tgt_control_port", 0, 0..=32_767)?).unwrap_or(0))
        }
        None => None,
    };
    Ok(TargetConfig {
        target_helper,
        target_prefix,
        target_ip_address,
        target_secondary_ip_addresses: secondary,
        target_port,
        target_protocol,
        volumes_dir,
        iscsi_write_cache,
        iscsi_target_flags,
        tgt_conf_file: r.opt_string(name, fb, "tgt_conf_file")?.map(PathBuf::from),
        tgt_control_port,
    })
}
