//! `/backups`: create, list, show, update, delete, restore and the admin
//! actions (Cinder's `api/contrib/backups.py`, `api/v3/backups.py` and the
//! backup half of `contrib/admin_actions.py`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clinker_db::BackupQuery;
use clinker_types::backup::{Backup, BackupStatus};
use serde_json::{Map, Value, json};

use super::collection::{Fetched, ListParams, Listed};
use super::filters;
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::microversion as mv;
use crate::policy;
use crate::request::{Req, action_name, no_such_action, renamed, string_map, trimmed};
use crate::services::backup_records as records;
use crate::services::backups::{self as service, CreateBackup};
use crate::validation::{
    self, JsonType, Schema, any, body_of, bool_from_value, boolean, description, extra_specs,
    metadata_allows_null, name_allow_zero_min_length, object, of, optional_uuid, uuid,
};
use crate::views::backups as view;
use crate::views::{self, ViewCtx};

/// `parameter_types.container`.
fn container() -> Schema {
    of(&[JsonType::String, JsonType::Null]).length(Some(0), Some(255))
}

fn create_schema(req: &Req) -> Schema {
    let mut backup = object()
        .prop("volume_id", uuid())
        .prop("container", container())
        .prop("description", description())
        .prop("incremental", boolean())
        .prop("force", boolean())
        .prop("name", name_allow_zero_min_length())
        .prop("snapshot_id", optional_uuid());
    if req.version.matches(mv::BACKUP_METADATA) {
        backup = backup.prop("metadata", metadata_allows_null());
    }
    if req.version.matches(mv::BACKUP_AZ) {
        backup = backup.prop("availability_zone", validation::availability_zone());
    }
    body_of("backup", backup.required(&["volume_id"]).closed())
}

fn update_schema(req: &Req) -> Schema {
    let mut backup = of(&[JsonType::Object, JsonType::Null])
        .prop("name", name_allow_zero_min_length())
        .prop("description", description());
    if req.version.matches(mv::BACKUP_METADATA) {
        backup = backup.prop("metadata", extra_specs());
    }
    body_of("backup", backup.closed())
}

fn restore_schema() -> Schema {
    body_of(
        "restore",
        of(&[JsonType::Object, JsonType::Null])
            .prop("name", name_allow_zero_min_length())
            .prop("volume_id", optional_uuid())
            .closed(),
    )
}

/// Whether the caller sees `os-backup-project-attr:project_id`.
fn project_attribute(req: &Req) -> bool {
    policy::allowed(
        &req.context,
        "backup:backup_project_attribute",
        Some(req.context.project_id.as_str()),
    )
}

fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// `POST /backups` (202).
pub async fn create(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    let body = req.body_value();
    validation::validate(&create_schema(&req), &body)?;
    let backup = req.body_object("backup");
    let flag = |key: &str| backup.get(key).and_then(bool_from_value).unwrap_or(false);
    let request = CreateBackup {
        volume_id: text(&backup, "volume_id").unwrap_or_default(),
        name: trimmed(&backup, "name"),
        description: trimmed(&backup, "description"),
        container: text(&backup, "container"),
        incremental: flag("incremental"),
        force: flag("force"),
        snapshot_id: text(&backup, "snapshot_id"),
        metadata: string_map(backup.get("metadata")),
        availability_zone: text(&backup, "availability_zone"),
    };
    let created = service::create_backup(&state, &req.context, request).await?;
    Ok(views::json(
        StatusCode::ACCEPTED,
        &view::created(&created, &ViewCtx::of(&req)),
    ))
}

/// `GET /backups/{id}`.
pub async fn show(
    State(state): State<ApiState>,
    req: Req,
    Path(backup_id): Path<String>,
) -> ApiResult<Response> {
    let backup = service::get_backup(&state, &req.context, &backup_id).await?;
    Ok(views::ok(&view::show(
        &backup,
        &ViewCtx::of(&req),
        project_attribute(&req),
    )))
}

/// `PUT /backups/{id}` (3.9).
pub async fn update(
    State(state): State<ApiState>,
    req: Req,
    Path(backup_id): Path<String>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::BACKUP_UPDATE)?;
    validation::validate(&update_schema(&req), &req.body_value())?;
    let body = req.body_object("backup");
    let metadata = (req.version.matches(mv::BACKUP_METADATA) && body.contains_key("metadata"))
        .then(|| string_map(body.get("metadata")));
    let backup = service::update_backup(
        &state,
        &req.context,
        &backup_id,
        renamed(&body, "name", "display_name"),
        renamed(&body, "description", "display_description"),
        metadata,
    )
    .await?;
    // Cinder answers an update with the summary view.
    Ok(views::ok(
        &json!({ "backup": view::summary(&backup, &ViewCtx::of(&req)) }),
    ))
}

/// `DELETE /backups/{id}` (202).
pub async fn delete(
    State(state): State<ApiState>,
    req: Req,
    Path(backup_id): Path<String>,
) -> ApiResult<Response> {
    service::delete_backup(&state, &req.context, &backup_id, false).await?;
    Ok(views::empty(StatusCode::ACCEPTED))
}

/// `POST /backups/{id}/restore` (202).
pub async fn restore(
    State(state): State<ApiState>,
    req: Req,
    Path(backup_id): Path<String>,
) -> ApiResult<Response> {
    let body = req.body_value();
    validation::validate(&restore_schema(), &body)?;
    let restore = req.body_object("restore");
    let restored = service::restore_backup(
        &state,
        &req.context,
        &backup_id,
        text(&restore, "volume_id"),
        text(&restore, "name"),
    )
    .await?;
    Ok(views::json(
        StatusCode::ACCEPTED,
        &view::restore(
            &restored.backup_id.to_string(),
            &restored.volume_id.to_string(),
            restored.volume_name.as_deref(),
        ),
    ))
}

#[async_trait::async_trait]
impl Listed for Backup {
    fn params(req: &Req, max_limit: u32) -> ApiResult<ListParams> {
        ListParams::read(req, max_limit, false, true)
    }
    fn query(req: &Req, params: &ListParams) -> ApiResult<Option<BackupQuery>> {
        filters::backup_query(req, params)
    }
    async fn render(_state: &ApiState, req: &Req, page: Fetched<Self>) -> ApiResult<Response> {
        let ctx = ViewCtx::of(req);
        let body = view::list(
            &page.rows,
            &ctx,
            page.detailed,
            project_attribute(req),
            page.count,
            page.limit,
        );
        Ok(views::ok(&body))
    }
}

/// `POST /backups/{id}/action`: `os-reset_status`, `os-force_delete`.
pub async fn action(
    State(state): State<ApiState>,
    req: Req,
    Path(backup_id): Path<String>,
) -> ApiResult<Response> {
    let (name, args) = action_name(req.body.as_ref())?;
    let body = req.body_value();
    let ctx = &req.context;
    match name.as_str() {
        "os-reset_status" => {
            let schema = body_of(
                "os-reset_status",
                object()
                    .prop("status", of(&[JsonType::String]))
                    .required(&["status"])
                    .closed(),
            );
            validation::validate(&schema, &body)?;
            let status = args
                .get("status")
                .and_then(Value::as_str)
                .map(str::to_lowercase)
                .and_then(|s| s.parse::<BackupStatus>().ok())
                .filter(|s| matches!(s, BackupStatus::Available | BackupStatus::Error))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "Invalid input for field/attribute status. Value: is not a valid backup status.",
                    )
                })?;
            service::reset_status(&state, ctx, &backup_id, status).await?;
            Ok(views::empty(StatusCode::ACCEPTED))
        }
        "os-force_delete" => {
            validation::validate(&body_of("os-force_delete", any()), &body)?;
            service::delete_backup(&state, ctx, &backup_id, true).await?;
            Ok(views::empty(StatusCode::ACCEPTED))
        }
        other => Err(no_such_action(other)),
    }
}

/// `GET /backups/{id}/export_record` (administrators).
pub async fn export_record(
    State(state): State<ApiState>,
    req: Req,
    Path(backup_id): Path<String>,
) -> ApiResult<Response> {
    let exported = records::export_record(&state, &req.context, &backup_id).await?;
    Ok(views::ok(&json!({
        "backup-record": {
            "backup_service": exported.backup_service,
            "backup_url": exported.backup_url,
        }
    })))
}

fn import_schema() -> Schema {
    body_of(
        "backup-record",
        object()
            .prop(
                "backup_service",
                of(&[JsonType::String]).length(Some(0), Some(255)),
            )
            .prop("backup_url", of(&[JsonType::String]).length(Some(1), None))
            .required(&["backup_service", "backup_url"])
            .closed(),
    )
}

/// `POST /backups/import_record` (201, administrators).
pub async fn import_record(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    validation::validate(&import_schema(), &req.body_value())?;
    let record = req.body_object("backup-record");
    let backup = records::import_record(
        &state,
        &req.context,
        &text(&record, "backup_service").unwrap_or_default(),
        &text(&record, "backup_url").unwrap_or_default(),
    )
    .await?;
    Ok(views::json(
        StatusCode::CREATED,
        &view::created(&backup, &ViewCtx::of(&req)),
    ))
}
