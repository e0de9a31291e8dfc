//! Start-up refuses authentication and policy configurations it cannot
//! honour, before any service starts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use clinker::wiring::start_all_in_one;
use clinker_config::Config;

fn config(dir: &std::path::Path, extra: &str) -> Config {
    let text = format!(
        "[DEFAULT]\nhost = testnode\nstate_path = {}\nosapi_volume_listen_port = 0\n\
         enabled_backends = file\n{extra}\n[file]\nvolume_driver = file\n",
        dir.display()
    );
    clinker_testkit::config::parse(&text, "testnode")
}

#[tokio::test]
async fn a_bad_policy_file_stops_start_up_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "\"volume:delete\": \"role:member and\"\n").unwrap();
    let config = config(
        dir.path(),
        &format!("[oslo_policy]\npolicy_file = {}\n", policy.display()),
    );
    let err = start_all_in_one(Arc::new(config)).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("volume:delete"), "{text}");
    // Nothing was started: no database was created.
    assert!(!dir.path().join("clinker.sqlite").exists());
}

#[tokio::test]
async fn a_missing_htpasswd_file_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("htpasswd");
    let config = config(
        dir.path(),
        &format!(
            "auth_strategy = http_basic\nhttp_basic_auth_user_file = {}\n",
            missing.display()
        ),
    );
    let err = start_all_in_one(Arc::new(config)).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("htpasswd"), "{text}");
}
