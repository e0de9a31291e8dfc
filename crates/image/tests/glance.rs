//! The image data path against a real Glance 33 (noauth, `file` store,
//! started by `scripts/glance.sh`) and real `qemu-img`: upload, show,
//! verified download, conversion, upload-to-image, corruption detection,
//! and malicious images refused before any tool opens them.
//!
//! Skipped off CI when Glance or qemu-img is missing; required under
//! `CI=true`. About 30 s (most of it starting Glance once).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clinker_exec::CommandRunner;
use clinker_image::glance::UploadData;
use clinker_image::qemu::QemuImgLimits;
use clinker_image::{
    FetchedImage, GlanceClient, GlanceSettings, ImageContext, ImageError, ImageMeta, ImageTransfer,
    QemuFormat, TransferSettings, VolumeTarget,
};
use clinker_types::ErrorKind;
use common::{RecordingRunner, disk_data, glance, has_qemu_img, qemu_img, serial, sparse_volume};
use serde_json::{Map, json};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn settings(servers: Vec<String>) -> GlanceSettings {
    GlanceSettings {
        num_retries: 2,
        request_timeout: Some(Duration::from_secs(60)),
        retry_delay: Duration::from_millis(50),
        ..GlanceSettings::with_servers(servers)
    }
}

struct Fixture {
    client: Arc<GlanceClient>,
    transfer: ImageTransfer,
    runner: Arc<RecordingRunner>,
    work: tempfile::TempDir,
    glance: &'static common::Glance,
}

impl Fixture {
    fn new(test: &str) -> Option<Self> {
        if !has_qemu_img(test) {
            return None;
        }
        let glance = glance(test)?;
        let client = Arc::new(GlanceClient::new(settings(vec![glance.url.clone()])).unwrap());
        let runner = common::runner();
        let work = tempfile::tempdir().unwrap();
        let transfer = ImageTransfer::new(
            client.clone(),
            runner.clone(),
            QemuImgLimits::default(),
            TransferSettings {
                conversion_dir: work.path().join("conversion"),
                backend: "file".into(),
                conversion_disabled: false,
                compress_on_upload: true,
                allow_compressed_container: false,
                vmdk_allowed_types: vec!["streamOptimized".into(), "monolithicSparse".into()],
            },
        );
        Some(Self {
            client,
            transfer,
            runner,
            work,
            glance,
        })
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.work.path().join(name)
    }

    fn staged_leftovers(&self) -> Vec<String> {
        common::leftovers(&self.path("conversion"))
    }

    /// A new image with `disk_format`, `container_format` and properties,
    /// holding the bytes of `file`.
    async fn image_from_file(&self, file: &Path, disk_format: &str, container: &str) -> ImageMeta {
        let ctx = ImageContext::default();
        let mut fields = Map::new();
        fields.insert("name".into(), json!(format!("test-{disk_format}")));
        fields.insert("disk_format".into(), json!(disk_format));
        fields.insert("container_format".into(), json!(container));
        fields.insert("min_disk".into(), json!(1));
        fields.insert("hw_disk_bus".into(), json!("scsi"));
        fields.insert("clinker_test_prop".into(), json!("x y z"));
        let image = self.client.create_image(&ctx, &fields).await.unwrap();
        assert_eq!(image.status, "queued");
        self.client
            .upload(&ctx, &image.id, UploadData::File(file.to_path_buf()))
            .await
            .unwrap();
        self.client.show_image(&ctx, &image.id).await.unwrap()
    }

    /// A new sparse volume file of 16 MiB, and `image` fetched into it for a
    /// volume of `volume_size` bytes.
    async fn fetch_into_new_volume(
        &self,
        image: &ImageMeta,
        volume_size: u64,
    ) -> (std::path::PathBuf, Result<FetchedImage, ImageError>) {
        let volume = self.path(&format!("volume-{}", image.id));
        sparse_volume(&volume, 16 * MIB);
        let fetched = self
            .transfer
            .fetch_image_to_volume(
                &ImageContext::default(),
                image,
                VolumeTarget::Path {
                    path: &volume,
                    reads_as_zero: true,
                },
                volume_size,
            )
            .await;
        (volume, fetched)
    }

    async fn delete(&self, image: &ImageMeta) {
        self.client
            .delete_image(&ImageContext::default(), &image.id)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_raw_image_streams_into_a_volume_file_and_a_writer() {
    let Some(fx) = Fixture::new("a_raw_image_streams_into_a_volume_file_and_a_writer") else {
        return;
    };
    let _serial = serial().lock().await;
    let data = disk_data(1, 6 * MIB as usize + 12_345);
    let source = fx.path("source.raw");
    common::write(&source, &data);
    let image = fx.image_from_file(&source, "raw", "bare").await;
    assert_eq!(image.status, "active");
    assert_eq!(image.size, Some(data.len() as u64));
    assert_eq!(image.os_hash_algo.as_deref(), Some("sha512"));
    assert!(image.checksum.is_some());
    assert_eq!(image.properties["hw_disk_bus"], "scsi");
    assert_eq!(image.properties["clinker_test_prop"], "x y z");
    assert!(
        image
            .direct_url
            .as_deref()
            .is_some_and(|u| u.starts_with("file://"))
    );

    let ctx = ImageContext::default();
    let (volume, fetched) = fx.fetch_into_new_volume(&image, 16 * MIB).await;
    let fetched = fetched.unwrap();
    assert_eq!(
        (fetched.format, fetched.converted),
        (QemuFormat::Raw, false)
    );
    assert_eq!(fetched.downloaded, data.len() as u64);
    let written = std::fs::read(&volume).unwrap();
    assert_eq!(written.len() as u64, 16 * MIB, "the volume keeps its size");
    assert!(
        written[..data.len()] == data[..],
        "volume differs from the image"
    );
    assert!(written[data.len()..].iter().all(|b| *b == 0));
    // The zero run in the middle stayed a hole.
    let allocated = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&volume).unwrap().blocks() * 512
    };
    assert!(allocated < data.len() as u64, "{allocated} bytes allocated");

    let mut sink: Vec<u8> = Vec::new();
    fx.transfer
        .fetch_image_to_volume(&ctx, &image, VolumeTarget::Writer(&mut sink), 16 * MIB)
        .await
        .unwrap();
    assert!(sink == data, "writer got other bytes");
    assert!(!fx.runner.ran_qemu_img(), "{:?}", fx.runner.calls());

    // Too small a volume is refused before a byte moves.
    let err = fx
        .transfer
        .fetch_image_to_volume(&ctx, &image, VolumeTarget::Writer(&mut Vec::new()), 4 * MIB)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    fx.delete(&image).await;
    let err = fx.client.show_image(&ctx, &image.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn a_qcow2_image_is_converted_into_the_volume() {
    let Some(fx) = Fixture::new("a_qcow2_image_is_converted_into_the_volume") else {
        return;
    };
    let _serial = serial().lock().await;
    let data = disk_data(2, 5 * MIB as usize);
    let raw = fx.path("source.raw");
    common::write(&raw, &data);
    let qcow2 = fx.path("source.qcow2");
    qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "qcow2",
        raw.to_str().unwrap(),
        qcow2.to_str().unwrap(),
    ]);
    let image = fx.image_from_file(&qcow2, "qcow2", "bare").await;
    assert_eq!(image.virtual_size, Some(data.len() as u64));

    let ctx = ImageContext::default();
    let (volume, fetched) = fx.fetch_into_new_volume(&image, 8 * MIB).await;
    let fetched = fetched.unwrap();
    assert_eq!(
        (fetched.format, fetched.converted),
        (QemuFormat::Qcow2, true)
    );
    assert_eq!(fetched.virtual_size, data.len() as u64);
    let written = std::fs::read(&volume).unwrap();
    assert_eq!(written.len() as u64, 16 * MIB);
    assert!(
        written[..data.len()] == data[..],
        "converted volume differs from the source"
    );
    assert!(written[data.len()..].iter().all(|b| *b == 0));
    let calls = fx.runner.calls();
    assert!(
        calls.iter().any(|c| c.starts_with(
            "prlimit --cpu=60 --as=1073741824 -- qemu-img info -f qcow2 --output=json"
        )),
        "{calls:?}"
    );
    assert!(
        calls.iter().any(
            |c| c.contains("qemu-img convert -f qcow2 -O raw -t writeback -n --target-is-zero")
        ),
        "{calls:?}"
    );

    // A driver that takes data on a process's stdin (as `rbd import -`).
    let imported = fx.path("imported.raw");
    let mut child = fx
        .runner
        .spawn_piped(&clinker_exec::Command::new("dd").args([
            "bs=1M".to_owned(),
            "status=none".to_owned(),
            format!("of={}", imported.display()),
        ]))
        .await
        .unwrap();
    fx.transfer
        .fetch_image_to_volume(&ctx, &image, VolumeTarget::Writer(child.stdin()), 8 * MIB)
        .await
        .unwrap();
    child.finish_checked().await.unwrap();
    assert!(
        std::fs::read(&imported).unwrap() == data,
        "the process got other bytes"
    );
    assert!(
        fx.staged_leftovers().is_empty(),
        "{:?}",
        fx.staged_leftovers()
    );
    fx.delete(&image).await;
}

#[tokio::test]
async fn a_volume_uploads_as_raw_and_as_qcow2_and_comes_back_identical() {
    let Some(fx) = Fixture::new("a_volume_uploads_as_raw_and_as_qcow2_and_comes_back_identical")
    else {
        return;
    };
    let _serial = serial().lock().await;
    let data = disk_data(3, 4 * MIB as usize);
    let volume = fx.path("volume-up");
    common::write(&volume, &data);
    let ctx = ImageContext::default();
    for (disk_format, from_reader) in [
        ("raw", false),
        ("raw", true),
        ("qcow2", false),
        ("qcow2", true),
    ] {
        let mut fields = Map::new();
        fields.insert("name".into(), json!(format!("upload-{disk_format}")));
        fields.insert("disk_format".into(), json!(disk_format));
        fields.insert("container_format".into(), json!("bare"));
        let image = fx.client.create_image(&ctx, &fields).await.unwrap();
        let source = if from_reader {
            UploadData::Reader {
                reader: Box::new(tokio::fs::File::open(&volume).await.unwrap()),
                length: data.len() as u64,
            }
        } else {
            UploadData::File(volume.clone())
        };
        let uploaded = fx
            .transfer
            .upload_volume_to_image(&ctx, &image, source)
            .await
            .unwrap();
        assert_eq!(uploaded.converted, disk_format == "qcow2");
        let image = fx.client.show_image(&ctx, &image.id).await.unwrap();
        assert_eq!(image.status, "active");
        let mut back: Vec<u8> = Vec::new();
        fx.transfer
            .fetch_image_to_volume(&ctx, &image, VolumeTarget::Writer(&mut back), 4 * MIB)
            .await
            .unwrap();
        assert!(back == data, "{disk_format} round trip differs");
        fx.delete(&image).await;
    }
    assert!(
        fx.staged_leftovers().is_empty(),
        "{:?}",
        fx.staged_leftovers()
    );
}

#[tokio::test]
async fn corrupt_data_in_the_store_is_detected() {
    let Some(fx) = Fixture::new("corrupt_data_in_the_store_is_detected") else {
        return;
    };
    let _serial = serial().lock().await;
    let mut data = disk_data(4, 3 * MIB as usize);
    let source = fx.path("source.raw");
    common::write(&source, &data);
    let image = fx.image_from_file(&source, "raw", "bare").await;
    // Glance serves whatever its store holds: flip one byte of it.
    let stored = fx.glance.stored_file(&image.id);
    data[MIB as usize] ^= 0xff;
    common::write(&stored, &data);

    let ctx = ImageContext::default();
    let mut stream = fx.client.download(&ctx, &image).await.unwrap();
    let mut received = 0;
    let err = loop {
        match stream.chunk().await {
            Ok(Some(chunk)) => received += chunk.len(),
            Ok(None) => panic!("corruption not detected"),
            Err(e) => break e,
        }
    };
    assert_eq!(received, data.len(), "the error comes after the last byte");
    assert!(
        matches!(&err, ImageError::DownloadFailed { transient: false, reason, .. } if reason.starts_with("Corrupt image download. Hash was ")),
        "{err}"
    );
    let err = fx
        .transfer
        .fetch_image_to_volume(&ctx, &image, VolumeTarget::Writer(&mut Vec::new()), 4 * MIB)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Corrupt image download"), "{err}");
    fx.delete(&image).await;
}

/// Each hostile image made with real qemu-img is refused with Cinder's
/// reason before qemu-img (or anything else) opens it, nothing reaches
/// the volume, no staged file stays, and the canary path is never made.
#[tokio::test]
async fn malicious_images_are_refused_before_any_tool_sees_them() {
    let Some(fx) = Fixture::new("malicious_images_are_refused_before_any_tool_sees_them") else {
        return;
    };
    let _serial = serial().lock().await;
    let canary_dir = fx.path("canary-dir");
    let canary = canary_dir.join("canary");
    let canary_text = canary.to_str().unwrap().to_owned();
    let p = |name: &str| fx.path(name).to_str().unwrap().to_owned();

    // qcow2 whose backing file is the canary (never created: -u).
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-u",
        "-b",
        &canary_text,
        "-F",
        "raw",
        &p("backed.qcow2"),
        "1M",
    ]);
    // qcow2 with an external data file (made, then removed).
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-o",
        &format!("data_file={}", p("data.bin")),
        &p("datafile.qcow2"),
        "1M",
    ]);
    std::fs::remove_file(fx.path("data.bin")).unwrap();
    // A VMDK descriptor whose flat extent is the canary.
    qemu_img(&[
        "create",
        "-f",
        "vmdk",
        "-o",
        "subformat=monolithicFlat",
        &p("flat.vmdk"),
        "1M",
    ]);
    let descriptor = std::fs::read_to_string(fx.path("flat.vmdk")).unwrap();
    let evil = descriptor
        .lines()
        .map(|l| {
            if l.starts_with("RW ") {
                format!("RW 2048 FLAT \"{canary_text}\" 0")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    common::write(&fx.path("flat.vmdk"), evil.as_bytes());
    // A clean qcow2 claimed to be raw, and one too big for the volume.
    qemu_img(&["create", "-f", "qcow2", &p("plain.qcow2"), "1M"]);
    qemu_img(&["create", "-f", "qcow2", &p("big.qcow2"), "2G"]);

    // Glance checks bare uploads itself; a non-bare container skips that,
    // and Clinker must not rely on it anyway.
    let cases = [
        ("backed.qcow2", "qcow2", "ovf", format!("fmt=qcow2 backed by: {canary_text}"), 16 * MIB),
        ("datafile.qcow2", "qcow2", "ovf", "A qcow2 format image is not allowed to have a data file".to_owned(), 16 * MIB),
        ("flat.vmdk", "vmdk", "ovf", "Image/Volume failed safety check".to_owned(), 16 * MIB),
        ("plain.qcow2", "raw", "bare", "The image format was claimed to be 'raw' but the image data appears to be in a different format.".to_owned(), 16 * MIB),
        ("big.qcow2", "qcow2", "bare", "Image virtual size is 2GB and doesn't fit in a volume of size 1GB.".to_owned(), GIB),
    ];
    for (file, disk_format, container, reason, volume_size) in cases {
        let image = fx
            .image_from_file(&fx.path(file), disk_format, container)
            .await;
        let (volume, fetched) = fx.fetch_into_new_volume(&image, volume_size).await;
        let err = fetched.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{file}: {err}");
        assert_eq!(
            err.to_string(),
            format!("Image {} is unacceptable: {reason}", image.id),
            "{file}"
        );
        assert!(!fx.runner.ran_qemu_img(), "{file}: {:?}", fx.runner.calls());
        assert!(
            common::is_all_zero(&volume),
            "{file}: data reached the volume"
        );
        assert!(
            fx.staged_leftovers().is_empty(),
            "{file}: {:?}",
            fx.staged_leftovers()
        );
        fx.delete(&image).await;
    }
    assert!(
        !canary_dir.exists(),
        "something created the canary's directory"
    );
}

#[tokio::test]
async fn a_dead_server_is_skipped_for_the_next() {
    let Some(fx) = Fixture::new("a_dead_server_is_skipped_for_the_next") else {
        return;
    };
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let client = GlanceClient::new(settings(vec![dead, fx.glance.url.clone()])).unwrap();
    let ctx = ImageContext::default();
    for _ in 0..2 {
        let err = client
            .show_image(&ctx, "00000000-0000-0000-0000-000000000000")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    }
    let unreachable = GlanceClient::new(GlanceSettings {
        num_retries: 1,
        ..settings(vec!["http://127.0.0.1:9".into()])
    })
    .unwrap();
    let err = unreachable
        .show_image(&ctx, "00000000-0000-0000-0000-000000000000")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}
