//! `cinder.conf` for Clinker: INI files with Cinder's option names, read
//! once at start-up into a typed, validated [`Config`].
//!
//! An unknown option is a warning that names it ([`Config::warnings`]); an
//! invalid value stops start-up with the section, option and value named
//! ([`ConfigError::InvalidValue`]). The environment (host name, working
//! directory) is passed in explicitly through [`ConfigEnv`].
//!
//! Depends only on `clinker-types`.

mod auth;
mod backup;
mod glance;
mod ini;
mod lvm;
mod messaging;
mod ops;
mod rbd;
mod reader;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use auth::{AuthOptions, KeystoneAuthtokenOptions, OsloPolicyOptions, SessionTlsOptions};
pub use backup::{
    BackupDriverKind, BackupOptions, CephBackupOptions, DEFAULT_BACKUP_FILE_SIZE,
    PosixBackupOptions, S3BackupOptions, SwiftAuthMode, SwiftBackupOptions,
};
pub use glance::{BackendImageOptions, GlanceCatalogInfo, ImageOptions};
pub use ini::{Ini, IniSyntaxError};
pub use lvm::{
    LvmDriverOptions, LvmType, TargetConfig, TargetHelperKind, TargetProtocol, VolumeClear,
};
pub use messaging::{MessagingOptions, RabbitSslOptions, TlsVersion};
pub use ops::{
    ALL_IN_ONE_METRICS_LISTEN, HealthcheckOptions, LogFormat, MetricsOptions, OpsOptions,
    SslOptions,
};
pub use rbd::RbdDriverOptions;
use reader::OptionReader;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line could not be parsed.
    #[error("config syntax error at {0}")]
    Syntax(#[from] IniSyntaxError),
    /// An option has a value Clinker cannot use.
    #[error("invalid value {value:?} for option {option} in section [{section}]: {reason}")]
    InvalidValue {
        /// The section.
        section: String,
        /// The option.
        option: String,
        /// The offending value.
        value: String,
        /// What is expected.
        reason: String,
    },
    /// A required option or section is missing.
    #[error("{0}")]
    Missing(String),
}

impl ConfigError {
    pub(crate) fn invalid(section: &str, option: &str, value: &str, reason: String) -> Self {
        ConfigError::InvalidValue {
            section: section.to_owned(),
            option: option.to_owned(),
            // The message is printed and logged: no secret in it.
            value: clinker_types::redact::redact_option(option, value),
            reason,
        }
    }
}

/// One option as `clinker manage config sample` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleOption {
    /// The section.
    pub section: String,
    /// The option.
    pub option: String,
    /// Its default, when it has a fixed one (`None`: unset by default, or
    /// computed from other options).
    pub default: Option<String>,
}

/// Facts about the machine that defaults depend on.
#[derive(Clone, Debug)]
pub struct ConfigEnv {
    /// The machine's host name (the default of `[DEFAULT] host`).
    pub hostname: String,
}

/// How API requests are authenticated (`[DEFAULT] auth_strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthStrategy {
    /// No authentication: `X-Auth-Token: user:project`, admin context.
    Noauth,
    /// Like `noauth`, Cinder's variant that expects the project id in URLs.
    NoauthIncludeProjectId,
    /// Keystone tokens (`[keystone_authtoken]`).
    Keystone,
    /// HTTP basic auth against an htpasswd file.
    HttpBasic,
}

impl AuthStrategy {
    /// The option's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthStrategy::Noauth => "noauth",
            AuthStrategy::NoauthIncludeProjectId => "noauth_include_project_id",
            AuthStrategy::Keystone => "keystone",
            AuthStrategy::HttpBasic => "http_basic",
        }
    }

    /// Whether requests are trusted without credentials.
    pub fn is_noauth(self) -> bool {
        matches!(
            self,
            AuthStrategy::Noauth | AuthStrategy::NoauthIncludeProjectId
        )
    }
}

/// `[DEFAULT]` options Clinker uses.
#[derive(Clone, Debug)]
pub struct DefaultOptions {
    /// `host`: this node's name.
    pub host: String,
    /// `state_path`: where state lives (SQLite file, file backend, target files).
    pub state_path: PathBuf,
    /// `enabled_backends`: backend section names served by the volume service.
    pub enabled_backends: Vec<String>,
    /// `default_volume_type`.
    pub default_volume_type: String,
    /// `default_group_type`: what `GET /group_types/default` shows (unset by
    /// default, as in Cinder).
    pub default_group_type: Option<String>,
    /// `storage_availability_zone`: the zone of this node's services.
    pub storage_availability_zone: String,
    /// `default_availability_zone`: the zone for volumes that ask for none.
    pub default_availability_zone: String,
    /// `allow_availability_zone_fallback`.
    pub allow_availability_zone_fallback: bool,
    /// `osapi_volume_listen`.
    pub osapi_volume_listen: String,
    /// `osapi_volume_listen_port`.
    pub osapi_volume_listen_port: u16,
    /// `osapi_max_limit`: page size cap and default.
    pub osapi_max_limit: u32,
    /// `az_cache_duration`: how long the API keeps the list of
    /// availability zones it checks creates against (a zone it does not
    /// know yet makes it look again at once).
    pub az_cache_duration: std::time::Duration,
    /// `public_endpoint`: base URL for links, instead of the request's host.
    pub public_endpoint: Option<String>,
    /// `[oslo_middleware] enable_proxy_headers_parsing`: whether links
    /// follow `Forwarded` / `X-Forwarded-Proto` / `X-Forwarded-Host` (off by
    /// default, as in oslo.middleware: anyone can send those headers).
    pub enable_proxy_headers_parsing: bool,
    /// `auth_strategy`.
    pub auth_strategy: AuthStrategy,
    /// `noauth_allow_remote` (Clinker): allow noauth on a non-loopback address.
    pub noauth_allow_remote: bool,
    /// `report_interval` seconds.
    pub report_interval: u64,
    /// `periodic_interval` seconds.
    pub periodic_interval: u64,
    /// `periodic_fuzzy_delay` seconds.
    pub periodic_fuzzy_delay: u64,
    /// `service_down_time` seconds (raised to 2.5 × report_interval if not
    /// larger than it, as Cinder's `basic_config_check` does).
    pub service_down_time: u64,
    /// `backend_stats_polling_interval` seconds.
    pub backend_stats_polling_interval: u64,
    /// `scheduler_max_attempts`.
    pub scheduler_max_attempts: u32,
    /// `scheduler_driver_init_wait_time` seconds.
    pub scheduler_driver_init_wait_time: u64,
    /// `scheduler_default_filters`.
    pub scheduler_default_filters: Vec<String>,
    /// `scheduler_default_weighers`.
    pub scheduler_default_weighers: Vec<String>,
    /// `capacity_weight_multiplier`.
    pub capacity_weight_multiplier: f64,
    /// `quota_volumes`.
    pub quota_volumes: i64,
    /// `quota_snapshots`.
    pub quota_snapshots: i64,
    /// `quota_gigabytes`.
    pub quota_gigabytes: i64,
    /// `quota_backups`.
    pub quota_backups: i64,
    /// `quota_backup_gigabytes`.
    pub quota_backup_gigabytes: i64,
    /// `quota_groups`.
    pub quota_groups: i64,
    /// `per_volume_size_limit` (-1 = unlimited).
    pub per_volume_size_limit: i64,
    /// `no_snapshot_gb_quota`: snapshots do not count towards gigabytes.
    pub no_snapshot_gb_quota: bool,
    /// `rpc_response_timeout` seconds.
    pub rpc_response_timeout: u64,
    /// `transport_url` (`rabbit://…`); `None` = the in-process bus.
    pub transport_url: Option<String>,
    /// `control_exchange`.
    pub control_exchange: String,
    /// `my_ip`.
    pub my_ip: String,
    /// `message_ttl` seconds for user messages.
    pub message_ttl: u64,
    /// `debug`.
    pub debug: bool,
    /// `graceful_shutdown_timeout` seconds for in-flight work at shutdown.
    pub graceful_shutdown_timeout: u64,
}

/// `[database]` options.
#[derive(Clone, Debug)]
pub struct DatabaseOptions {
    /// `connection`: an SQLAlchemy-style URL (`sqlite:///…`,
    /// `postgresql://…`, `mysql+pymysql://…`).
    pub connection: String,
    /// `max_pool_size`: connections kept open (oslo.db's default, 5).
    pub max_pool_size: u32,
    /// `max_overflow`: connections opened beyond `max_pool_size` under load
    /// and closed when idle (oslo.db's default, 50).
    pub max_overflow: u32,
    /// `pool_timeout` seconds a request waits for a connection before it is
    /// answered 503 (oslo.db's default, 30).
    pub pool_timeout: u64,
    /// `connection_recycle_time` seconds after which a connection is
    /// replaced (oslo.db's default, 3600).
    pub connection_recycle_time: u64,
    /// `max_retries`: how many times a process starting retries a database
    /// it cannot reach (oslo.db's default, 10; -1 for ever).
    pub max_retries: i64,
    /// `retry_interval` seconds between those retries (oslo.db's default, 10).
    pub retry_interval: u64,
}

/// `max_over_subscription_ratio`: a number, or `auto`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OverSubscription {
    /// A fixed ratio.
    Ratio(f64),
    /// Computed from the provisioned and used capacity.
    Auto,
}

/// The file driver's options.
#[derive(Clone, Debug)]
pub struct FileDriverOptions {
    /// `file_volumes_dir`: where volume files live (default
    /// `$state_path/volumes/<backend>`). The driver never touches a path
    /// outside it.
    pub volumes_dir: PathBuf,
    /// `file_capacity_gb`: the pool's size; 0 means the filesystem's.
    pub capacity_gb: f64,
    /// `file_reflink`: `auto` (reflink where supported, sparse copy
    /// otherwise), `always`, or `never`.
    pub reflink: ReflinkMode,
}

/// When the file driver uses reflinks for snapshots and clones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReflinkMode {
    /// Try a reflink, fall back to a sparse copy.
    Auto,
    /// Reflink or fail.
    Always,
    /// Always a sparse copy.
    Never,
}

/// The fake driver's options (an in-memory backend for tests and Tempest).
#[derive(Clone, Debug)]
pub struct FakeDriverOptions {
    /// `fake_capacity_gb`: total capacity reported (0 = `infinite`).
    pub capacity_gb: f64,
    /// `fake_fail_create`: every create fails (to exercise rescheduling).
    pub fail_create: bool,
}

/// Which driver a backend runs, with its own options.
#[derive(Clone, Debug)]
pub enum DriverConfig {
    /// Sparse files in a directory.
    File(FileDriverOptions),
    /// No storage at all; accepts everything (Cinder's fake driver).
    Fake(FakeDriverOptions),
    /// Logical volumes in an LVM volume group (Cinder's `LVMVolumeDriver`).
    Lvm(LvmDriverOptions),
    /// Ceph RBD images in a pool (Cinder's `RBDDriver`).
    Rbd(RbdDriverOptions),
}

impl DriverConfig {
    /// The short name.
    pub fn short_name(&self) -> &'static str {
        match self {
            DriverConfig::File(_) => "file",
            DriverConfig::Fake(_) => "fake",
            DriverConfig::Lvm(_) => "lvm",
            DriverConfig::Rbd(_) => "rbd",
        }
    }
}

/// One `enabled_backends` section.
#[derive(Clone, Debug)]
pub struct BackendConfig {
    /// The section name (the `backend` of `host@backend`).
    pub name: String,
    /// `volume_backend_name` (defaults to the section name).
    pub volume_backend_name: String,
    /// `backend_host`: overrides `[DEFAULT] host` for this backend.
    pub backend_host: Option<String>,
    /// `backend_availability_zone`: overrides `storage_availability_zone`.
    pub availability_zone: Option<String>,
    /// `reserved_percentage` (0–100).
    pub reserved_percentage: u8,
    /// `max_over_subscription_ratio`.
    pub max_over_subscription_ratio: OverSubscription,
    /// `volume_driver` and its options.
    pub driver: DriverConfig,
    /// The `target_*` options: how volumes are exported.
    pub target: TargetConfig,
}

/// The whole, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `[DEFAULT]`.
    pub default: DefaultOptions,
    /// `[database]`.
    pub database: DatabaseOptions,
    /// `[oslo_messaging_rabbit]`.
    pub messaging: MessagingOptions,
    /// The enabled backends, in `enabled_backends` order.
    pub backends: Vec<BackendConfig>,
    /// Authentication (`[keystone_authtoken]`, http basic) and policy
    /// (`[oslo_policy]`).
    pub auth: AuthOptions,
    /// Glance, image conversion and the image-volume cache (per backend).
    pub image: ImageOptions,
    /// The backup service's options (`backup_*` in `[DEFAULT]`).
    pub backup: BackupOptions,
    /// Health check, log format, metrics and TLS on the API listener.
    pub ops: OpsOptions,
    /// Unknown options and sections, one line each, for the log.
    pub warnings: Vec<String>,
}

/// The configuration `clinker serve` uses when given no file: one `file`
/// backend under `./clinker-data`.
pub const ALL_IN_ONE_DEFAULTS: &str = "\
[DEFAULT]
state_path = ./clinker-data
enabled_backends = file

[file]
volume_driver = file
volume_backend_name = file
";

/// Options Cinder deployments commonly set that Clinker accepts without
/// effect (logging, paste, rootwrap, workers). They are not warned about.
const ACCEPTED_DEFAULT_OPTIONS: &[&str] = &[
    "verbose",
    "log_dir",
    "log_file",
    "use_stderr",
    "use_syslog",
    "logging_context_format_string",
    "api_paste_config",
    "rootwrap_config",
    "osapi_volume_workers",
    "enable_v3_api",
    "enable_v2_api",
    "os_region_name",
    "volume_name_template",
    "snapshot_name_template",
    "lock_path",
    "iscsi_helper",
    "target_helper",
];

/// Sections Clinker reads or deliberately ignores.
const KNOWN_SECTIONS: &[&str] = &[
    "DEFAULT",
    "database",
    "backend_defaults",
    "keystone_authtoken",
    "oslo_messaging_rabbit",
    "oslo_messaging_notifications",
    "oslo_concurrency",
    "oslo_policy",
    "oslo_middleware",
    "coordination",
    "nova",
    "key_manager",
    "barbican",
    "privsep",
    "glance",
    "healthcheck",
    "metrics",
    "ssl",
];

const BACKEND_FALLBACK: &[&str] = &["backend_defaults"];

impl Config {
    /// Reads and validates the given files (later ones override earlier
    /// ones). With no files, uses [`ALL_IN_ONE_DEFAULTS`].
    ///
    /// # Errors
    /// Unreadable files, syntax errors, invalid values.
    pub fn load(files: &[PathBuf], env: &ConfigEnv) -> Result<Self, ConfigError> {
        Self::load_with(files, env, false)
    }

    /// Like [`Config::load`] for the all-in-one (`clinker serve`): files
    /// that enable no backend (no `enabled_backends` option at all) get the
    /// built-in `file` backend, as running with no file does, instead of a
    /// volume service with nothing to serve.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_all_in_one(files: &[PathBuf], env: &ConfigEnv) -> Result<Self, ConfigError> {
        Self::load_with(files, env, true)
    }

    fn load_with(
        files: &[PathBuf],
        env: &ConfigEnv,
        default_backend: bool,
    ) -> Result<Self, ConfigError> {
        let mut ini = Ini::default();
        if files.is_empty() {
            ini.merge_text(ALL_IN_ONE_DEFAULTS, "<built-in defaults>")?;
        }
        for path in files {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            ini.merge_text(&text, &path.display().to_string())?;
        }
        if default_backend && ini.get("DEFAULT", "enabled_backends").is_none() {
            let mut text = String::from("[DEFAULT]\nenabled_backends = file\n");
            if !ini.section_names().any(|s| s == "file") {
                text.push_str("[file]\nvolume_driver = file\nvolume_backend_name = file\n");
            }
            ini.merge_text(&text, "<built-in defaults>")?;
        }
        let mut config = Self::from_ini_for(&ini, env, default_backend)?;
        // oslo.config looks for a relative `policy_file` next to the
        // configuration files, the last one first.
        config.auth.oslo_policy.config_dirs = files
            .iter()
            .rev()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .map(|d| {
                if d.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    d
                }
            })
            .collect();
        Ok(config)
    }

    /// Validates already-parsed INI text.
    ///
    /// # Errors
    /// Invalid values or a backend without a usable driver.
    pub fn from_ini(ini: &Ini, env: &ConfigEnv) -> Result<Self, ConfigError> {
        Self::from_ini_for(ini, env, false)
    }

    /// Every option Clinker reads, section by section, with its default:
    /// the options of `[DEFAULT]`, the database, messaging, Keystone,
    /// Glance, backups, operations, and one backend section per driver
    /// (`[file]`, `[fake]`, `[lvm]`, `[rbd]`) — what `clinker manage config
    /// sample` prints. Options accepted only for compatibility are left
    /// out.
    pub fn sample() -> Vec<SampleOption> {
        let mut ini = Ini::default();
        let layout = "[DEFAULT]\nauth_strategy = keystone\nenabled_backends = file,fake,lvm,rbd\n\
            [keystone_authtoken]\nauth_url = http://keystone:5000\nusername = cinder\n\
            password = x\nproject_name = service\nuser_domain_name = Default\n\
            project_domain_name = Default\n\
            [file]\nvolume_driver = file\n[fake]\nvolume_driver = fake\n\
            [lvm]\nvolume_driver = lvm\n[rbd]\nvolume_driver = rbd\n";
        let env = ConfigEnv {
            hostname: "<hostname>".to_owned(),
        };
        let mut asked = Vec::new();
        if ini.merge_text(layout, "<sample layout>").is_ok() {
            // The layout is valid by construction; a failure leaves the
            // options read before it.
            let _ = Self::read(&ini, &env, false, Some(&mut asked));
        }
        asked
    }

    /// [`Config::from_ini`], with the all-in-one's defaults when
    /// `all_in_one` (metrics on `127.0.0.1`).
    fn from_ini_for(ini: &Ini, env: &ConfigEnv, all_in_one: bool) -> Result<Self, ConfigError> {
        Self::read(ini, env, all_in_one, None)
    }

    fn read(
        ini: &Ini,
        env: &ConfigEnv,
        all_in_one: bool,
        asked: Option<&mut Vec<SampleOption>>,
    ) -> Result<Self, ConfigError> {
        let mut builtins = BTreeMap::new();
        builtins.insert("state_path", "/var/lib/cinder".to_owned());
        builtins.insert("host", env.hostname.clone());
        builtins.insert("my_ip", "127.0.0.1".to_owned());
        let mut r = OptionReader::new(ini, builtins);
        let config = Self::read_with(&mut r, ini, env, all_in_one);
        if let Some(asked) = asked {
            *asked = std::mem::take(&mut r.asked);
        }
        config
    }

    fn read_with(
        r: &mut OptionReader<'_>,
        ini: &Ini,
        env: &ConfigEnv,
        all_in_one: bool,
    ) -> Result<Self, ConfigError> {
        let default = read_default_options(r, env)?;
        let database = DatabaseOptions {
            connection: r.string(
                "database",
                &[],
                "connection",
                &format!(
                    "sqlite:///{}",
                    default.state_path.join("clinker.sqlite").display()
                ),
            )?,
            max_pool_size: u32::try_from(r.int("database", &[], "max_pool_size", 5, 1..=1000)?)
                .unwrap_or(5),
            max_overflow: u32::try_from(r.int("database", &[], "max_overflow", 50, 0..=1000)?)
                .unwrap_or(50),
            pool_timeout: u64::try_from(r.int("database", &[], "pool_timeout", 30, 1..=3600)?)
                .unwrap_or(30),
            connection_recycle_time: u64::try_from(r.int(
                "database",
                &[],
                "connection_recycle_time",
                3600,
                1..=i64::from(u32::MAX),
            )?)
            .unwrap_or(3600),
            max_retries: r.int("database", &[], "max_retries", 10, -1..=i64::from(u32::MAX))?,
            retry_interval: u64::try_from(r.int(
                "database",
                &[],
                "retry_interval",
                10,
                0..=3600,
            )?)
            .unwrap_or(10),
        };
        r.accept("database", "db_max_retries");
        let messaging = messaging::read_messaging_options(r)?;
        let mut backends = Vec::with_capacity(default.enabled_backends.len());
        for name in &default.enabled_backends {
            if ini.option_names(name).is_empty() && !ini.section_names().any(|s| s == name) {
                return Err(ConfigError::Missing(format!(
                    "enabled_backends names [{name}] but the config has no such section"
                )));
            }
            backends.push(read_backend(r, name, &default)?);
        }
        let auth = auth::read_auth_options(r, default.auth_strategy, Vec::new())?;
        let image = glance::read_image_options(
            r,
            &default.state_path,
            &default.enabled_backends,
            BACKEND_FALLBACK,
        )?;
        let backup = backup::read_backup_options(r, &default.state_path)?;
        let ops = ops::read_ops_options(r, all_in_one)?;
        let mut warnings = auth::auth_warnings(r)?;
        for section in ini.section_names() {
            let is_backend = default.enabled_backends.iter().any(|b| b == section);
            if !is_backend && !KNOWN_SECTIONS.contains(&section) {
                warnings.push(format!(
                    "section [{section}] is not used (not in enabled_backends)"
                ));
                continue;
            }
            if section == "DEFAULT" {
                for option in ACCEPTED_DEFAULT_OPTIONS {
                    r.accept("DEFAULT", option);
                }
            }
            if section == "oslo_messaging_rabbit" {
                for accepted in [
                    "rabbit_ha_queues",
                    "heartbeat_rate",
                    "rabbit_retry_interval",
                    "rabbit_retry_backoff",
                    "kombu_reconnect_delay",
                ] {
                    r.accept(section, accepted);
                }
            }
            if matches!(
                section,
                "DEFAULT"
                    | "database"
                    | "backend_defaults"
                    | "oslo_messaging_rabbit"
                    | "keystone_authtoken"
                    | "oslo_policy"
                    | "oslo_middleware"
                    | "healthcheck"
                    | "metrics"
                    | "ssl"
            ) || is_backend
            {
                for option in r.unconsumed(section) {
                    warnings.push(format!(
                        "unknown option {option} in section [{section}] is ignored"
                    ));
                }
            }
        }
        Ok(Config {
            default,
            database,
            messaging,
            backends,
            auth,
            image,
            backup,
            ops,
            warnings,
        })
    }
}

fn read_default_options(
    r: &mut OptionReader<'_>,
    env: &ConfigEnv,
) -> Result<DefaultOptions, ConfigError> {
    const D: &str = "DEFAULT";
    let host = r.string(D, &[], "host", &env.hostname)?;
    if host.is_empty() || host.contains(['@', '#', '/', ' ']) {
        return Err(ConfigError::invalid(
            D,
            "host",
            &host,
            "must be a non-empty name without @, #, / or spaces".into(),
        ));
    }
    let state_path = PathBuf::from(r.string(D, &[], "state_path", "/var/lib/cinder")?);
    let enabled_backends = r.list(D, &[], "enabled_backends", &[])?;
    for backend in &enabled_backends {
        if backend.contains(['@', '#', '/', ' ', '.']) || backend.is_empty() {
            return Err(ConfigError::invalid(
                D,
                "enabled_backends",
                backend,
                "backend names may not contain @, #, /, . or spaces".into(),
            ));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = enabled_backends.iter().find(|b| !seen.insert(b.as_str())) {
        return Err(ConfigError::invalid(
            D,
            "enabled_backends",
            dup,
            "listed twice".into(),
        ));
    }
    let storage_availability_zone = r.string(D, &[], "storage_availability_zone", "nova")?;
    let default_availability_zone = r
        .opt_string(D, &[], "default_availability_zone")?
        .unwrap_or_else(|| storage_availability_zone.clone());
    let auth_strategy = match r
        .choice(
            D,
            &[],
            "auth_strategy",
            "noauth",
            &[
                "noauth",
                "noauth_include_project_id",
                "keystone",
                "http_basic",
            ],
        )?
        .as_str()
    {
        "keystone" => AuthStrategy::Keystone,
        "http_basic" => AuthStrategy::HttpBasic,
        "noauth_include_project_id" => AuthStrategy::NoauthIncludeProjectId,
        _ => AuthStrategy::Noauth,
    };
    let report_interval = r
        .int(D, &[], "report_interval", 10, 1..=86_400)?
        .unsigned_abs();
    let mut service_down_time = r
        .int(D, &[], "service_down_time", 60, 1..=86_400)?
        .unsigned_abs();
    if service_down_time <= report_interval {
        // Cinder's Service.basic_config_check does the same.
        service_down_time = report_interval * 5 / 2;
    }
    let port = r.int(D, &[], "osapi_volume_listen_port", 8776, 0..=65_535)?;
    let quota = |r: &mut OptionReader<'_>, name: &str, default: i64| {
        r.int(D, &[], name, default, -1..=i64::from(i32::MAX))
    };
    Ok(DefaultOptions {
        host,
        state_path,
        enabled_backends,
        default_volume_type: r.string(D, &[], "default_volume_type", "__DEFAULT__")?,
        default_group_type: r.opt_string(D, &[], "default_group_type")?,
        storage_availability_zone,
        default_availability_zone,
        allow_availability_zone_fallback: r.bool(
            D,
            &[],
            "allow_availability_zone_fallback",
            false,
        )?,
        osapi_volume_listen: r.string(D, &[], "osapi_volume_listen", "127.0.0.1")?,
        osapi_volume_listen_port: u16::try_from(port).unwrap_or(8776),
        osapi_max_limit: u32::try_from(r.int(D, &[], "osapi_max_limit", 1000, 1..=100_000)?)
            .unwrap_or(1000),
        az_cache_duration: std::time::Duration::from_secs(
            r.int(D, &[], "az_cache_duration", 3600, 0..=i64::from(u32::MAX))?
                .unsigned_abs(),
        ),
        public_endpoint: r.opt_string(D, &[], "public_endpoint")?,
        enable_proxy_headers_parsing: r.bool(
            "oslo_middleware",
            &[],
            "enable_proxy_headers_parsing",
            false,
        )?,
        auth_strategy,
        noauth_allow_remote: r.bool(D, &[], "noauth_allow_remote", false)?,
        report_interval,
        periodic_interval: r
            .int(D, &[], "periodic_interval", 60, 1..=86_400)?
            .unsigned_abs(),
        periodic_fuzzy_delay: r
            .int(D, &[], "periodic_fuzzy_delay", 60, 0..=86_400)?
            .unsigned_abs(),
        service_down_time,
        backend_stats_polling_interval: r
            .int(D, &[], "backend_stats_polling_interval", 60, 3..=86_400)?
            .unsigned_abs(),
        scheduler_max_attempts: u32::try_from(r.int(
            D,
            &[],
            "scheduler_max_attempts",
            3,
            1..=100,
        )?)
        .unwrap_or(3),
        scheduler_driver_init_wait_time: r
            .int(D, &[], "scheduler_driver_init_wait_time", 60, 0..=3600)?
            .unsigned_abs(),
        scheduler_default_filters: r.list(
            D,
            &[],
            "scheduler_default_filters",
            &[
                "AvailabilityZoneFilter",
                "CapacityFilter",
                "CapabilitiesFilter",
            ],
        )?,
        scheduler_default_weighers: r.list(
            D,
            &[],
            "scheduler_default_weighers",
            &["CapacityWeigher"],
        )?,
        capacity_weight_multiplier: {
            let text = r.string(D, &[], "capacity_weight_multiplier", "1.0")?;
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    ConfigError::invalid(
                        D,
                        "capacity_weight_multiplier",
                        &text,
                        "not a number".into(),
                    )
                })?
        },
        quota_volumes: quota(r, "quota_volumes", 10)?,
        quota_snapshots: quota(r, "quota_snapshots", 10)?,
        quota_gigabytes: quota(r, "quota_gigabytes", 1000)?,
        quota_backups: quota(r, "quota_backups", 10)?,
        quota_backup_gigabytes: quota(r, "quota_backup_gigabytes", 1000)?,
        quota_groups: quota(r, "quota_groups", 10)?,
        per_volume_size_limit: quota(r, "per_volume_size_limit", -1)?,
        no_snapshot_gb_quota: r.bool(D, &[], "no_snapshot_gb_quota", false)?,
        rpc_response_timeout: r
            .int(D, &[], "rpc_response_timeout", 60, 1..=86_400)?
            .unsigned_abs(),
        transport_url: r.opt_string(D, &[], "transport_url")?,
        control_exchange: r.string(D, &[], "control_exchange", "cinder")?,
        my_ip: r.string(D, &[], "my_ip", "127.0.0.1")?,
        message_ttl: r
            .int(D, &[], "message_ttl", 2_592_000, 1..=i64::from(i32::MAX))?
            .unsigned_abs(),
        debug: r.bool(D, &[], "debug", false)?,
        graceful_shutdown_timeout: r
            .int(D, &[], "graceful_shutdown_timeout", 60, 0..=86_400)?
            .unsigned_abs(),
    })
}

/// Maps `volume_driver` (a short name or a Cinder class path) to a driver.
fn driver_kind(section: &str, value: &str) -> Result<&'static str, ConfigError> {
    let kind = match value.trim() {
        "file" | "clinker.file" => "file",
        "fake"
        | "cinder.tests.fake_driver.FakeLoggingVolumeDriver"
        | "cinder.volume.drivers.fake.FakeDriver" => "fake",
        "lvm"
        | "cinder.volume.drivers.lvm.LVMVolumeDriver"
        | "cinder.volume.drivers.lvm.LVMISCSIDriver" => "lvm",
        "rbd" | "cinder.volume.drivers.rbd.RBDDriver" => "rbd",
        other => {
            return Err(ConfigError::invalid(
                section,
                "volume_driver",
                other,
                "unknown driver (use file, fake, lvm or rbd, or Cinder's class path)".into(),
            ));
        }
    };
    Ok(kind)
}

fn read_backend(
    r: &mut OptionReader<'_>,
    name: &str,
    default: &DefaultOptions,
) -> Result<BackendConfig, ConfigError> {
    let fb = BACKEND_FALLBACK;
    let Some(driver_text) = r.raw(name, fb, "volume_driver")? else {
        return Err(ConfigError::Missing(format!(
            "section [{name}] has no volume_driver"
        )));
    };
    let kind = driver_kind(name, &driver_text)?;
    let reserved = r.int(name, fb, "reserved_percentage", 0, 0..=100)?;
    let mosr_text = r.string(name, fb, "max_over_subscription_ratio", "20.0")?;
    let max_over_subscription_ratio = if mosr_text.trim().eq_ignore_ascii_case("auto") {
        OverSubscription::Auto
    } else {
        match mosr_text.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 1.0 => OverSubscription::Ratio(v),
            _ => {
                return Err(ConfigError::invalid(
                    name,
                    "max_over_subscription_ratio",
                    &mosr_text,
                    "must be a number >= 1.0 or auto".into(),
                ));
            }
        }
    };
    let driver = match kind {
        "file" => {
            let dir = r
                .opt_string(name, fb, "file_volumes_dir")?
                .map(PathBuf::from)
                .unwrap_or_else(|| default.state_path.join("volumes").join(name));
            let reflink = match r
                .choice(
                    name,
                    fb,
                    "file_reflink",
                    "auto",
                    &["auto", "always", "never"],
                )?
                .as_str()
            {
                "always" => ReflinkMode::Always,
                "never" => ReflinkMode::Never,
                _ => ReflinkMode::Auto,
            };
            DriverConfig::File(FileDriverOptions {
                volumes_dir: dir,
                capacity_gb: r.float(name, fb, "file_capacity_gb", 0.0, 0.0)?,
                reflink,
            })
        }
        "fake" => DriverConfig::Fake(FakeDriverOptions {
            capacity_gb: r.float(name, fb, "fake_capacity_gb", 0.0, 0.0)?,
            fail_create: r.bool(name, fb, "fake_fail_create", false)?,
        }),
        "lvm" => DriverConfig::Lvm(lvm::read_lvm_options(r, name, fb)?),
        "rbd" => DriverConfig::Rbd(rbd::read_rbd_options(r, name, fb)?),
        other => {
            return Err(ConfigError::invalid(
                name,
                "volume_driver",
                &driver_text,
                format!("the {other} driver is not available in this version of Clinker"),
            ));
        }
    };
    // LVM exports through tgtd by default, as in Cinder; the file driver's
    // default is its local (path) export.
    let default_helper = match kind {
        "lvm" => TargetHelperKind::Tgtadm,
        _ => TargetHelperKind::None,
    };
    let target = lvm::read_target_config(r, name, fb, default, default_helper)?;
    if kind == "lvm" && target.target_helper == TargetHelperKind::None {
        return Err(ConfigError::invalid(
            name,
            "target_helper",
            "none",
            "the lvm driver exports volumes through tgtadm, lioadm or fake".into(),
        ));
    }
    Ok(BackendConfig {
        name: name.to_owned(),
        volume_backend_name: r.string(name, fb, "volume_backend_name", name)?,
        backend_host: r.opt_string(name, fb, "backend_host")?,
        availability_zone: r.opt_string(name, fb, "backend_availability_zone")?,
        reserved_percentage: u8::try_from(reserved).unwrap_or(0),
        max_over_subscription_ratio,
        driver,
        target,
    })
}

impl Config {
    /// The resolved path of the SQLite file when the database is SQLite.
    pub fn sqlite_path(&self) -> Option<&Path> {
        let url = self.database.connection.as_str();
        url.strip_prefix("sqlite:///")
            .or_else(|| url.strip_prefix("sqlite://"))
            .map(Path::new)
    }
}

#[cfg(test)]
mod tests;
