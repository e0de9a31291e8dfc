//! Shared plumbing of the image tests: a real Glance started once per test
//! binary by `scripts/glance.sh` (noauth, SQLite, `file` store), real
//! `qemu-img`, a runner that records what it ran, and data helpers.
//!
//! Off CI a missing Glance venv or `qemu-img` skips the test with a message
//! (`scripts/glance.sh install`, `apt-get install qemu-utils`); under
//! `CI=true` it is a failure.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use clinker_exec::{Command, CommandRunner, ExecError, HostRunner, Output, PipedChild};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skips (or, under CI, fails) with `reason`.
pub fn unmet(test: &str, reason: &str) -> bool {
    assert!(!in_ci(), "{test} cannot run under CI=true: {reason}");
    eprintln!("skipping {test}: {reason}");
    false
}

pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/glance.sh")
}

fn run_sync(cmd: Command) -> Output {
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

pub fn has_qemu_img(test: &str) -> bool {
    let out = run_sync(Command::new("qemu-img").arg("--version"));
    out.success()
        || unmet(
            test,
            "qemu-img is not installed (apt-get install qemu-utils)",
        )
}

/// A Glance this test binary started; the script's watchdog stops it
/// when the process exits.
#[derive(Debug)]
pub struct Glance {
    pub url: String,
    pub dir: PathBuf,
}

impl Glance {
    /// Where Glance keeps image `id`'s data.
    pub fn stored_file(&self, id: &str) -> PathBuf {
        self.dir.join("images").join(id)
    }
}

static GLANCE: OnceLock<Option<Glance>> = OnceLock::new();

fn start_glance() -> Option<Glance> {
    let installed = run_sync(
        Command::new("bash")
            .arg(script().display().to_string())
            .arg("installed"),
    );
    if !installed.success() {
        return None;
    }
    // Not a TempDir: the static is never dropped; `down` (run by the
    // watchdog when this process exits) removes the directory.
    let dir =
        std::env::temp_dir().join(format!("clinker-image-test-glance-{}", std::process::id()));
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

/// The shared Glance, or `None` (after skipping) when it is not installed.
pub fn glance(test: &str) -> Option<&'static Glance> {
    let glance = GLANCE.get_or_init(start_glance).as_ref();
    if glance.is_none() {
        unmet(
            test,
            "Glance is not installed (run scripts/glance.sh install)",
        );
    }
    glance
}

/// Serialises the tests that write to Glance: its SQLite database under
/// one uWSGI process does not like concurrent writers.
pub fn serial() -> &'static tokio::sync::Mutex<()> {
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
}

/// Runs commands for real and remembers their command lines.
#[derive(Debug, Default)]
pub struct RecordingRunner {
    inner: HostRunner,
    calls: Mutex<Vec<String>>,
}

impl RecordingRunner {
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    pub fn ran_qemu_img(&self) -> bool {
        self.calls().iter().any(|c| c.contains("qemu-img"))
    }
}

#[async_trait::async_trait]
impl CommandRunner for RecordingRunner {
    async fn run(&self, cmd: &Command) -> Result<Output, ExecError> {
        self.calls.lock().unwrap().push(cmd.command_line());
        self.inner.run(cmd).await
    }

    async fn spawn_piped(&self, cmd: &Command) -> Result<PipedChild, ExecError> {
        self.calls.lock().unwrap().push(cmd.command_line());
        self.inner.spawn_piped(cmd).await
    }
}

/// Runs `qemu-img` for test fixtures.
pub fn qemu_img(args: &[&str]) -> String {
    let out = run_sync(Command::new("qemu-img").args(args.iter().copied()));
    assert!(out.success(), "qemu-img {args:?}: {}", out.stderr);
    out.stdout
}

/// `len` bytes: random data with a run of zeros in the middle (so sparse
/// paths are exercised), the same for the same seed.
pub fn disk_data(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut data = vec![0u8; len];
    rng.fill(&mut data[..len / 3]);
    rng.fill(&mut data[2 * len / 3..]);
    data
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// A sparse file of `len` bytes (a new file-driver volume).
pub fn sparse_volume(path: &Path, len: u64) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(len).unwrap();
}

pub fn is_all_zero(path: &Path) -> bool {
    std::fs::read(path).unwrap().iter().all(|b| *b == 0)
}

/// Files left in a directory (staged downloads must not be).
pub fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub fn runner() -> Arc<RecordingRunner> {
    Arc::new(RecordingRunner::default())
}
