//! Connectors (what an initiator host sends) and connection info (what a
//! driver returns so the host can reach the volume).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The connector dictionary an initiator host sends (`initiator`, `ip`,
/// `host`, `multipath`, `nqn`, …). Kept as JSON: drivers read the keys they
/// need and os-brick adds new ones over time.
pub type Connector = Map<String, Value>;

/// A driver's answer to `initialize_connection`: Cinder's nested shape
/// `{"driver_volume_type": …, "data": {…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    /// `iscsi`, `local`, `rbd`, `nvmeof`, …
    pub driver_volume_type: String,
    /// Protocol-specific keys.
    pub data: Map<String, Value>,
}

impl ConnectionInfo {
    /// The nested form the legacy `os-initialize_connection` returns.
    pub fn to_nested_json(&self) -> Value {
        serde_json::json!({
            "driver_volume_type": self.driver_volume_type,
            "data": Value::Object(self.data.clone()),
        })
    }

    /// The flattened form the attachments API stores and returns (Cinder's
    /// `VolumeManager._connection_create` moves `data` to the top level and
    /// adds `attachment_id`).
    pub fn to_flat_json(&self, attachment_id: Option<&str>) -> Value {
        let mut flat = self.data.clone();
        flat.insert(
            "driver_volume_type".into(),
            Value::String(self.driver_volume_type.clone()),
        );
        if let Some(id) = attachment_id {
            flat.insert("attachment_id".into(), Value::String(id.to_owned()));
        }
        Value::Object(flat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_and_flat_shapes() {
        let info = ConnectionInfo {
            driver_volume_type: "iscsi".into(),
            data: json!({"target_iqn": "iqn.x", "target_lun": 1})
                .as_object()
                .unwrap()
                .clone(),
        };
        assert_eq!(
            info.to_nested_json(),
            json!({"driver_volume_type": "iscsi", "data": {"target_iqn": "iqn.x", "target_lun": 1}})
        );
        assert_eq!(
            info.to_flat_json(Some("a1")),
            json!({"driver_volume_type": "iscsi", "target_iqn": "iqn.x", "target_lun": 1, "attachment_id": "a1"})
        );
    }
}
