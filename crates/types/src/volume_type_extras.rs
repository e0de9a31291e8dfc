//! What hangs off a volume type besides its extra specs: QoS specs (and
//! their association with types), encryption specs, and per-project
//! default types (API 3.62).
//!
//! The spellings are Cinder's (`objects/fields.py::QoSConsumerValues`,
//! `db/models.py::Encryption`, `DefaultVolumeTypes`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{QosSpecsId, VolumeTypeId};
use crate::time::Timestamp;

/// Where QoS specs are enforced (`QoSConsumerValues`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum QosConsumer {
    /// By the storage backend (Cinder's default).
    #[serde(rename = "back-end")]
    BackEnd,
    /// By the hypervisor (Nova's libvirt I/O tuning).
    #[serde(rename = "front-end")]
    FrontEnd,
    /// Both.
    #[serde(rename = "both")]
    Both,
}

impl QosConsumer {
    /// Every value, in Cinder's `ALL` order.
    pub const ALL: &'static [QosConsumer] = &[
        QosConsumer::BackEnd,
        QosConsumer::FrontEnd,
        QosConsumer::Both,
    ];

    /// Cinder's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            QosConsumer::BackEnd => "back-end",
            QosConsumer::FrontEnd => "front-end",
            QosConsumer::Both => "both",
        }
    }

    /// Whether the hypervisor applies these specs (front-end or both), which
    /// decides whether a retype of an attached volume may change them.
    pub fn is_front_end(self) -> bool {
        matches!(self, QosConsumer::FrontEnd | QosConsumer::Both)
    }

    /// Whether the backend applies these specs (back-end or both): a retype
    /// that changes them is a backend change.
    pub fn is_back_end(self) -> bool {
        matches!(self, QosConsumer::BackEnd | QosConsumer::Both)
    }
}

impl fmt::Display for QosConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A consumer name that is not one of [`QosConsumer::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown QoS consumer {0:?}")]
pub struct UnknownConsumer(pub String);

impl FromStr for QosConsumer {
    type Err = UnknownConsumer;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        QosConsumer::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownConsumer(s.to_owned()))
    }
}

/// A row of `qos_specs` with its key/value specs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QosSpecs {
    /// Id.
    pub id: QosSpecsId,
    /// Unique name.
    pub name: String,
    /// Who enforces them.
    pub consumer: QosConsumer,
    /// The specs; a value is null when an update set it to null (Cinder's
    /// `extra_specs_with_null`).
    pub specs: BTreeMap<String, Option<String>>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Option<Timestamp>,
}

/// Where an encrypted volume is decrypted (`control_location`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ControlLocation {
    /// By the hypervisor (Nova with os-brick's encryptors).
    #[serde(rename = "front-end")]
    FrontEnd,
    /// By the backend.
    #[serde(rename = "back-end")]
    BackEnd,
}

impl ControlLocation {
    /// Cinder's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlLocation::FrontEnd => "front-end",
            ControlLocation::BackEnd => "back-end",
        }
    }
}

impl FromStr for ControlLocation {
    type Err = UnknownConsumer;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "front-end" => Ok(ControlLocation::FrontEnd),
            "back-end" => Ok(ControlLocation::BackEnd),
            other => Err(UnknownConsumer(other.to_owned())),
        }
    }
}

/// A row of `encryption`: the encryption specs of a volume type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VolumeTypeEncryption {
    /// The type (one encryption row per type).
    pub volume_type_id: VolumeTypeId,
    /// The row's own id (Cinder's `encryption_id`, a UUID).
    pub encryption_id: String,
    /// The encryptor (`luks`, `plain`, or a class path).
    pub provider: String,
    /// The cipher (`aes-xts-plain64`).
    pub cipher: Option<String>,
    /// Key size in bits.
    pub key_size: Option<i64>,
    /// Who decrypts.
    pub control_location: ControlLocation,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Option<Timestamp>,
}

/// A row of `default_volume_types`: a project's default type (3.62).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultVolumeType {
    /// The project.
    pub project_id: String,
    /// Its default type.
    pub volume_type_id: VolumeTypeId,
}

/// How Clinker names the key of an encrypted volume.
///
/// Cinder asks a key manager (Barbican through castellan) to create a
/// secret and stores the secret's id in `volumes.encryption_key_id`.
/// Clinker has no key manager: a volume of an encrypted type gets a fresh
/// random UUID in the same field, in the same format a Barbican secret id
/// has, so clients that only look at the field (`encrypted: true`, 3.64's
/// `encryption_key_id`, `GET /volumes/{id}/encryption`) see what they expect.
/// No secret exists behind it: a front-end consumer (Nova) that tries to
/// fetch the key from a key manager will not find it.
pub fn new_encryption_key_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_round_trip_in_cinder_order() {
        let names: Vec<&str> = QosConsumer::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names, ["back-end", "front-end", "both"]);
        for c in QosConsumer::ALL {
            assert_eq!(c.as_str().parse::<QosConsumer>().unwrap(), *c);
        }
        assert!("Front-End".parse::<QosConsumer>().is_err());
        assert!(QosConsumer::Both.is_front_end() && QosConsumer::Both.is_back_end());
        assert!(!QosConsumer::BackEnd.is_front_end());
    }

    #[test]
    fn key_ids_are_uuids_and_distinct() {
        let a = new_encryption_key_id();
        let b = new_encryption_key_id();
        assert_ne!(a, b);
        assert!(uuid::Uuid::parse_str(&a).is_ok());
        assert_eq!(a.len(), 36);
    }
}
