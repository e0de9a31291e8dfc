//! A throw-away single-node Ceph cluster for system tests
//! (`scripts/ceph-single-node.sh`: one monitor, manager and memstore OSD on
//! loopback, pool `volumes` and the extra pools asked for, all usable by
//! `client.cinder`), torn down when dropped or when the test process dies.

use std::path::{Path, PathBuf};

use crate::env::{find_program, system_tests, unmet};

/// A running cluster.
#[derive(Debug)]
pub struct Ceph {
    /// Its directory: `ceph.conf`, keyrings, daemons' data.
    pub dir: PathBuf,
    extra_pools: String,
}

impl Ceph {
    /// Starts a cluster in `dir` (which must not exist yet) with pools
    /// `volumes` and `extra_pools`; `None` when `test` is skipped (no
    /// `CLINKER_SYSTEM_TESTS` / `CI`, or no Ceph off CI).
    pub fn up(test: &str, dir: PathBuf, extra_pools: &[&str]) -> Option<Ceph> {
        if !system_tests(test) {
            return None;
        }
        if find_program("ceph-mon").is_none() {
            unmet(test, "ceph-mon is not installed", "scripts/install-ceph.sh");
            return None;
        }
        let ceph = Ceph {
            dir,
            extra_pools: extra_pools.join(" "),
        };
        ceph.script("up");
        Some(ceph)
    }

    fn script(&self, action: &str) {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ceph-single-node.sh");
        let out = std::process::Command::new("bash")
            .arg(script)
            .arg(action)
            .env("CEPH_DIR", &self.dir)
            .env("CEPH_EXTRA_POOLS", &self.extra_pools)
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

    /// Its `ceph.conf`.
    pub fn conf(&self) -> PathBuf {
        self.dir.join("ceph.conf")
    }

    /// Runs `rbd` or `rados` as `client.cinder` and returns its stdout. A
    /// run that died on a signal (Ceph 16's tools sometimes abort in
    /// librados as they exit) runs again, twice at most.
    pub fn tool(&self, tool: &str, args: &[&str]) -> String {
        for attempt in 1.. {
            let out = std::process::Command::new(tool)
                .args(["--id", "cinder", "--conf"])
                .arg(self.conf())
                .args(args)
                .output()
                .unwrap();
            if out.status.code().is_none() && attempt < 3 {
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

    /// `rbd <args>` (with `--format json` among them), parsed.
    pub fn rbd_json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.tool("rbd", args)).unwrap()
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
