//! Per-project default volume types (API 3.62, Cinder's
//! `api/v3/default_types.py`) and the choice of a volume's type when a
//! create names none (Cinder's `volume_types.get_default_volume_type`).
//!
//! Cinder checks the target project against Keystone; Clinker's Keystone
//! client only validates tokens, so any project id is accepted
//! (docs/adr/deviations-from-cinder.md).

use clinker_rpc::RequestContext;
use clinker_types::model::VolumeType;
use clinker_types::volume_type_extras::DefaultVolumeType;

use super::types::{default_type, find_type};
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::policy;

/// `volume_extension:default_set_or_update`.
pub const SET_POLICY: &str = "volume_extension:default_set_or_update";
/// `volume_extension:default_get`.
pub const GET_POLICY: &str = "volume_extension:default_get";
/// `volume_extension:default_get_all`.
pub const GET_ALL_POLICY: &str = "volume_extension:default_get_all";
/// `volume_extension:default_unset`.
pub const UNSET_POLICY: &str = "volume_extension:default_unset";

/// Policy with the controller's own refusal text.
fn authorize(ctx: &RequestContext, rule: &str, project_id: Option<&str>) -> ApiResult<()> {
    policy::enforce(ctx, rule, project_id).map_err(|e| {
        if e.kind() == Some(clinker_types::ErrorKind::Forbidden) {
            ApiError::forbidden("You are not authorized to perform this operation.")
        } else {
            e
        }
    })
}

/// The type a volume of the caller's project gets when the create names
/// none: the project's default type, else `[DEFAULT] default_volume_type`.
///
/// # Errors
/// 500 when the configured default does not exist.
pub async fn default_type_for(state: &ApiState, ctx: &RequestContext) -> ApiResult<VolumeType> {
    if let Some(default) = state
        .db
        .get_project_default_type(&ctx.project_id)
        .await
        .map_err(ApiError::from)?
    {
        match state.db.get_volume_type(default.volume_type_id).await {
            Ok(found) => return Ok(found),
            // A type cannot be deleted while it is a project default; if the
            // row is gone anyway, the configured default serves.
            Err(clinker_db::DbError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    default_type(state).await
}

/// Sets a project's default type (by name or id).
///
/// # Errors
/// 403; 400 "Volume type X could not be found." for an unknown type.
pub async fn set_default(
    state: &ApiState,
    ctx: &RequestContext,
    project_id: &str,
    volume_type: &str,
) -> ApiResult<DefaultVolumeType> {
    authorize(ctx, SET_POLICY, Some(project_id))?;
    let found = find_type::<VolumeType>(state, ctx, volume_type)
        .await
        .map_err(|e| {
            if e.kind() == Some(clinker_types::ErrorKind::NotFound) {
                ApiError::bad_request(e.user_message().to_owned())
            } else {
                e
            }
        })?;
    state
        .db
        .set_project_default_type(project_id, found.id)
        .await
        .map_err(|e| match e {
            clinker_db::DbError::NotFound { .. } => {
                ApiError::bad_request(format!("Volume type {volume_type} could not be found."))
            }
            other => other.into(),
        })
}

/// A project's default type.
///
/// # Errors
/// 403; 404 "Default type for project X not found.".
pub async fn get_default(
    state: &ApiState,
    ctx: &RequestContext,
    project_id: &str,
) -> ApiResult<DefaultVolumeType> {
    authorize(ctx, GET_POLICY, Some(project_id))?;
    state
        .db
        .get_project_default_type(project_id)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| {
            ApiError::not_found(format!("Default type for project {project_id} not found."))
        })
}

/// Every project's default type.
///
/// # Errors
/// 403.
pub async fn list_defaults(
    state: &ApiState,
    ctx: &RequestContext,
) -> ApiResult<Vec<DefaultVolumeType>> {
    authorize(ctx, GET_ALL_POLICY, None)?;
    state
        .db
        .list_project_default_types()
        .await
        .map_err(ApiError::from)
}

/// Removes a project's default type (a no-op when it has none).
///
/// # Errors
/// 403.
pub async fn unset_default(
    state: &ApiState,
    ctx: &RequestContext,
    project_id: &str,
) -> ApiResult<()> {
    authorize(ctx, UNSET_POLICY, Some(project_id))?;
    state
        .db
        .unset_project_default_type(project_id)
        .await
        .map_err(ApiError::from)
}
