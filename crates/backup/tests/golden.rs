//! Clinker against backups Cinder 29 wrote (fixtures made by Cinder's own
//! POSIX driver, see `tests/fixtures/README.md`): the JSON objects are
//! written byte for byte as Cinder writes them, the same volume, ids and
//! times give the same metadata and sha256file, and Cinder's backups
//! restore byte for byte. Needs nothing outside the repository.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use clinker_backup::format::{self, python_datetime_str, to_python_json};
use clinker_backup::store::PosixStore;
use clinker_backup::{
    BackupMetadata, BackupRecord, BackupRequest, Control, ObjectNaming, ParentBackup, Sha256File,
};
use common::{engine, fixtures, golden_volumes, restore};
use serde_json::Value;

const VOLUME_META: &str = "{\"version\": 2, \"volume-base-metadata\": {\"id\": \"00000000-0000-0000-0000-000000001111\", \"size\": 1}, \"volume-metadata\": {\"k\": \"v\"}, \"volume-glance-metadata\": {\"image_id\": \"img\"}}";

fn rows() -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join("cinder29-posix/backups.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn record(row: &Value) -> BackupRecord {
    BackupRecord {
        id: row["id"].as_str().unwrap().into(),
        container: row["container"].as_str().unwrap().into(),
        service_metadata: row["service_metadata"].as_str().unwrap().into(),
    }
}

fn cinder_object(row: &Value, suffix: &str) -> Vec<u8> {
    let record = record(row);
    std::fs::read(
        fixtures()
            .join("cinder29-posix/store")
            .join(&record.container)
            .join(format!("{}{suffix}", record.service_metadata)),
    )
    .unwrap()
}

#[test]
fn json_objects_are_written_byte_for_byte_as_cinder_writes_them() {
    let dir = fixtures().join("cinder29-shared-golden");
    for name in ["full", "incr"] {
        let bytes = std::fs::read(dir.join(format!("{name}-metadata"))).unwrap();
        let metadata: BackupMetadata = format::from_json("metadata", &bytes).unwrap();
        assert!(!metadata.objects.is_empty());
        assert_eq!(to_python_json(&metadata).unwrap(), bytes, "{name}-metadata");
        let bytes = std::fs::read(dir.join(format!("{name}-sha256file"))).unwrap();
        let sha256file: Sha256File = format::from_json("sha256file", &bytes).unwrap();
        assert_eq!(sha256file.chunk_size, 32768);
        assert_eq!(
            to_python_json(&sha256file).unwrap(),
            bytes,
            "{name}-sha256file"
        );
    }
}

fn golden_engine(root: &std::path::Path) -> clinker_backup::ChunkedEngine {
    engine(
        Arc::new(PosixStore::new(root)),
        262_144,
        32_768,
        "zlib",
        ObjectNaming::Posix,
    )
}

#[tokio::test]
async fn cinder_backups_restore_byte_for_byte() {
    let (full_volume, incr_volume) = golden_volumes();
    let rows = rows();
    let engine = golden_engine(&fixtures().join("cinder29-posix/store"));
    let dir = tempfile::tempdir().unwrap();
    let size = full_volume.len();
    for existing in [false, true] {
        let restored = restore(&engine, &[record(&rows[0])], size, existing, dir.path()).await;
        assert!(restored == full_volume, "full backup restored differs");
        let chain = [record(&rows[0]), record(&rows[1])];
        let restored = restore(&engine, &chain, size, existing, dir.path()).await;
        assert!(
            restored == incr_volume,
            "incremental chain restored differs"
        );
    }
}

#[tokio::test]
async fn same_volume_ids_and_times_give_cinders_metadata_and_sha256file() {
    let (full_volume, incr_volume) = golden_volumes();
    let rows = rows();
    let root = tempfile::tempdir().unwrap();
    let engine = golden_engine(root.path());
    let started: jiff::Timestamp = "2026-11-25T04:46:17Z".parse().unwrap();
    let created: jiff::Timestamp = "2026-11-25T05:00:00Z".parse().unwrap();
    let mut parent: Option<ParentBackup> = None;
    for (row, volume) in rows.iter().zip([&full_volume, &incr_volume]) {
        let request = BackupRequest {
            backup_id: row["id"].as_str().unwrap().into(),
            volume_id: row["volume_id"].as_str().unwrap().into(),
            volume_size_gb: 1,
            name: row["display_name"].as_str().map(str::to_owned),
            description: row["display_description"].as_str().map(str::to_owned),
            created_at: python_datetime_str(created, true),
            container: None,
            parent: parent.clone(),
            volume_meta: Some(VOLUME_META.into()),
            started_at: started,
        };
        let prepared = engine.prepare_backup(request).await.unwrap();
        assert_eq!(prepared.container, row["container"].as_str().unwrap());
        assert_eq!(
            prepared.service_metadata,
            row["service_metadata"].as_str().unwrap()
        );
        let mut reader = volume.as_slice();
        let outcome = engine
            .run_backup(&prepared, &mut reader, &Control::default())
            .await
            .unwrap();
        assert_eq!(outcome.object_count, row["object_count"].as_u64().unwrap());
        let ours = |suffix: &str| {
            std::fs::read(
                root.path()
                    .join(&prepared.container)
                    .join(format!("{}{suffix}", prepared.service_metadata)),
            )
            .unwrap()
        };
        for suffix in ["_metadata", "_sha256file"] {
            let (ours, cinders) = (ours(suffix), cinder_object(row, suffix));
            let as_json = |b: &[u8]| serde_json::from_slice::<Value>(b).unwrap();
            assert_eq!(
                as_json(&ours),
                as_json(&cinders),
                "{suffix} of {}",
                row["display_name"]
            );
            assert!(ours == cinders, "{suffix} is not byte for byte Cinder's");
        }
        parent = Some(ParentBackup {
            record: prepared.record(),
            size_gb: 1,
        });
    }
}
