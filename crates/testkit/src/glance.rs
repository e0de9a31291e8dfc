//! A real Glance for end-to-end image tests: `scripts/glance.sh up`
//! (noauth, SQLite, `file` store, under uWSGI) started once per test
//! binary on a free port; the script's watchdog stops it when the test
//! process exits. Off CI a missing Glance install skips (`scripts/glance.sh
//! install`); under `CI=true` it fails.

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
    /// test of the image-volume cache counts downloads with.
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

fn start() -> Option<Glance> {
    let installed = run_sync(
        Command::new("bash")
            .arg(script().display().to_string())
            .arg("installed"),
    );
    if !installed.success() {
        return None;
    }
    // Not a TempDir: the static is never dropped; the script's `down`
    // (run by its watchdog when this process exits) removes it.
    let dir = std::env::temp_dir().join(format!("clinker-e2e-glance-{}", std::process::id()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = run_sync(
        Command::new("bash")
            .arg(script().display().to_string())
            .args(["up", "--port", &port.to_string()])
            .env("GLANCE_DIR", dir.display().to_string())
            .env("OWNER_PID", std::process::id().to_string())
            .timeout(Duration::from_secs(300)),
    );
    assert!(
        out.success(),
        "scripts/glance.sh up failed: {}{}",
        out.stdout,
        out.stderr
    );
    Some(Glance {
        url: out.stdout.trim().to_owned(),
        dir,
    })
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
