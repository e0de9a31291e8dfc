//! Statements of one transaction sent to the database together.
//!
//! sqlx runs every SQLite connection on a thread of its own and hands it
//! one command at a time, so each statement of a transaction costs two
//! thread wake-ups, and on a busy two-core host that round trip, not the
//! SQL, is most of a write transaction's time. SQLite has one writer, so
//! those round trips are also the time every other writer waits. A
//! [`Batch`] sends its statements to SQLite as one multi-statement command
//! (sqlx binds the arguments to the statements in order) and gets every
//! statement's outcome back in one round trip. PostgreSQL and MariaDB
//! prepare one statement at a time, so there the batch runs its statements
//! one after another: the SQL and the outcomes are the same on every
//! engine, only the number of round trips differs.
//!
//! A failed statement stops the batch and fails [`Batch::run`]; the
//! caller's transaction rolls back whatever ran before it. Checks on the
//! outcomes (a compare-and-swap that matched no row, a conditional
//! `UPDATE` that refused) are the caller's, after the batch, and a refusal
//! rolls the whole transaction back the same way.

use futures_util::TryStreamExt;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Either, Executor};

use crate::error::DbError;
use crate::pool::{Db, Dialect};
use crate::query::{Arg, bind_all};

/// What one statement of a batch did.
#[derive(Default)]
pub(crate) struct Outcome {
    /// Rows the statement returned (a `SELECT`).
    pub rows: Vec<AnyRow>,
    /// Rows it inserted, updated or deleted.
    pub affected: u64,
}

/// Statements to run together, in order, inside the caller's transaction.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    statements: Vec<(String, Vec<Arg>)>,
}

impl Batch {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds a statement (`?` placeholders, rewritten here for the engine)
    /// and returns its index among the outcomes.
    pub(crate) fn push(&mut self, db: &Db, sql: impl Into<String>, args: Vec<Arg>) -> usize {
        self.statements.push((db.dynamic(sql.into()), args));
        self.statements.len() - 1
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// Runs the statements on `conn` and returns one outcome per statement.
    ///
    /// # Errors
    /// The first statement that fails; the ones after it did not run.
    pub(crate) async fn run(
        self,
        db: &Db,
        conn: &mut AnyConnection,
    ) -> Result<Vec<Outcome>, DbError> {
        if db.dialect() == Dialect::Sqlite && self.statements.len() > 1 {
            return self.run_as_one(conn).await;
        }
        let mut outcomes = Vec::with_capacity(self.statements.len());
        for (sql, args) in &self.statements {
            outcomes.push(run_one(conn, sql, args).await?);
        }
        Ok(outcomes)
    }

    /// SQLite: one command for every statement. Each statement ends with a
    /// result (after its rows, if any), which is how the outcomes are told
    /// apart.
    async fn run_as_one(self, conn: &mut AnyConnection) -> Result<Vec<Outcome>, DbError> {
        let expected = self.statements.len();
        let mut sql = String::new();
        let mut args = Vec::new();
        for (statement, statement_args) in self.statements {
            if !sql.is_empty() {
                sql.push_str(";\n");
            }
            sql.push_str(&statement);
            args.extend(statement_args);
        }
        let mut outcomes = Vec::with_capacity(expected);
        let mut current = Outcome::default();
        {
            let query = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args);
            let mut results = conn.fetch_many(query);
            while let Some(step) = results.try_next().await? {
                match step {
                    Either::Right(row) => current.rows.push(row),
                    Either::Left(done) => {
                        current.affected = done.rows_affected();
                        outcomes.push(std::mem::take(&mut current));
                    }
                }
            }
        }
        if outcomes.len() != expected {
            return Err(DbError::Internal(format!(
                "a batch of {expected} statements reported {} outcomes",
                outcomes.len()
            )));
        }
        Ok(outcomes)
    }
}

async fn run_one(conn: &mut AnyConnection, sql: &str, args: &[Arg]) -> Result<Outcome, DbError> {
    let query = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), args);
    let mut outcome = Outcome::default();
    let mut results = conn.fetch_many(query);
    while let Some(step) = results.try_next().await? {
        match step {
            Either::Right(row) => outcome.rows.push(row),
            Either::Left(done) => outcome.affected += done.rows_affected(),
        }
    }
    Ok(outcome)
}
