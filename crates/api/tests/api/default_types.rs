//! `/default-types` (3.62): at the paths without the caller's project, the
//! project default used by volume create and `GET /types/default`.

use serde_json::json;

use crate::common::Verbs;
use crate::common::{PROJECT, sorted_keys};
use crate::surface_support::{MEMBER, at, create_type, harness};

const V362: (&str, &str) = ("OpenStack-API-Version", "volume 3.62");

#[tokio::test]
async fn project_default_types_round_trip() {
    let h = harness().await;
    let gold = create_type(&h, "gold", json!({})).await;
    let below = h
        .with_headers(&[at("volume 3.61")])
        .get("/v3/default-types")
        .await;
    assert_eq!(below.status, 404);

    let set = h
        .with_headers(&[V362])
        .put(
            &format!("/v3/default-types/{PROJECT}"),
            json!({"default_type": {"volume_type": "gold"}}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(
        set.body,
        json!({"default_type": {"project_id": PROJECT, "volume_type_id": gold}})
    );
    let shown = h
        .with_headers(&[V362])
        .get(&format!("/v3/default-types/{PROJECT}"))
        .await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body, set.body);
    // With the caller's project in front, as Cinder also routes it.
    let prefixed = h
        .with_headers(&[V362])
        .get(&format!("/v3/{PROJECT}/default-types/{PROJECT}"))
        .await;
    assert_eq!(prefixed.status, 200, "{}", prefixed.text);
    // By id too, for another project.
    let other = h
        .with_headers(&[V362])
        .put(
            "/v3/default-types/abcdef0123",
            json!({"default_type": {"volume_type": gold}}),
        )
        .await;
    assert_eq!(other.status, 200, "{}", other.text);
    let all = h.with_headers(&[V362]).get("/v3/default-types").await;
    assert_eq!(all.status, 200);
    assert_eq!(sorted_keys(&all.body), ["default_types"]);
    assert_eq!(all.body["default_types"].as_array().unwrap().len(), 2);

    // A volume created without a type gets the project's default, and
    // /types/default shows it.
    let reply = h.post("/v3/volumes", json!({"volume": {"size": 1}})).await;
    assert_eq!(reply.status, 202);
    assert_eq!(reply.body["volume"]["volume_type"], "gold");
    let default = h.get("/v3/types/default").await;
    assert_eq!(default.body["volume_type"]["name"], "gold");
    // The default type of a project cannot be deleted.
    let refused = h.delete(&format!("/v3/types/{gold}")).await;
    assert_eq!(
        refused.refusal(400),
        format!("The volume type {gold} is a default volume type and cannot be deleted.")
    );

    let unset = h
        .with_headers(&[V362])
        .delete(&format!("/v3/default-types/{PROJECT}"))
        .await;
    assert_eq!(unset.status, 204);
    assert!(unset.text.is_empty());
    let missing = h
        .with_headers(&[V362])
        .get(&format!("/v3/default-types/{PROJECT}"))
        .await;
    assert_eq!(
        missing.refusal(404),
        format!("Default type for project {PROJECT} not found.")
    );
    let reply = h.post("/v3/volumes", json!({"volume": {"size": 1}})).await;
    assert_eq!(reply.body["volume"]["volume_type"], "__DEFAULT__");
}

#[tokio::test]
async fn default_type_refusals() {
    let h = harness().await;
    let unknown = h
        .with_headers(&[V362])
        .put(
            &format!("/v3/default-types/{PROJECT}"),
            json!({"default_type": {"volume_type": "nope"}}),
        )
        .await;
    assert_eq!(
        unknown.refusal(400),
        "Volume type with name nope could not be found."
    );
    let no_body = h
        .with_headers(&[V362])
        .put(&format!("/v3/default-types/{PROJECT}"), json!({}))
        .await;
    assert_eq!(no_body.status, 400);
    for (method, uri, body) in [
        (
            "PUT",
            "/v3/default-types/bbbb1111",
            Some(json!({"default_type": {"volume_type": "__DEFAULT__"}})),
        ),
        ("GET", "/v3/default-types/bbbb1111", None),
        ("GET", "/v3/default-types", None),
        ("DELETE", "/v3/default-types/bbbb1111", None),
    ] {
        let reply = h.send(method, uri, body, &[MEMBER, V362]).await;
        assert_eq!(reply.status, 403, "{method} {uri}: {}", reply.text);
        assert_eq!(
            reply.fault("forbidden"),
            "You are not authorized to perform this operation."
        );
    }
    let all = h.with_headers(&[V362]).get("/v3/default-types").await;
    assert_eq!(all.body["default_types"], json!([]));
}
