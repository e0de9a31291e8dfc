//! The compressors of Cinder's chunked drivers (`_get_compressor`): zlib
//! streams as Python's `zlib.compress` (level 6), bzip2 as `bz2.compress`
//! (level 9), zstd frames as python-zstd's `zstd.compress` (level 3). Any
//! of Cinder's spellings is accepted; the spelling is what the metadata
//! records, so a backup written with `gzip` says `gzip`.

use std::io::{Read, Write};

use crate::error::BackupError;

pub(crate) mod zlib_segments;

/// A compression algorithm with the name it was configured by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compression {
    kind: Kind,
    name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    None,
    Zlib,
    Bz2,
    Zstd,
}

impl Compression {
    /// Parses one of Cinder's names (`none`/`off`/`no`, `zlib`/`gzip`,
    /// `bz2`/`bzip2`, `zstd`), any case.
    pub fn from_name(name: &str) -> Result<Self, BackupError> {
        let name = name.trim().to_ascii_lowercase();
        let kind = match name.as_str() {
            "none" | "off" | "no" => Kind::None,
            "zlib" | "gzip" => Kind::Zlib,
            "bz2" | "bzip2" => Kind::Bz2,
            "zstd" => Kind::Zstd,
            _ => {
                return Err(BackupError::InvalidBackup(format!(
                    "unsupported compression algorithm: {name}"
                )));
            }
        };
        Ok(Self { kind, name })
    }

    /// No compression (`none`).
    pub fn none() -> Self {
        Self {
            kind: Kind::None,
            name: "none".into(),
        }
    }

    /// The name written into the metadata for compressed objects.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this compresses at all.
    pub fn is_none(&self) -> bool {
        self.kind == Kind::None
    }

    /// Whether a run's compressed form can be made of segments compressed
    /// apart ([`zlib_segments`]): zlib streams can.
    pub(crate) fn by_segments(&self) -> bool {
        self.kind == Kind::Zlib
    }

    /// Compresses `data` for storage. Like Cinder's `_prepare_output_data`,
    /// gives back `None` when compressing does not make it smaller, and the
    /// object is then stored as is with compression `none`.
    pub fn compress(&self, data: &[u8]) -> Result<Option<Vec<u8>>, BackupError> {
        let out = match self.kind {
            Kind::None => return Ok(None),
            Kind::Zlib => {
                let mut e = flate2::write::ZlibEncoder::new(
                    Vec::with_capacity(data.len() / 2),
                    flate2::Compression::new(6),
                );
                e.write_all(data).and_then(|()| e.finish())
            }
            Kind::Bz2 => {
                let mut e = bzip2::write::BzEncoder::new(
                    Vec::with_capacity(data.len() / 2),
                    bzip2::Compression::best(),
                );
                e.write_all(data).and_then(|()| e.finish())
            }
            Kind::Zstd => zstd::bulk::compress(data, 3),
        }
        .map_err(|e| self.failed("compress", e))?;
        Ok((out.len() < data.len()).then_some(out))
    }

    /// Decompresses an object written with this algorithm. `expected_len`
    /// (the metadata's `length`) sizes the buffer and bounds the output.
    pub fn decompress(
        &self,
        body: bytes::Bytes,
        expected_len: u64,
    ) -> Result<bytes::Bytes, BackupError> {
        if self.kind == Kind::None {
            return Ok(body);
        }
        let body = &body[..];
        let capacity = usize::try_from(expected_len).unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(capacity);
        // One byte past the expected length is enough to see a mismatch
        // without letting a corrupt object inflate without bound.
        let limit = expected_len.saturating_add(1);
        let result = match self.kind {
            Kind::None => Ok(0),
            Kind::Zlib => flate2::read::ZlibDecoder::new(body)
                .take(limit)
                .read_to_end(&mut out),
            Kind::Bz2 => bzip2::read::MultiBzDecoder::new(body)
                .take(limit)
                .read_to_end(&mut out),
            Kind::Zstd => zstd::stream::read::Decoder::new(body)
                .and_then(|d| d.take(limit).read_to_end(&mut out)),
        };
        result.map_err(|e| self.failed("decompress", e))?;
        Ok(bytes::Bytes::from(out))
    }

    fn failed(&self, what: &str, e: std::io::Error) -> BackupError {
        BackupError::InvalidBackup(format!("cannot {what} with {}: {e}", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips_and_incompressible_data_is_kept() {
        let mut data = vec![0u8; 200_000];
        data[..1000]
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = (i * 7) as u8);
        let random: Vec<u8> = (0..4096).map(|_| rand::random()).collect();
        for name in ["zlib", "GZIP", "bz2", "bzip2", "zstd"] {
            let c = Compression::from_name(name).unwrap();
            assert_eq!(c.name(), name.to_ascii_lowercase());
            let packed = c.compress(&data).unwrap().expect("zeros compress");
            assert!(packed.len() < data.len() / 10, "{name}");
            let unpacked = c.decompress(packed.into(), data.len() as u64).unwrap();
            assert_eq!(unpacked, data);
            assert_eq!(c.compress(&random).unwrap(), None, "{name}");
        }
        assert!(Compression::from_name("none").unwrap().is_none());
        assert!(Compression::from_name("lz4").is_err());
    }

    #[test]
    fn corrupt_object_is_an_error() {
        let c = Compression::from_name("zlib").unwrap();
        assert!(
            c.decompress(bytes::Bytes::from_static(b"not zlib at all"), 100)
                .is_err()
        );
    }
}
