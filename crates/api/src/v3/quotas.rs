//! `/os-quota-sets`, `/os-quota-class-sets` and `/limits`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use crate::ApiState;
use crate::fault::ApiResult;
use crate::microversion as mv;
use crate::policy;
use crate::request::Req;
use crate::services::quotas as service;
use crate::validation::{self, JsonType, Pattern, body_of, object, of};
use crate::views::{self, misc};

/// `GET /os-quota-sets/{project_id}` (`?usage=true` for usage).
pub async fn show(
    State(state): State<ApiState>,
    req: Req,
    Path(project_id): Path<String>,
) -> ApiResult<Response> {
    let usage = validation::bool_param("usage", req.param("usage"))?;
    let quotas = service::project_quotas(&state, &req.context, &project_id).await?;
    Ok(views::ok(&misc::quota_set(
        Some(&project_id),
        &quotas,
        usage,
    )))
}

/// `GET /os-quota-sets/{project_id}/defaults`.
pub async fn defaults(
    State(state): State<ApiState>,
    req: Req,
    Path(project_id): Path<String>,
) -> ApiResult<Response> {
    let limits = service::default_quotas(&state, &req.context, &project_id).await?;
    Ok(views::ok(&misc::limit_set(
        "quota_set",
        Some(&project_id),
        &limits,
    )))
}

/// `PUT /os-quota-sets/{project_id}`.
pub async fn update(
    State(state): State<ApiState>,
    req: Req,
    Path(project_id): Path<String>,
) -> ApiResult<Response> {
    let schema = body_of("quota_set", object().properties_count(Some(1), None));
    let body = req.body_value();
    validation::validate(&schema, &body)?;
    let set = body
        .get("quota_set")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let limits = service::update_project_quotas(&state, &req.context, &project_id, &set).await?;
    Ok(views::ok(&misc::limit_set("quota_set", None, &limits)))
}

/// `DELETE /os-quota-sets/{project_id}` (200, empty).
pub async fn delete(
    State(state): State<ApiState>,
    req: Req,
    Path(project_id): Path<String>,
) -> ApiResult<Response> {
    service::delete_project_quotas(&state, &req.context, &project_id).await?;
    Ok(views::empty(StatusCode::OK))
}

/// `GET /os-quota-class-sets/{class_name}`.
pub async fn class_show(
    State(state): State<ApiState>,
    req: Req,
    Path(class_name): Path<String>,
) -> ApiResult<Response> {
    policy::enforce(&req.context, "volume_extension:quota_classes:get", None)?;
    let limits = service::class_quotas(&state, &class_name).await?;
    Ok(views::ok(&misc::limit_set(
        "quota_class_set",
        Some(&class_name),
        &limits,
    )))
}

/// `PUT /os-quota-class-sets/{class_name}`.
pub async fn class_update(
    State(state): State<ApiState>,
    req: Req,
    Path(class_name): Path<String>,
) -> ApiResult<Response> {
    let values = of(&[JsonType::Integer, JsonType::String])
        .pattern(Pattern::DigitsOrEmpty)
        .range(Some(-1), Some(validation::DB_MAX_INT))
        .length(Some(1), None);
    let schema = body_of(
        "quota_class_set",
        object().pattern_props(Pattern::QuotaKey, values).closed(),
    );
    let body = req.body_value();
    validation::validate(&schema, &body)?;
    let set = body
        .get("quota_class_set")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let limits = service::update_class_quotas(&state, &req.context, &class_name, &set).await?;
    Ok(views::ok(&misc::limit_set(
        "quota_class_set",
        None,
        &limits,
    )))
}

/// `GET /limits` (admins may ask for `?project_id=` from 3.39).
pub async fn limits(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    let requested = if req.is_admin() && req.version.matches(mv::LIMITS_ADMIN_FILTER) {
        req.param("project_id")
            .or_else(|| req.param("tenant_id"))
            .map(str::to_owned)
    } else {
        None
    };
    let project_id = requested.unwrap_or_else(|| req.context.project_id.clone());
    // Cinder's limits controller has no policy of its own; the usage
    // (`os-used-limits`) is added only when `limits_extension:used_limits`
    // allows it.
    let quotas = service::quota_entries(&state, &project_id).await?;
    let with_usage = policy::allowed(&req.context, "limits_extension:used_limits", None);
    Ok(views::ok(&misc::limits(&quotas, with_usage)))
}
