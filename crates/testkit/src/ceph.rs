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

    /// Names listed by `rbd <args>` (with `--format json` among them):
    /// images, or snapshots' names; sorted.
    pub fn names(&self, args: &[&str]) -> Vec<String> {
        let listed = self.rbd_json(args);
        let mut names: Vec<String> = listed
            .as_array()
            .unwrap_or_else(|| panic!("rbd {args:?} listed no array: {listed}"))
            .iter()
            .map(|v| match (v.as_str(), v["name"].as_str()) {
                (Some(name), _) | (None, Some(name)) => name.to_owned(),
                (None, None) => panic!("rbd {args:?} listed an entry without a name: {v}"),
            })
            .collect();
        names.sort();
        names
    }

    /// Writes `patches` (offset, bytes) into the image `spec`
    /// (`pool/image`) through `rbd import-diff` of a hand-made diff stream
    /// kept in `scratch`; the image keeps its size and snapshots.
    pub fn write(&self, spec: &str, patches: &[(u64, Vec<u8>)], scratch: &Path) {
        let size = self.rbd_json(&["info", "--format", "json", spec])["size"]
            .as_u64()
            .unwrap_or_else(|| panic!("rbd info {spec} has no size"));
        let mut stream = b"rbd diff v1\n".to_vec();
        stream.push(b's');
        stream.extend(size.to_le_bytes());
        for (offset, data) in patches {
            stream.push(b'w');
            stream.extend(offset.to_le_bytes());
            stream.extend((data.len() as u64).to_le_bytes());
            stream.extend(data);
        }
        stream.push(b'e');
        let file = scratch.join("patch.diff");
        std::fs::write(&file, stream).unwrap();
        self.tool(
            "rbd",
            &[
                "import-diff",
                "--no-progress",
                &file.display().to_string(),
                spec,
            ],
        );
    }

    /// The image or snapshot `spec` (`pool/image[@snap]`) exported
    /// (`rbd export`) to a file in `scratch`, which stays.
    pub fn export_to_file(&self, spec: &str, scratch: &Path) -> PathBuf {
        let file = scratch.join(format!("{}.raw", spec.replace(['/', '@'], "_")));
        self.rbd(&["export", "--no-progress", spec, &file.display().to_string()]);
        file
    }

    /// The whole image or snapshot `spec` (`pool/image[@snap]`) read into
    /// memory (`rbd export` through a file in `scratch`, removed again).
    pub fn export(&self, spec: &str, scratch: &Path) -> Vec<u8> {
        let file = self.export_to_file(spec, scratch);
        let data = std::fs::read(&file).unwrap();
        std::fs::remove_file(&file).unwrap();
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
