//! `/volumes/{id}/metadata[/{key}]` (Cinder's `api/v3/volume_metadata.py`).
//! POST merges, PUT on the collection replaces, PUT on a key sets one.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::request::{Req, string_map};
use crate::services::volumes as service;
use crate::validation::{self, Schema, extra_specs, object};
use crate::views;

/// `{"metadata": {…}}`.
pub fn metadata_schema() -> Schema {
    object()
        .prop("metadata", extra_specs())
        .required(&["metadata"])
        .closed()
}

/// `{"meta": {k: v}}` with exactly one item.
pub fn meta_schema() -> Schema {
    object()
        .prop("meta", extra_specs().properties_count(Some(1), Some(1)))
        .required(&["meta"])
        .closed()
}

/// Cinder's checks of `PUT …/metadata/{key}`.
///
/// # Errors
/// 400 when the body's key is not the URL's, or there are several.
pub fn check_meta_item(meta: &BTreeMap<String, String>, key: &str) -> ApiResult<()> {
    if !meta.contains_key(key) {
        return Err(ApiError::bad_request("Request body and URI mismatch"));
    }
    if meta.len() > 1 {
        return Err(ApiError::bad_request(
            "Request body contains too many items",
        ));
    }
    Ok(())
}

/// `GET /volumes/{id}/metadata`.
pub async fn index(
    State(state): State<ApiState>,
    req: Req,
    Path(volume_id): Path<String>,
) -> ApiResult<Response> {
    let metadata = service::get_metadata(&state, &req.context, &volume_id).await?;
    Ok(views::ok(&json!({ "metadata": metadata })))
}

/// `POST /volumes/{id}/metadata`: merge.
pub async fn create(
    State(state): State<ApiState>,
    req: Req,
    Path(volume_id): Path<String>,
) -> ApiResult<Response> {
    let body = req.body_value();
    validation::validate(&metadata_schema(), &body)?;
    let metadata = string_map(body.get("metadata"));
    let merged = service::set_metadata_as(
        &state,
        &req.context,
        &volume_id,
        &metadata,
        false,
        "volume:create_volume_metadata",
    )
    .await?;
    Ok(views::ok(&json!({ "metadata": merged })))
}

/// `PUT /volumes/{id}/metadata`: replace.
pub async fn update_all(
    State(state): State<ApiState>,
    req: Req,
    Path(volume_id): Path<String>,
) -> ApiResult<Response> {
    let body = req.body_value();
    validation::validate(&metadata_schema(), &body)?;
    let metadata = string_map(body.get("metadata"));
    let replaced = service::set_metadata(&state, &req.context, &volume_id, &metadata, true).await?;
    Ok(views::ok(&json!({ "metadata": replaced })))
}

/// `GET /volumes/{id}/metadata/{key}`.
pub async fn show(
    State(state): State<ApiState>,
    req: Req,
    Path((volume_id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let metadata = service::get_metadata(&state, &req.context, &volume_id).await?;
    match metadata.get(&key) {
        Some(value) => Ok(views::ok(&json!({"meta": { key.clone(): value }}))),
        None => Err(ApiError::not_found(format!(
            "Volume {volume_id} has no metadata with key {key}."
        ))),
    }
}

/// `PUT /volumes/{id}/metadata/{key}`.
pub async fn update(
    State(state): State<ApiState>,
    req: Req,
    Path((volume_id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let body = req.body_value();
    validation::validate(&meta_schema(), &body)?;
    let meta = string_map(body.get("meta"));
    check_meta_item(&meta, &key)?;
    service::set_metadata(&state, &req.context, &volume_id, &meta, false).await?;
    Ok(views::ok(&json!({ "meta": meta })))
}

/// `DELETE /volumes/{id}/metadata/{key}` (200, empty).
pub async fn delete(
    State(state): State<ApiState>,
    req: Req,
    Path((volume_id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    service::delete_metadata(&state, &req.context, &volume_id, &key).await?;
    Ok(views::empty(StatusCode::OK))
}
