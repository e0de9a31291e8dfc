//! `[database] connection` as oslo.db reads it (an SQLAlchemy URL) turned
//! into the URL sqlx reads, TLS parameters included.
//!
//! TLS follows what the Python driver behind each scheme would do with the
//! same URL, so a `cinder.conf` means the same thing to Clinker:
//!
//! - `postgresql://` (psycopg2, i.e. libpq): `sslmode` (`disable`, `allow`,
//!   `prefer` — libpq's default —, `require`, `verify-ca`, `verify-full`),
//!   `sslrootcert`, `sslcert`, `sslkey` pass through. As in libpq,
//!   `sslmode=require` with an `sslrootcert` verifies the server's
//!   certificate against it (`verify-ca`).
//! - `mysql+pymysql://`: SQLAlchemy gathers `ssl_ca`, `ssl_cert`, `ssl_key`
//!   and `ssl_check_hostname` into PyMySQL's `ssl` argument. PyMySQL then
//!   verifies the server's certificate and host name when a CA is given
//!   (`ssl_check_hostname=false` leaves the name unchecked), and encrypts
//!   without verifying when only a client certificate is; with none of
//!   them it speaks plain text. These become sqlx's `ssl-mode`
//!   `VERIFY_IDENTITY`, `VERIFY_CA`, `REQUIRED` and `DISABLED`.
//!
//! A TLS option Clinker cannot honour (`sslcrl`, `ssl_capath`, …) is an
//! error, not silently dropped: a security setting that is ignored is
//! worse than a refused start. Other query options that only mean something
//! to the Python drivers (`charset=utf8`, `plugin=…`) are dropped.

use crate::error::DbError;
use crate::pool::Dialect;

/// Translates Cinder's SQLAlchemy URL forms to sqlx's, and names the dialect.
///
/// # Errors
/// An unsupported scheme or TLS option.
pub fn translate_url(url: &str) -> Result<(Dialect, String), DbError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| DbError::Internal(format!("database connection {url:?} is not a URL")))?;
    let base_scheme = scheme.split('+').next().unwrap_or(scheme);
    let (base, query) = match rest.split_once('?') {
        Some((base, query)) => (base, query),
        None => (rest, ""),
    };
    let pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .collect();
    match base_scheme {
        "sqlite" => {
            // SQLAlchemy: sqlite:///relative/path, sqlite:////absolute/path.
            let path = base.strip_prefix('/').unwrap_or(base);
            if path.is_empty() || path == ":memory:" {
                return Err(DbError::Internal(
                    "in-memory SQLite is not supported: each connection would see its own database"
                        .into(),
                ));
            }
            Ok((Dialect::Sqlite, format!("sqlite://{path}?mode=rwc")))
        }
        "postgresql" | "postgres" => Ok((
            Dialect::Postgres,
            with_query(&format!("postgres://{base}"), &postgres_query(&pairs)?),
        )),
        "mysql" | "mariadb" => Ok((
            Dialect::Mysql,
            with_query(&format!("mysql://{base}"), &mysql_query(&pairs)?),
        )),
        other => Err(DbError::Internal(format!(
            "unsupported database scheme {other:?}"
        ))),
    }
}

fn with_query(base: &str, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return base.to_owned();
    }
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{base}?{}", query.join("&"))
}

fn unsupported_tls_option(key: &str) -> DbError {
    DbError::Internal(format!(
        "database connection option {key} is not supported by Clinker; \
         it would weaken or change TLS if ignored, so start-up stops (remove it)"
    ))
}

/// libpq's parameters, kept as they are.
fn postgres_query(pairs: &[(&str, &str)]) -> Result<Vec<(String, String)>, DbError> {
    let mut kept: Vec<(String, String)> = Vec::new();
    for (key, value) in pairs {
        match *key {
            "sslmode" | "sslrootcert" | "sslcert" | "sslkey" | "application_name"
            | "connect_timeout" => kept.push(((*key).to_owned(), (*value).to_owned())),
            key if key.starts_with("ssl") => return Err(unsupported_tls_option(key)),
            _ => {}
        }
    }
    let has_root = kept.iter().any(|(k, _)| k == "sslrootcert");
    for (key, value) in &mut kept {
        if key == "sslmode" && value == "require" && has_root {
            "verify-ca".clone_into(value);
        }
    }
    Ok(kept)
}

/// PyMySQL's `ssl_*` arguments as sqlx's `ssl-*` options.
fn mysql_query(pairs: &[(&str, &str)]) -> Result<Vec<(String, String)>, DbError> {
    let mut ca = None;
    let mut cert = None;
    let mut key = None;
    let mut check_hostname = true;
    for (name, value) in pairs {
        match *name {
            "ssl_ca" => ca = Some(*value),
            "ssl_cert" => cert = Some(*value),
            "ssl_key" => key = Some(*value),
            "ssl_check_hostname" => {
                check_hostname = match value.to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => true,
                    "0" | "false" | "no" | "off" => false,
                    _ => {
                        return Err(DbError::Internal(format!(
                            "database connection option ssl_check_hostname={value} is not a boolean"
                        )));
                    }
                }
            }
            name if name.starts_with("ssl") => return Err(unsupported_tls_option(name)),
            _ => {}
        }
    }
    if cert.is_some() != key.is_some() {
        return Err(DbError::Internal(
            "database connection: ssl_cert and ssl_key must be given together".into(),
        ));
    }
    let mode = match (ca, cert) {
        (Some(_), _) if check_hostname => "VERIFY_IDENTITY",
        (Some(_), _) => "VERIFY_CA",
        (None, Some(_)) => "REQUIRED",
        (None, None) => "DISABLED",
    };
    let mut kept = vec![("ssl-mode".to_owned(), mode.to_owned())];
    for (option, value) in [("ssl-ca", ca), ("ssl-cert", cert), ("ssl-key", key)] {
        if let Some(value) = value {
            kept.push((option.to_owned(), value.to_owned()));
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn translated(url: &str) -> String {
        translate_url(url).unwrap().1
    }

    #[test]
    fn translates_cinder_urls() {
        assert_eq!(
            translate_url("sqlite:///./clinker-data/c.sqlite").unwrap(),
            (
                Dialect::Sqlite,
                "sqlite://./clinker-data/c.sqlite?mode=rwc".to_owned()
            )
        );
        assert_eq!(
            translated("sqlite:////var/lib/c.sqlite"),
            "sqlite:///var/lib/c.sqlite?mode=rwc"
        );
        assert_eq!(
            translate_url("postgresql+psycopg2://u:p@127.0.0.1/cinder").unwrap(),
            (
                Dialect::Postgres,
                "postgres://u:p@127.0.0.1/cinder".to_owned()
            )
        );
        assert_eq!(
            translate_url("mysql+pymysql://root@127.0.0.1/cinder?charset=utf8").unwrap(),
            (
                Dialect::Mysql,
                "mysql://root@127.0.0.1/cinder?ssl-mode=DISABLED".to_owned()
            )
        );
        assert!(translate_url("oracle://x").is_err());
        assert!(translate_url("sqlite://").is_err());
        assert!(translate_url("nonsense").is_err());
    }

    #[test]
    fn postgres_tls_parameters_pass_through_as_libpq_reads_them() {
        assert_eq!(
            translated(
                "postgresql://u:p@db/c?sslmode=verify-full&sslrootcert=/etc/ca.pem&sslcert=/c.pem&sslkey=/c.key&client_encoding=utf8"
            ),
            "postgres://u:p@db/c?sslmode=verify-full&sslrootcert=/etc/ca.pem&sslcert=/c.pem&sslkey=/c.key"
        );
        assert_eq!(
            translated("postgresql://u@db/c?sslmode=require&sslrootcert=/ca.pem"),
            "postgres://u@db/c?sslmode=verify-ca&sslrootcert=/ca.pem",
            "require with a root certificate verifies, as libpq does"
        );
        assert_eq!(
            translated("postgresql://u@db/c?sslmode=require"),
            "postgres://u@db/c?sslmode=require"
        );
        let refused = translate_url("postgresql://u@db/c?sslcrl=/crl.pem").unwrap_err();
        assert!(refused.to_string().contains("sslcrl"), "{refused}");
    }

    #[test]
    fn pymysql_ssl_arguments_become_sqlx_ssl_modes() {
        assert_eq!(
            translated("mysql+pymysql://u:p@db/c?charset=utf8&ssl_ca=/ca.pem"),
            "mysql://u:p@db/c?ssl-mode=VERIFY_IDENTITY&ssl-ca=/ca.pem"
        );
        assert_eq!(
            translated("mysql+pymysql://u:p@db/c?ssl_ca=/ca.pem&ssl_check_hostname=false"),
            "mysql://u:p@db/c?ssl-mode=VERIFY_CA&ssl-ca=/ca.pem"
        );
        assert_eq!(
            translated("mysql+pymysql://u:p@db/c?ssl_cert=/c.pem&ssl_key=/c.key"),
            "mysql://u:p@db/c?ssl-mode=REQUIRED&ssl-cert=/c.pem&ssl-key=/c.key"
        );
        assert_eq!(
            translated("mysql+pymysql://u:p@db/c?ssl_ca=/ca.pem&ssl_cert=/c.pem&ssl_key=/c.key"),
            "mysql://u:p@db/c?ssl-mode=VERIFY_IDENTITY&ssl-ca=/ca.pem&ssl-cert=/c.pem&ssl-key=/c.key"
        );
        assert!(translate_url("mysql+pymysql://u@db/c?ssl_cert=/c.pem").is_err());
        assert!(translate_url("mysql+pymysql://u@db/c?ssl_capath=/etc/ssl").is_err());
        assert!(translate_url("mysql+pymysql://u@db/c?ssl_check_hostname=maybe").is_err());
    }
}
