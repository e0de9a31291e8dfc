//! Adopting a real Cinder: a MariaDB database written by Cinder 29 through
//! its API (`tests/fixtures/cinder29/`) is imported with `clinker manage
//! cinder import` into Clinker's SQLite, PostgreSQL and MariaDB databases,
//! and `clinker api` on the imported database answers every view Cinder
//! answered (`expected-api.json`) field by field, except the deliberate
//! differences listed in `DELIBERATE` (and in
//! `docs/adr/deviations-from-cinder.md`). Also: a dry run writes nothing,
//! quota usage equals a recount, a second import changes nothing, Clinker
//! refuses Cinder's own database, a Cinder with a live service and an
//! unknown schema revision.
//!
//! Needs the local MariaDB (the source, and one target), PostgreSQL and
//! RabbitMQ (for `clinker api`); skipped with a message when absent,
//! failed under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cinder_common;

use std::path::Path;

use cinder_common::{BIN, cinder_database, compare_views, config, import, text};
use clinker_db::testsuite::{Engine, TestDatabase};
use clinker_testkit::http::Api;
use clinker_testkit::poll::Every;
use clinker_testkit::process::{LogsOnFailure, Proc, free_port, run};
use clinker_testkit::rabbit::Vhost;

/// The fixture's `a-snap-source` (two snapshots, one with metadata) and
/// `a-boot-debian` (image metadata).
const SNAP_SOURCE: &str = "9a306040-2679-4815-8e52-b54db2995b82";
const BOOT: &str = "52399d84-345d-4b8d-8bce-5a8ca1d79dda";

/// Differences from Cinder's views that are deliberate: (view path
/// contains, field pointer prefix, why). Each is in
/// `docs/adr/deviations-from-cinder.md`. None since backups are carried.
const DELIBERATE: &[(&str, &str, &str)] = &[];

fn deliberate(path: &str, pointer: &str) -> bool {
    DELIBERATE
        .iter()
        .any(|(view, field, _)| path.contains(view) && pointer.starts_with(field))
}

/// Whether a report line reads `<kind> <n>` (the reason may follow).
fn reported(report: &str, kind: &str, n: u64) -> bool {
    let want = format!("{kind} {n}");
    report.lines().any(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let joined = words.join(" ");
        joined == want || joined.starts_with(&format!("{want} ("))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cinder29_database_imports_into_every_engine_with_the_same_views() {
    let Some((source, from)) = cinder_database().await else {
        return;
    };
    let Some(vhost) = Vhost::create("cinder-import") else {
        return;
    };
    let mut engines_run = 0;
    for engine in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
        let Some(target) = TestDatabase::open(engine).await else {
            continue;
        };
        engines_run += 1;
        let dir = tempfile::tempdir().unwrap();
        let _logs = LogsOnFailure(dir.path().to_path_buf());
        let port = free_port();
        let conf = config(dir.path(), &target.url, port, &vhost.transport_url());
        let before = clinker_db::cinder::row_counts(&target.db).await.unwrap();

        // A dry run reports and writes nothing.
        let dry = import(&conf, &from, &["--dry-run"]).await;
        let report = text(&dry);
        assert!(dry.status.success(), "{engine:?}: {report}");
        for line in [
            "dry run: nothing was written",
            "Cinder schema revision 9c74c1c6971f",
            "enabled_backends sections the volumes need: fake1, fake2",
        ] {
            assert!(
                report.contains(line),
                "{engine:?}: no {line:?} in\n{report}"
            );
        }
        for (kind, n) in [
            ("volume", 26),
            ("snapshot", 6),
            ("attachment", 5),
            ("volume type", 7),
            ("message", 2),
            ("volumes", 2),
            ("reservations", 169),
            ("backup", 1),
        ] {
            assert!(
                reported(&report, kind, n),
                "{engine:?}: no {kind} {n} in\n{report}"
            );
        }
        assert!(!report.contains("missing from"), "{report}");
        assert_eq!(
            clinker_db::cinder::row_counts(&target.db).await.unwrap(),
            before,
            "{engine:?}: the dry run wrote"
        );

        // The import.
        let first = import(&conf, &from, &[]).await;
        let report = text(&first);
        assert!(first.status.success(), "{engine:?}: {report}");
        assert!(report.contains("imported in one transaction"), "{report}");
        let after = clinker_db::cinder::row_counts(&target.db).await.unwrap();
        for (table, n) in [
            ("volumes", 26),
            ("snapshots", 6),
            ("volume_attachment", 5),
            ("volume_types", 7),
            ("transfers", 1),
            ("messages", 2),
            ("services", 4),
            ("cinder_imports", 1),
        ] {
            assert_eq!(after[table], n, "{engine:?}: {table}");
        }

        // Usage was recounted: the counters equal a recount.
        let check = run(Path::new(BIN), &[&conf], &["manage", "quota", "check"]).await;
        assert!(check.status.success(), "{engine:?}: {}", text(&check));

        // A second import says so and changes nothing.
        let second = import(&conf, &from, &[]).await;
        let report = text(&second);
        assert!(second.status.success(), "{report}");
        assert!(report.contains("already holds an import"), "{report}");
        assert_eq!(
            clinker_db::cinder::row_counts(&target.db).await.unwrap(),
            after,
            "{engine:?}: the second import changed the database"
        );

        // Clinker's API on the imported database answers as Cinder did.
        let mut api_proc = Proc::new(Path::new(BIN), "api", &[&conf], &["api"], dir.path());
        api_proc.start();
        let base = format!("http://127.0.0.1:{port}");
        Api::new(format!("{base}/v3"))
            .wait_ready(Every::ms(50, 60))
            .await;
        let (views, problems) = compare_views(&Api::new(base.clone()), &base, deliberate).await;
        api_proc.terminate().await;

        // --replace starts over and lands the same rows.
        let again = import(&conf, &from, &["--replace"]).await;
        assert!(again.status.success(), "{}", text(&again));
        assert!(text(&again).contains("imported in one transaction"));
        assert_eq!(
            clinker_db::cinder::row_counts(&target.db).await.unwrap(),
            after,
            "{engine:?}: --replace"
        );
        assert_eq!(views, 132);
        assert!(
            problems.is_empty(),
            "{engine:?}: {} differences from Cinder's views:\n{}",
            problems.len(),
            problems.join("\n")
        );
        target.drop_database().await;
    }
    assert!(engines_run > 0, "no target engine reachable");
    source.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cinder_database_itself_and_a_running_cinder_are_refused() {
    let Some((source, from)) = cinder_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();

    // Clinker pointed at Cinder's own database refuses to sync and start.
    let on_cinder = config(
        dir.path(),
        &source.url,
        free_port(),
        "rabbit://guest:guest@127.0.0.1:5672/unused",
    );
    for args in [&["manage", "db", "sync"][..], &["api"][..]] {
        let refused = run(Path::new(BIN), &[&on_cinder], args).await;
        let said = text(&refused);
        assert!(
            !refused.status.success(),
            "{args:?} ran on Cinder's database"
        );
        assert!(
            said.contains("clinker manage cinder import --from"),
            "{args:?}: {said}"
        );
    }
    assert!(
        source.db.holds_cinder_schema().await,
        "the refusal changed Cinder's database"
    );

    let Some(target) = TestDatabase::open(Engine::Sqlite).await else {
        return;
    };
    let conf = config(
        dir.path(),
        &target.url,
        free_port(),
        "rabbit://guest:guest@127.0.0.1:5672/unused",
    );
    let empty = clinker_db::cinder::row_counts(&target.db).await.unwrap();

    // A Clinker database with data of its own is not overwritten.
    target
        .execute_script(
            "INSERT INTO quotas (project_id, resource, hard_limit) VALUES ('p', 'volumes', 1)",
        )
        .await;
    let with_data = clinker_db::cinder::row_counts(&target.db).await.unwrap();
    let refused = import(&conf, &from, &[]).await;
    let said = text(&refused);
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains("already holds data of its own (1 quotas)"),
        "{said}"
    );
    assert_eq!(
        clinker_db::cinder::row_counts(&target.db).await.unwrap(),
        with_data
    );
    target.execute_script("DELETE FROM quotas").await;

    // A volume Clinker cannot take is skipped and reported with what
    // depends on it.
    source
        .execute_script(&format!(
            "UPDATE volumes SET status = 'frobnicating' WHERE id = '{SNAP_SOURCE}'; \
             UPDATE volume_glance_metadata SET value = REPEAT('x', 300) \
             WHERE volume_id = '{BOOT}' AND `key` = 'image_name'"
        ))
        .await;
    let dry = import(&conf, &from, &["--dry-run"]).await;
    let said = text(&dry);
    assert!(dry.status.success(), "{said}");
    for line in [
        format!("volume {SNAP_SOURCE}: unknown status \"frobnicating\""),
        format!(
            "snapshot 30b5e372-9ba3-48a0-8754-83333c601b09: its volume {SNAP_SOURCE} is skipped"
        ),
        "snapshot metadata purpose: its snapshot 30b5e372-9ba3-48a0-8754-83333c601b09 is skipped"
            .to_owned(),
        "volume image metadata image_name: meta_value is 300 characters long".to_owned(),
    ] {
        assert!(said.contains(&line), "no {line:?} in\n{said}");
    }
    assert!(reported(&said, "volume", 25), "{said}");
    assert!(reported(&said, "snapshot", 4), "{said}");

    // A Cinder volume service that reported just now.
    source
        .execute_script(
            "UPDATE services SET updated_at = UTC_TIMESTAMP() WHERE `binary` = 'cinder-volume'",
        )
        .await;
    let refused = import(&conf, &from, &[]).await;
    let said = text(&refused);
    assert!(!refused.status.success(), "{said}");
    assert!(said.contains("Cinder is still running"), "{said}");
    assert!(
        said.contains("cinder-volume on cinder-fixture@fake1"),
        "{said}"
    );
    assert_eq!(
        clinker_db::cinder::row_counts(&target.db).await.unwrap(),
        empty
    );
    // The dry run still reports, naming the running services.
    let dry = import(&conf, &from, &["--dry-run"]).await;
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(
        text(&dry).contains("Cinder services still reporting"),
        "{}",
        text(&dry)
    );

    // An unknown schema revision is refused with the known ones.
    source
        .execute_script("UPDATE alembic_version SET version_num = 'f00dfacef00d'")
        .await;
    let refused = import(&conf, &from, &["--force"]).await;
    let said = text(&refused);
    assert!(!refused.status.success(), "{said}");
    assert!(said.contains("f00dfacef00d"), "{said}");
    assert!(said.contains("9c74c1c6971f"), "{said}");
    assert_eq!(
        clinker_db::cinder::row_counts(&target.db).await.unwrap(),
        empty
    );
    target.drop_database().await;
    source.drop_database().await;
}
