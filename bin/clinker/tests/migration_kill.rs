//! `kill -9` in the middle of migrations: after a restart no volume is
//! left migrating, every volume's data is on the backend its row names,
//! no backing is left without its row, and quota matches a recount.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use clinker_testkit::config::TWO_FILE_BACKENDS;
use clinker_testkit::files::{names_in, read_at, write_at};
use clinker_testkit::poll::{self, Every};
use clinker_testkit::process::Server;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_clinker");
const OFFSET: u64 = 1536 * 1024 * 1024 + 5;

fn backend_of(volume: &Value) -> String {
    let host = volume["os-vol-host-attr:host"].as_str().unwrap();
    host.rsplit('#').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_during_migrations_recovers_with_nothing_stuck_or_lost() {
    let mut s = Server::new(BIN, "report_interval = 1", TWO_FILE_BACKENDS);
    s.start().await;
    let api = s.api.clone();

    // Capability reports first, so the scheduler can place on file.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut ids = Vec::new();
    for n in 0..4 {
        let (status, id, body) = api
            .create_volume(json!({"size": 2, "name": format!("m{n}")}))
            .await;
        assert_eq!(status, 202, "{body}");
        ids.push(id.unwrap());
    }
    for id in &ids {
        api.wait_volume(id, |s| s == Some("available")).await;
    }
    let volumes = s.dir.path().join("volumes");
    let file_of = |id: &str, backend: &str| volumes.join(backend).join(format!("volume-{id}"));
    let mut origin = BTreeMap::new();
    let mut node = String::new();
    for v in api.volumes().await {
        let host = v["os-vol-host-attr:host"].as_str().unwrap();
        node = host.split('@').next().unwrap().to_owned();
        let id = v["id"].as_str().unwrap().to_owned();
        let backend = backend_of(&v);
        write_at(&file_of(&id, &backend), OFFSET, id.as_bytes());
        origin.insert(id, backend);
    }
    for (id, backend) in &origin {
        let to = if backend == "file" { "file2" } else { "file" };
        let migrate = json!({"os-migrate_volume": {"host": format!("{node}@{to}")}});
        let (status, body) = api.action(id, migrate).await;
        assert_eq!(status, 202, "{body}");
    }
    // Die in the middle of the migrations.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let at_kill: Vec<Value> = api
        .volumes()
        .await
        .iter()
        .map(|v| v["migration_status"].clone())
        .collect();
    eprintln!("migration states when killed: {at_kill:?}");
    s.serve.kill9().await;

    s.start().await;
    let settled = poll::until(Every::ms(100, 60), async || {
        let all = api.volumes().await;
        let busy = all.iter().any(|v| {
            matches!(
                v["migration_status"].as_str(),
                Some("starting" | "migrating" | "completing")
            ) || v["status"] != "available"
                || v["migration_status"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("target:"))
        });
        if !busy && all.len() == origin.len() {
            Ok(all)
        } else {
            Err(format!("migrations stuck after restart: {all:#?}"))
        }
    })
    .await;
    // Old backings still journaled are removed by the same recovery.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut files = BTreeSet::new();
    for backend in ["file", "file2"] {
        for name in names_in(&volumes.join(backend)) {
            if name.starts_with("volume-") {
                files.insert(format!("{backend}/{name}"));
            }
        }
    }
    let mut expected = BTreeSet::new();
    for v in &settled {
        let id = v["id"].as_str().unwrap();
        let backend = backend_of(v);
        let data = read_at(&file_of(id, &backend), OFFSET, id.len());
        assert_eq!(data, id.as_bytes(), "data of {id} on {backend}");
        expected.insert(format!("{backend}/volume-{id}"));
    }
    assert_eq!(files, expected, "every backing has its row and only one");
    s.assert_quota_checks().await;
}
