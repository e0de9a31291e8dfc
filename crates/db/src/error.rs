//! Database errors, classified where they arise (SQLSTATE and driver codes).

use clinker_types::ErrorKind;

/// A quota that a change would exceed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverQuota {
    /// The resource (`volumes`, `gigabytes`, `snapshots`, `gigabytes_<type>`, …).
    pub resource: String,
    /// The limit.
    pub limit: i64,
    /// Usage before the change.
    pub in_use: i64,
    /// The requested increase.
    pub requested: i64,
}

/// Why a repository call failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The row does not exist (or is not in the caller's scope).
    #[error("{resource} {id} could not be found")]
    NotFound {
        /// `volume`, `snapshot`, `volume type`, …
        resource: &'static str,
        /// The id or name looked up.
        id: String,
    },
    /// A compare-and-swap found the row in another status, or a
    /// precondition (no snapshots, not attached) does not hold.
    #[error("{0}")]
    InvalidState(String),
    /// A quota would be exceeded.
    #[error("quota exceeded for {}: limit {}, in use {}, requested {}", .0.resource, .0.limit, .0.in_use, .0.requested)]
    OverQuota(OverQuota),
    /// A unique constraint was violated.
    #[error("duplicate: {0}")]
    Conflict(String),
    /// The database cannot be reached.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A transaction lost a race (serialization failure, deadlock, busy);
    /// retried by `crate::Db::transaction` and only surfaced when retries
    /// run out.
    #[error("transaction conflict: {0}")]
    Retryable(String),
    /// Anything else (a bug, a corrupt row).
    #[error("database error: {0}")]
    Internal(String),
}

impl DbError {
    /// The classification.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DbError::NotFound { .. } => ErrorKind::NotFound,
            DbError::InvalidState(_) => ErrorKind::InvalidState,
            DbError::OverQuota(_) => ErrorKind::OverQuota,
            DbError::Conflict(_) => ErrorKind::Conflict,
            DbError::Unavailable(_) | DbError::Retryable(_) => ErrorKind::Unavailable,
            DbError::Internal(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn not_found(resource: &'static str, id: impl ToString) -> Self {
        DbError::NotFound {
            resource,
            id: id.to_string(),
        }
    }
}

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        classify(err)
    }
}

/// Maps a sqlx error to a [`DbError`] by SQLSTATE / engine code.
pub(crate) fn classify(err: sqlx::Error) -> DbError {
    match &err {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => DbError::Unavailable(err.to_string()),
        sqlx::Error::Database(db) => {
            // MariaDB's SQLSTATEs are coarse (HY000 for a lock wait timeout);
            // its error number is the precise code.
            let code = match db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                Some(mysql) => mysql.number().to_string(),
                None => db.code().map(|c| c.into_owned()).unwrap_or_default(),
            };
            let message = db.message().to_owned();
            match code.as_str() {
                // PostgreSQL unique_violation, MariaDB ER_DUP_ENTRY, SQLite
                // SQLITE_CONSTRAINT_UNIQUE / _PRIMARYKEY.
                "23505" | "1062" | "2067" | "1555" | "23000" => DbError::Conflict(message),
                // PostgreSQL serialization_failure / deadlock_detected,
                // MariaDB deadlock / lock wait timeout (by SQLSTATE 40001 or
                // code), SQLite BUSY / LOCKED.
                "40001" | "40P01" | "1213" | "1205" | "5" | "6" | "517" | "261" => {
                    DbError::Retryable(message)
                }
                // The database is there but cannot serve this request now:
                // PostgreSQL connection exceptions (class 08), too many
                // connections (53300), admin / crash shutdown, cannot connect
                // now; MariaDB too many connections (1040), user connection
                // limits (1203, 1226), cannot connect (2002 socket, 2003 TCP),
                // server gone / lost / shutting down (2006, 2013, 1053).
                c if c.starts_with("08")
                    || matches!(
                        c,
                        "53300"
                            | "57P01"
                            | "57P02"
                            | "57P03"
                            | "1040"
                            | "1203"
                            | "1226"
                            | "2002"
                            | "2003"
                            | "2006"
                            | "2013"
                            | "1053"
                    ) =>
                {
                    DbError::Unavailable(format!("{message} (code {code})"))
                }
                _ => DbError::Internal(format!("{message} (code {code})")),
            }
        }
        _ => DbError::Internal(err.to_string()),
    }
}
