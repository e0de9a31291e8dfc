//! `os-retype` (Cinder's `volume/api.py::retype`): the API's checks, the
//! `retyping` transition with the new type's quota checked, and the cast
//! to the scheduler, which decides whether the volume's backend can keep
//! it.

use clinker_db::DbError;
use clinker_rpc::RequestContext;
use clinker_rpc::scheduler::ScheduleRetypeArgs;
use clinker_rpc::volume::MigrationPolicy;
use clinker_types::model::{Volume, VolumeType};
use clinker_types::volume_type_extras::QosConsumer;
use clinker_types::{VolumeStatus, VolumeTypeId};

use super::volumes::{authorized_volume, provision_filter_on_size, volume_not_found};
use super::{QuotaAction, lookup_error, quota_error};
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::policy;
use crate::validation::is_uuid_like;

/// `volume:retype`.
pub const RETYPE_POLICY: &str = "volume:retype";
/// `volume:multiattach`.
pub const MULTIATTACH_POLICY: &str = "volume:multiattach";

/// Cinder's refusal when the conditional update does not apply.
fn retype_refused() -> ApiError {
    ApiError::invalid_state(
        "Invalid volume: Retype needs volume to be in available or in-use state, not be part of an active migration or a consistency group, requested type has to be different that the one from the volume, and for in-use volumes front-end qos specs cannot change.",
    )
}

/// The new type by id or name, across projects (Cinder looks it up with
/// an elevated context).
async fn find_new_type(state: &ApiState, identity: &str) -> ApiResult<VolumeType> {
    if is_uuid_like(identity)
        && let Ok(id) = identity.parse::<VolumeTypeId>()
    {
        match state.db.get_volume_type(id).await {
            Ok(found) => return Ok(found),
            Err(DbError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    state
        .db
        .get_volume_type_by_name(identity)
        .await
        .map_err(|e| {
            lookup_error(e, || {
                ApiError::not_found(format!(
                    "Volume type with name {identity} could not be found."
                ))
            })
        })
}

/// The consumer of a type's QoS specs, if it has any.
async fn qos_consumer(state: &ApiState, t: Option<&VolumeType>) -> ApiResult<Option<QosConsumer>> {
    let Some(id) = t
        .and_then(|t| t.qos_specs_id.as_deref())
        .and_then(|i| i.parse().ok())
    else {
        return Ok(None);
    };
    match state.db.get_qos_specs(id).await {
        Ok(q) => Ok(Some(q.consumer)),
        Err(DbError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Cinder's `volume_qos_allows_retype`: an attached volume may only move to
/// a type with the same QoS specs, or when neither type's specs are
/// applied by the hypervisor (which Nova cannot change on the fly).
async fn qos_allows_retype(state: &ApiState, volume: &Volume, new: &VolumeType) -> ApiResult<bool> {
    if volume.status != VolumeStatus::InUse {
        return Ok(true);
    }
    let old = state.db.get_volume_type(volume.volume_type_id).await.ok();
    if old.as_ref().and_then(|t| t.qos_specs_id.clone()) == new.qos_specs_id {
        return Ok(true);
    }
    let front = |c: Option<QosConsumer>| c.is_some_and(QosConsumer::is_front_end);
    Ok(!front(qos_consumer(state, old.as_ref()).await?)
        && !front(qos_consumer(state, Some(new)).await?))
}

/// Starts a retype of `volume_id` to `new_type` (a name or an id).
///
/// # Errors
/// 404 (volume, type), 400 with Cinder's texts, 413 (the new type's
/// quota), 503 when no scheduler takes the cast.
pub async fn retype_volume(
    state: &ApiState,
    ctx: &RequestContext,
    volume_id: &str,
    new_type: &str,
    migration_policy: MigrationPolicy,
) -> ApiResult<()> {
    let volume = authorized_volume(state, ctx, volume_id, RETYPE_POLICY).await?;
    let target = find_new_type(state, new_type).await?;
    provision_filter_on_size(&target, volume.size)?;
    let to_multiattach = target.is_multiattach();
    if volume.multiattach != to_multiattach {
        if volume.status != VolumeStatus::Available {
            return Err(ApiError::invalid_input(format!(
                "Invalid volume_type passed, retypes affecting multiattach are only allowed on available volumes, the specified volume however currently has a status of: {}.",
                volume.status
            )));
        }
        if to_multiattach {
            policy::enforce(ctx, MULTIATTACH_POLICY, Some(&volume.project_id))?;
        }
    }
    if to_multiattach
        && state
            .db
            .get_type_encryption(target.id)
            .await
            .map_err(ApiError::from)?
            .is_some()
    {
        return Err(ApiError::invalid_input(
            "Retype requested both encryption and multi-attach, which is not supported.",
        ));
    }
    if !qos_allows_retype(state, &volume, &target).await? {
        return Err(retype_refused());
    }
    let detail = serde_json::json!({
        "new_type_id": target.id.to_string(),
        "migration_policy": migration_policy.as_str(),
    });
    state
        .db
        .begin_volume_retype(volume.id, target.id, detail)
        .await
        .map_err(|e| match e {
            DbError::InvalidState(_) => retype_refused(),
            DbError::OverQuota(over) => {
                quota_error(&over, QuotaAction::CreateVolume { size: volume.size })
            }
            other => lookup_error(other, || volume_not_found(volume_id)),
        })?;
    let args = ScheduleRetypeArgs {
        volume_id: volume.id,
        new_type_id: target.id,
        migration_policy,
    };
    if let Err(err) = state.scheduler_rpc.retype(ctx, &args).await {
        tracing::error!(volume_id = %volume.id, error = %err, "cannot cast retype to the scheduler; undoing");
        if let Err(undo) = state.db.abort_volume_retype(volume.id).await {
            tracing::error!(volume_id = %volume.id, error = %undo, "cannot undo the undispatched retype");
        }
        return Err(ApiError::unavailable());
    }
    Ok(())
}
