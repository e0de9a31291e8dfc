//! The request pipeline every API request passes before its handler:
//! request ids, authentication, microversion negotiation, the body limit,
//! Content-Type and JSON decoding, and the project-id-in-URL check — and
//! the headers every response gets on the way out.
//!
//! This is Cinder's paste pipeline (`request_id`, `sizelimit`, `noauth` or
//! `authtoken` + `keystonecontext`, and `wsgi.Resource`'s own checks) in one
//! middleware. Authentication sits behind the [`Authenticator`] seam
//! ([`NoAuth`], and Keystone and http basic in [`crate::auth`]); each
//! request then runs with the router's [`Policy`] in scope.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use clinker_config::{AuthStrategy, Config};
use clinker_rpc::RequestContext;
use serde_json::Value;

use crate::fault::ApiError;
use crate::links::{Links, split_project_segment};
use crate::microversion::{self, ApiVersion};
use crate::policy::Policy;
use crate::request::{MAX_REQUEST_BODY_SIZE, Req};
use crate::services::compute::ComputeAuth;

/// The response header carrying the request id (oslo's `RequestId`).
pub const REQUEST_ID_HEADER: &str = "x-openstack-request-id";
/// The legacy copy of the request id Cinder still sets.
pub const COMPUTE_REQUEST_ID_HEADER: &str = "x-compute-request-id";

/// Who the caller is, as an [`Authenticator`] established it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub user_id: String,
    /// Project id.
    pub project_id: String,
    /// Whether the caller is an administrator regardless of policy (noauth
    /// and http basic make every caller one, as Cinder's noauth does);
    /// otherwise the policy's `context_is_admin` rule decides.
    pub is_admin: bool,
    /// Role names.
    pub roles: Vec<String>,
    /// The domain of the project (Keystone).
    pub project_domain_id: Option<String>,
    /// Roles of a valid `X-Service-Token`.
    pub service_roles: Vec<String>,
    /// Whether the service token carries one of `service_token_roles`.
    pub is_service: bool,
    /// The services of the token's catalog Cinder keeps (Keystone, when
    /// the authenticator asks for the catalog).
    pub service_catalog: Vec<clinker_types::catalog::CatalogService>,
}

/// Establishes the caller of a request from its headers.
#[async_trait::async_trait]
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// The caller.
    ///
    /// # Errors
    /// 401 when the credentials are missing or invalid, 503 when the
    /// identity service cannot be asked.
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, ApiError>;

    /// The `WWW-Authenticate` value every 401 of the v3 API carries
    /// (keystonemiddleware adds `Keystone uri="…"`), if any.
    fn www_authenticate(&self) -> Option<String> {
        None
    }

    /// The Keystone v3 URL at which the caller's `X-Auth-Token` can be
    /// exchanged for a token with a catalog, to call other services (Nova)
    /// on the caller's behalf as Cinder does, and the HTTP client to do it
    /// with; `None` when tokens are not Keystone's.
    fn compute_session(&self) -> Option<(String, reqwest::Client)> {
        None
    }
}

/// Cinder's `noauth`: `X-Auth-Token: user:project` (no colon: both are the
/// token); without a token the caller is `admin` in project `admin`. Every
/// caller is an administrator.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoAuth;

impl NoAuth {
    /// The identity a noauth token stands for (synchronous; test
    /// authenticators build on it).
    pub fn identity(headers: &HeaderMap) -> Identity {
        let token = headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let (user_id, project_id) = match token {
            None => ("admin".to_owned(), "admin".to_owned()),
            Some(token) => match token.split_once(':') {
                Some((user, project)) if !project.is_empty() => {
                    (user.to_owned(), project.to_owned())
                }
                Some((user, _)) => (user.to_owned(), user.to_owned()),
                None => (token.to_owned(), token.to_owned()),
            },
        };
        Identity {
            user_id,
            project_id,
            is_admin: true,
            roles: vec!["admin".to_owned()],
            ..Identity::default()
        }
    }
}

#[async_trait::async_trait]
impl Authenticator for NoAuth {
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, ApiError> {
        Ok(Self::identity(headers))
    }
}

/// An authenticator that refuses every request with 401 (a strategy whose
/// set-up failed in a router built without the start-up checks), so nothing
/// is served unauthenticated by mistake.
#[derive(Clone, Debug)]
pub struct Unsupported {
    reason: String,
}

#[async_trait::async_trait]
impl Authenticator for Unsupported {
    async fn authenticate(&self, _headers: &HeaderMap) -> Result<Identity, ApiError> {
        Err(ApiError::new(
            clinker_types::ErrorKind::Unauthorized,
            self.reason.clone(),
        ))
    }
}

/// The authenticator `[DEFAULT] auth_strategy` asks for; when it cannot be
/// set up (see [`crate::auth::authenticator_from_config`], which start-up
/// uses to refuse such a configuration) every request is refused.
pub fn authenticator_for(config: &Config) -> Arc<dyn Authenticator> {
    match config.default.auth_strategy {
        AuthStrategy::Noauth | AuthStrategy::NoauthIncludeProjectId => Arc::new(NoAuth),
        _ => match crate::auth::authenticator_from_config(config) {
            Ok(authenticator) => authenticator,
            Err(err) => {
                tracing::error!(error = %err, "cannot set up authentication; refusing every request");
                Arc::new(Unsupported {
                    reason: format!(
                        "auth_strategy {} is not usable: {err}",
                        config.default.auth_strategy.as_str()
                    ),
                })
            }
        },
    }
}

/// A fresh `req-<uuid>`.
pub fn new_request_id() -> String {
    format!("req-{}", uuid::Uuid::new_v4())
}

/// oslo's check of an inbound global request id: `req-` and a UUID.
pub fn valid_global_request_id(value: &str) -> bool {
    value
        .strip_prefix("req-")
        .is_some_and(|rest| rest.len() == 36 && uuid::Uuid::parse_str(rest).is_ok())
}

/// What the pipeline needs besides the request.
#[derive(Clone, Debug)]
pub(crate) struct Pipeline {
    pub(crate) authenticator: Arc<dyn Authenticator>,
    pub(crate) policy: Arc<Policy>,
    pub(crate) public_endpoint: Option<String>,
    /// `[oslo_middleware] enable_proxy_headers_parsing`.
    pub(crate) proxy_headers: bool,
    /// The listener's own scheme (`https` with `[ssl] cert_file`), what
    /// links say unless a trusted proxy header says otherwise.
    pub(crate) scheme: &'static str,
}

fn is_v3(path: &str) -> bool {
    path == "/v3" || path.starts_with("/v3/")
}

/// The middleware: prepares the [`Req`] of a request (or answers the fault)
/// and sets the common response headers.
pub(crate) async fn pipeline(
    State(pipeline): State<Arc<Pipeline>>,
    request: Request,
    next: Next,
) -> Response {
    use tracing::Instrument;
    let request_id = new_request_id();
    // Every log line of this request's work carries its ids (oslo.log's
    // context prefix); the caller's identity is added once known.
    let global_request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_global_request_id(v))
        .map(str::to_owned);
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        global_request_id = global_request_id.as_deref(),
        user_id = tracing::field::Empty,
        project_id = tracing::field::Empty,
    );
    handle(pipeline, request, next, request_id, global_request_id)
        .instrument(span)
        .await
}

async fn handle(
    pipeline: Arc<Pipeline>,
    request: Request,
    next: Next,
    request_id: String,
    global_request_id: Option<String>,
) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let v3 = is_v3(&path);
    let mut negotiated = None;
    let prepared = prepare(
        &pipeline,
        request,
        &request_id,
        global_request_id,
        v3,
        &mut negotiated,
    )
    .await;
    let mut response = match prepared {
        Ok(request) => pipeline.policy.clone().scope(next.run(request)).await,
        Err(err) => err.into_response(),
    };
    // keystonemiddleware tells every unauthenticated client where to
    // authenticate, whichever layer answered 401.
    if v3
        && response.status() == StatusCode::UNAUTHORIZED
        && let Some(value) = pipeline.authenticator.www_authenticate()
        && let Ok(value) = HeaderValue::from_str(&value)
    {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID_HEADER, value.clone());
        headers.insert(COMPUTE_REQUEST_ID_HEADER, value);
    }
    if v3 {
        if let Some(version) = negotiated
            && let Ok(value) =
                HeaderValue::from_str(&format!("{} {version}", microversion::SERVICE))
        {
            headers.insert(microversion::HEADER, value);
        }
        headers.insert(header::VARY, HeaderValue::from_static(microversion::HEADER));
    }
    // Cinder logs every request with its outcome; so do we, inside the
    // request's span (which carries the id the client saw).
    tracing::info!(
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        "api request"
    );
    record_request_metrics(&method, &path, &response, started);
    response
}

/// The route template a v3 handler matched (`/v3/volumes/{volume_id}`),
/// left in the response by [`remember_route`] for the metrics.
#[derive(Clone, Debug)]
struct RouteTemplate(String);

/// Route layer of the v3 router: remembers which template matched.
pub(crate) async fn remember_route(
    matched: axum::extract::MatchedPath,
    request: Request,
    next: Next,
) -> Response {
    // The nested router's template already starts with `/v3`; its root
    // shows as `/v3//`.
    let template = RouteTemplate(matched.as_str().replace("//", "/"));
    let mut response = next.run(request).await;
    response.extensions_mut().insert(template);
    response
}

/// Counts the request by route template (never the path itself, which
/// holds ids), method and status, and its latency.
fn record_request_metrics(
    method: &axum::http::Method,
    path: &str,
    response: &Response,
    started: std::time::Instant,
) {
    use clinker_runtime::metrics;
    let route = match response.extensions().get::<RouteTemplate>() {
        Some(RouteTemplate(template)) => template.clone(),
        None if matches!(path, "/" | "/healthcheck" | "/v3" | "/v3/") => path.to_owned(),
        // Refused before routing (authentication, microversion, body) or
        // no such route.
        None if is_v3(path) => "/v3/*".to_owned(),
        None => "*".to_owned(),
    };
    // A client may send any method token; only the standard ones become
    // labels.
    let method: &'static str = match *method {
        axum::http::Method::GET => "GET",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    metrics::histogram!(metrics::API_REQUEST_SECONDS, "route" => route.clone(), "method" => method)
        .record(started.elapsed());
    metrics::counter!(
        metrics::API_REQUESTS,
        "route" => route,
        "method" => method,
        "status" => response.status().as_str().to_owned()
    )
    .increment(1);
}

async fn prepare(
    pipeline: &Pipeline,
    request: Request,
    request_id: &str,
    global_request_id: Option<String>,
    v3: bool,
    negotiated: &mut Option<ApiVersion>,
) -> Result<Request, ApiError> {
    let (mut parts, body) = request.into_parts();
    let too_large = || ApiError::RequestTooLarge("Request is too large.".to_owned());
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_REQUEST_BODY_SIZE as u64) {
        return Err(too_large());
    }
    let bytes = to_bytes(body, MAX_REQUEST_BODY_SIZE)
        .await
        .map_err(|_| too_large())?;

    let version = if v3 {
        let header = parts
            .headers
            .get(microversion::HEADER)
            .map(|v| v.to_str().unwrap_or("\u{fffd}"));
        let version = microversion::negotiate(header)?;
        *negotiated = Some(version);
        version
    } else {
        microversion::MIN
    };

    let identity = if v3 {
        pipeline.authenticator.authenticate(&parts.headers).await?
    } else {
        Identity::default()
    };

    let body = decode_body(&parts.headers, &bytes)?;

    let path = parts.uri.path().to_owned();
    let project_in_url = path
        .strip_prefix("/v3")
        .and_then(split_project_segment)
        .map(|(project, _)| project.to_owned());
    if let Some(project) = &project_in_url
        && *project != identity.project_id
    {
        return Err(ApiError::bad_request("Malformed request url"));
    }

    let query = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|Query(q)| q)
        .map_err(|_| ApiError::bad_request("Malformed request url"))?;
    crate::validation::refuse_nul_characters(body.as_ref(), &query)?;

    let base = match &pipeline.public_endpoint {
        Some(endpoint) => endpoint.clone(),
        None => request_base(
            &parts.headers,
            parts.uri.authority().map(|a| a.as_str()),
            pipeline.proxy_headers,
            pipeline.scheme,
        ),
    };
    if v3 {
        let span = tracing::Span::current();
        span.record("user_id", identity.user_id.as_str());
        span.record("project_id", identity.project_id.as_str());
    }
    let mut context = RequestContext {
        request_id: request_id.to_owned(),
        global_request_id,
        user_id: identity.user_id,
        project_id: identity.project_id,
        is_admin: identity.is_admin,
        roles: identity.roles,
        project_domain_id: identity.project_domain_id,
        service_roles: identity.service_roles,
        is_service: identity.is_service,
        auth_token: None,
        service_catalog: identity.service_catalog,
    };
    // Cinder's RequestContext: is_admin comes from the `context_is_admin`
    // rule unless the auth middleware forced it (noauth).
    if v3 && !context.is_admin {
        context.is_admin = pipeline.policy.is_admin(&context);
    }
    let compute = pipeline
        .authenticator
        .compute_session()
        .and_then(|(identity_url, http)| {
            let user_token = parts
                .headers
                .get("x-auth-token")
                .or_else(|| parts.headers.get("x-storage-token"))
                .and_then(|v| v.to_str().ok())?
                .trim()
                .to_owned();
            Some(ComputeAuth {
                identity_url,
                http,
                user_token,
            })
        });
    // The user's token travels with the request to the services that act
    // for the user (Glance), as in Cinder's context.
    context.auth_token = compute
        .as_ref()
        .map(|c| clinker_rpc::AuthToken(c.user_token.clone()));
    let req = Req {
        context,
        compute,
        version,
        links: Links::new(&base, project_in_url),
        query,
        body,
    };
    parts.extensions.insert(req);
    Ok(Request::from_parts(parts, Body::empty()))
}

/// `scheme://host` of the request as the client addressed it. Proxy
/// headers count only when the operator says a proxy sets them
/// (oslo.middleware's `HTTPProxyToWSGI`): the RFC 7239 `Forwarded` header's
/// first element, else `X-Forwarded-Proto` and `X-Forwarded-Host` (its last
/// element, as Cinder's `get_request_url`). Otherwise a client could make
/// every link in a response point at a host of its choosing. Without
/// proxy headers the host is the `Host` header, or the request target's
/// authority (`authority`): HTTP/2 carries the host there, not in `Host`.
fn request_base(
    headers: &HeaderMap,
    authority: Option<&str>,
    proxy_headers: bool,
    own_scheme: &str,
) -> String {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut scheme = None;
    let mut host = None;
    if proxy_headers {
        if let Some(forwarded) = header("forwarded") {
            let first = forwarded.split(',').next().unwrap_or_default();
            for pair in first.split(';') {
                let Some((key, value)) = pair.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    "proto" if !value.is_empty() => scheme = Some(value.to_owned()),
                    "host" if !value.is_empty() => host = Some(value.to_owned()),
                    _ => {}
                }
            }
        } else {
            scheme = header("x-forwarded-proto")
                .and_then(|v| v.split(',').map(str::trim).find(|s| !s.is_empty()))
                .map(str::to_owned);
            host = header("x-forwarded-host")
                .and_then(|v| v.split(',').map(str::trim).rfind(|s| !s.is_empty()))
                .map(str::to_owned);
        }
    }
    let scheme = scheme
        .filter(|s| matches!(s.as_str(), "http" | "https"))
        .unwrap_or_else(|| own_scheme.to_owned());
    let host = host
        .or_else(|| header(header::HOST.as_str()).map(str::to_owned))
        .or_else(|| authority.map(str::to_owned))
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{scheme}://{host}")
}

/// Cinder's `Request.get_content_type` and JSON deserializer: an empty body,
/// or one without a Content-Type, is no body; a body must be JSON
/// (`application/json` or Cinder's vendor type).
fn decode_body(headers: &HeaderMap, bytes: &[u8]) -> Result<Option<Value>, ApiError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return Ok(None);
    };
    let media = content_type
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media != "application/json" && media != "application/vnd.openstack.volume+json" {
        return Err(ApiError::UnsupportedMediaType(
            "Unsupported Content-Type".to_owned(),
        ));
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|_| ApiError::bad_request("Malformed request body"))
}

/// Drops a `/{project_id}` segment from the path seen by the v3 routes, so
/// every resource is routed once (Cinder's `ProjectMapper` registers both
/// forms).
pub(crate) fn strip_project_segment(mut request: Request) -> Request {
    let path = request.uri().path().to_owned();
    if let Some((_, rest)) = split_project_segment(&path) {
        let path_and_query = match request.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_owned(),
        };
        let mut parts = request.uri().clone().into_parts();
        if let Ok(pq) = path_and_query.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(token: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(t) = token {
            h.insert("x-auth-token", HeaderValue::from_str(t).unwrap());
        }
        h
    }

    #[test]
    fn noauth_reads_user_and_project() {
        let id = NoAuth::identity(&headers(Some("alice:p1")));
        assert_eq!(
            (id.user_id.as_str(), id.project_id.as_str()),
            ("alice", "p1")
        );
        assert!(id.is_admin);
        let id = NoAuth::identity(&headers(Some("solo")));
        assert_eq!(
            (id.user_id.as_str(), id.project_id.as_str()),
            ("solo", "solo")
        );
        let id = NoAuth::identity(&headers(None));
        assert_eq!(
            (id.user_id.as_str(), id.project_id.as_str()),
            ("admin", "admin")
        );
    }

    #[test]
    fn global_request_ids_are_checked() {
        assert!(valid_global_request_id(
            "req-4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1"
        ));
        assert!(!valid_global_request_id("req-nope"));
        assert!(!valid_global_request_id(
            "4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1"
        ));
    }
}
