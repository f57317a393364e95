//! [`Writer`]: chunking, hashing and compressing streams into this writer's own packs.

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;

use crate::error::{IoContext, StoreError};
use crate::generation::WriteStats;
use crate::id::{is_all_zero, ChunkId, IdMap, IdSet};
use crate::index::Index;
use crate::node::{check_name, encode_tree, NodeEntry, StreamKind, StreamNode, StreamRef};
use crate::pack::{encode_chunk, Codec, PackEntry, PackWriter, StagingPool};
use crate::store::Store;

/// Chunks hashed and compressed together in parallel.
const BATCH: usize = 128;

/// Producer for [`Writer::put_memory`]: fills the buffer with the bytes at the offset.
pub type MemorySource<'a> = dyn Fn(u64, &mut [u8]) -> std::io::Result<()> + Sync + 'a;

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
    store: Store,
    name: String,
    pack: Option<PackWriter>,
    pack_seq: u32,
    /// Chunks this writer stored, or found already stored.
    seen: IdSet,
    /// Leaves of the memory streams written in this session, by root: a later
    /// `put_memory_incremental` on one of them needs neither its nodes nor its durability.
    recent: IdMap<Recent>,
    /// Packs known to exist on disk (dedup only against chunks whose pack is present).
    packs_present: HashMap<String, bool>,
    stats: WriteStats,
    /// Spare chunk buffers, reused across batches (avoids page-fault churn of fresh
    /// allocations).
    pool: Vec<Vec<u8>>,
    /// Spare compression output buffers, reused likewise.
    zpool: Vec<Vec<u8>>,
    /// The previous pack, being sealed (trailer, fsync, rename) by a background thread
    /// while this writer fills the next one. At most one at a time.
    sealing: Option<std::thread::JoinHandle<SealResult>>,
    /// Sealed packs (renamed into place, durable) not indexed yet: indexed together in one
    /// transaction by `finish` (or when `INDEX_BATCH` chunks accumulate). Until then readers
    /// find them like any pack of a concurrent writer (`Store::sync_new_packs`), and gc
    /// treats them like every young pack: by their trailers and file times.
    unindexed: Vec<SealedPack>,
    /// Chunks in `unindexed`.
    unindexed_chunks: usize,
    /// Direct-I/O staging buffers shared by this writer's packs.
    staging: StagingPool,
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

/// A sealed pack: its name, size and entries.
pub(crate) type SealedPack = (String, u64, Vec<PackEntry>);

/// What a background seal returns.
type SealResult = Result<SealedPack, StoreError>;

/// Sealed chunks a writer keeps unindexed at most (8 GiB of 32 KiB chunks, ~14 MiB of
/// entries) before it indexes them in one transaction.
const INDEX_BATCH: usize = 1 << 18;

impl Writer {
    pub(crate) fn new(store: Store, name: String) -> Writer {
        Writer {
            store,
            name,
            pack: None,
            pack_seq: 0,
            seen: IdSet::default(),
            recent: IdMap::default(),
            packs_present: HashMap::new(),
            stats: WriteStats::default(),
            pool: Vec::new(),
            zpool: Vec::new(),
            sealing: None,
            unindexed: Vec::new(),
            unindexed_chunks: 0,
            staging: StagingPool::default(),
        }
    }

    /// This writer's unique name (host-pid-random); its packs are named after it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Statistics so far.
    pub fn stats(&self) -> &WriteStats {
        &self.stats
    }

    /// Takes the logical counts (logical, zero and unchanged bytes, chunks) back to what
    /// they were at `mark` (an earlier [`Writer::stats`]), keeping what was newly stored:
    /// for writes that only prepare later ones (pre-copy), whose bytes must not count twice.
    pub fn uncount_logical_since(&mut self, mark: &WriteStats) {
        self.stats.logical_bytes = mark.logical_bytes;
        self.stats.zero_bytes = mark.zero_bytes;
        self.stats.unchanged_bytes = mark.unchanged_bytes;
        self.stats.chunks = mark.chunks;
    }

    /// True when the pack is on disk and not condemned (cached: dedup only against chunks whose
    /// pack exists and is not condemned).
    fn pack_present(&mut self, pack: &str) -> bool {
        if let Some(p) = self.packs_present.get(pack) {
            return *p;
        }
        let p = self
            .store
            .pack_dir()
            .join(format!("{pack}{}", crate::pack::PACK_SUFFIX))
            .exists()
            // A condemned pack may be deleted by gc: store our own copy (docs/gc.md).
            && !self.store.is_condemned(pack);
        self.packs_present.insert(pack.to_string(), p);
        p
    }

    /// Store non-zero chunks not already present: dedup (one index transaction per batch),
    /// compress in parallel, append.
    fn store_chunks(&mut self, items: Vec<(ChunkId, Vec<u8>)>) -> Result<(), StoreError> {
        self.store_chunks_asking(items, true)
    }

    /// [`Writer::store_chunks`]; with `ask_index` false, chunks neither this session nor the
    /// store handle knows are taken to be new without an index lookup (storing a duplicate
    /// is harmless: it only costs space until gc).
    fn store_chunks_asking(
        &mut self,
        items: Vec<(ChunkId, Vec<u8>)>,
        ask_index: bool,
    ) -> Result<(), StoreError> {
        let unknown: Vec<ChunkId> = items
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !self.seen.contains(id))
            .collect();
        // Chunks this store handle has seen located (crate::known) are checked through their
        // pack like index hits; only the rest costs an index lookup.
        let hinted: Vec<(ChunkId, Option<std::sync::Arc<str>>)> = {
            let known = self.store.known();
            unknown
                .iter()
                .map(|id| (*id, known.loc(id).map(|l| l.0.clone())))
                .collect()
        };
        let mut ask = Vec::new();
        for (id, pack) in hinted {
            match pack {
                Some(p) if self.pack_present(&p) => {
                    self.seen.insert(id);
                }
                _ => ask.push(id),
            }
        }
        if !ask_index {
            ask.clear();
        }
        let locs = self.store.index().lookup_many(&ask)?;
        for (id, loc) in ask.iter().zip(locs) {
            if let Some((pack, e)) = loc {
                if self.pack_present(&pack) {
                    self.store.known().add(&pack, &e);
                    self.seen.insert(*id);
                }
            }
        }
        let mut fresh = Vec::new();
        for (id, data) in items {
            if self.seen.insert(id) {
                fresh.push((id, data));
            } else {
                self.recycle(data);
            }
        }
        let level = self.store.config().zstd_level;
        let compression = self.store.config().compression;
        let outs: Vec<Vec<u8>> = (0..fresh.len())
            .map(|_| self.zpool.pop().unwrap_or_default())
            .collect();
        let encoded: Vec<(ChunkId, Vec<u8>, Vec<u8>, Codec)> = fresh
            .into_par_iter()
            .zip(outs)
            .map(|((id, data), mut out)| {
                let codec = encode_chunk(&data, compression, level, &mut out);
                (id, data, out, codec)
            })
            .collect();
        let mut result = Ok(());
        for (id, raw, out, codec) in encoded {
            if result.is_ok() {
                let payload = match codec {
                    Codec::Zstd | Codec::Lz4 => out.as_slice(),
                    Codec::Raw => raw.as_slice(),
                };
                result = self.append(id, payload, raw.len(), codec);
            }
            self.recycle(raw);
            if self.zpool.len() < 2 * BATCH {
                self.zpool.push(out);
            }
        }
        result
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        if self.pool.len() < 2 * BATCH {
            self.pool.push(buf);
        }
    }

    fn append(
        &mut self,
        id: ChunkId,
        payload: &[u8],
        raw_len: usize,
        codec: Codec,
    ) -> Result<(), StoreError> {
        if self.pack.is_none() {
            self.pack_seq += 1;
            let name = format!("{}-{:05}", self.name, self.pack_seq);
            self.pack = Some(PackWriter::create_pooled(
                &self.store.pack_dir(),
                name,
                &self.staging,
            )?);
        }
        if let Some(p) = self.pack.as_mut() {
            p.append(id, payload, raw_len, codec)?;
            self.stats.new_chunks += 1;
            self.stats.new_raw_bytes += raw_len as u64;
            self.stats.new_stored_bytes += payload.len() as u64;
            if p.size() >= self.store.config().pack_target_size {
                self.seal_pack()?;
            }
        }
        Ok(())
    }

    /// Seal the current pack in the background: the trailer write, fsync and rename of pack k
    /// overlap with filling pack k+1. Waits for the previous background seal first, so at
    /// most one pack is in flight; its chunks are indexed once it is renamed into place.
    fn seal_pack(&mut self) -> Result<(), StoreError> {
        self.wait_sealed()?;
        if let Some(p) = self.pack.take() {
            if p.len() == 0 {
                p.discard();
                return Ok(());
            }
            let h = std::thread::Builder::new()
                .name("cairn-seal".into())
                .spawn(move || p.seal())
                .ctx(|| "starting the pack sealing thread".to_string())?;
            self.sealing = Some(h);
        }
        Ok(())
    }

    /// Wait for the background seal, if any, and index the sealed pack.
    fn wait_sealed(&mut self) -> Result<(), StoreError> {
        if let Some(h) = self.sealing.take() {
            let (name, size, entries) = h.join().map_err(|_| StoreError::Io {
                context: "sealing a pack".into(),
                source: std::io::Error::other("the pack sealing thread panicked"),
            })??;
            self.stats.packs += 1;
            self.store.known().add_pack(&name, &entries);
            self.packs_present.insert(name.clone(), true);
            self.unindexed_chunks += entries.len();
            self.unindexed.push((name, size, entries));
            if self.unindexed_chunks >= INDEX_BATCH {
                self.index_sealed()?;
            }
        }
        Ok(())
    }

    /// Index the sealed packs not indexed yet (one transaction).
    fn index_sealed(&mut self) -> Result<(), StoreError> {
        self.store.index().add_packs(&self.unindexed)?;
        self.unindexed.clear();
        self.unindexed_chunks = 0;
        Ok(())
    }

    /// Build the Merkle tree over `leaves` and return the root node id.
    /// With `ask_index` false, nodes unknown to this session and handle are not looked up
    /// in the index (see [`Writer::store_chunks_asking`]).
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
                self.store.known().add_node(id, std::sync::Arc::new(node));
                self.stats.chunks += 1;
                self.store_chunks_asking(vec![(id, bytes)], ask_index)?;
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
                        self.store.known().add_node(id, std::sync::Arc::new(node));
                        to_store.push((id, bytes));
                        id
                    }
                };
                self.stats.chunks += 1;
                if fixed {
                    level1.push((start, id, total));
                }
                next.push(NodeEntry { id, len: total });
            }
            self.store_chunks_asking(to_store, ask_index)?;
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
            self.stats.chunks += 1;
            match slot {
                Some(e) => {
                    self.stats.logical_bytes += e.len;
                    if e.id.is_zero() {
                        self.stats.zero_bytes += e.len;
                    } else {
                        self.stats.unchanged_bytes += e.len;
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
                    self.stats.logical_bytes += len;
                    leaves.push(NodeEntry { id, len });
                    if id.is_zero() {
                        self.stats.zero_bytes += len;
                        self.recycle(data);
                    } else {
                        nonzero.push((id, data));
                    }
                }
            }
        }
        self.store_chunks(nonzero)
    }

    /// A memory region of `len` bytes (fixed-size chunks of the store's memory chunk size).
    /// `source` fills `buf` with the bytes at `offset`; it is called from several threads at
    /// once. All-zero chunks are detected and never stored.
    pub fn put_memory(&mut self, len: u64, source: &MemorySource) -> Result<StreamRef, StoreError> {
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
        source: &MemorySource,
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
            let s = &mut self.stats;
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
        let cs = u64::from(self.store.config().memory_chunk_size);
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
        source: &MemorySource,
    ) -> Result<StreamRef, StoreError> {
        let cs = u64::from(self.store.config().memory_chunk_size);
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
            store: &'a Store,
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
            let node = w.store.read_node(id)?;
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
            store: &self.store,
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
        source: &MemorySource,
    ) -> Result<StreamRef, StoreError> {
        let cs = u64::from(self.store.config().memory_chunk_size);
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
                    .map(|(k, _)| (k, self.pool.pop().unwrap_or_default()))
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
        let fanout = (self.store.config().memory_fanout as usize).max(2);
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
        let before = self.stats.chunks;
        let (root, level1) = self.build_nodes(
            leaves,
            Layout::Fixed(fanout),
            ask_index_for_nodes,
            keep.as_deref(),
        )?;
        let node_chunks = self.stats.chunks - before;
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
        let cfg = self.store.config().clone();
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
        self.stats.chunks += 1;
        self.store_chunks(vec![(id, bytes)])?;
        Ok(StreamRef {
            kind: StreamKind::Tree,
            len: entries.len() as u64,
            root: id,
        })
    }

    /// Flush, fsync and rename this writer's packs; after this the refs are durable.
    pub fn finish(mut self) -> Result<WriteStats, StoreError> {
        self.seal_pack()?;
        self.wait_sealed()?;
        self.index_sealed()?;
        Ok(std::mem::take(&mut self.stats))
    }

    /// Like [`Writer::finish`] (the refs are durable when it returns), but the index rows of
    /// the packs not indexed yet are returned, to be written later ([`PendingIndex::apply`]).
    /// The index is a cache: the packs' chunks are readable and committable without their
    /// rows (readers that miss a chunk index unindexed packs from their trailers; this store
    /// handle remembers where they are).
    pub fn finish_deferred(mut self) -> Result<(WriteStats, PendingIndex), StoreError> {
        self.seal_pack()?;
        self.wait_sealed()?;
        let pending = PendingIndex {
            store: self.store.clone(),
            packs: std::mem::take(&mut self.unindexed),
        };
        self.unindexed_chunks = 0;
        Ok((std::mem::take(&mut self.stats), pending))
    }
}

/// Index rows of packs a writer sealed without indexing them ([`Writer::finish_deferred`]).
/// Dropping it loses nothing but speed: the packs are durable, and readers index packs missing
/// from the index from their trailers when they need them.
#[must_use = "the rows are only written by apply()"]
pub struct PendingIndex {
    store: Store,
    packs: Vec<SealedPack>,
}

impl PendingIndex {
    /// Number of packs waiting to be indexed.
    pub fn packs(&self) -> usize {
        self.packs.len()
    }

    /// Writes the rows of all the packs in one index transaction, through a connection of its
    /// own (the store handle stays usable meanwhile, e.g. from another thread).
    pub fn apply(self) -> Result<(), StoreError> {
        if self.packs.is_empty() {
            return Ok(());
        }
        let mut index = Index::open(self.store.path(), &self.store.config().store_id)?;
        index.add_packs(&self.packs)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // An abandoned writer removes its unfinished pack; sealed packs stay (harmless, and
        // possibly shared by dedup with other writers).
        if let Some(p) = self.pack.take() {
            p.discard();
        }
        // A pack being sealed is finished (sealed packs are harmless).
        if let Some(h) = self.sealing.take() {
            if let Ok(Ok(sealed)) = h.join() {
                self.unindexed.push(sealed);
            }
        }
        // Index the sealed packs (best effort: readers also index packs they find unindexed
        // when they miss a chunk, but that needs a writable index — not a given after a
        // writer failed on a full disk, now that its own temporary pack is gone).
        if !self.unindexed.is_empty() {
            let _ = self.store.index().add_packs(&self.unindexed);
        }
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
