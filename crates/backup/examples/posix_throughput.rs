//! Backup and restore throughput of the POSIX driver, beside the disk's own
//! copy speed in the same run (not a test: it prints figures).
//!
//!   cargo run --release -p clinker-backup --example posix_throughput -- \
//!       DIR [SIZE_MIB=1024] [OBJECT_MIB=1907] [COMPRESSION=zlib]
//!
//! Writes a volume of random data to DIR, copies it once with std::fs::copy
//! (the baseline), backs it up (full), changes 1 % of its 32 KiB blocks,
//! backs it up again (incremental), restores the chain into a new file, and
//! prints MB/s for each. OBJECT_MIB defaults to Cinder's backup_file_size.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use clinker_backup::store::PosixStore;
use clinker_backup::{
    BackupRequest, ChunkedEngine, Compression, Control, EngineSettings, FileWriter, ObjectNaming,
    ParentBackup,
};

fn rate(bytes: u64, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64();
    format!("{secs:7.2} s  {:8.1} MB/s", bytes as f64 / secs / 1e6)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(
        args.get(1)
            .expect("usage: DIR [SIZE_MIB] [OBJECT_MIB] [COMPRESSION]"),
    );
    let size_mib: u64 = args.get(2).map_or(1024, |a| a.parse().unwrap());
    let object_bytes: u64 = args
        .get(3)
        .map_or(clinker_config::DEFAULT_BACKUP_FILE_SIZE, |a| {
            a.parse::<u64>().unwrap() << 20
        });
    let compression = args.get(4).map_or("zlib", String::as_str);
    let size = size_mib << 20;
    std::fs::create_dir_all(&dir).unwrap();
    let volume = dir.join("volume.img");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&volume).unwrap());
        let mut block = vec![0u8; 1 << 20];
        for _ in 0..size_mib {
            block.iter_mut().for_each(|b| *b = rand::random());
            f.write_all(&block).unwrap();
        }
    }
    let started = Instant::now();
    std::fs::copy(&volume, dir.join("copy.img")).unwrap();
    nix_sync(&dir.join("copy.img"));
    println!("cp (fs::copy + fsync)      {}", rate(size, started));
    std::fs::remove_file(dir.join("copy.img")).unwrap();

    let root = dir.join("store");
    let engine = ChunkedEngine::new(
        Arc::new(PosixStore::new(&root)),
        EngineSettings {
            chunk_size: object_bytes,
            sha_block_size: 32768,
            compression: Compression::from_name(compression).unwrap(),
            create_containers: true,
            naming: ObjectNaming::Posix,
            parallelism: EngineSettings::default_parallelism(object_bytes),
        },
    );
    let request = |id: &str, parent: Option<ParentBackup>| BackupRequest {
        backup_id: id.into(),
        volume_id: "bench".into(),
        volume_size_gb: size_mib.div_ceil(1024),
        name: None,
        description: None,
        created_at: String::new(),
        container: None,
        parent,
        volume_meta: None,
        started_at: jiff::Timestamp::now(),
    };
    let started = Instant::now();
    let full = engine
        .prepare_backup(request("full0000", None))
        .await
        .unwrap();
    let mut file = tokio::fs::File::open(&volume).await.unwrap();
    let outcome = engine
        .run_backup(&full, &mut file, &Control::default())
        .await
        .unwrap();
    println!(
        "full backup ({compression}, {} objects) {}",
        outcome.object_count,
        rate(size, started)
    );
    let full_time = started.elapsed();

    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&volume)
            .unwrap();
        let blocks = size / 32768;
        for k in 0..blocks / 100 {
            f.seek(SeekFrom::Start((k * 100 + 7) * 32768)).unwrap();
            f.write_all(&rand::random::<[u8; 32]>()).unwrap();
        }
    }
    let started = Instant::now();
    let parent = ParentBackup {
        record: full.record(),
        size_gb: size_mib.div_ceil(1024),
    };
    let incr = engine
        .prepare_backup(request("incr0000", Some(parent)))
        .await
        .unwrap();
    let mut file = tokio::fs::File::open(&volume).await.unwrap();
    let outcome = engine
        .run_backup(&incr, &mut file, &Control::default())
        .await
        .unwrap();
    println!(
        "incremental after 1 %      {}  ({} objects, {:.1} % of the full backup's time)",
        rate(size, started),
        outcome.object_count,
        started.elapsed().as_secs_f64() * 100.0 / full_time.as_secs_f64()
    );

    let target = dir.join("restored.img");
    std::fs::File::create(&target)
        .unwrap()
        .set_len(size)
        .unwrap();
    let started = Instant::now();
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .open(&target)
        .await
        .unwrap();
    engine
        .restore_backup(
            &[full.record(), incr.record()],
            "bench",
            &mut FileWriter::new(file.into_std().await),
            true,
            &Control::default(),
        )
        .await
        .unwrap();
    println!("restore of the chain        {}", rate(size, started));
    let same = std::fs::read(&target).unwrap() == std::fs::read(&volume).unwrap();
    println!("restored volume identical: {same}");
    for record in [incr.record(), full.record()] {
        engine.delete_backup(&record).await.unwrap();
    }
    std::fs::remove_file(&target).unwrap();
    std::fs::remove_file(&volume).unwrap();
}

fn nix_sync(path: &std::path::Path) {
    std::fs::File::open(path).unwrap().sync_all().unwrap();
}
