//! Operating options: the load balancer's health check
//! (`[healthcheck]`, oslo.middleware's names), the log format
//! (`[DEFAULT] use_json` as oslo.log spells it, or Clinker's `log_format`),
//! the Prometheus endpoint (`[metrics]`) and TLS on the API listener
//! (`[ssl]`, oslo.service's names).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::ConfigError;
use crate::reader::OptionReader;

const HEALTHCHECK: &str = "healthcheck";
const METRICS: &str = "metrics";
const SSL: &str = "ssl";

/// Where `[metrics] listen` points when the all-in-one is given no value:
/// this machine only, on a fixed port Prometheus can be told about.
pub const ALL_IN_ONE_METRICS_LISTEN: &str = "127.0.0.1:9776";

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (tracing's default format).
    Text,
    /// One JSON object per line, the request's span fields included.
    Json,
}

/// `[healthcheck]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthcheckOptions {
    /// `disable_by_file_path`: while this file exists, `/healthcheck`
    /// answers 503 `DISABLED BY FILE` (how operators drain a node).
    pub disable_by_file_path: Option<PathBuf>,
}

/// `[metrics]` (Clinker): the Prometheus endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsOptions {
    /// `listen` (`address:port`): where `GET /metrics` is served; `None`
    /// turns metrics off. Unset, it is off for the multi-node roles and
    /// [`ALL_IN_ONE_METRICS_LISTEN`] for `clinker serve`.
    pub listen: Option<SocketAddr>,
    /// Whether `listen` was set explicitly (a default address that is
    /// taken only costs a warning; an explicit one stops start-up).
    pub explicit: bool,
}

/// `[ssl]`: TLS on the API listener.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SslOptions {
    /// `cert_file`: the server certificate chain (PEM).
    pub cert_file: Option<PathBuf>,
    /// `key_file`: its private key (PEM).
    pub key_file: Option<PathBuf>,
    /// `ca_file`: when set, clients must present a certificate signed by
    /// one of these CAs.
    pub ca_file: Option<PathBuf>,
}

impl SslOptions {
    /// Whether the API listens with TLS.
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some()
    }
}

/// Everything an operator uses to run and watch Clinker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpsOptions {
    /// `[healthcheck]`.
    pub healthcheck: HealthcheckOptions,
    /// `[DEFAULT] use_json` / `log_format`.
    pub log_format: LogFormat,
    /// `[metrics]`.
    pub metrics: MetricsOptions,
    /// `[ssl]`.
    pub ssl: SslOptions,
}

pub(crate) fn read_ops_options(
    r: &mut OptionReader<'_>,
    all_in_one: bool,
) -> Result<OpsOptions, ConfigError> {
    let disable_by_file_path = r
        .opt_string(HEALTHCHECK, &[], "disable_by_file_path")?
        .map(PathBuf::from);
    // oslo.middleware's other knobs: Clinker always runs the
    // disable_by_file backend and answers every source.
    for option in [
        "backends",
        "detailed",
        "path",
        "allowed_source_ranges",
        "ignore_proxied_requests",
        "disable_by_file_paths",
        "enable_by_file_paths",
    ] {
        r.accept(HEALTHCHECK, option);
    }

    let use_json = r.bool("DEFAULT", &[], "use_json", false)?;
    let log_format = match r
        .choice("DEFAULT", &[], "log_format", "text", &["text", "json"])?
        .as_str()
    {
        "json" => LogFormat::Json,
        _ if use_json => LogFormat::Json,
        _ => LogFormat::Text,
    };

    let listen_text = r.raw(METRICS, &[], "listen")?;
    let explicit = listen_text.is_some();
    let listen_text = match listen_text {
        Some(text) => text.trim().to_owned(),
        None if all_in_one => ALL_IN_ONE_METRICS_LISTEN.to_owned(),
        None => String::new(),
    };
    let listen = if listen_text.is_empty() {
        None
    } else {
        Some(listen_text.parse::<SocketAddr>().map_err(|_| {
            ConfigError::invalid(
                METRICS,
                "listen",
                &listen_text,
                "must be address:port (empty turns metrics off)".into(),
            )
        })?)
    };

    let file = |r: &mut OptionReader<'_>, option: &str| -> Result<_, ConfigError> {
        Ok(r.opt_string(SSL, &[], option)?.map(PathBuf::from))
    };
    let ssl = SslOptions {
        cert_file: file(r, "cert_file")?,
        key_file: file(r, "key_file")?,
        ca_file: file(r, "ca_file")?,
    };
    for option in ["version", "ciphers"] {
        r.accept(SSL, option);
    }
    if ssl.cert_file.is_some() != ssl.key_file.is_some() {
        let (set, missing) = if ssl.cert_file.is_some() {
            ("cert_file", "key_file")
        } else {
            ("key_file", "cert_file")
        };
        return Err(ConfigError::Missing(format!(
            "[ssl] {set} is set but {missing} is not: TLS needs both"
        )));
    }
    if ssl.ca_file.is_some() && ssl.cert_file.is_none() {
        return Err(ConfigError::Missing(
            "[ssl] ca_file is set without cert_file and key_file".into(),
        ));
    }
    Ok(OpsOptions {
        healthcheck: HealthcheckOptions {
            disable_by_file_path,
        },
        log_format,
        metrics: MetricsOptions { listen, explicit },
        ssl,
    })
}
