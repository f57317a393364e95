//! The on-disk layout of a pack file: many compressed chunks, written once by one writer,
//! with a trailer listing them.
//!
//! Layout (all integers little-endian), see docs/store-format.md:
//! `"CAIRNPK1"` | chunk payloads ... | trailer entries (56 bytes each) | footer (56 bytes).
//! Entry: id\[32\] offset u64, stored_len u32, raw_len u32, codec u8, 7 zero bytes.
//! Footer: trailer_offset u64, count u64, BLAKE3(trailer entries)\[32\], `"CAIRNPKT"`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{IoContext, StoreError};
use crate::id::ChunkId;

/// Magic at the start of every pack.
pub const PACK_MAGIC: &[u8; 8] = b"CAIRNPK1";
/// Magic at the very end of every pack.
pub const FOOTER_MAGIC: &[u8; 8] = b"CAIRNPKT";
/// Size of one trailer entry.
pub const ENTRY_LEN: usize = 56;
/// Size of the footer.
pub const FOOTER_LEN: usize = 56;
/// File name suffix of sealed packs.
pub const PACK_SUFFIX: &str = ".pack";
/// Prefix of temporary files of unfinished writers (packs and manifests).
pub const TMP_PREFIX: &str = ".tmp-";

/// How a chunk's payload is encoded in its pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// Stored as is.
    Raw = 0,
    /// One zstd frame.
    Zstd = 1,
    /// One LZ4 block (no frame; the uncompressed length is the entry's `raw_len`). Only in
    /// stores of format 2 made with `compression: lz4`.
    Lz4 = 2,
}

impl Codec {
    /// From the on-disk byte.
    pub fn from_u8(b: u8) -> Option<Codec> {
        match b {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Zstd),
            2 => Some(Codec::Lz4),
            _ => None,
        }
    }
}

/// Where a chunk lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackEntry {
    /// Chunk id.
    pub id: ChunkId,
    /// Byte offset of the payload in the pack.
    pub offset: u64,
    /// Payload length in the pack.
    pub stored_len: u32,
    /// Uncompressed length.
    pub raw_len: u32,
    /// Payload encoding.
    pub codec: Codec,
}

impl PackEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.stored_len.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
        out.push(self.codec as u8);
        out.extend_from_slice(&[0u8; 7]);
    }

    fn decode(b: &[u8]) -> Option<PackEntry> {
        let id = ChunkId::from_slice(&b[0..32])?;
        let offset = u64::from_le_bytes(b[32..40].try_into().ok()?);
        let stored_len = u32::from_le_bytes(b[40..44].try_into().ok()?);
        let raw_len = u32::from_le_bytes(b[44..48].try_into().ok()?);
        let codec = Codec::from_u8(b[48])?;
        Some(PackEntry {
            id,
            offset,
            stored_len,
            raw_len,
            codec,
        })
    }
}

/// The trailer of a pack whose payloads end at `payload_end`: its entries, then the footer
/// (trailer offset, entry count, BLAKE3 of the entries, footer magic).
pub(crate) fn encode_trailer(entries: &[PackEntry], payload_end: u64) -> Vec<u8> {
    let mut trailer = Vec::with_capacity(entries.len() * ENTRY_LEN + FOOTER_LEN);
    for e in entries {
        e.encode(&mut trailer);
    }
    let hash = blake3::hash(&trailer);
    trailer.extend_from_slice(&payload_end.to_le_bytes());
    trailer.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    trailer.extend_from_slice(hash.as_bytes());
    trailer.extend_from_slice(FOOTER_MAGIC);
    trailer
}

/// Read and check the trailer of the pack at `path`.
pub fn read_trailer(path: &Path) -> Result<Vec<PackEntry>, StoreError> {
    let f = File::open(path).ctx(|| format!("opening pack {}", path.display()))?;
    let len = f
        .metadata()
        .ctx(|| format!("stat pack {}", path.display()))?
        .len();
    let bad = |why: &str| StoreError::Corrupt(format!("pack {}: {why}", path.display()));
    if len < (PACK_MAGIC.len() + FOOTER_LEN) as u64 {
        return Err(bad("too short (truncated?)"));
    }
    let mut head = [0u8; 8];
    f.read_exact_at(&mut head, 0)
        .ctx(|| format!("reading pack {}", path.display()))?;
    if &head != PACK_MAGIC {
        return Err(bad("bad magic"));
    }
    let mut footer = [0u8; FOOTER_LEN];
    f.read_exact_at(&mut footer, len - FOOTER_LEN as u64)
        .ctx(|| format!("reading pack {}", path.display()))?;
    if &footer[48..56] != FOOTER_MAGIC {
        return Err(bad("no trailer (truncated or unfinished)"));
    }
    let toff = u64::from_le_bytes(footer[0..8].try_into().unwrap_or([0; 8]));
    let count = u64::from_le_bytes(footer[8..16].try_into().unwrap_or([0; 8]));
    let tlen = count
        .checked_mul(ENTRY_LEN as u64)
        .ok_or_else(|| bad("bad trailer"))?;
    if toff
        .checked_add(tlen)
        .and_then(|x| x.checked_add(FOOTER_LEN as u64))
        != Some(len)
    {
        return Err(bad("trailer does not match file size (truncated?)"));
    }
    let mut trailer = vec![0u8; tlen as usize];
    f.read_exact_at(&mut trailer, toff)
        .ctx(|| format!("reading pack {}", path.display()))?;
    if blake3::hash(&trailer).as_bytes() != &footer[16..48] {
        return Err(bad("trailer checksum mismatch"));
    }
    let mut entries = Vec::with_capacity(count as usize);
    for b in trailer.chunks_exact(ENTRY_LEN) {
        let e = PackEntry::decode(b).ok_or_else(|| bad("bad trailer entry"))?;
        if e.offset < PACK_MAGIC.len() as u64 || e.offset + u64::from(e.stored_len) > toff {
            return Err(bad("trailer entry out of bounds"));
        }
        entries.push(e);
    }
    Ok(entries)
}

/// Check that `data` is the chunk `e` describes.
pub fn check_hash(e: &PackEntry, data: &[u8]) -> Result<(), StoreError> {
    if data.len() != e.raw_len as usize || ChunkId::of(data) != e.id {
        return Err(StoreError::Corrupt(format!(
            "chunk {}: content does not match its hash",
            e.id
        )));
    }
    Ok(())
}
