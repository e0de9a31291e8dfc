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
