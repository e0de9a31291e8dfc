//! Cloning a Glance image's RBD snapshot (Cinder's `clone_image`): only a
//! raw image on this cluster whose snapshot the backend can open is cloned;
//! anything else leaves the download to the manager with nothing made.

use clinker_exec::{FakeRunner, Output};

use super::{PLAIN_INFO, ceph, driver, rbd, volume};
use crate::{ImageLocations, VolumeDriver};

const FSID: &str = "a917357d-39bd-4232-bca2-b6192def3c59";

fn scripted() -> FakeRunner {
    let fake = FakeRunner::new();
    fake.on(
        &ceph("fsid --format json"),
        Output::ok(include_str!("../fixtures/ceph-fsid.json")),
    );
    fake.on(
        &rbd("info --format json images/i1@snap"),
        Output::ok(PLAIN_INFO),
    );
    fake
}

fn image(disk_format: &str, urls: &[&str]) -> ImageLocations {
    ImageLocations {
        image_id: "i1".into(),
        disk_format: Some(disk_format.into()),
        urls: urls.iter().map(|u| (*u).to_owned()).collect(),
    }
}

#[tokio::test]
async fn a_raw_image_on_this_cluster_is_cloned_and_grown() {
    let fake = scripted();
    let d = driver(&fake);
    let v = volume(2);
    let here = format!("rbd://{FSID}/images/i1/snap");
    let cloned = d
        .clone_image(&v, &image("raw", &["file:///var/lib/glance/i1", &here]))
        .await
        .unwrap();
    assert!(cloned.is_some());
    assert_eq!(
        fake.calls(),
        [
            ceph("fsid --format json"),
            rbd("info --format json images/i1@snap"),
            rbd(&format!(
                "clone --object-size 4M images/i1@snap volumes/{}",
                v.name
            )),
            rbd(&format!(
                "resize --no-progress --size 2048M volumes/{}",
                v.name
            )),
        ]
    );
}

#[tokio::test]
async fn other_clusters_formats_and_unreadable_snapshots_are_not_cloned() {
    let other_cluster = "rbd://00000000-0000-4000-8000-000000000000/images/i1/snap";
    let here = format!("rbd://{FSID}/images/i1/snap");
    let missing = format!("rbd://{FSID}/images/gone/snap");
    for (disk_format, url) in [
        ("raw", other_cluster),
        ("qcow2", here.as_str()),
        ("raw", missing.as_str()),
        ("raw", "rbd://only/three/parts"),
    ] {
        let fake = scripted();
        fake.on(
            &rbd("info --format json images/gone@snap"),
            Output::failed(2, include_str!("../fixtures/stderr-info-missing.txt")),
        );
        let d = driver(&fake);
        let cloned = d
            .clone_image(&volume(1), &image(disk_format, &[url]))
            .await
            .unwrap();
        assert!(cloned.is_none(), "{disk_format} {url}");
        assert!(
            !fake.calls().iter().any(|c| c.contains(" clone ")),
            "{disk_format} {url}: nothing made: {:?}",
            fake.calls()
        );
    }
}

#[tokio::test]
async fn a_clone_that_cannot_be_grown_is_removed() {
    let fake = scripted();
    let d = driver(&fake);
    let v = volume(2);
    fake.on(
        &rbd(&format!(
            "resize --no-progress --size 2048M volumes/{}",
            v.name
        )),
        Output::failed(28, "rbd: resize error: (28) No space left on device"),
    );
    let here = format!("rbd://{FSID}/images/i1/snap");
    d.clone_image(&v, &image("raw", &[&here]))
        .await
        .unwrap_err();
    assert_eq!(
        fake.calls().last().unwrap(),
        &rbd(&format!("rm --no-progress volumes/{}", v.name))
    );
}

#[tokio::test]
async fn a_reimage_imports_aside_then_rewrites_the_head_in_place() {
    use tokio::io::AsyncWriteExt;
    let fake = FakeRunner::new();
    let d = driver(&fake);
    let v = volume(1);
    fake.on(
        &rbd(&format!("info --format json volumes/{}", v.name)),
        Output::ok(PLAIN_INFO),
    );
    let mut sink = d.image_overwrite_sink(&v).await.unwrap().unwrap();
    sink.writer().write_all(b"new data").await.unwrap();
    sink.finish().await.unwrap();
    let (vol, temp) = (
        format!("volumes/{}", v.name),
        format!("volumes/{}.reimage", v.name),
    );
    assert_eq!(
        fake.calls(),
        [
            rbd(&format!("info --format json {vol}")),
            rbd(&format!("rm --no-progress {temp}")),
            rbd(&format!("import --no-progress --image-format 2 - {temp}")),
            rbd(&format!("resize --no-progress --size 1024M {temp}")),
            rbd(&format!(
                "resize --no-progress --allow-shrink --size 0M {vol}"
            )),
            rbd(&format!("resize --no-progress --size 1024M {vol}")),
            rbd(&format!("export-diff --no-progress {temp} -")),
            rbd(&format!("import-diff --no-progress - {vol}")),
            rbd(&format!("rm --no-progress {temp}")),
        ],
        "the volume is never removed or renamed: its snapshots stay"
    );
    assert_eq!(fake.commands()[2].stdin.as_deref(), Some(&b"new data"[..]));
}

#[tokio::test]
async fn an_aborted_reimage_removes_only_the_temporary_image() {
    let fake = FakeRunner::new();
    let d = driver(&fake);
    let v = volume(1);
    fake.on(
        &rbd(&format!("info --format json volumes/{}", v.name)),
        Output::ok(PLAIN_INFO),
    );
    let sink = d.image_overwrite_sink(&v).await.unwrap().unwrap();
    sink.abort().await;
    let temp = format!("volumes/{}.reimage", v.name);
    let calls = fake.calls();
    assert_eq!(
        calls.last().unwrap(),
        &rbd(&format!("rm --no-progress {temp}"))
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.contains(" resize ") || c.contains("diff")),
        "{calls:?}"
    );
}

#[tokio::test]
async fn an_upload_streams_rbd_export_of_the_whole_volume() {
    use tokio::io::AsyncReadExt;
    let fake = FakeRunner::new();
    let d = driver(&fake);
    let v = volume(1);
    fake.on(
        &rbd(&format!("info --format json volumes/{}", v.name)),
        Output::ok(PLAIN_INFO),
    );
    fake.on(
        &rbd(&format!("export --no-progress volumes/{} -", v.name)),
        Output::ok("volume bytes"),
    );
    let mut source = d.image_source(&v).await.unwrap().unwrap();
    assert_eq!(source.length, 1 << 30, "the size rbd info reports");
    let mut read = String::new();
    source.reader.read_to_string(&mut read).await.unwrap();
    assert_eq!(read, "volume bytes");
    drop(source.reader);
    source.finish.await.unwrap();

    let gone = volume(1);
    fake.on(
        &rbd(&format!("info --format json volumes/{}", gone.name)),
        Output::failed(2, include_str!("../fixtures/stderr-info-missing.txt")),
    );
    assert!(matches!(
        d.image_source(&gone).await.unwrap_err(),
        crate::DriverError::NotFound(_)
    ));
}
