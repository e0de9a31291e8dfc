//! One zlib stream made of segments deflated apart, on as many threads as
//! there are segments in flight (the scheme of `pigz`): each segment is a
//! raw deflate ending in a sync flush (an empty stored block, so it ends
//! on a byte boundary), and the stream is the zlib header, the segments
//! in order, an empty final block and the Adler-32 of all the bytes.
//!
//! Any zlib reader (Python's `zlib.decompress`, which Cinder calls) reads
//! it as one stream. The compressed bytes are not the ones a single
//! `zlib.compress` call gives (neither were zlib-rs's own), but no reader
//! compares those: the metadata records the uncompressed MD5 and length.
//! Segments carry no dictionary from the one before, so a segment of
//! zeros always deflates to the same bytes and is computed once per length
//! ([`crate::engine::zeros`]).
//!
//! Incompressible data (encrypted or already compressed volumes, random
//! bytes) costs level-6 deflate ten times what everything else in a
//! backup costs, only for zlib to emit it as stored blocks. So each
//! 64 KiB window is first judged ([`looks_incompressible`]: its byte
//! histogram is flat to within what Huffman codes could gain nothing
//! from, and it repeats no 4-byte string within deflate's 32 KiB window
//! more than by chance); windows judged so are written as stored blocks
//! straight away, the others deflated. The judgement is conservative: what
//! it lets through is what zlib would have stored, give or take a few
//! bytes per window; whether the object is then stored compressed or as
//! is (`compression: "none"`) is decided on the real sizes, as Cinder
//! decides it.

use crate::error::BackupError;

/// Python's `zlib.compress` level (`Z_DEFAULT_COMPRESSION`).
const LEVEL: u32 = 6;
/// The zlib header of a level-6 stream with a 32 KiB window: `78 9c`, what
/// `zlib.compress` writes.
pub(crate) const HEADER: [u8; 2] = [0x78, 0x9c];
/// An empty final block with fixed codes (BFINAL=1, BTYPE=01, end code):
/// what zlib ends a stream with when it was flushed just before.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// One segment deflated on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeflatedSegment {
    /// The raw deflate blocks, ending in a sync flush.
    pub deflated: Vec<u8>,
    /// Adler-32 of the segment's bytes.
    pub adler: u32,
    /// Length of the segment's bytes.
    pub len: u64,
}

/// Bytes judged at once by [`looks_incompressible`].
const WINDOW: usize = 64 * 1024;
/// The largest stored block.
const STORED_MAX: usize = 65_535;

/// Deflates `data` as one segment of a stream: windows that look
/// incompressible as stored blocks, runs of the others with level-6
/// deflate.
pub(crate) fn deflate_segment(data: &[u8]) -> Result<DeflatedSegment, BackupError> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 1024 + 64);
    let mut start = 0usize;
    while start < data.len() {
        let stored = looks_incompressible(&data[start..(start + WINDOW).min(data.len())]);
        let mut end = (start + WINDOW).min(data.len());
        while end < data.len()
            && looks_incompressible(&data[end..(end + WINDOW).min(data.len())]) == stored
        {
            end = (end + WINDOW).min(data.len());
        }
        if stored {
            store_blocks(&data[start..end], &mut out);
        } else {
            deflate_run(&data[start..end], &mut out)?;
        }
        start = end;
    }
    Ok(DeflatedSegment {
        deflated: out,
        adler: zlib_rs::adler32::adler32(1, data),
        len: data.len() as u64,
    })
}

/// Appends `data` as non-final stored blocks (the stream is on a byte
/// boundary: at its start, or after a sync flush or another stored block).
fn store_blocks(data: &[u8], out: &mut Vec<u8>) {
    for block in data.chunks(STORED_MAX) {
        let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
        // BFINAL=0, BTYPE=00, then padding to the byte: one zero byte.
        out.push(0);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
}

/// Appends `data` deflated at level 6, ending in a sync flush.
fn deflate_run(data: &[u8], out: &mut Vec<u8>) -> Result<(), BackupError> {
    let mut compress = flate2::Compress::new(flate2::Compression::new(LEVEL), false);
    out.reserve(data.len() / 2 + 64);
    loop {
        let consumed = usize::try_from(compress.total_in()).unwrap_or(usize::MAX);
        let before = compress.total_out();
        let status = compress
            .compress_vec(
                &data[consumed.min(data.len())..],
                out,
                flate2::FlushCompress::Sync,
            )
            .map_err(|e| BackupError::InvalidBackup(format!("cannot compress with zlib: {e}")))?;
        // Flushed once all input went in and the last call had room to
        // spare (a full buffer may hold back part of the flush).
        if compress.total_in() == data.len() as u64 && out.len() < out.capacity() {
            return Ok(());
        }
        if status == flate2::Status::BufError && compress.total_out() == before {
            return Err(BackupError::Internal(
                "zlib made no progress on a segment".into(),
            ));
        }
        out.reserve(64 * 1024);
    }
}

/// Whether level-6 deflate would store `data` (up to a window) as it is,
/// give or take a few bytes: every 16 KiB of it has a byte histogram
/// flat to within 0.03 bit of entropy per byte (so Huffman codes gain
/// under 0.4 %, less than a dynamic block's code tables cost), and no
/// more 4-byte strings recur within 32 KiB than random bytes give (about
/// one per 64 KiB; so LZ77 matches have next to nothing to replace).
pub(crate) fn looks_incompressible(data: &[u8]) -> bool {
    /// Bytes per histogram: about what one deflate block covers.
    const SPAN: usize = 16 * 1024;
    const MIN_BITS_PER_BYTE: f64 = 7.97;
    /// Bytes of data per 4-byte string recurring allowed.
    const BYTES_PER_REPEAT: usize = 8 * 1024;
    /// Deflate's window.
    const DISTANCE: usize = 32 * 1024;
    if data.len() < SPAN {
        return false;
    }
    for span in data.chunks(SPAN) {
        // Four tables: consecutive bytes do not wait on one counter.
        let mut counts = [[0u32; 256]; 4];
        let mut quads = span.chunks_exact(4);
        for q in &mut quads {
            counts[0][usize::from(q[0])] += 1;
            counts[1][usize::from(q[1])] += 1;
            counts[2][usize::from(q[2])] += 1;
            counts[3][usize::from(q[3])] += 1;
        }
        quads
            .remainder()
            .iter()
            .for_each(|&b| counts[0][usize::from(b)] += 1);
        let n = span.len() as f64;
        let bits: f64 = (0..256)
            .map(|i| counts.iter().map(|c| c[i]).sum::<u32>())
            .filter(|&c| c > 0)
            .map(|c| {
                let p = f64::from(c) / n;
                -p * p.log2()
            })
            .sum();
        // A short last span of random bytes has a less flat histogram.
        if span.len() == SPAN && bits < MIN_BITS_PER_BYTE {
            return false;
        }
    }
    // Each slot: the 4 bytes last seen with that hash, and where (+1).
    let mut seen = vec![(0u32, 0usize); 1 << 13];
    let allowed = data.len() / BYTES_PER_REPEAT + 1;
    let mut repeats = 0usize;
    for (at, quad) in data.windows(4).enumerate() {
        let value = u32::from_le_bytes([quad[0], quad[1], quad[2], quad[3]]);
        let slot = usize::try_from(value.wrapping_mul(0x9E37_79B1) >> 19).unwrap_or(0);
        let (before, where_) = std::mem::replace(&mut seen[slot], (value, at + 1));
        if before == value && where_ > 0 && at + 1 - where_ <= DISTANCE {
            repeats += 1;
            if repeats > allowed {
                return false;
            }
        }
    }
    true
}

/// Bytes of the whole stream made of `segments`.
pub(crate) fn stream_len(segments: &[&DeflatedSegment]) -> u64 {
    let body: u64 = segments.iter().map(|s| s.deflated.len() as u64).sum();
    (HEADER.len() + FINAL_BLOCK.len() + 4) as u64 + body
}

/// What ends the stream made of `segments`: the final block and the
/// Adler-32 of all their bytes (big-endian).
pub(crate) fn trailer(segments: &[&DeflatedSegment]) -> [u8; 6] {
    let adler = segments.iter().fold(1u32, |adler, s| {
        zlib_rs::adler32::adler32_combine(adler, s.adler, s.len)
    });
    let mut out = [0u8; 6];
    out[..2].copy_from_slice(&FINAL_BLOCK);
    out[2..].copy_from_slice(&adler.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn stream(data: &[u8], segment: usize) -> Vec<u8> {
        let segments: Vec<DeflatedSegment> = data
            .chunks(segment)
            .map(|s| deflate_segment(s).unwrap())
            .collect();
        let refs: Vec<&DeflatedSegment> = segments.iter().collect();
        let mut out = HEADER.to_vec();
        refs.iter().for_each(|s| out.extend_from_slice(&s.deflated));
        out.extend_from_slice(&trailer(&refs));
        assert_eq!(out.len() as u64, stream_len(&refs));
        out
    }

    #[test]
    fn segments_make_one_zlib_stream() {
        let mut data = vec![0u8; 1 << 20];
        let random: Vec<u8> = (0..300_000).map(|_| rand::random()).collect();
        data[100_000..400_000].copy_from_slice(&random);
        data[700_000..700_100].copy_from_slice(b"0123456789".repeat(10).as_slice());
        for segment in [1usize << 20, 256 << 10, 65_536, 100_001] {
            let packed = stream(&data, segment);
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(packed.as_slice())
                .read_to_end(&mut out)
                .unwrap();
            assert!(out == data, "segment {segment}");
        }
        // Random bytes are judged incompressible and stored; text, zeros
        // and random bytes repeating within 32 KiB are not.
        assert!(looks_incompressible(&random[..65_536]));
        assert!(!looks_incompressible(&data[..65_536]));
        let text = b"the quick brown fox jumps over the lazy dog ".repeat(2000);
        assert!(!looks_incompressible(&text));
        let again: Vec<u8> = random[..16_384].repeat(4);
        assert!(!looks_incompressible(&again));
        let stored = deflate_segment(&random).unwrap();
        assert_eq!(
            stored.deflated.len(),
            random.len() + 5 * random.len().div_ceil(STORED_MAX)
        );
        // The empty stream is zlib.compress(b"").
        assert_eq!(stream(&[], 1), [0x78, 0x9c, 0x03, 0x00, 0, 0, 0, 1]);
    }
}
