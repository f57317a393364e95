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
type Pending = (Vec<Slot>, Vec<(ChunkId, Vec<u8>)>);

/// How interior nodes group their children.
#[derive(Clone)]
enum Layout {
    /// Exactly `n` children per node (memory streams: positions never shift).
    Fixed(usize),
    /// Content-defined: a node ends after a child whose id ≡ -1 mod `avg`, or at `max`
    /// children (byte streams: an insertion only changes the nodes around it).
    ContentDefined { avg: u32, max: usize },
    /// Memory streams: level-1 nodes end before the children at the given indexes (every
    /// `fanout` windows of the stream, a window having one child or several slices), the
    /// levels above group exactly `fanout` nodes.
    Windows(Vec<usize>, usize),
}

/// Bytes per page: the granularity of memory deltas.
const PAGE: u64 = 4096;

/// At most this many children per chunk-sized window of a memory stream (slices of older
/// chunks and chunks of changed pages); a window that would need more is stored whole.
/// Bounds the node bytes per window and the older chunks one window keeps alive. With the
/// default 32 KiB chunks a window has at most 8 pages, so every delta is page-granular.
pub const MAX_PIECES: usize = 8;

/// How one chunk-sized window of a memory stream is written.
#[derive(Clone, Debug)]
enum Slot {
    /// Taken from the previous stream as it is: its children there (one whole chunk, or
    /// slices and small chunks), covering the window exactly.
    Reuse(Vec<NodeEntry>),
    /// Read and stored as one chunk.
    Read,
    /// The previous stream's children (first) with the changed runs (second: offsets in the
    /// window, page-aligned, sorted, disjoint) read and stored as chunks of their own.
    Patch(Vec<NodeEntry>, Vec<(u64, u64)>),
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
            let groups = match (&layout, level) {
                (Layout::Windows(bounds, _), 1) => split_at(entries, bounds),
                (Layout::Windows(_, fanout), _) => split(entries, &Layout::Fixed(*fanout)),
                (l, _) => split(entries, l),
            };
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
            let fixed = matches!(layout, Layout::Windows(..)) && level == 1;
            let mut next = Vec::with_capacity(groups.len());
            let mut to_store = Vec::new();
            let mut off = 0u64;
            for (gi, g) in groups.into_iter().enumerate() {
                let total: u64 = g.iter().map(|e| e.len).sum();
                let start = off;
                off += total;
                if g.iter().all(|e| e.id.is_zero()) {
                    next.push(NodeEntry::whole(ChunkId::ZERO, total));
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
                next.push(NodeEntry::whole(id, total));
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
                    leaves.push(NodeEntry::whole(id, len));
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
    /// guarantees they are identical (dirty-page tracking). In a store of format 3 a chunk
    /// that changed only in part keeps its unchanged pages as slices of `prev`'s chunks and
    /// stores each run of changed pages as a chunk of its own (page-granular deltas, at most
    /// [`MAX_PIECES`] children per chunk-sized window; a window that would need more is
    /// stored whole again). Everything else is read as in [`Writer::put_memory`]. `prev`
    /// must be durable (committed or written by a finished writer).
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
        let slices = self.dir.config().slices();
        let n = len.div_ceil(cs) as usize;
        let (prev_leaves, prev_level1) = self.stream_leaves(prev)?;
        let mut slots = windows_of(prev_leaves, cs, len);
        // Changed pages per window, relative to the window, page-aligned and merged.
        let mut touched: Vec<Vec<(u64, u64)>> = vec![Vec::new(); n];
        for &(o, l) in changed {
            if l == 0 || o >= len {
                continue;
            }
            let end = (o.saturating_add(l).min(len).div_ceil(PAGE) * PAGE).min(len);
            let mut a = o / PAGE * PAGE;
            while a < end {
                let k = (a / cs) as usize;
                let w = k as u64 * cs;
                let b = end.min(w + cs).min(len);
                if let Some(t) = touched.get_mut(k) {
                    t.push((a - w, b - a));
                }
                a = b;
            }
        }
        for (k, t) in touched.into_iter().enumerate() {
            if t.is_empty() {
                continue;
            }
            let wl = cs.min(len - k as u64 * cs);
            let runs = merge_runs(t);
            slots[k] = match std::mem::replace(&mut slots[k], Slot::Read) {
                Slot::Reuse(base) if slices => patch_or_read(base, runs, wl),
                _ => Slot::Read,
            };
        }
        // The nodes of an incremental stream that differ from `prev`'s are new: `prev`'s
        // nodes are known to this handle (read or written through it), so unknown ones are
        // not looked up in the index (thousands of misses per GiB otherwise).
        self.put_memory_planned(len, Some(slots), Some(prev_level1), false, source)
    }

    /// A memory region written over `prev` (a memory stream of this store, e.g. the same
    /// region in the generation a restarted program was restored from) without knowing what
    /// changed: every window is read and compared with `prev` — by its id where `prev` holds
    /// it as one chunk, page by page against `prev`'s bytes (read from the store) where it
    /// differs or is held as slices — and only the pages that differ are stored, as by
    /// [`Writer::put_memory_incremental`]. The result holds exactly the bytes `source` gave.
    pub fn put_memory_diff(
        &mut self,
        len: u64,
        prev: &StreamRef,
        source: &ReadAtFn,
    ) -> Result<StreamRef, StoreError> {
        if prev.kind != StreamKind::Memory {
            return Err(StoreError::InvalidArgument(
                "put_memory_diff: prev is not a memory stream".into(),
            ));
        }
        let cs = u64::from(self.dir.config().memory_chunk_size);
        let n = len.div_ceil(cs);
        let (leaves, _) = self.stream_leaves(prev)?;
        let slots = windows_of(leaves, cs, len);
        let dir = &self.dir;
        let changed: Vec<Vec<(u64, u64)>> = (0..n)
            .into_par_iter()
            .map(|k| -> Result<Vec<(u64, u64)>, StoreError> {
                let w = k * cs;
                let wl = cs.min(len - w);
                let whole = vec![(w, wl)];
                let Slot::Reuse(pieces) = &slots[k as usize] else {
                    return Ok(whole);
                };
                let mut buf = vec![0u8; wl as usize];
                source(w, &mut buf).ctx(|| format!("reading memory source at offset {w}"))?;
                let zero = is_all_zero(&buf);
                let same = match pieces.as_slice() {
                    [e] if e.id.is_zero() => zero,
                    [e] if e.offset == 0 => !zero && ChunkId::of(&buf) == e.id,
                    _ => false,
                };
                if same {
                    return Ok(Vec::new());
                }
                let Ok(old) = window_bytes(dir, pieces) else {
                    return Ok(whole);
                };
                let mut runs: Vec<(u64, u64)> = Vec::new();
                for (p, (a, b)) in buf
                    .chunks(PAGE as usize)
                    .zip(old.chunks(PAGE as usize))
                    .enumerate()
                {
                    if a != b {
                        let at = w + p as u64 * PAGE;
                        match runs.last_mut() {
                            Some(r) if r.0 + r.1 == at => r.1 += a.len() as u64,
                            _ => runs.push((at, a.len() as u64)),
                        }
                    }
                }
                Ok(runs)
            })
            .collect::<Result<_, _>>()?;
        let changed: Vec<(u64, u64)> = changed.concat();
        self.put_memory_incremental(len, prev, &changed, source)
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
        let mut plan: Vec<Slot> = (0..n as u64)
            .map(|k| Slot::Reuse(vec![NodeEntry::whole(ChunkId::ZERO, cs.min(len - k * cs))]))
            .collect();
        for &(o, l) in present {
            if l == 0 || o >= len {
                continue;
            }
            let first = (o / cs) as usize;
            let last = ((o.saturating_add(l).min(len) - 1) / cs) as usize;
            for p in &mut plan[first..=last.min(n - 1)] {
                *p = Slot::Read;
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

    /// `reuse[k]` says how window `k` (chunk-sized) is written ([`Slot`]; all read when
    /// `None`). `prev_level1`: the level-1 nodes of the stream `reuse` comes from; a group of
    /// windows all reused from it keeps its node.
    fn put_memory_planned(
        &mut self,
        len: u64,
        reuse: Option<Vec<Slot>>,
        prev_level1: Option<Vec<Level1>>,
        ask_index_for_nodes: bool,
        source: &ReadAtFn,
    ) -> Result<StreamRef, StoreError> {
        let cs = u64::from(self.dir.config().memory_chunk_size);
        let n = len.div_ceil(cs);
        let mut leaves = Vec::with_capacity(n as usize);
        // Index in `leaves` of each window's first child.
        let mut starts: Vec<usize> = Vec::with_capacity(n as usize);
        let mut reuse = reuse;
        let slot_of = |reuse: &mut Option<Vec<Slot>>, k: u64| -> Slot {
            match reuse.as_mut() {
                Some(r) => std::mem::replace(&mut r[k as usize], Slot::Read),
                None => Slot::Read,
            }
        };
        // Whether every window of group g was reused unchanged (for keeping its node).
        let mut all_reused: Vec<bool> = Vec::new();
        let fanout = (self.dir.config().memory_fanout as usize).max(2);
        // Batches are pipelined: while batch k is deduplicated, compressed and written,
        // batch k+1 is read and hashed.
        let mut pending: Option<Pending> = None;
        let mut i = 0u64;
        loop {
            let next = if i < n {
                // A batch holds up to BATCH chunks to read, plus the reused windows between
                // them: an incremental write of scattered changes then reads its few chunks in
                // a few well-filled batches, not one nearly empty batch per BATCH chunks.
                let mut plan = Vec::new();
                let mut bufs: Vec<(u64, usize, Vec<u8>)> = Vec::new();
                while i < n && bufs.len() < BATCH {
                    let slot = slot_of(&mut reuse, i);
                    let w = i * cs;
                    let g = i as usize / fanout;
                    if all_reused.len() <= g {
                        all_reused.push(true);
                    }
                    match &slot {
                        Slot::Reuse(_) => {}
                        Slot::Read => {
                            all_reused[g] = false;
                            let l = cs.min(len - w) as usize;
                            bufs.push((w, l, self.packer.take_buf()));
                        }
                        Slot::Patch(_, runs) => {
                            all_reused[g] = false;
                            for &(o, l) in runs {
                                bufs.push((w + o, l as usize, self.packer.take_buf()));
                            }
                        }
                    }
                    plan.push(slot);
                    i += 1;
                }
                Some((plan, bufs))
            } else {
                None
            };
            let read =
                |bufs: Vec<(u64, usize, Vec<u8>)>| -> Result<Vec<(ChunkId, Vec<u8>)>, StoreError> {
                    bufs.into_par_iter()
                        .map(|(off, l, mut buf)| {
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
                    self.ingest_slots(plan, hashed, &mut leaves, &mut starts)?;
                }
                (Some((plan, hashed)), Some((nplan, bufs))) => {
                    let (done, fresh) = rayon::join(
                        || self.ingest_slots(plan, hashed, &mut leaves, &mut starts),
                        || read(bufs),
                    );
                    done?;
                    pending = Some((nplan, fresh?));
                }
            }
        }
        // Groups (of `fanout` windows, the level-1 nodes) whose every window was reused from
        // the previous stream repeat its node at the same offset, if it had one of the same
        // length there.
        let keep: Option<Vec<Option<(ChunkId, u64)>>> = match (&reuse, prev_level1) {
            (Some(_), Some(l1)) => {
                let span = fanout as u64 * cs;
                let mut keep = vec![None; all_reused.len()];
                for (off, id, l) in l1 {
                    let g = (off / span) as usize;
                    if off % span == 0 && all_reused.get(g) == Some(&true) {
                        keep[g] = Some((id, l));
                    }
                }
                Some(keep)
            }
            _ => None,
        };
        let kept = Arc::new(leaves.clone());
        let before = self.packer.stats.chunks;
        // Level-1 nodes group `fanout` windows (one or more children each).
        let bounds: Vec<usize> = starts.iter().step_by(fanout).skip(1).copied().collect();
        let (root, level1) = self.build_nodes(
            leaves,
            Layout::Windows(bounds, fanout),
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

    /// Account for the windows of `plan` (in order), with `hashed` the chunks read for them
    /// (one per [`Slot::Read`], one per changed run of a [`Slot::Patch`]); store the new
    /// non-zero ones. `starts` gets the index in `leaves` of each window's first child.
    fn ingest_slots(
        &mut self,
        plan: Vec<Slot>,
        hashed: Vec<(ChunkId, Vec<u8>)>,
        leaves: &mut Vec<NodeEntry>,
        starts: &mut Vec<usize>,
    ) -> Result<(), StoreError> {
        let mut nonzero = Vec::with_capacity(hashed.len());
        let mut hashed = hashed.into_iter();
        let mismatch = || StoreError::InvalidArgument("internal: plan mismatch".into());
        for slot in plan {
            self.packer.stats.chunks += 1;
            starts.push(leaves.len());
            match slot {
                Slot::Reuse(pieces) => {
                    for e in pieces {
                        self.count_reused(&e);
                        leaves.push(e);
                    }
                }
                Slot::Read => {
                    let (id, data) = hashed.next().ok_or_else(mismatch)?;
                    let len = data.len() as u64;
                    self.packer.stats.logical_bytes += len;
                    leaves.push(NodeEntry::whole(id, len));
                    if id.is_zero() {
                        self.packer.stats.zero_bytes += len;
                        self.packer.recycle(data);
                    } else {
                        nonzero.push((id, data));
                    }
                }
                Slot::Patch(base, runs) => {
                    let wl: u64 = base.iter().map(|e| e.len).sum();
                    let mut pieces: Vec<NodeEntry> = Vec::new();
                    let mut pos = 0u64;
                    for (o, l) in runs.into_iter().chain(std::iter::once((wl, 0))) {
                        for e in slice_of(&base, pos, o) {
                            self.count_reused(&e);
                            push_piece(&mut pieces, e);
                        }
                        if l > 0 {
                            let (id, data) = hashed.next().ok_or_else(mismatch)?;
                            self.packer.stats.logical_bytes += l;
                            self.packer.stats.chunks += 1;
                            push_piece(&mut pieces, NodeEntry::whole(id, l));
                            if id.is_zero() {
                                self.packer.stats.zero_bytes += l;
                                self.packer.recycle(data);
                            } else {
                                nonzero.push((id, data));
                            }
                        }
                        pos = o + l;
                    }
                    leaves.extend(pieces);
                }
            }
        }
        if hashed.next().is_some() {
            return Err(mismatch());
        }
        self.packer.store_chunks(nonzero)
    }

    /// Counts a child taken unchanged from a previous stream.
    fn count_reused(&mut self, e: &NodeEntry) {
        let s = &mut self.packer.stats;
        s.logical_bytes += e.len;
        if e.id.is_zero() {
            s.zero_bytes += e.len;
        } else {
            s.unchanged_bytes += e.len;
        }
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

/// `entries` cut before each index of `bounds` (increasing).
fn split_at(entries: Vec<NodeEntry>, bounds: &[usize]) -> Vec<Vec<NodeEntry>> {
    let mut out = Vec::with_capacity(bounds.len() + 1);
    let mut rest = entries.into_iter();
    let mut at = 0;
    for &b in bounds {
        out.push(rest.by_ref().take(b - at).collect());
        at = b;
    }
    let last: Vec<NodeEntry> = rest.collect();
    if !last.is_empty() || out.is_empty() {
        out.push(last);
    }
    out
}

/// The children of a previous stream (`leaves`, in order) cut into the chunk-sized windows of
/// a stream of `len` bytes: `Reuse` where they cover a window exactly (zero runs are split at
/// window edges), `Read` where they do not (a child crossing a window edge, a length change).
fn windows_of(leaves: Vec<NodeEntry>, cs: u64, len: u64) -> Vec<Slot> {
    let n = len.div_ceil(cs) as usize;
    let mut slots = vec![Slot::Read; n];
    let mut cur: Vec<NodeEntry> = Vec::new();
    // The current window has a data chunk that does not lie wholly inside it.
    let mut crossed = false;
    let mut off = 0u64;
    'all: for e in leaves {
        let mut rest = e.len;
        while rest > 0 {
            if off >= len {
                break 'all;
            }
            let k = (off / cs) as usize;
            let w_end = ((k as u64 + 1) * cs).min(len);
            let take = rest.min(w_end - off);
            if e.id.is_zero() {
                cur.push(NodeEntry::whole(ChunkId::ZERO, take));
            } else if take == e.len {
                cur.push(e);
            } else {
                crossed = true;
            }
            off += take;
            rest -= take;
            if off == w_end {
                if !crossed {
                    slots[k] = Slot::Reuse(std::mem::take(&mut cur));
                }
                cur.clear();
                crossed = false;
            }
        }
    }
    slots
}

/// The bytes of a window held as `pieces` (read from the store and verified).
fn window_bytes(dir: &StoreDir, pieces: &[NodeEntry]) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    for e in pieces {
        if e.id.is_zero() {
            out.resize(out.len() + e.len as usize, 0);
            continue;
        }
        let d = dir.read_chunk(&e.id)?;
        let o = e.offset as usize;
        let part = d.get(o..o + e.len as usize).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "a stream uses bytes {o}+{} of chunk {}, which has {} bytes",
                e.len,
                e.id,
                d.len()
            ))
        })?;
        out.extend_from_slice(part);
    }
    Ok(out)
}

/// Sorted, disjoint, merged runs.
fn merge_runs(mut runs: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    runs.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(runs.len());
    for (o, l) in runs {
        match out.last_mut() {
            Some(last) if o <= last.0 + last.1 => last.1 = last.1.max(o + l - last.0),
            _ => out.push((o, l)),
        }
    }
    out
}

/// The children of `base` (a window's children, from offset 0) covering `[from, to)`, cut to
/// it: slices of their chunks (zero runs stay zero runs).
fn slice_of(base: &[NodeEntry], from: u64, to: u64) -> Vec<NodeEntry> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    for e in base {
        let (a, b) = (pos.max(from), (pos + e.len).min(to));
        if a < b {
            out.push(if e.id.is_zero() {
                NodeEntry::whole(ChunkId::ZERO, b - a)
            } else {
                NodeEntry {
                    id: e.id,
                    len: b - a,
                    offset: e.offset + (a - pos),
                }
            });
        }
        pos += e.len;
    }
    out
}

/// Appends `e` to `pieces`, merging it into the last one when they are contiguous parts of the
/// same chunk or both zero.
fn push_piece(pieces: &mut Vec<NodeEntry>, e: NodeEntry) {
    if let Some(last) = pieces.last_mut() {
        if last.id == e.id && (e.id.is_zero() || last.offset + last.len == e.offset) {
            last.len += e.len;
            return;
        }
    }
    pieces.push(e);
}

/// How a window whose previous children are `base` is written when `runs` of it changed:
/// patched (slices of `base` for the unchanged stretches, the runs stored on their own) when
/// something stays unchanged and the window needs at most [`MAX_PIECES`] children; read
/// whole otherwise.
fn patch_or_read(base: Vec<NodeEntry>, runs: Vec<(u64, u64)>, wl: u64) -> Slot {
    let changed: u64 = runs.iter().map(|r| r.1).sum();
    if changed >= wl {
        return Slot::Read;
    }
    let mut pieces = runs.len();
    let mut pos = 0u64;
    for &(o, l) in runs.iter().chain(std::iter::once(&(wl, 0))) {
        pieces += slice_of(&base, pos, o).len();
        pos = o + l;
    }
    if pieces > MAX_PIECES {
        Slot::Read
    } else {
        Slot::Patch(base, runs)
    }
}

fn split(entries: Vec<NodeEntry>, layout: &Layout) -> Vec<Vec<NodeEntry>> {
    match *layout {
        Layout::Windows(_, n) | Layout::Fixed(n) => {
            entries.chunks(n.max(2)).map(|c| c.to_vec()).collect()
        }
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
