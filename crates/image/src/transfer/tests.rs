//! What a transfer refuses before it contacts Glance, and the staging
//! directory's housekeeping. The data paths run against a real Glance in
//! `tests/glance.rs`.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use clinker_exec::FakeRunner;
use clinker_types::ErrorKind;

use super::*;
use crate::glance::{GlanceSettings, UploadData};

fn transfer(dir: &Path, conversion_disabled: bool) -> (ImageTransfer, FakeRunner) {
    let glance = GlanceClient::new(GlanceSettings {
        num_retries: 0,
        request_timeout: Some(Duration::from_secs(1)),
        retry_delay: Duration::ZERO,
        // Nothing listens there: these tests must not reach Glance.
        ..GlanceSettings::with_servers(vec!["http://127.0.0.1:9".into()])
    })
    .unwrap();
    let fake = FakeRunner::new();
    let transfer = ImageTransfer::new(
        Arc::new(glance),
        Arc::new(fake.clone()),
        QemuImgLimits::default(),
        TransferSettings {
            conversion_dir: dir.to_path_buf(),
            backend: "lvm".into(),
            conversion_disabled,
            compress_on_upload: true,
            allow_compressed_container: false,
            vmdk_allowed_types: vec!["monolithicSparse".into()],
        },
    );
    (transfer, fake)
}

fn image(status: &str, disk_format: &str, container_format: &str, size: u64) -> ImageMeta {
    ImageMeta::from_json(serde_json::json!({
        "id": "3b1a2f9e-0000-4000-8000-000000000001", "status": status,
        "disk_format": disk_format, "container_format": container_format, "size": size
    }))
    .unwrap()
}

async fn refusal(transfer: &ImageTransfer, image: &ImageMeta, volume_size: u64) -> ImageError {
    transfer
        .fetch_image_to_volume(
            &ImageContext::default(),
            image,
            VolumeTarget::Writer(&mut Vec::new()),
            volume_size,
        )
        .await
        .unwrap_err()
}

#[tokio::test]
async fn images_that_cannot_be_used_are_refused_before_any_download() {
    let dir = tempfile::tempdir().unwrap();
    let (transfer, fake) = transfer(dir.path(), true);
    let id = "3b1a2f9e-0000-4000-8000-000000000001";
    let err = refusal(&transfer, &image("queued", "raw", "bare", 1), GIB).await;
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        err.to_string(),
        format!("Image {id} is unacceptable: status is queued, not active")
    );
    let err = refusal(&transfer, &image("active", "raw", "compressed", 1), GIB).await;
    assert!(
        err.to_string()
            .ends_with("Image compression disallowed, but container_format is compressed."),
        "{err}"
    );
    let err = refusal(&transfer, &image("active", "qcow2", "bare", 1), GIB).await;
    assert!(
        err.to_string().contains("Image conversion is disabled."),
        "{err}"
    );
    let err = refusal(&transfer, &image("active", "raw", "bare", GIB + 1), GIB).await;
    assert!(
        err.to_string()
            .ends_with("Image virtual size is 2GB and doesn't fit in a volume of size 1GB."),
        "{err}"
    );
    // A usable raw image does go to Glance, which is not there.
    let err = refusal(&transfer, &image("active", "raw", "bare", 1), GIB).await;
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(fake.calls().is_empty());
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[tokio::test]
async fn uploads_in_formats_clinker_cannot_write_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (transfer, fake) = transfer(dir.path(), true);
    for (format, container, expected) in [
        (
            "iso",
            "bare",
            "Clinker cannot upload volumes as disk_format iso",
        ),
        (
            "raw",
            "compressed",
            "Image compression upload disallowed, but container_format is compressed",
        ),
        ("qcow2", "bare", "Image conversion is disabled."),
    ] {
        let err = transfer
            .upload_volume_to_image(
                &ImageContext::default(),
                &image("queued", format, container, 0),
                UploadData::File(dir.path().join("volume")),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains(expected), "{format}: {err}");
    }
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn staged_files_go_when_dropped_and_leftovers_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let conversion = dir.path().join("conversion");
    let kept = StagedFile::create(&conversion, "lvm", "image-a")
        .await
        .unwrap();
    let dropped = StagedFile::create(&conversion, "lvm", "image-b")
        .await
        .unwrap();
    let other = StagedFile::create(&conversion, "lvm-2", "image-c")
        .await
        .unwrap();
    let dropped_path = dropped.path().to_path_buf();
    drop(dropped);
    assert!(!dropped_path.exists());
    // A crash: the files stay until the backend starts again.
    std::mem::forget(kept);
    std::mem::forget(other);
    std::fs::write(conversion.join("unrelated"), b"x").unwrap();
    assert_eq!(cleanup_conversion_dir(&conversion, "lvm").await.unwrap(), 1);
    let mut left: Vec<String> = std::fs::read_dir(&conversion)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left.len(), 2);
    assert!(left[0].starts_with("clinker.lvm-2.image-c-"), "{left:?}");
    assert_eq!(left[1], "unrelated");
    assert_eq!(
        cleanup_conversion_dir(&dir.path().join("none"), "lvm")
            .await
            .unwrap(),
        0
    );
}
