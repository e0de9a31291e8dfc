//! List filters of volumes and snapshots: from query parameters to the
//! database's [`VolumeQuery`] / [`SnapshotQuery`], with Cinder's rules
//! (`api/common.py::reject_invalid_filters`, `volume/api.py::
//! check_volume_filters`, `db/api.py::_process_volume_filters`).
//!
//! A filter key Cinder cannot map onto a column makes the query match
//! nothing (its `is_valid_model_filters`); that is returned as `None`.
//!
//! Non-admin callers are restricted to Cinder's default
//! `resource_filters.json` entries ([`allowed_filters`]); `all_tenants`
//! only widens the scope for administrators, and a marker is looked up in
//! the caller's scope, so another project's id is "not found".

use clinker_db::{
    BackupColumn, BackupQuery, CompareOp, FilterValue, SnapshotColumn, SnapshotQuery, VolumeColumn,
    VolumeQuery,
};
use clinker_types::Timestamp;
use clinker_types::backup::Backup;
use clinker_types::model::{Snapshot, Volume};
use serde_json::Value;

use super::collection::{ListParams, sort_columns};
use crate::fault::{ApiError, ApiResult};
use crate::listing::{invalid_sort_key, literal_eval};
use crate::microversion::{self as mv, ApiVersion};
use crate::request::Req;
use crate::validation::{bool_from_str, bool_param};

/// The resources with configurable filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// Volumes.
    Volume,
    /// Snapshots.
    Snapshot,
    /// User messages.
    Message,
    /// Backups.
    Backup,
}

/// The filters non-admins may use (Cinder's default `resource_filters.json`).
pub fn allowed_filters(resource: Resource) -> &'static [&'static str] {
    match resource {
        Resource::Volume => &[
            "name",
            "status",
            "metadata",
            "bootable",
            "migration_status",
            "availability_zone",
            "group_id",
            "size",
            "created_at",
            "updated_at",
            "consumes_quota",
        ],
        Resource::Snapshot => &[
            "name",
            "status",
            "volume_id",
            "metadata",
            "availability_zone",
            "consumes_quota",
        ],
        Resource::Backup => &["name", "status", "volume_id"],
        Resource::Message => &[
            "resource_uuid",
            "resource_type",
            "event_id",
            "request_id",
            "message_level",
        ],
    }
}

/// Cinder's `reject_invalid_filters` (3.31+): filter keys must be ASCII;
/// a non-admin may only use the resource's configured filters — with like
/// filtering (3.34) a key is also accepted when `key~` is configured,
/// which Cinder's default `resource_filters.json` never does, so `name~`
/// is refused to non-admins there too. `all_tenants` is dropped silently
/// (cinderclient always sends it, Bug #1917574). Returns the filters left.
///
/// # Errors
/// 400 "Invalid filters X,Y are found in query options.".
pub fn reject_invalid_filters(
    req: &Req,
    resource: Resource,
    mut filters: Vec<(String, String)>,
) -> ApiResult<Vec<(String, String)>> {
    if filters.iter().any(|(k, _)| !k.is_ascii()) {
        return Err(ApiError::bad_request(
            "Filter keys can only contain ASCII characters.",
        ));
    }
    if req.is_admin() {
        return Ok(filters);
    }
    let like = req.version.matches(mv::LIKE_FILTER);
    let allowed = allowed_filters(resource);
    let configured = |key: &str| allowed.contains(&key);
    filters.retain(|(k, _)| k != "all_tenants");
    let invalid: Vec<&str> = filters
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !(configured(k) || (like && configured(&format!("{k}~")))))
        .collect();
    if !invalid.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Invalid filters {} are found in query options.",
            invalid.join(",")
        )));
    }
    Ok(filters)
}

/// Cinder's `process_general_filtering`: from 3.31 unknown filters of
/// non-admins are refused; before that they are silently dropped.
fn general_filtering(
    req: &Req,
    resource: Resource,
    mut filters: Vec<(String, String)>,
    legacy_allowed: &[&str],
    added_later: &[(ApiVersion, &str)],
) -> ApiResult<Vec<(String, String)>> {
    if filters.iter().any(|(k, _)| !k.is_ascii()) {
        return Err(ApiError::bad_request(
            "Filter keys can only contain ASCII characters.",
        ));
    }
    if req.version.matches(mv::RESOURCE_FILTER) {
        filters = reject_invalid_filters(req, resource, filters)?;
        for (key, _) in &mut filters {
            let converted = match key.as_str() {
                "name~" => Some("display_name~"),
                "description~" => Some("display_description~"),
                "consumes_quota" => Some("use_quota"),
                _ => None,
            };
            if let Some(c) = converted {
                *key = c.to_owned();
            }
        }
    } else {
        filters.retain(|(k, _)| {
            !added_later
                .iter()
                .any(|(version, field)| k == field && req.version.is_before(*version))
        });
        if !req.is_admin() {
            filters.retain(|(k, _)| legacy_allowed.contains(&k.as_str()));
        }
    }
    Ok(filters)
}

/// Pops `all_tenants`: the project scope of the list (`None` = all).
fn project_scope(
    req: &Req,
    filters: &mut Vec<(String, String)>,
    strict: bool,
) -> ApiResult<Option<String>> {
    let mut all = false;
    if let Some(pos) = filters.iter().position(|(k, _)| k == "all_tenants") {
        let (_, value) = filters.remove(pos);
        all = if strict {
            bool_param("all_tenants", Some(&value))?
        } else {
            bool_from_str(&value).unwrap_or(false)
        };
    }
    Ok(if all && req.is_admin() {
        None
    } else {
        Some(req.context.project_id.clone())
    })
}

/// Cinder's `_handle_time_comparison_filters`: `gt:2020-01-01T00:00:00,lte:…`.
fn time_comparisons(text: &str) -> ApiResult<Vec<FilterValue>> {
    let mut out = Vec::new();
    for unit in text.split(',') {
        let (op, time) = match unit.split_once(':') {
            Some((op, time)) => (op, time),
            None => (unit, unit),
        };
        let op = match op {
            "gt" => CompareOp::Gt,
            "gte" => CompareOp::Gte,
            "lt" => CompareOp::Lt,
            "lte" => CompareOp::Lte,
            "eq" => CompareOp::Eq,
            "neq" => CompareOp::Neq,
            other => return Err(ApiError::bad_request(format!("Invalid {other} operator"))),
        };
        let ts = Timestamp::parse_iso8601(time)
            .ok_or_else(|| ApiError::bad_request(format!("Invalid {time} value")))?;
        out.push(FilterValue::Compare(op, ts.as_micros()));
    }
    Ok(out)
}

/// A decoded filter value (Cinder's `ast.literal_eval`, falling back to
/// the string).
fn literal(text: &str) -> Value {
    literal_eval(text).unwrap_or_else(|| Value::String(text.to_owned()))
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        other => other.to_string(),
    }
}

fn exact(value: Value) -> FilterValue {
    match value {
        Value::Array(items) => FilterValue::In(items.iter().map(scalar_text).collect()),
        Value::Number(n) if n.is_i64() => FilterValue::EqInt(n.as_i64().unwrap_or_default()),
        other => FilterValue::Eq(scalar_text(&other)),
    }
}

/// A boolean filter (`check_volume_filters`): strict from 3.2.
fn boolean_filter(key: &str, value: &str, strict: bool) -> ApiResult<FilterValue> {
    let flag = if strict {
        bool_from_str(value).ok_or_else(|| ApiError::invalid_input(format!("'{key} = {value}'")))?
    } else if ["False", "false", "FALSE"].contains(&value) {
        false
    } else {
        // Python's bool() of any other string: true unless empty.
        !value.is_empty()
    };
    Ok(FilterValue::EqInt(i64::from(flag)))
}

fn metadata_pairs(value: &str) -> Option<Vec<(String, String)>> {
    let Some(Value::Object(map)) = literal_eval(value) else {
        return None;
    };
    Some(
        map.iter()
            .map(|(k, v)| (k.clone(), scalar_text(v)))
            .collect(),
    )
}

fn volume_column(key: &str) -> Option<VolumeColumn> {
    Some(match key {
        "id" => VolumeColumn::Id,
        "display_name" => VolumeColumn::DisplayName,
        "display_description" => VolumeColumn::DisplayDescription,
        "status" => VolumeColumn::Status,
        "attach_status" => VolumeColumn::AttachStatus,
        "bootable" => VolumeColumn::Bootable,
        "availability_zone" => VolumeColumn::AvailabilityZone,
        "size" => VolumeColumn::Size,
        "created_at" => VolumeColumn::CreatedAt,
        "updated_at" => VolumeColumn::UpdatedAt,
        "host" => VolumeColumn::Host,
        "user_id" => VolumeColumn::UserId,
        "project_id" => VolumeColumn::ProjectId,
        "volume_type_id" => VolumeColumn::VolumeTypeId,
        "group_id" => VolumeColumn::GroupId,
        "migration_status" => VolumeColumn::MigrationStatus,
        "use_quota" => VolumeColumn::UseQuota,
        "snapshot_id" => VolumeColumn::SnapshotId,
        "source_volid" => VolumeColumn::SourceVolid,
        "multiattach" => VolumeColumn::Multiattach,
        "replication_status" => VolumeColumn::ReplicationStatus,
        _ => return None,
    })
}

/// A plain filter on a column (its value as `exact` makes it), or with a
/// `~` key a like filter (3.34); `None` for a key that is no column.
fn column_filter<C: Copy>(
    key: &str,
    value: String,
    column: impl Fn(&str) -> Option<C>,
    exact: impl FnOnce(C, String) -> FilterValue,
) -> Option<(C, FilterValue)> {
    let (base, like) = match key.strip_suffix('~') {
        Some(base) => (base, true),
        None => (key, false),
    };
    let column = column(base)?;
    let filter = if like {
        FilterValue::Contains(value)
    } else {
        exact(column, value)
    };
    Some((column, filter))
}

/// `name` is `display_name` as a sort key or filter.
fn column_name(key: &str) -> &str {
    if key == "name" { "display_name" } else { key }
}

/// Builds the volume list query; `None` when no volume can match.
///
/// # Errors
/// 400 for invalid filters, values or sort keys; 404 for a marker that is
/// not a volume id.
pub fn volume_query(req: &Req, params: &ListParams) -> ApiResult<Option<VolumeQuery>> {
    let sort = sort_columns(&params.sort, |key| volume_column(column_name(key)))?;
    let mut filters = general_filtering(
        req,
        Resource::Volume,
        params.filters.clone(),
        allowed_filters(Resource::Volume),
        &[
            (mv::VOLUME_LIST_GLANCE_METADATA, "glance_metadata"),
            (mv::VOLUME_LIST_GROUP, "group_id"),
            (mv::VOLUME_TIME_COMPARISON_FILTER, "created_at"),
            (mv::VOLUME_TIME_COMPARISON_FILTER, "updated_at"),
            (mv::USE_QUOTA, "use_quota"),
        ],
    )?;
    let project_id = project_scope(req, &mut filters, true)?;
    let page = params.db_page::<Volume>()?;
    let strict_booleans = req.version.matches(mv::VOLUME_LIST_BOOTABLE);
    let mut query = VolumeQuery {
        project_id,
        sort,
        page,
        // Cinder's `no_migration_targets` for everyone but administrators.
        hide_migration_targets: !req.is_admin(),
        ..VolumeQuery::default()
    };
    for (key, value) in filters {
        let key = column_name(&key).to_owned();
        match key.as_str() {
            "metadata" | "glance_metadata" => {
                let Some(pairs) = metadata_pairs(&value) else {
                    return Ok(None);
                };
                if key == "metadata" {
                    query.metadata.extend(pairs);
                } else {
                    query.glance_metadata.extend(pairs);
                }
            }
            "created_at" | "updated_at" => {
                let column = volume_column(&key).ok_or_else(invalid_sort_key)?;
                for comparison in time_comparisons(&value)? {
                    query.filters.push((column, comparison));
                }
            }
            "bootable" | "multiattach" | "use_quota" => {
                let column = volume_column(&key).ok_or_else(invalid_sort_key)?;
                let strict = strict_booleans || key == "use_quota";
                query
                    .filters
                    .push((column, boolean_filter(&key, &value, strict)?));
            }
            "display_name" => {
                query
                    .filters
                    .push((VolumeColumn::DisplayName, FilterValue::Eq(value)));
            }
            _ => {
                let filter = column_filter(&key, value, volume_column, |_, v| exact(literal(&v)));
                let Some(filter) = filter else {
                    return Ok(None);
                };
                query.filters.push(filter);
            }
        }
    }
    Ok(Some(query))
}

fn snapshot_column(key: &str) -> Option<SnapshotColumn> {
    Some(match key {
        "id" => SnapshotColumn::Id,
        "display_name" => SnapshotColumn::DisplayName,
        "status" => SnapshotColumn::Status,
        "volume_id" => SnapshotColumn::VolumeId,
        "project_id" => SnapshotColumn::ProjectId,
        "user_id" => SnapshotColumn::UserId,
        "volume_size" => SnapshotColumn::VolumeSize,
        "created_at" => SnapshotColumn::CreatedAt,
        "updated_at" => SnapshotColumn::UpdatedAt,
        "use_quota" => SnapshotColumn::UseQuota,
        "group_snapshot_id" => SnapshotColumn::GroupSnapshotId,
        "availability_zone" => SnapshotColumn::AvailabilityZone,
        _ => return None,
    })
}

/// Builds the snapshot list query; `None` when no snapshot can match.
///
/// # Errors
/// 400 for invalid filters or sort keys; 404 for a marker that is not a
/// snapshot id.
pub fn snapshot_query(req: &Req, params: &ListParams) -> ApiResult<Option<SnapshotQuery>> {
    let sort = sort_columns(&params.sort, |key| {
        snapshot_column(column_name(key)).filter(|c| *c != SnapshotColumn::AvailabilityZone)
    })?;
    let mut filters = general_filtering(
        req,
        Resource::Snapshot,
        params.filters.clone(),
        &["status", "volume_id", "name", "metadata"],
        &[
            (mv::SNAPSHOT_LIST_METADATA_FILTER, "metadata"),
            (mv::USE_QUOTA, "use_quota"),
        ],
    )?;
    let project_id = project_scope(req, &mut filters, false)?;
    let page = params.db_page::<Snapshot>()?;
    let mut query = SnapshotQuery {
        project_id,
        sort,
        page,
        ..SnapshotQuery::default()
    };
    for (key, value) in filters {
        let key = column_name(&key).to_owned();
        match key.as_str() {
            "metadata" => {
                let Some(pairs) = metadata_pairs(&value) else {
                    return Ok(None);
                };
                query.metadata.extend(pairs);
            }
            "use_quota" => {
                query.filters.push((
                    SnapshotColumn::UseQuota,
                    boolean_filter(&key, &value, true)?,
                ));
            }
            _ => {
                let filter = column_filter(&key, value, snapshot_column, |column, v| {
                    if column == SnapshotColumn::DisplayName {
                        FilterValue::Eq(v)
                    } else {
                        exact(Value::String(v))
                    }
                });
                let Some(filter) = filter else {
                    return Ok(None);
                };
                query.filters.push(filter);
            }
        }
    }
    Ok(Some(query))
}

fn backup_column(key: &str) -> Option<BackupColumn> {
    Some(match key {
        "id" => BackupColumn::Id,
        "display_name" => BackupColumn::DisplayName,
        "status" => BackupColumn::Status,
        "volume_id" => BackupColumn::VolumeId,
        "project_id" => BackupColumn::ProjectId,
        "user_id" => BackupColumn::UserId,
        "size" => BackupColumn::Size,
        "availability_zone" => BackupColumn::AvailabilityZone,
        "parent_id" => BackupColumn::ParentId,
        "snapshot_id" => BackupColumn::SnapshotId,
        "host" => BackupColumn::Host,
        "container" => BackupColumn::Container,
        "data_timestamp" => BackupColumn::DataTimestamp,
        "created_at" => BackupColumn::CreatedAt,
        "updated_at" => BackupColumn::UpdatedAt,
        _ => return None,
    })
}

/// Builds the backup list query (Cinder's `BackupsController._get_backups`
/// with `process_general_filtering('backup')`); `None` when no backup can
/// match.
///
/// # Errors
/// 400 for invalid filters or sort keys; 404 for a marker that is not a
/// backup id.
pub fn backup_query(req: &Req, params: &ListParams) -> ApiResult<Option<BackupQuery>> {
    let sort = sort_columns(&params.sort, |key| backup_column(column_name(key)))?;
    let mut filters = general_filtering(
        req,
        Resource::Backup,
        params.filters.clone(),
        &["name", "status", "volume_id"],
        &[],
    )?;
    let project_id = project_scope(req, &mut filters, false)?;
    let page = params.db_page::<Backup>()?;
    let mut query = BackupQuery {
        project_id,
        sort,
        page,
        ..BackupQuery::default()
    };
    for (key, value) in filters {
        let key = column_name(&key).to_owned();
        if key == "metadata" {
            let Some(pairs) = metadata_pairs(&value) else {
                return Ok(None);
            };
            query.metadata.extend(pairs);
            continue;
        }
        let filter = column_filter(&key, value, backup_column, |column, v| {
            if column == BackupColumn::DisplayName {
                FilterValue::Eq(v)
            } else {
                exact(Value::String(v))
            }
        });
        let Some(filter) = filter else {
            return Ok(None);
        };
        query.filters.push(filter);
    }
    Ok(Some(query))
}
