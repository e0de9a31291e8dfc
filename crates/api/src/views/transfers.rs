//! Transfer views (Cinder's `api/views/transfers.py`). Links point into
//! `os-volume-transfer` whichever path served the request, as Cinder's do.

use clinker_types::transfer::Transfer;
use serde_json::{Map, Value, json};

use super::{ViewCtx, next_links, time};
use crate::microversion as mv;

const COLLECTION: &str = "os-volume-transfer";

fn links(t: &Transfer, ctx: &ViewCtx<'_>) -> Value {
    ctx.links.item_links(COLLECTION, &t.id.to_string())
}

/// The summary of a transfer (lists and the accept response).
pub fn summary(t: &Transfer, ctx: &ViewCtx<'_>) -> Value {
    json!({
        "id": t.id.to_string(),
        "volume_id": t.volume_id.to_string(),
        "name": t.display_name,
        "links": links(t, ctx),
    })
}

/// The version-dependent fields of the detail and create views.
fn versioned(t: &Transfer, ctx: &ViewCtx<'_>, body: &mut Map<String, Value>) {
    if ctx.version.matches(mv::TRANSFER_WITH_SNAPSHOTS) {
        body.insert("no_snapshots".into(), json!(t.no_snapshots));
    }
    if ctx.version.matches(mv::TRANSFER_WITH_HISTORY) {
        body.insert(
            "destination_project_id".into(),
            json!(t.destination_project_id),
        );
        body.insert("source_project_id".into(), json!(t.source_project_id));
        body.insert("accepted".into(), json!(t.accepted));
    }
}

/// The detail of a transfer (without the envelope).
pub fn detail(t: &Transfer, ctx: &ViewCtx<'_>) -> Value {
    let mut body = Map::new();
    body.insert("id".into(), json!(t.id.to_string()));
    body.insert("created_at".into(), time(Some(t.created_at)));
    body.insert("name".into(), json!(t.display_name));
    body.insert("volume_id".into(), json!(t.volume_id.to_string()));
    body.insert("links".into(), links(t, ctx));
    versioned(t, ctx, &mut body);
    Value::Object(body)
}

/// `{"transfer": detail}`.
pub fn show(t: &Transfer, ctx: &ViewCtx<'_>) -> Value {
    json!({ "transfer": detail(t, ctx) })
}

/// The create response: the detail plus the auth key, shown only here.
pub fn created(t: &Transfer, auth_key: &str, ctx: &ViewCtx<'_>) -> Value {
    let mut body = Map::new();
    body.insert("id".into(), json!(t.id.to_string()));
    body.insert("created_at".into(), time(Some(t.created_at)));
    body.insert("name".into(), json!(t.display_name));
    body.insert("volume_id".into(), json!(t.volume_id.to_string()));
    body.insert("auth_key".into(), json!(auth_key));
    body.insert("links".into(), links(t, ctx));
    versioned(t, ctx, &mut body);
    json!({ "transfer": Value::Object(body) })
}

/// `{"transfer": summary}` (the accept response).
pub fn accepted(t: &Transfer, ctx: &ViewCtx<'_>) -> Value {
    json!({ "transfer": summary(t, ctx) })
}

/// A page of transfers with `transfers_links` when it is full.
pub fn list(transfers: &[Transfer], ctx: &ViewCtx<'_>, detailed: bool, limit: u32) -> Value {
    let items: Vec<Value> = transfers
        .iter()
        .map(|t| {
            if detailed {
                detail(t, ctx)
            } else {
                summary(t, ctx)
            }
        })
        .collect();
    let mut body = Map::new();
    body.insert("transfers".into(), Value::Array(items));
    if let Some(links) = next_links(
        ctx,
        COLLECTION,
        transfers.last().map(|t| t.id.to_string()),
        transfers.len(),
        None,
        limit,
    ) {
        body.insert("transfers_links".into(), links);
    }
    Value::Object(body)
}
