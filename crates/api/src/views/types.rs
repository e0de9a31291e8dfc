//! Volume type views (Cinder's `api/views/types.py` plus the
//! `os-volume-type-access:is_public` attribute of `volume_type_access`).

use std::collections::BTreeMap;

use clinker_types::model::VolumeType;
use serde_json::{Map, Value, json};

use super::{ViewCtx, next_links};

/// Extra specs non-admins may see (Cinder's `USER_VISIBLE_EXTRA_SPECS`).
const USER_VISIBLE_EXTRA_SPECS: &[&str] = &[
    "RESKEY:availability_zones",
    "multiattach",
    "replication_enabled",
];

/// The extra specs the caller may see.
pub fn visible_specs(specs: &BTreeMap<String, String>, is_admin: bool) -> BTreeMap<String, String> {
    if is_admin {
        return specs.clone();
    }
    specs
        .iter()
        .filter(|(k, _)| USER_VISIBLE_EXTRA_SPECS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Which responses a type view is for: Cinder renders show and list with
/// its v3 view (`qos_specs_id` for admins) but create and update with the
/// older `types_manage` view, which has no `qos_specs_id` (Tempest's create
/// schema refuses the key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeView {
    /// `GET /types[/{id}]`.
    Read,
    /// `POST /types`, `PUT /types/{id}`.
    Manage,
}

/// One type; `access_attribute` adds `os-volume-type-access:is_public`
/// (show, list and create responses, not update).
pub fn detail(t: &VolumeType, ctx: &ViewCtx<'_>, access_attribute: bool, which: TypeView) -> Value {
    let mut v = Map::new();
    v.insert("id".into(), json!(t.id.to_string()));
    v.insert("name".into(), json!(t.name));
    v.insert("is_public".into(), json!(t.is_public));
    v.insert("description".into(), json!(t.description));
    v.insert(
        "extra_specs".into(),
        json!(visible_specs(&t.extra_specs, ctx.is_admin)),
    );
    if ctx.is_admin && which == TypeView::Read {
        v.insert("qos_specs_id".into(), json!(t.qos_specs_id));
    }
    if access_attribute {
        v.insert("os-volume-type-access:is_public".into(), json!(t.is_public));
    }
    Value::Object(v)
}

/// `{"volume_type": …}`.
pub fn show(t: &VolumeType, ctx: &ViewCtx<'_>, access_attribute: bool, which: TypeView) -> Value {
    json!({ "volume_type": detail(t, ctx, access_attribute, which) })
}

/// A page of types with `volume_type_links`.
pub fn list(types: &[VolumeType], ctx: &ViewCtx<'_>, limit: u32) -> Value {
    let items: Vec<Value> = types
        .iter()
        .map(|t| detail(t, ctx, true, TypeView::Read))
        .collect();
    let mut body = Map::new();
    body.insert("volume_types".into(), Value::Array(items));
    if let Some(links) = next_links(
        ctx,
        "types",
        types.last().map(|t| t.id.to_string()),
        types.len(),
        None,
        limit,
    ) {
        body.insert("volume_type_links".into(), links);
    }
    Value::Object(body)
}
