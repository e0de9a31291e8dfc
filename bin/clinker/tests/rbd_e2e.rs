//! Ceph RBD through Clinker's HTTP API, beside a file backend: the volume
//! lifecycle with clones, data read back from a clone, the capacity report
//! against `rbd du`, and Ceph stopped in the middle of work.
//!
//! Runs with `CLINKER_SYSTEM_TESTS=1` or `CI=true` (a missing Ceph is then a
//! failure); otherwise it is skipped with a message. The cluster comes from
//! `scripts/ceph-single-node.sh` (bluestore, so it survives a restart).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::path::Path;
use std::time::Duration;

use clinker_testkit::ceph::Ceph;
use clinker_testkit::poll::Every;
use common::Cluster;
use serde_json::{Value, json};

async fn wait(c: &Cluster, id: &str, want: &str) -> Value {
    c.wait_volume(id, |s| s == Some(want) || s == Some("error"))
        .await
}

async fn pools(c: &Cluster) -> Vec<Value> {
    let (status, body) = c.get("/scheduler-stats/get_pools?detail=true").await;
    assert_eq!(status, 200, "{body}");
    body["pools"].as_array().cloned().unwrap()
}

/// A raw image streamed into `rbd import`: the RBD image holds it byte for
/// byte, zeros after it, at the volume's size; the volume is bootable.
async fn create_from_image_on_rbd(
    c: &Cluster,
    ceph: &Ceph,
    glance: &clinker_testkit::glance::Glance,
    scratch: &Path,
) {
    use clinker_image::glance::UploadData;
    use clinker_image::{GlanceClient, GlanceSettings, ImageContext};
    let client = GlanceClient::new(GlanceSettings::with_servers(vec![glance.url.clone()])).unwrap();
    let ctx = ImageContext::default();
    let mut data = vec![0u8; 3 << 20];
    for (i, b) in data.iter_mut().enumerate().take(1 << 20) {
        *b = (i % 251) as u8 ^ 0x3c;
    }
    data[(2 << 20)..].fill(0xa7);
    let source = scratch.join("image.raw");
    std::fs::write(&source, &data).unwrap();
    let fields = json!({"name": "rbd-e2e", "disk_format": "raw", "container_format": "bare"});
    let image = client
        .create_image(&ctx, fields.as_object().unwrap())
        .await
        .unwrap();
    client
        .upload(&ctx, &image.id, UploadData::File(source))
        .await
        .unwrap();
    let (status, id, body) = c
        .create_volume(json!({"size": 1, "volume_type": "ceph", "imageRef": image.id}))
        .await;
    assert_eq!(status, 202, "{body}");
    let id = id.unwrap();
    let v = wait(c, &id, "available").await;
    assert_eq!(v["status"], "available", "{v}");
    assert_eq!(v["bootable"], "true");
    assert_eq!(v["volume_image_metadata"]["image_id"], image.id.as_str());
    let out = scratch.join("from-image.raw");
    ceph.rbd(&[
        "export",
        "--no-progress",
        &format!("volumes/volume-{id}"),
        &out.display().to_string(),
    ]);
    let exported = std::fs::read(&out).unwrap();
    assert_eq!(exported.len(), 1 << 30, "grown to the volume's size");
    assert!(exported[..data.len()] == data[..], "the image data");
    assert!(exported[data.len()..].iter().all(|b| *b == 0));
    std::fs::remove_file(&out).unwrap();
    let (status, body) = c.delete(&format!("/volumes/{id}")).await;
    assert_eq!(status, 202, "{body}");
    c.wait_volume(&id, |s| s.is_none()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rbd_and_file_side_by_side_through_the_api() {
    if !clinker_testkit::env::system_tests(
        "the RBD end-to-end test (needs scripts/install-ceph.sh)",
    ) {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let ceph = Ceph::up(scratch.path().join("ceph"));
    // Glance for the create-from-image check (skipped off CI without it).
    let glance = clinker_testkit::glance::glance("the RBD create from image");
    let glance_servers = glance
        .map(|g| format!("\nglance_api_servers = {}", g.url))
        .unwrap_or_default();
    let backends = format!(
        "enabled_backends = file,ceph\n[file]\nvolume_driver = file\nvolume_backend_name = local\n\
         [ceph]\nvolume_driver = cinder.volume.drivers.rbd.RBDDriver\nvolume_backend_name = ceph\nrbd_pool = volumes\n\
         rbd_user = cinder\nrbd_ceph_conf = {}\nrados_connect_timeout = 5\nrados_connection_retries = 0\n",
        ceph.dir.join("ceph.conf").display()
    );
    let mut c = Cluster::start(
        &format!("periodic_interval = 1\nbackend_stats_polling_interval = 3\nservice_down_time = 30\nquota_volumes = -1{glance_servers}"),
        &backends,
    )
    .await;
    for (name, backend) in [("ceph", "ceph"), ("local", "local")] {
        let (status, body) =
            c.post("/types", json!({"volume_type": {"name": name, "extra_specs": {"volume_backend_name": backend}}})).await;
        assert_eq!(status, 200, "{body}");
    }

    if let Some(g) = glance {
        create_from_image_on_rbd(&c, &ceph, g, scratch.path()).await;
    }

    // Types route to their backend.
    let (_, local, _) = c
        .create_volume(json!({"size": 1, "volume_type": "local"}))
        .await;
    let local = wait(&c, &local.unwrap(), "available").await;
    assert_eq!(local["os-vol-host-attr:host"], "testnode@file#local");
    let (_, parent, _) = c
        .create_volume(json!({"size": 1, "volume_type": "ceph", "name": "parent"}))
        .await;
    let parent_id = parent.unwrap();
    let parent = wait(&c, &parent_id, "available").await;
    assert_eq!(parent["status"], "available", "{parent}");
    assert_eq!(parent["os-vol-host-attr:host"], "testnode@ceph#ceph");
    assert!(ceph.images().contains(&format!("volume-{parent_id}")));

    // Data written through librbd (`rbd import`) reads back from a clone.
    let pattern = scratch.path().join("pattern");
    std::fs::write(
        &pattern,
        (0..4u32 << 20)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    ceph.rbd(&["rm", &format!("volumes/volume-{parent_id}")]);
    ceph.rbd(&[
        "import",
        "--no-progress",
        &pattern.display().to_string(),
        &format!("volumes/volume-{parent_id}"),
    ]);
    ceph.rbd(&[
        "resize",
        "--size",
        "1G",
        &format!("volumes/volume-{parent_id}"),
    ]);

    let snap_id = c
        .available_snapshot(json!({"volume_id": parent_id, "name": "s"}))
        .await;
    let (_, from_snap, _) = c
        .create_volume(json!({"size": 2, "snapshot_id": snap_id}))
        .await;
    let from_snap = from_snap.unwrap();
    assert_eq!(
        wait(&c, &from_snap, "available").await["status"],
        "available"
    );
    let (_, clone, _) = c.create_volume(json!({"source_volid": parent_id})).await;
    let clone = clone.unwrap();
    assert_eq!(wait(&c, &clone, "available").await["status"], "available");
    // Every volume made from the parent holds its data; `when` names the
    // check in the export's file name.
    let assert_kept_data = |when: &str| {
        for image in [&from_snap, &clone] {
            let out = scratch.path().join(format!("{when}-{image}"));
            ceph.rbd(&[
                "export",
                "--no-progress",
                &format!("volumes/volume-{image}"),
                &out.display().to_string(),
            ]);
            assert_eq!(
                &std::fs::read(&out).unwrap()[..4 << 20],
                &std::fs::read(&pattern).unwrap()[..],
                "volume {image} lost the parent's data ({when})"
            );
        }
    };
    assert_kept_data("out");

    // Extend.
    c.action_ok(&clone, json!({"os-extend": {"new_size": 3}}))
        .await;
    c.wait_volume_until(&clone, |v| v["size"] == 3).await;
    let info: Value = serde_json::from_str(&ceph.rbd(&[
        "info",
        &format!("volumes/volume-{clone}"),
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(info["size"], 3u64 << 30);

    // The capacity report matches `rbd du` (provisioned GiB).
    let du: Value =
        serde_json::from_str(&ceph.rbd(&["du", "-p", "volumes", "--format", "json"])).unwrap();
    let provisioned_bytes: u64 = du["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["snapshot"].is_null())
        .map(|i| i["provisioned_size"].as_u64().unwrap())
        .sum();
    tokio::time::sleep(Duration::from_secs(4)).await; // the next capability report
    let ceph_pool = pools(&c)
        .await
        .into_iter()
        .find(|p| p["name"] == "testnode@ceph#ceph")
        .unwrap();
    // An exclusive pool (the default) reports what the volume service has
    // placed there (`allocated_capacity_gb`), as Cinder's RBD driver does;
    // it must equal what the cluster says the images provision.
    let caps = &ceph_pool["capabilities"];
    let reported = caps["provisioned_capacity_gb"]
        .as_f64()
        .or_else(|| caps["allocated_capacity_gb"].as_f64())
        .unwrap();
    #[allow(clippy::cast_precision_loss)]
    let expected = provisioned_bytes as f64 / f64::from(1u32 << 30);
    assert!(
        (reported - expected).abs() < 0.01,
        "reported {reported} GiB, rbd du says {expected} GiB"
    );

    // Delete the parent (with its snapshot) while both clones live: not an
    // error; the children keep their data.
    let (status, body) = c
        .delete(&format!("/volumes/{parent_id}?cascade=true"))
        .await;
    assert_eq!(status, 202, "{body}");
    c.wait_volume(&parent_id, |s| s.is_none()).await;
    assert_kept_data("after");
    for id in [&from_snap, &clone, local["id"].as_str().unwrap()] {
        let (status, body) = c.delete(&format!("/volumes/{id}")).await;
        assert_eq!(status, 202, "{body}");
        c.wait_volume(id, |s| s.is_none()).await;
    }
    assert!(
        ceph.images().is_empty(),
        "images left in the pool: {:?}",
        ceph.images()
    );
    c.assert_quota_consistent("admin").await;

    // Ceph stops in the middle of work.
    let (_, pending, _) = c
        .create_volume(json!({"size": 1, "volume_type": "ceph"}))
        .await;
    let pending = pending.unwrap();
    let kept = wait(&c, &pending, "available").await;
    assert_eq!(kept["status"], "available");
    ceph.script("stop");
    let (_, doomed, _) = c
        .create_volume(json!({"size": 1, "volume_type": "ceph"}))
        .await;
    let doomed = doomed.unwrap();
    let (status, _) = c.delete(&format!("/volumes/{pending}")).await;
    assert_eq!(status, 202);
    // Nothing stays creating or deleting: the create fails with a message,
    // the delete fails to error_deleting.
    let failed = c.wait_volume(&doomed, |s| s == Some("error")).await;
    assert_eq!(failed["status"], "error");
    let stuck = c
        .wait_volume(&pending, |s| matches!(s, Some("error_deleting") | None))
        .await;
    assert!(
        stuck.is_null() || stuck["status"] == "error_deleting",
        "{stuck}"
    );
    assert!(
        !c.messages_about(&doomed).await.is_empty(),
        "no user message for the failed create"
    );
    // The backend turns down with a reason, the process stays up and the
    // service visible.
    let ceph_down = [
        ("testnode@ceph", "backend_state", "down"),
        ("testnode@ceph", "state", "up"),
    ];
    c.wait_services(Every::ms(250, 30), &ceph_down).await;
    // Ceph returns: the backend comes back up and works again.
    ceph.script("start");
    c.wait_services(
        Every::ms(500, 60),
        &[("testnode@ceph", "backend_state", "up")],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await; // a fresh capability report
    let (_, again, _) = c
        .create_volume(json!({"size": 1, "volume_type": "ceph"}))
        .await;
    let again = again.unwrap();
    assert_eq!(wait(&c, &again, "available").await["status"], "available");
    // An operator can retry the failed delete once Ceph is back.
    if !stuck.is_null() {
        c.action_ok(&pending, json!({"os-reset_status": {"status": "error"}}))
            .await;
        let (status, body) = c.delete(&format!("/volumes/{pending}")).await;
        assert_eq!(status, 202, "{body}");
        c.wait_volume(&pending, |s| s.is_none()).await;
    }
    for id in [&again, &doomed] {
        c.delete(&format!("/volumes/{id}")).await;
        c.wait_volume(id, |s| s.is_none()).await;
    }
    assert!(ceph.images().is_empty(), "images left: {:?}", ceph.images());
    c.stop().await;
}
