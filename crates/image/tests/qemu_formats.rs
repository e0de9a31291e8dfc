//! The inspector on images made by real `qemu-img` in every format it can
//! write: the format and virtual size must be what `qemu-img info` says,
//! each must pass `check_image` for its own `disk_format` and be refused
//! for `raw`, and converting it back through `QemuImg` (with `prlimit`)
//! must give the original bytes.
//!
//! Skipped off CI without qemu-img; required under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use clinker_exec::HostRunner;
use clinker_image::inspect::{DetectedFormat, HEAD_BYTES, ImageBytes, inspect, inspect_file};
use clinker_image::qemu::{ConvertOptions, QemuImg, QemuImgLimits};
use clinker_image::{QemuFormat, check_image};
use common::{disk_data, has_qemu_img, qemu_img};

const MIB: usize = 1 << 20;

/// qemu-img format and options, Glance disk_format, detected format,
/// subformat.
type Case = (
    &'static str,
    &'static [&'static str],
    &'static str,
    DetectedFormat,
    Option<&'static str>,
);

const FORMATS: &[Case] = &[
    ("qcow2", &[], "qcow2", DetectedFormat::Qcow2, None),
    (
        "qcow2",
        &["-o", "compat=0.10"],
        "qcow2",
        DetectedFormat::Qcow2,
        None,
    ),
    (
        "vmdk",
        &[],
        "vmdk",
        DetectedFormat::Vmdk,
        Some("monolithicSparse"),
    ),
    (
        "vmdk",
        &["-o", "subformat=streamOptimized"],
        "vmdk",
        DetectedFormat::Vmdk,
        Some("streamOptimized"),
    ),
    ("vpc", &[], "vhd", DetectedFormat::Vhd, Some("dynamic")),
    (
        "vpc",
        &["-o", "subformat=fixed"],
        "vhd",
        DetectedFormat::Vhd,
        Some("fixed"),
    ),
    ("vhdx", &[], "vhdx", DetectedFormat::Vhdx, None),
    ("vdi", &[], "vdi", DetectedFormat::Vdi, None),
];

fn virtual_size(path: &Path, format: &str) -> u64 {
    let info: serde_json::Value = serde_json::from_str(&qemu_img(&[
        "info",
        "-f",
        format,
        "--output=json",
        path.to_str().unwrap(),
    ]))
    .unwrap();
    info["virtual-size"].as_u64().unwrap()
}

#[tokio::test]
async fn every_qemu_format_is_recognised_sized_and_converted_back() {
    if !has_qemu_img("every_qemu_format_is_recognised_sized_and_converted_back") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = disk_data(9, 3 * MIB);
    let raw = dir.path().join("source.raw");
    common::write(&raw, &data);
    let qemu = QemuImg::new(Arc::new(HostRunner::new()), QemuImgLimits::default());
    for (i, (qemu_format, options, disk_format, detected, subformat)) in FORMATS.iter().enumerate()
    {
        let image = dir.path().join(format!("image-{i}.{qemu_format}"));
        let mut args = vec!["convert", "-f", "raw", "-O", qemu_format];
        args.extend_from_slice(options);
        args.extend([raw.to_str().unwrap(), image.to_str().unwrap()]);
        qemu_img(&args);

        let inspected = inspect_file(&image).await.unwrap();
        let what = format!("{qemu_format} {options:?}");
        assert_eq!(inspected.format, *detected, "{what}");
        assert_eq!(inspected.subformat.as_deref(), *subformat, "{what}");
        assert!(inspected.is_safe(), "{what}: {:?}", inspected.safety_issues);
        assert_eq!(
            inspected.virtual_size,
            virtual_size(&image, qemu_format),
            "{what}"
        );
        let format = check_image(disk_format, &inspected, 1 << 30).unwrap();
        assert_eq!(format.as_str(), *qemu_format, "{what}");
        if *subformat != Some("fixed") {
            assert!(
                check_image("raw", &inspected, 1 << 30).is_err(),
                "{what} passed as raw"
            );
        }

        // Streaming: the first bytes alone tell a raw claim apart.
        let bytes = std::fs::read(&image).unwrap();
        let head = &bytes[..bytes.len().min(HEAD_BYTES)];
        let streamed = inspect(&mut ImageBytes::head(head, bytes.len() as u64)).unwrap();
        if *subformat != Some("fixed") {
            assert_eq!(streamed.format, *detected, "{what} from its head");
        }

        let back = dir.path().join(format!("back-{i}.raw"));
        qemu.convert(
            &image,
            format,
            &back,
            QemuFormat::Raw,
            ConvertOptions::default(),
        )
        .await
        .unwrap();
        let back = std::fs::read(&back).unwrap();
        assert!(
            back.len() >= data.len(),
            "{what}: {} bytes back",
            back.len()
        );
        assert!(
            back[..data.len()] == data[..],
            "{what}: converted data differs"
        );
        assert!(back[data.len()..].iter().all(|b| *b == 0), "{what}");
        let info = qemu.info(&image, format).await.unwrap();
        assert_eq!(info.virtual_size, inspected.virtual_size, "{what}");
        assert_eq!(info.backing_filename, None);
    }
}
