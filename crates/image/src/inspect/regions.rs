//! Where the inspector reads an image's bytes from: a window of a stream
//! (its first bytes and, when known, its last ones) or a whole file.
//!
//! Every offset comes from an untrusted header, so reads are bounded
//! ([`MAX_REGION`]), offsets are checked for overflow, and a region outside
//! the bytes at hand is [`Region::Unavailable`] rather than an error: the
//! format then reports itself incomplete and is refused.

use std::io;
use std::path::Path;

/// The largest region any format asks for (a VMDK descriptor is at most
/// 1 MiB - 1, a VHDX region or metadata table 64 KiB).
pub const MAX_REGION: usize = 1 << 20;

/// How many leading bytes of a stream [`crate::inspect`] needs to know every
/// format's header and a VMDK's embedded descriptor (1 MiB).
pub const HEAD_BYTES: usize = MAX_REGION;

/// How many trailing bytes hold the footers (a fixed VHD's 512-byte footer,
/// a stream-optimized VMDK's footer and end-of-stream markers).
pub const TAIL_BYTES: usize = 1536;

/// The bytes of one region.
#[derive(Debug, PartialEq, Eq)]
pub enum Region {
    /// The bytes; shorter than asked when the image ends first.
    Data(Vec<u8>),
    /// The region lies outside the bytes this source holds.
    Unavailable,
}

/// Random access to an image's bytes for the inspector.
pub trait ImageRegions {
    /// The image's total length in bytes.
    fn total_len(&self) -> u64;

    /// Bytes `[offset, offset + len)`, `len` capped at [`MAX_REGION`].
    ///
    /// # Errors
    /// Reading the underlying file failed.
    fn read(&mut self, offset: u64, len: usize) -> io::Result<Region>;
}

/// A streamed image's first bytes and (optionally) its last bytes.
#[derive(Clone, Copy, Debug)]
pub struct ImageBytes<'a> {
    /// The first bytes of the image (all of it when shorter than
    /// [`HEAD_BYTES`]).
    pub head: &'a [u8],
    /// The last bytes of the image (empty when not known yet).
    pub tail: &'a [u8],
    /// The image's length in bytes (Glance's `size`).
    pub total_len: u64,
}

impl<'a> ImageBytes<'a> {
    /// A window made of the first bytes of an image of `total_len` bytes.
    pub fn head(head: &'a [u8], total_len: u64) -> Self {
        Self {
            head,
            tail: &[],
            total_len,
        }
    }
}

fn clipped(total_len: u64, offset: u64, len: usize) -> Option<(u64, usize)> {
    if offset >= total_len {
        return None;
    }
    let available = usize::try_from(total_len - offset).unwrap_or(usize::MAX);
    Some((offset, len.min(MAX_REGION).min(available)))
}

impl ImageRegions for ImageBytes<'_> {
    fn total_len(&self) -> u64 {
        self.total_len
    }

    fn read(&mut self, offset: u64, len: usize) -> io::Result<Region> {
        let Some((offset, len)) = clipped(self.total_len, offset, len) else {
            return Ok(Region::Data(Vec::new()));
        };
        let end = offset.saturating_add(len as u64);
        if end <= self.head.len() as u64 {
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            return Ok(Region::Data(
                self.head
                    .get(start..start + len)
                    .unwrap_or_default()
                    .to_vec(),
            ));
        }
        let tail_start = self.total_len.saturating_sub(self.tail.len() as u64);
        if !self.tail.is_empty() && offset >= tail_start {
            let start = usize::try_from(offset - tail_start).unwrap_or(usize::MAX);
            return Ok(Region::Data(
                self.tail
                    .get(start..start + len)
                    .unwrap_or_default()
                    .to_vec(),
            ));
        }
        Ok(Region::Unavailable)
    }
}

/// A whole image in a file (the staged download).
#[derive(Debug)]
pub struct FileRegions {
    file: std::fs::File,
    total_len: u64,
}

impl FileRegions {
    /// Opens `path` for inspection.
    ///
    /// # Errors
    /// The file cannot be opened or its length read.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = std::fs::File::open(path)?;
        let total_len = file.metadata()?.len();
        Ok(Self { file, total_len })
    }
}

impl ImageRegions for FileRegions {
    fn total_len(&self) -> u64 {
        self.total_len
    }

    fn read(&mut self, offset: u64, len: usize) -> io::Result<Region> {
        use std::os::unix::fs::FileExt;
        let Some((offset, len)) = clipped(self.total_len, offset, len) else {
            return Ok(Region::Data(Vec::new()));
        };
        let mut buf = vec![0; len];
        let mut filled = 0;
        while filled < len {
            match self
                .file
                .read_at(&mut buf[filled..], offset + filled as u64)
            {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(filled);
        Ok(Region::Data(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_serves_its_head_and_tail_and_nothing_between() {
        let head = [1u8; 16];
        let tail = [2u8; 8];
        let mut bytes = ImageBytes {
            head: &head,
            tail: &tail,
            total_len: 100,
        };
        assert_eq!(bytes.read(4, 4).unwrap(), Region::Data(vec![1; 4]));
        assert_eq!(bytes.read(94, 4).unwrap(), Region::Data(vec![2; 4]));
        assert_eq!(bytes.read(96, 100).unwrap(), Region::Data(vec![2; 4]));
        assert_eq!(bytes.read(12, 8).unwrap(), Region::Unavailable);
        assert_eq!(bytes.read(50, 4).unwrap(), Region::Unavailable);
        assert_eq!(bytes.read(100, 4).unwrap(), Region::Data(Vec::new()));
        assert_eq!(
            bytes.read(u64::MAX, usize::MAX).unwrap(),
            Region::Data(Vec::new())
        );
    }

    #[test]
    fn a_short_image_is_all_head() {
        let head = [7u8; 10];
        let mut bytes = ImageBytes::head(&head, 10);
        assert_eq!(bytes.read(8, 512).unwrap(), Region::Data(vec![7; 2]));
    }

    #[test]
    fn a_file_is_read_anywhere_and_clipped_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, (0..=255u8).collect::<Vec<_>>()).unwrap();
        let mut file = FileRegions::open(&path).unwrap();
        assert_eq!(file.total_len(), 256);
        assert_eq!(
            file.read(250, 100).unwrap(),
            Region::Data((250..=255).collect())
        );
        assert_eq!(file.read(1 << 40, 4).unwrap(), Region::Data(Vec::new()));
    }
}
