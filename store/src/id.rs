//! Chunk identifiers: BLAKE3 of the uncompressed bytes.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The id of a chunk: BLAKE3-256 of its uncompressed bytes. The all-zero id is reserved for
/// "a run of zero bytes", which is never stored.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChunkId(pub [u8; 32]);

impl Hash for ChunkId {
    /// An id is a BLAKE3 hash already: its first 8 bytes are hashed (equal ids hash equally).
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(w));
    }
}

/// A [`Hasher`] for keys that are [`ChunkId`]s: it keeps the 8 bytes the id hashes to, with no
/// further mixing (they are uniformly distributed already). Other keys get a simple mix.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 ^= v;
    }
}

/// Builds [`IdHasher`]s.
pub type IdBuildHasher = BuildHasherDefault<IdHasher>;

/// A set of chunk ids with the cheap id hasher.
pub type IdSet = HashSet<ChunkId, IdBuildHasher>;

/// A map keyed by chunk ids with the cheap id hasher.
pub type IdMap<V> = HashMap<ChunkId, V, IdBuildHasher>;

impl ChunkId {
    /// The reserved id that stands for zero bytes.
    pub const ZERO: ChunkId = ChunkId([0u8; 32]);

    /// Hash `data`.
    pub fn of(data: &[u8]) -> ChunkId {
        ChunkId(*blake3::hash(data).as_bytes())
    }

    /// True for the reserved all-zero id.
    pub fn is_zero(&self) -> bool {
        self.0 == [0u8; 32]
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// Parse 64 hex digits.
    pub fn from_hex(s: &str) -> Option<ChunkId> {
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(ChunkId(out))
    }

    /// From a byte slice of length 32.
    pub fn from_slice(b: &[u8]) -> Option<ChunkId> {
        let arr: [u8; 32] = b.try_into().ok()?;
        Some(ChunkId(arr))
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({})", &self.to_hex()[..16])
    }
}

impl Serialize for ChunkId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for ChunkId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ChunkId::from_hex(&s).ok_or_else(|| serde::de::Error::custom("bad chunk id"))
    }
}

/// True when every byte of `buf` is zero; runs at memory bandwidth.
pub fn is_all_zero(buf: &[u8]) -> bool {
    // 256-byte blocks OR-folded as u128 words: the compiler vectorises this to wide loads.
    let mut blocks = buf.chunks_exact(256);
    for block in blocks.by_ref() {
        let mut acc = 0u128;
        for w in block.chunks_exact(16) {
            let mut a = [0u8; 16];
            a.copy_from_slice(w);
            acc |= u128::from_ne_bytes(a);
        }
        if acc != 0 {
            return false;
        }
    }
    blocks.remainder().iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrip() {
        let id = ChunkId::of(b"hello");
        assert_eq!(ChunkId::from_hex(&id.to_hex()), Some(id));
        assert!(!id.is_zero());
        assert!(ChunkId::from_hex("zz").is_none());
    }

    #[test]
    fn zero_detection() {
        let mut v = vec![0u8; 65536 + 3];
        assert!(is_all_zero(&v[1..]));
        for pos in [0, 1, 17, 40000, 65538] {
            v[pos] = 1;
            assert!(!is_all_zero(&v), "pos {pos}");
            v[pos] = 0;
        }
    }
}

#[cfg(test)]
mod hasher_tests {
    use super::*;

    #[test]
    fn id_sets_hash_by_the_ids_leading_bytes_and_still_tell_ids_apart() {
        let a = ChunkId::of(b"a");
        let mut b = a;
        b.0[31] ^= 1; // same first 8 bytes, different id
        let mut s = IdSet::default();
        assert!(s.insert(a));
        assert!(s.insert(b));
        assert!(!s.insert(a));
        assert_eq!(s.len(), 2);
        let h = |id: &ChunkId| {
            let mut h = IdHasher::default();
            id.hash(&mut h);
            h.finish()
        };
        assert_eq!(h(&a), h(&b));
        assert_ne!(h(&a), h(&ChunkId::of(b"b")));
    }
}
