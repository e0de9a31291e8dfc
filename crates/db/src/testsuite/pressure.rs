//! A database that refuses connections is "unavailable" (a 503 upstream),
//! never an internal error: PostgreSQL's "too many connections" (53300) and
//! MariaDB's per-user connection limit (1226) are produced for real with a
//! throw-away role limited to one connection.

use std::time::Duration;

use clinker_types::ErrorKind;

use super::{Engine, TestDatabase, random_name};
use crate::{Db, DbError, DbOptions};

/// Holds the limited role's one connection, then asks for another, through
/// a second pool and through a fresh `Db::connect`.
pub async fn connection_limits_are_unavailable(t: &TestDatabase, engine: Engine) {
    let role = random_name();
    let admin = &t.db;
    let (create, url) = match engine {
        Engine::Sqlite => return,
        Engine::Postgres => (
            vec![
                format!("CREATE ROLE {role} LOGIN CONNECTION LIMIT 1"),
                format!("GRANT ALL ON SCHEMA public TO {role}"),
            ],
            with_user(&t.url, &role, "postgresql://"),
        ),
        Engine::Mysql => (
            vec![
                format!("CREATE USER '{role}'@'%' WITH MAX_USER_CONNECTIONS 1"),
                format!("CREATE USER '{role}'@'localhost' WITH MAX_USER_CONNECTIONS 1"),
                format!("GRANT ALL ON *.* TO '{role}'@'%'"),
                format!("GRANT ALL ON *.* TO '{role}'@'localhost'"),
            ],
            with_user(&t.url, &role, "mysql://"),
        ),
    };
    for sql in &create {
        let mut conn = admin.writer().await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let mut options = DbOptions::new(url.clone());
    options.max_pool_size = 2;
    options.max_overflow = 0;
    options.acquire_timeout = Duration::from_secs(2);
    let limited = Db::connect(&options).await.expect("the first connection");
    let held = limited.writer().await.expect("the one allowed connection");

    // A second connection of the same pool: refused by the server.
    let second = limited.writer().await.map(|_| ()).unwrap_err();
    assert_eq!(second.kind(), ErrorKind::Unavailable, "{second}");
    assert!(matches!(second, DbError::Unavailable(_)), "{second:?}");

    // A new pool, as a restarting service would open: unavailable too (the
    // pool retries the refused connect until pool_timeout).
    let fresh = Db::connect(&options).await.map(|_| ()).unwrap_err();
    assert!(matches!(fresh, DbError::Unavailable(_)), "{fresh:?}");

    // The server's own refusal on a plain connection, classified where it
    // arises: too many connections is "unavailable", with its code.
    crate::pool::install_drivers();
    let (_, raw_url) = crate::url::translate_url(&url).unwrap();
    let refused = <sqlx::AnyConnection as sqlx::Connection>::connect(&raw_url)
        .await
        .map(|_| ())
        .unwrap_err();
    let refused = crate::error::classify(refused);
    let code = if engine == Engine::Postgres {
        "53300"
    } else {
        "1226"
    };
    assert!(matches!(refused, DbError::Unavailable(_)), "{refused:?}");
    assert!(refused.to_string().contains(code), "{refused}");

    drop(held);
    limited.close().await;
    let drop_role = match engine {
        Engine::Postgres => vec![
            format!("REVOKE ALL ON SCHEMA public FROM {role}"),
            format!("DROP ROLE {role}"),
        ],
        _ => vec![
            format!("DROP USER '{role}'@'%'"),
            format!("DROP USER '{role}'@'localhost'"),
        ],
    };
    for sql in drop_role {
        let mut conn = admin.writer().await.unwrap();
        let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await;
    }
}

/// `url` with its user replaced by `user` (no password: the test servers
/// trust local connections or accept an empty one).
fn with_user(url: &str, user: &str, scheme: &str) -> String {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .expect("a URL with a scheme");
    let host_and_db = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}{user}@{host_and_db}")
}

/// A login role of a test database's server limited to `limit` connections,
/// with every right on that database (the real "too many connections" of a
/// database shared with others, without touching the server's own limit).
#[derive(Debug)]
pub struct LimitedRole {
    /// The database's URL as the role.
    pub url: String,
    name: String,
    engine: Engine,
}

impl LimitedRole {
    /// Creates the role; `None` on SQLite (no connections to limit).
    ///
    /// # Panics
    /// The server refuses the role.
    pub async fn create(t: &TestDatabase, engine: Engine, limit: u32) -> Option<Self> {
        let name = random_name();
        let (statements, url) = match engine {
            Engine::Sqlite => return None,
            Engine::Postgres => (
                vec![
                    format!("CREATE ROLE {name} LOGIN CONNECTION LIMIT {limit}"),
                    format!("GRANT ALL ON SCHEMA public TO {name}"),
                    format!("GRANT ALL ON ALL TABLES IN SCHEMA public TO {name}"),
                    format!("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {name}"),
                ],
                with_user(&t.url, &name, "postgresql://"),
            ),
            Engine::Mysql => (
                ["%", "localhost"]
                    .iter()
                    .flat_map(|host| {
                        [
                            format!(
                                "CREATE USER '{name}'@'{host}' WITH MAX_USER_CONNECTIONS {limit}"
                            ),
                            format!("GRANT ALL ON *.* TO '{name}'@'{host}'"),
                        ]
                    })
                    .collect(),
                with_user(&t.url, &name, "mysql://"),
            ),
        };
        for sql in &statements {
            let mut conn = t.db.writer().await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut *conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        Some(Self { url, name, engine })
    }

    /// Takes every connection the role has left (until the server refuses
    /// one) and keeps them until [`HeldConnections::release`].
    ///
    /// # Panics
    /// Not even one connection could be had.
    pub async fn hold_the_rest(&self) -> HeldConnections {
        let mut options = DbOptions::new(self.url.clone());
        options.max_pool_size = 10_000;
        options.max_overflow = 0;
        options.acquire_timeout = Duration::from_secs(1);
        let db = Db::connect(&options).await.expect("a first connection");
        let mut held = Vec::new();
        while let Ok(conn) = db.writer().await {
            held.push(conn);
        }
        assert!(!held.is_empty(), "the holder got no connection");
        HeldConnections { held, db }
    }

    /// Removes the role (its connections closed first by the caller).
    pub async fn drop_role(self, t: &TestDatabase) {
        let statements = match self.engine {
            Engine::Sqlite => vec![],
            Engine::Postgres => vec![
                format!("DROP OWNED BY {}", self.name),
                format!("DROP ROLE {}", self.name),
            ],
            Engine::Mysql => vec![
                format!("DROP USER '{}'@'%'", self.name),
                format!("DROP USER '{}'@'localhost'", self.name),
            ],
        };
        for sql in statements {
            if let Ok(mut conn) = t.db.writer().await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *conn)
                    .await;
            }
        }
    }
}

/// Connections kept from their server (see [`LimitedRole::hold_the_rest`]).
pub struct HeldConnections {
    held: Vec<crate::pool::DbConn>,
    db: Db,
}

impl std::fmt::Debug for HeldConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldConnections")
            .field("count", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl HeldConnections {
    /// How many are held.
    pub fn count(&self) -> usize {
        self.held.len()
    }

    /// Closes them.
    pub async fn release(self) {
        drop(self.held);
        self.db.close().await;
    }
}
