//! Reverting a volume to its latest snapshot (API 3.40; Cinder's
//! `VolumeController.revert` and `volume/api.py::revert_to_snapshot`).

use clinker_db::DbError;
use clinker_rpc::RequestContext;
use clinker_rpc::volume::RevertToSnapshotArgs;
use clinker_types::{SnapshotStatus, VolumeStatus};

use super::lookup_error;
use super::volumes::{get_volume, volume_not_found};
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::policy;

/// `volume:revert_to_snapshot`.
pub const REVERT_POLICY: &str = "volume:revert_to_snapshot";

/// Reverts a volume to `snapshot_id`, which must be its latest snapshot:
/// the volume becomes `reverting` and the snapshot `restoring` (one
/// transaction, journaled), and the revert is cast to the volume's backend.
/// If the backend cannot be reached both go back and 503 is answered.
///
/// # Errors
/// 404; 400 for a missing, stale or differently sized snapshot; 409 when
/// the volume or the snapshot is not `available` (Cinder answers these
/// with `HTTPConflict`); 503.
pub async fn revert_to_snapshot(
    state: &ApiState,
    ctx: &RequestContext,
    volume_id: &str,
    snapshot_id: Option<&str>,
) -> ApiResult<()> {
    let volume = get_volume(state, ctx, volume_id).await?;
    let latest = state
        .db
        .latest_snapshot_of_volume(volume.id)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| {
            ApiError::bad_request(format!("Volume {} doesn't have any snapshots.", volume.id))
        })?;
    if snapshot_id != Some(latest.to_string().as_str()) {
        return Err(ApiError::bad_request(format!(
            "Specified snapshot {} is None or not the latest one of volume {}.",
            snapshot_id.unwrap_or("None"),
            volume.id
        )));
    }
    let snapshot = state
        .db
        .get_snapshot(latest)
        .await
        .map_err(|e| lookup_error(e, || volume_not_found(volume_id)))?;
    if volume.size != snapshot.volume_size {
        return Err(ApiError::bad_request(format!(
            "Can't revert volume {} to its latest snapshot {}. The volume size must be equal to the snapshot size.",
            volume.id, snapshot.id
        )));
    }
    policy::enforce(ctx, REVERT_POLICY, Some(&volume.project_id))?;
    let volume_refused = || {
        ApiError::conflict(format!(
            "Invalid volume: Can't revert volume {} to its latest snapshot {}. Volume's status must be 'available'.",
            volume.id, snapshot.id
        ))
    };
    let snapshot_refused = || {
        ApiError::conflict(format!(
            "Invalid snapshot: Can't revert volume {} to its latest snapshot {}. Snapshot's status must be 'available'.",
            volume.id, snapshot.id
        ))
    };
    if volume.status != VolumeStatus::Available {
        return Err(volume_refused());
    }
    if snapshot.status != SnapshotStatus::Available {
        return Err(snapshot_refused());
    }
    let (started, _) = state
        .db
        .begin_volume_revert(volume.id, snapshot.id)
        .await
        .map_err(|e| match e {
            // Lost a race with another change of either row.
            DbError::InvalidState(_) => volume_refused(),
            other => lookup_error(other, || volume_not_found(volume_id)),
        })?;
    let Some(host) = started.host.clone() else {
        // An available volume always has a host; an undispatchable revert
        // is undone like an unreachable backend.
        undo(state, &started.id, &snapshot.id).await;
        return Err(ApiError::unavailable());
    };
    let args = RevertToSnapshotArgs {
        volume_id: volume.id,
        snapshot_id: snapshot.id,
    };
    if let Err(err) = state.volume_rpc.revert_to_snapshot(ctx, &host, &args).await {
        tracing::error!(volume_id = %volume.id, host = %host, error = %err, "cannot cast revert_to_snapshot; undoing");
        undo(state, &volume.id, &snapshot.id).await;
        return Err(ApiError::unavailable());
    }
    Ok(())
}

async fn undo(
    state: &ApiState,
    volume_id: &clinker_types::VolumeId,
    snapshot_id: &clinker_types::SnapshotId,
) {
    if let Err(e) = state
        .db
        .finish_volume_revert(
            *volume_id,
            *snapshot_id,
            clinker_db::RevertOutcome::Untouched,
        )
        .await
    {
        tracing::error!(volume_id = %volume_id, error = %e, "cannot undo the undispatched revert");
    }
}
