//! Images for Clinker: the Glance v2 client ([`glance`]), image format
//! inspection ([`inspect`]), conversion through `qemu-img` ([`qemu`]), and
//! the streaming data path between Glance and a volume ([`transfer`]) that
//! the volume manager calls for create-from-image, upload-to-image, reimage
//! and the image-volume cache; [`metadata`] says what a volume records of
//! its image.
//!
//! Nothing here knows volume rows or drivers: the manager hands in a
//! destination (a path or a writer the driver provides) and gets data,
//! checks and Cinder's errors ([`ImageError`]) back.
//!
//! Depends on `clinker-types`, `clinker-config` and `clinker-exec` only
//! (`clinker-runtime` is allowed); `clinker-drivers` never depends on it.

mod error;
pub mod glance;
pub mod inspect;
pub mod metadata;
pub mod qemu;
pub mod transfer;

pub use error::ImageError;
pub use glance::{GlanceClient, GlanceSettings, ImageContext, ImageMeta};
pub use inspect::{InspectedImage, QemuFormat, check_image};
pub use transfer::{
    FetchedImage, ImageTransfer, TransferSettings, UploadedImage, VolumeSource, VolumeTarget,
    cleanup_conversion_dir,
};
