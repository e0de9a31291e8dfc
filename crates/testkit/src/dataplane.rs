//! The data-path system tests' plumbing: gating, running host tools
//! (through `HostRunner`, like the drivers), a volume group on a loop
//! device, a private tgtd, and a userspace iSCSI initiator (qemu-io,
//! libiscsi) driven only by the connection info a driver or the API hands
//! out. Everything is cleaned up even when a test panics.
//!
//! System tests touch the host (loop devices, LVM, a tgtd), so they run only
//! with `CLINKER_SYSTEM_TESTS=1` or `CI=true`, and skip with a message
//! otherwise. Under `CI=true` a missing tool or privilege is a failure, not
//! a skip. `scripts/install-dataplane-tools.sh` installs everything.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use clinker_config::{LvmDriverOptions, LvmType, TargetConfig, TargetHelperKind, VolumeClear};
use clinker_exec::{Command, CommandRunner, HostRunner, Output};
use serde_json::{Map, Value};

use crate::env;

const GIB: u64 = 1 << 30;
const HINT: &str = "see scripts/install-dataplane-tools.sh";

/// Whether system tests were asked for (prints the skip otherwise).
pub fn enabled(test: &str) -> bool {
    env::system_tests(test)
}

/// Skips (or, under CI, fails) system test `test` with `reason`; false.
pub fn unmet(test: &str, reason: &str) -> bool {
    env::unmet(&format!("system test {test}"), reason, HINT)
}

/// Asked for, every tool present, and root: whether `test` may run.
pub fn ready(test: &str, tools: &[&str]) -> bool {
    if !enabled(test) {
        return false;
    }
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| env::find_program(t).is_none())
        .collect();
    if !missing.is_empty() {
        return unmet(test, &format!("missing tools: {}", missing.join(", ")));
    }
    if !is_root() {
        return unmet(test, "needs root (loop devices, LVM, tgtd)");
    }
    true
}

/// [`ready`], and qemu-io with its iscsi module (which the initiator side
/// of the test needs).
pub fn ready_with_qemu(test: &str, tools: &[&str]) -> Option<QemuIo> {
    if !ready(test, tools) {
        return None;
    }
    let qemu = QemuIo::find();
    if qemu.is_none() {
        unmet(
            test,
            "qemu-io with the iscsi module (CLINKER_QEMU_BIN, QEMU_MODULE_DIR) is missing",
        );
    }
    qemu
}

fn is_root() -> bool {
    // /proc/self/status "Uid:" real effective ...; avoids unsafe getuid.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Runs `cmd` and returns its output.
pub async fn run(cmd: Command) -> Output {
    HostRunner::new()
        .run(&cmd)
        .await
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

/// Runs `cmd`, which must succeed; returns its stdout.
pub async fn run_ok(cmd: Command) -> String {
    let line = cmd.command_line();
    let out = run(cmd).await;
    assert!(out.success(), "{line} exited {}: {}", out.code, out.stderr);
    out.stdout
}

/// Runs commands to completion from a non-async context (cleanup in
/// `Drop`, which may run while a test panics inside the tokio runtime): a
/// fresh thread with its own runtime.
pub fn run_blocking(cmds: Vec<Command>) -> Vec<Output> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let runner = HostRunner::new();
            let mut outs = Vec::new();
            for cmd in cmds {
                match runner.run(&cmd).await {
                    Ok(out) => outs.push(out),
                    Err(e) => outs.push(Output::failed(-1, e.to_string())),
                }
            }
            outs
        })
    })
    .join()
    .unwrap_or_default()
}

/// A random number in `low..high` without a dependency on rand.
pub fn random_in(low: u32, high: u32) -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    low + (nanos ^ std::process::id().wrapping_mul(2_654_435_761)) % (high - low)
}

/// A VG on a loop device, removed with everything in it on drop.
#[derive(Debug)]
pub struct LoopVg {
    /// Holds the PV's backing file and the private `lvm.conf`.
    pub dir: tempfile::TempDir,
    /// The PV's backing file.
    pub image: PathBuf,
    /// The loop device over it.
    pub loop_device: String,
    /// The VG's name.
    pub vg: String,
    extra_loops: Mutex<Vec<String>>,
}

impl LoopVg {
    /// A VG of `size_gb` GiB; `activation = false` adds `global { activation = 0 }`
    /// (kernels without device-mapper).
    pub async fn create(size_gb: u64, activation: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("pv0.img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(size_gb * GIB)
            .unwrap();
        let loop_device =
            run_ok(Command::new("losetup").args(["-f", "--show", image.to_str().unwrap()]))
                .await
                .trim()
                .to_owned();
        let vg = format!("clinker-test-{}", random_in(100_000, 999_999));
        let etc = dir.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(
            etc.join("lvm.conf"),
            format!(
                "{}devices {{ global_filter = [ \"a|^{loop_device}$|\", \"r|.*|\" ] obtain_device_list_from_udev = 0 }}\n\
                 activation {{ udev_sync = 0 udev_rules = 0 monitoring = 0 }}\n",
                if activation { "" } else { "global { activation = 0 }\n" }
            ),
        )
        .unwrap();
        let me = Self {
            dir,
            image,
            loop_device,
            vg,
            extra_loops: Mutex::new(Vec::new()),
        };
        run_ok(me.lvm("pvcreate").arg(&me.loop_device)).await;
        run_ok(
            me.lvm("vgcreate")
                .args([me.vg.as_str(), me.loop_device.as_str()]),
        )
        .await;
        me
    }

    /// The private `lvm.conf` (`lvm_conf_file`).
    pub fn conf_file(&self) -> PathBuf {
        self.dir.path().join("etc/lvm.conf")
    }

    /// The LVM driver's options for this VG, through the private
    /// `lvm.conf`, clearing `clear_mib` MiB of deleted volumes (0: all).
    pub fn driver_options(
        &self,
        lvm_type: LvmType,
        clear: VolumeClear,
        clear_mib: u32,
    ) -> LvmDriverOptions {
        LvmDriverOptions {
            lvm_conf_file: Some(self.conf_file()),
            lvm_suppress_fd_warnings: true,
            volume_clear_size_mib: clear_mib,
            ..crate::config::lvm_options(&self.vg, lvm_type, clear)
        }
    }

    /// An LVM command that reads only the private configuration.
    pub fn lvm(&self, program: &str) -> Command {
        Command::new(program)
            .env(
                "LVM_SYSTEM_DIR",
                self.dir.path().join("etc").display().to_string(),
            )
            .env("LVM_SUPPRESS_FD_WARNINGS", "1")
            .env("LC_ALL", "C")
    }

    /// LV names as LVM itself reports them.
    pub async fn lv_names(&self) -> Vec<String> {
        let out = run_ok(
            self.lvm("lvs")
                .args(["--noheadings", "-o", "lv_name", self.vg.as_str()]),
        )
        .await;
        out.split_whitespace().map(str::to_owned).collect()
    }

    /// One number LVM reports in bytes: `program --noheadings --units b
    /// --nosuffix -o field of`.
    async fn report_bytes(&self, program: &str, field: &str, of: &str) -> u64 {
        let args = [
            "--noheadings",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            field,
            of,
        ];
        run_ok(self.lvm(program).args(args))
            .await
            .trim()
            .parse()
            .unwrap()
    }

    /// Where `lv`'s bytes are in the PV's backing file: (offset, length).
    pub async fn lv_extent_range(&self, lv: &str) -> (u64, u64) {
        let pe_start = self
            .report_bytes("pvs", "pe_start", &self.loop_device)
            .await;
        let extent = self.report_bytes("vgs", "vg_extent_size", &self.vg).await;
        let ranges = run_ok(self.lvm("lvs").args([
            "--noheadings",
            "-o",
            "seg_pe_ranges",
            &format!("{}/{lv}", self.vg),
        ]))
        .await;
        // "/dev/loop3:256-511": one linear segment.
        let (_, range) = ranges.trim().rsplit_once(':').unwrap();
        let (first, last) = range.split_once('-').unwrap();
        let (first, last): (u64, u64) = (first.parse().unwrap(), last.parse().unwrap());
        (pe_start + first * extent, (last - first + 1) * extent)
    }

    /// Makes `device` (a `/dev/mapper/…` path under the test's device root)
    /// a loop device over `lv`'s bytes.
    pub async fn emulate_device(&self, lv: &str, device: &Path) {
        let (offset, length) = self.lv_extent_range(lv).await;
        let loop_device = run_ok(Command::new("losetup").args([
            "-f".to_owned(),
            "--show".to_owned(),
            "-o".to_owned(),
            offset.to_string(),
            "--sizelimit".to_owned(),
            length.to_string(),
            self.image.display().to_string(),
        ]))
        .await
        .trim()
        .to_owned();
        self.extra_loops.lock().unwrap().push(loop_device.clone());
        std::fs::create_dir_all(device.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&loop_device, device).unwrap();
    }

    /// Writes into the PV's backing file.
    pub fn write_at(&self, offset: u64, bytes: &[u8]) {
        crate::files::write_at(&self.image, offset, bytes);
    }

    /// Reads from the PV's backing file.
    pub fn read_at(&self, offset: u64, len: usize) -> Vec<u8> {
        crate::files::read_at(&self.image, offset, len)
    }
}

impl Drop for LoopVg {
    fn drop(&mut self) {
        let mut cmds = vec![
            self.lvm("vgremove").args(["-f", self.vg.as_str()]),
            self.lvm("pvremove")
                .args(["-ff", "-y", self.loop_device.as_str()]),
        ];
        for extra in self
            .extra_loops
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
        {
            cmds.push(Command::new("losetup").args(["-d", extra.as_str()]));
        }
        cmds.push(Command::new("losetup").args(["-d", self.loop_device.as_str()]));
        for out in run_blocking(cmds) {
            if !out.success() {
                eprintln!("cleanup: {}", out.stderr.trim());
            }
        }
    }
}

/// A tgtd of our own on 127.0.0.1 with a random iSCSI port, a random
/// control port (so parallel runs and a system tgtd do not collide) and a
/// private configuration that includes only its own `volumes_dir`;
/// stopped on drop.
#[derive(Debug)]
pub struct Tgtd {
    /// Holds the configuration and `volumes_dir`.
    pub dir: tempfile::TempDir,
    /// The iSCSI portal's port.
    pub port: u16,
    /// `tgtd -C`.
    pub control_port: u16,
    pid: Option<u32>,
}

impl Tgtd {
    /// Starts the daemon and waits until its portal listens.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let volumes = dir.path().join("volumes");
        std::fs::create_dir_all(&volumes).unwrap();
        std::fs::write(
            dir.path().join("targets.conf"),
            format!("include {}/*\n", volumes.display()),
        )
        .unwrap();
        for _ in 0..20 {
            let port = u16::try_from(random_in(3261, 9000)).unwrap();
            // tgtd accepts control ports up to 32767.
            let control_port = u16::try_from(random_in(20_000, 32_000)).unwrap();
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_err()
                || Path::new(&format!("/var/run/tgtd/socket.{control_port}")).exists()
            {
                continue;
            }
            let pid_file = dir.path().join("tgtd.pid");
            // tgtd daemonizes: the command returns once it is up.
            let out = run(Command::new("tgtd").args([
                "-C".to_owned(),
                control_port.to_string(),
                "--iscsi".to_owned(),
                format!("portal=127.0.0.1:{port}"),
                "--pid-file".to_owned(),
                pid_file.display().to_string(),
            ]))
            .await;
            assert!(out.success(), "tgtd: {}", out.stderr);
            let mut me = Self {
                dir,
                port,
                control_port,
                pid: None,
            };
            for _ in 0..100 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    me.pid = std::fs::read_to_string(&pid_file)
                        .ok()
                        .and_then(|p| p.trim().parse().ok());
                    return me;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("tgtd did not listen on 127.0.0.1:{port}");
        }
        panic!("no free port for tgtd");
    }

    /// Where the tgtadm helper writes its target files.
    pub fn volumes_dir(&self) -> PathBuf {
        self.dir.path().join("volumes")
    }

    /// The configuration that includes `volumes_dir`.
    pub fn conf_file(&self) -> PathBuf {
        self.dir.path().join("targets.conf")
    }

    /// The `target_*` options of a backend exporting through this tgtd.
    pub fn target_config(&self) -> TargetConfig {
        let mut target = TargetConfig::with_defaults(TargetHelperKind::Tgtadm, self.volumes_dir());
        target.target_port = self.port;
        target.tgt_conf_file = Some(self.conf_file());
        target.tgt_control_port = Some(self.control_port);
        target
    }

    /// The same as backend options in `cinder.conf`.
    pub fn target_options(&self) -> String {
        format!(
            "target_helper = tgtadm\ntarget_ip_address = 127.0.0.1\ntarget_port = {}\n\
             volumes_dir = {}\ntgt_conf_file = {}\ntgt_control_port = {}\n",
            self.port,
            self.volumes_dir().display(),
            self.conf_file().display(),
            self.control_port
        )
    }

    /// The IQNs `tgt-admin --show` lists.
    pub async fn target_iqns(&self) -> Vec<String> {
        let out = run_ok(Command::new("tgt-admin").args([
            "-C".to_owned(),
            self.control_port.to_string(),
            "--show".to_owned(),
        ]))
        .await;
        out.lines()
            .filter_map(|l| l.strip_prefix("Target "))
            .filter_map(|l| l.split_once(": ").map(|(_, iqn)| iqn.to_owned()))
            .collect()
    }
}

impl Drop for Tgtd {
    fn drop(&mut self) {
        let port = self.control_port.to_string();
        // tgtd ignores SIGTERM: delete every target, then the daemon.
        run_blocking(vec![
            Command::new("tgt-admin").args(["-C", port.as_str(), "--force", "--delete", "ALL"]),
            Command::new("tgtadm").args([
                "-C",
                port.as_str(),
                "--op",
                "delete",
                "--mode",
                "system",
            ]),
        ]);
        if let Some(pid) = self.pid {
            let gone = (0..50).any(|_| {
                let gone = !Path::new(&format!("/proc/{pid}")).exists()
                    || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .is_ok_and(|s| s.contains(") Z "));
                if !gone {
                    std::thread::sleep(Duration::from_millis(20));
                }
                gone
            });
            if !gone {
                eprintln!("tgtd {pid} did not exit; killing it");
                run_blocking(vec![Command::new("kill").args(["-9", &pid.to_string()])]);
            }
        }
        // tgtd leaves its control socket behind.
        for suffix in ["", ".lock"] {
            let _ = std::fs::remove_file(format!("/var/run/tgtd/socket.{port}{suffix}"));
        }
    }
}

/// qemu-io with the iscsi block module: a userspace initiator that writes
/// and checks patterns.
#[derive(Clone, Debug)]
pub struct QemuIo {
    /// The `qemu-io` binary.
    pub bin: PathBuf,
    /// `QEMU_MODULE_DIR`, where its iscsi module is.
    pub modules: Option<String>,
}

impl QemuIo {
    /// `CLINKER_QEMU_BIN` and `QEMU_MODULE_DIR`, defaulting to where
    /// `scripts/install-dataplane-tools.sh` extracts them.
    pub fn find() -> Option<Self> {
        let home = std::env::var("HOME").unwrap_or_default();
        let default_root = PathBuf::from(&home).join(".cache/clinker-qemu72/root");
        let bin = std::env::var("CLINKER_QEMU_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| default_root.join("usr/bin"));
        let modules = std::env::var("QEMU_MODULE_DIR").ok().or_else(|| {
            let dir = default_root.join("usr/lib/x86_64-linux-gnu/qemu");
            dir.is_dir().then(|| dir.display().to_string())
        });
        let bin = bin.join("qemu-io");
        bin.is_file().then_some(Self { bin, modules })
    }

    /// `qemu-io -c command … args` with the module directory set.
    pub fn command<S: Into<String>>(
        &self,
        commands: &[&str],
        args: impl IntoIterator<Item = S>,
    ) -> Command {
        let mut cmd = Command::new(self.bin.display().to_string());
        for c in commands {
            cmd = cmd.args(["-c", c]);
        }
        if let Some(modules) = &self.modules {
            cmd = cmd.env("QEMU_MODULE_DIR", modules.clone());
        }
        cmd.args(args.into_iter().map(Into::into).collect::<Vec<String>>())
    }

    /// `qemu-io` on the raw image at `url`.
    pub fn on(&self, commands: &[&str], url: &str) -> Command {
        self.command(commands, ["-f", "raw", url])
    }

    /// Runs `commands` on `url`, which must succeed (`what` says what
    /// they check).
    pub async fn check(&self, what: &str, commands: &[&str], url: &str) {
        let out = run(self.on(commands, url)).await;
        assert!(
            out.success(),
            "qemu-io {what}: {} {}",
            out.stdout,
            out.stderr
        );
    }
}

/// The patterns the iSCSI tests write at the start and near the end of a
/// 1 GiB volume.
pub const WRITE_PATTERNS: &[&str] = &["write -P 0x5a 0 4M", "write -P 0xa5 1020M 4M"];
/// [`WRITE_PATTERNS`] read back and compared.
pub const READ_PATTERNS: &[&str] = &["read -P 0x5a 0 4M", "read -P 0xa5 1020M 4M"];

/// The initiator's URL (`iscsi://user%password@portal/iqn/lun`), built only
/// from the connection info: its type and its data (`data` of a driver's
/// answer, the flattened object of the attachments API).
pub fn iscsi_url(driver_volume_type: &str, data: &Map<String, Value>) -> String {
    let s = |k: &str| {
        data.get(k)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{k} missing from {data:?}"))
    };
    assert_eq!(driver_volume_type, "iscsi");
    assert_eq!(s("auth_method"), "CHAP");
    format!(
        "iscsi://{}%{}@{}/{}/{}",
        s("auth_username"),
        s("auth_password"),
        s("target_portal"),
        s("target_iqn"),
        data["target_lun"]
    )
}

/// CHAP is enforced on `target_path` (`portal/iqn/lun`): `user` with a
/// wrong password is refused, as "Authentication failure".
pub async fn assert_chap_refuses(user: &str, target_path: &str) {
    let wrong =
        run(Command::new("iscsi-inq").arg(format!("iscsi://{user}%wrongpassword@{target_path}")))
            .await;
    assert_ne!(wrong.code, 0, "a wrong CHAP password must be refused");
    assert!(
        wrong.stderr.contains("Authentication failure")
            || wrong.stdout.contains("Authentication failure"),
        "{wrong:?}"
    );
}
