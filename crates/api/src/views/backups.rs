//! Backup views (Cinder's `api/views/backups.py` and the
//! `os-backup-project-attr` attribute of `api/v3/backups.py`).

use clinker_types::backup::Backup;
use serde_json::{Map, Value, json};

use super::{Collection, ViewCtx, time};
use crate::microversion as mv;

/// `{id, links, name}`: the list and the create response.
pub fn summary(backup: &Backup, ctx: &ViewCtx<'_>) -> Value {
    let id = backup.id.to_string();
    json!({
        "id": id,
        "links": ctx.links.item_links("backups", &id),
        "name": backup.display_name,
    })
}

/// The detail, with the version-gated fields; `project_attribute` adds
/// `os-backup-project-attr:project_id` (3.18, `backup:backup_project_attribute`).
pub fn detail(backup: &Backup, ctx: &ViewCtx<'_>, project_attribute: bool) -> Value {
    let id = backup.id.to_string();
    let mut b = Map::new();
    b.insert("availability_zone".into(), json!(backup.availability_zone));
    b.insert("container".into(), json!(backup.container));
    b.insert("created_at".into(), time(Some(backup.created_at)));
    b.insert("updated_at".into(), time(backup.updated_at));
    b.insert("description".into(), json!(backup.display_description));
    b.insert("fail_reason".into(), json!(backup.fail_reason));
    b.insert("id".into(), json!(id));
    b.insert("links".into(), ctx.links.item_links("backups", &id));
    b.insert("name".into(), json!(backup.display_name));
    b.insert("object_count".into(), json!(backup.object_count));
    b.insert("size".into(), json!(backup.size));
    b.insert("status".into(), json!(backup.status.as_str()));
    b.insert("volume_id".into(), json!(backup.volume_id.to_string()));
    b.insert("is_incremental".into(), json!(backup.is_incremental()));
    b.insert(
        "has_dependent_backups".into(),
        json!(backup.has_dependent_backups()),
    );
    b.insert(
        "snapshot_id".into(),
        json!(backup.snapshot_id.map(|s| s.to_string())),
    );
    b.insert("data_timestamp".into(), time(Some(backup.data_timestamp)));
    if ctx.version.matches(mv::BACKUP_METADATA) {
        b.insert("metadata".into(), json!(backup.metadata));
    }
    if ctx.version.matches(mv::BACKUP_PROJECT_USER_ID) {
        b.insert("user_id".into(), json!(backup.user_id));
    }
    if ctx.version.matches(mv::ENCRYPTION_KEY_ID_IN_DETAILS)
        && let Some(key) = &backup.encryption_key_id
    {
        b.insert("encryption_key_id".into(), json!(key));
    }
    if project_attribute && ctx.version.matches(mv::BACKUP_PROJECT) {
        b.insert(
            "os-backup-project-attr:project_id".into(),
            json!(backup.project_id),
        );
    }
    Value::Object(b)
}

/// `{"backup": detail}`.
pub fn show(backup: &Backup, ctx: &ViewCtx<'_>, project_attribute: bool) -> Value {
    json!({ "backup": detail(backup, ctx, project_attribute) })
}

/// `{"backup": summary}` (the create response).
pub fn created(backup: &Backup, ctx: &ViewCtx<'_>) -> Value {
    json!({ "backup": summary(backup, ctx) })
}

/// `GET /backups[/detail]` bodies.
pub const BACKUPS: Collection =
    Collection::new("backups", "backups_links", "backups").detail_at("backups/detail");

/// A page of backups.
pub fn list(
    backups: &[Backup],
    ctx: &ViewCtx<'_>,
    detailed: bool,
    project_attribute: bool,
    count: Option<i64>,
    limit: u32,
) -> Value {
    let items: Vec<Value> = backups
        .iter()
        .map(|b| {
            if detailed {
                detail(b, ctx, project_attribute)
            } else {
                summary(b, ctx)
            }
        })
        .collect();
    let links = BACKUPS.links(
        ctx,
        detailed,
        backups.last().map(|b| b.id.to_string()),
        backups.len(),
        count,
        limit,
    );
    BACKUPS.page(items, links, count).into_value()
}

/// `{"restore": {backup_id, volume_id, volume_name}}`.
pub fn restore(backup_id: &str, volume_id: &str, volume_name: Option<&str>) -> Value {
    json!({ "restore": {
        "backup_id": backup_id,
        "volume_id": volume_id,
        "volume_name": volume_name,
    }})
}
