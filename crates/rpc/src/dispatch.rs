//! Versioned dispatch of incoming messages to a manager's methods.

use std::collections::BTreeSet;

use clinker_types::{ErrorKind, RemoteError};

use crate::{RpcMessage, Version};

/// Why a message cannot be served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// The method exists but not at this version (oslo's
    /// `UnsupportedVersion`).
    #[error(
        "UnsupportedVersion: endpoint does not support RPC version {requested} (serving {served}) for {method}"
    )]
    UnsupportedVersion {
        /// The method.
        method: String,
        /// The message's version.
        requested: Version,
        /// The server's version.
        served: Version,
    },
    /// No such method on the endpoint (oslo's `NoSuchMethod`).
    #[error("NoSuchMethod: endpoint does not support RPC method {method}")]
    NoSuchMethod {
        /// The method.
        method: String,
    },
    /// The arguments do not match the method.
    #[error("malformed arguments for {method}: {reason}")]
    BadArguments {
        /// The method.
        method: String,
        /// What serde said.
        reason: String,
    },
}

impl From<DispatchError> for RemoteError {
    fn from(e: DispatchError) -> Self {
        let kind = match e {
            DispatchError::UnsupportedVersion { .. } | DispatchError::NoSuchMethod { .. } => {
                ErrorKind::NotImplemented
            }
            DispatchError::BadArguments { .. } => ErrorKind::InvalidInput,
        };
        RemoteError::new(kind, e.to_string())
    }
}

/// The methods an endpoint serves and its version.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The server's version.
    pub version: Version,
    /// The method names it knows.
    pub methods: BTreeSet<&'static str>,
}

impl Endpoint {
    /// An endpoint serving `methods` at `version`.
    pub fn new(version: Version, methods: &[&'static str]) -> Self {
        Self {
            version,
            methods: methods.iter().copied().collect(),
        }
    }

    /// Decides whether `message` may be served: the method must exist, and
    /// the version must satisfy [`Version::can_serve`].
    ///
    /// # Errors
    /// [`DispatchError::NoSuchMethod`] or [`DispatchError::UnsupportedVersion`].
    pub fn check(&self, message: &RpcMessage) -> Result<(), DispatchError> {
        if !self.methods.contains(message.method.as_str()) {
            return Err(DispatchError::NoSuchMethod {
                method: message.method.clone(),
            });
        }
        if !self.version.can_serve(message.version) {
            return Err(DispatchError::UnsupportedVersion {
                method: message.method.clone(),
                requested: message.version,
                served: self.version,
            });
        }
        Ok(())
    }
}

/// Decodes a message's arguments into the method's argument type.
///
/// # Errors
/// [`DispatchError::BadArguments`].
pub fn decode_args<T: serde::de::DeserializeOwned>(
    message: &RpcMessage,
) -> Result<T, DispatchError> {
    serde_json::from_value(message.args.clone()).map_err(|e| DispatchError::BadArguments {
        method: message.method.clone(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RequestContext;

    fn message(method: &str, version: &str) -> RpcMessage {
        RpcMessage {
            method: method.into(),
            version: version.parse().unwrap(),
            args: serde_json::json!({}),
            context: RequestContext::default(),
        }
    }

    #[test]
    fn serves_compatible_versions_and_refuses_the_rest_distinctly() {
        let endpoint = Endpoint::new(Version::new(3, 20), &["create_volume", "delete_volume"]);
        assert_eq!(endpoint.check(&message("create_volume", "3.0")), Ok(()));
        assert_eq!(endpoint.check(&message("create_volume", "3.20")), Ok(()));
        assert!(matches!(
            endpoint.check(&message("create_volume", "3.21")),
            Err(DispatchError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            endpoint.check(&message("create_volume", "2.6")),
            Err(DispatchError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            endpoint.check(&message("create_volume", "4.0")),
            Err(DispatchError::UnsupportedVersion { .. })
        ));
        assert_eq!(
            endpoint.check(&message("frobnicate", "3.0")),
            Err(DispatchError::NoSuchMethod {
                method: "frobnicate".into()
            })
        );
        // A missing method is reported as such even at a bad version.
        assert!(matches!(
            endpoint.check(&message("frobnicate", "9.0")),
            Err(DispatchError::NoSuchMethod { .. })
        ));
    }

    #[test]
    fn errors_cross_the_wire_with_distinct_texts() {
        let e: RemoteError = DispatchError::NoSuchMethod { method: "x".into() }.into();
        assert!(e.message.starts_with("NoSuchMethod"));
        assert_eq!(e.kind, ErrorKind::NotImplemented);
        let e: RemoteError = DispatchError::UnsupportedVersion {
            method: "x".into(),
            requested: Version::new(3, 9),
            served: Version::new(3, 1),
        }
        .into();
        assert!(e.message.starts_with("UnsupportedVersion"));
    }
}
