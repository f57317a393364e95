//! Stream references and the encodings of interior chunks: stream nodes (Merkle tree over a
//! stream's data chunks) and tree nodes (named children).

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::id::ChunkId;

/// What a [`StreamRef`] points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// A memory region: fixed-size chunks.
    Memory,
    /// A byte stream or blob: content-defined chunks.
    Bytes,
    /// A tree node: named children.
    Tree,
}

impl StreamKind {
    /// On-disk byte.
    pub fn to_u8(self) -> u8 {
        match self {
            StreamKind::Memory => 1,
            StreamKind::Bytes => 2,
            StreamKind::Tree => 3,
        }
    }

    /// From the on-disk byte.
    pub fn from_u8(b: u8) -> Option<StreamKind> {
        match b {
            1 => Some(StreamKind::Memory),
            2 => Some(StreamKind::Bytes),
            3 => Some(StreamKind::Tree),
            _ => None,
        }
    }
}

/// Reference to a stored stream or tree: kind, logical length, root chunk id.
/// For streams `len` is the number of bytes and `root` a stream node; for trees `len` is the
/// number of entries and `root` a tree node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StreamRef {
    /// Memory, bytes or tree.
    pub kind: StreamKind,
    /// Bytes (streams) or entries (trees).
    pub len: u64,
    /// Root chunk.
    pub root: ChunkId,
}

/// Magic of a stream node.
pub const NODE_MAGIC: &[u8; 4] = b"CNOD";
/// Magic of a tree node.
pub const TREE_MAGIC: &[u8; 4] = b"CTRE";

/// One child of a stream node: a data chunk (level 1) or a lower node, covering `len` bytes.
/// The zero id means `len` zero bytes (nothing stored). At level 1 a child may be a *slice*
/// of its data chunk: the bytes `[offset, offset + len)` of the chunk (format 3, node
/// version 2); otherwise `offset` is 0 and `len` is the chunk's whole length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeEntry {
    /// Child chunk.
    pub id: ChunkId,
    /// Logical bytes under the child.
    pub len: u64,
    /// Where the child's bytes start inside its data chunk (0 unless it is a slice).
    pub offset: u64,
}

impl NodeEntry {
    /// A whole child (not a slice).
    pub fn whole(id: ChunkId, len: u64) -> NodeEntry {
        NodeEntry { id, len, offset: 0 }
    }
}

/// Bytes of one child in a version-1 node (id, len) and in a version-2 node (id, len, offset).
const ENTRY_V1: usize = 40;
const ENTRY_V2: usize = 48;

/// A decoded stream node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamNode {
    /// 1 when the children are data chunks, n+1 when they are nodes of level n.
    pub level: u8,
    /// Children in stream order.
    pub entries: Vec<NodeEntry>,
}

impl StreamNode {
    /// Encode: magic, version, level, 2 zero bytes, count u32, then per child id\[32\] and
    /// len u64 (version 1), plus offset u64 (version 2, used only when a child is a slice).
    pub fn encode(&self) -> Vec<u8> {
        let sliced = self.entries.iter().any(|e| e.offset != 0);
        let size = if sliced { ENTRY_V2 } else { ENTRY_V1 };
        let mut out = Vec::with_capacity(12 + size * self.entries.len());
        out.extend_from_slice(NODE_MAGIC);
        out.push(if sliced { 2 } else { 1 });
        out.push(self.level);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.id.0);
            out.extend_from_slice(&e.len.to_le_bytes());
            if sliced {
                out.extend_from_slice(&e.offset.to_le_bytes());
            }
        }
        out
    }

    /// Decode and validate.
    pub fn decode(id: &ChunkId, b: &[u8]) -> Result<StreamNode, StoreError> {
        let bad = || StoreError::Corrupt(format!("chunk {id} is not a valid stream node"));
        if b.len() < 12 || &b[0..4] != NODE_MAGIC || !(1..=2).contains(&b[4]) || b[5] == 0 {
            return Err(bad());
        }
        let level = b[5];
        let size = if b[4] == 2 { ENTRY_V2 } else { ENTRY_V1 };
        let count = u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize;
        if b.len() != 12 + size * count {
            return Err(bad());
        }
        let u64_at = |e: &[u8], at: usize| {
            let mut l = [0u8; 8];
            l.copy_from_slice(&e[at..at + 8]);
            u64::from_le_bytes(l)
        };
        let entries: Vec<NodeEntry> = b[12..]
            .chunks_exact(size)
            .map(|e| NodeEntry {
                id: ChunkId::from_slice(&e[0..32]).unwrap_or(ChunkId::ZERO),
                len: u64_at(e, 32),
                offset: if size == ENTRY_V2 { u64_at(e, 40) } else { 0 },
            })
            .collect();
        // Only data chunks can be sliced; a zero child has no bytes to slice.
        if entries
            .iter()
            .any(|e| e.offset != 0 && (level != 1 || e.id.is_zero()))
        {
            return Err(bad());
        }
        Ok(StreamNode { level, entries })
    }

    /// Total logical bytes.
    pub fn total_len(&self) -> u64 {
        self.entries.iter().map(|e| e.len).sum()
    }
}

/// Encode a tree node: magic, version 1, 3 zero bytes, count u32, then for each entry
/// name_len u16, name (UTF-8), kind u8, len u64, root\[32\]. Entries sorted by name.
pub fn encode_tree(entries: &[(String, StreamRef)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(TREE_MAGIC);
    out.extend_from_slice(&[1, 0, 0, 0]);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (name, r) in entries {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(r.kind.to_u8());
        out.extend_from_slice(&r.len.to_le_bytes());
        out.extend_from_slice(&r.root.0);
    }
    out
}

/// Decode and validate a tree node.
pub fn decode_tree(id: &ChunkId, b: &[u8]) -> Result<Vec<(String, StreamRef)>, StoreError> {
    let bad = || StoreError::Corrupt(format!("chunk {id} is not a valid tree node"));
    if b.len() < 12 || &b[0..4] != TREE_MAGIC || b[4] != 1 {
        return Err(bad());
    }
    let count = u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize;
    let mut out = Vec::with_capacity(count.min(1 << 16));
    let mut p = 12usize;
    for _ in 0..count {
        let nl = u16::from_le_bytes([*b.get(p).ok_or_else(bad)?, *b.get(p + 1).ok_or_else(bad)?])
            as usize;
        p += 2;
        let end = p + nl + 1 + 8 + 32;
        if end > b.len() {
            return Err(bad());
        }
        let name = std::str::from_utf8(&b[p..p + nl])
            .map_err(|_| bad())?
            .to_string();
        p += nl;
        let kind = StreamKind::from_u8(b[p]).ok_or_else(bad)?;
        p += 1;
        let mut l = [0u8; 8];
        l.copy_from_slice(&b[p..p + 8]);
        p += 8;
        let root = ChunkId::from_slice(&b[p..p + 32]).ok_or_else(bad)?;
        p += 32;
        out.push((
            name,
            StreamRef {
                kind,
                len: u64::from_le_bytes(l),
                root,
            },
        ));
    }
    if p != b.len() {
        return Err(bad());
    }
    Ok(out)
}

/// Check a tree entry name: non-empty, at most 4096 bytes, no '/' or NUL, not "." or "..".
pub fn check_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty()
        || name.len() > 4096
        || name.contains('/')
        || name.contains('\0')
        || name == "."
        || name == ".."
    {
        return Err(StoreError::InvalidArgument(format!(
            "invalid tree entry name {name:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_roundtrip() {
        let n = StreamNode {
            level: 2,
            entries: vec![
                NodeEntry::whole(ChunkId::of(b"a"), 5),
                NodeEntry::whole(ChunkId::ZERO, 1 << 40),
            ],
        };
        let b = n.encode();
        assert_eq!(b[4], 1, "a node without slices is version 1");
        assert_eq!(StreamNode::decode(&ChunkId::of(&b), &b).unwrap(), n);
        assert!(StreamNode::decode(&ChunkId::ZERO, &b[..b.len() - 1]).is_err());
    }

    #[test]
    fn sliced_node_roundtrip() {
        let mut n = StreamNode {
            level: 1,
            entries: vec![
                NodeEntry {
                    id: ChunkId::of(b"a"),
                    len: 4096,
                    offset: 8192,
                },
                NodeEntry::whole(ChunkId::ZERO, 4096),
            ],
        };
        let b = n.encode();
        assert_eq!((b[4], b.len()), (2, 12 + 2 * 48));
        assert_eq!(StreamNode::decode(&ChunkId::of(&b), &b).unwrap(), n);
        // A slice above level 1 is invalid.
        n.level = 2;
        let b = n.encode();
        assert!(StreamNode::decode(&ChunkId::of(&b), &b).is_err());
    }

    #[test]
    fn tree_roundtrip() {
        let r = StreamRef {
            kind: StreamKind::Bytes,
            len: 3,
            root: ChunkId::of(b"x"),
        };
        let e = vec![("a".to_string(), r.clone()), ("é".to_string(), r)];
        let b = encode_tree(&e);
        assert_eq!(decode_tree(&ChunkId::ZERO, &b).unwrap(), e);
        assert!(decode_tree(&ChunkId::ZERO, &b[..b.len() - 3]).is_err());
    }
}
