//! `/volumes/{id}/metadata[/{key}]` and `/snapshots/{id}/metadata[/{key}]`
//! (Cinder's `api/v3/volume_metadata.py` and `snapshot_metadata.py`): one
//! generic set of handlers over [`Metadata`]. POST merges, PUT on the
//! collection replaces, PUT on a key sets one, DELETE removes one.
//!
//! The policy rules are Cinder's `volume:<verb>_<row>_metadata`; a
//! snapshot's POST is checked as an update, as Cinder's controller does.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clinker_db::{Database, DbError, MetadataKind};
use clinker_rpc::RequestContext;
use clinker_types::VolumeStatus;
use clinker_types::model::{Snapshot, Volume};
use serde_json::{Value, json};

use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::policy;
use crate::request::{Req, string_map};
use crate::services::lookup_error;
use crate::services::rows::{Rows, not_found};
use crate::services::{snapshots, volumes};
use crate::validation::{self, JsonType, Pattern, Schema, extra_specs, object, of};
use crate::views;

/// A row's user metadata.
pub type Metadata = BTreeMap<String, String>;

/// A row with user metadata.
#[async_trait::async_trait]
pub trait HasMetadata: Rows {
    /// The verb of the rule that guards `POST …/metadata`.
    const CREATE_VERB: &'static str;
    /// Whether a metadata body may hold other keys than its one.
    const BODY_CLOSED: bool;

    /// The schema of the metadata values object.
    fn values() -> Schema;
    /// The row's user metadata.
    fn metadata(&self) -> &Metadata;
    /// A row the caller may see (and read, for the kind's `get` rule).
    async fn get_visible(state: &ApiState, ctx: &RequestContext, id: &str) -> ApiResult<Self>;
    /// Merges or replaces the metadata; all of it after.
    async fn set(
        db: &dyn Database,
        row: &Self,
        metadata: &Metadata,
        replace: bool,
    ) -> Result<Metadata, DbError>;
    /// Deletes one key.
    async fn delete_key(db: &dyn Database, row: &Self, key: &str) -> Result<(), DbError>;
    /// Refusals of a change (`Updating` or `Deleting`) by the row's state.
    fn check_change(&self, _verb: &str) -> ApiResult<()> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl HasMetadata for Volume {
    const CREATE_VERB: &'static str = "create";
    const BODY_CLOSED: bool = true;

    fn values() -> Schema {
        extra_specs()
    }
    fn metadata(&self) -> &Metadata {
        &self.metadata
    }
    async fn get_visible(state: &ApiState, ctx: &RequestContext, id: &str) -> ApiResult<Self> {
        volumes::get_volume(state, ctx, id).await
    }
    async fn set(
        db: &dyn Database,
        row: &Self,
        metadata: &Metadata,
        replace: bool,
    ) -> Result<Metadata, DbError> {
        db.set_volume_metadata(row.id, MetadataKind::User, metadata, replace)
            .await
    }
    async fn delete_key(db: &dyn Database, row: &Self, key: &str) -> Result<(), DbError> {
        db.delete_volume_metadata(row.id, MetadataKind::User, key)
            .await
    }
    fn check_change(&self, verb: &str) -> ApiResult<()> {
        if matches!(
            self.status,
            VolumeStatus::Maintenance | VolumeStatus::Uploading
        ) {
            return Err(ApiError::invalid_state(format!(
                "Invalid volume: {verb} volume metadata is not allowed for volumes in {} status.",
                self.status
            )));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl HasMetadata for Snapshot {
    const CREATE_VERB: &'static str = "update";
    const BODY_CLOSED: bool = false;

    fn values() -> Schema {
        let value = of(&[JsonType::String]).length(None, Some(255));
        object()
            .pattern_props(Pattern::SnapshotMetaKey, value)
            .closed()
    }
    fn metadata(&self) -> &Metadata {
        &self.metadata
    }
    async fn get_visible(state: &ApiState, ctx: &RequestContext, id: &str) -> ApiResult<Self> {
        snapshots::get_snapshot(state, ctx, id).await
    }
    async fn set(
        db: &dyn Database,
        row: &Self,
        metadata: &Metadata,
        replace: bool,
    ) -> Result<Metadata, DbError> {
        db.set_snapshot_metadata(row.id, metadata, replace).await
    }
    async fn delete_key(db: &dyn Database, row: &Self, key: &str) -> Result<(), DbError> {
        db.delete_snapshot_metadata(row.id, key).await
    }
}

/// `{key: values}` (`metadata`, or `meta` with exactly one item).
fn schema<T: HasMetadata>(key: &'static str, single: bool) -> Schema {
    let mut values = T::values();
    if single {
        values = values.properties_count(Some(1), Some(1));
    }
    let body = object().prop(key, values).required(&[key]);
    if T::BODY_CLOSED { body.closed() } else { body }
}

/// The row, `volume:<verb>_<row>_metadata` enforced on its project.
async fn authorized<T: HasMetadata>(
    state: &ApiState,
    req: &Req,
    id: &str,
    verb: &str,
) -> ApiResult<T> {
    let row = T::get_visible(state, &req.context, id).await?;
    let rule = format!("volume:{verb}_{}_metadata", T::NOUN.to_lowercase());
    policy::enforce(&req.context, &rule, Some(row.project_id()))?;
    Ok(row)
}

/// Cinder's text for a key the row's metadata lacks.
fn missing<T: HasMetadata>(id: &str, key: &str) -> ApiError {
    ApiError::not_found(format!("{} {id} has no metadata with key {key}.", T::NOUN))
}

/// The items of a validated `key` body (`meta` holds exactly one).
fn items<T: HasMetadata>(req: &Req, key: &'static str) -> ApiResult<Metadata> {
    let body = req.body_value();
    validation::validate(&schema::<T>(key, key == "meta"), &body)?;
    Ok(string_map(body.get(key)))
}

/// Merges (or replaces) items, the rule named by `verb`; all the row's
/// metadata after.
async fn store<T: HasMetadata>(
    state: &ApiState,
    req: &Req,
    id: &str,
    items: &Metadata,
    verb: &str,
    replace: bool,
) -> ApiResult<Metadata> {
    let row: T = authorized(state, req, id, verb).await?;
    row.check_change("Updating")?;
    T::set(state.db.as_ref(), &row, items, replace)
        .await
        .map_err(|e| lookup_error(e, || not_found::<T>(id)))
}

fn ok(key: &str, metadata: &Metadata) -> Response {
    let mut body = serde_json::Map::new();
    body.insert(key.into(), json!(metadata));
    views::ok(&Value::Object(body))
}

/// Cinder's checks of `PUT …/metadata/{key}`.
///
/// # Errors
/// 400 when the body's key is not the URL's, or there are several.
fn check_meta_item(meta: &Metadata, key: &str) -> ApiResult<()> {
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

/// `GET …/metadata`.
pub async fn index<T: HasMetadata>(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let row: T = authorized(&state, &req, &id, "get").await?;
    Ok(ok("metadata", row.metadata()))
}

/// `POST …/metadata`: merge.
pub async fn create<T: HasMetadata>(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let items = items::<T>(&req, "metadata")?;
    let all = store::<T>(&state, &req, &id, &items, T::CREATE_VERB, false).await?;
    Ok(ok("metadata", &all))
}

/// `PUT …/metadata`: replace.
pub async fn update_all<T: HasMetadata>(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let items = items::<T>(&req, "metadata")?;
    let all = store::<T>(&state, &req, &id, &items, "update", true).await?;
    Ok(ok("metadata", &all))
}

/// `GET …/metadata/{key}`.
pub async fn show<T: HasMetadata>(
    State(state): State<ApiState>,
    req: Req,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let row: T = authorized(&state, &req, &id, "get").await?;
    match row.metadata().get(&key) {
        Some(value) => Ok(views::ok(&json!({"meta": { key.clone(): value }}))),
        None => Err(missing::<T>(&id, &key)),
    }
}

/// `PUT …/metadata/{key}`: one item.
pub async fn update<T: HasMetadata>(
    State(state): State<ApiState>,
    req: Req,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let meta = items::<T>(&req, "meta")?;
    check_meta_item(&meta, &key)?;
    store::<T>(&state, &req, &id, &meta, "update", false).await?;
    Ok(ok("meta", &meta))
}

/// `DELETE …/metadata/{key}` (200, empty).
pub async fn delete<T: HasMetadata>(
    State(state): State<ApiState>,
    req: Req,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let row: T = authorized(&state, &req, &id, "delete").await?;
    if !row.metadata().contains_key(&key) {
        return Err(missing::<T>(&id, &key));
    }
    row.check_change("Deleting")?;
    T::delete_key(state.db.as_ref(), &row, &key)
        .await
        .map_err(|e| lookup_error(e, || missing::<T>(&id, &key)))?;
    Ok(views::empty(StatusCode::OK))
}
