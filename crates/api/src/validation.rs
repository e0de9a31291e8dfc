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
        }
    }
}

/// Cinder's `VolumeStatus.ALL`, in its order (shown in messages).
pub const VOLUME_STATUSES: &[&str] = &[
    "creating",
    "available",
    "deleting",
    "error",
    "error_deleting",
    "error_managing",
    "managing",
    "attaching",
    "in-use",
    "detaching",
    "maintenance",
    "restoring-backup",
    "error_restoring",
    "reserved",
    "awaiting-transfer",
    "backing-up",
    "error_backing-up",
    "error_extending",
    "downloading",
    "uploading",
    "retyping",
    "extending",
];

/// Cinder's `SnapshotStatus.ALL`, in its order.
pub const SNAPSHOT_STATUSES: &[&str] = &[
    "error",
    "available",
    "creating",
    "deleting",
    "deleted",
    "updating",
    "error_deleting",
    "unmanaging",
    "backing-up",
    "restoring",
];

/// Cinder's `VolumeMigrationStatus.ALL`, in its order.
pub const MIGRATION_STATUSES: &[&str] = &[
    "migrating",
    "error",
    "success",
    "completing",
    "none",
    "starting",
];

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

/// `{'type': 'object'}`.
pub fn object() -> Schema {
    of(&[JsonType::Object])
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
}

// ---------------------------------------------------------------------------
// Cinder's `parameter_types`.

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

fn check_format(format: Format, value: &Value, path: &[String]) -> Result<(), Violation> {
    let text = value.as_str();
    let fail = || {
        violation(
            path,
            value,
            format!("{} is not a '{}'", py_repr(value), format.name()),
        )
    };
    let raise = |message: String| Violation::Raised(ApiError::bad_request(message));
    match format {
        Format::Uuid => match text {
            Some(t) if is_uuid_like(t) => Ok(()),
            Some(_) => Err(fail()),
            // Non-strings are caught by the type check first.
            None => Ok(()),
        },
        Format::Name => {
            let reason = match text {
                None | Some("") => Some("The 'name' can not be None."),
                Some(t) if t.trim().is_empty() => Some("The 'name' can not be empty."),
                Some(_) => None,
            };
            match reason {
                Some(reason) => Err(raise(format!(
                    "An invalid 'name' value was provided. {reason}"
                ))),
                None => Ok(()),
            }
        }
        Format::NameNonMandatory | Format::DescriptionNonMandatory => {
            let entity = if format == Format::NameNonMandatory {
                "name"
            } else {
                "description"
            };
            match text {
                Some(t) if !t.is_empty() => {
                    check_string_length(t.trim(), entity, 0, 255).map_err(Violation::Raised)
                }
                _ => Ok(()),
            }
        }
        Format::DisabledReason => match text {
            Some(t) if !t.is_empty() => {
                check_string_length(t.trim(), "disabled_reason", 1, 255).map_err(Violation::Raised)
            }
            _ => Ok(()),
        },
        Format::VolumeStatus => match text {
            Some(t) if !t.is_empty() && !VOLUME_STATUSES.contains(&t.to_lowercase().as_str()) => {
                Err(raise(format!(
                    "Volume status: {t} is invalid, valid statuses are: {}.",
                    py_tuple(VOLUME_STATUSES)
                )))
            }
            _ => Ok(()),
        },
        Format::VolumeAttachStatus => match text {
            Some(t)
                if !t.is_empty()
                    && !["attached", "detached"].contains(&t.to_lowercase().as_str()) =>
            {
                Err(raise(format!(
                    "Volume attach status: {t} is invalid, valid statuses are: ['attached', 'detached']."
                )))
            }
            _ => Ok(()),
        },
        Format::VolumeMigrationStatus => match text {
            Some(t)
                if !t.is_empty() && !MIGRATION_STATUSES.contains(&t.to_lowercase().as_str()) =>
            {
                Err(raise(format!(
                    "Volume migration status: {t} is invalid, valid statuses are: {}.",
                    py_tuple(MIGRATION_STATUSES)
                )))
            }
            _ => Ok(()),
        },
        Format::SnapshotStatus => {
            let ok = text.is_some_and(|t| SNAPSHOT_STATUSES.contains(&t.to_lowercase().as_str()));
            if ok {
                Ok(())
            } else {
                Err(raise(format!(
                    "Snapshot status: {} is invalid, valid statuses are: {}.",
                    py_str(value),
                    py_tuple(SNAPSHOT_STATUSES)
                )))
            }
        }
        Format::Progress => {
            let Some(progress) = text.filter(|t| !t.is_empty()) else {
                return Ok(());
            };
            let (number, last) = progress
                .split_at(progress.len() - progress.chars().last().map_or(0, char::len_utf8));
            match number.trim().parse::<i64>() {
                Err(_) => Err(Violation::Raised(ApiError::invalid_input(
                    "progress must be an integer percentage",
                ))),
                Ok(n) if !(0..=100).contains(&n) || last != "%" => {
                    Err(Violation::Raised(ApiError::invalid_input(
                        "progress must be an integer percentage between 0 and 100",
                    )))
                }
                Ok(_) => Ok(()),
            }
        }
        Format::VolumeResetBody => {
            let has = |key: &str| {
                value
                    .get(key)
                    .is_some_and(|v| !(v.is_null() || v.as_str() == Some("")))
            };
            if has("status") || has("attach_status") || has("migration_status") {
                Ok(())
            } else {
                Err(raise(
                    "Must specify 'status', 'attach_status' or 'migration_status' for update."
                        .to_owned(),
                ))
            }
        }
    }
}

/// oslo's `uuidutils.is_uuid_like`.
pub fn is_uuid_like(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok()
}

/// Cinder's `utils.check_string_length` ("Invalid input received: name has
/// 256 characters, more than 255.").
///
/// # Errors
/// 400 when out of bounds.
pub fn check_string_length(text: &str, name: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let length = text.chars().count();
    if length < min {
        return Err(ApiError::invalid_input(format!(
            "{name} has {length} characters, less than {min}."
        )));
    }
    if length > max {
        return Err(ApiError::invalid_input(format!(
            "{name} has {length} characters, more than {max}."
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// oslo's string helpers.

const TRUE_STRINGS: &[&str] = &[
    "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes", "y", "t",
];
const FALSE_STRINGS: &[&str] = &[
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

// ---------------------------------------------------------------------------
// Python renderings, because Cinder's messages embed them.

/// Python's `repr()` of a decoded JSON value.
pub fn py_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => py_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => py_str_repr(s),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", py_str_repr(k), py_repr(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

/// Python's `str()` of a decoded JSON value (strings unquoted).
pub fn py_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

fn py_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// Python's `repr()` of a string.
pub fn py_str_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `repr()` of a tuple of strings.
pub fn py_tuple(items: &[&str]) -> String {
    let parts: Vec<String> = items.iter().map(|s| py_str_repr(s)).collect();
    format!("({})", parts.join(", "))
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
        let schema = object()
            .prop("volume", object().prop("name", any()).closed())
            .required(&["volume"])
            .closed();
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
