//! What the Cinder import and export tests share: the fixture (a MariaDB
//! database written by real Cinder 29 and the API views Cinder served for
//! it), the view comparison, and Clinker's configuration for it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use clinker_db::QuotaDefaults;
use clinker_db::testsuite::{Engine, TestDatabase};
use clinker_testkit::http::Api;
use clinker_testkit::process::{run, write_file};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_clinker");
pub const DUMP: &str = include_str!("../fixtures/cinder29/cinder29-mariadb.sql");
pub const EXPECTED: &str = include_str!("../fixtures/cinder29/expected-api.json");
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
