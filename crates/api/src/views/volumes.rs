//! Volume views (Cinder's `api/v3/views/volumes.py` and the `os-vol-*`
//! extension attributes merged into show and detail).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use clinker_types::AttachStatus;
use clinker_types::model::Volume;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};

use super::{Collection, ViewCtx, opt, time};
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

/// `links` of an item, serialized without building a `Value`.
struct ItemLinks<'a> {
    ctx: &'a ViewCtx<'a>,
    id: &'a str,
}

impl Serialize for ItemLinks<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Link<'a> {
            rel: &'a str,
            href: String,
        }
        let links = self.ctx.links;
        [
            Link {
                rel: "self",
                href: links.self_href("volumes", self.id),
            },
            Link {
                rel: "bookmark",
                href: links.bookmark_href("volumes", self.id),
            },
        ]
        .serialize(serializer)
    }
}

/// The detail view of one volume. It writes its keys straight into the
/// serializer: the 1000-volume detail list spent most of its view time
/// building and dropping `serde_json::Value` maps.
struct DetailView<'a> {
    volume: &'a Volume,
    ctx: &'a ViewCtx<'a>,
    flavour: Detail,
}

impl Serialize for DetailView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (volume, ctx) = (self.volume, self.ctx);
        let id = volume.id.to_string();
        let iso = |t: Option<clinker_types::Timestamp>| t.map(|t| t.to_iso8601());
        let mut v = serializer.serialize_map(None)?;
        v.serialize_entry("id", &id)?;
        v.serialize_entry("status", volume.status.api_status().as_str())?;
        v.serialize_entry("size", &volume.size)?;
        v.serialize_entry("availability_zone", &volume.availability_zone)?;
        v.serialize_entry("created_at", &iso(Some(volume.created_at)))?;
        v.serialize_entry("updated_at", &iso(volume.updated_at))?;
        v.serialize_entry("name", &volume.display_name)?;
        v.serialize_entry("description", &volume.display_description)?;
        v.serialize_entry("volume_type", &volume_type(volume, ctx))?;
        v.serialize_entry("snapshot_id", &volume.snapshot_id.map(|i| i.to_string()))?;
        v.serialize_entry("source_volid", &volume.source_volid.map(|i| i.to_string()))?;
        if volume.admin_metadata.is_empty() {
            v.serialize_entry("metadata", &volume.metadata)?;
        } else {
            v.serialize_entry("metadata", &visible_metadata(volume))?;
        }
        v.serialize_entry("links", &ItemLinks { ctx, id: &id })?;
        v.serialize_entry("user_id", &volume.user_id)?;
        v.serialize_entry("bootable", if volume.bootable { "true" } else { "false" })?;
        v.serialize_entry("encrypted", &volume.encryption_key_id.is_some())?;
        v.serialize_entry("replication_status", &volume.replication_status)?;
        v.serialize_entry("consistencygroup_id", &volume.consistencygroup_id)?;
        v.serialize_entry("multiattach", &volume.multiattach)?;
        if volume.attachments.is_empty() {
            v.serialize_entry("attachments", &[(); 0])?;
        } else {
            v.serialize_entry("attachments", &attachments(volume, ctx.is_admin))?;
        }
        if ctx.is_admin {
            v.serialize_entry("migration_status", &volume.migration_status)?;
        }
        if ctx.version.matches(mv::GROUP_VOLUME) {
            v.serialize_entry("group_id", &volume.group_id)?;
        }
        if ctx.is_admin && ctx.version.matches(mv::VOLUME_DETAIL_PROVIDER_ID) {
            v.serialize_entry("provider_id", &volume.provider_id)?;
        }
        if ctx
            .version
            .matches(mv::VOLUME_SHARED_TARGETS_AND_SERVICE_FIELDS)
        {
            let shared = match volume.shared_targets {
                Some(b) => Some(b),
                None if ctx.version.matches(mv::SHARED_TARGETS_TRISTATE) => None,
                None => Some(true),
            };
            v.serialize_entry("shared_targets", &shared)?;
            v.serialize_entry("service_uuid", &volume.service_uuid)?;
        }
        if ctx.is_admin && ctx.version.matches(mv::VOLUME_CLUSTER_NAME) {
            v.serialize_entry("cluster_name", &volume.cluster_name)?;
        }
        if ctx.version.matches(mv::VOLUME_TYPE_ID_IN_VOLUME_DETAIL) {
            let type_id = volume
                .volume_type_name
                .as_ref()
                .map(|_| volume.volume_type_id.to_string());
            v.serialize_entry("volume_type_id", &type_id)?;
        }
        if ctx.version.matches(mv::ENCRYPTION_KEY_ID_IN_DETAILS)
            && let Some(key) = volume
                .encryption_key_id
                .as_ref()
                .filter(|k| k.as_str() != FIXED_KEY_ID)
        {
            v.serialize_entry("encryption_key_id", key)?;
        }
        if ctx.version.matches(mv::USE_QUOTA) {
            v.serialize_entry("consumes_quota", &volume.use_quota)?;
        }
        if self.flavour == Detail::Extended {
            if ctx.host_attribute {
                v.serialize_entry("os-vol-host-attr:host", &volume.host)?;
            }
            if ctx.tenant_attribute {
                v.serialize_entry("os-vol-tenant-attr:tenant_id", &volume.project_id)?;
            }
            if ctx.mig_status_attribute {
                v.serialize_entry("os-vol-mig-status-attr:migstat", &volume.migration_status)?;
                v.serialize_entry("os-vol-mig-status-attr:name_id", &())?;
            }
            if !volume.glance_metadata.is_empty() {
                v.serialize_entry("volume_image_metadata", &volume.glance_metadata)?;
            }
        }
        v.end()
    }
}

/// `{"volume": detail}` as a response with `status`, serialized straight to
/// bytes (status polls hit this path).
pub fn show(volume: &Volume, ctx: &ViewCtx<'_>, flavour: Detail, status: StatusCode) -> Response {
    struct Envelope<'a>(DetailView<'a>);
    impl Serialize for Envelope<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut body = serializer.serialize_map(Some(1))?;
            body.serialize_entry("volume", &self.0)?;
            body.end()
        }
    }
    super::serialized(
        status,
        &Envelope(DetailView {
            volume,
            ctx,
            flavour,
        }),
    )
}

/// One item of a page: the detail or the summary.
struct ListItem<'a> {
    volume: &'a Volume,
    ctx: &'a ViewCtx<'a>,
    detailed: bool,
}

impl Serialize for ListItem<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.detailed {
            return DetailView {
                volume: self.volume,
                ctx: self.ctx,
                flavour: Detail::Extended,
            }
            .serialize(serializer);
        }
        let id = self.volume.id.to_string();
        let mut v = serializer.serialize_map(Some(3))?;
        v.serialize_entry("id", &id)?;
        v.serialize_entry("name", &self.volume.display_name)?;
        v.serialize_entry(
            "links",
            &ItemLinks {
                ctx: self.ctx,
                id: &id,
            },
        )?;
        v.end()
    }
}

struct Items<'a> {
    volumes: &'a [Volume],
    ctx: &'a ViewCtx<'a>,
    detailed: bool,
}

impl Serialize for Items<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.volumes.iter().map(|volume| ListItem {
            volume,
            ctx: self.ctx,
            detailed: self.detailed,
        }))
    }
}

/// `GET /volumes[/detail]` bodies.
pub const VOLUMES: Collection =
    Collection::new("volumes", "volumes_links", "volumes").detail_at("volumes/detail");

/// A page of volumes (`detail` for `/volumes/detail`), with
/// `volumes_links` and, when asked for, `count`, as a 200 response
/// serialized item by item.
pub fn list(
    volumes: &[Volume],
    ctx: &ViewCtx<'_>,
    detailed: bool,
    count: Option<i64>,
    limit: u32,
) -> Response {
    let links = VOLUMES.links(
        ctx,
        detailed,
        volumes.last().map(|v| v.id.to_string()),
        volumes.len(),
        count,
        limit,
    );
    let items = Items {
        volumes,
        ctx,
        detailed,
    };
    super::serialized(StatusCode::OK, &VOLUMES.page(items, links, count))
}
