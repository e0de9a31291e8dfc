//! The RBD driver against a real single-node Ceph started for the test by
//! `scripts/ceph-single-node.sh`, used as the non-admin cephx user
//! `client.cinder` (`profile rbd` on the pool), the way a deployment uses it.
//!
//! Runs when `CLINKER_SYSTEM_TESTS=1` or `CI=true`, and is skipped with a
//! message otherwise. Without the Ceph packages it is skipped too, except
//! under `CI=true` where that is a failure; a cluster that does not start is
//! always a failure. The cluster is torn down whatever happens (and by the
//! script's watchdog if this process is killed). About 40 s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clinker_config::{DriverConfig, RbdDriverOptions};
use clinker_drivers::rbd::RbdDriver;
use clinker_drivers::{DriverError, SnapshotSpec, VolumeDriver, VolumeSpec};
use clinker_exec::{Command, CommandRunner, HostRunner, Output};
use clinker_testkit::config::no_target;
use clinker_testkit::env;
use clinker_types::{SnapshotId, VolumeId};
use futures_util::FutureExt;
use serde_json::Value;

const GIB: u64 = 1 << 30;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ceph-single-node.sh")
}

/// The throw-away cluster and the commands to inspect it.
struct Cluster {
    dir: PathBuf,
    runner: HostRunner,
}

impl Cluster {
    fn conf(&self) -> String {
        self.dir.join("ceph.conf").display().to_string()
    }

    async fn script(&self, action: &str) -> Output {
        let cmd = Command::new("bash")
            .arg(script().display().to_string())
            .arg(action)
            .env("CEPH_DIR", self.dir.display().to_string())
            .env("OWNER_PID", std::process::id().to_string())
            .timeout(Duration::from_secs(180));
        self.runner
            .run(&cmd)
            .await
            .expect("run ceph-single-node.sh")
    }

    /// Runs `tool` as `client.<id>` and returns its standard output.
    async fn as_user(&self, id: &str, tool: &str, args: &[&str]) -> String {
        let conf = self.conf();
        let cmd = Command::new(tool)
            .args(["--id", id, "--conf", conf.as_str()])
            .args(args.iter().copied())
            .timeout(Duration::from_secs(120));
        // Ceph 16's tools sometimes abort in librados as they exit (seen
        // in CI): a read that died on a signal is run again.
        let reads = matches!(args.first(), Some(&("ls" | "du" | "info" | "df" | "fsid")));
        let mut attempt = 1;
        loop {
            match self.runner.run(&cmd).await {
                Ok(out) if out.success() => return out.stdout,
                Ok(out) if out.code < 0 && reads && attempt < 3 => {
                    eprintln!(
                        "{tool} {args:?} died on signal {}; running it again",
                        -out.code
                    );
                    attempt += 1;
                }
                Ok(out) => panic!("{tool} {args:?} exited with {}: {}", out.code, out.stderr),
                Err(e) => panic!("{tool} {args:?}: {e}"),
            }
        }
    }

    async fn rbd(&self, args: &[&str]) -> String {
        self.as_user("cinder", "rbd", args).await
    }

    async fn rbd_json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["--format", "json"]);
        serde_json::from_str(&self.rbd(&args).await).unwrap()
    }

    async fn images(&self) -> Vec<String> {
        let mut names: Vec<String> =
            serde_json::from_value(self.rbd_json(&["ls", "volumes"]).await).unwrap();
        names.sort();
        names
    }

    async fn info(&self, image: &str) -> Value {
        self.rbd_json(&["info", &format!("volumes/{image}")]).await
    }

    /// Exports an image or snapshot to a sparse file.
    async fn export(&self, spec: &str, file: &Path) -> PathBuf {
        let _ = std::fs::remove_file(file);
        self.rbd(&[
            "export",
            "--no-progress",
            &format!("volumes/{spec}"),
            &file.display().to_string(),
        ])
        .await;
        file.to_path_buf()
    }

    /// Writes `megabytes` of data from the start of an image.
    async fn write(&self, image: &str, megabytes: u64) {
        self.rbd(&[
            "bench",
            "--io-type",
            "write",
            "--io-size",
            "1M",
            "--io-threads",
            "4",
            "--io-pattern",
            "seq",
            "--io-total",
            &format!("{megabytes}M"),
            &format!("volumes/{image}"),
        ])
        .await;
    }
}

/// Whether the first `len` bytes of two files are equal (`cmp`).
async fn same_bytes(a: &Path, b: &Path, len: u64) -> bool {
    let cmd = Command::new("cmp")
        .args(["-s", "-n", &len.to_string()])
        .arg(a.display().to_string())
        .arg(b.display().to_string());
    HostRunner::new().run(&cmd).await.unwrap().success()
}

fn has_data(file: &Path, len: usize) -> bool {
    use std::io::Read;
    let mut buf = vec![0u8; len];
    std::fs::File::open(file)
        .unwrap()
        .read_exact(&mut buf)
        .unwrap();
    buf.iter().any(|b| *b != 0)
}

fn driver(cluster: &Cluster, tweak: impl FnOnce(&mut RbdDriverOptions)) -> RbdDriver {
    let mut options = RbdDriverOptions {
        pool: "volumes".into(),
        user: Some("cinder".into()),
        ceph_conf: Some(cluster.dir.join("ceph.conf")),
        rados_connect_timeout: Some(5),
        rados_connection_retries: 0,
        exclusive_cinder_pool: false,
        ..RbdDriverOptions::default()
    };
    tweak(&mut options);
    let driver = DriverConfig::Rbd(options.clone());
    let backend =
        clinker_testkit::config::backend("ceph", driver, no_target(&std::env::temp_dir()));
    RbdDriver::new(&backend, options, Arc::new(HostRunner::new()))
}

/// Step timings for the report printed at the end.
#[derive(Default)]
struct Steps(Vec<(&'static str, Duration)>);

impl Steps {
    async fn time<T>(&mut self, name: &'static str, f: impl Future<Output = T>) -> T {
        let start = Instant::now();
        let out = f.await;
        self.0.push((name, start.elapsed()));
        out
    }
}

#[tokio::test]
async fn rbd_driver_against_a_real_single_node_ceph() {
    const TEST: &str = "the RBD system test";
    if !env::system_tests(TEST) {
        return;
    }
    let tools = ["ceph-mon", "ceph-osd", "ceph-mgr", "ceph", "rbd", "cmp"];
    if let Some(tool) = tools.iter().find(|t| env::find_program(t).is_none()) {
        env::unmet(
            TEST,
            &format!("{tool} is not installed"),
            "scripts/install-ceph.sh",
        );
        return;
    }
    let runner = HostRunner::new();
    let tmp = tempfile::tempdir().unwrap();
    let cluster = Cluster {
        dir: tmp.path().join("ceph"),
        runner,
    };
    let started = Instant::now();
    let up = cluster.script("up").await;
    if !up.success() {
        let down = cluster.script("down").await;
        panic!(
            "the single-node Ceph did not start:\n{}\n{}",
            up.stderr, down.stderr
        );
    }
    let startup = started.elapsed();
    let outcome = AssertUnwindSafe(exercise(&cluster, tmp.path()))
        .catch_unwind()
        .await;
    let down = cluster.script("down").await;
    match outcome {
        Ok(steps) => {
            eprintln!("cluster up: {startup:.1?}");
            for (name, took) in steps.0 {
                eprintln!("{name:<48} {took:>8.2?}");
            }
            eprintln!("total with teardown: {:.1?}", started.elapsed());
        }
        Err(panic) => std::panic::resume_unwind(panic),
    }
    assert!(down.success(), "teardown failed: {}", down.stderr);
    assert!(!cluster.dir.exists(), "teardown leaves nothing behind");
}

#[allow(clippy::too_many_lines)] // one story, told in order
async fn exercise(cluster: &Cluster, scratch: &Path) -> Steps {
    let mut steps = Steps::default();
    let d = driver(cluster, |_| {});
    steps
        .time("check_for_setup_error", d.check_for_setup_error())
        .await
        .unwrap();

    // A volume with data, a snapshot of it, and more data after the snapshot.
    let a = VolumeSpec::new(VolumeId::new_random(), 1);
    steps
        .time("create_volume (1 GiB)", d.create_volume(&a))
        .await
        .unwrap();
    let info = cluster.info(&a.name).await;
    assert_eq!(info["size"], GIB);
    assert_eq!(info["object_size"], 4 << 20);
    cluster.write(&a.name, 8).await;
    let s = SnapshotSpec::new(SnapshotId::new_random(), a.clone(), 1);
    steps
        .time("create_snapshot (create + protect)", d.create_snapshot(&s))
        .await
        .unwrap();
    let snaps = cluster
        .rbd_json(&["snap", "ls", &format!("volumes/{}", a.name)])
        .await;
    assert_eq!(snaps[0]["name"], s.name.as_str());
    assert_eq!(snaps[0]["protected"], "true");
    cluster.write(&a.name, 16).await;

    // A volume from the snapshot holds the snapshot's bytes, grown.
    let b = VolumeSpec::new(VolumeId::new_random(), 2);
    steps
        .time(
            "create_volume_from_snapshot (clone + resize)",
            d.create_volume_from_snapshot(&b, &s),
        )
        .await
        .unwrap();
    let info = cluster.info(&b.name).await;
    assert_eq!(info["size"], 2 * GIB);
    assert_eq!(info["parent"]["image"], a.name.as_str());
    assert_eq!(info["parent"]["snapshot"], s.name.as_str());
    let snap_file = cluster
        .export(&format!("{}@{}", a.name, s.name), &scratch.join("snap.raw"))
        .await;
    let b_file = cluster.export(&b.name, &scratch.join("b.raw")).await;
    assert!(has_data(&snap_file, 8 << 20), "the test wrote real data");
    assert!(
        same_bytes(&snap_file, &b_file, GIB).await,
        "the clone reads the snapshot byte for byte"
    );
    let a_file = cluster.export(&a.name, &scratch.join("a.raw")).await;
    assert!(
        !same_bytes(&snap_file, &a_file, GIB).await,
        "writes after the snapshot are not in it"
    );

    // A clone of the volume holds the volume's current bytes.
    let c = VolumeSpec::new(VolumeId::new_random(), 1);
    steps
        .time(
            "create_cloned_volume (temp snapshot + clone)",
            d.create_cloned_volume(&c, &a),
        )
        .await
        .unwrap();
    let info = cluster.info(&c.name).await;
    assert_eq!(info["parent"]["image"], a.name.as_str());
    assert_eq!(
        info["parent"]["snapshot"],
        format!("{}.clone_snap", c.name).as_str()
    );
    let c_file = cluster.export(&c.name, &scratch.join("c.raw")).await;
    assert!(same_bytes(&a_file, &c_file, GIB).await);
    steps
        .time("extend_volume (1 -> 3 GiB)", d.extend_volume(&c, 3))
        .await
        .unwrap();
    assert_eq!(cluster.info(&c.name).await["size"], 3 * GIB);
    let c = VolumeSpec { size_gb: 3, ..c };

    // Past rbd_max_clone_depth a new clone is flattened.
    let shallow = driver(cluster, |o| o.max_clone_depth = 1);
    let e = VolumeSpec::new(VolumeId::new_random(), 3);
    steps
        .time(
            "create_cloned_volume past max depth (flatten)",
            shallow.create_cloned_volume(&e, &c),
        )
        .await
        .unwrap();
    assert!(cluster.info(&e.name).await.get("parent").is_none());
    let e_file = cluster.export(&e.name, &scratch.join("e.raw")).await;
    assert!(same_bytes(&a_file, &e_file, GIB).await);
    let c_snaps = cluster
        .rbd_json(&["snap", "ls", &format!("volumes/{}", c.name)])
        .await;
    assert_eq!(c_snaps, serde_json::json!([]), "temporary snapshot removed");

    // The capacity report agrees with `rbd du`.
    let stats = steps
        .time("get_volume_stats", d.get_volume_stats())
        .await
        .unwrap();
    let du = cluster.rbd_json(&["du", "-p", "volumes"]).await;
    let provisioned = du["total_provisioned_size"].as_u64().unwrap().div_ceil(GIB);
    let pool = &stats["pools"][0];
    assert_eq!(pool["provisioned_capacity_gb"], provisioned);
    assert_eq!(provisioned, 1 + 2 + 3 + 3);
    let total = pool["total_capacity_gb"].as_f64().unwrap();
    let free = pool["free_capacity_gb"].as_f64().unwrap();
    assert!(total > 0.0 && free > 0.0 && free <= total, "{pool}");
    assert_eq!(stats["storage_protocol"], "ceph");
    assert_eq!(pool["thin_provisioning_support"], true);
    let fsid = std::fs::read_to_string(cluster.dir.join("ceph.conf"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("fsid = ").map(str::to_owned))
        .unwrap();
    assert!(
        pool["location_info"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{fsid}:cinder:volumes")),
        "{pool}"
    );

    // Connection info names the monitors as clients reach them.
    let info = steps
        .time(
            "initialize_connection",
            d.initialize_connection(&a, &serde_json::Map::new()),
        )
        .await
        .unwrap();
    let conf = std::fs::read_to_string(cluster.dir.join("ceph.conf")).unwrap();
    let v1_port = conf
        .split("v1:127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap();
    assert_eq!(info.driver_volume_type, "rbd");
    assert_eq!(info.data["name"], format!("volumes/{}", a.name).as_str());
    assert_eq!(info.data["hosts"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(info.data["ports"], serde_json::json!([v1_port]));
    assert_eq!(info.data["secret_uuid"], fsid.as_str());
    assert_eq!(info.data["auth_username"], "cinder");

    // Deleting the snapshot makes the volume made from it independent.
    steps
        .time(
            "delete_snapshot with a clone (flatten + rm)",
            d.delete_snapshot(&s),
        )
        .await
        .unwrap();
    assert!(cluster.info(&b.name).await.get("parent").is_none());
    let b_file = cluster.export(&b.name, &scratch.join("b.raw")).await;
    assert!(same_bytes(&snap_file, &b_file, GIB).await);

    // Deleting a volume whose clone lives hides it; the clone still reads.
    steps
        .time(
            "delete_volume with a live clone (hide)",
            d.delete_volume(&a),
        )
        .await
        .unwrap();
    let hidden = format!("{}.deleted", a.name);
    assert!(cluster.images().await.contains(&hidden));
    let mut expected = vec![b.name.clone(), c.name.clone(), e.name.clone()];
    expected.sort();
    let exclusive = driver(cluster, |o| o.exclusive_cinder_pool = true);
    assert_eq!(
        exclusive.list_volume_names().await.unwrap().unwrap(),
        expected
    );
    let c_file = cluster.export(&c.name, &scratch.join("c.raw")).await;
    assert!(same_bytes(&a_file, &c_file, GIB).await);
    d.delete_volume(&a).await.unwrap();

    // The last clone going takes the hidden parent with it.
    steps
        .time(
            "delete_volume of the last clone (+ hidden parent)",
            d.delete_volume(&c),
        )
        .await
        .unwrap();
    for v in [&b, &e] {
        d.delete_volume(v).await.unwrap();
    }
    assert_eq!(cluster.images().await, Vec::<String>::new());
    let trash = cluster.rbd_json(&["trash", "ls", "volumes"]).await;
    assert_eq!(trash, serde_json::json!([]));
    steps
        .time("delete_volume of a missing volume", d.delete_volume(&b))
        .await
        .unwrap();

    // Configuration mistakes are reported with what to fix.
    let missing_pool = driver(cluster, |o| o.pool = "nopool".into());
    let err = missing_pool.check_for_setup_error().await.unwrap_err();
    assert!(
        matches!(&err, DriverError::Unavailable(m) if m.contains("pool nopool does not exist")),
        "{err:?}"
    );
    let keyring = cluster.dir.join("ceph.client.nocaps.keyring");
    let caps = cluster
        .as_user(
            "admin",
            "ceph",
            &["auth", "get-or-create", "client.nocaps", "mon", "allow r"],
        )
        .await;
    std::fs::write(&keyring, caps).unwrap();
    let no_caps = driver(cluster, |o| o.user = Some("nocaps".into()));
    let err = no_caps.check_for_setup_error().await.unwrap_err();
    assert!(
        matches!(&err, DriverError::Unavailable(m) if m.contains("permission denied")),
        "{err:?}"
    );
    let v = VolumeSpec::new(VolumeId::new_random(), 1);
    let err = no_caps.create_volume(&v).await.unwrap_err();
    assert!(matches!(err, DriverError::Unavailable(_)), "{err:?}");

    // A stopped cluster is reported unavailable within the connect timeout.
    let stop = cluster.script("stop").await;
    assert!(stop.success(), "{}", stop.stderr);
    let fresh = driver(cluster, |_| {});
    let err = steps
        .time(
            "check_for_setup_error, cluster stopped",
            fresh.check_for_setup_error(),
        )
        .await
        .unwrap_err();
    match &err {
        DriverError::Unavailable(reason) => assert!(
            reason.contains("cannot reach ceph cluster ceph as client.cinder"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    let (_, took) = steps.0.last().copied().unwrap();
    assert!(took < Duration::from_secs(15), "{took:?}");
    let err = fresh.get_volume_stats().await.unwrap_err();
    assert!(matches!(err, DriverError::Unavailable(_)), "{err:?}");
    steps
}
