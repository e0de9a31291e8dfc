//! One piece of the volume (an object's worth, `chunk_size` bytes) read
//! and worked on in segments, so that every CPU is busy while the volume
//! is still being read: each segment (a few MiB, whole SHA blocks) is
//! hashed block by block, and for a full backup compressed, on the
//! blocking pool as soon as it is read; the MD5 of the object, which only
//! one thread can compute, follows the segments in order on a thread of
//! its own. Once the piece is read, its objects are put together from the
//! segments without copying them (zlib streams by
//! [`zlib_segments`](crate::compression::zlib_segments)).
//!
//! An incremental backup knows which bytes to store only once the piece's
//! hashes are compared with the parent's: its changed runs (usually
//! small) are then compressed and hashed as before.
//!
//! What is stored is what Cinder's `ChunkedBackupDriver.backup` stores for
//! the same bytes: one object per piece (or per changed run), the same
//! block hashes, MD5s, lengths and compression choices.

use std::sync::Arc;

use bytes::Bytes;
use md5::Digest as _;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::{Progress, zeros};
use crate::compression::Compression;
use crate::compression::zlib_segments::{self, DeflatedSegment};
use crate::error::BackupError;

/// The bytes of a segment (rounded to whole SHA blocks): large enough that
/// the per-segment costs vanish, small enough that the work spreads. A
/// volume read through a `tokio::fs::File` reads best with this as its
/// `max_buf_size` (tokio's default, 2 MiB, halves each read).
pub const SEGMENT_BYTES: usize = 4 << 20;

/// How the pieces of one backup are worked on.
#[derive(Clone, Debug)]
pub(super) struct PieceWork {
    /// Bytes per SHA-256 of the sha256file.
    pub block: usize,
    /// Bytes per piece (`chunk_size`).
    pub piece: usize,
    /// Bytes per segment: whole blocks.
    pub segment: usize,
    pub compression: Compression,
    /// Segments worked on at once: one per CPU.
    pub workers: Arc<Semaphore>,
}

impl PieceWork {
    pub fn new(block: usize, piece: usize, compression: Compression) -> Self {
        let block = block.max(1);
        let segment = (SEGMENT_BYTES / block).max(1) * block;
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            block,
            piece,
            segment,
            compression,
            workers: Arc::new(Semaphore::new(cpus)),
        }
    }
}

/// One segment after its work.
struct Segment {
    data: Bytes,
    zero: bool,
    sha256s: Vec<String>,
    deflated: Option<DeflatedSegment>,
}

/// A piece read, its segments still being worked on.
pub(super) struct PieceInFlight {
    /// Where the piece starts in the volume.
    pub offset: u64,
    /// Its bytes.
    pub len: u64,
    parent: Option<Vec<String>>,
    segments: Vec<JoinHandle<Result<Segment, BackupError>>>,
    md5: Option<Md5Stream>,
}

/// One data object ready to store.
pub(super) struct PreparedObject {
    pub offset: u64,
    pub length: u64,
    /// MD5 of the uncompressed bytes (the metadata's `md5`).
    pub md5: String,
    pub compression: String,
    /// The object's bytes, in order.
    pub parts: Vec<Bytes>,
    /// MD5 of the object's bytes, which the store checks on arrival.
    pub payload_md5: String,
}

/// A piece after hashing, diffing and compressing.
pub(super) struct PreparedPiece {
    pub sha256s: Vec<String>,
    pub objects: Vec<PreparedObject>,
}

/// Reads the next piece of `volume` (up to `work.piece` bytes, short only
/// at the end of the volume), starting each segment's work as it comes;
/// `None` at the end of the volume. `parent` holds the parent backup's
/// hashes for this piece's blocks in an incremental backup.
pub(super) async fn read_piece<R>(
    volume: &mut R,
    work: &PieceWork,
    offset: u64,
    parent: Option<Vec<String>>,
    progress: &Progress,
) -> Result<Option<PieceInFlight>, BackupError>
where
    R: AsyncRead + Unpin + Send + ?Sized,
{
    let full = parent.is_none();
    let deflate = full && work.compression.by_segments();
    let md5 = full.then(Md5Stream::start);
    let mut segments = Vec::new();
    let mut len = 0usize;
    while len < work.piece {
        let want = work.segment.min(work.piece - len);
        let data = read_up_to(volume, want).await?;
        if data.is_empty() {
            break;
        }
        let short = data.len() < want;
        len += data.len();
        progress.add(data.len() as u64, 0);
        if let Some(md5) = &md5 {
            md5.feed(data.clone());
        }
        let permit = work
            .workers
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| BackupError::Internal(format!("backup workers gone: {e}")))?;
        let block = work.block;
        segments.push(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            segment_work(data, block, deflate)
        }));
        if short {
            break;
        }
    }
    if len == 0 {
        return Ok(None);
    }
    Ok(Some(PieceInFlight {
        offset,
        len: len as u64,
        parent,
        segments,
        md5,
    }))
}

/// Reads up to `size` bytes, short only at the end of the volume (Python's
/// `file.read(n)`).
async fn read_up_to<R>(volume: &mut R, size: usize) -> Result<Bytes, BackupError>
where
    R: AsyncRead + Unpin + Send + ?Sized,
{
    let mut buffer = Vec::with_capacity(size);
    while buffer.len() < size {
        let read = (&mut *volume)
            .take((size - buffer.len()) as u64)
            .read_buf(&mut buffer)
            .await
            .map_err(BackupError::from_volume_io)?;
        if read == 0 {
            break;
        }
    }
    Ok(Bytes::from(buffer))
}

fn segment_work(data: Bytes, block: usize, deflate: bool) -> Result<Segment, BackupError> {
    let zero = zeros::all_zero(&data);
    let sha256s = data
        .chunks(block)
        .map(|b| {
            if zero || zeros::all_zero(b) {
                zeros::sha256_hex(b.len())
            } else {
                hex::encode(sha2::Sha256::digest(b))
            }
        })
        .collect();
    let deflated = match (deflate, zero) {
        (false, _) => None,
        (true, true) => Some(zeros::deflate_segment(data.len())?),
        (true, false) => Some(zlib_segments::deflate_segment(&data)?),
    };
    Ok(Segment {
        data,
        zero,
        sha256s,
        deflated,
    })
}

fn joined<T>(done: Result<T, tokio::task::JoinError>) -> Result<T, BackupError> {
    done.map_err(|e| BackupError::Internal(format!("backup task failed: {e}")))
}

impl PieceInFlight {
    /// Waits for the segments' work and makes the piece's objects.
    pub async fn finish(self, work: &PieceWork) -> Result<PreparedPiece, BackupError> {
        let mut segments = Vec::with_capacity(self.segments.len());
        for segment in self.segments {
            segments.push(joined(segment.await)??);
        }
        let sha256s: Vec<String> = segments
            .iter_mut()
            .flat_map(|s| std::mem::take(&mut s.sha256s))
            .collect();
        let compression = work.compression.clone();
        let offset = self.offset;
        let objects = match (self.parent, self.md5) {
            (None, Some(md5)) => {
                let md5 = md5.finish().await?;
                joined(
                    tokio::task::spawn_blocking(move || {
                        whole_object(segments, offset, md5, &compression)
                    })
                    .await,
                )??
            }
            (parent, _) => {
                let parent = parent.unwrap_or_default();
                let block = work.block;
                let len = self.len;
                let runs = changed_runs(&sha256s, &parent, block, len);
                joined(
                    tokio::task::spawn_blocking(move || {
                        run_objects(&segments, runs, offset, &compression)
                    })
                    .await,
                )??
            }
        };
        Ok(PreparedPiece { sha256s, objects })
    }
}

/// A full backup's object: the whole piece, compressed when that makes it
/// smaller (Cinder's `_prepare_output_data`).
fn whole_object(
    mut segments: Vec<Segment>,
    offset: u64,
    md5: String,
    compression: &Compression,
) -> Result<Vec<PreparedObject>, BackupError> {
    let length: u64 = segments.iter().map(|s| s.data.len() as u64).sum();
    let packed: Option<Vec<Bytes>> = if compression.is_none() {
        None
    } else if compression.by_segments() {
        let deflated: Vec<&DeflatedSegment> = segments
            .iter()
            .filter_map(|s| s.deflated.as_ref())
            .collect();
        if zlib_segments::stream_len(&deflated) < length {
            let trailer = zlib_segments::trailer(&deflated);
            let mut parts = Vec::with_capacity(segments.len() + 2);
            parts.push(Bytes::from_static(&zlib_segments::HEADER));
            parts.extend(
                segments
                    .iter_mut()
                    .filter_map(|s| s.deflated.take())
                    .map(|d| Bytes::from(d.deflated)),
            );
            parts.push(Bytes::copy_from_slice(&trailer));
            Some(parts)
        } else {
            None
        }
    } else if segments.iter().all(|s| s.zero) {
        let len = usize::try_from(length).unwrap_or(usize::MAX);
        zeros::compress(compression, len)?.map(|p| vec![Bytes::from(p)])
    } else {
        let data = segments
            .iter()
            .map(|s| s.data.clone())
            .collect::<Vec<_>>()
            .concat();
        compression.compress(&data)?.map(|p| vec![Bytes::from(p)])
    };
    let object = match packed {
        Some(parts) => PreparedObject {
            offset,
            length,
            payload_md5: md5_of_parts(&parts),
            md5,
            compression: compression.name().to_owned(),
            parts,
        },
        None => PreparedObject {
            offset,
            length,
            payload_md5: md5.clone(),
            md5,
            compression: "none".to_owned(),
            parts: segments.into_iter().map(|s| s.data).collect(),
        },
    };
    Ok(vec![object])
}

fn md5_of_parts(parts: &[Bytes]) -> String {
    let mut md5 = md5::Md5::new();
    parts.iter().for_each(|p| md5.update(p));
    hex::encode(md5.finalize())
}

/// An incremental backup's objects: one per changed run, each hashed and
/// compressed as Cinder does (compression on a thread of its own beside
/// the MD5s).
fn run_objects(
    segments: &[Segment],
    runs: Vec<(usize, usize)>,
    offset: u64,
    compression: &Compression,
) -> Result<Vec<PreparedObject>, BackupError> {
    let runs: Vec<(usize, Bytes)> = runs
        .into_iter()
        .map(|(start, end)| (start, run_bytes(segments, start, end)))
        .collect();
    let (packed, md5s) = std::thread::scope(|scope| {
        let packer = scope.spawn(|| {
            runs.iter()
                .map(|(_, run)| {
                    if zeros::all_zero(run) {
                        zeros::compress(compression, run.len())
                    } else {
                        compression.compress(run)
                    }
                })
                .collect::<Result<Vec<_>, _>>()
        });
        let md5s: Vec<String> = runs
            .iter()
            .map(|(_, run)| {
                if zeros::all_zero(run) {
                    zeros::md5_hex(run.len())
                } else {
                    crate::store::md5_hex(run)
                }
            })
            .collect();
        let packed = packer
            .join()
            .map_err(|_| BackupError::Internal("the compression thread panicked".into()));
        (packed, md5s)
    });
    let mut objects = Vec::with_capacity(runs.len());
    for (((start, run), packed), md5) in runs.into_iter().zip(packed??).zip(md5s) {
        let (compression, parts, payload_md5) = match packed {
            Some(packed) => {
                let payload_md5 = crate::store::md5_hex(&packed);
                (
                    compression.name().to_owned(),
                    vec![Bytes::from(packed)],
                    payload_md5,
                )
            }
            None => ("none".to_owned(), vec![run.clone()], md5.clone()),
        };
        objects.push(PreparedObject {
            offset: offset + start as u64,
            length: run.len() as u64,
            md5,
            compression,
            parts,
            payload_md5,
        });
    }
    Ok(objects)
}

/// The piece's bytes `start..end`: a slice of one segment, or a copy when
/// the range spans several.
fn run_bytes(segments: &[Segment], start: usize, end: usize) -> Bytes {
    let mut at = 0usize;
    let mut pieces = Vec::new();
    for segment in segments {
        let (from, to) = (at, at + segment.data.len());
        at = to;
        if to <= start || from >= end {
            continue;
        }
        pieces.push(
            segment
                .data
                .slice(start.max(from) - from..end.min(to) - from),
        );
    }
    match <[Bytes; 1]>::try_from(pieces) {
        Ok([one]) => one,
        Err(pieces) => Bytes::from(pieces.concat()),
    }
}

/// The runs of blocks whose hash differs from the parent's, as Cinder
/// groups them: a run ends at the first unchanged block, the last one at
/// the end of the piece. Byte ranges within the piece.
fn changed_runs(
    sha256s: &[String],
    parent: &[String],
    block: usize,
    len: u64,
) -> Vec<(usize, usize)> {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let mut runs = Vec::new();
    let mut start: Option<usize> = None;
    for (index, sha) in sha256s.iter().enumerate() {
        let changed = parent.get(index) != Some(sha);
        match (changed, start) {
            (true, None) => start = Some(index * block),
            (false, Some(s)) => {
                runs.push((s, index * block));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push((s, len));
    }
    runs
}

/// The MD5 of a full backup's piece, computed on a thread of its own as
/// the segments are read. Runs of zeros are fed only once something else
/// follows them: a piece of zeros takes its MD5 from the memo.
struct Md5Stream {
    feed: std::sync::mpsc::Sender<Bytes>,
    done: JoinHandle<String>,
}

impl Md5Stream {
    fn start() -> Self {
        let (feed, segments) = std::sync::mpsc::channel::<Bytes>();
        let done = tokio::task::spawn_blocking(move || {
            let mut md5 = md5::Md5::new();
            let (mut total, mut zeros_pending, mut any) = (0usize, 0usize, false);
            for data in segments {
                total += data.len();
                if zeros::all_zero(&data) {
                    zeros_pending += data.len();
                    continue;
                }
                zeros::update_with_zeros(&mut md5, std::mem::take(&mut zeros_pending));
                md5.update(&data);
                any = true;
            }
            if !any {
                return zeros::md5_hex(total);
            }
            zeros::update_with_zeros(&mut md5, zeros_pending);
            hex::encode(md5.finalize())
        });
        Self { feed, done }
    }

    fn feed(&self, data: Bytes) {
        // The thread only stops once the sender is dropped.
        let _ = self.feed.send(data);
    }

    async fn finish(self) -> Result<String, BackupError> {
        drop(self.feed);
        joined(self.done.await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn prepare(
        data: &[u8],
        block: usize,
        segment: usize,
        parent: Option<Vec<String>>,
        compression: Compression,
    ) -> PreparedPiece {
        let mut work = PieceWork::new(block, data.len(), compression);
        work.segment = segment;
        let mut reader = data;
        let piece = read_piece(&mut reader, &work, 1000, parent, &Progress::default())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(piece.len, data.len() as u64);
        piece.finish(&work).await.unwrap()
    }

    #[tokio::test]
    async fn changed_blocks_are_grouped_as_cinder_groups_them() {
        let block = 4;
        let data: Vec<u8> = (0..40u8).collect();
        let parent: Vec<String> = data
            .chunks(4)
            .map(|b| hex::encode(sha2::Sha256::digest(b)))
            .collect();
        let mut changed = data.clone();
        for i in [0usize, 5, 9, 13, 14, 39] {
            changed[i] ^= 0xff;
        }
        // Segments of 8 bytes: the first run spans two of them.
        let piece = prepare(
            &changed,
            block,
            8,
            Some(parent.clone()),
            Compression::none(),
        )
        .await;
        let runs: Vec<(u64, u64)> = piece.objects.iter().map(|o| (o.offset, o.length)).collect();
        // Bytes 0, 5, 9 and 13-14 change blocks 0 to 3 (one run); byte 39
        // changes block 9, the last, alone.
        assert_eq!(runs, [(1000, 16), (1036, 4)]);
        assert_eq!(piece.objects[0].parts.concat(), changed[..16]);
        assert_eq!(piece.sha256s.len(), 10);
        let unchanged = prepare(&data, block, 8, Some(parent), Compression::none()).await;
        assert!(unchanged.objects.is_empty());
        let full = prepare(&data, block, 8, None, Compression::none()).await;
        assert_eq!(full.objects.len(), 1);
        assert_eq!(full.objects[0].md5, crate::store::md5_hex(&data));
        assert_eq!(full.objects[0].parts.concat(), data);
    }

    #[tokio::test]
    async fn full_pieces_are_what_one_compression_call_would_choose() {
        let block = 32_768;
        let random: Vec<u8> = (0..300_000).map(|_| rand::random()).collect();
        let mut half = vec![0u8; 600_000];
        half[..300_000].copy_from_slice(&random);
        for name in ["none", "zlib", "bz2", "zstd"] {
            let c = Compression::from_name(name).unwrap();
            for data in [&random, &half, &vec![0u8; 500_000]] {
                let piece = prepare(data, block, 65_536, None, c.clone()).await;
                let [object] = &piece.objects[..] else {
                    panic!("one object per full piece")
                };
                assert_eq!(object.md5, crate::store::md5_hex(data));
                let expected = c.compress(data).unwrap();
                assert_eq!(
                    object.compression != "none",
                    expected.is_some(),
                    "{name}, {} bytes",
                    data.len()
                );
                let stored = Bytes::from(object.parts.concat());
                assert_eq!(object.payload_md5, crate::store::md5_hex(&stored));
                let restored = Compression::from_name(&object.compression)
                    .unwrap()
                    .decompress(stored, data.len() as u64)
                    .unwrap();
                assert!(restored == data[..], "{name}");
                let shas: Vec<String> = data
                    .chunks(block)
                    .map(|b| hex::encode(sha2::Sha256::digest(b)))
                    .collect();
                assert_eq!(piece.sha256s, shas);
            }
        }
    }
}
