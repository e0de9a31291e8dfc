//! Snapshots: Cinder's `volume/api.py` snapshot half (`create_snapshot`,
//! `delete_snapshot`, metadata) and the snapshot admin actions.

use std::collections::BTreeMap;

use clinker_db::{DbError, NewSnapshot};
use clinker_rpc::RequestContext;
use clinker_rpc::volume::{CreateSnapshotArgs, DeleteSnapshotArgs, UnmanageSnapshotArgs};
use clinker_types::model::Snapshot;
use clinker_types::status::SnapshotTransition;
use clinker_types::{SnapshotId, SnapshotStatus, VolumeId, VolumeStatus};

use super::cast_journaled;
use super::rows::{get_owned, rows};
use super::volumes::get_volume;
use super::{QuotaAction, lookup_error, quota_error};
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::policy;

rows! {
    Snapshot(SnapshotId, clinker_db::SnapshotQuery), "Snapshot", "volume:get_all_snapshots",
    get_snapshot, list_snapshots, count_snapshots
}

/// Cinder's `SnapshotNotFound` text.
pub fn snapshot_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Snapshot {id} could not be found."))
}

/// A snapshot the caller may see and read (`volume:get_snapshot`).
///
/// # Errors
/// 404 for unknown ids, non-UUIDs, other projects' snapshots; 403 when
/// the policy refuses the read (Cinder's `get_snapshot` does not hide it).
pub async fn get_snapshot(state: &ApiState, ctx: &RequestContext, id: &str) -> ApiResult<Snapshot> {
    let snapshot: Snapshot = get_owned(state, ctx, id).await?;
    policy::enforce(ctx, "volume:get_snapshot", Some(&snapshot.project_id))?;
    Ok(snapshot)
}

/// The row of a new snapshot of a volume for the caller, charged to quota.
pub(crate) fn new_snapshot(
    ctx: &RequestContext,
    volume_id: VolumeId,
    request: CreateSnapshot,
) -> NewSnapshot {
    NewSnapshot {
        id: SnapshotId::new_random(),
        volume_id,
        user_id: ctx.user_id.clone(),
        project_id: ctx.project_id.clone(),
        display_name: request.name,
        display_description: request.description,
        metadata: request.metadata,
        allow_in_use: request.allow_in_use,
        use_quota: true,
    }
}

/// [`get_snapshot`] with `rule` enforced on the snapshot's project.
///
/// # Errors
/// 404, 403.
pub async fn authorized_snapshot(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    rule: &str,
) -> ApiResult<Snapshot> {
    let snapshot = get_snapshot(state, ctx, id).await?;
    policy::enforce(ctx, rule, Some(&snapshot.project_id))?;
    Ok(snapshot)
}

/// What a snapshot create asks for.
#[derive(Clone, Debug, Default)]
pub struct CreateSnapshot {
    /// The source volume id (`None` when the body had `null`).
    pub volume_id: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// `force=true` below 3.66, or any request from 3.66 on: an `in-use`
    /// volume may be snapshotted.
    pub allow_in_use: bool,
}

/// Creates a snapshot: checks the volume, writes the `creating` row (quota
/// and journal with it) and casts to the volume's backend; if the cast
/// cannot be delivered the row is discarded and 503 answered.
///
/// # Errors
/// 404 for the volume, Cinder's 400/413 texts, 503.
pub async fn create_snapshot(
    state: &ApiState,
    ctx: &RequestContext,
    request: CreateSnapshot,
) -> ApiResult<Snapshot> {
    let volume_id = request
        .volume_id
        .clone()
        .unwrap_or_else(|| "None".to_owned());
    let volume = get_volume(state, ctx, &volume_id).await?;
    policy::enforce(ctx, "volume:create_snapshot", Some(&volume.project_id))?;
    let Some(host) = volume.host.clone() else {
        return Err(ApiError::invalid_state(
            "Invalid volume: The snapshot cannot be created because volume has not been scheduled to any host.",
        ));
    };
    if volume.status == VolumeStatus::Maintenance {
        return Err(ApiError::invalid_state(
            "Invalid volume: The snapshot cannot be created when the volume is in maintenance mode.",
        ));
    }
    if volume
        .migration_status
        .as_deref()
        .is_some_and(|m| !matches!(m, "deleting" | "error" | "success" | "none"))
    {
        return Err(ApiError::invalid_state(
            "Invalid volume: Snapshot cannot be created while volume is migrating.",
        ));
    }
    if volume.status == VolumeStatus::Error {
        return Err(ApiError::invalid_state(
            "Invalid volume: The snapshot cannot be created when the volume is in error status.",
        ));
    }
    let allowed = if request.allow_in_use {
        "available, in-use"
    } else {
        "available"
    };
    let status_refused = |status: VolumeStatus| {
        ApiError::invalid_state(format!(
            "Invalid volume: Volume {} status must be {allowed}, but current status is: {status}.",
            volume.id
        ))
    };
    let status_ok = volume.status == VolumeStatus::Available
        || (request.allow_in_use && volume.status == VolumeStatus::InUse);
    if !status_ok {
        return Err(status_refused(volume.status));
    }
    let new = new_snapshot(ctx, volume.id, request);
    let snapshot = state.db.create_snapshot(new).await.map_err(|e| match e {
        DbError::OverQuota(over) => {
            quota_error(&over, QuotaAction::CreateSnapshot { size: volume.size })
        }
        DbError::InvalidState(_) => status_refused(volume.status),
        other => lookup_error(other, || super::volumes::volume_not_found(&volume_id)),
    })?;
    let args = CreateSnapshotArgs {
        snapshot_id: snapshot.id,
        volume_id: volume.id,
    };
    if let Err(err) = state.volume_rpc.create_snapshot(ctx, &host, &args).await {
        tracing::error!(snapshot_id = %snapshot.id, host = %host, error = %err,
            "cannot cast create_snapshot; discarding the snapshot");
        if let Err(undo) = state.db.discard_snapshot_create(snapshot.id).await {
            tracing::error!(snapshot_id = %snapshot.id, error = %undo, "cannot discard the undispatched snapshot");
        }
        return Err(ApiError::unavailable());
    }
    Ok(snapshot)
}

/// Renames / re-describes a snapshot.
///
/// # Errors
/// 404.
pub async fn update_snapshot(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    name: Option<Option<String>>,
    description: Option<Option<String>>,
) -> ApiResult<Snapshot> {
    let snapshot = authorized_snapshot(state, ctx, id, "volume:update_snapshot").await?;
    state
        .db
        .update_snapshot(snapshot.id, name, description)
        .await
        .map_err(|e| lookup_error(e, || snapshot_not_found(id)))
}

/// How a snapshot goes (Cinder's `delete_snapshot` with `force` and
/// `unmanage_only`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// `DELETE /snapshots/{id}`.
    Delete,
    /// `os-force_delete` (admin): whatever the status.
    ForceDelete,
    /// `os-unmanage`: the row goes, the backend keeps the data.
    Unmanage,
}

/// Removes a snapshot: `deleting` (or unmanaging) plus its journal row,
/// then a cast to the backend. An unreachable backend is logged; the
/// volume service resumes from the journal.
///
/// # Errors
/// 404, 403, 400 "Invalid snapshot: …" when its status forbids it.
pub async fn delete_snapshot(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    how: Removal,
) -> ApiResult<()> {
    let snapshot = get_snapshot(state, ctx, id).await?;
    let own_rule = match how {
        Removal::Delete => None,
        Removal::ForceDelete => Some("volume_extension:snapshot_admin_actions:force_delete"),
        Removal::Unmanage => Some(super::manage::SNAPSHOT_UNMANAGE_POLICY),
    };
    for rule in own_rule.into_iter().chain(["volume:delete_snapshot"]) {
        policy::enforce(ctx, rule, Some(&snapshot.project_id))?;
    }
    let refused = || {
        let status = if how == Removal::ForceDelete {
            ""
        } else {
            "status must be available or error and"
        };
        ApiError::invalid_state(format!(
            "Invalid snapshot: Snapshot {status} must not be part of a group."
        ))
    };
    // A member of a group snapshot goes with its group snapshot only.
    if how != Removal::Unmanage && snapshot.group_snapshot_id.is_some() {
        return Err(refused());
    }
    let started = match how {
        Removal::Delete => {
            let delete = SnapshotTransition::Delete;
            state.db.begin_snapshot_delete(snapshot.id, delete).await
        }
        Removal::ForceDelete => {
            let force = SnapshotTransition::ForceDelete;
            state.db.begin_snapshot_delete(snapshot.id, force).await
        }
        Removal::Unmanage => state.db.begin_snapshot_unmanage(snapshot.id).await,
    }
    .map_err(|e| match e {
        DbError::InvalidState(_) => refused(),
        other => lookup_error(other, || snapshot_not_found(id)),
    })?;
    let Some(host) = started.host.clone() else {
        return Ok(());
    };
    let rpc = &state.volume_rpc;
    let (op, sent) = if how == Removal::Unmanage {
        let args = UnmanageSnapshotArgs {
            snapshot_id: started.id,
        };
        (
            "unmanage_snapshot",
            rpc.unmanage_snapshot(ctx, &host, &args).await,
        )
    } else {
        let args = DeleteSnapshotArgs {
            snapshot_id: started.id,
        };
        (
            "delete_snapshot",
            rpc.delete_snapshot(ctx, &host, &args).await,
        )
    };
    cast_journaled(sent, op, &started.id, &host);
    Ok(())
}

/// `os-reset_status` on a snapshot (admin).
///
/// # Errors
/// 404.
pub async fn reset_status(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    status: SnapshotStatus,
) -> ApiResult<()> {
    let snapshot = authorized_snapshot(
        state,
        ctx,
        id,
        "volume_extension:snapshot_admin_actions:reset_status",
    )
    .await?;
    state
        .db
        .set_snapshot_status(snapshot.id, status, None)
        .await
        .map_err(|e| lookup_error(e, || snapshot_not_found(id)))?;
    Ok(())
}

/// `os-update_snapshot_status` (Nova-assisted snapshots): only from
/// `creating` to creating/available/error and from `deleting` to
/// deleting/error_deleting.
///
/// # Errors
/// 404, 400 for a transition Cinder does not allow.
pub async fn update_snapshot_status(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    status: &str,
    progress: Option<String>,
) -> ApiResult<()> {
    let snapshot = authorized_snapshot(
        state,
        ctx,
        id,
        "snapshot_extension:snapshot_actions:update_snapshot_status",
    )
    .await?;
    let allowed: &[&str] = match snapshot.status {
        SnapshotStatus::Creating => &["creating", "available", "error"],
        SnapshotStatus::Deleting => &["deleting", "error_deleting"],
        other => {
            return Err(ApiError::bad_request(format!(
                "Snapshot status {other} not allowed for update_snapshot_status"
            )));
        }
    };
    let new_status = allowed
        .contains(&status)
        .then(|| status.parse::<SnapshotStatus>().ok())
        .flatten()
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Provided snapshot status {status} not allowed for snapshot with status {}.",
                snapshot.status
            ))
        })?;
    state
        .db
        .set_snapshot_status(snapshot.id, new_status, progress.filter(|p| !p.is_empty()))
        .await
        .map_err(|e| lookup_error(e, || snapshot_not_found(id)))?;
    Ok(())
}
