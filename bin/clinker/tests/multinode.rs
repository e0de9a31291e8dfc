//! Clinker deployed as Cinder operators deploy it: separate API, two
//! schedulers and volume processes on two hosts, sharing PostgreSQL and
//! RabbitMQ — under load, with a volume process killed, RabbitMQ restarted
//! and PostgreSQL stopped, and nothing lost or stuck.
//!
//! Needs the local PostgreSQL and RabbitMQ (`scripts/ensure-services.sh`);
//! skipped with a message when they are absent, failed under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clinker_db::testsuite::{Engine, TestDatabase};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

const BIN: &str = env!("CARGO_BIN_EXE_clinker");

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn rabbitmqctl(args: &[&str]) -> bool {
    std::process::Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A throw-away RabbitMQ vhost.
struct Vhost(String);

impl Vhost {
    fn create() -> Option<Vhost> {
        let name = format!("clinker-mn-{}", &uuid_like()[..12]);
        if !rabbitmqctl(&["add_vhost", &name])
            || !rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"])
        {
            return None;
        }
        Some(Vhost(name))
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        rabbitmqctl(&["delete_vhost", &self.0]);
    }
}

fn uuid_like() -> String {
    format!(
        "{:032x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
    .chars()
    .rev()
    .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `clinker <role>` process that can be killed and restarted.
struct Proc {
    name: &'static str,
    args: Vec<String>,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn new(name: &'static str, configs: &[&Path], role: &str, dir: &Path) -> Proc {
        let mut args = Vec::new();
        for c in configs {
            args.push("--config-file".to_owned());
            args.push(c.display().to_string());
        }
        args.push(role.to_owned());
        Proc {
            name,
            args,
            child: None,
            log: dir.join(format!("{name}.log")),
        }
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(BIN)
            .args(&self.args)
            .env("RUST_LOG", "warn,clinker_service=info")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }

    fn log_tail(&self) -> String {
        let _ = self.name;
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("OpenStack-API-Version", "volume 3.71");
        if let Some(b) = body {
            req = req.json(&b);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                (status, resp.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn volumes(&self) -> Vec<Value> {
        let (status, body) = self.get("/volumes/detail?limit=1000").await;
        assert_eq!(status, 200, "{body}");
        body["volumes"].as_array().cloned().unwrap_or_default()
    }

    async fn service_states(&self) -> BTreeMap<String, String> {
        let (_, body) = self.get("/os-services").await;
        body["services"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                (
                    s["host"].as_str().unwrap_or("").to_owned(),
                    s["state"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    async fn wait_services(&self, want: &[(&str, &str)], limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let states = self.service_states().await;
            if want
                .iter()
                .all(|(h, s)| states.get(*h).map(String::as_str) == Some(*s))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "services never reached {want:?}: {states:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until no volume is in a transient status; returns them.
    async fn settle(&self, limit: Duration) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let volumes = self.volumes().await;
            let busy: Vec<String> = volumes
                .iter()
                .filter(|v| {
                    matches!(
                        v["status"].as_str(),
                        Some("creating" | "deleting" | "extending")
                    )
                })
                .map(|v| format!("{} {}", v["id"], v["status"]))
                .collect();
            if busy.is_empty() {
                return volumes;
            }
            assert!(
                Instant::now() < deadline,
                "{} volumes stuck: {busy:?}",
                busy.len()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

fn files_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Prints the tail of every process log when the test fails, so a CI
/// failure shows what the services said.
struct LogsOnFailure(std::path::PathBuf);

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let mut logs: Vec<_> = files_in(&self.0)
            .into_iter()
            .filter(|f| f.ends_with(".log"))
            .collect();
        logs.sort();
        for name in logs {
            let text = std::fs::read_to_string(self.0.join(&name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("===== {name} (last 40 lines)");
            for line in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{line}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_node_on_postgresql_and_rabbitmq_survives_faults() {
    let Some(pg) = TestDatabase::open(Engine::Postgres).await else {
        return;
    };
    let Some(vhost) = Vhost::create() else {
        assert!(
            !in_ci(),
            "CI=true needs RabbitMQ (rabbitmqctl) for the multi-node test"
        );
        eprintln!("skipping the multi-node test: RabbitMQ is not reachable with rabbitmqctl");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let port = free_port();
    let d = dir.path();
    let common = write(
        &d.join("common.conf"),
        &format!(
            "[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/{vhost}\nstate_path = {state}\n\
             report_interval = 1\nservice_down_time = 4\nperiodic_interval = 2\nperiodic_fuzzy_delay = 0\n\
             rpc_response_timeout = 5\nscheduler_driver_init_wait_time = 10\nquota_volumes = -1\nquota_gigabytes = -1\n\
             [database]\nconnection = {url}\n",
            vhost = vhost.0,
            state = d.display(),
            url = pg.url
        ),
    );
    let api_conf = write(
        &d.join("api.conf"),
        &format!("[DEFAULT]\nhost = api1\nosapi_volume_listen_port = {port}\n"),
    );
    let s1 = write(&d.join("s1.conf"), "[DEFAULT]\nhost = sched1\n");
    let s2 = write(&d.join("s2.conf"), "[DEFAULT]\nhost = sched2\n");
    let node = |n: u8, name: &str| {
        format!(
            "[DEFAULT]\nhost = node{n}\nenabled_backends = file\n[file]\nvolume_driver = file\nvolume_backend_name = {name}\n\
             file_volumes_dir = {}/node{n}\nfile_capacity_gb = 60\n",
            d.display()
        )
    };
    let n1 = write(&d.join("n1.conf"), &node(1, "fast"));
    let n2 = write(&d.join("n2.conf"), &node(2, "slow"));
    let mut procs = [
        Proc::new("api", &[&common, &api_conf], "api", d),
        Proc::new("sched1", &[&common, &s1], "scheduler", d),
        Proc::new("sched2", &[&common, &s2], "scheduler", d),
        Proc::new("node1", &[&common, &n1], "volume", d),
        Proc::new("node2", &[&common, &n2], "volume", d),
    ];
    for p in procs.iter_mut().rev() {
        p.start();
    }
    let api = Arc::new(Api {
        http: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{port}/v3"),
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.get("/").await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the API never answered:\n{}",
            procs[0].log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    api.wait_services(
        &[
            ("node1@file", "up"),
            ("node2@file", "up"),
            ("sched1", "up"),
            ("sched2", "up"),
        ],
        Duration::from_secs(30),
    )
    .await;

    // Types routing to each backend by volume_backend_name.
    let mut type_ids = Vec::new();
    for (name, backend) in [("fast", "fast"), ("slow", "slow")] {
        let (status, body) = api
            .call(
                reqwest::Method::POST,
                "/types",
                Some(json!({"volume_type": {"name": name, "extra_specs": {"volume_backend_name": backend}}})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        type_ids.push(body["volume_type"]["id"].as_str().unwrap().to_owned());
    }

    // 200 creates from 16 clients; a volume process dies in the middle.
    let queue = Arc::new(Mutex::new((0..200).collect::<Vec<usize>>()));
    let created = Arc::new(Mutex::new(Vec::<(String, &'static str)>::new()));
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (api, queue, created) = (api.clone(), queue.clone(), created.clone());
        clients.push(tokio::spawn(async move {
            loop {
                let Some(i) = queue.lock().await.pop() else {
                    break;
                };
                let kind: &'static str = ["fast", "slow", "any"][i % 3];
                let mut volume = json!({"size": 1, "name": format!("mn-{i}")});
                if kind != "any" {
                    volume["volume_type"] = json!(kind);
                }
                let (status, body) = api
                    .call(
                        reqwest::Method::POST,
                        "/volumes",
                        Some(json!({"volume": volume})),
                    )
                    .await;
                assert_eq!(status, 202, "create {i}: {body}");
                created
                    .lock()
                    .await
                    .push((body["volume"]["id"].as_str().unwrap().to_owned(), kind));
            }
        }));
    }
    while queue.lock().await.len() > 130 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    procs[3].kill9().await;
    api.wait_services(&[("node1@file", "down")], Duration::from_secs(20))
        .await;
    procs[3].start();
    for c in clients {
        c.await.unwrap();
    }
    api.wait_services(&[("node1@file", "up")], Duration::from_secs(30))
        .await;
    let volumes = api.settle(Duration::from_secs(60)).await;
    assert_eq!(volumes.len(), 200);

    let created: BTreeMap<String, &str> = created.lock().await.iter().cloned().collect();
    let mut on_node = BTreeMap::<&str, i64>::new();
    let mut errors = Vec::new();
    for v in &volumes {
        let id = v["id"].as_str().unwrap();
        match v["status"].as_str().unwrap() {
            "available" => {
                let host = v["os-vol-host-attr:host"].as_str().unwrap();
                let node = if host.starts_with("node1@") {
                    "node1"
                } else {
                    "node2"
                };
                *on_node.entry(node).or_default() += v["size"].as_i64().unwrap();
                match created[id] {
                    "fast" => assert_eq!(host, "node1@file#fast", "{id}"),
                    "slow" => assert_eq!(host, "node2@file#slow", "{id}"),
                    _ => {}
                }
                assert!(
                    files_in(&d.join(node)).contains(&format!("volume-{id}")),
                    "{id} has no file on {node}"
                );
            }
            "error" => errors.push(id.to_owned()),
            other => panic!("volume {id} ended {other}"),
        }
    }
    eprintln!(
        "after the load with node1 killed: GiB per node {on_node:?}, {} volumes in error",
        errors.len()
    );
    assert!(
        on_node.values().all(|gb| *gb <= 60),
        "a pool was over-committed: {on_node:?}"
    );
    assert!(
        on_node.get("node1").copied().unwrap_or(0) > 0
            && on_node.get("node2").copied().unwrap_or(0) > 0,
        "{on_node:?}"
    );
    let (_, messages) = api.get("/messages?limit=1000").await;
    let with_message: BTreeSet<&str> = messages["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["resource_uuid"].as_str())
        .collect();
    for id in &errors {
        assert!(
            with_message.contains(id.as_str()),
            "volume {id} is error without a user message"
        );
    }
    let db = &pg.db;
    use clinker_db::{CapacityRepository, QuotaRepository};
    let counters: BTreeMap<String, i64> = db
        .quota_usages("admin")
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .collect();
    let recount: BTreeMap<String, i64> = db
        .recount_usages("admin")
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .collect();
    assert_eq!(counters, recount);
    let claims: BTreeMap<String, i64> = db
        .pool_allocations()
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .collect();
    assert_eq!(claims, db.recount_pool_allocations().await.unwrap());
    assert!(claims.values().all(|gb| *gb <= 60), "{claims:?}");

    // Delete everything while RabbitMQ restarts.
    let ids: Vec<String> = volumes
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let deleter = {
        let api = api.clone();
        let refused = refused.clone();
        tokio::spawn(async move {
            for chunk in ids.chunks(16) {
                let paths: Vec<String> = chunk.iter().map(|id| format!("/volumes/{id}")).collect();
                let calls = paths
                    .iter()
                    .map(|p| api.call(reqwest::Method::DELETE, p, None));
                for (status, body) in futures_util::future::join_all(calls).await {
                    // 202, or 503 while the broker is away (nothing changed then).
                    assert!(
                        status == 202 || status == 503 || status == 0,
                        "delete answered {status}: {body}"
                    );
                    if status != 202 {
                        refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                // Spread the deletes over the broker's restart.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    let restart = tokio::task::spawn_blocking(|| {
        let stopped = rabbitmqctl(&["stop_app"]);
        std::thread::sleep(Duration::from_secs(2));
        let started = rabbitmqctl(&["start_app"]);
        (stopped, started)
    });
    assert_eq!(
        restart.await.unwrap(),
        (true, true),
        "rabbitmqctl stop_app/start_app failed"
    );
    deleter.await.unwrap();
    api.wait_services(
        &[
            ("node1@file", "up"),
            ("node2@file", "up"),
            ("sched1", "up"),
            ("sched2", "up"),
        ],
        Duration::from_secs(30),
    )
    .await;
    // Deletes refused during the outage are sent again; accepted ones are
    // finished by the volume services from their journal.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let left = api.settle(Duration::from_secs(60)).await;
        if left.is_empty() {
            break;
        }
        for v in &left {
            let (status, body) = api
                .call(
                    reqwest::Method::DELETE,
                    &format!("/volumes/{}", v["id"].as_str().unwrap()),
                    None,
                )
                .await;
            assert!(
                status == 202 || status == 503 || status == 404,
                "delete answered {status}: {body}"
            );
        }
        assert!(
            Instant::now() < deadline,
            "{} volumes never went away",
            left.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let api_log = std::fs::read_to_string(&procs[0].log).unwrap_or_default();
    let lost_casts = api_log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("delete"))
        .count();
    eprintln!(
        "deletes during the RabbitMQ restart: {} refused, {lost_casts} accepted whose cast failed (finished from the journal)",
        refused.load(std::sync::atomic::Ordering::SeqCst)
    );
    assert!(
        files_in(&d.join("node1")).is_empty() && files_in(&d.join("node2")).is_empty(),
        "files left behind"
    );
    let counters: BTreeMap<String, i64> = db
        .quota_usages("admin")
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .collect();
    assert!(counters.is_empty(), "usage left: {counters:?}");

    // PostgreSQL stops for ten seconds: the API answers 503 in Cinder's
    // envelope, then recovers by itself.
    let cluster = std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.file_name());
    if let Some(version) = cluster.and_then(|v| v.into_string().ok()) {
        let pg_ctl = |action: &str| {
            std::process::Command::new("pg_ctlcluster")
                .args(["--skip-systemctl-redirect", &version, "main", action])
                .status()
                .is_ok_and(|s| s.success())
        };
        assert!(pg_ctl("stop"), "cannot stop PostgreSQL");
        let outage = Instant::now();
        let (status, body) = api.get("/volumes").await;
        tokio::time::sleep(Duration::from_secs(10).saturating_sub(outage.elapsed())).await;
        let restarted = pg_ctl("start");
        assert!(restarted, "cannot restart PostgreSQL");
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["serviceUnavailable"]["code"], 503, "{body}");
        eprintln!("with PostgreSQL stopped the API answered {status}: {body}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while api.get("/volumes").await.0 != 200 {
            assert!(
                Instant::now() < deadline,
                "the API did not recover after PostgreSQL returned"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        api.wait_services(
            &[("node1@file", "up"), ("node2@file", "up")],
            Duration::from_secs(30),
        )
        .await;
    }
    for p in procs.iter_mut() {
        p.kill9().await;
    }
    drop(vhost);
    pg.drop_database().await;
}
