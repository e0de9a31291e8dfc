//! Request-body validation with Cinder's error texts.
//!
//! Cinder validates bodies with JSON-Schema (Draft 4, `api/schemas/*.py`,
//! `api/validation/`) and shows the validator's message, e.g. "Invalid
//! input for field/attribute size. Value: 0. 0 is less than the minimum of
//! 1". [`Schema`] is the subset of JSON-Schema those schemas use, evaluated
//! keyword by keyword in the order Cinder's schemas declare them, so the
//! first error reported is the one Cinder reports. Values in messages are
//! rendered as Python would (`repr`/`str`), since that is what clients see
//! from Cinder.

use serde_json::Value;

use crate::fault::ApiError;

mod formats;
mod oslo;
mod params;
mod python;

use formats::check_format;
pub use formats::{
    GROUP_SNAPSHOT_STATUSES, GROUP_STATUSES, MIGRATION_STATUSES, SNAPSHOT_STATUSES,
    VOLUME_STATUSES, check_string_length, is_uuid_like,
};
pub use oslo::{bool_from_str, bool_from_value, bool_param, validate_integer};
pub use params::*;
use python::py_float;
pub use python::{py_repr, py_str, py_str_repr, py_tuple};

/// Cinder's `DB_MAX_INT`, the largest size or quota a request may carry.
pub const DB_MAX_INT: i64 = 0x7FFF_FFFF;

/// A JSON type name as JSON-Schema spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonType {
    /// `object`.
    Object,
    /// `array`.
    Array,
    /// `string`.
    String,
    /// `integer` (not a float, not a boolean).
    Integer,
    /// `number`.
    Number,
    /// `boolean`.
    Boolean,
    /// `null`.
    Null,
}

impl JsonType {
    fn name(self) -> &'static str {
        match self {
            JsonType::Object => "object",
            JsonType::Array => "array",
            JsonType::String => "string",
            JsonType::Integer => "integer",
            JsonType::Number => "number",
            JsonType::Boolean => "boolean",
            JsonType::Null => "null",
        }
    }

    fn accepts(self, value: &Value) -> bool {
        match self {
            JsonType::Object => value.is_object(),
            JsonType::Array => value.is_array(),
            JsonType::String => value.is_string(),
            JsonType::Integer => value.is_i64() || value.is_u64(),
            JsonType::Number => value.is_number(),
            JsonType::Boolean => value.is_boolean(),
            JsonType::Null => value.is_null(),
        }
    }
}

/// The regular expressions Cinder's schemas use, matched by hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// `^[0-9]+$`.
    Digits,
    /// `^[0-9]*$`.
    DigitsOrEmpty,
    /// `^[a-zA-Z0-9-_:. /]{1,255}$` (extra spec and metadata keys).
    SpecKey,
    /// `^[a-zA-Z0-9-_:.]{1,255}$` (extra spec keys without spaces).
    SpecKeyNoSpaces,
    /// `^[a-zA-Z0-9-_:. ]{1,255}$` (snapshot metadata keys).
    SnapshotMetaKey,
    /// `^[a-zA-Z0-9-._#@:/+\[\]]*$` (a `host@backend#pool`).
    CinderHost,
    /// Printable characters only (descriptions).
    Printable,
    /// Keys of a quota class set, `^[a-zA-Z0-9-_:. ]{1,300}$`.
    QuotaKey,
}

impl Pattern {
    fn source(self) -> &'static str {
        match self {
            Pattern::Digits => "^[0-9]+$",
            Pattern::DigitsOrEmpty => "^[0-9]*$",
            Pattern::SpecKey => "^[a-zA-Z0-9-_:. /]{1,255}$",
            Pattern::SpecKeyNoSpaces => "^[a-zA-Z0-9-_:.]{1,255}$",
            Pattern::SnapshotMetaKey => "^[a-zA-Z0-9-_:. ]{1,255}$",
            Pattern::CinderHost => "^[a-zA-Z0-9-._#@:/+\\[\\]]*$",
            Pattern::Printable => "^[printable]*$",
            Pattern::QuotaKey => "^[a-zA-Z0-9-_:. ]{1,300}$",
        }
    }

    /// Whether `text` matches.
    pub fn matches(self, text: &str) -> bool {
        let count = text.chars().count();
        let all = |extra: &str| {
            text.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
        };
        match self {
            Pattern::Digits => count > 0 && text.bytes().all(|b| b.is_ascii_digit()),
            Pattern::DigitsOrEmpty => text.bytes().all(|b| b.is_ascii_digit()),
            Pattern::SpecKey => (1..=255).contains(&count) && all("-_:. /"),
            Pattern::SpecKeyNoSpaces => (1..=255).contains(&count) && all("-_:."),
            Pattern::SnapshotMetaKey => (1..=255).contains(&count) && all("-_:. "),
            Pattern::QuotaKey => (1..=300).contains(&count) && all("-_:. "),
            Pattern::CinderHost => all("-._#@:/+[]"),
            Pattern::Printable => text.chars().all(is_printable),
        }
    }
}

/// Cinder's `_is_printable`: no control/format/unassigned characters and no
/// separators other than the plain space class.
fn is_printable(c: char) -> bool {
    !(c.is_control() || c == '\u{2028}' || c == '\u{2029}' || c == '\u{feff}')
}

/// The `format` checkers Cinder registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `uuid`: a UUID in any form oslo accepts.
    Uuid,
    /// `name`: a mandatory, non-blank name.
    Name,
    /// `name_non_mandatory_remove_white_spaces`: at most 255 characters
    /// once trimmed.
    NameNonMandatory,
    /// `description_non_mandatory_remove_white_spaces`.
    DescriptionNonMandatory,
    /// `disabled_reason`: 1–255 characters once trimmed.
    DisabledReason,
    /// `volume_status`.
    VolumeStatus,
    /// `volume_attach_status`.
    VolumeAttachStatus,
    /// `volume_migration_status`.
    VolumeMigrationStatus,
    /// `snapshot_status`.
    SnapshotStatus,
    /// `progress`: an integer percentage.
    Progress,
    /// `validate_volume_reset_body`: at least one of the three statuses.
    VolumeResetBody,
    /// `group_type`: 1–255 characters once trimmed.
    GroupType,
    /// `availability_zone`: null, or 1–255 characters once trimmed.
    AvailabilityZone,
    /// `group_status` (checked against Cinder's group snapshot statuses,
    /// as Cinder does).
    GroupStatus,
    /// `group_snapshot_status`.
    GroupSnapshotStatus,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Uuid => "uuid",
            Format::Name => "name",
            Format::NameNonMandatory => "name_non_mandatory_remove_white_spaces",
            Format::DescriptionNonMandatory => "description_non_mandatory_remove_white_spaces",
            Format::DisabledReason => "disabled_reason",
            Format::VolumeStatus => "volume_status",
            Format::VolumeAttachStatus => "volume_attach_status",
            Format::VolumeMigrationStatus => "volume_migration_status",
            Format::SnapshotStatus => "snapshot_status",
            Format::Progress => "progress",
            Format::VolumeResetBody => "validate_volume_reset_body",
            Format::GroupType => "group_type",
            Format::AvailabilityZone => "availability_zone",
            Format::GroupStatus => "group_status",
            Format::GroupSnapshotStatus => "group_snapshot_status",
        }
    }
}

/// A subset of JSON-Schema, built with the constructor functions below.
#[derive(Clone, Debug, Default)]
pub struct Schema {
    types: Vec<JsonType>,
    enumeration: Option<Vec<Value>>,
    pattern: Option<Pattern>,
    min_length: Option<usize>,
    max_length: Option<usize>,
    minimum: Option<i64>,
    maximum: Option<i64>,
    format: Option<Format>,
    one_of: Vec<Schema>,
    properties: Vec<(&'static str, Schema)>,
    pattern_properties: Option<(Pattern, Box<Schema>)>,
    additional_properties: Option<bool>,
    required: Vec<&'static str>,
    any_of_required: Vec<&'static str>,
    min_properties: Option<usize>,
    max_properties: Option<usize>,
    items: Option<Box<Schema>>,
    min_items: Option<usize>,
    unique_items: bool,
}

/// A schema accepting anything (`{}`).
pub fn any() -> Schema {
    Schema::default()
}

/// A schema of the given types.
pub fn of(types: &[JsonType]) -> Schema {
    Schema {
        types: types.to_vec(),
        ..Schema::default()
    }
}

/// Cinder's `name_skip_leading_trailing_spaces` format: the trimmed name.
///
/// # Errors
/// 400 "An invalid 'name' value was provided. …" for an empty, blank or
/// too long name.
pub fn checked_name(raw: &str) -> Result<String, ApiError> {
    let reason = if raw.is_empty() {
        "The 'name' can not be None."
    } else if raw.trim().is_empty() {
        "The 'name' can not be empty."
    } else if raw.trim().chars().count() > 255 {
        "The 'name' can not be greater than 255 characters."
    } else {
        return Ok(raw.trim().to_owned());
    };
    Err(ApiError::bad_request(format!(
        "An invalid 'name' value was provided. {reason}"
    )))
}

/// `{'type': 'object'}`.
pub fn object() -> Schema {
    of(&[JsonType::Object])
}

/// `{key: inner}` with `key` required and nothing else allowed: the shape
/// of every resource body (`{"volume": …}`) and action body.
pub fn body_of(key: &'static str, inner: Schema) -> Schema {
    object().prop(key, inner).required(&[key]).closed()
}

impl Schema {
    /// Adds a property.
    pub fn prop(mut self, name: &'static str, schema: Schema) -> Self {
        self.properties.push((name, schema));
        self
    }

    /// Requires properties.
    pub fn required(mut self, names: &[&'static str]) -> Self {
        self.required.extend_from_slice(names);
        self
    }

    /// `additionalProperties: False`.
    pub fn closed(mut self) -> Self {
        self.additional_properties = Some(false);
        self
    }

    /// `patternProperties` with one pattern.
    pub fn pattern_props(mut self, pattern: Pattern, schema: Schema) -> Self {
        self.pattern_properties = Some((pattern, Box::new(schema)));
        self
    }

    /// `anyOf: [{required: [a]}, {required: [b]}, …]`.
    pub fn any_of_required(mut self, names: &[&'static str]) -> Self {
        self.any_of_required.extend_from_slice(names);
        self
    }

    /// `minProperties` / `maxProperties`.
    pub fn properties_count(mut self, min: Option<usize>, max: Option<usize>) -> Self {
        self.min_properties = min;
        self.max_properties = max;
        self
    }

    /// `minLength` / `maxLength`.
    pub fn length(mut self, min: Option<usize>, max: Option<usize>) -> Self {
        self.min_length = min;
        self.max_length = max;
        self
    }

    /// `minimum` / `maximum` (also applied to numeric strings, as Cinder's
    /// relaxed validator does).
    pub fn range(mut self, min: Option<i64>, max: Option<i64>) -> Self {
        self.minimum = min;
        self.maximum = max;
        self
    }

    /// `pattern`.
    pub fn pattern(mut self, pattern: Pattern) -> Self {
        self.pattern = Some(pattern);
        self
    }

    /// `format`.
    pub fn format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }

    /// `enum`.
    pub fn one_value_of(mut self, values: Vec<Value>) -> Self {
        self.enumeration = Some(values);
        self
    }

    /// `oneOf`.
    pub fn one_of(mut self, schemas: Vec<Schema>) -> Self {
        self.one_of = schemas;
        self
    }

    /// `items` (one schema for every element), `minItems` and
    /// `uniqueItems` of an array.
    pub fn array_of(mut self, items: Schema, min_items: Option<usize>, unique: bool) -> Self {
        self.items = Some(Box::new(items));
        self.min_items = min_items;
        self.unique_items = unique;
        self
    }
}

// ---------------------------------------------------------------------------
// Evaluation.

/// A schema violation before it is turned into Cinder's message.
enum Violation {
    /// A JSON-Schema error at `path` about `instance`.
    Schema {
        path: Vec<String>,
        instance: Value,
        message: String,
    },
    /// A format checker raised its own error (shown as is).
    Raised(ApiError),
}

/// Validates `value` against `schema`, answering Cinder's 400 texts.
///
/// # Errors
/// The first violation, as Cinder words it.
pub fn validate(schema: &Schema, value: &Value) -> Result<(), ApiError> {
    let mut path = Vec::new();
    match check(schema, value, &mut path) {
        Ok(()) => Ok(()),
        Err(Violation::Raised(err)) => Err(err),
        Err(Violation::Schema {
            mut path,
            instance,
            message,
        }) => Err(ApiError::bad_request(match path.pop() {
            Some(field) => format!(
                "Invalid input for field/attribute {field}. Value: {}. {message}",
                py_str(&instance)
            ),
            None => message,
        })),
    }
}

/// Refuses a NUL character in any string of a request body (values and
/// object keys) or of its query, before anything reaches the database.
///
/// JSON-Schema accepts NUL, so Cinder's answer depended on its database:
/// MySQL stored it, PostgreSQL failed with a 500. One answer on every
/// engine: a 400 naming the field as Cinder's validation errors do.
///
/// # Errors
/// The first field holding a NUL character.
pub fn refuse_nul_characters(
    body: Option<&Value>,
    query: &[(String, String)],
) -> Result<(), ApiError> {
    fn first_nul<'a>(value: &'a Value, field: &'a str) -> Option<(&'a str, Value)> {
        match value {
            Value::String(s) if s.contains('\0') => Some((field, value.clone())),
            Value::Array(items) => items.iter().find_map(|v| first_nul(v, field)),
            Value::Object(map) => map.iter().find_map(|(k, v)| {
                if k.contains('\0') {
                    Some((field, Value::String(k.clone())))
                } else {
                    first_nul(v, k)
                }
            }),
            _ => None,
        }
    }
    let in_query = query.iter().find_map(|(k, v)| {
        (k.contains('\0') || v.contains('\0')).then(|| (k.as_str(), Value::String(v.clone())))
    });
    let found = in_query.or_else(|| body.and_then(|b| first_nul(b, "body")));
    match found {
        None => Ok(()),
        Some((field, value)) => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {field}. Value: {}. Null characters are not allowed.",
            py_repr(&value)
        ))),
    }
}

fn violation(path: &[String], instance: &Value, message: String) -> Violation {
    Violation::Schema {
        path: path.to_vec(),
        instance: instance.clone(),
        message,
    }
}

fn numeric(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<i64>().ok().map(|i| i as f64).or_else(|| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && !s.trim().eq_ignore_ascii_case("nan"))
        }),
        _ => None,
    }
}

fn numeric_repr(value: &Value) -> String {
    match value {
        Value::String(s) => match s.trim().parse::<i64>() {
            Ok(i) => i.to_string(),
            Err(_) => py_float(s.trim().parse::<f64>().unwrap_or(0.0)),
        },
        other => py_repr(other),
    }
}

fn check(schema: &Schema, value: &Value, path: &mut Vec<String>) -> Result<(), Violation> {
    if !schema.types.is_empty() && !schema.types.iter().any(|t| t.accepts(value)) {
        let names: Vec<String> = schema
            .types
            .iter()
            .map(|t| format!("'{}'", t.name()))
            .collect();
        return Err(violation(
            path,
            value,
            format!("{} is not of type {}", py_repr(value), names.join(", ")),
        ));
    }
    if let Some(values) = &schema.enumeration
        && !values.iter().any(|v| v == value)
    {
        let listed: Vec<String> = values.iter().map(py_repr).collect();
        return Err(violation(
            path,
            value,
            format!("{} is not one of [{}]", py_repr(value), listed.join(", ")),
        ));
    }
    if let Value::String(text) = value {
        if let Some(pattern) = schema.pattern
            && !pattern.matches(text)
        {
            return Err(violation(
                path,
                value,
                format!("{} does not match '{}'", py_repr(value), pattern.source()),
            ));
        }
        let count = text.chars().count();
        if let Some(min) = schema.min_length
            && count < min
        {
            let what = if min == 1 {
                "should be non-empty"
            } else {
                "is too short"
            };
            return Err(violation(path, value, format!("{} {what}", py_repr(value))));
        }
        if let Some(max) = schema.max_length
            && count > max
        {
            return Err(violation(
                path,
                value,
                format!("{} is too long", py_repr(value)),
            ));
        }
    }
    if schema.minimum.is_some() || schema.maximum.is_some() {
        // Cinder's validator compares numeric strings as numbers too.
        if let Some(number) = numeric(value).filter(|_| !value.is_boolean()) {
            if let Some(min) = schema.minimum
                && number < min as f64
            {
                return Err(violation(
                    path,
                    value,
                    format!("{} is less than the minimum of {min}", numeric_repr(value)),
                ));
            }
            if let Some(max) = schema.maximum
                && number > max as f64
            {
                return Err(violation(
                    path,
                    value,
                    format!(
                        "{} is greater than the maximum of {max}",
                        numeric_repr(value)
                    ),
                ));
            }
        }
    }
    if let Some(format) = schema.format {
        check_format(format, value, path)?;
    }
    if !schema.one_of.is_empty() {
        let valid = schema
            .one_of
            .iter()
            .filter(|s| check(s, value, &mut Vec::new()).is_ok())
            .count();
        if valid != 1 {
            return Err(violation(
                path,
                value,
                format!(
                    "{} is not valid under any of the given schemas",
                    py_repr(value)
                ),
            ));
        }
    }
    if let Value::Array(items) = value {
        // jsonschema's order for Cinder's array schemas: minItems, items,
        // uniqueItems.
        if let Some(min) = schema.min_items
            && items.len() < min
        {
            return Err(violation(
                path,
                value,
                format!("{} is too short", py_repr(value)),
            ));
        }
        if let Some(sub) = &schema.items {
            for (index, item) in items.iter().enumerate() {
                path.push(index.to_string());
                check(sub, item, path)?;
                path.pop();
            }
        }
        if schema.unique_items
            && items
                .iter()
                .enumerate()
                .any(|(i, a)| items[..i].contains(a))
        {
            return Err(violation(
                path,
                value,
                format!("{} has non-unique elements", py_repr(value)),
            ));
        }
    }
    if let Value::Object(map) = value {
        for (name, sub) in &schema.properties {
            if let Some(child) = map.get(*name) {
                path.push((*name).to_owned());
                check(sub, child, path)?;
                path.pop();
            }
        }
        if let Some((pattern, sub)) = &schema.pattern_properties {
            for (key, child) in map {
                if pattern.matches(key) {
                    path.push(key.clone());
                    check(sub, child, path)?;
                    path.pop();
                }
            }
        }
        for name in &schema.required {
            if !map.contains_key(*name) {
                return Err(violation(
                    path,
                    value,
                    format!("'{name}' is a required property"),
                ));
            }
        }
        if schema.additional_properties == Some(false) {
            let extras: Vec<&String> = map
                .keys()
                .filter(|k| !schema.properties.iter().any(|(p, _)| p == k))
                .filter(|k| {
                    !schema
                        .pattern_properties
                        .as_ref()
                        .is_some_and(|(p, _)| p.matches(k))
                })
                .collect();
            if !extras.is_empty() {
                let joined: Vec<String> = extras.iter().map(|k| py_str_repr(k)).collect();
                let message = match &schema.pattern_properties {
                    Some((pattern, _)) => format!(
                        "{} {} not match any of the regexes: '{}'",
                        joined.join(", "),
                        if extras.len() == 1 { "does" } else { "do" },
                        pattern.source()
                    ),
                    None => format!(
                        "Additional properties are not allowed ({} {} unexpected)",
                        joined.join(", "),
                        if extras.len() == 1 { "was" } else { "were" }
                    ),
                };
                return Err(violation(path, value, message));
            }
        }
        if !schema.any_of_required.is_empty()
            && !schema
                .any_of_required
                .iter()
                .any(|name| map.contains_key(*name))
        {
            return Err(violation(
                path,
                value,
                format!(
                    "{} is not valid under any of the given schemas",
                    py_repr(value)
                ),
            ));
        }
        if let Some(min) = schema.min_properties
            && map.len() < min
        {
            let what = if min == 1 {
                "should be non-empty"
            } else {
                "does not have enough properties"
            };
            return Err(violation(path, value, format!("{} {what}", py_repr(value))));
        }
        if let Some(max) = schema.max_properties
            && map.len() > max
        {
            return Err(violation(
                path,
                value,
                format!("{} has too many properties", py_repr(value)),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn message(schema: &Schema, value: Value) -> String {
        validate(schema, &value)
            .unwrap_err()
            .user_message()
            .to_owned()
    }

    #[test]
    fn size_messages_match_cinder() {
        let schema = object().prop("size", volume_size(true));
        assert_eq!(
            message(&schema, json!({"size": 0})),
            "Invalid input for field/attribute size. Value: 0. 0 is less than the minimum of 1"
        );
        assert_eq!(
            message(&schema, json!({"size": -1})),
            "Invalid input for field/attribute size. Value: -1. -1 is less than the minimum of 1"
        );
        assert_eq!(
            message(&schema, json!({"size": "abc"})),
            "Invalid input for field/attribute size. Value: abc. 'abc' does not match '^[0-9]+$'"
        );
        assert_eq!(
            message(&schema, json!({"size": 1.5})),
            "Invalid input for field/attribute size. Value: 1.5. 1.5 is not of type 'integer', 'string', 'null'"
        );
        assert_eq!(
            message(&schema, json!({"size": 9_223_372_036_854_775_808_u64})),
            "Invalid input for field/attribute size. Value: 9223372036854775808. 9223372036854775808 is greater than the maximum of 2147483647"
        );
        assert!(validate(&schema, &json!({"size": "10"})).is_ok());
        assert!(validate(&schema, &json!({"size": null})).is_ok());
    }

    #[test]
    fn additional_properties_and_required() {
        let schema = body_of("volume", object().prop("name", any()).closed());
        assert_eq!(
            message(&schema, json!({})),
            "'volume' is a required property"
        );
        assert_eq!(
            message(&schema, json!({"volume": {"name": "a", "foo": 1}})),
            "Invalid input for field/attribute volume. Value: {'foo': 1, 'name': 'a'}. Additional properties are not allowed ('foo' was unexpected)"
        );
        assert_eq!(
            message(&schema, json!({"volume": {}, "x": 1})),
            "Additional properties are not allowed ('x' was unexpected)"
        );
    }

    #[test]
    fn metadata_keys_and_values() {
        let schema = object().prop("metadata", metadata_allows_null());
        assert!(validate(&schema, &json!({"metadata": {"a b:c": "v"}})).is_ok());
        assert!(
            message(&schema, json!({"metadata": {"k": 1}})).ends_with("1 is not of type 'string'")
        );
        assert!(
            message(&schema, json!({"metadata": {"k@": "v"}}))
                .contains("'k@' does not match any of the regexes")
        );
        let long = "x".repeat(256);
        assert!(message(&schema, json!({"metadata": {"k": long}})).ends_with("is too long"));
    }

    #[test]
    fn formats_raise_cinder_texts() {
        let schema = object().prop("name", trimmed_text(Format::NameNonMandatory));
        assert_eq!(
            message(&schema, json!({"name": "n".repeat(256)})),
            "Invalid input received: name has 256 characters, more than 255."
        );
        assert!(
            validate(
                &schema,
                &json!({"name": format!("  {}  ", "n".repeat(255))})
            )
            .is_ok()
        );
        let schema = object().prop("id", optional_uuid());
        assert_eq!(
            message(&schema, json!({"id": "abc"})),
            "Invalid input for field/attribute id. Value: abc. 'abc' is not valid under any of the given schemas"
        );
    }

    #[test]
    fn booleans_follow_oslo() {
        assert_eq!(bool_from_value(&json!("Yes")), Some(true));
        assert_eq!(bool_from_value(&json!("off")), Some(false));
        assert_eq!(bool_from_value(&json!("maybe")), None);
        assert!(validate(&boolean(), &json!("maybe")).is_err());
        assert!(validate(&boolean(), &json!(true)).is_ok());
        assert_eq!(
            bool_param("with_count", Some("x"))
                .unwrap_err()
                .user_message(),
            "Value 'x' for 'with_count' is not a boolean."
        );
    }

    #[test]
    fn python_reprs() {
        assert_eq!(
            py_repr(&json!({"a": [1, null, true, "it's"]})),
            "{'a': [1, None, True, \"it's\"]}"
        );
        assert_eq!(py_repr(&json!(2.0)), "2.0");
    }
}
