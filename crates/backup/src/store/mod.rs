//! Object stores behind one small trait: the five operations Cinder's
//! chunked drivers need (`put_container`, `get_object_writer`,
//! `get_object_reader`, `delete_object`, `get_container_entries`), async,
//! whole objects at a time (an object is at most one `*_object_size`).
//!
//! Every put is checked end to end: the POSIX store writes a temporary
//! file, syncs it and renames it into place; S3 sends `Content-MD5` so the
//! store rejects a body that changed on the way; Swift sends the MD5 as
//! `ETag` and compares the ETag it answers. Gets from Swift and S3 compare
//! the body with the ETag when it is a plain MD5.

mod http;
pub mod posix;
pub mod s3;
pub mod swift;

use std::fmt::Debug;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::StoreError;

pub use posix::PosixStore;
pub use s3::S3Store;
pub use swift::{SwiftAuth, SwiftStore};

/// Where a chunked backup's objects live.
#[async_trait]
pub trait ObjectStore: Send + Sync + Debug {
    /// Makes sure `container` exists, creating it when `create` is true
    /// (`backup_create_containers`); a missing container with `create`
    /// false is [`StoreError::NotFound`].
    async fn ensure_container(&self, container: &str, create: bool) -> Result<(), StoreError>;

    /// Stores `data` as `container/name`, replacing any object of that name,
    /// and returns once the store holds exactly these bytes.
    async fn put_object(&self, container: &str, name: &str, data: Bytes) -> Result<(), StoreError> {
        let md5 = md5_hex(&data);
        self.put_object_with_md5(container, name, data, &md5).await
    }

    /// [`put_object`](Self::put_object) for a body whose MD5 (hex) the
    /// caller computed when it made it: the store is told it (S3
    /// `Content-MD5`, Swift `ETag`) and refuses the object with
    /// [`StoreError::ChecksumRejected`] if the bytes that arrive differ.
    async fn put_object_with_md5(
        &self,
        container: &str,
        name: &str,
        data: Bytes,
        md5: &str,
    ) -> Result<(), StoreError>;

    /// [`put_object_with_md5`](Self::put_object_with_md5) of the bytes of
    /// `parts` one after the other: the engine makes a large object of
    /// pieces worked on apart. Stores that can write the pieces as they are
    /// (POSIX) avoid joining them into one buffer.
    async fn put_object_parts(
        &self,
        container: &str,
        name: &str,
        parts: Vec<Bytes>,
        md5: &str,
    ) -> Result<(), StoreError> {
        let data = match <[Bytes; 1]>::try_from(parts) {
            Ok([one]) => one,
            Err(parts) => Bytes::from(parts.concat()),
        };
        self.put_object_with_md5(container, name, data, md5).await
    }

    /// Reads `container/name` whole.
    async fn get_object(&self, container: &str, name: &str) -> Result<Bytes, StoreError>;

    /// Deletes `container/name`; an object that is already gone is not an
    /// error (deletes are retried after crashes).
    async fn delete_object(&self, container: &str, name: &str) -> Result<(), StoreError>;

    /// The names in `container` that start with `prefix`, sorted.
    async fn list_objects(&self, container: &str, prefix: &str) -> Result<Vec<String>, StoreError>;

    /// Called after a backup's objects were deleted: a store whose
    /// containers are per backup (POSIX's `xx/yy/<id>` directories) removes
    /// the container when it is empty. Shared buckets stay.
    async fn tidy_container(&self, _container: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Hex MD5 of `data`.
pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(data))
}
