//! The database conformance suite on every engine, one test per engine and
//! check. SQLite always runs; PostgreSQL and MariaDB run when reachable
//! (and must be under `CI=true`).

use clinker_db::testsuite::{self, Engine, run_check};

/// One test per check of `conformance_checks!` on `$engine`.
macro_rules! checks_on {
    (($engine:ident) $($check:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                run_check(Engine::$engine, async |t| testsuite::$check(&t.db).await).await;
            }
        )*

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn connection_limits_are_unavailable() {
            run_check(Engine::$engine, async |t| {
                testsuite::connection_limits_are_unavailable(t, Engine::$engine).await;
            })
            .await;
        }
    };
}

mod sqlite {
    use super::*;
    clinker_db::conformance_checks!(checks_on, Sqlite);
}

mod postgres {
    use super::*;
    clinker_db::conformance_checks!(checks_on, Postgres);
}

mod mysql {
    use super::*;
    clinker_db::conformance_checks!(checks_on, Mysql);
}
