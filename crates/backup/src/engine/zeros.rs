//! Runs of zero bytes: the never-written parts of a thin or sparse volume,
//! usually most of it. What such a run turns into in a backup (its block
//! hashes, its MD5, its compressed form) depends only on its length and the
//! algorithm, so each is computed once per length and reused: a mostly
//! empty volume is backed up at the speed it is read. The objects written
//! are the same bytes Cinder's drivers write for the same data.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Mutex, PoisonError};

use sha2::Digest as _;

use crate::compression::Compression;
use crate::compression::zlib_segments::{self, DeflatedSegment};
use crate::error::BackupError;

/// Compared against with `==`, which is a `memcmp`: fast in any build.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// Memos beyond this many entries are dropped (lengths repeat: the block
/// size, the object size, the last short piece).
const MEMO_LIMIT: usize = 64;

/// Whether every byte of `data` is zero.
pub(crate) fn all_zero(data: &[u8]) -> bool {
    data.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()])
}

type Packed = Option<Vec<u8>>;

#[derive(Default)]
struct Memo {
    sha256: HashMap<usize, String>,
    md5: HashMap<usize, String>,
    packed: HashMap<(usize, String), Packed>,
    deflated: HashMap<usize, DeflatedSegment>,
}

static MEMO: Mutex<Option<Memo>> = Mutex::new(None);

fn remember<K: std::hash::Hash + Eq, V: Clone, E>(
    pick: impl Fn(&mut Memo) -> &mut HashMap<K, V>,
    key: K,
    make: impl FnOnce() -> Result<V, E>,
) -> Result<V, E> {
    {
        let mut memo = MEMO.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = pick(memo.get_or_insert_with(Memo::default)).get(&key) {
            return Ok(v.clone());
        }
    }
    // Computed outside the lock: other pieces go on meanwhile.
    let value = make()?;
    let mut memo = MEMO.lock().unwrap_or_else(PoisonError::into_inner);
    let map = pick(memo.get_or_insert_with(Memo::default));
    if map.len() >= MEMO_LIMIT {
        map.clear();
    }
    map.insert(key, value.clone());
    Ok(value)
}

/// The hex SHA-256 of `len` zero bytes.
pub(super) fn sha256_hex(len: usize) -> String {
    let Ok(hash) = remember(
        |m| &mut m.sha256,
        len,
        || Ok::<_, Infallible>(hex::encode(sha2::Sha256::digest(vec![0u8; len]))),
    );
    hash
}

/// The hex MD5 of `len` zero bytes.
pub(super) fn md5_hex(len: usize) -> String {
    let Ok(hash) = remember(
        |m| &mut m.md5,
        len,
        || Ok::<_, Infallible>(crate::store::md5_hex(&vec![0u8; len])),
    );
    hash
}

/// `compression.compress` of `len` zero bytes.
pub(super) fn compress(compression: &Compression, len: usize) -> Result<Packed, BackupError> {
    if compression.is_none() {
        return Ok(None);
    }
    remember(
        |m| &mut m.packed,
        (len, compression.name().to_owned()),
        || compression.compress(&vec![0u8; len]),
    )
}

/// Feeds `len` zero bytes to `digest`.
pub(super) fn update_with_zeros(digest: &mut impl sha2::Digest, mut len: usize) {
    while len > 0 {
        let n = len.min(ZEROS.len());
        digest.update(&ZEROS[..n]);
        len -= n;
    }
}

/// [`zlib_segments::deflate_segment`] of `len` zero bytes.
pub(super) fn deflate_segment(len: usize) -> Result<DeflatedSegment, BackupError> {
    remember(
        |m| &mut m.deflated,
        len,
        || zlib_segments::deflate_segment(&vec![0u8; len]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_runs_give_what_the_bytes_give() {
        for len in [1usize, 4096, 65536, 65537, 200_000] {
            let data = vec![0u8; len];
            assert!(all_zero(&data));
            assert_eq!(sha256_hex(len), hex::encode(sha2::Sha256::digest(&data)));
            assert_eq!(md5_hex(len), crate::store::md5_hex(&data));
            for name in ["none", "zlib", "bz2", "zstd"] {
                let c = Compression::from_name(name).unwrap();
                assert_eq!(compress(&c, len).unwrap(), c.compress(&data).unwrap());
                // Twice: the second answer comes from the memo.
                assert_eq!(compress(&c, len).unwrap(), c.compress(&data).unwrap());
            }
            let segment = zlib_segments::deflate_segment(&data).unwrap();
            assert_eq!(deflate_segment(len).unwrap(), segment);
            assert_eq!(deflate_segment(len).unwrap(), segment);
        }
        let mut data = vec![0u8; 70_000];
        data[69_999] = 1;
        assert!(!all_zero(&data));
        data[69_999] = 0;
        data[3] = 1;
        assert!(!all_zero(&data));
        assert!(all_zero(&[]));
    }
}
