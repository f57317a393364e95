//! [`Writer`]: stream encoding. Memory regions are cut into fixed-size chunks (incremental
//! and sparse writes reuse the chunks of a previous stream), byte streams into
//! content-defined chunks; chunks are hashed, and Merkle trees of stream nodes and tree nodes
//! are built over them. The chunks themselves go to the writer's [`Packer`].

use std::sync::Arc;

use rayon::prelude::*;

use crate::dir::StoreDir;
use crate::error::{IoContext, StoreError};
use crate::generation::WriteStats;
use crate::id::{is_all_zero, ChunkId, IdMap};
use crate::node::{check_name, encode_tree, NodeEntry, StreamKind, StreamNode, StreamRef};
use crate::write::packer::{Packer, PendingIndex, BATCH};

/// How [`Writer::put_memory`] reads a region: fills the buffer with the region's bytes at the
/// offset (called from several threads at once).
pub type ReadAtFn<'a> = dyn Fn(u64, &mut [u8]) -> std::io::Result<()> + Sync + 'a;

/// A batch read and hashed, waiting to be stored: its plan and its hashed chunks.
type Pending = (Vec<Option<NodeEntry>>, Vec<(ChunkId, Vec<u8>)>);

/// How interior nodes group their children.
#[derive(Clone, Copy)]
enum Layout {
    /// Exactly `n` children per node (memory streams: positions never shift).
    Fixed(usize),
    /// Content-defined: a node ends after a child whose id ≡ -1 mod `avg`, or at `max`
    /// children (byte streams: an insertion only changes the nodes around it).
    ContentDefined { avg: u32, max: usize },
}

/// A writer session. Chunks go into this writer's own uniquely named packs; the refs it
/// returns become durable when [`Writer::finish`] returns.
pub struct Writer {
    dir: Arc<StoreDir>,
    /// Where the chunks go: dedup, compression, this writer's packs.
    packer: Packer,
    /// Leaves of the memory streams written in this session, by root: a later
    /// `put_memory_incremental` on one of them needs neither its nodes nor its durability.
    recent: IdMap<Recent>,
}

/// A memory stream written in this session: its leaves (one per chunk) and how many node
/// chunks its tree counted in the statistics.
struct Recent {
    leaves: Arc<Vec<NodeEntry>>,
    level1: Arc<Vec<Level1>>,
    node_chunks: u64,
}

/// A level-1 node of a memory stream: its offset in the stream, id and length.
type Level1 = (u64, ChunkId, u64);

impl Writer {
    /// A writer session named `name` (host-pid-random) on the store directory `dir`.
    pub(crate) fn new(dir: Arc<StoreDir>, name: String) -> Writer {
        Writer {
            packer: Packer::new(dir.clone(), name),
            dir,
            recent: IdMap::default(),
        }
    }

    /// This writer's unique name (host-pid-random); its packs are named after it.
    pub fn name(&self) -> &str {
        self.packer.name()
    }

    /// Statistics so far.
    pub fn stats(&self) -> &WriteStats {
        &self.packer.stats
    }

    /// Takes the logical counts (logical, zero and unchanged bytes, chunks) back to what
    /// they were at `mark` (an earlier [`Writer::stats`]), keeping what was newly stored:
    /// for writes that only prepare later ones (pre-copy), whose bytes must not count twice.
    pub fn uncount_logical_since(&mut self, mark: &WriteStats) {
        self.packer.stats.logical_bytes = mark.logical_bytes;
        self.packer.stats.zero_bytes = mark.zero_bytes;
        self.packer.stats.unchanged_bytes = mark.unchanged_bytes;
        self.packer.stats.chunks = mark.chunks;
    }

    /// Build the Merkle tree over `leaves` and return the root node id.
    /// With `ask_index` false, nodes unknown to this session and handle are not looked up
    /// in the index (see [`Packer::store_chunks_asking`]).
    ///
    /// `keep[g]`, for fixed layouts, is the id and length of a previous stream's level-1 node
    /// whose children group `g` repeats exactly (the caller guarantees it): that node is
    /// reused without being encoded, hashed or stored. The stream's level-1 nodes are
    /// returned with the root (fixed layouts with more than one of them; else empty).
    fn build_nodes(
        &mut self,
        leaves: Vec<NodeEntry>,
        layout: Layout,
        ask_index: bool,
        keep: Option<&[Option<(ChunkId, u64)>]>,
    ) -> Result<(ChunkId, Vec<Level1>), StoreError> {
        let mut entries = leaves;
        let mut level: u8 = 1;
        let mut level1 = Vec::new();
        loop {
            let groups = split(entries, layout);
            if groups.len() <= 1 {
                let node = StreamNode {
                    level,
                    entries: groups.into_iter().next().unwrap_or_default(),
                };
                let bytes = node.encode();
                let id = ChunkId::of(&bytes);
                self.dir.known().add_node(id, std::sync::Arc::new(node));
                self.packer.stats.chunks += 1;
                self.packer
                    .store_chunks_asking(vec![(id, bytes)], ask_index)?;
                return Ok((id, level1));
            }
            let fixed = matches!(layout, Layout::Fixed(_)) && level == 1;
            let mut next = Vec::with_capacity(groups.len());
            let mut to_store = Vec::new();
            let mut off = 0u64;
            for (gi, g) in groups.into_iter().enumerate() {
                let total: u64 = g.iter().map(|e| e.len).sum();
                let start = off;
                off += total;
                if g.iter().all(|e| e.id.is_zero()) {
                    next.push(NodeEntry {
                        id: ChunkId::ZERO,
                        len: total,
                    });
                    continue;
                }
                let kept = keep
                    .filter(|_| fixed)
                    .and_then(|k| k.get(gi).copied().flatten())
                    .filter(|&(_, l)| l == total);
                let id = match kept {
                    Some((id, _)) => id,
                    None => {
                        let node = StreamNode { level, entries: g };
                        let bytes = node.encode();
                        let id = ChunkId::of(&bytes);
                        self.dir.known().add_node(id, std::sync::Arc::new(node));
                        to_store.push((id, bytes));
                        id
                    }
                };
                self.packer.stats.chunks += 1;
                if fixed {
                    level1.push((start, id, total));
                }
                next.push(NodeEntry { id, len: total });
            }
            self.packer.store_chunks_asking(to_store, ask_index)?;
            entries = next;
            level = level.checked_add(1).ok_or_else(|| {
                StoreError::InvalidArgument("stream too large for the node tree".into())
            })?;
        }
    }

    /// Account for hashed data chunks and store the non-zero ones.
    fn ingest(
        &mut self,
        hashed: Vec<(ChunkId, Vec<u8>)>,
        leaves: &mut Vec<NodeEntry>,
    ) -> Result<(), StoreError> {
        let plan = vec![None; hashed.len()];
        self.ingest_planned(plan, hashed, leaves)
    }

    /// Like `ingest`, where `plan[i]` is `Some(entry)` for chunks reused unchanged from a
    /// previous stream and `None` for the next chunk of `hashed`.
    fn ingest_planned(
        &mut self,
        plan: Vec<Option<NodeEntry>>,
        hashed: Vec<(ChunkId, Vec<u8>)>,
        leaves: &mut Vec<NodeEntry>,
    ) -> Result<(), StoreError> {
        let mut nonzero = Vec::with_capacity(hashed.len());
        let mut hashed = hashed.into_iter();
        for slot in plan {
            self.packer.stats.chunks += 1;
            match slot {
                Some(e) => {
                    self.packer.stats.logical_bytes += e.len;
                    if e.id.is_zero() {
                        self.packer.stats.zero_bytes += e.len;
                    } else {
                        self.packer.stats.unchanged_bytes += e.len;
                    }
                    leaves.push(e);
                }
                None => {
                    let Some((id, data)) = hashed.next() else {
                        return Err(StoreError::InvalidArgument(
                            "internal: plan mismatch".into(),
                        ));
                    };
                    let len = data.len() as u64;
                    self.packer.stats.logical_bytes += len;
                    leaves.push(NodeEntry { id, len });
                    if id.is_zero() {
                        self.packer.stats.zero_bytes += len;
                        self.packer.recycle(data);
                    } else {
                        nonzero.push((id, data));
                    }
                }
            }
        }
        self.packer.store_chunks(nonzero)
    }

    /// A memory region of `len` bytes (fixed-size chunks of the store's memory chunk size).
    /// `source` fills `buf` with the bytes at `offset`; it is called from several threads at
    /// once. All-zero chunks are detected and never stored.
    pub fn put_memory(&mut self, len: u64, source: &ReadAtFn) -> Result<StreamRef, StoreError> {
        self.put_memory_planned(len, None, None, true, source)
    }

    /// A memory region that changed only in `changed` (sorted or not: `(offset, len)` byte
    /// ranges) since `prev`, a memory stream of this store (e.g. the same region in the
    /// previous generation). Chunks that do not overlap a changed range and have the same
    /// extent in `prev` are taken from `prev` without calling `source` — the caller
    /// guarantees they are identical (dirty-page tracking). Everything else is read as in
    /// [`Writer::put_memory`]. `prev` must be durable (committed or written by a finished
    /// writer).
    pub fn put_memory_incremental(
        &mut self,
        len: u64,
        prev: &StreamRef,
        changed: &[(u64, u64)],
        source: &ReadAtFn,
    ) -> Result<StreamRef, StoreError> {
        if prev.kind != StreamKind::Memory {
            return Err(StoreError::InvalidArgument(
                "put_memory_incremental: prev is not a memory stream".into(),
            ));
        }
        // Nothing changed in a stream of this session (a pre-copy the program did not touch
        // since): the stream is `prev` itself, counted as if it had been rebuilt.
        let untouched = prev.len == len && changed.iter().all(|&(o, l)| l == 0 || o >= len);
        if let Some(r) = self.recent.get(&prev.root).filter(|_| untouched) {
            let s = &mut self.packer.stats;
            for e in r.leaves.iter() {
                s.chunks += 1;
                s.logical_bytes += e.len;
                if e.id.is_zero() {
                    s.zero_bytes += e.len;
                } else {
                    s.unchanged_bytes += e.len;
                }
            }
            s.chunks += r.node_chunks;
            return Ok(prev.clone());
        }
        let cs = u64::from(self.dir.config().memory_chunk_size);
        let n = len.div_ceil(cs) as usize;
        let mut reuse: Vec<Option<NodeEntry>> = vec![None; n];
        let mut off = 0u64;
        let (prev_leaves, prev_level1) = self.stream_leaves(prev)?;
        for e in prev_leaves {
            // A zero subtree covers many chunks: split it into chunk-sized zero runs.
            let parts: Vec<NodeEntry> = if e.id.is_zero() && e.len > cs && off.is_multiple_of(cs) {
                let mut v = Vec::new();
                let mut rest = e.len;
                while rest > 0 {
                    let l = rest.min(cs);
                    v.push(NodeEntry {
                        id: ChunkId::ZERO,
                        len: l,
                    });
                    rest -= l;
                }
                v
            } else {
                vec![e]
            };
            for p in parts {
                let k = (off / cs) as usize;
                let want = cs.min(len.saturating_sub(off));
                if off.is_multiple_of(cs) && k < n && p.len == want {
                    reuse[k] = Some(p);
                }
                off += p.len;
            }
        }
        for &(o, l) in changed {
            if l == 0 || o >= len {
                continue;
            }
            let first = (o / cs) as usize;
            let last = ((o.saturating_add(l).min(len) - 1) / cs) as usize;
            for r in &mut reuse[first..=last.min(n - 1)] {
                *r = None;
            }
        }
        // The nodes of an incremental stream that differ from `prev`'s are new: `prev`'s
        // nodes are known to this handle (read or written through it), so unknown ones are
        // not looked up in the index (thousands of misses per GiB otherwise).
        self.put_memory_planned(len, Some(reuse), Some(prev_level1), false, source)
    }

    /// A memory region of which only the `present` byte ranges (`(offset, len)`, any order)
    /// may hold non-zero bytes — e.g. the pages /proc/PID/pagemap reports as present. Chunks
    /// that overlap no present range are recorded as zero without calling `source`. The result
    /// is identical to [`Writer::put_memory`] of the same bytes.
    pub fn put_memory_sparse(
        &mut self,
        len: u64,
        present: &[(u64, u64)],
        source: &ReadAtFn,
    ) -> Result<StreamRef, StoreError> {
        let cs = u64::from(self.dir.config().memory_chunk_size);
        let n = len.div_ceil(cs) as usize;
        let mut plan: Vec<Option<NodeEntry>> = (0..n as u64)
            .map(|k| {
                Some(NodeEntry {
                    id: ChunkId::ZERO,
                    len: cs.min(len - k * cs),
                })
            })
            .collect();
        for &(o, l) in present {
            if l == 0 || o >= len {
                continue;
            }
            let first = (o / cs) as usize;
            let last = ((o.saturating_add(l).min(len) - 1) / cs) as usize;
            for p in &mut plan[first..=last.min(n - 1)] {
                *p = None;
            }
        }
        self.put_memory_planned(len, Some(plan), None, true, source)
    }

    /// Data-chunk entries of a stream, in order (zero runs included): those this session
    /// wrote are remembered, other streams' nodes are read and verified (or taken from the
    /// store handle's node cache).
    /// Also returns the stream's level-1 nodes (offset, id, length).
    fn stream_leaves(&self, s: &StreamRef) -> Result<(Vec<NodeEntry>, Vec<Level1>), StoreError> {
        if let Some(r) = self.recent.get(&s.root) {
            return Ok((r.leaves.as_ref().clone(), r.level1.as_ref().clone()));
        }
        struct Walk<'a> {
            dir: &'a StoreDir,
            out: Vec<NodeEntry>,
            level1: Vec<Level1>,
            off: u64,
        }
        fn walk(
            w: &mut Walk<'_>,
            id: &ChunkId,
            level: Option<u8>,
            len: u64,
        ) -> Result<(), StoreError> {
            let node = w.dir.read_node(id)?;
            if level.is_some_and(|l| l != node.level) || node.total_len() != len {
                return Err(StoreError::Corrupt(format!(
                    "stream node {id} does not match its parent"
                )));
            }
            if node.level == 1 {
                w.level1.push((w.off, *id, len));
            }
            for e in &node.entries {
                if node.level == 1 || e.id.is_zero() {
                    // Zero subtrees come out as one zero run; the caller splits them.
                    w.out.push(*e);
                    w.off += e.len;
                } else {
                    walk(w, &e.id, Some(node.level - 1), e.len)?;
                }
            }
            Ok(())
        }
        let mut w = Walk {
            dir: &self.dir,
            out: Vec::new(),
            level1: Vec::new(),
            off: 0,
        };
        walk(&mut w, &s.root, None, s.len)?;
        Ok((w.out, w.level1))
    }

    /// `prev_level1`: the level-1 nodes of the stream `reuse` comes from; a group of chunks
    /// all reused from it keeps its node.
    fn put_memory_planned(
        &mut self,
        len: u64,
        reuse: Option<Vec<Option<NodeEntry>>>,
        prev_level1: Option<Vec<Level1>>,
        ask_index_for_nodes: bool,
        source: &ReadAtFn,
    ) -> Result<StreamRef, StoreError> {
        let cs = u64::from(self.dir.config().memory_chunk_size);
        let n = len.div_ceil(cs);
        let mut leaves = Vec::with_capacity(n as usize);
        // Batches are pipelined: while batch k is deduplicated, compressed and written,
        // batch k+1 is read and hashed.
        let mut pending: Option<Pending> = None;
        let mut i = 0u64;
        loop {
            let next = if i < n {
                // A batch holds up to BATCH chunks to read, plus the reused chunks between
                // them: an incremental write of scattered changes then reads its few chunks in
                // a few well-filled batches, not one nearly empty batch per BATCH chunks.
                let mut end = i;
                let mut to_read = 0;
                while end < n && to_read < BATCH {
                    if reuse.as_ref().is_none_or(|r| r[end as usize].is_none()) {
                        to_read += 1;
                    }
                    end += 1;
                }
                let plan: Vec<Option<NodeEntry>> = (i..end)
                    .map(|k| reuse.as_ref().and_then(|r| r[k as usize]))
                    .collect();
                let bufs: Vec<(u64, Vec<u8>)> = (i..end)
                    .zip(plan.iter())
                    .filter(|(_, p)| p.is_none())
                    .map(|(k, _)| (k, self.packer.take_buf()))
                    .collect();
                i = end;
                Some((plan, bufs))
            } else {
                None
            };
            let read = |bufs: Vec<(u64, Vec<u8>)>| -> Result<Vec<(ChunkId, Vec<u8>)>, StoreError> {
                bufs.into_par_iter()
                    .map(|(k, mut buf)| {
                        let off = k * cs;
                        let l = cs.min(len - off) as usize;
                        buf.resize(l, 0);
                        source(off, &mut buf)
                            .ctx(|| format!("reading memory source at offset {off}"))?;
                        let id = if is_all_zero(&buf) {
                            ChunkId::ZERO
                        } else {
                            ChunkId::of(&buf)
                        };
                        Ok((id, buf))
                    })
                    .collect()
            };
            match (pending.take(), next) {
                (None, None) => break,
                (None, Some((plan, bufs))) => pending = Some((plan, read(bufs)?)),
                (Some((plan, hashed)), None) => {
                    self.ingest_planned(plan, hashed, &mut leaves)?;
                }
                (Some((plan, hashed)), Some((nplan, bufs))) => {
                    let (done, fresh) = rayon::join(
                        || self.ingest_planned(plan, hashed, &mut leaves),
                        || read(bufs),
                    );
                    done?;
                    pending = Some((nplan, fresh?));
                }
            }
        }
        let fanout = (self.dir.config().memory_fanout as usize).max(2);
        // Groups (of `fanout` chunks, the level-1 nodes of a fixed layout) whose every chunk
        // was reused from the previous stream repeat its node at the same offset, if it had
        // one of the same length there.
        let keep: Option<Vec<Option<(ChunkId, u64)>>> = match (&reuse, prev_level1) {
            (Some(reuse), Some(l1)) => {
                let span = fanout as u64 * cs;
                let mut keep = vec![None; reuse.len().div_ceil(fanout)];
                for (off, id, l) in l1 {
                    let g = (off / span) as usize;
                    if off % span == 0 && g < keep.len() {
                        let slots = &reuse[g * fanout..((g + 1) * fanout).min(reuse.len())];
                        if slots.iter().all(Option::is_some) {
                            keep[g] = Some((id, l));
                        }
                    }
                }
                Some(keep)
            }
            _ => None,
        };
        let kept = Arc::new(leaves.clone());
        let before = self.packer.stats.chunks;
        let (root, level1) = self.build_nodes(
            leaves,
            Layout::Fixed(fanout),
            ask_index_for_nodes,
            keep.as_deref(),
        )?;
        let node_chunks = self.packer.stats.chunks - before;
        self.recent.insert(
            root,
            Recent {
                leaves: kept,
                level1: Arc::new(level1),
                node_chunks,
            },
        );
        Ok(StreamRef {
            kind: StreamKind::Memory,
            len,
            root,
        })
    }

    /// A byte stream (file contents): content-defined chunking (fastcdc).
    pub fn put_bytes(&mut self, r: &mut dyn std::io::Read) -> Result<StreamRef, StoreError> {
        let cfg = self.dir.config().clone();
        let cdc = fastcdc::v2020::StreamCDC::new(
            r,
            cfg.cdc_min_size as usize,
            cfg.cdc_avg_size as usize,
            cfg.cdc_max_size as usize,
        );
        let mut leaves = Vec::new();
        let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
        let mut total = 0u64;
        for c in cdc {
            let c = c.map_err(|e| match e {
                fastcdc::v2020::Error::IoError(io) => StoreError::Io {
                    context: "reading byte stream".into(),
                    source: io,
                },
                other => StoreError::InvalidArgument(format!("chunking byte stream: {other}")),
            })?;
            total += c.data.len() as u64;
            batch.push(c.data);
            if batch.len() == BATCH {
                let hashed = hash_all(std::mem::take(&mut batch));
                self.ingest(hashed, &mut leaves)?;
            }
        }
        if !batch.is_empty() {
            let hashed = hash_all(batch);
            self.ingest(hashed, &mut leaves)?;
        }
        let layout = Layout::ContentDefined {
            avg: cfg.bytes_fanout_avg,
            max: cfg.bytes_fanout_avg as usize * 4,
        };
        let (root, _) = self.build_nodes(leaves, layout, true, None)?;
        Ok(StreamRef {
            kind: StreamKind::Bytes,
            len: total,
            root,
        })
    }

    /// A small named blob (JSON metadata, etc.). Same as put_bytes on a slice.
    pub fn put_blob(&mut self, data: &[u8]) -> Result<StreamRef, StoreError> {
        let mut r = data;
        self.put_bytes(&mut r)
    }

    /// A tree node: named children (names are unique, sorted by the store).
    pub fn put_tree(
        &mut self,
        mut entries: Vec<(String, StreamRef)>,
    ) -> Result<StreamRef, StoreError> {
        for (n, _) in &entries {
            check_name(n)?;
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(StoreError::InvalidArgument(format!(
                "duplicate tree entry name {:?}",
                w[0].0
            )));
        }
        let bytes = encode_tree(&entries);
        let id = ChunkId::of(&bytes);
        self.packer.stats.chunks += 1;
        self.packer.store_chunks(vec![(id, bytes)])?;
        Ok(StreamRef {
            kind: StreamKind::Tree,
            len: entries.len() as u64,
            root: id,
        })
    }

    /// Flush, fsync and rename this writer's packs; after this the refs are durable.
    pub fn finish(self) -> Result<WriteStats, StoreError> {
        self.packer.finish()
    }

    /// Like [`Writer::finish`] (the refs are durable when it returns), but the index rows of
    /// the packs not indexed yet are returned, to be written later ([`PendingIndex::apply`]).
    /// The index is a cache: the packs' chunks are readable and committable without their
    /// rows (readers that miss a chunk index unindexed packs from their trailers; this store
    /// handle remembers where they are).
    pub fn finish_deferred(self) -> Result<(WriteStats, PendingIndex), StoreError> {
        self.packer.finish_deferred()
    }
}

fn hash_all(datas: Vec<Vec<u8>>) -> Vec<(ChunkId, Vec<u8>)> {
    datas
        .into_par_iter()
        .map(|d| {
            let id = if is_all_zero(&d) {
                ChunkId::ZERO
            } else {
                ChunkId::of(&d)
            };
            (id, d)
        })
        .collect()
}

fn split(entries: Vec<NodeEntry>, layout: Layout) -> Vec<Vec<NodeEntry>> {
    match layout {
        Layout::Fixed(n) => entries.chunks(n.max(2)).map(|c| c.to_vec()).collect(),
        Layout::ContentDefined { avg, max } => {
            let mut out = Vec::new();
            let mut cur = Vec::new();
            for e in entries {
                let boundary = !e.id.is_zero() && {
                    let v = u32::from_le_bytes([e.id.0[0], e.id.0[1], e.id.0[2], e.id.0[3]]);
                    v % avg.max(2) == avg.max(2) - 1
                };
                cur.push(e);
                if boundary || cur.len() >= max.max(2) {
                    out.push(std::mem::take(&mut cur));
                }
            }
            if !cur.is_empty() {
                out.push(cur);
            }
            out
        }
    }
}
