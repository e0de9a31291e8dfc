//! What the Cinder import, export and adoption tests share: the fixture (a
//! MariaDB database written by real Cinder 29 and the API views Cinder
//! served for it), the view comparison, Clinker's configuration for it, and
//! real Cinder 29 from its venv (`scripts/install-cinder29.sh`): its
//! `cinder.conf`, a database made by its `cinder-manage db sync`, and its
//! services started on them.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clinker_db::QuotaDefaults;
use clinker_db::testsuite::{Engine, TestDatabase};
use clinker_testkit::env::unmet;
use clinker_testkit::http::Api;
use clinker_testkit::process::{Proc, run, write_file};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_clinker");
pub const DUMP: &str = include_str!("../fixtures/cinder29/cinder29-mariadb.sql");
pub const EXPECTED: &str = include_str!("../fixtures/cinder29/expected-api.json");
const API_PASTE: &str = include_str!("../fixtures/cinder29/api-paste.ini");
const RESOURCE_FILTERS: &str = include_str!("../fixtures/cinder29/resource_filters.json");
/// The fixture's admin project; noauth's tokens `admin:<project>` act in it.
pub const PROJECT_A: &str = "595e296e47d229a7918693d3e4142995";
/// The fixture's backends (`cinder-api` alone never loads their drivers).
pub const FIXTURE_BACKENDS: &str = "enabled_backends = fake1,fake2\n";
/// Where Cinder's API was when the views were captured.
pub const CINDER_ENDPOINT: &str = "http://127.0.0.1:8797";
/// The id Cinder's `db sync` gave `default_cgsnapshot_type` differs per
/// deployment; Clinker's is fixed (`DEFAULT_CGSNAPSHOT_TYPE_ID`) and the
/// import keeps Clinker's. Both sides show a placeholder.
pub fn hide_cgsnapshot_type_id(view: &mut Value) {
    if let Some(types) = view.get_mut("group_types").and_then(Value::as_array_mut) {
        // Cinder lists group types in id order, and that id is random.
        types.sort_by(|a, b| a["name"].to_string().cmp(&b["name"].to_string()));
        for t in types {
            if t["name"] == "default_cgsnapshot_type" {
                t["id"] = Value::from("<default_cgsnapshot_type>");
            }
        }
    }
}

/// Differences between `want` and `got`, as `pointer: cinder … clinker …`.
pub fn diff(pointer: &str, want: &Value, got: &Value, out: &mut Vec<(String, String)>) {
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            for key in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                let p = format!("{pointer}/{key}");
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => diff(&p, x, y, out),
                    (Some(x), None) => out.push((p, format!("missing (Cinder: {x})"))),
                    (None, Some(y)) => out.push((p, format!("extra (Clinker: {y})"))),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (n, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{pointer}/{n}"), x, y, out);
            }
        }
        _ if want != got => out.push((pointer.to_owned(), format!("Cinder {want}, Clinker {got}"))),
        _ => {}
    }
}

/// Compares every view of `expected-api.json` with what `api` (base
/// without `/v3`) answers; the differences `deliberate` (view path, field
/// pointer) does not excuse.
pub async fn compare_views(
    api: &Api,
    base: &str,
    deliberate: impl Fn(&str, &str) -> bool,
) -> (usize, Vec<String>) {
    let expected: BTreeMap<String, Value> = serde_json::from_str(EXPECTED).unwrap();
    let mut problems = Vec::new();
    for (path, want) in &expected {
        let project = path.split('/').nth(2).unwrap();
        let version = if path.ends_with("/os-services") {
            "3.48"
        } else {
            "3.71"
        };
        let (status, mut got) = api
            .at(version)
            .as_token(&format!("admin:{project}"))
            .get(path)
            .await;
        let mut want: Value =
            serde_json::from_str(&want.to_string().replace(CINDER_ENDPOINT, base)).unwrap();
        hide_cgsnapshot_type_id(&mut want);
        hide_cgsnapshot_type_id(&mut got);
        let mut found = Vec::new();
        if status == 200 {
            diff("", &want, &got, &mut found);
        } else {
            found.push((String::new(), format!("HTTP {status}: {got}")));
        }
        for (pointer, what) in found {
            if !deliberate(path, &pointer) {
                problems.push(format!("{path} {pointer}: {what}"));
            }
        }
    }
    (expected.len(), problems)
}

pub fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `clinker.conf` for a target database, `fake1`/`fake2` as in Cinder's
/// configuration of the fixture.
pub fn config(dir: &Path, url: &str, port: u16, transport: &str) -> std::path::PathBuf {
    write_file(
        &dir.join("clinker.conf"),
        &format!(
            "[DEFAULT]\nhost = clinker-test\nstate_path = {}\nosapi_volume_listen_port = {port}\n\
             transport_url = {transport}\nenabled_backends = fake1,fake2\n\
             [fake1]\nvolume_driver = file\n[fake2]\nvolume_driver = file\n\
             [database]\nconnection = {url}\n",
            dir.display()
        ),
    )
}

pub async fn import(conf: &Path, from: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["manage", "cinder", "import", "--from", from];
    args.extend_from_slice(extra);
    run(Path::new(BIN), &[conf], &args).await
}

/// The source: the dump loaded into a fresh MariaDB database; its URL in
/// the form cinder.conf uses.
pub async fn cinder_database() -> Option<(TestDatabase, String)> {
    let source = TestDatabase::open_unmigrated(Engine::Mysql, QuotaDefaults::default()).await?;
    // The first line is mariadb-dump's sandbox marker, not SQL.
    let script = DUMP.split_once('\n').map_or(DUMP, |(_, rest)| rest);
    source.execute_script(script).await;
    let url = source
        .url
        .replacen("mysql://", "mysql+pymysql://", 1)
        .to_owned()
        + "?charset=utf8mb4";
    Some((source, url))
}

/// Cinder 29's venv, with the database drivers and, for `with_ceph`, the
/// `rados` and `rbd` modules its RBD driver imports.
pub fn cinder_venv(test: &str, with_ceph: bool) -> Option<PathBuf> {
    let venv = std::env::var_os("CLINKER_CINDER_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/clinker-cinder29"))
        })?;
    let pins = std::fs::read_to_string(venv.join(".clinker-pins")).unwrap_or_default();
    if !(pins.contains("PyMySQL") && pins.contains("psycopg2")) {
        unmet(
            test,
            "Cinder 29's venv with PyMySQL and psycopg2 is missing",
            "scripts/install-cinder29.sh",
        );
        return None;
    }
    if with_ceph {
        let imports = std::process::Command::new(venv.join("bin/python"))
            .args(["-c", "import rados, rbd"])
            .output()
            .unwrap();
        if !imports.status.success() {
            unmet(
                test,
                "Cinder 29's venv cannot import rados and rbd",
                "scripts/install-ceph.sh, then scripts/install-cinder29.sh",
            );
            return None;
        }
    }
    Some(venv)
}

/// The URL Cinder's `[database] connection` takes for a test database.
pub fn cinder_url(engine: Engine, url: &str) -> String {
    match engine {
        Engine::Mysql => url.replacen("mysql://", "mysql+pymysql://", 1) + "?charset=utf8mb4",
        // Named as cinder.conf names it: SQLAlchemy's default PostgreSQL
        // driver is psycopg 3 since 2.1, Cinder's is psycopg2.
        Engine::Postgres => url.replacen("postgresql://", "postgresql+psycopg2://", 1),
        Engine::Sqlite => url.to_owned(),
    }
}

/// `cinder.conf` for Cinder's services on `database` (noauth, a RabbitMQ
/// vhost, host `cinder-fixture`); `backends` is `enabled_backends = …`
/// and the backends' sections.
pub fn cinder_conf(
    dir: &Path,
    database: &str,
    port: u16,
    transport: &str,
    backends: &str,
) -> PathBuf {
    write_file(&dir.join("api-paste.ini"), API_PASTE);
    write_file(&dir.join("resource_filters.json"), RESOURCE_FILTERS);
    std::fs::create_dir_all(dir.join("lock")).unwrap();
    let d = dir.display();
    let (enabled, sections) = backends.split_once('\n').unwrap_or((backends, ""));
    write_file(
        &dir.join("cinder.conf"),
        &format!(
            "[DEFAULT]\nstate_path = {d}\nmy_ip = 127.0.0.1\nhost = cinder-fixture\n\
             transport_url = {transport}\nauth_strategy = noauth\n\
             api_paste_config = {d}/api-paste.ini\n\
             resource_query_filters_file = {d}/resource_filters.json\n\
             osapi_volume_listen = 127.0.0.1\nosapi_volume_listen_port = {port}\n\
             osapi_volume_workers = 1\n{enabled}\n\
             default_volume_type = __DEFAULT__\nstorage_availability_zone = nova\n\
             service_down_time = 60\npublic_endpoint = http://127.0.0.1:{port}\n\
             periodic_interval = 2\ngraceful_shutdown_timeout = 10\n\
             rpc_response_timeout = 10\nuse_stderr = true\n\
             [database]\nconnection = {database}\n\
             [oslo_concurrency]\nlock_path = {d}/lock\n\
             [oslo_messaging_notifications]\ndriver = noop\n\
             [coordination]\nbackend_url = file://{d}/coordination\n\
             [key_manager]\nbackend = cinder.keymgr.conf_key_mgr.ConfKeyManager\n\
             fixed_key = 6b1d0b4e0c6f4d2f9a8e7c5b3a1d0f2e4c6b8a0d2f4e6c8b0a2d4f6e8c0b2a4d\n\
             {sections}"
        ),
    )
}

/// A fresh database of `engine` with Cinder 29's schema, made by
/// `cinder-manage db sync`; it, its URL in Cinder's form and the
/// `cinder.conf` that made it.
pub async fn synced_cinder_database(
    venv: &Path,
    engine: Engine,
    dir: &Path,
) -> Option<(TestDatabase, String, PathBuf)> {
    let database = TestDatabase::open_unmigrated(engine, QuotaDefaults::default()).await?;
    let url = cinder_url(engine, &database.url);
    let conf = cinder_conf(
        dir,
        &url,
        0,
        "rabbit://guest:guest@127.0.0.1:5672/unused",
        FIXTURE_BACKENDS,
    );
    let synced = run(&venv.join("bin/cinder-manage"), &[&conf], &["db", "sync"]).await;
    assert!(
        synced.status.success(),
        "cinder-manage db sync: {}",
        text(&synced)
    );
    Some((database, url, conf))
}

/// Starts `cinder-api` on `conf`; the API's base URL once it answers.
pub async fn start_cinder_api(venv: &Path, conf: &Path, port: u16, dir: &Path) -> (Proc, String) {
    let mut api = Proc::new(
        &venv.join("bin/cinder-api"),
        "cinder-api",
        &[conf],
        &[],
        dir,
    );
    api.start();
    let base = format!("http://127.0.0.1:{port}");
    let client = Api::new(base.clone());
    for _ in 0..240 {
        if client
            .at("3.71")
            .as_token(&format!("admin:{PROJECT_A}"))
            .get(&format!("/v3/{PROJECT_A}/types"))
            .await
            .0
            == 200
        {
            return (api, base);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("cinder-api did not answer in 60 s:\n{}", api.log());
}
