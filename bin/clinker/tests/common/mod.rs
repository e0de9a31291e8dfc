//! Test harness: an all-in-one Clinker (the same wiring as `clinker serve`)
//! on a free port with its state in a temporary directory, driven over
//! HTTP by the testkit's client (which `Cluster` dereferences to).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod images;

use std::sync::Arc;

use clinker::wiring::{AllInOne, start_all_in_one};
use clinker_testkit::config::{default_section, parse};
use clinker_testkit::http::Api;
use serde_json::{Value, json};

#[allow(unused_imports)] // each test binary uses some
pub use clinker_testkit::config::{FILE_BACKEND, TWO_FILE_BACKENDS};

/// A running cluster and its client.
pub struct Cluster {
    pub running: Option<AllInOne>,
    pub dir: tempfile::TempDir,
    pub api: Api,
    config: String,
}

impl std::ops::Deref for Cluster {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Cluster {
    /// Starts with `[DEFAULT]` extras and backend sections (which must
    /// include `enabled_backends`).
    pub async fn start(extra_default: &str, backends: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let extra = format!("osapi_volume_listen_port = 0\n{extra_default}");
        let config = default_section("testnode", dir.path(), &extra) + backends;
        let mut cluster = Cluster {
            running: None,
            dir,
            api: Api::new(""),
            config,
        };
        cluster.run().await;
        cluster
    }

    async fn run(&mut self) {
        let config = parse(&self.config, "testnode");
        let running = start_all_in_one(Arc::new(config)).await.unwrap();
        self.api = Api::new(running.endpoint.clone());
        self.running = Some(running);
    }

    /// Stops the cluster and starts it again on the same state (the
    /// restart runs `init_host`, with the orphan sweep).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.run().await;
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.unwrap();
        }
    }

    pub fn db(&self) -> clinker_db::DbHandle {
        self.running.as_ref().unwrap().db.clone()
    }

    /// The file backend `file`'s volumes.
    pub fn volumes_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("volumes").join("file")
    }

    /// Counters and claims equal a recount for a project.
    pub async fn assert_quota_consistent(&self, project: &str) {
        clinker_testkit::quota::assert_consistent(self.db().as_ref(), project).await;
    }

    /// Attaches through the attachments API (3.54): creates `attachment`
    /// (200 asserted), then completes it (204 asserted); the attachment as
    /// created.
    pub async fn attach(&self, attachment: Value) -> Value {
        let api = self.at("3.54");
        let (status, made) = api
            .post("/attachments", json!({ "attachment": attachment }))
            .await;
        assert_eq!(status, 200, "{made}");
        let id = made["attachment"]["id"].as_str().unwrap();
        let complete = json!({"os-complete": {}});
        let (status, body) = api
            .post(&format!("/attachments/{id}/action"), complete)
            .await;
        assert_eq!(status, 204, "{body}");
        made["attachment"].clone()
    }
}
