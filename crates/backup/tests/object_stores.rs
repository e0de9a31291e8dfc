//! The S3 and Swift stores against real object stores started for the
//! test: Ceph's radosgw (S3, and Swift with auth v1.0) on a throw-away
//! single-node cluster (`scripts/radosgw.sh`, ~35 s), and the Swift "all
//! in one" from Debian's packages (`scripts/swift-saio.sh`, ~5 s: Swift
//! with tempauth, per-user tokens, and S3 through s3api). Per store: the
//! full / incremental / restore / delete scenario, and a wrong checksum
//! refused by the store itself. Against radosgw's S3, Cinder 29's own S3
//! driver restores Clinker's backups and the reverse (with its venv).
//!
//! Runs when `CLINKER_SYSTEM_TESTS=1` or `CI=true`, and is skipped with a
//! message otherwise; without the packages (`scripts/install-objectstores.sh`)
//! it is skipped too, except under `CI=true` where that is a failure. The
//! stores are stopped whatever happens (and by the scripts' watchdogs if
//! this process is killed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use clinker_backup::{BackupDriver, ChunkedEngine, StoreError, UserContext, build_driver};
use clinker_config::{BackupDriverKind, Config, ConfigEnv, Ini};
use clinker_exec::{Command, CommandRunner, HostRunner};
use common::*;
use futures_util::FutureExt;
use serde_json::json;

const MIB: u64 = 1 << 20;

fn enabled(daemon: &str) -> bool {
    if !(flag("CLINKER_SYSTEM_TESTS") || on_ci()) {
        eprintln!("skipping: set CLINKER_SYSTEM_TESTS=1 to run the object store tests");
        return false;
    }
    require(
        &format!("{daemon} (scripts/install-objectstores.sh)"),
        Path::new(daemon).exists(),
    )
}

/// A store started by one of the scripts, stopped on drop of the test.
struct Daemon {
    script: &'static str,
    dir_var: &'static str,
    dir: PathBuf,
    env: BTreeMap<String, String>,
}

impl Daemon {
    async fn start(script: &'static str, dir_var: &'static str) -> Self {
        let dir = std::env::temp_dir().join(format!("clinker-{script}-{}", uuid()));
        let out = HostRunner::new()
            .run(&Self::command(script, "up", dir_var, &dir))
            .await
            .unwrap();
        assert!(out.success(), "{script} up failed: {}", out.stderr);
        let env = out
            .stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self {
            script,
            dir_var,
            dir,
            env,
        }
    }

    fn command(script: &str, action: &str, dir_var: &str, dir: &Path) -> Command {
        Command::new("bash")
            .arg(scripts().join(script).display().to_string())
            .arg(action)
            .env(dir_var, dir.display().to_string())
            .env("OWNER_PID", std::process::id().to_string())
            .timeout(Duration::from_secs(300))
    }

    fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("{} printed no {key}", self.script))
    }

    async fn stop(&self) {
        let _ = HostRunner::new()
            .run(&Self::command(self.script, "down", self.dir_var, &self.dir))
            .await;
    }

    /// Runs `body`, then stops the store whether it passed or not.
    async fn around(&self, body: impl Future<Output = ()>) {
        let result = AssertUnwindSafe(body).catch_unwind().await;
        self.stop().await;
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    }
}

fn config(text: &str) -> Config {
    let mut ini = Ini::default();
    ini.merge_text(text, "test.conf").unwrap();
    Config::from_ini(
        &ini,
        &ConfigEnv {
            hostname: "test".into(),
        },
    )
    .unwrap()
}

fn driver(kind: BackupDriverKind, text: &str, user: Option<&UserContext>) -> ChunkedEngine {
    let text = format!(
        "[DEFAULT]\nbackup_compression_algorithm = zlib\n\
         backup_s3_object_size = {MIB}\nbackup_swift_object_size = {MIB}\n{text}"
    );
    match build_driver(kind, &config(&text).backup, "nova", user).unwrap() {
        BackupDriver::Chunked(engine) => engine,
        BackupDriver::Ceph(_) => panic!("{kind:?} is not a chunked driver"),
    }
}

fn s3(endpoint: &str, access: &str, secret: &str, bucket: &str) -> ChunkedEngine {
    driver(
        BackupDriverKind::S3,
        &format!(
            "backup_s3_endpoint_url = {endpoint}\nbackup_s3_store_access_key = {access}\n\
             backup_s3_store_secret_key = {secret}\nbackup_s3_store_bucket = {bucket}\n"
        ),
        None,
    )
}

fn swift_v1(auth_url: &str, user: &str, key: &str, container: &str) -> ChunkedEngine {
    driver(
        BackupDriverKind::Swift,
        &format!(
            "backup_swift_auth = single_user\nbackup_swift_auth_version = 1\n\
             backup_swift_auth_url = {auth_url}\nbackup_swift_user = {user}\n\
             backup_swift_key = {key}\nbackup_swift_container = {container}\n"
        ),
        None,
    )
}

/// A wrong MD5 is refused by the store itself (S3 `BadDigest`, Swift 422)
/// and surfaces as [`StoreError::ChecksumRejected`]; nothing is stored.
async fn wrong_checksum_is_refused(engine: &ChunkedEngine, container: &str) {
    let store = engine.store();
    store.ensure_container(container, true).await.unwrap();
    let data = Bytes::from(pattern(b"checksum", 4096));
    let wrong = clinker_backup::store::md5_hex(b"something else");
    let result = store
        .put_object_with_md5(container, "volume_checksum-00001", data.clone(), &wrong)
        .await;
    let Err(error) = result else {
        panic!("the store accepted a body whose MD5 is not the one sent")
    };
    assert!(
        matches!(error, StoreError::ChecksumRejected { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("checksum mismatch"), "{error}");
    let listed = store
        .list_objects(container, "volume_checksum")
        .await
        .unwrap();
    assert!(listed.is_empty(), "{listed:?}");
    // The right one goes through and reads back.
    store
        .put_object(container, "volume_checksum-00001", data.clone())
        .await
        .unwrap();
    assert_eq!(
        store
            .get_object(container, "volume_checksum-00001")
            .await
            .unwrap(),
        data
    );
    store
        .delete_object(container, "volume_checksum-00001")
        .await
        .unwrap();
    assert!(matches!(
        store.get_object(container, "volume_checksum-00001").await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn radosgw_s3_and_swift() {
    if !enabled("/usr/bin/radosgw") {
        return;
    }
    let rgw = Daemon::start("radosgw.sh", "RGW_DIR").await;
    rgw.around(async {
        let (endpoint, access, secret) = (
            rgw.get("RGW_S3_ENDPOINT"),
            rgw.get("RGW_S3_ACCESS"),
            rgw.get("RGW_S3_SECRET"),
        );
        let engine = s3(endpoint, access, secret, "clinker-backups");
        full_incremental_restore_delete(&engine, None).await;
        wrong_checksum_is_refused(&engine, "clinker-checksum").await;
        let swift = swift_v1(
            rgw.get("RGW_SWIFT_AUTH_URL"),
            rgw.get("RGW_SWIFT_USER"),
            rgw.get("RGW_SWIFT_KEY"),
            "clinker-swift",
        );
        full_incremental_restore_delete(&swift, None).await;
        wrong_checksum_is_refused(&swift, "clinker-swift-checksum").await;
        cinder_s3_cross_restore(endpoint, access, secret).await;
    })
    .await;
}

#[tokio::test]
async fn swift_saio_swift_per_user_and_s3api() {
    if !enabled("/usr/bin/swift-proxy-server") {
        return;
    }
    let saio = Daemon::start("swift-saio.sh", "SWIFT_DIR").await;
    saio.around(async {
        let (auth_url, user, key) = (
            saio.get("SWIFT_AUTH_URL"),
            saio.get("SWIFT_USER"),
            saio.get("SWIFT_KEY"),
        );
        let engine = swift_v1(auth_url, user, key, "volumebackups");
        full_incremental_restore_delete(&engine, None).await;
        wrong_checksum_is_refused(&engine, "checksums").await;

        // per_user: a token the user got, on backup_swift_url + project.
        let response = clinker_runtime::http::client()
            .get(auth_url)
            .header("X-Auth-User", user)
            .header("X-Auth-Key", key)
            .send()
            .await
            .unwrap();
        let header = |n: &str| response.headers()[n].to_str().unwrap().to_owned();
        let (storage_url, token) = (header("X-Storage-Url"), header("X-Auth-Token"));
        let (url, project) = storage_url.split_at(storage_url.rfind("AUTH_").unwrap() + 5);
        let user_context = UserContext {
            project_id: project.into(),
            auth_token: token,
        };
        let per_user = driver(
            BackupDriverKind::Swift,
            &format!("backup_swift_auth = per_user\nbackup_swift_url = {url}\n"),
            Some(&user_context),
        );
        full_incremental_restore_delete(&per_user, Some("per-user")).await;
        let refused = driver(
            BackupDriverKind::Swift,
            &format!("backup_swift_auth = per_user\nbackup_swift_url = {url}\n"),
            Some(&UserContext {
                project_id: project.into(),
                auth_token: "AUTH_tknotavalidtoken".into(),
            }),
        );
        let error = refused
            .store()
            .list_objects("per-user", "volume_")
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::Unauthorized(_)), "{error:?}");

        let s3 = s3(
            saio.get("SWIFT_S3_ENDPOINT"),
            saio.get("SWIFT_S3_ACCESS"),
            saio.get("SWIFT_S3_SECRET"),
            "s3backups",
        );
        full_incremental_restore_delete(&s3, None).await;
        wrong_checksum_is_refused(&s3, "s3checksums").await;
    })
    .await;
}

/// Cinder 29's S3 driver and Clinker restore each other's full +
/// incremental backups byte for byte, in one bucket.
async fn cinder_s3_cross_restore(endpoint: &str, access: &str, secret: &str) {
    let Some(cinder) = Cinder::find() else {
        require("Cinder 29's venv (scripts/install-cinder29.sh)", false);
        return;
    };
    let base = json!({
        "driver": "s3",
        "options": {
            "backup_s3_endpoint_url": endpoint,
            "backup_s3_store_access_key": access,
            "backup_s3_store_secret_key": secret,
            "backup_s3_store_bucket": "cinder-cross",
            "backup_s3_object_size": MIB,
            "backup_s3_block_size": 32768,
            "backup_s3_verify_ssl": false,
        },
    });
    let engine = s3(endpoint, access, secret, "cinder-cross");
    cross_restore_with_cinder(&cinder, &engine, &base, ["zlib", "zstd"]).await;
    let left = engine
        .store()
        .list_objects("cinder-cross", "volume_")
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}
