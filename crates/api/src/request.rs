//! What a handler knows about its request, prepared once by the pipeline
//! in [`crate::context`]: the caller, the negotiated microversion, the link
//! base, the query parameters and the decoded JSON body.

use std::collections::BTreeMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use clinker_rpc::RequestContext;
use serde_json::{Map, Value};

use crate::fault::{ApiError, ApiResult};
use crate::links::Links;
use crate::microversion::ApiVersion;
use crate::services::compute::ComputeAuth;
use crate::validation::{self, Format, JsonType, body_of, of};

/// oslo's `max_request_body_size` default: larger bodies are refused with
/// 413 before anything reads them.
pub const MAX_REQUEST_BODY_SIZE: usize = 114_688;

/// The prepared request.
#[derive(Clone, Debug)]
pub struct Req {
    /// Who is asking (also sent along with RPCs).
    pub context: RequestContext,
    /// How to call Compute as the caller (Keystone tokens only).
    pub compute: Option<ComputeAuth>,
    /// The negotiated microversion.
    pub version: ApiVersion,
    /// Link builder for the responses.
    pub links: Links,
    /// Query parameters, in order, decoded.
    pub query: Vec<(String, String)>,
    /// The JSON body, if any.
    pub body: Option<Value>,
}

impl<S: Send + Sync> FromRequestParts<S> for Req {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .remove::<Req>()
            .ok_or_else(|| ApiError::internal("request reached a handler without the pipeline"))
    }
}

impl Req {
    /// Whether the caller has the admin role.
    pub fn is_admin(&self) -> bool {
        self.context.is_admin
    }

    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body (JSON `null` when there was none), for schema validation.
    pub fn body_value(&self) -> Value {
        self.body.clone().unwrap_or(Value::Null)
    }

    /// The body's object under `key`, after validation guaranteed it.
    pub fn body_object(&self, key: &str) -> Map<String, Value> {
        self.body
            .as_ref()
            .and_then(|b| b.get(key))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }
}

/// Cinder's `action_peek_json`: the single key of an action body.
///
/// # Errors
/// 400 "There is no such action: None…" without a body, "Malformed request
/// body" when it is not an object of exactly one key.
pub fn action_name(body: Option<&Value>) -> Result<(String, Value), ApiError> {
    let Some(body) = body else {
        return Err(no_such_action("None"));
    };
    match body.as_object() {
        Some(map) if map.len() == 1 => {
            let (name, args) = map
                .iter()
                .next()
                .ok_or_else(|| ApiError::bad_request("Malformed request body"))?;
            Ok((name.clone(), args.clone()))
        }
        _ => Err(ApiError::bad_request("Malformed request body")),
    }
}

/// Cinder's answer to an action it does not know.
pub fn no_such_action(name: &str) -> ApiError {
    ApiError::bad_request(format!(
        "There is no such action: {name}. Verify the request body and Content-Type header and try again."
    ))
}

/// A string field of a body object.
pub fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// A string field, trimmed as Cinder's `clean_name_and_description` does.
pub fn trimmed(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key)
        .and_then(Value::as_str)
        .map(|s| s.trim().to_owned())
}

/// `new` wins over `legacy` (`name` over `display_name`, likewise
/// descriptions), trimmed; `Some(None)` when the field is present but null.
pub fn renamed(map: &Map<String, Value>, new: &str, legacy: &str) -> Option<Option<String>> {
    if map.contains_key(new) {
        Some(trimmed(map, new))
    } else if map.contains_key(legacy) {
        Some(trimmed(map, legacy))
    } else {
        None
    }
}

/// The string values of an object (metadata, specs); other values, nulls
/// among them, set nothing.
pub fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The status of a `{action: {"status": …}}` reset action, validated
/// against `format` and parsed lower-cased.
///
/// # Errors
/// 400 from the schema, or `invalid` when the status does not parse.
pub fn reset_status<S: std::str::FromStr>(
    req: &Req,
    action: &'static str,
    format: Format,
    invalid: &'static str,
) -> ApiResult<S> {
    let inner = body_of("status", of(&[JsonType::String]).format(format));
    let body = req.body_value();
    validation::validate(&body_of(action, inner), &body)?;
    body.get(action)
        .and_then(|args| args.get("status"))
        .and_then(Value::as_str)
        .map(str::to_lowercase)
        .and_then(|s| s.parse::<S>().ok())
        .ok_or_else(|| ApiError::bad_request(invalid))
}
