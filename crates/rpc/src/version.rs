//! RPC message versions and the seed's compatibility rule.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A `major.minor` RPC version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Incompatible changes bump this.
    pub major: u32,
    /// Compatible additions bump this.
    pub minor: u32,
}

impl Version {
    /// `major.minor`.
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// The seed's dispatch rule: a server at `self` serves a message of
    /// version `message` when the majors are equal and the message's minor
    /// is not higher than the server's.
    pub fn can_serve(self, message: Version) -> bool {
        self.major == message.major && message.minor <= self.minor
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A version string that is not `major.minor`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RPC version {0:?}")]
pub struct BadVersion(pub String);

impl FromStr for Version {
    type Err = BadVersion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (major, minor) = s.split_once('.').unwrap_or((s, "0"));
        let parse = |p: &str| p.parse::<u32>().map_err(|_| BadVersion(s.to_owned()));
        Ok(Self {
            major: parse(major)?,
            minor: parse(minor)?,
        })
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!("3.20".parse::<Version>().unwrap(), Version::new(3, 20));
        assert_eq!("3".parse::<Version>().unwrap(), Version::new(3, 0));
        assert!("3.x".parse::<Version>().is_err());
        assert!("".parse::<Version>().is_err());
        assert_eq!(Version::new(3, 7).to_string(), "3.7");
    }

    /// The dispatch rule, case by case.
    #[test]
    fn dispatch_rule() {
        let server = Version::new(3, 20);
        assert!(
            server.can_serve(Version::new(3, 0)),
            "older minor is served"
        );
        assert!(
            server.can_serve(Version::new(3, 20)),
            "equal version is served"
        );
        assert!(
            !server.can_serve(Version::new(3, 21)),
            "newer minor is refused"
        );
        assert!(
            !server.can_serve(Version::new(2, 0)),
            "older major is refused"
        );
        assert!(
            !server.can_serve(Version::new(4, 0)),
            "newer major is refused"
        );
    }
}
