//! Microsoft's formats: VHD (qemu's `vpc`) and VHDX.
//!
//! A VHD has a 512-byte big-endian footer at its end; a dynamic VHD also
//! starts with a copy of it, which qemu reads first. A fixed VHD is raw
//! data followed by the footer, so it is only recognised from the tail.
//!
//! A VHDX starts with `vhdxfile`; its virtual size lives in the metadata
//! region named by the region table at 192 KiB (little-endian, GUIDs in
//! Microsoft's mixed-endian byte order). Differencing disks of both name a
//! parent file and are refused.

use std::io;

use super::{
    DetectedFormat, ImageRegions, InspectedImage, SafetyIssue, be_u16, be_u32, be_u64, le_u16,
    le_u32, le_u64, region,
};

pub(super) const VHD_COOKIE: &[u8] = b"conectix";
pub(super) const VHDX_MAGIC: &[u8] = b"vhdxfile";

const VHD_FOOTER_LEN: u64 = 512;
const VHD_DIFFERENCING: u32 = 4;

const REGION_TABLE_OFFSET: u64 = 192 * 1024;
const REGION_TABLE_SIGNATURE: &[u8] = b"regi";
/// 2047 entries of 32 bytes after a 16-byte (region table) or 32-byte
/// (metadata table) header fit in 64 KiB.
const TABLE_LEN: usize = 64 * 1024;
const MAX_ENTRIES: usize = 2047;
const METADATA_SIGNATURE: &[u8] = b"metadata";
pub(super) const METADATA_REGION: [u8; 16] = [
    0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b, 0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e,
];
pub(super) const VIRTUAL_DISK_SIZE: [u8; 16] = [
    0x24, 0x42, 0xa5, 0x2f, 0x1b, 0xcd, 0x76, 0x48, 0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8,
];
pub(super) const FILE_PARAMETERS: [u8; 16] = [
    0x37, 0x67, 0xa1, 0xca, 0x36, 0xfa, 0x43, 0x4d, 0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b,
];
/// File parameters flag: the disk has a parent.
const HAS_PARENT: u32 = 1 << 1;

/// A VHD from its footer (`kind` says which copy: `dynamic` at the start,
/// `fixed` at the end).
pub(super) fn inspect_vhd_footer(footer: &[u8], kind: &str, total_len: u64) -> InspectedImage {
    let mut image = InspectedImage::new(DetectedFormat::Vhd, 0);
    image.subformat = Some(kind.to_owned());
    let (Some(original), Some(current), Some(cylinders), Some(disk_type)) = (
        be_u64(footer, 40),
        be_u64(footer, 48),
        be_u16(footer, 56),
        be_u32(footer, 60),
    ) else {
        image.issue(SafetyIssue::Malformed("truncated VHD footer".into()));
        return image;
    };
    let heads = u64::from(footer.get(58).copied().unwrap_or(0));
    let sectors = u64::from(footer.get(59).copied().unwrap_or(0));
    // qemu sizes some images from the geometry, others from current_size:
    // the largest is what the disk can hold at most.
    let geometry = u64::from(cylinders) * heads * sectors * 512;
    image.virtual_size = original.max(current).max(geometry);
    if disk_type == VHD_DIFFERENCING {
        image.issue(SafetyIssue::ParentDisk);
    }
    if kind == "fixed" && image.virtual_size > total_len.saturating_sub(VHD_FOOTER_LEN) {
        image.issue(SafetyIssue::Malformed(
            "fixed VHD larger than its data".into(),
        ));
    }
    image
}

/// A fixed VHD: raw data with the footer as its last 512 bytes.
pub(super) fn inspect_fixed_vhd(src: &mut dyn ImageRegions) -> io::Result<Option<InspectedImage>> {
    let total = src.total_len();
    if total < 2 * VHD_FOOTER_LEN {
        return Ok(None);
    }
    let Some(footer) = region(src, total - VHD_FOOTER_LEN, VHD_FOOTER_LEN as usize)? else {
        return Ok(None);
    };
    Ok(footer
        .starts_with(VHD_COOKIE)
        .then(|| inspect_vhd_footer(&footer, "fixed", total)))
}

/// The `(offset, length)` of the entry with `guid` in a table of 32-byte
/// entries starting at `first`, reading the offset with `offset_at`.
fn find_entry(
    table: &[u8],
    first: usize,
    count: usize,
    guid: &[u8; 16],
    read: impl Fn(&[u8]) -> Option<(u64, u32)>,
) -> Option<(u64, u32)> {
    (0..count)
        .filter_map(|i| table.get(first + i * 32..first + i * 32 + 32))
        .find(|entry| entry.starts_with(guid))
        .and_then(read)
}

pub(super) fn inspect_vhdx(src: &mut dyn ImageRegions) -> io::Result<InspectedImage> {
    let mut image = InspectedImage::new(DetectedFormat::Vhdx, 0);
    let Some(table) = region(src, REGION_TABLE_OFFSET, TABLE_LEN)? else {
        image.issue(SafetyIssue::Incomplete("VHDX region table"));
        return Ok(image);
    };
    if !table.starts_with(REGION_TABLE_SIGNATURE) {
        image.issue(SafetyIssue::Malformed("VHDX region table signature".into()));
        return Ok(image);
    }
    let count = le_u32(&table, 8).map_or(usize::MAX, |c| c as usize);
    if count > MAX_ENTRIES {
        image.issue(SafetyIssue::Malformed(format!("{count} VHDX regions")));
        return Ok(image);
    }
    let Some((meta_offset, _)) = find_entry(&table, 16, count, &METADATA_REGION, |e| {
        Some((le_u64(e, 16)?, le_u32(e, 24)?))
    }) else {
        image.issue(SafetyIssue::Malformed("VHDX has no metadata region".into()));
        return Ok(image);
    };
    let Some(meta) = region(src, meta_offset, TABLE_LEN)? else {
        image.issue(SafetyIssue::Incomplete("VHDX metadata"));
        return Ok(image);
    };
    if !meta.starts_with(METADATA_SIGNATURE) {
        image.issue(SafetyIssue::Malformed("VHDX metadata signature".into()));
        return Ok(image);
    }
    let entries = le_u16(&meta, 10).map_or(usize::MAX, usize::from);
    if entries > MAX_ENTRIES {
        image.issue(SafetyIssue::Malformed(format!(
            "{entries} VHDX metadata items"
        )));
        return Ok(image);
    }
    let item = |guid| {
        find_entry(&meta, 32, entries, guid, |e| {
            Some((u64::from(le_u32(e, 16)?), le_u32(e, 20)?))
        })
    };
    let (Some((size_at, _)), Some((params_at, _))) =
        (item(&VIRTUAL_DISK_SIZE), item(&FILE_PARAMETERS))
    else {
        image.issue(SafetyIssue::Malformed(
            "VHDX metadata lacks the virtual disk size or file parameters".into(),
        ));
        return Ok(image);
    };
    // Item offsets count from the start of the metadata region.
    let mut item_value =
        |at: u64, read: fn(&[u8], usize) -> Option<u64>| -> io::Result<Option<u64>> {
            let Some(offset) = meta_offset.checked_add(at) else {
                return Ok(None);
            };
            Ok(region(src, offset, 8)?.and_then(|b| read(&b, 0)))
        };
    match item_value(size_at, le_u64)? {
        Some(size) => image.virtual_size = size,
        None => image.issue(SafetyIssue::Incomplete("VHDX virtual disk size")),
    }
    match item_value(params_at, le_u64)? {
        Some(params) if (params >> 32) as u32 & HAS_PARENT != 0 => {
            image.issue(SafetyIssue::ParentDisk);
        }
        Some(_) => {}
        None => image.issue(SafetyIssue::Incomplete("VHDX file parameters")),
    }
    Ok(image)
}
