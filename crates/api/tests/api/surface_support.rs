//! Shared by the QoS, transfer, encryption, default-type, revert and
//! retype tests: a harness whose `member:<project>` tokens are not admins
//! ([`Members`]).

use std::sync::Arc;

use clinker_types::VolumeId;
use serde_json::{Value, json};

use crate::common::Verbs;
use crate::common::{Harness, Members, Options};

/// A member (not an admin) of project `bbbb1111`.
pub const MEMBER: (&str, &str) = ("x-auth-token", "member:bbbb1111");
/// A member of another project, `cccc2222`.
pub const OTHER: (&str, &str) = ("x-auth-token", "member:cccc2222");

/// `options` with member tokens.
pub fn with_members(options: Options) -> Options {
    Options {
        authenticator: Some(Arc::new(Members)),
        ..options
    }
}

/// A harness with both stand-in services, the volume service registered in
/// `nova`, and member tokens.
pub async fn harness() -> Harness {
    Harness::registered(with_members(Options::default())).await
}

/// The version header.
pub fn at(version: &'static str) -> (&'static str, &'static str) {
    ("OpenStack-API-Version", version)
}

/// Creates a volume type through the API; returns its id.
pub async fn create_type(h: &Harness, name: &str, extra_specs: Value) -> String {
    let reply = h
        .post(
            "/v3/types",
            json!({"volume_type": {"name": name, "extra_specs": extra_specs}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.id::<String>("volume_type")
}

/// A volume [`MEMBER`] created through the API (202 asserted), made
/// available as the scheduler and the volume service would.
pub async fn member_volume(h: &Harness) -> VolumeId {
    let reply = h
        .with_headers(&[MEMBER])
        .post("/v3/volumes", json!({"volume": {"size": 1}}))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let id = reply.id("volume");
    h.make_available(id).await;
    id
}
