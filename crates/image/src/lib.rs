//! Images for Clinker: the Glance v2 client, image format inspection,
//! conversion through `qemu-img`, and the streaming data path between
//! Glance and a volume that the volume manager calls for create-from-image,
//! upload-to-image and reimage.
//!
//! Nothing here knows about volumes' rows or drivers: the manager hands in
//! a destination (a path or a writer the driver provides) and gets data,
//! checks and Cinder's errors back.
//!
//! Depends on `clinker-types`, `clinker-config`, `clinker-exec` and
//! `clinker-runtime` only.

mod error;
pub mod glance;
pub mod inspect;

pub use error::ImageError;
