//! [`GenerationReader`]: reassembling streams of one generation, every chunk verified.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::error::StoreError;
use crate::extent::{read_chunks, Counters, Ctx, Item, PackHandles, ReadStats};
use crate::generation::Generation;
use crate::id::ChunkId;
use crate::index::ChunkLoc;
use crate::node::{decode_tree, NodeEntry, StreamKind, StreamNode, StreamRef};
use crate::pack::direct_io_enabled;
use crate::store::Store;

/// Consumer of [`GenerationReader::for_each_chunk`]: (offset, bytes or `None` when all zero).
pub type ChunkSink<'a> = dyn Fn(u64, Option<&[u8]>) -> std::io::Result<()> + Sync + 'a;

/// Reads the streams of one committed generation.
pub struct GenerationReader {
    store: Store,
    gen: Generation,
    nodes: Mutex<HashMap<ChunkId, Arc<StreamNode>>>,
    packs: PackHandles,
    counters: Counters,
    /// Whether extents may be read with O_DIRECT (`CAIRN_PACK_DIRECT=0` says no).
    pub(crate) try_direct: std::sync::atomic::AtomicBool,
}

impl GenerationReader {
    pub(crate) fn new(store: Store, gen: Generation) -> GenerationReader {
        GenerationReader {
            store,
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
        read_tree(&self.store, tree)
    }

    fn node(&self, id: &ChunkId) -> Result<Arc<StreamNode>, StoreError> {
        if let Some(n) = self.nodes.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Ok(n.clone());
        }
        let n = Arc::new(StreamNode::decode(id, &self.store.read_chunk(id)?)?);
        let mut cache = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 4096 {
            cache.clear();
        }
        cache.insert(*id, n.clone());
        Ok(n)
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
        let mut locs = self.store.locate_many(&ids)?.into_iter();
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
            if skip == 0 && piece.len() as u64 == e.len {
                self.store.read_loc_into(&loc, piece)
            } else {
                let mut d = vec![0u8; leaf_len(&e)?];
                self.store.read_loc_into(&loc, &mut d)?;
                let skip = skip as usize;
                piece.copy_from_slice(&d[skip..skip + piece.len()]);
                Ok(())
            }
        })
    }

    /// Every chunk of a stream, in parallel, verified; `None` for all-zero chunks.
    /// `f` gets the chunk's offset in the stream. A `None` covers everything up to the next
    /// offset reported (or the end of the stream): one all-zero chunk, or a whole all-zero
    /// subtree of many chunks, which is reported once. Chunks are read in extents of
    /// neighbouring chunks, several at a time, with `O_DIRECT` when they are not cached
    /// (`extent.rs`); the order of the calls is unspecified.
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
            for ((off, e), loc) in data.iter().zip(self.store.locate_many(&ids)?) {
                let mut d = vec![0u8; leaf_len(e)?];
                self.store.read_loc_into(&loc, &mut d)?;
                consumed(*off, Some(&d))?;
            }
            return Ok(());
        }
        // Located batch by batch, while the extents of the batches before are read.
        let mut batches = data.chunks(LOCATE_BATCH).map(|b| {
            let ids: Vec<ChunkId> = b.iter().map(|l| l.1.id).collect();
            let locs = self.store.locate_many(&ids)?;
            b.iter()
                .zip(locs)
                .map(|(&(off, e), loc)| {
                    Ok(Item {
                        off,
                        loc,
                        len: leaf_len(&e)?,
                    })
                })
                .collect()
        });
        let ctx = Ctx {
            store: &self.store,
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

impl Store {
    /// Where a chunk is now, when that differs from `loc`: after a failed read at `loc`, the
    /// chunk may have been moved by gc (copied into a new pack, index row moved, old pack
    /// deleted; docs/gc.md, "Readers"). `None` when the index still names `loc` or knows no
    /// location: then the failure is real damage.
    pub(crate) fn relocate(&self, loc: &ChunkLoc) -> Option<ChunkLoc> {
        let id = loc.1.id;
        let now = match self.index().lookup(&id) {
            Ok(Some(l)) => Some(l),
            // A pack sealed but not yet indexed (a copy of a gc killed before indexing it).
            Ok(None) => match self.sync_new_packs() {
                Ok(n) if n > 0 => self.index().lookup(&id).ok().flatten(),
                _ => None,
            },
            Err(_) => None,
        };
        now.filter(|l| l != loc)
    }
}

/// Data chunks located at once by [`GenerationReader::for_each_chunk`] (128 MiB of 32 KiB
/// chunks).
const LOCATE_BATCH: usize = 4096;
/// Streams of at most this many data chunks are read chunk by chunk in the calling thread.
const INLINE_CHUNKS: usize = 4;

fn leaf_len(e: &NodeEntry) -> Result<usize, StoreError> {
    usize::try_from(e.len)
        .ok()
        .filter(|&l| l <= 64 << 20)
        .ok_or_else(|| StoreError::Corrupt(format!("chunk {} claims {} bytes", e.id, e.len)))
}

/// Read and decode a tree node.
pub(crate) fn read_tree(
    store: &Store,
    tree: &StreamRef,
) -> Result<Vec<(String, StreamRef)>, StoreError> {
    if tree.kind != StreamKind::Tree {
        return Err(StoreError::InvalidArgument("not a tree".into()));
    }
    let entries = decode_tree(&tree.root, &store.read_chunk(&tree.root)?)?;
    if entries.len() as u64 != tree.len {
        return Err(StoreError::Corrupt(format!(
            "tree {} has {} entries, its reference says {}",
            tree.root,
            entries.len(),
            tree.len
        )));
    }
    Ok(entries)
}

#[cfg(test)]
mod race_with_gc {
    //! A reader that looked chunks up before gc moved them and deleted their pack still
    //! reads them (docs/gc.md, "Readers"); real damage is still reported.

    use super::*;
    use crate::config::InitOptions;
    use crate::generation::GenerationInfo;

    fn data(seed: u8, len: usize) -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed)
            .collect()
    }

    /// A store with one generation holding `x`, whose only pack also holds garbage.
    fn setup(dir: &std::path::Path, x: &[u8]) -> (Store, crate::generation::GenerationId) {
        let store = Store::init(&dir.join("s"), InitOptions::default()).expect("init");
        let mut w = store.writer().expect("writer");
        let _garbage = w.put_blob(&data(9, 600_000)).expect("garbage");
        let b = w.put_blob(x).expect("blob");
        let root = w.put_tree(vec![("x".into(), b)]).expect("tree");
        let stats = w.finish().expect("finish");
        let info = GenerationInfo {
            kind: "files".into(),
            stats,
            ..Default::default()
        };
        let g = store.commit("a", &root, info).expect("commit");
        assert_eq!(store.pack_files_on_disk().unwrap().len(), 1);
        (store, g)
    }

    /// What `cairn gc --grace 0 --max-unused 10` does to the store's only pack: copy its
    /// live chunks into a new pack, condemn it, mark again, delete it.
    fn repack_and_delete(store: &Store) -> String {
        let live = store.mark_live().expect("mark");
        let mut set = store.scan_packs(&live, live.started_ms).expect("scan");
        let old = set.packs()[0].clone();
        let pairs: Vec<(String, crate::pack::PackEntry)> = old
            .live
            .iter()
            .map(|e| (old.name.clone(), e.clone()))
            .collect();
        assert!(!pairs.is_empty() && (pairs.len() as u64) < old.chunk_count);
        store.copy_chunks(&mut set, &pairs).expect("copy");
        assert_eq!(
            store
                .condemn_packs(std::slice::from_ref(&old.name))
                .unwrap()
                .len(),
            1
        );
        let live = store.mark_live().expect("mark");
        let mut set = store.scan_packs(&live, live.started_ms).expect("scan");
        store
            .delete_condemned_packs(&mut set, std::slice::from_ref(&old.name), &live)
            .expect("delete");
        assert!(!store.pack_files_on_disk().unwrap().contains(&old.name));
        old.name
    }

    #[test]
    fn verify_racing_gc_does_not_call_a_collected_pack_damaged() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let x = data(3, 700_000);
        let (store, _g) = setup(tmp.path(), &x);
        // verify lists the packs, then gc repacks and deletes the listed one.
        let listing = store.pack_files_on_disk().expect("listing");
        let old = repack_and_delete(&store);
        assert!(listing.contains(&old));
        for read_data in [false, true] {
            let report = store
                .verify_listed(listing.clone(), read_data)
                .expect("verify");
            assert!(report.ok, "read_data {read_data}: {report:?}");
        }
        // A pack that disappears while still indexed is damage.
        let live = store.pack_files_on_disk().expect("listing");
        std::fs::remove_file(store.pack_path(&live[0])).expect("rm");
        let report = store.verify_listed(live, false).expect("verify");
        assert!(!report.ok && report.damaged_packs.len() == 1, "{report:?}");
    }

    #[test]
    fn lookups_made_before_gc_moved_the_chunks_still_read_and_check() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let x = data(1, 700_000);
        let (store, g) = setup(tmp.path(), &x);
        // Another process (its own handle, no pack opened yet) opens a reader and looks up
        // every data chunk, all before gc runs.
        let other = Store::open(store.path()).expect("open");
        let reader = other.reader(g).expect("reader");
        let leaves: Vec<ChunkId> = store
            .reach(&store.generation(g).unwrap().root)
            .leaves
            .into_iter()
            .collect();
        let stale = other.lookup_leaves(&leaves).expect("locate");
        assert!(stale.iter().all(|l| l.is_some()));

        let old = repack_and_delete(&store);

        let mut read_once_failed = 0;
        for loc in stale.iter().flatten() {
            assert_eq!(loc.0, old, "looked up in the old pack");
            let mut buf = vec![0u8; loc.1.raw_len as usize];
            // Without the re-lookup the read fails: the pack is gone.
            if other.read_loc_once(loc, &mut buf).is_err() {
                read_once_failed += 1;
            }
            // With it, the chunk is read from its new pack and verified.
            let mut buf2 = vec![0u8; loc.1.raw_len as usize];
            other
                .read_loc_into(loc, &mut buf2)
                .expect("read after the move");
            assert_eq!(ChunkId::of(&buf2), loc.1.id);
        }
        assert_eq!(read_once_failed, stale.len());
        // The structure check of latest_consistent / prune's protections, given the stale
        // locations, finds no damage.
        let problems = other.check_locations(&leaves, stale).expect("check");
        assert!(problems.is_empty(), "{problems:?}");
        // The reader opened before gc reads the exact bytes; the generation checks clean.
        let s = reader.lookup("x").expect("lookup");
        assert_eq!(reader.read_all(&s).unwrap(), x);
        let gen = other.generation(g).unwrap();
        other
            .check_generation(&gen, crate::check::CheckLevel::Data)
            .expect("consistent");
        assert_eq!(other.latest_consistent("a").unwrap().0.id, g);
    }

    #[test]
    fn a_pack_really_missing_is_still_reported() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let x = data(2, 700_000);
        let (store, g) = setup(tmp.path(), &x);
        let gen = store.generation(g).unwrap();
        let leaves: Vec<ChunkId> = store.reach(&gen.root).leaves.into_iter().collect();
        let locs = store.lookup_leaves(&leaves).expect("locate");
        let pack = store.pack_files_on_disk().unwrap().remove(0);
        std::fs::remove_file(store.pack_dir().join(format!("{pack}.pack"))).unwrap();
        // A fresh handle: `store` still holds the unlinked pack open.
        let store = Store::open(store.path()).expect("open");
        let loc = locs[0].clone().expect("indexed");
        let mut buf = vec![0u8; loc.1.raw_len as usize];
        let e = store.read_loc_into(&loc, &mut buf).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
        let problems = store.check_locations(&leaves, locs).expect("check");
        assert_eq!(problems.len(), leaves.len(), "{problems:?}");
        assert!(store.latest_consistent("a").is_err());
    }
}
