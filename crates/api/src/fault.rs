//! The one table from an error's classification to its HTTP status and
//! Cinder's fault name, and the fault body (`cinder/api/openstack/wsgi.py`,
//! `Fault`).
//!
//! Every failure a handler or the pipeline produces is an [`ApiError`];
//! [`ApiError::status_and_fault`] is the only place that decides the HTTP
//! status and the `{"<faultName>": {"code": N, "message": "..."}}` key.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clinker_types::ErrorKind;
use serde_json::json;

/// The explanation webob gives a 500; Cinder hides the real cause from
/// users (its `FaultWrapper` only shows `safe` exceptions).
pub const GENERIC_SERVER_ERROR: &str =
    "The server has either erred or is incapable of performing the requested operation.";

/// webob's explanation for a bare 404 (a method below its microversion, an
/// unknown route).
pub const RESOURCE_NOT_FOUND: &str = "The resource could not be found.";

/// Cinder's `ServiceUnavailable` text, used when a service the request needs
/// (scheduler, volume service) cannot be reached.
pub const SERVICE_UNAVAILABLE: &str = "Service is unavailable at this time.";

/// `Retry-After` on every 503: transient faults clear within seconds.
pub const UNAVAILABLE_RETRY_AFTER_SECONDS: &str = "1";

/// Why a request failed, with a message that is safe to show the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A failure of one of the shared kinds (not found, invalid input, …).
    #[error("{message}")]
    Kind {
        /// The classification.
        kind: ErrorKind,
        /// What the user sees (replaced by a generic text for
        /// [`ErrorKind::Internal`]).
        message: String,
    },
    /// The requested microversion is outside 3.0–3.71 (HTTP 406).
    #[error("{0}")]
    NotAcceptable(String),
    /// The body has a Content-Type other than JSON (HTTP 415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is larger than the request size limit (HTTP 413, not a
    /// quota: no `retryAfter`).
    #[error("{0}")]
    RequestTooLarge(String),
    /// The path exists but not for this method (HTTP 405).
    #[error("{0}")]
    MethodNotAllowed(String),
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error of `kind` with a user-visible message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError::Kind {
            kind,
            message: message.into(),
        }
    }

    /// 400 `badRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// 400 `badRequest` for Cinder's `InvalidInput` ("Invalid input
    /// received: …").
    pub fn invalid_input(reason: impl AsRef<str>) -> Self {
        Self::bad_request(format!("Invalid input received: {}", reason.as_ref()))
    }

    /// 400 `badRequest` for a resource in the wrong state (Cinder answers
    /// `InvalidVolume` and friends with 400, not 409).
    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidState, message)
    }

    /// 404 `itemNotFound`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// 409 `conflictingRequest`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// 413 `overLimit` for a quota, with `Retry-After: 0`.
    pub fn over_quota(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::OverQuota, message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    /// 501 `notImplemented`.
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotImplemented, message)
    }

    /// 503 `serviceUnavailable` with Cinder's text.
    pub fn unavailable() -> Self {
        Self::new(ErrorKind::Unavailable, SERVICE_UNAVAILABLE)
    }

    /// 500 `computeFault`. `detail` is logged, never shown.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, detail)
    }

    /// The classification, for callers that branch on it.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ApiError::Kind { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// The HTTP status and Cinder's fault name for this error: the one
    /// table of the API.
    pub fn status_and_fault(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Kind { kind, .. } => match kind {
                ErrorKind::InvalidInput | ErrorKind::InvalidState => {
                    (StatusCode::BAD_REQUEST, "badRequest")
                }
                ErrorKind::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
                ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
                ErrorKind::NotFound => (StatusCode::NOT_FOUND, "itemNotFound"),
                ErrorKind::Conflict => (StatusCode::CONFLICT, "conflictingRequest"),
                ErrorKind::OverQuota => (StatusCode::PAYLOAD_TOO_LARGE, "overLimit"),
                ErrorKind::NotImplemented => (StatusCode::NOT_IMPLEMENTED, "notImplemented"),
                ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "serviceUnavailable"),
                ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "computeFault"),
            },
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "badMethod"),
            ApiError::RequestTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "overLimit"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "badMediaType")
            }
            // 406 is not in Cinder's fault-name table, so it falls back to
            // `computeFault` there too.
            ApiError::NotAcceptable(_) => (StatusCode::NOT_ACCEPTABLE, "computeFault"),
        }
    }

    /// The message shown to the user.
    pub fn user_message(&self) -> &str {
        match self {
            ApiError::Kind { kind, message } => {
                if kind.is_user_visible() {
                    message
                } else {
                    GENERIC_SERVER_ERROR
                }
            }
            ApiError::NotAcceptable(m)
            | ApiError::UnsupportedMediaType(m)
            | ApiError::RequestTooLarge(m)
            | ApiError::MethodNotAllowed(m) => m,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, fault) = self.status_and_fault();
        if let ApiError::Kind {
            kind: ErrorKind::Internal,
            message,
        } = &self
        {
            tracing::error!(detail = %message, "request failed with an internal error");
        }
        let quota = matches!(
            self,
            ApiError::Kind {
                kind: ErrorKind::OverQuota,
                ..
            }
        );
        let mut inner = json!({"code": status.as_u16(), "message": self.user_message()});
        if quota && let Some(obj) = inner.as_object_mut() {
            obj.insert("retryAfter".into(), json!("0"));
        }
        let body = json!({ fault: inner });
        let mut response = (status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if quota {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("0"));
        }
        if matches!(self, ApiError::RequestTooLarge(_)) {
            // The body was refused unread: the connection cannot carry
            // another request, and a client that reused it would see its
            // next request fail. Say so (RFC 9110 §15.5.14).
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // A 503 here is transient (a database or broker under pressure,
            // a service restarting): tell clients when to come back.
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(UNAVAILABLE_RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

impl From<clinker_db::DbError> for ApiError {
    /// The fallback for database failures a service did not translate into
    /// a Cinder text: classification kept, message generic.
    fn from(err: clinker_db::DbError) -> Self {
        match err.kind() {
            ErrorKind::NotFound => ApiError::not_found(RESOURCE_NOT_FOUND),
            ErrorKind::Unavailable => {
                // The cause (too many connections, a lost server) is for the
                // operator's log; the user gets Cinder's 503 text.
                tracing::warn!(error = %err, "database unavailable; answering 503");
                ApiError::unavailable()
            }
            ErrorKind::Conflict => ApiError::conflict(err.to_string()),
            ErrorKind::InvalidState => ApiError::invalid_state(err.to_string()),
            ErrorKind::OverQuota => ApiError::over_quota(err.to_string()),
            _ => ApiError::internal(err.to_string()),
        }
    }
}

impl From<clinker_rpc::RpcError> for ApiError {
    /// RPC failures: unreachable services are 503, remote errors keep their
    /// kind and user-safe message.
    fn from(err: clinker_rpc::RpcError) -> Self {
        match err {
            clinker_rpc::RpcError::Remote(remote) => ApiError::new(remote.kind, remote.message),
            other if other.kind() == ErrorKind::Unavailable => {
                tracing::warn!(error = %other, "rpc target unavailable");
                ApiError::unavailable()
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_cinder_fault_name() {
        let cases = [
            (ErrorKind::InvalidInput, 400, "badRequest"),
            (ErrorKind::InvalidState, 400, "badRequest"),
            (ErrorKind::Unauthorized, 401, "unauthorized"),
            (ErrorKind::Forbidden, 403, "forbidden"),
            (ErrorKind::NotFound, 404, "itemNotFound"),
            (ErrorKind::Conflict, 409, "conflictingRequest"),
            (ErrorKind::OverQuota, 413, "overLimit"),
            (ErrorKind::NotImplemented, 501, "notImplemented"),
            (ErrorKind::Unavailable, 503, "serviceUnavailable"),
            (ErrorKind::Internal, 500, "computeFault"),
        ];
        for (kind, code, name) in cases {
            let (status, fault) = ApiError::new(kind, "x").status_and_fault();
            assert_eq!((status.as_u16(), fault), (code, name), "{kind:?}");
        }
        assert_eq!(
            ApiError::MethodNotAllowed("x".into()).status_and_fault(),
            (StatusCode::METHOD_NOT_ALLOWED, "badMethod")
        );
        assert_eq!(
            ApiError::UnsupportedMediaType("x".into()).status_and_fault(),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "badMediaType")
        );
        assert_eq!(
            ApiError::NotAcceptable("x".into()).status_and_fault().1,
            "computeFault"
        );
    }

    #[test]
    fn an_unavailable_database_is_a_503_with_retry_after() {
        let err = ApiError::from(clinker_db::DbError::Unavailable(
            "Too many connections (code 1040)".into(),
        ));
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER).unwrap(),
            UNAVAILABLE_RETRY_AFTER_SECONDS
        );
        // A transaction that lost every retry is transient too.
        let err = ApiError::from(clinker_db::DbError::Retryable("deadlock".into()));
        assert_eq!(err.status_and_fault().0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.user_message(), SERVICE_UNAVAILABLE);
    }

    #[test]
    fn internal_messages_are_hidden() {
        let err = ApiError::internal("sqlite says: disk I/O error at /var/lib/x");
        assert_eq!(err.user_message(), GENERIC_SERVER_ERROR);
        assert_eq!(
            ApiError::not_found("Volume x could not be found.").user_message(),
            "Volume x could not be found."
        );
    }
}
