//! Row decoding of group types, groups and group snapshots. As in
//! `rows.rs`, every column is read by name.

use std::collections::BTreeMap;
use std::str::FromStr;

use clinker_types::Timestamp;
use clinker_types::group::{Group, GroupSnapshot, GroupType};
use clinker_types::group_status::{GroupSnapshotStatus, GroupStatus};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::DbError;

pub(crate) const GROUP_COLUMNS: &str = "g.id, g.user_id, g.project_id, g.host, g.cluster_name, \
     g.availability_zone, g.status, g.display_name, g.display_description, g.group_type_id, \
     g.group_snapshot_id, g.source_group_id, g.replication_status, g.created_at, g.updated_at";

pub(crate) const GROUP_SNAPSHOT_COLUMNS: &str = "gs.id, gs.group_id, gs.user_id, gs.project_id, \
     gs.status, gs.display_name, gs.display_description, gs.group_type_id, gs.created_at, \
     gs.updated_at, (SELECT g.host FROM volume_groups g WHERE g.id = gs.group_id) AS host";

fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T, DbError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(name)
        .map_err(|e| DbError::Internal(format!("column {name}: {e}")))
}

fn parse<T: FromStr>(text: &str, what: &str) -> Result<T, DbError> {
    text.parse()
        .map_err(|_| DbError::Internal(format!("corrupt {what} {text:?} in database")))
}

fn opt_parse<T: FromStr>(text: Option<String>, what: &str) -> Result<Option<T>, DbError> {
    text.map(|t| parse(&t, what)).transpose()
}

pub(crate) fn group_type(row: &AnyRow) -> Result<GroupType, DbError> {
    let id: String = col(row, "id")?;
    Ok(GroupType {
        id: parse(&id, "group type id")?,
        name: col(row, "name")?,
        description: col(row, "description")?,
        is_public: col::<i64>(row, "is_public")? != 0,
        group_specs: BTreeMap::new(),
        created_at: Timestamp(col(row, "created_at")?),
        updated_at: col::<Option<i64>>(row, "updated_at")?.map(Timestamp),
    })
}

pub(crate) fn group(row: &AnyRow) -> Result<Group, DbError> {
    let id: String = col(row, "id")?;
    let status: String = col(row, "status")?;
    let type_id: String = col(row, "group_type_id")?;
    Ok(Group {
        id: parse(&id, "group id")?,
        user_id: col(row, "user_id")?,
        project_id: col(row, "project_id")?,
        host: col(row, "host")?,
        cluster_name: col(row, "cluster_name")?,
        availability_zone: col(row, "availability_zone")?,
        status: parse::<GroupStatus>(&status, "group status")?,
        display_name: col(row, "display_name")?,
        display_description: col(row, "display_description")?,
        group_type_id: parse(&type_id, "group type id")?,
        group_snapshot_id: opt_parse(col(row, "group_snapshot_id")?, "group snapshot id")?,
        source_group_id: opt_parse(col(row, "source_group_id")?, "group id")?,
        replication_status: col(row, "replication_status")?,
        volume_type_ids: Vec::new(),
        created_at: Timestamp(col(row, "created_at")?),
        updated_at: col::<Option<i64>>(row, "updated_at")?.map(Timestamp),
    })
}

pub(crate) fn group_snapshot(row: &AnyRow) -> Result<GroupSnapshot, DbError> {
    let id: String = col(row, "id")?;
    let group_id: String = col(row, "group_id")?;
    let status: String = col(row, "status")?;
    let type_id: String = col(row, "group_type_id")?;
    Ok(GroupSnapshot {
        id: parse(&id, "group snapshot id")?,
        group_id: parse(&group_id, "group id")?,
        user_id: col(row, "user_id")?,
        project_id: col(row, "project_id")?,
        status: parse::<GroupSnapshotStatus>(&status, "group snapshot status")?,
        display_name: col(row, "display_name")?,
        display_description: col(row, "display_description")?,
        group_type_id: parse(&type_id, "group type id")?,
        host: col(row, "host")?,
        created_at: Timestamp(col(row, "created_at")?),
        updated_at: col::<Option<i64>>(row, "updated_at")?.map(Timestamp),
    })
}
