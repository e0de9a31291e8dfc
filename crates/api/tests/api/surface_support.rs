//! Shared by the QoS, transfer, encryption, default-type, revert and
//! retype tests: a harness whose `member:<project>` tokens are not admins
//! ([`Members`]).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::common::{Harness, Members, Options};

/// A member (not an admin) of project `bbbb1111`.
pub const MEMBER: (&str, &str) = ("x-auth-token", "member:bbbb1111");

/// A harness with both stand-in services, the volume service registered in
/// `nova`, and member tokens.
pub async fn harness() -> Harness {
    let h = Harness::with(Options {
        authenticator: Some(Arc::new(Members)),
        ..Options::default()
    })
    .await;
    h.register_volume_service("nova").await;
    h
}

/// The version header.
pub fn at(version: &'static str) -> (&'static str, &'static str) {
    ("OpenStack-API-Version", version)
}

/// Creates a volume type through the API; returns its id.
pub async fn create_type(h: &Harness, name: &str, extra_specs: Value) -> String {
    let reply = h
        .call(
            "POST",
            "/v3/types",
            Some(json!({"volume_type": {"name": name, "extra_specs": extra_specs}})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["volume_type"]["id"].as_str().unwrap().to_owned()
}
