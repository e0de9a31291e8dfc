//! Images on an RBD backend against a real Glance whose store is `rbd` on
//! the same one-node Ceph (`scripts/glance.sh up --store rbd`): a raw
//! image becomes a copy-on-write clone of Glance's own snapshot with no
//! data downloaded; a qcow2 image falls back to the download; a volume
//! uploads back identical (`rbd export -` streamed to Glance); a reimage
//! rewrites the volume in place while its snapshot keeps the old data.
//!
//! Runs with `CLINKER_SYSTEM_TESTS=1` or `CI=true` (a missing Ceph or
//! Glance is then a failure); otherwise it is skipped with a message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use clinker_image::{GlanceClient, GlanceSettings, ImageContext};
use clinker_testkit::ceph::{Ceph, POOL};
use clinker_testkit::glance::{glance_on_rbd, has_qemu_img, qemu_img};
use common::Cluster;
use common::images::{disk_data, image_from_file};
use serde_json::{Value, json};

const MIB: usize = 1 << 20;
const GIB: usize = 1 << 30;
/// Glance's pool on the test cluster.
const IMAGES: &str = "images";

/// The RBD image of volume `id` holds `data` then zeros, 1 GiB in all.
fn assert_volume_holds(ceph: &Ceph, scratch: &Path, id: &str, data: &[u8], what: &str) {
    let content = ceph.export(&format!("{POOL}/volume-{id}"), scratch);
    assert_eq!(content.len(), GIB, "{what}: a 1 GiB volume");
    assert!(content[..data.len()] == *data, "{what}: the image data");
    assert!(
        content[data.len()..].iter().all(|b| *b == 0),
        "{what}: zeros past the image"
    );
}

fn rbd_parent(ceph: &Ceph, id: &str) -> Value {
    ceph.rbd_json(&["info", "--format", "json", &format!("{POOL}/volume-{id}")])["parent"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rbd_volumes_clone_upload_and_reimage_with_a_glance_on_the_same_cluster() {
    let test = "rbd_volumes_clone_upload_and_reimage_with_a_glance_on_the_same_cluster";
    let scratch = tempfile::tempdir().unwrap();
    let Some(ceph) = Ceph::start(test, scratch.path().join("ceph"), &[IMAGES]) else {
        return;
    };
    let Some(rbd_glance) = glance_on_rbd(test, scratch.path().join("glance"), &ceph, IMAGES) else {
        return;
    };
    if !has_qemu_img(test) {
        return;
    }
    let g = &rbd_glance.0;
    let glance = GlanceClient::new(GlanceSettings::with_servers(vec![g.url.clone()])).unwrap();
    let backends = format!(
        "enabled_backends = ceph\n[ceph]\nvolume_driver = cinder.volume.drivers.rbd.RBDDriver\n\
         volume_backend_name = ceph\nrbd_pool = {POOL}\nrbd_user = cinder\nrbd_ceph_conf = {}\n\
         rados_connect_timeout = 5\n",
        ceph.conf().display()
    );
    let c = Cluster::start(
        &format!("glance_api_servers = {}\nquota_volumes = -1\n", g.url),
        &backends,
    )
    .await;
    let work = scratch.path();

    // A raw image Glance keeps in Ceph: the volume is a clone of its
    // snapshot, no byte downloaded, and looks like a downloaded one.
    let data = disk_data(21, 3 * MIB);
    let raw_path = work.join("disk.raw");
    std::fs::write(&raw_path, &data).unwrap();
    let raw = image_from_file(
        &glance,
        "rbd-raw",
        "raw",
        &raw_path,
        json!({"hw_disk_bus": "scsi"}),
    )
    .await;
    let location = raw.direct_url.clone().unwrap();
    assert!(
        location.ends_with(&format!("/{IMAGES}/{}/snap", raw.id)),
        "{location}"
    );
    let (status, id, body) = c
        .create_volume(json!({"size": 1, "imageRef": raw.id}))
        .await;
    assert_eq!(status, 202, "{body}");
    let cloned = id.unwrap();
    let v = c
        .wait_volume(&cloned, |s| s == Some("available") || s == Some("error"))
        .await;
    assert_eq!(v["status"], "available", "{v}");
    assert_eq!(v["bootable"], "true");
    let meta = &v["volume_image_metadata"];
    assert_eq!(meta["image_id"], raw.id.as_str());
    assert_eq!(meta["image_name"], "rbd-raw");
    assert_eq!(meta["checksum"], raw.checksum.as_deref().unwrap());
    assert_eq!(meta["disk_format"], "raw");
    assert_eq!(meta["hw_disk_bus"], "scsi");
    let parent = rbd_parent(&ceph, &cloned);
    assert_eq!(parent["pool"], IMAGES, "{parent}");
    assert_eq!(parent["image"], raw.id.as_str(), "{parent}");
    assert_eq!(parent["snapshot"], "snap", "{parent}");
    assert_eq!(g.data_requests(&raw.id), 0, "a clone downloads nothing");
    assert_volume_holds(&ceph, work, &cloned, &data, "the clone");

    // A qcow2 image cannot be cloned: downloaded and converted.
    let other = disk_data(22, 2 * MIB);
    let other_raw = work.join("other.raw");
    std::fs::write(&other_raw, &other).unwrap();
    let qcow2_path = work.join("other.qcow2");
    qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "qcow2",
        other_raw.to_str().unwrap(),
        qcow2_path.to_str().unwrap(),
    ]);
    let qcow2 = image_from_file(&glance, "rbd-qcow2", "qcow2", &qcow2_path, json!({})).await;
    let downloaded = c
        .available_volume(json!({"size": 1, "imageRef": qcow2.id}))
        .await;
    assert!(rbd_parent(&ceph, &downloaded).is_null(), "not a clone");
    assert_eq!(g.data_requests(&qcow2.id), 1, "downloaded once");
    assert_volume_holds(&ceph, work, &downloaded, &other, "the download");

    // Upload the clone: `rbd export -` streamed to Glance, byte for byte.
    let (status, body) = c
        .action(
            &cloned,
            json!({"os-volume_upload_image": {"image_name": "rbd-up", "disk_format": "raw"}}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let up_id = body["os-volume_upload_image"]["image_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = c.wait_volume(&cloned, |s| s != Some("uploading")).await;
    assert_eq!(v["status"], "available", "{v}");
    let uploaded = glance
        .show_image(&ImageContext::default(), &up_id)
        .await
        .unwrap();
    assert_eq!(uploaded.status, "active");
    assert_eq!(uploaded.size, Some(GIB as u64));
    let mut stream = glance
        .download(&ImageContext::default(), &uploaded)
        .await
        .unwrap();
    let mut offset = 0usize;
    while let Some(chunk) = stream.chunk().await.unwrap() {
        for (i, b) in chunk.iter().enumerate() {
            let want = data.get(offset + i).copied().unwrap_or(0);
            assert_eq!(*b, want, "uploaded byte {}", offset + i);
        }
        offset += chunk.len();
    }
    assert_eq!(offset, GIB, "the whole volume uploaded");

    // Reimage the clone with the qcow2 image after a snapshot: the volume
    // holds the new data, the snapshot (and a volume made from it) the old.
    let snap = c
        .available_snapshot(json!({"volume_id": cloned, "name": "before"}))
        .await;
    let (status, body) = c
        .at("3.68")
        .action(&cloned, json!({"os-reimage": {"image_id": qcow2.id}}))
        .await;
    assert_eq!(status, 202, "{body}");
    let v = c
        .wait_volume_until(&cloned, |v| {
            v["status"] == "error"
                || (v["status"] == "available"
                    && v["volume_image_metadata"]["image_id"] == qcow2.id.as_str())
        })
        .await;
    assert_eq!(v["status"], "available", "{v}");
    assert_volume_holds(&ceph, work, &cloned, &other, "the reimaged volume");
    let from_snap = c
        .available_volume(json!({"size": 1, "snapshot_id": snap}))
        .await;
    assert_volume_holds(&ceph, work, &from_snap, &data, "the snapshot taken before");
    assert!(
        !ceph.images().iter().any(|i| i.ends_with(".reimage")),
        "no temporary image left: {:?}",
        ceph.images()
    );

    // Deleting the clone and what was made from it leaves Glance's image
    // and its protected snapshot as they were.
    for path in [
        format!("/volumes/{from_snap}"),
        format!("/snapshots/{snap}"),
        format!("/volumes/{cloned}"),
        format!("/volumes/{downloaded}"),
    ] {
        let (status, body) = c.delete(&path).await;
        assert_eq!(status, 202, "{path}: {body}");
        c.wait_gone(&path).await;
    }
    assert!(ceph.images().is_empty(), "{:?}", ceph.images());
    let snaps = ceph.rbd_json(&[
        "snap",
        "ls",
        "--format",
        "json",
        &format!("{IMAGES}/{}", raw.id),
    ]);
    assert_eq!(snaps[0]["name"], "snap", "{snaps}");
    assert_eq!(snaps[0]["protected"], "true", "{snaps}");
}
