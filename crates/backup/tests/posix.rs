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
use clinker_backup::{BackupError, BackupRecord, Control, ObjectNaming, StoreError};
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
            &mut clinker_backup::FileWriter(file),
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

fn cinder_row(
    made: Option<&Made>,
    id: &str,
    volume_id: &str,
    parent: Option<&str>,
) -> serde_json::Value {
    json!({
        "id": id,
        "volume_id": volume_id,
        "display_name": id,
        "display_description": null,
        "created_at": "2026-12-01T10:00:00+00:00",
        "container": made.map(|m| m.record.container.clone()),
        "service_metadata": made.map(|m| m.record.service_metadata.clone()),
        "parent_id": parent,
        "size": 1,
    })
}

/// A job for Cinder's POSIX driver with 1 MiB objects and 32 KiB blocks.
fn cinder_job(root: &std::path::Path, compression: &str, op: &str) -> serde_json::Value {
    json!({
        "driver": "posix",
        "options": {
            "backup_posix_path": root.display().to_string(),
            "backup_file_size": MIB,
            "backup_sha_block_size_bytes": 32768,
            "backup_compression_algorithm": compression,
        },
        "op": op,
    })
}

#[tokio::test]
async fn backups_cinder_writes_restore_here_and_the_reverse() {
    let Some(cinder) = Cinder::find() else {
        require("Cinder 29's venv (scripts/install-cinder29.sh)", false);
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let volume_path = dir.path().join("volume");
    let size = 5 * MIB as usize + 12_345;
    let mut volume = pattern(b"cinder-made", size);
    volume[MIB as usize..3 * MIB as usize].fill(0);
    let volume_id = uuid();

    // Cinder writes a full backup (zstd) and an incremental one (bz2).
    let (full_id, incr_id) = (uuid(), uuid());
    std::fs::write(&volume_path, &volume).unwrap();
    let mut job = cinder_job(root.path(), "zstd", "backup");
    job["backups"] = json!([cinder_row(None, &full_id, &volume_id, None)]);
    job["volume"] = json!(volume_path.display().to_string());
    let full = cinder.run(&job).await;
    let full_record = BackupRecord {
        id: full_id.clone(),
        container: full["container"].as_str().unwrap().into(),
        service_metadata: full["service_metadata"].as_str().unwrap().into(),
    };
    let original = volume.clone();
    change_one_percent(&mut volume, 32_768);
    std::fs::write(&volume_path, &volume).unwrap();
    let full_made = Made {
        record: full_record.clone(),
        object_count: full["object_count"].as_u64().unwrap(),
    };
    let mut job = cinder_job(root.path(), "bz2", "backup");
    job["backups"] = json!([
        cinder_row(Some(&full_made), &full_id, &volume_id, None),
        cinder_row(None, &incr_id, &volume_id, Some(&full_id)),
    ]);
    job["volume"] = json!(volume_path.display().to_string());
    let incr = cinder.run(&job).await;
    let incr_record = BackupRecord {
        id: incr_id.clone(),
        container: incr["container"].as_str().unwrap().into(),
        service_metadata: incr["service_metadata"].as_str().unwrap().into(),
    };
    let engine = posix_engine(root.path(), "zlib");
    for existing in [false, true] {
        let restored = restore(
            &engine,
            std::slice::from_ref(&full_record),
            size,
            existing,
            dir.path(),
        )
        .await;
        assert!(
            restored == original,
            "Cinder's full backup restored differs"
        );
        let chain = [full_record.clone(), incr_record.clone()];
        let restored = restore(&engine, &chain, size, existing, dir.path()).await;
        assert!(
            restored == volume,
            "Cinder's incremental chain restored differs"
        );
    }

    // Clinker writes a full backup (zlib) and an incremental one (zstd);
    // Cinder restores both into fresh files.
    let volume_id = uuid();
    let mut volume = pattern(b"clinker-made", size);
    volume[2 * MIB as usize..4 * MIB as usize].fill(0);
    let ours_full = backup(&engine, request(&uuid(), &volume_id, None, None), &volume).await;
    let original = volume.clone();
    change_one_percent(&mut volume, 32_768);
    let zstd = posix_engine(root.path(), "zstd");
    let ours_incr = backup(
        &zstd,
        request(&uuid(), &volume_id, Some(&ours_full), None),
        &volume,
    )
    .await;
    let rows = json!([
        cinder_row(Some(&ours_full), &ours_full.record.id, &volume_id, None),
        cinder_row(
            Some(&ours_incr),
            &ours_incr.record.id,
            &volume_id,
            Some(&ours_full.record.id)
        ),
    ]);
    for (chain, expected) in [(json!([rows[0]]), &original), (rows.clone(), &volume)] {
        std::fs::write(&volume_path, vec![0u8; size]).unwrap();
        let mut job = cinder_job(root.path(), "zlib", "restore");
        job["backups"] = chain;
        job["volume"] = json!(volume_path.display().to_string());
        let result = cinder.run(&job).await;
        assert_eq!(
            result["volume_meta"].as_array().map(Vec::len),
            Some(job["backups"].as_array().unwrap().len())
        );
        assert!(
            std::fs::read(&volume_path).unwrap() == *expected,
            "Cinder's restore of Clinker's backup differs"
        );
    }
    // And Cinder deletes what Clinker wrote.
    let mut job = cinder_job(root.path(), "zlib", "delete");
    job["backups"] = json!([rows[1]]);
    cinder.run(&job).await;
    let left = engine
        .store()
        .list_objects(
            &ours_incr.record.container,
            &ours_incr.record.service_metadata,
        )
        .await
        .unwrap();
    assert!(left.is_empty(), "Cinder left {left:?}");
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
