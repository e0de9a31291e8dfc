//! A Glance v2 client with Cinder's behaviour (`cinder/image/glance.py`):
//! the servers of `glance_api_servers` tried in turn (or the endpoint from
//! the caller's Keystone catalog), `glance_num_retries` extra attempts on
//! connection failures and 5xx answers of idempotent requests, the caller's
//! token forwarded, and Glance's answers classified into [`ImageError`]
//! with Cinder's texts.
//!
//! Image data is streamed both ways: [`GlanceClient::download`] yields
//! chunks while checking `os_hash_value` / `checksum`, and
//! [`GlanceClient::upload`] sends a file or reader as the body. Requests
//! never carry `Expect: 100-continue` (uWSGI-hosted Glance stalls on it;
//! reqwest never sends it).

mod data;
mod image;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clinker_config::{GlanceCatalogInfo, ImageOptions};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};

pub use data::{ImageData, UploadData};
pub use image::{BASE_PROPERTIES, ImageLocation, ImageMeta, PatchOp};

use crate::error::ImageError;

pub use clinker_types::catalog::{CatalogEndpoint, CatalogService};

/// Who a request to Glance is made for: the caller's credentials and, for
/// deployments without `glance_api_servers`, the caller's service catalog.
/// The API holds these; the volume service receives them with the request.
#[derive(Clone, Debug, Default)]
pub struct ImageContext {
    /// The user's token (`X-Auth-Token`); `None` for a noauth Glance.
    pub auth_token: Option<String>,
    /// A service token (`X-Service-Token`, `[service_user]
    /// send_service_user_token`).
    pub service_token: Option<String>,
    /// The global request id (`X-OpenStack-Request-ID`).
    pub request_id: Option<String>,
    /// The caller's service catalog.
    pub service_catalog: Vec<CatalogService>,
}

/// TLS settings for an https Glance (`glance_api_insecure`,
/// `glance_ca_certificates_file`). This build has no TLS backend in reqwest
/// yet: they are kept so the one place that builds the HTTP client can
/// apply them when TLS lands, and an https endpoint is refused clearly
/// meanwhile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// Skip certificate verification.
    pub insecure: bool,
    /// The CA bundle to trust.
    pub ca_file: Option<std::path::PathBuf>,
}

/// How the client reaches Glance.
#[derive(Clone, Debug)]
pub struct GlanceSettings {
    /// `glance_api_servers` with schemes; `None`: from the catalog.
    pub servers: Option<Vec<String>>,
    /// `glance_catalog_info`.
    pub catalog_info: GlanceCatalogInfo,
    /// `[glance] region_name`.
    pub region_name: Option<String>,
    /// `glance_num_retries`.
    pub num_retries: u32,
    /// `glance_request_timeout`: limit on connecting and on each read.
    pub request_timeout: Option<Duration>,
    /// Pause between attempts (Cinder sleeps 1 s).
    pub retry_delay: Duration,
    /// TLS.
    pub tls: TlsSettings,
}

impl GlanceSettings {
    /// `servers` with Cinder's defaults for everything else (catalog info
    /// `image:glance:publicURL`, 3 retries 1 s apart, no timeout, no TLS).
    pub fn with_servers(servers: Vec<String>) -> Self {
        Self {
            servers: Some(servers),
            catalog_info: GlanceCatalogInfo {
                service_type: "image".into(),
                service_name: "glance".into(),
                endpoint_type: "publicURL".into(),
            },
            region_name: None,
            num_retries: 3,
            request_timeout: None,
            retry_delay: Duration::from_secs(1),
            tls: TlsSettings::default(),
        }
    }

    /// The settings `cinder.conf` asks for.
    pub fn from_options(options: &ImageOptions) -> Self {
        Self {
            servers: options.glance_api_servers.clone(),
            catalog_info: options.glance_catalog_info.clone(),
            region_name: options.glance_region_name.clone(),
            num_retries: options.glance_num_retries,
            request_timeout: options.glance_request_timeout.map(Duration::from_secs),
            retry_delay: Duration::from_secs(1),
            tls: TlsSettings {
                insecure: options.glance_api_insecure,
                ca_file: options.glance_ca_certificates_file.clone(),
            },
        }
    }
}

/// The Glance v2 client. Cheap to share (`Arc`), one per volume service.
#[derive(Debug)]
pub struct GlanceClient {
    http: reqwest::Client,
    settings: GlanceSettings,
    /// Where the next request starts in the server list: successive
    /// requests spread over the servers (Cinder shuffles and cycles).
    next: AtomicUsize,
}

/// Keystone v2's endpoint type names in `glance_catalog_info` to v3
/// interfaces.
fn interface_of(endpoint_type: &str) -> &str {
    match endpoint_type {
        "publicURL" => "public",
        "internalURL" => "internal",
        "adminURL" => "admin",
        other => other,
    }
}

/// Whether an HTTP answer or failure is worth another attempt.
enum Outcome {
    Done(reqwest::Response),
    Retry(String),
}

impl GlanceClient {
    /// Builds the client.
    ///
    /// # Errors
    /// [`ImageError::Config`] when an https server is configured (no TLS in
    /// this build) or the HTTP client cannot be built.
    pub fn new(settings: GlanceSettings) -> Result<Self, ImageError> {
        if let Some(https) = settings
            .servers
            .iter()
            .flatten()
            .find(|s| s.starts_with("https://"))
        {
            return Err(Self::no_tls(https));
        }
        let mut builder =
            clinker_runtime::http::client_builder().pool_idle_timeout(Duration::from_secs(30));
        if let Some(limit) = settings.request_timeout {
            // glanceclient's timeout is a socket timeout, not a deadline
            // for a multi-GiB download.
            builder = builder.connect_timeout(limit).read_timeout(limit);
        }
        let http = builder
            .build()
            .map_err(|e| ImageError::Config(format!("cannot build the Glance client: {e}")))?;
        Ok(Self {
            http,
            settings,
            next: AtomicUsize::new(0),
        })
    }

    fn no_tls(url: &str) -> ImageError {
        ImageError::Config(format!(
            "Glance endpoint {url} needs TLS, which this build of Clinker does not have yet; \
             reach Glance over http or through a local TLS-terminating proxy"
        ))
    }

    /// The settings in use.
    pub fn settings(&self) -> &GlanceSettings {
        &self.settings
    }

    /// The Glance base URLs for a request, in the order to try them.
    ///
    /// # Errors
    /// [`ImageError::Config`] when no server is configured and the catalog
    /// has no matching endpoint.
    pub fn endpoints(&self, ctx: &ImageContext) -> Result<Vec<String>, ImageError> {
        let mut servers = match &self.settings.servers {
            Some(servers) => servers.clone(),
            None => vec![self.catalog_endpoint(ctx)?],
        };
        let start = self.next.fetch_add(1, Ordering::Relaxed) % servers.len().max(1);
        servers.rotate_left(start);
        Ok(servers
            .into_iter()
            .map(|s| s.trim_end_matches('/').to_owned())
            .collect())
    }

    fn catalog_endpoint(&self, ctx: &ImageContext) -> Result<String, ImageError> {
        let info = &self.settings.catalog_info;
        let interface = interface_of(&info.endpoint_type);
        let url = ctx
            .service_catalog
            .iter()
            .find(|s| s.service_type == info.service_type)
            .and_then(|service| {
                service.endpoints.iter().find(|e| {
                    e.interface == interface
                        && self
                            .settings
                            .region_name
                            .as_ref()
                            .is_none_or(|r| e.region.as_ref() == Some(r))
                })
            })
            .map(|e| e.url.clone())
            .ok_or_else(|| {
                ImageError::Config(format!(
                    "no {} endpoint of service type {} in the service catalog \
                     (glance_api_servers is not set)",
                    info.endpoint_type, info.service_type
                ))
            })?;
        if url.starts_with("https://") {
            return Err(Self::no_tls(&url));
        }
        Ok(url)
    }

    fn request(&self, ctx: &ImageContext, method: Method, url: &str) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, url);
        if let Some(token) = &ctx.auth_token {
            request = request.header("x-auth-token", token);
        }
        if let Some(token) = &ctx.service_token {
            request = request.header("x-service-token", token);
        }
        if let Some(id) = &ctx.request_id {
            request = request.header("x-openstack-request-id", id);
        }
        request
    }

    /// Sends a request built by `build` for each endpoint in turn until one
    /// answers something other than a retryable failure, at most
    /// `1 + glance_num_retries` times. Only idempotent requests are retried
    /// on 5xx; every request is retried when the connection fails.
    async fn send(
        &self,
        ctx: &ImageContext,
        method: Method,
        path: &str,
        build: impl Fn(reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, ImageError>,
    ) -> Result<reqwest::Response, ImageError> {
        let endpoints = self.endpoints(ctx)?;
        let attempts = 1 + self.settings.num_retries as usize;
        let idempotent = matches!(method, Method::GET | Method::HEAD | Method::DELETE);
        let mut last = String::new();
        for attempt in 0..attempts {
            let base = &endpoints[attempt % endpoints.len()];
            let url = format!("{base}{path}");
            let outcome = match build(self.request(ctx, method.clone(), &url))?.send().await {
                Ok(response)
                    if idempotent
                        && matches!(response.status().as_u16(), 500 | 502 | 503 | 504) =>
                {
                    Outcome::Retry(format!("{method} {url} answered {}", response.status()))
                }
                Ok(response) => Outcome::Done(response),
                Err(e) if e.is_connect() || (idempotent && e.is_timeout()) => {
                    Outcome::Retry(format!("{method} {url}: {e}"))
                }
                Err(e) => return Err(ImageError::ConnectionFailed(format!("{method} {url}: {e}"))),
            };
            match outcome {
                Outcome::Done(response) => return Ok(response),
                Outcome::Retry(why) => {
                    let extra = if attempt + 1 < attempts {
                        "retrying"
                    } else {
                        "done trying"
                    };
                    tracing::warn!(
                        error = %why,
                        attempt = attempt + 1,
                        attempts,
                        "error contacting glance server, {extra}"
                    );
                    last = why;
                    if attempt + 1 < attempts {
                        tokio::time::sleep(self.settings.retry_delay).await;
                    }
                }
            }
        }
        Err(ImageError::ConnectionFailed(last))
    }

    /// Maps a failed answer to Cinder's exception for `image_id` (Cinder's
    /// `_translate_image_exception`).
    async fn failure(response: reqwest::Response, image_id: &str) -> ImageError {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let message = glance_message(&body).unwrap_or_else(|| format!("Glance answered {status}"));
        match status {
            StatusCode::NOT_FOUND => ImageError::NotFound {
                image_id: image_id.to_owned(),
            },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ImageError::NotAuthorized {
                image_id: image_id.to_owned(),
            },
            StatusCode::BAD_REQUEST => ImageError::Invalid(message),
            StatusCode::PAYLOAD_TOO_LARGE => ImageError::LimitExceeded,
            StatusCode::CONFLICT => ImageError::Conflict(message),
            s if s.is_server_error() => ImageError::ConnectionFailed(message),
            _ => ImageError::Invalid(message),
        }
    }

    async fn json(response: reqwest::Response, image_id: &str) -> Result<ImageMeta, ImageError> {
        if !response.status().is_success() {
            return Err(Self::failure(response, image_id).await);
        }
        let value: Value = response
            .json()
            .await
            .map_err(|e| ImageError::ConnectionFailed(format!("unreadable Glance answer: {e}")))?;
        ImageMeta::from_json(value)
            .ok_or_else(|| ImageError::ConnectionFailed("Glance answered no image record".into()))
    }

    /// `GET /v2/images/{id}`: the image with every custom property, and
    /// `direct_url` / `locations` when Glance shows them.
    ///
    /// # Errors
    /// Cinder's: `NotFound`, `NotAuthorized`, `ConnectionFailed`.
    pub async fn show_image(
        &self,
        ctx: &ImageContext,
        image_id: &str,
    ) -> Result<ImageMeta, ImageError> {
        let path = format!("/v2/images/{}", path_segment(image_id)?);
        let response = self.send(ctx, Method::GET, &path, Ok).await?;
        Self::json(response, image_id).await
    }

    /// `GET /v2/images?name=…`: the images of that name the caller can see
    /// (Cinder's `detail(filters={'name': …})`, first page).
    ///
    /// # Errors
    /// `NotAuthorized`, `Invalid`, `ConnectionFailed`.
    pub async fn images_named(
        &self,
        ctx: &ImageContext,
        name: &str,
    ) -> Result<Vec<ImageMeta>, ImageError> {
        let path = format!("/v2/images?name={}", query_value(name));
        let response = self.send(ctx, Method::GET, &path, Ok).await?;
        if !response.status().is_success() {
            return Err(Self::failure(response, name).await);
        }
        let value: Value = response
            .json()
            .await
            .map_err(|e| ImageError::ConnectionFailed(format!("unreadable Glance answer: {e}")))?;
        Ok(value
            .get("images")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .cloned()
                    .filter_map(ImageMeta::from_json)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `POST /v2/images`: a new image record (`queued`) with `fields` (core
    /// fields and custom properties at the top level, as v2 wants them).
    ///
    /// # Errors
    /// `Invalid` (400), `LimitExceeded` (413), `ConnectionFailed`.
    pub async fn create_image(
        &self,
        ctx: &ImageContext,
        fields: &Map<String, Value>,
    ) -> Result<ImageMeta, ImageError> {
        let response = self
            .send(ctx, Method::POST, "/v2/images", |r| Ok(r.json(fields)))
            .await?;
        Self::json(response, "(new)").await
    }

    /// `PATCH /v2/images/{id}` with JSON-patch `ops`.
    ///
    /// # Errors
    /// As [`Self::show_image`], plus `Invalid` and `Conflict`.
    pub async fn update_image(
        &self,
        ctx: &ImageContext,
        image_id: &str,
        ops: &[PatchOp],
    ) -> Result<ImageMeta, ImageError> {
        let path = format!("/v2/images/{}", path_segment(image_id)?);
        let body = Value::Array(ops.iter().map(PatchOp::to_json).collect());
        let body = serde_json::to_vec(&body)
            .map_err(|e| ImageError::Invalid(format!("cannot encode the patch: {e}")))?;
        let response = self
            .send(ctx, Method::PATCH, &path, |r| {
                Ok(r.header(
                    "content-type",
                    "application/openstack-images-v2.1-json-patch",
                )
                .body(body.clone()))
            })
            .await?;
        Self::json(response, image_id).await
    }

    /// `DELETE /v2/images/{id}`.
    ///
    /// # Errors
    /// `NotFound` when it is already gone, `NotAuthorized`, …
    pub async fn delete_image(&self, ctx: &ImageContext, image_id: &str) -> Result<(), ImageError> {
        let path = format!("/v2/images/{}", path_segment(image_id)?);
        let response = self.send(ctx, Method::DELETE, &path, Ok).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(Self::failure(response, image_id).await)
        }
    }

    /// `GET /v2/images/{id}/file`: the data as a stream of chunks, checked
    /// against `image`'s `os_hash_value` (or `checksum`) and `size` as it
    /// flows; a mismatch is an error after the last byte.
    ///
    /// # Errors
    /// As [`Self::show_image`]; `DownloadFailed` when Glance has no data.
    pub async fn download(
        &self,
        ctx: &ImageContext,
        image: &ImageMeta,
    ) -> Result<ImageData, ImageError> {
        let path = format!("/v2/images/{}/file", path_segment(&image.id)?);
        let response = self.send(ctx, Method::GET, &path, Ok).await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Err(ImageError::DownloadFailed {
                image_id: image.id.clone(),
                reason: "image contains no data.".into(),
                transient: false,
            });
        }
        if !response.status().is_success() {
            return Err(Self::failure(response, &image.id).await);
        }
        Ok(ImageData::new(response, image))
    }

    /// `PUT /v2/images/{id}/file`: uploads `data` (length announced with
    /// `Content-Length`, never `Expect: 100-continue`). Data from a file is
    /// sent again to the next server after a connection failure; a reader
    /// is sent once.
    ///
    /// # Errors
    /// `Conflict` when the image is not `queued`, `LimitExceeded` (413),
    /// `Invalid` (Glance's own format checks), `ConnectionFailed`.
    pub async fn upload(
        &self,
        ctx: &ImageContext,
        image_id: &str,
        data: UploadData,
    ) -> Result<(), ImageError> {
        let path = format!("/v2/images/{}/file", path_segment(image_id)?);
        let slot = std::sync::Mutex::new(Some(data));
        let response = self
            .send(ctx, Method::PUT, &path, |r| {
                let (length, body) = data::attempt_body(&slot)?;
                Ok(r.header("content-type", "application/octet-stream")
                    .header("content-length", length)
                    .body(body))
            })
            .await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(Self::failure(response, image_id).await)
        }
    }
}

/// Glance's error text from its JSON or HTML error body.
fn glance_message(body: &str) -> Option<String> {
    if let Ok(value) = serde_json::from_str::<Value>(body) {
        for pointer in ["/message", "/error/message", "/badRequest/message"] {
            if let Some(text) = value.pointer(pointer).and_then(Value::as_str) {
                return Some(text.to_owned());
            }
        }
    }
    // webob's HTML pages: the text after the title, tags stripped.
    let text: String = body
        .split('<')
        .filter_map(|part| part.split_once('>').map(|(_, t)| t.trim()))
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!text.is_empty()).then(|| text.chars().take(500).collect())
}

/// `value` percent-encoded for a query string (RFC 3986 unreserved
/// characters kept).
fn query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An image id as one URL path segment: Glance ids are UUIDs, and anything
/// that could leave the segment is refused.
fn path_segment(image_id: &str) -> Result<&str, ImageError> {
    if image_id.is_empty()
        || !image_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || image_id == "."
        || image_id == ".."
    {
        return Err(ImageError::NotFound {
            image_id: image_id.to_owned(),
        });
    }
    Ok(image_id)
}

#[cfg(test)]
mod tests;
