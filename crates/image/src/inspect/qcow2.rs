//! qcow2 (`docs/interop/qcow2.txt` in QEMU): a big-endian header whose
//! backing file offset and incompatible feature bits decide whether qemu
//! would open another file (CVE-2024-32498 used both).
//!
//! ```text
//!   0  magic "QFI\xfb"          4  version (2 or 3)
//!   8  backing_file_offset     16  backing_file_size
//!  20  cluster_bits            24  size (virtual, bytes)
//!  32  crypt_method            72  incompatible_features (v3)
//! 100  header_length (v3)
//! ```

use std::io;

use super::{DetectedFormat, ImageRegions, InspectedImage, SafetyIssue, be_u32, be_u64, region};

pub(super) const MAGIC: &[u8] = b"QFI\xfb";

const V2_HEADER_LEN: usize = 72;
const V3_HEADER_LEN: usize = 104;
/// Incompatible feature bit 2: guest data lives in an external file.
const DATA_FILE_BIT: u64 = 1 << 2;
/// Bits 0–4 (dirty, corrupt, external data file, compression type,
/// extended L2) are known; any other bit means qemu would need to
/// understand something this inspector cannot check.
const KNOWN_FEATURES: u64 = 0b1_1111;
/// qemu's own limit on a backing file name.
const MAX_BACKING_NAME: u32 = 1023;

pub(super) fn inspect(src: &mut dyn ImageRegions, head: &[u8]) -> io::Result<InspectedImage> {
    let mut image = InspectedImage::new(DetectedFormat::Qcow2, 0);
    let (Some(version), Some(backing_offset), Some(backing_size), Some(cluster_bits), Some(size)) = (
        be_u32(head, 4),
        be_u64(head, 8),
        be_u32(head, 16),
        be_u32(head, 20),
        be_u64(head, 24),
    ) else {
        image.issue(SafetyIssue::Malformed("truncated qcow2 header".into()));
        return Ok(image);
    };
    image.virtual_size = size;
    if !matches!(version, 2 | 3) {
        image.issue(SafetyIssue::UnsupportedVersion(version));
        return Ok(image);
    }
    let header_len = if version == 2 {
        V2_HEADER_LEN
    } else {
        V3_HEADER_LEN
    };
    if head.len() < header_len {
        image.issue(SafetyIssue::Malformed("truncated qcow2 header".into()));
        return Ok(image);
    }
    if !(9..=21).contains(&cluster_bits) {
        image.issue(SafetyIssue::Malformed(format!(
            "cluster_bits {cluster_bits} outside 9..=21"
        )));
    }
    if be_u32(head, 32).is_some_and(|crypt| crypt != 0) {
        image.issue(SafetyIssue::Encrypted);
    }
    if backing_offset != 0 {
        image.issue(SafetyIssue::BackingFile(backing_name(
            src,
            backing_offset,
            backing_size,
        )?));
    }
    if version == 3 {
        let incompatible = be_u64(head, 72).unwrap_or(u64::MAX);
        if incompatible & DATA_FILE_BIT != 0 {
            image.issue(SafetyIssue::DataFile);
        }
        let unknown = incompatible & !KNOWN_FEATURES;
        if unknown != 0 {
            image.issue(SafetyIssue::UnknownFeatures(unknown));
        }
        if be_u32(head, 100).is_none_or(|len| (len as usize) < V3_HEADER_LEN) {
            image.issue(SafetyIssue::Malformed("header_length below 104".into()));
        }
    }
    Ok(image)
}

/// The backing file's name for the refusal message, when it lies in the
/// bytes at hand.
fn backing_name(src: &mut dyn ImageRegions, offset: u64, size: u32) -> io::Result<Option<String>> {
    if size == 0 || size > MAX_BACKING_NAME {
        return Ok(None);
    }
    Ok(region(src, offset, size as usize)?
        .filter(|bytes| bytes.len() == size as usize)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
}
