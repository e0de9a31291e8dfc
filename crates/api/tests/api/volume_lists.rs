//! Volume lists: pagination, links, counts, sorting, filters, summary.

use clinker_types::VolumeId;
use serde_json::json;

use crate::common::sorted_keys;
use crate::common::{Verbs, harness};

#[tokio::test]
async fn lists_paginate_with_links_and_count() {
    let h = harness().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            h.create_volume(json!({"size": i + 1, "name": format!("v{i}")}))
                .await,
        );
    }
    let page = h.get("/v3/volumes?limit=2&sort=size:asc").await;
    assert_eq!(page.status, 200, "{}", page.text);
    let items = page.body["volumes"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(sorted_keys(&items[0]), vec!["id", "links", "name"]);
    assert_eq!(items[0]["id"], ids[0].to_string());
    let next = page.body["volumes_links"][0]["href"].as_str().unwrap();
    assert_eq!(page.body["volumes_links"][0]["rel"], "next");
    assert_eq!(
        next,
        format!(
            "http://api.test:8776/v3/volumes?limit=2&sort=size%3Aasc&marker={}",
            ids[1]
        )
    );
    let path = next.trim_start_matches("http://api.test:8776");
    let second = h.get(path).await;
    let sizes: Vec<i64> = second.body["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let id: VolumeId = v["id"].as_str().unwrap().parse().unwrap();
            ids.iter().position(|x| *x == id).unwrap() as i64 + 1
        })
        .collect();
    assert_eq!(sizes, vec![3, 4]);
    // The last partial page has no next link.
    let last = h
        .get(&format!(
            "/v3/volumes?limit=2&sort=size:asc&marker={}",
            ids[3]
        ))
        .await;
    assert_eq!(last.body["volumes"].as_array().unwrap().len(), 1);
    assert!(last.body.get("volumes_links").is_none());

    let detail = h
        .at("3.45")
        .get("/v3/volumes/detail?limit=3&with_count=true")
        .await;
    assert_eq!(detail.status, 200, "{}", detail.text);
    assert_eq!(detail.body["count"], 5);
    assert_eq!(detail.body["volumes"].as_array().unwrap().len(), 3);
    assert!(
        detail.body["volumes_links"][0]["href"]
            .as_str()
            .unwrap()
            .starts_with("http://api.test:8776/v3/volumes/detail?limit=3&with_count=true&marker=")
    );
    // Default order: newest first.
    assert_eq!(detail.body["volumes"][0]["id"], ids[4].to_string());
    // Before 3.45 `with_count` is neither honoured nor an error.
    let old = h.get("/v3/volumes/detail?with_count=true").await;
    assert!(old.body.get("count").is_none());
    assert_eq!(
        old.body["volumes"].as_array().unwrap().len(),
        0,
        "an unknown filter matches nothing"
    );
    // limit=0 returns nothing and no link.
    let zero = h.get("/v3/volumes?limit=0").await;
    assert_eq!(zero.body, json!({"volumes": []}));
}

#[tokio::test]
async fn list_parameters_are_validated() {
    let h = harness().await;
    h.create_volume(json!({"size": 1})).await;
    let cases: &[(&str, u16, &str)] = &[
        (
            "sort=bogus",
            400,
            "Invalid input received: Invalid sort key",
        ),
        (
            "sort_key=size&sort_dir=up",
            400,
            "Invalid input received: Unknown sort direction, must be 'desc' or 'asc'.",
        ),
        (
            "sort=size&sort_key=size",
            400,
            "The 'sort_key' and 'sort_dir' parameters are deprecated and cannot be used with the 'sort' parameter.",
        ),
        ("limit=-1", 400, "limit param must be positive"),
        ("limit=abc", 400, "limit param must be an integer"),
        ("offset=abc", 400, "offset must be an integer"),
        (
            "marker=4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1",
            404,
            "Volume 4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1 could not be found.",
        ),
        ("marker=junk", 404, "Volume junk could not be found."),
        (
            "all_tenants=maybe",
            400,
            "Value 'maybe' for 'all_tenants' is not a boolean.",
        ),
    ];
    for (query, status, message) in cases {
        let reply = h.get(&format!("/v3/volumes/detail?{query}")).await;
        assert_eq!(reply.status, *status, "{query}: {}", reply.text);
        let fault = if *status == 404 {
            "itemNotFound"
        } else {
            "badRequest"
        };
        assert_eq!(reply.fault(fault), *message, "{query}");
    }
    let reply = h.at("3.2").get("/v3/volumes?bootable=maybe").await;
    assert_eq!(
        reply.refusal(400),
        "Invalid input received: 'bootable = maybe'"
    );
    let reply = h
        .at("3.60")
        .get("/v3/volumes?created_at=after:2020-01-01")
        .await;
    assert_eq!(reply.fault("badRequest"), "Invalid after operator");
}

#[tokio::test]
async fn list_filters() {
    let h = harness().await;
    let gold = h
        .create_volume(json!({"size": 1, "name": "gold-1", "metadata": {"tier": "gold"}}))
        .await;
    let iron = h
        .create_volume(json!({"size": 2, "name": "iron-1", "metadata": {"tier": "iron"}}))
        .await;
    h.make_available(iron).await;
    let ids = |reply: &crate::common::Reply| -> Vec<String> {
        let mut ids: Vec<String> = reply.body["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let by_name = h.get("/v3/volumes?name=gold-1").await;
    assert_eq!(ids(&by_name), vec![gold.to_string()]);
    let by_status = h.get("/v3/volumes/detail?status=available").await;
    assert_eq!(ids(&by_status), vec![iron.to_string()]);
    let python = h
        .get("/v3/volumes?metadata=%7B%27tier%27%3A+%27gold%27%7D")
        .await;
    assert_eq!(ids(&python), vec![gold.to_string()]);
    let json_meta = h
        .get("/v3/volumes?metadata=%7B%22tier%22%3A%22iron%22%7D")
        .await;
    assert_eq!(ids(&json_meta), vec![iron.to_string()]);
    let by_size = h.get("/v3/volumes?size=2").await;
    assert_eq!(ids(&by_size), vec![iron.to_string()]);
    let not_bootable = h.get("/v3/volumes?bootable=false").await;
    assert_eq!(ids(&not_bootable).len(), 2);
    let like = h.at("3.34").get("/v3/volumes?name~=GOLD").await;
    assert_eq!(ids(&like), vec![gold.to_string()]);
    let recent = h
        .at("3.60")
        .get("/v3/volumes?created_at=gt:2000-01-01T00:00:00")
        .await;
    assert_eq!(ids(&recent).len(), 2);
    let future = h
        .at("3.60")
        .get("/v3/volumes?created_at=gt:2999-01-01T00:00:00")
        .await;
    assert!(ids(&future).is_empty());

    // Another project's volume: only visible to an admin asking for all.
    let other = h
        .with_headers(&[("x-auth-token", "u2:aaaa0000")])
        .post("/v3/volumes", json!({"volume": {"size": 1}}))
        .await;
    assert_eq!(other.status, 202);
    assert_eq!(ids(&h.get("/v3/volumes").await).len(), 2);
    assert_eq!(ids(&h.get("/v3/volumes?all_tenants=1").await).len(), 3);
    let other_id = other.body["volume"]["id"].as_str().unwrap();
    // Admins see any volume by id, like Cinder.
    assert_eq!(h.get(&format!("/v3/volumes/{other_id}")).await.status, 200);
}

#[tokio::test]
async fn volume_summary() {
    let h = harness().await;
    h.create_volume(json!({"size": 2, "metadata": {"k": "a"}}))
        .await;
    h.create_volume(json!({"size": 3, "metadata": {"k": "b"}}))
        .await;
    let reply = h.at("3.12").get("/v3/volumes/summary").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body,
        json!({"volume-summary": {"total_count": 2, "total_size": 5}})
    );
    let reply = h.at("3.36").get("/v3/volumes/summary").await;
    assert_eq!(
        reply.body["volume-summary"]["metadata"],
        json!({"k": ["a", "b"]})
    );
}
