//! `kill -9` in the middle of migrations: after a restart no volume is
//! left migrating, every volume's data is on the backend its row names,
//! no backing is left without its row, and quota matches a recount.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_clinker");
const OFFSET: u64 = 1536 * 1024 * 1024 + 5;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &Path, port: u16) -> PathBuf {
    let path = dir.join("clinker.conf");
    std::fs::write(
        &path,
        format!(
            "[DEFAULT]\nstate_path = {}\nosapi_volume_listen_port = {port}\nperiodic_fuzzy_delay = 0\n\
             report_interval = 1\nenabled_backends = file,file2\n\
             [file]\nvolume_driver = file\nvolume_backend_name = file\n\
             [file2]\nvolume_driver = file\nvolume_backend_name = file2\n",
            dir.display()
        ),
    )
    .unwrap();
    path
}

#[allow(clippy::disallowed_methods)] // tests launch the binary under test
fn clinker(config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config-file")
        .arg(config)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    cmd
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{base}/volumes")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("clinker never became ready");
}

async fn volumes(http: &reqwest::Client, base: &str) -> Vec<Value> {
    let body: Value = http
        .get(format!("{base}/volumes/detail?all_tenants=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["volumes"].as_array().cloned().unwrap_or_default()
}

fn backend_of(volume: &Value) -> String {
    let host = volume["os-vol-host-attr:host"].as_str().unwrap();
    host.rsplit('#').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_during_migrations_recovers_with_nothing_stuck_or_lost() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = write_config(dir.path(), port);
    let base = format!("http://127.0.0.1:{port}/v3");
    let http = reqwest::Client::new();
    let mut child = clinker(&conf, &["serve"]).spawn().unwrap();
    wait_ready(&http, &base).await;

    // Capability reports first, so the scheduler can place on file.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut ids = Vec::new();
    for n in 0..4 {
        let body: Value = http
            .post(format!("{base}/volumes"))
            .json(&json!({"volume": {"size": 2, "name": format!("m{n}")}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(body["volume"]["id"].as_str().unwrap().to_owned());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = volumes(&http, &base).await;
        if all.iter().filter(|v| v["status"] == "available").count() == ids.len() {
            break;
        }
        assert!(Instant::now() < deadline, "volumes not created: {all:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut origin = std::collections::BTreeMap::new();
    let mut node = String::new();
    for v in volumes(&http, &base).await {
        node = v["os-vol-host-attr:host"]
            .as_str()
            .unwrap()
            .split('@')
            .next()
            .unwrap()
            .to_owned();
        let id = v["id"].as_str().unwrap().to_owned();
        let backend = backend_of(&v);
        let path = dir
            .path()
            .join("volumes")
            .join(&backend)
            .join(format!("volume-{id}"));
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(SeekFrom::Start(OFFSET)).unwrap();
        f.write_all(id.as_bytes()).unwrap();
        origin.insert(id, backend);
    }
    for (id, backend) in &origin {
        let to = if backend == "file" { "file2" } else { "file" };
        let status = http
            .post(format!("{base}/volumes/{id}/action"))
            .json(&json!({"os-migrate_volume": {"host": format!("{node}@{to}")}}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 202);
    }
    // Die in the middle of the migrations.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let at_kill: Vec<Value> = volumes(&http, &base)
        .await
        .iter()
        .map(|v| v["migration_status"].clone())
        .collect();
    eprintln!("migration states when killed: {at_kill:?}");
    child.start_kill().unwrap();
    child.wait().await.unwrap();

    let _child = clinker(&conf, &["serve"]).spawn().unwrap();
    wait_ready(&http, &base).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let settled = loop {
        let all = volumes(&http, &base).await;
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
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "migrations stuck after restart: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Old backings still journaled are removed by the same recovery.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut files = std::collections::BTreeSet::new();
    for backend in ["file", "file2"] {
        for entry in std::fs::read_dir(dir.path().join("volumes").join(backend)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.starts_with("volume-") {
                files.insert(format!("{backend}/{name}"));
            }
        }
    }
    let mut expected = std::collections::BTreeSet::new();
    for v in &settled {
        let id = v["id"].as_str().unwrap();
        let backend = backend_of(v);
        let path = dir
            .path()
            .join("volumes")
            .join(&backend)
            .join(format!("volume-{id}"));
        let mut f = std::fs::File::open(&path).unwrap();
        f.seek(SeekFrom::Start(OFFSET)).unwrap();
        let mut buf = vec![0; id.len()];
        f.read_exact(&mut buf).unwrap();
        assert_eq!(buf, id.as_bytes(), "data of {id} on {backend}");
        expected.insert(format!("{backend}/volume-{id}"));
    }
    assert_eq!(files, expected, "every backing has its row and only one");
    let check = clinker(&conf, &["manage", "quota", "check"])
        .stdout(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(
        check.status.success(),
        "quota drifted: {}",
        String::from_utf8_lossy(&check.stdout)
    );
}
