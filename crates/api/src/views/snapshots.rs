//! Snapshot views (Cinder's `api/views/snapshots.py`, its v3 additions and
//! the `os-extended-snapshot-attributes` merged into show and detail).

use clinker_types::model::Snapshot;
use serde_json::{Map, Value, json};

use super::{Collection, ViewCtx, time};
use crate::microversion as mv;

/// The base fields every snapshot view has.
pub fn summary(snapshot: &Snapshot) -> Map<String, Value> {
    let mut s = Map::new();
    s.insert("id".into(), json!(snapshot.id.to_string()));
    s.insert("created_at".into(), time(Some(snapshot.created_at)));
    s.insert("updated_at".into(), time(snapshot.updated_at));
    s.insert("name".into(), json!(snapshot.display_name));
    s.insert("description".into(), json!(snapshot.display_description));
    s.insert("volume_id".into(), json!(snapshot.volume_id.to_string()));
    s.insert("status".into(), json!(snapshot.status.as_str()));
    s.insert("size".into(), json!(snapshot.volume_size));
    s.insert("metadata".into(), json!(snapshot.metadata));
    s
}

/// The v3 detail: the summary plus the version-gated fields, and with
/// `extended` the two extension attributes.
pub fn detail(snapshot: &Snapshot, ctx: &ViewCtx<'_>, extended: bool) -> Value {
    let mut s = summary(snapshot);
    if ctx.version.matches(mv::GROUP_SNAPSHOTS) {
        s.insert(
            "group_snapshot_id".into(),
            json!(snapshot.group_snapshot_id),
        );
    }
    if ctx.version.matches(mv::SNAPSHOT_LIST_USER_ID) {
        s.insert("user_id".into(), json!(snapshot.user_id));
    }
    if ctx.version.matches(mv::USE_QUOTA) {
        s.insert("consumes_quota".into(), json!(snapshot.use_quota));
    }
    if extended {
        s.insert(
            "os-extended-snapshot-attributes:project_id".into(),
            json!(snapshot.project_id),
        );
        s.insert(
            "os-extended-snapshot-attributes:progress".into(),
            json!(snapshot.progress),
        );
    }
    Value::Object(s)
}

/// `{"snapshot": detail}`.
pub fn show(snapshot: &Snapshot, ctx: &ViewCtx<'_>, extended: bool) -> Value {
    json!({ "snapshot": detail(snapshot, ctx, extended) })
}

/// `GET /snapshots[/detail]` bodies.
pub const SNAPSHOTS: Collection =
    Collection::new("snapshots", "snapshots_links", "snapshots").detail_at("snapshots/detail");

/// A page of snapshots.
pub fn list(
    snapshots: &[Snapshot],
    ctx: &ViewCtx<'_>,
    detailed: bool,
    count: Option<i64>,
    limit: u32,
) -> Value {
    let items: Vec<Value> = snapshots
        .iter()
        .map(|s| {
            if detailed {
                detail(s, ctx, true)
            } else {
                Value::Object(summary(s))
            }
        })
        .collect();
    let links = SNAPSHOTS.links(
        ctx,
        detailed,
        snapshots.last().map(|s| s.id.to_string()),
        snapshots.len(),
        count,
        limit,
    );
    SNAPSHOTS.page(items, links, count).into_value()
}
