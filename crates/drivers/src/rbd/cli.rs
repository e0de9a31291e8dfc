//! Typed command lines for the `rbd` and `ceph` CLIs, and the one place the
//! driver runs them: every call carries the configured `--id`, `--cluster`,
//! `--conf` (and `--keyring`), librados's own timeouts when
//! `rados_connect_timeout` is set (the same three options Cinder sets), and
//! a deadline after which the process is killed.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use clinker_config::RbdDriverOptions;
use clinker_exec::{ChildExit, Command, CommandRunner, ExecError, PipedChild, ReadingChild};

use super::error::{CephError, CephErrorKind, classify};
use super::json::{PoolDetail, parse};

/// An image: `<pool>/<image>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ImageSpec {
    /// The pool.
    pub(crate) pool: String,
    /// The image name.
    pub(crate) image: String,
}

impl ImageSpec {
    pub(crate) fn new(pool: impl Into<String>, image: impl Into<String>) -> Self {
        Self {
            pool: pool.into(),
            image: image.into(),
        }
    }

    /// One of its snapshots.
    pub(crate) fn snap(&self, name: impl Into<String>) -> SnapSpec {
        SnapSpec {
            image: self.clone(),
            snap: name.into(),
        }
    }
}

impl fmt::Display for ImageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.pool, self.image)
    }
}

/// A snapshot: `<pool>/<image>@<snap>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SnapSpec {
    /// Its image.
    pub(crate) image: ImageSpec,
    /// The snapshot name.
    pub(crate) snap: String,
}

impl fmt::Display for SnapSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.image, self.snap)
    }
}

/// How long a command may run before it is killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// Metadata operations (create, snapshot, clone, resize, rm, info): they
    /// touch a few objects.
    Control,
    /// Health probes and capacity reports: a dead cluster must show as down
    /// quickly, not after librados's 300 s mount timeout.
    Probe,
    /// Operations that copy a volume's data (`flatten`, `cp`): proportional
    /// to its size.
    Data {
        /// The size of the data to move.
        size_gb: i64,
    },
}

/// Deadline of control commands unless the librados timeouts are longer.
const CONTROL_DEADLINE: Duration = Duration::from_secs(120);
/// Deadline of probes when `rados_connect_timeout` does not bound them.
const PROBE_DEADLINE: Duration = Duration::from_secs(30);
/// Data commands: a fixed allowance plus this per GiB (about 50 MiB/s,
/// far below what a healthy cluster flattens at).
const DATA_BASE: Duration = Duration::from_secs(600);
const DATA_PER_GIB: Duration = Duration::from_secs(20);

/// A command with what it does, for messages.
#[derive(Clone, Debug)]
pub(crate) struct CephCommand {
    pub(crate) command: Command,
    /// `rbd create volumes/volume-…`, without the connection options.
    pub(crate) what: String,
    /// Whether it writes to the pool (a timeout may then mean "pool full").
    pub(crate) writes: bool,
}

/// Runs `rbd`/`ceph` for one backend.
#[derive(Debug, Clone)]
pub(crate) struct CephCli {
    runner: Arc<dyn CommandRunner>,
    connection_args: Vec<String>,
    pool: String,
    connect_timeout: Option<u32>,
    retries: u32,
    retry_interval: Duration,
}

impl CephCli {
    pub(crate) fn new(options: &RbdDriverOptions, runner: Arc<dyn CommandRunner>) -> Self {
        // Cinder's `_ceph_args` order: --id, --cluster, --conf.
        let mut args = Vec::new();
        if let Some(user) = &options.user {
            args.extend(["--id".to_owned(), user.clone()]);
        }
        args.extend(["--cluster".to_owned(), options.cluster_name.clone()]);
        if let Some(conf) = &options.ceph_conf {
            args.extend(["--conf".to_owned(), conf.display().to_string()]);
        }
        if let Some(keyring) = &options.keyring_conf {
            args.extend(["--keyring".to_owned(), keyring.display().to_string()]);
        }
        if let Some(timeout) = options.rados_connect_timeout {
            // What Cinder's `_connect_to_rados` sets on its Rados handle.
            for option in [
                "--client_mount_timeout",
                "--rados_mon_op_timeout",
                "--rados_osd_op_timeout",
            ] {
                args.extend([option.to_owned(), timeout.to_string()]);
            }
        }
        Self {
            runner,
            connection_args: args,
            pool: options.pool.clone(),
            connect_timeout: options.rados_connect_timeout,
            retries: options.rados_connection_retries,
            retry_interval: Duration::from_secs(u64::from(options.rados_connection_interval)),
        }
    }

    /// The deadline of a command class.
    pub(crate) fn deadline(&self, deadline: Deadline) -> Duration {
        let librados = self
            .connect_timeout
            .filter(|t| *t > 0)
            .map(|t| Duration::from_secs(u64::from(t)));
        match deadline {
            // Room for a few librados operations, each bounded by the
            // timeout, before our own deadline fires.
            Deadline::Control => librados.map_or(CONTROL_DEADLINE, |t| {
                CONTROL_DEADLINE.max(t * 2 + Duration::from_secs(10))
            }),
            Deadline::Probe => librados.map_or(PROBE_DEADLINE, |t| t + Duration::from_secs(10)),
            Deadline::Data { size_gb } => {
                let gb = u32::try_from(size_gb.max(0)).unwrap_or(u32::MAX);
                DATA_BASE.saturating_add(DATA_PER_GIB.saturating_mul(gb))
            }
        }
    }

    fn build(&self, tool: &str, args: &[&str], deadline: Deadline, writes: bool) -> CephCommand {
        let command = Command::new(tool)
            .args(self.connection_args.iter().map(String::as_str))
            .args(args.iter().copied())
            .timeout(self.deadline(deadline));
        CephCommand {
            command,
            what: std::iter::once(tool)
                .chain(args.iter().copied())
                .collect::<Vec<_>>()
                .join(" "),
            writes,
        }
    }

    fn rbd(&self, args: &[&str], deadline: Deadline, writes: bool) -> CephCommand {
        self.build("rbd", args, deadline, writes)
    }

    fn ceph(&self, args: &[&str], deadline: Deadline) -> CephCommand {
        self.build("ceph", args, deadline, false)
    }

    /// `rbd create --size <MiB>M --object-size <MiB>M`.
    pub(crate) fn create(&self, image: &ImageSpec, size_mib: u64, object_mib: u64) -> CephCommand {
        let size = format!("{size_mib}M");
        let object = format!("{object_mib}M");
        let spec = image.to_string();
        self.rbd(
            &[
                "create",
                "--no-progress",
                "--size",
                &size,
                "--object-size",
                &object,
                &spec,
            ],
            Deadline::Control,
            true,
        )
    }

    pub(crate) fn info(&self, image: &ImageSpec) -> CephCommand {
        let spec = image.to_string();
        self.rbd(
            &["info", "--format", "json", &spec],
            Deadline::Control,
            false,
        )
    }

    pub(crate) fn snap_ls(&self, image: &ImageSpec) -> CephCommand {
        let spec = image.to_string();
        self.rbd(
            &["snap", "ls", "--format", "json", &spec],
            Deadline::Control,
            false,
        )
    }

    pub(crate) fn snap_create(&self, snap: &SnapSpec) -> CephCommand {
        let spec = snap.to_string();
        self.rbd(
            &["snap", "create", "--no-progress", &spec],
            Deadline::Control,
            true,
        )
    }

    pub(crate) fn snap_protect(&self, snap: &SnapSpec) -> CephCommand {
        let spec = snap.to_string();
        self.rbd(&["snap", "protect", &spec], Deadline::Control, true)
    }

    pub(crate) fn snap_unprotect(&self, snap: &SnapSpec) -> CephCommand {
        let spec = snap.to_string();
        self.rbd(&["snap", "unprotect", &spec], Deadline::Control, true)
    }

    pub(crate) fn snap_rm(&self, snap: &SnapSpec) -> CephCommand {
        let spec = snap.to_string();
        self.rbd(
            &["snap", "rm", "--no-progress", &spec],
            Deadline::Control,
            true,
        )
    }

    /// `rbd children --all`: children in the trash count too (they still
    /// depend on the snapshot).
    pub(crate) fn children(&self, snap: &SnapSpec) -> CephCommand {
        let spec = snap.to_string();
        self.rbd(
            &["children", "--all", "--format", "json", &spec],
            Deadline::Control,
            false,
        )
    }

    pub(crate) fn clone_image(
        &self,
        snap: &SnapSpec,
        dest: &ImageSpec,
        object_mib: u64,
    ) -> CephCommand {
        let object = format!("{object_mib}M");
        let (src, dst) = (snap.to_string(), dest.to_string());
        self.rbd(
            &["clone", "--object-size", &object, &src, &dst],
            Deadline::Control,
            true,
        )
    }

    pub(crate) fn flatten(&self, image: &ImageSpec, size_gb: i64) -> CephCommand {
        let spec = image.to_string();
        self.rbd(
            &["flatten", "--no-progress", &spec],
            Deadline::Data { size_gb },
            true,
        )
    }

    pub(crate) fn copy(&self, src: &ImageSpec, dest: &ImageSpec, size_gb: i64) -> CephCommand {
        let (s, d) = (src.to_string(), dest.to_string());
        self.rbd(
            &["cp", "--no-progress", &s, &d],
            Deadline::Data { size_gb },
            true,
        )
    }

    pub(crate) fn resize(&self, image: &ImageSpec, size_mib: u64) -> CephCommand {
        let size = format!("{size_mib}M");
        let spec = image.to_string();
        self.rbd(
            &["resize", "--no-progress", "--size", &size, &spec],
            Deadline::Control,
            true,
        )
    }

    /// `rbd import - <image>`: a new image from raw bytes on stdin (zero
    /// runs left unallocated).
    pub(crate) fn import(&self, image: &ImageSpec, size_gb: i64) -> CephCommand {
        let spec = image.to_string();
        self.rbd(
            &["import", "--no-progress", "--image-format", "2", "-", &spec],
            Deadline::Data { size_gb },
            true,
        )
    }

    /// `rbd info` of a snapshot (an image location in Glance's pool).
    pub(crate) fn snap_info(&self, snap: &SnapSpec) -> CephCommand {
        let spec = snap.to_string();
        self.rbd(
            &["info", "--format", "json", &spec],
            Deadline::Control,
            false,
        )
    }

    /// `rbd resize --allow-shrink`: only for rewriting a volume in place
    /// (its snapshots keep their own data).
    pub(crate) fn resize_allow_shrink(&self, image: &ImageSpec, size_mib: u64) -> CephCommand {
        let size = format!("{size_mib}M");
        let spec = image.to_string();
        self.rbd(
            &[
                "resize",
                "--no-progress",
                "--allow-shrink",
                "--size",
                &size,
                &spec,
            ],
            Deadline::Control,
            true,
        )
    }

    /// `rbd export <image> -`: the image's raw bytes on stdout.
    pub(crate) fn export(&self, image: &ImageSpec, size_gb: i64) -> CephCommand {
        let spec = image.to_string();
        self.rbd(
            &["export", "--no-progress", &spec, "-"],
            Deadline::Data { size_gb },
            false,
        )
    }

    /// `rbd export-diff <image> -`: the image's allocated extents as a
    /// diff stream on stdout.
    pub(crate) fn export_diff(&self, image: &ImageSpec, size_gb: i64) -> CephCommand {
        let spec = image.to_string();
        self.rbd(
            &["export-diff", "--no-progress", &spec, "-"],
            Deadline::Data { size_gb },
            false,
        )
    }

    /// `rbd import-diff - <image>`: a diff stream on stdin written into
    /// the image's head.
    pub(crate) fn import_diff(&self, image: &ImageSpec, size_gb: i64) -> CephCommand {
        let spec = image.to_string();
        self.rbd(
            &["import-diff", "--no-progress", "-", &spec],
            Deadline::Data { size_gb },
            true,
        )
    }

    /// Starts `cmd` with its stdout streamed.
    pub(crate) async fn spawn_reading(&self, cmd: &CephCommand) -> Result<ReadingChild, CephError> {
        self.runner
            .spawn_reading(&cmd.command)
            .await
            .map_err(|e| CephError::new(CephErrorKind::ToolMissing, format!("{}: {e}", cmd.what)))
    }

    /// Waits for a command whose stdout was streamed and dropped, and
    /// classifies its failure.
    pub(crate) async fn finish_reading(
        &self,
        what: &str,
        exit: ChildExit,
    ) -> Result<(), CephError> {
        match exit.finish().await {
            Ok(out) if out.success() => Ok(()),
            Ok(out) => Err(classify(what, &out)),
            Err(e) => Err(CephError::new(
                CephErrorKind::TimedOut,
                format!("{what}: {e}"),
            )),
        }
    }

    /// Starts `cmd` with its stdin streamed.
    pub(crate) async fn spawn_piped(&self, cmd: &CephCommand) -> Result<PipedChild, CephError> {
        self.runner
            .spawn_piped(&cmd.command)
            .await
            .map_err(|e| CephError::new(CephErrorKind::ToolMissing, format!("{}: {e}", cmd.what)))
    }

    /// Waits for a streamed command and classifies its failure.
    pub(crate) async fn finish_piped(
        &self,
        what: &str,
        child: PipedChild,
    ) -> Result<(), CephError> {
        match child.finish().await {
            Ok(out) if out.success() => Ok(()),
            Ok(out) => Err(classify(what, &out)),
            Err(e) => Err(CephError::new(
                CephErrorKind::TimedOut,
                format!("{what}: {e}"),
            )),
        }
    }

    pub(crate) fn rm(&self, image: &ImageSpec) -> CephCommand {
        let spec = image.to_string();
        self.rbd(&["rm", "--no-progress", &spec], Deadline::Control, true)
    }

    pub(crate) fn trash_mv(&self, image: &ImageSpec) -> CephCommand {
        let spec = image.to_string();
        self.rbd(&["trash", "mv", &spec], Deadline::Control, true)
    }

    pub(crate) fn rename(&self, from: &ImageSpec, to: &ImageSpec) -> CephCommand {
        let (f, t) = (from.to_string(), to.to_string());
        self.rbd(&["rename", &f, &t], Deadline::Control, true)
    }

    pub(crate) fn ls(&self, deadline: Deadline) -> CephCommand {
        let pool = self.pool.clone();
        self.rbd(&["ls", "--format", "json", &pool], deadline, false)
    }

    pub(crate) fn ls_long(&self) -> CephCommand {
        let pool = self.pool.clone();
        self.rbd(
            &["ls", "--long", "--format", "json", &pool],
            Deadline::Probe,
            false,
        )
    }

    pub(crate) fn df(&self) -> CephCommand {
        self.ceph(&["df", "--format", "json"], Deadline::Probe)
    }

    pub(crate) fn pool_quota(&self) -> CephCommand {
        let pool = self.pool.clone();
        self.ceph(
            &["osd", "pool", "get-quota", &pool, "--format", "json"],
            Deadline::Probe,
        )
    }

    pub(crate) fn pool_details(&self) -> CephCommand {
        self.ceph(
            &["osd", "pool", "ls", "detail", "--format", "json"],
            Deadline::Probe,
        )
    }

    pub(crate) fn mon_dump(&self) -> CephCommand {
        self.ceph(&["mon", "dump", "--format", "json"], Deadline::Control)
    }

    pub(crate) fn fsid(&self) -> CephCommand {
        self.ceph(&["fsid", "--format", "json"], Deadline::Probe)
    }

    /// Runs a command and returns its standard output. A cluster that
    /// could not be reached at all is retried `rados_connection_retries`
    /// times, `rados_connection_interval` apart (Cinder's `_connect_to_rados`
    /// retry; safe because nothing was done). A write that times out is
    /// checked against the pool's `full` flag, since librados blocks writes
    /// to a full pool instead of failing them.
    pub(crate) async fn run(&self, cmd: &CephCommand) -> Result<String, CephError> {
        let mut attempt = 0;
        let mut crashes = 0;
        loop {
            match self.run_once(cmd).await {
                Ok(stdout) => return Ok(stdout),
                Err(e) if e.kind == CephErrorKind::Unreachable && attempt < self.retries => {
                    attempt += 1;
                    tracing::warn!(command = %cmd.what, attempt, error = %e, "ceph cluster unreachable; retrying");
                    tokio::time::sleep(self.retry_interval).await;
                }
                // A read that crashed did nothing; a write is not run
                // again (it may have happened) and the caller decides.
                Err(e) if e.kind == CephErrorKind::Crashed && !cmd.writes && crashes < 2 => {
                    crashes += 1;
                    tracing::warn!(command = %cmd.what, crashes, error = %e, "ceph tool crashed; running it again");
                }
                Err(e) if e.kind == CephErrorKind::TimedOut && cmd.writes => {
                    return Err(self.explain_timeout(e).await);
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn run_once(&self, cmd: &CephCommand) -> Result<String, CephError> {
        match self.runner.run(&cmd.command).await {
            Ok(out) if out.success() => Ok(out.stdout),
            Ok(out) => Err(classify(&cmd.what, &out)),
            Err(ExecError::Spawn { program, source }) => Err(CephError::new(
                CephErrorKind::ToolMissing,
                format!("cannot run {program} ({source}): install ceph-common"),
            )),
            Err(ExecError::Timeout { timeout, .. }) => Err(CephError::new(
                CephErrorKind::TimedOut,
                format!(
                    "{}: no answer from the cluster within {timeout:?}",
                    cmd.what
                ),
            )),
            Err(e) => Err(CephError::new(
                CephErrorKind::Other,
                format!("{}: {e}", cmd.what),
            )),
        }
    }

    async fn explain_timeout(&self, timed_out: CephError) -> CephError {
        let full = match self.run_once(&self.pool_details()).await {
            Ok(stdout) => parse::<Vec<PoolDetail>>("ceph osd pool ls detail", &stdout)
                .map(|pools| {
                    pools
                        .iter()
                        .any(|p| p.pool_name == self.pool && p.is_full())
                })
                .unwrap_or(false),
            Err(_) => false,
        };
        if full {
            CephError::new(
                CephErrorKind::NoSpace,
                format!(
                    "{}; pool {} is full (its quota or the cluster's full ratio is reached)",
                    timed_out.message, self.pool
                ),
            )
        } else {
            timed_out
        }
    }
}
