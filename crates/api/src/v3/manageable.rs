//! Managing existing backend objects: `os-volume-manage` and
//! `os-snapshot-manage` (Cinder's `contrib/volume_manage.py`,
//! `contrib/snapshot_manage.py`, any version) and `manageable_volumes` /
//! `manageable_snapshots` (`api/v3/volume_manage.py`,
//! `snapshot_manage.py`, `resource_common_manage.py`; 3.8+).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::listing::{self, Params};
use crate::microversion::{self as mv, ApiVersion};
use crate::policy;
use crate::request::{Req, string_map, text};
use crate::services::manage::{
    self as service, ManageSnapshot, ManageVolume, Manageable, VALID_SORT_KEYS,
};
use crate::validation::{
    self, JsonType, Pattern, Schema, body_of, bool_from_value, boolean, description,
    metadata_allows_null, name_allow_zero_min_length, object, of, uuid,
};
use crate::views::volumes::{self as volume_view, Detail};
use crate::views::{self, ViewCtx, snapshots as snapshot_view};

/// Cinder's `volume_manage_create` (and `_v316` with `cluster`).
fn volume_manage_schema(version: ApiVersion) -> Schema {
    let mut volume = object()
        .prop("description", description())
        .prop("availability_zone", name_allow_zero_min_length())
        .prop("bootable", boolean())
        .prop("volume_type", name_allow_zero_min_length())
        .prop("name", name_allow_zero_min_length())
        .prop(
            "host",
            of(&[JsonType::String, JsonType::Null])
                .length(Some(1), Some(255))
                .pattern(Pattern::CinderHost),
        )
        .prop("ref", of(&[JsonType::Object, JsonType::String]))
        .prop("metadata", metadata_allows_null());
    if version.matches(mv::VOLUME_MIGRATE_CLUSTER) {
        volume = volume.prop(
            "cluster",
            of(&[JsonType::String, JsonType::Null]).length(Some(0), Some(255)),
        );
    }
    body_of("volume", volume.required(&["ref"]).closed())
}

/// Cinder's `snapshot_manage.create`.
fn snapshot_manage_schema() -> Schema {
    body_of(
        "snapshot",
        object()
            .prop("description", description())
            .prop("metadata", metadata_allows_null())
            .prop("name", name_allow_zero_min_length())
            .prop("volume_id", uuid())
            .prop(
                "ref",
                of(&[JsonType::Object, JsonType::Null, JsonType::String]),
            )
            .required(&["ref", "volume_id"])
            .closed(),
    )
}

/// Non-empty, stripped (Cinder: `if volume.get('name'): name.strip()`).
fn stripped(map: &Map<String, Value>, key: &str) -> Option<String> {
    text(map, key)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().to_owned())
}

async fn manage_volume(state: &ApiState, req: &Req) -> ApiResult<Response> {
    let ctx = &req.context;
    policy::enforce(ctx, service::VOLUME_MANAGE_POLICY, None)?;
    let volume = req.body_object("volume");
    let location = service::cluster_host(
        volume.get("host").and_then(Value::as_str),
        volume.get("cluster").and_then(Value::as_str),
        req.version.matches(mv::VOLUME_MIGRATE_CLUSTER),
    )?;
    let request = ManageVolume {
        location,
        reference: volume.get("ref").cloned().unwrap_or(Value::Null),
        name: stripped(&volume, "name"),
        description: stripped(&volume, "description"),
        volume_type: text(&volume, "volume_type"),
        metadata: string_map(volume.get("metadata")),
        availability_zone: text(&volume, "availability_zone"),
        bootable: volume
            .get("bootable")
            .and_then(bool_from_value)
            .unwrap_or(false),
    };
    let managed = service::manage_volume(state, ctx, request).await?;
    Ok(volume_view::show(
        &managed,
        &ViewCtx::of(req),
        Detail::Plain,
        StatusCode::ACCEPTED,
    ))
}

/// `POST /os-volume-manage` (202).
pub async fn volume_manage_create(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    validation::validate(&volume_manage_schema(req.version), &req.body_value())?;
    manage_volume(&state, &req).await
}

/// `POST /manageable_volumes` (3.8, 202).
pub async fn manageable_volumes_create(
    State(state): State<ApiState>,
    req: Req,
) -> ApiResult<Response> {
    validation::validate(&volume_manage_schema(req.version), &req.body_value())?;
    mv::require(req.version, mv::MANAGE_EXISTING_LIST)?;
    manage_volume(&state, &req).await
}

async fn manage_snapshot(state: &ApiState, req: &Req) -> ApiResult<Response> {
    let snapshot = req.body_object("snapshot");
    let request = ManageSnapshot {
        volume_id: text(&snapshot, "volume_id").unwrap_or_default(),
        reference: snapshot.get("ref").cloned().unwrap_or(Value::Null),
        name: text(&snapshot, "name"),
        description: text(&snapshot, "description"),
        metadata: string_map(snapshot.get("metadata")),
    };
    let managed = service::manage_snapshot(state, &req.context, request).await?;
    Ok(views::json(
        StatusCode::ACCEPTED,
        &snapshot_view::show(&managed, &ViewCtx::of(req), false),
    ))
}

/// `POST /os-snapshot-manage` (202).
pub async fn snapshot_manage_create(
    State(state): State<ApiState>,
    req: Req,
) -> ApiResult<Response> {
    validation::validate(&snapshot_manage_schema(), &req.body_value())?;
    manage_snapshot(&state, &req).await
}

/// `POST /manageable_snapshots` (3.8, 202).
pub async fn manageable_snapshots_create(
    State(state): State<ApiState>,
    req: Req,
) -> ApiResult<Response> {
    validation::validate(&snapshot_manage_schema(), &req.body_value())?;
    mv::require(req.version, mv::MANAGE_EXISTING_LIST)?;
    manage_snapshot(&state, &req).await
}

/// Cinder's `get_sort_params(default_key='reference')` with the
/// manageable lists' own key and direction checks; `(key, ascending)`.
fn sort_params(params: &mut Params) -> ApiResult<Vec<(String, bool)>> {
    let pairs = listing::sort_pairs(params, "reference", true)
        .ok_or_else(|| ApiError::invalid_input(listing::SORT_FORMS_CONFLICT))?;
    let bad_keys: Vec<&str> = pairs
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !VALID_SORT_KEYS.contains(k))
        .collect();
    if !bad_keys.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Invalid sort keys passed: {}",
            bad_keys.join(", ")
        )));
    }
    let bad_dirs: Vec<&str> = pairs
        .iter()
        .map(|(_, d)| d.as_str())
        .filter(|d| !matches!(*d, "asc" | "desc"))
        .collect();
    if !bad_dirs.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Invalid sort dirs passed: {}",
            bad_dirs.join(", ")
        )));
    }
    Ok(pairs.into_iter().map(|(k, d)| (k, d == "asc")).collect())
}

fn entry_view(entry: &Value, kind: Manageable, detailed: bool) -> Value {
    let mut keys = vec!["reference", "size", "safe_to_manage"];
    if detailed {
        keys.extend(["reason_not_safe", "cinder_id", "extra_info"]);
    }
    if kind == Manageable::Snapshots {
        keys.push("source_reference");
    }
    let map: Map<String, Value> = keys
        .into_iter()
        .map(|k| (k.to_owned(), entry.get(k).cloned().unwrap_or(Value::Null)))
        .collect();
    Value::Object(map)
}

async fn list(
    state: &ApiState,
    req: &Req,
    kind: Manageable,
    detailed: bool,
    gated: bool,
) -> ApiResult<Response> {
    if gated {
        mv::require(req.version, mv::MANAGE_EXISTING_LIST)?;
    }
    let policy_name = match kind {
        Manageable::Volumes => service::VOLUME_LIST_MANAGEABLE_POLICY,
        Manageable::Snapshots => service::SNAPSHOT_LIST_MANAGEABLE_POLICY,
    };
    policy::enforce(&req.context, policy_name, None)?;
    let mut params = Params::new(&req.query);
    let host = params.pop("host");
    let cluster = params.pop("cluster");
    let location = service::cluster_host(
        host.as_deref(),
        cluster.as_deref(),
        req.version.matches(mv::MANAGE_EXISTING_CLUSTER),
    )?;
    let page = listing::pagination(&mut params, state.config.default.osapi_max_limit)?;
    let sort = sort_params(&mut params)?;
    let entries =
        service::list_manageable(state, &req.context, kind, &location, &sort, &page).await?;
    let items: Vec<Value> = entries
        .iter()
        .map(|e| entry_view(e, kind, detailed))
        .collect();
    let key = match kind {
        Manageable::Volumes => "manageable-volumes",
        Manageable::Snapshots => "manageable-snapshots",
    };
    Ok(views::ok(&json!({ key: items })))
}

/// `GET /manageable_volumes` (3.8).
pub async fn manageable_volumes_index(
    State(state): State<ApiState>,
    req: Req,
) -> ApiResult<Response> {
    list(&state, &req, Manageable::Volumes, false, true).await
}

/// `GET /manageable_volumes/detail` (3.8).
pub async fn manageable_volumes_detail(
    State(state): State<ApiState>,
    req: Req,
) -> ApiResult<Response> {
    list(&state, &req, Manageable::Volumes, true, true).await
}

/// `GET /manageable_snapshots` (3.8).
pub async fn manageable_snapshots_index(
    State(state): State<ApiState>,
    req: Req,
) -> ApiResult<Response> {
    list(&state, &req, Manageable::Snapshots, false, true).await
}

/// `GET /manageable_snapshots/detail` (3.8).
pub async fn manageable_snapshots_detail(
    State(state): State<ApiState>,
    req: Req,
) -> ApiResult<Response> {
    list(&state, &req, Manageable::Snapshots, true, true).await
}

/// `GET /os-volume-manage` (the extension's list, any version).
pub async fn volume_manage_index(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    list(&state, &req, Manageable::Volumes, false, false).await
}

/// `GET /os-volume-manage/detail`.
pub async fn volume_manage_detail(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    list(&state, &req, Manageable::Volumes, true, false).await
}

/// `GET /os-snapshot-manage`.
pub async fn snapshot_manage_index(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    list(&state, &req, Manageable::Snapshots, false, false).await
}

/// `GET /os-snapshot-manage/detail`.
pub async fn snapshot_manage_detail(
    State(state): State<ApiState>,
    req: Req,
) -> ApiResult<Response> {
    list(&state, &req, Manageable::Snapshots, true, false).await
}
