//! `/default-types` (3.62, Cinder's `api/v3/default_types.py`).
//!
//! These routes sit at `/v3/default-types[/{project_id}]`, without the
//! caller's project id in the path (the path's project is the *target*).
//! The pipeline only strips a leading project segment, which
//! `default-types` is not, so they route as they are; Cinder also accepts
//! them with a leading project id, and so do these.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::ApiState;
use crate::fault::ApiResult;
use crate::microversion as mv;
use crate::request::Req;
use crate::services::default_types as service;
use crate::validation::{self, Format, JsonType, Schema, body_of, object, of};
use crate::views::{self, type_extras as view};

/// Cinder's `default_types.create_or_update` schema, with `default_type`
/// required (Cinder's schema omits it and then fails with a 500).
fn schema() -> Schema {
    object()
        .prop(
            "default_type",
            body_of(
                "volume_type",
                of(&[JsonType::String])
                    .length(Some(1), Some(255))
                    .format(Format::Name),
            ),
        )
        .required(&["default_type"])
}

/// `PUT /default-types/{project_id}` (200).
pub async fn set(
    State(state): State<ApiState>,
    req: Req,
    Path(project_id): Path<String>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::DEFAULT_TYPE_OVERRIDES)?;
    let body = req.body_value();
    validation::validate(&schema(), &body)?;
    let volume_type = body["default_type"]["volume_type"]
        .as_str()
        .unwrap_or_default();
    let set = service::set_default(&state, &req.context, &project_id, volume_type).await?;
    Ok(views::ok(&view::default_type(&set)))
}

/// `GET /default-types/{project_id}`.
pub async fn show(
    State(state): State<ApiState>,
    req: Req,
    Path(project_id): Path<String>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::DEFAULT_TYPE_OVERRIDES)?;
    let found = service::get_default(&state, &req.context, &project_id).await?;
    Ok(views::ok(&view::default_type(&found)))
}

/// `GET /default-types`.
pub async fn index(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    mv::require(req.version, mv::DEFAULT_TYPE_OVERRIDES)?;
    let all = service::list_defaults(&state, &req.context).await?;
    Ok(views::ok(&view::default_types(&all)))
}

/// `DELETE /default-types/{project_id}` (204).
pub async fn unset(
    State(state): State<ApiState>,
    req: Req,
    Path(project_id): Path<String>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::DEFAULT_TYPE_OVERRIDES)?;
    service::unset_default(&state, &req.context, &project_id).await?;
    Ok(views::empty(StatusCode::NO_CONTENT))
}
