//! `/types/{id}/encryption` (Cinder's `contrib/volume_type_encryption.py`)
//! and `/volumes/{id}/encryption` (`contrib/volume_encryption_metadata.py`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clinker_db::{EncryptionUpdate, NewEncryption};
use clinker_types::volume_type_extras::ControlLocation;
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::fault::{ApiError, ApiResult, RESOURCE_NOT_FOUND};
use crate::request::Req;
use crate::services::encryption::{self as service, encryption_not_found, encryption_specs};
use crate::validation::{self, DB_MAX_INT, JsonType, Schema, body_of, object, of};
use crate::views;

/// Cinder's `volume_type_encryption.create` schema (`update` requires
/// nothing).
fn schema(required: bool) -> Schema {
    let mut encryption = object()
        .prop(
            "key_size",
            of(&[JsonType::String, JsonType::Integer, JsonType::Null])
                .range(Some(0), Some(DB_MAX_INT)),
        )
        .prop(
            "provider",
            of(&[JsonType::String]).length(Some(0), Some(255)),
        )
        .prop(
            "control_location",
            crate::validation::any().one_value_of(vec![json!("front-end"), json!("back-end")]),
        )
        .prop(
            "cipher",
            of(&[JsonType::String, JsonType::Null]).length(Some(0), Some(255)),
        );
    if required {
        encryption = encryption.required(&["provider", "control_location"]);
    }
    body_of("encryption", encryption)
}

/// Validates the body and converts `key_size` to an integer (Cinder's
/// `key_size` format and `int(key_size)`); returns the `encryption` object.
fn checked_body(req: &Req, required: bool) -> ApiResult<Map<String, Value>> {
    validation::validate(&schema(required), &req.body_value())?;
    let mut encryption = req.body_object("encryption");
    let key_size = match encryption.get("key_size") {
        None => return Ok(encryption),
        Some(Value::Null) => Value::Null,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => json!(i),
            None => return Err(ApiError::invalid_input("key_size must be an integer.")),
        },
        Some(Value::String(s)) => match s.trim().parse::<i64>() {
            Ok(i) => json!(i),
            Err(_) => return Err(ApiError::invalid_input("key_size must be an integer.")),
        },
        Some(_) => return Err(ApiError::invalid_input("key_size must be an integer.")),
    };
    encryption.insert("key_size".into(), key_size);
    Ok(encryption)
}

fn control_location(value: Option<&Value>) -> Option<ControlLocation> {
    value.and_then(Value::as_str).and_then(|s| s.parse().ok())
}

/// `GET /types/{id}/encryption`: the specs, or `{}`.
pub async fn type_index(
    State(state): State<ApiState>,
    req: Req,
    Path(type_id): Path<String>,
) -> ApiResult<Response> {
    let found = service::get_type_encryption(&state, &req.context, &type_id).await?;
    let body = found.as_ref().map(encryption_specs).unwrap_or_default();
    Ok(views::ok(&Value::Object(body)))
}

/// `POST /types/{id}/encryption` (200): echoes the body with the ids Cinder
/// adds to it.
pub async fn type_create(
    State(state): State<ApiState>,
    req: Req,
    Path(type_id): Path<String>,
) -> ApiResult<Response> {
    let mut encryption = checked_body(&req, true)?;
    let new = NewEncryption {
        provider: encryption
            .get("provider")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        cipher: encryption
            .get("cipher")
            .and_then(Value::as_str)
            .map(str::to_owned),
        key_size: encryption.get("key_size").and_then(Value::as_i64),
        control_location: control_location(encryption.get("control_location"))
            .unwrap_or(ControlLocation::FrontEnd),
    };
    let created = service::create_type_encryption(&state, &req.context, &type_id, new).await?;
    encryption.insert("volume_type_id".into(), json!(type_id));
    encryption.insert("encryption_id".into(), json!(created.encryption_id));
    Ok(views::ok(&json!({ "encryption": encryption })))
}

/// `GET /types/{id}/encryption/{key}`: one field of the specs.
pub async fn type_show(
    State(state): State<ApiState>,
    req: Req,
    Path((type_id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let found = service::get_type_encryption(&state, &req.context, &type_id).await?;
    let specs = found.as_ref().map(encryption_specs).unwrap_or_default();
    match specs.get(&key) {
        Some(value) => Ok(views::ok(&json!({ key.clone(): value }))),
        None => Err(encryption_not_found(&type_id)),
    }
}

/// `PUT /types/{id}/encryption/{encryption_id}`: echoes the body.
pub async fn type_update(
    State(state): State<ApiState>,
    req: Req,
    Path((type_id, _encryption_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let encryption = checked_body(&req, false)?;
    let update = EncryptionUpdate {
        provider: encryption
            .get("provider")
            .and_then(Value::as_str)
            .map(str::to_owned),
        cipher: encryption
            .get("cipher")
            .map(|v| v.as_str().map(str::to_owned)),
        key_size: encryption.get("key_size").map(Value::as_i64),
        control_location: control_location(encryption.get("control_location")),
    };
    service::update_type_encryption(&state, &req.context, &type_id, update).await?;
    Ok(views::ok(&json!({ "encryption": encryption })))
}

/// `DELETE /types/{id}/encryption/{encryption_id}` (202).
pub async fn type_delete(
    State(state): State<ApiState>,
    req: Req,
    Path((type_id, _encryption_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    service::delete_type_encryption(&state, &req.context, &type_id).await?;
    Ok(views::empty(StatusCode::ACCEPTED))
}

/// `GET /volumes/{id}/encryption`.
pub async fn volume_index(
    State(state): State<ApiState>,
    req: Req,
    Path(volume_id): Path<String>,
) -> ApiResult<Response> {
    let metadata = service::volume_encryption_metadata(&state, &req.context, &volume_id).await?;
    Ok(views::ok(&Value::Object(metadata)))
}

/// `GET /volumes/{id}/encryption/{key}`: the bare value, as Cinder returns
/// it (a key the metadata lacks is 404 here; Cinder fails with a 500).
pub async fn volume_show(
    State(state): State<ApiState>,
    req: Req,
    Path((volume_id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let metadata = service::volume_encryption_metadata(&state, &req.context, &volume_id).await?;
    match metadata.get(&key) {
        Some(value) => Ok(views::ok(value)),
        None => Err(ApiError::not_found(RESOURCE_NOT_FOUND)),
    }
}
