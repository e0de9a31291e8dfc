//! Views of what hangs off volume types: QoS specs (Cinder's
//! `api/views/qos_specs.py`), default types (`api/v3/views/default_types.py`)
//! and encryption specs (the controller returns its rows as they are).

use clinker_db::QosAssociation;
use clinker_types::volume_type_extras::{DefaultVolumeType, QosSpecs};
use serde_json::{Map, Value, json};

use super::{ViewCtx, next_links};

/// The collection QoS specs links point into.
const QOS_COLLECTION: &str = "qos-specs";

fn qos_body(q: &QosSpecs) -> Value {
    json!({
        "id": q.id.to_string(),
        "name": q.name,
        "consumer": q.consumer.as_str(),
        "specs": q.specs,
    })
}

/// `{"qos_specs": {...}, "links": [...]}`.
pub fn qos_detail(q: &QosSpecs, ctx: &ViewCtx<'_>) -> Value {
    json!({
        "qos_specs": qos_body(q),
        "links": ctx.links.item_links(QOS_COLLECTION, &q.id.to_string()),
    })
}

/// `{"qos_specs": [...]}` with `qos_specs_links` when the page is full.
pub fn qos_list(specs: &[QosSpecs], ctx: &ViewCtx<'_>, limit: u32) -> Value {
    let mut body = Map::new();
    body.insert(
        "qos_specs".into(),
        Value::Array(specs.iter().map(qos_body).collect()),
    );
    if let Some(links) = next_links(
        ctx,
        QOS_COLLECTION,
        specs.last().map(|q| q.id.to_string()),
        specs.len(),
        None,
        limit,
    ) {
        body.insert("qos_specs_links".into(), links);
    }
    Value::Object(body)
}

/// `{"qos_associations": [{association_type, name, id}]}`.
pub fn qos_associations(associations: &[QosAssociation]) -> Value {
    let items: Vec<Value> = associations
        .iter()
        .map(|a| {
            json!({
                "association_type": "volume_type",
                "name": a.name,
                "id": a.volume_type_id.to_string(),
            })
        })
        .collect();
    json!({ "qos_associations": items })
}

fn default_type_body(d: &DefaultVolumeType) -> Value {
    json!({
        "project_id": d.project_id,
        "volume_type_id": d.volume_type_id.to_string(),
    })
}

/// `{"default_type": {project_id, volume_type_id}}`.
pub fn default_type(d: &DefaultVolumeType) -> Value {
    json!({ "default_type": default_type_body(d) })
}

/// `{"default_types": [...]}`.
pub fn default_types(all: &[DefaultVolumeType]) -> Value {
    json!({ "default_types": all.iter().map(default_type_body).collect::<Vec<_>>() })
}
