//! The `tgtadm` target helper: tgtd, the userspace iSCSI target (Cinder's
//! `cinder/volume/targets/tgt.py`).
//!
//! Targets are persistent: each export is a file `<volumes_dir>/<volume
//! name>` in tgt's configuration syntax (tgt's own configuration must
//! `include <volumes_dir>/*`), and `tgt-admin --update <iqn>` makes tgtd match
//! it. tgt-admin picks the lowest free tid, so tids are reused and targets
//! are always found by IQN in `tgt-admin --show`, never by tid. LUN 0 is
//! tgt's controller; the volume is LUN 1.
//!
//! Known tgt behaviours handled here (from Cinder's bug history and
//! re-checked against tgt 1.0.85, see `fixtures/tgt/`):
//! * `--update` succeeds even when the backing store cannot be opened; the
//!   target then has no LUN 1, so it is checked and re-added with `tgtadm`.
//!   This happens routinely right after a target is deleted and re-created
//!   on the same backing file (tgtd answers "invalid request" for a moment),
//!   so the LUN is retried with a short doubling backoff rather than
//!   Cinder's single 10 s sleep.
//! * `--update` deletes and re-creates a target that is not in use even when
//!   nothing changed, so an export whose target exists, is complete and whose
//!   file is unchanged is left alone.
//! * `--delete` without `-f` exits 0 but leaves a target with sessions in
//!   place; `-f` removes it. Removal is verified with `--show`.
//! * Exit code 107 means tgtd is not running (its control socket is absent).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clinker_config::TargetConfig;
use clinker_exec::{Command, CommandRunner, Output};

use super::{ChapCredentials, IscsiSettings, ListedTarget, TargetHelper, is_under};
use crate::{DriverError, VolumeSpec};

/// tgtadm's exit code when it cannot reach tgtd's control socket.
const EXIT_NO_DAEMON: i32 = 107;

/// One target in `tgt-admin --show` output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TgtTarget {
    /// The tid (`Target <tid>: <iqn>`).
    pub tid: String,
    /// The IQN.
    pub iqn: String,
    /// LUN numbers (0 is the controller).
    pub luns: Vec<u32>,
    /// Open sessions (`I_T nexus` entries).
    pub sessions: usize,
    /// Backing store paths of the LUNs that have one.
    pub backing_stores: Vec<String>,
    /// CHAP accounts bound to the target.
    pub accounts: Vec<String>,
}

/// Parses `tgt-admin --show` (the same text as `tgtadm --op show --mode
/// target`). IQNs are compared whole, unlike Cinder's substring match.
pub fn parse_show(text: &str) -> Vec<TgtTarget> {
    let mut targets: Vec<TgtTarget> = Vec::new();
    let mut in_accounts = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Target ") {
            if let Some((tid, iqn)) = rest.split_once(": ") {
                targets.push(TgtTarget {
                    tid: tid.trim().to_owned(),
                    iqn: iqn.trim().to_owned(),
                    ..TgtTarget::default()
                });
            }
            in_accounts = false;
            continue;
        }
        let Some(target) = targets.last_mut() else {
            continue;
        };
        let trimmed = line.trim();
        if trimmed == "Account information:" {
            in_accounts = true;
        } else if trimmed.ends_with("information:") {
            in_accounts = false;
        } else if in_accounts && !trimmed.is_empty() {
            target.accounts.push(trimmed.to_owned());
        } else if let Some(lun) = trimmed.strip_prefix("LUN: ") {
            if let Ok(lun) = lun.trim().parse() {
                target.luns.push(lun);
            }
        } else if trimmed.starts_with("I_T nexus: ") {
            target.sessions += 1;
        } else if let Some(path) = trimmed.strip_prefix("Backing store path: ")
            && path != "None"
        {
            target.backing_stores.push(path.to_owned());
        }
    }
    targets
}

/// The persistence file of one target, in the exact layout Cinder writes
/// (`TgtAdm.VOLUME_CONF` after `textwrap.dedent`, including the blank
/// indented line where `bsoflags` is not set), so files written by Cinder
/// and by Clinker are interchangeable.
pub fn volume_conf(
    iqn: &str,
    path: &Path,
    driver: &str,
    chap: &ChapCredentials,
    target_flags: Option<&str>,
    write_cache: bool,
    volume_name: &str,
) -> String {
    let flags = target_flags
        .map(|f| format!("bsoflags {f}"))
        .unwrap_or_default();
    let write_cache = if write_cache { "on" } else { "off" };
    format!(
        "\n<target {iqn}>\n    backing-store {path}\n    driver {driver}\n    incominguser {user} {password}\n    {flags}\n    write-cache {write_cache}\n    scsi_sn {volume_name}\n    scsi_id {volume_name}\n</target>\n",
        path = path.display(),
        user = chap.username,
        password = chap.password,
    )
}

/// The `backing-store` of a target file written by [`volume_conf`].
pub fn conf_backing_store(text: &str) -> Option<PathBuf> {
    text.lines()
        .find_map(|line| line.trim().strip_prefix("backing-store "))
        .map(|path| PathBuf::from(path.trim()))
}

/// The tgtadm helper.
#[derive(Debug)]
pub struct TgtAdm {
    settings: IscsiSettings,
    volumes_dir: PathBuf,
    write_cache: bool,
    target_flags: Option<String>,
    conf_file: Option<PathBuf>,
    control_port: Option<u16>,
    runner: Arc<dyn CommandRunner>,
    retry_interval: Duration,
    lun_recreate_delay: Duration,
}

impl TgtAdm {
    /// A helper for a backend's target options.
    pub fn new(config: &TargetConfig, runner: Arc<dyn CommandRunner>) -> Self {
        Self {
            settings: IscsiSettings::from_config(config),
            volumes_dir: config.volumes_dir.clone(),
            write_cache: config.iscsi_write_cache,
            target_flags: config.iscsi_target_flags.clone(),
            conf_file: config.tgt_conf_file.clone(),
            control_port: config.tgt_control_port,
            runner,
            // Cinder's utils.retry: 1 s, doubling, three attempts.
            retry_interval: Duration::from_secs(1),
            // The first wait before re-adding a missing LUN; it doubles over
            // six attempts (about 16 s in all, Cinder waits 10 s once).
            lun_recreate_delay: Duration::from_millis(250),
        }
    }

    /// Overrides the retry interval and the first missing-LUN delay (tests).
    #[must_use]
    pub fn with_timings(mut self, retry_interval: Duration, lun_recreate_delay: Duration) -> Self {
        self.retry_interval = retry_interval;
        self.lun_recreate_delay = lun_recreate_delay;
        self
    }

    /// Where a volume's target file lives.
    pub fn persistence_file(&self, volume_name: &str) -> PathBuf {
        self.volumes_dir.join(volume_name)
    }

    fn tgt_admin(&self) -> Command {
        let mut cmd = Command::new("tgt-admin");
        if let Some(port) = self.control_port {
            cmd = cmd.args(["-C".to_owned(), port.to_string()]);
        }
        if let Some(conf) = &self.conf_file {
            cmd = cmd.args(["-c".to_owned(), conf.display().to_string()]);
        }
        cmd
    }

    /// `tgt-admin --update <iqn> [-f]`.
    pub fn update_command(&self, iqn: &str, force: bool) -> Command {
        let cmd = self.tgt_admin().args(["--update", iqn]);
        if force { cmd.arg("-f") } else { cmd }
    }

    /// `tgt-admin --show`.
    pub fn show_command(&self) -> Command {
        self.tgt_admin().arg("--show")
    }

    /// `tgt-admin --delete <iqn> [-f]`.
    pub fn delete_command(&self, iqn: &str, force: bool) -> Command {
        let cmd = self.tgt_admin().args(["--delete", iqn]);
        if force { cmd.arg("-f") } else { cmd }
    }

    /// `tgtadm --lld iscsi --op new --mode logicalunit --tid <tid> --lun 1 -b <path>`.
    pub fn new_lun_command(&self, tid: &str, path: &Path) -> Command {
        let mut cmd = Command::new("tgtadm");
        if let Some(port) = self.control_port {
            cmd = cmd.args(["-C".to_owned(), port.to_string()]);
        }
        cmd.args([
            "--lld",
            "iscsi",
            "--op",
            "new",
            "--mode",
            "logicalunit",
            "--tid",
            tid,
            "--lun",
            "1",
            "-b",
        ])
        .arg(path.display().to_string())
    }

    fn failure(&self, cmd: &Command, out: &Output) -> DriverError {
        let stderr = out.stderr.trim();
        if out.code == EXIT_NO_DAEMON {
            DriverError::Unavailable(format!(
                "tgtd is not running (or not on the configured control port): {cmd} exited {}: {stderr}",
                out.code
            ))
        } else {
            DriverError::Backend(format!("{cmd} exited {}: {stderr}", out.code))
        }
    }

    async fn run(&self, cmd: &Command) -> Result<Output, DriverError> {
        Ok(self.runner.run(cmd).await?)
    }

    /// The targets tgtd has now.
    ///
    /// # Errors
    /// tgtd unreachable or the tool missing.
    pub async fn show(&self) -> Result<Vec<TgtTarget>, DriverError> {
        let cmd = self.show_command();
        let out = self.run(&cmd).await?;
        if !out.success() {
            return Err(self.failure(&cmd, &out));
        }
        Ok(parse_show(&out.stdout))
    }

    async fn find(&self, iqn: &str) -> Result<Option<TgtTarget>, DriverError> {
        Ok(self.show().await?.into_iter().find(|t| t.iqn == iqn))
    }

    /// `tgt-admin --update`, retried with a doubling interval.
    async fn update(&self, iqn: &str, force: bool) -> Result<(), (DriverError, String)> {
        let cmd = self.update_command(iqn, force);
        let mut delay = self.retry_interval;
        let mut attempt = 1;
        loop {
            let out = match self.run(&cmd).await {
                Ok(out) => out,
                Err(e) => return Err((e, String::new())),
            };
            if out.success() {
                return Ok(());
            }
            // No daemon is not worth retrying: the socket will not appear.
            if attempt == 3 || out.code == EXIT_NO_DAEMON {
                return Err((self.failure(&cmd, &out), out.stderr));
            }
            tracing::warn!(iqn, attempt, stderr = %out.stderr.trim(), "tgt-admin --update failed; retrying");
            tokio::time::sleep(delay).await;
            delay *= 2;
            attempt += 1;
        }
    }

    async fn write_persistence_file(
        &self,
        volume_name: &str,
        text: String,
    ) -> Result<(), DriverError> {
        let dir = self.volumes_dir.clone();
        let name = volume_name.to_owned();
        tokio::task::spawn_blocking(move || write_private_file(&dir, &name, text.as_bytes()))
            .await
            .map_err(|e| DriverError::Backend(format!("writing a target file panicked: {e}")))?
    }

    async fn remove_persistence_file(&self, volume_name: &str) {
        let path = self.persistence_file(volume_name);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove target file")
            }
        }
    }
}

/// Writes `dir/name` readable by its owner only (it holds a CHAP secret),
/// through a hidden temporary name and a rename so tgt-admin never reads a
/// half-written file (`*` in tgt's include does not match dot files).
fn write_private_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), DriverError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |what: &str, path: &Path, e: std::io::Error| {
        DriverError::Backend(format!("{what} {}: {e}", path.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| io("create directory", dir, e))?;
    let temp = dir.join(format!(".{name}.tmp"));
    let target = dir.join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| io("create", &temp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io("write", &temp, e))?;
    std::fs::rename(&temp, &target).map_err(|e| io("rename", &target, e))
}

#[async_trait::async_trait]
impl TargetHelper for TgtAdm {
    fn helper_name(&self) -> &'static str {
        "tgtadm"
    }

    fn settings(&self) -> &IscsiSettings {
        &self.settings
    }

    fn lun(&self) -> u32 {
        1
    }

    async fn do_setup(&self) -> Result<(), DriverError> {
        tokio::fs::create_dir_all(&self.volumes_dir)
            .await
            .map_err(|e| {
                DriverError::Unavailable(format!(
                    "cannot create volumes_dir {}: {e}",
                    self.volumes_dir.display()
                ))
            })
    }

    async fn check_for_setup_error(&self) -> Result<(), DriverError> {
        // Missing tools make every export fail: the backend is unusable. A
        // stopped tgtd only affects exports and may be started later.
        match self.show().await {
            Ok(_) => Ok(()),
            Err(DriverError::Unavailable(reason)) if reason.starts_with("cannot run") => Err(
                DriverError::Unavailable(format!("the tgt tools are not installed: {reason}")),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "tgtd is not reachable; exports will fail until it is");
                Ok(())
            }
        }
    }

    async fn create_iscsi_target(
        &self,
        volume: &VolumeSpec,
        iqn: &str,
        path: &Path,
        chap: &ChapCredentials,
    ) -> Result<String, DriverError> {
        let conf = volume_conf(
            iqn,
            path,
            self.settings.protocol.as_str(),
            chap,
            self.target_flags.as_deref(),
            self.write_cache,
            &volume.name,
        );
        let file = self.persistence_file(&volume.name);
        let unchanged = tokio::fs::read_to_string(&file)
            .await
            .is_ok_and(|existing| existing == conf);
        if unchanged
            && let Some(target) = self.find(iqn).await?
            && target.luns.contains(&1)
        {
            return Ok(target.tid);
        }
        self.write_persistence_file(&volume.name, conf).await?;
        if let Err((error, stderr)) = self.update(iqn, false).await {
            // Cinder bug 1398078: a racing update reports "target already
            // exists". If the target is there and complete, it is ours.
            if stderr.contains("already exists")
                && let Ok(Some(target)) = self.find(iqn).await
                && target.luns.contains(&1)
            {
                tracing::warn!(iqn, "tgt-admin reported the target as existing; using it");
                return Ok(target.tid);
            }
            self.remove_persistence_file(&volume.name).await;
            return Err(error);
        }
        let mut target = None;
        for attempt in 1..=3 {
            target = self.find(iqn).await?;
            if target.is_some() {
                break;
            }
            if attempt < 3 {
                tokio::time::sleep(self.retry_interval).await;
            }
        }
        let Some(target) = target else {
            self.remove_persistence_file(&volume.name).await;
            return Err(DriverError::Backend(format!(
                "target {iqn} does not exist after tgt-admin --update; tgt's configuration must include {}/*",
                self.volumes_dir.display()
            )));
        };
        if target.luns.contains(&1) {
            return Ok(target.tid);
        }
        tracing::warn!(iqn, tid = %target.tid, "target has no LUN 1; re-adding its backing store");
        let cmd = self.new_lun_command(&target.tid, path);
        let mut delay = self.lun_recreate_delay;
        let mut last = String::new();
        for attempt in 1..=6 {
            tokio::time::sleep(delay).await;
            delay *= 2;
            let out = self.run(&cmd).await?;
            if out.success() {
                break;
            }
            last = out.stderr.trim().to_owned();
            tracing::debug!(iqn, attempt, stderr = %last, "tgtadm could not add LUN 1 yet");
            // Someone else added it meanwhile.
            if last.contains("already exists") {
                break;
            }
        }
        match self.find(iqn).await? {
            Some(t) if t.luns.contains(&1) => Ok(t.tid),
            _ => {
                self.remove_persistence_file(&volume.name).await;
                Err(DriverError::Backend(format!(
                    "target {iqn} has no LUN 1 backed by {}: {last}",
                    path.display()
                )))
            }
        }
    }

    async fn remove_iscsi_target(&self, volume_name: &str, iqn: &str) -> Result<(), DriverError> {
        if self.find(iqn).await?.is_some() {
            // --force: a target with sessions is otherwise left in place
            // (Cinder bug 1159948).
            let cmd = self.delete_command(iqn, true);
            let out = self.run(&cmd).await?;
            if !out.success() {
                let nonfatal = [
                    "can't find the target",
                    "access control rule does not exist",
                ];
                if !nonfatal.iter().any(|m| out.stderr.contains(m)) {
                    return Err(self.failure(&cmd, &out));
                }
                tracing::warn!(iqn, stderr = %out.stderr.trim(), "target or ACL already gone");
            }
            // Some tgt versions fail silently with -f (Cinder bug 1304122):
            // check, and retry without it.
            if self.find(iqn).await?.is_some() {
                tracing::warn!(iqn, "target still listed after a forced delete; retrying");
                let cmd = self.delete_command(iqn, false);
                let out = self.run(&cmd).await?;
                if !out.success() {
                    return Err(self.failure(&cmd, &out));
                }
                if let Some(target) = self.find(iqn).await? {
                    return Err(DriverError::Busy(format!(
                        "target {iqn} is still exported ({} sessions)",
                        target.sessions
                    )));
                }
            }
        }
        self.remove_persistence_file(volume_name).await;
        Ok(())
    }

    async fn list_targets(&self) -> Result<Vec<ListedTarget>, DriverError> {
        Ok(self
            .show()
            .await?
            .into_iter()
            .map(|t| ListedTarget {
                backing_store: t.backing_stores.first().map(PathBuf::from),
                iqn: t.iqn,
            })
            .collect())
    }

    async fn target_is_complete(&self, iqn: &str) -> Result<bool, DriverError> {
        Ok(self.find(iqn).await?.is_some_and(|t| t.luns.contains(&1)))
    }

    async fn extend_target(&self, volume: &VolumeSpec) -> Result<(), DriverError> {
        let iqn = self.settings.iqn(&volume.name);
        if self.find(&iqn).await?.is_none() {
            return Ok(());
        }
        self.update(&iqn, true).await.map_err(|(e, _)| e)
    }

    async fn reconcile_targets(
        &self,
        wanted: &[super::WantedExport],
        backing_root: &Path,
    ) -> Result<super::ReconcileReport, DriverError> {
        let mut report = super::reconcile_exports(self, wanted, backing_root).await?;
        // Target files no wanted volume owns would come back on the next
        // `tgt-admin --update ALL` or tgtd restart: remove them too, but
        // only this backend's (`volumes_dir` is shared by default).
        let wanted_names: std::collections::BTreeSet<&str> =
            wanted.iter().map(|w| w.volume.name.as_str()).collect();
        if let Ok(mut entries) = tokio::fs::read_dir(&self.volumes_dir).await {
            while let Ok(Some(entry)) = entries.next_entry().await {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.starts_with("volume-") || wanted_names.contains(name.as_str()) {
                    continue;
                }
                let text = tokio::fs::read_to_string(entry.path())
                    .await
                    .unwrap_or_default();
                if is_under(conf_backing_store(&text).as_deref(), backing_root) {
                    self.remove_persistence_file(&name).await;
                    let iqn = self.settings.iqn(&name);
                    if !report.removed.contains(&iqn) {
                        tracing::info!(file = %entry.path().display(), "removed a stale target file");
                    }
                }
            }
        }
        report.removed.sort();
        Ok(report)
    }
}
