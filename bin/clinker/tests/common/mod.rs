//! Test harness: an all-in-one Clinker (the same wiring as `clinker serve`)
//! on a free port with its state in a temporary directory, and a small HTTP
//! client that speaks like the OpenStack clients do.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use clinker::wiring::{AllInOne, start_all_in_one};
use clinker_config::{Config, ConfigEnv, Ini};
use serde_json::{Value, json};

/// A running cluster and its client.
pub struct Cluster {
    pub running: Option<AllInOne>,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    pub endpoint: String,
}

pub fn config_text(dir: &std::path::Path, extra_default: &str, backends: &str) -> String {
    format!(
        "[DEFAULT]\nhost = testnode\nstate_path = {}\nosapi_volume_listen_port = 0\nreport_interval = 1\n\
         periodic_fuzzy_delay = 0\nscheduler_driver_init_wait_time = 5\n{extra_default}\n{backends}",
        dir.display()
    )
}

pub const FILE_BACKEND: &str = "enabled_backends = file\n[file]\nvolume_driver = file\n";

impl Cluster {
    /// Starts with `[DEFAULT]` extras and backend sections (which must
    /// include `enabled_backends`).
    pub async fn start(extra_default: &str, backends: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut ini = Ini::default();
        ini.merge_text(
            &config_text(dir.path(), extra_default, backends),
            "test.conf",
        )
        .unwrap();
        let config = Config::from_ini(
            &ini,
            &ConfigEnv {
                hostname: "testnode".into(),
            },
        )
        .unwrap();
        let running = start_all_in_one(Arc::new(config)).await.unwrap();
        let endpoint = running.endpoint.clone();
        Cluster {
            running: Some(running),
            dir,
            http: reqwest::Client::new(),
            endpoint,
        }
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.unwrap();
        }
    }

    pub fn db(&self) -> clinker_db::DbHandle {
        self.running.as_ref().unwrap().db.clone()
    }

    pub fn volumes_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("volumes").join("file")
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        version: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.endpoint));
        if let Some(v) = version {
            req = req.header("OpenStack-API-Version", format!("volume {v}"));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, None, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, Some(body), None)
            .await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::DELETE, path, None, None)
            .await
    }

    /// POST /volumes; returns (status, volume id if any).
    pub async fn create_volume(&self, body: Value) -> (u16, Option<String>, Value) {
        let (status, resp) = self.post("/volumes", json!({"volume": body})).await;
        let id = resp["volume"]["id"].as_str().map(str::to_owned);
        (status, id, resp)
    }

    /// Polls a volume until `want(status)` (None = 404).
    pub async fn wait_volume(&self, id: &str, want: impl Fn(Option<&str>) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, body) = self.get(&format!("/volumes/{id}")).await;
            let status = if code == 404 {
                None
            } else {
                body["volume"]["status"].as_str().map(str::to_owned)
            };
            if want(status.as_deref()) {
                return body["volume"].clone();
            }
            assert!(Instant::now() < deadline, "volume {id} stuck in {status:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn wait_snapshot(&self, id: &str, want: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, body) = self.get(&format!("/snapshots/{id}")).await;
            if body["snapshot"]["status"] == want {
                return body["snapshot"].clone();
            }
            assert!(Instant::now() < deadline, "snapshot {id} stuck: {body}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Counters and a recount agree for a project.
    pub async fn assert_quota_consistent(&self, project: &str) {
        let db = self.db();
        let counters: std::collections::BTreeMap<String, i64> = db
            .quota_usages(project)
            .await
            .unwrap()
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .collect();
        let recount: std::collections::BTreeMap<String, i64> = db
            .recount_usages(project)
            .await
            .unwrap()
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .collect();
        assert_eq!(counters, recount, "quota usage drifted");
        // Placements may still be running: the counters and the recount are
        // read at two instants, so wait for a moment when nothing moves.
        // Real drift never converges and still fails.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let allocations: std::collections::BTreeMap<String, i64> = db
                .pool_allocations()
                .await
                .unwrap()
                .into_iter()
                .filter(|(_, v)| *v != 0)
                .collect();
            let recount = db.recount_pool_allocations().await.unwrap();
            if allocations == recount {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "pool claims drifted: {allocations:?} != {recount:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
