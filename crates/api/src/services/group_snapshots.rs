//! Group snapshots: the group snapshot half of Cinder's `group/api.py`
//! (create, delete, reset) and `volume/api.py::create_snapshots_in_db`.

use clinker_db::{DbError, NewGroupSnapshot};
use clinker_rpc::RequestContext;
use clinker_rpc::volume::{CreateGroupSnapshotArgs, DeleteGroupSnapshotArgs};
use clinker_types::group::GroupSnapshot;
use clinker_types::group_status::{GroupSnapshotStatus, GroupStatus};
use clinker_types::{GroupSnapshotId, VolumeStatus};

use super::cast_journaled;
use super::groups::{check_not_cgsnapshot_type, get_group, group_volumes, invalid_group};
use super::rows::{get_owned, rows};
use super::{QuotaAction, lookup_error, quota_error};
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::policy::enforce;

rows! {
    GroupSnapshot(GroupSnapshotId, clinker_db::GroupSnapshotQuery), "GroupSnapshot",
    "group:get_all_group_snapshots", get_group_snapshot, list_group_snapshots
}

/// Cinder's `GroupSnapshotNotFound` text.
pub fn group_snapshot_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("GroupSnapshot {id} could not be found."))
}

/// A group snapshot the caller may see (`group:get_group_snapshot`).
///
/// # Errors
/// 404 for unknown ids, non-UUIDs, other projects' group snapshots.
pub async fn get_group_snapshot(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
) -> ApiResult<GroupSnapshot> {
    let found: GroupSnapshot = get_owned(state, ctx, id).await?;
    enforce(ctx, "group:get_group_snapshot", Some(&found.project_id))?;
    Ok(found)
}

fn invalid_volume(reason: impl AsRef<str>) -> ApiError {
    ApiError::invalid_state(format!("Invalid volume: {}", reason.as_ref()))
}

/// Takes a snapshot of every volume of a group: the group snapshot and its
/// member snapshots are written `creating` with their quota in one
/// transaction, then the work is cast to the group's backend. An
/// undeliverable cast removes them again (503).
///
/// # Errors
/// 404 for the group, Cinder's 400/413 texts, 503.
pub async fn create_group_snapshot(
    state: &ApiState,
    ctx: &RequestContext,
    group_id: &str,
    name: Option<String>,
    description: Option<String>,
) -> ApiResult<GroupSnapshot> {
    let group = get_group(state, ctx, group_id).await?;
    check_not_cgsnapshot_type(&group.group_type_id.to_string(), true)?;
    enforce(ctx, "group:create_group_snapshot", Some(&group.project_id))?;
    // Cinder takes snapshots of a group in any status; Clinker needs the
    // group settled, so the snapshot cannot race its creation or delete.
    if !matches!(group.status, GroupStatus::Available | GroupStatus::InUse) {
        return Err(invalid_group(format!(
            "Group {} status must be available or in-use, but current status is: {}.",
            group.id, group.status
        )));
    }
    let volumes = group_volumes(state, group.id).await?;
    for volume in &volumes {
        // Cinder's `_create_snapshot_in_db_validate`, in its order.
        if volume.host.is_none() {
            return Err(invalid_volume(
                "The snapshot cannot be created because volume has not been scheduled to any host.",
            ));
        }
        if volume.status == VolumeStatus::Maintenance {
            return Err(invalid_volume(
                "The snapshot cannot be created when the volume is in maintenance mode.",
            ));
        }
        if volume
            .migration_status
            .as_deref()
            .is_some_and(|m| !matches!(m, "deleting" | "error" | "success" | "none"))
        {
            return Err(invalid_volume(
                "Snapshot cannot be created while volume is migrating.",
            ));
        }
        if volume.status == VolumeStatus::Error {
            return Err(invalid_volume(
                "The snapshot cannot be created when the volume is in error status.",
            ));
        }
        if !matches!(volume.status, VolumeStatus::Available | VolumeStatus::InUse) {
            return Err(invalid_volume(format!(
                "Volume {} status must be available or in-use, but current status is: {}.",
                volume.id, volume.status
            )));
        }
    }
    let total: i64 = volumes.iter().map(|v| v.size).sum();
    let new = NewGroupSnapshot {
        id: GroupSnapshotId::new_random(),
        group_id: group.id,
        user_id: ctx.user_id.clone(),
        project_id: ctx.project_id.clone(),
        display_name: name,
        display_description: description,
    };
    let created = state
        .db
        .create_group_snapshot(new)
        .await
        .map_err(|e| match e {
            DbError::OverQuota(over) => {
                quota_error(&over, QuotaAction::CreateSnapshot { size: total })
            }
            DbError::InvalidState(_) => invalid_group(format!(
                "Group {} or one of its volumes changed status; try again.",
                group.id
            )),
            other => lookup_error(other, || super::groups::group_not_found(group_id)),
        })?;
    let Some(host) = group.host.clone() else {
        return Ok(created);
    };
    let args = CreateGroupSnapshotArgs {
        group_snapshot_id: created.id,
    };
    if let Err(err) = state
        .volume_rpc
        .create_group_snapshot(ctx, &host, &args)
        .await
    {
        tracing::error!(group_snapshot_id = %created.id, host = %host, error = %err,
            "cannot cast create_group_snapshot; discarding the group snapshot");
        if let Err(undo) = state.db.discard_group_snapshot_create(created.id).await {
            tracing::error!(group_snapshot_id = %created.id, error = %undo,
                "cannot discard the undispatched group snapshot");
        }
        return Err(ApiError::unavailable());
    }
    Ok(created)
}

/// Deletes a group snapshot and its member snapshots: `deleting` with one
/// journal row, then a cast to the group's backend, which deletes each
/// member through the snapshot delete path.
///
/// # Errors
/// 404, 400 "Invalid GroupSnapshot: …".
pub async fn delete_group_snapshot(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
) -> ApiResult<()> {
    let group_snapshot = get_group_snapshot(state, ctx, id).await?;
    check_not_cgsnapshot_type(&group_snapshot.group_type_id.to_string(), true)?;
    enforce(
        ctx,
        "group:delete_group_snapshot",
        Some(&group_snapshot.project_id),
    )?;
    let started = state
        .db
        .begin_group_snapshot_delete(group_snapshot.id)
        .await
        .map_err(|e| match e {
            DbError::InvalidState(_) => ApiError::invalid_state(
                "Invalid GroupSnapshot: GroupSnapshot status must be available or error, and no Group can be currently using it as source for its creation.",
            ),
            other => lookup_error(other, || group_snapshot_not_found(id)),
        })?;
    let Some(host) = started.host.clone() else {
        return Ok(());
    };
    let args = DeleteGroupSnapshotArgs {
        group_snapshot_id: started.id,
    };
    let sent = state
        .volume_rpc
        .delete_group_snapshot(ctx, &host, &args)
        .await;
    cast_journaled(sent, "delete_group_snapshot", &started.id, &host);
    Ok(())
}

/// `reset_status` (3.19, admin).
///
/// # Errors
/// 404, 403.
pub async fn reset_group_snapshot_status(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    status: GroupSnapshotStatus,
) -> ApiResult<()> {
    let group_snapshot = get_group_snapshot(state, ctx, id).await?;
    enforce(
        ctx,
        "group:reset_group_snapshot_status",
        Some(&group_snapshot.project_id),
    )?;
    state
        .db
        .reset_group_snapshot_status(group_snapshot.id, status)
        .await
        .map_err(|e| lookup_error(e, || group_snapshot_not_found(id)))?;
    Ok(())
}
