//! The POSIX store end to end: the full / incremental / restore / delete
//! scenario with every compression, cancellation and corruption, and
//! cross-compatibility with Cinder 29's own POSIX driver (backups each
//! writes restore in the other, byte for byte). The Cinder part needs the
//! venv of `scripts/install-cinder29.sh`: skipped with a message without
//! it, a failure under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use clinker_backup::store::PosixStore;
use clinker_backup::{BackupError, Control, ObjectNaming, StoreError};
use common::*;
use serde_json::json;

const MIB: u64 = 1 << 20;

fn posix_engine(root: &std::path::Path, compression: &str) -> clinker_backup::ChunkedEngine {
    engine(
        Arc::new(PosixStore::new(root)),
        MIB,
        32_768,
        compression,
        ObjectNaming::Posix,
    )
}

#[tokio::test]
async fn full_incremental_restore_delete_with_every_compression() {
    for compression in ["zlib", "bz2", "zstd", "none"] {
        let root = tempfile::tempdir().unwrap();
        full_incremental_restore_delete(&posix_engine(root.path(), compression), None).await;
        // Each backup's own xx/yy/<id> directory goes with its last object.
        assert_eq!(
            std::fs::read_dir(root.path()).unwrap().count(),
            0,
            "{compression}"
        );
    }
}

#[tokio::test]
async fn a_cancelled_backup_leaves_nothing() {
    let root = tempfile::tempdir().unwrap();
    let engine = posix_engine(root.path(), "zlib");
    let prepared = engine
        .prepare_backup(request(&uuid(), &uuid(), None, Some("shared")))
        .await
        .unwrap();
    let control = Control::default();
    control.cancel.cancel();
    let volume = pattern(b"x", 3 * MIB as usize);
    let result = engine
        .run_backup(&prepared, &mut volume.as_slice(), &control)
        .await;
    assert!(
        matches!(result, Err(BackupError::BackupCancelled { .. })),
        "{result:?}"
    );
    // The container directory, empty, went with the objects.
    let left = engine
        .store()
        .list_objects("shared", &prepared.service_metadata)
        .await;
    assert!(
        matches!(left, Err(clinker_backup::StoreError::NotFound { .. })),
        "{left:?}"
    );
}

#[tokio::test]
async fn a_corrupt_object_fails_the_restore_and_a_changed_block_size_the_incremental() {
    let root = tempfile::tempdir().unwrap();
    let engine = posix_engine(root.path(), "none");
    let volume = pattern(b"y", 2 * MIB as usize);
    let made = backup(&engine, request(&uuid(), &uuid(), None, None), &volume).await;
    let object = root
        .path()
        .join(&made.record.container)
        .join(format!("{}-00002", made.record.service_metadata));
    let mut bytes = std::fs::read(&object).unwrap();
    bytes[12345] ^= 1;
    std::fs::write(&object, bytes).unwrap();
    let file = tokio::fs::File::create(root.path().join("target"))
        .await
        .unwrap();
    let result = engine
        .restore_backup(
            std::slice::from_ref(&made.record),
            "v",
            &mut clinker_backup::FileWriter::new(file.into_std().await),
            true,
            &Control::default(),
        )
        .await;
    let Err(BackupError::InvalidBackup(reason)) = result else {
        panic!("{result:?}")
    };
    assert!(reason.contains("md5"), "{reason}");

    let other = common::engine(
        engine.store().clone(),
        MIB,
        65_536,
        "none",
        ObjectNaming::Posix,
    );
    let Err(BackupError::InvalidBackup(reason)) = other
        .prepare_backup(request(&uuid(), &uuid(), Some(&made), None))
        .await
    else {
        panic!("an incremental with another block size must be refused")
    };
    assert_eq!(
        reason,
        "Hash block size has changed since the last backup. New hash block size: 65536. Old \
         hash block size: 32768. Do a full backup."
    );
}

#[tokio::test]
async fn backups_cinder_writes_restore_here_and_the_reverse() {
    let Some(cinder) = Cinder::find() else {
        require("Cinder 29's venv (scripts/install-cinder29.sh)", false);
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let base = json!({
        "driver": "posix",
        "options": {
            "backup_posix_path": root.path().display().to_string(),
            "backup_file_size": MIB,
            "backup_sha_block_size_bytes": 32768,
        },
    });
    // Cinder writes zstd then bz2; Clinker zlib.
    let engine = posix_engine(root.path(), "zlib");
    cross_restore_with_cinder(&cinder, &engine, &base, ["zstd", "bz2"]).await;
}

/// A POSIX store whose third data object cannot be written.
#[derive(Debug)]
struct FailingThirdObject(PosixStore);

#[async_trait::async_trait]
impl clinker_backup::ObjectStore for FailingThirdObject {
    async fn ensure_container(&self, c: &str, create: bool) -> Result<(), StoreError> {
        self.0.ensure_container(c, create).await
    }
    async fn put_object_with_md5(
        &self,
        c: &str,
        name: &str,
        data: bytes::Bytes,
        md5: &str,
    ) -> Result<(), StoreError> {
        if name.ends_with("-00003") {
            return Err(StoreError::Unavailable("the store went away".into()));
        }
        self.0.put_object_with_md5(c, name, data, md5).await
    }
    async fn get_object(&self, c: &str, name: &str) -> Result<bytes::Bytes, StoreError> {
        self.0.get_object(c, name).await
    }
    async fn delete_object(&self, c: &str, name: &str) -> Result<(), StoreError> {
        self.0.delete_object(c, name).await
    }
    async fn list_objects(&self, c: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.0.list_objects(c, prefix).await
    }
}

#[tokio::test]
async fn a_failed_backup_deletes_what_it_wrote() {
    let root = tempfile::tempdir().unwrap();
    let engine = common::engine(
        Arc::new(FailingThirdObject(PosixStore::new(root.path()))),
        MIB,
        32_768,
        "none",
        ObjectNaming::Posix,
    );
    let prepared = engine
        .prepare_backup(request(&uuid(), &uuid(), None, Some("backups")))
        .await
        .unwrap();
    let volume = pattern(b"z", 6 * MIB as usize);
    let result = engine
        .run_backup(&prepared, &mut volume.as_slice(), &Control::default())
        .await;
    let Err(error) = result else {
        panic!("the backup cannot succeed")
    };
    assert_eq!(
        error.kind(),
        clinker_types::ErrorKind::Unavailable,
        "{error}"
    );
    let left = std::fs::read_dir(root.path().join("backups"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "objects left behind");
}

/// A MiB the full backup filled and an incremental zeroed comes back as
/// zeros, also into a new volume: only the first backup of a chain may
/// skip writing zeros (the new volume reads as zeros only until then).
#[tokio::test]
async fn an_incremental_that_zeroes_data_restores_zeros_into_a_new_volume() {
    let root = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = posix_engine(root.path(), "zlib");
    let volume_id = uuid();
    let mib = usize::try_from(MIB).unwrap();
    let mut volume = pattern(b"zeroed-later", 4 * mib);
    let full = backup(&engine, request("full", &volume_id, None, None), &volume).await;
    volume[mib..2 * mib].fill(0);
    let incr = backup(
        &engine,
        request("incr", &volume_id, Some(&full), None),
        &volume,
    )
    .await;
    let chain = [full.record.clone(), incr.record.clone()];
    for existing in [false, true] {
        let restored = restore(&engine, &chain, volume.len(), existing, dir.path()).await;
        assert!(
            restored == volume,
            "restored into {} volume: the zeroed MiB kept the full backup's data",
            if existing { "an existing" } else { "a new" }
        );
    }
}
