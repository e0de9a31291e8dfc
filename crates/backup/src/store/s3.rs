//! Cinder's S3 driver against any S3 API (`cinder/backup/drivers/s3.py`):
//! path-style requests signed with SigV4 (presigned by `rusty-s3`), one
//! `PutObject` per object with `Content-MD5` when `backup_s3_md5_validation`
//! is on, `ListObjectsV2` pages for the prefix listing.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use rusty_s3::actions::{
    CreateBucket, DeleteObject, GetObject, HeadBucket, ListObjectsV2, PutObject,
};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use super::ObjectStore;
use super::http::{self, HttpOptions};
use crate::error::StoreError;

/// How long a signed request stays valid: long enough for a slow upload
/// to start, short enough not to matter if a URL leaked into a log.
const SIGNATURE_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// boto3's default region, which Cinder's client uses.
const REGION: &str = "us-east-1";

/// What an [`S3Store`] is built from (Cinder's `backup_s3_*` options).
#[derive(Clone, Debug)]
pub struct S3Settings {
    /// `backup_s3_endpoint_url`.
    pub endpoint_url: String,
    /// `backup_s3_store_access_key`.
    pub access_key: String,
    /// `backup_s3_store_secret_key`.
    pub secret_key: String,
    /// `backup_s3_md5_validation`.
    pub md5_validation: bool,
    /// `backup_s3_verify_ssl`.
    pub verify_ssl: bool,
    /// `backup_s3_ca_cert_file`.
    pub ca_cert_file: Option<std::path::PathBuf>,
    /// `backup_s3_timeout`.
    pub timeout: Duration,
    /// `backup_s3_retry_max_attempts`.
    pub retry_max_attempts: u32,
    /// `backup_s3_http_proxy`.
    pub http_proxy: Option<String>,
    /// `backup_s3_https_proxy`.
    pub https_proxy: Option<String>,
    /// `backup_s3_sse_customer_algorithm` and `backup_s3_sse_customer_key`,
    /// when both are set.
    pub sse_customer: Option<(String, String)>,
}

/// Buckets and objects of an S3 endpoint.
#[derive(Clone)]
pub struct S3Store {
    client: reqwest::Client,
    endpoint: url::Url,
    credentials: Credentials,
    md5_validation: bool,
    attempts: u32,
    /// SSE-C headers (algorithm, base64 key, base64 key MD5).
    sse: Option<[String; 3]>,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("endpoint", &self.endpoint.as_str())
            .field("md5_validation", &self.md5_validation)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// A store for `settings`.
    pub fn new(settings: &S3Settings) -> Result<Self, StoreError> {
        let endpoint = url::Url::parse(&settings.endpoint_url).map_err(|e| {
            StoreError::Config(format!(
                "backup_s3_endpoint_url {:?}: {e}",
                settings.endpoint_url
            ))
        })?;
        let client = http::client(&HttpOptions {
            timeout: Some(settings.timeout),
            http_proxy: settings.http_proxy.clone(),
            https_proxy: settings.https_proxy.clone(),
            verify_tls: settings.verify_ssl,
            ca_cert_file: settings.ca_cert_file.clone(),
        })?;
        let sse = settings.sse_customer.as_ref().map(|(algorithm, key)| {
            let b64 = base64::engine::general_purpose::STANDARD;
            let key_md5 = {
                use md5::Digest;
                b64.encode(md5::Md5::digest(key.as_bytes()))
            };
            [algorithm.clone(), b64.encode(key.as_bytes()), key_md5]
        });
        Ok(Self {
            client,
            endpoint,
            credentials: Credentials::new(settings.access_key.clone(), settings.secret_key.clone()),
            md5_validation: settings.md5_validation,
            attempts: settings.retry_max_attempts.max(1),
            sse,
        })
    }

    fn bucket(&self, container: &str) -> Result<Bucket, StoreError> {
        Bucket::new(
            self.endpoint.clone(),
            UrlStyle::Path,
            container.to_owned(),
            REGION,
        )
        .map_err(|e| StoreError::Config(format!("bucket {container:?}: {e}")))
    }

    /// The SSE-C headers, which must be signed and sent with every object
    /// request when a customer key is configured.
    fn sse_headers(&self) -> Vec<(&'static str, &str)> {
        match &self.sse {
            Some([algorithm, key, key_md5]) => vec![
                (
                    "x-amz-server-side-encryption-customer-algorithm",
                    algorithm.as_str(),
                ),
                ("x-amz-server-side-encryption-customer-key", key.as_str()),
                (
                    "x-amz-server-side-encryption-customer-key-md5",
                    key_md5.as_str(),
                ),
            ],
            None => Vec::new(),
        }
    }

    /// Signs `action` with `headers` among the signed headers and sends it
    /// with them (retrying while the store is unavailable).
    async fn send<'a, T: S3Action<'a>>(
        &self,
        what: &str,
        mut action: T,
        headers: &[(&'static str, &'a str)],
        body: Option<Bytes>,
    ) -> Result<reqwest::Response, StoreError> {
        for (name, value) in headers {
            action.headers_mut().insert(*name, *value);
        }
        let method = match T::METHOD {
            rusty_s3::Method::Head => reqwest::Method::HEAD,
            rusty_s3::Method::Get => reqwest::Method::GET,
            rusty_s3::Method::Post => reqwest::Method::POST,
            rusty_s3::Method::Put => reqwest::Method::PUT,
            rusty_s3::Method::Delete => reqwest::Method::DELETE,
        };
        http::with_retries(self.attempts, Duration::from_millis(500), || {
            // Signed per attempt: a retry after a long wait needs a fresh date.
            let mut request = self
                .client
                .request(method.clone(), action.sign(SIGNATURE_LIFETIME));
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(body) = &body {
                request = request
                    .header(reqwest::header::CONTENT_LENGTH, body.len())
                    .body(body.clone());
            }
            async move {
                request
                    .send()
                    .await
                    .map_err(|e| http::transport_error(what, &e))
            }
        })
        .await
    }
}

/// The `<Code>` of an S3 error body.
fn error_code(body: &str) -> Option<&str> {
    let start = body.find("<Code>")? + "<Code>".len();
    let end = body[start..].find("</Code>")? + start;
    Some(&body[start..end])
}

async fn failure(what: &str, response: reqwest::Response) -> StoreError {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    match error_code(&body) {
        Some("BadDigest" | "InvalidDigest") => StoreError::ChecksumRejected {
            object: what.to_owned(),
            detail: body.trim().to_owned(),
        },
        _ => http::status_error(what, status, &body),
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn ensure_container(&self, container: &str, create: bool) -> Result<(), StoreError> {
        let bucket = self.bucket(container)?;
        let what = format!("bucket {container}");
        let head = HeadBucket::new(&bucket, Some(&self.credentials));
        let response = self.send(&what, head, &[], None).await?;
        if response.status().is_success() {
            return Ok(());
        }
        if response.status() != reqwest::StatusCode::NOT_FOUND || !create {
            return Err(failure(&what, response).await);
        }
        let create = CreateBucket::new(&bucket, &self.credentials);
        let body = Bytes::from(create.body());
        let response = self.send(&what, create, &[], Some(body)).await?;
        // Another backup may have created it at the same moment.
        let status = response.status();
        if status.is_success() || status == reqwest::StatusCode::CONFLICT {
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
        let bucket = self.bucket(container)?;
        let what = format!("{container}/{name}");
        let md5 = md5.to_ascii_lowercase();
        let content_md5 = hex::decode(&md5)
            .map(|raw| base64::engine::general_purpose::STANDARD.encode(raw))
            .map_err(|e| StoreError::Config(format!("{what}: md5 {md5:?} is not hex: {e}")))?;
        let mut headers = self.sse_headers();
        if self.md5_validation {
            headers.push(("content-md5", content_md5.as_str()));
        }
        let put = PutObject::new(&bucket, Some(&self.credentials), name);
        let response = self.send(&what, put, &headers, Some(data)).await?;
        if !response.status().is_success() {
            return Err(failure(&what, response).await);
        }
        // Without SSE-C a single-part object's ETag is the MD5 of its bytes.
        if self.sse.is_some() {
            return Ok(());
        }
        http::check_put(&what, &md5, http::md5_etag(response.headers()), false)
    }

    async fn get_object(&self, container: &str, name: &str) -> Result<Bytes, StoreError> {
        let bucket = self.bucket(container)?;
        let what = format!("{container}/{name}");
        let headers = self.sse_headers();
        // Cinder retries a read that broke off after the answer started.
        http::with_retries(self.attempts, Duration::from_millis(500), || async {
            let get = GetObject::new(&bucket, Some(&self.credentials), name);
            let response = self.send(&what, get, &headers, None).await?;
            if !response.status().is_success() {
                return Err(failure(&what, response).await);
            }
            let etag = http::md5_etag(response.headers());
            let body = response
                .bytes()
                .await
                .map_err(|e| http::transport_error(&what, &e))?;
            http::check_body(&what, etag.filter(|_| self.sse.is_none()), &body)?;
            Ok(body)
        })
        .await
    }

    async fn delete_object(&self, container: &str, name: &str) -> Result<(), StoreError> {
        let bucket = self.bucket(container)?;
        let what = format!("{container}/{name}");
        let delete = DeleteObject::new(&bucket, Some(&self.credentials), name);
        let response = self.send(&what, delete, &[], None).await?;
        let status = response.status();
        if status.is_success() || status == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(failure(&what, response).await)
    }

    async fn list_objects(&self, container: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        let bucket = self.bucket(container)?;
        let what = format!("bucket {container}");
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut list = ListObjectsV2::new(&bucket, Some(&self.credentials));
            list.with_prefix(prefix);
            if let Some(token) = &token {
                list.with_continuation_token(token.clone());
            }
            let response = self.send(&what, list, &[], None).await?;
            if !response.status().is_success() {
                return Err(failure(&what, response).await);
            }
            let text = response
                .text()
                .await
                .map_err(|e| http::transport_error(&what, &e))?;
            let page = ListObjectsV2::parse_response(&text).map_err(|e| StoreError::Http {
                status: 200,
                detail: format!("{what}: unreadable listing: {e}"),
            })?;
            names.extend(page.contents.into_iter().map(|c| c.key));
            match page.next_continuation_token {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => break,
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
    fn error_codes_are_read_from_the_body() {
        let body =
            "<?xml version=\"1.0\"?><Error><Code>BadDigest</Code><Message>x</Message></Error>";
        assert_eq!(error_code(body), Some("BadDigest"));
        assert_eq!(error_code("nothing"), None);
    }
}
