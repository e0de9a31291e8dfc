//! The volumes the chunked engine reads and writes: a local file or block
//! device, or an RBD image reached with the `rbd` tool through the
//! `CommandRunner`, as Cinder's chunked drivers read any volume os-brick
//! can attach.
//!
//! An RBD image is read whole with `rbd export <image> -` (an incremental
//! backup hashes every block, as Cinder's does, and stores only the
//! changed ones), and written with an RBD diff stream into
//! `rbd import-diff - <image>`: data records where the backup has data,
//! zero records (discards) for whole RBD objects of zeros, no `from` or `to`
//! snapshot, and the image's own size, so the image keeps its name, size
//! and snapshots. `rbd export` dying half-way must never look like the end
//! of the volume, so its exit is checked before the stream reports its
//! end, and a backup whose read failed is never finalized.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use clinker_exec::{ExecError, Output, PipedChild, ReadingChild};
use tokio::io::{AsyncRead, ReadBuf};

use super::{BackupOutcome, BackupRecord, ChunkedEngine, Control, PreparedBackup};
use super::{FileWriter, RestoreOutcome, VolumeWriter};
use crate::ceph::cli::Cli;
use crate::ceph::diff::DiffWriter;
use crate::ceph::{MAX_BLOCK, RbdVolume, RestoreTarget, VolumeData};
use crate::engine::zeros::all_zero;
use crate::error::BackupError;

impl ChunkedEngine {
    /// Backs up the volume `data` holds (see [`Self::run_backup`]).
    ///
    /// # Errors
    /// As [`Self::run_backup`]; the volume cannot be opened or read (an
    /// `rbd export` that fails is classified as the Ceph driver's
    /// commands are).
    pub async fn backup_volume(
        &self,
        prepared: &PreparedBackup,
        data: &VolumeData,
        control: &Control,
    ) -> Result<BackupOutcome, BackupError> {
        match data {
            VolumeData::Local(path) => {
                let mut file = tokio::fs::File::open(path).await.map_err(|e| {
                    BackupError::VolumeIo(std::io::Error::new(
                        e.kind(),
                        format!("cannot open {}: {e}", path.display()),
                    ))
                })?;
                file.set_max_buf_size(super::SEGMENT_BYTES);
                self.run_backup(prepared, &mut file, control).await
            }
            VolumeData::Rbd(volume) => {
                let export = Cli::rbd_stream(
                    &volume.access,
                    &["export", "--no-progress", &volume.spec(), "-"],
                );
                let (child, what) = self.cli.reading(&export).await?;
                let mut reader = ExportReader::new(child, what);
                self.run_backup(prepared, &mut reader, control).await
            }
        }
    }

    /// Restores `chain` (the full backup first) into `target` (see
    /// [`Self::restore_backup`]).
    ///
    /// # Errors
    /// As [`Self::restore_backup`]; the volume cannot be opened or
    /// written (`rbd import-diff` failing included).
    pub async fn restore_volume(
        &self,
        chain: &[BackupRecord],
        target: &RestoreTarget,
        control: &Control,
    ) -> Result<RestoreOutcome, BackupError> {
        match &target.data {
            VolumeData::Local(path) => {
                let file = tokio::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .await
                    .map_err(|e| {
                        BackupError::VolumeIo(std::io::Error::new(
                            e.kind(),
                            format!("cannot open {}: {e}", path.display()),
                        ))
                    })?;
                self.restore_backup(
                    chain,
                    &target.volume_id,
                    &mut FileWriter::new(file.into_std().await),
                    target.is_new,
                    control,
                )
                .await
            }
            VolumeData::Rbd(volume) => self.restore_rbd(chain, target, volume, control).await,
        }
    }

    async fn restore_rbd(
        &self,
        chain: &[BackupRecord],
        target: &RestoreTarget,
        volume: &RbdVolume,
        control: &Control,
    ) -> Result<RestoreOutcome, BackupError> {
        let spec = volume.spec();
        // The stream's size record resizes the image: it must be the
        // image's own.
        let size = self
            .cli
            .image_size(&volume.access, &spec)
            .await?
            .ok_or_else(|| {
                BackupError::InvalidVolume(format!("the RBD image {spec} does not exist"))
            })?;
        let import = Cli::rbd_stream(
            &volume.access,
            &["import-diff", "--no-progress", "-", &spec],
        );
        let (child, what) = self.cli.piped(&import).await?;
        let out = DiffWriter::begin(child, None, None, size)
            .await
            .map_err(BackupError::VolumeIo)?;
        let mut writer = DiffVolumeWriter { out };
        let restored = self
            .restore_backup(
                chain,
                &target.volume_id,
                &mut writer,
                target.is_new,
                control,
            )
            .await;
        match restored {
            Ok(outcome) => {
                let child = writer.out.end().await.map_err(BackupError::VolumeIo)?;
                Cli::check(&what, child.finish().await)?;
                Ok(outcome)
            }
            Err(e) => {
                // The stream stays unfinished: import-diff fails on it.
                let _ = writer.out.into_inner().finish().await;
                Err(e)
            }
        }
    }
}

/// A restore's writes as an RBD diff stream: a whole RBD object of zeros
/// becomes a zero record (the object is discarded, the image stays
/// sparse) rather than data. Zeros in part of an object are sent as data:
/// a partial discard may be skipped (`rbd_skip_partial_discard`) and
/// leave old bytes behind.
struct DiffVolumeWriter {
    out: DiffWriter<PipedChild>,
}

#[async_trait]
impl VolumeWriter for DiffVolumeWriter {
    async fn write_at(&mut self, offset: u64, data: Bytes) -> std::io::Result<()> {
        let mut at = offset;
        let mut rest = &data[..];
        while !rest.is_empty() {
            // Up to the next object boundary.
            let to_boundary = MAX_BLOCK - at % MAX_BLOCK;
            let len = usize::try_from(to_boundary).map_or(rest.len(), |n| n.min(rest.len()));
            let (piece, after) = rest.split_at(len);
            if piece.len() as u64 == MAX_BLOCK && all_zero(piece) {
                self.out.zero(at, MAX_BLOCK).await?;
            } else {
                self.out.write(at, piece).await?;
            }
            at += len as u64;
            rest = after;
        }
        Ok(())
    }

    /// `import-diff` applies records as they arrive; what it holds is
    /// durable when it exits, which the restore checks at the end.
    async fn sync(&mut self) -> std::io::Result<()> {
        self.out.flush().await
    }
}

type Exit = Pin<Box<dyn Future<Output = Result<Output, ExecError>> + Send>>;

/// `rbd export -`'s stdout whose end is only reported once the process
/// exited well: a failed export ends in its classified error (carried in
/// the `io::Error`, see [`BackupError::from_volume_io`]) instead.
enum ExportReader {
    Reading { child: ReadingChild, what: String },
    Exiting { exit: Exit, what: String },
    Done,
}

impl ExportReader {
    fn new(child: ReadingChild, what: String) -> Self {
        Self::Reading { child, what }
    }
}

impl AsyncRead for ExportReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            match std::mem::replace(this, Self::Done) {
                Self::Reading { mut child, what } => {
                    let before = buf.filled().len();
                    match Pin::new(&mut child).poll_read(cx, buf) {
                        Poll::Ready(Ok(()))
                            if buf.filled().len() == before && buf.remaining() > 0 =>
                        {
                            *this = Self::Exiting {
                                exit: Box::pin(child.finish()),
                                what,
                            };
                        }
                        other => {
                            *this = Self::Reading { child, what };
                            return other;
                        }
                    }
                }
                Self::Exiting { mut exit, what } => match exit.as_mut().poll(cx) {
                    Poll::Pending => {
                        *this = Self::Exiting { exit, what };
                        return Poll::Pending;
                    }
                    Poll::Ready(exited) => {
                        return Poll::Ready(
                            Cli::check(&what, exited).map_err(std::io::Error::other),
                        );
                    }
                },
                Self::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use clinker_exec::FakeRunner;
    use serde_json::json;

    use super::*;
    use crate::compression::Compression;
    use crate::engine::{BackupRequest, EngineSettings};
    use crate::format::ObjectNaming;
    use crate::store::PosixStore;

    const MIB: usize = 1 << 20;
    const GIB: u64 = 1 << 30;
    /// The volume's access arguments, as its connection info gives them.
    const S: &str = "rbd --id cinder --conf /etc/ceph/ceph.conf -m 127.0.0.1:6789";

    fn engine(dir: &std::path::Path, runner: &FakeRunner) -> ChunkedEngine {
        ChunkedEngine::with_runner(
            Arc::new(PosixStore::new(dir)),
            EngineSettings {
                chunk_size: 8 << 20,
                sha_block_size: 4096,
                compression: Compression::none(),
                create_containers: true,
                naming: ObjectNaming::Posix,
                parallelism: 2,
            },
            Arc::new(runner.clone()),
        )
    }

    fn rbd() -> VolumeData {
        let data = json!({
            "name": "volumes/volume-1", "hosts": ["127.0.0.1"], "ports": ["6789"],
            "auth_enabled": true, "auth_username": "cinder",
        });
        VolumeData::Rbd(
            RbdVolume::from_connection(data.as_object().unwrap(), "/etc/ceph/ceph.conf".as_ref())
                .unwrap(),
        )
    }

    fn request(id: &str) -> BackupRequest {
        BackupRequest {
            backup_id: id.into(),
            volume_id: "1".into(),
            volume_size_gb: 1,
            name: None,
            description: None,
            created_at: "2026-12-08 00:00:00".into(),
            container: None,
            parent: None,
            volume_meta: None,
            started_at: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    fn files(dir: &std::path::Path) -> usize {
        walk(dir).len()
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(walk(&path));
            } else {
                found.push(path);
            }
        }
        found
    }

    #[tokio::test]
    async fn an_rbd_volume_is_read_with_rbd_export_whose_failure_fails_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        let runner = FakeRunner::new();
        let export = format!("{S} export --no-progress volumes/volume-1 -");
        runner.on_times(&export, 1, Output::ok("x".repeat(3 * MIB)));
        let engine = engine(dir.path(), &runner);
        let prepared = engine.prepare_backup(request("b1")).await.unwrap();
        let done = engine
            .backup_volume(&prepared, &rbd(), &Control::default())
            .await
            .unwrap();
        assert_eq!(done.bytes_read, 3 << 20);
        assert_eq!(runner.calls(), std::slice::from_ref(&export));
        let meta = engine.read_metadata(&prepared.record()).await.unwrap();
        assert_eq!(meta.objects.len(), 1);

        // An export that dies after part of the image: its data ended
        // early, and the backup fails (classified) with nothing stored,
        // rather than being taken for a short volume.
        let failed = Output {
            code: 2,
            stdout: "x".repeat(MIB),
            stderr: "rbd: error reading from source image".into(),
        };
        runner.on(&export, failed);
        let stored = files(dir.path());
        let prepared = engine.prepare_backup(request("b2")).await.unwrap();
        let err = engine
            .backup_volume(&prepared, &rbd(), &Control::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, BackupError::Rbd { message, .. } if message.contains("error reading")),
            "{err:?}"
        );
        assert_eq!(files(dir.path()), stored, "the failed backup left objects");
    }

    /// The records of an RBD diff stream: (tag, offset, length).
    fn records(stream: &[u8]) -> (u64, Vec<(char, u64, u64)>) {
        let header = b"rbd diff v1\n";
        assert!(stream.starts_with(header));
        let mut at = header.len();
        let u64_at = |at: usize| u64::from_le_bytes(stream[at..at + 8].try_into().unwrap());
        assert_eq!(stream[at], b's', "no from or to snapshot, then the size");
        let size = u64_at(at + 1);
        at += 9;
        let mut found = Vec::new();
        loop {
            match stream[at] {
                b'e' => {
                    assert_eq!(at + 1, stream.len());
                    return (size, found);
                }
                tag @ (b'w' | b'z') => {
                    let (offset, len) = (u64_at(at + 1), u64_at(at + 9));
                    found.push((char::from(tag), offset, len));
                    at += 17;
                    if tag == b'w' {
                        at += usize::try_from(len).unwrap();
                    }
                }
                other => panic!("unexpected record {other}"),
            }
        }
    }

    #[tokio::test]
    async fn a_restore_into_rbd_is_a_diff_stream_at_the_images_own_size() {
        let dir = tempfile::tempdir().unwrap();
        let runner = FakeRunner::new();
        let engine = engine(dir.path(), &runner);
        // 4 MiB of data, a whole RBD object of zeros, then an object with
        // 4 KiB of data and zeros.
        let mut data = vec![7u8; 4 * MIB];
        data.extend(vec![0u8; 4 * MIB]);
        data.extend(vec![9u8; 4096]);
        data.extend(vec![0u8; 4 * MIB - 4096]);
        let prepared = engine.prepare_backup(request("b1")).await.unwrap();
        engine
            .run_backup(&prepared, &mut data.as_slice(), &Control::default())
            .await
            .unwrap();

        runner.on(
            &format!("{S} info --format json volumes/volume-1"),
            Output::ok(r#"{"size": 2147483648}"#),
        );
        let import = format!("{S} import-diff --no-progress - volumes/volume-1");
        let target = RestoreTarget {
            volume_id: "1".into(),
            data: rbd(),
            size_gb: 1,
            is_new: false,
        };
        let outcome = engine
            .restore_volume(&[prepared.record()], &target, &Control::default())
            .await
            .unwrap();
        assert_eq!(outcome.bytes, 12 << 20);
        let fed = runner
            .commands()
            .into_iter()
            .find(|c| c.command_line() == import)
            .expect("import-diff ran");
        let (size, found) = records(fed.stdin.as_deref().unwrap());
        // The image's size (2 GiB), not the volume row's: the stream never
        // resizes the image.
        assert_eq!(size, 2 * GIB);
        let m = 1u64 << 20;
        assert_eq!(
            found,
            [('w', 0, 4 * m), ('z', 4 * m, 4 * m), ('w', 8 * m, 4 * m)]
        );

        // import-diff failing fails the restore.
        runner.on(&import, Output::failed(22, "rbd: import-diff failed"));
        let err = engine
            .restore_volume(&[prepared.record()], &target, &Control::default())
            .await
            .unwrap_err();
        assert!(matches!(err, BackupError::Rbd { .. }), "{err:?}");
    }
}
