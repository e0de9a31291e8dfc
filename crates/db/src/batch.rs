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
#[derive(Clone, Debug, Default)]
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

/// A write transaction made of batches. On SQLite it costs no round trip
/// of its own: `BEGIN` goes with the first batch, and `COMMIT` with the
/// last when nothing is left to check ([`Self::run_and_commit`]), where
/// sqlx's transactions spend one round trip on each. Elsewhere it is a
/// sqlx transaction.
///
/// Use it through `in_batched_transaction!`, which commits when the body
/// succeeds and rolls back when it fails. A transaction abandoned half-way
/// (a request dropped mid-flight) is rolled back when its connection is
/// next taken (see [`crate::pool::DbConn::mark_open_transaction`]).
pub(crate) enum BatchTx {
    Sqlite {
        conn: crate::pool::DbConn,
        begun: bool,
        ended: bool,
    },
    Sqlx(sqlx::Transaction<'static, sqlx::Any>),
}

impl std::fmt::Debug for BatchTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchTx::Sqlite { begun, ended, .. } => f
                .debug_struct("BatchTx::Sqlite")
                .field("begun", begun)
                .field("ended", ended)
                .finish(),
            BatchTx::Sqlx(_) => f.write_str("BatchTx::Sqlx"),
        }
    }
}

impl BatchTx {
    /// Takes the writer (and, off SQLite, begins).
    pub(crate) async fn begin(db: &Db) -> Result<Self, DbError> {
        match &db.write {
            crate::pool::Connections::Sqlite(_) => Ok(BatchTx::Sqlite {
                conn: db.writer().await?,
                begun: false,
                ended: false,
            }),
            crate::pool::Connections::Pool(pool) => Ok(BatchTx::Sqlx(pool.begin().await?)),
        }
    }

    /// Runs `batch` inside the transaction.
    ///
    /// # Errors
    /// As [`Batch::run`]; the transaction is then to be rolled back.
    pub(crate) async fn run(&mut self, db: &Db, batch: Batch) -> Result<Vec<Outcome>, DbError> {
        self.run_ending(db, batch, false).await
    }

    /// Runs `batch` and commits, in one round trip on SQLite. Nothing after
    /// it in the transaction's body may fail: the work is committed.
    ///
    /// # Errors
    /// As [`Batch::run`], or a failed commit; the transaction is then to be
    /// rolled back.
    pub(crate) async fn run_and_commit(
        &mut self,
        db: &Db,
        batch: Batch,
    ) -> Result<Vec<Outcome>, DbError> {
        self.run_ending(db, batch, true).await
    }

    async fn run_ending(
        &mut self,
        db: &Db,
        mut batch: Batch,
        commit: bool,
    ) -> Result<Vec<Outcome>, DbError> {
        match self {
            BatchTx::Sqlite { conn, begun, ended } => {
                let first = usize::from(!*begun);
                if !*begun {
                    batch.statements.insert(0, ("BEGIN".to_owned(), Vec::new()));
                    // Marked before it is sent: if this request is dropped
                    // now, the next user of the connection rolls back.
                    conn.mark_open_transaction(true);
                    *begun = true;
                }
                if commit {
                    batch.statements.push(("COMMIT".to_owned(), Vec::new()));
                }
                let mut outcomes = batch.run(db, conn).await?;
                if commit {
                    outcomes.pop();
                    *ended = true;
                    conn.mark_open_transaction(false);
                }
                outcomes.drain(..first);
                Ok(outcomes)
            }
            // sqlx commits by value: `in_batched_transaction!` does it
            // after the body.
            BatchTx::Sqlx(tx) => batch.run(db, tx).await,
        }
    }

    /// The connection, for a statement outside a batch (the transaction
    /// is begun first if it was not).
    ///
    /// # Errors
    /// The `BEGIN` failed.
    pub(crate) async fn conn(&mut self, db: &Db) -> Result<&mut AnyConnection, DbError> {
        if let BatchTx::Sqlite { begun: false, .. } = self {
            self.run(db, Batch::new()).await?;
        }
        Ok(match self {
            BatchTx::Sqlite { conn, .. } => conn,
            BatchTx::Sqlx(tx) => tx,
        })
    }

    /// Commits what is not committed yet.
    ///
    /// # Errors
    /// The commit failed (the transaction is rolled back).
    pub(crate) async fn commit(self) -> Result<(), DbError> {
        match self {
            BatchTx::Sqlite {
                mut conn,
                begun: true,
                ended: false,
            } => {
                if let Err(e) = conn.execute("COMMIT").await {
                    Self::rollback_sqlite(&mut conn).await;
                    return Err(e.into());
                }
                conn.mark_open_transaction(false);
                Ok(())
            }
            BatchTx::Sqlite { .. } => Ok(()),
            BatchTx::Sqlx(tx) => Ok(tx.commit().await?),
        }
    }

    /// Rolls back what is not committed.
    pub(crate) async fn rollback(self) {
        match self {
            BatchTx::Sqlite {
                mut conn,
                begun: true,
                ended: false,
            } => Self::rollback_sqlite(&mut conn).await,
            BatchTx::Sqlite { .. } => {}
            BatchTx::Sqlx(tx) => {
                if let Err(e) = tx.rollback().await {
                    tracing::warn!(error = %e, "rollback failed");
                }
            }
        }
    }

    async fn rollback_sqlite(conn: &mut crate::pool::DbConn) {
        match conn.execute("ROLLBACK").await {
            Ok(_) => conn.mark_open_transaction(false),
            // Left marked: the next user of the connection tries again.
            Err(e) => tracing::warn!(error = %e, "rollback failed"),
        }
    }
}

/// `in_transaction!` for bodies made of batches: runs `$body` (which uses
/// `$tx: &mut BatchTx`), committing on `Ok` (unless the body already did)
/// and rolling back on `Err`, and retrying the whole body when the engine
/// reports a serialization failure, deadlock or busy database.
macro_rules! in_batched_transaction {
    ($db:expr, |$tx:ident| $body:expr) => {
        $crate::pool::retrying!(
            async {
                let mut $tx = $crate::batch::BatchTx::begin($db).await?;
                let result = async {
                    let $tx = &mut $tx;
                    $body
                }
                .await;
                match result {
                    Ok(value) => {
                        $tx.commit().await?;
                        Ok(value)
                    }
                    Err(e) => {
                        $tx.rollback().await;
                        Err(e)
                    }
                }
            }
            .await
        )
    };
}
pub(crate) use in_batched_transaction;

/// Where a helper's statements run: a plain transaction's connection (from
/// `in_transaction!`) or a [`BatchTx`] (from `in_batched_transaction!`).
/// Helpers take `&mut impl Tx`, so each is written once for both.
pub(crate) trait Tx: Send {
    /// Runs `batch` inside the transaction.
    fn run_batch(
        &mut self,
        db: &Db,
        batch: Batch,
    ) -> impl Future<Output = Result<Vec<Outcome>, DbError>> + Send;

    /// The connection, for a statement outside a batch.
    fn connection(
        &mut self,
        db: &Db,
    ) -> impl Future<Output = Result<&mut AnyConnection, DbError>> + Send;
}

impl Tx for AnyConnection {
    async fn run_batch(&mut self, db: &Db, batch: Batch) -> Result<Vec<Outcome>, DbError> {
        batch.run(db, self).await
    }

    async fn connection(&mut self, _db: &Db) -> Result<&mut AnyConnection, DbError> {
        Ok(self)
    }
}

impl Tx for BatchTx {
    async fn run_batch(&mut self, db: &Db, batch: Batch) -> Result<Vec<Outcome>, DbError> {
        self.run(db, batch).await
    }

    async fn connection(&mut self, db: &Db) -> Result<&mut AnyConnection, DbError> {
        self.conn(db).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::DbOptions;

    async fn sqlite() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:///{}/t.sqlite", dir.path().display());
        let db = Db::connect(&DbOptions::new(url)).await.unwrap();
        sqlx::query("CREATE TABLE t (k VARCHAR(16) NOT NULL PRIMARY KEY)")
            .execute(&mut *db.writer().await.unwrap())
            .await
            .unwrap();
        (dir, db)
    }

    fn insert(db: &Db, batch: &mut Batch, key: &str) -> usize {
        batch.push(
            db,
            "INSERT INTO t (k) VALUES (?)",
            vec![Arg::Text(key.to_owned())],
        )
    }

    async fn keys(db: &Db) -> Vec<String> {
        sqlx::query_scalar("SELECT k FROM t ORDER BY k")
            .fetch_all(&mut *db.reader().await.unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_batch_reports_every_statement_on_its_own() {
        let (_dir, db) = sqlite().await;
        let mut batch = Batch::new();
        insert(&db, &mut batch, "a");
        insert(&db, &mut batch, "b");
        batch.push(&db, "UPDATE t SET k = k WHERE k = 'none'", Vec::new());
        let select = batch.push(&db, "SELECT k FROM t", Vec::new());
        let outcomes = in_batched_transaction!(&db, |tx| tx.run(&db, batch.clone()).await).unwrap();
        let affected: Vec<u64> = outcomes.iter().map(|o| o.affected).collect();
        assert_eq!(affected[..3], [1, 1, 0]);
        assert_eq!(outcomes[select].rows.len(), 2);
        assert_eq!(keys(&db).await, ["a", "b"]);
    }

    #[tokio::test]
    async fn a_failing_statement_takes_the_whole_transaction_back() {
        let (_dir, db) = sqlite().await;
        let mut first = Batch::new();
        insert(&db, &mut first, "a");
        let mut second = Batch::new();
        insert(&db, &mut second, "b");
        insert(&db, &mut second, "a"); // duplicate key
        let result: Result<(), DbError> = in_batched_transaction!(&db, |tx| {
            tx.run(&db, first.clone()).await?;
            tx.run_and_commit(&db, second.clone()).await?;
            Ok(())
        });
        assert!(result.is_err());
        assert!(keys(&db).await.is_empty());
        // The writer is usable again.
        let mut batch = Batch::new();
        insert(&db, &mut batch, "c");
        in_batched_transaction!(&db, |tx| tx.run_and_commit(&db, batch.clone()).await).unwrap();
        assert_eq!(keys(&db).await, ["c"]);
    }

    #[tokio::test]
    async fn a_transaction_abandoned_half_way_is_rolled_back_before_the_next_one() {
        let (_dir, db) = sqlite().await;
        {
            let mut tx = BatchTx::begin(&db).await.unwrap();
            let mut batch = Batch::new();
            insert(&db, &mut batch, "lost");
            tx.run(&db, batch).await.unwrap();
            // Dropped without commit or rollback, as a cancelled request's
            // transaction is.
        }
        let mut batch = Batch::new();
        insert(&db, &mut batch, "kept");
        in_batched_transaction!(&db, |tx| tx.run(&db, batch.clone()).await).unwrap();
        assert_eq!(keys(&db).await, ["kept"]);
    }
}
