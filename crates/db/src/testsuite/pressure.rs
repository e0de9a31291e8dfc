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
