//! A real Keystone a test owns: `scripts/keystone.sh start` with its data
//! in a directory of the test's (the venv is the shared one of
//! `scripts/keystone.sh install`), over HTTPS when given a certificate,
//! stopped when dropped. Every account's password is random per start.
//! Off CI a missing Keystone install skips; under `CI=true` it fails.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clinker_exec::Command;
use serde_json::json;

use crate::glance::run_sync;
use crate::tls::{Issued, TestCa};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/keystone.sh")
}

fn shared_venv() -> String {
    std::env::var("KEYSTONE_VENV").unwrap_or_else(|_| {
        format!(
            "{}/.cache/clinker-keystone/venv",
            std::env::var("HOME").unwrap_or_default()
        )
    })
}

/// A running Keystone.
#[derive(Debug)]
pub struct Keystone {
    /// Its root, `http(s)://127.0.0.1:<port>` (the identity API is `/v3`).
    pub url: String,
    /// Every account's password (`admin`, `demo`, …, the service user
    /// `clinker` in project `service`).
    pub password: String,
    /// The gunicorn access log: one line per request Keystone answered.
    pub access_log: PathBuf,
    home: PathBuf,
}

impl Keystone {
    /// Starts a Keystone in `home` (must not hold one already), serving
    /// HTTPS with `tls` (the server certificate for 127.0.0.1 and the CA
    /// that signed it) or plain HTTP; `None` after skipping `test` (off
    /// CI) when Keystone is not installed.
    pub fn start(test: &str, home: &Path, tls: Option<(&Issued, &TestCa)>) -> Option<Self> {
        let installed = run_sync(
            Command::new("bash")
                .arg(script().display().to_string())
                .arg("installed")
                .env("KEYSTONE_VENV", shared_venv())
                .env("KEYSTONE_HOME", home.display().to_string()),
        );
        if !installed.success() {
            crate::env::unmet(
                test,
                "Keystone is not installed",
                "run scripts/keystone.sh install",
            );
            return None;
        }
        let port = crate::process::free_port();
        let password = format!("ks{}", crate::tls_servers::random_suffix());
        let mut start = Command::new("bash")
            .arg(script().display().to_string())
            .args(["start", "--port", &port.to_string()])
            .env("KEYSTONE_VENV", shared_venv())
            .env("KEYSTONE_HOME", home.display().to_string())
            .env("KEYSTONE_PASSWORD", password.clone())
            .timeout(Duration::from_secs(300));
        let scheme = match tls {
            Some((server, ca)) => {
                start = start
                    .env("KEYSTONE_TLS_CERT", server.cert_file.display().to_string())
                    .env("KEYSTONE_TLS_KEY", server.key_file.display().to_string())
                    .env("KEYSTONE_TLS_CA", ca.ca_file.display().to_string());
                "https"
            }
            None => "http",
        };
        let keystone = Self {
            url: format!("{scheme}://127.0.0.1:{port}"),
            password,
            access_log: home.join("logs/access.log"),
            home: home.to_path_buf(),
        };
        let out = run_sync(start);
        assert!(
            out.success(),
            "scripts/keystone.sh start failed: {}{}",
            out.stdout,
            out.stderr
        );
        Some(keystone)
    }

    /// The `[keystone_authtoken]` section for Clinker: the service user
    /// `clinker`, `auth_url` this Keystone, plus `extra` lines.
    pub fn authtoken(&self, extra: &str) -> String {
        format!(
            "[keystone_authtoken]\nauth_url = {url}/v3\nwww_authenticate_uri = {url}/v3\n\
             auth_type = password\nusername = clinker\npassword = {password}\n\
             project_name = service\nuser_domain_name = Default\nproject_domain_name = Default\n\
             {extra}\n",
            url = self.url,
            password = self.password
        )
    }

    /// A token of `user` scoped to `project`, and the project's id, asked
    /// with `http` (which must trust this Keystone's certificate).
    pub async fn token(
        &self,
        http: &reqwest::Client,
        user: &str,
        project: &str,
    ) -> (String, String) {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"name": "Default"}, "password": self.password,
            }}},
            "scope": {"project": {"name": project, "domain": {"name": "Default"}}},
        }});
        let response = http
            .post(format!("{}/v3/auth/tokens", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201, "login of {user}");
        let token = response.headers()["x-subject-token"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: serde_json::Value = response.json().await.unwrap();
        let project_id = body["token"]["project"]["id"].as_str().unwrap().to_owned();
        (token, project_id)
    }

    /// Lines in the access log so far.
    pub fn requests_answered(&self) -> usize {
        std::fs::read_to_string(&self.access_log)
            .unwrap_or_default()
            .lines()
            .count()
    }
}

impl Drop for Keystone {
    fn drop(&mut self) {
        let _ = run_sync(
            Command::new("bash")
                .arg(script().display().to_string())
                .arg("stop")
                .env("KEYSTONE_VENV", shared_venv())
                .env("KEYSTONE_HOME", self.home.display().to_string()),
        );
    }
}
