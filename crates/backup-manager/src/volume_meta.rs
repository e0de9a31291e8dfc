//! The volume's metadata kept in a backup (Cinder's `BackupMetadataAPI`):
//! the metadata object's `volume_meta` is a JSON string
//! `{"version": 2, "volume-base-metadata": {...}, "volume-metadata": {...},
//! "volume-glance-metadata": {...}}`. A restore merges the user and image
//! metadata into the target volume, and gives an auto-created target the
//! source's name and description, as Cinder's version 1 and 2 restore
//! rules do.

use std::collections::BTreeMap;

use clinker_db::{DbHandle, MetadataKind, VolumeUpdate};
use clinker_types::VolumeId;
use clinker_types::model::Volume;
use serde_json::{Map, Value, json};

/// `backup_metadata_version`.
const VERSION: i64 = 2;
const BASE: &str = "volume-base-metadata";
const USER: &str = "volume-metadata";
const GLANCE: &str = "volume-glance-metadata";

/// The name Cinder gives a volume it creates for a restore.
const RESTORE_NAME_PREFIX: &str = "restore_backup_";

fn opt_time(at: Option<clinker_types::Timestamp>) -> Value {
    at.map_or(Value::Null, |t| json!(t.to_iso8601()))
}

fn as_object(map: &BTreeMap<String, String>) -> Value {
    Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Serialises `volume` as Cinder's `BackupMetadataAPI.get` does: the
/// volume row's columns, its user metadata and its image metadata (the
/// last two only when not empty).
pub fn serialise(volume: &Volume) -> String {
    let base = json!({
        "id": volume.id,
        "user_id": volume.user_id,
        "project_id": volume.project_id,
        "host": volume.host,
        "size": volume.size,
        "availability_zone": volume.availability_zone,
        "status": volume.status.as_str(),
        "attach_status": volume.attach_status.as_str(),
        "migration_status": volume.migration_status,
        "display_name": volume.display_name,
        "display_description": volume.display_description,
        "provider_location": volume.provider_location,
        "provider_id": volume.provider_id,
        "volume_type_id": volume.volume_type_id,
        "snapshot_id": volume.snapshot_id,
        "source_volid": volume.source_volid,
        "bootable": volume.bootable,
        "multiattach": volume.multiattach,
        "encryption_key_id": volume.encryption_key_id,
        "consistencygroup_id": volume.consistencygroup_id,
        "group_id": volume.group_id,
        "replication_status": volume.replication_status,
        "previous_status": volume.previous_status,
        "service_uuid": volume.service_uuid,
        "shared_targets": volume.shared_targets,
        "use_quota": volume.use_quota,
        "cluster_name": volume.cluster_name,
        "created_at": volume.created_at.to_iso8601(),
        "updated_at": opt_time(volume.updated_at),
        "scheduled_at": opt_time(volume.scheduled_at),
        "launched_at": opt_time(volume.launched_at),
        "deleted": false,
    });
    let mut container = Map::new();
    container.insert("version".into(), json!(VERSION));
    container.insert(BASE.into(), base);
    if !volume.metadata.is_empty() {
        container.insert(USER.into(), as_object(&volume.metadata));
    }
    if !volume.glance_metadata.is_empty() {
        container.insert(GLANCE.into(), as_object(&volume.glance_metadata));
    }
    Value::Object(container).to_string()
}

/// A JSON object's members as strings (Cinder stores metadata values as
/// text; other JSON values are kept in their JSON spelling).
fn strings(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|object| {
            object
                .iter()
                .map(|(k, v)| {
                    let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                    (k.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The members of `from` whose keys `existing` lacks: keys already on the
/// target volume are never replaced.
fn missing(
    from: BTreeMap<String, String>,
    existing: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    from.into_iter()
        .filter(|(k, _)| !existing.contains_key(k))
        .collect()
}

/// Applies one backup's `volume_meta` to volume `volume_id` (Cinder's
/// `BackupMetadataAPI.put`, versions 1 and 2).
///
/// # Errors
/// An unreadable container, an unsupported version, database failures.
pub async fn apply(db: &DbHandle, volume_id: VolumeId, volume_meta: &str) -> Result<(), String> {
    let container: Value = serde_json::from_str(volume_meta)
        .map_err(|e| format!("the backup's volume metadata is not JSON: {e}"))?;
    match container.get("version").and_then(Value::as_i64) {
        Some(1 | 2) => {}
        other => {
            return Err(format!(
                "Unsupported backup metadata version ({})",
                other.map_or_else(|| "none".to_owned(), |v| v.to_string())
            ));
        }
    }
    let target = db.get_volume(volume_id).await.map_err(|e| e.to_string())?;
    if let Some(base) = container.get(BASE).and_then(Value::as_object) {
        // The source's name goes to a target without one or to one made
        // for this restore; the description goes with it.
        let name = base
            .get("display_name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty());
        let current = target.display_name.as_deref().unwrap_or_default();
        if let Some(name) = name
            && (current.is_empty() || current.starts_with(RESTORE_NAME_PREFIX))
        {
            let description = base
                .get("display_description")
                .and_then(Value::as_str)
                .map(str::to_owned);
            db.update_volume(
                volume_id,
                VolumeUpdate {
                    display_name: Some(Some(name.to_owned())),
                    display_description: Some(description),
                    bootable: None,
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        }
    }
    let user = missing(strings(container.get(USER)), &target.metadata);
    if !user.is_empty() {
        db.set_volume_metadata(volume_id, MetadataKind::User, &user, false)
            .await
            .map_err(|e| e.to_string())?;
    }
    let glance_in_backup = strings(container.get(GLANCE));
    if !glance_in_backup.is_empty() {
        let glance = missing(glance_in_backup, &target.glance_metadata);
        if !glance.is_empty() {
            db.set_volume_metadata(volume_id, MetadataKind::Glance, &glance, false)
                .await
                .map_err(|e| e.to_string())?;
        }
        // A volume with image metadata is bootable, as in Cinder.
        db.update_volume(
            volume_id,
            VolumeUpdate {
                display_name: None,
                display_description: None,
                bootable: Some(true),
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Cinder's restore marks a volume restored from another volume's backup
/// (or from a different backup than before) with `src_backup_id`.
///
/// # Errors
/// Database failures.
pub async fn mark_source(
    db: &DbHandle,
    volume_id: VolumeId,
    backup_volume_id: VolumeId,
    backup_id: &str,
) -> Result<(), String> {
    let target = db.get_volume(volume_id).await.map_err(|e| e.to_string())?;
    let previous = target.metadata.get("src_backup_id");
    if backup_volume_id != volume_id || previous.is_some_and(|p| p != backup_id) {
        let mark = BTreeMap::from([("src_backup_id".to_owned(), backup_id.to_owned())]);
        db.set_volume_metadata(volume_id, MetadataKind::User, &mark, false)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_keeps_the_targets_keys() {
        let from = BTreeMap::from([
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ]);
        let existing = BTreeMap::from([("a".to_owned(), "kept".to_owned())]);
        assert_eq!(
            missing(from, &existing),
            BTreeMap::from([("b".to_owned(), "2".to_owned())])
        );
    }

    #[test]
    fn strings_spell_non_strings_as_json() {
        let v = json!({"s": "x", "n": 3, "b": true});
        let got = strings(Some(&v));
        assert_eq!(got["s"], "x");
        assert_eq!(got["n"], "3");
        assert_eq!(got["b"], "true");
    }
}
