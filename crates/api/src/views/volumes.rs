//! Volume views (Cinder's `api/v3/views/volumes.py` and the `os-vol-*`
//! extension attributes merged into show and detail).

use std::collections::BTreeMap;

use clinker_types::AttachStatus;
use clinker_types::model::Volume;
use serde_json::{Map, Value, json};

use super::{ViewCtx, next_links, opt, time};
use crate::microversion as mv;

/// Cinder's fixed key id (`constants.FIXED_KEY_ID`), never shown.
const FIXED_KEY_ID: &str = "00000000-0000-0000-0000-000000000000";

/// Which flavour of the detail view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Create and update responses: no extension attributes.
    Plain,
    /// Show and the detailed list: with `os-vol-*` attributes and image
    /// metadata.
    Extended,
}

/// The user metadata plus the admin metadata users may see (`readonly`,
/// `attached_mode`), as Cinder's `add_visible_admin_metadata` merges them.
pub fn visible_metadata(volume: &Volume) -> BTreeMap<String, String> {
    let mut metadata = volume.metadata.clone();
    for key in ["readonly", "attached_mode"] {
        if let Some(value) = volume.admin_metadata.get(key) {
            metadata.insert(key.to_owned(), value.clone());
        }
    }
    metadata
}

fn attachments(volume: &Volume, is_admin: bool) -> Value {
    let items: Vec<Value> = volume
        .attachments
        .iter()
        .filter(|a| a.attach_status == AttachStatus::Attached)
        .map(|a| {
            json!({
                "id": a.volume_id.to_string(),
                "attachment_id": a.id.to_string(),
                "volume_id": a.volume_id.to_string(),
                "server_id": a.instance_uuid,
                "host_name": if is_admin { opt(a.attached_host.as_deref()) } else { Value::Null },
                "device": a.mountpoint,
                "attached_at": time(a.attach_time),
            })
        })
        .collect();
    Value::Array(items)
}

/// `volume_type`: the type's name; below 3.63 the id when the type is gone.
fn volume_type(volume: &Volume, ctx: &ViewCtx<'_>) -> Value {
    match &volume.volume_type_name {
        Some(name) => Value::String(name.clone()),
        None if ctx.version.matches(mv::VOLUME_TYPE_ID_IN_VOLUME_DETAIL) => Value::Null,
        None => Value::String(volume.volume_type_id.to_string()),
    }
}

/// The detail of one volume (without the `volume` envelope).
pub fn detail(volume: &Volume, ctx: &ViewCtx<'_>, flavour: Detail) -> Value {
    let id = volume.id.to_string();
    let mut v = Map::new();
    v.insert("id".into(), json!(id));
    v.insert("status".into(), json!(volume.status.api_status().as_str()));
    v.insert("size".into(), json!(volume.size));
    v.insert("availability_zone".into(), json!(volume.availability_zone));
    v.insert("created_at".into(), time(Some(volume.created_at)));
    v.insert("updated_at".into(), time(volume.updated_at));
    v.insert("name".into(), json!(volume.display_name));
    v.insert("description".into(), json!(volume.display_description));
    v.insert("volume_type".into(), volume_type(volume, ctx));
    v.insert("snapshot_id".into(), opt(volume.snapshot_id));
    v.insert("source_volid".into(), opt(volume.source_volid));
    v.insert("metadata".into(), json!(visible_metadata(volume)));
    v.insert("links".into(), ctx.links.item_links("volumes", &id));
    v.insert("user_id".into(), json!(volume.user_id));
    v.insert(
        "bootable".into(),
        json!(if volume.bootable { "true" } else { "false" }),
    );
    v.insert(
        "encrypted".into(),
        json!(volume.encryption_key_id.is_some()),
    );
    v.insert(
        "replication_status".into(),
        json!(volume.replication_status),
    );
    v.insert(
        "consistencygroup_id".into(),
        json!(volume.consistencygroup_id),
    );
    v.insert("multiattach".into(), json!(volume.multiattach));
    v.insert("attachments".into(), attachments(volume, ctx.is_admin));
    if ctx.is_admin {
        v.insert("migration_status".into(), json!(volume.migration_status));
    }
    if ctx.version.matches(mv::GROUP_VOLUME) {
        v.insert("group_id".into(), json!(volume.group_id));
    }
    if ctx.is_admin && ctx.version.matches(mv::VOLUME_DETAIL_PROVIDER_ID) {
        v.insert("provider_id".into(), json!(volume.provider_id));
    }
    if ctx
        .version
        .matches(mv::VOLUME_SHARED_TARGETS_AND_SERVICE_FIELDS)
    {
        let shared = match volume.shared_targets {
            Some(b) => json!(b),
            None if ctx.version.matches(mv::SHARED_TARGETS_TRISTATE) => Value::Null,
            None => json!(true),
        };
        v.insert("shared_targets".into(), shared);
        v.insert("service_uuid".into(), json!(volume.service_uuid));
    }
    if ctx.is_admin && ctx.version.matches(mv::VOLUME_CLUSTER_NAME) {
        v.insert("cluster_name".into(), json!(volume.cluster_name));
    }
    if ctx.version.matches(mv::VOLUME_TYPE_ID_IN_VOLUME_DETAIL) {
        let type_id = volume
            .volume_type_name
            .as_ref()
            .map(|_| volume.volume_type_id.to_string());
        v.insert("volume_type_id".into(), json!(type_id));
    }
    if ctx.version.matches(mv::ENCRYPTION_KEY_ID_IN_DETAILS)
        && let Some(key) = volume
            .encryption_key_id
            .as_ref()
            .filter(|k| k.as_str() != FIXED_KEY_ID)
    {
        v.insert("encryption_key_id".into(), json!(key));
    }
    if ctx.version.matches(mv::USE_QUOTA) {
        v.insert("consumes_quota".into(), json!(volume.use_quota));
    }
    if flavour == Detail::Extended {
        if ctx.host_attribute {
            v.insert("os-vol-host-attr:host".into(), json!(volume.host));
        }
        if ctx.tenant_attribute {
            v.insert(
                "os-vol-tenant-attr:tenant_id".into(),
                json!(volume.project_id),
            );
        }
        if ctx.mig_status_attribute {
            v.insert(
                "os-vol-mig-status-attr:migstat".into(),
                json!(volume.migration_status),
            );
            v.insert("os-vol-mig-status-attr:name_id".into(), Value::Null);
        }
        if !volume.glance_metadata.is_empty() {
            v.insert(
                "volume_image_metadata".into(),
                json!(volume.glance_metadata),
            );
        }
    }
    Value::Object(v)
}

/// `{"volume": detail}`.
pub fn show(volume: &Volume, ctx: &ViewCtx<'_>, flavour: Detail) -> Value {
    json!({ "volume": detail(volume, ctx, flavour) })
}

/// The summary of one volume in a plain list.
pub fn summary(volume: &Volume, ctx: &ViewCtx<'_>) -> Value {
    let id = volume.id.to_string();
    json!({
        "id": id,
        "name": volume.display_name,
        "links": ctx.links.item_links("volumes", &id),
    })
}

/// A page of volumes (`detail` for `/volumes/detail`), with
/// `volumes_links` and, when asked for, `count`.
pub fn list(
    volumes: &[Volume],
    ctx: &ViewCtx<'_>,
    detailed: bool,
    count: Option<i64>,
    limit: u32,
) -> Value {
    let items: Vec<Value> = volumes
        .iter()
        .map(|v| {
            if detailed {
                detail(v, ctx, Detail::Extended)
            } else {
                summary(v, ctx)
            }
        })
        .collect();
    let mut body = Map::new();
    body.insert("volumes".into(), Value::Array(items));
    let collection = if detailed {
        "volumes/detail"
    } else {
        "volumes"
    };
    if let Some(links) = next_links(
        ctx,
        collection,
        volumes.last().map(|v| v.id.to_string()),
        volumes.len(),
        count,
        limit,
    ) {
        body.insert("volumes_links".into(), links);
    }
    if let Some(count) = count
        && ctx.version.matches(mv::SUPPORT_COUNT_INFO)
    {
        body.insert("count".into(), json!(count));
    }
    Value::Object(body)
}
