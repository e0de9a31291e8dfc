//! `export_record` / `import_record` (Cinder's `backup/api.py` and the
//! manager's halves): a backup's row as base64 of its JSON record, the
//! driver it needs, and the reverse, so a backup survives the loss of its
//! database row.
//!
//! The chunked drivers need nothing beyond the row (`driver_info` is
//! empty), so the record is made and read here; the imported backup goes
//! to an up backup service, whose driver must be the one the record names.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clinker_db::{DbError, ImportedBackup, NewBackup};
use clinker_rpc::RequestContext;
use clinker_types::backup::{Backup, BackupStatus, choose_backup_host};
use clinker_types::{BackupId, Timestamp, VolumeId};
use serde_json::{Map, Value, json};

use super::backups::{get_backup, up_backup_services};
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::policy;

/// Cinder's `IMPORT_VOLUME_ID`: the volume of a record that names none.
const IMPORT_VOLUME_ID: &str = "00000000-0000-0000-0000-000000000000";

/// The fields an imported record must have (Cinder's manager checks them).
const REQUIRED: [&str; 7] = [
    "display_name",
    "display_description",
    "container",
    "size",
    "service_metadata",
    "object_count",
    "id",
];

/// What `export_record` answers.
#[derive(Clone, Debug)]
pub struct Exported {
    /// The driver's class path.
    pub backup_service: String,
    /// Base64 of the JSON record.
    pub backup_url: String,
}

fn seconds_z(at: Timestamp) -> String {
    at.to_iso8601_seconds_z()
}

/// The record Cinder's `Backup.encode_record` makes: every field of the
/// backup object (`parent` aside) and `driver_info`.
fn record(backup: &Backup) -> Value {
    json!({
        "id": backup.id.to_string(),
        "user_id": backup.user_id,
        "project_id": backup.project_id,
        "volume_id": backup.volume_id.to_string(),
        "host": backup.host,
        "availability_zone": backup.availability_zone,
        "container": backup.container,
        "parent_id": backup.parent_id.map(|p| p.to_string()),
        "status": backup.status.as_str(),
        "fail_reason": backup.fail_reason,
        "size": backup.size,
        "display_name": backup.display_name,
        "display_description": backup.display_description,
        "service_metadata": backup.service_metadata,
        "service": backup.service,
        "object_count": backup.object_count,
        "temp_volume_id": backup.temp_volume_id.map(|v| v.to_string()),
        "temp_snapshot_id": backup.temp_snapshot_id.map(|s| s.to_string()),
        "num_dependent_backups": backup.num_dependent_backups,
        "snapshot_id": backup.snapshot_id.map(|s| s.to_string()),
        "data_timestamp": seconds_z(backup.data_timestamp),
        "restore_volume_id": backup.restore_volume_id.map(|v| v.to_string()),
        "metadata": backup.metadata,
        "encryption_key_id": backup.encryption_key_id,
        "created_at": seconds_z(backup.created_at),
        "updated_at": backup.updated_at.map(seconds_z),
        "deleted_at": null,
        "deleted": false,
        "driver_info": {},
    })
}

fn configured_driver(state: &ApiState) -> clinker_config::BackupDriverKind {
    state
        .config
        .backup
        .driver
        .unwrap_or(clinker_config::BackupDriverKind::Posix)
}

/// `GET /backups/{id}/export_record` (administrators).
///
/// # Errors
/// 404, 403, 400 unless `available` or when its driver is not the one
/// configured.
pub async fn export_record(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
) -> ApiResult<Exported> {
    let backup = get_backup(state, ctx, id).await?;
    policy::enforce(ctx, "backup:export-import", Some(&backup.project_id))?;
    if backup.status != BackupStatus::Available {
        return Err(ApiError::invalid_state(format!(
            "Invalid backup: Backup status must be available and not {}.",
            backup.status
        )));
    }
    let driver = configured_driver(state);
    let service = backup.service.clone().unwrap_or_default();
    if !service.is_empty() && clinker_config::BackupDriverKind::parse(&service) != Some(driver) {
        return Err(ApiError::invalid_state(format!(
            "Invalid backup: Export record aborted, the backup service currently configured [{}] \
             is not the backup service that was used to create this backup [{service}].",
            driver.class_path()
        )));
    }
    let url = STANDARD.encode(record(&backup).to_string());
    Ok(Exported {
        backup_service: service,
        backup_url: url,
    })
}

fn text(record: &Map<String, Value>, key: &str) -> Option<String> {
    record.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn int(record: &Map<String, Value>, key: &str) -> ApiResult<i64> {
    match record.get(key) {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| ApiError::invalid_input(format!("Provided backup record has a bad {key}")))
}

fn parsed<T: std::str::FromStr>(record: &Map<String, Value>, key: &str) -> ApiResult<Option<T>> {
    text(record, key)
        .map(|t| {
            t.parse().map_err(|_| {
                ApiError::invalid_input(format!("Provided backup record has a bad {key}"))
            })
        })
        .transpose()
}

fn time(record: &Map<String, Value>, key: &str) -> Option<Timestamp> {
    text(record, key).and_then(|t| Timestamp::parse_iso8601(&t))
}

/// `POST /backups/import_record` (administrators): the record becomes an
/// `available` backup of the caller's project on a backup service with
/// the record's driver.
///
/// # Errors
/// 403, 400 (undecodable record, missing fields, an id in use, a driver
/// no backup service runs), 413, 503 when no backup service is up.
pub async fn import_record(
    state: &ApiState,
    ctx: &RequestContext,
    backup_service: &str,
    backup_url: &str,
) -> ApiResult<Backup> {
    policy::enforce(ctx, "backup:backup-import", Some(&ctx.project_id))?;
    let services = up_backup_services(state).await?;
    let Some(host) = choose_backup_host(&services, None, None, false) else {
        return Err(ApiError::new(
            clinker_types::ErrorKind::Unavailable,
            format!("Service {backup_service} could not be found."),
        ));
    };
    let zone = services
        .iter()
        .find(|s| s.host == host)
        .map(|s| s.availability_zone.clone());
    let decoded = STANDARD
        .decode(backup_url.trim())
        .map_err(|_| ApiError::invalid_input("Can't decode backup record."))?;
    let record: Map<String, Value> = serde_json::from_slice(&decoded)
        .map_err(|_| ApiError::invalid_input("Can't parse backup record."))?;
    if !record.contains_key("id") {
        return Err(ApiError::invalid_input(
            "Provided backup record is missing an id",
        ));
    }
    if !record.contains_key("size") {
        return Err(ApiError::invalid_input(
            "Provided backup record is missing size attribute",
        ));
    }
    let driver = configured_driver(state);
    if clinker_config::BackupDriverKind::parse(backup_service) != Some(driver) {
        return Err(ApiError::invalid_state(format!(
            "Invalid backup: Import record failed, cannot find backup service to perform the \
             import. Request service {backup_service}."
        )));
    }
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|k| !record.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::invalid_state(format!(
            "Invalid backup: Driver successfully decoded imported backup data, but there are \
             missing fields ({}).",
            missing.join(", ")
        )));
    }
    let id: BackupId = parsed(&record, "id")?
        .ok_or_else(|| ApiError::invalid_input("Provided backup record is missing an id"))?;
    let volume_id: VolumeId = match parsed(&record, "volume_id")? {
        Some(v) => v,
        None => IMPORT_VOLUME_ID
            .parse()
            .map_err(|_| ApiError::internal("bad import volume id"))?,
    };
    let imported = ImportedBackup {
        backup: NewBackup {
            id,
            volume_id,
            user_id: ctx.user_id.clone(),
            project_id: ctx.project_id.clone(),
            display_name: text(&record, "display_name"),
            display_description: text(&record, "display_description"),
            container: Some(text(&record, "container").unwrap_or_default()),
            incremental: false,
            force: false,
            host,
            availability_zone: zone,
            service: driver.class_path().to_owned(),
            metadata: Default::default(),
            snapshot_id: parsed(&record, "snapshot_id")?,
        },
        service_metadata: text(&record, "service_metadata").unwrap_or_default(),
        size: int(&record, "size")?,
        object_count: int(&record, "object_count")?,
        parent_id: parsed(&record, "parent_id")?,
        data_timestamp: time(&record, "data_timestamp"),
        created_at: time(&record, "created_at"),
    };
    let size = imported.size;
    state.db.import_backup(imported).await.map_err(|e| match e {
        DbError::InvalidState(reason) => {
            ApiError::invalid_state(format!("Invalid backup: {reason}"))
        }
        DbError::OverQuota(over) => super::backups::backup_quota_error(&over, size),
        other => other.into(),
    })
}
