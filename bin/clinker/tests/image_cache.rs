//! The image-volume cache end to end: the all-in-one Clinker (file
//! backend) with `image_volume_cache_enabled` against a real noauth Glance
//! (`scripts/glance.sh`), Glance's data requests counted in its uWSGI
//! request log. The second create of an image is a clone of the cached
//! volume (one download for two creates, the data byte for byte), cache
//! volumes belong to the internal tenant (absent from the user's lists and
//! quota), survive a restart, are evicted least recently used first within
//! `image_volume_cache_max_count`, and are not served once the image has
//! been updated in Glance.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use clinker_image::glance::PatchOp;
use clinker_image::{ImageContext, ImageMeta};
use clinker_testkit::glance::{Glance, glance, serial};
use clinker_testkit::http::{Api, in_use};
use common::Cluster;
use common::images::{MIB, assert_file_holds, client, disk_data, image_from_file};
use serde_json::{Value, json};

const INTERNAL_PROJECT: &str = "cache-project";
const USER: &str = "alice:alice-project";
const BACKEND_HOST: &str = "testnode@file";

async fn start(glance: &Glance, cache_options: &str) -> Cluster {
    Cluster::start(
        &format!(
            "glance_api_servers = {}\ncinder_internal_tenant_project_id = {INTERNAL_PROJECT}\n\
             cinder_internal_tenant_user_id = cache-user\n",
            glance.url
        ),
        &format!(
            "enabled_backends = file\n[file]\nvolume_driver = file\n\
             image_volume_cache_enabled = true\n{cache_options}"
        ),
    )
    .await
}

/// A public raw image of `data`.
async fn raw_image(g: &Glance, name: &str, data: &[u8]) -> ImageMeta {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("disk.raw");
    std::fs::write(&path, data).unwrap();
    image_from_file(
        &client(g),
        name,
        "raw",
        &path,
        json!({"visibility": "public"}),
    )
    .await
}

/// Creates a volume from `image_id` as the user and waits for `available`.
async fn volume_from_image(user: &Api, image_id: &str, size: u32) -> Value {
    let (status, id, body) = user
        .create_volume(json!({"size": size, "imageRef": image_id}))
        .await;
    assert_eq!(status, 202, "{body}");
    user.wait_volume(&id.unwrap(), |s| s == Some("available"))
        .await
}

/// The volume file holds `data` then zeros up to `size_gib`.
fn assert_volume_holds(c: &Cluster, volume: &Value, data: &[u8], size_gib: usize) {
    let id = volume["id"].as_str().unwrap();
    assert_file_holds(
        &c.volumes_dir().join(format!("volume-{id}")),
        data,
        size_gib,
    );
    assert_eq!(volume["bootable"], "true");
    assert!(
        volume["volume_image_metadata"]["image_id"].is_string(),
        "{volume}"
    );
}

/// The internal tenant's volumes (admin view of every project).
async fn cache_volumes(c: &Cluster) -> Vec<Value> {
    c.volumes()
        .await
        .into_iter()
        .filter(|v| v["os-vol-tenant-attr:tenant_id"] == INTERNAL_PROJECT)
        .collect()
}

async fn usage(c: &Cluster, project: &str) -> Value {
    let (status, body) = c.get(&format!("/os-quota-sets/{project}?usage=true")).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_second_create_of_an_image_clones_its_cached_volume() {
    let test = "the_second_create_of_an_image_clones_its_cached_volume";
    let Some(g) = glance(test) else { return };
    let _serial = serial().lock().await;
    let data = disk_data(21, 3 * MIB);
    let image = raw_image(g, "cache-a", &data).await;
    let mut c = start(g, "").await;
    let user = c.as_token(USER);

    let first = volume_from_image(&user, &image.id, 1).await;
    assert_eq!(g.data_requests(&image.id), 1, "the first create downloads");
    assert_volume_holds(&c, &first, &data, 1);
    let cached = cache_volumes(&c).await;
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert_eq!(cached[0]["name"], format!("image-{}", image.id));
    assert_eq!(cached[0]["status"], "available");
    assert_eq!(cached[0]["size"], 1);
    let cache_id = cached[0]["id"].as_str().unwrap().to_owned();

    // Larger than the cached volume: cloned, then extended.
    let second = volume_from_image(&user, &image.id, 2).await;
    assert_eq!(
        g.data_requests(&image.id),
        1,
        "the second create is served from the cache"
    );
    assert_volume_holds(&c, &second, &data, 2);
    assert_eq!(
        second["volume_image_metadata"]["image_id"],
        image.id.as_str()
    );

    // The cache volume is the internal tenant's: not in the user's lists,
    // not in the user's quota.
    let (status, listed) = user.get("/volumes/detail").await;
    assert_eq!(status, 200, "{listed}");
    let names: Vec<&str> = listed["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{listed}");
    assert!(!names.contains(&cache_id.as_str()), "{listed}");
    let user_usage = usage(&c, "alice-project").await;
    assert_eq!(in_use(&user_usage, "volumes"), 2, "{user_usage}");
    assert_eq!(in_use(&user_usage, "gigabytes"), 3, "{user_usage}");
    let cache_usage = usage(&c, INTERNAL_PROJECT).await;
    assert_eq!(in_use(&cache_usage, "volumes"), 1, "{cache_usage}");
    c.assert_quota_consistent("alice-project").await;
    c.assert_quota_consistent(INTERNAL_PROJECT).await;

    // A volume cloned from the cache deletes like any other; the cache
    // volume stays.
    let second_id = second["id"].as_str().unwrap();
    let (status, body) = user.delete(&format!("/volumes/{second_id}")).await;
    assert_eq!(status, 202, "{body}");
    user.wait_gone(&format!("/volumes/{second_id}")).await;
    assert!(!c.volumes_dir().join(format!("volume-{second_id}")).exists());
    assert_eq!(cache_volumes(&c).await.len(), 1);

    // A restart (init_host) keeps the entry and its volume.
    c.restart().await;
    let user = c.as_token(USER);
    let entries = c.db().image_cache_entries(BACKEND_HOST).await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].volume_id.to_string(), cache_id);
    let third = volume_from_image(&user, &image.id, 1).await;
    assert_eq!(g.data_requests(&image.id), 1, "still served from the cache");
    assert_volume_holds(&c, &third, &data, 1);

    // The image changes in Glance (a property: updated_at moves, at
    // Glance's one-second resolution): the stale entry is evicted and the
    // image downloaded again into a fresh one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client(g)
        .update_image(
            &ImageContext::default(),
            &image.id,
            &[PatchOp::Add("e2e_note".into(), json!("changed"))],
        )
        .await
        .unwrap();
    let fourth = volume_from_image(&user, &image.id, 1).await;
    assert_eq!(g.data_requests(&image.id), 2, "a stale entry is not served");
    assert_volume_holds(&c, &fourth, &data, 1);
    assert_eq!(fourth["volume_image_metadata"]["e2e_note"], "changed");
    let cached = cache_volumes(&c).await;
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert_ne!(
        cached[0]["id"],
        cache_id.as_str(),
        "the stale volume is gone"
    );
    assert!(!c.volumes_dir().join(format!("volume-{cache_id}")).exists());
    c.assert_quota_consistent(INTERNAL_PROJECT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_least_recently_used_entry_is_evicted_at_max_count() {
    let test = "the_least_recently_used_entry_is_evicted_at_max_count";
    let Some(g) = glance(test) else { return };
    let _serial = serial().lock().await;
    let (data_b, data_c) = (disk_data(22, 2 * MIB), disk_data(23, 2 * MIB));
    let image_b = raw_image(g, "cache-b", &data_b).await;
    let image_c = raw_image(g, "cache-c", &data_c).await;
    let c = start(g, "image_volume_cache_max_count = 1\n").await;
    let user = c.as_token(USER);

    volume_from_image(&user, &image_b.id, 1).await;
    let cached = cache_volumes(&c).await;
    assert_eq!(cached.len(), 1);
    assert_eq!(cached[0]["name"], format!("image-{}", image_b.id));
    let b_cache = cached[0]["id"].as_str().unwrap().to_owned();

    // A second image with room for one entry: B's entry goes.
    let from_c = volume_from_image(&user, &image_c.id, 1).await;
    assert_volume_holds(&c, &from_c, &data_c, 1);
    let cached = cache_volumes(&c).await;
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert_eq!(cached[0]["name"], format!("image-{}", image_c.id));
    assert!(!c.volumes_dir().join(format!("volume-{b_cache}")).exists());

    // B again: downloaded again, and now C is evicted.
    let from_b = volume_from_image(&user, &image_b.id, 1).await;
    assert_volume_holds(&c, &from_b, &data_b, 1);
    assert_eq!(g.data_requests(&image_b.id), 2);
    assert_eq!(g.data_requests(&image_c.id), 1);
    let entries = c.db().image_cache_entries(BACKEND_HOST).await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].image_id, image_b.id);
    c.assert_quota_consistent(INTERNAL_PROJECT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_internal_tenant_the_cache_is_off() {
    let test = "without_the_internal_tenant_the_cache_is_off";
    let Some(g) = glance(test) else { return };
    let _serial = serial().lock().await;
    let data = disk_data(24, MIB);
    let image = raw_image(g, "cache-off", &data).await;
    let c = Cluster::start(
        &format!("glance_api_servers = {}\n", g.url),
        "enabled_backends = file\n[file]\nvolume_driver = file\nimage_volume_cache_enabled = true\n",
    )
    .await;
    let user = c.as_token(USER);
    volume_from_image(&user, &image.id, 1).await;
    volume_from_image(&user, &image.id, 1).await;
    assert_eq!(g.data_requests(&image.id), 2, "every create downloads");
    let volumes = c.volumes().await;
    assert_eq!(volumes.len(), 2, "no cache volume: {volumes:?}");
}
