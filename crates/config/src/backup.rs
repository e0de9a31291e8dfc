//! The backup service's options: Cinder's names and defaults from
//! `cinder/backup/manager.py`, `api.py`, `driver.py`, `chunkeddriver.py`,
//! `cmd/backup.py` and the drivers `posix.py`, `s3.py`, `swift.py` and
//! `ceph.py`, all in `[DEFAULT]` as in Cinder. Values are checked when the
//! configuration is read; what a driver needs to work (an endpoint, keys)
//! is checked by the backup crate when it builds the driver.

use std::path::PathBuf;

use crate::ConfigError;
use crate::reader::OptionReader;

const D: &str = "DEFAULT";

/// Which backup driver `backup_driver` selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackupDriverKind {
    /// `cinder.backup.drivers.posix.PosixBackupDriver` (`posix`): a directory.
    Posix,
    /// `cinder.backup.drivers.s3.S3BackupDriver` (`s3`).
    S3,
    /// `cinder.backup.drivers.swift.SwiftBackupDriver` (`swift`), Cinder's
    /// default.
    Swift,
    /// `cinder.backup.drivers.ceph.CephBackupDriver` (`ceph`): RBD images
    /// in `backup_ceph_pool`.
    Ceph,
}

impl BackupDriverKind {
    /// Cinder's class path, as `backup_driver` names it and as backup rows
    /// record it in `service`.
    pub fn class_path(self) -> &'static str {
        match self {
            BackupDriverKind::Posix => "cinder.backup.drivers.posix.PosixBackupDriver",
            BackupDriverKind::S3 => "cinder.backup.drivers.s3.S3BackupDriver",
            BackupDriverKind::Swift => "cinder.backup.drivers.swift.SwiftBackupDriver",
            BackupDriverKind::Ceph => "cinder.backup.drivers.ceph.CephBackupDriver",
        }
    }

    /// Reads a class path (Cinder's) or a short name (`posix`, `s3`,
    /// `swift`, `ceph`).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        [Self::Posix, Self::S3, Self::Swift, Self::Ceph]
            .into_iter()
            .find(|kind| {
                let class = kind.class_path();
                let module = class.rsplit_once('.').map_or(class, |(module, _)| module);
                let short = module.rsplit_once('.').map_or(module, |(_, short)| short);
                // Cinder's class path, its module (older configs), or the
                // module's last name.
                [class, module, short].contains(&text)
            })
    }
}

/// `backup_swift_auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwiftAuthMode {
    /// `per_user` (Cinder's default): the requesting user's Keystone token
    /// on `backup_swift_url` + their project id.
    PerUser,
    /// `single_user`: the service's own credentials
    /// (`backup_swift_user` / `backup_swift_key` at `backup_swift_auth_url`).
    SingleUser,
}

/// The POSIX driver's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PosixBackupOptions {
    /// `backup_posix_path` (default `$state_path/backup`).
    pub path: PathBuf,
    /// `backup_file_size` (default 61035 × 32768 bytes, just under 2 GB):
    /// the most bytes of the volume one object holds, and so the read buffer.
    pub file_size: u64,
    /// `backup_sha_block_size_bytes` (default 32768): the unit of change
    /// tracking for incremental backups.
    pub sha_block_size_bytes: u64,
    /// `backup_enable_progress_timer` (default true).
    pub enable_progress_timer: bool,
    /// `backup_container`: read as Cinder reads it, and as in Cinder
    /// without effect on the POSIX driver, which names a backup without a
    /// requested container `<id[0:2]>/<id[2:4]>/<id>`.
    pub container: Option<String>,
}

/// The S3 driver's options.
#[derive(Clone, Debug, PartialEq)]
pub struct S3BackupOptions {
    /// `backup_s3_endpoint_url` (required by the driver).
    pub endpoint_url: Option<String>,
    /// `backup_s3_store_access_key` (required by the driver).
    pub access_key: Option<String>,
    /// `backup_s3_store_secret_key` (required by the driver).
    pub secret_key: Option<String>,
    /// `backup_s3_store_bucket` (default `volumebackups`).
    pub bucket: String,
    /// `backup_s3_object_size` (default 52428800).
    pub object_size: u64,
    /// `backup_s3_block_size` (default 32768).
    pub block_size: u64,
    /// `backup_s3_enable_progress_timer` (default true).
    pub enable_progress_timer: bool,
    /// `backup_s3_verify_ssl` (default true).
    pub verify_ssl: bool,
    /// `backup_s3_ca_cert_file`: a CA bundle (PEM) trusted besides the
    /// system's.
    pub ca_cert_file: Option<PathBuf>,
    /// `backup_s3_md5_validation` (default true): send `Content-MD5` with
    /// every object so the store rejects a corrupted upload.
    pub md5_validation: bool,
    /// `backup_s3_timeout` seconds (default 60) for connecting and reading.
    pub timeout_secs: f64,
    /// `backup_s3_retry_max_attempts` (default 4).
    pub retry_max_attempts: u32,
    /// `backup_s3_http_proxy` / `backup_s3_https_proxy` (default none).
    pub http_proxy: Option<String>,
    /// `backup_s3_https_proxy`.
    pub https_proxy: Option<String>,
    /// `backup_s3_sse_customer_algorithm` with `backup_s3_sse_customer_key`:
    /// server-side encryption with a customer key (both or neither).
    pub sse_customer_algorithm: Option<String>,
    /// `backup_s3_sse_customer_key`.
    pub sse_customer_key: Option<String>,
}

/// The Swift driver's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwiftBackupOptions {
    /// `backup_swift_url`: for `per_user`, the storage URL the project id is
    /// appended to (`http://host:8080/v1/AUTH_`).
    pub url: Option<String>,
    /// `backup_swift_auth_url`: for `single_user`, the auth endpoint (v1
    /// `…/auth/v1.0`, or Keystone).
    pub auth_url: Option<String>,
    /// `backup_swift_auth` (default `per_user`).
    pub auth: SwiftAuthMode,
    /// `backup_swift_auth_version` (default `1`; `3` is Keystone v3).
    pub auth_version: String,
    /// `backup_swift_tenant` (auth 2.0).
    pub tenant: Option<String>,
    /// `backup_swift_user_domain` (auth 3).
    pub user_domain: Option<String>,
    /// `backup_swift_project_domain` (auth 3).
    pub project_domain: Option<String>,
    /// `backup_swift_project` (auth 3).
    pub project: Option<String>,
    /// `backup_swift_user`.
    pub user: Option<String>,
    /// `backup_swift_key`.
    pub key: Option<String>,
    /// `backup_swift_container` (default `volumebackups`).
    pub container: String,
    /// `backup_swift_create_storage_policy`: `X-Storage-Policy` of new
    /// containers.
    pub create_storage_policy: Option<String>,
    /// `backup_swift_object_size` (default 52428800).
    pub object_size: u64,
    /// `backup_swift_block_size` (default 32768).
    pub block_size: u64,
    /// `backup_swift_retry_attempts` (default 3).
    pub retry_attempts: u32,
    /// `backup_swift_retry_backoff` seconds (default 2).
    pub retry_backoff_secs: u32,
    /// `backup_swift_enable_progress_timer` (default true).
    pub enable_progress_timer: bool,
    /// `backup_swift_ca_cert_file`.
    pub ca_cert_file: Option<PathBuf>,
    /// `backup_swift_auth_insecure` (default false): skip TLS verification.
    pub auth_insecure: bool,
    /// `backup_swift_region_name`.
    pub region_name: Option<String>,
}

/// The Ceph backup driver's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CephBackupOptions {
    /// `backup_ceph_conf` (default `/etc/ceph/ceph.conf`).
    pub conf: PathBuf,
    /// `backup_ceph_user` (default `cinder`).
    pub user: String,
    /// `backup_ceph_chunk_size` (default 128 MiB).
    pub chunk_size: u64,
    /// `backup_ceph_pool` (default `backups`).
    pub pool: String,
    /// `backup_ceph_stripe_unit` (default 0).
    pub stripe_unit: u64,
    /// `backup_ceph_stripe_count` (default 0).
    pub stripe_count: u64,
    /// `backup_ceph_image_journals` (default false).
    pub image_journals: bool,
    /// `backup_ceph_max_snapshots` (default 0 = keep all).
    pub max_snapshots: u32,
    /// `restore_discard_excess_bytes` (default true).
    pub restore_discard_excess_bytes: bool,
}

/// Everything the backup service reads from `[DEFAULT]`.
#[derive(Clone, Debug, PartialEq)]
pub struct BackupOptions {
    /// `backup_driver`; `None` when unset (Cinder's default is Swift; an
    /// all-in-one `clinker serve` may choose POSIX instead).
    pub driver: Option<BackupDriverKind>,
    /// `backup_compression_algorithm` (default `zlib`), lowercased, one of
    /// Cinder's names (`none`, `off`, `no`, `zlib`, `gzip`, `bz2`, `bzip2`,
    /// `zstd`); chunked backups record this spelling per object.
    pub compression_algorithm: String,
    /// `backup_create_containers` (default true).
    pub create_containers: bool,
    /// `backup_timer_interval` seconds (default 120) between progress
    /// notifications.
    pub timer_interval_secs: u64,
    /// `backup_object_number_per_notification` (default 10).
    pub object_number_per_notification: u32,
    /// `backup_metadata_version` (default 2).
    pub metadata_version: u32,
    /// `backup_max_operations` (default 15; 0 = unlimited): concurrent
    /// backups and restores per backup service.
    pub max_operations: u32,
    /// `backup_use_same_host` (default false).
    pub use_same_host: bool,
    /// `backup_workers` (default 1).
    pub workers: u32,
    /// `backup_service_inithost_offload` (default true).
    pub service_inithost_offload: bool,
    /// The POSIX driver's options.
    pub posix: PosixBackupOptions,
    /// The S3 driver's options.
    pub s3: S3BackupOptions,
    /// The Swift driver's options.
    pub swift: SwiftBackupOptions,
    /// The Ceph driver's options.
    pub ceph: CephBackupOptions,
}

/// Cinder's POSIX default: a multiple of 32768 close to 2 GB.
pub const DEFAULT_BACKUP_FILE_SIZE: u64 = 61035 * 32768;

const COMPRESSION_NAMES: &[&str] = &["none", "off", "no", "zlib", "gzip", "bz2", "bzip2", "zstd"];

fn size(r: &mut OptionReader<'_>, option: &str, default: i64) -> Result<u64, ConfigError> {
    Ok(r.int(D, &[], option, default, 1..=i64::MAX)?.unsigned_abs())
}

fn count(r: &mut OptionReader<'_>, option: &str, default: i64) -> Result<u32, ConfigError> {
    Ok(u32::try_from(r.int(D, &[], option, default, 0..=i64::from(u32::MAX))?).unwrap_or(u32::MAX))
}

fn path(r: &mut OptionReader<'_>, option: &str) -> Result<Option<PathBuf>, ConfigError> {
    Ok(r.opt_string(D, &[], option)?.map(PathBuf::from))
}

/// An object size must hold a whole number of hash blocks (Cinder refuses
/// the backup otherwise; Clinker refuses the configuration).
fn check_multiple(
    object_option: &str,
    object_size: u64,
    block_size: u64,
) -> Result<(), ConfigError> {
    if object_size.is_multiple_of(block_size) {
        return Ok(());
    }
    Err(ConfigError::invalid(
        D,
        object_option,
        &object_size.to_string(),
        format!("must be a multiple of the hash block size {block_size}"),
    ))
}

/// Reads the backup options from `[DEFAULT]`.
pub(crate) fn read_backup_options(
    r: &mut OptionReader<'_>,
    state_path: &std::path::Path,
) -> Result<BackupOptions, ConfigError> {
    let driver = match r.opt_string(D, &[], "backup_driver")? {
        None => None,
        Some(text) => Some(BackupDriverKind::parse(&text).ok_or_else(|| {
            ConfigError::invalid(
                D,
                "backup_driver",
                &text,
                "unknown backup driver (use posix, s3, swift or ceph, or Cinder's class path)"
                    .into(),
            )
        })?),
    };
    let compression_algorithm = r
        .string(D, &[], "backup_compression_algorithm", "zlib")?
        .trim()
        .to_ascii_lowercase();
    if !COMPRESSION_NAMES.contains(&compression_algorithm.as_str()) {
        return Err(ConfigError::invalid(
            D,
            "backup_compression_algorithm",
            &compression_algorithm,
            format!("must be one of: {}", COMPRESSION_NAMES.join(", ")),
        ));
    }
    let posix = PosixBackupOptions {
        path: path(r, "backup_posix_path")?.unwrap_or_else(|| state_path.join("backup")),
        file_size: size(
            r,
            "backup_file_size",
            i64::try_from(DEFAULT_BACKUP_FILE_SIZE).unwrap_or(i64::MAX),
        )?,
        sha_block_size_bytes: size(r, "backup_sha_block_size_bytes", 32768)?,
        enable_progress_timer: r.bool(D, &[], "backup_enable_progress_timer", true)?,
        container: r.opt_string(D, &[], "backup_container")?,
    };
    check_multiple(
        "backup_file_size",
        posix.file_size,
        posix.sha_block_size_bytes,
    )?;
    let s3 = S3BackupOptions {
        endpoint_url: r.opt_string(D, &[], "backup_s3_endpoint_url")?,
        access_key: r.opt_string(D, &[], "backup_s3_store_access_key")?,
        secret_key: r.opt_string(D, &[], "backup_s3_store_secret_key")?,
        bucket: r.string(D, &[], "backup_s3_store_bucket", "volumebackups")?,
        object_size: size(r, "backup_s3_object_size", 52_428_800)?,
        block_size: size(r, "backup_s3_block_size", 32768)?,
        enable_progress_timer: r.bool(D, &[], "backup_s3_enable_progress_timer", true)?,
        verify_ssl: r.bool(D, &[], "backup_s3_verify_ssl", true)?,
        ca_cert_file: path(r, "backup_s3_ca_cert_file")?,
        md5_validation: r.bool(D, &[], "backup_s3_md5_validation", true)?,
        timeout_secs: r.float(D, &[], "backup_s3_timeout", 60.0, 0.001)?,
        retry_max_attempts: count(r, "backup_s3_retry_max_attempts", 4)?,
        http_proxy: r.opt_string(D, &[], "backup_s3_http_proxy")?,
        https_proxy: r.opt_string(D, &[], "backup_s3_https_proxy")?,
        sse_customer_algorithm: r.opt_string(D, &[], "backup_s3_sse_customer_algorithm")?,
        sse_customer_key: r.opt_string(D, &[], "backup_s3_sse_customer_key")?,
    };
    check_multiple("backup_s3_object_size", s3.object_size, s3.block_size)?;
    for accepted in [
        "backup_s3_max_pool_connections",
        "backup_s3_retry_mode",
        "backup_native_threads_pool_size",
        "backup_driver_init_check_interval",
        "backup_driver_stats_polling_interval",
        "backup_manager",
        "backup_topic",
        "backup_swift_service_auth",
        "swift_catalog_info",
        "keystone_catalog_info",
    ] {
        r.accept(D, accepted);
    }
    let swift_auth = match r
        .choice(
            D,
            &[],
            "backup_swift_auth",
            "per_user",
            &["per_user", "single_user"],
        )?
        .as_str()
    {
        "single_user" => SwiftAuthMode::SingleUser,
        _ => SwiftAuthMode::PerUser,
    };
    let swift = SwiftBackupOptions {
        url: r.opt_string(D, &[], "backup_swift_url")?,
        auth_url: r.opt_string(D, &[], "backup_swift_auth_url")?,
        auth: swift_auth,
        auth_version: r.choice(D, &[], "backup_swift_auth_version", "1", &["1", "2", "3"])?,
        tenant: r.opt_string(D, &[], "backup_swift_tenant")?,
        user_domain: r.opt_string(D, &[], "backup_swift_user_domain")?,
        project_domain: r.opt_string(D, &[], "backup_swift_project_domain")?,
        project: r.opt_string(D, &[], "backup_swift_project")?,
        user: r.opt_string(D, &[], "backup_swift_user")?,
        key: r.opt_string(D, &[], "backup_swift_key")?,
        container: r.string(D, &[], "backup_swift_container", "volumebackups")?,
        create_storage_policy: r.opt_string(D, &[], "backup_swift_create_storage_policy")?,
        object_size: size(r, "backup_swift_object_size", 52_428_800)?,
        block_size: size(r, "backup_swift_block_size", 32768)?,
        retry_attempts: count(r, "backup_swift_retry_attempts", 3)?,
        retry_backoff_secs: count(r, "backup_swift_retry_backoff", 2)?,
        enable_progress_timer: r.bool(D, &[], "backup_swift_enable_progress_timer", true)?,
        ca_cert_file: path(r, "backup_swift_ca_cert_file")?,
        auth_insecure: r.bool(D, &[], "backup_swift_auth_insecure", false)?,
        region_name: r.opt_string(D, &[], "backup_swift_region_name")?,
    };
    check_multiple(
        "backup_swift_object_size",
        swift.object_size,
        swift.block_size,
    )?;
    let ceph = CephBackupOptions {
        conf: PathBuf::from(r.string(D, &[], "backup_ceph_conf", "/etc/ceph/ceph.conf")?),
        user: r.string(D, &[], "backup_ceph_user", "cinder")?,
        chunk_size: size(r, "backup_ceph_chunk_size", 128 << 20)?,
        pool: r.string(D, &[], "backup_ceph_pool", "backups")?,
        stripe_unit: r
            .int(D, &[], "backup_ceph_stripe_unit", 0, 0..=i64::MAX)?
            .unsigned_abs(),
        stripe_count: r
            .int(D, &[], "backup_ceph_stripe_count", 0, 0..=i64::MAX)?
            .unsigned_abs(),
        image_journals: r.bool(D, &[], "backup_ceph_image_journals", false)?,
        max_snapshots: count(r, "backup_ceph_max_snapshots", 0)?,
        restore_discard_excess_bytes: r.bool(D, &[], "restore_discard_excess_bytes", true)?,
    };
    Ok(BackupOptions {
        driver,
        compression_algorithm,
        create_containers: r.bool(D, &[], "backup_create_containers", true)?,
        timer_interval_secs: r
            .int(D, &[], "backup_timer_interval", 120, 1..=86_400)?
            .unsigned_abs(),
        object_number_per_notification: count(r, "backup_object_number_per_notification", 10)?
            .max(1),
        metadata_version: count(r, "backup_metadata_version", 2)?,
        max_operations: count(r, "backup_max_operations", 15)?,
        use_same_host: r.bool(D, &[], "backup_use_same_host", false)?,
        workers: count(r, "backup_workers", 1)?.max(1),
        service_inithost_offload: r.bool(D, &[], "backup_service_inithost_offload", true)?,
        posix,
        s3,
        swift,
        ceph,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, ConfigEnv, Ini};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut ini = Ini::default();
        ini.merge_text(text, "test.conf")?;
        Config::from_ini(
            &ini,
            &ConfigEnv {
                hostname: "node1".into(),
            },
        )
    }

    #[test]
    fn cinder_defaults() {
        let cfg = parse("[DEFAULT]\nstate_path = /srv/c\n").unwrap();
        let b = &cfg.backup;
        assert_eq!(b.driver, None);
        assert_eq!(b.compression_algorithm, "zlib");
        assert_eq!(b.posix.path, PathBuf::from("/srv/c/backup"));
        assert_eq!(b.posix.file_size, 1_999_994_880);
        assert_eq!(b.posix.sha_block_size_bytes, 32768);
        assert_eq!(b.s3.bucket, "volumebackups");
        assert_eq!(b.s3.object_size, 52_428_800);
        assert!(b.s3.md5_validation && b.s3.verify_ssl);
        assert_eq!(b.swift.auth, SwiftAuthMode::PerUser);
        assert_eq!(b.swift.auth_version, "1");
        assert_eq!(b.ceph.pool, "backups");
        assert_eq!(b.ceph.chunk_size, 128 << 20);
        assert_eq!(b.max_operations, 15);
        assert!(!b.use_same_host);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }

    #[test]
    fn driver_by_class_path_module_or_short_name() {
        for (text, kind) in [
            (
                "cinder.backup.drivers.posix.PosixBackupDriver",
                BackupDriverKind::Posix,
            ),
            ("cinder.backup.drivers.s3", BackupDriverKind::S3),
            ("swift", BackupDriverKind::Swift),
            (
                "cinder.backup.drivers.ceph.CephBackupDriver",
                BackupDriverKind::Ceph,
            ),
        ] {
            let cfg = parse(&format!("[DEFAULT]\nbackup_driver = {text}\n")).unwrap();
            assert_eq!(cfg.backup.driver, Some(kind), "{text}");
        }
        assert!(parse("[DEFAULT]\nbackup_driver = cinder.backup.drivers.nfs\n").is_err());
    }

    #[test]
    fn options_are_read_and_checked() {
        let cfg = parse(
            "[DEFAULT]\nbackup_compression_algorithm = BZIP2\nbackup_posix_path = /b\n\
             backup_file_size = 65536\nbackup_sha_block_size_bytes = 4096\n\
             backup_s3_endpoint_url = http://127.0.0.1:7480\nbackup_s3_md5_validation = false\n\
             backup_swift_auth = single_user\nbackup_swift_user = u:swift\n",
        )
        .unwrap();
        let b = &cfg.backup;
        assert_eq!(b.compression_algorithm, "bzip2");
        assert_eq!(b.posix.path, PathBuf::from("/b"));
        assert_eq!(
            (b.posix.file_size, b.posix.sha_block_size_bytes),
            (65536, 4096)
        );
        assert_eq!(b.s3.endpoint_url.as_deref(), Some("http://127.0.0.1:7480"));
        assert!(!b.s3.md5_validation);
        assert_eq!(b.swift.auth, SwiftAuthMode::SingleUser);
        assert_eq!(b.swift.user.as_deref(), Some("u:swift"));

        for bad in [
            "backup_compression_algorithm = lz4",
            "backup_file_size = 40000",
            "backup_swift_auth = everyone",
            "backup_s3_object_size = 0",
        ] {
            assert!(parse(&format!("[DEFAULT]\n{bad}\n")).is_err(), "{bad}");
        }
    }
}
