//! Attachment views (Cinder's `api/v3/views/attachments.py`): the summary
//! `{id, status, instance, volume_id}` (the status is the attachment's
//! `attach_status`) and the detail, which adds `attached_at`, `detached_at`
//! (the empty string when unset, not null), `attach_mode` and the
//! flattened `connection_info`.

use clinker_types::Timestamp;
use clinker_types::model::Attachment;
use serde_json::{Value, json};

/// A time as Cinder's `_normalize` renders it: `''` when unset.
fn stamp(time: Option<Timestamp>) -> Value {
    time.map_or_else(
        || Value::String(String::new()),
        |t| Value::String(t.to_iso8601()),
    )
}

/// The summary of one attachment.
pub fn summary(attachment: &Attachment) -> Value {
    json!({
        "id": attachment.id.to_string(),
        "status": attachment.attach_status.as_str(),
        "instance": attachment.instance_uuid,
        "volume_id": attachment.volume_id.to_string(),
    })
}

/// The detail of one attachment.
pub fn detail(attachment: &Attachment) -> Value {
    let mut body = summary(attachment);
    if let Some(map) = body.as_object_mut() {
        map.insert("attached_at".into(), stamp(attachment.attach_time));
        map.insert("detached_at".into(), stamp(attachment.detach_time));
        map.insert("attach_mode".into(), json!(attachment.attach_mode));
        map.insert(
            "connection_info".into(),
            attachment.connection_info.clone().unwrap_or(Value::Null),
        );
    }
    body
}

/// `{"attachment": detail}`.
pub fn show(attachment: &Attachment) -> Value {
    json!({ "attachment": detail(attachment) })
}

/// `{"attachments": [...]}`, summaries or details. Cinder's attachment
/// lists carry no `attachments_links`.
pub fn list(attachments: &[Attachment], detailed: bool) -> Value {
    let items: Vec<Value> = attachments
        .iter()
        .map(|a| if detailed { detail(a) } else { summary(a) })
        .collect();
    json!({ "attachments": items })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinker_types::{AttachStatus, AttachmentId, VolumeId};

    #[test]
    fn unset_times_are_empty_strings() {
        let attachment = Attachment {
            id: AttachmentId::new_random(),
            volume_id: VolumeId::new_random(),
            instance_uuid: None,
            attached_host: Some("h".into()),
            mountpoint: None,
            attach_time: Some(Timestamp(1_700_000_000_000_001)),
            detach_time: None,
            attach_status: AttachStatus::Reserved,
            attach_mode: Some("null".into()),
            connection_info: Some(json!({})),
            connector: None,
        };
        let d = detail(&attachment);
        assert_eq!(d["detached_at"], "");
        assert_eq!(d["attached_at"], "2023-11-14T22:13:20.000001");
        assert_eq!(d["status"], "reserved");
        assert_eq!(d["instance"], Value::Null);
        assert_eq!(d["connection_info"], json!({}));
        let mut keys: Vec<&String> = d.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "attach_mode",
                "attached_at",
                "connection_info",
                "detached_at",
                "id",
                "instance",
                "status",
                "volume_id"
            ]
        );
        assert_eq!(
            summary(&attachment).as_object().unwrap().len(),
            4,
            "the summary has no host, times or connection"
        );
    }
}
