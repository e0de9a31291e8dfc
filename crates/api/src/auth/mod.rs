//! Authentication strategies beyond noauth: Keystone tokens
//! ([`keystone`], keystonemiddleware's `auth_token`) and HTTP basic against
//! an htpasswd file ([`http_basic`]), built from the configuration by
//! [`authenticator_from_config`].

pub mod cache;
pub mod http_basic;
pub mod keystone;

use std::sync::Arc;

use clinker_config::{AuthStrategy, Config};
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
                    .with_catalog(config.image.glance_api_servers.is_none()),
            ))
        }
        AuthStrategy::HttpBasic => Ok(Arc::new(http_basic::HttpBasicAuthenticator::new(
            &config.auth.http_basic_auth_user_file,
            clock,
        )?)),
    }
}
