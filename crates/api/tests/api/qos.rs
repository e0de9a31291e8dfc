//! `/qos-specs`: Cinder's views, texts and status codes, the GET actions
//! with side effects, and admin-only enforcement.

use clinker_db::QosSpecsRepository;
use serde_json::json;

use crate::common::Verbs;
use crate::common::sorted_keys;
use crate::surface_support::{MEMBER, create_type, harness};

#[tokio::test]
async fn qos_specs_crud_matches_cinder() {
    let h = harness().await;
    let fast = json!({"name": " fast ", "consumer": "front-end", "read_iops_sec": "2000"});
    let created = h.post("/v3/qos-specs", json!({ "qos_specs": fast })).await;
    assert_eq!(created.status, 200, "{}", created.text);
    assert_eq!(sorted_keys(&created.body), ["links", "qos_specs"]);
    let specs = &created.body["qos_specs"];
    assert_eq!(sorted_keys(specs), ["consumer", "id", "name", "specs"]);
    assert_eq!(specs["name"], "fast");
    assert_eq!(specs["consumer"], "front-end");
    assert_eq!(specs["specs"], json!({"read_iops_sec": "2000"}));
    let id = specs["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.body["links"][0]["href"],
        format!("http://api.test:8776/v3/qos-specs/{id}")
    );
    assert_eq!(
        created.body["links"][1]["href"],
        format!("http://api.test:8776/qos-specs/{id}")
    );

    // The list item equals the created body (tempest's assertIn).
    let listed = h.get("/v3/qos-specs").await;
    assert_eq!(listed.status, 200);
    assert_eq!(sorted_keys(&listed.body), ["qos_specs"]);
    assert_eq!(listed.body["qos_specs"], json!([specs.clone()]));
    let shown = h.get(&format!("/v3/qos-specs/{id}")).await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body, created.body);

    let duplicate = h
        .post("/v3/qos-specs", json!({"qos_specs": {"name": "fast"}}))
        .await;
    assert_eq!(duplicate.refusal(409), "QoS Specs fast already exists.");
    let default_consumer = h
        .post("/v3/qos-specs", json!({"qos_specs": {"name": "plain"}}))
        .await;
    assert_eq!(default_consumer.body["qos_specs"]["consumer"], "back-end");
    assert_eq!(default_consumer.body["qos_specs"]["specs"], json!({}));

    for (body, text) in [
        (
            json!({"qos_specs": {"name": "x", "consumer": "hypervisor"}}),
            "Invalid qos specs: Valid consumer of QoS specs are: QoSConsumerValues(",
        ),
        (
            json!({"qos_specs": {"name": "x", "read_iops_sec": 2000}}),
            "Invalid input received: Value for key \"read_iops_sec\" is not a string or unicode",
        ),
        (
            json!({"qos_specs": {"name": "   "}}),
            "An invalid 'name' value was provided. The 'name' can not be empty.",
        ),
        (json!({"qos_specs": {}}), "'name' is a required property"),
        (
            json!({"qos_specs": {"name": "x"}, "extra": 1}),
            "Additional properties are not allowed ('extra' was unexpected)",
        ),
    ] {
        let refused = h.post("/v3/qos-specs", body).await;
        assert!(refused.refusal(400).contains(text), "{}", refused.text);
    }
    // Nothing was written by the refusals.
    assert_eq!(
        h.get("/v3/qos-specs").await.body["qos_specs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Set keys: 200 with the body echoed.
    let set = h
        .put(
            &format!("/v3/qos-specs/{id}"),
            json!({"qos_specs": {"iops_bytes": "500", "consumer": "both"}}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(
        set.body,
        json!({"qos_specs": {"iops_bytes": "500", "consumer": "both"}})
    );
    let shown = h.get(&format!("/v3/qos-specs/{id}")).await;
    assert_eq!(shown.body["qos_specs"]["consumer"], "both");
    assert_eq!(shown.body["qos_specs"]["specs"]["iops_bytes"], "500");
    let bad_key = h
        .put(
            &format!("/v3/qos-specs/{id}"),
            json!({"qos_specs": {"bad@key": "1"}}),
        )
        .await;
    assert_eq!(bad_key.status, 400);

    // Unset keys: 202; a missing key is 404 and deletes nothing.
    let missing = h
        .put(
            &format!("/v3/qos-specs/{id}/delete_keys"),
            json!({"keys": ["iops_bytes", "nope"]}),
        )
        .await;
    assert_eq!(
        missing.refusal(404),
        format!("QoS spec {id} has no spec with key nope.")
    );
    let unset = h
        .put(
            &format!("/v3/qos-specs/{id}/delete_keys"),
            json!({"keys": ["iops_bytes"]}),
        )
        .await;
    assert_eq!(unset.status, 202, "{}", unset.text);
    let shown = h.get(&format!("/v3/qos-specs/{id}")).await;
    assert_eq!(
        shown.body["qos_specs"]["specs"],
        json!({"read_iops_sec": "2000"})
    );
    let repeated = h
        .put(
            &format!("/v3/qos-specs/{id}/delete_keys"),
            json!({"keys": ["a", "a"]}),
        )
        .await;
    assert!(repeated.refusal(400).contains("non-unique elements"));

    let deleted = h.delete(&format!("/v3/qos-specs/{id}")).await;
    assert_eq!(deleted.status, 202);
    let gone = h.get(&format!("/v3/qos-specs/{id}")).await;
    assert_eq!(gone.refusal(404), format!("No such QoS spec {id}."));
    let garbage = h.get("/v3/qos-specs/not-a-uuid").await;
    assert_eq!(
        garbage.fault("itemNotFound"),
        "No such QoS spec not-a-uuid."
    );
}

#[tokio::test]
async fn associations_are_gets_with_side_effects() {
    let h = harness().await;
    let created = h
        .post("/v3/qos-specs", json!({"qos_specs": {"name": "q1"}}))
        .await;
    let id = created.id::<String>("qos_specs");
    let other = h
        .post("/v3/qos-specs", json!({"qos_specs": {"name": "q2"}}))
        .await;
    let other_id = other.id::<String>("qos_specs");
    let gold = create_type(&h, "gold", json!({})).await;
    let silver = create_type(&h, "silver", json!({})).await;

    for type_id in [&gold, &silver] {
        let reply = h
            .get(&format!(
                "/v3/qos-specs/{id}/associate?vol_type_id={type_id}"
            ))
            .await;
        assert_eq!(reply.status, 202, "{}", reply.text);
    }
    let associations = h.get(&format!("/v3/qos-specs/{id}/associations")).await;
    assert_eq!(associations.status, 200);
    let items = associations.body["qos_associations"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(sorted_keys(&items[0]), ["association_type", "id", "name"]);
    assert_eq!(items[0]["association_type"], "volume_type");
    // The type view shows the association to admins.
    let shown = h.get(&format!("/v3/types/{gold}")).await;
    assert_eq!(shown.body["volume_type"]["qos_specs_id"], id.as_str());

    let no_type = h.get(&format!("/v3/qos-specs/{id}/associate")).await;
    assert_eq!(no_type.refusal(400), "Volume Type id must not be None.");
    let unknown = h
        .get(&format!("/v3/qos-specs/{id}/associate?vol_type_id=nope"))
        .await;
    assert_eq!(unknown.refusal(404), "Volume type nope could not be found.");
    let taken = h
        .get(&format!(
            "/v3/qos-specs/{other_id}/associate?vol_type_id={gold}"
        ))
        .await;
    assert_eq!(
        taken.refusal(400),
        format!(
            "Invalid volume type: Type {gold} is already associated with another qos specs: {id}"
        )
    );

    let in_use = h.delete(&format!("/v3/qos-specs/{id}")).await;
    assert_eq!(in_use.refusal(400), "Qos specs still in use.");
    let bad_force = h.delete(&format!("/v3/qos-specs/{id}?force=maybe")).await;
    assert_eq!(bad_force.status, 400);

    let one = h
        .get(&format!(
            "/v3/qos-specs/{id}/disassociate?vol_type_id={gold}"
        ))
        .await;
    assert_eq!(one.status, 202);
    let associations = h.get(&format!("/v3/qos-specs/{id}/associations")).await;
    assert_eq!(
        associations.body["qos_associations"],
        json!([{"association_type": "volume_type", "name": "silver", "id": silver}])
    );
    let all = h.get(&format!("/v3/qos-specs/{id}/disassociate_all")).await;
    assert_eq!(all.status, 202);
    let associations = h.get(&format!("/v3/qos-specs/{id}/associations")).await;
    assert_eq!(associations.body["qos_associations"], json!([]));

    // Forced delete removes associations too.
    h.get(&format!("/v3/qos-specs/{id}/associate?vol_type_id={gold}"))
        .await;
    let forced = h.delete(&format!("/v3/qos-specs/{id}?force=true")).await;
    assert_eq!(forced.status, 202);
    let shown = h.get(&format!("/v3/types/{gold}")).await;
    assert_eq!(shown.body["volume_type"]["qos_specs_id"], json!(null));
}

#[tokio::test]
async fn qos_lists_page_and_sort() {
    let h = harness().await;
    for name in ["b", "a", "c"] {
        h.post("/v3/qos-specs", json!({"qos_specs": {"name": name}}))
            .await;
    }
    let page = h.get("/v3/qos-specs?sort=name:asc&limit=2").await;
    assert_eq!(page.status, 200, "{}", page.text);
    let names: Vec<&str> = page.body["qos_specs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    let next = page.body["qos_specs_links"][0]["href"].as_str().unwrap();
    assert!(
        next.contains("/v3/qos-specs?") && next.contains("marker="),
        "{next}"
    );
    let marker = next.rsplit("marker=").next().unwrap();
    let rest = h
        .get(&format!("/v3/qos-specs?sort=name:asc&marker={marker}"))
        .await;
    assert_eq!(rest.body["qos_specs"][0]["name"], "c");
    let filtered = h.get("/v3/qos-specs?name=b").await;
    assert_eq!(filtered.body["qos_specs"].as_array().unwrap().len(), 1);
    let unknown_marker = h
        .get("/v3/qos-specs?marker=4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1")
        .await;
    assert_eq!(unknown_marker.status, 404);
    let bad_sort = h.get("/v3/qos-specs?sort=specs").await;
    assert_eq!(bad_sort.status, 400);
}

#[tokio::test]
async fn qos_specs_are_admin_only() {
    let h = harness().await;
    let created = h
        .post("/v3/qos-specs", json!({"qos_specs": {"name": "q"}}))
        .await;
    let id = created.id::<String>("qos_specs");
    let type_id = create_type(&h, "gold", json!({})).await;
    let cases: Vec<(&str, String, Option<serde_json::Value>, &str)> = vec![
        ("GET", "/v3/qos-specs".into(), None, "get_all"),
        (
            "POST",
            "/v3/qos-specs".into(),
            Some(json!({"qos_specs": {"name": "mine"}})),
            "create",
        ),
        ("GET", format!("/v3/qos-specs/{id}"), None, "get"),
        (
            "PUT",
            format!("/v3/qos-specs/{id}"),
            Some(json!({"qos_specs": {"k": "v"}})),
            "update",
        ),
        ("DELETE", format!("/v3/qos-specs/{id}"), None, "delete"),
        (
            "PUT",
            format!("/v3/qos-specs/{id}/delete_keys"),
            Some(json!({"keys": ["k"]})),
            "delete",
        ),
        (
            "GET",
            format!("/v3/qos-specs/{id}/associate?vol_type_id={type_id}"),
            None,
            "update",
        ),
        (
            "GET",
            format!("/v3/qos-specs/{id}/disassociate_all"),
            None,
            "update",
        ),
        (
            "GET",
            format!("/v3/qos-specs/{id}/associations"),
            None,
            "get_all",
        ),
    ];
    for (method, uri, body, rule) in cases {
        let reply = h.send(method, &uri, body, &[MEMBER]).await;
        assert_eq!(reply.status, 403, "{method} {uri}: {}", reply.text);
        assert_eq!(
            reply.fault("forbidden"),
            format!(
                "Policy doesn't allow volume_extension:qos_specs_manage:{rule} to be performed."
            )
        );
    }
    // Nothing changed.
    let specs = h.db.get_qos_specs(id.parse().unwrap()).await.unwrap();
    assert!(specs.specs.is_empty());
    assert!(h.db.qos_associations(specs.id).await.unwrap().is_empty());
    assert_eq!(
        h.get("/v3/qos-specs").await.body["qos_specs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
