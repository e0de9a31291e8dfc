//! Adopting a Cinder deployment: reading Cinder's own database into
//! Clinker's (`clinker manage cinder import`).
//!
//! The import is a plan and an apply. [`plan`] reads every live row Clinker
//! models from the Cinder database into memory (through the mapping of
//! [`super::tables`]), checks each against Clinker's vocabulary (statuses,
//! required columns) and counts what it leaves behind (soft-deleted rows,
//! tables Clinker has no model for). A dry run stops there and prints the
//! report. [`import`] then writes the plan into Clinker's database in one
//! transaction: it clears the tables it fills (only a database without
//! user data, or with `--replace`), inserts the rows with their ids and
//! timestamps, recounts quota usage and pool allocations from the inserted
//! rows (Cinder's `quota_usages` and `reservations` are not carried), and
//! records the import in `cinder_imports`, which makes a second run a no-op.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use clinker_types::Timestamp;
use clinker_types::group::DEFAULT_CGSNAPSHOT_TYPE_ID;

use super::report::{ImportReport, Outcome, Skipped};
use super::tables::{Src, Table, tables};
use super::{Row, V, check_revision, count, fetch_value, table_exists};
use crate::error::DbError;
use crate::pool::{Db, in_transaction};

/// What the operator asked for.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Print the report, write nothing.
    pub dry_run: bool,
    /// Import even into a database that already holds an import or
    /// Clinker's own data (which is removed first).
    pub replace: bool,
    /// Import although Cinder services still report heartbeats.
    pub force: bool,
    /// `service_down_time` in seconds: a Cinder service whose heartbeat is
    /// younger counts as running.
    pub service_down_time: i64,
    /// Clinker's `enabled_backends` (the report names the sections the
    /// volumes' hosts need that are missing).
    pub enabled_backends: Vec<String>,
    /// `default_volume_type`: the one type a freshly synced Clinker
    /// database holds, which does not count as user data.
    pub default_volume_type: String,
    /// The source URL as shown in the report and recorded (passwords
    /// removed by the caller).
    pub source_label: String,
}

/// Clinker's unbounded text columns; every other text column holds at
/// most 255 characters.
const UNBOUNDED_COLUMNS: &[&str] = &["connection_info", "connector"];

/// A value longer than Clinker's column (Cinder's glance metadata values
/// are TEXT, `provider_location` 256 characters): the row is reported
/// instead of failing the whole import on engines that enforce lengths.
fn too_long(row: &Row) -> Option<String> {
    row.0.iter().find_map(|(name, value)| match value {
        V::T(Some(text))
            if !name.starts_with('_')
                && !UNBOUNDED_COLUMNS.contains(name)
                && text.chars().count() > 255 =>
        {
            Some(format!(
                "{name} is {} characters long; Clinker keeps at most 255",
                text.chars().count()
            ))
        }
        _ => None,
    })
}

/// Cinder tables whose soft-deleted rows the report counts.
const SOFT_DELETABLE: &[&str] = &[
    "volumes",
    "volume_metadata",
    "volume_admin_metadata",
    "volume_glance_metadata",
    "volume_attachment",
    "snapshots",
    "snapshot_metadata",
    "volume_types",
    "volume_type_extra_specs",
    "volume_type_projects",
    "encryption",
    "quality_of_service_specs",
    "default_volume_types",
    "services",
    "groups",
    "group_types",
    "group_type_specs",
    "group_type_projects",
    "group_volume_type_mapping",
    "group_snapshots",
    "transfers",
    "messages",
    "quotas",
    "quota_classes",
    "quota_usages",
    "reservations",
    "backups",
    "backup_metadata",
];

/// Cinder tables (or parts) Clinker does not carry: (table, has a
/// `deleted` column, extra condition, reason).
const NOT_CARRIED: &[(&str, bool, &str, &str)] = &[
    (
        "reservations",
        true,
        "",
        "Cinder's quota reservations are dropped; usage is recounted",
    ),
    (
        "quota_usages",
        true,
        "",
        "recounted from the imported rows instead",
    ),
    (
        "consistencygroups",
        true,
        "",
        "consistency groups are not modelled (Cinder migrates them to groups)",
    ),
    (
        "cgsnapshots",
        true,
        "",
        "consistency group snapshots are not modelled",
    ),
    (
        "attachment_specs",
        true,
        "",
        "Clinker reads the connector from volume_attachment.connector",
    ),
    (
        "clusters",
        true,
        "",
        "Clinker derives clusters from the services' cluster_name",
    ),
    (
        "workers",
        true,
        "",
        "Cinder's cleanup journal; Clinker keeps its own",
    ),
    (
        "driver_initiator_data",
        false,
        "",
        "driver-private data of drivers Clinker does not have",
    ),
    (
        "volume_glance_metadata",
        true,
        "volume_id IS NULL",
        "image metadata of snapshots is not modelled",
    ),
];

/// Clinker tables an import fills, cleared first (the fixed
/// `default_cgsnapshot_type` group type stays).
pub const TARGET_TABLES: &[&str] = &[
    "services",
    "volume_types",
    "volume_type_extra_specs",
    "volume_type_projects",
    "encryption",
    "qos_specs",
    "qos_specs_items",
    "default_volume_types",
    "volumes",
    "volume_metadata",
    "volume_attachment",
    "snapshots",
    "snapshot_metadata",
    "group_type_projects",
    "volume_groups",
    "group_volume_types",
    "group_snapshots",
    "transfers",
    "image_volume_cache_entries",
    "messages",
    "quotas",
    "quota_classes",
    "quota_usages",
    "pool_allocations",
    "workers",
    "unmanaged_objects",
    "backups",
    "backup_metadata",
    "cinder_imports",
];

/// The rows read from Cinder, ready to write.
pub struct Plan {
    tables: Vec<Table>,
    rows: Vec<Vec<Row>>,
    /// The report (outcome [`Outcome::DryRun`] until applied).
    pub report: ImportReport,
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plan")
            .field("report", &self.report)
            .finish()
    }
}

/// Reads everything from the Cinder database and checks it; writes
/// nothing anywhere.
///
/// # Errors
/// An unknown schema revision, Cinder services still running (without
/// `force`), a failing query.
pub async fn plan(source: &Db, options: &ImportOptions) -> Result<Plan, DbError> {
    let revision = check_revision(source).await?;
    let s = Src(source.dialect());
    let now = source.now().as_micros();

    // Running services: a heartbeat younger than service_down_time.
    let sql = format!(
        "SELECT host, \"binary\", COALESCE({}, {}), COALESCE({}, 0) FROM services s WHERE {}",
        s.ts("s.updated_at"),
        s.ts("s.created_at"),
        s.int("s.disabled"),
        s.live("s")
    );
    let services: Vec<(String, Option<String>, Option<i64>, i64)> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *source.reader().await?)
            .await?;
    let window = options.service_down_time.max(0).saturating_mul(1_000_000);
    let live_services: Vec<String> = services
        .iter()
        .filter(|(_, _, beat, _)| beat.is_some_and(|b| now - b <= window))
        .map(|(host, binary, _, _)| format!("{} on {host}", binary.as_deref().unwrap_or("?")))
        .collect();
    if !live_services.is_empty() && !options.force && !options.dry_run {
        return Err(DbError::InvalidState(format!(
            "Cinder is still running: {} reported within service_down_time ({} s). Stop \
             Cinder's services first (or pass --force)",
            live_services.join(", "),
            options.service_down_time
        )));
    }

    let tables: Vec<Table> = tables(&s)
        .into_iter()
        .filter(|t| t.from.is_some())
        .collect();
    let mut rows = Vec::with_capacity(tables.len());
    let mut skipped = Vec::new();
    let mut skipped_ids: HashMap<&'static str, HashSet<String>> = HashMap::new();
    let mut imported = BTreeMap::new();
    for table in &tables {
        // The alias follows the first table's name in `from`.
        let alias = table.from.as_deref().unwrap_or_default();
        let alias = alias.split_whitespace().nth(1).unwrap_or("x");
        let select: Vec<String> = table.cols.iter().map(|c| c.source(&s, alias)).collect();
        let sql = format!(
            "SELECT {} FROM {}",
            select.join(", "),
            table.from.as_deref().unwrap_or_default()
        );
        let fetched = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *source.reader().await?)
            .await
            .map_err(|e| DbError::Internal(format!("reading {}s: {e}", table.kind)))?;
        let mut kept = Vec::with_capacity(fetched.len());
        for raw in fetched {
            let mut values = Vec::with_capacity(table.cols.len());
            for (n, col) in table.cols.iter().enumerate() {
                values.push((col.clinker, fetch_value(&raw, n, col.conv.integer())?));
            }
            let mut row = Row(values);
            let id = row.text(table.id).unwrap_or("").to_owned();
            let parent_gone = table.parent.and_then(|(col, kind)| {
                let parent = row.text(col)?;
                skipped_ids
                    .get(kind)
                    .is_some_and(|set| set.contains(parent))
                    .then(|| format!("its {kind} {parent} is skipped"))
            });
            let verdict = match parent_gone {
                Some(reason) => Err(reason),
                None => too_long(&row).map_or_else(|| (table.check)(&row), Err),
            };
            match verdict {
                Ok(()) => {
                    (table.fix)(&mut row);
                    kept.push(row);
                }
                Err(reason) => {
                    skipped_ids
                        .entry(table.kind)
                        .or_default()
                        .insert(id.clone());
                    skipped.push(Skipped {
                        kind: table.kind,
                        id,
                        reason,
                    });
                }
            }
        }
        imported.insert(table.kind, kept.len() as u64);
        rows.push(kept);
    }

    let mut soft_deleted = BTreeMap::new();
    for table in SOFT_DELETABLE {
        let n = count(
            source,
            &format!(
                "SELECT COUNT(*) FROM \"{table}\" x WHERE NOT ({})",
                s.live("x")
            ),
        )
        .await?;
        if n > 0 {
            soft_deleted.insert(*table, n);
        }
    }
    let mut not_carried = BTreeMap::new();
    for (table, soft, extra, why) in NOT_CARRIED {
        let mut conditions = Vec::new();
        if *soft {
            conditions.push(s.live("x"));
        }
        if !extra.is_empty() {
            conditions.push(format!("x.{extra}"));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let n = count(
            source,
            &format!("SELECT COUNT(*) FROM \"{table}\" x{filter}"),
        )
        .await?;
        if n > 0 {
            let label = if extra.is_empty() {
                *table
            } else {
                "volume_glance_metadata of snapshots"
            };
            not_carried.insert(label, (n, *why));
        }
    }

    // The backends the volumes live on: `host@backend#pool`.
    let volume_spec = tables.iter().position(|t| t.kind == "volume");
    let mut backends_needed = BTreeSet::new();
    if let Some(index) = volume_spec {
        for row in &rows[index] {
            if let Some(host) = row.text("host")
                && let Some((_, backend)) = host.split_once('@')
            {
                let backend = backend.split('#').next().unwrap_or(backend);
                backends_needed.insert(backend.to_owned());
            }
        }
    }
    let backends_missing = backends_needed
        .iter()
        .filter(|b| !options.enabled_backends.iter().any(|e| e == *b))
        .cloned()
        .collect();

    Ok(Plan {
        tables,
        rows,
        report: ImportReport {
            revision,
            imported,
            soft_deleted,
            not_carried,
            skipped,
            backends_needed,
            backends_missing,
            live_services,
            outcome: Outcome::DryRun,
        },
    })
}

/// Reads the Cinder database and, unless `options.dry_run`, writes it into
/// `target` (already migrated) in one transaction.
///
/// # Errors
/// As [`plan`]; the target holds data of its own (without `replace`); a
/// failing write (nothing is kept).
pub async fn import(
    target: &Db,
    source: &Db,
    options: &ImportOptions,
) -> Result<ImportReport, DbError> {
    if !options.replace
        && let Some((source_label, at)) = previous_import(target).await?
    {
        let revision = check_revision(source).await?;
        return Ok(ImportReport {
            revision,
            imported: BTreeMap::new(),
            soft_deleted: BTreeMap::new(),
            not_carried: BTreeMap::new(),
            skipped: Vec::new(),
            backends_needed: BTreeSet::new(),
            backends_missing: BTreeSet::new(),
            live_services: Vec::new(),
            outcome: Outcome::AlreadyImported {
                source: source_label,
                at: Timestamp(at),
            },
        });
    }
    let mut plan = plan(source, options).await?;
    if options.dry_run {
        return Ok(plan.report);
    }
    if !options.replace {
        let holds = user_data(target, &options.default_volume_type).await?;
        if !holds.is_empty() {
            return Err(DbError::InvalidState(format!(
                "Clinker's database already holds data of its own ({}); --replace removes it \
                 and imports",
                holds.join(", ")
            )));
        }
    }
    plan.report.outcome = Outcome::Imported;
    let summary = plan.report.to_string();
    let now = target.now().as_micros();
    let no_snapshot_gb = target.quota_defaults().no_snapshot_gb_quota;
    in_transaction!(target, |tx| {
        for table in TARGET_TABLES {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                .execute(&mut *tx)
                .await?;
        }
        for table in ["group_types", "group_type_specs"] {
            let column = if table == "group_types" {
                "id"
            } else {
                "group_type_id"
            };
            sqlx::query(sqlx::AssertSqlSafe(
                target.dynamic(format!("DELETE FROM {table} WHERE {column} <> ?")),
            ))
            .bind(DEFAULT_CGSNAPSHOT_TYPE_ID)
            .execute(&mut *tx)
            .await?;
        }
        for (table, rows) in plan.tables.iter().zip(&plan.rows) {
            let cols: Vec<&str> = table
                .cols
                .iter()
                .map(|c| c.clinker)
                .filter(|n| !n.starts_with('_'))
                .collect();
            let sql = target.dynamic(format!(
                "INSERT INTO {} ({}) VALUES ({})",
                table.clinker,
                cols.join(", "),
                vec!["?"; cols.len()].join(", ")
            ));
            for row in rows {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                for (name, value) in &row.0 {
                    if name.starts_with('_') {
                        continue;
                    }
                    query = match value {
                        V::I(v) => query.bind(*v),
                        V::T(v) => query.bind(v.clone()),
                    };
                }
                query.execute(&mut *tx).await.map_err(|e| {
                    DbError::Internal(format!(
                        "writing {} {}: {e}",
                        table.kind,
                        row.text(table.id).unwrap_or("")
                    ))
                })?;
            }
        }
        recount(target, &mut tx, no_snapshot_gb).await?;
        target.recount_volume_counts(&mut tx).await?;
        sqlx::query(target.q(
            "INSERT INTO cinder_imports (source, revision, imported_at, report) VALUES (?, ?, ?, ?)",
        ))
        .bind(options.source_label.as_str())
        .bind(plan.report.revision.as_str())
        .bind(now)
        .bind(summary.as_str())
        .execute(&mut *tx)
        .await?;
        Ok::<_, DbError>(())
    })?;
    Ok(plan.report)
}

/// Rewrites `quota_usages` and `pool_allocations` from the rows (as
/// `recount_usages` and `recount_pool_allocations` count them).
async fn recount(
    db: &Db,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    no_snapshot_gb: bool,
) -> Result<(), DbError> {
    let mut usage: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut add = |project: &str, resource: String, n: i64| {
        *usage.entry((project.to_owned(), resource)).or_default() += n;
    };
    for (table, size, kind) in [
        ("volumes", "size", "volumes"),
        ("snapshots", "volume_size", "snapshots"),
    ] {
        let sql = format!(
            "SELECT r.project_id, t.name, COUNT(*), {} FROM {table} r \
             LEFT JOIN volume_types t ON t.id = r.volume_type_id \
             WHERE r.use_quota = 1 GROUP BY r.project_id, t.name",
            db.dialect.sum_int(&format!("r.{size}"))
        );
        let rows: Vec<(String, Option<String>, i64, i64)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut **tx)
                .await?;
        let count_gb = kind == "volumes" || !no_snapshot_gb;
        for (project, type_name, n, gb) in rows {
            add(&project, kind.to_owned(), n);
            if count_gb {
                add(&project, "gigabytes".to_owned(), gb);
            }
            if let Some(name) = type_name {
                add(&project, format!("{kind}_{name}"), n);
                if count_gb {
                    add(&project, format!("gigabytes_{name}"), gb);
                }
            }
        }
    }
    let groups: Vec<(String, i64)> =
        sqlx::query_as("SELECT project_id, COUNT(*) FROM volume_groups GROUP BY project_id")
            .fetch_all(&mut **tx)
            .await?;
    for (project, n) in groups {
        add(&project, "groups".to_owned(), n);
    }
    let sql = format!(
        "SELECT project_id, COUNT(*), {} FROM backups GROUP BY project_id",
        db.dialect.sum_int("size")
    );
    let backups: Vec<(String, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut **tx)
        .await?;
    for (project, n, gb) in backups {
        add(&project, "backups".to_owned(), n);
        add(&project, "backup_gigabytes".to_owned(), gb);
    }
    for ((project, resource), in_use) in usage {
        sqlx::query(
            db.q("INSERT INTO quota_usages (project_id, resource, in_use) VALUES (?, ?, ?)"),
        )
        .bind(project)
        .bind(resource)
        .bind(in_use)
        .execute(&mut **tx)
        .await?;
    }
    let sql = format!(
        "INSERT INTO pool_allocations (pool, allocated_gb) \
         SELECT host, {} FROM volumes WHERE host IS NOT NULL GROUP BY host",
        db.dialect.sum_int("size")
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The source and time of an earlier import into `target`, if any.
///
/// # Errors
/// The database is unreachable.
pub async fn previous_import(target: &Db) -> Result<Option<(String, i64)>, DbError> {
    if !table_exists(target, "cinder_imports").await {
        // A database at a schema before version 10 (a dry run does not
        // migrate): nothing was imported into it.
        return Ok(None);
    }
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT source, imported_at FROM cinder_imports ORDER BY imported_at DESC LIMIT 1",
    )
    .fetch_optional(&mut *target.reader().await?)
    .await?;
    Ok(row)
}

/// The number of rows of each table an import fills (`group_types` and
/// `group_type_specs` included).
///
/// # Errors
/// The database is unreachable.
pub async fn row_counts(db: &Db) -> Result<BTreeMap<&'static str, i64>, DbError> {
    let mut counts = BTreeMap::new();
    for table in TARGET_TABLES
        .iter()
        .chain(&["group_types", "group_type_specs"])
    {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut *db.reader().await?)
                .await?;
        counts.insert(*table, n);
    }
    Ok(counts)
}

/// Every row of the tables an import fills (but `cinder_imports`), each
/// rendered as `col=value|…` and sorted: two databases holding the same
/// objects give equal maps (a round trip through Cinder's schema is
/// checked with it).
///
/// # Errors
/// The database is unreachable.
pub async fn contents(db: &Db) -> Result<BTreeMap<&'static str, Vec<String>>, DbError> {
    use sqlx::{Column as _, Row as _};
    let mut all = BTreeMap::new();
    for table in TARGET_TABLES
        .iter()
        .chain(&["group_types", "group_type_specs"])
        .filter(|t| **t != "cinder_imports")
    {
        let fetched = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table}")))
            .fetch_all(&mut *db.reader().await?)
            .await?;
        let mut rows: Vec<String> = fetched
            .iter()
            .map(|row| {
                (0..row.columns().len())
                    .map(|n| {
                        let value = match row.try_get::<Option<i64>, _>(n) {
                            Ok(v) => v.map(|v| v.to_string()),
                            Err(_) => row.try_get::<Option<String>, _>(n).ok().flatten(),
                        };
                        format!(
                            "{}={}",
                            row.columns()[n].name(),
                            value.as_deref().unwrap_or("NULL")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        rows.sort();
        all.insert(*table, rows);
    }
    Ok(all)
}

/// What user data `target` holds (empty for a freshly synced database).
async fn user_data(target: &Db, default_type: &str) -> Result<Vec<String>, DbError> {
    let mut found = Vec::new();
    for table in [
        "volumes",
        "snapshots",
        "volume_groups",
        "messages",
        "quotas",
        "quota_classes",
        "transfers",
        "backups",
    ] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut *target.reader().await?)
                .await?;
        if n > 0 {
            found.push(format!("{n} {table}"));
        }
    }
    let types: i64 =
        sqlx::query_scalar(target.q("SELECT COUNT(*) FROM volume_types WHERE name <> ?"))
            .bind(default_type)
            .fetch_one(&mut *target.reader().await?)
            .await?;
    if types > 0 {
        found.push(format!("{types} volume types"));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::super::messages::{MESSAGE_TTL_MICROS, fix_message};
    use super::super::tables::check_volume;
    use super::*;
    use crate::pool::Dialect;

    fn row(values: &[(&'static str, V)]) -> Row {
        Row(values.to_vec())
    }

    #[test]
    fn messages_get_cinder_texts_and_a_default_expiry() {
        let mut m = row(&[
            ("user_message", V::T(Some(String::new()))),
            ("created_at", V::I(Some(5))),
            ("expires_at", V::I(None)),
            ("_action_id", V::T(Some("013".into()))),
            ("_detail_id", V::T(Some("021".into()))),
        ]);
        fix_message(&mut m);
        assert_eq!(
            m.text("user_message"),
            Some("create backup:Failed to attach volume.")
        );
        assert_eq!(m.int("expires_at"), Some(5 + MESSAGE_TTL_MICROS));
        let mut unknown = row(&[
            ("user_message", V::T(None)),
            ("_action_id", V::T(None)),
            ("_detail_id", V::T(Some("999".into()))),
        ]);
        fix_message(&mut unknown);
        assert_eq!(
            unknown.text("user_message"),
            Some("An unknown error occurred.")
        );
    }

    #[test]
    fn long_values_and_unknown_statuses_are_refused_per_row() {
        let long = row(&[("meta_value", V::T(Some("x".repeat(256))))]);
        assert!(too_long(&long).unwrap().contains("256 characters"));
        let info = row(&[("connection_info", V::T(Some("x".repeat(4000))))]);
        assert_eq!(too_long(&info), None);
        let volume = row(&[
            ("id", V::T(Some("a".into()))),
            ("status", V::T(Some("available".into()))),
            ("attach_status", V::T(Some("detached".into()))),
            ("volume_type_id", V::T(Some("t".into()))),
            ("_name_id", V::T(None)),
        ]);
        assert_eq!(check_volume(&volume), Ok(()));
        let mut odd = volume.clone();
        odd.set("status", V::T(Some("frobnicating".into())));
        assert_eq!(
            check_volume(&odd),
            Err("unknown status \"frobnicating\"".into())
        );
        let mut migrated = volume;
        migrated.set("_name_id", V::T(Some("b".into())));
        assert!(check_volume(&migrated).unwrap_err().contains("_name_id"));
    }

    #[test]
    fn sources_read_times_and_flags_per_dialect() {
        let my = Src(Dialect::Mysql);
        assert_eq!(
            my.ts("v.created_at"),
            "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', v.created_at)"
        );
        assert_eq!(my.live("v"), "COALESCE(CAST(v.deleted AS SIGNED), 0) = 0");
        let pg = Src(Dialect::Postgres);
        assert!(pg.ts("x").starts_with("CAST(EXTRACT(EPOCH FROM x)"));
        assert_eq!(
            pg.live("v"),
            "COALESCE(CAST(CAST(v.deleted AS INTEGER) AS BIGINT), 0) = 0"
        );
    }
}
