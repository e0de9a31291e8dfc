//! Connections, SQL dialects and transactions with retry.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use clinker_types::{Clock, SystemClock, Timestamp};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, ConnectOptions, Connection, Executor};

use crate::error::DbError;

/// The SQL engine behind a [`Db`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3 (WAL), the all-in-one default.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MariaDB / MySQL.
    Mysql,
}

impl Dialect {
    /// `INSERT` that silently skips a row whose key exists.
    pub(crate) fn insert_ignore(self, table_and_columns: &str, values: &str) -> String {
        match self {
            Dialect::Sqlite => format!("INSERT OR IGNORE INTO {table_and_columns} VALUES {values}"),
            Dialect::Mysql => format!("INSERT IGNORE INTO {table_and_columns} VALUES {values}"),
            Dialect::Postgres => {
                format!("INSERT INTO {table_and_columns} VALUES {values} ON CONFLICT DO NOTHING")
            }
        }
    }

    /// `INSERT` of one row that replaces the columns `update` of the row
    /// with the same `key` when there is one (one statement instead of a
    /// `DELETE` and an `INSERT`).
    pub(crate) fn upsert(
        self,
        table_and_columns: &str,
        values: &str,
        key: &str,
        update: &[&str],
    ) -> String {
        let sets = |f: &dyn Fn(&str) -> String| {
            update
                .iter()
                .map(|c| format!("{c} = {}", f(c)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Dialect::Sqlite | Dialect::Postgres => format!(
                "INSERT INTO {table_and_columns} VALUES {values} ON CONFLICT ({key}) DO UPDATE SET {}",
                sets(&|c| format!("excluded.{c}"))
            ),
            Dialect::Mysql => format!(
                "INSERT INTO {table_and_columns} VALUES {values} ON DUPLICATE KEY UPDATE {}",
                sets(&|c| format!("VALUES({c})"))
            ),
        }
    }

    /// The row-lock suffix for a `SELECT` that a transaction will act on
    /// (SQLite serializes writers, so it needs none).
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres | Dialect::Mysql => " FOR UPDATE",
        }
    }

    /// `SUM` of an integer expression as a BIGINT on every engine
    /// (PostgreSQL and MariaDB return NUMERIC/DECIMAL otherwise).
    pub(crate) fn sum_int(self, expr: &str) -> String {
        match self {
            Dialect::Sqlite => format!("COALESCE(SUM({expr}), 0)"),
            Dialect::Postgres => format!("CAST(COALESCE(SUM({expr}), 0) AS BIGINT)"),
            Dialect::Mysql => format!("CAST(COALESCE(SUM({expr}), 0) AS SIGNED)"),
        }
    }

    /// The engine's name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgresql",
            Dialect::Mysql => "mysql",
        }
    }
}

/// Default quota limits from the configuration (`quota_*`), the last
/// fallback after a project's own limits and the `default` quota class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaDefaults {
    /// `quota_volumes`.
    pub volumes: i64,
    /// `quota_snapshots`.
    pub snapshots: i64,
    /// `quota_gigabytes`.
    pub gigabytes: i64,
    /// `quota_backups`.
    pub backups: i64,
    /// `quota_backup_gigabytes`.
    pub backup_gigabytes: i64,
    /// `quota_groups`.
    pub groups: i64,
    /// `per_volume_size_limit`.
    pub per_volume_gigabytes: i64,
    /// `no_snapshot_gb_quota`.
    pub no_snapshot_gb_quota: bool,
}

impl Default for QuotaDefaults {
    fn default() -> Self {
        Self {
            volumes: 10,
            snapshots: 10,
            gigabytes: 1000,
            backups: 10,
            backup_gigabytes: 1000,
            groups: 10,
            per_volume_gigabytes: -1,
            no_snapshot_gb_quota: false,
        }
    }
}

impl QuotaDefaults {
    /// From `[DEFAULT] quota_*`.
    pub fn from_config(d: &clinker_config::DefaultOptions) -> Self {
        Self {
            volumes: d.quota_volumes,
            snapshots: d.quota_snapshots,
            gigabytes: d.quota_gigabytes,
            backups: d.quota_backups,
            backup_gigabytes: d.quota_backup_gigabytes,
            groups: d.quota_groups,
            per_volume_gigabytes: d.per_volume_size_limit,
            no_snapshot_gb_quota: d.no_snapshot_gb_quota,
        }
    }
}

/// How to open a database.
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// `[database] connection`, in Cinder's SQLAlchemy URL forms.
    pub connection: String,
    /// `[database] max_pool_size`: connections kept open.
    pub max_pool_size: u32,
    /// `[database] max_overflow`: more connections opened under load, closed
    /// again once idle for a minute.
    pub max_overflow: u32,
    /// `[database] pool_timeout`: how long to wait for a connection before
    /// answering "unavailable".
    pub acquire_timeout: Duration,
    /// `[database] connection_recycle_time`: a connection's longest life.
    pub max_lifetime: Duration,
    /// Quota defaults.
    pub quota_defaults: QuotaDefaults,
}

impl DbOptions {
    /// Options with defaults for `connection`.
    pub fn new(connection: impl Into<String>) -> Self {
        Self {
            connection: connection.into(),
            max_pool_size: 5,
            max_overflow: 50,
            acquire_timeout: Duration::from_secs(30),
            max_lifetime: Duration::from_secs(3600),
            quota_defaults: QuotaDefaults::default(),
        }
    }
}

/// How long a connection beyond `max_pool_size` may sit idle before it is
/// closed.
pub const OVERFLOW_IDLE: Duration = Duration::from_secs(60);

/// A handle on the database: pools, dialect, clock. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pub(crate) dialect: Dialect,
    /// SQLite: one connection, so writers queue in-process instead of
    /// spinning on SQLITE_BUSY. Other engines: the same pool as `read`.
    pub(crate) write: Connections,
    pub(crate) read: Connections,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) quota_defaults: QuotaDefaults,
}

/// Where a [`Db`] gets connections.
#[derive(Clone, Debug)]
pub(crate) enum Connections {
    /// SQLite: a fixed set of connections (one for the writer, a few for
    /// readers) handed out in arrival order. Unlike a pool, a finished
    /// user hands its connection straight to the next waiter: sqlx's pool
    /// returns a connection through a task it spawns and then wakes the
    /// waiter, scheduling delays that every queued writer sat through.
    Sqlite(Arc<SqliteConnections>),
    /// PostgreSQL and MariaDB: the shared pool.
    Pool(AnyPool),
}

/// SQLite connections (`None` until first used, or once closed), and a
/// permit per connection: waiters queue for a permit in arrival order, and
/// a permit holder always finds a connection free.
#[derive(Debug)]
pub(crate) struct SqliteConnections {
    slots: Vec<Arc<tokio::sync::Mutex<Option<AnyConnection>>>>,
    /// Per slot: a transaction begun by [`crate::batch::BatchTx`] may be
    /// open on it (set before `BEGIN` is sent, cleared once it ended), so
    /// one abandoned by a cancelled request is rolled back before the
    /// connection is used again.
    open_tx: Vec<Arc<std::sync::atomic::AtomicBool>>,
    permits: Arc<tokio::sync::Semaphore>,
    options: AnyConnectOptions,
    acquire_timeout: Duration,
}

impl SqliteConnections {
    fn new(count: usize, options: AnyConnectOptions, acquire_timeout: Duration) -> Self {
        let count = count.max(1);
        Self {
            slots: (0..count)
                .map(|_| Arc::new(tokio::sync::Mutex::new(None)))
                .collect(),
            open_tx: (0..count)
                .map(|_| Arc::new(std::sync::atomic::AtomicBool::new(false)))
                .collect(),
            permits: Arc::new(tokio::sync::Semaphore::new(count)),
            options,
            acquire_timeout,
        }
    }

    async fn acquire(&self) -> Result<DbConn, DbError> {
        let permit =
            tokio::time::timeout(self.acquire_timeout, self.permits.clone().acquire_owned())
                .await
                .map_err(|_| DbError::from(sqlx::Error::PoolTimedOut))?
                .map_err(|_| DbError::from(sqlx::Error::PoolClosed))?;
        // A connection is unlocked before its permit is given back, so a
        // permit always finds one.
        let (mut guard, open_tx) = self
            .slots
            .iter()
            .zip(&self.open_tx)
            .find_map(|(slot, open_tx)| {
                Some((slot.clone().try_lock_owned().ok()?, open_tx.clone()))
            })
            .ok_or_else(|| {
                DbError::Internal("a SQLite connection permit found no connection".into())
            })?;
        if guard.is_none() {
            *guard = Some(connect_sqlite(&self.options).await?);
            open_tx.store(false, std::sync::atomic::Ordering::Relaxed);
        }
        if open_tx.load(std::sync::atomic::Ordering::Relaxed)
            && let Some(conn) = guard.as_mut()
        {
            // Left open by a request dropped mid-transaction.
            match conn.execute("ROLLBACK").await {
                Ok(_) => open_tx.store(false, std::sync::atomic::Ordering::Relaxed),
                // "no transaction is active": its BEGIN never ran.
                Err(e) if e.to_string().contains("no transaction") => {
                    open_tx.store(false, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) => return Err(e.into()),
            }
        }
        tokio::sync::OwnedMutexGuard::try_map(guard, Option::as_mut)
            .map(|conn| DbConn::Sqlite(conn, permit, open_tx))
            .map_err(|_| DbError::Unavailable("no SQLite connection".into()))
    }

    async fn close(&self) {
        for slot in &self.slots {
            if let Some(conn) = slot.lock().await.take()
                && let Err(e) = conn.close().await
            {
                tracing::debug!(error = %e, "closing a SQLite connection");
            }
        }
    }
}

impl Connections {
    async fn acquire(&self) -> Result<DbConn, DbError> {
        match self {
            Connections::Sqlite(conns) => conns.acquire().await,
            Connections::Pool(pool) => Ok(DbConn::Pool(pool.acquire().await?)),
        }
    }

    async fn close(&self) {
        match self {
            Connections::Sqlite(conns) => conns.close().await,
            Connections::Pool(pool) => pool.close().await,
        }
    }
}

/// A connection, held until dropped.
pub(crate) enum DbConn {
    /// The connection, then its permit (fields drop in this order).
    Sqlite(
        tokio::sync::OwnedMappedMutexGuard<Option<AnyConnection>, AnyConnection>,
        #[expect(
            dead_code,
            reason = "held, not read: dropping it admits the next waiter"
        )]
        tokio::sync::OwnedSemaphorePermit,
        /// Whether a transaction of [`crate::batch::BatchTx`] may be open.
        Arc<std::sync::atomic::AtomicBool>,
    ),
    Pool(PoolConnection<Any>),
}

impl DbConn {
    /// Notes that a transaction of [`crate::batch::BatchTx`] is (or may
    /// be) open on this connection, or that it ended. Only SQLite's
    /// connections are marked: elsewhere sqlx's transactions are used.
    pub(crate) fn mark_open_transaction(&self, open: bool) {
        if let DbConn::Sqlite(_, _, flag) = self {
            flag.store(open, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl std::ops::Deref for DbConn {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match self {
            DbConn::Sqlite(conn, ..) => conn,
            DbConn::Pool(conn) => conn,
        }
    }
}

impl std::ops::DerefMut for DbConn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            DbConn::Sqlite(conn, ..) => conn,
            DbConn::Pool(conn) => conn,
        }
    }
}

/// Registers sqlx's engines with its `Any` driver (once per process).
pub(crate) fn install_drivers() {
    static DRIVERS: OnceLock<()> = OnceLock::new();
    DRIVERS.get_or_init(sqlx::any::install_default_drivers);
}

impl Db {
    /// Opens the database (creating a SQLite file and its directory if
    /// needed). Does not migrate; call [`Db::migrate`].
    ///
    /// # Errors
    /// Bad URL, unreachable server.
    pub async fn connect(options: &DbOptions) -> Result<Self, DbError> {
        install_drivers();
        let (dialect, url) = crate::url::translate_url(&options.connection)?;
        if dialect == Dialect::Sqlite
            && let Some(path) = url
                .strip_prefix("sqlite://")
                .and_then(|p| p.split('?').next())
            && let Some(parent) = std::path::Path::new(path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                DbError::Unavailable(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let connect_options: AnyConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| DbError::Internal(format!("bad database URL: {e}")))?;
        let (write, read) = if dialect == Dialect::Sqlite {
            let write = SqliteConnections::new(1, connect_options.clone(), options.acquire_timeout);
            // Opened now, so a database that cannot be opened fails the
            // start; the readers open on first use.
            drop(write.acquire().await?);
            let readers = options
                .max_pool_size
                .saturating_add(options.max_overflow)
                .clamp(1, 8) as usize;
            let read = SqliteConnections::new(readers, connect_options, options.acquire_timeout);
            (
                Connections::Sqlite(Arc::new(write)),
                Connections::Sqlite(Arc::new(read)),
            )
        } else {
            let pool = AnyPoolOptions::new()
                // SQLAlchemy's QueuePool keeps max_pool_size connections and
                // closes overflow ones on return; sqlx closes idle ones
                // after idle_timeout, which only applies above
                // min_connections, so the same shape holds.
                .max_connections(
                    options
                        .max_pool_size
                        .saturating_add(options.max_overflow)
                        .max(1),
                )
                .min_connections(0)
                .idle_timeout(Some(OVERFLOW_IDLE))
                .max_lifetime(Some(options.max_lifetime))
                .acquire_timeout(options.acquire_timeout)
                .test_before_acquire(true)
                .after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        if dialect == Dialect::Mysql {
                            conn.execute("SET SESSION sql_mode = 'ANSI_QUOTES,STRICT_ALL_TABLES'")
                                .await?;
                            conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                                .await?;
                        }
                        Ok(())
                    })
                })
                .connect_with(connect_options)
                .await?;
            (Connections::Pool(pool.clone()), Connections::Pool(pool))
        };
        Ok(Self {
            dialect,
            write,
            read,
            clock: Arc::new(SystemClock),
            quota_defaults: options.quota_defaults.clone(),
        })
    }

    /// Replaces the clock (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The engine.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The quota defaults this handle applies.
    pub fn quota_defaults(&self) -> &QuotaDefaults {
        &self.quota_defaults
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Rewrites `?` placeholders to `$1, $2, …` for PostgreSQL. Static SQL is
    /// rewritten once and cached for the life of the process.
    pub(crate) fn q(&self, sql: &'static str) -> &'static str {
        if self.dialect != Dialect::Postgres {
            return sql;
        }
        static CACHE: OnceLock<RwLock<HashMap<usize, &'static str>>> = OnceLock::new();
        let cache = CACHE.get_or_init(|| RwLock::new(HashMap::new()));
        let key = sql.as_ptr() as usize ^ sql.len().rotate_left(48);
        if let Ok(read) = cache.read()
            && let Some(found) = read.get(&key)
        {
            return found;
        }
        let rewritten: &'static str = Box::leak(numbered_placeholders(sql).into_boxed_str());
        if let Ok(mut write) = cache.write() {
            write.insert(key, rewritten);
        }
        rewritten
    }

    /// Rewrites dynamic SQL (built per request) for the dialect.
    pub(crate) fn dynamic(&self, sql: String) -> String {
        if self.dialect == Dialect::Postgres {
            numbered_placeholders(&sql)
        } else {
            sql
        }
    }

    /// Checks that the database answers.
    ///
    /// # Errors
    /// The database is unreachable.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1")
            .execute(&mut *self.reader().await?)
            .await?;
        Ok(())
    }

    /// Closes the pools (waits for checked-out connections).
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    /// The connection for writes, waited for in arrival order.
    ///
    /// # Errors
    /// No connection within the acquire timeout, or the database cannot be
    /// opened.
    pub(crate) async fn writer(&self) -> Result<DbConn, DbError> {
        let started = std::time::Instant::now();
        let conn = self.write.acquire().await;
        record_pool_wait("write", started);
        conn
    }

    /// A connection for reads.
    ///
    /// # Errors
    /// As [`Self::writer`].
    pub(crate) async fn reader(&self) -> Result<DbConn, DbError> {
        let started = std::time::Instant::now();
        let conn = self.read.acquire().await;
        record_pool_wait("read", started);
        conn
    }
}

/// Opens a SQLite connection with Clinker's settings.
async fn connect_sqlite(options: &AnyConnectOptions) -> Result<AnyConnection, DbError> {
    let mut conn = options.connect().await?;
    prepare_sqlite(&mut conn).await?;
    Ok(conn)
}

/// WAL survives a killed process; NORMAL sync is durable against process
/// crashes (only a power loss may drop the last commits).
async fn prepare_sqlite(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    conn.execute("PRAGMA journal_mode = WAL").await?;
    conn.execute("PRAGMA synchronous = NORMAL").await?;
    conn.execute("PRAGMA busy_timeout = 10000").await?;
    conn.execute("PRAGMA foreign_keys = OFF").await?;
    Ok(())
}

/// `?` → `$n` outside string literals.
pub(crate) fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut in_string = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                in_string = !in_string;
                out.push(c);
            }
            '?' if !in_string => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

/// How many times a transaction that lost a race is retried.
pub(crate) const MAX_TX_ATTEMPTS: u32 = 8;

/// A short, jittered, growing pause between transaction attempts.
pub(crate) async fn retry_pause(attempt: u32) {
    let base = 2u64.saturating_pow(attempt.min(6));
    let jitter = rand::random_range(0..=base);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

/// Runs `$attempt` (an expression giving one attempt's `Result<_,
/// DbError>`) again while it fails with [`DbError::Retryable`] (a
/// serialization failure, deadlock or busy database), up to
/// [`MAX_TX_ATTEMPTS`] times with a jittered pause between attempts.
/// Retries and each transaction's final outcome are counted for the
/// metrics endpoint.
macro_rules! retrying {
    ($attempt:expr) => {{
        let mut attempt: u32 = 0;
        let result = loop {
            attempt += 1;
            let outcome: Result<_, $crate::error::DbError> = $attempt;
            match outcome {
                Err($crate::error::DbError::Retryable(reason))
                    if attempt < $crate::pool::MAX_TX_ATTEMPTS =>
                {
                    tracing::debug!(attempt, %reason, "retrying transaction");
                    clinker_runtime::metrics::counter!(
                        clinker_runtime::metrics::DB_TRANSACTION_RETRIES
                    )
                    .increment(1);
                    $crate::pool::retry_pause(attempt).await;
                }
                other => break other,
            }
        };
        $crate::pool::count_transaction(result.as_ref().err());
        result
    }};
}

/// Counts one finished transaction by outcome (`commit` or the error kind).
pub(crate) fn count_transaction(error: Option<&DbError>) {
    let outcome = error.map_or("commit", |e| e.kind().label());
    clinker_runtime::metrics::counter!(
        clinker_runtime::metrics::DB_TRANSACTIONS,
        "outcome" => outcome
    )
    .increment(1);
}

/// Records how long getting a connection from `pool` took (also when it
/// timed out: the wait is what an operator tunes `max_pool_size` by).
fn record_pool_wait(pool: &'static str, started: std::time::Instant) {
    clinker_runtime::metrics::histogram!(
        clinker_runtime::metrics::DB_POOL_WAIT_SECONDS,
        "pool" => pool
    )
    .record(started.elapsed());
}
pub(crate) use retrying;

/// Runs `$body` (which uses `$tx: &mut sqlx::Transaction<'_, Any>`) in a
/// write transaction, committing on `Ok` and rolling back on `Err`, and
/// retrying the whole body when the engine reports a serialization failure,
/// deadlock or busy database.
macro_rules! in_transaction {
    ($db:expr, |$tx:ident| $body:expr) => {
        $crate::pool::retrying!(
            async {
                let mut writer = $db.writer().await?;
                let mut $tx = sqlx::Connection::begin(&mut *writer)
                    .await
                    .map_err($crate::error::DbError::from)?;
                // The body runs in its own async block so that a `return`
                // inside it (early success or failure) still reaches the
                // commit or the rollback below.
                let value = async { $body }.await?;
                $tx.commit().await.map_err($crate::error::DbError::from)?;
                Ok(value)
            }
            .await
        )
    };
}
pub(crate) use in_transaction;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_placeholders_outside_strings() {
        assert_eq!(
            numbered_placeholders("SELECT a FROM t WHERE b = ? AND c = '?' AND d IN (?, ?)"),
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND d IN ($2, $3)"
        );
    }
}
