//! Group types and their group specs (Cinder's `volume/group_types.py` and
//! the `group_types` / `group_specs` controllers' rules).
//!
//! Like Cinder, a caller sees public group types and the private ones its
//! project was granted; administrators see all. There is no API to grant
//! access (Cinder has none either); the database keeps the grants.

use std::collections::BTreeMap;

use clinker_db::{DbError, NewGroupType};
use clinker_rpc::RequestContext;
use clinker_types::GroupTypeId;
use clinker_types::group::GroupType;

use super::lookup_error;
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::validation::is_uuid_like;

/// Cinder's `GroupTypeNotFound` text.
pub fn group_type_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Group type {id} could not be found."))
}

fn group_type_name_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Group type with name {name} could not be found."))
}

/// Whether the caller may see a type: public, admin, or granted.
async fn visible(state: &ApiState, ctx: &RequestContext, t: &GroupType) -> ApiResult<bool> {
    if t.is_public || ctx.is_admin {
        return Ok(true);
    }
    let projects = state
        .db
        .list_group_type_access(t.id)
        .await
        .map_err(ApiError::from)?;
    Ok(projects.contains(&ctx.project_id))
}

/// A group type by id; 404 for unknown ids, non-UUIDs and private types
/// of other projects.
///
/// # Errors
/// 404.
pub async fn get_group_type(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
) -> ApiResult<GroupType> {
    let Ok(type_id) = id.parse::<GroupTypeId>() else {
        return Err(group_type_not_found(id));
    };
    let found = state
        .db
        .get_group_type(type_id)
        .await
        .map_err(|e| lookup_error(e, || group_type_not_found(id)))?;
    if visible(state, ctx, &found).await? {
        Ok(found)
    } else {
        Err(group_type_not_found(id))
    }
}

async fn get_group_type_by_name(
    state: &ApiState,
    ctx: &RequestContext,
    name: &str,
) -> ApiResult<GroupType> {
    let found = state
        .db
        .get_group_type_by_name(name)
        .await
        .map_err(|e| lookup_error(e, || group_type_name_not_found(name)))?;
    if visible(state, ctx, &found).await? {
        Ok(found)
    } else {
        Err(group_type_name_not_found(name))
    }
}

/// The group type of a group create: a non-UUID is a name; a UUID is an
/// id, then a name, and its 404 names the id (Cinder's `group_api.create`).
///
/// # Errors
/// 404.
pub async fn find_group_type(
    state: &ApiState,
    ctx: &RequestContext,
    identity: &str,
) -> ApiResult<GroupType> {
    if !is_uuid_like(identity) {
        return get_group_type_by_name(state, ctx, identity).await;
    }
    match get_group_type(state, ctx, identity).await {
        Ok(found) => Ok(found),
        Err(err) if err.kind() == Some(clinker_types::ErrorKind::NotFound) => {
            get_group_type_by_name(state, ctx, identity)
                .await
                .map_err(|_| group_type_not_found(identity))
        }
        Err(err) => Err(err),
    }
}

/// `[DEFAULT] default_group_type` (unset by default, as in Cinder).
///
/// # Errors
/// 404 "Default group type can not be found." when unset or missing.
pub async fn default_group_type(state: &ApiState) -> ApiResult<GroupType> {
    let missing = || ApiError::not_found("Default group type can not be found.");
    let Some(name) = state.config.default.default_group_type.as_deref() else {
        return Err(missing());
    };
    match state.db.get_group_type_by_name(name).await {
        Ok(found) => Ok(found),
        Err(DbError::NotFound { .. }) => {
            tracing::warn!(default_group_type = %name, "default group type is not found; check default_group_type");
            Err(missing())
        }
        Err(e) => Err(e.into()),
    }
}

/// Group types a list shows: administrators choose with `is_public`
/// (`None` = all); everybody else sees the public ones and those granted
/// to their project.
///
/// # Errors
/// Database failures.
pub async fn list_group_types(
    state: &ApiState,
    ctx: &RequestContext,
    is_public: Option<bool>,
) -> ApiResult<Vec<GroupType>> {
    let types = if ctx.is_admin {
        let visible_to = (is_public == Some(true)).then_some(ctx.project_id.as_str());
        state.db.list_group_types(is_public, visible_to).await
    } else {
        state
            .db
            .list_group_types(Some(true), Some(&ctx.project_id))
            .await
    };
    types.map_err(ApiError::from)
}

fn already_exists(name: &str) -> ApiError {
    ApiError::conflict(format!("Group Type {name} already exists."))
}

/// Creates a group type.
///
/// # Errors
/// 409 "Group Type X already exists.".
pub async fn create_group_type(
    state: &ApiState,
    name: String,
    description: Option<String>,
    is_public: bool,
    group_specs: BTreeMap<String, String>,
) -> ApiResult<GroupType> {
    let new = NewGroupType {
        name: name.clone(),
        description,
        is_public,
        group_specs,
    };
    state.db.create_group_type(new).await.map_err(|e| match e {
        DbError::Conflict(_) => already_exists(&name),
        other => other.into(),
    })
}

/// Updates name, description and visibility.
///
/// # Errors
/// 404, 409 for a name another type has.
pub async fn update_group_type(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    name: Option<String>,
    description: Option<String>,
    is_public: Option<bool>,
) -> ApiResult<GroupType> {
    let existing = get_group_type(state, ctx, id).await?;
    let clash = name.clone().unwrap_or_default();
    state
        .db
        .update_group_type(existing.id, name, description.map(Some), is_public)
        .await
        .map_err(|e| match e {
            DbError::Conflict(_) => already_exists(&clash),
            other => lookup_error(other, || group_type_not_found(id)),
        })
}

/// Deletes a group type no group uses.
///
/// # Errors
/// 404, 400 while groups use it.
pub async fn delete_group_type(state: &ApiState, ctx: &RequestContext, id: &str) -> ApiResult<()> {
    let existing = get_group_type(state, ctx, id).await?;
    state
        .db
        .delete_group_type(existing.id)
        .await
        .map_err(|e| match e {
            DbError::InvalidState(_) => ApiError::bad_request(format!(
                "Target group type is still in use. Group Type {} deletion is not allowed with groups present with the type.",
                existing.id
            )),
            other => lookup_error(other, || group_type_not_found(id)),
        })
}

/// Creates or replaces group specs.
///
/// # Errors
/// 404.
pub async fn set_group_specs(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    specs: BTreeMap<String, String>,
) -> ApiResult<BTreeMap<String, String>> {
    let existing = get_group_type(state, ctx, id).await?;
    state
        .db
        .set_group_specs(existing.id, &specs)
        .await
        .map_err(|e| lookup_error(e, || group_type_not_found(id)))
}

/// Deletes one group spec.
///
/// # Errors
/// 404 for the type or the key.
pub async fn delete_group_spec(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    key: &str,
) -> ApiResult<()> {
    let existing = get_group_type(state, ctx, id).await?;
    state
        .db
        .delete_group_spec(existing.id, key)
        .await
        .map_err(|e| {
            lookup_error(e, || {
                ApiError::not_found(format!("Group Type {id} has no specs with key {key}."))
            })
        })
}
