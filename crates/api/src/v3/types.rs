//! `/types`: volume types, their extra specs and access lists (Cinder's
//! `api/v3/types.py`, `contrib/types_manage.py`,
//! `contrib/types_extra_specs.py`, `contrib/volume_type_access.py`).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clinker_db::SortDir;
use clinker_types::model::VolumeType;
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::listing::{self, Params, invalid_sort_key, literal_eval};
use crate::policy;
use crate::request::{Req, action_name, no_such_action};
use crate::services::types::{self as service, TypeVisibility};
use crate::validation::{
    self, Format, JsonType, Pattern, Schema, bool_from_str, bool_from_value, boolean, description,
    object, of,
};
use crate::views::types as view;
use crate::views::{self, ViewCtx};

fn create_schema() -> Schema {
    object()
        .prop(
            "volume_type",
            object()
                .prop(
                    "name",
                    of(&[JsonType::String])
                        .length(Some(1), Some(255))
                        .format(Format::Name),
                )
                .prop("description", description())
                .prop(
                    "extra_specs",
                    object()
                        .pattern_props(
                            Pattern::SpecKey,
                            of(&[JsonType::String, JsonType::Null]).length(None, Some(255)),
                        )
                        .closed(),
                )
                .prop("os-volume-type-access:is_public", boolean())
                .required(&["name"])
                .closed(),
        )
        .required(&["volume_type"])
        .closed()
}

fn update_schema() -> Schema {
    object()
        .prop(
            "volume_type",
            object()
                .prop(
                    "name",
                    of(&[JsonType::String, JsonType::Null]).length(Some(1), Some(255)),
                )
                .prop("description", description())
                .prop("is_public", boolean())
                .closed(),
        )
        .required(&["volume_type"])
        .closed()
}

fn spec_values() -> Schema {
    of(&[JsonType::String, JsonType::Null]).length(Some(0), Some(255))
}

fn string_specs(map: Option<&Map<String, Value>>) -> BTreeMap<String, String> {
    map.map(|m| {
        m.iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect()
    })
    .unwrap_or_default()
}

/// Cinder's `_parse_is_public`.
fn visibility(value: Option<&str>) -> ApiResult<TypeVisibility> {
    match value {
        None => Ok(TypeVisibility::Visible),
        Some(v) if v.eq_ignore_ascii_case("none") => Ok(TypeVisibility::All),
        Some(v) => match bool_from_str(v) {
            Some(true) => Ok(TypeVisibility::Visible),
            Some(false) => Ok(TypeVisibility::PrivateOnly),
            None => Err(ApiError::bad_request(format!(
                "Invalid is_public filter [{v}]"
            ))),
        },
    }
}

fn sort_types(types: &mut [VolumeType], sort: &[(String, SortDir)]) -> ApiResult<()> {
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

/// `GET /types`.
pub async fn index(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    policy::enforce(&req.context, "volume_extension:type_get_all", None)?;
    let mut params = Params::new(&req.query);
    let page = listing::pagination(&mut params, state.config.default.osapi_max_limit)?;
    let sort = listing::sort_params(&mut params)?;
    let is_public = params.pop("is_public");
    let mut filters = params.into_filters();
    if !req.is_admin() {
        filters.retain(|(k, _)| k == "extra_specs");
    }
    let mut types =
        service::list_types(&state, &req.context, visibility(is_public.as_deref())?).await?;
    for (key, value) in &filters {
        match key.as_str() {
            "extra_specs" => {
                let Some(Value::Object(wanted)) = literal_eval(value) else {
                    types.clear();
                    continue;
                };
                types.retain(|t| {
                    wanted
                        .iter()
                        .all(|(k, v)| t.extra_specs.get(k).map(String::as_str) == v.as_str())
                });
            }
            // Cinder matches nothing for filters that are not columns.
            _ => types.clear(),
        }
    }
    sort_types(&mut types, &sort)?;
    if let Some(marker) = &page.marker {
        let position = types
            .iter()
            .position(|t| t.id.to_string() == *marker)
            .ok_or_else(|| {
                ApiError::not_found(format!("Volume type {marker} could not be found."))
            })?;
        types.drain(..=position);
    }
    let offset = usize::try_from(page.offset).unwrap_or(usize::MAX);
    let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
    let types: Vec<VolumeType> = types.into_iter().skip(offset).take(limit).collect();
    Ok(views::ok(&view::list(
        &types,
        &ViewCtx::of(&req),
        page.limit,
    )))
}

/// `GET /types/{id}` (also `GET /types/default`).
pub async fn show(
    State(state): State<ApiState>,
    req: Req,
    Path(type_id): Path<String>,
) -> ApiResult<Response> {
    let found = if type_id == "default" {
        crate::services::default_types::default_type_for(&state, &req.context)
            .await
            .map_err(|_| ApiError::not_found("Default volume type can not be found."))?
    } else {
        service::get_type(&state, &req.context, &type_id).await?
    };
    policy::enforce(&req.context, "volume_extension:type_get", None)?;
    Ok(views::ok(&view::show(
        &found,
        &ViewCtx::of(&req),
        true,
        view::TypeView::Read,
    )))
}

/// `POST /types` (200).
pub async fn create(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    validation::validate(&create_schema(), &req.body_value())?;
    policy::enforce(&req.context, "volume_extension:type_create", None)?;
    let body = req.body_object("volume_type");
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
        .get("os-volume-type-access:is_public")
        .and_then(bool_from_value)
        .unwrap_or(true);
    let specs = string_specs(body.get("extra_specs").and_then(Value::as_object));
    let created = service::create_type(&state, name, description, is_public, specs).await?;
    Ok(views::ok(&view::show(
        &created,
        &ViewCtx::of(&req),
        true,
        view::TypeView::Manage,
    )))
}

/// `PUT /types/{id}`.
pub async fn update(
    State(state): State<ApiState>,
    req: Req,
    Path(type_id): Path<String>,
) -> ApiResult<Response> {
    validation::validate(&update_schema(), &req.body_value())?;
    policy::enforce(&req.context, "volume_extension:type_update", None)?;
    let body = req.body_object("volume_type");
    let name = body.get("name").and_then(Value::as_str).map(str::to_owned);
    let description = body
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let is_public = body.get("is_public").and_then(bool_from_value);
    if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::bad_request("Volume type name can not be empty."));
    }
    if name.is_none() && description.is_none() && is_public.is_none() {
        return Err(ApiError::bad_request(
            "Specify volume type name, description, is_public or a combination thereof.",
        ));
    }
    let updated =
        service::update_type(&state, &req.context, &type_id, name, description, is_public).await?;
    Ok(views::ok(&view::show(
        &updated,
        &ViewCtx::of(&req),
        false,
        view::TypeView::Manage,
    )))
}

/// `DELETE /types/{id}` (202).
pub async fn delete(
    State(state): State<ApiState>,
    req: Req,
    Path(type_id): Path<String>,
) -> ApiResult<Response> {
    policy::enforce(&req.context, "volume_extension:type_delete", None)?;
    service::delete_type(&state, &req.context, &type_id).await?;
    Ok(views::empty(StatusCode::ACCEPTED))
}

/// `POST /types/{id}/action`: `addProjectAccess` / `removeProjectAccess`.
pub async fn action(
    State(state): State<ApiState>,
    req: Req,
    Path(type_id): Path<String>,
) -> ApiResult<Response> {
    let (name, args) = action_name(req.body.as_ref())?;
    let add = match name.as_str() {
        "addProjectAccess" => true,
        "removeProjectAccess" => false,
        other => return Err(no_such_action(other)),
    };
    let key: &'static str = if add {
        "addProjectAccess"
    } else {
        "removeProjectAccess"
    };
    let schema = object()
        .prop(
            key,
            object()
                .prop(
                    "project",
                    of(&[JsonType::String]).length(Some(1), Some(255)),
                )
                .required(&["project"])
                .closed(),
        )
        .required(&[key])
        .closed();
    validation::validate(&schema, &req.body_value())?;
    let rule = if add {
        "volume_extension:volume_type_access:addProjectAccess"
    } else {
        "volume_extension:volume_type_access:removeProjectAccess"
    };
    policy::enforce(&req.context, rule, None)?;
    let project = args
        .get("project")
        .and_then(Value::as_str)
        .unwrap_or_default();
    service::change_access(&state, &req.context, &type_id, project, add).await?;
    Ok(views::empty(StatusCode::ACCEPTED))
}

/// `GET /types/{id}/os-volume-type-access`.
pub async fn access_index(
    State(state): State<ApiState>,
    req: Req,
    Path(type_id): Path<String>,
) -> ApiResult<Response> {
    policy::enforce(
        &req.context,
        "volume_extension:volume_type_access:get_all_for_type",
        None,
    )?;
    let (id, projects) = service::list_access(&state, &req.context, &type_id).await?;
    let items: Vec<Value> = projects
        .iter()
        .map(|p| json!({"volume_type_id": id.to_string(), "project_id": p}))
        .collect();
    Ok(views::ok(&json!({ "volume_type_access": items })))
}

/// `GET /types/{id}/extra_specs`.
pub async fn extra_specs_index(
    State(state): State<ApiState>,
    req: Req,
    Path(type_id): Path<String>,
) -> ApiResult<Response> {
    policy::enforce(
        &req.context,
        "volume_extension:types_extra_specs:index",
        None,
    )?;
    let found = service::get_type(&state, &req.context, &type_id).await?;
    let specs = view::visible_specs(&found.extra_specs, req.is_admin());
    Ok(views::ok(&json!({ "extra_specs": specs })))
}

/// `POST /types/{id}/extra_specs`: merge; echoes the body.
pub async fn extra_specs_create(
    State(state): State<ApiState>,
    req: Req,
    Path(type_id): Path<String>,
) -> ApiResult<Response> {
    let schema = object()
        .prop(
            "extra_specs",
            object()
                .pattern_props(Pattern::SpecKeyNoSpaces, spec_values())
                .closed(),
        )
        .required(&["extra_specs"])
        .closed();
    let body = req.body_value();
    validation::validate(&schema, &body)?;
    policy::enforce(
        &req.context,
        "volume_extension:types_extra_specs:create",
        None,
    )?;
    let specs = string_specs(body.get("extra_specs").and_then(Value::as_object));
    service::set_extra_specs(&state, &req.context, &type_id, specs).await?;
    Ok(views::ok(&body))
}

/// `GET /types/{id}/extra_specs/{key}`.
pub async fn extra_specs_show(
    State(state): State<ApiState>,
    req: Req,
    Path((type_id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    policy::enforce(
        &req.context,
        "volume_extension:types_extra_specs:show",
        None,
    )?;
    let found = service::get_type(&state, &req.context, &type_id).await?;
    let specs = view::visible_specs(&found.extra_specs, req.is_admin());
    match specs.get(&key) {
        Some(value) => Ok(views::ok(&json!({ key.clone(): value }))),
        None => Err(ApiError::not_found(format!(
            "Volume Type {type_id} has no extra specs with key {key}."
        ))),
    }
}

/// `PUT /types/{id}/extra_specs/{key}`: one spec; echoes the body.
pub async fn extra_specs_update(
    State(state): State<ApiState>,
    req: Req,
    Path((type_id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let schema = object()
        .pattern_props(Pattern::SpecKeyNoSpaces, spec_values())
        .properties_count(Some(1), Some(1))
        .closed();
    let body = req.body_value();
    validation::validate(&schema, &body)?;
    policy::enforce(
        &req.context,
        "volume_extension:types_extra_specs:update",
        None,
    )?;
    let specs = string_specs(body.as_object());
    if !body.as_object().is_some_and(|m| m.contains_key(&key)) {
        if let Ok(id) = type_id.parse() {
            service::ensure_type_unused(&state, id).await?;
        }
        service::get_type(&state, &req.context, &type_id).await?;
        return Err(ApiError::bad_request("Request body and URI mismatch"));
    }
    service::set_extra_specs(&state, &req.context, &type_id, specs).await?;
    Ok(views::ok(&body))
}

/// `DELETE /types/{id}/extra_specs/{key}` (202).
pub async fn extra_specs_delete(
    State(state): State<ApiState>,
    req: Req,
    Path((type_id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    policy::enforce(
        &req.context,
        "volume_extension:types_extra_specs:delete",
        None,
    )?;
    service::delete_extra_spec(&state, &req.context, &type_id, &key).await?;
    Ok(views::empty(StatusCode::ACCEPTED))
}
