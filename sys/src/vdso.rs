//! The vdso and vvar pages the running kernel maps into every process: where they are and
//! which vdso it is (a restored process must find the same one).

use crate::error::{io_ctx, Result};
use crate::procfs::{self, MapEntry};
use serde::{Deserialize, Serialize};

/// vdso/vvar placement of the captured process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VdsoInfo {
    /// Start of the whole vvar+vdso block (what ARCH_MAP_VDSO_64 takes).
    pub block_start: u64,
    /// Length of the whole block.
    pub block_len: u64,
    /// Start of the `[vdso]` text.
    pub vdso_start: u64,
    /// Length of the `[vdso]` text.
    pub vdso_len: u64,
    /// BLAKE3 of the vdso text, hex.
    pub hash: String,
}

/// True for the pseudo-mappings that come from the running kernel and are never saved.
pub fn is_vdso_block(name: &str) -> bool {
    matches!(name, "[vdso]" | "[vvar]" | "[vvar_vclock]")
}

/// BLAKE3 (hex) of the vdso text mapped at `start..end` in process `pid`.
pub fn vdso_hash(pid: i32, start: u64, end: u64) -> Result<String> {
    let mut buf = vec![0u8; (end - start) as usize];
    procfs::read_mem(pid, None, start, &mut buf).map_err(io_ctx("reading the vdso"))?;
    Ok(blake3::hash(&buf).to_hex().to_string())
}

/// vdso placement and hash of process `pid` (use `std::process::id()` for the caller).
pub fn vdso_info(pid: i32, maps: &[MapEntry]) -> Result<Option<VdsoInfo>> {
    let block: Vec<&MapEntry> = maps.iter().filter(|m| is_vdso_block(&m.name)).collect();
    let Some(text) = block.iter().find(|m| m.name == "[vdso]") else {
        return Ok(None);
    };
    let start = block.iter().map(|m| m.start).min().unwrap_or(text.start);
    let end = block.iter().map(|m| m.end).max().unwrap_or(text.end);
    Ok(Some(VdsoInfo {
        block_start: start,
        block_len: end - start,
        vdso_start: text.start,
        vdso_len: text.end - text.start,
        hash: vdso_hash(pid, text.start, text.end)?,
    }))
}
