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
    pub const fn can_serve(self, message: Version) -> bool {
        self.major == message.major && message.minor <= self.minor
    }

    /// A version written `major.minor` in source (`stringify!(3.20)` of
    /// an API declaration keeps the `0` that a float would lose). Meant
    /// for constants: anything else fails to compile there.
    ///
    /// # Panics
    /// When `text` is not `major.minor` in decimal digits.
    pub const fn from_literal(text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut parts = [0u32; 2];
        let mut part = 0;
        let mut digits = 0;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'.' if part == 0 && digits > 0 => {
                    part = 1;
                    digits = 0;
                }
                b @ b'0'..=b'9' => {
                    parts[part] = parts[part] * 10 + (b - b'0') as u32;
                    digits += 1;
                }
                _ => panic!("an RPC version is written major.minor"),
            }
            i += 1;
        }
        assert!(
            part == 1 && digits > 0,
            "an RPC version is written major.minor"
        );
        Self::new(parts[0], parts[1])
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

    #[test]
    fn literals_keep_their_minor() {
        assert_eq!(Version::from_literal("3.20"), Version::new(3, 20));
        assert_eq!(Version::from_literal("3.2"), Version::new(3, 2));
        assert_eq!(Version::from_literal("3.0"), Version::new(3, 0));
        for bad in ["3", "3.", ".2", "3.2.1", "3.x", ""] {
            assert!(
                std::panic::catch_unwind(|| Version::from_literal(bad)).is_err(),
                "{bad}"
            );
        }
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
