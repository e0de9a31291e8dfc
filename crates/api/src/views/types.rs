//! Volume type and group type views (Cinder's `api/views/types.py` plus
//! the `os-volume-type-access:is_public` attribute of
//! `volume_type_access`, and `api/v3/views/group_types.py`).

use std::collections::BTreeMap;

use clinker_types::group::GroupType;
use clinker_types::model::VolumeType;
use serde_json::{Map, Value, json};

use super::Collection;

/// `GET /types` bodies.
pub const VOLUME_TYPES: Collection = Collection::new("volume_types", "volume_type_links", "types");

/// `GET /group_types` bodies.
pub const GROUP_TYPES: Collection =
    Collection::new("group_types", "group_type_links", "group_types");

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

/// Which response a type view is for: Cinder renders show and list with
/// its v3 view (`qos_specs_id` for admins) but create and update with the
/// older `types_manage` view, which has no `qos_specs_id` (Tempest's create
/// schema refuses the key); update has no `os-volume-type-access:is_public`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeView {
    /// `GET /types[/{id}]`.
    Read,
    /// `POST /types`.
    Created,
    /// `PUT /types/{id}`.
    Updated,
}

/// One volume type; `privileged` (an administrator) sees every extra spec
/// and, when reading, `qos_specs_id`.
pub fn volume_type(t: &VolumeType, privileged: bool, which: TypeView) -> Value {
    let mut v = Map::new();
    v.insert("id".into(), json!(t.id.to_string()));
    v.insert("name".into(), json!(t.name));
    v.insert("is_public".into(), json!(t.is_public));
    v.insert("description".into(), json!(t.description));
    v.insert(
        "extra_specs".into(),
        json!(visible_specs(&t.extra_specs, privileged)),
    );
    if privileged && which == TypeView::Read {
        v.insert("qos_specs_id".into(), json!(t.qos_specs_id));
    }
    if which != TypeView::Updated {
        v.insert("os-volume-type-access:is_public".into(), json!(t.is_public));
    }
    Value::Object(v)
}

/// One group type; `group_specs` only for callers allowed
/// `group:access_group_types_specs` (`privileged`).
pub fn group_type(t: &GroupType, privileged: bool) -> Value {
    let mut v = Map::new();
    v.insert("id".into(), json!(t.id.to_string()));
    v.insert("name".into(), json!(t.name));
    v.insert("description".into(), json!(t.description));
    v.insert("is_public".into(), json!(t.is_public));
    if privileged {
        v.insert("group_specs".into(), json!(t.group_specs));
    }
    Value::Object(v)
}
