//! [`GenerationReader`]: reassembling streams of one generation, every chunk verified.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::dir::StoreDir;
use crate::error::StoreError;
use crate::generation::Generation;
use crate::id::ChunkId;
use crate::node::{NodeEntry, StreamKind, StreamNode, StreamRef};
use crate::pack::direct_io_enabled;
use crate::read::chunk::read_tree;
use crate::read::extent::{read_chunks, Counters, Ctx, Item, PackHandles, ReadStats};

/// Consumer of [`GenerationReader::for_each_chunk`]: (offset, bytes or `None` when all zero).
pub type ChunkSink<'a> = dyn Fn(u64, Option<&[u8]>) -> std::io::Result<()> + Sync + 'a;

/// Reads the streams of one committed generation.
pub struct GenerationReader {
    dir: Arc<StoreDir>,
    gen: Generation,
    nodes: Mutex<HashMap<ChunkId, Arc<StreamNode>>>,
    packs: PackHandles,
    counters: Counters,
    /// Whether extents may be read with O_DIRECT (`CAIRN_PACK_DIRECT=0` says no).
    pub(crate) try_direct: std::sync::atomic::AtomicBool,
}

impl GenerationReader {
    /// A reader of generation `gen` of the store directory `dir`.
    pub(crate) fn new(dir: Arc<StoreDir>, gen: Generation) -> GenerationReader {
        GenerationReader {
            dir,
            gen,
            nodes: Mutex::new(HashMap::new()),
            packs: PackHandles::default(),
            counters: Counters::default(),
            try_direct: std::sync::atomic::AtomicBool::new(direct_io_enabled()),
        }
    }

    /// The generation being read.
    pub fn generation(&self) -> &Generation {
        &self.gen
    }

    /// The root tree of the generation.
    pub fn root(&self) -> &StreamRef {
        &self.gen.root
    }

    /// Resolve "a/b/c" through tree nodes from the generation root ("" is the root).
    pub fn lookup(&self, path: &str) -> Result<StreamRef, StoreError> {
        let mut cur = self.gen.root.clone();
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            if cur.kind != StreamKind::Tree {
                return Err(StoreError::NotFound(path.to_string()));
            }
            let entries = self.tree_entries(&cur)?;
            cur = entries
                .into_iter()
                .find(|(n, _)| n == comp)
                .map(|(_, r)| r)
                .ok_or_else(|| StoreError::NotFound(path.to_string()))?;
        }
        Ok(cur)
    }

    /// The named children of a tree, sorted by name.
    pub fn tree_entries(&self, tree: &StreamRef) -> Result<Vec<(String, StreamRef)>, StoreError> {
        read_tree(&self.dir, tree)
    }

    fn node(&self, id: &ChunkId) -> Result<Arc<StreamNode>, StoreError> {
        if let Some(n) = self.nodes.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Ok(n.clone());
        }
        let n = Arc::new(StreamNode::decode(id, &self.dir.read_chunk(id)?)?);
        self.remember_nodes([(*id, n.clone())]);
        Ok(n)
    }

    fn remember_nodes(&self, nodes: impl IntoIterator<Item = (ChunkId, Arc<StreamNode>)>) {
        let mut cache = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        for (id, n) in nodes {
            if cache.len() >= NODE_CACHE {
                cache.clear();
            }
            cache.insert(id, n);
        }
    }

    /// Prepares [`GenerationReader::for_each_chunk`] of many small streams (a process's
    /// mappings): their root nodes are located in one index transaction and read, and the
    /// data chunks of the roots that list them (level 1) are located in one more, where each
    /// stream would otherwise take two index transactions of its own. Nothing is returned: the
    /// nodes and locations are remembered for the reads that follow, which still verify every
    /// chunk they read.
    pub fn prefetch(&self, streams: &[StreamRef]) -> Result<(), StoreError> {
        let mut roots: Vec<ChunkId> = {
            let cache = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
            streams
                .iter()
                .filter(|s| s.kind != StreamKind::Tree && !s.root.is_zero())
                .map(|s| s.root)
                .filter(|id| !cache.contains_key(id))
                .collect()
        };
        roots.sort_unstable();
        roots.dedup();
        roots.truncate(NODE_CACHE / 2);
        if roots.is_empty() {
            return Ok(());
        }
        let locs = self.dir.locate_many(&roots)?;
        let nodes = roots
            .par_iter()
            .zip(locs.into_par_iter())
            .map(|(id, loc)| {
                let mut d = vec![0u8; loc.1.raw_len as usize];
                self.dir.read_loc_into(&loc, &mut d)?;
                Ok((*id, Arc::new(StreamNode::decode(id, &d)?)))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let leaves: Vec<ChunkId> = nodes
            .iter()
            .filter(|(_, n)| n.level == 1)
            .flat_map(|(_, n)| n.entries.iter().map(|e| e.id))
            .filter(|id| !id.is_zero())
            .collect();
        self.remember_nodes(nodes);
        self.dir.locate_many(&leaves)?;
        Ok(())
    }

    /// Data chunks overlapping `[start, end)`, with their stream offsets.
    fn leaves_in_range(
        &self,
        s: &StreamRef,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, NodeEntry)>, StoreError> {
        if s.kind == StreamKind::Tree {
            return Err(StoreError::InvalidArgument(
                "a tree is not a byte or memory stream".into(),
            ));
        }
        let mut out = Vec::new();
        let root = self.node(&s.root)?;
        if root.total_len() != s.len {
            return Err(StoreError::Corrupt(format!(
                "stream root {} covers {} bytes, reference says {}",
                s.root,
                root.total_len(),
                s.len
            )));
        }
        self.collect(&root, 0, start, end, &mut out)?;
        Ok(out)
    }

    fn collect(
        &self,
        node: &StreamNode,
        base: u64,
        start: u64,
        end: u64,
        out: &mut Vec<(u64, NodeEntry)>,
    ) -> Result<(), StoreError> {
        let mut off = base;
        for e in &node.entries {
            let (lo, hi) = (off, off + e.len);
            off = hi;
            if hi <= start || lo >= end || e.len == 0 {
                continue;
            }
            if node.level == 1 || e.id.is_zero() {
                out.push((lo, *e));
            } else {
                let child = self.node(&e.id)?;
                if child.level + 1 != node.level || child.total_len() != e.len {
                    return Err(StoreError::Corrupt(format!(
                        "stream node {} does not match its parent",
                        e.id
                    )));
                }
                self.collect(&child, lo, start, end, out)?;
            }
        }
        Ok(())
    }

    /// The whole stream.
    pub fn read_all(&self, s: &StreamRef) -> Result<Vec<u8>, StoreError> {
        let len = usize::try_from(s.len)
            .map_err(|_| StoreError::InvalidArgument("stream too large for memory".into()))?;
        let mut out = vec![0u8; len];
        self.read_at(s, 0, &mut out)?;
        Ok(out)
    }

    /// Fill `buf` with the stream's bytes at `offset`; the range must lie inside the stream.
    pub fn read_at(&self, s: &StreamRef, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= s.len)
            .ok_or_else(|| {
                StoreError::InvalidArgument(format!(
                    "range {offset}+{} is outside the stream of {} bytes",
                    buf.len(),
                    s.len
                ))
            })?;
        if buf.is_empty() {
            return Ok(());
        }
        let leaves = self.leaves_in_range(s, offset, end)?;
        // Split `buf` into one disjoint piece per leaf, then fill the pieces in parallel.
        let mut pieces: Vec<(&mut [u8], u64, NodeEntry)> = Vec::with_capacity(leaves.len());
        let mut rest: &mut [u8] = buf;
        let mut pos = offset;
        for (lo, e) in leaves {
            let take = ((lo + e.len).min(end) - pos) as usize;
            let (piece, tail) = rest.split_at_mut(take);
            pieces.push((piece, pos - lo, e));
            rest = tail;
            pos += take as u64;
        }
        if !rest.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "stream {} has a hole at offset {pos}",
                s.root
            )));
        }
        let ids: Vec<ChunkId> = pieces
            .iter()
            .filter(|p| !p.2.id.is_zero())
            .map(|p| p.2.id)
            .collect();
        let mut locs = self.dir.locate_many(&ids)?.into_iter();
        let work: Vec<_> = pieces
            .into_iter()
            .map(|(piece, skip, e)| {
                let loc = if e.id.is_zero() { None } else { locs.next() };
                (piece, skip, e, loc)
            })
            .collect();
        work.into_par_iter().try_for_each(|(piece, skip, e, loc)| {
            let Some(loc) = loc else {
                piece.fill(0);
                return Ok(());
            };
            let whole = loc.1.raw_len as usize;
            if skip == 0 && e.offset == 0 && piece.len() as u64 == e.len && whole == piece.len() {
                self.dir.read_loc_into(&loc, piece)
            } else {
                let mut d = vec![0u8; whole];
                self.dir.read_loc_into(&loc, &mut d)?;
                let from = usize::try_from(e.offset + skip).unwrap_or(usize::MAX);
                let part = d
                    .get(from..from.saturating_add(piece.len()))
                    .ok_or_else(|| out_of_chunk(&e, whole))?;
                piece.copy_from_slice(part);
                Ok(())
            }
        })
    }

    /// Every chunk of a stream, in parallel, verified; `None` for all-zero chunks.
    /// `f` gets the chunk's offset in the stream. A `None` covers everything up to the next
    /// offset reported (or the end of the stream): one all-zero chunk, or a whole all-zero
    /// subtree of many chunks, which is reported once. Chunks are read in extents of
    /// neighbouring chunks, several at a time, with `O_DIRECT` when they are not cached
    /// (`read/extent.rs`); the order of the calls is unspecified.
    pub fn for_each_chunk(&self, s: &StreamRef, f: &ChunkSink) -> Result<(), StoreError> {
        let leaves = self.leaves_in_range(s, 0, s.len)?;
        let consumed = |off: u64, data: Option<&[u8]>| {
            f(off, data).map_err(|source| StoreError::Io {
                context: format!("consuming chunk at offset {off}"),
                source,
            })
        };
        let mut data = Vec::with_capacity(leaves.len());
        for (off, e) in leaves {
            if e.id.is_zero() {
                consumed(off, None)?;
            } else {
                data.push((off, e));
            }
        }
        // A few chunks (small mappings): read one by one here, without starting threads.
        if data.len() <= INLINE_CHUNKS {
            let ids: Vec<ChunkId> = data.iter().map(|l| l.1.id).collect();
            for ((off, e), loc) in data.iter().zip(self.dir.locate_many(&ids)?) {
                let whole = loc.1.raw_len as usize;
                let mut d = vec![0u8; whole];
                self.dir.read_loc_into(&loc, &mut d)?;
                let (o, l) = (e.offset as usize, leaf_len(e)?);
                let part = d
                    .get(o..o.saturating_add(l))
                    .ok_or_else(|| out_of_chunk(e, whole))?;
                consumed(*off, Some(part))?;
            }
            return Ok(());
        }
        // Located batch by batch, while the extents of the batches before are read.
        let mut batches = data.chunks(LOCATE_BATCH).map(|b| {
            let ids: Vec<ChunkId> = b.iter().map(|l| l.1.id).collect();
            let locs = self.dir.locate_many(&ids)?;
            b.iter()
                .zip(locs)
                .map(|(&(off, e), loc)| {
                    let offset = usize::try_from(e.offset)
                        .map_err(|_| out_of_chunk(&e, loc.1.raw_len as usize))?;
                    Ok(Item {
                        off,
                        len: loc.1.raw_len as usize,
                        take: (offset, leaf_len(&e)?),
                        loc,
                    })
                })
                .collect()
        });
        let ctx = Ctx {
            dir: &self.dir,
            handles: &self.packs,
            counters: &self.counters,
            try_direct: self.try_direct.load(std::sync::atomic::Ordering::Relaxed),
        };
        read_chunks(&ctx, &mut batches, &|off, data| consumed(off, Some(data)))
    }

    /// How the chunks read so far by [`GenerationReader::for_each_chunk`] were read.
    pub fn read_stats(&self) -> ReadStats {
        self.counters.snapshot()
    }
}

/// Decoded stream nodes a reader keeps (a level-1 node of a small stream is a few dozen
/// bytes; [`GenerationReader::prefetch`] fills it with the roots of a process's mappings, of
/// which there are at most `vm.max_map_count`, 65,530 by default).
const NODE_CACHE: usize = 64 << 10;
/// Data chunks located at once by [`GenerationReader::for_each_chunk`] (128 MiB of 32 KiB
/// chunks).
const LOCATE_BATCH: usize = 4096;
/// Streams of at most this many data chunks are read chunk by chunk in the calling thread.
const INLINE_CHUNKS: usize = 4;

/// A stream node's child that claims bytes beyond the end of its chunk.
fn out_of_chunk(e: &NodeEntry, whole: usize) -> StoreError {
    StoreError::Corrupt(format!(
        "a stream uses bytes {}+{} of chunk {}, which has {whole} bytes",
        e.offset, e.len, e.id
    ))
}

fn leaf_len(e: &NodeEntry) -> Result<usize, StoreError> {
    usize::try_from(e.len)
        .ok()
        .filter(|&l| l <= 64 << 20)
        .ok_or_else(|| StoreError::Corrupt(format!("chunk {} claims {} bytes", e.id, e.len)))
}
