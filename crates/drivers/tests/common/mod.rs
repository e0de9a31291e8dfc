//! Shared plumbing of the system tests: gating, tool discovery, running
//! commands (through `HostRunner`, like the drivers) and cleanup that runs
//! even when a test panics.
//!
//! System tests touch the host (loop devices, LVM, a tgtd), so they run only
//! with `CLINKER_SYSTEM_TESTS=1` or `CI=true`, and skip with a message
//! otherwise. Under `CI=true` a missing tool or privilege is a failure, not
//! a skip. `scripts/install-dataplane-tools.sh` installs everything.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use clinker_drivers::GIB;
use clinker_exec::{Command, CommandRunner, HostRunner, Output};
use clinker_types::connection::ConnectionInfo;

/// Whether system tests were asked for.
pub fn enabled(test: &str) -> bool {
    let on = std::env::var("CLINKER_SYSTEM_TESTS").is_ok_and(|v| v == "1") || in_ci();
    if !on {
        eprintln!("skipping system test {test}: set CLINKER_SYSTEM_TESTS=1 (or CI=true) to run it");
    }
    on
}

/// `CI=true`: missing prerequisites fail instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (or, under CI, fails) with `reason`; returns false for `?`-style use.
pub fn unmet(test: &str, reason: &str) -> bool {
    assert!(
        !in_ci(),
        "system test {test} cannot run under CI=true: {reason} (see scripts/install-dataplane-tools.sh)"
    );
    eprintln!("skipping system test {test}: {reason} (see scripts/install-dataplane-tools.sh)");
    false
}

/// Finds `program` in `PATH` (and the sbin directories tools live in).
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// Checks that every tool exists and that we are root.
pub fn prerequisites(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| find_program(t).is_none())
        .collect();
    if !missing.is_empty() {
        return unmet(test, &format!("missing tools: {}", missing.join(", ")));
    }
    if !nix_is_root() {
        return unmet(test, "needs root (loop devices, LVM, tgtd)");
    }
    true
}

fn nix_is_root() -> bool {
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
pub struct LoopVg {
    pub dir: tempfile::TempDir,
    pub image: PathBuf,
    pub loop_device: String,
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

    pub fn conf_file(&self) -> PathBuf {
        self.dir.path().join("etc/lvm.conf")
    }

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

    /// Where `lv`'s bytes are in the PV's backing file: (offset, length).
    pub async fn lv_extent_range(&self, lv: &str) -> (u64, u64) {
        let field = |text: &str| text.trim().to_owned();
        let pe_start = field(
            &run_ok(self.lvm("pvs").args([
                "--noheadings",
                "--units",
                "b",
                "--nosuffix",
                "-o",
                "pe_start",
                self.loop_device.as_str(),
            ]))
            .await,
        );
        let extent = field(
            &run_ok(self.lvm("vgs").args([
                "--noheadings",
                "--units",
                "b",
                "--nosuffix",
                "-o",
                "vg_extent_size",
                self.vg.as_str(),
            ]))
            .await,
        );
        let ranges = field(
            &run_ok(self.lvm("lvs").args([
                "--noheadings",
                "-o",
                "seg_pe_ranges",
                &format!("{}/{lv}", self.vg),
            ]))
            .await,
        );
        // "/dev/loop3:256-511": one linear segment.
        let (_, range) = ranges.rsplit_once(':').unwrap();
        let (first, last) = range.split_once('-').unwrap();
        let (pe_start, extent): (u64, u64) = (pe_start.parse().unwrap(), extent.parse().unwrap());
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

    pub fn write_at(&self, offset: u64, bytes: &[u8]) {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.image)
            .unwrap();
        f.write_all_at(bytes, offset).unwrap();
        f.sync_all().unwrap();
    }

    pub fn read_at(&self, offset: u64, len: usize) -> Vec<u8> {
        let f = std::fs::File::open(&self.image).unwrap();
        let mut buf = vec![0; len];
        f.read_exact_at(&mut buf, offset).unwrap();
        buf
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

/// A tgtd of our own, stopped on drop.
pub struct Tgtd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub control_port: u16,
    pid: Option<u32>,
}

impl Tgtd {
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
                || std::path::Path::new(&format!("/var/run/tgtd/socket.{control_port}")).exists()
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

    pub fn volumes_dir(&self) -> PathBuf {
        self.dir.path().join("volumes")
    }

    pub fn conf_file(&self) -> PathBuf {
        self.dir.path().join("targets.conf")
    }

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
                let gone = !std::path::Path::new(&format!("/proc/{pid}")).exists()
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

/// qemu-io with the iscsi block module, if available.
pub fn qemu_io() -> Option<(PathBuf, Option<String>)> {
    let home = std::env::var("HOME").unwrap_or_default();
    let default_root = PathBuf::from(&home).join(".cache/clinker-qemu72/root");
    let bin = std::env::var("CLINKER_QEMU_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| default_root.join("usr/bin"));
    let modules = std::env::var("QEMU_MODULE_DIR").ok().or_else(|| {
        let dir = default_root.join("usr/lib/x86_64-linux-gnu/qemu");
        dir.is_dir().then(|| dir.display().to_string())
    });
    let qemu_io = bin.join("qemu-io");
    qemu_io.is_file().then_some((qemu_io, modules))
}

/// The initiator's URL, built only from the connection info.
pub fn iscsi_url(info: &ConnectionInfo) -> String {
    let d = &info.data;
    let s = |k: &str| {
        d[k].as_str()
            .unwrap_or_else(|| panic!("{k} missing: {d:?}"))
    };
    assert_eq!(info.driver_volume_type, "iscsi");
    assert_eq!(s("auth_method"), "CHAP");
    format!(
        "iscsi://{}%{}@{}/{}/{}",
        s("auth_username"),
        s("auth_password"),
        s("target_portal"),
        s("target_iqn"),
        d["target_lun"]
    )
}

pub fn qemu(qemu_io: &(PathBuf, Option<String>), commands: &[&str], url: &str) -> Command {
    let mut cmd = Command::new(qemu_io.0.display().to_string()).args(["-f", "raw"]);
    for c in commands {
        cmd = cmd.args(["-c", c]);
    }
    if let Some(modules) = &qemu_io.1 {
        cmd = cmd.env("QEMU_MODULE_DIR", modules.clone());
    }
    cmd.arg(url)
}
