//! Cinder's custom `format` checkers (`api/validation/validators.py`) and
//! the string checks they share.

use serde_json::Value;

use super::{Format, Violation, py_repr, py_str, py_tuple, violation};
use crate::fault::ApiError;

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

/// Cinder's `GroupStatus.ALL`, in its order (shown in messages).
pub const GROUP_STATUSES: &[&str] = &[
    "error",
    "available",
    "creating",
    "deleting",
    "deleted",
    "updating",
    "in-use",
    "error_deleting",
];

/// Cinder's `GroupSnapshotStatus.ALL`, in its order.
pub const GROUP_SNAPSHOT_STATUSES: &[&str] = &[
    "error",
    "available",
    "creating",
    "deleting",
    "deleted",
    "updating",
    "error_deleting",
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

pub(super) fn check_format(
    format: Format,
    value: &Value,
    path: &[String],
) -> Result<(), Violation> {
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
        Format::GroupType => match text {
            // Cinder's checker raises, and its format checker turns any of
            // its errors into the generic "is not a 'group_type'".
            Some(t)
                if t.is_empty() || check_string_length(t.trim(), "group_type", 1, 255).is_err() =>
            {
                Err(fail())
            }
            _ => Ok(()),
        },
        Format::AvailabilityZone => match text {
            Some("") => Err(raise("The 'availability_zone' can not be None.".to_owned())),
            Some(t) => check_string_length(t.trim(), "availability_zone", 1, 255)
                .map_err(Violation::Raised),
            None => Ok(()),
        },
        Format::GroupStatus => match text {
            Some(t) if t.trim().is_empty() => Err(raise(
                "Invalid Group Status: The 'status' can not be empty.".to_owned(),
            )),
            // Cinder checks against the group snapshot statuses but lists
            // the group statuses, so `in-use` is refused though listed.
            Some(t) if !GROUP_SNAPSHOT_STATUSES.contains(&t.to_lowercase().as_str()) => {
                Err(raise(format!(
                    "Invalid Group Status: Group status: {t} is invalid, valid status are: {}.",
                    py_tuple(GROUP_STATUSES)
                )))
            }
            _ => Ok(()),
        },
        Format::GroupSnapshotStatus => match text {
            Some(t) if t.trim().is_empty() => Err(raise(
                "Invalid GroupSnapshot Status: The 'status' can not be empty.".to_owned(),
            )),
            Some(t) if !GROUP_SNAPSHOT_STATUSES.contains(&t.to_lowercase().as_str()) => {
                Err(raise(format!(
                    "Invalid GroupSnapshot Status: Group snapshot status: {t} is invalid, valid statuses are: {}.",
                    py_tuple(GROUP_SNAPSHOT_STATUSES)
                )))
            }
            _ => Ok(()),
        },
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
