//! RBD's diff stream (`rbd diff v1`, Ceph's `doc/dev/rbd-diff.rst`), written
//! from data Clinker reads itself: what `rbd import-diff -` takes when the
//! source is not an RBD image `rbd export-diff` could describe (a file or
//! LVM volume), and the full copy of a backup onto a volume that already
//! holds data (zero records discard what the backup does not have).
//!
//! A stream is a header, metadata records (`f` the snapshot the diff
//! starts from, `t` the snapshot `import-diff` creates when it is done,
//! `s` the image size), data records (`w` bytes at an offset, `z` zeros
//! at an offset) and `e`.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::engine::zeros::all_zero;

const HEADER: &[u8] = b"rbd diff v1\n";

/// Writes one diff stream.
pub(crate) struct DiffWriter<W> {
    out: W,
}

fn name_record(tag: u8, name: &str) -> std::io::Result<Vec<u8>> {
    let len = u32::try_from(name.len())
        .map_err(|_| std::io::Error::other("snapshot name too long for a diff record"))?;
    let mut record = Vec::with_capacity(5 + name.len());
    record.push(tag);
    record.extend_from_slice(&len.to_le_bytes());
    record.extend_from_slice(name.as_bytes());
    Ok(record)
}

fn extent_record(tag: u8, offset: u64, len: u64) -> [u8; 17] {
    let mut record = [0u8; 17];
    record[0] = tag;
    record[1..9].copy_from_slice(&offset.to_le_bytes());
    record[9..17].copy_from_slice(&len.to_le_bytes());
    record
}

impl<W: AsyncWrite + Unpin> DiffWriter<W> {
    /// Writes the header and metadata: the diff goes from snapshot `from`
    /// (which the target must have) to snapshot `to` (created by
    /// `import-diff` at the end), and leaves the image `size` bytes long.
    pub(crate) async fn begin(
        mut out: W,
        from: Option<&str>,
        to: Option<&str>,
        size: u64,
    ) -> std::io::Result<Self> {
        let mut head = HEADER.to_vec();
        if let Some(from) = from {
            head.extend(name_record(b'f', from)?);
        }
        if let Some(to) = to {
            head.extend(name_record(b't', to)?);
        }
        head.push(b's');
        head.extend_from_slice(&size.to_le_bytes());
        out.write_all(&head).await?;
        Ok(Self { out })
    }

    /// `data` belongs at `offset`.
    pub(crate) async fn write(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let len = data.len() as u64;
        self.out
            .write_all(&extent_record(b'w', offset, len))
            .await?;
        self.out.write_all(data).await
    }

    /// `len` bytes at `offset` are zeros.
    pub(crate) async fn zero(&mut self, offset: u64, len: u64) -> std::io::Result<()> {
        self.out.write_all(&extent_record(b'z', offset, len)).await
    }

    /// Pushes what was written so far on to the writer.
    pub(crate) async fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush().await
    }

    /// The writer, without ending the stream (a reader sees a stream cut
    /// short, never a complete one).
    pub(crate) fn into_inner(self) -> W {
        self.out
    }

    /// Ends the stream; returns the writer.
    pub(crate) async fn end(mut self) -> std::io::Result<W> {
        self.out.write_all(b"e").await?;
        self.out.flush().await?;
        Ok(self.out)
    }
}

/// Fills `buf` from `reader`; fewer bytes only at its end.
pub(crate) async fn read_full<R>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// What the image the stream is applied to already holds, block by block.
pub(crate) enum Baseline<'a> {
    /// Nothing (a new image): zero blocks are left out.
    Empty,
    /// Unknown data: zero blocks become zero records.
    Unknown,
    /// The bytes of this stream (`len` long, zeros after): only blocks that
    /// differ from it are written.
    Stream {
        reader: &'a mut (dyn AsyncRead + Send + Unpin),
        len: u64,
    },
}

/// What [`copy_blocks`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Copied {
    /// Bytes read from the source.
    pub(crate) read: u64,
    /// Bytes sent as data records.
    pub(crate) written: u64,
}

/// Reads `length` bytes of `source` (zeros after its end) in `block`-sized
/// pieces and writes to `out` the records that turn `baseline` into them.
/// `on_block` is told of each block read (progress, cancellation).
pub(crate) async fn copy_blocks<W, R>(
    source: &mut R,
    mut baseline: Baseline<'_>,
    length: u64,
    block: usize,
    out: &mut DiffWriter<W>,
    mut on_block: impl FnMut(u64) -> std::io::Result<()>,
) -> std::io::Result<Copied>
where
    W: AsyncWrite + Unpin,
    R: AsyncRead + Unpin + ?Sized,
{
    let mut data = vec![0u8; block];
    let mut before = match baseline {
        Baseline::Stream { .. } => vec![0u8; block],
        _ => Vec::new(),
    };
    let mut copied = Copied::default();
    let mut offset = 0u64;
    let mut source_done = false;
    while offset < length {
        let len = usize::try_from((length - offset).min(block as u64)).unwrap_or(block);
        let piece = &mut data[..len];
        let got = if source_done {
            0
        } else {
            read_full(source, piece).await?
        };
        if got < len {
            source_done = true;
            piece[got..].fill(0);
        }
        copied.read += got as u64;
        let zero = all_zero(piece);
        let record = match &mut baseline {
            Baseline::Empty => (!zero).then_some(zero),
            Baseline::Unknown => Some(zero),
            Baseline::Stream {
                reader,
                len: base_len,
            } => {
                let old = &mut before[..len];
                let available = usize::try_from(base_len.saturating_sub(offset))
                    .unwrap_or(usize::MAX)
                    .min(len);
                let have = read_full(&mut **reader, &mut old[..available]).await?;
                if have < available {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("the parent backup ended at byte {}", offset + have as u64),
                    ));
                }
                old[available..].fill(0);
                (old != piece).then_some(zero)
            }
        };
        match record {
            Some(true) => out.zero(offset, len as u64).await?,
            Some(false) => {
                out.write(offset, piece).await?;
                copied.written += len as u64;
            }
            None => {}
        }
        offset += len as u64;
        on_block(len as u64)?;
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_are_rbds_v1_layout() {
        let mut w = DiffWriter::begin(Vec::new(), Some("a"), Some("bc"), 4096)
            .await
            .unwrap();
        w.write(512, b"xy").await.unwrap();
        w.zero(1024, 8).await.unwrap();
        let bytes = w.end().await.unwrap();
        let mut want = b"rbd diff v1\n".to_vec();
        want.extend([b'f', 1, 0, 0, 0, b'a']);
        want.extend([b't', 2, 0, 0, 0, b'b', b'c']);
        want.push(b's');
        want.extend(4096u64.to_le_bytes());
        want.push(b'w');
        want.extend(512u64.to_le_bytes());
        want.extend(2u64.to_le_bytes());
        want.extend(b"xy");
        want.push(b'z');
        want.extend(1024u64.to_le_bytes());
        want.extend(8u64.to_le_bytes());
        want.push(b'e');
        assert_eq!(bytes, want);
    }

    async fn records(source: &[u8], baseline: Baseline<'_>, length: u64) -> (Vec<u8>, Copied) {
        let mut w = DiffWriter::begin(Vec::new(), None, None, length)
            .await
            .unwrap();
        let mut src = source;
        let copied = copy_blocks(&mut src, baseline, length, 4, &mut w, |_| Ok(()))
            .await
            .unwrap();
        let bytes = w.end().await.unwrap();
        (bytes[HEADER.len() + 9..].to_vec(), copied)
    }

    fn w(offset: u64, data: &[u8]) -> Vec<u8> {
        let mut r = extent_record(b'w', offset, data.len() as u64).to_vec();
        r.extend(data);
        r
    }

    #[tokio::test]
    async fn blocks_become_the_records_their_baseline_needs() {
        let source = [1, 1, 1, 1, 0, 0, 0, 0, 2, 2];
        // A new image: zero blocks are left out, the short source is
        // padded to the length.
        let (got, copied) = records(&source, Baseline::Empty, 12).await;
        let mut want = w(0, &[1, 1, 1, 1]);
        want.extend(w(8, &[2, 2, 0, 0]));
        want.push(b'e');
        assert_eq!(got, want);
        assert_eq!(
            copied,
            Copied {
                read: 10,
                written: 8
            }
        );
        // Unknown contents: zeros are written as zero records.
        let (got, _) = records(&source, Baseline::Unknown, 12).await;
        let mut want = w(0, &[1, 1, 1, 1]);
        want.extend(extent_record(b'z', 4, 4));
        want.extend(w(8, &[2, 2, 0, 0]));
        want.push(b'e');
        assert_eq!(got, want);
        // Against a parent: only changed blocks, a block that became zero
        // as a zero record; the parent was shorter (zeros after it).
        let mut parent: &[u8] = &[1, 1, 1, 1, 9, 9];
        let (got, _) = records(
            &source,
            Baseline::Stream {
                reader: &mut parent,
                len: 6,
            },
            12,
        )
        .await;
        let mut want = extent_record(b'z', 4, 4).to_vec();
        want.extend(w(8, &[2, 2, 0, 0]));
        want.push(b'e');
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_parent_shorter_than_it_says_is_an_error() {
        let mut parent: &[u8] = &[1, 1];
        let mut w = DiffWriter::begin(Vec::new(), None, None, 8).await.unwrap();
        let mut src: &[u8] = &[0; 8];
        let err = copy_blocks(
            &mut src,
            Baseline::Stream {
                reader: &mut parent,
                len: 8,
            },
            8,
            4,
            &mut w,
            |_| Ok(()),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
