//! Embedded schema migrations (`clinker manage db sync`).
//!
//! Each migration is written once in neutral SQL with a few type words
//! (`@ID`, `@BIGINT`, `@TEXT`, `@ENGINE`) that are rewritten per engine, so
//! the three schemas cannot drift apart. Applied versions are recorded in
//! `clinker_migrations`; running the sync twice is a no-op.

use sqlx::Executor;

use crate::VolumeTypeRepository;
use crate::error::DbError;
use crate::pool::{Db, Dialect};

/// One schema step.
#[derive(Debug)]
struct Migration {
    version: i64,
    description: &'static str,
    sql: Script,
}

/// A migration's statements: neutral SQL rendered per engine, or one
/// script per engine where their DDL differs (generated columns,
/// `DROP INDEX`) followed by neutral SQL common to all.
#[derive(Debug)]
enum Script {
    Neutral(&'static str),
    PerEngine {
        sqlite: &'static str,
        postgres: &'static str,
        mysql: &'static str,
        then: &'static str,
    },
}

impl Script {
    fn for_dialect(&self, dialect: Dialect) -> String {
        match self {
            Script::Neutral(sql) => render(sql, dialect),
            Script::PerEngine {
                sqlite,
                postgres,
                mysql,
                then,
            } => {
                let engine = match dialect {
                    Dialect::Sqlite => sqlite,
                    Dialect::Postgres => postgres,
                    Dialect::Mysql => mysql,
                };
                render(&format!("{engine}\n{then}"), dialect)
            }
        }
    }
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "initial schema",
        sql: Script::Neutral(include_str!("migrations/0001_initial.sql")),
    },
    Migration {
        version: 2,
        description: "attachments: index by instance",
        sql: Script::Neutral(include_str!("migrations/0002_attachments.sql")),
    },
    Migration {
        version: 3,
        description: "qos specs, transfers, type encryption, default types",
        sql: Script::Neutral(include_str!("migrations/0003_surface.sql")),
    },
    Migration {
        version: 4,
        description: "generic volume groups",
        sql: Script::Neutral(include_str!("migrations/0004_groups.sql")),
    },
    Migration {
        version: 6,
        description: "names of unmanaged backend objects",
        sql: Script::Neutral(include_str!("migrations/0006_unmanaged_objects.sql")),
    },
    Migration {
        version: 8,
        description: "volume backups",
        sql: Script::Neutral(include_str!("migrations/0008_backups.sql")),
    },
    Migration {
        version: 10,
        description: "record of imports from Cinder's database",
        sql: Script::Neutral(include_str!("migrations/0010_cinder_import.sql")),
    },
    Migration {
        version: 11,
        description: "list indexes for every sort key, volume counters",
        sql: Script::PerEngine {
            sqlite: include_str!("migrations/0011_scale.sqlite.sql"),
            postgres: include_str!("migrations/0011_scale.postgres.sql"),
            mysql: include_str!("migrations/0011_scale.mysql.sql"),
            then: include_str!("migrations/0011_scale.sql"),
        },
    },
    Migration {
        version: 12,
        description: "image-volume cache entries",
        sql: Script::Neutral(include_str!("migrations/0012_image_volume_cache.sql")),
    },
    Migration {
        version: 13,
        description: "temporary volumes and snapshots of backups",
        sql: Script::Neutral(include_str!("migrations/0013_backup_temporaries.sql")),
    },
];

/// The newest schema version this binary knows.
pub fn latest_version() -> i64 {
    // The highest, not the last: migrations are numbered per feature and
    // may be listed out of order after merges.
    MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
}

fn render(sql: &str, dialect: Dialect) -> String {
    let (id, bigint, text, engine) = match dialect {
        Dialect::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER", "TEXT", ""),
        Dialect::Postgres => ("BIGSERIAL PRIMARY KEY", "BIGINT", "TEXT", ""),
        Dialect::Mysql => (
            "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY",
            "BIGINT",
            "MEDIUMTEXT",
            "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        ),
    };
    sql.replace("@ID", id)
        .replace("@BIGINT", bigint)
        .replace("@TEXT", text)
        .replace("@ENGINE", engine)
}

/// Splits a script into statements on `;` at line ends, dropping comments.
fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || trimmed.is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(';') {
            let stmt = current.trim().trim_end_matches(';').trim().to_owned();
            if !stmt.is_empty() {
                out.push(stmt);
            }
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

impl Db {
    /// Applies every migration not yet applied, then makes sure the default
    /// volume type exists (as Cinder's db sync creates `__DEFAULT__`).
    /// Returns the versions applied now.
    ///
    /// # Errors
    /// The database holds Cinder's schema; a failing statement (the migration's changes are rolled back where the
    /// engine supports transactional DDL).
    pub async fn migrate(&self, default_volume_type: &str) -> Result<Vec<i64>, DbError> {
        if self.holds_cinder_schema().await {
            return Err(DbError::InvalidState(
                "this database holds OpenStack Cinder's schema (alembic_version and Cinder's \
                 tables), not Clinker's: Clinker does not run on Cinder's own database. Point \
                 [database] connection at a database of Clinker's and import this one with \
                 `clinker manage cinder import --from <this database's URL>`"
                    .into(),
            ));
        }
        let mut conn = self.writer().await?;
        conn.execute(
            "CREATE TABLE IF NOT EXISTS clinker_migrations (\
             version BIGINT NOT NULL PRIMARY KEY, description VARCHAR(255) NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .await?;
        drop(conn);
        let mut applied_now = Vec::new();
        for migration in MIGRATIONS {
            let done: Option<i64> = sqlx::query_scalar(
                self.q("SELECT version FROM clinker_migrations WHERE version = ?"),
            )
            .bind(migration.version)
            .fetch_optional(&mut *self.writer().await?)
            .await?;
            if done.is_some() {
                continue;
            }
            tracing::info!(
                version = migration.version,
                description = migration.description,
                "applying migration"
            );
            let rendered = migration.sql.for_dialect(self.dialect);
            // MariaDB commits DDL implicitly; PostgreSQL and SQLite roll it
            // back with the transaction if a statement fails.
            let mut writer = self.writer().await?;
            let mut tx = sqlx::Connection::begin(&mut *writer).await?;
            for statement in statements(&rendered) {
                tx.execute(sqlx::AssertSqlSafe(statement))
                    .await
                    .map_err(|e| {
                        DbError::Internal(format!("migration {} failed: {e}", migration.version))
                    })?;
            }
            sqlx::query(self.q("INSERT INTO clinker_migrations (version, description, applied_at) VALUES (?, ?, ?)"))
                .bind(migration.version)
                .bind(migration.description)
                .bind(self.now().as_micros())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            applied_now.push(migration.version);
        }
        self.ensure_default_volume_type(default_volume_type).await?;
        Ok(applied_now)
    }

    /// The newest applied schema version (0 for an empty database).
    ///
    /// # Errors
    /// The database is unreachable.
    pub async fn schema_version(&self) -> Result<i64, DbError> {
        let exists = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM clinker_migrations")
            .fetch_one(&mut *self.reader().await?)
            .await;
        if exists.is_err() {
            return Ok(0);
        }
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM clinker_migrations")
                .fetch_one(&mut *self.reader().await?)
                .await?;
        Ok(version.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_each_dialect() {
        let sql = "CREATE TABLE t (id @ID, n @BIGINT, d @TEXT) @ENGINE;";
        assert_eq!(
            render(sql, Dialect::Sqlite),
            "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER, d TEXT) ;"
        );
        assert!(render(sql, Dialect::Mysql).contains("AUTO_INCREMENT"));
        assert!(render(sql, Dialect::Postgres).contains("BIGSERIAL"));
    }

    #[test]
    fn splits_statements_and_drops_comments() {
        let parts = statements("-- c\nCREATE TABLE a (x INT);\n\nCREATE INDEX i ON a (x);\n");
        assert_eq!(
            parts,
            vec!["CREATE TABLE a (x INT)", "CREATE INDEX i ON a (x)"]
        );
        assert!(
            render(
                include_str!("migrations/0001_initial.sql"),
                Dialect::Postgres
            )
            .contains("BIGSERIAL")
        );
        assert!(statements(include_str!("migrations/0001_initial.sql")).len() > 20);
    }
}
