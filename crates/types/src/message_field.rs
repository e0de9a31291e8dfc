//! User-message vocabulary (Cinder's `message/message_field.py`): the
//! action and detail codes whose texts form a message's `user_message`
//! (`"<action>:<detail>"`) and `event_id` (`VOLUME_<resource>_<action>_<detail>`).

/// What was being done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Action {
    /// Three-digit code.
    pub id: &'static str,
    /// Text.
    pub text: &'static str,
}

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detail {
    /// Three-digit code.
    pub id: &'static str,
    /// Text.
    pub text: &'static str,
}

/// `SCHEDULE_ALLOCATE_VOLUME`.
pub const SCHEDULE_ALLOCATE_VOLUME: Action = Action {
    id: "001",
    text: "schedule allocate volume",
};
/// `ATTACH_VOLUME`.
pub const ATTACH_VOLUME: Action = Action {
    id: "002",
    text: "attach volume",
};
/// `UPDATE_ATTACHMENT`.
pub const UPDATE_ATTACHMENT: Action = Action {
    id: "004",
    text: "update attachment",
};
/// `EXTEND_VOLUME`.
pub const EXTEND_VOLUME: Action = Action {
    id: "007",
    text: "extend volume",
};
/// `SNAPSHOT_CREATE`.
pub const SNAPSHOT_CREATE: Action = Action {
    id: "009",
    text: "create snapshot",
};
/// `SNAPSHOT_DELETE`.
pub const SNAPSHOT_DELETE: Action = Action {
    id: "010",
    text: "delete snapshot",
};
/// `BACKUP_RESTORE`.
pub const BACKUP_RESTORE: Action = Action {
    id: "015",
    text: "restore backup",
};
/// Clinker: deleting a volume failed on the backend (Cinder has no message
/// for it; operators asked for one).
pub const DELETE_VOLUME: Action = Action {
    id: "017",
    text: "delete volume",
};
/// Clinker: reverting a volume to its latest snapshot failed (Cinder
/// only logs it; the user sees the volume in `error` without a reason).
pub const REVERT_VOLUME: Action = Action {
    id: "101",
    text: "revert volume",
};
/// Clinker: a retype could not be done (Cinder restores the status and
/// logs the reason only).
pub const RETYPE_VOLUME: Action = Action {
    id: "102",
    text: "retype volume",
};

/// Clinker: a volume migration (`os-migrate_volume`, or a retype's) could
/// not be done (Cinder only logs why).
pub const MIGRATE_VOLUME: Action = Action {
    id: "110",
    text: "migrate volume",
};

/// `UNKNOWN_ERROR`.
pub const UNKNOWN_ERROR: Detail = Detail {
    id: "001",
    text: "An unknown error occurred.",
};
/// `DRIVER_NOT_INITIALIZED`.
pub const DRIVER_NOT_INITIALIZED: Detail = Detail {
    id: "002",
    text: "Driver is not initialized at present.",
};
/// `NO_BACKEND_AVAILABLE`.
pub const NO_BACKEND_AVAILABLE: Detail = Detail {
    id: "003",
    text: "Could not find any available weighted backend.",
};
/// `QUOTA_EXCEED`.
pub const QUOTA_EXCEED: Detail = Detail {
    id: "006",
    text: "Not enough quota resource for operation.",
};
/// `DRIVER_FAILED_EXTEND`.
pub const DRIVER_FAILED_EXTEND: Detail = Detail {
    id: "010",
    text: "Volume Driver failed to extend volume.",
};
/// `COPY_VOLUME_TO_IMAGE`.
pub const COPY_VOLUME_TO_IMAGE: Action = Action {
    id: "003",
    text: "copy volume to image",
};
/// `COPY_IMAGE_TO_VOLUME`.
pub const COPY_IMAGE_TO_VOLUME: Action = Action {
    id: "005",
    text: "copy image to volume",
};
/// `REIMAGE_VOLUME`.
pub const REIMAGE_VOLUME: Action = Action {
    id: "016",
    text: "reimage volume",
};
/// `FAILED_TO_UPLOAD_VOLUME`.
pub const FAILED_TO_UPLOAD_VOLUME: Detail = Detail {
    id: "004",
    text: "Failed to upload volume to image at backend.",
};
/// `NOT_ENOUGH_SPACE_FOR_IMAGE`.
pub const NOT_ENOUGH_SPACE_FOR_IMAGE: Detail = Detail {
    id: "007",
    text: "Image used for creating volume exceeds available space.",
};
/// `IMAGE_FORMAT_UNACCEPTABLE`.
pub const IMAGE_FORMAT_UNACCEPTABLE: Detail = Detail {
    id: "029",
    text: "The image disk format must be the same as the volume format for the volume type you are requesting.",
};
/// `DRIVER_FAILED_CREATE`.
pub const DRIVER_FAILED_CREATE: Detail = Detail {
    id: "012",
    text: "Driver failed to create the volume.",
};
/// `VOLUME_ATTACH_MODE_INVALID`.
pub const VOLUME_ATTACH_MODE_INVALID: Detail = Detail {
    id: "005",
    text: "Volume's attach mode is invalid.",
};
/// `ATTACH_ERROR`.
pub const ATTACH_ERROR: Detail = Detail {
    id: "021",
    text: "Failed to attach volume.",
};
/// `DETACH_ERROR`.
pub const DETACH_ERROR: Detail = Detail {
    id: "022",
    text: "Failed to detach volume.",
};
/// `SNAPSHOT_CREATE_ERROR`.
pub const SNAPSHOT_CREATE_ERROR: Detail = Detail {
    id: "013",
    text: "Snapshot failed to create.",
};
/// `SNAPSHOT_IS_BUSY`.
pub const SNAPSHOT_IS_BUSY: Detail = Detail {
    id: "015",
    text: "Snapshot is busy.",
};
/// `SNAPSHOT_DELETE_ERROR`.
pub const SNAPSHOT_DELETE_ERROR: Detail = Detail {
    id: "016",
    text: "Snapshot failed to delete.",
};
/// `VOLUME_INVALID_STATE`.
pub const VOLUME_INVALID_STATE: Detail = Detail {
    id: "027",
    text: "Volume status is invalid.",
};
/// Clinker: the service restarted while the operation was in flight.
pub const SERVICE_RESTARTED: Detail = Detail {
    id: "101",
    text: "The volume service restarted during the operation.",
};
/// Clinker: the request was lost between services and timed out.
pub const REQUEST_LOST: Detail = Detail {
    id: "102",
    text: "The request was not picked up by any service in time.",
};
/// Clinker: the backend failed to delete the volume.
pub const DRIVER_FAILED_DELETE: Detail = Detail {
    id: "103",
    text: "Driver failed to delete the volume.",
};

/// Clinker: the driver failed to revert the volume to the snapshot.
pub const DRIVER_FAILED_REVERT: Detail = Detail {
    id: "104",
    text: "Driver failed to revert the volume to the snapshot.",
};
/// Clinker: the backend cannot revert in place and no generic copy path
/// exists for it; nothing was changed.
pub const REVERT_NOT_SUPPORTED: Detail = Detail {
    id: "105",
    text: "The backend does not support reverting to a snapshot; the volume was not changed.",
};
/// The volume cannot keep its backend under the new type and migrating it
/// was not allowed (Cinder's "Retype requires migration but is not
/// allowed.").
pub const RETYPE_REQUIRES_MIGRATION: Detail = Detail {
    id: "106",
    text: "Retype requires migration but is not allowed.",
};

/// Clinker: the scheduler found that the named destination cannot take
/// the volume (Cinder's "Cannot place volume … on …").
pub const MIGRATION_DESTINATION_REFUSED: Detail = Detail {
    id: "110",
    text: "The destination backend cannot accept the volume.",
};
/// Clinker: the destination failed to create the migration's volume.
pub const MIGRATION_TARGET_CREATE_FAILED: Detail = Detail {
    id: "111",
    text: "The destination backend failed to create the volume for the migration.",
};
/// Clinker: copying the data to the destination failed.
pub const MIGRATION_COPY_FAILED: Detail = Detail {
    id: "112",
    text: "Copying the volume's data to the destination backend failed.",
};
/// Clinker: neither backend can be reached as a local path by the volume
/// service, so there is no honest way to copy the data.
pub const MIGRATION_COPY_UNSUPPORTED: Detail = Detail {
    id: "113",
    text: "The volume's data cannot be copied between these backends by the volume service.",
};
/// Clinker: an attached volume needs Nova to swap it during a migration.
pub const MIGRATION_ATTACHED_UNSUPPORTED: Detail = Detail {
    id: "114",
    text: "Migrating an attached volume needs the compute service to swap it, which is not available.",
};
/// Clinker: the destination failed to give the migrated volume its backing.
pub const MIGRATION_COMPLETION_FAILED: Detail = Detail {
    id: "115",
    text: "The destination backend failed to complete the migration.",
};
/// A volume with snapshots cannot migrate (Cinder's "Volume must not have
/// snapshots.").
pub const VOLUME_HAS_SNAPSHOTS: Detail = Detail {
    id: "116",
    text: "Volume must not have snapshots.",
};

/// `BACKUP_INVALID_STATE`.
pub const BACKUP_INVALID_STATE: Detail = Detail {
    id: "017",
    text: "Backup status is invalid.",
};
/// `BACKUP_RESTORE_ERROR`.
pub const BACKUP_RESTORE_ERROR: Detail = Detail {
    id: "026",
    text: "Backup driver failed to restore backup.",
};

/// `VOLUME` / `SNAPSHOT` resource types.
pub const RESOURCE_VOLUME: &str = "VOLUME";
/// Snapshot resource type.
pub const RESOURCE_SNAPSHOT: &str = "SNAPSHOT";
/// Backup resource type.
pub const RESOURCE_VOLUME_BACKUP: &str = "VOLUME_BACKUP";

/// The `user_message` text: `"<action>:<detail>"`, as Cinder's message view.
pub fn user_message(action: Action, detail: Detail) -> String {
    format!("{}:{}", action.text, detail.text)
}

/// The `event_id`: `VOLUME_<resource>_<action>_<detail>`.
pub fn event_id(resource_type: &str, action: Action, detail: Detail) -> String {
    format!("VOLUME_{resource_type}_{}_{}", action.id, detail.id)
}

/// Builds a user message row.
#[allow(clippy::too_many_arguments)]
pub fn build_message(
    project_id: &str,
    request_id: Option<&str>,
    resource_type: &str,
    resource_uuid: Option<String>,
    action: Action,
    detail: Detail,
    now: crate::Timestamp,
    ttl_secs: u64,
) -> crate::model::UserMessage {
    let ttl_micros = i64::try_from(ttl_secs.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
    crate::model::UserMessage {
        id: crate::MessageId::new_random(),
        project_id: project_id.to_owned(),
        request_id: request_id.map(str::to_owned),
        resource_type: resource_type.to_owned(),
        resource_uuid,
        event_id: event_id(resource_type, action, detail),
        message_level: "ERROR".to_owned(),
        user_message: user_message(action, detail),
        created_at: now,
        expires_at: now.plus_micros(ttl_micros),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composes_cinder_texts() {
        assert_eq!(
            user_message(SCHEDULE_ALLOCATE_VOLUME, NO_BACKEND_AVAILABLE),
            "schedule allocate volume:Could not find any available weighted backend."
        );
        assert_eq!(
            event_id(
                RESOURCE_VOLUME,
                SCHEDULE_ALLOCATE_VOLUME,
                NO_BACKEND_AVAILABLE
            ),
            "VOLUME_VOLUME_001_003"
        );
    }
}
