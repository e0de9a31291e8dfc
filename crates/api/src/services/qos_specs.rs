//! QoS specs (Cinder's `volume/qos_specs.py` and the
//! `qos_specs_manage` controller's rules and texts).

use std::collections::BTreeMap;

use clinker_db::{DbError, NewQosSpecs, QosAssociation, QosSpecsQuery};
use clinker_types::QosSpecsId;
use clinker_types::volume_type_extras::{QosConsumer, QosSpecs};

use super::lookup_error;
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};

/// `volume_extension:qos_specs_manage:create`.
pub const CREATE_POLICY: &str = "volume_extension:qos_specs_manage:create";
/// `volume_extension:qos_specs_manage:get`.
pub const GET_POLICY: &str = "volume_extension:qos_specs_manage:get";
/// `volume_extension:qos_specs_manage:get_all` (also the associations).
pub const GET_ALL_POLICY: &str = "volume_extension:qos_specs_manage:get_all";
/// `volume_extension:qos_specs_manage:update` (also (dis)associate).
pub const UPDATE_POLICY: &str = "volume_extension:qos_specs_manage:update";
/// `volume_extension:qos_specs_manage:delete` (also `delete_keys`).
pub const DELETE_POLICY: &str = "volume_extension:qos_specs_manage:delete";

/// Cinder's `QoSSpecsNotFound` text.
pub fn qos_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("No such QoS spec {id}."))
}

/// Cinder's `InvalidQoSSpecs` for a bad consumer. The list is rendered as
/// Cinder renders its enum field (`str(QoSConsumerField())`).
fn invalid_consumer() -> ApiError {
    ApiError::bad_request(
        "Invalid qos specs: Valid consumer of QoS specs are: QoSConsumerValues(default=<class 'oslo_versionedobjects.fields.UnspecifiedDefault'>,nullable=False,valid_values=('back-end', 'front-end', 'both'))",
    )
}

/// Parses a consumer as Cinder's object field does.
///
/// # Errors
/// 400 `InvalidQoSSpecs`.
pub fn parse_consumer(value: &str) -> ApiResult<QosConsumer> {
    value.parse().map_err(|_| invalid_consumer())
}

/// Cinder's `validate_dictionary_string_length` on a spec value (keys are
/// checked by the callers' schemas or here).
///
/// # Errors
/// 400 "Invalid input received: …".
pub fn check_spec(key: &str, value: Option<&serde_json::Value>) -> ApiResult<Option<String>> {
    let key_len = key.chars().count();
    if key_len == 0 {
        return Err(ApiError::invalid_input(format!(
            "Key \"{key}\" has 0 characters, less than 1."
        )));
    }
    if key_len > 255 {
        return Err(ApiError::invalid_input(format!(
            "Key \"{key}\" has {key_len} characters, more than 255."
        )));
    }
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => {
            let len = text.chars().count();
            if len > 255 {
                return Err(ApiError::invalid_input(format!(
                    "Value for key \"{key}\" has {len} characters, more than 255."
                )));
            }
            Ok(Some(text.clone()))
        }
        Some(_) => Err(ApiError::invalid_input(format!(
            "Value for key \"{key}\" is not a string or unicode"
        ))),
    }
}

/// QoS specs by id.
///
/// # Errors
/// 404 "No such QoS spec X.".
pub async fn get_qos(state: &ApiState, id: &str) -> ApiResult<QosSpecs> {
    let Ok(specs_id) = id.parse::<QosSpecsId>() else {
        return Err(qos_not_found(id));
    };
    state
        .db
        .get_qos_specs(specs_id)
        .await
        .map_err(|e| lookup_error(e, || qos_not_found(id)))
}

/// Lists QoS specs (the caller checked [`GET_ALL_POLICY`]).
///
/// # Errors
/// 404 "No such QoS spec X." for an unknown marker.
pub async fn list_qos(state: &ApiState, query: &QosSpecsQuery) -> ApiResult<Vec<QosSpecs>> {
    let marker = query.page.marker.map(|m| m.to_string()).unwrap_or_default();
    state
        .db
        .list_qos_specs(query)
        .await
        .map_err(|e| lookup_error(e, || qos_not_found(&marker)))
}

/// Creates QoS specs.
///
/// # Errors
/// 409 "QoS Specs X already exists.".
pub async fn create_qos(
    state: &ApiState,
    name: String,
    consumer: QosConsumer,
    specs: BTreeMap<String, String>,
) -> ApiResult<QosSpecs> {
    let new = NewQosSpecs {
        name: name.clone(),
        consumer,
        specs,
    };
    state.db.create_qos_specs(new).await.map_err(|e| match e {
        DbError::Conflict(_) => ApiError::conflict(format!("QoS Specs {name} already exists.")),
        other => other.into(),
    })
}

/// Sets the consumer and merges specs.
///
/// # Errors
/// 404.
pub async fn update_qos(
    state: &ApiState,
    id: &str,
    consumer: Option<QosConsumer>,
    specs: &BTreeMap<String, Option<String>>,
) -> ApiResult<QosSpecs> {
    let existing = get_qos(state, id).await?;
    state
        .db
        .update_qos_specs(existing.id, consumer, specs)
        .await
        .map_err(|e| lookup_error(e, || qos_not_found(id)))
}

/// Deletes keys, all or nothing.
///
/// # Errors
/// 404 for the specs or the first missing key.
pub async fn delete_keys(state: &ApiState, id: &str, keys: &[String]) -> ApiResult<()> {
    let existing = get_qos(state, id).await?;
    state
        .db
        .delete_qos_specs_keys(existing.id, keys)
        .await
        .map_err(|e| match e {
            DbError::NotFound {
                resource: "qos spec key",
                id: key,
            } => ApiError::not_found(format!("QoS spec {id} has no spec with key {key}.")),
            other => lookup_error(other, || qos_not_found(id)),
        })
}

/// Deletes QoS specs.
///
/// # Errors
/// 404, 400 "Qos specs still in use." while associated and not forced.
pub async fn delete_qos(state: &ApiState, id: &str, force: bool) -> ApiResult<()> {
    let existing = get_qos(state, id).await?;
    state
        .db
        .delete_qos_specs(existing.id, force)
        .await
        .map_err(|e| match e {
            DbError::InvalidState(_) => ApiError::bad_request("Qos specs still in use."),
            other => lookup_error(other, || qos_not_found(id)),
        })
}

/// The types associated with QoS specs.
///
/// # Errors
/// 404.
pub async fn associations(state: &ApiState, id: &str) -> ApiResult<Vec<QosAssociation>> {
    let existing = get_qos(state, id).await?;
    state
        .db
        .qos_associations(existing.id)
        .await
        .map_err(|e| lookup_error(e, || qos_not_found(id)))
}

fn type_not_found(type_id: &str) -> ApiError {
    ApiError::not_found(format!("Volume type {type_id} could not be found."))
}

/// Associates (`associate`) a type with QoS specs, or removes the
/// association.
///
/// # Errors
/// 400 without a type id or, on associate, when the type has other specs;
/// 404.
pub async fn associate(
    state: &ApiState,
    id: &str,
    type_id: Option<&str>,
    associate: bool,
) -> ApiResult<()> {
    let type_id = match type_id {
        Some(t) if !t.is_empty() => t,
        _ => return Err(ApiError::bad_request("Volume Type id must not be None.")),
    };
    let existing = get_qos(state, id).await?;
    let Ok(volume_type_id) = type_id.parse() else {
        return Err(type_not_found(type_id));
    };
    let done = if associate {
        state
            .db
            .associate_qos_specs(existing.id, volume_type_id)
            .await
    } else {
        state
            .db
            .disassociate_qos_specs(existing.id, volume_type_id)
            .await
    };
    done.map_err(|e| match e {
        DbError::Conflict(other) if associate => ApiError::bad_request(format!(
            "Invalid volume type: Type {type_id} is already associated with another qos specs: {other}"
        )),
        DbError::NotFound {
            resource: "volume type",
            ..
        } => type_not_found(type_id),
        other => lookup_error(other, || qos_not_found(id)),
    })
}

/// Removes every association of QoS specs.
///
/// # Errors
/// 404.
pub async fn disassociate_all(state: &ApiState, id: &str) -> ApiResult<()> {
    let existing = get_qos(state, id).await?;
    state
        .db
        .disassociate_all_qos_specs(existing.id)
        .await
        .map_err(|e| lookup_error(e, || qos_not_found(id)))
}
