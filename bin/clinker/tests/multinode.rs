//! Clinker deployed as Cinder operators deploy it: separate API, two
//! schedulers and volume processes on two hosts, sharing PostgreSQL and
//! RabbitMQ — under load, with a volume process killed, RabbitMQ restarted
//! and PostgreSQL stopped, and nothing lost or stuck.
//!
//! Needs the local PostgreSQL and RabbitMQ (`scripts/ensure-services.sh`);
//! skipped with a message when they are absent, failed under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clinker_db::testsuite::{Engine, LimitedRole, TestDatabase};
use clinker_testkit::files::names_in;
use clinker_testkit::http::Api;
use clinker_testkit::poll::{self, Every};
use clinker_testkit::process::{LogsOnFailure, Proc, free_port, write_file};
use clinker_testkit::quota;
use clinker_testkit::rabbit::{Vhost, rabbitmqctl};
use serde_json::{Value, json};
use tokio::sync::Mutex;

const BIN: &str = env!("CARGO_BIN_EXE_clinker");

/// Every service up.
const ALL_UP: &[(&str, &str, &str)] = &[
    ("node1@file", "state", "up"),
    ("node2@file", "state", "up"),
    ("sched1", "state", "up"),
    ("sched2", "state", "up"),
];

/// Waits until no volume is in a transient status; returns them.
async fn settle(api: &Api, limit_secs: u64) -> Vec<Value> {
    poll::until(Every::ms(250, limit_secs), async || {
        let volumes = api.volumes().await;
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
            Ok(volumes)
        } else {
            Err(format!("{} volumes stuck: {busy:?}", busy.len()))
        }
    })
    .await
}

/// One `clinker api`, two schedulers and volume processes on `node1`
/// (backend `fast`) and `node2` (`slow`) of `capacity_gb` each, each its own
/// process, on the database at `db_url` and the vhost.
struct Deployment {
    procs: [Proc; 5],
    api: Arc<Api>,
    // Before `dir`: fields drop in order, and the logs are read from it.
    _logs: LogsOnFailure,
    dir: tempfile::TempDir,
}

impl Deployment {
    async fn start(db_url: &str, vhost: &Vhost, database_extra: &str, capacity_gb: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogsOnFailure(dir.path().to_path_buf());
        let port = free_port();
        let d = dir.path();
        let common = write_file(
            &d.join("common.conf"),
            &format!(
                "[DEFAULT]\ntransport_url = {transport}\nstate_path = {state}\n\
                 report_interval = 1\nservice_down_time = 4\nperiodic_interval = 2\nperiodic_fuzzy_delay = 0\n\
                 rpc_response_timeout = 5\nscheduler_driver_init_wait_time = 10\nquota_volumes = -1\nquota_gigabytes = -1\n\
                 [database]\nconnection = {db_url}\n{database_extra}",
                transport = vhost.transport_url(),
                state = d.display(),
            ),
        );
        let api_conf = write_file(
            &d.join("api.conf"),
            &format!("[DEFAULT]\nhost = api1\nosapi_volume_listen_port = {port}\n"),
        );
        let s1 = write_file(&d.join("s1.conf"), "[DEFAULT]\nhost = sched1\n");
        let s2 = write_file(&d.join("s2.conf"), "[DEFAULT]\nhost = sched2\n");
        let node = |n: u8, name: &str| {
            format!(
                "[DEFAULT]\nhost = node{n}\nenabled_backends = file\n[file]\nvolume_driver = file\nvolume_backend_name = {name}\n\
                 file_volumes_dir = {}/node{n}\nfile_capacity_gb = {capacity_gb}\n",
                d.display()
            )
        };
        let n1 = write_file(&d.join("n1.conf"), &node(1, "fast"));
        let n2 = write_file(&d.join("n2.conf"), &node(2, "slow"));
        let proc = |name: &str, config: &Path, role: &str| {
            Proc::new(Path::new(BIN), name, &[&common, config], &[role], d)
                .env("RUST_LOG", "warn,clinker_service=info")
        };
        let mut procs = [
            proc("api", &api_conf, "api"),
            proc("sched1", &s1, "scheduler"),
            proc("sched2", &s2, "scheduler"),
            proc("node1", &n1, "volume"),
            proc("node2", &n2, "volume"),
        ];
        for p in procs.iter_mut().rev() {
            p.start();
        }
        let api = Arc::new(Api::new(format!("http://127.0.0.1:{port}/v3")).at("3.71"));
        api.wait_ready(Every::ms(100, 30)).await;
        api.wait_services(Every::ms(200, 30), ALL_UP).await;
        Self {
            procs,
            api,
            dir,
            _logs: logs,
        }
    }

    async fn stop(mut self) {
        for p in self.procs.iter_mut() {
            p.kill9().await;
        }
    }
}

/// The tests of this file restart the shared RabbitMQ: one at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_node_on_postgresql_and_rabbitmq_survives_faults() {
    survives_faults(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_node_on_mariadb_and_rabbitmq_survives_faults() {
    survives_faults(Engine::Mysql).await;
}

/// 200 creates from 16 clients with a volume process killed among them,
/// every volume deleted while RabbitMQ restarts, and (PostgreSQL) the
/// database stopped for ten seconds: nothing lost, stuck or miscounted.
async fn survives_faults(engine: Engine) {
    let _serial = SERIAL.lock().await;
    let Some(pg) = TestDatabase::open(engine).await else {
        return;
    };
    let Some(vhost) = Vhost::create("multinode") else {
        return;
    };
    let mut deployment = Deployment::start(&pg.url, &vhost, "", 60).await;
    let (api, procs, d) = (
        &deployment.api,
        &mut deployment.procs,
        deployment.dir.path(),
    );

    // Types routing to each backend by volume_backend_name.
    let mut type_ids = Vec::new();
    for (name, backend) in [("fast", "fast"), ("slow", "slow")] {
        let specs = json!({"volume_backend_name": backend});
        type_ids.push(api.create_type(name, specs).await);
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
                let (status, id, body) = api.create_volume(volume).await;
                assert_eq!(status, 202, "create {i}: {body}");
                created.lock().await.push((id.unwrap(), kind));
            }
        }));
    }
    while queue.lock().await.len() > 130 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    procs[3].kill9().await;
    let node1_down = [("node1@file", "state", "down")];
    api.wait_services(Every::ms(200, 20), &node1_down).await;
    procs[3].start();
    for c in clients {
        c.await.unwrap();
    }
    let node1_up = [("node1@file", "state", "up")];
    api.wait_services(Every::ms(200, 30), &node1_up).await;
    let volumes = settle(api, 60).await;
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
                    names_in(&d.join(node)).contains(&format!("volume-{id}")),
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
    quota::assert_usage_matches_recount(db, "admin").await;
    let claims = quota::assert_claims_match_recount(db).await;
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
                let calls = paths.iter().map(|p| api.delete(p));
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
    api.wait_services(Every::ms(200, 30), ALL_UP).await;
    // Deletes refused during the outage are sent again; accepted ones are
    // finished by the volume services from their journal.
    poll::until(Every::ms(500, 90), async || {
        let left = settle(api, 60).await;
        for v in &left {
            let path = format!("/volumes/{}", v["id"].as_str().unwrap());
            let (status, body) = api.delete(&path).await;
            assert!(
                status == 202 || status == 503 || status == 404,
                "delete answered {status}: {body}"
            );
        }
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{} volumes never went away", left.len()))
        }
    })
    .await;
    let api_log = procs[0].log();
    let lost_casts = api_log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("delete"))
        .count();
    eprintln!(
        "deletes during the RabbitMQ restart: {} refused, {lost_casts} accepted whose cast failed (finished from the journal)",
        refused.load(std::sync::atomic::Ordering::SeqCst)
    );
    assert!(
        names_in(&d.join("node1")).is_empty() && names_in(&d.join("node2")).is_empty(),
        "files left behind"
    );
    let counters = quota::usage(db, "admin").await;
    assert!(counters.is_empty(), "usage left: {counters:?}");

    // PostgreSQL stops for ten seconds: the API answers 503 in Cinder's
    // envelope, then recovers by itself. (MariaDB is not stopped: other
    // suites share it.)
    let cluster = (engine == Engine::Postgres)
        .then(|| std::fs::read_dir("/etc/postgresql"))
        .and_then(Result::ok)
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
        let outage = std::time::Instant::now();
        let (status, body) = api.get("/volumes").await;
        tokio::time::sleep(Duration::from_secs(10).saturating_sub(outage.elapsed())).await;
        let restarted = pg_ctl("start");
        assert!(restarted, "cannot restart PostgreSQL");
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["serviceUnavailable"]["code"], 503, "{body}");
        eprintln!("with PostgreSQL stopped the API answered {status}: {body}");
        let recovered = async || api.get("/volumes").await.0 == 200;
        let after_pg = "the API did not recover after PostgreSQL returned";
        poll::until_true(Every::ms(200, 30), after_pg, recovered).await;
        api.wait_services(Every::ms(200, 30), &ALL_UP[..2]).await;
    }
    deployment.stop().await;
    drop(vhost);
    pg.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_at_its_connection_limit_answers_503_and_loses_nothing() {
    at_connection_limit(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_at_its_connection_limit_answers_503_and_loses_nothing() {
    at_connection_limit(Engine::Mysql).await;
}

/// 1000 creates from 16 clients while the database refuses new
/// connections: Clinker's processes log in as a role limited to
/// `LIMIT` connections (one pooled each, two overflow) and a holder takes
/// every connection left. Every answer is 202 or 503 — never a 500, never a
/// create that happened but answered an error — and once the holder lets
/// go, every accepted create ends `available`, nothing else exists and the
/// usage equals a recount.
async fn at_connection_limit(engine: Engine) {
    // Room for every process's pool at start (5 × 3); the holder takes
    // the rest once they are up.
    const LIMIT: u32 = 20;
    const CREATES: usize = 1000;
    let _serial = SERIAL.lock().await;
    let Some(t) = TestDatabase::open(engine).await else {
        return;
    };
    let Some(vhost) = Vhost::create("connlimit") else {
        return;
    };
    let role = LimitedRole::create(&t, engine, LIMIT).await.unwrap();
    let pools = "max_pool_size = 1\nmax_overflow = 2\npool_timeout = 3\nretry_interval = 1\n";
    let deployment = Deployment::start(&role.url, &vhost, pools, 2000).await;
    let api = deployment.api.clone();

    // The holder takes every connection the role has left.
    let held = role.hold_the_rest().await;
    eprintln!("the holder keeps {} of {LIMIT} connections", held.count());

    let queue = Arc::new(Mutex::new((0..CREATES).collect::<Vec<usize>>()));
    let answers = Arc::new(Mutex::new(BTreeMap::<u16, usize>::new()));
    let accepted = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (api, queue, answers, accepted) = (
            api.clone(),
            queue.clone(),
            answers.clone(),
            accepted.clone(),
        );
        clients.push(tokio::spawn(async move {
            loop {
                let Some(i) = queue.lock().await.pop() else {
                    break;
                };
                let volume = json!({"size": 1, "name": format!("cl-{i}")});
                let (status, id, body) = api.create_volume(volume).await;
                *answers.lock().await.entry(status).or_default() += 1;
                match status {
                    202 => {
                        accepted.lock().await.insert(id.unwrap());
                    }
                    503 => assert_eq!(body["serviceUnavailable"]["code"], 503, "{body}"),
                    other => panic!("create {i} answered {other}: {body}"),
                }
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    held.release().await;
    let answers = answers.lock().await.clone();
    let accepted = accepted.lock().await.clone();
    eprintln!("at the connection limit, {CREATES} creates answered {answers:?}");

    // Every accepted create ends available; nothing was made for a 503.
    let volumes = settle(&api, 120).await;
    let ids: BTreeSet<String> = volumes
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, accepted, "the volumes are not the accepted creates");
    let not_available: Vec<(&str, &str)> = volumes
        .iter()
        .filter(|v| v["status"] != "available")
        .map(|v| (v["id"].as_str().unwrap(), v["status"].as_str().unwrap()))
        .collect();
    assert!(
        not_available.is_empty(),
        "accepted creates not available: {not_available:?}"
    );
    quota::assert_usage_matches_recount(&t.db, "admin").await;
    quota::assert_claims_match_recount(&t.db).await;

    deployment.stop().await;
    drop(vhost);
    role.drop_role(&t).await;
    t.drop_database().await;
}
