//! Views of groups and group snapshots (Cinder's `api/v3/views/groups.py`
//! and `group_snapshots.py`),
//! gated by the microversion as Tempest's strict schemas expect.

use clinker_types::VolumeId;
use clinker_types::group::{Group, GroupSnapshot};
use serde_json::{Map, Value, json};

use super::{Collection, ViewCtx, time};
use crate::microversion as mv;

/// A group without details (create responses and the plain list).
pub fn group_summary(group: &Group) -> Value {
    json!({"id": group.id.to_string(), "name": group.display_name})
}

/// What the detail of a group may show besides the row.
#[derive(Clone, Copy, Debug, Default)]
pub struct GroupExtras<'a> {
    /// The ids of its volumes (3.25 with `list_volume=true`).
    pub volumes: Option<&'a [VolumeId]>,
    /// Whether `project_id` may be shown (3.58,
    /// `group:group_project_attribute`).
    pub show_project: bool,
}

/// The detail of a group.
pub fn group_detail(group: &Group, ctx: &ViewCtx<'_>, extras: GroupExtras<'_>) -> Value {
    let mut g = Map::new();
    g.insert("id".into(), json!(group.id.to_string()));
    g.insert("status".into(), json!(group.status.as_str()));
    g.insert("availability_zone".into(), json!(group.availability_zone));
    g.insert("created_at".into(), time(Some(group.created_at)));
    g.insert("name".into(), json!(group.display_name));
    g.insert("description".into(), json!(group.display_description));
    g.insert("group_type".into(), json!(group.group_type_id.to_string()));
    g.insert(
        "volume_types".into(),
        json!(
            group
                .volume_type_ids
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        ),
    );
    if ctx.version.matches(mv::GROUP_SNAPSHOTS) {
        g.insert(
            "group_snapshot_id".into(),
            json!(group.group_snapshot_id.map(|i| i.to_string())),
        );
        g.insert(
            "source_group_id".into(),
            json!(group.source_group_id.map(|i| i.to_string())),
        );
    }
    if let Some(volumes) = extras.volumes
        && ctx.version.matches(mv::GROUP_VOLUME_LIST)
    {
        g.insert(
            "volumes".into(),
            json!(volumes.iter().map(ToString::to_string).collect::<Vec<_>>()),
        );
    }
    if ctx.version.matches(mv::GROUP_REPLICATION) {
        g.insert("replication_status".into(), json!(group.replication_status));
    }
    if ctx.version.matches(mv::GROUP_GROUPSNAPSHOT_PROJECT_ID) && extras.show_project {
        g.insert("project_id".into(), json!(group.project_id));
    }
    Value::Object(g)
}

/// `GET /groups[/detail]` bodies.
pub const GROUPS: Collection = Collection::new("groups", "group_links", "groups");

/// `GET /group_snapshots[/detail]` bodies.
pub const GROUP_SNAPSHOTS: Collection =
    Collection::new("group_snapshots", "group_snapshot_links", "group_snapshots");

/// A group snapshot without details; `group_type_id` is in Cinder's
/// create response (for migrated consistency groups) but not in its list.
pub fn group_snapshot_summary(group_snapshot: &GroupSnapshot, with_type: bool) -> Value {
    let mut s = Map::new();
    s.insert("id".into(), json!(group_snapshot.id.to_string()));
    s.insert("name".into(), json!(group_snapshot.display_name));
    if with_type {
        s.insert(
            "group_type_id".into(),
            json!(group_snapshot.group_type_id.to_string()),
        );
    }
    Value::Object(s)
}

/// The detail of a group snapshot.
pub fn group_snapshot_detail(
    group_snapshot: &GroupSnapshot,
    ctx: &ViewCtx<'_>,
    show_project: bool,
) -> Value {
    let mut s = Map::new();
    s.insert("id".into(), json!(group_snapshot.id.to_string()));
    s.insert(
        "group_id".into(),
        json!(group_snapshot.group_id.to_string()),
    );
    s.insert(
        "group_type_id".into(),
        json!(group_snapshot.group_type_id.to_string()),
    );
    s.insert("status".into(), json!(group_snapshot.status.as_str()));
    s.insert("created_at".into(), time(Some(group_snapshot.created_at)));
    s.insert("name".into(), json!(group_snapshot.display_name));
    s.insert(
        "description".into(),
        json!(group_snapshot.display_description),
    );
    if ctx.version.matches(mv::GROUP_GROUPSNAPSHOT_PROJECT_ID) && show_project {
        s.insert("project_id".into(), json!(group_snapshot.project_id));
    }
    Value::Object(s)
}
