//! The real `clinker` binary as an operator runs it: start-up, clean
//! shutdown, refusals, a `kill -9` in the middle of work, and the real
//! `openstack` client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clinker_testkit::config::FILE_BACKEND;
use clinker_testkit::poll::{self, Every};
use clinker_testkit::process::Server;
use serde_json::{Value, json};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_clinker");

/// A file backend with unlimited quotas, and `extra` in `[DEFAULT]`.
fn server(extra: &str) -> Server {
    let unlimited = "quota_volumes = -1\nquota_gigabytes = -1\nquota_snapshots = -1";
    Server::new(BIN, &format!("{unlimited}\n{extra}"), FILE_BACKEND)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_is_ready_at_once_and_stops_cleanly_on_sigterm() {
    let mut s = server("");
    s.start().await;
    let (status, body) = s.api.get("/volumes").await;
    assert_eq!(status, 200, "{body}");
    let exit = s.serve.terminate().await;
    let (stdout, stderr) = (s.serve.stdout(), s.serve.log());
    assert!(exit.success(), "exit {exit:?}\n{stderr}");
    assert!(
        stdout.contains(&format!("http://127.0.0.1:{}/v3", s.port)),
        "{stdout}"
    );
    assert!(stdout.contains("openstack --os-auth-type none"), "{stdout}");
    assert!(stderr.contains("clean shutdown"), "{stderr}");
}

#[tokio::test]
async fn refuses_noauth_on_a_public_address_and_names_bad_values() {
    let out = server("osapi_volume_listen = 0.0.0.0")
        .run(&["serve"])
        .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing to serve auth_strategy = noauth")
    );

    let out = server("report_interval = often").run(&["serve"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("report_interval")
            && stderr.contains("[DEFAULT]")
            && stderr.contains("often"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_during_creates_and_deletes_recovers_with_nothing_stuck() {
    let mut s = server("");
    s.start().await;

    // Eight clients create and delete as fast as they can…
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for worker in 0..8 {
        let (api, stop) = (s.api.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut previous: Option<String> = None;
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let name = format!("w{worker}-{n}");
                let (status, _, body) = api.create_volume(json!({"size": 1, "name": name})).await;
                if status == 0 {
                    break;
                }
                if let Some(old) = previous.take() {
                    api.delete(&format!("/volumes/{old}")).await;
                }
                previous = body["volume"]["id"].as_str().map(str::to_owned);
                n += 1;
            }
        }));
    }
    // …until the server dies without warning.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.serve.kill9().await;
    stop.store(true, Ordering::SeqCst);
    for l in load {
        let _ = l.await;
    }

    s.start().await;
    // Deletes that were already accepted may still be finishing: wait for
    // every volume to settle.
    let volumes = poll::until(Every::ms(50, 30), async || {
        let volumes = s.api.volumes().await;
        let busy = volumes
            .iter()
            .filter(|v| matches!(v["status"].as_str(), Some("creating" | "deleting")))
            .count();
        if busy == 0 {
            Ok(volumes)
        } else {
            Err(format!(
                "{busy} volumes stuck in creating/deleting after restart"
            ))
        }
    })
    .await;
    assert!(!volumes.is_empty(), "the load created volumes");
    let files = clinker_testkit::files::names_in(&s.volumes_dir("file"));
    let rows: std::collections::BTreeMap<String, String> = volumes
        .iter()
        .map(|v| {
            (
                format!("volume-{}", v["id"].as_str().unwrap()),
                v["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for file in &files {
        assert!(rows.contains_key(file), "file {file} has no row");
    }
    for (name, status) in &rows {
        if status == "available" {
            assert!(files.contains(name), "available volume {name} has no file");
        } else {
            assert_eq!(status, "error", "{name} ended in {status}");
        }
    }
    assert!(s.serve.terminate().await.success());
    s.assert_quota_checks().await;
}

/// The real python-openstackclient against one endpoint, without auth.
struct Openstack {
    cli: String,
    endpoint: String,
}

impl Openstack {
    /// `openstack <args>`, which must succeed; its stdout.
    async fn run(&self, args: &str) -> String {
        #[allow(clippy::disallowed_methods)] // the client under test, not ours
        let out = Command::new(&self.cli)
            .args(["--os-auth-type", "none", "--os-endpoint", &self.endpoint])
            .args(args.split_whitespace())
            .env_remove("OS_CLOUD")
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "openstack {args} failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// `openstack <args> -f json`, parsed.
    async fn json(&self, args: &str) -> Value {
        serde_json::from_str(&self.run(&format!("{args} -f json")).await).unwrap()
    }

    /// The `id` of what `openstack <args> -f json` created.
    async fn create(&self, args: &str) -> String {
        self.json(args).await["id"].as_str().unwrap().to_owned()
    }

    /// Polls `openstack <show> -f json` until `want`; the last answer.
    async fn wait(&self, show: &str, want: impl Fn(&Value) -> bool) -> Value {
        poll::until(Every::ms(200, 60), async || {
            let v = self.json(show).await;
            if want(&v) {
                Ok(v)
            } else {
                Err(format!("{show} stuck: {v}"))
            }
        })
        .await
    }

    /// Polls `openstack <list> -f json` until none of `ids` is listed.
    async fn wait_gone(&self, list: &str, ids: &[&str]) {
        poll::until(Every::ms(200, 60), async || {
            let listed = self.run(&format!("{list} -f json")).await;
            if ids.iter().any(|id| listed.contains(id)) {
                Err(format!("{ids:?} never went away: {listed}"))
            } else {
                Ok(())
            }
        })
        .await;
    }
}

/// The flow from the all-in-one milestone, with the real python-openstackclient.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_client_flow() {
    let cli = std::env::var("CLINKER_OPENSTACK_CLI").ok().or_else(|| {
        clinker_testkit::env::find_program("openstack").map(|p| p.display().to_string())
    });
    let Some(cli) = cli else {
        clinker_testkit::env::unmet(
            "the openstack client flow",
            "no openstack client",
            "run scripts/install-openstack-client.sh and set CLINKER_OPENSTACK_CLI",
        );
        return;
    };
    let mut s = server("");
    s.start().await;
    let os = Openstack {
        cli,
        endpoint: s.api.base.clone(),
    };
    let available = |v: &Value| v["status"] == "available";

    let demo_id = os.create("volume create --size 1 demo").await;
    os.wait(&format!("volume show {demo_id}"), available).await;
    let snap_id = os
        .create(&format!("volume snapshot create --volume {demo_id} snap1"))
        .await;
    os.wait(&format!("volume snapshot show {snap_id}"), available)
        .await;
    let from_snap_id = os
        .create(&format!(
            "volume create --snapshot {snap_id} --size 2 fromsnap"
        ))
        .await;
    os.wait(&format!("volume show {from_snap_id}"), available)
        .await;
    let list = os.run("volume list -f json").await;
    assert!(list.contains("demo") && list.contains("fromsnap"), "{list}");
    os.run(&format!("volume set --size 3 {demo_id}")).await;
    os.wait(&format!("volume show {demo_id}"), |v| {
        available(v) && v["size"] == 3
    })
    .await;
    let services = os.json("volume service list").await;
    let up: Vec<(String, String)> = services
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["Binary"].as_str().unwrap_or_default().to_owned(),
                s["State"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for binary in ["cinder-scheduler", "cinder-volume"] {
        assert!(up.contains(&(binary.into(), "up".into())), "{up:?}");
    }
    os.run(&format!("volume delete {from_snap_id}")).await;
    os.run(&format!("volume snapshot delete {snap_id}")).await;
    os.wait_gone("volume snapshot list", &[&snap_id]).await;
    os.run(&format!("volume delete {demo_id}")).await;
    os.wait_gone("volume list", &[&demo_id, &from_snap_id])
        .await;
    s.serve.terminate().await;
}
