//! What the S3 and Swift stores share: the HTTP client built from the
//! driver's options, the classification of transport errors and HTTP
//! statuses into [`StoreError`], and retries of idempotent requests.

use std::time::Duration;

use crate::error::StoreError;

/// How the HTTP client is built.
#[derive(Clone, Debug)]
pub(crate) struct HttpOptions {
    /// Connect and read timeout.
    pub timeout: Option<Duration>,
    /// Proxy for `http://` endpoints.
    pub http_proxy: Option<String>,
    /// Proxy for `https://` endpoints.
    pub https_proxy: Option<String>,
    /// Whether the server's TLS certificate is verified.
    pub verify_tls: bool,
    /// A PEM bundle of CA certificates trusted besides the system's.
    pub ca_cert_file: Option<std::path::PathBuf>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout: None,
            http_proxy: None,
            https_proxy: None,
            verify_tls: true,
            ca_cert_file: None,
        }
    }
}

pub(crate) fn client(options: &HttpOptions) -> Result<reqwest::Client, StoreError> {
    let mut builder = clinker_runtime::http::client_builder().no_proxy();
    if !options.verify_tls {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    if let Some(path) = &options.ca_cert_file {
        let pem = std::fs::read(path)
            .map_err(|e| StoreError::Config(format!("CA file {}: {e}", path.display())))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| StoreError::Config(format!("CA file {}: {e}", path.display())))?;
        if certificates.is_empty() {
            return Err(StoreError::Config(format!(
                "CA file {} holds no PEM certificate",
                path.display()
            )));
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if let Some(timeout) = options.timeout {
        builder = builder.connect_timeout(timeout).read_timeout(timeout);
    }
    let bad_proxy = |url: &str, e: reqwest::Error| StoreError::Config(format!("proxy {url}: {e}"));
    if let Some(url) = &options.http_proxy {
        builder = builder.proxy(reqwest::Proxy::http(url).map_err(|e| bad_proxy(url, e))?);
    }
    if let Some(url) = &options.https_proxy {
        builder = builder.proxy(reqwest::Proxy::https(url).map_err(|e| bad_proxy(url, e))?);
    }
    builder
        .build()
        .map_err(|e| StoreError::Config(format!("cannot build the HTTP client: {e}")))
}

/// A request that did not get an answer.
pub(crate) fn transport_error(what: &str, e: &reqwest::Error) -> StoreError {
    StoreError::Unavailable(format!("{what}: {e}"))
}

/// An answer that is not a success, by status.
pub(crate) fn status_error(what: &str, status: reqwest::StatusCode, body: &str) -> StoreError {
    let detail = format!("{what}: {}", body.trim());
    match status.as_u16() {
        401 | 403 => StoreError::Unauthorized(detail),
        404 => StoreError::NotFound {
            what: what.to_owned(),
        },
        408 | 429 | 500..=599 => StoreError::Unavailable(format!("{status} {detail}")),
        code => StoreError::Http {
            status: code,
            detail,
        },
    }
}

/// Runs an idempotent request up to `attempts` times while it fails with
/// [`StoreError::Unavailable`], waiting `backoff`, then twice that, …
pub(crate) async fn with_retries<T, F, Fut>(
    attempts: u32,
    backoff: Duration,
    mut request: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut wait = backoff;
    let mut attempt = 1;
    loop {
        match request().await {
            Err(StoreError::Unavailable(reason)) if attempt < attempts.max(1) => {
                tracing::warn!(attempt, %reason, "backup store request failed; retrying");
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The ETag of an answer without its quotes, when it is a plain MD5 (not a
/// multipart or large-object manifest's).
pub(crate) fn md5_etag(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let etag = headers.get(reqwest::header::ETAG)?.to_str().ok()?;
    let etag = etag.trim().trim_matches('"').to_ascii_lowercase();
    (etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit())).then_some(etag)
}

/// Checks a body read back against the ETag it came with, when that is a
/// plain MD5.
pub(crate) fn check_body(what: &str, etag: Option<String>, body: &[u8]) -> Result<(), StoreError> {
    let Some(etag) = etag else {
        return Ok(());
    };
    let actual = super::md5_hex(body);
    if actual == etag {
        return Ok(());
    }
    Err(StoreError::IntegrityMismatch {
        object: what.to_owned(),
        expected: etag,
        actual,
    })
}

/// Checks the ETag a put was answered with against the MD5 sent; `None`
/// (no plain-MD5 ETag) passes only when the store may answer so.
pub(crate) fn check_put(
    what: &str,
    md5: &str,
    etag: Option<String>,
    etag_required: bool,
) -> Result<(), StoreError> {
    match etag {
        Some(etag) if etag == md5 => Ok(()),
        None if !etag_required => Ok(()),
        other => Err(StoreError::IntegrityMismatch {
            object: what.to_owned(),
            expected: md5.to_owned(),
            actual: other.unwrap_or_else(|| "no etag".into()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        for ca in [path, dir.path().join("missing.pem")] {
            let options = HttpOptions {
                ca_cert_file: Some(ca),
                ..HttpOptions::default()
            };
            assert!(matches!(client(&options), Err(StoreError::Config(_))));
        }
        let insecure = HttpOptions {
            verify_tls: false,
            ..HttpOptions::default()
        };
        assert!(client(&insecure).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn retries_only_unavailable() {
        let mut calls = 0;
        let result: Result<(), _> = with_retries(3, Duration::from_secs(1), || {
            calls += 1;
            async { Err(StoreError::Unavailable("down".into())) }
        })
        .await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))));
        assert_eq!(calls, 3);
        let mut calls = 0;
        let result: Result<(), _> = with_retries(3, Duration::from_secs(1), || {
            calls += 1;
            async { Err(StoreError::Unauthorized("no".into())) }
        })
        .await;
        assert!(matches!(result, Err(StoreError::Unauthorized(_))));
        assert_eq!(calls, 1);
    }

    #[test]
    fn statuses_are_classified() {
        use reqwest::StatusCode;
        assert!(matches!(
            status_error("x", StatusCode::NOT_FOUND, ""),
            StoreError::NotFound { .. }
        ));
        assert!(matches!(
            status_error("x", StatusCode::FORBIDDEN, ""),
            StoreError::Unauthorized(_)
        ));
        assert!(matches!(
            status_error("x", StatusCode::SERVICE_UNAVAILABLE, ""),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            status_error("x", StatusCode::CONFLICT, ""),
            StoreError::Http { status: 409, .. }
        ));
    }
}
