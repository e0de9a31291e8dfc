//! `/group_snapshots` (3.14): snapshots of every volume of a group
//! (Cinder's `api/v3/group_snapshots.py`): list, detail, show, create,
//! delete and the `reset_status` action (3.19).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clinker_db::{DbError, FilterValue, GroupSnapshotColumn, GroupSnapshotQuery, Page, SortDir};
use clinker_types::GroupSnapshotId;
use clinker_types::group::DEFAULT_CGSNAPSHOT_TYPE_ID;
use clinker_types::group_status::GroupSnapshotStatus;
use serde_json::{Value, json};

use super::groups::reject_invalid_filters;
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::listing::{self, Params, invalid_sort_key};
use crate::microversion as mv;
use crate::policy::enforce;
use crate::request::{Req, action_name, no_such_action};
use crate::services::group_snapshots as service;
use crate::services::groups::check_not_cgsnapshot_type;
use crate::validation::{
    self, Format, JsonType, Schema, description, name_allow_zero_min_length, object, of, uuid,
};
use crate::views::groups as view;
use crate::views::{self, ViewCtx};

fn create_schema() -> Schema {
    object()
        .prop(
            "group_snapshot",
            object()
                .prop("group_id", uuid())
                .prop("name", name_allow_zero_min_length())
                .prop("description", description())
                .required(&["group_id"])
                .closed(),
        )
        .required(&["group_snapshot"])
        .closed()
}

/// Whether the caller sees `project_id` (3.58,
/// `group:group_snapshot_project_attribute`).
fn shows_project(req: &Req) -> bool {
    enforce(&req.context, "group:group_snapshot_project_attribute", None).is_ok()
}

/// `GET /group_snapshots/{id}`.
pub async fn show(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::GROUP_SNAPSHOTS)?;
    let group_snapshot = service::get_group_snapshot(&state, &req.context, &id).await?;
    check_not_cgsnapshot_type(&group_snapshot.group_type_id.to_string(), true)?;
    Ok(views::ok(&json!({
        "group_snapshot": view::group_snapshot_detail(
            &group_snapshot,
            &ViewCtx::of(&req),
            shows_project(&req),
        )
    })))
}

/// `GET /group_snapshots`.
pub async fn index(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    list(&state, &req, false).await
}

/// `GET /group_snapshots/detail`.
pub async fn detail(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    list(&state, &req, true).await
}

async fn list(state: &ApiState, req: &Req, detailed: bool) -> ApiResult<Response> {
    mv::require(req.version, mv::GROUP_SNAPSHOTS)?;
    enforce(&req.context, "group:get_all_group_snapshots", None)?;
    let max_limit = state.config.default.osapi_max_limit;
    // Before 3.29 Cinder reads no parameters at all: no paging, sorting or
    // filters (not even all_tenants).
    let (page, sort, filters) = if req.version.matches(mv::GROUP_SNAPSHOT_PAGINATION) {
        let mut params = Params::new(&req.query);
        let page = listing::pagination(&mut params, max_limit)?;
        let sort = listing::sort_params(&mut params)?;
        (page, sort, params.into_filters())
    } else {
        (
            listing::Pagination {
                marker: None,
                limit: max_limit,
                offset: 0,
            },
            Vec::new(),
            Vec::new(),
        )
    };
    reject_invalid_filters(req, &filters, &["name", "status", "group_id"])?;
    let like = req.version.matches(mv::LIKE_FILTER);
    let mut all_tenants = false;
    let mut columns = Vec::new();
    for (key, value) in filters {
        if key == "all_tenants" {
            all_tenants = req.is_admin();
            continue;
        }
        let (base, contains) = match key.strip_suffix('~') {
            Some(base) if like => (base, true),
            _ => (key.as_str(), false),
        };
        match GroupSnapshotColumn::from_key(base) {
            Some(column) if contains => columns.push((column, FilterValue::Contains(value))),
            Some(column) => columns.push((column, FilterValue::Eq(value))),
            // Cinder matches nothing for keys that are not attributes.
            None => {
                return Ok(views::ok(&view::group_snapshot_list(
                    &[],
                    &ViewCtx::of(req),
                    detailed,
                    false,
                    page.limit,
                )));
            }
        }
    }
    let sort = sort
        .iter()
        .map(|(key, dir)| {
            GroupSnapshotColumn::from_key(key)
                .map(|c| (c, *dir))
                .ok_or_else(invalid_sort_key)
        })
        .collect::<ApiResult<Vec<(GroupSnapshotColumn, SortDir)>>>()?;
    let marker = match &page.marker {
        None => None,
        Some(m) => Some(
            m.parse::<GroupSnapshotId>()
                .map_err(|_| service::group_snapshot_not_found(m))?,
        ),
    };
    let query = GroupSnapshotQuery {
        project_id: (!all_tenants).then(|| req.context.project_id.clone()),
        filters: columns,
        sort,
        page: Page {
            marker,
            limit: Some(page.limit),
            offset: (page.offset > 0).then_some(page.offset),
        },
    };
    let found = state
        .db
        .list_group_snapshots(&query)
        .await
        .map_err(|e| match e {
            DbError::NotFound { .. } => {
                service::group_snapshot_not_found(&page.marker.clone().unwrap_or_default())
            }
            other => other.into(),
        })?;
    // Group snapshots of migrated consistency groups are served by the
    // cgsnapshot API.
    let shown: Vec<_> = found
        .into_iter()
        .filter(|s| s.group_type_id.to_string() != DEFAULT_CGSNAPSHOT_TYPE_ID)
        .collect();
    Ok(views::ok(&view::group_snapshot_list(
        &shown,
        &ViewCtx::of(req),
        detailed,
        shows_project(req),
        page.limit,
    )))
}

/// `POST /group_snapshots` (202): the summary view with `group_type_id`.
pub async fn create(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    mv::require(req.version, mv::GROUP_SNAPSHOTS)?;
    validation::validate(&create_schema(), &req.body_value())?;
    let body = req.body_object("group_snapshot");
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    let created = service::create_group_snapshot(
        &state,
        &req.context,
        &text("group_id").unwrap_or_default(),
        text("name"),
        text("description"),
    )
    .await?;
    Ok(views::json(
        StatusCode::ACCEPTED,
        &json!({ "group_snapshot": view::group_snapshot_summary(&created, true) }),
    ))
}

/// `DELETE /group_snapshots/{id}` (202).
pub async fn delete(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::GROUP_SNAPSHOTS)?;
    service::delete_group_snapshot(&state, &req.context, &id).await?;
    Ok(views::empty(StatusCode::ACCEPTED))
}

/// `POST /group_snapshots/{id}/action`: `reset_status` (3.19).
pub async fn action(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::GROUP_SNAPSHOTS)?;
    let (name, args) = action_name(req.body.as_ref())?;
    match name.as_str() {
        "reset_status" => {
            mv::require(req.version, mv::GROUP_SNAPSHOT_RESET_STATUS)?;
            let schema = object()
                .prop(
                    "reset_status",
                    object()
                        .prop(
                            "status",
                            of(&[JsonType::String]).format(Format::GroupSnapshotStatus),
                        )
                        .required(&["status"])
                        .closed(),
                )
                .required(&["reset_status"])
                .closed();
            validation::validate(&schema, &req.body_value())?;
            let status = args
                .get("status")
                .and_then(Value::as_str)
                .map(str::to_lowercase)
                .and_then(|s| s.parse::<GroupSnapshotStatus>().ok())
                .ok_or_else(|| ApiError::bad_request("Invalid group snapshot status"))?;
            service::reset_group_snapshot_status(&state, &req.context, &id, status).await?;
            Ok(views::empty(StatusCode::ACCEPTED))
        }
        other => Err(no_such_action(other)),
    }
}
