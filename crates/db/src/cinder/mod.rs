//! Moving between OpenStack Cinder and Clinker: reading Cinder's own
//! database (schema of Cinder 29, alembic head `9c74c1c6971f`) into
//! Clinker's (`clinker manage cinder import`, [`import`]) and writing
//! Clinker's objects back into an empty Cinder database made by Cinder's
//! `cinder-manage db sync` (`clinker manage cinder export`, [`export`]).
//!
//! Both directions share one table mapping (`tables.rs`): each Clinker
//! column is declared once with the Cinder column it corresponds to and
//! how the value converts (Cinder keeps times as naive UTC `DATETIME`s and
//! flags as booleans or tinyints; Clinker keeps microseconds and 0/1).
//! The import reads Cinder's rows through SQL built from the mapping (per
//! the source's dialect, so rows travel as integers and strings only); the
//! export reads Clinker's rows and writes the mapped columns, plus the
//! bookkeeping columns Cinder needs (`deleted`, generated ids).

use sqlx::Row as _;

use crate::error::DbError;
use crate::pool::{Db, DbOptions, Dialect};

mod export;
mod import;
mod messages;
mod report;
mod tables;

pub use export::{ExportOptions, ExportReport, export};
pub use import::{
    ImportOptions, Plan, TARGET_TABLES, contents, import, plan, previous_import, row_counts,
};
pub use report::{ImportReport, Outcome, Skipped};

/// Cinder schema revisions (`alembic_version.version_num`) this module
/// reads and writes, with the releases that have them.
pub const KNOWN_REVISIONS: &[(&str, &str)] = &[(
    "9c74c1c6971f",
    "Cinder 25.0 (2024.2 Dalmatian) to 29.x (2025.x)",
)];

/// One value in transit.
#[derive(Clone, Debug, PartialEq, Eq)]
enum V {
    I(Option<i64>),
    T(Option<String>),
}

/// A row: values by column name, in the mapping's column order.
#[derive(Clone, Debug)]
struct Row(Vec<(&'static str, V)>);

impl Row {
    fn text(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| match v {
                V::T(t) => t.as_deref(),
                V::I(_) => None,
            })
    }

    fn int(&self, name: &str) -> Option<i64> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| match v {
                V::I(i) => *i,
                V::T(_) => None,
            })
    }

    fn set(&mut self, name: &str, value: V) {
        if let Some(slot) = self.0.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = value;
        }
    }
}

/// Reads the value at `n` of a fetched row as the mapping's type.
fn fetch_value(raw: &sqlx::any::AnyRow, n: usize, integer: bool) -> Result<V, DbError> {
    Ok(if integer {
        V::I(raw.try_get::<Option<i64>, _>(n)?)
    } else {
        V::T(raw.try_get::<Option<String>, _>(n)?)
    })
}

/// Opens a Cinder database (`mysql+pymysql://…`, `postgresql://…`).
///
/// # Errors
/// A SQLite URL (Cinder does not run on SQLite), a bad URL, an unreachable
/// server.
pub async fn open_cinder_database(url: &str) -> Result<Db, DbError> {
    let (dialect, _) = crate::url::translate_url(url)?;
    if dialect == Dialect::Sqlite {
        return Err(DbError::InvalidState(
            "the Cinder database must be MariaDB/MySQL or PostgreSQL".into(),
        ));
    }
    let mut options = DbOptions::new(url);
    options.max_pool_size = 2;
    Db::connect(&options).await
}

async fn count(db: &Db, sql: &str) -> Result<u64, DbError> {
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut *db.reader().await?)
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

async fn table_exists(db: &Db, table: &str) -> bool {
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE 1 = 0");
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut *match db.reader().await {
            Ok(c) => c,
            Err(_) => return false,
        })
        .await
        .is_ok()
}

/// The Cinder schema revision of `cinder`.
///
/// # Errors
/// No `alembic_version` table, or a revision this module does not know.
pub async fn check_revision(cinder: &Db) -> Result<String, DbError> {
    let revision: Option<String> =
        sqlx::query_scalar("SELECT MAX(version_num) FROM alembic_version")
            .fetch_one(&mut *cinder.reader().await?)
            .await
            .map_err(|_| {
                DbError::InvalidState(
                    "the database has no alembic_version table: it is not a Cinder database \
                     (cinder-manage db sync makes one)"
                        .into(),
                )
            })?;
    let revision = revision.unwrap_or_default();
    if KNOWN_REVISIONS.iter().any(|(r, _)| *r == revision) {
        Ok(revision)
    } else {
        let known: Vec<String> = KNOWN_REVISIONS
            .iter()
            .map(|(r, what)| format!("{r} ({what})"))
            .collect();
        Err(DbError::InvalidState(format!(
            "unknown Cinder schema revision {revision:?}; Clinker reads and writes {}",
            known.join(", ")
        )))
    }
}

impl Db {
    /// Whether this database holds OpenStack Cinder's schema (an
    /// `alembic_version` table and `volumes`) rather than Clinker's.
    pub async fn holds_cinder_schema(&self) -> bool {
        table_exists(self, "alembic_version").await
            && table_exists(self, "volumes").await
            && !table_exists(self, "clinker_migrations").await
    }
}
