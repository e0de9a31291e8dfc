//! Bytes in backing files and devices: tests write a pattern at an offset
//! and check it arrives where the data path should have put it.

use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Writes `bytes` at `offset` of an existing file (or device) and syncs.
pub fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f.write_all_at(bytes, offset).unwrap();
    f.sync_all().unwrap();
}

/// Reads `len` bytes at `offset`.
pub fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buf = vec![0; len];
    f.read_exact_at(&mut buf, offset).unwrap();
    buf
}

/// The names of the entries of `dir` (empty when it does not exist).
pub fn names_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Data written over zeros: `(offset, bytes)`, later entries win. What a
/// sparse volume holds after a test wrote into it, without keeping the
/// whole volume in memory.
pub type Patches = Vec<(u64, Vec<u8>)>;

/// Asserts `path` is `size` bytes of zeros with `patches` applied.
pub fn assert_holds(path: &Path, size: u64, patches: &[(u64, Vec<u8>)], what: &str) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(f.metadata().unwrap().len(), size, "{what}: size");
    let piece = 4u64 << 20;
    let mut actual = vec![0u8; piece as usize];
    let mut offset = 0;
    while offset < size {
        let len = piece.min(size - offset);
        let actual = &mut actual[..len as usize];
        f.read_exact_at(actual, offset).unwrap();
        let mut expected = vec![0u8; len as usize];
        for (at, data) in patches {
            let (start, end) = (*at, at + data.len() as u64);
            let (from, to) = (start.max(offset), end.min(offset + len));
            if from < to {
                expected[(from - offset) as usize..(to - offset) as usize]
                    .copy_from_slice(&data[(from - start) as usize..(to - start) as usize]);
            }
        }
        assert!(
            *actual == expected[..],
            "{what}: bytes differ in [{offset}, {})",
            offset + len
        );
        offset += len;
    }
}
