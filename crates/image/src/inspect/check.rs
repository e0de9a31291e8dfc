//! The decision: may an image whose bytes were inspected be written to a
//! volume, and which `qemu-img -f` reads it. Cinder's rules
//! (`image_utils.check_image_format`, `fetch_verify_image`,
//! `check_virtual_size`) on the inspector's findings, with Cinder's
//! reasons (they end up in `ImageUnacceptable`).

use super::{DetectedFormat, InspectedImage, SafetyIssue};

const GIB: u64 = 1 << 30;

/// The format `qemu-img` is told (`-f`) to read an image as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QemuFormat {
    /// The bytes are the disk (raw, ISO, partitioned disks, LUKS, AMI).
    Raw,
    /// qcow2.
    Qcow2,
    /// VMDK.
    Vmdk,
    /// VHD (`vpc` to qemu).
    Vpc,
    /// VHDX.
    Vhdx,
    /// VDI.
    Vdi,
}

impl QemuFormat {
    /// qemu's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            QemuFormat::Raw => "raw",
            QemuFormat::Qcow2 => "qcow2",
            QemuFormat::Vmdk => "vmdk",
            QemuFormat::Vpc => "vpc",
            QemuFormat::Vhdx => "vhdx",
            QemuFormat::Vdi => "vdi",
        }
    }

    /// The format for an upload with Glance `disk_format`, when Clinker can
    /// write it.
    pub fn for_disk_format(disk_format: &str) -> Option<Self> {
        Some(match disk_format {
            "raw" => QemuFormat::Raw,
            "qcow2" => QemuFormat::Qcow2,
            "vmdk" => QemuFormat::Vmdk,
            "vhd" => QemuFormat::Vpc,
            "vhdx" => QemuFormat::Vhdx,
            "vdi" => QemuFormat::Vdi,
            _ => return None,
        })
    }
}

/// Why an image may not be written to a volume.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Unacceptable {
    /// Cinder's reason text, shown to users.
    pub reason: String,
    /// What the inspector found, for the log.
    pub detail: String,
}

impl Unacceptable {
    fn new(reason: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            detail: detail.into(),
        }
    }
}

/// Which detected formats a claimed Glance `disk_format` accepts, and how
/// qemu reads them. Raw-data claims take any format that is raw to qemu
/// (a fixed VHD is raw data with a trailing footer); rich formats must be
/// exactly themselves (Glance's `require_image_format_match`, Cinder's
/// format comparison).
fn accepted(claimed: &str, inspected: &InspectedImage) -> Option<QemuFormat> {
    let fixed_vhd =
        inspected.format == DetectedFormat::Vhd && inspected.subformat.as_deref() == Some("fixed");
    let format = inspected.format;
    match claimed {
        "raw" | "ami" | "aki" | "ari" | "iso" if format.is_raw_data() || fixed_vhd => {
            Some(QemuFormat::Raw)
        }
        "qcow2" if format == DetectedFormat::Qcow2 => Some(QemuFormat::Qcow2),
        "vmdk" if format == DetectedFormat::Vmdk => Some(QemuFormat::Vmdk),
        "vhd" if format == DetectedFormat::Vhd => Some(QemuFormat::Vpc),
        "vhdx" if format == DetectedFormat::Vhdx => Some(QemuFormat::Vhdx),
        "vdi" if format == DetectedFormat::Vdi => Some(QemuFormat::Vdi),
        _ => None,
    }
}

/// Cinder's reason for the first safety issue.
fn refusal(inspected: &InspectedImage, issue: &SafetyIssue) -> Unacceptable {
    let detail = format!("{} image: {issue}", inspected.format);
    match issue {
        SafetyIssue::BackingFile(name) => Unacceptable::new(
            format!(
                "fmt={} backed by: {}",
                inspected.format,
                name.as_deref().unwrap_or("(unreadable name)")
            ),
            detail,
        ),
        SafetyIssue::DataFile => Unacceptable::new(
            "A qcow2 format image is not allowed to have a data file",
            detail,
        ),
        SafetyIssue::VmdkCreateType(_) => {
            Unacceptable::new("Invalid VMDK create-type specified", detail)
        }
        _ => Unacceptable::new("Image/Volume failed safety check", detail),
    }
}

/// Decides whether an image claimed by Glance to be `claimed_disk_format`,
/// whose bytes were inspected as `inspected`, may be written to a volume of
/// `volume_size_bytes`, and returns the `-f` format for `qemu-img`.
///
/// # Errors
/// [`Unacceptable`] (Cinder's `ImageUnacceptable` reasons) when the data is
/// not the claimed format, is unsafe (backing file, external data file,
/// outside VMDK extents, parent disks, malformed or incomplete headers),
/// or describes a disk larger than the volume.
pub fn check_image(
    claimed_disk_format: &str,
    inspected: &InspectedImage,
    volume_size_bytes: u64,
) -> Result<QemuFormat, Unacceptable> {
    let Some(qemu_format) = accepted(claimed_disk_format, inspected) else {
        return Err(Unacceptable::new(
            format!(
                "The image format was claimed to be '{claimed_disk_format}' but the image data \
                 appears to be in a different format."
            ),
            format!("the data is {}", inspected.format),
        ));
    };
    // A raw-data claim copies the bytes with `-f raw`: a LUKS header or a
    // VHD footer inside is data, never interpreted.
    if qemu_format != QemuFormat::Raw
        && let Some(issue) = inspected.safety_issues.first()
    {
        return Err(refusal(inspected, issue));
    }
    if inspected.virtual_size > volume_size_bytes {
        return Err(Unacceptable::new(
            format!(
                "Image virtual size is {}GB and doesn't fit in a volume of size {}GB.",
                inspected.virtual_size.div_ceil(GIB),
                volume_size_bytes / GIB
            ),
            format!(
                "virtual size {} > volume size {volume_size_bytes}",
                inspected.virtual_size
            ),
        ));
    }
    Ok(qemu_format)
}
