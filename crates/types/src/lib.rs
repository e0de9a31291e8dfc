//! Cinder's vocabulary, shared by every Clinker layer.
//!
//! Identifiers, the `host@backend#pool` address, the status enums with their
//! transition tables, the closed [`ErrorKind`] classification, timestamps and
//! the persisted models. This crate performs no I/O and depends on no other
//! Clinker crate (only std, serde, uuid and thiserror), so everything above it
//! can share these types without pulling in a runtime.

pub mod backup;
pub mod capabilities;
pub mod catalog;
pub mod connection;
pub mod error;
pub mod group;
pub mod group_status;
pub mod host;
pub mod ids;
pub mod message_field;
pub mod model;
pub mod redact;
pub mod request_spec;
pub mod status;
pub mod time;
pub mod transfer;
pub mod volume_type_extras;

pub use error::{ErrorKind, RemoteError};
pub use host::Host;
pub use ids::{AttachmentId, MessageId, SnapshotId, VolumeId, VolumeTypeId};
pub use ids::{BackupId, QosSpecsId, TransferId};
pub use ids::{GroupId, GroupSnapshotId, GroupTypeId};
pub use status::{AttachStatus, SnapshotStatus, VolumeStatus};
pub use time::{Clock, SystemClock, Timestamp};
