//! A throw-away one-node Ceph cluster for system tests
//! (`scripts/ceph-single-node.sh`: one monitor, manager and OSD on
//! loopback, pool `volumes` and the extra pools asked for, all usable by
//! the cephx user `client.cinder` with Cinder's recommended caps), and the
//! `rbd` / `rados` tools run as that user. Torn down when dropped or when
//! the test process dies (the script's watchdog).

use std::path::{Path, PathBuf};

use crate::env::{find_program, system_tests, unmet};

/// The pool the cluster makes and the RBD backends use.
pub const POOL: &str = "volumes";
/// The cephx user (`client.cinder`, Cinder's recommended caps).
pub const USER: &str = "cinder";

/// A running cluster.
#[derive(Debug)]
pub struct Ceph {
    /// `CEPH_DIR`: its configuration (`ceph.conf`), keyrings, data, logs.
    pub dir: PathBuf,
    extra_pools: String,
    objectstore: &'static str,
}

impl Ceph {
    /// Starts a fresh cluster in `dir` (which must not exist yet), on
    /// bluestore so it survives `stop` / `start`. The caller has decided
    /// the test runs.
    pub fn up(dir: PathBuf) -> Self {
        let ceph = Self {
            dir,
            extra_pools: String::new(),
            objectstore: "bluestore",
        };
        ceph.script("up");
        ceph
    }

    /// Starts a cluster in `dir` (which must not exist yet, memstore) with
    /// pools `volumes` and `extra_pools`; `None` when `test` is skipped (no
    /// `CLINKER_SYSTEM_TESTS` / `CI`, or no Ceph off CI).
    pub fn start(test: &str, dir: PathBuf, extra_pools: &[&str]) -> Option<Self> {
        if !system_tests(test) {
            return None;
        }
        if find_program("ceph-mon").is_none() {
            unmet(test, "ceph-mon is not installed", "scripts/install-ceph.sh");
            return None;
        }
        let ceph = Self {
            dir,
            extra_pools: extra_pools.join(" "),
            objectstore: "memstore",
        };
        ceph.script("up");
        Some(ceph)
    }

    /// `ceph.conf`, as `rbd_ceph_conf` names it.
    pub fn conf(&self) -> PathBuf {
        self.dir.join("ceph.conf")
    }

    /// Runs `ceph-single-node.sh action` (`up`, `stop`, `start`, `down`).
    pub fn script(&self, action: &str) {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ceph-single-node.sh");
        let out = std::process::Command::new("bash")
            .arg(script)
            .arg(action)
            .env("CEPH_DIR", &self.dir)
            .env("CEPH_EXTRA_POOLS", &self.extra_pools)
            .env("OBJECTSTORE", self.objectstore)
            .env("OSD_SIZE", "3G")
            .env("OWNER_PID", std::process::id().to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ceph-single-node.sh {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `rbd` or `rados` as the test's cephx user and returns its
    /// stdout. Ceph 16's tools sometimes abort in librados as they exit
    /// (seen in CI): a run that died on a signal runs again, twice at most,
    /// when `retry` says it may; anything else that fails fails the test.
    fn run(&self, tool: &str, args: &[&str], retry: bool) -> String {
        for attempt in 1.. {
            if tool == "rbd" && args[0] == "export" {
                let _ = std::fs::remove_file(args[args.len() - 1]);
            }
            let out = std::process::Command::new(tool)
                .args(["--id", USER, "--conf"])
                .arg(self.conf())
                .args(args)
                .output()
                .unwrap();
            if out.status.code().is_none() && retry && attempt < 3 {
                eprintln!("{tool} {args:?} died on a signal; running it again");
                continue;
            }
            assert!(
                out.status.success(),
                "{tool} {args:?} ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        unreachable!()
    }

    /// `rbd <args>`; only reads (`ls`, `du`, `info`, `export`, `children`)
    /// are run again after a crash.
    pub fn rbd(&self, args: &[&str]) -> String {
        let reads = matches!(args[0], "ls" | "du" | "info" | "export" | "children");
        self.run("rbd", args, reads)
    }

    /// `rbd` or `rados` with `args`, run again after a crash.
    pub fn tool(&self, tool: &str, args: &[&str]) -> String {
        self.run(tool, args, true)
    }

    /// `rbd <args>` (with `--format json` among them), parsed.
    pub fn rbd_json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.tool("rbd", args)).unwrap()
    }

    /// The images in `volumes`, sorted.
    pub fn images(&self) -> Vec<String> {
        let mut names: Vec<String> =
            serde_json::from_str(&self.rbd(&["ls", POOL, "--format", "json"])).unwrap();
        names.sort();
        names
    }

    /// The whole image `volumes/image` (`rbd export`), through `scratch`.
    pub fn export(&self, image: &str, scratch: &Path) -> Vec<u8> {
        let out = scratch.join(format!("{image}.export"));
        self.rbd(&[
            "export",
            "--no-progress",
            &format!("{POOL}/{image}"),
            &out.display().to_string(),
        ]);
        let data = std::fs::read(&out).unwrap();
        std::fs::remove_file(&out).unwrap();
        data
    }

    /// The objects of `pool` that belong to images or backups (an empty
    /// pool still has its own `rbd_directory`, `rbd_info`, `rbd_trash`).
    pub fn leftover_objects(&self, pool: &str) -> Vec<String> {
        let mut objects: Vec<String> = self
            .tool("rados", &["--pool", pool, "ls"])
            .lines()
            .filter(|o| {
                !matches!(
                    *o,
                    "rbd_directory" | "rbd_info" | "rbd_trash" | "rbd_children"
                )
            })
            .map(str::to_owned)
            .collect();
        objects.sort();
        objects
    }
}

impl Drop for Ceph {
    fn drop(&mut self) {
        self.script("down");
    }
}
