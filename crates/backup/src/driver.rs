//! From `cinder.conf` to a working backup driver: `backup_driver` chooses
//! the store and the engine's sizes, as Cinder's driver constructors do,
//! or the Ceph driver, which is not a chunked driver (RBD snapshots and
//! diffs, see [`crate::ceph`]).

use std::sync::Arc;
use std::time::Duration;

use clinker_config::{BackupDriverKind, BackupOptions, SwiftAuthMode};

use crate::ceph::CephBackupDriver;
use crate::compression::Compression;
use crate::engine::{ChunkedEngine, EngineSettings};
use crate::error::{BackupError, StoreError};
use crate::format::ObjectNaming;
use crate::store::s3::S3Settings;
use crate::store::swift::SwiftSettings;
use crate::store::{ObjectStore, PosixStore, S3Store, SwiftAuth, SwiftStore};

/// The requesting user, for drivers that act as them (Swift `per_user`).
#[derive(Clone)]
pub struct UserContext {
    /// The request's project id (appended to `backup_swift_url`).
    pub project_id: String,
    /// The request's Keystone token.
    pub auth_token: String,
}

impl std::fmt::Debug for UserContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserContext")
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

/// A configured backup driver.
#[derive(Clone, Debug)]
pub enum BackupDriver {
    /// POSIX, S3 or Swift: Cinder's chunked format.
    Chunked(ChunkedEngine),
    /// Ceph: RBD images and snapshots in `backup_ceph_pool`.
    Ceph(CephBackupDriver),
}

/// Builds the driver `kind` from the options. `availability_zone` is the
/// backup service's `storage_availability_zone` (part of S3 and Swift
/// object names); `user` is needed by Swift `per_user` only. Each backup
/// or restore may build its own (a per-user Swift store holds the token).
pub fn build_driver(
    kind: BackupDriverKind,
    options: &BackupOptions,
    availability_zone: &str,
    user: Option<&UserContext>,
) -> Result<BackupDriver, BackupError> {
    let compression = Compression::from_name(&options.compression_algorithm)?;
    let missing = |option: &str| {
        BackupError::Store(StoreError::Config(format!(
            "{option} must be set for the {} backup driver",
            kind.class_path()
        )))
    };
    let object_store = |default_container: &str| ObjectNaming::ObjectStore {
        default_container: default_container.to_owned(),
        availability_zone: availability_zone.to_owned(),
    };
    let (store, chunk_size, sha_block_size, naming): (Arc<dyn ObjectStore>, _, _, _) = match kind {
        BackupDriverKind::Posix => (
            Arc::new(PosixStore::new(&options.posix.path)),
            options.posix.file_size,
            options.posix.sha_block_size_bytes,
            ObjectNaming::Posix,
        ),
        BackupDriverKind::S3 => {
            let s3 = &options.s3;
            let sse_customer = match (&s3.sse_customer_algorithm, &s3.sse_customer_key) {
                (Some(algorithm), Some(key)) => Some((algorithm.clone(), key.clone())),
                (None, None) => None,
                _ => {
                    tracing::warn!(
                        "both backup_s3_sse_customer_algorithm and backup_s3_sse_customer_key \
                         must be set to enable SSE; SSE is disabled"
                    );
                    None
                }
            };
            let settings = S3Settings {
                endpoint_url: s3
                    .endpoint_url
                    .clone()
                    .ok_or_else(|| missing("backup_s3_endpoint_url"))?,
                access_key: s3
                    .access_key
                    .clone()
                    .ok_or_else(|| missing("backup_s3_store_access_key"))?,
                secret_key: s3
                    .secret_key
                    .clone()
                    .ok_or_else(|| missing("backup_s3_store_secret_key"))?,
                md5_validation: s3.md5_validation,
                verify_ssl: s3.verify_ssl,
                ca_cert_file: s3.ca_cert_file.clone(),
                timeout: Duration::from_secs_f64(s3.timeout_secs),
                retry_max_attempts: s3.retry_max_attempts,
                http_proxy: s3.http_proxy.clone(),
                https_proxy: s3.https_proxy.clone(),
                sse_customer,
            };
            (
                Arc::new(S3Store::new(&settings)?),
                s3.object_size,
                s3.block_size,
                object_store(&s3.bucket),
            )
        }
        BackupDriverKind::Swift => {
            let swift = &options.swift;
            let auth = match swift.auth {
                SwiftAuthMode::PerUser => {
                    let url = swift
                        .url
                        .as_ref()
                        .ok_or_else(|| missing("backup_swift_url"))?;
                    let user = user.ok_or_else(|| {
                        BackupError::Store(StoreError::Unauthorized(
                            "backup_swift_auth = per_user needs the request's token".into(),
                        ))
                    })?;
                    SwiftAuth::Token {
                        // Cinder appends the project id to the URL as is.
                        storage_url: format!("{url}{}", user.project_id),
                        token: user.auth_token.clone(),
                    }
                }
                SwiftAuthMode::SingleUser if swift.auth_version == "1" => SwiftAuth::V1 {
                    auth_url: swift
                        .auth_url
                        .clone()
                        .ok_or_else(|| missing("backup_swift_auth_url"))?,
                    user: swift
                        .user
                        .clone()
                        .ok_or_else(|| missing("backup_swift_user"))?,
                    key: swift
                        .key
                        .clone()
                        .ok_or_else(|| missing("backup_swift_key"))?,
                },
                SwiftAuthMode::SingleUser => {
                    return Err(BackupError::Unsupported(format!(
                        "backup_swift_auth_version = {} with single_user (use 1, or per_user \
                         with Keystone tokens)",
                        swift.auth_version
                    )));
                }
            };
            let settings = SwiftSettings {
                auth,
                retry_attempts: swift.retry_attempts,
                retry_backoff: Duration::from_secs(u64::from(swift.retry_backoff_secs)),
                storage_policy: swift.create_storage_policy.clone(),
                verify_tls: !swift.auth_insecure,
                ca_cert_file: swift.ca_cert_file.clone(),
            };
            (
                Arc::new(SwiftStore::new(settings)?),
                swift.object_size,
                swift.block_size,
                object_store(&swift.container),
            )
        }
        BackupDriverKind::Ceph => {
            // `rbd` and `rados` need no root helper.
            let driver =
                CephBackupDriver::new(&options.ceph, Arc::new(clinker_exec::HostRunner::new()));
            driver.check_options()?;
            return Ok(BackupDriver::Ceph(driver));
        }
    };
    Ok(BackupDriver::Chunked(ChunkedEngine::new(
        store,
        EngineSettings {
            chunk_size,
            sha_block_size,
            compression,
            create_containers: options.create_containers,
            naming,
            parallelism: EngineSettings::default_parallelism(chunk_size),
        },
    )))
}
