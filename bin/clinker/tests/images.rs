//! Images end to end: the all-in-one Clinker (file backend) against a real
//! noauth Glance (`scripts/glance.sh`) and real `qemu-img`. Creates from
//! raw and qcow2 images read back byte for byte, a malicious qcow2 ends in
//! `error` with a user message and nothing left behind, an uploaded volume
//! downloads back identical, and the API refuses images as Cinder does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use clinker_image::ImageContext;
use clinker_testkit::glance::{Glance, glance, has_qemu_img, qemu_img, serial};
use common::images::{MIB, assert_file_holds, client, disk_data, download, image_from_file};
use common::{Cluster, FILE_BACKEND};
use serde_json::json;

async fn start(glance: &Glance) -> Cluster {
    Cluster::start(
        &format!("glance_api_servers = {}\n", glance.url),
        FILE_BACKEND,
    )
    .await
}

fn volume_file(c: &Cluster, id: &str) -> std::path::PathBuf {
    c.volumes_dir().join(format!("volume-{id}"))
}

/// The volume file holds `data` then zeros up to its size.
fn assert_volume_holds(c: &Cluster, id: &str, data: &[u8]) {
    assert_file_holds(&volume_file(c, id), data, 1);
}

fn conversion_leftovers(c: &Cluster) -> Vec<String> {
    clinker_testkit::files::names_in(&c.dir.path().join("conversion"))
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn volumes_from_raw_and_qcow2_images_hold_the_image_data() {
    let test = "volumes_from_raw_and_qcow2_images_hold_the_image_data";
    let Some(g) = glance(test) else { return };
    let _serial = serial().lock().await;
    if !has_qemu_img(test) {
        return;
    }
    let glance = client(g);
    let work = tempfile::tempdir().unwrap();
    let data = disk_data(7, 3 * MIB);
    let raw_path = work.path().join("disk.raw");
    std::fs::write(&raw_path, &data).unwrap();
    let qcow2_path = work.path().join("disk.qcow2");
    qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "qcow2",
        raw_path.to_str().unwrap(),
        qcow2_path.to_str().unwrap(),
    ]);
    let raw = image_from_file(
        &glance,
        "e2e-raw",
        "raw",
        &raw_path,
        json!({"hw_disk_bus": "scsi", "min_disk": 1}),
    )
    .await;
    let qcow2 = image_from_file(&glance, "e2e-qcow2", "qcow2", &qcow2_path, json!({})).await;

    let c = start(g).await;
    // By id (imageRef), and by the nova-style URL / image_id spellings.
    let (status, raw_vol, body) = c
        .create_volume(json!({"size": 1, "imageRef": raw.id}))
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, qcow2_vol, body) = c
        .create_volume(json!({"size": 1, "image_id": format!("http://glance/images/{}", qcow2.id)}))
        .await;
    assert_eq!(status, 202, "{body}");
    let (raw_vol, qcow2_vol) = (raw_vol.unwrap(), qcow2_vol.unwrap());

    let v = c.wait_volume(&raw_vol, |s| s == Some("available")).await;
    assert_eq!(v["bootable"], "true");
    let meta = &v["volume_image_metadata"];
    assert_eq!(meta["image_id"], raw.id.as_str());
    assert_eq!(meta["image_name"], "e2e-raw");
    assert_eq!(meta["disk_format"], "raw");
    assert_eq!(meta["container_format"], "bare");
    assert_eq!(meta["min_disk"], "1");
    assert_eq!(meta["size"], (3 * MIB).to_string());
    assert_eq!(meta["checksum"], raw.checksum.clone().unwrap().as_str());
    assert_eq!(meta["hw_disk_bus"], "scsi");
    assert_volume_holds(&c, &raw_vol, &data);

    let v = c.wait_volume(&qcow2_vol, |s| s == Some("available")).await;
    assert_eq!(v["volume_image_metadata"]["disk_format"], "qcow2");
    assert_eq!(v["bootable"], "true");
    assert_volume_holds(&c, &qcow2_vol, &data);

    // os-show_image_metadata agrees with the view.
    let (status, shown) = c
        .action(&raw_vol, json!({"os-show_image_metadata": null}))
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["metadata"]["image_id"], raw.id.as_str());
    assert!(
        conversion_leftovers(&c).is_empty(),
        "{:?}",
        conversion_leftovers(&c)
    );

    // By name, as Cinder looks it up when the reference is not an id.
    let (status, by_name, body) = c
        .create_volume(json!({"size": 1, "imageRef": "e2e-raw"}))
        .await;
    assert_eq!(status, 202, "{body}");
    let by_name = by_name.unwrap();
    c.wait_volume(&by_name, |s| s == Some("available")).await;
    assert_volume_holds(&c, &by_name, &data);

    // os-reimage (3.68) rewrites a volume from another image.
    let other = disk_data(9, 3 * MIB);
    let other_path = work.path().join("other.raw");
    std::fs::write(&other_path, &other).unwrap();
    let other_image = image_from_file(&glance, "e2e-other", "raw", &other_path, json!({})).await;
    let reimage = json!({"os-reimage": {"image_id": other_image.id}});
    let (status, body) = c.at("3.67").action(&raw_vol, reimage.clone()).await;
    assert_ne!(status, 202, "not before 3.68: {body}");
    let (status, body) = c.at("3.68").action(&raw_vol, reimage).await;
    assert_eq!(status, 202, "{body}");
    let v = c
        .wait_volume_until(&raw_vol, |v| {
            v["status"] == "available"
                && v["volume_image_metadata"]["image_id"] == other_image.id.as_str()
        })
        .await;
    assert_eq!(v["volume_image_metadata"]["image_name"], "e2e-other");
    assert!(
        v["volume_image_metadata"].get("hw_disk_bus").is_none(),
        "{v}"
    );
    assert_volume_holds(&c, &raw_vol, &other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_qcow2_image_with_a_backing_file_ends_in_error_and_leaves_nothing() {
    let test = "a_qcow2_image_with_a_backing_file_ends_in_error_and_leaves_nothing";
    let Some(g) = glance(test) else { return };
    let _serial = serial().lock().await;
    if !has_qemu_img(test) {
        return;
    }
    let glance = client(g);
    let work = tempfile::tempdir().unwrap();
    // The canary: a host path the image points at, in a directory that
    // does not exist; nothing may create or open it.
    let canary_dir = work.path().join("canary-dir");
    let canary = canary_dir.join("canary");
    let evil = work.path().join("evil.qcow2");
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-u",
        "-b",
        canary.to_str().unwrap(),
        "-F",
        "raw",
        evil.to_str().unwrap(),
        "1M",
    ]);
    let plain = work.path().join("plain.qcow2");
    qemu_img(&["create", "-f", "qcow2", plain.to_str().unwrap(), "1M"]);
    // Glance 33 checks bare uploads itself; a non-bare container skips
    // that, and Clinker must not rely on it anyway.
    let image = image_from_file(
        &glance,
        "e2e-evil",
        "qcow2",
        &evil,
        json!({"container_format": "ovf"}),
    )
    .await;

    let c = start(g).await;
    let (status, id, body) = c
        .create_volume(json!({"size": 1, "imageRef": image.id}))
        .await;
    assert_eq!(status, 202, "{body}");
    let id = id.unwrap();
    let v = c.wait_volume(&id, |s| s == Some("error")).await;
    assert_eq!(v["bootable"], "false");
    let messages = c.wait_messages(&id, 1).await;
    assert_eq!(
        messages[0]["user_message"],
        "copy image to volume:The image disk format must be the same as the volume format for the volume type you are requesting."
    );
    assert!(
        !volume_file(&c, &id).exists(),
        "the failed volume's file is removed"
    );
    assert!(
        conversion_leftovers(&c).is_empty(),
        "{:?}",
        conversion_leftovers(&c)
    );

    // A raw claim over qcow2 bytes is refused the same way.
    let liar = image_from_file(&glance, "e2e-liar", "raw", &plain, json!({})).await;
    let (_, id, _) = c
        .create_volume(json!({"size": 1, "imageRef": liar.id}))
        .await;
    let id = id.unwrap();
    c.wait_volume(&id, |s| s == Some("error")).await;
    assert!(!volume_file(&c, &id).exists());
    assert!(
        !canary_dir.exists(),
        "something created the canary's directory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_uploaded_volume_downloads_back_identical() {
    let test = "an_uploaded_volume_downloads_back_identical";
    let Some(g) = glance(test) else { return };
    let _serial = serial().lock().await;
    if !has_qemu_img(test) {
        return;
    }
    let glance = client(g);
    let c = start(g).await;
    let id = c.available_volume(json!({"size": 1, "name": "src"})).await;
    let data = disk_data(11, 2 * MIB);
    clinker_testkit::files::write_at(&volume_file(&c, &id), 5 * MIB as u64, &data);
    let expected = std::fs::read(volume_file(&c, &id)).unwrap();

    for (disk_format, version) in [("raw", "3.0"), ("qcow2", "3.1")] {
        let mut args =
            json!({"image_name": format!("up-{disk_format}"), "disk_format": disk_format});
        if version == "3.1" {
            args["visibility"] = json!("private");
            args["protected"] = json!(false);
        }
        let (status, body) = c
            .at(version)
            .action(&id, json!({"os-volume_upload_image": args}))
            .await;
        assert_eq!(status, 202, "{body}");
        let up = &body["os-volume_upload_image"];
        assert_eq!(up["id"], id.as_str());
        assert_eq!(up["status"], "uploading");
        assert_eq!(up["disk_format"], disk_format);
        assert_eq!(up["container_format"], "bare");
        assert_eq!(up["image_name"], format!("up-{disk_format}"));
        assert_eq!(up["size"], 1);
        assert!(up["volume_type"].is_object(), "{up}");
        if version == "3.1" {
            assert_eq!(up["visibility"], "private");
            assert_eq!(up["protected"], false);
        }
        let image_id = up["image_id"].as_str().unwrap().to_owned();
        c.wait_volume(&id, |s| s == Some("available")).await;
        let image = glance
            .show_image(&ImageContext::default(), &image_id)
            .await
            .unwrap();
        assert_eq!(image.status, "active", "{disk_format}");
        let bytes = download(&glance, &image).await;
        let back = if disk_format == "raw" {
            bytes
        } else {
            let work = tempfile::tempdir().unwrap();
            let q = work.path().join("back.qcow2");
            let r = work.path().join("back.raw");
            std::fs::write(&q, &bytes).unwrap();
            qemu_img(&[
                "convert",
                "-f",
                "qcow2",
                "-O",
                "raw",
                q.to_str().unwrap(),
                r.to_str().unwrap(),
            ]);
            std::fs::read(&r).unwrap()
        };
        assert!(back == expected, "{disk_format}: the image is the volume");
    }
    assert!(conversion_leftovers(&c).is_empty());

    // `force` must be a boolean.
    let (status, err) = c
        .action(
            &id,
            json!({"os-volume_upload_image": {"image_name": "x", "force": "maybe"}}),
        )
        .await;
    assert_eq!(status, 400, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_refuses_images_as_cinder_does() {
    let test = "the_api_refuses_images_as_cinder_does";
    let Some(g) = glance(test) else { return };
    let _serial = serial().lock().await;
    let glance = client(g);
    let work = tempfile::tempdir().unwrap();
    let raw_path = work.path().join("small.raw");
    std::fs::write(&raw_path, disk_data(3, MIB)).unwrap();
    let big_min_disk = image_from_file(
        &glance,
        "e2e-min-disk",
        "raw",
        &raw_path,
        json!({"min_disk": 2}),
    )
    .await;
    let queued = glance
        .create_image(
            &ImageContext::default(),
            json!({"name": "e2e-queued", "disk_format": "raw", "container_format": "bare"})
                .as_object()
                .unwrap(),
        )
        .await
        .unwrap();
    let c = start(g).await;
    let before = c.volumes().await.len();

    let missing = "7d9c7bd8-2b1d-4d42-9e23-3a5b8c0e2f11";
    let (status, _, body) = c
        .create_volume(json!({"size": 1, "imageRef": missing}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["badRequest"]["message"],
        "Invalid image identifier or unable to access requested image."
    );
    let (status, _, body) = c
        .create_volume(json!({"size": 1, "imageRef": big_min_disk.id}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["badRequest"]["message"],
        "Invalid input received: Volume size 1GB cannot be smaller than the image minDisk size 2GB."
    );
    let (status, _, body) = c
        .create_volume(json!({"size": 1, "imageRef": queued.id}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["badRequest"]["message"],
        format!("Invalid input received: Image {} is not active.", queued.id)
    );
    // An image and a snapshot together.
    let vol = c.available_volume(json!({"size": 1})).await;
    let snap = c.available_snapshot(json!({"volume_id": vol})).await;
    let (status, _, body) = c
        .create_volume(json!({"size": 2, "imageRef": big_min_disk.id, "snapshot_id": snap}))
        .await;
    assert_eq!(status, 400, "{body}");
    // Nothing was created by the refusals.
    assert_eq!(c.volumes().await.len(), before + 1);
}
