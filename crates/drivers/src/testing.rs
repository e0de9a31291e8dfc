//! Helpers shared by the unit tests: captured tool output from `fixtures/`.

use clinker_exec::Output;
use serde_json::Value;

/// The captured command `name` (e.g. `lvm/nodm/lvs`) as the runner's output.
pub(crate) fn fixture(name: &str) -> Output {
    let path = format!("{}/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let field = |k: &str| value[k].as_str().unwrap_or_default().to_owned();
    Output {
        code: i32::try_from(value["code"].as_i64().unwrap_or(-1)).unwrap_or(-1),
        stdout: field("stdout"),
        stderr: field("stderr"),
    }
}
