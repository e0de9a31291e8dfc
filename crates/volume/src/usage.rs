//! Usage-notification payloads (Cinder's `volume_utils._usage_from_volume`
//! and `_usage_from_snapshot`).

use clinker_types::model::{Snapshot, Volume};
use serde_json::{Value, json};

fn ts(t: Option<clinker_types::Timestamp>) -> Value {
    t.map_or(Value::String(String::new()), |t| {
        Value::String(t.to_iso8601())
    })
}

/// The payload of `volume.*` notifications.
pub fn volume_payload(volume: &Volume) -> Value {
    json!({
        "tenant_id": volume.project_id,
        "host": volume.host,
        "user_id": volume.user_id,
        "availability_zone": volume.availability_zone,
        "volume_id": volume.id,
        "volume_type": volume.volume_type_id,
        "display_name": volume.display_name,
        "launched_at": ts(volume.launched_at),
        "created_at": volume.created_at.to_iso8601(),
        "status": volume.status.as_str(),
        "snapshot_id": volume.snapshot_id,
        "size": volume.size,
        "replication_status": volume.replication_status,
        "replication_extended_status": Value::Null,
        "replication_driver_data": Value::Null,
        "metadata": volume.metadata,
        "volume_attachment": volume.attachments.iter().map(|a| a.id.to_string()).collect::<Vec<_>>(),
    })
}

/// The payload of `snapshot.*` notifications.
pub fn snapshot_payload(snapshot: &Snapshot) -> Value {
    json!({
        "tenant_id": snapshot.project_id,
        "user_id": snapshot.user_id,
        "availability_zone": Value::Null,
        "deleted": "",
        "created_at": snapshot.created_at.to_iso8601(),
        "display_name": snapshot.display_name,
        "snapshot_id": snapshot.id,
        "status": snapshot.status.as_str(),
        "volume_id": snapshot.volume_id,
        "volume_size": snapshot.volume_size,
        "metadata": snapshot.metadata,
    })
}
