//! Clinker's volume manager (Cinder's `cinder-volume` manager), one per
//! enabled backend.
//!
//! [`VolumeManager`] serves the volume RPC API (create, delete, snapshot,
//! extend, revert to snapshot, retype, capabilities, and the exports and
//! connections of attachments) through its driver, finishes every operation with
//! one database transaction, and at start-up ([`VolumeManager::init_host`])
//! settles what a crash interrupted.
//!
//! Depends on `clinker-types`, `clinker-config`, `clinker-runtime`,
//! `clinker-db`, `clinker-rpc`, `clinker-drivers`, `clinker-exec` and
//! `clinker-image`.

mod attach;
mod backup;
mod groups;
mod image;
mod image_cache;
mod locks;
mod manage;
pub mod manager;
mod metered;
mod migration;
mod recovery;
mod retype;
mod revert;
mod stats;
#[cfg(test)]
mod test_support;
pub mod usage;

pub use image_cache::ImageCacheSettings;
pub use manager::{BackendHealth, ManagerOptions, VolumeManager};
