//! `transport_url` parsing, as oslo.messaging's `TransportURL.parse` and the
//! rabbit driver read it:
//!
//! ```text
//! rabbit://user:pass@host:port[,userN:passN@hostN:portN]/virtual_host[?query]
//! ```
//!
//! - several comma-separated hosts are failover candidates (the reconnect
//!   supervisor rotates over them);
//! - user, password and virtual host are percent-decoded; the userinfo ends
//!   at the *last* `@` of a host entry, as in oslo;
//! - the port defaults to 5672, a host without credentials uses
//!   `guest`/`guest` (kombu's default) and `rabbit://` alone means
//!   `guest:guest@localhost:5672` (oslo's fallback);
//! - an absent or empty path is the default virtual host `/`;
//! - query options are oslo driver options; they are accepted and ignored,
//!   except `ssl` (`?ssl=1` asks for TLS, `?ssl=0` refuses it whatever
//!   `[oslo_messaging_rabbit] ssl` says);
//! - `amqps://` (kombu's and the AMQP URI spec's scheme) is `rabbit://`
//!   with TLS, its port defaulting to 5671.

use std::fmt;

/// The default AMQP port.
pub const DEFAULT_PORT: u16 = 5672;

/// The default port of `amqps://`.
pub const DEFAULT_TLS_PORT: u16 = 5671;

/// Why a `transport_url` was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// No `scheme://` prefix.
    #[error("invalid transport_url: no scheme (expected rabbit://…)")]
    NoScheme,
    /// A scheme this transport does not speak.
    #[error("invalid transport_url: unsupported scheme {0:?} (expected rabbit or amqps)")]
    UnsupportedScheme(String),
    /// An empty entry in the host list (`h1,,h2`) or an empty host name.
    #[error("invalid transport_url: empty host in {0:?}")]
    EmptyHost(String),
    /// The port is not a number in 1..=65535.
    #[error("invalid transport_url: bad port in {0:?}")]
    BadPort(String),
    /// `[::1` without the closing bracket, or junk after it.
    #[error("invalid transport_url: bad IPv6 address in {0:?}")]
    BadIpv6(String),
    /// A `%` not followed by two hex digits, or bytes that are not UTF-8.
    #[error("invalid transport_url: bad percent-encoding in {0:?}")]
    BadEncoding(String),
    /// `amqps://` with `?ssl=0`.
    #[error("invalid transport_url: amqps:// with ssl=0 asks for TLS and plain text at once")]
    TlsContradiction,
    /// `?ssl=` with something other than a boolean.
    #[error("invalid transport_url: ssl={0:?} is not a boolean")]
    BadSsl(String),
}

/// One broker of the failover list.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name (decoded).
    pub username: String,
    /// Password (decoded). Never printed.
    pub password: String,
}

impl fmt::Debug for BrokerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerAddress")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

impl fmt::Display for BrokerAddress {
    /// `host:port`, brackets around IPv6 addresses; no credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A parsed `transport_url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportUrl {
    /// The failover list, in the order given.
    pub hosts: Vec<BrokerAddress>,
    /// The virtual host (decoded), `/` by default.
    pub virtual_host: String,
    /// What the URL says about TLS: `Some(true)` for `amqps://` or
    /// `?ssl=1`, `Some(false)` for `?ssl=0`, `None` when it is silent
    /// (then `[oslo_messaging_rabbit] ssl` decides).
    pub ssl: Option<bool>,
}

impl fmt::Display for TransportUrl {
    /// The URL without credentials, for logs and errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("rabbit://")?;
        for (index, host) in self.hosts.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{host}")?;
        }
        write!(f, "/{}", percent_encode(&self.virtual_host))
    }
}

impl TransportUrl {
    /// Parses a `transport_url`.
    ///
    /// # Errors
    /// [`UrlError`] for anything oslo would reject or this build cannot do.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let url = url.trim();
        let (scheme, rest) = url.split_once("://").ok_or(UrlError::NoScheme)?;
        if scheme.is_empty() {
            return Err(UrlError::NoScheme);
        }
        // `kombu` is oslo's alias of the rabbit driver; `amqp` would be the
        // AMQP 1.0 driver there, which this is not.
        let amqps = match scheme {
            "rabbit" | "kombu" => false,
            "amqps" => true,
            _ => return Err(UrlError::UnsupportedScheme(scheme.to_owned())),
        };
        let default_port = if amqps {
            DEFAULT_TLS_PORT
        } else {
            DEFAULT_PORT
        };
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let rest = rest.split_once('#').map_or(rest, |(rest, _fragment)| rest);
        let (netloc, path) = match rest.find('/') {
            Some(index) => (&rest[..index], Some(&rest[index + 1..])),
            None => (rest, None),
        };
        let ssl = match (amqps, query.map(ssl_query).transpose()?.flatten()) {
            (true, Some(false)) => return Err(UrlError::TlsContradiction),
            (true, _) => Some(true),
            (false, asked) => asked,
        };
        let virtual_host = match path {
            None | Some("") => "/".to_owned(),
            Some(path) => percent_decode(path)?,
        };
        let hosts = if netloc.is_empty() {
            vec![BrokerAddress {
                host: "localhost".to_owned(),
                port: default_port,
                username: "guest".to_owned(),
                password: "guest".to_owned(),
            }]
        } else {
            netloc
                .split(',')
                .map(|entry| parse_host(entry, default_port))
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(Self {
            hosts,
            virtual_host,
            ssl,
        })
    }
}

/// Replaces the password of every host of a URL-looking string with `***`
/// without parsing it strictly (used where the URL may be invalid).
pub fn redact(url: &str) -> String {
    match TransportUrl::parse(url) {
        Ok(parsed) => parsed.to_string(),
        Err(_) => clinker_types::redact::redact_url(url),
    }
}

fn parse_host(entry: &str, default_port: u16) -> Result<BrokerAddress, UrlError> {
    if entry.is_empty() {
        return Err(UrlError::EmptyHost(String::new()));
    }
    let (userinfo, hostport) = match entry.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, entry),
    };
    let (username, password) = match userinfo {
        Some(userinfo) => match userinfo.split_once(':') {
            Some((user, pass)) => (percent_decode(user)?, percent_decode(pass)?),
            None => (percent_decode(userinfo)?, String::new()),
        },
        None => ("guest".to_owned(), "guest".to_owned()),
    };
    let (host, port) = split_host_port(hostport, default_port)?;
    if host.is_empty() {
        return Err(UrlError::EmptyHost(hostport.to_owned()));
    }
    Ok(BrokerAddress {
        host,
        port,
        username,
        password,
    })
}

fn split_host_port(hostport: &str, default_port: u16) -> Result<(String, u16), UrlError> {
    if let Some(after_bracket) = hostport.strip_prefix('[') {
        let (host, tail) = after_bracket
            .split_once(']')
            .ok_or_else(|| UrlError::BadIpv6(hostport.to_owned()))?;
        let port = match tail {
            "" => default_port,
            tail => match tail.strip_prefix(':') {
                Some(port) => parse_port(port, hostport)?,
                None => return Err(UrlError::BadIpv6(hostport.to_owned())),
            },
        };
        return Ok((host.to_owned(), port));
    }
    match hostport.rsplit_once(':') {
        Some((host, port)) => Ok((host.to_owned(), parse_port(port, hostport)?)),
        None => Ok((hostport.to_owned(), default_port)),
    }
}

fn parse_port(port: &str, context: &str) -> Result<u16, UrlError> {
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(UrlError::BadPort(context.to_owned())),
        Ok(port) => Ok(port),
    }
}

/// The `ssl` query option, the last one winning as in a query dict.
fn ssl_query(query: &str) -> Result<Option<bool>, UrlError> {
    let mut ssl = None;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "ssl" {
            continue;
        }
        let value = percent_decode(value)?.to_ascii_lowercase();
        ssl = Some(match value.as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => return Err(UrlError::BadSsl(value)),
        });
    }
    Ok(ssl)
}

fn percent_decode(text: &str) -> Result<String, UrlError> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes
                .get(index + 1..index + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| UrlError::BadEncoding(text.to_owned()))?;
            decoded.push(hex);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| UrlError::BadEncoding(text.to_owned()))
}

fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn host(host: &str, port: u16, username: &str, password: &str) -> BrokerAddress {
        BrokerAddress {
            host: host.into(),
            port,
            username: username.into(),
            password: password.into(),
        }
    }

    #[test]
    fn single_host_with_everything() {
        let url = TransportUrl::parse("rabbit://cinder:secret@10.0.0.5:5673/openstack").unwrap();
        assert_eq!(url.hosts, vec![host("10.0.0.5", 5673, "cinder", "secret")]);
        assert_eq!(url.virtual_host, "openstack");
    }

    #[test]
    fn defaults_port_and_vhost() {
        let url = TransportUrl::parse("rabbit://u:p@broker").unwrap();
        assert_eq!(url.hosts, vec![host("broker", 5672, "u", "p")]);
        assert_eq!(url.virtual_host, "/");
        let url = TransportUrl::parse("rabbit://u:p@broker/").unwrap();
        assert_eq!(url.virtual_host, "/", "empty path is the default vhost");
        let url = TransportUrl::parse("rabbit://u:p@broker/%2F").unwrap();
        assert_eq!(url.virtual_host, "/");
    }

    #[test]
    fn several_hosts_for_failover() {
        let url =
            TransportUrl::parse("rabbit://a:1@h1:5672,b:2@h2:5673,c:3@h3/cinder?heartbeat=30")
                .unwrap();
        assert_eq!(
            url.hosts,
            vec![
                host("h1", 5672, "a", "1"),
                host("h2", 5673, "b", "2"),
                host("h3", 5672, "c", "3"),
            ]
        );
        assert_eq!(url.virtual_host, "cinder");
    }

    #[test]
    fn percent_decodes_credentials_and_vhost() {
        let url = TransportUrl::parse("rabbit://us%40er:p%3Ass%2Fw%40rd@h/v%2Fhost%20x").unwrap();
        assert_eq!(url.hosts[0].username, "us@er");
        assert_eq!(url.hosts[0].password, "p:ss/w@rd");
        assert_eq!(url.virtual_host, "v/host x");
        // A literal '@' in the password still works: the userinfo ends at
        // the last '@', as in oslo.
        let url = TransportUrl::parse("rabbit://user:p@ss@h").unwrap();
        assert_eq!(url.hosts[0].password, "p@ss");
        assert_eq!(url.hosts[0].host, "h");
    }

    #[test]
    fn ipv6_hosts() {
        let url = TransportUrl::parse("rabbit://u:p@[::1]:5673,u:p@[fe80::2]/").unwrap();
        assert_eq!(url.hosts[0], host("::1", 5673, "u", "p"));
        assert_eq!(url.hosts[1], host("fe80::2", 5672, "u", "p"));
        assert_eq!(url.to_string(), "rabbit://[::1]:5673,[fe80::2]:5672/%2F");
    }

    #[test]
    fn missing_credentials_and_hosts_fall_back_like_oslo() {
        let url = TransportUrl::parse("rabbit://h1").unwrap();
        assert_eq!(url.hosts, vec![host("h1", 5672, "guest", "guest")]);
        let url = TransportUrl::parse("rabbit://").unwrap();
        assert_eq!(url.hosts, vec![host("localhost", 5672, "guest", "guest")]);
        let url = TransportUrl::parse("kombu://u:p@h").unwrap();
        assert_eq!(url.hosts[0].host, "h");
    }

    #[test]
    fn display_and_debug_never_show_passwords() {
        let url = TransportUrl::parse("rabbit://u:hunter2@h1,u:hunter2@h2:1/v").unwrap();
        assert_eq!(url.to_string(), "rabbit://h1:5672,h2:1/v");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert!(!redact("rabbit://u:hunter2@h").contains("hunter2"));
        assert!(!redact("rabbit://u:hunter2@h:notaport").contains("hunter2"));
    }

    #[test]
    fn bad_urls() {
        let cases: &[(&str, UrlError)] = &[
            ("", UrlError::NoScheme),
            ("broker:5672", UrlError::NoScheme),
            ("://h", UrlError::NoScheme),
            ("amqp://h", UrlError::UnsupportedScheme("amqp".into())),
            ("http://h", UrlError::UnsupportedScheme("http".into())),
            ("rabbit://u:p@h:abc/", UrlError::BadPort("h:abc".into())),
            ("rabbit://u:p@h:0/", UrlError::BadPort("h:0".into())),
            ("rabbit://u:p@h:70000/", UrlError::BadPort("h:70000".into())),
            ("rabbit://u:p@h:/", UrlError::BadPort("h:".into())),
            ("rabbit://h1,,h2/", UrlError::EmptyHost(String::new())),
            ("rabbit://u:p@/", UrlError::EmptyHost(String::new())),
            ("rabbit://u:p@:5672/", UrlError::EmptyHost(":5672".into())),
            ("rabbit://u:p@[::1/", UrlError::BadIpv6("[::1".into())),
            ("rabbit://u:p@[::1]x/", UrlError::BadIpv6("[::1]x".into())),
            ("rabbit://u:p%zz@h/", UrlError::BadEncoding("p%zz".into())),
            ("rabbit://u:p@h/v%4", UrlError::BadEncoding("v%4".into())),
            ("rabbit://u:p@h/%ff", UrlError::BadEncoding("%ff".into())),
            ("amqps://u:p@h/?ssl=0", UrlError::TlsContradiction),
            (
                "rabbit://u:p@h/?ssl=maybe",
                UrlError::BadSsl("maybe".into()),
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(
                TransportUrl::parse(url).as_ref(),
                Err(expected),
                "parsing {url:?}"
            );
        }
    }

    #[test]
    fn tls_from_the_url() {
        let url = TransportUrl::parse("rabbit://u:p@h/?ssl=1").unwrap();
        assert_eq!((url.ssl, url.hosts[0].port), (Some(true), 5672));
        let url = TransportUrl::parse("rabbit://u:p@h/v?heartbeat=5&ssl=True").unwrap();
        assert_eq!(url.ssl, Some(true));
        let url = TransportUrl::parse("rabbit://u:p@h/?ssl=0").unwrap();
        assert_eq!(url.ssl, Some(false));
        let url = TransportUrl::parse("rabbit://u:p@h/").unwrap();
        assert_eq!(url.ssl, None);
        let url = TransportUrl::parse("amqps://u:p@h1,u:p@h2:5000/v").unwrap();
        assert_eq!(url.ssl, Some(true));
        assert_eq!(url.hosts[0].port, 5671, "amqps defaults to 5671");
        assert_eq!(url.hosts[1].port, 5000);
        assert_eq!(url.virtual_host, "v");
        let url = TransportUrl::parse("amqps://u:p@h/?ssl=1").unwrap();
        assert_eq!(url.ssl, Some(true));
    }
}
