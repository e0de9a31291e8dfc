//! `/snapshots`: CRUD, metadata and actions (Cinder's `api/v3/snapshots.py`,
//! `api/v3/snapshot_metadata.py`, `contrib/snapshot_actions.py` and the
//! snapshot half of `contrib/admin_actions.py`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clinker_db::SnapshotQuery;
use clinker_types::model::Snapshot;
use serde_json::Value;

use super::collection::{Fetched, ListParams, Listed};
use super::filters;
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::microversion as mv;
use crate::request::{
    Req, action_name, no_such_action, renamed, reset_status, string_map, trimmed,
};
use crate::services::snapshots::{self as service, CreateSnapshot, Removal};
use crate::validation::{
    self, Format, JsonType, Schema, any, body_of, bool_from_value, boolean, description,
    metadata_allows_null, name_allow_zero_min_length, object, of, optional_uuid,
};
use crate::views::snapshots as view;
use crate::views::{self, ViewCtx};

/// Cinder's refusal of `force=false` from 3.66.
pub const SNAPSHOT_IN_USE_FLAG_MSG: &str = "Since microversion 3.66 the 'force' flag is invalid for this request.  For backward compatability, however, when the 'force' flag is passed with a value evaluating to True, it is silently ignored.";

fn create_schema() -> Schema {
    body_of(
        "snapshot",
        object()
            .prop("name", name_allow_zero_min_length())
            .prop("display_name", name_allow_zero_min_length())
            .prop("description", description())
            .prop("volume_id", optional_uuid())
            .prop("force", boolean())
            .prop("metadata", metadata_allows_null())
            .required(&["volume_id"])
            .closed(),
    )
}

fn update_schema() -> Schema {
    body_of(
        "snapshot",
        object()
            .prop("name", name_allow_zero_min_length())
            .prop("description", description())
            .prop("display_name", name_allow_zero_min_length())
            .prop("display_description", description())
            .closed()
            .any_of_required(&["name", "description", "display_name", "display_description"]),
    )
}

/// `POST /snapshots` (202).
pub async fn create(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    let body = req.body_value();
    validation::validate(&create_schema(), &body)?;
    let snapshot = req.body_object("snapshot");
    let in_use_version = req.version.matches(mv::SNAPSHOT_IN_USE);
    let force = snapshot.get("force").and_then(bool_from_value);
    if in_use_version && force == Some(false) {
        return Err(ApiError::bad_request(SNAPSHOT_IN_USE_FLAG_MSG));
    }
    let request = CreateSnapshot {
        volume_id: snapshot
            .get("volume_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        name: renamed(&snapshot, "name", "display_name").flatten(),
        description: trimmed(&snapshot, "description"),
        metadata: string_map(snapshot.get("metadata")),
        allow_in_use: force == Some(true) || in_use_version,
    };
    let created = service::create_snapshot(&state, &req.context, request).await?;
    Ok(views::json(
        StatusCode::ACCEPTED,
        &view::show(&created, &ViewCtx::of(&req), false),
    ))
}

/// `GET /snapshots/{id}`.
pub async fn show(
    State(state): State<ApiState>,
    req: Req,
    Path(snapshot_id): Path<String>,
) -> ApiResult<Response> {
    let snapshot = service::get_snapshot(&state, &req.context, &snapshot_id).await?;
    Ok(views::ok(&view::show(&snapshot, &ViewCtx::of(&req), true)))
}

/// `PUT /snapshots/{id}`.
pub async fn update(
    State(state): State<ApiState>,
    req: Req,
    Path(snapshot_id): Path<String>,
) -> ApiResult<Response> {
    validation::validate(&update_schema(), &req.body_value())?;
    let body = req.body_object("snapshot");
    let snapshot = service::update_snapshot(
        &state,
        &req.context,
        &snapshot_id,
        renamed(&body, "name", "display_name"),
        renamed(&body, "description", "display_description"),
    )
    .await?;
    Ok(views::ok(&view::show(&snapshot, &ViewCtx::of(&req), false)))
}

/// `DELETE /snapshots/{id}` (202).
pub async fn delete(
    State(state): State<ApiState>,
    req: Req,
    Path(snapshot_id): Path<String>,
) -> ApiResult<Response> {
    service::delete_snapshot(&state, &req.context, &snapshot_id, Removal::Delete).await?;
    Ok(views::empty(StatusCode::ACCEPTED))
}

#[async_trait::async_trait]
impl Listed for Snapshot {
    fn params(req: &Req, max_limit: u32) -> ApiResult<ListParams> {
        ListParams::read(req, max_limit, true, true)
    }
    fn query(req: &Req, params: &ListParams) -> ApiResult<Option<SnapshotQuery>> {
        filters::snapshot_query(req, params)
    }
    async fn render(_state: &ApiState, req: &Req, page: Fetched<Self>) -> ApiResult<Response> {
        let ctx = ViewCtx::of(req);
        let body = view::list(&page.rows, &ctx, page.detailed, page.count, page.limit);
        Ok(views::ok(&body))
    }
}

/// `POST /snapshots/{id}/action`.
pub async fn action(
    State(state): State<ApiState>,
    req: Req,
    Path(snapshot_id): Path<String>,
) -> ApiResult<Response> {
    let (name, args) = action_name(req.body.as_ref())?;
    let body = req.body_value();
    let ctx = &req.context;
    match name.as_str() {
        "os-reset_status" => {
            let status = reset_status(
                &req,
                "os-reset_status",
                Format::SnapshotStatus,
                "Invalid snapshot status",
            )?;
            service::reset_status(&state, ctx, &snapshot_id, status).await?;
            Ok(views::empty(StatusCode::ACCEPTED))
        }
        "os-force_delete" => {
            validation::validate(&body_of("os-force_delete", any()), &body)?;
            service::delete_snapshot(&state, ctx, &snapshot_id, Removal::ForceDelete).await?;
            Ok(views::empty(StatusCode::ACCEPTED))
        }
        "os-update_snapshot_status" => {
            let schema = body_of(
                "os-update_snapshot_status",
                object()
                    .prop("status", of(&[JsonType::String]))
                    .prop("progress", any().format(Format::Progress))
                    .required(&["status"])
                    .closed(),
            );
            validation::validate(&schema, &body)?;
            let status = args
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let progress = args
                .get("progress")
                .and_then(Value::as_str)
                .map(str::to_owned);
            service::update_snapshot_status(&state, ctx, &snapshot_id, status, progress).await?;
            Ok(views::empty(StatusCode::ACCEPTED))
        }
        "os-unmanage" => {
            validation::validate(&body_of("os-unmanage", any()), &body)?;
            service::delete_snapshot(&state, ctx, &snapshot_id, Removal::Unmanage).await?;
            Ok(views::empty(StatusCode::ACCEPTED))
        }
        other => Err(no_such_action(other)),
    }
}
