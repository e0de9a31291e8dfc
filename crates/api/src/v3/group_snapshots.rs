//! `/group_snapshots` (3.14): snapshots of every volume of a group
//! (Cinder's `api/v3/group_snapshots.py`): list, detail, show, create,
//! delete and the `reset_status` action (3.19).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clinker_db::{FilterValue, GroupSnapshotColumn, GroupSnapshotQuery};
use clinker_types::group::{DEFAULT_CGSNAPSHOT_TYPE_ID, GroupSnapshot};
use serde_json::{Value, json};

use super::collection::{Fetched, ListParams, Listed, sort_columns};
use super::groups::reject_invalid_filters;
use crate::ApiState;
use crate::fault::ApiResult;
use crate::microversion as mv;
use crate::policy::enforce;
use crate::request::{Req, action_name, no_such_action, reset_status};
use crate::services::group_snapshots as service;
use crate::services::groups::check_not_cgsnapshot_type;
use crate::validation::{
    self, Format, Schema, body_of, description, name_allow_zero_min_length, object, uuid,
};
use crate::views::groups as view;
use crate::views::{self, ViewCtx};

fn create_schema() -> Schema {
    body_of(
        "group_snapshot",
        object()
            .prop("group_id", uuid())
            .prop("name", name_allow_zero_min_length())
            .prop("description", description())
            .required(&["group_id"])
            .closed(),
    )
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

#[async_trait::async_trait]
impl Listed for GroupSnapshot {
    fn require_version(req: &Req) -> ApiResult<()> {
        mv::require(req.version, mv::GROUP_SNAPSHOTS)
    }
    /// Before 3.29 Cinder reads no parameters at all: no paging, sorting
    /// or filters (not even all_tenants).
    fn params(req: &Req, max_limit: u32) -> ApiResult<ListParams> {
        if req.version.matches(mv::GROUP_SNAPSHOT_PAGINATION) {
            ListParams::read(req, max_limit, false, false)
        } else {
            Ok(ListParams::everything(max_limit))
        }
    }
    fn query(req: &Req, params: &ListParams) -> ApiResult<Option<GroupSnapshotQuery>> {
        reject_invalid_filters(req, &params.filters, &["name", "status", "group_id"])?;
        let like = req.version.matches(mv::LIKE_FILTER);
        let mut all_tenants = false;
        let mut columns = Vec::new();
        for (key, value) in &params.filters {
            if key == "all_tenants" {
                all_tenants = req.is_admin();
                continue;
            }
            let (base, contains) = match key.strip_suffix('~') {
                Some(base) if like => (base, true),
                _ => (key.as_str(), false),
            };
            let value = value.clone();
            match GroupSnapshotColumn::from_key(base) {
                Some(column) if contains => columns.push((column, FilterValue::Contains(value))),
                Some(column) => columns.push((column, FilterValue::Eq(value))),
                // Cinder matches nothing for keys that are not attributes.
                None => return Ok(None),
            }
        }
        Ok(Some(GroupSnapshotQuery {
            project_id: (!all_tenants).then(|| req.context.project_id.clone()),
            filters: columns,
            sort: sort_columns(&params.sort, GroupSnapshotColumn::from_key)?,
            page: params.db_page::<Self>()?,
        }))
    }
    async fn render(_state: &ApiState, req: &Req, page: Fetched<Self>) -> ApiResult<Response> {
        let show_project = shows_project(req);
        let ctx = ViewCtx::of(req);
        // Group snapshots of migrated consistency groups are served by the
        // cgsnapshot API.
        let shown: Vec<&GroupSnapshot> = page
            .rows
            .iter()
            .filter(|s| s.group_type_id.to_string() != DEFAULT_CGSNAPSHOT_TYPE_ID)
            .collect();
        let items: Vec<Value> = shown
            .iter()
            .map(|s| {
                if page.detailed {
                    view::group_snapshot_detail(s, &ctx, show_project)
                } else {
                    view::group_snapshot_summary(s, false)
                }
            })
            .collect();
        let last_id = shown.last().map(|s| s.id.to_string());
        let links =
            view::GROUP_SNAPSHOTS.links(&ctx, false, last_id, items.len(), None, page.limit);
        Ok(views::ok(
            &view::GROUP_SNAPSHOTS.page(items, links, None).into_value(),
        ))
    }
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
    let (name, _) = action_name(req.body.as_ref())?;
    match name.as_str() {
        "reset_status" => {
            mv::require(req.version, mv::GROUP_SNAPSHOT_RESET_STATUS)?;
            let status = reset_status(
                &req,
                "reset_status",
                Format::GroupSnapshotStatus,
                "Invalid group snapshot status",
            )?;
            service::reset_group_snapshot_status(&state, &req.context, &id, status).await?;
            Ok(views::empty(StatusCode::ACCEPTED))
        }
        other => Err(no_such_action(other)),
    }
}
