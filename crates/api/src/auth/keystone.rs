//! `auth_strategy = keystone`: keystonemiddleware's `auth_token`, for
//! Keystone v3 over HTTP or HTTPS (`cafile`, `certfile`/`keyfile`,
//! `insecure`).
//!
//! The service user's own token is obtained with `POST /v3/auth/tokens`
//! (password method, project scoped) and renewed before it expires or when
//! Keystone refuses it. A request's `X-Auth-Token` is validated with `GET
//! /v3/auth/tokens` (`X-Subject-Token`), without the catalog unless
//! [`KeystoneAuthenticator::with_catalog`] asks for it (the services Cinder
//! keeps then travel in the request context); validations are cached until the
//! token expires or for `token_cache_time`, whichever is sooner, in a
//! bounded LRU. An `X-Service-Token` is validated the same way and must
//! carry one of `service_token_roles` (when `service_token_roles_required`);
//! a valid one lets an expired user token through (`allow_expired`), as
//! keystonemiddleware does for services acting on a user's behalf.
//!
//! Failures: no token, an invalid or expired token, or an invalid service
//! token → 401 (the pipeline adds `WWW-Authenticate: Keystone uri="…"`);
//! Keystone unreachable or answering nonsense → 503.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use clinker_config::{KeystoneAuthtokenOptions, SessionTlsOptions};
use clinker_types::catalog::{CatalogService, kept_services};
use clinker_types::{Clock, ErrorKind, Timestamp};
use serde::Deserialize;
use serde_json::json;

use super::AuthSetupError;
use super::cache::ExpiringLru;
use crate::context::{Authenticator, Identity};
use crate::fault::ApiError;

/// keystonemiddleware's text for a missing, invalid or expired token.
pub const UNAUTHORIZED: &str = "The request you have made requires authentication.";
/// keystonemiddleware's text when Keystone cannot be asked.
pub const KEYSTONE_UNAVAILABLE: &str = "The Keystone service is temporarily unavailable.";

/// Validations kept at most (each a few hundred bytes).
const CACHE_ENTRIES: usize = 10_000;
/// The service token is renewed this long before it expires.
const RENEW_MARGIN_MICROS: i64 = 60 * 1_000_000;

fn unauthorized() -> ApiError {
    ApiError::new(ErrorKind::Unauthorized, UNAUTHORIZED)
}

fn unavailable(detail: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %detail, "cannot validate a token with keystone");
    ApiError::new(ErrorKind::Unavailable, KEYSTONE_UNAVAILABLE)
}

/// What a valid token says about its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// `token.user.id`.
    pub user_id: String,
    /// `token.project.id` (absent for unscoped and system tokens).
    pub project_id: Option<String>,
    /// `token.project.domain.id`.
    pub project_domain_id: Option<String>,
    /// `token.roles[].name`.
    pub roles: Vec<String>,
    /// `token.expires_at`.
    pub expires_at: Timestamp,
    /// `token.catalog`, the services Cinder keeps (empty unless the
    /// authenticator asks for catalogs).
    pub catalog: Vec<CatalogService>,
}

#[derive(Deserialize)]
struct TokenBody {
    token: TokenData,
}

#[derive(Deserialize)]
struct TokenData {
    expires_at: String,
    user: Option<Named>,
    project: Option<Project>,
    #[serde(default)]
    roles: Vec<Named>,
    #[serde(default)]
    catalog: Vec<CatalogService>,
}

#[derive(Deserialize)]
struct Named {
    id: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct Project {
    id: String,
    domain: Option<Named>,
}

#[derive(Clone, Debug)]
struct ServiceToken {
    token: String,
    expires_at: Timestamp,
}

/// Validates tokens against Keystone v3.
#[derive(Debug)]
pub struct KeystoneAuthenticator {
    options: KeystoneAuthtokenOptions,
    identity_url: String,
    tokens_url: String,
    www_authenticate: String,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    service_token: tokio::sync::Mutex<Option<ServiceToken>>,
    cache: Mutex<ExpiringLru<String, TokenInfo>>,
    /// Whether validations ask for the token's catalog (Clinker then finds
    /// Glance there when `glance_api_servers` is unset).
    with_catalog: bool,
    /// The client that rescopes a caller's token and calls Nova (`[nova]`
    /// TLS options; the system's roots until [`Self::with_compute_tls`]).
    compute_http: reqwest::Client,
}

impl KeystoneAuthenticator {
    /// An authenticator for `options`, telling time by `clock`.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(
        options: KeystoneAuthtokenOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AuthSetupError> {
        let base = options.auth_url.trim_end_matches('/');
        let identity = if base.ends_with("/v3") {
            base.to_owned()
        } else {
            format!("{base}/v3")
        };
        let timeout = Duration::from_secs(options.http_connect_timeout);
        let builder = clinker_runtime::http::client_builder()
            .timeout(timeout)
            .connect_timeout(timeout);
        // `[keystone_authtoken] cafile`, `certfile`/`keyfile`, `insecure`,
        // read now so a bad file stops start-up naming it.
        let builder = super::session_tls(builder, &options.tls, "keystone_authtoken")?;
        let http = builder
            .build()
            .map_err(|e| AuthSetupError(format!("cannot build the keystone http client: {e}")))?;
        let www = options
            .www_authenticate_uri
            .clone()
            .unwrap_or_else(|| options.auth_url.clone());
        Ok(Self {
            tokens_url: format!("{identity}/auth/tokens"),
            identity_url: identity,
            www_authenticate: format!("Keystone uri=\"{www}\""),
            options,
            http,
            clock,
            service_token: tokio::sync::Mutex::new(None),
            cache: Mutex::new(ExpiringLru::new(CACHE_ENTRIES)),
            with_catalog: false,
            compute_http: crate::services::compute::client(&SessionTlsOptions::default())?,
        })
    }

    /// Calls made on a caller's behalf (the token rescoped at Keystone,
    /// then Nova) use `[nova]`'s TLS options, as Cinder's `novaclient`
    /// session does.
    ///
    /// # Errors
    /// A `[nova]` certificate file cannot be read.
    pub fn with_compute_tls(mut self, tls: &SessionTlsOptions) -> Result<Self, AuthSetupError> {
        self.compute_http = crate::services::compute::client(tls)?;
        Ok(self)
    }

    /// Validations also fetch the token's catalog (keystonemiddleware's
    /// `include_service_catalog`): Clinker needs it to find Glance when
    /// `glance_api_servers` is unset.
    #[must_use]
    pub fn with_catalog(mut self, with_catalog: bool) -> Self {
        self.with_catalog = with_catalog;
        self
    }

    /// The service user's token, obtained or renewed when `renew` is set,
    /// when there is none, or when it is about to expire.
    async fn service_token(&self, renew: bool) -> Result<String, ApiError> {
        // One renewal at a time: concurrent requests wait for it instead
        // of each authenticating.
        let mut slot = self.service_token.lock().await;
        let now = self.clock.now();
        if !renew
            && let Some(current) = slot.as_ref()
            && current.expires_at.as_micros() - now.as_micros() > RENEW_MARGIN_MICROS
        {
            return Ok(current.token.clone());
        }
        let o = &self.options;
        let domain = |name: &Option<String>, id: &Option<String>| match id {
            Some(id) => json!({ "id": id }),
            None => json!({ "name": name }),
        };
        let body = json!({"auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {
                    "name": o.username,
                    "domain": domain(&o.user_domain_name, &o.user_domain_id),
                    "password": o.password,
                }},
            },
            "scope": {"project": {
                "name": o.project_name,
                "domain": domain(&o.project_domain_name, &o.project_domain_id),
            }},
        }});
        let response = self
            .http
            .post(&self.tokens_url)
            .json(&body)
            .send()
            .await
            .map_err(|e| unavailable(clinker_runtime::http::describe(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(unavailable(format!(
                "keystone refused the service user {} ({status})",
                o.username
            )));
        }
        let token = response
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| unavailable("keystone sent no X-Subject-Token for the service user"))?;
        let parsed: TokenBody = response.json().await.map_err(unavailable)?;
        let expires_at = Timestamp::parse_iso8601(&parsed.token.expires_at)
            .ok_or_else(|| unavailable("the service token has no readable expires_at"))?;
        *slot = Some(ServiceToken {
            token: token.clone(),
            expires_at,
        });
        Ok(token)
    }

    /// Validates `token`: `Ok(None)` when Keystone says it is not valid (or
    /// it expired and `allow_expired` is not set).
    ///
    /// # Errors
    /// 503 when Keystone cannot be asked.
    pub async fn validate(
        &self,
        token: &str,
        allow_expired: bool,
    ) -> Result<Option<TokenInfo>, ApiError> {
        let now = self.clock.now();
        let caching = self.options.token_cache_time >= 0;
        if caching
            && let Some(info) = self.cached(token, now)
            && (allow_expired || info.expires_at > now)
        {
            return Ok(Some(info));
        }
        let mut query = Vec::new();
        if !self.with_catalog {
            query.push("nocatalog");
        }
        if allow_expired {
            query.push("allow_expired=1");
        }
        let url = if query.is_empty() {
            self.tokens_url.clone()
        } else {
            format!("{}?{}", self.tokens_url, query.join("&"))
        };
        for attempt in 0..2 {
            let service_token = self.service_token(attempt > 0).await?;
            let response = self
                .http
                .get(&url)
                .header("x-auth-token", service_token)
                .header("x-subject-token", token)
                .send()
                .await
                .map_err(|e| unavailable(clinker_runtime::http::describe(&e)))?;
            match response.status().as_u16() {
                200 => {
                    let body: TokenBody = response.json().await.map_err(unavailable)?;
                    let Some(info) = token_info(body) else {
                        tracing::warn!("keystone validated a token without user or expiry");
                        return Ok(None);
                    };
                    if info.expires_at <= now && !allow_expired {
                        return Ok(None);
                    }
                    if caching && info.expires_at > now {
                        let for_micros = self.options.token_cache_time.saturating_mul(1_000_000);
                        let until = info.expires_at.min(now.plus_micros(for_micros));
                        if let Ok(mut cache) = self.cache.lock() {
                            cache.insert(token.to_owned(), info.clone(), until);
                        }
                    }
                    return Ok(Some(info));
                }
                404 => return Ok(None),
                // Our own token was refused (expired, revoked): get a new
                // one and ask once more.
                401 if attempt == 0 => {
                    tracing::info!("keystone refused the service token; renewing it");
                    continue;
                }
                other => {
                    return Err(unavailable(format!(
                        "keystone answered {other} to a token validation"
                    )));
                }
            }
        }
        Err(unavailable(
            "keystone rejected the service user's renewed token",
        ))
    }

    fn cached(&self, token: &str, now: Timestamp) -> Option<TokenInfo> {
        self.cache.lock().ok()?.get(&token.to_owned(), now)
    }
}

fn token_info(body: TokenBody) -> Option<TokenInfo> {
    let token = body.token;
    let user_id = token.user?.id?;
    let expires_at = Timestamp::parse_iso8601(&token.expires_at)?;
    let (project_id, project_domain_id) = match token.project {
        Some(p) => (Some(p.id), p.domain.and_then(|d| d.id)),
        None => (None, None),
    };
    Some(TokenInfo {
        user_id,
        project_id,
        project_domain_id,
        roles: token.roles.into_iter().filter_map(|r| r.name).collect(),
        expires_at,
        catalog: kept_services(token.catalog),
    })
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

#[async_trait::async_trait]
impl Authenticator for KeystoneAuthenticator {
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, ApiError> {
        let user_token = header(headers, "x-auth-token")
            .or_else(|| header(headers, "x-storage-token"))
            .ok_or_else(unauthorized)?;
        let mut allow_expired = false;
        let mut service_roles = Vec::new();
        let mut is_service = false;
        if let Some(service_token) = header(headers, "x-service-token") {
            let Some(service) = self.validate(service_token, false).await? else {
                tracing::info!("invalid service token");
                return Err(unauthorized());
            };
            let has_service_role = service.roles.iter().any(|r| {
                self.options
                    .service_token_roles
                    .iter()
                    .any(|wanted| wanted.eq_ignore_ascii_case(r))
            });
            if self.options.service_token_roles_required && !has_service_role {
                tracing::info!("a service token without a service role was refused");
                return Err(unauthorized());
            }
            allow_expired = has_service_role;
            is_service = has_service_role;
            service_roles = service.roles;
        }
        let user = self
            .validate(user_token, allow_expired)
            .await?
            .ok_or_else(unauthorized)?;
        Ok(Identity {
            user_id: user.user_id,
            project_id: user.project_id.unwrap_or_default(),
            // The policy's context_is_admin rule (role:admin) decides.
            is_admin: false,
            roles: user.roles,
            project_domain_id: user.project_domain_id,
            service_roles,
            is_service,
            service_catalog: user.catalog,
        })
    }

    fn www_authenticate(&self) -> Option<String> {
        Some(self.www_authenticate.clone())
    }

    fn compute_session(&self) -> Option<(String, reqwest::Client)> {
        Some((self.identity_url.clone(), self.compute_http.clone()))
    }
}
