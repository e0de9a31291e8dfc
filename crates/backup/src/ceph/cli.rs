//! The `rbd` and `rados` command lines of the Ceph backup driver, run by
//! the injected `CommandRunner`: how to reach a cluster ([`CephAccess`]:
//! the backup cluster from `backup_ceph_user` / `backup_ceph_conf` as
//! Cinder's `_ceph_args`, a volume's cluster from its `rbd` connection
//! info as os-brick does), failures classified from exit codes where the
//! process ends, and the two ways data moves: a process read as it writes
//! (`rbd export … -`) and one fed as it reads (`rbd import-diff - …`).
//! `rbd` exits with the errno of the failed call; `rados` exits 1 and
//! prints it.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clinker_exec::{Command, CommandRunner, ExecError, Output, PipedChild, ReadingChild};
use serde_json::{Map, Value};

use crate::error::{BackupError, RbdFailure};

/// Metadata commands (create, snap, rm, ls, info): a few objects each.
const CONTROL_DEADLINE: Duration = Duration::from_secs(120);
/// Streaming commands, counted from the end of their stream.
const STREAM_DEADLINE: Duration = Duration::from_secs(600);

const ENOENT: i32 = 2;
const EBUSY: i32 = 16;
const EEXIST: i32 = 17;
const ENOTEMPTY: i32 = 39;
const ETIMEDOUT: i32 = 110;

/// How to reach one Ceph cluster as one cephx user: the arguments every
/// command starts with.
#[derive(Clone, Debug)]
pub struct CephAccess {
    args: Vec<String>,
    /// A keyring handed over in connection info, written to a private
    /// temporary file that lives as long as this access.
    _keyring: Option<Arc<tempfile::NamedTempFile>>,
}

/// Whether `name` is safe as one argument naming a pool, image, user or
/// cluster (never taken for an option, never split).
pub(crate) fn is_ceph_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '@')
}

fn invalid(what: &str) -> BackupError {
    BackupError::InvalidVolume(format!("unusable rbd connection info: {what}"))
}

impl CephAccess {
    /// `--id <user> --conf <conf>` (Cinder's `_ceph_args`).
    pub fn with_conf(user: &str, conf: &Path) -> Self {
        Self {
            args: vec![
                "--id".into(),
                user.into(),
                "--conf".into(),
                conf.display().to_string(),
            ],
            _keyring: None,
        }
    }

    /// The access and image of an `rbd` connection (`initialize_connection`
    /// of an RBD volume): the monitors (`hosts`/`ports`), `auth_username`
    /// and `cluster_name` it names, over the backup host's own Ceph
    /// configuration `conf` (where the user's keyring is found; Clinker's
    /// volume service never sends keyrings, OSSN-0085). A `keyring` a
    /// Cinder volume service sent is used, from a private temporary file.
    ///
    /// # Errors
    /// Missing or unusable fields.
    pub fn from_connection(
        data: &Map<String, Value>,
        conf: &Path,
    ) -> Result<(Self, String, String), BackupError> {
        let name = data
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("no name"))?;
        let (pool, image) = name
            .split_once('/')
            .filter(|(p, i)| is_ceph_name(p) && is_ceph_name(i))
            .ok_or_else(|| invalid("name is not <pool>/<image>"))?;
        let strings = |key: &str| -> Vec<String> {
            data.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|v| match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let (hosts, ports) = (strings("hosts"), strings("ports"));
        if hosts.is_empty() || hosts.len() != ports.len() {
            return Err(invalid("no monitor hosts and ports"));
        }
        let monitors = hosts
            .iter()
            .zip(&ports)
            .map(|(h, p)| {
                if h.contains(':') {
                    format!("[{h}]:{p}")
                } else {
                    format!("{h}:{p}")
                }
            })
            .collect::<Vec<_>>()
            .join(",");
        if monitors.chars().any(char::is_whitespace) {
            return Err(invalid("monitor address with spaces"));
        }
        let mut args = Vec::new();
        let user = data.get("auth_username").and_then(Value::as_str);
        let auth_enabled = data
            .get("auth_enabled")
            .and_then(Value::as_bool)
            .unwrap_or(user.is_some());
        if let (true, Some(user)) = (auth_enabled, user) {
            if !is_ceph_name(user) {
                return Err(invalid("auth_username"));
            }
            args.extend(["--id".to_owned(), user.to_owned()]);
        }
        if let Some(cluster) = data.get("cluster_name").and_then(Value::as_str) {
            if !is_ceph_name(cluster) {
                return Err(invalid("cluster_name"));
            }
            args.extend(["--cluster".to_owned(), cluster.to_owned()]);
        }
        args.extend([
            "--conf".to_owned(),
            conf.display().to_string(),
            "-m".to_owned(),
            monitors,
        ]);
        let keyring = match data.get("keyring").and_then(Value::as_str) {
            Some(contents) if !contents.is_empty() => {
                let mut file = tempfile::Builder::new()
                    .prefix("clinker-keyring-")
                    .tempfile()
                    .map_err(BackupError::VolumeIo)?;
                file.write_all(contents.as_bytes())
                    .and_then(|()| file.flush())
                    .map_err(BackupError::VolumeIo)?;
                args.extend(["--keyring".to_owned(), file.path().display().to_string()]);
                Some(Arc::new(file))
            }
            _ => None,
        };
        Ok((
            Self {
                args,
                _keyring: keyring,
            },
            pool.to_owned(),
            image.to_owned(),
        ))
    }
}

/// Classifies a finished command.
fn classify(what: &str, out: &Output) -> BackupError {
    let stderr = out.stderr.trim();
    let detail = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let failure = match out.code {
        // `rados` exits 1 and says the errno.
        ENOENT => RbdFailure::NotFound,
        1 if stderr.contains("(2) No such file or directory") => RbdFailure::NotFound,
        EEXIST => RbdFailure::Exists,
        EBUSY | ENOTEMPTY => RbdFailure::Busy,
        ETIMEDOUT => RbdFailure::Unreachable,
        _ if stderr.contains("error connecting to the cluster")
            || stderr.contains("couldn't connect to the cluster") =>
        {
            RbdFailure::Unreachable
        }
        _ => RbdFailure::Failed,
    };
    BackupError::Rbd {
        failure,
        message: format!("{what} failed (exit {}): {detail}", out.code),
    }
}

fn exec_error(what: &str, e: &ExecError) -> BackupError {
    BackupError::Rbd {
        failure: RbdFailure::Unreachable,
        message: format!("{what}: {e}"),
    }
}

/// Runs the driver's commands.
#[derive(Clone, Debug)]
pub(crate) struct Cli {
    runner: Arc<dyn CommandRunner>,
}

/// A command and its description for messages (without the access
/// arguments, which may name a keyring).
pub(crate) struct Cmd {
    command: Command,
    what: String,
}

impl Cli {
    pub(crate) fn new(runner: Arc<dyn CommandRunner>) -> Self {
        Self { runner }
    }

    fn build(tool: &str, access: &CephAccess, args: &[&str], deadline: Duration) -> Cmd {
        Cmd {
            command: Command::new(tool)
                .args(access.args.iter().map(String::as_str))
                .args(args.iter().copied())
                .timeout(deadline),
            what: std::iter::once(tool)
                .chain(args.iter().copied())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    pub(crate) fn rbd(access: &CephAccess, args: &[&str]) -> Cmd {
        Self::build("rbd", access, args, CONTROL_DEADLINE)
    }

    pub(crate) fn rbd_stream(access: &CephAccess, args: &[&str]) -> Cmd {
        Self::build("rbd", access, args, STREAM_DEADLINE)
    }

    pub(crate) fn rados(access: &CephAccess, pool: &str, args: &[&str]) -> Cmd {
        let mut all = vec!["--pool", pool];
        all.extend_from_slice(args);
        Self::build("rados", access, &all, CONTROL_DEADLINE)
    }

    /// Runs a command and returns its stdout. A read that died on a
    /// signal (Ceph 16's tools sometimes abort in librados as they exit)
    /// runs again, twice at most.
    pub(crate) async fn run(&self, cmd: &Cmd, read_only: bool) -> Result<String, BackupError> {
        let mut crashes = 0;
        loop {
            let out = self
                .runner
                .run(&cmd.command)
                .await
                .map_err(|e| exec_error(&cmd.what, &e))?;
            if out.success() {
                return Ok(out.stdout);
            }
            if out.code < 0 && read_only && crashes < 2 {
                crashes += 1;
                tracing::warn!(command = %cmd.what, code = out.code, "ceph tool crashed; running it again");
                continue;
            }
            return Err(classify(&cmd.what, &out));
        }
    }

    /// Starts a command whose stdout is read as it comes.
    pub(crate) async fn reading(&self, cmd: &Cmd) -> Result<(ReadingChild, String), BackupError> {
        self.runner
            .spawn_reading(&cmd.command)
            .await
            .map(|c| (c, cmd.what.clone()))
            .map_err(|e| exec_error(&cmd.what, &e))
    }

    /// Starts a command fed through its stdin.
    pub(crate) async fn piped(&self, cmd: &Cmd) -> Result<(PipedChild, String), BackupError> {
        self.runner
            .spawn_piped(&cmd.command)
            .await
            .map(|c| (c, cmd.what.clone()))
            .map_err(|e| exec_error(&cmd.what, &e))
    }

    /// The size of image `spec` in bytes (`rbd info`); `None` when it does
    /// not exist.
    pub(crate) async fn image_size(
        &self,
        access: &CephAccess,
        spec: &str,
    ) -> Result<Option<u64>, BackupError> {
        /// `rbd info --format json`.
        #[derive(serde::Deserialize)]
        struct ImageInfo {
            size: u64,
        }
        let cmd = Self::rbd(access, &["info", "--format", "json", spec]);
        match self.run(&cmd, true).await {
            Ok(out) => super::parse::<ImageInfo>("rbd info", &out).map(|i| Some(i.size)),
            Err(e) if super::not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The exit of a streamed command, classified.
    pub(crate) fn check(
        what: &str,
        finished: Result<Output, ExecError>,
    ) -> Result<(), BackupError> {
        match finished {
            Ok(out) if out.success() => Ok(()),
            Ok(out) => Err(classify(what, &out)),
            Err(e) => Err(exec_error(what, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn connection_info_becomes_arguments_and_a_private_keyring() {
        let data = json!({
            "name": "volumes/volume-1", "hosts": ["10.0.0.1", "::1"], "ports": ["6789", "3300"],
            "cluster_name": "ceph", "auth_enabled": true, "auth_username": "cinder",
            "keyring": "[client.cinder]\n\tkey = abc\n",
        });
        let conf = Path::new("/etc/ceph/ceph.conf");
        let (access, pool, image) =
            CephAccess::from_connection(data.as_object().unwrap(), conf).unwrap();
        assert_eq!((pool.as_str(), image.as_str()), ("volumes", "volume-1"));
        let keyring = access.args.last().unwrap().clone();
        assert_eq!(
            access.args[..access.args.len() - 1],
            [
                "--id",
                "cinder",
                "--cluster",
                "ceph",
                "--conf",
                "/etc/ceph/ceph.conf",
                "-m",
                "10.0.0.1:6789,[::1]:3300",
                "--keyring"
            ]
        );
        assert_eq!(
            std::fs::read_to_string(&keyring).unwrap(),
            "[client.cinder]\n\tkey = abc\n"
        );
        drop(access);
        assert!(
            !Path::new(&keyring).exists(),
            "the keyring outlived its access"
        );

        for bad in [
            json!({"name": "volume-1", "hosts": ["h"], "ports": ["1"]}),
            json!({"name": "volumes/-rf", "hosts": ["h"], "ports": ["1"]}),
            json!({"name": "volumes/v", "hosts": [], "ports": []}),
            json!({"name": "volumes/v", "hosts": ["h"], "ports": ["1"], "auth_username": "a b"}),
        ] {
            assert!(
                CephAccess::from_connection(bad.as_object().unwrap(), conf).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn exit_codes_classify_failures() {
        let failure = |code, stderr: &str| match classify("rbd x", &Output::failed(code, stderr)) {
            BackupError::Rbd { failure, .. } => failure,
            other => panic!("{other:?}"),
        };
        assert_eq!(failure(2, "rbd: error opening image"), RbdFailure::NotFound);
        assert_eq!(
            failure(
                1,
                "error getting backups/backup.x.meta: (2) No such file or directory"
            ),
            RbdFailure::NotFound
        );
        assert_eq!(failure(17, "exists"), RbdFailure::Exists);
        assert_eq!(failure(39, "image has snapshots"), RbdFailure::Busy);
        assert_eq!(
            failure(1, "rbd: couldn't connect to the cluster!"),
            RbdFailure::Unreachable
        );
        assert_eq!(failure(-6, "abort"), RbdFailure::Failed);
    }
}
