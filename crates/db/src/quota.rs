//! Quota limits and usage counters.
//!
//! Usage counters change only inside the transactions that insert or delete
//! the rows they count (see `volumes.rs`, `snapshots.rs`), through
//! [`charge_quota`]: a conditional `UPDATE … WHERE in_use + delta <= limit`,
//! which every engine evaluates against the latest committed row under its
//! row lock, so concurrent creates cannot overshoot and the counters always
//! equal [`QuotaRepository::recount_usages`].

use std::collections::BTreeMap;

use sqlx::AnyConnection;

use crate::QuotaRepository;
use crate::error::{DbError, OverQuota};
use crate::pool::{Db, in_transaction};

/// The project-independent resources and their configuration defaults.
pub(crate) fn default_limits(db: &Db) -> BTreeMap<String, i64> {
    let d = &db.quota_defaults;
    [
        ("volumes", d.volumes),
        ("snapshots", d.snapshots),
        ("gigabytes", d.gigabytes),
        ("backups", d.backups),
        ("backup_gigabytes", d.backup_gigabytes),
        ("groups", d.groups),
        ("per_volume_gigabytes", d.per_volume_gigabytes),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The limits of `resources` for a project, in one round trip: the
/// project's own rows, then the `default` class, then the configuration
/// (per-type resources default to unlimited).
pub(crate) async fn limits_for(
    db: &Db,
    conn: &mut AnyConnection,
    project_id: &str,
    resources: &[&str],
) -> Result<BTreeMap<String, i64>, DbError> {
    let mut limits: BTreeMap<String, i64> = BTreeMap::new();
    if resources.is_empty() {
        return Ok(limits);
    }
    let list = crate::query::placeholders(resources.len());
    let sql = db.dynamic(format!(
        "SELECT 1, resource, hard_limit FROM quotas WHERE project_id = ? AND resource IN ({list}) \
         UNION ALL SELECT 2, resource, hard_limit FROM quota_classes WHERE class_name = 'default' AND resource IN ({list})"
    ));
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(project_id);
    for r in resources {
        query = query.bind(*r);
    }
    for r in resources {
        query = query.bind(*r);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let mut by_class: BTreeMap<String, i64> = BTreeMap::new();
    for row in rows {
        use sqlx::Row;
        let source: i64 = row.try_get(0)?;
        let resource: String = row.try_get(1)?;
        let limit: i64 = row.try_get(2)?;
        if source == 1 {
            limits.insert(resource, limit);
        } else {
            by_class.insert(resource, limit);
        }
    }
    let defaults = default_limits(db);
    for r in resources {
        if !limits.contains_key(*r) {
            let fallback = by_class
                .get(*r)
                .or_else(|| defaults.get(*r))
                .copied()
                .unwrap_or(-1);
            limits.insert((*r).to_owned(), fallback);
        }
    }
    Ok(limits)
}

/// Applies usage deltas for a project, refusing (and changing nothing, as
/// the caller's transaction rolls back) if a positive delta would pass its
/// limit. Charges are applied in the given order, so the first resource over
/// its limit is the one reported, as Cinder reports the first of its `overs`.
pub(crate) async fn charge_quota(
    db: &Db,
    conn: &mut AnyConnection,
    project_id: &str,
    charges: &[(String, i64)],
) -> Result<(), DbError> {
    let positive: Vec<&str> = charges
        .iter()
        .filter(|(_, d)| *d > 0)
        .map(|(r, _)| r.as_str())
        .collect();
    let limits = limits_for(db, conn, project_id, &positive).await?;
    charge_quota_with_limits(db, conn, project_id, charges, &limits).await
}

/// [`charge_quota`] with the limits already read: one `SELECT` of the
/// current usage (to report the first resource over its limit exactly as
/// Cinder words it), the usage rows a project lacks created on first use,
/// then one conditional `UPDATE` for every resource. The `UPDATE`'s own
/// conditions guard against a concurrent change between the two; when they
/// refuse, the whole transaction is retried and the `SELECT` sees why.
pub(crate) async fn charge_quota_with_limits(
    db: &Db,
    conn: &mut AnyConnection,
    project_id: &str,
    charges: &[(String, i64)],
    limits: &BTreeMap<String, i64>,
) -> Result<(), DbError> {
    let active: Vec<(&str, i64, i64)> = charges
        .iter()
        .filter(|(_, delta)| *delta != 0)
        .map(|(resource, delta)| {
            let limit = if *delta > 0 {
                limits.get(resource).copied().unwrap_or(-1)
            } else {
                -1
            };
            (resource.as_str(), *delta, limit)
        })
        .collect();
    if active.is_empty() {
        return Ok(());
    }
    let list = crate::query::placeholders(active.len());
    let sql = db.dynamic(format!(
        "SELECT resource, in_use FROM quota_usages WHERE project_id = ? AND resource IN ({list})"
    ));
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(project_id);
    for (resource, _, _) in &active {
        query = query.bind(*resource);
    }
    let mut usage: BTreeMap<String, i64> = BTreeMap::new();
    for row in query.fetch_all(&mut *conn).await? {
        use sqlx::Row;
        usage.insert(row.try_get(0)?, row.try_get(1)?);
    }
    for (resource, delta, limit) in &active {
        let in_use = usage.get(*resource).copied().unwrap_or(0);
        if *delta > 0 && *limit >= 0 && in_use + delta > *limit {
            return Err(DbError::OverQuota(OverQuota {
                resource: (*resource).to_owned(),
                limit: *limit,
                in_use,
                requested: *delta,
            }));
        }
    }
    for (resource, _, _) in active.iter().filter(|(r, _, _)| !usage.contains_key(*r)) {
        // First use of this resource by the project.
        let insert = db.dynamic(
            db.dialect
                .insert_ignore("quota_usages (project_id, resource, in_use)", "(?, ?, 0)"),
        );
        sqlx::query(sqlx::AssertSqlSafe(insert))
            .bind(project_id)
            .bind(*resource)
            .execute(&mut *conn)
            .await?;
    }
    // One statement for every resource: CASE picks each row's delta and
    // limit (no limit is the largest integer).
    let mut delta_case = String::from("CASE resource");
    let mut limit_case = String::from("CASE resource");
    for _ in &active {
        delta_case.push_str(" WHEN ? THEN ?");
        limit_case.push_str(" WHEN ? THEN ?");
    }
    delta_case.push_str(" ELSE 0 END");
    limit_case.push_str(" ELSE 0 END");
    let sql = db.dynamic(format!(
        "UPDATE quota_usages SET in_use = in_use + {delta_case} WHERE project_id = ? AND resource IN ({list}) \
         AND in_use + {delta_case} <= {limit_case}"
    ));
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (resource, delta, _) in &active {
        query = query.bind(*resource).bind(*delta);
    }
    query = query.bind(project_id);
    for (resource, _, _) in &active {
        query = query.bind(*resource);
    }
    for (resource, delta, _) in &active {
        query = query.bind(*resource).bind(*delta);
    }
    for (resource, _, limit) in &active {
        query = query
            .bind(*resource)
            .bind(if *limit < 0 { i64::MAX / 4 } else { *limit });
    }
    let updated = query.execute(&mut *conn).await?.rows_affected();
    if updated != active.len() as u64 {
        return Err(DbError::Retryable(format!(
            "quota usage of {project_id} changed concurrently"
        )));
    }
    Ok(())
}

/// The charges of one volume (negate them to release).
pub(crate) fn volume_charges(type_name: Option<&str>, size: i64, sign: i64) -> Vec<(String, i64)> {
    let mut charges = vec![
        ("volumes".to_owned(), sign),
        ("gigabytes".to_owned(), sign * size),
    ];
    if let Some(name) = type_name {
        charges.push((format!("volumes_{name}"), sign));
        charges.push((format!("gigabytes_{name}"), sign * size));
    }
    charges
}

/// The charges of one snapshot.
pub(crate) fn snapshot_charges(
    db: &Db,
    type_name: Option<&str>,
    size: i64,
    sign: i64,
) -> Vec<(String, i64)> {
    let gb = if db.quota_defaults.no_snapshot_gb_quota {
        0
    } else {
        sign * size
    };
    let mut charges = vec![("snapshots".to_owned(), sign), ("gigabytes".to_owned(), gb)];
    if let Some(name) = type_name {
        charges.push((format!("snapshots_{name}"), sign));
        charges.push((format!("gigabytes_{name}"), gb));
    }
    charges
}

#[async_trait::async_trait]
impl QuotaRepository for Db {
    async fn quota_limits(&self, project_id: &str) -> Result<BTreeMap<String, i64>, DbError> {
        let mut limits = self.quota_class_limits("default").await?;
        let type_names: Vec<String> = sqlx::query_scalar("SELECT name FROM volume_types")
            .fetch_all(&self.read)
            .await?;
        for name in type_names {
            for prefix in ["volumes", "snapshots", "gigabytes"] {
                limits.entry(format!("{prefix}_{name}")).or_insert(-1);
            }
        }
        let own: Vec<(String, i64)> =
            sqlx::query_as(self.q("SELECT resource, hard_limit FROM quotas WHERE project_id = ?"))
                .bind(project_id)
                .fetch_all(&self.read)
                .await?;
        limits.extend(own);
        Ok(limits)
    }

    async fn quota_usages(&self, project_id: &str) -> Result<BTreeMap<String, i64>, DbError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            self.q("SELECT resource, in_use FROM quota_usages WHERE project_id = ?"),
        )
        .bind(project_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().collect())
    }

    async fn set_project_quota(
        &self,
        project_id: &str,
        resource: &str,
        limit: i64,
    ) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            let updated = sqlx::query(
                self.q("UPDATE quotas SET hard_limit = ? WHERE project_id = ? AND resource = ?"),
            )
            .bind(limit)
            .bind(project_id)
            .bind(resource)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                let insert = self.dynamic(
                    self.dialect
                        .insert_ignore("quotas (project_id, resource, hard_limit)", "(?, ?, ?)"),
                );
                sqlx::query(sqlx::AssertSqlSafe(insert.as_str()))
                    .bind(project_id)
                    .bind(resource)
                    .bind(limit)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok::<_, DbError>(())
        })
    }

    async fn delete_project_quotas(&self, project_id: &str) -> Result<(), DbError> {
        sqlx::query(self.q("DELETE FROM quotas WHERE project_id = ?"))
            .bind(project_id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn quota_class_limits(&self, class_name: &str) -> Result<BTreeMap<String, i64>, DbError> {
        let mut limits = default_limits(self);
        let rows: Vec<(String, i64)> = sqlx::query_as(
            self.q("SELECT resource, hard_limit FROM quota_classes WHERE class_name = ?"),
        )
        .bind(class_name)
        .fetch_all(&self.read)
        .await?;
        limits.extend(rows);
        Ok(limits)
    }

    async fn set_quota_class(
        &self,
        class_name: &str,
        resource: &str,
        limit: i64,
    ) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            let updated = sqlx::query(self.q(
                "UPDATE quota_classes SET hard_limit = ? WHERE class_name = ? AND resource = ?",
            ))
            .bind(limit)
            .bind(class_name)
            .bind(resource)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                let insert = self.dynamic(self.dialect.insert_ignore(
                    "quota_classes (class_name, resource, hard_limit)",
                    "(?, ?, ?)",
                ));
                sqlx::query(sqlx::AssertSqlSafe(insert.as_str()))
                    .bind(class_name)
                    .bind(resource)
                    .bind(limit)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok::<_, DbError>(())
        })
    }

    async fn recount_usages(&self, project_id: &str) -> Result<BTreeMap<String, i64>, DbError> {
        let mut usage: BTreeMap<String, i64> = BTreeMap::new();
        let sql = self.dynamic(format!(
            "SELECT t.name, COUNT(*), {} FROM volumes v \
             LEFT JOIN volume_types t ON t.id = v.volume_type_id \
             WHERE v.project_id = ? AND v.use_quota = 1 GROUP BY t.name",
            self.dialect.sum_int("v.size")
        ));
        let volumes: Vec<(Option<String>, i64, i64)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(project_id)
                .fetch_all(&self.read)
                .await?;
        for (type_name, count, gigabytes) in volumes {
            *usage.entry("volumes".into()).or_default() += count;
            *usage.entry("gigabytes".into()).or_default() += gigabytes;
            if let Some(name) = type_name {
                *usage.entry(format!("volumes_{name}")).or_default() += count;
                *usage.entry(format!("gigabytes_{name}")).or_default() += gigabytes;
            }
        }
        let sql = self.dynamic(format!(
            "SELECT t.name, COUNT(*), {} FROM snapshots s \
             LEFT JOIN volume_types t ON t.id = s.volume_type_id \
             WHERE s.project_id = ? AND s.use_quota = 1 GROUP BY t.name",
            self.dialect.sum_int("s.volume_size")
        ));
        let snapshots: Vec<(Option<String>, i64, i64)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(project_id)
                .fetch_all(&self.read)
                .await?;
        let count_snapshot_gb = !self.quota_defaults.no_snapshot_gb_quota;
        for (type_name, count, gigabytes) in snapshots {
            *usage.entry("snapshots".into()).or_default() += count;
            if count_snapshot_gb {
                *usage.entry("gigabytes".into()).or_default() += gigabytes;
            }
            if let Some(name) = type_name {
                *usage.entry(format!("snapshots_{name}")).or_default() += count;
                if count_snapshot_gb {
                    *usage.entry(format!("gigabytes_{name}")).or_default() += gigabytes;
                }
            }
        }
        let groups: i64 =
            sqlx::query_scalar(self.q("SELECT COUNT(*) FROM volume_groups WHERE project_id = ?"))
                .bind(project_id)
                .fetch_one(&self.read)
                .await?;
        if groups > 0 {
            usage.insert("groups".into(), groups);
        }
        Ok(usage)
    }

    async fn projects_with_usage(&self) -> Result<Vec<String>, DbError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT project_id FROM quota_usages UNION SELECT project_id FROM volumes \
             UNION SELECT project_id FROM snapshots UNION SELECT project_id FROM volume_groups",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows)
    }

    async fn sync_usages(&self, project_id: &str) -> Result<Vec<String>, DbError> {
        // Recount and rewrite under the write connection so no resource
        // transaction interleaves (PostgreSQL/MariaDB: row locks on the
        // counters; SQLite: one writer).
        let counters = self.quota_usages(project_id).await?;
        let truth = self.recount_usages(project_id).await?;
        let mut drifted = Vec::new();
        let keys: std::collections::BTreeSet<&String> =
            counters.keys().chain(truth.keys()).collect();
        for key in keys {
            let have = counters.get(key).copied().unwrap_or(0);
            let want = truth.get(key).copied().unwrap_or(0);
            if have != want {
                drifted.push(key.clone());
                let delta = want - have;
                in_transaction!(self, |tx| {
                    let insert =
                        self.dynamic(self.dialect.insert_ignore(
                            "quota_usages (project_id, resource, in_use)",
                            "(?, ?, 0)",
                        ));
                    sqlx::query(sqlx::AssertSqlSafe(insert.as_str()))
                        .bind(project_id)
                        .bind(key.as_str())
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(self.q("UPDATE quota_usages SET in_use = in_use + ? WHERE project_id = ? AND resource = ?"))
                        .bind(delta)
                        .bind(project_id)
                        .bind(key.as_str())
                        .execute(&mut *tx)
                        .await?;
                    Ok::<_, DbError>(())
                })?;
            }
        }
        Ok(drifted)
    }
}
