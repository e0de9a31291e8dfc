//! Authentication strategies beyond noauth: Keystone tokens
//! ([`keystone`], keystonemiddleware's `auth_token`) and HTTP basic against
//! an htpasswd file ([`http_basic`]), built from the configuration by
//! [`authenticator_from_config`].

pub mod cache;
pub mod http_basic;
pub mod keystone;

use std::sync::Arc;

use clinker_config::{AuthStrategy, Config, SessionTlsOptions};
use clinker_types::{Clock, SystemClock};

use crate::context::{Authenticator, NoAuth};

/// Why the configured authentication cannot be used; start-up stops.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthSetupError(pub String);

/// The authenticator `[DEFAULT] auth_strategy` asks for.
///
/// # Errors
/// Keystone without its `[keystone_authtoken]` options, an unreadable or
/// non-bcrypt htpasswd file.
pub fn authenticator_from_config(
    config: &Config,
) -> Result<Arc<dyn Authenticator>, AuthSetupError> {
    authenticator_with_clock(config, Arc::new(SystemClock))
}

/// [`authenticator_from_config`] with an explicit clock (token expiry and
/// cache lifetimes are measured with it).
///
/// # Errors
/// See [`authenticator_from_config`].
pub fn authenticator_with_clock(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn Authenticator>, AuthSetupError> {
    match config.default.auth_strategy {
        AuthStrategy::Noauth | AuthStrategy::NoauthIncludeProjectId => Ok(Arc::new(NoAuth)),
        AuthStrategy::Keystone => {
            let options = config.auth.keystone_authtoken.clone().ok_or_else(|| {
                AuthSetupError("auth_strategy = keystone needs [keystone_authtoken]".into())
            })?;
            // Without glance_api_servers Glance comes from the caller's
            // catalog (glance_catalog_info), so validations fetch it.
            Ok(Arc::new(
                keystone::KeystoneAuthenticator::new(options, clock)?
                    .with_catalog(config.image.glance_api_servers.is_none())
                    .with_compute_tls(&config.auth.nova_tls)?,
            ))
        }
        AuthStrategy::HttpBasic => Ok(Arc::new(http_basic::HttpBasicAuthenticator::new(
            &config.auth.http_basic_auth_user_file,
            clock,
        )?)),
    }
}

/// keystoneauth's session TLS options on `builder`: `cafile` (then only
/// those CAs, as keystoneauth's `verify=cafile`), `certfile`/`keyfile`,
/// `insecure`. Files are read now, so a bad one stops start-up naming
/// `[section] option`.
///
/// # Errors
/// A file cannot be read, or holds no certificate or key.
pub(crate) fn session_tls(
    mut builder: reqwest::ClientBuilder,
    tls: &SessionTlsOptions,
    section: &str,
) -> Result<reqwest::ClientBuilder, AuthSetupError> {
    let bad = |option: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        AuthSetupError(format!("[{section}] {option} {}: {e}", path.display()))
    };
    if let Some(cafile) = &tls.cafile {
        let pem = std::fs::read(cafile).map_err(|e| bad("cafile", cafile, &e))?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad("cafile", cafile, &e))?;
        if certs.is_empty() {
            return Err(bad("cafile", cafile, &"no PEM certificate in the file"));
        }
        builder = builder.tls_certs_only(certs);
    }
    if let Some((certfile, keyfile)) = &tls.client_cert {
        let mut pem = std::fs::read(certfile).map_err(|e| bad("certfile", certfile, &e))?;
        pem.extend(std::fs::read(keyfile).map_err(|e| bad("keyfile", keyfile, &e))?);
        let identity =
            reqwest::Identity::from_pem(&pem).map_err(|e| bad("certfile", certfile, &e))?;
        builder = builder.identity(identity);
    }
    if tls.insecure {
        tracing::warn!("[{section}] insecure = true: the peer's certificate is not verified");
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    Ok(builder)
}
