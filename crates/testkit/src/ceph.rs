//! A throw-away one-node Ceph cluster (`scripts/ceph-single-node.sh`,
//! bluestore so it survives a restart) and the `rbd` tool run as its
//! cephx user `client.cinder` on pool `volumes`.

use std::path::{Path, PathBuf};

/// The pool the cluster makes and the RBD backends use.
pub const POOL: &str = "volumes";
/// The cephx user (`client.cinder`, Cinder's recommended caps).
pub const USER: &str = "cinder";

/// A cluster under `dir`; brought down (and `dir` removed) on drop.
#[derive(Debug)]
pub struct Ceph {
    /// `CEPH_DIR`: its configuration (`ceph.conf`), keyrings, data, logs.
    pub dir: PathBuf,
}

impl Ceph {
    /// Starts a fresh cluster in `dir` (which must not exist yet); the
    /// script's watchdog removes it if this test process dies.
    pub fn up(dir: PathBuf) -> Self {
        let ceph = Self { dir };
        ceph.script("up");
        ceph
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
            .env("OBJECTSTORE", "bluestore")
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

    /// Runs `rbd` as the test's cephx user; its stdout. Ceph 16's `rbd`
    /// sometimes aborts in librados as it exits (seen in CI): a read that
    /// died on a signal is run again; anything else that fails fails the
    /// test.
    pub fn rbd(&self, args: &[&str]) -> String {
        let reads = matches!(args[0], "ls" | "du" | "info" | "export" | "children");
        for attempt in 1.. {
            if args[0] == "export" {
                let _ = std::fs::remove_file(args[args.len() - 1]);
            }
            let out = std::process::Command::new("rbd")
                .args(["--id", USER, "--conf"])
                .arg(self.conf())
                .args(args)
                .output()
                .unwrap();
            let crashed = out.status.code().is_none();
            if crashed && reads && attempt < 3 {
                eprintln!("rbd {args:?} died on a signal; running it again");
                continue;
            }
            assert!(
                out.status.success(),
                "rbd {args:?} ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        unreachable!()
    }

    /// The images in the pool, sorted.
    pub fn images(&self) -> Vec<String> {
        let mut names: Vec<String> =
            serde_json::from_str(&self.rbd(&["ls", POOL, "--format", "json"])).unwrap();
        names.sort();
        names
    }

    /// The whole image `POOL/image` (`rbd export`), through `scratch`.
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
}

impl Drop for Ceph {
    fn drop(&mut self) {
        self.script("down");
    }
}
