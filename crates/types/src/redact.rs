//! Keeping secrets out of log lines, error messages and configuration
//! dumps: one place that knows what a secret looks like.
//!
//! Passwords live in URLs (`[database] connection`, `transport_url`, with
//! several `user:pass@host` entries separated by commas), in URL query
//! parameters, and in options whose names say so (`password`,
//! `*_secret*`, `*_token*`, `*_key` — CHAP secrets, Swift keys, S3 secret
//! keys, memcache keys).

/// What replaces a secret.
pub const MASK: &str = "***";

/// Whether an option (or query parameter) named `name` holds a secret.
/// File paths to keys (`key_file`, `ssl_key_file`, `keyfile`) are not
/// secrets; the keys themselves are.
pub fn is_secret_option(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    if name.ends_with("_file") || name.ends_with("file") || name.ends_with("_path") {
        return false;
    }
    [
        "password",
        "passwd",
        "secret",
        "token",
        "credential",
        "auth_key",
    ]
    .iter()
    .any(|word| name.contains(word))
        || name.ends_with("_key")
        || name == "key"
}

/// `url` with every password in its authority and every secret query
/// parameter replaced by [`MASK`]; text that is not a URL comes back as it
/// is.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let (scheme, rest) = url.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = authority
        .split(',')
        .map(|entry| match entry.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:{MASK}@{host}"),
                None => entry.to_owned(),
            },
            None => entry.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",");
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            let query = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if is_secret_option(name) => format!("{name}={MASK}"),
                    _ => pair.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("&");
            match fragment {
                Some(f) => format!("{path}?{query}#{f}"),
                None => format!("{path}?{query}"),
            }
        }
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
}

/// The value of option `name` as it may be shown: masked when the option
/// holds a secret, its URLs' passwords masked otherwise.
pub fn redact_option(name: &str, value: &str) -> String {
    if is_secret_option(name) && !value.is_empty() {
        MASK.to_owned()
    } else {
        redact_url(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(
            redact_url("mysql+pymysql://cinder:secret@db/cinder?charset=utf8"),
            "mysql+pymysql://cinder:***@db/cinder?charset=utf8"
        );
        assert_eq!(
            redact_url("rabbit://a:pw1@h1:5672,b:pw2@h2:5672/vh"),
            "rabbit://a:***@h1:5672,b:***@h2:5672/vh"
        );
        assert_eq!(
            redact_url("rabbit://u:p@ss:w@rd@h/"),
            "rabbit://u:***@h/",
            "the last @ ends the userinfo"
        );
        assert_eq!(redact_url("sqlite:///x.sqlite"), "sqlite:///x.sqlite");
        assert_eq!(
            redact_url("rabbit://guest@h:5672/"),
            "rabbit://guest@h:5672/"
        );
        assert_eq!(
            redact_url("postgresql://h/db?sslmode=require&password=hunter2"),
            "postgresql://h/db?sslmode=require&password=***"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn secret_options_are_recognised() {
        for name in [
            "password",
            "admin_password",
            "backup_swift_key",
            "backup_s3_secret_key",
            "memcache_secret_key",
            "chap_password",
            "auth_token",
        ] {
            assert!(is_secret_option(name), "{name}");
        }
        for name in [
            "key_file",
            "ssl_key_file",
            "keyfile",
            "username",
            "host",
            "cafile",
        ] {
            assert!(!is_secret_option(name), "{name}");
        }
        assert_eq!(redact_option("password", "x"), MASK);
        assert_eq!(
            redact_option("connection", "pg://u:x@h/d"),
            "pg://u:***@h/d"
        );
    }
}
