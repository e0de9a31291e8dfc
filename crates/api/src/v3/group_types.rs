//! `/group_types` (3.11): group types and their group specs (Cinder's
//! `api/v3/group_types.py` and `api/v3/group_specs.py`). Management is
//! administrator-only; anyone may list and show types, but only
//! administrators see `group_specs`.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clinker_db::SortDir;
use clinker_types::group::GroupType;
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::listing::{self, Params, invalid_sort_key};
use crate::microversion as mv;
use crate::policy::enforce;
use crate::request::Req;
use crate::services::group_types as service;
use crate::validation::{
    self, Format, JsonType, Pattern, Schema, bool_from_str, bool_from_value, boolean, description,
    metadata_allows_null, name_allow_zero_min_length, object, of,
};
use crate::views::groups as view;
use crate::views::{self, ViewCtx};

/// Cinder's `group_types.create` schema.
fn create_schema() -> Schema {
    object()
        .prop(
            "group_type",
            object()
                .prop(
                    "name",
                    of(&[JsonType::String])
                        .length(Some(1), Some(255))
                        .format(Format::Name),
                )
                .prop("description", description())
                .prop("is_public", boolean())
                .prop("group_specs", metadata_allows_null())
                .required(&["name"])
                .closed(),
        )
        .required(&["group_type"])
        .closed()
}

/// Cinder's `group_types.update` schema.
fn update_schema() -> Schema {
    object()
        .prop(
            "group_type",
            object()
                .prop("name", name_allow_zero_min_length())
                .prop("description", description())
                .prop("is_public", boolean())
                .closed(),
        )
        .required(&["group_type"])
        .closed()
}

/// `group_specs_with_no_spaces_key_and_value_null`.
fn group_specs_schema() -> Schema {
    object()
        .pattern_props(
            Pattern::SpecKeyNoSpaces,
            of(&[JsonType::String, JsonType::Null]).length(None, Some(255)),
        )
        .closed()
}

/// String values of a specs object; a null value sets nothing (Clinker
/// stores no null specs).
fn string_specs(map: Option<&Map<String, Value>>) -> BTreeMap<String, String> {
    map.map(|m| {
        m.iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect()
    })
    .unwrap_or_default()
}

/// Whether the caller sees `group_specs` (`group:access_group_types_specs`).
fn shows_specs(req: &Req) -> bool {
    enforce(&req.context, "group:access_group_types_specs", None).is_ok()
}

/// Cinder's `_parse_is_public`: absent means public (and granted), `none`
/// means all.
fn parse_is_public(value: Option<&str>) -> ApiResult<Option<bool>> {
    match value {
        None => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("none") => Ok(None),
        Some(v) => bool_from_str(v)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("Invalid is_public filter [{v}]"))),
    }
}

fn sort_group_types(types: &mut [GroupType], sort: &[(String, SortDir)]) -> ApiResult<()> {
    for (key, _) in sort {
        if !matches!(
            key.as_str(),
            "id" | "name" | "description" | "is_public" | "created_at" | "updated_at"
        ) {
            return Err(invalid_sort_key());
        }
    }
    let mut keys: Vec<(String, SortDir)> = sort.to_vec();
    let default_dir = keys.first().map_or(SortDir::Desc, |(_, d)| *d);
    for key in ["created_at", "id"] {
        if !keys.iter().any(|(k, _)| k == key) {
            keys.push((key.to_owned(), default_dir));
        }
    }
    types.sort_by(|a, b| {
        for (key, dir) in &keys {
            let ordering = match key.as_str() {
                "id" => a.id.cmp(&b.id),
                "name" => a.name.cmp(&b.name),
                "description" => a.description.cmp(&b.description),
                "is_public" => a.is_public.cmp(&b.is_public),
                "updated_at" => a.updated_at.cmp(&b.updated_at),
                _ => a.created_at.cmp(&b.created_at),
            };
            let ordering = if *dir == SortDir::Desc {
                ordering.reverse()
            } else {
                ordering
            };
            if ordering.is_ne() {
                return ordering;
            }
        }
        std::cmp::Ordering::Equal
    });
    Ok(())
}

/// `GET /group_types`.
pub async fn index(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    mv::require(req.version, mv::GROUP_TYPE)?;
    let mut params = Params::new(&req.query);
    let page = listing::pagination(&mut params, state.config.default.osapi_max_limit)?;
    let sort = listing::sort_params(&mut params)?;
    // Only administrators choose the visibility; other filters are ignored
    // (Cinder's `_get_group_types` passes no others on).
    let is_public = if req.is_admin() {
        parse_is_public(params.pop("is_public").as_deref())?
    } else {
        Some(true)
    };
    let mut types = service::list_group_types(&state, &req.context, is_public).await?;
    sort_group_types(&mut types, &sort)?;
    if let Some(marker) = &page.marker {
        let position = types
            .iter()
            .position(|t| t.id.to_string() == *marker)
            .ok_or_else(|| service::group_type_not_found(marker))?;
        types.drain(..=position);
    }
    let offset = usize::try_from(page.offset).unwrap_or(usize::MAX);
    let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
    let types: Vec<GroupType> = types.into_iter().skip(offset).take(limit).collect();
    Ok(views::ok(&view::group_type_list(
        &types,
        &ViewCtx::of(&req),
        shows_specs(&req),
        page.limit,
    )))
}

/// `GET /group_types/{id}` (also `GET /group_types/default`).
pub async fn show(
    State(state): State<ApiState>,
    req: Req,
    Path(type_id): Path<String>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::GROUP_TYPE)?;
    let found = if type_id == "default" {
        service::default_group_type(&state).await?
    } else {
        service::get_group_type(&state, &req.context, &type_id).await?
    };
    Ok(views::ok(&view::group_type_show(&found, shows_specs(&req))))
}

/// `POST /group_types` (202).
pub async fn create(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    mv::require(req.version, mv::GROUP_TYPE)?;
    validation::validate(&create_schema(), &req.body_value())?;
    enforce(&req.context, "group:group_types:create", None)?;
    let body = req.body_object("group_type");
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let description = body
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let is_public = body
        .get("is_public")
        .and_then(bool_from_value)
        .unwrap_or(true);
    let specs = string_specs(body.get("group_specs").and_then(Value::as_object));
    let created = service::create_group_type(&state, name, description, is_public, specs).await?;
    Ok(views::json(
        StatusCode::ACCEPTED,
        &view::group_type_show(&created, shows_specs(&req)),
    ))
}

/// `PUT /group_types/{id}`.
pub async fn update(
    State(state): State<ApiState>,
    req: Req,
    Path(type_id): Path<String>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::GROUP_TYPE)?;
    validation::validate(&update_schema(), &req.body_value())?;
    enforce(&req.context, "group:group_types:update", None)?;
    let body = req.body_object("group_type");
    let name = body.get("name").and_then(Value::as_str).map(str::to_owned);
    let description = body
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let is_public = body.get("is_public").and_then(bool_from_value);
    if name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n.trim().is_empty())
    {
        return Err(ApiError::bad_request("Group type name can not be empty."));
    }
    if name.is_none() && description.is_none() && is_public.is_none() {
        return Err(ApiError::bad_request(
            "Specify group type name, description or a combination thereof.",
        ));
    }
    let updated =
        service::update_group_type(&state, &req.context, &type_id, name, description, is_public)
            .await?;
    Ok(views::ok(&view::group_type_show(
        &updated,
        shows_specs(&req),
    )))
}

/// `DELETE /group_types/{id}` (202).
pub async fn delete(
    State(state): State<ApiState>,
    req: Req,
    Path(type_id): Path<String>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::GROUP_TYPE)?;
    enforce(&req.context, "group:group_types:delete", None)?;
    service::delete_group_type(&state, &req.context, &type_id).await?;
    Ok(views::empty(StatusCode::ACCEPTED))
}

/// `GET /group_types/{id}/group_specs`.
pub async fn specs_index(
    State(state): State<ApiState>,
    req: Req,
    Path(type_id): Path<String>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::GROUP_TYPE)?;
    enforce(&req.context, "group:group_types_specs:get_all", None)?;
    let found = service::get_group_type(&state, &req.context, &type_id).await?;
    Ok(views::ok(&json!({ "group_specs": found.group_specs })))
}

/// `POST /group_types/{id}/group_specs` (202): creates or replaces specs;
/// echoes the body.
pub async fn specs_create(
    State(state): State<ApiState>,
    req: Req,
    Path(type_id): Path<String>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::GROUP_TYPE)?;
    let schema = object()
        .prop("group_specs", group_specs_schema())
        .required(&["group_specs"])
        .closed();
    let body = req.body_value();
    validation::validate(&schema, &body)?;
    enforce(&req.context, "group:group_types_specs:create", None)?;
    let specs = string_specs(body.get("group_specs").and_then(Value::as_object));
    service::set_group_specs(&state, &req.context, &type_id, specs).await?;
    Ok(views::json(StatusCode::ACCEPTED, &body))
}

/// `PUT /group_types/{id}/group_specs/{key}`: one spec; echoes the body.
pub async fn specs_update(
    State(state): State<ApiState>,
    req: Req,
    Path((type_id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::GROUP_TYPE)?;
    let schema = group_specs_schema().properties_count(Some(1), Some(1));
    let body = req.body_value();
    validation::validate(&schema, &body)?;
    enforce(&req.context, "group:group_types_specs:update", None)?;
    service::get_group_type(&state, &req.context, &type_id).await?;
    if !body.as_object().is_some_and(|m| m.contains_key(&key)) {
        return Err(ApiError::bad_request("Request body and URI mismatch"));
    }
    service::set_group_specs(
        &state,
        &req.context,
        &type_id,
        string_specs(body.as_object()),
    )
    .await?;
    Ok(views::ok(&body))
}

/// `GET /group_types/{id}/group_specs/{key}`.
pub async fn specs_show(
    State(state): State<ApiState>,
    req: Req,
    Path((type_id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::GROUP_TYPE)?;
    enforce(&req.context, "group:group_types_specs:get", None)?;
    let found = service::get_group_type(&state, &req.context, &type_id).await?;
    match found.group_specs.get(&key) {
        Some(value) => Ok(views::ok(&json!({ key.clone(): value }))),
        None => Err(ApiError::not_found(format!(
            "Group Type {type_id} has no extra spec with key {key}."
        ))),
    }
}

/// `DELETE /group_types/{id}/group_specs/{key}` (202).
pub async fn specs_delete(
    State(state): State<ApiState>,
    req: Req,
    Path((type_id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::GROUP_TYPE)?;
    enforce(&req.context, "group:group_types_specs:delete", None)?;
    service::delete_group_spec(&state, &req.context, &type_id, &key).await?;
    Ok(views::empty(StatusCode::ACCEPTED))
}
