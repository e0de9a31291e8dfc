//! Backups: Cinder's `backup/api.py` (create, delete, restore, reset
//! status, update) over the backup service's RPC API.
//!
//! The row is the lock: [`create_backup`] inserts the `creating` backup,
//! charges `backups` and `backup_gigabytes` and moves the volume to
//! `backing-up` in one transaction, then casts to the chosen backup
//! service; restores and deletes likewise change the rows first and cast
//! after. A backup service that cannot be reached leaves nothing half
//! done: the backup is set to `error` (create) or its status put back.

use std::collections::BTreeMap;
use std::time::Duration;

use clinker_db::{DbError, NewBackup};
use clinker_rpc::RequestContext;
use clinker_rpc::backup::{
    BackupRpcClient, CreateBackupArgs, DeleteBackupArgs, ResetBackupStatusArgs, RestoreBackupArgs,
};
use clinker_types::backup::{Backup, BackupService, BackupStatus, choose_backup_host};
use clinker_types::model::Volume;
use clinker_types::{BackupId, VolumeStatus};

use super::create_volume::{CreateVolume, create_volume};
use super::rows::{get_owned, rows};
use super::snapshots::get_snapshot;
use super::volumes::get_volume;
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::policy;

rows! {
    Backup(BackupId, clinker_db::BackupQuery), "Backup", "backup:get_all",
    get_backup, list_backups, count_backups
}

/// How long a restore to a new volume waits for that volume to leave
/// `creating` (Cinder waits without a bound).
const NEW_VOLUME_WAIT: Duration = Duration::from_secs(300);

fn rpc(state: &ApiState) -> BackupRpcClient {
    BackupRpcClient::new(state.volume_rpc.transport(), state.volume_rpc.timeout())
}

/// A backup the caller may see and read (`backup:get`).
///
/// # Errors
/// 404 for unknown ids, non-UUIDs and other projects' backups; 403.
pub async fn get_backup(state: &ApiState, ctx: &RequestContext, id: &str) -> ApiResult<Backup> {
    let backup: Backup = get_owned(state, ctx, id).await?;
    policy::enforce(ctx, "backup:get", Some(&backup.project_id))?;
    Ok(backup)
}

/// What a backup create asks for.
#[derive(Clone, Debug, Default)]
pub struct CreateBackup {
    /// The volume.
    pub volume_id: String,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// `container`.
    pub container: Option<String>,
    /// `incremental`.
    pub incremental: bool,
    /// `force` (an in-use volume).
    pub force: bool,
    /// `snapshot_id`.
    pub snapshot_id: Option<String>,
    /// Metadata (3.43).
    pub metadata: BTreeMap<String, String>,
    /// The backup service's zone (3.51; else the volume's).
    pub availability_zone: Option<String>,
}

/// The enabled backup services that are up (by `service_down_time`),
/// with their load: what every choice of a backup host starts from.
///
/// # Errors
/// Database failures.
pub(crate) async fn up_backup_services(state: &ApiState) -> ApiResult<Vec<BackupService>> {
    state
        .db
        .up_backup_services(state.clock.now(), state.config.default.service_down_time)
        .await
        .map_err(ApiError::from)
}

/// The backup service an operation goes to (Cinder's
/// `_get_available_backup_service_host`, the least busy where Cinder
/// shuffles): an up service in `zone`; with `backup_use_same_host` only
/// `preferred`, otherwise `preferred` first among the least busy.
///
/// # Errors
/// 404 "Service cinder-backup could not be found." when none qualifies.
pub(crate) async fn backup_host(
    state: &ApiState,
    zone: Option<&str>,
    preferred: Option<&str>,
) -> ApiResult<String> {
    let services = up_backup_services(state).await?;
    choose_backup_host(
        &services,
        zone,
        preferred,
        state.config.backup.use_same_host,
    )
    .ok_or_else(|| ApiError::not_found("Service cinder-backup could not be found."))
}

/// Cinder's 413 texts for the backup quotas.
pub(crate) fn backup_quota_error(over: &clinker_db::OverQuota, size: i64) -> ApiError {
    if over.resource == "backup_gigabytes" {
        ApiError::over_quota(format!(
            "VolumeBackupSizeExceedsAvailableQuota: Requested backup exceeds allowed Backup gigabytes quota. Requested {size}G, quota is {}G and {}G has been consumed.",
            over.limit, over.in_use
        ))
    } else {
        ApiError::over_quota(format!(
            "BackupLimitExceeded: Maximum number of backups allowed ({}) exceeded",
            over.limit
        ))
    }
}

/// Creates a backup and casts it to a backup service.
///
/// # Errors
/// 404 (volume, no backup service), Cinder's 400 and 413 texts, 503.
pub async fn create_backup(
    state: &ApiState,
    ctx: &RequestContext,
    request: CreateBackup,
) -> ApiResult<Backup> {
    policy::enforce(ctx, "backup:create", Some(&ctx.project_id))?;
    let volume = get_volume(state, ctx, &request.volume_id).await?;
    let snapshot = match &request.snapshot_id {
        Some(id) => Some(get_snapshot(state, ctx, id).await?),
        None => None,
    };
    if let Some(snapshot) = &snapshot {
        if snapshot.volume_id != volume.id {
            return Err(ApiError::invalid_state(format!(
                "Invalid volume: Volume {} does not match with snapshot.volume_id {}.",
                volume.id, snapshot.volume_id
            )));
        }
        if snapshot.status != clinker_types::SnapshotStatus::Available {
            return Err(ApiError::invalid_state(format!(
                "Invalid snapshot: Snapshot to be backed up must be available, but the current status is \"{}\".",
                snapshot.status
            )));
        }
    } else {
        match volume.status {
            VolumeStatus::Available => {}
            VolumeStatus::InUse if request.force => {}
            VolumeStatus::InUse => {
                return Err(ApiError::invalid_state(
                    "Invalid volume: Backing up an in-use volume must use the force flag.",
                ));
            }
            other => {
                return Err(ApiError::invalid_state(format!(
                    "Invalid volume: Volume to be backed up must be available or in-use, but the current status is \"{other}\"."
                )));
            }
        }
    }
    let zone = request
        .availability_zone
        .clone()
        .unwrap_or_else(|| volume.availability_zone.clone());
    // The volume's own node first: the backup service reads the volume
    // through a local path.
    let node = volume
        .host
        .as_deref()
        .and_then(|h| h.split(['@', '#']).next());
    let host = backup_host(state, Some(&zone), node).await?;
    let driver = state
        .config
        .backup
        .driver
        .unwrap_or(clinker_config::BackupDriverKind::Posix);
    let new = NewBackup {
        id: BackupId::new_random(),
        volume_id: volume.id,
        user_id: ctx.user_id.clone(),
        project_id: volume.project_id.clone(),
        display_name: request.name,
        display_description: request.description,
        container: request.container,
        incremental: request.incremental,
        force: request.force,
        host: host.clone(),
        availability_zone: Some(zone),
        service: driver.class_path().to_owned(),
        metadata: request.metadata,
        snapshot_id: snapshot.as_ref().map(|s| s.id),
    };
    let backup = match state.db.create_backup(new).await {
        Ok(b) => b,
        Err(DbError::OverQuota(over)) => return Err(backup_quota_error(&over, volume.size)),
        Err(DbError::InvalidState(reason)) if reason.starts_with("No backups") => {
            return Err(ApiError::invalid_state(format!("Invalid backup: {reason}")));
        }
        Err(DbError::InvalidState(reason)) if reason.starts_with("Snapshot") => {
            return Err(ApiError::invalid_state(format!(
                "Invalid snapshot: {reason}"
            )));
        }
        Err(DbError::InvalidState(reason)) => {
            return Err(ApiError::invalid_state(format!("Invalid volume: {reason}")));
        }
        Err(e) => return Err(e.into()),
    };
    let args = CreateBackupArgs {
        backup_id: backup.id,
    };
    if let Err(e) = rpc(state).create_backup(ctx, &host, &args).await {
        tracing::error!(backup_id = %backup.id, error = %e, "cannot cast create_backup");
        let _ = state
            .db
            .fail_backup_create(backup.id, "the backup service could not be reached")
            .await;
        return Err(ApiError::new(
            clinker_types::ErrorKind::Unavailable,
            "The backup service could not be reached.",
        ));
    }
    Ok(backup)
}

/// `PUT /backups/{id}` (3.9): name and description; 3.43 metadata
/// (replacing the backup's).
///
/// # Errors
/// 404, 403.
pub async fn update_backup(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    name: Option<Option<String>>,
    description: Option<Option<String>>,
    metadata: Option<BTreeMap<String, String>>,
) -> ApiResult<Backup> {
    let backup = get_backup(state, ctx, id).await?;
    policy::enforce(ctx, "backup:update", Some(&backup.project_id))?;
    state
        .db
        .update_backup(backup.id, name, description, metadata.as_ref())
        .await
        .map_err(ApiError::from)
}

/// Deletes a backup (`force`: also one being made or restored).
///
/// # Errors
/// 404, 403, Cinder's 400 texts, 503.
pub async fn delete_backup(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    force: bool,
) -> ApiResult<()> {
    let backup = get_backup(state, ctx, id).await?;
    if force {
        policy::enforce(
            ctx,
            "volume_extension:backup_admin_actions:force_delete",
            Some(&backup.project_id),
        )?;
    } else {
        policy::enforce(ctx, "backup:delete", Some(&backup.project_id))?;
    }
    let host = backup.host.clone().unwrap_or_default();
    if force
        && !matches!(
            rpc(state).check_support_to_force_delete(ctx, &host).await,
            Ok(true)
        )
    {
        return Err(ApiError::bad_request(
            "Operation not supported: force delete.",
        ));
    }
    state
        .db
        .begin_backup_delete(backup.id, force)
        .await
        .map_err(|e| match e {
            DbError::InvalidState(reason) => {
                ApiError::invalid_state(format!("Invalid backup: {reason}"))
            }
            other => other.into(),
        })?;
    let args = DeleteBackupArgs {
        backup_id: backup.id,
    };
    if let Err(e) = rpc(state).delete_backup(ctx, &host, &args).await {
        // The row stays `deleting`; the backup service's start-up resumes it.
        tracing::warn!(backup_id = %backup.id, error = %e, "cannot cast delete_backup; the backup service resumes it at start-up");
    }
    Ok(())
}

/// What a restore did (Cinder's `restore` view).
#[derive(Clone, Debug)]
pub struct Restored {
    /// The backup.
    pub backup_id: BackupId,
    /// The volume written.
    pub volume_id: clinker_types::VolumeId,
    /// Its name.
    pub volume_name: Option<String>,
}

/// Restores a backup into `volume_id`, or into a new volume named `name`.
///
/// # Errors
/// 404, 403, Cinder's 400 texts, 413 for a new volume over quota, 503.
pub async fn restore_backup(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    volume_id: Option<String>,
    name: Option<String>,
) -> ApiResult<Restored> {
    let backup = get_backup(state, ctx, id).await?;
    policy::enforce(ctx, "backup:restore", Some(&backup.project_id))?;
    if backup.status != BackupStatus::Available {
        return Err(ApiError::invalid_state(
            "Invalid backup: Backup status must be available",
        ));
    }
    let (volume, is_new) = match volume_id {
        Some(volume_id) => (get_volume(state, ctx, &volume_id).await?, false),
        None => {
            let created = create_volume(
                state,
                ctx,
                CreateVolume {
                    size: Some(backup.size),
                    name: Some(name.unwrap_or_else(|| format!("restore_backup_{}", backup.id))),
                    description: Some("auto-created_from_restore_from_backup".into()),
                    availability_zone: backup.availability_zone.clone(),
                    ..CreateVolume::default()
                },
            )
            .await?;
            (wait_created(state, created).await?, true)
        }
    };
    if volume.status != VolumeStatus::Available {
        return Err(ApiError::invalid_state(
            "Invalid volume: Volume to be restored to must be available",
        ));
    }
    if volume.size < backup.size {
        return Err(ApiError::invalid_state(format!(
            "Invalid volume: volume size {} is too small to restore backup of size {}.",
            volume.size, backup.size
        )));
    }
    state
        .db
        .begin_backup_restore(backup.id, volume.id)
        .await
        .map_err(|e| match e {
            DbError::InvalidState(reason) if reason.starts_with("Backup") => {
                ApiError::invalid_state(format!("Invalid backup: {reason}"))
            }
            DbError::InvalidState(reason) => {
                ApiError::invalid_state(format!("Invalid volume: {reason}"))
            }
            other => other.into(),
        })?;
    let args = RestoreBackupArgs {
        backup_id: backup.id,
        volume_id: volume.id,
        volume_is_new: is_new,
    };
    let host = backup.host.clone().unwrap_or_default();
    if let Err(e) = rpc(state).restore_backup(ctx, &host, &args).await {
        tracing::error!(backup_id = %backup.id, error = %e, "cannot cast restore_backup");
        let _ = state
            .db
            .finish_backup_restore(backup.id, volume.id, false)
            .await;
        return Err(ApiError::new(
            clinker_types::ErrorKind::Unavailable,
            "The backup service could not be reached.",
        ));
    }
    Ok(Restored {
        backup_id: backup.id,
        volume_id: volume.id,
        volume_name: volume.display_name,
    })
}

/// Waits for a volume created for a restore to leave `creating`.
async fn wait_created(state: &ApiState, volume: Volume) -> ApiResult<Volume> {
    let started = std::time::Instant::now();
    let mut current = volume;
    while current.status == VolumeStatus::Creating && started.elapsed() < NEW_VOLUME_WAIT {
        tokio::time::sleep(Duration::from_millis(250)).await;
        current = state
            .db
            .get_volume(current.id)
            .await
            .map_err(ApiError::from)?;
    }
    Ok(current)
}

/// `os-reset_status` (administrators): `available` or `error`.
///
/// # Errors
/// 404, 403, 503.
pub async fn reset_status(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    status: BackupStatus,
) -> ApiResult<()> {
    let backup = get_backup(state, ctx, id).await?;
    policy::enforce(
        ctx,
        "volume_extension:backup_admin_actions:reset_status",
        Some(&backup.project_id),
    )?;
    let args = ResetBackupStatusArgs {
        backup_id: backup.id,
        status: status.as_str().to_owned(),
    };
    let host = backup.host.clone().unwrap_or_default();
    if rpc(state).reset_status(ctx, &host, &args).await.is_err() {
        // No backup service to ask: set the row as Cinder's manager would.
        state
            .db
            .set_backup_status(backup.id, status)
            .await
            .map_err(ApiError::from)?;
    }
    Ok(())
}
