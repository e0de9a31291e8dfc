//! A real Glance for end-to-end image tests: `scripts/glance.sh up`
//! (noauth, SQLite, `file` store, under uWSGI) started once per test
//! binary on a free port; the script's watchdog stops it when the test
//! process exits. Off CI a missing Glance install skips (`scripts/glance.sh
//! install`); under `CI=true` it fails. [`glance_on_rbd`] starts one whose
//! store is `rbd` on a test's Ceph, stopped when dropped.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use clinker_exec::{Command, CommandRunner, HostRunner, Output};

/// A running Glance.
#[derive(Debug)]
pub struct Glance {
    /// Its endpoint (`http://127.0.0.1:<port>`).
    pub url: String,
    /// Its state directory.
    pub dir: PathBuf,
}

impl Glance {
    /// How many times image `image_id`'s data was requested (`GET
    /// /v2/images/<id>/file`), counted in uWSGI's request log: what a
    /// test of the image-volume cache or of RBD clones counts downloads
    /// with.
    pub fn data_requests(&self, image_id: &str) -> usize {
        let wanted = format!("GET /v2/images/{image_id}/file ");
        std::fs::read_to_string(self.dir.join("log").join("uwsgi.log"))
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(&wanted))
            .count()
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/glance.sh")
}

/// Runs `cmd` to completion from synchronous code.
pub fn run_sync(cmd: Command) -> Output {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { HostRunner::new().run(&cmd).await })
    })
    .join()
    .unwrap()
    .unwrap_or_else(|e| Output::failed(-1, e.to_string()))
}

fn installed(extra: &[&str]) -> bool {
    run_sync(
        Command::new("bash")
            .arg(script().display().to_string())
            .arg("installed")
            .args(extra.iter().copied()),
    )
    .success()
}

fn up(dir: PathBuf, extra: &[&str], env: &[(&str, String)]) -> Glance {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new("bash")
        .arg(script().display().to_string())
        .args(["up", "--port", &port.to_string()])
        .args(extra.iter().copied())
        .env("GLANCE_DIR", dir.display().to_string())
        .env("OWNER_PID", std::process::id().to_string())
        .timeout(Duration::from_secs(300));
    for (key, value) in env {
        cmd = cmd.env(*key, value.clone());
    }
    let out = run_sync(cmd);
    assert!(
        out.success(),
        "scripts/glance.sh up failed: {}{}",
        out.stdout,
        out.stderr
    );
    Glance {
        url: out.stdout.trim().to_owned(),
        dir,
    }
}

fn start() -> Option<Glance> {
    if !installed(&[]) {
        return None;
    }
    // Not a TempDir: the static is never dropped; the script's `down`
    // (run by its watchdog when this process exits) removes it.
    let dir = std::env::temp_dir().join(format!("clinker-e2e-glance-{}", std::process::id()));
    Some(up(dir, &[], &[]))
}

/// A Glance of this test's own whose store is `rbd`: images in `pool` of
/// `ceph` (as its cephx user), with `direct_url` and `locations` shown.
/// Stopped (and its directory `dir` removed) when dropped.
#[derive(Debug)]
pub struct RbdGlance(pub Glance);

impl Drop for RbdGlance {
    fn drop(&mut self) {
        run_sync(
            Command::new("bash")
                .arg(script().display().to_string())
                .arg("down")
                .env("GLANCE_DIR", self.0.dir.display().to_string()),
        );
    }
}

/// Starts an [`RbdGlance`] in `dir` (which must not exist), or `None`
/// after skipping `test` (off CI) when Glance or its rados/rbd bindings
/// are not installed.
pub fn glance_on_rbd(
    test: &str,
    dir: PathBuf,
    ceph: &crate::ceph::Ceph,
    pool: &str,
) -> Option<RbdGlance> {
    if !installed(&["--with-ceph"]) {
        crate::env::unmet(
            test,
            "Glance with the rados/rbd bindings is not installed",
            "run scripts/glance.sh install --with-ceph",
        );
        return None;
    }
    Some(RbdGlance(up(
        dir,
        &["--store", "rbd"],
        &[
            ("CEPH_CONF", ceph.conf().display().to_string()),
            ("CEPH_USER", crate::ceph::USER.to_owned()),
            ("RBD_STORE_POOL", pool.to_owned()),
        ],
    )))
}

/// The shared Glance, or `None` after skipping `test` (off CI) when Glance
/// is not installed.
pub fn glance(test: &str) -> Option<&'static Glance> {
    static GLANCE: OnceLock<Option<Glance>> = OnceLock::new();
    let glance = GLANCE.get_or_init(start).as_ref();
    if glance.is_none() {
        crate::env::unmet(
            test,
            "Glance is not installed",
            "run scripts/glance.sh install",
        );
    }
    glance
}

/// Serialises the tests that write to the shared Glance: its SQLite
/// database under one uWSGI process answers 500 to concurrent writers.
pub fn serial() -> &'static tokio::sync::Mutex<()> {
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
}

/// Whether `qemu-img` runs (skips `test` off CI, fails under CI).
pub fn has_qemu_img(test: &str) -> bool {
    run_sync(Command::new("qemu-img").arg("--version")).success()
        || crate::env::unmet(
            test,
            "qemu-img is not installed",
            "apt-get install qemu-utils",
        )
}

/// Runs `qemu-img` for a fixture; panics on failure.
pub fn qemu_img(args: &[&str]) -> String {
    let out = run_sync(Command::new("qemu-img").args(args.iter().copied()));
    assert!(out.success(), "qemu-img {args:?}: {}", out.stderr);
    out.stdout
}
