//! `[oslo_messaging_rabbit]`: the RabbitMQ options oslo.messaging's rabbit
//! driver reads, TLS included (`ssl`, `ssl_ca_file`, `ssl_cert_file`,
//! `ssl_key_file`, `ssl_version`).
//!
//! TLS is on when `ssl = true` here, or when the `transport_url` says so
//! (`amqps://`, `?ssl=1`); the transport decides with both, and warns
//! when TLS files are set but TLS is off.

use std::path::PathBuf;

use crate::ConfigError;
use crate::reader::OptionReader;

const RABBIT: &str = "oslo_messaging_rabbit";

/// `[oslo_messaging_rabbit]` options.
#[derive(Clone, Debug)]
pub struct MessagingOptions {
    /// `amqp_durable_queues`.
    pub amqp_durable_queues: bool,
    /// `heartbeat_timeout_threshold` seconds (the AMQP heartbeat asked of
    /// the broker; 0 turns heartbeats off).
    pub heartbeat_timeout_threshold: u64,
    /// `ssl` and its files.
    pub ssl: RabbitSslOptions,
}

/// TLS towards RabbitMQ, with oslo.messaging's option names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RabbitSslOptions {
    /// `ssl`: connect with TLS (also turned on by the `transport_url`).
    pub enabled: bool,
    /// `ssl_ca_file`: the CAs the broker's certificate must chain to (the
    /// system's roots when unset).
    pub ca_file: Option<PathBuf>,
    /// `ssl_cert_file`: a client certificate (PEM) for brokers that ask.
    pub cert_file: Option<PathBuf>,
    /// `ssl_key_file`: its private key (PEM).
    pub key_file: Option<PathBuf>,
    /// `ssl_version`.
    pub version: TlsVersion,
}

/// Which TLS versions a client offers. rustls speaks TLS 1.2 and 1.3 only;
/// the older names of Python's `ssl` module are refused at start-up rather
/// than silently upgraded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 or 1.3, the best both sides speak (`ssl_version` unset,
    /// `SSLv23`, `TLS`: Python's "negotiate").
    #[default]
    Negotiate,
    /// TLS 1.2 only (`TLSv1_2`).
    Tls12,
    /// TLS 1.3 only (`TLSv1_3`).
    Tls13,
}

impl TlsVersion {
    /// Parses `ssl_version` as oslo.messaging passes it to Python's `ssl`
    /// module (`TLSv1_2`, `PROTOCOL_TLSv1_2`; `TLSv1.2` is accepted too).
    ///
    /// # Errors
    /// The reason, for a version rustls cannot speak or an unknown name.
    pub fn parse(text: &str) -> Result<Self, String> {
        let name = text.trim();
        let name = name.strip_prefix("PROTOCOL_").unwrap_or(name);
        match name.to_ascii_lowercase().replace('.', "_").as_str() {
            "" | "sslv23" | "tls" | "tls_client" => Ok(Self::Negotiate),
            "tlsv1_2" => Ok(Self::Tls12),
            "tlsv1_3" => Ok(Self::Tls13),
            "sslv2" | "sslv3" | "tlsv1" | "tlsv1_1" => Err(format!(
                "{name} is not offered: Clinker speaks TLS 1.2 and 1.3 (use TLSv1_2, TLSv1_3, or leave it unset)"
            )),
            _ => Err("not a TLS version (TLSv1_2, TLSv1_3, or SSLv23 to negotiate)".to_owned()),
        }
    }
}

/// Reads `[oslo_messaging_rabbit]`.
pub(crate) fn read_messaging_options(
    r: &mut OptionReader<'_>,
) -> Result<MessagingOptions, ConfigError> {
    let amqp_durable_queues = r.bool(RABBIT, &[], "amqp_durable_queues", false)?;
    let heartbeat_timeout_threshold = r
        .int(RABBIT, &[], "heartbeat_timeout_threshold", 30, 0..=3600)?
        .unsigned_abs();
    let enabled = r.bool(RABBIT, &[], "ssl", false)?;
    let file = |r: &mut OptionReader<'_>, option: &str| -> Result<_, ConfigError> {
        Ok(r.opt_string(RABBIT, &[], option)?.map(PathBuf::from))
    };
    let ca_file = file(r, "ssl_ca_file")?;
    let cert_file = file(r, "ssl_cert_file")?;
    let key_file = file(r, "ssl_key_file")?;
    let version = match r.opt_string(RABBIT, &[], "ssl_version")? {
        None => TlsVersion::Negotiate,
        Some(text) => TlsVersion::parse(&text)
            .map_err(|reason| ConfigError::invalid(RABBIT, "ssl_version", &text, reason))?,
    };
    // FIPS mode is a property of the OpenSSL build Python links; rustls
    // with ring has no such switch.
    r.accept(RABBIT, "ssl_enforce_fips_mode");
    if cert_file.is_some() != key_file.is_some() {
        let (set, missing) = if cert_file.is_some() {
            ("ssl_cert_file", "ssl_key_file")
        } else {
            ("ssl_key_file", "ssl_cert_file")
        };
        return Err(ConfigError::Missing(format!(
            "[{RABBIT}] {set} is set but {missing} is not: a client certificate needs both"
        )));
    }
    let ssl = RabbitSslOptions {
        enabled,
        ca_file,
        cert_file,
        key_file,
        version,
    };
    Ok(MessagingOptions {
        amqp_durable_queues,
        heartbeat_timeout_threshold,
        ssl,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ssl_versions_as_oslo_writes_them() {
        for (text, version) in [
            ("", TlsVersion::Negotiate),
            ("SSLv23", TlsVersion::Negotiate),
            ("PROTOCOL_TLS", TlsVersion::Negotiate),
            ("TLSv1_2", TlsVersion::Tls12),
            ("PROTOCOL_TLSv1_2", TlsVersion::Tls12),
            ("tlsv1.2", TlsVersion::Tls12),
            ("TLSv1_3", TlsVersion::Tls13),
        ] {
            assert_eq!(TlsVersion::parse(text), Ok(version), "{text}");
        }
        for refused in ["TLSv1", "TLSv1_1", "SSLv3", "PROTOCOL_SSLv2"] {
            let reason = TlsVersion::parse(refused).unwrap_err();
            assert!(reason.contains("TLS 1.2 and 1.3"), "{refused}: {reason}");
        }
        assert!(TlsVersion::parse("TLSv9").is_err());
    }
}
