//! The real `clinker` binary as an operator runs it: processes started
//! from configuration files, killed with `SIGKILL` or stopped with
//! `SIGTERM`, started again on the same state, with their output kept in
//! files the test can read (and that are printed when it fails).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::http::Api;
use crate::poll::Every;

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `text` to `path`; the path.
pub fn write_file(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// `--config-file c` for each of `configs`, then `args`.
fn arguments(configs: &[&Path], args: &[&str]) -> Vec<String> {
    configs
        .iter()
        .flat_map(|c| ["--config-file".to_owned(), c.display().to_string()])
        .chain(args.iter().map(|a| (*a).to_owned()))
        .collect()
}

/// Runs `bin` with `configs` and `args` to completion (a `manage`
/// command, a start-up that must be refused).
pub async fn run(bin: &Path, configs: &[&Path], args: &[&str]) -> Output {
    Command::new(bin)
        .args(arguments(configs, args))
        .kill_on_drop(true)
        .output()
        .await
        .unwrap()
}

/// One `clinker` process that can be killed and started again. Its
/// stdout goes to `<dir>/<name>.out`, its stderr (the log) to
/// `<dir>/<name>.log`, both appended across restarts.
#[derive(Debug)]
pub struct Proc {
    bin: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    out: PathBuf,
    log: PathBuf,
}

impl Proc {
    /// `bin --config-file … args`, not started yet.
    pub fn new(bin: &Path, name: &str, configs: &[&Path], args: &[&str], dir: &Path) -> Self {
        Self {
            bin: bin.to_path_buf(),
            args: arguments(configs, args),
            env: Vec::new(),
            child: None,
            out: dir.join(format!("{name}.out")),
            log: dir.join(format!("{name}.log")),
        }
    }

    /// Sets an environment variable for every start.
    #[must_use]
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Starts the process (again).
    pub fn start(&mut self) {
        let append = |path: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap()
        };
        let child = Command::new(&self.bin)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(append(&self.out))
            .stderr(append(&self.log))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// `kill -9` and reap it.
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }

    /// `SIGTERM`, as an init system stops it; how it exited.
    ///
    /// # Panics
    /// When it is not running, or has not exited after 30 s.
    pub async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the process was not started");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("no exit 30 s after SIGTERM")
            .unwrap()
    }

    /// Everything it printed on stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Everything it logged (stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Prints the last lines of every `*.log` in a directory when the test
/// panics, so a CI failure shows what the services said.
#[derive(Debug)]
pub struct LogsOnFailure(pub PathBuf);

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for name in crate::files::names_in(&self.0) {
            if !name.ends_with(".log") {
                continue;
            }
            let text = std::fs::read_to_string(self.0.join(&name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("===== {name} (last 40 lines)");
            for line in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{line}");
            }
        }
    }
}

/// An all-in-one `clinker serve` on a free port, its configuration and
/// state in a temporary directory, and a client of its API.
#[derive(Debug)]
pub struct Server {
    /// The API, `http://127.0.0.1:port/v3`.
    pub api: Api,
    /// The port it listens on.
    pub port: u16,
    /// `clinker.conf`.
    pub config: PathBuf,
    /// The `serve` process.
    pub serve: Proc,
    bin: PathBuf,
    // Last: the processes' files live here.
    _logs: LogsOnFailure,
    /// The state directory (`state_path`).
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Writes `clinker.conf` (`[DEFAULT]` with `extra`, then `backends`,
    /// which must set `enabled_backends`); nothing runs yet.
    pub fn new(bin: &str, extra: &str, backends: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = write_file(
            &dir.path().join("clinker.conf"),
            &format!(
                "[DEFAULT]\nstate_path = {}\nosapi_volume_listen_port = {port}\n\
                 periodic_fuzzy_delay = 0\n{extra}\n{backends}",
                dir.path().display()
            ),
        );
        let bin = PathBuf::from(bin);
        Self {
            api: Api::new(format!("http://127.0.0.1:{port}/v3")),
            port,
            serve: Proc::new(&bin, "serve", &[&config], &["serve"], dir.path()),
            config,
            bin,
            _logs: LogsOnFailure(dir.path().to_path_buf()),
            dir,
        }
    }

    /// Starts `clinker serve` and waits until the API answers.
    pub async fn start(&mut self) {
        self.serve.start();
        self.api.wait_ready(Every::ms(20, 30)).await;
    }

    /// Runs `clinker <args>` on the same configuration to completion.
    pub async fn run(&self, args: &[&str]) -> Output {
        run(&self.bin, &[&self.config], args).await
    }

    /// `clinker manage quota check` must pass: usage equals a recount.
    pub async fn assert_quota_checks(&self) {
        let check = self.run(&["manage", "quota", "check"]).await;
        assert!(
            check.status.success(),
            "quota drifted: {}",
            String::from_utf8_lossy(&check.stdout)
        );
    }

    /// The backing files of backend `backend` (`volumes/<backend>`).
    pub fn volumes_dir(&self, backend: &str) -> PathBuf {
        self.dir.path().join("volumes").join(backend)
    }
}
