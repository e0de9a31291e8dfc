//! Conformance checks of the image-volume cache rows (run on every engine
//! by `conformance_checks!`).

use super::*;

/// A cache volume is a placed, journaled row charged to its owner (the
/// internal tenant); entries list by backend, most recently used first;
/// an entry goes with its volume's rows.
pub async fn image_cache_entries_follow_their_volumes(db: &Db) {
    let type_id = default_type(db).await;
    let pool = "node1@file#file";
    let cache_volume = |image: &str| {
        let mut new = new_volume("internal", 1, type_id);
        new.display_name = Some(format!("image-{image}"));
        new.metadata.clear();
        new
    };
    let a = db
        .create_image_cache_volume(cache_volume("a"), pool)
        .await
        .unwrap();
    assert_eq!(
        (a.status, a.host.as_deref()),
        (VolumeStatus::Creating, Some(pool))
    );
    assert_usage_matches_recount(db, "internal").await;
    db.finish_volume_create(a.id, ProviderUpdate::default())
        .await
        .unwrap();
    let b = db
        .create_image_cache_volume(cache_volume("b"), pool)
        .await
        .unwrap();
    db.finish_volume_create(b.id, ProviderUpdate::default())
        .await
        .unwrap();
    let updated = Timestamp::parse_iso8601("2026-12-08T00:00:00Z");
    for (image, id) in [("a", a.id), ("b", b.id)] {
        let entry = db
            .create_image_cache_entry(NewImageCacheEntry {
                host: pool.into(),
                cluster_name: None,
                image_id: image.into(),
                image_updated_at: updated,
                volume_id: id,
                size: 1,
            })
            .await
            .unwrap();
        assert_eq!(
            (entry.image_id.as_str(), entry.image_updated_at),
            (image, updated)
        );
    }
    // Another backend's entries are not this one's.
    let other = db
        .create_image_cache_volume(cache_volume("c"), "node1@file2#file2")
        .await
        .unwrap();
    db.create_image_cache_entry(NewImageCacheEntry {
        host: "node1@file2#file2".into(),
        cluster_name: None,
        image_id: "c".into(),
        image_updated_at: None,
        volume_id: other.id,
        size: 1,
    })
    .await
    .unwrap();

    let entries = db.image_cache_entries("node1@file").await.unwrap();
    let images: Vec<&str> = entries.iter().map(|e| e.image_id.as_str()).collect();
    assert_eq!(images, ["b", "a"], "most recently used first");
    let a_entry = entries.iter().find(|e| e.image_id == "a").unwrap().id;
    // Time moves on (microsecond clock), then a is used again.
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    db.touch_image_cache_entry(a_entry).await.unwrap();
    let images: Vec<String> = db
        .image_cache_entries("node1@file")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.image_id)
        .collect();
    assert_eq!(images, ["a", "b"]);

    // Deleting a cache volume removes its entry in the same transaction.
    db.begin_volume_delete(a.id, DeleteOptions::default())
        .await
        .unwrap();
    db.finish_volume_delete(a.id).await.unwrap();
    let images: Vec<String> = db
        .image_cache_entries("node1@file")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.image_id)
        .collect();
    assert_eq!(images, ["b"]);
    assert!(db.delete_image_cache_entry(b.id).await.unwrap());
    assert!(!db.delete_image_cache_entry(b.id).await.unwrap());
    assert!(
        db.image_cache_entries("node1@file")
            .await
            .unwrap()
            .is_empty()
    );
    assert_usage_matches_recount(db, "internal").await;
}
