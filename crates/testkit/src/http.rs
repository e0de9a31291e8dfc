//! A Block Storage API client for tests, speaking over real HTTP the way
//! the OpenStack clients do (`OpenStack-API-Version: volume 3.x`,
//! `X-Auth-Token`), with the waits every end-to-end test needs.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::poll::{self, Every};

/// How the end-to-end tests wait for a volume, snapshot or group: every
/// 10 ms for up to 30 s.
pub const SETTLE: Every = Every::ms(10, 30);

/// A client of one endpoint (`http://host:port/v3`) with the headers it
/// sends on every request.
#[derive(Clone, Debug)]
pub struct Api {
    /// The HTTP client (connection pool shared by copies).
    pub http: reqwest::Client,
    /// The endpoint, without a trailing slash: paths are appended.
    pub base: String,
    version: Option<String>,
    token: Option<String>,
}

impl Api {
    /// A client of `base` sending no version (3.0) and no token (noauth's
    /// admin).
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            http: clinker_runtime::http::client(),
            base: base.into(),
            version: None,
            token: None,
        }
    }

    /// A copy that asks for microversion `version` (`3.54`).
    #[must_use]
    pub fn at(&self, version: &str) -> Self {
        Self {
            version: Some(version.to_owned()),
            ..self.clone()
        }
    }

    /// A copy that sends `X-Auth-Token: token` (noauth's `user:project`).
    #[must_use]
    pub fn as_token(&self, token: &str) -> Self {
        Self {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// Sends a request; the status and the body as JSON (a string when it
    /// is not JSON). A request that never got an answer is status 0 with
    /// the error as its body, so a test of an unreachable server can look
    /// at it and every other test fails on the status.
    pub async fn request(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(v) = &self.version {
            req = req.header("OpenStack-API-Version", format!("volume {v}"));
        }
        if let Some(t) = &self.token {
            req = req.header("X-Auth-Token", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => return (0, Value::String(e.to_string())),
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.request(Method::POST, path, Some(body)).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.request(Method::PUT, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.request(Method::DELETE, path, None).await
    }

    /// `POST path` that must answer `status`; the body.
    ///
    /// # Panics
    /// On any other status, with the body.
    pub async fn post_ok(&self, status: u16, path: &str, body: Value) -> Value {
        let (got, reply) = self.post(path, body).await;
        assert_eq!(got, status, "POST {path}: {reply}");
        reply
    }

    /// `POST /volumes/{id}/action` with `body`; the status and reply.
    pub async fn action(&self, id: &str, body: Value) -> (u16, Value) {
        self.post(&format!("/volumes/{id}/action"), body).await
    }

    /// A volume action that must be accepted (202); the reply.
    pub async fn action_ok(&self, id: &str, body: Value) -> Value {
        self.post_ok(202, &format!("/volumes/{id}/action"), body)
            .await
    }

    /// `POST /volumes`: the status, the new volume's id if any, the body.
    pub async fn create_volume(&self, volume: Value) -> (u16, Option<String>, Value) {
        let (status, resp) = self.post("/volumes", json!({ "volume": volume })).await;
        let id = resp["volume"]["id"].as_str().map(str::to_owned);
        (status, id, resp)
    }

    /// Creates a volume (202 asserted) and waits until it is `available`;
    /// its id.
    pub async fn available_volume(&self, volume: Value) -> String {
        let (status, id, body) = self.create_volume(volume).await;
        assert_eq!(status, 202, "{body}");
        let id = id.unwrap();
        self.wait_volume(&id, |s| s == Some("available")).await;
        id
    }

    /// Creates a snapshot of `volume` (202 asserted) and waits until it is
    /// `available`; its id.
    pub async fn available_snapshot(&self, snapshot: Value) -> String {
        let body = self
            .post_ok(202, "/snapshots", json!({ "snapshot": snapshot }))
            .await;
        let id = body["snapshot"]["id"].as_str().unwrap().to_owned();
        self.wait_snapshot(&id, "available").await;
        id
    }

    /// Creates a volume type with `extra_specs` (200 asserted); its id.
    pub async fn create_type(&self, name: &str, extra_specs: Value) -> String {
        let body = self
            .post_ok(
                200,
                "/types",
                json!({"volume_type": {"name": name, "extra_specs": extra_specs}}),
            )
            .await;
        body["volume_type"]["id"].as_str().unwrap().to_owned()
    }

    /// Polls `GET path` until `want(status, body)`; the body.
    pub async fn wait_for(&self, path: &str, want: impl Fn(u16, &Value) -> bool) -> Value {
        self.wait_for_every(SETTLE, path, want).await
    }

    /// [`Api::wait_for`] with another pace.
    pub async fn wait_for_every(
        &self,
        every: Every,
        path: &str,
        want: impl Fn(u16, &Value) -> bool,
    ) -> Value {
        poll::until(every, async || {
            let (code, body) = self.get(path).await;
            if want(code, &body) {
                Ok(body)
            } else {
                Err(format!("{path} never settled: {code} {body}"))
            }
        })
        .await
    }

    /// Polls a volume until `want(status)` (`None`: it is gone, 404); the
    /// volume (`null` when gone).
    pub async fn wait_volume(&self, id: &str, want: impl Fn(Option<&str>) -> bool) -> Value {
        let status = |code: u16, body: &Value| {
            if code == 404 {
                None
            } else {
                body["volume"]["status"].as_str().map(str::to_owned)
            }
        };
        let body = self
            .wait_for(&format!("/volumes/{id}"), |code, body| {
                want(status(code, body).as_deref())
            })
            .await;
        body["volume"].clone()
    }

    /// Polls a volume until `done(volume)`; the volume.
    pub async fn wait_volume_until(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_every(Every::ms(20, 60), &format!("/volumes/{id}"), |_, b| {
            done(&b["volume"])
        })
        .await["volume"]
            .clone()
    }

    /// Polls a snapshot until its status is `want`; the snapshot.
    pub async fn wait_snapshot(&self, id: &str, want: &str) -> Value {
        self.wait_for(&format!("/snapshots/{id}"), |_, b| {
            b["snapshot"]["status"] == want
        })
        .await["snapshot"]
            .clone()
    }

    /// Polls until `GET path` answers 404.
    pub async fn wait_gone(&self, path: &str) {
        self.wait_for(path, |code, _| code == 404).await;
    }

    /// Every volume of every project (`/volumes/detail`, admin view).
    pub async fn volumes(&self) -> Vec<Value> {
        let (status, body) = self.get("/volumes/detail?all_tenants=1&limit=1000").await;
        assert_eq!(status, 200, "{body}");
        body["volumes"].as_array().cloned().unwrap_or_default()
    }

    /// The user messages (3.3) about `resource`.
    pub async fn messages_about(&self, resource: &str) -> Vec<Value> {
        let (_, body) = self.at("3.3").get("/messages?limit=1000").await;
        body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["resource_uuid"] == resource)
            .cloned()
            .collect()
    }

    /// Polls until there are exactly `n` user messages about `resource`;
    /// them.
    pub async fn wait_messages(&self, resource: &str, n: usize) -> Vec<Value> {
        poll::until(Every::ms(20, 30), async || {
            let found = self.messages_about(resource).await;
            if found.len() == n {
                Ok(found)
            } else {
                Err(format!(
                    "{} messages about {resource}, not {n}",
                    found.len()
                ))
            }
        })
        .await
    }

    /// `os-services` (3.49: with `backend_state`) by host.
    pub async fn services(&self) -> BTreeMap<String, Value> {
        let (_, body) = self.at("3.49").get("/os-services").await;
        body["services"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| (s["host"].as_str().unwrap_or("").to_owned(), s.clone()))
            .collect()
    }

    /// Polls until each `(host, key, value)` holds in `os-services`
    /// (`("node1@file", "state", "up")`).
    pub async fn wait_services(&self, every: Every, want: &[(&str, &str, &str)]) {
        poll::until(every, async || {
            let services = self.services().await;
            let holds = want
                .iter()
                .all(|(host, key, value)| services.get(*host).is_some_and(|s| s[*key] == *value));
            if holds {
                Ok(())
            } else {
                Err(format!("services never reached {want:?}: {services:?}"))
            }
        })
        .await;
    }

    /// Polls until the API answers `GET /` with 200.
    pub async fn wait_ready(&self, every: Every) {
        poll::until(every, async || match self.get("/").await {
            (200, _) => Ok(()),
            (code, body) => Err(format!("{} never became ready: {code} {body}", self.base)),
        })
        .await;
    }
}

/// `in_use` of `resource` in an `os-quota-sets/…?usage=true` reply.
///
/// # Panics
/// When the reply does not show the resource.
pub fn in_use(quota: &Value, resource: &str) -> i64 {
    quota["quota_set"][resource]["in_use"]
        .as_i64()
        .unwrap_or_else(|| panic!("no {resource} in {quota}"))
}

/// A connector as Nova sends it from host `test` with initiator `iqn`.
pub fn connector(initiator: &str) -> Value {
    json!({"initiator": initiator, "ip": "127.0.0.1", "host": "test", "multipath": false})
}
