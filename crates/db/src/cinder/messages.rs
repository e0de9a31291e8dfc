//! Cinder's user-message vocabulary: Cinder stores an action and a detail
//! code (`cinder/message/message_field.py`) and renders the text when the
//! message is shown; Clinker stores the text. The import renders it once.

use super::{Row, V};

/// How long Cinder keeps a user message when a row has no `expires_at`
/// (`message_ttl`, 30 days).
pub(super) const MESSAGE_TTL_MICROS: i64 = 30 * 24 * 3600 * 1_000_000;

pub(super) fn fix_message(row: &mut Row) {
    let action = row.text("_action_id").map(action_text);
    let detail = row.text("_detail_id").map(detail_text);
    let text = match (action, detail) {
        (Some(a), Some(d)) => format!("{a}:{d}"),
        (Some(a), None) => a.to_owned(),
        (None, Some(d)) => d.to_owned(),
        (None, None) => detail_text("001").to_owned(),
    };
    row.set("user_message", V::T(Some(text)));
    if row.int("expires_at").is_none() {
        let created = row.int("created_at").unwrap_or(0);
        row.set("expires_at", V::I(Some(created + MESSAGE_TTL_MICROS)));
    }
}

/// Cinder's message actions (`cinder/message/message_field.py`, `Action`).
fn action_text(id: &str) -> &'static str {
    match id {
        "001" => "schedule allocate volume",
        "002" => "attach volume",
        "003" => "copy volume to image",
        "004" => "update attachment",
        "005" => "copy image to volume",
        "006" => "unmanage volume",
        "007" => "extend volume",
        "008" => "create volume from backend storage",
        "009" => "create snapshot",
        "010" => "delete snapshot",
        "011" => "update snapshot",
        "012" => "update snapshot metadata",
        "013" => "create backup",
        "014" => "delete backup",
        "015" => "restore backup",
        "016" => "reimage volume",
        _ => "unknown action",
    }
}

/// Cinder's message details (`Detail`); an unknown code reads as the
/// unknown error, as Cinder's view does.
fn detail_text(id: &str) -> &'static str {
    match id {
        "002" => "Driver is not initialized at present.",
        "003" => "Could not find any available weighted backend.",
        "004" => "Failed to upload volume to image at backend.",
        "005" => "Volume's attach mode is invalid.",
        "006" => "Not enough quota resource for operation.",
        "007" => "Image used for creating volume exceeds available space.",
        "008" => "Unmanaging encrypted volumes is not supported.",
        "009" => "Compute service failed to extend volume.",
        "010" => "Volume Driver failed to extend volume.",
        "011" => "Image signature verification failed.",
        "012" => "Driver failed to create the volume.",
        "013" => "Snapshot failed to create.",
        "014" => "Volume snapshot update metadata failed.",
        "015" => "Snapshot is busy.",
        "016" => "Snapshot failed to delete.",
        "017" => "Backup status is invalid.",
        "018" => "Backup service is down.",
        "019" => "Failed to get backup device from the volume service.",
        "020" => "Backup driver failed to create backup.",
        "021" => "Failed to attach volume.",
        "022" => "Failed to detach volume.",
        "023" => "Cleanup of temporary volume/snapshot failed.",
        "024" => "Backup failed to schedule. Service not found for creating backup.",
        "025" => "Backup driver failed to delete backup.",
        "026" => "Backup driver failed to restore backup.",
        "027" => "Volume status is invalid.",
        "028" => "Compute service failed to reimage volume.",
        "029" => {
            "The image disk format must be the same as the volume format for the volume type \
             you are requesting."
        }
        "030" => "Incremental backup not possible, forcing full backup.",
        _ => "An unknown error occurred.",
    }
}
