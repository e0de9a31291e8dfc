//! Cinder's `api/validation/parameter_types.py`: the field schemas its
//! request schemas are built from.

use serde_json::Value;

use super::oslo::{FALSE_STRINGS, TRUE_STRINGS};
use super::{DB_MAX_INT, Format, JsonType, Pattern, Schema, any, object, of};

/// `name_allow_zero_min_length`: string or null, at most 255.
pub fn name_allow_zero_min_length() -> Schema {
    of(&[JsonType::String, JsonType::Null]).length(Some(0), Some(255))
}

/// `nullable_string`.
pub fn nullable_string() -> Schema {
    name_allow_zero_min_length()
}

/// `description`: string or null, at most 255, printable.
pub fn description() -> Schema {
    of(&[JsonType::String, JsonType::Null])
        .length(Some(0), Some(255))
        .pattern(Pattern::Printable)
}

/// The string-or-null name/description fields of volumes, checked by
/// their format only.
pub fn trimmed_text(format: Format) -> Schema {
    of(&[JsonType::String, JsonType::Null]).format(format)
}

/// `boolean`: a JSON boolean or one of oslo's boolean strings.
pub fn boolean() -> Schema {
    let mut values: Vec<Value> = vec![Value::Bool(true)];
    values.extend(TRUE_STRINGS.iter().map(|s| Value::String((*s).to_owned())));
    values.push(Value::Bool(false));
    values.extend(FALSE_STRINGS.iter().map(|s| Value::String((*s).to_owned())));
    of(&[JsonType::Boolean, JsonType::String]).one_value_of(values)
}

/// `optional_boolean`.
pub fn optional_boolean() -> Schema {
    any().one_of(vec![of(&[JsonType::Null]), boolean()])
}

/// `uuid`.
pub fn uuid() -> Schema {
    of(&[JsonType::String]).format(Format::Uuid)
}

/// `optional_uuid` / `uuid_allow_null`.
pub fn optional_uuid() -> Schema {
    any().one_of(vec![of(&[JsonType::Null]), uuid()])
}

/// `volume_size` (and with `nullable`, `volume_size_allows_null`).
pub fn volume_size(nullable: bool) -> Schema {
    let types: &[JsonType] = if nullable {
        &[JsonType::Integer, JsonType::String, JsonType::Null]
    } else {
        &[JsonType::Integer, JsonType::String]
    };
    of(types)
        .pattern(Pattern::Digits)
        .range(Some(1), Some(DB_MAX_INT))
}

/// `extra_specs`: keys `^[a-zA-Z0-9-_:. /]{1,255}$`, string values ≤ 255.
pub fn extra_specs() -> Schema {
    object()
        .pattern_props(
            Pattern::SpecKey,
            of(&[JsonType::String]).length(None, Some(255)),
        )
        .closed()
}

/// `metadata_allows_null`.
pub fn metadata_allows_null() -> Schema {
    let mut schema = extra_specs();
    schema.types = vec![JsonType::Object, JsonType::Null];
    schema
}

/// `availability_zone`.
pub fn availability_zone() -> Schema {
    of(&[JsonType::String, JsonType::Null]).length(Some(1), Some(255))
}
