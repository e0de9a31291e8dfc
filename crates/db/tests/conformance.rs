//! The database conformance suite on every engine. SQLite always runs;
//! PostgreSQL and MariaDB run when reachable (and must be under `CI=true`).

use clinker_db::testsuite::{Engine, run_all};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_conformance() {
    run_all(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_conformance() {
    run_all(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_conformance() {
    run_all(Engine::Mysql).await;
}
