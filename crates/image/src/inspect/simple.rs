//! Formats recognised by one signature: VDI (VirtualBox), ISO 9660 / UDF,
//! LUKS and an MBR/GPT partition table. Only VDI is converted; the others
//! are raw data to qemu.

use std::io;

use super::{DetectedFormat, ImageRegions, InspectedImage, SafetyIssue, le_u32, le_u64, region};

pub(super) const LUKS_MAGIC: &[u8] = b"LUKS\xba\xbe";

const VDI_SIGNATURE: u32 = 0xbeda_107f;
const VDI_TYPE_UNDO: u32 = 3;
const VDI_TYPE_DIFF: u32 = 4;
/// The first volume descriptor of ISO 9660 and UDF (after 16 system
/// sectors of 2048 bytes).
const ISO_DESCRIPTOR_OFFSET: u64 = 32 * 1024;

/// VDI: signature at 0x40, image type at 0x4c, disk size at 0x170.
pub(super) fn inspect_vdi(head: &[u8]) -> Option<InspectedImage> {
    if le_u32(head, 0x40)? != VDI_SIGNATURE {
        return None;
    }
    let mut image = InspectedImage::new(DetectedFormat::Vdi, 0);
    match (le_u32(head, 0x4c), le_u64(head, 0x170)) {
        (Some(kind), Some(size)) => {
            image.virtual_size = size;
            if matches!(kind, VDI_TYPE_UNDO | VDI_TYPE_DIFF) {
                image.issue(SafetyIssue::ParentDisk);
            }
        }
        _ => image.issue(SafetyIssue::Malformed("truncated VDI header".into())),
    }
    Some(image)
}

/// Whether the bytes carry an ISO 9660 (`CD001`) or UDF (`NSR02`, `NSR03`)
/// volume descriptor.
pub(super) fn is_iso(src: &mut dyn ImageRegions) -> io::Result<bool> {
    Ok(region(src, ISO_DESCRIPTOR_OFFSET, 6)?
        .and_then(|d| d.get(1..6).map(<[u8]>::to_vec))
        .is_some_and(|id| matches!(id.as_slice(), b"CD001" | b"NSR02" | b"NSR03")))
}

/// Whether the first sector ends with the MBR boot signature (a GPT disk
/// has a protective MBR).
pub(super) fn has_mbr(head: &[u8]) -> bool {
    head.get(510..512) == Some(&[0x55, 0xaa])
}
