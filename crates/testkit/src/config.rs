//! Configuration for tests: `cinder.conf` text to the validated
//! [`Config`] the services take, and a backend section built directly for
//! driver tests.

use std::path::Path;

use clinker_config::{
    BackendConfig, Config, ConfigEnv, DriverConfig, FileDriverOptions, Ini, LvmDriverOptions,
    LvmType, OverSubscription, ReflinkMode, TargetConfig, TargetHelperKind, VolumeClear,
};

/// Parses `cinder.conf` text as read from `test.conf` on a machine called
/// `hostname`.
///
/// # Panics
/// When the text is not a valid configuration.
pub fn parse(text: &str, hostname: &str) -> Config {
    let mut ini = Ini::default();
    ini.merge_text(text, "test.conf").unwrap();
    Config::from_ini(
        &ini,
        &ConfigEnv {
            hostname: hostname.into(),
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// `[DEFAULT]` for a test node: `host`, `state_path` in `dir`, reports
/// every second and no start-up jitter, followed by `extra`.
pub fn default_section(host: &str, dir: &Path, extra: &str) -> String {
    format!(
        "[DEFAULT]\nhost = {host}\nstate_path = {}\nreport_interval = 1\nperiodic_fuzzy_delay = 0\n\
         scheduler_driver_init_wait_time = 5\n{extra}\n",
        dir.display()
    )
}

/// One file backend called `file`.
pub const FILE_BACKEND: &str = "enabled_backends = file\n[file]\nvolume_driver = file\n";

/// Two file backends, `file` and `file2`, each its own
/// `volume_backend_name`.
pub const TWO_FILE_BACKENDS: &str = "enabled_backends = file,file2\n\
    [file]\nvolume_driver = file\nvolume_backend_name = file\n\
    [file2]\nvolume_driver = file\nvolume_backend_name = file2\n";

/// A backend section as the config crate would build it from
/// `[name] volume_driver = …`, with Cinder's defaults for the rest.
pub fn backend(name: &str, driver: DriverConfig, target: TargetConfig) -> BackendConfig {
    BackendConfig {
        name: name.into(),
        volume_backend_name: name.into(),
        backend_host: None,
        availability_zone: None,
        reserved_percentage: 0,
        max_over_subscription_ratio: OverSubscription::Ratio(20.0),
        driver,
        target,
    }
}

/// The file driver's options for `volumes_dir` (unlimited capacity,
/// reflink when the filesystem can).
pub fn file_options(volumes_dir: &Path) -> FileDriverOptions {
    FileDriverOptions {
        volumes_dir: volumes_dir.to_path_buf(),
        capacity_gb: 0.0,
        reflink: ReflinkMode::Auto,
    }
}

/// A `file` backend in `volumes_dir` exported through `target`.
pub fn file_backend(volumes_dir: &Path, target: TargetConfig) -> BackendConfig {
    backend(
        "file",
        DriverConfig::File(file_options(volumes_dir)),
        target,
    )
}

/// No export (`target_helper` unset), target state under `dir`.
pub fn no_target(dir: &Path) -> TargetConfig {
    TargetConfig::with_defaults(TargetHelperKind::None, dir.join("targets"))
}

/// The LVM driver's options for `volume_group` with Cinder's defaults
/// (no mirrors, the host's `lvm.conf`, the whole volume cleared).
pub fn lvm_options(volume_group: &str, lvm_type: LvmType, clear: VolumeClear) -> LvmDriverOptions {
    LvmDriverOptions {
        volume_group: volume_group.into(),
        lvm_type,
        lvm_mirrors: 0,
        lvm_conf_file: None,
        lvm_suppress_fd_warnings: false,
        lvm_share_target: false,
        volume_clear: clear,
        volume_clear_size_mib: 0,
        volume_clear_ionice: None,
        volume_dd_blocksize: "1M".into(),
    }
}
