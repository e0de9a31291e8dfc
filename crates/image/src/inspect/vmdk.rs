//! VMDK: a little-endian "hosted sparse extent" header followed by a text
//! descriptor, or a bare text descriptor file.
//!
//! A descriptor lists extents by file name; qemu opens each one. Only the
//! single-file variants (`monolithicSparse`, `streamOptimized`) keep the
//! data inside the image, and only when the header's capacity is non-zero:
//! with capacity 0 qemu treats the embedded descriptor as a descriptor file
//! and follows its extents. Anything else is refused.
//!
//! ```text
//!   0  magic "KDMV"      4  version (1..=3)    12  capacity (sectors)
//!  28  descriptor offset (sectors)             36  descriptor size (sectors)
//!  56  grain directory offset (u64::MAX: read the footer at the end)
//! ```

use std::io;

use super::{DetectedFormat, ImageRegions, InspectedImage, SafetyIssue, le_u32, le_u64, region};

pub(super) const SPARSE_MAGIC: &[u8] = b"KDMV";

const SECTOR: u64 = 512;
/// qemu's limit on an embedded descriptor.
const DESCRIPTOR_MAX: usize = (1 << 20) - 1;
/// The grain directory is in the footer (stream-optimized images).
const GD_AT_END: u64 = u64::MAX;
const FOOTER_LEN: u64 = 1536;
const MARKER_EOS: u32 = 0;
const MARKER_FOOTER: u32 = 3;
/// The single-file create types (lowercase).
const SINGLE_FILE_TYPES: &[&str] = &["monolithicsparse", "streamoptimized"];

/// The parts of a descriptor the checks need.
#[derive(Debug, Default)]
struct Descriptor {
    create_type: Option<String>,
    extents: Vec<String>,
    unknown_lines: Vec<String>,
}

fn excerpt(line: &str) -> String {
    line.chars().take(64).collect()
}

fn parse_descriptor(bytes: &[u8]) -> Result<Descriptor, SafetyIssue> {
    let text = bytes.split(|b| *b == 0).next().unwrap_or_default();
    let Ok(text) = std::str::from_utf8(text) else {
        return Err(SafetyIssue::VmdkDescriptor("descriptor is not text".into()));
    };
    if !text.is_ascii() {
        return Err(SafetyIssue::VmdkDescriptor(
            "descriptor is not ASCII".into(),
        ));
    }
    let mut descriptor = Descriptor::default();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with("ddb") {
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or_default();
        if ["rw", "rdonly", "noaccess"].contains(&first.to_ascii_lowercase().as_str()) {
            descriptor.extents.push(line.to_owned());
        } else if let Some((key, value)) = line.split_once('=')
            && !key.trim().contains(' ')
        {
            if key.trim().eq_ignore_ascii_case("createType") {
                descriptor.create_type = Some(value.trim().trim_matches('"').to_owned());
            }
        } else {
            descriptor.unknown_lines.push(excerpt(line));
        }
    }
    Ok(descriptor)
}

/// Whether `head` looks like a bare VMDK descriptor file (text naming a
/// create type), which qemu opens with `-f vmdk`.
pub(super) fn is_descriptor_text(head: &[u8]) -> bool {
    let text = head.split(|b| *b == 0).next().unwrap_or_default();
    if text.is_empty()
        || !text
            .iter()
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        return false;
    }
    let text = String::from_utf8_lossy(text).to_ascii_lowercase();
    text.starts_with("# disk descriptorfile")
        || text
            .lines()
            .any(|l| l.trim_start().starts_with("createtype"))
}

/// Sectors of an extent line `ACCESS SECTORS TYPE "FILE" [OFFSET]`.
fn extent_sectors(line: &str) -> Option<u64> {
    line.split_whitespace().nth(1)?.parse().ok()
}

pub(super) fn inspect_descriptor_file(
    src: &mut dyn ImageRegions,
    head: &[u8],
) -> io::Result<InspectedImage> {
    let mut image = InspectedImage::new(DetectedFormat::Vmdk, 0);
    let bytes = region(src, 0, DESCRIPTOR_MAX)?.unwrap_or_else(|| head.to_vec());
    match parse_descriptor(&bytes) {
        Err(issue) => image.issue(issue),
        Ok(descriptor) => {
            image.subformat.clone_from(&descriptor.create_type);
            image.virtual_size = descriptor
                .extents
                .iter()
                .filter_map(|l| extent_sectors(l))
                .fold(0u64, |sum, s| sum.saturating_add(s.saturating_mul(SECTOR)));
            // Every extent of a descriptor file is another file.
            for extent in &descriptor.extents {
                image.issue(SafetyIssue::VmdkExtent(excerpt(extent)));
            }
            if descriptor.extents.is_empty() {
                image.issue(SafetyIssue::VmdkCreateType(
                    descriptor.create_type.unwrap_or_default(),
                ));
            }
        }
    }
    Ok(image)
}

/// The fields of a sparse header the checks compare.
#[derive(Debug, PartialEq, Eq)]
struct SparseHeader {
    version: u32,
    capacity: u64,
    desc_offset: u64,
    desc_size: u64,
    gd_offset: u64,
}

fn sparse_header(b: &[u8]) -> Option<SparseHeader> {
    if !b.starts_with(SPARSE_MAGIC) {
        return None;
    }
    Some(SparseHeader {
        version: le_u32(b, 4)?,
        capacity: le_u64(b, 12)?,
        desc_offset: le_u64(b, 28)?,
        desc_size: le_u64(b, 36)?,
        gd_offset: le_u64(b, 56)?,
    })
}

pub(super) fn inspect_sparse(
    src: &mut dyn ImageRegions,
    head: &[u8],
) -> io::Result<InspectedImage> {
    let mut image = InspectedImage::new(DetectedFormat::Vmdk, 0);
    let Some(header) = sparse_header(head) else {
        image.issue(SafetyIssue::Malformed("truncated VMDK header".into()));
        return Ok(image);
    };
    if !(1..=3).contains(&header.version) {
        image.issue(SafetyIssue::UnsupportedVersion(header.version));
        return Ok(image);
    }
    let mut capacity = header.capacity;
    if header.gd_offset == GD_AT_END {
        match footer_header(src)? {
            Err(issue) => image.issue(issue),
            Ok(footer) => {
                if (footer.version, footer.desc_offset, footer.desc_size)
                    != (header.version, header.desc_offset, header.desc_size)
                {
                    image.issue(SafetyIssue::Malformed(
                        "VMDK footer names another descriptor than the header".into(),
                    ));
                }
                if footer.gd_offset == GD_AT_END {
                    image.issue(SafetyIssue::Malformed(
                        "VMDK footer points at another footer".into(),
                    ));
                }
                // qemu takes the footer's header over the first one.
                capacity = capacity.max(footer.capacity);
                if footer.capacity == 0 {
                    capacity = 0;
                }
            }
        }
    }
    match capacity.checked_mul(SECTOR) {
        Some(size) => image.virtual_size = size,
        None => image.issue(SafetyIssue::Malformed("VMDK capacity overflows".into())),
    }
    if capacity == 0 {
        // qemu would then open the embedded descriptor as a descriptor file.
        image.issue(SafetyIssue::VmdkExtent(
            "capacity 0: the descriptor's extents would be opened".into(),
        ));
    }
    // qemu expects the embedded descriptor right after the header.
    if header.desc_offset != 1 || header.desc_size == 0 {
        image.issue(SafetyIssue::Malformed("wrong descriptor location".into()));
        return Ok(image);
    }
    let desc_len = usize::try_from(header.desc_size.saturating_mul(SECTOR))
        .unwrap_or(usize::MAX)
        .min(DESCRIPTOR_MAX);
    let Some(bytes) = region(src, SECTOR, desc_len)? else {
        image.issue(SafetyIssue::Incomplete("VMDK descriptor"));
        return Ok(image);
    };
    let descriptor = match parse_descriptor(&bytes) {
        Ok(d) => d,
        Err(issue) => {
            image.issue(issue);
            return Ok(image);
        }
    };
    image.subformat.clone_from(&descriptor.create_type);
    let create_type = descriptor.create_type.unwrap_or_default();
    if !SINGLE_FILE_TYPES.contains(&create_type.to_ascii_lowercase().as_str()) {
        image.issue(SafetyIssue::VmdkCreateType(create_type));
    }
    for line in descriptor.unknown_lines {
        image.issue(SafetyIssue::VmdkDescriptor(line));
    }
    match descriptor.extents.as_slice() {
        [] => image.issue(SafetyIssue::VmdkExtent("no extents".into())),
        [extent] => check_sparse_extent(&mut image, extent),
        [_, more @ ..] => {
            for extent in more {
                image.issue(SafetyIssue::VmdkExtent(excerpt(extent)));
            }
        }
    }
    Ok(image)
}

/// The one extent of a single-file VMDK must be a sparse extent named by a
/// plain file name (the image itself).
fn check_sparse_extent(image: &mut InspectedImage, extent: &str) {
    let mut tokens = extent.split_whitespace();
    let kind = tokens.nth(2).unwrap_or_default();
    let name = extent.split('"').nth(1).unwrap_or_default();
    if !kind.eq_ignore_ascii_case("SPARSE") || name.contains(['/', '\\']) {
        image.issue(SafetyIssue::VmdkExtent(excerpt(extent)));
    }
}

/// The header copy in a stream-optimized image's footer, after checking
/// the footer and end-of-stream markers around it.
fn footer_header(src: &mut dyn ImageRegions) -> io::Result<Result<SparseHeader, SafetyIssue>> {
    let total = src.total_len();
    if total < FOOTER_LEN + SECTOR {
        return Ok(Err(SafetyIssue::Malformed(
            "VMDK too short for its footer".into(),
        )));
    }
    let Some(tail) = region(src, total - FOOTER_LEN, FOOTER_LEN as usize)? else {
        return Ok(Err(SafetyIssue::Incomplete("VMDK footer")));
    };
    let marker_ok = |at: usize, kind: u32, value_zero: bool| {
        tail.get(at..at + 512).is_some_and(|m| {
            (!value_zero || le_u64(m, 0) == Some(0))
                && le_u32(m, 8) == Some(0)
                && le_u32(m, 12) == Some(kind)
                && m[16..].iter().all(|b| *b == 0)
        })
    };
    if !marker_ok(0, MARKER_FOOTER, false) {
        return Ok(Err(SafetyIssue::Malformed(
            "VMDK footer marker is invalid".into(),
        )));
    }
    if !marker_ok(1024, MARKER_EOS, true) {
        return Ok(Err(SafetyIssue::Malformed(
            "VMDK end-of-stream marker is invalid".into(),
        )));
    }
    Ok(tail
        .get(512..1024)
        .and_then(sparse_header)
        .ok_or_else(|| SafetyIssue::Malformed("VMDK footer has no header".into())))
}
