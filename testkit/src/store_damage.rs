//! Damaging a store on purpose, to test what finds and survives the damage.

use std::fs;
use std::path::{Path, PathBuf};

/// Every file below `dir` (recursively), sorted.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_below(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Flips one byte in the middle of the chunk stored at `offset` (`stored_len` bytes) of the
/// pack file `pack`: the chunk no longer matches its hash.
pub fn damage_chunk(pack: &Path, offset: u64, stored_len: u32) {
    let mut data = fs::read(pack).expect("reading a pack");
    let at = (offset + u64::from(stored_len) / 2) as usize;
    data[at] ^= 0x5a;
    fs::write(pack, data).expect("writing a pack");
}
