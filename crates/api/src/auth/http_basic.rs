//! `auth_strategy = http_basic`: HTTP basic authentication against an
//! Apache htpasswd file of bcrypt hashes (`[DEFAULT]
//! http_basic_auth_user_file`), as oslo.middleware's `BasicAuthMiddleware`
//! does for the OpenStack services that offer it (Cinder itself has no such
//! strategy; this mirrors oslo.middleware and oslo.context).
//!
//! oslo.middleware only establishes the user name (`X-User`,
//! `X-User-Name`); oslo.context then reads the project from the client's
//! `X-Project-Id` (or `X-Tenant-Id`) header and the roles from `X-Roles`,
//! which the client controls. Since any authenticated client could claim
//! any role that way, Clinker states the consequence plainly instead:
//! every user of the htpasswd file is an administrator (like noauth, with a
//! password), acting in the project of `X-Project-Id` — or, without one, in
//! the project named like the user (noauth's fallback).
//!
//! bcrypt is slow by design, so verification runs on the blocking pool and
//! a successful verification is remembered for a minute (keyed by the user,
//! two independent keyed hashes of the password and the stored hash, never
//! the password itself). The file is re-read when its modification time
//! changes, so users can be added without a restart.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use axum::http::HeaderMap;
use base64::Engine;
use clinker_types::{Clock, ErrorKind};

use super::AuthSetupError;
use super::cache::ExpiringLru;
use crate::context::{Authenticator, Identity};
use crate::fault::ApiError;

/// How long a successful verification is reused.
const VERIFIED_FOR_MICROS: i64 = 60 * 1_000_000;
/// Verifications remembered at most.
const VERIFIED_ENTRIES: usize = 1_024;

fn unauthorized() -> ApiError {
    ApiError::new(
        ErrorKind::Unauthorized,
        "The request you have made requires authentication.",
    )
}

/// The users of an htpasswd file: name → bcrypt hash.
///
/// # Errors
/// A user whose hash is not bcrypt (oslo.middleware refuses those too).
fn parse_htpasswd(text: &str) -> Result<HashMap<String, String>, String> {
    let mut users = HashMap::new();
    for line in text.lines() {
        let entry = line.trim();
        let Some((user, hash)) = entry.split_once(':') else {
            continue;
        };
        if !["$2y$", "$2a$", "$2b$"].iter().any(|p| hash.starts_with(p)) {
            return Err(format!(
                "Only bcrypt digested passwords are supported for {user}"
            ));
        }
        users.insert(user.to_owned(), hash.to_owned());
    }
    Ok(users)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[derive(Debug)]
struct Users {
    modified: Option<SystemTime>,
    hashes: HashMap<String, String>,
}

/// Basic authentication against an htpasswd file.
#[derive(Debug)]
pub struct HttpBasicAuthenticator {
    path: PathBuf,
    users: RwLock<Users>,
    verified: Mutex<ExpiringLru<(String, u64, u64), ()>>,
    hashers: (RandomState, RandomState),
    clock: Arc<dyn Clock>,
}

impl HttpBasicAuthenticator {
    /// Reads and checks the htpasswd file at `path`.
    ///
    /// # Errors
    /// The file cannot be read or holds a non-bcrypt hash.
    pub fn new(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, AuthSetupError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            AuthSetupError(format!(
                "cannot read http_basic_auth_user_file {}: {e}",
                path.display()
            ))
        })?;
        let hashes = parse_htpasswd(&text).map_err(|e| {
            AuthSetupError(format!("http_basic_auth_user_file {}: {e}", path.display()))
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            users: RwLock::new(Users {
                modified: modified(path),
                hashes,
            }),
            verified: Mutex::new(ExpiringLru::new(VERIFIED_ENTRIES)),
            hashers: (RandomState::new(), RandomState::new()),
            clock,
        })
    }

    /// The stored hash of `user`, re-reading the file if it changed.
    async fn hash_of(&self, user: &str) -> Option<String> {
        let path = self.path.clone();
        let now_modified = tokio::task::spawn_blocking(move || modified(&path))
            .await
            .ok()
            .flatten();
        let stale = self
            .users
            .read()
            .map(|u| u.modified != now_modified)
            .unwrap_or(false);
        if stale {
            match tokio::fs::read_to_string(&self.path).await {
                Ok(text) => match parse_htpasswd(&text) {
                    Ok(hashes) => {
                        if let Ok(mut users) = self.users.write() {
                            *users = Users {
                                modified: now_modified,
                                hashes,
                            };
                        }
                    }
                    Err(e) => {
                        tracing::error!(path = %self.path.display(), error = %e, "htpasswd file not reloaded");
                    }
                },
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e, "cannot re-read the htpasswd file");
                }
            }
        }
        self.users.read().ok()?.hashes.get(user).cloned()
    }
}

/// oslo.middleware's parsing of `Authorization: Basic …`: the user name
/// and password, 401 without the header, 400 when it is malformed.
fn credentials(headers: &HeaderMap) -> Result<(String, Vec<u8>), ApiError> {
    let Some(value) = headers.get("authorization") else {
        return Err(unauthorized());
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::bad_request("Could not parse Authorization header"))?;
    let mut parts = value.split_whitespace();
    let (Some(kind), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ApiError::bad_request(
            "Could not parse Authorization header",
        ));
    };
    if !kind.eq_ignore_ascii_case("basic") {
        return Err(ApiError::bad_request(format!(
            "Unsupported authorization type \"{kind}\""
        )));
    }
    let undecodable = || ApiError::bad_request("Could not decode authorization token");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| undecodable())?;
    let colon = decoded
        .iter()
        .position(|b| *b == b':')
        .ok_or_else(undecodable)?;
    let user = String::from_utf8(decoded[..colon].to_vec()).map_err(|_| undecodable())?;
    Ok((user, decoded[colon + 1..].to_vec()))
}

#[async_trait::async_trait]
impl Authenticator for HttpBasicAuthenticator {
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, ApiError> {
        let (user, password) = credentials(headers)?;
        let Some(hash) = self.hash_of(&user).await else {
            tracing::info!(user = %user, "http basic user not found");
            return Err(unauthorized());
        };
        let fingerprint = |hasher: &RandomState| hasher.hash_one((&password, &hash));
        let key = (
            user.clone(),
            fingerprint(&self.hashers.0),
            fingerprint(&self.hashers.1),
        );
        let now = self.clock.now();
        let remembered = self
            .verified
            .lock()
            .ok()
            .and_then(|mut cache| cache.get(&key, now))
            .is_some();
        if !remembered {
            let checked = hash.clone();
            let matches = tokio::task::spawn_blocking(move || bcrypt::verify(password, &checked))
                .await
                .map_err(|e| ApiError::internal(format!("bcrypt task failed: {e}")))?
                .unwrap_or(false);
            if !matches {
                tracing::info!(user = %user, "http basic password does not match");
                return Err(unauthorized());
            }
            if let Ok(mut cache) = self.verified.lock() {
                cache.insert(key, (), now.plus_micros(VERIFIED_FOR_MICROS));
            }
        }
        let project = ["x-project-id", "x-tenant-id"]
            .iter()
            .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map_or_else(|| user.clone(), str::to_owned);
        Ok(Identity {
            user_id: user,
            project_id: project,
            is_admin: true,
            roles: vec!["admin".to_owned()],
            ..Identity::default()
        })
    }

    fn www_authenticate(&self) -> Option<String> {
        Some("Basic realm=\"clinker\"".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htpasswd_must_be_bcrypt() {
        let users = parse_htpasswd("alice:$2y$05$abc\n\n# comment\nbob:$2b$05$def\n").unwrap();
        assert_eq!(users.len(), 2);
        let err = parse_htpasswd("carol:{SHA}abc\n").unwrap_err();
        assert_eq!(
            err,
            "Only bcrypt digested passwords are supported for carol"
        );
    }

    #[test]
    fn authorization_header_is_parsed_like_oslo() {
        let mut headers = HeaderMap::new();
        assert_eq!(credentials(&headers).unwrap_err().status_and_fault().0, 401);
        headers.insert("authorization", "Basic YWxpY2U6czNjcjN0".parse().unwrap());
        assert_eq!(
            credentials(&headers).unwrap(),
            ("alice".to_owned(), b"s3cr3t".to_vec())
        );
        for (value, message) in [
            ("Bearer abc", "Unsupported authorization type \"Bearer\""),
            ("Basic", "Could not parse Authorization header"),
            ("Basic !!!", "Could not decode authorization token"),
            ("Basic YWxpY2U=", "Could not decode authorization token"),
        ] {
            headers.insert("authorization", value.parse().unwrap());
            let err = credentials(&headers).unwrap_err();
            assert_eq!(err.user_message(), message, "{value}");
        }
    }
}
