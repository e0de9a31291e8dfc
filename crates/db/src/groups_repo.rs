//! [`GroupRepository`] for [`Db`].

use std::collections::BTreeMap;

use clinker_types::group::Group;
use clinker_types::group_status::{GroupStatus, GroupTransition};
use clinker_types::model::{JournalResource, Volume};
use clinker_types::status::VolumeTransition;
use clinker_types::{AttachStatus, GroupId, VolumeId, VolumeStatus, VolumeTypeId};
use sqlx::AnyConnection;

use crate::error::DbError;
use crate::group_rows::{self, GROUP_COLUMNS};
use crate::groups::{
    GroupDeleteEnd, GroupDeleteStart, GroupQuery, GroupRepository, GroupUpdate, NewGroup,
};
use crate::pool::{Db, in_transaction};
use crate::query::{self, Arg, bind_all, placeholders};
use crate::quota::charge_quota;
use crate::rows::{self, VOLUME_COLUMNS, VOLUME_FROM};
use crate::volumes::service_host_of;
use crate::{ClaimOutcome, NewVolume};

/// The `groups` quota charge of one group.
fn group_charge(sign: i64) -> Vec<(String, i64)> {
    vec![("groups".to_owned(), sign)]
}

/// The statuses a volume may be removed from its group in (Cinder's
/// `VALID_REMOVE_VOL_FROM_GROUP_STATUS`).
pub(crate) const REMOVABLE_STATUSES: &[VolumeStatus] = &[
    VolumeStatus::Available,
    VolumeStatus::InUse,
    VolumeStatus::Error,
    VolumeStatus::ErrorDeleting,
];

/// The statuses a volume may be added to a group in (Cinder's
/// `VALID_ADD_VOL_TO_GROUP_STATUS`).
pub(crate) const ADDABLE_STATUSES: &[VolumeStatus] =
    &[VolumeStatus::Available, VolumeStatus::InUse];

impl Db {
    /// Loads one group row (without its volume types) inside a
    /// transaction, locking it.
    pub(crate) async fn lock_group(
        &self,
        conn: &mut AnyConnection,
        id: GroupId,
    ) -> Result<Group, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {GROUP_COLUMNS} FROM volume_groups g WHERE g.id = ?{}",
            self.dialect.for_update()
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| DbError::not_found("group", id))?;
        group_rows::group(&row)
    }

    /// The volumes of a group inside a transaction, locking their rows.
    pub(crate) async fn lock_group_volumes(
        &self,
        conn: &mut AnyConnection,
        id: GroupId,
    ) -> Result<Vec<Volume>, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {VOLUME_COLUMNS} FROM {VOLUME_FROM} WHERE v.group_id = ? ORDER BY v.created_at, v.id{}",
            if self.dialect == crate::Dialect::Postgres {
                " FOR UPDATE OF v"
            } else {
                self.dialect.for_update()
            }
        ));
        let found = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.to_string())
            .fetch_all(&mut *conn)
            .await?;
        found.iter().map(rows::volume).collect()
    }

    /// The volume types of a group, in order, inside a transaction.
    async fn group_volume_type_ids(
        &self,
        conn: &mut AnyConnection,
        id: GroupId,
    ) -> Result<Vec<VolumeTypeId>, DbError> {
        let ids: Vec<String> = sqlx::query_scalar(self.q(
            "SELECT volume_type_id FROM group_volume_types WHERE group_id = ? ORDER BY type_position",
        ))
        .bind(id.to_string())
        .fetch_all(&mut *conn)
        .await?;
        ids.iter()
            .map(|t| {
                t.parse()
                    .map_err(|_| DbError::Internal(format!("corrupt volume type id {t:?}")))
            })
            .collect()
    }

    /// Fills the volume types of `groups` with one query per 500 groups.
    async fn load_group_volume_types(&self, groups: &mut [Group]) -> Result<(), DbError> {
        if groups.is_empty() {
            return Ok(());
        }
        let mut by_group: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
        let ids: Vec<String> = groups.iter().map(|g| g.id.to_string()).collect();
        for chunk in ids.chunks(500) {
            let args: Vec<Arg> = chunk.iter().map(|i| Arg::Text(i.clone())).collect();
            let sql = self.dynamic(format!(
                "SELECT group_id, volume_type_id, type_position FROM group_volume_types WHERE group_id IN ({})",
                placeholders(chunk.len())
            ));
            for row in bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
                .fetch_all(&mut *self.reader().await?)
                .await?
            {
                use sqlx::Row;
                let group: String = row.try_get(0)?;
                let type_id: String = row.try_get(1)?;
                let position: i64 = row.try_get(2)?;
                by_group.entry(group).or_default().push((position, type_id));
            }
        }
        for group in groups.iter_mut() {
            let Some(mut types) = by_group.remove(&group.id.to_string()) else {
                continue;
            };
            types.sort();
            group.volume_type_ids = types
                .iter()
                .map(|(_, t)| {
                    t.parse()
                        .map_err(|_| DbError::Internal(format!("corrupt volume type id {t:?}")))
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(())
    }

    pub(crate) async fn journal_group(
        &self,
        conn: &mut AnyConnection,
        id: GroupId,
        status: GroupStatus,
        host: Option<&str>,
    ) -> Result<(), DbError> {
        let service_host = host.map(service_host_of);
        self.insert_journal(
            conn,
            JournalResource::Group,
            &id.to_string(),
            status.as_str(),
            service_host.as_deref(),
            None,
        )
        .await
    }

    /// Compare-and-swap of a group's status inside a transaction.
    pub(crate) async fn cas_group_status(
        &self,
        conn: &mut AnyConnection,
        id: GroupId,
        transition: GroupTransition,
    ) -> Result<(), DbError> {
        let row = transition.transition();
        let sql = self.dynamic(format!(
            "UPDATE volume_groups SET status = ?, updated_at = ? WHERE id = ? AND status IN ({})",
            placeholders(row.from.len())
        ));
        let mut args = vec![
            Arg::Text(row.to.as_str().to_owned()),
            Arg::Int(self.now().as_micros()),
            Arg::Text(id.to_string()),
        ];
        args.extend(row.from.iter().map(|s| Arg::Text(s.as_str().to_owned())));
        let updated = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        if updated == 1 {
            return Ok(());
        }
        let current: Option<String> =
            sqlx::query_scalar(self.q("SELECT status FROM volume_groups WHERE id = ?"))
                .bind(id.to_string())
                .fetch_optional(&mut *conn)
                .await?;
        match current {
            None => Err(DbError::not_found("group", id)),
            Some(status) => Err(DbError::InvalidState(format!("group {id} is {status}"))),
        }
    }

    /// Inserts a group row, its volume types, its quota charge and its
    /// journal row.
    async fn insert_new_group(
        &self,
        conn: &mut AnyConnection,
        new: &NewGroup,
        now: i64,
    ) -> Result<(), DbError> {
        let type_exists: Option<String> =
            sqlx::query_scalar(self.q("SELECT id FROM group_types WHERE id = ?"))
                .bind(new.group_type_id.to_string())
                .fetch_optional(&mut *conn)
                .await?;
        if type_exists.is_none() {
            return Err(DbError::not_found("group type", new.group_type_id));
        }
        for type_id in &new.volume_type_ids {
            let found: Option<String> =
                sqlx::query_scalar(self.q("SELECT id FROM volume_types WHERE id = ?"))
                    .bind(type_id.to_string())
                    .fetch_optional(&mut *conn)
                    .await?;
            if found.is_none() {
                return Err(DbError::not_found("volume type", type_id));
            }
        }
        charge_quota(self, conn, &new.project_id, &group_charge(1)).await?;
        sqlx::query(self.q(
            "INSERT INTO volume_groups (id, user_id, project_id, host, cluster_name, availability_zone, status, \
             display_name, display_description, group_type_id, group_snapshot_id, source_group_id, \
             replication_status, created_at, updated_at) \
             VALUES (?, ?, ?, ?, NULL, ?, 'creating', ?, ?, ?, ?, ?, 'disabled', ?, NULL)",
        ))
        .bind(new.id.to_string())
        .bind(new.user_id.as_str())
        .bind(new.project_id.as_str())
        .bind(new.host.as_deref())
        .bind(new.availability_zone.as_str())
        .bind(new.display_name.as_deref())
        .bind(new.display_description.as_deref())
        .bind(new.group_type_id.to_string())
        .bind(new.group_snapshot_id.map(|s| s.to_string()))
        .bind(new.source_group_id.map(|s| s.to_string()))
        .bind(now)
        .execute(&mut *conn)
        .await?;
        let mut seen = Vec::new();
        for (position, type_id) in new.volume_type_ids.iter().enumerate() {
            // A type named twice is mapped once, as Cinder's mapping is.
            if seen.contains(type_id) {
                continue;
            }
            seen.push(*type_id);
            sqlx::query(self.q(
                "INSERT INTO group_volume_types (group_id, volume_type_id, type_position) VALUES (?, ?, ?)",
            ))
            .bind(new.id.to_string())
            .bind(type_id.to_string())
            .bind(i64::try_from(position).unwrap_or(i64::MAX))
            .execute(&mut *conn)
            .await?;
        }
        self.journal_group(conn, new.id, GroupStatus::Creating, new.host.as_deref())
            .await
    }

    /// Removes a group row with its volume types, its quota charge and its
    /// journal row (its volumes must be gone).
    async fn delete_group_rows(
        &self,
        conn: &mut AnyConnection,
        group: &Group,
    ) -> Result<(), DbError> {
        charge_quota(self, conn, &group.project_id, &group_charge(-1)).await?;
        for sql in [
            "DELETE FROM group_volume_types WHERE group_id = ?",
            "DELETE FROM volume_groups WHERE id = ?",
        ] {
            sqlx::query(self.q(sql))
                .bind(group.id.to_string())
                .execute(&mut *conn)
                .await?;
        }
        self.remove_journal(conn, JournalResource::Group, &group.id.to_string())
            .await
    }

    fn group_where(&self, query: &GroupQuery, args: &mut Vec<Arg>) -> String {
        let mut sql = String::from(" WHERE 1 = 1");
        if let Some(project) = &query.project_id {
            sql.push_str(" AND g.project_id = ?");
            args.push(Arg::Text(project.clone()));
        }
        for (column, value) in &query.filters {
            query::push_filter(&mut sql, args, column.sql(), column.is_integer(), value);
        }
        sql
    }

    async fn group_with_types(&self, id: GroupId) -> Result<Group, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {GROUP_COLUMNS} FROM volume_groups g WHERE g.id = ?"
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.to_string())
            .fetch_optional(&mut *self.reader().await?)
            .await?
            .ok_or_else(|| DbError::not_found("group", id))?;
        let mut found = vec![group_rows::group(&row)?];
        self.load_group_volume_types(&mut found).await?;
        found.pop().ok_or_else(|| DbError::not_found("group", id))
    }

    /// Checks one volume to add under its row lock.
    async fn check_volume_to_add(
        &self,
        conn: &mut AnyConnection,
        group: &Group,
        type_ids: &[VolumeTypeId],
        volume_id: VolumeId,
    ) -> Result<(), DbError> {
        let refused = |why: &str| {
            DbError::InvalidState(format!(
                "cannot add volume {volume_id} to group {}: {why}",
                group.id
            ))
        };
        let volume = match self.lock_volume(conn, volume_id).await {
            Ok(v) => v,
            Err(DbError::NotFound { .. }) => return Err(refused("volume not found")),
            Err(e) => return Err(e),
        };
        if volume.group_id.as_deref() == Some(group.id.to_string().as_str()) {
            return Ok(());
        }
        if volume.group_id.is_some() {
            return Err(refused("volume is in another group"));
        }
        if volume.project_id != group.project_id {
            return Err(refused("volume belongs to another project"));
        }
        if !type_ids.contains(&volume.volume_type_id) {
            return Err(refused("volume type not supported by the group"));
        }
        if !ADDABLE_STATUSES.contains(&volume.status) {
            return Err(refused("volume status"));
        }
        let group_backend = group.host.as_deref().map(service_host_of);
        let volume_backend = volume.host.as_deref().map(service_host_of);
        if group_backend.is_none() || group_backend != volume_backend {
            return Err(refused("volume is not local to the group's backend"));
        }
        sqlx::query(self.q("UPDATE volumes SET group_id = ?, updated_at = ? WHERE id = ?"))
            .bind(group.id.to_string())
            .bind(self.now().as_micros())
            .bind(volume_id.to_string())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Checks one volume to remove under its row lock.
    async fn check_volume_to_remove(
        &self,
        conn: &mut AnyConnection,
        group: &Group,
        volume_id: VolumeId,
    ) -> Result<(), DbError> {
        let refused = |why: &str| {
            DbError::InvalidState(format!(
                "cannot remove volume {volume_id} from group {}: {why}",
                group.id
            ))
        };
        let volume = match self.lock_volume(conn, volume_id).await {
            Ok(v) => v,
            Err(DbError::NotFound { .. }) => return Err(refused("volume not found")),
            Err(e) => return Err(e),
        };
        if volume.group_id.as_deref() != Some(group.id.to_string().as_str()) {
            return Err(refused("volume is not in the group"));
        }
        if !REMOVABLE_STATUSES.contains(&volume.status) {
            return Err(refused("volume status"));
        }
        sqlx::query(self.q("UPDATE volumes SET group_id = NULL, updated_at = ? WHERE id = ?"))
            .bind(self.now().as_micros())
            .bind(volume_id.to_string())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

/// Whether a group's volume may be deleted with it: settled, detached.
/// Cinder marks every volume `deleting` whatever its status; Clinker
/// leaves volumes in the middle of another operation alone (as a plain
/// volume delete would), but retries volumes whose last delete failed.
fn deletable_member(volume: &Volume) -> bool {
    let status_ok = VolumeTransition::Delete.allows(volume.status)
        || volume.status == VolumeStatus::ErrorDeleting;
    status_ok && volume.attach_status == AttachStatus::Detached
}

#[async_trait::async_trait]
impl GroupRepository for Db {
    async fn create_group(&self, new: NewGroup) -> Result<Group, DbError> {
        let now = self.now().as_micros();
        in_transaction!(self, |tx| self.insert_new_group(&mut tx, &new, now).await)?;
        self.group_with_types(new.id).await
    }

    async fn create_group_from_source(
        &self,
        new: NewGroup,
        volumes: Vec<NewVolume>,
    ) -> Result<Group, DbError> {
        let now = self.now().as_micros();
        in_transaction!(self, |tx| {
            // The group first: Cinder reserves its quota before the
            // volumes', so a project out of groups hears about groups.
            self.insert_new_group(&mut tx, &new, now).await?;
            for volume in &volumes {
                self.insert_new_volume(&mut tx, volume, now).await?;
            }
            Ok::<_, DbError>(())
        })?;
        self.group_with_types(new.id).await
    }

    async fn get_group(&self, id: GroupId) -> Result<Group, DbError> {
        self.group_with_types(id).await
    }

    async fn list_groups(&self, query: &GroupQuery) -> Result<Vec<Group>, DbError> {
        let mut args = Vec::new();
        let where_sql = self.group_where(query, &mut args);
        let found = self
            .fetch_page(
                &query::ListTable {
                    columns: GROUP_COLUMNS,
                    from: "volume_groups g",
                    id: "g.id",
                    project: "g.project_id",
                },
                &where_sql,
                args,
                &query.sort,
                query.project_id.as_deref(),
                &query.page,
            )
            .await?;
        let mut groups = found
            .iter()
            .map(group_rows::group)
            .collect::<Result<Vec<_>, _>>()?;
        self.load_group_volume_types(&mut groups).await?;
        Ok(groups)
    }

    async fn place_group(&self, id: GroupId, host: &str) -> Result<ClaimOutcome, DbError> {
        let now = self.now().as_micros();
        let service_host = service_host_of(host);
        in_transaction!(self, |tx| {
            let placed = sqlx::query(self.q("UPDATE volume_groups SET host = ?, updated_at = ? \
                 WHERE id = ? AND status = 'creating' AND host IS NULL"))
            .bind(host)
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if placed == 0 {
                return Ok(ClaimOutcome::NotWaiting);
            }
            sqlx::query(self.q(
                "UPDATE workers SET service_host = ?, updated_at = ? WHERE resource_type = 'Group' AND resource_id = ?",
            ))
            .bind(service_host.as_str())
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
            Ok::<_, DbError>(ClaimOutcome::Claimed)
        })
    }

    async fn finish_group_create(&self, id: GroupId) -> Result<Group, DbError> {
        in_transaction!(self, |tx| {
            self.cas_group_status(&mut tx, id, GroupTransition::CreateSucceeded)
                .await?;
            self.remove_journal(&mut tx, JournalResource::Group, &id.to_string())
                .await
        })?;
        self.group_with_types(id).await
    }

    async fn fail_group_create(&self, id: GroupId) -> Result<Group, DbError> {
        in_transaction!(self, |tx| {
            self.cas_group_status(&mut tx, id, GroupTransition::CreateFailed)
                .await?;
            self.remove_journal(&mut tx, JournalResource::Group, &id.to_string())
                .await
        })?;
        self.group_with_types(id).await
    }

    async fn settle_group_create(&self, id: GroupId) -> Result<Option<Group>, DbError> {
        let settled = in_transaction!(self, |tx| {
            let group = self.lock_group(&mut tx, id).await?;
            if group.status != GroupStatus::Creating || !group.is_from_source() {
                return Ok(false);
            }
            let statuses: Vec<String> =
                sqlx::query_scalar(self.q("SELECT status FROM volumes WHERE group_id = ?"))
                    .bind(id.to_string())
                    .fetch_all(&mut *tx)
                    .await?;
            if statuses
                .iter()
                .any(|s| s == VolumeStatus::Creating.as_str())
            {
                return Ok(false);
            }
            let all_available = statuses
                .iter()
                .all(|s| s == VolumeStatus::Available.as_str());
            let transition = if all_available {
                GroupTransition::CreateSucceeded
            } else {
                GroupTransition::CreateFailed
            };
            self.cas_group_status(&mut tx, id, transition).await?;
            self.remove_journal(&mut tx, JournalResource::Group, &id.to_string())
                .await?;
            Ok::<_, DbError>(true)
        })?;
        if settled {
            Ok(Some(self.group_with_types(id).await?))
        } else {
            Ok(None)
        }
    }

    async fn discard_group_create(&self, id: GroupId) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            let group = self.lock_group(&mut tx, id).await?;
            if group.status != GroupStatus::Creating {
                return Err(DbError::InvalidState(format!(
                    "group {id} is {}, not creating",
                    group.status
                )));
            }
            for volume in self.lock_group_volumes(&mut tx, id).await? {
                if volume.status != VolumeStatus::Creating || volume.host.is_some() {
                    return Err(DbError::InvalidState(format!(
                        "volume {} of group {id} was already dispatched",
                        volume.id
                    )));
                }
                self.delete_volume_rows(&mut *tx, &volume).await?;
            }
            self.delete_group_rows(&mut tx, &group).await
        })
    }

    async fn update_group(&self, id: GroupId, update: GroupUpdate) -> Result<Group, DbError> {
        in_transaction!(self, |tx| {
            let group = self.lock_group(&mut tx, id).await?;
            if !update.add_volumes.is_empty() || !update.remove_volumes.is_empty() {
                self.cas_group_status(&mut tx, id, GroupTransition::UpdateMembers)
                    .await?;
                let type_ids = self.group_volume_type_ids(&mut tx, id).await?;
                for volume_id in &update.add_volumes {
                    self.check_volume_to_add(&mut tx, &group, &type_ids, *volume_id)
                        .await?;
                }
                for volume_id in &update.remove_volumes {
                    self.check_volume_to_remove(&mut tx, &group, *volume_id)
                        .await?;
                }
            }
            let mut sets = String::from("updated_at = ?");
            let mut args = vec![Arg::Int(self.now().as_micros())];
            if let Some(name) = &update.display_name {
                sets.push_str(", display_name = ?");
                args.push(name.clone().map(Arg::Text).unwrap_or(Arg::Null));
            }
            if let Some(description) = &update.display_description {
                sets.push_str(", display_description = ?");
                args.push(description.clone().map(Arg::Text).unwrap_or(Arg::Null));
            }
            args.push(Arg::Text(id.to_string()));
            let sql = self.dynamic(format!("UPDATE volume_groups SET {sets} WHERE id = ?"));
            bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
                .execute(&mut *tx)
                .await?;
            Ok::<_, DbError>(())
        })?;
        self.group_with_types(id).await
    }

    async fn begin_group_delete(
        &self,
        id: GroupId,
        delete_volumes: bool,
    ) -> Result<GroupDeleteStart, DbError> {
        let outcome = in_transaction!(self, |tx| {
            let mut group = self.lock_group(&mut tx, id).await?;
            if group.status == GroupStatus::Deleting {
                return Ok(GroupDeleteStart::AlreadyDeleting(group));
            }
            let volumes = self.lock_group_volumes(&mut tx, id).await?;
            let refused = |why: &str| DbError::InvalidState(format!("group {id}: {why}"));
            if group.host.is_none() {
                // Never placed: nothing exists on a backend, and no volume
                // can have joined it (volumes need the group's backend).
                if !volumes.is_empty() {
                    return Err(refused("an unplaced group has volumes"));
                }
                self.delete_group_rows(&mut tx, &group).await?;
                return Ok(GroupDeleteStart::DeletedWithoutBackend(group));
            }
            let transition = if delete_volumes {
                GroupTransition::DeleteWithVolumes
            } else {
                GroupTransition::Delete
            };
            if !transition.allows(group.status) {
                return Err(refused("status"));
            }
            let group_snapshots: i64 = sqlx::query_scalar(
                self.q("SELECT COUNT(*) FROM group_snapshots WHERE group_id = ?"),
            )
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await?;
            if group_snapshots > 0 {
                return Err(refused("group snapshots"));
            }
            if !volumes.is_empty() && !delete_volumes {
                return Err(refused("volumes without delete-volumes"));
            }
            if !volumes.iter().all(deletable_member) {
                return Err(refused("a volume is attached or busy"));
            }
            if !volumes.is_empty() {
                let ids: Vec<Arg> = volumes
                    .iter()
                    .map(|v| Arg::Text(v.id.to_string()))
                    .collect();
                let sql = self.dynamic(format!(
                    "SELECT COUNT(*) FROM snapshots WHERE volume_id IN ({})",
                    placeholders(ids.len())
                ));
                let row = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &ids)
                    .fetch_one(&mut *tx)
                    .await?;
                if sqlx::Row::try_get::<i64, _>(&row, 0)? > 0 {
                    return Err(refused("volumes with snapshots"));
                }
            }
            let sources: i64 = sqlx::query_scalar(self.q(
                "SELECT COUNT(*) FROM volume_groups WHERE source_group_id = ? AND status = 'creating'",
            ))
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await?;
            if sources > 0 {
                return Err(refused("source of a group being created"));
            }
            self.cas_group_status(&mut tx, id, transition).await?;
            let now = self.now().as_micros();
            for volume in &volumes {
                sqlx::query(self.q(
                    "UPDATE volumes SET status = 'deleting', previous_status = ?, updated_at = ? WHERE id = ?",
                ))
                .bind(volume.status.as_str())
                .bind(now)
                .bind(volume.id.to_string())
                .execute(&mut *tx)
                .await?;
            }
            self.journal_group(&mut tx, id, GroupStatus::Deleting, group.host.as_deref())
                .await?;
            group.status = GroupStatus::Deleting;
            Ok::<_, DbError>(GroupDeleteStart::Started(group))
        })?;
        Ok(match outcome {
            GroupDeleteStart::Started(g) => GroupDeleteStart::Started(self.with_types_of(g).await?),
            GroupDeleteStart::AlreadyDeleting(g) => {
                GroupDeleteStart::AlreadyDeleting(self.with_types_of(g).await?)
            }
            gone @ GroupDeleteStart::DeletedWithoutBackend(_) => gone,
        })
    }

    async fn finish_group_delete(&self, id: GroupId) -> Result<GroupDeleteEnd<Group>, DbError> {
        let before = self.group_with_types(id).await?;
        let outcome = in_transaction!(self, |tx| {
            let group = self.lock_group(&mut tx, id).await?;
            if group.status != GroupStatus::Deleting {
                return Err(DbError::InvalidState(format!(
                    "group {id} is {}, not deleting",
                    group.status
                )));
            }
            let statuses: Vec<String> =
                sqlx::query_scalar(self.q("SELECT status FROM volumes WHERE group_id = ?"))
                    .bind(id.to_string())
                    .fetch_all(&mut *tx)
                    .await?;
            if statuses.is_empty() {
                self.delete_group_rows(&mut tx, &group).await?;
                return Ok(GroupDeleteEnd::Deleted(()));
            }
            if statuses
                .iter()
                .any(|s| s == VolumeStatus::Deleting.as_str())
            {
                return Ok(GroupDeleteEnd::Pending);
            }
            self.cas_group_status(&mut tx, id, GroupTransition::DeleteFailed)
                .await?;
            self.remove_journal(&mut tx, JournalResource::Group, &id.to_string())
                .await?;
            Ok::<_, DbError>(GroupDeleteEnd::Failed(()))
        })?;
        Ok(match outcome {
            GroupDeleteEnd::Deleted(()) => GroupDeleteEnd::Deleted(before),
            GroupDeleteEnd::Failed(()) => GroupDeleteEnd::Failed(self.group_with_types(id).await?),
            GroupDeleteEnd::Pending => GroupDeleteEnd::Pending,
        })
    }

    async fn reset_group_status(&self, id: GroupId, status: GroupStatus) -> Result<Group, DbError> {
        in_transaction!(self, |tx| {
            let updated = sqlx::query(
                self.q("UPDATE volume_groups SET status = ?, updated_at = ? WHERE id = ?"),
            )
            .bind(status.as_str())
            .bind(self.now().as_micros())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                return Err(DbError::not_found("group", id));
            }
            // The operation that owned the old status is abandoned by the
            // administrator; its journal row must not resume it.
            self.remove_journal(&mut tx, JournalResource::Group, &id.to_string())
                .await
        })?;
        self.group_with_types(id).await
    }
}

impl Db {
    async fn with_types_of(&self, mut group: Group) -> Result<Group, DbError> {
        self.load_group_volume_types(std::slice::from_mut(&mut group))
            .await?;
        Ok(group)
    }
}
