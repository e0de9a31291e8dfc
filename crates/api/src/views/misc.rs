//! Smaller views: versions, services, availability zones, limits, quota
//! sets, user messages, extensions, pools and capabilities.

use std::collections::BTreeMap;

use clinker_types::Timestamp;
use clinker_types::model::{Service, UserMessage};
use serde_json::{Map, Value, json};

use super::{ViewCtx, next_links, time};
use crate::links::Links;
use crate::microversion as mv;
use crate::services::VOLUME_BINARY;
use crate::services::quotas::QuotaEntry;

/// The versions document of `GET /` and `GET /v3/`.
pub fn versions(links: &Links) -> Value {
    json!({"versions": [{
        "id": "v3.0",
        "status": "CURRENT",
        "version": mv::MAX.to_string(),
        "min_version": mv::MIN.to_string(),
        "updated": mv::UPDATED,
        "links": [
            {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
            {"rel": "self", "href": links.version_href()},
        ],
        "media-types": [{
            "base": "application/json",
            "type": "application/vnd.openstack.volume+json;version=3",
        }],
    }]})
}

/// One `os-services` entry. `up` is Cinder's liveness verdict.
pub fn service(s: &Service, ctx: &ViewCtx<'_>, up: bool) -> Value {
    // Cinder shows the administrative change time when it is more recent
    // than the last heartbeat.
    let updated_at: Option<Timestamp> = match (s.updated_at, s.modified_at) {
        (Some(u), Some(m)) if m > u => Some(m),
        (None, Some(m)) => Some(m),
        (u, _) => u,
    };
    let mut v = Map::new();
    v.insert("binary".into(), json!(s.binary));
    v.insert("host".into(), json!(s.host));
    v.insert("zone".into(), json!(s.availability_zone));
    v.insert(
        "status".into(),
        json!(if s.disabled { "disabled" } else { "enabled" }),
    );
    v.insert("state".into(), json!(if up { "up" } else { "down" }));
    v.insert("updated_at".into(), time(updated_at));
    if ctx.version.matches(mv::BACKEND_STATE_REPORT) && s.binary == VOLUME_BINARY {
        v.insert("backend_state".into(), json!(s.backend_state));
    }
    if ctx.version.matches(mv::CLUSTER_SUPPORT) {
        v.insert("cluster".into(), json!(s.cluster_name));
    }
    v.insert("disabled_reason".into(), json!(s.disabled_reason));
    if s.binary == VOLUME_BINARY {
        v.insert(
            "replication_status".into(),
            json!(s.replication_status.as_deref().unwrap_or("not-capable")),
        );
        v.insert("active_backend_id".into(), json!(s.active_backend_id));
        v.insert("frozen".into(), json!(s.frozen));
    }
    Value::Object(v)
}

/// `{"availabilityZoneInfo": […]}`.
pub fn availability_zones(zones: &[(String, bool)]) -> Value {
    let items: Vec<Value> = zones
        .iter()
        .map(|(name, available)| json!({"zoneName": name, "zoneState": {"available": available}}))
        .collect();
    json!({ "availabilityZoneInfo": items })
}

/// `{"limits": {"rate": [], "absolute": {…}}}`.
pub fn limits(quotas: &BTreeMap<String, QuotaEntry>, with_usage: bool) -> Value {
    let mut absolute = Map::new();
    for (resource, max_name, used_name) in [
        ("gigabytes", "maxTotalVolumeGigabytes", "totalGigabytesUsed"),
        (
            "backup_gigabytes",
            "maxTotalBackupGigabytes",
            "totalBackupGigabytesUsed",
        ),
        ("volumes", "maxTotalVolumes", "totalVolumesUsed"),
        ("snapshots", "maxTotalSnapshots", "totalSnapshotsUsed"),
        ("backups", "maxTotalBackups", "totalBackupsUsed"),
    ] {
        if let Some(entry) = quotas.get(resource) {
            absolute.insert(max_name.into(), json!(entry.limit));
            if with_usage {
                absolute.insert(used_name.into(), json!(entry.in_use));
            }
        }
    }
    json!({"limits": {"rate": [], "absolute": absolute}})
}

/// A quota set: limits only, or `{limit, in_use, reserved}` per resource.
pub fn quota_set(
    project_id: Option<&str>,
    quotas: &BTreeMap<String, QuotaEntry>,
    usage: bool,
) -> Value {
    let mut set = Map::new();
    for (resource, entry) in quotas {
        let value = if usage {
            json!({"limit": entry.limit, "in_use": entry.in_use, "reserved": 0})
        } else {
            json!(entry.limit)
        };
        set.insert(resource.clone(), value);
    }
    if let Some(id) = project_id {
        set.insert("id".into(), json!(id));
    }
    json!({ "quota_set": set })
}

/// A map of limits under `key`, with an optional `id`.
pub fn limit_set(key: &str, id: Option<&str>, limits: &BTreeMap<String, i64>) -> Value {
    let mut set: Map<String, Value> = limits.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    if let Some(id) = id {
        set.insert("id".into(), json!(id));
    }
    json!({ key: set })
}

/// One user message.
pub fn message(m: &UserMessage, ctx: &ViewCtx<'_>) -> Value {
    let id = m.id.to_string();
    let mut v = Map::new();
    v.insert("id".into(), json!(id));
    v.insert("event_id".into(), json!(m.event_id));
    v.insert("user_message".into(), json!(m.user_message));
    v.insert("message_level".into(), json!(m.message_level));
    v.insert("created_at".into(), time(Some(m.created_at)));
    v.insert("guaranteed_until".into(), time(Some(m.expires_at)));
    v.insert("request_id".into(), json!(m.request_id));
    v.insert("links".into(), ctx.links.item_links("messages", &id));
    if !m.resource_type.is_empty() {
        v.insert("resource_type".into(), json!(m.resource_type));
    }
    if let Some(uuid) = m.resource_uuid.as_ref().filter(|u| !u.is_empty()) {
        v.insert("resource_uuid".into(), json!(uuid));
    }
    Value::Object(v)
}

/// A page of user messages.
pub fn messages(items: &[UserMessage], ctx: &ViewCtx<'_>, limit: u32) -> Value {
    let list: Vec<Value> = items.iter().map(|m| message(m, ctx)).collect();
    let mut body = Map::new();
    body.insert("messages".into(), Value::Array(list));
    if let Some(links) = next_links(
        ctx,
        "messages",
        items.last().map(|m| m.id.to_string()),
        items.len(),
        None,
        limit,
    ) {
        body.insert("messages_links".into(), links);
    }
    Value::Object(body)
}

/// Cinder's extensions, as `GET /extensions` lists them: (alias, name,
/// updated, description).
pub const EXTENSIONS: &[(&str, &str, &str, &str)] = &[
    (
        "os-admin-actions",
        "AdminActions",
        "2012-08-25T00:00:00+00:00",
        "Enable admin actions.",
    ),
    (
        "os-availability-zone",
        "AvailabilityZones",
        "2013-06-27T00:00:00+00:00",
        "Describe Availability Zones.",
    ),
    (
        "backups",
        "Backups",
        "2012-12-12T00:00:00+00:00",
        "Backups support.",
    ),
    (
        "capabilities",
        "Capabilities",
        "2015-08-31T00:00:00+00:00",
        "Capabilities support.",
    ),
    (
        "cgsnapshots",
        "Cgsnapshots",
        "2014-08-18T00:00:00+00:00",
        "cgsnapshots support.",
    ),
    (
        "consistencygroups",
        "Consistencygroups",
        "2014-08-18T00:00:00+00:00",
        "consistency groups support.",
    ),
    (
        "os-extended-services",
        "ExtendedServices",
        "2014-01-10T00:00:00-00:00",
        "Extended services support.",
    ),
    (
        "os-extended-snapshot-attributes",
        "ExtendedSnapshotAttributes",
        "2012-06-19T00:00:00+00:00",
        "Extended SnapshotAttributes support.",
    ),
    (
        "os-hosts",
        "Hosts",
        "2011-06-29T00:00:00+00:00",
        "Admin-only host administration.",
    ),
    (
        "qos-specs",
        "Qos_specs_manage",
        "2013-08-02T00:00:00+00:00",
        "QoS specs support.",
    ),
    (
        "os-quota-class-sets",
        "QuotaClasses",
        "2012-03-12T00:00:00+00:00",
        "Quota classes management support.",
    ),
    (
        "os-quota-sets",
        "Quotas",
        "2011-08-08T00:00:00+00:00",
        "Quota management support.",
    ),
    (
        "OS-SCH-HNT",
        "SchedulerHints",
        "2013-04-18T00:00:00+00:00",
        "Pass arbitrary key/value pairs to the scheduler.",
    ),
    (
        "scheduler-stats",
        "Scheduler_stats",
        "2014-09-07T00:00:00+00:00",
        "Scheduler stats support.",
    ),
    (
        "os-services",
        "Services",
        "2012-10-28T00:00:00-00:00",
        "Services support.",
    ),
    (
        "os-snapshot-actions",
        "SnapshotActions",
        "2013-07-16T00:00:00+00:00",
        "Enable snapshot manager actions.",
    ),
    (
        "os-snapshot-manage",
        "SnapshotManage",
        "2014-12-31T00:00:00+00:00",
        "Allows existing backend storage to be 'managed' by Cinder.",
    ),
    (
        "os-snapshot-unmanage",
        "SnapshotUnmanage",
        "2014-12-31T00:00:00+00:00",
        "Enable volume unmanage operation.",
    ),
    (
        "os-types-extra-specs",
        "TypesExtraSpecs",
        "2011-08-24T00:00:00+00:00",
        "Type extra specs support.",
    ),
    (
        "os-types-manage",
        "TypesManage",
        "2011-08-24T00:00:00+00:00",
        "Types manage support.",
    ),
    (
        "os-used-limits",
        "UsedLimits",
        "2013-10-03T00:00:00+00:00",
        "Provide data on limited resources that are being used.",
    ),
    (
        "os-volume-actions",
        "VolumeActions",
        "2012-05-31T00:00:00+00:00",
        "Enable volume actions.",
    ),
    (
        "os-volume-encryption-metadata",
        "VolumeEncryptionMetadata",
        "2013-07-10T00:00:00+00:00",
        "Volume encryption metadata retrieval support.",
    ),
    (
        "os-vol-host-attr",
        "VolumeHostAttribute",
        "2011-11-03T00:00:00+00:00",
        "Expose host as an attribute of a volume.",
    ),
    (
        "os-vol-image-meta",
        "VolumeImageMetadata",
        "2012-12-07T00:00:00+00:00",
        "Show image metadata associated with the volume.",
    ),
    (
        "os-volume-manage",
        "VolumeManage",
        "2014-02-10T00:00:00+00:00",
        "Allows existing backend storage to be 'managed' by Cinder.",
    ),
    (
        "os-vol-mig-status-attr",
        "VolumeMigStatusAttribute",
        "2013-08-08T00:00:00+00:00",
        "Expose migration_status as an attribute of a volume.",
    ),
    (
        "os-vol-tenant-attr",
        "VolumeTenantAttribute",
        "2011-11-03T00:00:00+00:00",
        "Expose the internal project_id as an attribute of a volume.",
    ),
    (
        "os-volume-transfer",
        "VolumeTransfer",
        "2013-05-29T00:00:00+00:00",
        "Volume transfer management support.",
    ),
    (
        "os-volume-type-access",
        "VolumeTypeAccess",
        "2014-06-26T00:00:00Z",
        "Volume type access support.",
    ),
    (
        "encryption",
        "VolumeTypeEncryption",
        "2013-07-01T00:00:00+00:00",
        "Encryption support for volume types.",
    ),
    (
        "os-volume-unmanage",
        "VolumeUnmanage",
        "2012-05-31T00:00:00+00:00",
        "Enable volume unmanage operation.",
    ),
];

/// `{"extensions": […]}`.
pub fn extensions() -> Value {
    let items: Vec<Value> = EXTENSIONS
        .iter()
        .map(|(alias, name, updated, description)| {
            json!({"alias": alias, "name": name, "updated": updated, "description": description, "links": []})
        })
        .collect();
    json!({ "extensions": items })
}

/// Internally `storage_protocol` may list variants; users see the first.
fn first_protocol(mut capabilities: Value) -> Value {
    if let Some(obj) = capabilities.as_object_mut()
        && let Some(Value::Array(variants)) = obj.get("storage_protocol").cloned()
    {
        obj.insert(
            "storage_protocol".into(),
            variants.first().cloned().unwrap_or(Value::Null),
        );
    }
    capabilities
}

/// `{"pools": […]}` from the scheduler's answer (a list of
/// `{name, capabilities}`).
pub fn pools(answer: &Value, detail: bool) -> Value {
    let list = answer
        .as_array()
        .or_else(|| answer.get("pools").and_then(Value::as_array))
        .cloned()
        .unwrap_or_default();
    let items: Vec<Value> = list
        .into_iter()
        .map(|pool| {
            let name = pool.get("name").cloned().unwrap_or(Value::Null);
            if detail {
                let capabilities = pool.get("capabilities").cloned().unwrap_or(Value::Null);
                json!({"name": name, "capabilities": first_protocol(capabilities)})
            } else {
                json!({ "name": name })
            }
        })
        .collect();
    json!({ "pools": items })
}

/// The capabilities of one backend (`GET /capabilities/{host}`).
pub fn capabilities(caps: &Value, topic: &str) -> Value {
    let caps = first_protocol(caps.clone());
    let get = |key: &str| caps.get(key).cloned().unwrap_or(Value::Null);
    json!({
        "namespace": format!("OS::Storage::Capabilities::{topic}"),
        "vendor_name": get("vendor_name"),
        "volume_backend_name": get("volume_backend_name"),
        "pool_name": get("pool_name"),
        "driver_version": get("driver_version"),
        "storage_protocol": get("storage_protocol"),
        "display_name": get("display_name"),
        "description": get("description"),
        "visibility": get("visibility"),
        "replication_targets": caps.get("replication_targets").cloned().unwrap_or_else(|| json!([])),
        // Drivers without vendor properties report none; the field is
        // still an object (Tempest's schema requires one).
        "properties": caps.get("properties").filter(|p| p.is_object()).cloned().unwrap_or_else(|| json!({})),
    })
}
