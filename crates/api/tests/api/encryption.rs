//! Type encryption (tempest's create/get/update/delete flow and its
//! negative tests) and volume encryption metadata.

use serde_json::json;

use crate::common::Verbs;
use crate::common::sorted_keys;
use crate::surface_support::{MEMBER, at, create_type, harness};

#[tokio::test]
async fn type_encryption_create_get_update_delete() {
    let h = harness().await;
    let type_id = create_type(&h, "secret", json!({})).await;
    let empty = h.get(&format!("/v3/types/{type_id}/encryption")).await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.body, json!({}));

    let create = json!({"encryption": {
        "provider": "luks", "key_size": "256", "cipher": "aes-xts-plain64",
        "control_location": "front-end"}});
    let created = h
        .post(&format!("/v3/types/{type_id}/encryption"), create.clone())
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let enc = &created.body["encryption"];
    assert_eq!(
        sorted_keys(enc),
        [
            "cipher",
            "control_location",
            "encryption_id",
            "key_size",
            "provider",
            "volume_type_id"
        ]
    );
    assert_eq!(enc["key_size"], 256);
    assert_eq!(enc["volume_type_id"], type_id.as_str());
    let encryption_id = enc["encryption_id"].as_str().unwrap().to_owned();

    let shown = h.get(&format!("/v3/types/{type_id}/encryption")).await;
    assert_eq!(
        sorted_keys(&shown.body),
        [
            "cipher",
            "control_location",
            "created_at",
            "deleted",
            "deleted_at",
            "encryption_id",
            "key_size",
            "provider",
            "updated_at",
            "volume_type_id"
        ]
    );
    assert_eq!(shown.body["provider"], "luks");
    assert_eq!(shown.body["deleted"], false);
    assert_eq!(shown.body["encryption_id"], encryption_id.as_str());

    let duplicate = h
        .post(&format!("/v3/types/{type_id}/encryption"), create)
        .await;
    assert_eq!(
        duplicate.refusal(400),
        format!("Volume type encryption for type {type_id} already exists.")
    );

    let update = json!({"encryption": {"key_size": 128, "provider": "SomeProvider",
        "cipher": "aes-xts-plain64", "control_location": "back-end"}});
    let updated = h
        .put(
            &format!("/v3/types/{type_id}/encryption/{encryption_id}"),
            update.clone(),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.body, update);
    let shown = h.get(&format!("/v3/types/{type_id}/encryption")).await;
    assert_eq!(shown.body["provider"], "SomeProvider");
    assert_eq!(shown.body["key_size"], 128);
    assert_eq!(shown.body["control_location"], "back-end");
    let item = h
        .get(&format!("/v3/types/{type_id}/encryption/cipher"))
        .await;
    assert_eq!(item.status, 200);
    assert_eq!(item.body, json!({"cipher": "aes-xts-plain64"}));
    let no_item = h.get(&format!("/v3/types/{type_id}/encryption/nope")).await;
    assert_eq!(
        no_item.refusal(404),
        format!("Volume type encryption for type {type_id} does not exist.")
    );

    let deleted = h
        .delete(&format!("/v3/types/{type_id}/encryption/{encryption_id}"))
        .await;
    assert_eq!(deleted.status, 202);
    let after = h.get(&format!("/v3/types/{type_id}/encryption")).await;
    assert_eq!(after.body, json!({}));
    let again = h
        .delete(&format!("/v3/types/{type_id}/encryption/{encryption_id}"))
        .await;
    assert_eq!(again.status, 404);
}

#[tokio::test]
async fn type_encryption_refusals() {
    let h = harness().await;
    let unknown = "4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1";
    let body = json!({"encryption": {"provider": "luks", "key_size": 256,
        "cipher": "aes-xts-plain64", "control_location": "front-end"}});
    let missing = h
        .post(&format!("/v3/types/{unknown}/encryption"), body)
        .await;
    assert_eq!(
        missing.refusal(404),
        format!("Volume type {unknown} could not be found.")
    );
    let type_id = create_type(&h, "secret", json!({})).await;
    for (body, text) in [
        (
            json!({"encryption": {"provider": "luks", "control_location": "middle"}}),
            "'middle' is not one of ['front-end', 'back-end']",
        ),
        (
            json!({"encryption": {"provider": "luks", "control_location": "front-end", "key_size": "big"}}),
            "Invalid input received: key_size must be an integer.",
        ),
        (
            json!({"encryption": {"control_location": "front-end"}}),
            "'provider' is a required property",
        ),
        (
            json!({"encryption": {"provider": "luks", "control_location": "front-end", "key_size": -1}}),
            "-1 is less than the minimum of 0",
        ),
    ] {
        let refused = h
            .post(&format!("/v3/types/{type_id}/encryption"), body)
            .await;
        assert!(refused.refusal(400).contains(text), "{}", refused.text);
    }
    let none = h.get(&format!("/v3/types/{type_id}/encryption")).await;
    assert_eq!(none.body, json!({}));
    // Admin only.
    let member = h
        .with_headers(&[MEMBER])
        .get(&format!("/v3/types/{type_id}/encryption"))
        .await;
    assert_eq!(
        member.refusal(403),
        "Policy doesn't allow volume_extension:volume_type_encryption:get to be performed."
    );
    let member_create = h
        .with_headers(&[MEMBER])
        .post(
            &format!("/v3/types/{type_id}/encryption"),
            json!({"encryption": {"provider": "luks", "control_location": "front-end"}}),
        )
        .await;
    assert_eq!(member_create.status, 403);
    let none = h.get(&format!("/v3/types/{type_id}/encryption")).await;
    assert_eq!(none.body, json!({}));
}

#[tokio::test]
async fn encrypted_volumes_carry_a_key_id_and_lock_the_type() {
    let h = harness().await;
    let type_id = create_type(&h, "secret", json!({})).await;
    let created = h
        .post(
            &format!("/v3/types/{type_id}/encryption"),
            json!({"encryption": {"provider": "luks", "key_size": 256,
                "cipher": "aes-xts-plain64", "control_location": "front-end"}}),
        )
        .await;
    let encryption_id = created.body["encryption"]["encryption_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = h
        .post(
            "/v3/volumes",
            json!({"volume": {"size": 1, "volume_type": "secret"}}),
        )
        .await;
    assert_eq!(reply.status, 202);
    assert_eq!(reply.body["volume"]["encrypted"], true);
    let id = reply.id::<String>("volume");

    let v63 = h
        .with_headers(&[at("volume 3.63")])
        .get(&format!("/v3/volumes/{id}"))
        .await;
    assert!(v63.body["volume"].get("encryption_key_id").is_none());
    let v64 = h
        .with_headers(&[at("volume 3.64")])
        .get(&format!("/v3/volumes/{id}"))
        .await;
    let key = v64.body["volume"]["encryption_key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&key).is_ok());

    let metadata = h.get(&format!("/v3/volumes/{id}/encryption")).await;
    assert_eq!(metadata.status, 200);
    assert_eq!(
        metadata.body,
        json!({"encryption_key_id": key, "control_location": "front-end",
               "cipher": "aes-xts-plain64", "key_size": 256, "provider": "luks"})
    );
    let provider = h
        .get(&format!("/v3/volumes/{id}/encryption/provider"))
        .await;
    assert_eq!(provider.body, json!("luks"));

    for (method, uri, text) in [
        (
            "PUT",
            format!("/v3/types/{type_id}/encryption/{encryption_id}"),
            "Cannot update encryption specs. Volume type in use.",
        ),
        (
            "DELETE",
            format!("/v3/types/{type_id}/encryption/{encryption_id}"),
            "Cannot delete encryption specs. Volume type in use.",
        ),
    ] {
        let body = (method == "PUT").then(|| json!({"encryption": {"provider": "x"}}));
        let refused = h.call(method, &uri, body).await;
        assert_eq!(refused.refusal(400), text);
    }

    // An unencrypted volume: only a null key id.
    let plain = h.available_volume(1).await;
    let metadata = h.get(&format!("/v3/volumes/{plain}/encryption")).await;
    assert_eq!(metadata.body, json!({"encryption_key_id": null}));
    let shown = h.get(&format!("/v3/volumes/{plain}")).await;
    assert_eq!(shown.body["volume"]["encrypted"], false);
    // Other projects cannot read it.
    let foreign = h
        .with_headers(&[MEMBER])
        .get(&format!("/v3/volumes/{plain}/encryption"))
        .await;
    assert_eq!(foreign.status, 404);
}
