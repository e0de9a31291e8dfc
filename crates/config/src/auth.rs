//! Authentication and policy options: `[keystone_authtoken]` with
//! keystonemiddleware's option names, `[DEFAULT] http_basic_auth_user_file`
//! (oslo.middleware's basic auth) and `[oslo_policy]`.
//!
//! The `[keystone_authtoken]` options are only required when
//! `auth_strategy = keystone`; other strategies accept the section silently
//! so one `cinder.conf` can be switched between strategies.

use std::path::{Path, PathBuf};

use crate::reader::OptionReader;
use crate::{AuthStrategy, ConfigError};

const KS: &str = "keystone_authtoken";
const POLICY: &str = "oslo_policy";

/// keystonemiddleware options that Clinker accepts without effect (caching
/// back ends, catalog and bind options).
const ACCEPTED_AUTHTOKEN_OPTIONS: &[&str] = &[
    "memcached_servers",
    "memcache_servers",
    "memcache_security_strategy",
    "memcache_secret_key",
    "memcache_pool_dead_retry",
    "memcache_pool_maxsize",
    "memcache_pool_socket_timeout",
    "memcache_pool_unused_timeout",
    "memcache_pool_conn_get_timeout",
    "memcache_use_advanced_pool",
    "memcache_tls_enabled",
    "interface",
    "auth_version",
    "auth_section",
    "service_type",
    "include_service_catalog",
    "enforce_token_bind",
    "delay_auth_decision",
    "http_request_max_retries",
    "cache",
    "region_name",
    "system_scope",
    "domain_id",
    "domain_name",
    "user_id",
    "project_id",
    "default_domain_id",
    "default_domain_name",
    "trust_id",
];

/// `[keystone_authtoken]`: how tokens are validated against Keystone v3.
/// (`Debug` masks the password.)
#[derive(Clone, PartialEq, Eq)]
pub struct KeystoneAuthtokenOptions {
    /// `www_authenticate_uri`: the public identity endpoint advertised in
    /// `WWW-Authenticate` on a 401 (defaults to `auth_url`).
    pub www_authenticate_uri: Option<String>,
    /// `auth_url`: where the service user authenticates and tokens are
    /// validated (`http://` or `https://`).
    pub auth_url: String,
    /// `auth_type`: only `password` (keystoneauth's `password`/`v3password`).
    pub auth_type: String,
    /// `username` of the service user.
    pub username: String,
    /// `password` of the service user.
    pub password: String,
    /// `project_name` the service user's token is scoped to.
    pub project_name: String,
    /// `user_domain_name` (or `user_domain_id` in [`Self::user_domain_id`]).
    pub user_domain_name: Option<String>,
    /// `user_domain_id`.
    pub user_domain_id: Option<String>,
    /// `project_domain_name`.
    pub project_domain_name: Option<String>,
    /// `project_domain_id`.
    pub project_domain_id: Option<String>,
    /// `service_token_roles`: a service token must carry one of these roles
    /// (default `service`).
    pub service_token_roles: Vec<String>,
    /// `service_token_roles_required`: a service token without one of
    /// [`Self::service_token_roles`] is rejected (default true).
    pub service_token_roles_required: bool,
    /// `token_cache_time` seconds a validation is reused (default 300; -1
    /// turns caching off).
    pub token_cache_time: i64,
    /// `http_connect_timeout` seconds for calls to Keystone (default 10).
    pub http_connect_timeout: u64,
    /// `cafile`, `certfile`/`keyfile`, `insecure` towards an `https`
    /// Keystone.
    pub tls: SessionTlsOptions,
}

/// keystoneauth's session TLS options, as `[keystone_authtoken]` and
/// `[nova]` spell them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionTlsOptions {
    /// `cafile`: the only CAs an `https` peer's certificate may chain to
    /// (the system's roots when unset).
    pub cafile: Option<PathBuf>,
    /// `certfile` and `keyfile`: a client certificate to present.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// `insecure`: do not verify the peer's certificate.
    pub insecure: bool,
}

/// The session TLS options of `section`.
fn read_session_tls(
    r: &mut OptionReader<'_>,
    section: &str,
) -> Result<SessionTlsOptions, ConfigError> {
    Ok(SessionTlsOptions {
        cafile: r.opt_string(section, &[], "cafile")?.map(PathBuf::from),
        client_cert: match (
            r.opt_string(section, &[], "certfile")?,
            r.opt_string(section, &[], "keyfile")?,
        ) {
            (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Missing(format!(
                    "[{section}] certfile and keyfile go together"
                )));
            }
        },
        insecure: r.bool(section, &[], "insecure", false)?,
    })
}

impl std::fmt::Debug for KeystoneAuthtokenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeystoneAuthtokenOptions")
            .field("auth_url", &self.auth_url)
            .field("www_authenticate_uri", &self.www_authenticate_uri)
            .field("auth_type", &self.auth_type)
            .field("username", &self.username)
            .field("password", &clinker_types::redact::MASK)
            .field("project_name", &self.project_name)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// `[oslo_policy]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OsloPolicyOptions {
    /// `policy_file` as written (default `policy.yaml`).
    pub policy_file: String,
    /// Whether `policy_file` was set explicitly: then a missing file stops
    /// start-up instead of silently meaning "the defaults".
    pub policy_file_explicit: bool,
    /// The directories of the configuration files, last file first: a
    /// relative `policy_file` is looked up there (oslo.config's
    /// `find_file`).
    pub config_dirs: Vec<PathBuf>,
}

impl OsloPolicyOptions {
    /// The policy file to read, if one exists.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] when `policy_file` was set explicitly and
    /// cannot be found.
    pub fn resolve(&self) -> Result<Option<PathBuf>, ConfigError> {
        let path = Path::new(&self.policy_file);
        let found = if path.is_absolute() {
            path.exists().then(|| path.to_path_buf())
        } else {
            self.config_dirs
                .iter()
                .map(|dir| dir.join(path))
                .find(|candidate| candidate.exists())
        };
        if found.is_none() && self.policy_file_explicit {
            return Err(ConfigError::Missing(format!(
                "[oslo_policy] policy_file {} was not found (looked in {})",
                self.policy_file,
                if path.is_absolute() {
                    "its absolute path".to_owned()
                } else {
                    self.config_dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )));
        }
        Ok(found)
    }
}

/// Authentication and policy options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthOptions {
    /// `[keystone_authtoken]`, present when `auth_strategy = keystone`.
    pub keystone_authtoken: Option<KeystoneAuthtokenOptions>,
    /// `[DEFAULT] http_basic_auth_user_file` (oslo.middleware's default
    /// `/etc/htpasswd`): the htpasswd file of `auth_strategy = http_basic`.
    pub http_basic_auth_user_file: PathBuf,
    /// `[oslo_policy]`.
    pub oslo_policy: OsloPolicyOptions,
    /// `[nova] cafile`, `certfile`/`keyfile`, `insecure`: how the API
    /// reaches Keystone and Nova when it asks Compute on a caller's behalf
    /// (Cinder's `novaclient` session).
    pub nova_tls: SessionTlsOptions,
}

fn required(r: &mut OptionReader<'_>, option: &str) -> Result<String, ConfigError> {
    r.opt_string(KS, &[], option)?.ok_or_else(|| {
        ConfigError::Missing(format!("auth_strategy = keystone needs [{KS}] {option}"))
    })
}

fn read_keystone(r: &mut OptionReader<'_>) -> Result<KeystoneAuthtokenOptions, ConfigError> {
    let auth_url = required(r, "auth_url")?;
    if !auth_url.starts_with("http://") && !auth_url.starts_with("https://") {
        return Err(ConfigError::invalid(
            KS,
            "auth_url",
            &auth_url,
            "must be an http:// or https:// URL".into(),
        ));
    }
    let auth_type = r.string(KS, &[], "auth_type", "password")?;
    if !matches!(auth_type.as_str(), "password" | "v3password") {
        return Err(ConfigError::invalid(
            KS,
            "auth_type",
            &auth_type,
            "only the password auth type is supported".into(),
        ));
    }
    let options = KeystoneAuthtokenOptions {
        www_authenticate_uri: r
            .opt_string(KS, &[], "www_authenticate_uri")?
            .or(r.opt_string(KS, &[], "auth_uri")?),
        auth_url,
        auth_type,
        username: required(r, "username")?,
        password: required(r, "password")?,
        project_name: required(r, "project_name")?,
        user_domain_name: r.opt_string(KS, &[], "user_domain_name")?,
        user_domain_id: r.opt_string(KS, &[], "user_domain_id")?,
        project_domain_name: r.opt_string(KS, &[], "project_domain_name")?,
        project_domain_id: r.opt_string(KS, &[], "project_domain_id")?,
        service_token_roles: r.list(KS, &[], "service_token_roles", &["service"])?,
        service_token_roles_required: r.bool(KS, &[], "service_token_roles_required", true)?,
        token_cache_time: r.int(KS, &[], "token_cache_time", 300, -1..=86_400)?,
        http_connect_timeout: r
            .int(KS, &[], "http_connect_timeout", 10, 1..=600)?
            .unsigned_abs(),
        tls: read_session_tls(r, KS)?,
    };
    if options.user_domain_name.is_none() && options.user_domain_id.is_none() {
        return Err(ConfigError::Missing(format!(
            "auth_strategy = keystone needs [{KS}] user_domain_name or user_domain_id"
        )));
    }
    if options.project_domain_name.is_none() && options.project_domain_id.is_none() {
        return Err(ConfigError::Missing(format!(
            "auth_strategy = keystone needs [{KS}] project_domain_name or project_domain_id"
        )));
    }
    Ok(options)
}

/// Reads the options of this module; `config_dirs` are the directories of
/// the configuration files, last file first.
pub(crate) fn read_auth_options(
    r: &mut OptionReader<'_>,
    strategy: AuthStrategy,
    config_dirs: Vec<PathBuf>,
) -> Result<AuthOptions, ConfigError> {
    let keystone_authtoken = if strategy == AuthStrategy::Keystone {
        Some(read_keystone(r)?)
    } else {
        // Another strategy: the section may still be there (one file for
        // several strategies); accept it without reading it.
        for option in [
            "www_authenticate_uri",
            "auth_uri",
            "auth_url",
            "auth_type",
            "username",
            "password",
            "project_name",
            "user_domain_name",
            "user_domain_id",
            "project_domain_name",
            "project_domain_id",
            "service_token_roles",
            "service_token_roles_required",
            "token_cache_time",
            "http_connect_timeout",
        ] {
            r.accept(KS, option);
        }
        None
    };
    for option in ACCEPTED_AUTHTOKEN_OPTIONS {
        r.accept(KS, option);
    }
    let http_basic_auth_user_file =
        PathBuf::from(r.string("DEFAULT", &[], "http_basic_auth_user_file", "/etc/htpasswd")?);
    let explicit = r.opt_string(POLICY, &[], "policy_file")?;
    for option in ["policy_dirs", "policy_default_rule", "remote_content_type"] {
        r.accept(POLICY, option);
    }
    // Clinker always enforces the new (reader/member/admin) defaults and
    // treats tokens as project scoped; the switches are accepted so that a
    // Cinder configuration loads, and warned about when they ask for the
    // legacy behaviour (see `Config::warnings`).
    r.bool(POLICY, &[], "enforce_new_defaults", true)?;
    r.bool(POLICY, &[], "enforce_scope", true)?;
    let nova_tls = read_session_tls(r, "nova")?;
    Ok(AuthOptions {
        nova_tls,
        keystone_authtoken,
        http_basic_auth_user_file,
        oslo_policy: OsloPolicyOptions {
            policy_file_explicit: explicit.is_some(),
            policy_file: explicit.unwrap_or_else(|| "policy.yaml".to_owned()),
            config_dirs,
        },
    })
}

/// Warnings about accepted options whose request Clinker does not honour.
pub(crate) fn auth_warnings(r: &mut OptionReader<'_>) -> Result<Vec<String>, ConfigError> {
    let mut warnings = Vec::new();
    if !r.bool(POLICY, &[], "enforce_new_defaults", true)? {
        warnings.push(
            "[oslo_policy] enforce_new_defaults = false is ignored: Clinker enforces Cinder's reader/member/admin defaults"
                .to_owned(),
        );
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use crate::{AuthStrategy, Config, ConfigEnv, ConfigError, Ini};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut ini = Ini::default();
        ini.merge_text(text, "test.conf")?;
        Config::from_ini(
            &ini,
            &ConfigEnv {
                hostname: "node1".into(),
            },
        )
    }

    const KEYSTONE: &str = "[DEFAULT]\nauth_strategy = keystone\n[keystone_authtoken]\n\
        www_authenticate_uri = https://keystone.example/v3\nauth_url = http://127.0.0.1:5000\n\
        auth_type = password\nusername = cinder\npassword = secret\nproject_name = service\n\
        user_domain_name = Default\nproject_domain_name = Default\nmemcached_servers = localhost:11211\n";

    #[test]
    fn keystone_options_have_keystonemiddleware_defaults() {
        let cfg = parse(KEYSTONE).unwrap();
        assert_eq!(cfg.default.auth_strategy, AuthStrategy::Keystone);
        let ks = cfg.auth.keystone_authtoken.unwrap();
        assert_eq!(ks.auth_url, "http://127.0.0.1:5000");
        assert_eq!(
            ks.www_authenticate_uri.as_deref(),
            Some("https://keystone.example/v3")
        );
        assert_eq!(ks.service_token_roles, vec!["service".to_owned()]);
        assert!(ks.service_token_roles_required);
        assert_eq!(ks.token_cache_time, 300);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }

    #[test]
    fn keystone_needs_its_credentials_and_an_http_url() {
        let missing = parse(
            "[DEFAULT]\nauth_strategy = keystone\n[keystone_authtoken]\nauth_url = http://k\n",
        )
        .unwrap_err();
        assert!(missing.to_string().contains("username"), "{missing}");
        let ftp = parse(&KEYSTONE.replace("http://127.0.0.1:5000", "ftp://k:5000")).unwrap_err();
        let text = ftp.to_string();
        assert!(text.contains("auth_url"), "{text}");
        let https = parse(&format!(
            "{}cafile = /etc/ssl/keystone-ca.pem\ninsecure = false\n\
             [nova]\ncafile = /etc/ssl/nova-ca.pem\ninsecure = true\n",
            KEYSTONE.replace("http://127.0.0.1:5000", "https://k:5000")
        ))
        .unwrap();
        assert_eq!(
            https.auth.nova_tls.cafile.as_deref(),
            Some(std::path::Path::new("/etc/ssl/nova-ca.pem"))
        );
        assert!(https.auth.nova_tls.insecure);
        let half = parse(&format!("{KEYSTONE}[nova]\ncertfile = /c.pem\n")).unwrap_err();
        assert!(
            half.to_string().contains("[nova] certfile and keyfile"),
            "{half}"
        );
        let keystone = https.auth.keystone_authtoken.unwrap();
        assert_eq!(keystone.auth_url, "https://k:5000");
        assert_eq!(
            keystone.tls.cafile.as_deref(),
            Some(std::path::Path::new("/etc/ssl/keystone-ca.pem"))
        );
        assert!(!format!("{keystone:?}").contains(&keystone.password));
        let token =
            parse(&KEYSTONE.replace("auth_type = password", "auth_type = token")).unwrap_err();
        assert!(token.to_string().contains("auth_type"), "{token}");
        let bad_cache = parse(&format!("{KEYSTONE}token_cache_time = soon\n")).unwrap_err();
        assert!(bad_cache.to_string().contains("token_cache_time"));
    }

    #[test]
    fn unknown_authtoken_options_are_warned() {
        let cfg = parse(&format!("{KEYSTONE}frobnicate = 1\n")).unwrap();
        assert!(
            cfg.warnings
                .iter()
                .any(|w| w.contains("frobnicate") && w.contains("keystone_authtoken")),
            "{:?}",
            cfg.warnings
        );
    }

    #[test]
    fn other_strategies_ignore_the_keystone_section() {
        let cfg = parse("[DEFAULT]\nauth_strategy = http_basic\nhttp_basic_auth_user_file = /tmp/users\n[keystone_authtoken]\nusername = cinder\n").unwrap();
        assert!(cfg.auth.keystone_authtoken.is_none());
        assert_eq!(
            cfg.auth.http_basic_auth_user_file,
            std::path::PathBuf::from("/tmp/users")
        );
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }

    #[test]
    fn policy_file_is_found_next_to_the_config() {
        let dir = std::env::temp_dir().join(format!("clinker-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("cinder.conf");
        std::fs::write(&conf, "[DEFAULT]\n").unwrap();
        let env = ConfigEnv {
            hostname: "n".into(),
        };
        // Default name, absent: the defaults apply.
        let cfg = Config::load(std::slice::from_ref(&conf), &env).unwrap();
        assert_eq!(cfg.auth.oslo_policy.resolve().unwrap(), None);
        std::fs::write(
            dir.join("policy.yaml"),
            "\"volume:create\": \"role:admin\"\n",
        )
        .unwrap();
        let cfg = Config::load(std::slice::from_ref(&conf), &env).unwrap();
        assert_eq!(
            cfg.auth.oslo_policy.resolve().unwrap(),
            Some(dir.join("policy.yaml"))
        );
        // Named explicitly and absent: start-up stops.
        std::fs::write(&conf, "[oslo_policy]\npolicy_file = nope.yaml\n").unwrap();
        let cfg = Config::load(std::slice::from_ref(&conf), &env).unwrap();
        let err = cfg.auth.oslo_policy.resolve().unwrap_err();
        assert!(err.to_string().contains("nope.yaml"), "{err}");
        std::fs::write(&conf, "[oslo_policy]\nenforce_new_defaults = false\n").unwrap();
        let cfg = Config::load(std::slice::from_ref(&conf), &env).unwrap();
        assert!(
            cfg.warnings
                .iter()
                .any(|w| w.contains("enforce_new_defaults"))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
