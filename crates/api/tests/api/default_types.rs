//! `/default-types` (3.62): at the paths without the caller's project, the
//! project default used by volume create and `GET /types/default`.

use serde_json::json;

use crate::common::{PROJECT, sorted_keys};
use crate::surface_support::{MEMBER, at, create_type, harness};

const V362: (&str, &str) = ("OpenStack-API-Version", "volume 3.62");

#[tokio::test]
async fn project_default_types_round_trip() {
    let h = harness().await;
    let gold = create_type(&h, "gold", json!({})).await;
    let below = h
        .send("GET", "/v3/default-types", None, &[at("volume 3.61")])
        .await;
    assert_eq!(below.status, 404);

    let set = h
        .send(
            "PUT",
            &format!("/v3/default-types/{PROJECT}"),
            Some(json!({"default_type": {"volume_type": "gold"}})),
            &[V362],
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(
        set.body,
        json!({"default_type": {"project_id": PROJECT, "volume_type_id": gold}})
    );
    let shown = h
        .send(
            "GET",
            &format!("/v3/default-types/{PROJECT}"),
            None,
            &[V362],
        )
        .await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body, set.body);
    // With the caller's project in front, as Cinder also routes it.
    let prefixed = h
        .send(
            "GET",
            &format!("/v3/{PROJECT}/default-types/{PROJECT}"),
            None,
            &[V362],
        )
        .await;
    assert_eq!(prefixed.status, 200, "{}", prefixed.text);
    // By id too, for another project.
    let other = h
        .send(
            "PUT",
            "/v3/default-types/abcdef0123",
            Some(json!({"default_type": {"volume_type": gold}})),
            &[V362],
        )
        .await;
    assert_eq!(other.status, 200, "{}", other.text);
    let all = h.send("GET", "/v3/default-types", None, &[V362]).await;
    assert_eq!(all.status, 200);
    assert_eq!(sorted_keys(&all.body), ["default_types"]);
    assert_eq!(all.body["default_types"].as_array().unwrap().len(), 2);

    // A volume created without a type gets the project's default, and
    // /types/default shows it.
    let reply = h
        .call("POST", "/v3/volumes", Some(json!({"volume": {"size": 1}})))
        .await;
    assert_eq!(reply.status, 202);
    assert_eq!(reply.body["volume"]["volume_type"], "gold");
    let default = h.call("GET", "/v3/types/default", None).await;
    assert_eq!(default.body["volume_type"]["name"], "gold");
    // The default type of a project cannot be deleted.
    let refused = h.call("DELETE", &format!("/v3/types/{gold}"), None).await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.fault("badRequest"),
        format!("The volume type {gold} is a default volume type and cannot be deleted.")
    );

    let unset = h
        .send(
            "DELETE",
            &format!("/v3/default-types/{PROJECT}"),
            None,
            &[V362],
        )
        .await;
    assert_eq!(unset.status, 204);
    assert!(unset.text.is_empty());
    let missing = h
        .send(
            "GET",
            &format!("/v3/default-types/{PROJECT}"),
            None,
            &[V362],
        )
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.fault("itemNotFound"),
        format!("Default type for project {PROJECT} not found.")
    );
    let reply = h
        .call("POST", "/v3/volumes", Some(json!({"volume": {"size": 1}})))
        .await;
    assert_eq!(reply.body["volume"]["volume_type"], "__DEFAULT__");
}

#[tokio::test]
async fn default_type_refusals() {
    let h = harness().await;
    let unknown = h
        .send(
            "PUT",
            &format!("/v3/default-types/{PROJECT}"),
            Some(json!({"default_type": {"volume_type": "nope"}})),
            &[V362],
        )
        .await;
    assert_eq!(unknown.status, 400);
    assert_eq!(
        unknown.fault("badRequest"),
        "Volume type with name nope could not be found."
    );
    let no_body = h
        .send(
            "PUT",
            &format!("/v3/default-types/{PROJECT}"),
            Some(json!({})),
            &[V362],
        )
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
    let all = h.send("GET", "/v3/default-types", None, &[V362]).await;
    assert_eq!(all.body["default_types"], json!([]));
}
