//! Image format inspection: what an image's bytes really are, how large
//! the disk they describe is, and whether opening them with `qemu-img`
//! would make it read anything outside them.
//!
//! Written in the spirit of oslo.utils' `format_inspector` (which Glance
//! and Cinder use since OSSA-2024-001): headers are parsed from the bytes,
//! never trusted from Glance's `disk_format`, and every offset is checked.
//! [`inspect`] runs on a stream's first [`HEAD_BYTES`] (and last
//! [`TAIL_BYTES`] when known) or on a whole staged file; [`check_image`]
//! then decides, before any tool sees the data, whether the image may be
//! written to a volume and with which `qemu-img -f` format.

mod check;
mod qcow2;
mod regions;
mod simple;
mod vhd;
mod vmdk;

use std::fmt;
use std::io;

pub use check::{QemuFormat, Unacceptable, check_image};
pub use regions::{
    FileRegions, HEAD_BYTES, ImageBytes, ImageRegions, MAX_REGION, Region, TAIL_BYTES,
};

/// What an image's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DetectedFormat {
    /// No format recognised: the bytes are the disk.
    Raw,
    /// A disk starting with an MBR or GPT partition table (raw data).
    Gpt,
    /// An ISO 9660 or UDF file system image (raw data).
    Iso,
    /// A LUKS encrypted disk (raw data to qemu; Cinder treats it as raw).
    Luks,
    /// QEMU copy-on-write v2/v3.
    Qcow2,
    /// QEMU enhanced disk: recognised only to be refused.
    Qed,
    /// VMware VMDK (sparse extent with embedded descriptor, or a bare
    /// descriptor file).
    Vmdk,
    /// Microsoft VHD (qemu's `vpc`), dynamic or fixed.
    Vhd,
    /// Microsoft VHDX.
    Vhdx,
    /// VirtualBox VDI.
    Vdi,
}

impl DetectedFormat {
    /// The format's name as Glance spells `disk_format` (oslo's names).
    pub fn name(self) -> &'static str {
        match self {
            DetectedFormat::Raw => "raw",
            DetectedFormat::Gpt => "gpt",
            DetectedFormat::Iso => "iso",
            DetectedFormat::Luks => "luks",
            DetectedFormat::Qcow2 => "qcow2",
            DetectedFormat::Qed => "qed",
            DetectedFormat::Vmdk => "vmdk",
            DetectedFormat::Vhd => "vhd",
            DetectedFormat::Vhdx => "vhdx",
            DetectedFormat::Vdi => "vdi",
        }
    }

    /// Whether the bytes are copied to a volume as they are.
    pub fn is_raw_data(self) -> bool {
        matches!(
            self,
            DetectedFormat::Raw | DetectedFormat::Gpt | DetectedFormat::Iso | DetectedFormat::Luks
        )
    }
}

impl fmt::Display for DetectedFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an image is not safe to hand to `qemu-img`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SafetyIssue {
    /// A qcow2 backing file (its name when it could be read): qemu would
    /// open that host path.
    BackingFile(Option<String>),
    /// A qcow2 external data file (incompatible feature bit 2).
    DataFile,
    /// qcow2 incompatible feature bits this inspector does not know.
    UnknownFeatures(u64),
    /// A header version this inspector does not accept.
    UnsupportedVersion(u32),
    /// An encrypted qcow2 (qemu's legacy AES or LUKS-in-qcow2).
    Encrypted,
    /// A VMDK whose create type names extents outside the file.
    VmdkCreateType(String),
    /// A VMDK extent that is not the file itself.
    VmdkExtent(String),
    /// A VMDK descriptor line this inspector does not understand.
    VmdkDescriptor(String),
    /// A differencing VHD, VHDX or VDI (it names a parent disk).
    ParentDisk,
    /// A format never accepted (QED).
    Banned,
    /// A header that contradicts itself or the file (truncated, offsets
    /// outside the file, overflowing sizes).
    Malformed(String),
    /// Bytes the format needs lie outside those given to the inspector.
    Incomplete(&'static str),
}

impl fmt::Display for SafetyIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SafetyIssue::BackingFile(Some(name)) => write!(f, "backing file {name:?}"),
            SafetyIssue::BackingFile(None) => f.write_str("backing file"),
            SafetyIssue::DataFile => f.write_str("external data file"),
            SafetyIssue::UnknownFeatures(bits) => {
                write!(f, "unknown incompatible features {bits:#x}")
            }
            SafetyIssue::UnsupportedVersion(v) => write!(f, "unsupported version {v}"),
            SafetyIssue::Encrypted => f.write_str("encrypted image"),
            SafetyIssue::VmdkCreateType(t) => write!(f, "VMDK create type {t:?}"),
            SafetyIssue::VmdkExtent(line) => write!(f, "VMDK extent {line:?}"),
            SafetyIssue::VmdkDescriptor(line) => write!(f, "VMDK descriptor line {line:?}"),
            SafetyIssue::ParentDisk => f.write_str("differencing disk with a parent"),
            SafetyIssue::Banned => f.write_str("format not allowed"),
            SafetyIssue::Malformed(why) => write!(f, "malformed header: {why}"),
            SafetyIssue::Incomplete(what) => write!(f, "{what} not available for inspection"),
        }
    }
}

/// What [`inspect`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InspectedImage {
    /// The format of the bytes.
    pub format: DetectedFormat,
    /// The size in bytes of the disk the image describes (for raw data,
    /// its length).
    pub virtual_size: u64,
    /// The VMDK create type (`monolithicSparse`, …) or the VHD kind
    /// (`fixed`, `dynamic`).
    pub subformat: Option<String>,
    /// Everything that makes the image unsafe to open; empty when safe.
    pub safety_issues: Vec<SafetyIssue>,
}

impl InspectedImage {
    fn new(format: DetectedFormat, virtual_size: u64) -> Self {
        Self {
            format,
            virtual_size,
            subformat: None,
            safety_issues: Vec::new(),
        }
    }

    fn issue(&mut self, issue: SafetyIssue) {
        self.safety_issues.push(issue);
    }

    /// Whether no safety issue was found.
    pub fn is_safe(&self) -> bool {
        self.safety_issues.is_empty()
    }
}

/// Reads `len` bytes at `offset`, or `None` when they are not available
/// (the caller reports the format incomplete).
pub(crate) fn region(
    src: &mut dyn ImageRegions,
    offset: u64,
    len: usize,
) -> io::Result<Option<Vec<u8>>> {
    Ok(match src.read(offset, len)? {
        Region::Data(bytes) => Some(bytes),
        Region::Unavailable => None,
    })
}

pub(crate) fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
pub(crate) fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
pub(crate) fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}
pub(crate) fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
pub(crate) fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
pub(crate) fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Finds the format of the image in `src` and everything that makes it
/// unsafe. Never panics and never reads more than a few MiB, whatever the
/// headers say.
///
/// # Errors
/// Only I/O errors of a file source; malformed data is a
/// [`SafetyIssue`], not an error.
pub fn inspect(src: &mut dyn ImageRegions) -> io::Result<InspectedImage> {
    let total_len = src.total_len();
    let head = region(src, 0, 512)?.unwrap_or_default();
    let magic = |m: &[u8]| head.starts_with(m);
    if magic(qcow2::MAGIC) {
        return qcow2::inspect(src, &head);
    }
    if magic(b"QED\0") {
        let mut image = InspectedImage::new(DetectedFormat::Qed, 0);
        image.issue(SafetyIssue::Banned);
        return Ok(image);
    }
    if magic(vmdk::SPARSE_MAGIC) {
        return vmdk::inspect_sparse(src, &head);
    }
    if vmdk::is_descriptor_text(&head) {
        return vmdk::inspect_descriptor_file(src, &head);
    }
    if magic(vhd::VHDX_MAGIC) {
        return vhd::inspect_vhdx(src);
    }
    if magic(vhd::VHD_COOKIE) {
        return Ok(vhd::inspect_vhd_footer(&head, "dynamic", total_len));
    }
    if magic(simple::LUKS_MAGIC) {
        return Ok(InspectedImage::new(DetectedFormat::Luks, total_len));
    }
    if let Some(image) = simple::inspect_vdi(&head) {
        return Ok(image);
    }
    if simple::is_iso(src)? {
        return Ok(InspectedImage::new(DetectedFormat::Iso, total_len));
    }
    if let Some(image) = vhd::inspect_fixed_vhd(src)? {
        return Ok(image);
    }
    if simple::has_mbr(&head) {
        return Ok(InspectedImage::new(DetectedFormat::Gpt, total_len));
    }
    Ok(InspectedImage::new(DetectedFormat::Raw, total_len))
}

/// [`inspect`] on a whole file, off the async runtime's threads.
///
/// # Errors
/// The file cannot be read.
pub async fn inspect_file(path: &std::path::Path) -> io::Result<InspectedImage> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || inspect(&mut FileRegions::open(&path)?))
        .await
        .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests;
