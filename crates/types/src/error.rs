//! The closed classification of every error in Clinker.
//!
//! Each crate has its own `thiserror` enum; each of them says which
//! [`ErrorKind`] it is. Exactly one function in the API crate maps a kind to
//! an HTTP status and Cinder's fault name, so nothing above the edge where an
//! error arises ever matches on message text.

use serde::{Deserialize, Serialize};

/// What kind of failure an error is, independent of where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The resource does not exist (or is not visible to the caller). HTTP 404.
    NotFound,
    /// The request itself is wrong. HTTP 400.
    InvalidInput,
    /// The resource is in a state that forbids the operation. Cinder answers
    /// these with 400 (`InvalidVolume`), not 409.
    InvalidState,
    /// A conflicting concurrent change or duplicate. HTTP 409.
    Conflict,
    /// A quota would be exceeded. HTTP 413 `overLimit`.
    OverQuota,
    /// Policy forbids the caller. HTTP 403.
    Forbidden,
    /// Authentication is missing or invalid. HTTP 401.
    Unauthorized,
    /// The requested version or method does not exist. HTTP 404 for API
    /// methods below their microversion.
    NotImplemented,
    /// A dependency (database, broker, backend) cannot be reached now. HTTP 503.
    Unavailable,
    /// A bug or an unclassified failure. HTTP 500, generic message.
    Internal,
}

impl ErrorKind {
    /// Returns whether the message of an error of this kind may be shown to
    /// the API user (Cinder's `safe` exceptions). Internal failures are
    /// replaced by a generic text.
    pub fn is_user_visible(self) -> bool {
        !matches!(self, ErrorKind::Internal)
    }

    /// The kind's name as serialized (`not_found`, `unavailable`, …): a
    /// bounded metric label.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::InvalidState => "invalid_state",
            ErrorKind::Conflict => "conflict",
            ErrorKind::OverQuota => "over_quota",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::NotImplemented => "not_implemented",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

/// An error that crossed an RPC boundary: its kind and a user-safe message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    /// The classification on the remote side.
    pub kind: ErrorKind,
    /// The message, as the remote side would show it to a user.
    pub message: String,
}

impl RemoteError {
    /// Builds a remote error.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}
