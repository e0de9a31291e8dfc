//! Row decoding: `AnyRow` → models. Every column is read by name so the
//! SELECT lists and the decoders cannot silently disagree on order.

use std::collections::BTreeMap;
use std::str::FromStr;

use clinker_types::model::{
    Attachment, JournalEntry, JournalResource, Service, Snapshot, UserMessage, Volume, VolumeType,
};
use clinker_types::{AttachStatus, AttachmentId, SnapshotStatus, Timestamp, VolumeStatus};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::DbError;

pub(crate) const VOLUME_COLUMNS: &str = "v.id, v.user_id, v.project_id, v.host, v.size, v.availability_zone, v.status, \
     v.attach_status, v.migration_status, v.display_name, v.display_description, v.provider_location, \
     v.provider_auth, v.provider_id, v.volume_type_id, v.snapshot_id, v.source_volid, v.bootable, v.multiattach, \
     v.encryption_key_id, v.consistencygroup_id, v.group_id, v.replication_status, v.previous_status, \
     v.service_uuid, v.shared_targets, v.use_quota, v.cluster_name, v.created_at, v.updated_at, v.scheduled_at, \
     v.launched_at, t.name AS volume_type_name";

pub(crate) const VOLUME_FROM: &str =
    "volumes v LEFT JOIN volume_types t ON t.id = v.volume_type_id";

pub(crate) const SNAPSHOT_COLUMNS: &str = "s.id, s.volume_id, s.user_id, s.project_id, s.status, s.progress, s.volume_size, \
     s.display_name, s.display_description, s.provider_location, s.volume_type_id, s.group_snapshot_id, \
     s.use_quota, s.created_at, s.updated_at, (SELECT sv.host FROM volumes sv WHERE sv.id = s.volume_id) AS host";

fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T, DbError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(name)
        .map_err(|e| DbError::Internal(format!("column {name}: {e}")))
}

fn parse<T: FromStr>(text: &str, what: &str) -> Result<T, DbError> {
    text.parse()
        .map_err(|_| DbError::Internal(format!("corrupt {what} {text:?} in database")))
}

fn opt_parse<T: FromStr>(text: Option<String>, what: &str) -> Result<Option<T>, DbError> {
    text.map(|t| parse(&t, what)).transpose()
}

fn ts(micros: Option<i64>) -> Option<Timestamp> {
    micros.map(Timestamp)
}

pub(crate) fn volume(row: &AnyRow) -> Result<Volume, DbError> {
    let id: String = col(row, "id")?;
    let status: String = col(row, "status")?;
    let attach_status: String = col(row, "attach_status")?;
    let type_id: String = col(row, "volume_type_id")?;
    Ok(Volume {
        id: parse(&id, "volume id")?,
        user_id: col(row, "user_id")?,
        project_id: col(row, "project_id")?,
        host: col(row, "host")?,
        size: col(row, "size")?,
        availability_zone: col(row, "availability_zone")?,
        status: parse::<VolumeStatus>(&status, "volume status")?,
        attach_status: parse::<AttachStatus>(&attach_status, "attach status")?,
        migration_status: col(row, "migration_status")?,
        display_name: col(row, "display_name")?,
        display_description: col(row, "display_description")?,
        provider_location: col(row, "provider_location")?,
        provider_auth: col(row, "provider_auth")?,
        provider_id: col(row, "provider_id")?,
        volume_type_id: parse(&type_id, "volume type id")?,
        volume_type_name: col(row, "volume_type_name")?,
        snapshot_id: opt_parse(col(row, "snapshot_id")?, "snapshot id")?,
        source_volid: opt_parse(col(row, "source_volid")?, "volume id")?,
        bootable: col::<i64>(row, "bootable")? != 0,
        multiattach: col::<i64>(row, "multiattach")? != 0,
        encryption_key_id: col(row, "encryption_key_id")?,
        consistencygroup_id: col(row, "consistencygroup_id")?,
        group_id: col(row, "group_id")?,
        replication_status: col(row, "replication_status")?,
        previous_status: col(row, "previous_status")?,
        service_uuid: col(row, "service_uuid")?,
        shared_targets: col::<Option<i64>>(row, "shared_targets")?.map(|v| v != 0),
        use_quota: col::<i64>(row, "use_quota")? != 0,
        cluster_name: col(row, "cluster_name")?,
        created_at: Timestamp(col(row, "created_at")?),
        updated_at: ts(col(row, "updated_at")?),
        scheduled_at: ts(col(row, "scheduled_at")?),
        launched_at: ts(col(row, "launched_at")?),
        metadata: BTreeMap::new(),
        admin_metadata: BTreeMap::new(),
        glance_metadata: BTreeMap::new(),
        attachments: Vec::new(),
    })
}

pub(crate) const ATTACHMENT_COLUMNS: &str = "id, volume_id, instance_uuid, attached_host, mountpoint, attach_time, \
     detach_time, attach_status, attach_mode, connection_info, connector";

pub(crate) fn attachment(row: &AnyRow) -> Result<Attachment, DbError> {
    let id: String = col(row, "id")?;
    let volume_id: String = col(row, "volume_id")?;
    let status: String = col(row, "attach_status")?;
    let json = |name: &str| -> Result<Option<serde_json::Value>, DbError> {
        let text: Option<String> = col(row, name)?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| DbError::Internal(format!("corrupt {name}: {e}")))
        })
        .transpose()
    };
    Ok(Attachment {
        id: parse::<AttachmentId>(&id, "attachment id")?,
        volume_id: parse(&volume_id, "volume id")?,
        instance_uuid: col(row, "instance_uuid")?,
        attached_host: col(row, "attached_host")?,
        mountpoint: col(row, "mountpoint")?,
        attach_time: ts(col(row, "attach_time")?),
        detach_time: ts(col(row, "detach_time")?),
        attach_status: parse(&status, "attach status")?,
        attach_mode: col(row, "attach_mode")?,
        connection_info: json("connection_info")?,
        connector: json("connector")?,
    })
}

pub(crate) fn snapshot(row: &AnyRow) -> Result<Snapshot, DbError> {
    let id: String = col(row, "id")?;
    let volume_id: String = col(row, "volume_id")?;
    let status: String = col(row, "status")?;
    let type_id: String = col(row, "volume_type_id")?;
    Ok(Snapshot {
        id: parse(&id, "snapshot id")?,
        volume_id: parse(&volume_id, "volume id")?,
        user_id: col(row, "user_id")?,
        project_id: col(row, "project_id")?,
        status: parse::<SnapshotStatus>(&status, "snapshot status")?,
        progress: col(row, "progress")?,
        volume_size: col(row, "volume_size")?,
        display_name: col(row, "display_name")?,
        display_description: col(row, "display_description")?,
        provider_location: col(row, "provider_location")?,
        volume_type_id: parse(&type_id, "volume type id")?,
        group_snapshot_id: col(row, "group_snapshot_id")?,
        use_quota: col::<i64>(row, "use_quota")? != 0,
        host: col(row, "host")?,
        created_at: Timestamp(col(row, "created_at")?),
        updated_at: ts(col(row, "updated_at")?),
        metadata: BTreeMap::new(),
    })
}

pub(crate) fn volume_type(row: &AnyRow) -> Result<VolumeType, DbError> {
    let id: String = col(row, "id")?;
    Ok(VolumeType {
        id: parse(&id, "volume type id")?,
        name: col(row, "name")?,
        description: col(row, "description")?,
        is_public: col::<i64>(row, "is_public")? != 0,
        qos_specs_id: col(row, "qos_specs_id")?,
        extra_specs: BTreeMap::new(),
        created_at: Timestamp(col(row, "created_at")?),
        updated_at: ts(col(row, "updated_at")?),
    })
}

pub(crate) const SERVICE_COLUMNS: &str = "id, uuid, host, binary_name, topic, report_count, disabled, disabled_reason, \
     availability_zone, rpc_current_version, backend_state, backend_state_reason, frozen, replication_status, \
     active_backend_id, cluster_name, created_at, updated_at, modified_at";

pub(crate) fn service(row: &AnyRow) -> Result<Service, DbError> {
    Ok(Service {
        id: col(row, "id")?,
        uuid: col(row, "uuid")?,
        host: col(row, "host")?,
        binary: col(row, "binary_name")?,
        topic: col(row, "topic")?,
        report_count: col(row, "report_count")?,
        disabled: col::<i64>(row, "disabled")? != 0,
        disabled_reason: col(row, "disabled_reason")?,
        availability_zone: col(row, "availability_zone")?,
        rpc_current_version: col(row, "rpc_current_version")?,
        backend_state: col(row, "backend_state")?,
        backend_state_reason: col(row, "backend_state_reason")?,
        frozen: col::<i64>(row, "frozen")? != 0,
        replication_status: col(row, "replication_status")?,
        active_backend_id: col(row, "active_backend_id")?,
        cluster_name: col(row, "cluster_name")?,
        created_at: Timestamp(col(row, "created_at")?),
        updated_at: ts(col(row, "updated_at")?),
        modified_at: ts(col(row, "modified_at")?),
    })
}

pub(crate) const JOURNAL_COLUMNS: &str =
    "id, resource_type, resource_id, status, service_host, created_at, updated_at";

pub(crate) fn journal(row: &AnyRow) -> Result<JournalEntry, DbError> {
    let resource_type: String = col(row, "resource_type")?;
    Ok(JournalEntry {
        id: col(row, "id")?,
        resource_type: JournalResource::parse(&resource_type).ok_or_else(|| {
            DbError::Internal(format!("unknown journal resource type {resource_type:?}"))
        })?,
        resource_id: col(row, "resource_id")?,
        status: col(row, "status")?,
        service_host: col(row, "service_host")?,
        created_at: Timestamp(col(row, "created_at")?),
        updated_at: ts(col(row, "updated_at")?),
    })
}

pub(crate) const MESSAGE_COLUMNS: &str = "id, project_id, request_id, resource_type, resource_uuid, event_id, \
     message_level, user_message, created_at, expires_at";

pub(crate) fn message(row: &AnyRow) -> Result<UserMessage, DbError> {
    let id: String = col(row, "id")?;
    Ok(UserMessage {
        id: parse(&id, "message id")?,
        project_id: col(row, "project_id")?,
        request_id: col(row, "request_id")?,
        resource_type: col(row, "resource_type")?,
        resource_uuid: col(row, "resource_uuid")?,
        event_id: col(row, "event_id")?,
        message_level: col(row, "message_level")?,
        user_message: col(row, "user_message")?,
        created_at: Timestamp(col(row, "created_at")?),
        expires_at: Timestamp(col(row, "expires_at")?),
    })
}

/// `(owner id, key, value)` rows into a map per owner.
pub(crate) fn group_pairs(
    rows: Vec<(String, String, String)>,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (owner, key, value) in rows {
        out.entry(owner).or_default().insert(key, value);
    }
    out
}
