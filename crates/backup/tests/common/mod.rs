//! What the backup tests share: volumes anyone can regenerate, engines over
//! a store, the full / incremental / restore / delete scenario every store
//! runs, and Cinder 29 driven through `scripts/cinder_backup_driver.py`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clinker_backup::engine::BackupRecord;
use clinker_backup::format::python_datetime_str;
use clinker_backup::{
    BackupRequest, ChunkedEngine, Compression, Control, EngineSettings, FileWriter, ObjectNaming,
    ObjectStore, ParentBackup,
};
use clinker_exec::{Command, CommandRunner, HostRunner};
use sha2::Digest;

/// Incompressible bytes anyone can regenerate: SHA-256(seed ‖ be64(i)),
/// i = 0, 1, … (`pattern` in `scripts/cinder_backup_driver.py`).
pub fn pattern(seed: &[u8], length: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(length + 32);
    let mut i = 0u64;
    while out.len() < length {
        let mut h = sha2::Sha256::new();
        h.update(seed);
        h.update(i.to_be_bytes());
        out.extend_from_slice(&h.finalize());
        i += 1;
    }
    out.truncate(length);
    out
}

/// The golden volume before and after its changes (`golden_volumes` in
/// the driver script).
pub fn golden_volumes() -> (Vec<u8>, Vec<u8>) {
    let mut full = pattern(b"full-a", 393_216);
    full.extend(std::iter::repeat_n(0u8, 917_504));
    full.extend(pattern(b"full-b", 262_144));
    let mut incr = full.clone();
    for (seed, offset, length) in [
        (&b"incr-a"[..], 65_536usize, 32_768usize),
        (b"incr-b", 1_300_000, 40_000),
        (b"incr-c", 700_000, 100),
    ] {
        incr[offset..offset + length].copy_from_slice(&pattern(seed, length));
    }
    (full, incr)
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts")
}

pub fn engine(
    store: Arc<dyn ObjectStore>,
    chunk_size: u64,
    sha_block_size: u64,
    compression: &str,
    naming: ObjectNaming,
) -> ChunkedEngine {
    ChunkedEngine::new(
        store,
        EngineSettings {
            chunk_size,
            sha_block_size,
            compression: Compression::from_name(compression).unwrap(),
            create_containers: true,
            naming,
            parallelism: 3,
        },
    )
}

pub fn object_store_naming(container: &str) -> ObjectNaming {
    ObjectNaming::ObjectStore {
        default_container: container.into(),
        availability_zone: "nova".into(),
    }
}

/// A backup row as the tests keep it.
#[derive(Clone, Debug)]
pub struct Made {
    pub record: BackupRecord,
    pub object_count: u64,
}

pub fn request(
    backup_id: &str,
    volume_id: &str,
    parent: Option<&Made>,
    container: Option<&str>,
) -> BackupRequest {
    let now = jiff::Timestamp::now();
    BackupRequest {
        backup_id: backup_id.into(),
        volume_id: volume_id.into(),
        volume_size_gb: 1,
        name: Some(format!("backup {backup_id}")),
        description: None,
        created_at: python_datetime_str(now, true),
        container: container.map(str::to_owned),
        parent: parent.map(|p| ParentBackup {
            record: p.record.clone(),
            size_gb: 1,
        }),
        volume_meta: Some("{\"version\": 2}".into()),
        started_at: now,
    }
}

pub async fn backup(engine: &ChunkedEngine, request: BackupRequest, volume: &[u8]) -> Made {
    let prepared = engine.prepare_backup(request).await.unwrap();
    let mut reader = volume;
    let outcome = engine
        .run_backup(&prepared, &mut reader, &Control::default())
        .await
        .unwrap();
    assert_eq!(outcome.bytes_read, volume.len() as u64);
    Made {
        record: prepared.record(),
        object_count: outcome.object_count,
    }
}

/// Restores `chain` into a file of `size` bytes (new and zeroed, or
/// pre-filled with 0xAA when `existing`) and returns its bytes.
pub async fn restore(
    engine: &ChunkedEngine,
    chain: &[BackupRecord],
    size: usize,
    existing: bool,
    dir: &Path,
) -> Vec<u8> {
    let path = dir.join(format!("restore-{}", rand::random::<u32>()));
    std::fs::write(&path, vec![if existing { 0xAA } else { 0 }; size]).unwrap();
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .await
        .unwrap();
    engine
        .restore_backup(
            chain,
            "volume",
            &mut FileWriter::new(file.into_std().await),
            !existing,
            &Control::default(),
        )
        .await
        .unwrap();
    let data = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    data
}

/// Changes about 1 % of the volume's `block`-sized blocks (at least 3),
/// spread over it.
pub fn change_one_percent(volume: &mut [u8], block: usize) {
    let blocks = volume.len() / block;
    let changes = (blocks / 100).max(3);
    for k in 0..changes {
        let index = (k * 7919 + 13) % blocks;
        let at = index * block + (k * 97) % block;
        let len = 100.min(volume.len() - at);
        volume[at..at + len].copy_from_slice(&pattern(format!("change-{k}").as_bytes(), len));
    }
}

/// The scenario every store runs: a full backup of random data, ~1 % of
/// the blocks changed, an incremental backup, each restored (into a new
/// volume and over an existing one) byte for byte, then deleted newest
/// first, leaving nothing under the volume's prefix in the container.
pub async fn full_incremental_restore_delete(engine: &ChunkedEngine, container: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let block = engine.settings().sha_block_size as usize;
    let chunk = engine.settings().chunk_size as usize;
    // Four and a half objects, half of it zeros (compressible).
    let size = chunk * 9 / 2;
    let mut volume = pattern(format!("vol-{}", rand::random::<u64>()).as_bytes(), size);
    volume[chunk..chunk * 3].fill(0);
    let volume_id = uuid();
    let full = backup(
        engine,
        request(&uuid(), &volume_id, None, container),
        &volume,
    )
    .await;
    assert_eq!(full.object_count, 5);
    let original = volume.clone();
    change_one_percent(&mut volume, block);
    let incr = backup(
        engine,
        request(&uuid(), &volume_id, Some(&full), container),
        &volume,
    )
    .await;
    assert!(
        incr.object_count >= 1 && incr.object_count < (size / block / 10) as u64,
        "an incremental stores only the changed blocks: {} objects",
        incr.object_count
    );
    for existing in [false, true] {
        let restored = restore(
            engine,
            std::slice::from_ref(&full.record),
            size,
            existing,
            dir.path(),
        )
        .await;
        assert!(restored == original, "full backup restored differs");
        let chain = [full.record.clone(), incr.record.clone()];
        let restored = restore(engine, &chain, size, existing, dir.path()).await;
        assert!(restored == volume, "incremental chain restored differs");
    }
    let store = engine.store();
    for made in [&incr, &full] {
        let deleted = engine.delete_backup(&made.record).await.unwrap();
        assert_eq!(
            deleted,
            made.object_count + 2,
            "data objects + metadata + sha256file"
        );
    }
    for made in [&full, &incr] {
        let left = match store
            .list_objects(&made.record.container, &format!("volume_{volume_id}"))
            .await
        {
            Ok(left) => left,
            Err(clinker_backup::StoreError::NotFound { .. }) => Vec::new(),
            Err(e) => panic!("listing after delete: {e}"),
        };
        assert!(left.is_empty(), "objects left after delete: {left:?}");
    }
}

pub fn uuid() -> String {
    let b: [u8; 16] = rand::random();
    format!(
        "{}-{}-4{}-a{}-{}",
        hex(&b[0..4]),
        hex(&b[4..6]),
        &hex(&b[6..8])[1..],
        &hex(&b[8..10])[1..],
        hex(&b[10..16])
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1" || v == "true")
}

pub fn on_ci() -> bool {
    flag("CI")
}

/// Whether a test that needs `what` can run: off CI a missing `what` skips
/// it with a message; under `CI=true` it is a failure.
pub fn require(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    assert!(!on_ci(), "CI=true but {what} is missing");
    eprintln!("skipping: {what} is missing");
    false
}

/// Cinder 29 in its venv (`scripts/install-cinder29.sh`).
#[derive(Debug)]
pub struct Cinder {
    python: PathBuf,
    runner: HostRunner,
}

impl Cinder {
    /// The venv, if installed.
    pub fn find() -> Option<Self> {
        let venv = std::env::var_os("CLINKER_CINDER_VENV")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/clinker-cinder29"))
            })?;
        let python = venv.join("bin/python");
        venv.join(".clinker-pins").exists().then_some(Self {
            python,
            runner: HostRunner::new(),
        })
    }

    /// Runs one job of `scripts/cinder_backup_driver.py`.
    pub async fn run(&self, job: &serde_json::Value) -> serde_json::Value {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.json");
        std::fs::write(&path, serde_json::to_vec(job).unwrap()).unwrap();
        let cmd = Command::new(self.python.display().to_string())
            .arg(
                scripts()
                    .join("cinder_backup_driver.py")
                    .display()
                    .to_string(),
            )
            .arg(path.display().to_string())
            .timeout(Duration::from_secs(300));
        let out = self.runner.run(&cmd).await.unwrap();
        assert!(
            out.success(),
            "cinder driver job failed ({}): {}",
            out.code,
            out.stderr
        );
        let last = out.stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
    }
}

/// A backup row for a Cinder job (`record` once the backup exists).
pub fn cinder_row(
    record: Option<&BackupRecord>,
    id: &str,
    volume_id: &str,
    parent: Option<&str>,
) -> serde_json::Value {
    serde_json::json!({
        "id": id, "volume_id": volume_id, "display_name": id, "display_description": null,
        "created_at": "2026-12-01T10:00:00+00:00",
        "container": record.map(|r| r.container.clone()),
        "service_metadata": record.map(|r| r.service_metadata.clone()),
        "parent_id": parent, "size": 1,
    })
}

/// Cinder's driver (the job `base`: driver and options, with `chunk_size`
/// objects of 32 KiB blocks) and `engine` restore each other's full +
/// incremental backups byte for byte: Cinder writes with `compressions`
/// (full, incremental), Clinker restores into new and existing volumes;
/// Clinker writes, Cinder restores. Each side then deletes the other's
/// backups and nothing is left.
pub async fn cross_restore_with_cinder(
    cinder: &Cinder,
    engine: &ChunkedEngine,
    base: &serde_json::Value,
    compressions: [&str; 2],
) {
    let chunk = engine.settings().chunk_size as usize;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("volume");
    let size = 3 * chunk + 12_345;
    let job = |op: &str, compression: Option<&str>, rows: serde_json::Value| {
        let mut job = base.clone();
        job["op"] = op.into();
        job["backups"] = rows;
        job["volume"] = path.display().to_string().into();
        if let Some(compression) = compression {
            job["options"]["backup_compression_algorithm"] = compression.into();
        }
        job
    };

    // Cinder writes, Clinker restores and deletes.
    let volume_id = uuid();
    let mut volume = pattern(b"cinder-made", size);
    volume[chunk..2 * chunk].fill(0);
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut chain: Vec<BackupRecord> = Vec::new();
    let mut rows: Vec<serde_json::Value> = Vec::new();
    for compression in compressions {
        if !seen.is_empty() {
            change_one_percent(&mut volume, 32_768);
        }
        std::fs::write(&path, &volume).unwrap();
        seen.push(volume.clone());
        let id = uuid();
        let parent = chain.last().map(|r| r.id.clone());
        let mut with_new = rows.clone();
        with_new.push(cinder_row(None, &id, &volume_id, parent.as_deref()));
        let made = cinder
            .run(&job("backup", Some(compression), with_new.into()))
            .await;
        let record = BackupRecord {
            id: id.clone(),
            container: made["container"].as_str().unwrap().into(),
            service_metadata: made["service_metadata"].as_str().unwrap().into(),
        };
        rows.push(cinder_row(
            Some(&record),
            &id,
            &volume_id,
            parent.as_deref(),
        ));
        chain.push(record);
    }
    for existing in [false, true] {
        for (n, want) in seen.iter().enumerate() {
            let restored = restore(engine, &chain[..=n], size, existing, dir.path()).await;
            assert!(
                restored == *want,
                "Cinder's backup {n} restored here differs"
            );
        }
    }
    for record in chain.iter().rev() {
        engine.delete_backup(record).await.unwrap();
    }

    // Clinker writes, Cinder restores and deletes.
    let volume_id = uuid();
    let mut volume = pattern(b"clinker-made", size);
    volume[2 * chunk..3 * chunk].fill(0);
    // An object of random windows, zeros and text: Clinker stores it as
    // one zlib stream mixing stored and deflated segments, which Cinder's
    // zlib must read back.
    volume[chunk + chunk / 4..chunk + chunk / 2].fill(0);
    for (i, byte) in volume[chunk + chunk / 2..chunk + 3 * chunk / 4]
        .iter_mut()
        .enumerate()
    {
        *byte = b"a volume of text, "[i % 18];
    }
    let full = backup(engine, request(&uuid(), &volume_id, None, None), &volume).await;
    let original = volume.clone();
    change_one_percent(&mut volume, 32_768);
    let incr = backup(
        engine,
        request(&uuid(), &volume_id, Some(&full), None),
        &volume,
    )
    .await;
    let rows = [
        cinder_row(Some(&full.record), &full.record.id, &volume_id, None),
        cinder_row(
            Some(&incr.record),
            &incr.record.id,
            &volume_id,
            Some(&full.record.id),
        ),
    ];
    for (n, want) in [&original, &volume].into_iter().enumerate() {
        std::fs::write(&path, vec![0u8; size]).unwrap();
        let result = cinder.run(&job("restore", None, rows[..=n].into())).await;
        assert_eq!(result["volume_meta"].as_array().map(Vec::len), Some(n + 1));
        assert!(
            std::fs::read(&path).unwrap() == *want,
            "Cinder's restore of Clinker's backup {n} differs"
        );
    }
    for n in [1, 0] {
        cinder.run(&job("delete", None, rows[..=n].into())).await;
    }
    for made in [&full, &incr] {
        let left = engine
            .store()
            .list_objects(&made.record.container, &made.record.service_metadata)
            .await
            .unwrap_or_default();
        assert!(left.is_empty(), "Cinder left {left:?}");
    }
}
