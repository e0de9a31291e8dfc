//! The way back: writing Clinker's objects into an empty Cinder database
//! (`clinker manage cinder export --to <URL>`), so real Cinder serves them
//! again.
//!
//! The target is made by Cinder's own `cinder-manage db sync`: its schema
//! revision must be one [`super::KNOWN_REVISIONS`] names, and it must hold
//! nothing but what `db sync` seeds (the `__DEFAULT__` volume type, the
//! `default_cgsnapshot_type` group type, the `default` quota class). The
//! rows go in through the mapping of [`super::tables`], in Cinder's
//! foreign-key order, in one transaction: either everything lands or
//! nothing does. A seeded row Clinker has its own version of (the default
//! volume type by name, a quota class limit) is replaced by Clinker's;
//! Clinker's fixed `default_cgsnapshot_type` id becomes the target's.

use std::collections::BTreeMap;
use std::fmt;

use clinker_types::Timestamp;
use clinker_types::group::DEFAULT_CGSNAPSHOT_TYPE_ID;

use super::tables::{Conv, Src, Table, Write, tables};
use super::{V, check_revision, count, fetch_value};
use crate::error::DbError;
use crate::pool::{Db, Dialect, in_transaction};

/// What the operator asked for.
#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    /// Read and check everything, write nothing.
    pub dry_run: bool,
}

/// What an export wrote.
#[derive(Clone, Debug)]
pub struct ExportReport {
    /// The target's alembic revision.
    pub revision: String,
    /// Rows written (or to write, in a dry run) per kind.
    pub exported: BTreeMap<&'static str, u64>,
    /// Clinker rows that do not travel, with the reason.
    pub not_carried: BTreeMap<&'static str, (u64, &'static str)>,
    /// Whether it was a dry run.
    pub dry_run: bool,
}

impl fmt::Display for ExportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dry_run {
            writeln!(f, "dry run: nothing was written")?;
        } else {
            writeln!(f, "exported in one transaction")?;
        }
        writeln!(f, "Cinder schema revision {}", self.revision)?;
        writeln!(f, "rows exported:")?;
        for (kind, n) in &self.exported {
            writeln!(f, "  {kind:<28} {n}")?;
        }
        if !self.not_carried.is_empty() {
            writeln!(f, "rows not carried:")?;
            for (table, (n, why)) in &self.not_carried {
                writeln!(f, "  {table:<28} {n}  ({why})")?;
            }
        }
        Ok(())
    }
}

/// Cinder tables that hold user data (with the seeded rows `db sync`
/// writes left out): any row makes the target not empty.
const USER_TABLES: &[(&str, &str)] = &[
    ("volumes", ""),
    ("snapshots", ""),
    ("backups", ""),
    ("groups", ""),
    ("group_snapshots", ""),
    ("volume_attachment", ""),
    ("transfers", ""),
    ("messages", ""),
    ("quotas", ""),
    ("quota_usages", ""),
    ("services", ""),
    ("default_volume_types", ""),
    ("quality_of_service_specs", ""),
    ("volume_types", "name <> '__DEFAULT__'"),
    ("group_types", "name <> 'default_cgsnapshot_type'"),
];

/// Clinker's rows the export leaves behind: (table, reason).
const NOT_CARRIED: &[(&str, &str)] = &[
    (
        "workers",
        "operations in progress: finish or settle them in Clinker before exporting",
    ),
    (
        "unmanaged_objects",
        "names of unmanaged backend objects (Clinker's own bookkeeping)",
    ),
];

/// One value to write and how the target takes it.
enum Out {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<i64>),
    Time(Option<i64>),
}

impl Out {
    fn placeholder(&self, dialect: Dialect) -> &'static str {
        match (self, dialect) {
            (Out::Time(_), Dialect::Postgres) => "CAST(? AS TIMESTAMP)",
            (Out::Bool(_), Dialect::Postgres) => "CAST(CAST(? AS INTEGER) AS BOOLEAN)",
            _ => "?",
        }
    }

    fn bind<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
        dialect: Dialect,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        match self {
            Out::Text(v) => query.bind(v.clone()),
            Out::Int(v) | Out::Bool(v) => query.bind(*v),
            Out::Time(v) => query.bind(v.map(|micros| datetime(micros, dialect))),
        }
    }
}

/// A naive UTC `DATETIME` literal (MariaDB's columns keep whole seconds).
fn datetime(micros: i64, dialect: Dialect) -> String {
    let iso = Timestamp(micros).to_iso8601().replacen('T', " ", 1);
    match dialect {
        Dialect::Mysql => iso.chars().take(19).collect(),
        _ => iso,
    }
}

/// The value Cinder gets for `value` under `conv`.
fn convert(conv: Conv, value: V, cgsnapshot_type: &str) -> Out {
    match (conv, value) {
        (Conv::GroupType, V::T(Some(id))) if id == DEFAULT_CGSNAPSHOT_TYPE_ID => {
            Out::Text(Some(cgsnapshot_type.to_owned()))
        }
        (Conv::Bool(_), V::I(v)) => Out::Bool(v),
        (Conv::Int(_), V::I(v)) => Out::Int(v),
        // Clinker reads a NULL creation time as the epoch; Cinder keeps NULL.
        (Conv::Created, V::I(Some(0))) => Out::Time(None),
        (Conv::Time | Conv::Created, V::I(v)) => Out::Time(v),
        (_, V::T(v)) => Out::Text(v),
        (_, V::I(v)) => Out::Int(v),
    }
}

/// Clinker's rows of one table, ready to write: Cinder column → value.
type Rows = Vec<Vec<(&'static str, Out)>>;

async fn read_rows(
    clinker: &Db,
    table: &Table,
    cgsnapshot_type: &str,
    now: i64,
) -> Result<Rows, DbError> {
    let selected: Vec<(&super::tables::Col, String)> = table
        .cols
        .iter()
        .filter_map(|c| c.target().map(|sql| (c, sql)))
        .collect();
    let sql = format!(
        "SELECT {} FROM {} x {}",
        selected
            .iter()
            .map(|(_, sql)| sql.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        table.clinker,
        table.select.as_deref().unwrap_or_default()
    );
    let fetched = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *clinker.reader().await?)
        .await
        .map_err(|e| DbError::Internal(format!("reading Clinker's {}s: {e}", table.kind)))?;
    let writes_created = table.cols.iter().any(|c| c.cinder == Some("created_at"));
    let mut rows = Vec::with_capacity(fetched.len());
    for raw in fetched {
        let mut row = Vec::with_capacity(table.cols.len() + 3);
        let mut fetched_at = 0;
        for c in &table.cols {
            let Some(cinder) = c.cinder else { continue };
            let value = match &c.write {
                Some(Write::Value(v)) => v.clone(),
                _ => {
                    let v = fetch_value(&raw, fetched_at, c.conv.integer())?;
                    fetched_at += 1;
                    v
                }
            };
            row.push((cinder, convert(c.conv, value, cgsnapshot_type)));
        }
        // Cinder reads only rows whose `deleted` is false (not NULL).
        if table.bookkeeping {
            row.push((
                "deleted",
                if table.cinder == "volume_type_projects" {
                    Out::Int(Some(0))
                } else {
                    Out::Bool(Some(0))
                },
            ));
        }
        if table.bookkeeping && !writes_created {
            row.push(("created_at", Out::Time(Some(now))));
        }
        if table.uuid_id {
            row.push(("id", Out::Text(Some(uuid::Uuid::new_v4().to_string()))));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// What in `cinder` is not what `db sync` seeds.
async fn user_data(cinder: &Db) -> Result<Vec<String>, DbError> {
    let mut found = Vec::new();
    for (table, condition) in USER_TABLES {
        let filter = if condition.is_empty() {
            String::new()
        } else {
            format!(" WHERE {condition}")
        };
        let n = count(cinder, &format!("SELECT COUNT(*) FROM \"{table}\"{filter}")).await?;
        if n > 0 {
            found.push(format!("{n} {table}"));
        }
    }
    Ok(found)
}

/// Writes Clinker's objects (`clinker`) into the empty Cinder database
/// `cinder`, in one transaction.
///
/// # Errors
/// The target is not a Cinder database, has an unknown schema revision
/// or holds data; a failing write (nothing is kept).
pub async fn export(
    clinker: &Db,
    cinder: &Db,
    options: &ExportOptions,
) -> Result<ExportReport, DbError> {
    let revision = check_revision(cinder).await?;
    let holds = user_data(cinder).await?;
    if !holds.is_empty() {
        return Err(DbError::InvalidState(format!(
            "the Cinder database is not empty ({}); export writes only into a database made by \
             cinder-manage db sync and not used since",
            holds.join(", ")
        )));
    }
    let cgsnapshot_type: Option<String> = sqlx::query_scalar(
        "SELECT MIN(id) FROM group_types WHERE name = 'default_cgsnapshot_type'",
    )
    .fetch_one(&mut *cinder.reader().await?)
    .await?;
    let cgsnapshot_type = cgsnapshot_type.ok_or_else(|| {
        DbError::InvalidState(
            "the Cinder database has no default_cgsnapshot_type group type: it was not made by \
             cinder-manage db sync"
                .into(),
        )
    })?;

    let now = clinker.now().as_micros();
    let tables: Vec<Table> = tables(&Src(cinder.dialect()))
        .into_iter()
        .filter(|t| t.select.is_some())
        .collect();
    let mut planned = Vec::with_capacity(tables.len());
    let mut exported = BTreeMap::new();
    for table in &tables {
        let rows = read_rows(clinker, table, &cgsnapshot_type, now).await?;
        *exported.entry(table.kind).or_default() += rows.len() as u64;
        planned.push(rows);
    }
    let mut not_carried = BTreeMap::new();
    for (table, why) in NOT_CARRIED {
        let n = count(clinker, &format!("SELECT COUNT(*) FROM {table}")).await?;
        if n > 0 {
            not_carried.insert(*table, (n, *why));
        }
    }
    let report = ExportReport {
        revision,
        exported,
        not_carried,
        dry_run: options.dry_run,
    };
    if options.dry_run {
        return Ok(report);
    }

    // Clinker's versions of what `db sync` seeded replace the seeds.
    let type_names: Vec<String> = sqlx::query_scalar("SELECT name FROM volume_types")
        .fetch_all(&mut *clinker.reader().await?)
        .await?;
    let classes: Vec<(String, String)> =
        sqlx::query_as("SELECT class_name, resource FROM quota_classes")
            .fetch_all(&mut *clinker.reader().await?)
            .await?;
    let dialect = cinder.dialect();
    in_transaction!(cinder, |tx| {
        for name in &type_names {
            sqlx::query(cinder.q("DELETE FROM volume_types WHERE name = ?"))
                .bind(name.as_str())
                .execute(&mut *tx)
                .await?;
        }
        for (class, resource) in &classes {
            sqlx::query(
                cinder.q("DELETE FROM quota_classes WHERE class_name = ? AND resource = ?"),
            )
            .bind(class.as_str())
            .bind(resource.as_str())
            .execute(&mut *tx)
            .await?;
        }
        for (table, rows) in tables.iter().zip(&planned) {
            for row in rows {
                let columns: Vec<String> = row.iter().map(|(c, _)| format!("\"{c}\"")).collect();
                let values: Vec<&str> = row.iter().map(|(_, v)| v.placeholder(dialect)).collect();
                let sql = cinder.dynamic(format!(
                    "INSERT INTO \"{}\" ({}) VALUES ({})",
                    table.cinder,
                    columns.join(", "),
                    values.join(", ")
                ));
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (_, value) in row {
                    query = value.bind(query, dialect);
                }
                query.execute(&mut *tx).await.map_err(|e| {
                    DbError::Internal(format!(
                        "writing {} into Cinder's {}: {e}",
                        table.kind, table.cinder
                    ))
                })?;
            }
        }
        Ok::<_, DbError>(())
    })?;
    Ok(report)
}
