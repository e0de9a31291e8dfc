//! oslo's string helpers Cinder's API relies on (`strutils`): booleans and
//! integers from request text, with oslo's messages.

use serde_json::Value;

use crate::fault::ApiError;

pub(super) const TRUE_STRINGS: &[&str] = &[
    "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes", "y", "t",
];
pub(super) const FALSE_STRINGS: &[&str] = &[
    "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no", "n", "f",
];

/// oslo's `strutils.bool_from_string(value, strict=True)` for a JSON value:
/// `None` when it is not a recognised boolean.
pub fn bool_from_value(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => bool_from_str(s),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// oslo's strict boolean strings (case-insensitive, trimmed).
pub fn bool_from_str(text: &str) -> Option<bool> {
    let lowered = text.trim().to_lowercase();
    match lowered.as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// Cinder's `utils.get_bool_param` on a query parameter.
///
/// # Errors
/// 400 "Value 'x' for 'name' is not a boolean."
pub fn bool_param(name: &str, value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None => Ok(false),
        Some(text) => bool_from_str(text).ok_or_else(|| {
            ApiError::bad_request(format!("Value '{text}' for '{name}' is not a boolean."))
        }),
    }
}

/// oslo's `strutils.validate_integer` (messages "x must be an integer",
/// "x must be >= n", "x must be <= n").
///
/// # Errors
/// 400 with the oslo text.
pub fn validate_integer(value: &Value, name: &str, min: i64, max: i64) -> Result<i64, ApiError> {
    let parsed = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    };
    let Some(number) = parsed else {
        return Err(ApiError::bad_request(format!("{name} must be an integer")));
    };
    if number < min {
        return Err(ApiError::bad_request(format!("{name} must be >= {min}")));
    }
    if number > max {
        return Err(ApiError::bad_request(format!("{name} must be <= {max}")));
    }
    Ok(number)
}
