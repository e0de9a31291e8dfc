//! Volumes: Cinder's `volume/api.py` (`delete`, `update`, `extend`,
//! metadata, the admin actions) over the database's compare-and-swap
//! operations and the RPC clients. The create flow is in
//! [`super::create_volume`].
//!
//! Every check that can fail on user input runs before anything is
//! written; every write that must be undone when a cast cannot be
//! delivered is undone here, so a refused request leaves nothing behind.

use std::collections::BTreeMap;

use clinker_db::{DbError, DeleteOptions, DeleteStart, MetadataKind, VolumeUpdate};
use clinker_rpc::RequestContext;
use clinker_rpc::scheduler::ScheduleExtendVolumeArgs;
use clinker_rpc::volume::DeleteVolumeArgs;
use clinker_types::model::{Volume, VolumeType};
use clinker_types::{AttachStatus, VolumeId, VolumeStatus};

use super::cast_journaled;
use super::rows::{get_owned, rows};
use super::{QuotaAction, lookup_error, quota_error};
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::microversion::{self, ApiVersion};
use crate::policy;

rows! {
    Volume(VolumeId, clinker_db::VolumeQuery), "Volume", "volume:get_all",
    get_volume, list_volumes, count_volumes
}

/// Cinder's `VolumeNotFound` text.
pub fn volume_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Volume {id} could not be found."))
}

/// A volume the caller may see; 404 "Volume X could not be found." for
/// unknown ids, ids that are not UUIDs, other projects' volumes and
/// volumes `volume:get` does not let the caller read (Cinder's
/// `volume_api.get` hides them the same way).
///
/// # Errors
/// 404, database failures.
pub async fn get_volume(state: &ApiState, ctx: &RequestContext, id: &str) -> ApiResult<Volume> {
    let volume: Volume = get_owned(state, ctx, id).await?;
    if policy::allowed(ctx, "volume:get", Some(&volume.project_id)) {
        Ok(volume)
    } else {
        Err(volume_not_found(id))
    }
}

/// [`get_volume`] with `rule` enforced on the volume's project.
///
/// # Errors
/// 404, 403.
pub async fn authorized_volume(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    rule: &str,
) -> ApiResult<Volume> {
    let volume = get_volume(state, ctx, id).await?;
    policy::enforce(ctx, rule, Some(&volume.project_id))?;
    Ok(volume)
}

const MIN_SIZE_KEY: &str = "provisioning:min_vol_size";
const MAX_SIZE_KEY: &str = "provisioning:max_vol_size";

/// Cinder's `provision_filter_on_size`.
pub(crate) fn provision_filter_on_size(volume_type: &VolumeType, size: i64) -> ApiResult<()> {
    let limit = |key: &str| {
        volume_type
            .extra_specs
            .get(key)
            .filter(|v| !v.is_empty())
            .map(|v| (v.clone(), v.trim().parse::<i64>().ok()))
    };
    if let Some((text, min)) = limit(MIN_SIZE_KEY)
        && min.is_some_and(|min| size < min)
    {
        return Err(ApiError::invalid_input(format!(
            "Specified volume size of '{size}' is less than the minimum required size of '{text}' for volume type '{}'.",
            volume_type.name
        )));
    }
    if let Some((text, max)) = limit(MAX_SIZE_KEY)
        && max.is_some_and(|max| size > max)
    {
        return Err(ApiError::invalid_input(format!(
            "Specified volume size of '{size}' is greater than the maximum allowable size of '{text}' for volume type '{}'.",
            volume_type.name
        )));
    }
    Ok(())
}

/// Fields of `PUT /volumes/{id}`.
#[derive(Clone, Debug, Default)]
pub struct UpdateVolume {
    /// New name (`Some(None)` clears it).
    pub name: Option<Option<String>>,
    /// New description.
    pub description: Option<Option<String>>,
    /// Replaces the user metadata.
    pub metadata: Option<BTreeMap<String, String>>,
}

/// Updates name, description and metadata.
///
/// # Errors
/// 404, 400 during maintenance.
pub async fn update_volume(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    update: UpdateVolume,
) -> ApiResult<Volume> {
    let volume = authorized_volume(state, ctx, id, "volume:update").await?;
    if volume.status == VolumeStatus::Maintenance {
        return Err(ApiError::invalid_state(
            "Invalid volume: The volume cannot be updated during maintenance.",
        ));
    }
    if let Some(metadata) = &update.metadata {
        state
            .db
            .set_volume_metadata(volume.id, MetadataKind::User, metadata, true)
            .await
            .map_err(|e| lookup_error(e, || volume_not_found(id)))?;
    }
    if update.name.is_some() || update.description.is_some() {
        state
            .db
            .update_volume(
                volume.id,
                VolumeUpdate {
                    display_name: update.name,
                    display_description: update.description,
                    bootable: None,
                },
            )
            .await
            .map_err(|e| lookup_error(e, || volume_not_found(id)))?;
    }
    state
        .db
        .get_volume(volume.id)
        .await
        .map_err(|e| lookup_error(e, || volume_not_found(id)))
}

/// Cinder's refusal of a delete (or unmanage) by its conditions.
pub(crate) fn delete_refused(force: bool) -> ApiError {
    let status = if force {
        String::new()
    } else {
        "status must be available or error or error_restoring or error_extending or error_managing and"
            .to_owned()
    };
    ApiError::invalid_state(format!(
        "Invalid volume: Volume {status} must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer."
    ))
}

/// Deletes a volume (Cinder's `delete`): a volume never placed goes at
/// once; otherwise it becomes `deleting` with its journal row and the
/// delete is cast to its backend. A volume already `deleting` is accepted
/// again and re-cast. If the backend cannot be reached the journal row
/// makes the volume service resume the delete, so the request still
/// succeeds.
///
/// # Errors
/// 404, 400 with Cinder's text when the volume may not be deleted.
pub async fn delete_volume(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    force: bool,
    cascade: bool,
) -> ApiResult<()> {
    let volume = authorized_volume(state, ctx, id, "volume:delete").await?;
    let outcome = state
        .db
        .begin_volume_delete(volume.id, DeleteOptions { force, cascade })
        .await
        .map_err(|e| match e {
            DbError::InvalidState(_) => delete_refused(force),
            other => lookup_error(other, || volume_not_found(id)),
        })?;
    let started = match outcome {
        DeleteStart::DeletedWithoutBackend(_) => return Ok(()),
        DeleteStart::Started(v) | DeleteStart::AlreadyDeleting(v) => v,
    };
    let Some(host) = started.host.clone() else {
        return Ok(());
    };
    let args = DeleteVolumeArgs {
        volume_id: started.id,
        cascade,
    };
    let sent = state.volume_rpc.delete_volume(ctx, &host, &args).await;
    cast_journaled(sent, "delete_volume", &started.id, &host);
    Ok(())
}

/// `os-extend`: checks the size, the status, the per-volume limit and the
/// gigabytes quota, moves the volume to `extending` (quota charged and the
/// new size journaled in one transaction) and casts to the scheduler. If the
/// cast cannot be delivered the extend is aborted and 503 answered.
///
/// # Errors
/// Cinder's 400/413 texts, 503.
pub async fn extend_volume(
    state: &ApiState,
    ctx: &RequestContext,
    version: ApiVersion,
    id: &str,
    new_size: i64,
) -> ApiResult<()> {
    let volume = get_volume(state, ctx, id).await?;
    let attached =
        version.matches(microversion::VOLUME_EXTEND_INUSE) && volume.status == VolumeStatus::InUse;
    let rule = if attached {
        "volume:extend_attached_volume"
    } else {
        "volume:extend"
    };
    policy::enforce(ctx, rule, Some(&volume.project_id))?;
    if new_size <= volume.size {
        return Err(ApiError::invalid_input(format!(
            "New size for extend must be greater than current size. (current: {}, extended: {new_size}).",
            volume.size
        )));
    }
    let volume_type = state.db.get_volume_type(volume.volume_type_id).await.ok();
    if let Some(t) = &volume_type {
        provision_filter_on_size(t, new_size)?;
    }
    let expected = if attached { "in-use" } else { "available" };
    let status_refused = |status: VolumeStatus| {
        ApiError::invalid_state(format!(
            "Invalid volume: Volume {} status must be '{{'status': '{expected}'}}' to extend, currently {status}.",
            volume.id
        ))
    };
    let expected_status = if attached {
        VolumeStatus::InUse
    } else {
        VolumeStatus::Available
    };
    if volume.status != expected_status {
        return Err(status_refused(volume.status));
    }
    let limits = state
        .db
        .quota_limits(&volume.project_id)
        .await
        .map_err(ApiError::from)?;
    if let Some(limit) = limits.get("per_volume_gigabytes").copied()
        && limit >= 0
        && new_size > limit
    {
        return Err(ApiError::over_quota(format!(
            "VolumeSizeExceedsLimit: Requested volume size {new_size}G is larger than maximum allowed limit {limit}G."
        )));
    }
    let delta = new_size - volume.size;
    state
        .db
        .begin_volume_extend(volume.id, new_size, attached)
        .await
        .map_err(|e| match e {
            DbError::OverQuota(over) => quota_error(&over, QuotaAction::Extend { delta }),
            DbError::InvalidState(_) => status_refused(volume.status),
            other => lookup_error(other, || volume_not_found(id)),
        })?;
    let args = ScheduleExtendVolumeArgs {
        volume_id: volume.id,
        new_size,
    };
    if let Err(err) = state.scheduler_rpc.extend_volume(ctx, &args).await {
        tracing::error!(volume_id = %volume.id, error = %err, "cannot cast extend_volume to the scheduler; aborting the extend");
        if let Err(undo) = state.db.abort_volume_extend(volume.id, new_size).await {
            tracing::error!(volume_id = %volume.id, error = %undo, "cannot abort the undispatched extend");
        }
        return Err(ApiError::unavailable());
    }
    Ok(())
}

/// `os-set_bootable`.
///
/// # Errors
/// 404, 400 during maintenance.
pub async fn set_bootable(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    bootable: bool,
) -> ApiResult<()> {
    let volume = get_volume(state, ctx, id).await?;
    // Cinder sets the flag through `volume_api.update`.
    policy::enforce(ctx, "volume:update", Some(&volume.project_id))?;
    if volume.status == VolumeStatus::Maintenance {
        return Err(ApiError::invalid_state(
            "Invalid volume: The volume cannot be updated during maintenance.",
        ));
    }
    state
        .db
        .update_volume(
            volume.id,
            VolumeUpdate {
                bootable: Some(bootable),
                ..VolumeUpdate::default()
            },
        )
        .await
        .map_err(|e| lookup_error(e, || volume_not_found(id)))?;
    Ok(())
}

/// `os-update_readonly_flag`: the `readonly` admin metadata of an
/// `available` volume.
///
/// # Errors
/// 404, 400 unless available.
pub async fn update_readonly_flag(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    readonly: bool,
) -> ApiResult<()> {
    let volume = authorized_volume(state, ctx, id, "volume:update_readonly_flag").await?;
    if volume.status != VolumeStatus::Available {
        return Err(ApiError::invalid_state(format!(
            "Invalid volume: Volume {} status must be available to update readonly flag, but current status is: {}.",
            volume.id, volume.status
        )));
    }
    let flag = if readonly { "True" } else { "False" };
    let metadata = BTreeMap::from([("readonly".to_owned(), flag.to_owned())]);
    state
        .db
        .set_volume_metadata(volume.id, MetadataKind::Admin, &metadata, false)
        .await
        .map_err(|e| lookup_error(e, || volume_not_found(id)))?;
    Ok(())
}

/// What `os-reset_status` asks for (lowercased, validated).
#[derive(Clone, Debug, Default)]
pub struct ResetStatus {
    /// New status.
    pub status: Option<VolumeStatus>,
    /// New attach status.
    pub attach_status: Option<AttachStatus>,
    /// New migration status (`Some(None)` for `none`).
    pub migration_status: Option<Option<String>>,
}

/// `os-reset_status` (admin): sets the statuses without the usual checks.
///
/// # Errors
/// 404, 400 for `deleting` or `in-use` without attachments.
pub async fn reset_status(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    reset: ResetStatus,
) -> ApiResult<()> {
    let volume = authorized_volume(
        state,
        ctx,
        id,
        "volume_extension:volume_admin_actions:reset_status",
    )
    .await?;
    if reset.status == Some(VolumeStatus::Deleting) {
        return Err(ApiError::bad_request("Cannot reset-state to deleting"));
    }
    if reset.status == Some(VolumeStatus::InUse) && volume.attachments.is_empty() {
        return Err(ApiError::bad_request(
            "Cannot reset-state to in-use because volume does not have any attachments.",
        ));
    }
    state
        .db
        .reset_volume_status(
            volume.id,
            reset.status,
            reset.attach_status,
            reset.migration_status,
        )
        .await
        .map_err(|e| lookup_error(e, || volume_not_found(id)))?;
    // Cinder's `_clean_volume_attachment`: a volume reset to detached
    // loses its attachments (and keeps the invariant that a volume with
    // attachment rows is never shown detached).
    if reset.attach_status == Some(AttachStatus::Detached) && !volume.attachments.is_empty() {
        state
            .db
            .detach_all_attachments(volume.id)
            .await
            .map_err(|e| lookup_error(e, || volume_not_found(id)))?;
    }
    Ok(())
}

/// `os-force_delete` (admin).
///
/// # Errors
/// 404, 400.
pub async fn force_delete(state: &ApiState, ctx: &RequestContext, id: &str) -> ApiResult<()> {
    authorized_volume(
        state,
        ctx,
        id,
        "volume_extension:volume_admin_actions:force_delete",
    )
    .await?;
    delete_volume(state, ctx, id, true, false).await
}
