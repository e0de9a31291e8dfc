//! The inspector on crafted headers, including hostile ones: truncated,
//! huge offsets, overflowing sizes, random corruption. Nothing may panic,
//! and every unsafe construction must be reported.

#![allow(clippy::unwrap_used)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const GIB: u64 = 1 << 30;

fn put(buf: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    if buf.len() < at + bytes.len() {
        buf.resize(at + bytes.len(), 0);
    }
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

fn inspect_bytes(bytes: &[u8]) -> InspectedImage {
    inspect(&mut ImageBytes::head(bytes, bytes.len() as u64)).unwrap()
}

fn qcow2(version: u32, size: u64) -> Vec<u8> {
    let mut b = Vec::new();
    put(&mut b, 0, b"QFI\xfb");
    put(&mut b, 4, &version.to_be_bytes());
    put(&mut b, 20, &16u32.to_be_bytes());
    put(&mut b, 24, &size.to_be_bytes());
    put(&mut b, 100, &104u32.to_be_bytes());
    b.resize(65536, 0);
    b
}

#[test]
fn a_plain_qcow2_is_safe_and_sized_from_its_header() {
    for version in [2, 3] {
        let image = inspect_bytes(&qcow2(version, 5 * GIB));
        assert_eq!(image.format, DetectedFormat::Qcow2);
        assert_eq!(image.virtual_size, 5 * GIB);
        assert!(image.is_safe(), "{:?}", image.safety_issues);
    }
}

#[test]
fn qcow2_backing_and_data_files_and_unknown_features_are_reported() {
    let mut backed = qcow2(3, GIB);
    put(&mut backed, 8, &512u64.to_be_bytes());
    put(&mut backed, 16, &12u32.to_be_bytes());
    put(&mut backed, 512, b"/etc/canary!");
    assert_eq!(
        inspect_bytes(&backed).safety_issues,
        [SafetyIssue::BackingFile(Some("/etc/canary!".into()))]
    );

    let mut far = qcow2(3, GIB);
    put(&mut far, 8, &u64::MAX.to_be_bytes());
    put(&mut far, 16, &u32::MAX.to_be_bytes());
    assert_eq!(
        inspect_bytes(&far).safety_issues,
        [SafetyIssue::BackingFile(None)]
    );

    let mut data_file = qcow2(3, GIB);
    put(&mut data_file, 72, &(1u64 << 2).to_be_bytes());
    assert_eq!(
        inspect_bytes(&data_file).safety_issues,
        [SafetyIssue::DataFile]
    );

    let mut unknown = qcow2(3, GIB);
    put(&mut unknown, 72, &((1u64 << 40) | 1).to_be_bytes());
    assert_eq!(
        inspect_bytes(&unknown).safety_issues,
        [SafetyIssue::UnknownFeatures(1 << 40)]
    );

    let mut encrypted = qcow2(2, GIB);
    put(&mut encrypted, 32, &1u32.to_be_bytes());
    assert_eq!(
        inspect_bytes(&encrypted).safety_issues,
        [SafetyIssue::Encrypted]
    );
}

#[test]
fn odd_qcow2_headers_are_refused_not_trusted() {
    assert_eq!(
        inspect_bytes(&qcow2(1, GIB)).safety_issues,
        [SafetyIssue::UnsupportedVersion(1)]
    );
    let truncated = &qcow2(3, GIB)[..80];
    assert!(matches!(
        inspect_bytes(truncated).safety_issues.as_slice(),
        [SafetyIssue::Malformed(_)]
    ));
    let mut clusters = qcow2(3, GIB);
    put(&mut clusters, 20, &63u32.to_be_bytes());
    assert!(matches!(
        inspect_bytes(&clusters).safety_issues.as_slice(),
        [SafetyIssue::Malformed(_)]
    ));
}

fn descriptor(create_type: &str, extents: &[&str]) -> String {
    let mut text = format!(
        "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"{create_type}\"\n\n# Extent description\n"
    );
    for e in extents {
        text.push_str(e);
        text.push('\n');
    }
    text.push_str(
        "\n# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\nddb.adapterType = \"ide\"\n",
    );
    text
}

fn sparse_vmdk(capacity_sectors: u64, desc: &str) -> Vec<u8> {
    let mut b = Vec::new();
    put(&mut b, 0, b"KDMV");
    put(&mut b, 4, &1u32.to_le_bytes());
    put(&mut b, 12, &capacity_sectors.to_le_bytes());
    put(&mut b, 20, &128u64.to_le_bytes());
    put(&mut b, 28, &1u64.to_le_bytes());
    put(&mut b, 36, &20u64.to_le_bytes());
    put(&mut b, 56, &21u64.to_le_bytes());
    put(&mut b, 512, desc.as_bytes());
    b.resize(512 * 64, 0);
    b
}

#[test]
fn a_monolithic_sparse_vmdk_is_safe() {
    let desc = descriptor("monolithicSparse", &["RW 2097152 SPARSE \"disk.vmdk\""]);
    let image = inspect_bytes(&sparse_vmdk(2_097_152, &desc));
    assert_eq!(image.format, DetectedFormat::Vmdk);
    assert_eq!(image.virtual_size, GIB);
    assert_eq!(image.subformat.as_deref(), Some("monolithicSparse"));
    assert!(image.is_safe(), "{:?}", image.safety_issues);
}

#[test]
fn vmdk_extents_outside_the_file_are_reported() {
    let flat = descriptor("monolithicFlat", &["RW 2048 FLAT \"/etc/canary\" 0"]);
    let issues = inspect_bytes(&sparse_vmdk(2048, &flat)).safety_issues;
    assert!(issues.contains(&SafetyIssue::VmdkCreateType("monolithicFlat".into())));
    assert!(
        issues
            .iter()
            .any(|i| matches!(i, SafetyIssue::VmdkExtent(_))),
        "{issues:?}"
    );

    let pathy = descriptor("monolithicSparse", &["RW 2048 SPARSE \"../../etc/canary\""]);
    assert!(matches!(
        inspect_bytes(&sparse_vmdk(2048, &pathy))
            .safety_issues
            .as_slice(),
        [SafetyIssue::VmdkExtent(_)]
    ));

    let two = descriptor(
        "monolithicSparse",
        &["RW 2048 SPARSE \"a.vmdk\"", "RW 2048 SPARSE \"b.vmdk\""],
    );
    assert!(matches!(
        inspect_bytes(&sparse_vmdk(4096, &two))
            .safety_issues
            .as_slice(),
        [SafetyIssue::VmdkExtent(_)]
    ));

    // Capacity 0 makes qemu open the embedded descriptor's extents.
    let ok = descriptor("monolithicSparse", &["RW 2048 SPARSE \"a.vmdk\""]);
    assert!(matches!(
        inspect_bytes(&sparse_vmdk(0, &ok)).safety_issues.as_slice(),
        [SafetyIssue::VmdkExtent(_)]
    ));

    let junk = format!("{ok}\nrm -rf /\n");
    assert!(matches!(
        inspect_bytes(&sparse_vmdk(2048, &junk))
            .safety_issues
            .as_slice(),
        [SafetyIssue::VmdkDescriptor(_)]
    ));
}

#[test]
fn a_bare_vmdk_descriptor_file_is_always_outside_the_file() {
    let text = descriptor("monolithicFlat", &["RW 2048 FLAT \"/etc/canary\" 0"]);
    let image = inspect_bytes(text.as_bytes());
    assert_eq!(image.format, DetectedFormat::Vmdk);
    assert_eq!(image.virtual_size, 2048 * 512);
    assert!(matches!(
        image.safety_issues.as_slice(),
        [SafetyIssue::VmdkExtent(_)]
    ));
}

#[test]
fn vmdk_descriptor_in_odd_places_is_refused() {
    let ok = descriptor("monolithicSparse", &["RW 2048 SPARSE \"a.vmdk\""]);
    let mut moved = sparse_vmdk(2048, &ok);
    put(&mut moved, 28, &u64::MAX.to_le_bytes());
    assert!(matches!(
        inspect_bytes(&moved).safety_issues.as_slice(),
        [SafetyIssue::Malformed(_)]
    ));
    let mut huge = sparse_vmdk(u64::MAX, &ok);
    put(&mut huge, 36, &u64::MAX.to_le_bytes());
    let issues = inspect_bytes(&huge).safety_issues;
    assert!(
        issues
            .iter()
            .any(|i| matches!(i, SafetyIssue::Malformed(_))),
        "{issues:?}"
    );
    // A stream-optimized image whose footer is not in the bytes given.
    let mut stream = sparse_vmdk(
        2048,
        &descriptor("streamOptimized", &["RW 2048 SPARSE \"a.vmdk\""]),
    );
    put(&mut stream, 56, &u64::MAX.to_le_bytes());
    let len = stream.len() as u64 * 4;
    let issues = inspect(&mut ImageBytes::head(&stream, len))
        .unwrap()
        .safety_issues;
    assert_eq!(issues, [SafetyIssue::Incomplete("VMDK footer")]);
}

#[test]
fn a_stream_optimized_footer_must_repeat_the_header() {
    let desc = descriptor("streamOptimized", &["RW 2048 SPARSE \"a.vmdk\""]);
    let mut image = sparse_vmdk(2048, &desc);
    put(&mut image, 56, &u64::MAX.to_le_bytes());
    let footer_header: Vec<u8> = {
        let mut h = image[..512].to_vec();
        put(&mut h, 56, &21u64.to_le_bytes());
        h
    };
    let mut footer = vec![0u8; 1536];
    put(&mut footer, 12, &3u32.to_le_bytes());
    put(&mut footer, 512, &footer_header);
    let mut with_footer = image.clone();
    with_footer.extend_from_slice(&footer);
    assert!(
        inspect_bytes(&with_footer).is_safe(),
        "{:?}",
        inspect_bytes(&with_footer).safety_issues
    );

    // A footer whose header has capacity 0 or another descriptor.
    let mut evil = footer.clone();
    put(&mut evil, 512 + 12, &0u64.to_le_bytes());
    let mut bad = image.clone();
    bad.extend_from_slice(&evil);
    assert!(!inspect_bytes(&bad).is_safe());
    let mut evil = footer;
    put(&mut evil, 512 + 28, &7u64.to_le_bytes());
    let mut bad = image;
    bad.extend_from_slice(&evil);
    assert!(!inspect_bytes(&bad).is_safe());
}

fn vhd_footer(size: u64, disk_type: u32) -> Vec<u8> {
    let mut f = Vec::new();
    put(&mut f, 0, b"conectix");
    put(&mut f, 40, &size.to_be_bytes());
    put(&mut f, 48, &size.to_be_bytes());
    put(&mut f, 60, &disk_type.to_be_bytes());
    f.resize(512, 0);
    f
}

#[test]
fn vhd_dynamic_fixed_and_differencing() {
    let mut dynamic = vhd_footer(GIB, 3);
    dynamic.resize(4096, 0);
    let image = inspect_bytes(&dynamic);
    assert_eq!(
        (image.format, image.virtual_size),
        (DetectedFormat::Vhd, GIB)
    );
    assert_eq!(image.subformat.as_deref(), Some("dynamic"));
    assert!(image.is_safe());

    let mut fixed = vec![0xabu8; 8192];
    fixed.extend_from_slice(&vhd_footer(8192, 2));
    let image = inspect_bytes(&fixed);
    assert_eq!(image.subformat.as_deref(), Some("fixed"));
    assert_eq!(image.virtual_size, 8192);
    assert!(image.is_safe());
    // Streaming without the tail: just raw bytes.
    assert_eq!(
        inspect(&mut ImageBytes::head(&fixed[..4096], fixed.len() as u64))
            .unwrap()
            .format,
        DetectedFormat::Raw
    );

    let mut differencing = vhd_footer(GIB, 4);
    differencing.resize(4096, 0);
    assert_eq!(
        inspect_bytes(&differencing).safety_issues,
        [SafetyIssue::ParentDisk]
    );
}

const META_AT: usize = 1 << 20;

fn vhdx(size: u64, has_parent: bool) -> Vec<u8> {
    let mut b = Vec::new();
    put(&mut b, 0, b"vhdxfile");
    let rt = 192 * 1024;
    put(&mut b, rt, b"regi");
    put(&mut b, rt + 8, &1u32.to_le_bytes());
    put(&mut b, rt + 16, &super::vhd::METADATA_REGION);
    put(&mut b, rt + 32, &(META_AT as u64).to_le_bytes());
    put(&mut b, rt + 40, &(1u32 << 20).to_le_bytes());
    put(&mut b, META_AT, b"metadata");
    put(&mut b, META_AT + 10, &2u16.to_le_bytes());
    put(&mut b, META_AT + 32, &super::vhd::FILE_PARAMETERS);
    put(&mut b, META_AT + 48, &65536u32.to_le_bytes());
    put(&mut b, META_AT + 64, &super::vhd::VIRTUAL_DISK_SIZE);
    put(&mut b, META_AT + 80, &65544u32.to_le_bytes());
    let flags: u32 = if has_parent { 2 } else { 0 };
    put(&mut b, META_AT + 65536, &(32u32 << 20).to_le_bytes());
    put(&mut b, META_AT + 65536 + 4, &flags.to_le_bytes());
    put(&mut b, META_AT + 65544, &size.to_le_bytes());
    b.resize(META_AT + 2 * 65536, 0);
    b
}

#[test]
fn vhdx_size_and_parent_come_from_its_metadata() {
    let image = inspect_bytes(&vhdx(3 * GIB, false));
    assert_eq!(
        (image.format, image.virtual_size),
        (DetectedFormat::Vhdx, 3 * GIB)
    );
    assert!(image.is_safe(), "{:?}", image.safety_issues);
    assert_eq!(
        inspect_bytes(&vhdx(GIB, true)).safety_issues,
        [SafetyIssue::ParentDisk]
    );
    // Only the first MiB streamed: the metadata is not at hand.
    let full = vhdx(GIB, false);
    let head_only = inspect(&mut ImageBytes::head(
        &full[..HEAD_BYTES],
        full.len() as u64,
    ))
    .unwrap();
    assert_eq!(
        head_only.safety_issues,
        [SafetyIssue::Incomplete("VHDX metadata")]
    );
    let mut many = vhdx(GIB, false);
    put(&mut many, 192 * 1024 + 8, &u32::MAX.to_le_bytes());
    assert!(matches!(
        inspect_bytes(&many).safety_issues.as_slice(),
        [SafetyIssue::Malformed(_)]
    ));
    let mut far = vhdx(GIB, false);
    put(&mut far, 192 * 1024 + 32, &u64::MAX.to_le_bytes());
    assert!(!inspect_bytes(&far).is_safe());
}

#[test]
fn vdi_iso_luks_mbr_and_raw() {
    let mut vdi = vec![0u8; 512];
    put(&mut vdi, 0, b"<<< Oracle VM VirtualBox Disk Image >>>\n");
    put(&mut vdi, 0x40, &0xbeda_107fu32.to_le_bytes());
    put(&mut vdi, 0x4c, &1u32.to_le_bytes());
    put(&mut vdi, 0x170, &GIB.to_le_bytes());
    let image = inspect_bytes(&vdi);
    assert_eq!(
        (image.format, image.virtual_size),
        (DetectedFormat::Vdi, GIB)
    );
    assert!(image.is_safe());

    let mut iso = vec![0u8; 40 * 1024];
    put(&mut iso, 32768, b"\x01CD001\x01");
    assert_eq!(inspect_bytes(&iso).format, DetectedFormat::Iso);
    assert_eq!(inspect_bytes(&iso).virtual_size, 40 * 1024);

    let mut luks = vec![0u8; 4096];
    put(&mut luks, 0, b"LUKS\xba\xbe\x00\x01");
    assert_eq!(inspect_bytes(&luks).format, DetectedFormat::Luks);

    let mut mbr = vec![0u8; 4096];
    put(&mut mbr, 510, &[0x55, 0xaa]);
    assert_eq!(inspect_bytes(&mbr).format, DetectedFormat::Gpt);

    let mut rng = StdRng::seed_from_u64(7);
    let mut raw = vec![0u8; 70_000];
    rng.fill(raw.as_mut_slice());
    raw[..4].copy_from_slice(b"RAW!");
    raw[510] = 0;
    let image = inspect_bytes(&raw);
    assert_eq!(
        (image.format, image.virtual_size),
        (DetectedFormat::Raw, 70_000)
    );
    assert_eq!(inspect_bytes(&[]).format, DetectedFormat::Raw);
}

#[test]
fn check_image_follows_cinders_rules() {
    let qcow = inspect_bytes(&qcow2(3, GIB));
    assert_eq!(check_image("qcow2", &qcow, GIB), Ok(QemuFormat::Qcow2));
    let mismatch = check_image("raw", &qcow, 10 * GIB).unwrap_err();
    assert_eq!(
        mismatch.reason,
        "The image format was claimed to be 'raw' but the image data appears to be in a different format."
    );
    let too_big = check_image("qcow2", &qcow, GIB - 1).unwrap_err();
    assert_eq!(
        too_big.reason,
        "Image virtual size is 1GB and doesn't fit in a volume of size 0GB."
    );
    let mut backed = qcow2(3, GIB);
    put(&mut backed, 8, &512u64.to_be_bytes());
    put(&mut backed, 16, &11u32.to_be_bytes());
    put(&mut backed, 512, b"/etc/canary");
    let refused = check_image("qcow2", &inspect_bytes(&backed), 10 * GIB).unwrap_err();
    assert_eq!(refused.reason, "fmt=qcow2 backed by: /etc/canary");
    let mut data_file = qcow2(3, GIB);
    put(&mut data_file, 72, &4u64.to_be_bytes());
    assert_eq!(
        check_image("qcow2", &inspect_bytes(&data_file), 10 * GIB)
            .unwrap_err()
            .reason,
        "A qcow2 format image is not allowed to have a data file"
    );

    let raw = inspect_bytes(&[0u8; 4096]);
    assert_eq!(check_image("raw", &raw, 4096), Ok(QemuFormat::Raw));
    assert!(check_image("raw", &raw, 4095).is_err());
    assert!(check_image("qcow2", &raw, GIB).is_err());
    assert!(check_image("ploop", &raw, GIB).is_err());
    let mut fixed = vec![0u8; 4096];
    fixed.extend_from_slice(&vhd_footer(4096, 2));
    let fixed = inspect_bytes(&fixed);
    assert_eq!(check_image("vhd", &fixed, GIB), Ok(QemuFormat::Vpc));
    assert_eq!(check_image("raw", &fixed, GIB), Ok(QemuFormat::Raw));
    let mut iso = vec![0u8; 40 * 1024];
    put(&mut iso, 32768, b"\x01CD001\x01");
    assert_eq!(
        check_image("iso", &inspect_bytes(&iso), GIB),
        Ok(QemuFormat::Raw)
    );
}

/// Templates of every format, corrupted at random offsets with random and
/// extreme values and cut at random lengths: the inspector must answer,
/// never panic.
#[test]
fn hostile_bytes_never_panic() {
    let desc = descriptor("streamOptimized", &["RW 2048 SPARSE \"a.vmdk\""]);
    let mut stream = sparse_vmdk(2048, &desc);
    put(&mut stream, 56, &u64::MAX.to_le_bytes());
    stream.extend_from_slice(&[0u8; 1536]);
    let mut vdi = vec![0u8; 512];
    put(&mut vdi, 0x40, &0xbeda_107fu32.to_le_bytes());
    let templates: Vec<Vec<u8>> = vec![
        qcow2(3, GIB),
        qcow2(2, GIB),
        sparse_vmdk(
            2048,
            &descriptor("monolithicSparse", &["RW 2048 SPARSE \"a\""]),
        ),
        stream,
        descriptor("vmfs", &["RW 1 VMFS \"x\""]).into_bytes(),
        vhd_footer(GIB, 3),
        vhdx(GIB, false),
        vdi,
    ];
    let extremes = [
        0u64,
        1,
        u64::from(u32::MAX),
        u64::MAX,
        u64::MAX / 512,
        1 << 63,
    ];
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for template in &templates {
        for round in 0..300 {
            let mut bytes = template.clone();
            for _ in 0..rng.random_range(1..6) {
                let at = if round % 2 == 0 {
                    rng.random_range(0..bytes.len().min(128))
                } else {
                    rng.random_range(0..bytes.len())
                };
                let value = extremes[rng.random_range(0..extremes.len())];
                let width = [1usize, 2, 4, 8][rng.random_range(0..4)];
                let encoded = if rng.random_bool(0.5) {
                    value.to_be_bytes()
                } else {
                    value.to_le_bytes()
                };
                let end = (at + width).min(bytes.len());
                let n = end - at;
                bytes[at..end].copy_from_slice(&encoded[..n]);
            }
            let cut = if rng.random_bool(0.3) {
                rng.random_range(0..=bytes.len())
            } else {
                bytes.len()
            };
            let bytes = &bytes[..cut];
            let claimed_len = if rng.random_bool(0.2) {
                u64::MAX
            } else {
                bytes.len() as u64
            };
            let head_len = bytes.len().min(HEAD_BYTES);
            let image = inspect(&mut ImageBytes::head(&bytes[..head_len], claimed_len)).unwrap();
            let _ = check_image("qcow2", &image, GIB);
            let _ = check_image("raw", &image, GIB);
        }
    }
}
