//! Volume types, their extra specs and access lists (Cinder's
//! `volume/volume_types.py` and the `types_manage`, `types_extra_specs`
//! and `volume_type_access` controllers' rules).

use std::collections::BTreeMap;

use clinker_db::{DbError, FilterValue, NewVolumeType, VolumeColumn, VolumeQuery};
use clinker_rpc::RequestContext;
use clinker_types::VolumeTypeId;
use clinker_types::model::VolumeType;

use super::lookup_error;
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::validation::is_uuid_like;

fn type_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Volume type {id} could not be found."))
}

fn type_name_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Volume type with name {name} could not be found."))
}

/// Whether the caller may use a type: public, admin, or granted access.
async fn type_visible(state: &ApiState, ctx: &RequestContext, t: &VolumeType) -> ApiResult<bool> {
    if t.is_public || ctx.is_admin {
        return Ok(true);
    }
    let projects = state
        .db
        .list_type_access(t.id)
        .await
        .map_err(ApiError::from)?;
    Ok(projects.contains(&ctx.project_id))
}

/// A type by id (Cinder's `get_volume_type`); 404 "Volume type X could not
/// be found." for unknown ids, non-UUIDs and private types of others.
///
/// # Errors
/// 404.
pub async fn get_type(state: &ApiState, ctx: &RequestContext, id: &str) -> ApiResult<VolumeType> {
    let Ok(type_id) = id.parse::<VolumeTypeId>() else {
        return Err(type_not_found(id));
    };
    let found = state
        .db
        .get_volume_type(type_id)
        .await
        .map_err(|e| lookup_error(e, || type_not_found(id)))?;
    if type_visible(state, ctx, &found).await? {
        Ok(found)
    } else {
        Err(type_not_found(id))
    }
}

/// A type by name (`VolumeTypeNotFoundByName` when missing).
async fn get_type_by_name(
    state: &ApiState,
    ctx: &RequestContext,
    name: &str,
) -> ApiResult<VolumeType> {
    let found = state
        .db
        .get_volume_type_by_name(name)
        .await
        .map_err(|e| lookup_error(e, || type_name_not_found(name)))?;
    if type_visible(state, ctx, &found).await? {
        Ok(found)
    } else {
        Err(type_name_not_found(name))
    }
}

/// Cinder's `get_by_name_or_id`: a UUID is tried as an id, then as a name;
/// anything else is a name.
///
/// # Errors
/// 404 with the id or the name text.
pub async fn find_type(
    state: &ApiState,
    ctx: &RequestContext,
    identity: &str,
) -> ApiResult<VolumeType> {
    if is_uuid_like(identity) {
        match get_type(state, ctx, identity).await {
            Ok(found) => return Ok(found),
            Err(err) if err.kind() == Some(clinker_types::ErrorKind::NotFound) => {
                return get_type_by_name(state, ctx, identity)
                    .await
                    .map_err(|_| type_not_found(identity));
            }
            Err(err) => return Err(err),
        }
    }
    get_type_by_name(state, ctx, identity).await
}

/// The configured default type (`[DEFAULT] default_volume_type`).
///
/// # Errors
/// 500 when it does not exist (Cinder's
/// `VolumeTypeDefaultMisconfiguredError`).
pub async fn default_type(state: &ApiState) -> ApiResult<VolumeType> {
    let name = &state.config.default.default_volume_type;
    state.db.get_volume_type_by_name(name).await.map_err(|e| {
        ApiError::internal(format!(
            "The request cannot be fulfilled as the default volume type {name} cannot be found. ({e})"
        ))
    })
}

/// Which types a list shows (Cinder's `is_public` list filter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeVisibility {
    /// Public types and private ones granted to the caller's project (the
    /// default, and all non-admins get).
    Visible,
    /// Private types only (admin, `is_public=false`).
    PrivateOnly,
    /// Every type (admin, `is_public=none`).
    All,
}

/// Types of the requested visibility (non-admins always get
/// [`TypeVisibility::Visible`]).
///
/// # Errors
/// Database failures.
pub async fn list_types(
    state: &ApiState,
    ctx: &RequestContext,
    visibility: TypeVisibility,
) -> ApiResult<Vec<VolumeType>> {
    let visibility = if ctx.is_admin {
        visibility
    } else {
        TypeVisibility::Visible
    };
    let types = match visibility {
        TypeVisibility::Visible => {
            state
                .db
                .list_volume_types(None, Some(&ctx.project_id))
                .await
        }
        TypeVisibility::PrivateOnly => state.db.list_volume_types(Some(false), None).await,
        TypeVisibility::All => state.db.list_volume_types(None, None).await,
    };
    types.map_err(ApiError::from)
}

/// Creates a type.
///
/// # Errors
/// 409 "Volume Type X already exists.".
pub async fn create_type(
    state: &ApiState,
    name: String,
    description: Option<String>,
    is_public: bool,
    extra_specs: BTreeMap<String, String>,
) -> ApiResult<VolumeType> {
    let new = NewVolumeType {
        name: name.clone(),
        description,
        is_public,
        extra_specs,
    };
    state.db.create_volume_type(new).await.map_err(|e| match e {
        DbError::Conflict(_) => ApiError::conflict(format!("Volume Type {name} already exists.")),
        other => other.into(),
    })
}

/// Updates name / description / visibility.
///
/// # Errors
/// 404, 409.
pub async fn update_type(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    name: Option<String>,
    description: Option<String>,
    is_public: Option<bool>,
) -> ApiResult<VolumeType> {
    let existing = get_type(state, ctx, id).await?;
    let conflict_name = name.clone().unwrap_or_default();
    state
        .db
        .update_volume_type(existing.id, name, description.map(Some), is_public)
        .await
        .map_err(|e| match e {
            DbError::Conflict(_) => {
                ApiError::conflict(format!("Volume Type {conflict_name} already exists."))
            }
            DbError::NotFound { .. } => type_not_found(id),
            other => other.into(),
        })
}

/// Deletes a type that is not the default and not in use.
///
/// # Errors
/// 404, 400 for the default type or a type in use.
pub async fn delete_type(state: &ApiState, ctx: &RequestContext, id: &str) -> ApiResult<()> {
    let existing = get_type(state, ctx, id).await?;
    if let Ok(default) = default_type(state).await
        && default.id == existing.id
    {
        return Err(ApiError::bad_request(format!(
            "The volume type {id} is a default volume type and cannot be deleted."
        )));
    }
    // A project's default type is refused the same way (Cinder's
    // `get_all_projects_with_default_type` check).
    if !state
        .db
        .projects_with_default_type(existing.id)
        .await
        .map_err(ApiError::from)?
        .is_empty()
    {
        return Err(ApiError::bad_request(format!(
            "The volume type {id} is a default volume type and cannot be deleted."
        )));
    }
    state
        .db
        .delete_volume_type(existing.id)
        .await
        .map_err(|e| match e {
            DbError::InvalidState(_) => {
                ApiError::bad_request("Target volume type is still in use.")
            }
            DbError::NotFound { .. } => type_not_found(id),
            other => other.into(),
        })
}

/// Refuses extra spec changes while volumes use the type (Cinder's
/// `_allow_update`).
///
/// # Errors
/// 400 "Volume Type is currently in use.".
pub async fn ensure_type_unused(state: &ApiState, id: VolumeTypeId) -> ApiResult<()> {
    let query = VolumeQuery {
        project_id: None,
        filters: vec![(VolumeColumn::VolumeTypeId, FilterValue::Eq(id.to_string()))],
        ..VolumeQuery::default()
    };
    let in_use = state
        .db
        .count_volumes(&query)
        .await
        .map_err(ApiError::from)?;
    if in_use > 0 {
        return Err(ApiError::bad_request("Volume Type is currently in use."));
    }
    Ok(())
}

/// Cinder's refusal of `multiattach` together with `cacheable`.
///
/// # Errors
/// 400 "cacheable cannot be set with multiattach.".
pub fn check_cacheable(
    new: &BTreeMap<String, String>,
    existing: &BTreeMap<String, String>,
) -> ApiResult<()> {
    let is_true = |v: Option<&String>| v.is_some_and(|v| v == "<is> True");
    let multiattach = is_true(new.get("multiattach"));
    let cacheable = is_true(new.get("cacheable"));
    if (multiattach && is_true(existing.get("cacheable")))
        || (cacheable && is_true(existing.get("multiattach")))
        || (cacheable && multiattach)
    {
        return Err(ApiError::bad_request(
            "cacheable cannot be set with multiattach.",
        ));
    }
    Ok(())
}

/// Sets extra specs (after the in-use and cacheable checks).
///
/// # Errors
/// 404, 400.
pub async fn set_extra_specs(
    state: &ApiState,
    ctx: &RequestContext,
    type_id: &str,
    specs: BTreeMap<String, String>,
) -> ApiResult<BTreeMap<String, String>> {
    if let Ok(id) = type_id.parse::<VolumeTypeId>() {
        ensure_type_unused(state, id).await?;
    }
    let existing = get_type(state, ctx, type_id).await?;
    check_cacheable(&specs, &existing.extra_specs)?;
    state
        .db
        .set_extra_specs(existing.id, &specs)
        .await
        .map_err(|e| lookup_error(e, || type_not_found(type_id)))
}

/// Deletes one extra spec.
///
/// # Errors
/// 404 for the type or the key, 400 while in use.
pub async fn delete_extra_spec(
    state: &ApiState,
    ctx: &RequestContext,
    type_id: &str,
    key: &str,
) -> ApiResult<()> {
    let existing = get_type(state, ctx, type_id).await?;
    ensure_type_unused(state, existing.id).await?;
    state
        .db
        .delete_extra_spec(existing.id, key)
        .await
        .map_err(|e| {
            lookup_error(e, || {
                ApiError::not_found(format!(
                    "Volume Type {type_id} has no extra specs with key {key}."
                ))
            })
        })
}

/// The projects granted a private type.
///
/// # Errors
/// 404 for unknown or public types.
pub async fn list_access(
    state: &ApiState,
    ctx: &RequestContext,
    type_id: &str,
) -> ApiResult<(VolumeTypeId, Vec<String>)> {
    let existing = get_type(state, ctx, type_id).await?;
    if existing.is_public {
        return Err(ApiError::not_found(
            "Access list not available for public volume types.",
        ));
    }
    let projects = state
        .db
        .list_type_access(existing.id)
        .await
        .map_err(|e| lookup_error(e, || type_not_found(type_id)))?;
    Ok((existing.id, projects))
}

/// Grants (`add = true`) or revokes a project's access to a private type.
///
/// # Errors
/// 404, 409 when already granted, 400 on public types.
pub async fn change_access(
    state: &ApiState,
    ctx: &RequestContext,
    type_id: &str,
    project: &str,
    add: bool,
) -> ApiResult<()> {
    let existing = get_type(state, ctx, type_id).await?;
    if existing.is_public {
        return Err(ApiError::bad_request(
            "Invalid volume type: Type access modification is not applicable to public volume type.",
        ));
    }
    let id = existing.id;
    if add {
        state
            .db
            .add_type_access(id, project)
            .await
            .map_err(|e| match e {
                DbError::Conflict(_) => ApiError::conflict(format!(
                    "Volume type access for {id} / {project} combination already exists."
                )),
                other => lookup_error(other, || type_not_found(type_id)),
            })
    } else {
        state.db.remove_type_access(id, project).await.map_err(|e| {
            lookup_error(e, || {
                ApiError::not_found(format!(
                    "Volume type access not found for {id} / {project} combination."
                ))
            })
        })
    }
}
