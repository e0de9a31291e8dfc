//! `/qos-specs` (Cinder's `contrib/qos_specs_manage.py`). The
//! associate/disassociate member actions are GETs with side effects, as
//! they are in Cinder.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clinker_db::{Page, QosSpecsColumn, QosSpecsQuery, SortDir};
use serde_json::Value;

use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::listing::{self, Params, invalid_sort_key};
use crate::policy;
use crate::request::Req;
use crate::services::qos_specs::{self as service, check_spec, parse_consumer};
use crate::validation::{self, JsonType, Pattern, Schema, body_of, bool_param, object, of};
use crate::views::{self, ViewCtx, type_extras as view};

fn create_schema() -> Schema {
    body_of(
        "qos_specs",
        object()
            .prop("name", of(&[JsonType::String]))
            .required(&["name"]),
    )
}

/// `parameter_types.extra_specs_with_null`.
fn set_schema() -> Schema {
    body_of(
        "qos_specs",
        object()
            .pattern_props(
                Pattern::SpecKey,
                of(&[JsonType::String, JsonType::Null]).length(None, Some(255)),
            )
            .closed(),
    )
}

fn sort_column(key: &str) -> ApiResult<QosSpecsColumn> {
    Ok(match key {
        "id" => QosSpecsColumn::Id,
        "name" => QosSpecsColumn::Name,
        "consumer" => QosSpecsColumn::Consumer,
        "created_at" => QosSpecsColumn::CreatedAt,
        "updated_at" => QosSpecsColumn::UpdatedAt,
        _ => return Err(invalid_sort_key()),
    })
}

/// `GET /qos-specs`.
pub async fn index(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    policy::enforce(&req.context, service::GET_ALL_POLICY, None)?;
    let mut params = Params::new(&req.query);
    let page = listing::pagination(&mut params, state.config.default.osapi_max_limit)?;
    let sort = listing::sort_params(&mut params)?
        .into_iter()
        .map(|(k, d)| Ok((sort_column(&k)?, d)))
        .collect::<ApiResult<Vec<(QosSpecsColumn, SortDir)>>>()?;
    let mut filters = Vec::new();
    for (key, value) in params.into_filters() {
        let column = match key.as_str() {
            "id" => QosSpecsColumn::Id,
            "name" => QosSpecsColumn::Name,
            "consumer" => QosSpecsColumn::Consumer,
            // Cinder drops unknown filters for non-admins and matches
            // nothing for admins.
            _ if !req.is_admin() => continue,
            _ => {
                return Ok(views::ok(&view::qos_list(
                    &[],
                    &ViewCtx::of(&req),
                    page.limit,
                )));
            }
        };
        filters.push((column, value));
    }
    let marker = match page.marker.as_deref() {
        None => None,
        Some(m) => Some(m.parse().map_err(|_| service::qos_not_found(m))?),
    };
    let query = QosSpecsQuery {
        filters,
        sort,
        page: Page {
            marker,
            limit: Some(page.limit),
            offset: Some(page.offset),
        },
    };
    let specs = service::list_qos(&state, &query).await?;
    Ok(views::ok(&view::qos_list(
        &specs,
        &ViewCtx::of(&req),
        page.limit,
    )))
}

/// `POST /qos-specs` (200).
pub async fn create(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    let body = req.body_value();
    validation::validate(&create_schema(), &body)?;
    policy::enforce(&req.context, service::CREATE_POLICY, None)?;
    let mut fields = req.body_object("qos_specs");
    let name = match fields.remove("name") {
        Some(Value::String(name)) => validation::checked_name(&name)?,
        _ => return Err(ApiError::bad_request("'name' is a required property")),
    };
    let mut specs = BTreeMap::new();
    for (key, value) in &fields {
        if let Some(text) = check_spec(key, Some(value))? {
            specs.insert(key.clone(), text);
        }
    }
    // An empty consumer means the default, as in Cinder (`if consumer:`).
    let consumer = match specs.remove("consumer") {
        Some(c) if !c.is_empty() => parse_consumer(&c)?,
        _ => clinker_types::volume_type_extras::QosConsumer::BackEnd,
    };
    let created = service::create_qos(&state, name, consumer, specs).await?;
    Ok(views::ok(&view::qos_detail(&created, &ViewCtx::of(&req))))
}

/// `GET /qos-specs/{id}`.
pub async fn show(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    policy::enforce(&req.context, service::GET_POLICY, None)?;
    let found = service::get_qos(&state, &id).await?;
    Ok(views::ok(&view::qos_detail(&found, &ViewCtx::of(&req))))
}

/// `PUT /qos-specs/{id}`: sets keys (and the consumer); echoes the body.
pub async fn update(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let body = req.body_value();
    validation::validate(&set_schema(), &body)?;
    policy::enforce(&req.context, service::UPDATE_POLICY, None)?;
    let mut specs: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (key, value) in req.body_object("qos_specs") {
        specs.insert(key.clone(), check_spec(&key, Some(&value))?);
    }
    // Setting the consumer to null restores the default, as Cinder's
    // object field does.
    let consumer = match specs.remove("consumer") {
        None => None,
        Some(None) => Some(clinker_types::volume_type_extras::QosConsumer::BackEnd),
        Some(Some(c)) => Some(parse_consumer(&c)?),
    };
    service::update_qos(&state, &id, consumer, &specs).await?;
    Ok(views::ok(&body))
}

/// `DELETE /qos-specs/{id}?force=` (202).
pub async fn delete(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    policy::enforce(&req.context, service::DELETE_POLICY, None)?;
    let force = match req.param("force") {
        None => false,
        Some(value) => bool_param("force", Some(value))?,
    };
    service::delete_qos(&state, &id, force).await?;
    Ok(views::empty(StatusCode::ACCEPTED))
}

/// Validates `{"keys": [unique strings of 1–255 characters]}` (Cinder's
/// `qos_specs.unset` schema) and returns the keys.
fn unset_keys(body: &Value) -> ApiResult<Vec<String>> {
    validation::validate(&body_of("keys", of(&[JsonType::Array])), body)?;
    let items = body["keys"].as_array().cloned().unwrap_or_default();
    let mut keys: Vec<String> = Vec::with_capacity(items.len());
    for item in &items {
        validation::validate(
            &object().prop("keys", of(&[JsonType::String]).length(Some(1), Some(255))),
            &serde_json::json!({ "keys": item }),
        )?;
        let key = item.as_str().unwrap_or_default().to_owned();
        if keys.contains(&key) {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute keys. Value: {}. {} has non-unique elements",
                validation::py_str(&body["keys"]),
                validation::py_repr(&body["keys"])
            )));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// `PUT /qos-specs/{id}/delete_keys` (202).
pub async fn delete_keys(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let keys = unset_keys(&req.body_value())?;
    policy::enforce(&req.context, service::DELETE_POLICY, None)?;
    service::delete_keys(&state, &id, &keys).await?;
    Ok(views::empty(StatusCode::ACCEPTED))
}

/// `GET /qos-specs/{id}/associations`.
pub async fn associations(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    policy::enforce(&req.context, service::GET_ALL_POLICY, None)?;
    let found = service::associations(&state, &id).await?;
    Ok(views::ok(&view::qos_associations(&found)))
}

/// `GET /qos-specs/{id}/associate?vol_type_id=` (202).
pub async fn associate(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    policy::enforce(&req.context, service::UPDATE_POLICY, None)?;
    service::associate(&state, &id, req.param("vol_type_id"), true).await?;
    Ok(views::empty(StatusCode::ACCEPTED))
}

/// `GET /qos-specs/{id}/disassociate?vol_type_id=` (202).
pub async fn disassociate(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    policy::enforce(&req.context, service::UPDATE_POLICY, None)?;
    service::associate(&state, &id, req.param("vol_type_id"), false).await?;
    Ok(views::empty(StatusCode::ACCEPTED))
}

/// `GET /qos-specs/{id}/disassociate_all` (202).
pub async fn disassociate_all(
    State(state): State<ApiState>,
    req: Req,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    policy::enforce(&req.context, service::UPDATE_POLICY, None)?;
    service::disassociate_all(&state, &id).await?;
    Ok(views::empty(StatusCode::ACCEPTED))
}
