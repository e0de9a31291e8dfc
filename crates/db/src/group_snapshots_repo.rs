//! [`GroupSnapshotRepository`] for [`Db`].

use std::collections::BTreeMap;

use clinker_types::group::GroupSnapshot;
use clinker_types::group_status::{GroupSnapshotStatus, GroupSnapshotTransition, GroupStatus};
use clinker_types::model::JournalResource;
use clinker_types::{GroupSnapshotId, SnapshotId, SnapshotStatus, VolumeStatus};
use sqlx::AnyConnection;

use crate::error::DbError;
use crate::group_rows::{self, GROUP_SNAPSHOT_COLUMNS};
use crate::groups::{
    GroupDeleteEnd, GroupSnapshotQuery, GroupSnapshotRepository, NewGroupSnapshot,
};
use crate::pool::{Db, in_transaction};
use crate::query::{self, Arg, bind_all, placeholders};
use crate::quota::{charge_quota, snapshot_charges};
use crate::volumes::service_host_of;

impl Db {
    async fn lock_group_snapshot(
        &self,
        conn: &mut AnyConnection,
        id: GroupSnapshotId,
    ) -> Result<GroupSnapshot, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {GROUP_SNAPSHOT_COLUMNS} FROM group_snapshots gs WHERE gs.id = ?{}",
            self.dialect.for_update()
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| DbError::not_found("group snapshot", id))?;
        group_rows::group_snapshot(&row)
    }

    async fn cas_group_snapshot_status(
        &self,
        conn: &mut AnyConnection,
        id: GroupSnapshotId,
        transition: GroupSnapshotTransition,
    ) -> Result<(), DbError> {
        let row = transition.transition();
        let sql = self.dynamic(format!(
            "UPDATE group_snapshots SET status = ?, updated_at = ? WHERE id = ? AND status IN ({})",
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
            sqlx::query_scalar(self.q("SELECT status FROM group_snapshots WHERE id = ?"))
                .bind(id.to_string())
                .fetch_optional(&mut *conn)
                .await?;
        match current {
            None => Err(DbError::not_found("group snapshot", id)),
            Some(status) => Err(DbError::InvalidState(format!(
                "group snapshot {id} is {status}"
            ))),
        }
    }

    /// `(id, status)` of a group snapshot's member snapshots.
    async fn member_statuses(
        &self,
        conn: &mut AnyConnection,
        id: GroupSnapshotId,
    ) -> Result<Vec<(String, String)>, DbError> {
        Ok(
            sqlx::query_as(self.q("SELECT id, status FROM snapshots WHERE group_snapshot_id = ?"))
                .bind(id.to_string())
                .fetch_all(&mut *conn)
                .await?,
        )
    }

    async fn set_member_statuses(
        &self,
        conn: &mut AnyConnection,
        id: GroupSnapshotId,
        from: SnapshotStatus,
        to: SnapshotStatus,
    ) -> Result<(), DbError> {
        sqlx::query(self.q(
            "UPDATE snapshots SET status = ?, updated_at = ? WHERE group_snapshot_id = ? AND status = ?",
        ))
        .bind(to.as_str())
        .bind(self.now().as_micros())
        .bind(id.to_string())
        .bind(from.as_str())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    fn group_snapshot_where(&self, query: &GroupSnapshotQuery, args: &mut Vec<Arg>) -> String {
        let mut sql = String::from(" WHERE 1 = 1");
        if let Some(project) = &query.project_id {
            sql.push_str(" AND gs.project_id = ?");
            args.push(Arg::Text(project.clone()));
        }
        for (column, value) in &query.filters {
            query::push_filter(&mut sql, args, column.sql(), column.is_integer(), value);
        }
        sql
    }

    async fn read_group_snapshot(&self, id: GroupSnapshotId) -> Result<GroupSnapshot, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {GROUP_SNAPSHOT_COLUMNS} FROM group_snapshots gs WHERE gs.id = ?"
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.to_string())
            .fetch_optional(&mut *self.reader().await?)
            .await?
            .ok_or_else(|| DbError::not_found("group snapshot", id))?;
        group_rows::group_snapshot(&row)
    }
}

#[async_trait::async_trait]
impl GroupSnapshotRepository for Db {
    async fn create_group_snapshot(&self, new: NewGroupSnapshot) -> Result<GroupSnapshot, DbError> {
        in_transaction!(self, |tx| {
            // The group's lock orders this against a group delete, which
            // refuses groups with snapshots.
            let group = self.lock_group(&mut tx, new.group_id).await?;
            if !matches!(group.status, GroupStatus::Available | GroupStatus::InUse) {
                return Err(DbError::InvalidState(format!(
                    "group {} is {}",
                    group.id, group.status
                )));
            }
            let volumes = self.lock_group_volumes(&mut tx, group.id).await?;
            let mut charges: BTreeMap<String, i64> = BTreeMap::new();
            for volume in &volumes {
                let migrating = volume
                    .migration_status
                    .as_deref()
                    .is_some_and(|m| !matches!(m, "deleting" | "error" | "success" | "none"));
                let ready = matches!(volume.status, VolumeStatus::Available | VolumeStatus::InUse);
                if volume.host.is_none() || migrating || !ready {
                    return Err(DbError::InvalidState(format!(
                        "volume {} of group {} is {}",
                        volume.id, group.id, volume.status
                    )));
                }
                for (resource, delta) in
                    snapshot_charges(self, volume.volume_type_name.as_deref(), volume.size, 1)
                {
                    *charges.entry(resource).or_default() += delta;
                }
            }
            let charges: Vec<(String, i64)> = charges.into_iter().collect();
            // Cinder reports the snapshot count before the gigabytes.
            let mut ordered: Vec<(String, i64)> = charges
                .iter()
                .filter(|(r, _)| r.starts_with("snapshots"))
                .cloned()
                .collect();
            ordered.extend(
                charges
                    .into_iter()
                    .filter(|(r, _)| !r.starts_with("snapshots")),
            );
            charge_quota(self, &mut tx, &new.project_id, &ordered).await?;
            let now = self.now().as_micros();
            sqlx::query(self.q(
                "INSERT INTO group_snapshots (id, group_id, user_id, project_id, status, display_name, \
                 display_description, group_type_id, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, 'creating', ?, ?, ?, ?, NULL)",
            ))
            .bind(new.id.to_string())
            .bind(group.id.to_string())
            .bind(new.user_id.as_str())
            .bind(new.project_id.as_str())
            .bind(new.display_name.as_deref())
            .bind(new.display_description.as_deref())
            .bind(group.group_type_id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for volume in &volumes {
                sqlx::query(self.q(
                    "INSERT INTO snapshots (id, volume_id, user_id, project_id, status, progress, volume_size, \
                     display_name, display_description, volume_type_id, group_snapshot_id, use_quota, \
                     created_at, updated_at) \
                     VALUES (?, ?, ?, ?, 'creating', '0%', ?, ?, ?, ?, ?, 1, ?, NULL)",
                ))
                .bind(SnapshotId::new_random().to_string())
                .bind(volume.id.to_string())
                .bind(new.user_id.as_str())
                .bind(new.project_id.as_str())
                .bind(volume.size)
                .bind(new.display_name.as_deref())
                .bind(new.display_description.as_deref())
                .bind(volume.volume_type_id.to_string())
                .bind(new.id.to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            let service_host = group.host.as_deref().map(service_host_of);
            self.insert_journal(
                &mut tx,
                JournalResource::GroupSnapshot,
                &new.id.to_string(),
                GroupSnapshotStatus::Creating.as_str(),
                service_host.as_deref(),
                None,
            )
            .await
        })?;
        self.read_group_snapshot(new.id).await
    }

    async fn get_group_snapshot(&self, id: GroupSnapshotId) -> Result<GroupSnapshot, DbError> {
        self.read_group_snapshot(id).await
    }

    async fn list_group_snapshots(
        &self,
        query: &GroupSnapshotQuery,
    ) -> Result<Vec<GroupSnapshot>, DbError> {
        let mut args = Vec::new();
        let where_sql = self.group_snapshot_where(query, &mut args);
        let found = self
            .fetch_page(
                &query::ListTable {
                    columns: GROUP_SNAPSHOT_COLUMNS,
                    from: "group_snapshots gs",
                    id: "gs.id",
                    project: "gs.project_id",
                },
                &where_sql,
                args,
                &query.sort,
                query.project_id.as_deref(),
                &query.page,
            )
            .await?;
        found.iter().map(group_rows::group_snapshot).collect()
    }

    async fn finish_group_snapshot_create(
        &self,
        id: GroupSnapshotId,
    ) -> Result<GroupSnapshot, DbError> {
        in_transaction!(self, |tx| {
            let members = self.member_statuses(&mut tx, id).await?;
            let all_available = members
                .iter()
                .all(|(_, s)| s == SnapshotStatus::Available.as_str());
            if all_available {
                self.cas_group_snapshot_status(
                    &mut tx,
                    id,
                    GroupSnapshotTransition::CreateSucceeded,
                )
                .await?;
            } else {
                self.cas_group_snapshot_status(&mut tx, id, GroupSnapshotTransition::CreateFailed)
                    .await?;
                // A member left `creating` (its create never reported)
                // failed with the group snapshot.
                self.set_member_statuses(
                    &mut tx,
                    id,
                    SnapshotStatus::Creating,
                    SnapshotStatus::Error,
                )
                .await?;
            }
            self.remove_journal(&mut tx, JournalResource::GroupSnapshot, &id.to_string())
                .await
        })?;
        self.read_group_snapshot(id).await
    }

    async fn fail_group_snapshot_create(
        &self,
        id: GroupSnapshotId,
    ) -> Result<GroupSnapshot, DbError> {
        in_transaction!(self, |tx| {
            self.cas_group_snapshot_status(&mut tx, id, GroupSnapshotTransition::CreateFailed)
                .await?;
            self.set_member_statuses(&mut tx, id, SnapshotStatus::Creating, SnapshotStatus::Error)
                .await?;
            self.remove_journal(&mut tx, JournalResource::GroupSnapshot, &id.to_string())
                .await
        })?;
        self.read_group_snapshot(id).await
    }

    async fn discard_group_snapshot_create(&self, id: GroupSnapshotId) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            let group_snapshot = self.lock_group_snapshot(&mut tx, id).await?;
            if group_snapshot.status != GroupSnapshotStatus::Creating {
                return Err(DbError::InvalidState(format!(
                    "group snapshot {id} is {}, not creating",
                    group_snapshot.status
                )));
            }
            let members: Vec<(String, i64, Option<String>)> = sqlx::query_as(self.q(
                "SELECT s.id, s.volume_size, t.name FROM snapshots s \
                 LEFT JOIN volume_types t ON t.id = s.volume_type_id WHERE s.group_snapshot_id = ?",
            ))
            .bind(id.to_string())
            .fetch_all(&mut *tx)
            .await?;
            for (member, size, type_name) in &members {
                let charges = snapshot_charges(self, type_name.as_deref(), *size, -1);
                charge_quota(self, &mut tx, &group_snapshot.project_id, &charges).await?;
                for sql in [
                    "DELETE FROM snapshot_metadata WHERE snapshot_id = ?",
                    "DELETE FROM snapshots WHERE id = ?",
                ] {
                    sqlx::query(self.q(sql))
                        .bind(member.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            sqlx::query(self.q("DELETE FROM group_snapshots WHERE id = ?"))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            self.remove_journal(&mut tx, JournalResource::GroupSnapshot, &id.to_string())
                .await
        })
    }

    async fn begin_group_snapshot_delete(
        &self,
        id: GroupSnapshotId,
    ) -> Result<GroupSnapshot, DbError> {
        in_transaction!(self, |tx| {
            let group_snapshot = self.lock_group_snapshot(&mut tx, id).await?;
            let creating_from: i64 = sqlx::query_scalar(self.q(
                "SELECT COUNT(*) FROM volume_groups WHERE group_snapshot_id = ? AND status = 'creating'",
            ))
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await?;
            if creating_from > 0 {
                return Err(DbError::InvalidState(format!(
                    "group snapshot {id} is the source of a group being created"
                )));
            }
            self.cas_group_snapshot_status(&mut tx, id, GroupSnapshotTransition::Delete)
                .await?;
            sqlx::query(self.q(
                "UPDATE snapshots SET status = 'deleting', updated_at = ? WHERE group_snapshot_id = ?",
            ))
            .bind(self.now().as_micros())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
            let service_host = group_snapshot.host.as_deref().map(service_host_of);
            self.insert_journal(
                &mut tx,
                JournalResource::GroupSnapshot,
                &id.to_string(),
                GroupSnapshotStatus::Deleting.as_str(),
                service_host.as_deref(),
                None,
            )
            .await
        })?;
        self.read_group_snapshot(id).await
    }

    async fn finish_group_snapshot_delete(
        &self,
        id: GroupSnapshotId,
    ) -> Result<GroupDeleteEnd<GroupSnapshot>, DbError> {
        let before = self.read_group_snapshot(id).await?;
        let outcome = in_transaction!(self, |tx| {
            let group_snapshot = self.lock_group_snapshot(&mut tx, id).await?;
            if group_snapshot.status != GroupSnapshotStatus::Deleting {
                return Err(DbError::InvalidState(format!(
                    "group snapshot {id} is {}, not deleting",
                    group_snapshot.status
                )));
            }
            let members = self.member_statuses(&mut tx, id).await?;
            if members.is_empty() {
                sqlx::query(self.q("DELETE FROM group_snapshots WHERE id = ?"))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
                self.remove_journal(&mut tx, JournalResource::GroupSnapshot, &id.to_string())
                    .await?;
                return Ok(GroupDeleteEnd::Deleted(()));
            }
            if members
                .iter()
                .any(|(_, s)| s == SnapshotStatus::Deleting.as_str())
            {
                return Ok(GroupDeleteEnd::Pending);
            }
            self.cas_group_snapshot_status(&mut tx, id, GroupSnapshotTransition::DeleteFailed)
                .await?;
            self.remove_journal(&mut tx, JournalResource::GroupSnapshot, &id.to_string())
                .await?;
            Ok::<_, DbError>(GroupDeleteEnd::Failed(()))
        })?;
        Ok(match outcome {
            GroupDeleteEnd::Deleted(()) => GroupDeleteEnd::Deleted(before),
            GroupDeleteEnd::Failed(()) => {
                GroupDeleteEnd::Failed(self.read_group_snapshot(id).await?)
            }
            GroupDeleteEnd::Pending => GroupDeleteEnd::Pending,
        })
    }

    async fn reset_group_snapshot_status(
        &self,
        id: GroupSnapshotId,
        status: GroupSnapshotStatus,
    ) -> Result<GroupSnapshot, DbError> {
        in_transaction!(self, |tx| {
            let updated = sqlx::query(
                self.q("UPDATE group_snapshots SET status = ?, updated_at = ? WHERE id = ?"),
            )
            .bind(status.as_str())
            .bind(self.now().as_micros())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                return Err(DbError::not_found("group snapshot", id));
            }
            self.remove_journal(&mut tx, JournalResource::GroupSnapshot, &id.to_string())
                .await
        })?;
        self.read_group_snapshot(id).await
    }
}
