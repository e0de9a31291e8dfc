//! The `host@backend#pool` address of a volume service and its pools.
//!
//! Cinder stores a volume's location as one string and slices it with
//! `volume_utils.extract_host(host, level)`. [`Host`] keeps the three parts
//! apart so nobody splits strings by hand.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A parsed `host[@backend][#pool]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Host {
    /// The node name (`CONF.host` or `backend_host`).
    pub host: String,
    /// The backend section name from `enabled_backends`.
    pub backend: Option<String>,
    /// The pool reported by the driver.
    pub pool: Option<String>,
}

/// Why a host string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostParseError {
    /// The host part before `@` is empty.
    #[error("host is empty")]
    EmptyHost,
    /// `@` or `#` is present but nothing follows it.
    #[error("empty {0} name in host string")]
    EmptyPart(&'static str),
    /// A character outside the allowed set was found.
    #[error("invalid character {0:?} in host string")]
    InvalidCharacter(char),
}

impl Host {
    /// Builds `host@backend`.
    pub fn backend(host: impl Into<String>, backend: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            backend: Some(backend.into()),
            pool: None,
        }
    }

    /// Returns `host@backend` (the service address, no pool), as Cinder's
    /// `extract_host(host, 'backend')`.
    pub fn service_host(&self) -> String {
        match &self.backend {
            Some(backend) => format!("{}@{}", self.host, backend),
            None => self.host.clone(),
        }
    }

    /// Returns a copy with the pool set.
    pub fn with_pool(&self, pool: impl Into<String>) -> Self {
        Self {
            pool: Some(pool.into()),
            ..self.clone()
        }
    }

    /// Returns the pool, or the backend name when the driver reported no
    /// pools (Cinder's `default_pool_name` fallback in `extract_host`).
    pub fn pool_or_backend(&self) -> &str {
        self.pool
            .as_deref()
            .or(self.backend.as_deref())
            .unwrap_or(&self.host)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        if let Some(backend) = &self.backend {
            write!(f, "@{backend}")?;
        }
        if let Some(pool) = &self.pool {
            write!(f, "#{pool}")?;
        }
        Ok(())
    }
}

fn check_part(part: &str, what: &'static str) -> Result<(), HostParseError> {
    if part.is_empty() {
        return Err(HostParseError::EmptyPart(what));
    }
    // Host names end up in queue names, file names of target configs and log
    // lines: keep them to a conservative character set.
    if let Some(bad) = part
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(HostParseError::InvalidCharacter(bad));
    }
    Ok(())
}

impl FromStr for Host {
    type Err = HostParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (rest, pool) = match s.split_once('#') {
            Some((rest, pool)) => (rest, Some(pool)),
            None => (s, None),
        };
        let (host, backend) = match rest.split_once('@') {
            Some((host, backend)) => (host, Some(backend)),
            None => (rest, None),
        };
        if host.is_empty() {
            return Err(HostParseError::EmptyHost);
        }
        check_part(host, "host")?;
        if let Some(backend) = backend {
            check_part(backend, "backend")?;
        }
        if let Some(pool) = pool {
            if pool.is_empty() {
                return Err(HostParseError::EmptyPart("pool"));
            }
            // Pool names come from drivers (an RBD pool, a VG name); allow
            // any printable character except the separators.
            if let Some(bad) = pool
                .chars()
                .find(|c| c.is_control() || matches!(c, '@' | '#'))
            {
                return Err(HostParseError::InvalidCharacter(bad));
            }
        }
        Ok(Self {
            host: host.to_owned(),
            backend: backend.map(str::to_owned),
            pool: pool.map(str::to_owned),
        })
    }
}

impl Serialize for Host {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Host {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_three_levels() {
        let h: Host = "node1@lvm#pool-a".parse().unwrap();
        assert_eq!(h.host, "node1");
        assert_eq!(h.backend.as_deref(), Some("lvm"));
        assert_eq!(h.pool.as_deref(), Some("pool-a"));
        assert_eq!(h.service_host(), "node1@lvm");
        assert_eq!(h.to_string(), "node1@lvm#pool-a");
    }

    #[test]
    fn pool_defaults_to_backend_name() {
        let h: Host = "node1@file".parse().unwrap();
        assert_eq!(h.pool_or_backend(), "file");
        assert_eq!(h.with_pool("file").to_string(), "node1@file#file");
    }

    #[test]
    fn refuses_paths_and_empty_parts() {
        assert_eq!("@x".parse::<Host>(), Err(HostParseError::EmptyHost));
        assert_eq!(
            "a@".parse::<Host>(),
            Err(HostParseError::EmptyPart("backend"))
        );
        assert_eq!(
            "a@b#".parse::<Host>(),
            Err(HostParseError::EmptyPart("pool"))
        );
        assert_eq!(
            "a/b@c".parse::<Host>(),
            Err(HostParseError::InvalidCharacter('/'))
        );
    }
}
