//! Cinder's Swift driver (`cinder/backup/drivers/swift.py`) against the
//! Swift API: `per_user` with the requesting user's Keystone token on
//! `backup_swift_url` + project id, or `single_user` with the service's
//! own credentials (auth v1.0: `X-Auth-User` / `X-Auth-Key`). Every put
//! sends the MD5 as `ETag`, so Swift refuses (422) a body that changed on
//! the way, and the ETag Swift answers is compared too; gets compare the
//! body with the ETag.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode};
use tokio::sync::Mutex;

use super::ObjectStore;
use super::http::{self, HttpOptions};
use crate::error::StoreError;

/// What swiftclient leaves unquoted in a path (`quote(name, safe='/')`).
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// One listing page (Swift's default and maximum `limit`).
const PAGE: usize = 10_000;

/// How the store gets its storage URL and token.
#[derive(Clone)]
pub enum SwiftAuth {
    /// A storage URL and token given by the caller (`per_user`: the
    /// request's Keystone token on `backup_swift_url` + project id). It is
    /// not renewed: an expired token fails the operation.
    Token {
        /// The account's storage URL (`…/v1/AUTH_<project>`).
        storage_url: String,
        /// The token (`X-Auth-Token`).
        token: String,
    },
    /// Swift's auth v1.0 (`single_user`, `backup_swift_auth_version = 1`):
    /// `GET auth_url` with `X-Auth-User` / `X-Auth-Key`, renewed when the
    /// store answers 401.
    V1 {
        /// `backup_swift_auth_url`.
        auth_url: String,
        /// `backup_swift_user` (`account:user`).
        user: String,
        /// `backup_swift_key`.
        key: String,
    },
}

impl std::fmt::Debug for SwiftAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SwiftAuth::Token { storage_url, .. } => f
                .debug_struct("Token")
                .field("storage_url", storage_url)
                .finish_non_exhaustive(),
            SwiftAuth::V1 { auth_url, user, .. } => f
                .debug_struct("V1")
                .field("auth_url", auth_url)
                .field("user", user)
                .finish_non_exhaustive(),
        }
    }
}

/// What a [`SwiftStore`] is built from.
#[derive(Clone, Debug)]
pub struct SwiftSettings {
    /// How to authenticate.
    pub auth: SwiftAuth,
    /// `backup_swift_retry_attempts`.
    pub retry_attempts: u32,
    /// `backup_swift_retry_backoff`.
    pub retry_backoff: Duration,
    /// `backup_swift_create_storage_policy`.
    pub storage_policy: Option<String>,
    /// Not `backup_swift_auth_insecure`.
    pub verify_tls: bool,
    /// `backup_swift_ca_cert_file`.
    pub ca_cert_file: Option<std::path::PathBuf>,
}

#[derive(Clone, Debug)]
struct Session {
    storage_url: String,
    token: String,
}

/// Containers and objects of one Swift account.
#[derive(Debug)]
pub struct SwiftStore {
    client: reqwest::Client,
    settings: SwiftSettings,
    session: Mutex<Option<Session>>,
}

impl SwiftStore {
    /// A store for `settings`; authenticates on first use.
    pub fn new(settings: SwiftSettings) -> Result<Self, StoreError> {
        let client = http::client(&HttpOptions {
            timeout: Some(Duration::from_secs(60)),
            verify_tls: settings.verify_tls,
            ca_cert_file: settings.ca_cert_file.clone(),
            ..HttpOptions::default()
        })?;
        let session = match &settings.auth {
            SwiftAuth::Token { storage_url, token } => Some(Session {
                storage_url: storage_url.trim_end_matches('/').to_owned(),
                token: token.clone(),
            }),
            SwiftAuth::V1 { .. } => None,
        };
        Ok(Self {
            client,
            settings,
            session: Mutex::new(session),
        })
    }

    async fn authenticate(&self) -> Result<Session, StoreError> {
        let SwiftAuth::V1 {
            auth_url,
            user,
            key,
        } = &self.settings.auth
        else {
            return Err(StoreError::Unauthorized(
                "the Swift token was refused and cannot be renewed".into(),
            ));
        };
        let response = self
            .client
            .get(auth_url)
            .header("X-Auth-User", user)
            .header("X-Auth-Key", key)
            .send()
            .await
            .map_err(|e| http::transport_error("swift auth", &e))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(match http::status_error("swift auth", status, &body) {
                StoreError::NotFound { what } => StoreError::Config(format!(
                    "{what}: no auth v1.0 endpoint at backup_swift_auth_url {auth_url}"
                )),
                other => other,
            });
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| StoreError::Http {
                    status: response.status().as_u16(),
                    detail: format!("swift auth answered without {name}"),
                })
        };
        Ok(Session {
            storage_url: header("X-Storage-Url")?.trim_end_matches('/').to_owned(),
            token: header("X-Auth-Token")?,
        })
    }

    async fn session(&self, renew: bool) -> Result<Session, StoreError> {
        let mut guard = self.session.lock().await;
        if let Some(session) = guard.as_ref()
            && !renew
        {
            return Ok(session.clone());
        }
        let session = self.authenticate().await?;
        *guard = Some(session.clone());
        Ok(session)
    }

    /// Sends one request to `path` under the storage URL, authenticating
    /// again once on 401 and retrying while Swift is unavailable.
    async fn send(
        &self,
        what: &str,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<reqwest::Response, StoreError> {
        let mut renew = false;
        loop {
            let session = self.session(renew).await?;
            let url = format!("{}/{path}", session.storage_url);
            let response = http::with_retries(
                self.settings.retry_attempts.saturating_add(1),
                self.settings.retry_backoff,
                || {
                    let mut request = self
                        .client
                        .request(method.clone(), &url)
                        .header("X-Auth-Token", &session.token);
                    for (name, value) in headers {
                        request = request.header(*name, *value);
                    }
                    if let Some(body) = &body {
                        request = request
                            .header(reqwest::header::CONTENT_LENGTH, body.len())
                            .body(body.clone());
                    }
                    async move {
                        let response = request
                            .send()
                            .await
                            .map_err(|e| http::transport_error(what, &e))?;
                        if response.status().is_server_error() {
                            let status = response.status();
                            let body = response.text().await.unwrap_or_default();
                            return Err(http::status_error(what, status, &body));
                        }
                        Ok(response)
                    }
                },
            )
            .await?;
            if response.status() == StatusCode::UNAUTHORIZED
                && !renew
                && matches!(self.settings.auth, SwiftAuth::V1 { .. })
            {
                renew = true;
                continue;
            }
            return Ok(response);
        }
    }
}

fn object_path(container: &str, name: &str) -> String {
    format!(
        "{}/{}",
        utf8_percent_encode(container, PATH),
        utf8_percent_encode(name, PATH)
    )
}

async fn failure(what: &str, response: reqwest::Response) -> StoreError {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status == StatusCode::UNPROCESSABLE_ENTITY {
        return StoreError::ChecksumRejected {
            object: what.to_owned(),
            detail: body.trim().to_owned(),
        };
    }
    http::status_error(what, status, &body)
}

#[derive(serde::Deserialize)]
struct Listed {
    name: String,
}

#[async_trait]
impl ObjectStore for SwiftStore {
    async fn ensure_container(&self, container: &str, create: bool) -> Result<(), StoreError> {
        let what = format!("container {container}");
        let path = utf8_percent_encode(container, PATH).to_string();
        let response = self.send(&what, Method::HEAD, &path, &[], None).await?;
        if response.status().is_success() {
            return Ok(());
        }
        if response.status() != StatusCode::NOT_FOUND || !create {
            return Err(failure(&what, response).await);
        }
        let mut headers = Vec::new();
        if let Some(policy) = &self.settings.storage_policy {
            headers.push(("X-Storage-Policy", policy.as_str()));
        }
        let response = self
            .send(&what, Method::PUT, &path, &headers, Some(Bytes::new()))
            .await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(failure(&what, response).await)
    }

    async fn put_object_with_md5(
        &self,
        container: &str,
        name: &str,
        data: Bytes,
        md5: &str,
    ) -> Result<(), StoreError> {
        let what = format!("{container}/{name}");
        let md5 = md5.to_ascii_lowercase();
        let path = object_path(container, name);
        let response = self
            .send(&what, Method::PUT, &path, &[("ETag", &md5)], Some(data))
            .await?;
        if !response.status().is_success() {
            return Err(failure(&what, response).await);
        }
        // Cinder's SwiftObjectWriter: the ETag Swift answers must be the
        // MD5 of what was sent.
        http::check_put(&what, &md5, http::md5_etag(response.headers()), true)
    }

    async fn get_object(&self, container: &str, name: &str) -> Result<Bytes, StoreError> {
        let what = format!("{container}/{name}");
        let path = object_path(container, name);
        let response = self.send(&what, Method::GET, &path, &[], None).await?;
        if !response.status().is_success() {
            return Err(failure(&what, response).await);
        }
        // A large object's ETag is not its body's MD5 (and is quoted).
        let etag = http::md5_etag(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| http::transport_error(&what, &e))?;
        http::check_body(&what, etag, &body)?;
        Ok(body)
    }

    async fn delete_object(&self, container: &str, name: &str) -> Result<(), StoreError> {
        let what = format!("{container}/{name}");
        let path = object_path(container, name);
        let response = self.send(&what, Method::DELETE, &path, &[], None).await?;
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(failure(&what, response).await)
    }

    async fn list_objects(&self, container: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        let what = format!("container {container}");
        let mut names: Vec<String> = Vec::new();
        loop {
            let query = {
                let mut query = url::form_urlencoded::Serializer::new(String::new());
                query
                    .append_pair("format", "json")
                    .append_pair("prefix", prefix)
                    .append_pair("limit", &PAGE.to_string());
                if let Some(last) = names.last() {
                    query.append_pair("marker", last);
                }
                query.finish()
            };
            let path = format!("{}?{query}", utf8_percent_encode(container, PATH));
            let response = self.send(&what, Method::GET, &path, &[], None).await?;
            if !response.status().is_success() {
                return Err(failure(&what, response).await);
            }
            let page: Vec<Listed> = response.json().await.map_err(|e| StoreError::Http {
                status: 200,
                detail: format!("{what}: unreadable listing: {e}"),
            })?;
            let full = page.len() >= PAGE;
            names.extend(page.into_iter().map(|l| l.name));
            if !full {
                break;
            }
        }
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_as_swiftclient_quotes_them() {
        assert_eq!(
            object_path("volumebackups", "volume_1/2026/az_nova_backup_x-00001"),
            "volumebackups/volume_1/2026/az_nova_backup_x-00001"
        );
        assert_eq!(object_path("a b", "c?d"), "a%20b/c%3Fd");
    }
}
