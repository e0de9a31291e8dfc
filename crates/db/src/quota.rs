//! Quota limits and usage counters.
//!
//! Usage counters change only inside the transactions that insert or delete
//! the rows they count (see `volumes/`, `snapshots.rs`), through
//! [`charge_quota`]: a conditional `UPDATE … WHERE in_use + delta <= limit`,
//! which every engine evaluates against the latest committed row under its
//! row lock, so concurrent creates cannot overshoot and the counters always
//! equal [`QuotaRepository::recount_usages`].

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::batch::{Batch, Outcome};
use crate::error::{DbError, OverQuota};
use crate::pool::{Db, in_transaction};
use crate::query::Arg;

/// Quota repository.
#[async_trait::async_trait]
pub trait QuotaRepository {
    /// Effective limits for a project: its own rows, then the `default`
    /// class, then the configuration; per-type resources for every type.
    ///
    /// # Errors
    /// Database failures.
    async fn quota_limits(&self, project_id: &str) -> Result<BTreeMap<String, i64>, DbError>;

    /// Usage counters of a project (missing resources are 0).
    ///
    /// # Errors
    /// Database failures.
    async fn quota_usages(&self, project_id: &str) -> Result<BTreeMap<String, i64>, DbError>;

    /// Sets a project's limit for one resource.
    ///
    /// # Errors
    /// Database failures.
    async fn set_project_quota(
        &self,
        project_id: &str,
        resource: &str,
        limit: i64,
    ) -> Result<(), DbError>;

    /// Removes a project's own limits (back to defaults).
    ///
    /// # Errors
    /// Database failures.
    async fn delete_project_quotas(&self, project_id: &str) -> Result<(), DbError>;

    /// Limits of a quota class (`default`), falling back to configuration.
    ///
    /// # Errors
    /// Database failures.
    async fn quota_class_limits(&self, class_name: &str) -> Result<BTreeMap<String, i64>, DbError>;

    /// Sets a class limit.
    ///
    /// # Errors
    /// Database failures.
    async fn set_quota_class(
        &self,
        class_name: &str,
        resource: &str,
        limit: i64,
    ) -> Result<(), DbError>;

    /// Recounts a project's usage from the resource rows (what the counters
    /// must equal).
    ///
    /// # Errors
    /// Database failures.
    async fn recount_usages(&self, project_id: &str) -> Result<BTreeMap<String, i64>, DbError>;

    /// Projects that have usage rows or resources.
    ///
    /// # Errors
    /// Database failures.
    async fn projects_with_usage(&self) -> Result<Vec<String>, DbError>;

    /// Rewrites a project's counters from a recount (`clinker manage quota
    /// sync`); returns the resources that had drifted.
    ///
    /// # Errors
    /// Database failures.
    async fn sync_usages(&self, project_id: &str) -> Result<Vec<String>, DbError>;
}

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
    let mut batch = Batch::new();
    let Some(read) = push_limits_read(db, &mut batch, project_id, resources) else {
        return Ok(BTreeMap::new());
    };
    let outcomes = batch.run(db, conn).await?;
    limits_from(db, &outcomes[read].rows, resources)
}

/// Adds the statement reading the limits of `resources` to `batch` and
/// returns its index, or `None` when there is nothing to read.
pub(crate) fn push_limits_read(
    db: &Db,
    batch: &mut Batch,
    project_id: &str,
    resources: &[&str],
) -> Option<usize> {
    if resources.is_empty() {
        return None;
    }
    let list = crate::query::placeholders(resources.len());
    let mut args = vec![Arg::Text(project_id.to_owned())];
    for _ in 0..2 {
        args.extend(resources.iter().map(|r| Arg::Text((*r).to_owned())));
    }
    Some(batch.push(
        db,
        format!(
            "SELECT 1, resource, hard_limit FROM quotas WHERE project_id = ? AND resource IN ({list}) \
             UNION ALL SELECT 2, resource, hard_limit FROM quota_classes WHERE class_name = 'default' AND resource IN ({list})"
        ),
        args,
    ))
}

/// The limits of `resources` from the rows of [`push_limits_read`].
pub(crate) fn limits_from(
    db: &Db,
    rows: &[AnyRow],
    resources: &[&str],
) -> Result<BTreeMap<String, i64>, DbError> {
    let mut limits: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_class: BTreeMap<String, i64> = BTreeMap::new();
    for row in rows {
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
/// current usage, then the usage rows a project lacks created and one
/// conditional `UPDATE` for every resource (see [`QuotaCharge`]).
pub(crate) async fn charge_quota_with_limits(
    db: &Db,
    conn: &mut AnyConnection,
    project_id: &str,
    charges: &[(String, i64)],
    limits: &BTreeMap<String, i64>,
) -> Result<(), DbError> {
    let charge = QuotaCharge::new(project_id, charges);
    let mut reads = Batch::new();
    let Some(usage) = charge.push_usage_read(db, &mut reads) else {
        return Ok(());
    };
    let outcomes = reads.run(db, conn).await?;
    let mut writes = Batch::new();
    let update = charge.push_update(db, &mut writes, &outcomes[usage].rows, limits)?;
    let outcomes = writes.run(db, conn).await?;
    charge.check(update.map(|i| &outcomes[i]))
}

/// One project's usage deltas, in the pieces a transaction batches: the
/// usage read ([`Self::push_usage_read`]), then — with the limits and that
/// read's rows — the refusal of a charge over its limit (reported exactly
/// as Cinder words it), the usage rows a project lacks created on first
/// use and one conditional `UPDATE` for every resource
/// ([`Self::push_update`]), whose count [`Self::check`] verifies. The
/// `UPDATE`'s own conditions guard against a concurrent change between
/// the read and the write; when they refuse, the whole transaction is
/// retried and the read sees why.
pub(crate) struct QuotaCharge<'a> {
    project_id: &'a str,
    /// Resource and delta, in the caller's order, zero deltas left out.
    deltas: Vec<(&'a str, i64)>,
}

impl<'a> QuotaCharge<'a> {
    pub(crate) fn new(project_id: &'a str, charges: &'a [(String, i64)]) -> Self {
        Self {
            project_id,
            deltas: charges
                .iter()
                .filter(|(_, delta)| *delta != 0)
                .map(|(resource, delta)| (resource.as_str(), *delta))
                .collect(),
        }
    }

    /// Adds the usage read; `None` when no delta is left.
    pub(crate) fn push_usage_read(&self, db: &Db, batch: &mut Batch) -> Option<usize> {
        if self.deltas.is_empty() {
            return None;
        }
        let mut args = vec![Arg::Text(self.project_id.to_owned())];
        args.extend(self.deltas.iter().map(|(r, _)| Arg::Text((*r).to_owned())));
        Some(batch.push(
            db,
            format!(
                "SELECT resource, in_use FROM quota_usages WHERE project_id = ? AND resource IN ({})",
                crate::query::placeholders(self.deltas.len())
            ),
            args,
        ))
    }

    /// Refuses a charge over its limit (nothing added), or adds the
    /// statements that apply the deltas and returns the index of the
    /// `UPDATE` to check (`None` when no delta is left).
    ///
    /// # Errors
    /// [`DbError::OverQuota`] for the first resource over its limit.
    pub(crate) fn push_update(
        &self,
        db: &Db,
        batch: &mut Batch,
        usage_rows: &[AnyRow],
        limits: &BTreeMap<String, i64>,
    ) -> Result<Option<usize>, DbError> {
        if self.deltas.is_empty() {
            return Ok(None);
        }
        let mut usage: BTreeMap<String, i64> = BTreeMap::new();
        for row in usage_rows {
            usage.insert(row.try_get(0)?, row.try_get(1)?);
        }
        let limit_of = |resource: &str, delta: i64| {
            if delta > 0 {
                limits.get(resource).copied().unwrap_or(-1)
            } else {
                -1
            }
        };
        for (resource, delta) in &self.deltas {
            let in_use = usage.get(*resource).copied().unwrap_or(0);
            let limit = limit_of(resource, *delta);
            if *delta > 0 && limit >= 0 && in_use + delta > limit {
                return Err(DbError::OverQuota(OverQuota {
                    resource: (*resource).to_owned(),
                    limit,
                    in_use,
                    requested: *delta,
                }));
            }
        }
        for (resource, _) in self.deltas.iter().filter(|(r, _)| !usage.contains_key(*r)) {
            // First use of this resource by the project.
            self.push_usage_row(db, batch, resource);
        }
        Ok(Some(self.push_guarded_update(db, batch, limits)))
    }

    /// [`Self::push_update`] without the usage read, for SQLite, where a
    /// statement more in a batch costs no round trip: the usage rows are
    /// made if missing (a no-op when present), then the conditional
    /// `UPDATE` refuses a charge over its limit. Check it with
    /// [`Self::check_unread`].
    pub(crate) fn push_unread_update(
        &self,
        db: &Db,
        batch: &mut Batch,
        limits: &BTreeMap<String, i64>,
    ) -> Option<usize> {
        if self.deltas.is_empty() {
            return None;
        }
        for (resource, _) in &self.deltas {
            self.push_usage_row(db, batch, resource);
        }
        Some(self.push_guarded_update(db, batch, limits))
    }

    /// Verifies the `UPDATE` of [`Self::push_unread_update`]; when it
    /// refused, reads the committed usage (the refused `UPDATE` may have
    /// changed some rows of this transaction) to name the first resource
    /// over its limit, as [`Self::push_update`] would have.
    ///
    /// # Errors
    /// [`DbError::OverQuota`], or [`DbError::Retryable`] when no resource
    /// is over its limit (a concurrent change).
    pub(crate) async fn check_unread(
        &self,
        db: &Db,
        update: Option<&Outcome>,
        limits: &BTreeMap<String, i64>,
    ) -> Result<(), DbError> {
        if self.check(update).is_ok() {
            return Ok(());
        }
        let mut reads = Batch::new();
        if let Some(usage) = self.push_usage_read(db, &mut reads) {
            let mut conn = db.reader().await?;
            let read = reads.run(db, &mut conn).await?;
            // Either the first resource over its limit, or nothing.
            self.push_update(db, &mut Batch::new(), &read[usage].rows, limits)?;
        }
        self.check(update)
    }

    /// The usage row of `resource`, made at zero if the project has none.
    fn push_usage_row(&self, db: &Db, batch: &mut Batch, resource: &str) {
        batch.push(
            db,
            db.dialect
                .insert_ignore("quota_usages (project_id, resource, in_use)", "(?, ?, 0)"),
            vec![
                Arg::Text(self.project_id.to_owned()),
                Arg::Text(resource.to_owned()),
            ],
        );
    }

    /// The conditional `UPDATE` applying every delta within its limit.
    fn push_guarded_update(
        &self,
        db: &Db,
        batch: &mut Batch,
        limits: &BTreeMap<String, i64>,
    ) -> usize {
        let limit_of = |resource: &str, delta: i64| {
            if delta > 0 {
                limits.get(resource).copied().unwrap_or(-1)
            } else {
                -1
            }
        };
        // One statement for every resource: CASE picks each row's delta and
        // limit (no limit is the largest integer).
        let mut delta_case = String::from("CASE resource");
        let mut limit_case = String::from("CASE resource");
        for _ in &self.deltas {
            delta_case.push_str(" WHEN ? THEN ?");
            limit_case.push_str(" WHEN ? THEN ?");
        }
        delta_case.push_str(" ELSE 0 END");
        limit_case.push_str(" ELSE 0 END");
        let list = crate::query::placeholders(self.deltas.len());
        let mut args = Vec::new();
        for (resource, delta) in &self.deltas {
            args.push(Arg::Text((*resource).to_owned()));
            args.push(Arg::Int(*delta));
        }
        args.push(Arg::Text(self.project_id.to_owned()));
        args.extend(self.deltas.iter().map(|(r, _)| Arg::Text((*r).to_owned())));
        for (resource, delta) in &self.deltas {
            args.push(Arg::Text((*resource).to_owned()));
            args.push(Arg::Int(*delta));
        }
        for (resource, delta) in &self.deltas {
            let limit = limit_of(resource, *delta);
            args.push(Arg::Text((*resource).to_owned()));
            args.push(Arg::Int(if limit < 0 { i64::MAX / 4 } else { limit }));
        }
        batch.push(
            db,
            format!(
                "UPDATE quota_usages SET in_use = in_use + {delta_case} WHERE project_id = ? AND resource IN ({list}) \
                 AND in_use + {delta_case} <= {limit_case}"
            ),
            args,
        )
    }

    /// Whether every delta gives usage back (no limit to check).
    pub(crate) fn is_release(&self) -> bool {
        self.deltas.iter().all(|(_, delta)| *delta < 0)
    }

    /// A release needs no read first: adds its `UPDATE` of the usage rows
    /// and returns its index (`None` when no delta is left). Check it with
    /// [`Self::finish_release`].
    pub(crate) fn push_release(&self, db: &Db, batch: &mut Batch) -> Option<usize> {
        debug_assert!(self.is_release());
        if self.deltas.is_empty() {
            return None;
        }
        Some(self.push_deltas(db, batch, self.deltas.iter().copied()))
    }

    /// Completes a release whose `UPDATE` missed rows the project lacks
    /// (usage never charged, or reset by hand): they are made at zero and
    /// take their deltas, as [`charge_quota`] does.
    pub(crate) async fn finish_release(
        &self,
        db: &Db,
        conn: &mut AnyConnection,
        update: Option<&Outcome>,
    ) -> Result<(), DbError> {
        match update {
            Some(outcome) if outcome.affected != self.deltas.len() as u64 => {
                let mut reads = Batch::new();
                let Some(usage) = self.push_usage_read(db, &mut reads) else {
                    return Ok(());
                };
                let found = reads.run(db, conn).await?;
                let mut present = std::collections::BTreeSet::new();
                for row in &found[usage].rows {
                    present.insert(row.try_get::<String, _>(0)?);
                }
                let missing: Vec<(&str, i64)> = self
                    .deltas
                    .iter()
                    .filter(|(r, _)| !present.contains(*r))
                    .copied()
                    .collect();
                let mut writes = Batch::new();
                for (resource, _) in &missing {
                    writes.push(
                        db,
                        db.dialect.insert_ignore(
                            "quota_usages (project_id, resource, in_use)",
                            "(?, ?, 0)",
                        ),
                        vec![
                            Arg::Text(self.project_id.to_owned()),
                            Arg::Text((*resource).to_owned()),
                        ],
                    );
                }
                if !missing.is_empty() {
                    self.push_deltas(db, &mut writes, missing.into_iter());
                }
                writes.run(db, conn).await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The unconditional `UPDATE` applying `deltas`.
    fn push_deltas(
        &self,
        db: &Db,
        batch: &mut Batch,
        deltas: impl Iterator<Item = (&'a str, i64)> + Clone,
    ) -> usize {
        let mut case = String::from("CASE resource");
        let mut args = Vec::new();
        let mut names = Vec::new();
        for (resource, delta) in deltas {
            case.push_str(" WHEN ? THEN ?");
            args.push(Arg::Text(resource.to_owned()));
            args.push(Arg::Int(delta));
            names.push(Arg::Text(resource.to_owned()));
        }
        case.push_str(" ELSE 0 END");
        let list = crate::query::placeholders(names.len());
        args.push(Arg::Text(self.project_id.to_owned()));
        args.extend(names);
        batch.push(
            db,
            format!(
                "UPDATE quota_usages SET in_use = in_use + {case} WHERE project_id = ? AND resource IN ({list})"
            ),
            args,
        )
    }

    /// Verifies the `UPDATE` of [`Self::push_update`] changed every row.
    ///
    /// # Errors
    /// [`DbError::Retryable`] when a concurrent change made it refuse.
    pub(crate) fn check(&self, update: Option<&Outcome>) -> Result<(), DbError> {
        match update {
            Some(outcome) if outcome.affected != self.deltas.len() as u64 => {
                Err(DbError::Retryable(format!(
                    "quota usage of {} changed concurrently",
                    self.project_id
                )))
            }
            _ => Ok(()),
        }
    }
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
            .fetch_all(&mut *self.reader().await?)
            .await?;
        for name in type_names {
            for prefix in ["volumes", "snapshots", "gigabytes"] {
                limits.entry(format!("{prefix}_{name}")).or_insert(-1);
            }
        }
        let own: Vec<(String, i64)> =
            sqlx::query_as(self.q("SELECT resource, hard_limit FROM quotas WHERE project_id = ?"))
                .bind(project_id)
                .fetch_all(&mut *self.reader().await?)
                .await?;
        limits.extend(own);
        Ok(limits)
    }

    async fn quota_usages(&self, project_id: &str) -> Result<BTreeMap<String, i64>, DbError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            self.q("SELECT resource, in_use FROM quota_usages WHERE project_id = ?"),
        )
        .bind(project_id)
        .fetch_all(&mut *self.reader().await?)
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
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    async fn quota_class_limits(&self, class_name: &str) -> Result<BTreeMap<String, i64>, DbError> {
        let mut limits = default_limits(self);
        let rows: Vec<(String, i64)> = sqlx::query_as(
            self.q("SELECT resource, hard_limit FROM quota_classes WHERE class_name = ?"),
        )
        .bind(class_name)
        .fetch_all(&mut *self.reader().await?)
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
                .fetch_all(&mut *self.reader().await?)
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
                .fetch_all(&mut *self.reader().await?)
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
                .fetch_one(&mut *self.reader().await?)
                .await?;
        if groups > 0 {
            usage.insert("groups".into(), groups);
        }
        let sql = self.dynamic(format!(
            "SELECT COUNT(*), {} FROM backups WHERE project_id = ?",
            self.dialect.sum_int("size")
        ));
        let (backups, backup_gigabytes): (i64, i64) =
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(project_id)
                .fetch_one(&mut *self.reader().await?)
                .await?;
        if backups > 0 {
            usage.insert("backups".into(), backups);
            usage.insert("backup_gigabytes".into(), backup_gigabytes);
        }
        Ok(usage)
    }

    async fn projects_with_usage(&self) -> Result<Vec<String>, DbError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT project_id FROM quota_usages UNION SELECT project_id FROM volumes \
             UNION SELECT project_id FROM snapshots UNION SELECT project_id FROM volume_groups \
             UNION SELECT project_id FROM backups",
        )
        .fetch_all(&mut *self.reader().await?)
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
