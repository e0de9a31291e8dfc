//! Typed UUID identifiers.
//!
//! Cinder exposes every id as a UUID string. The API accepts any string in a
//! URL and answers "could not be found" for one that is not a UUID, so parsing
//! is fallible and [`std::str::FromStr`] is the only way in from text.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// Generates a fresh random (v4) id.
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }

            /// Returns the hyphenated lowercase form used everywhere in Cinder.
            pub fn to_hyphenated(&self) -> String {
                self.0.hyphenated().to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A volume's id (`volumes.id`).
    VolumeId
);
uuid_id!(
    /// A snapshot's id (`snapshots.id`).
    SnapshotId
);
uuid_id!(
    /// A volume attachment's id (`volume_attachment.id`).
    AttachmentId
);
uuid_id!(
    /// A volume type's id (`volume_types.id`).
    VolumeTypeId
);
uuid_id!(
    /// A user message's id (`messages.id`).
    MessageId
);
uuid_id!(
    /// A generic volume group's id (`groups.id`).
    GroupId
);
uuid_id!(
    /// A group type's id (`group_types.id`).
    GroupTypeId
);
uuid_id!(
    /// A group snapshot's id (`group_snapshots.id`).
    GroupSnapshotId
);
uuid_id!(
    /// A QoS specs' id (`qos_specs.id`).
    QosSpecsId
);
uuid_id!(
    /// A volume transfer's id (`transfers.id`).
    TransferId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hyphenated_and_rejects_garbage() {
        let id: VolumeId = "4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1".parse().unwrap();
        assert_eq!(id.to_string(), "4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1");
        assert!("../etc/passwd".parse::<VolumeId>().is_err());
        assert!("".parse::<VolumeId>().is_err());
    }

    #[test]
    fn serializes_as_a_plain_string() {
        let id = VolumeId::new_random();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        let back: VolumeId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
    }
}
uuid_id!(
    /// A backup's id (`backups.id`).
    BackupId
);
