//! [`Packer`]: where a writer's chunks go. Deduplication against this session, this handle's
//! hints and the index; compression in parallel (the codec policy of `pack::codec`); this
//! writer's own packs, filled one after another, each sealed in the background while the
//! next fills; and the index rows of the sealed packs.

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;

use crate::dir::StoreDir;
use crate::error::{IoContext, StoreError};
use crate::generation::WriteStats;
use crate::id::{ChunkId, IdSet};
use crate::index::Index;
use crate::pack::{encode_chunk, Codec, PackEntry, PackWriter, StagingPool};
use crate::write::lease::{abandon_packs, Lease};

/// Chunks hashed and compressed together in parallel.
pub(crate) const BATCH: usize = 128;

/// A sealed pack: its name, size and entries.
pub(crate) type SealedPack = (String, u64, Vec<PackEntry>);

/// What a background seal returns.
type SealResult = Result<SealedPack, StoreError>;

/// Sealed chunks a writer keeps unindexed at most (8 GiB of 32 KiB chunks, ~14 MiB of
/// entries) before it indexes them in one transaction.
const INDEX_BATCH: usize = 1 << 18;

/// The packing half of a writer session (the other half, `write::encode`, turns streams
/// into chunks).
pub(crate) struct Packer {
    dir: Arc<StoreDir>,
    name: String,
    pack: Option<PackWriter>,
    pack_seq: u32,
    /// Chunks this writer stored, or found already stored.
    seen: IdSet,
    /// Packs known to exist on disk (dedup only against chunks whose pack is present).
    packs_present: HashMap<String, bool>,
    /// Statistics of the session: the encoder counts logical bytes and chunks, the packer
    /// what it stored.
    pub(super) stats: WriteStats,
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
    /// find them like any pack of a concurrent writer (`StoreDir::sync_new_packs`), and gc
    /// treats them like every young pack: by their trailers and file times.
    unindexed: Vec<SealedPack>,
    /// Chunks in `unindexed`.
    unindexed_chunks: usize,
    /// Direct-I/O staging buffers shared by this writer's packs.
    staging: StagingPool,
    /// The session's lease (write/lease.rs), taken before its first deduplication lookup.
    lease: Option<Lease>,
}

impl Packer {
    /// A packer whose packs are named after `name` (host-pid-random).
    pub(super) fn new(dir: Arc<StoreDir>, name: String) -> Packer {
        Packer {
            dir,
            name,
            pack: None,
            pack_seq: 0,
            seen: IdSet::default(),
            packs_present: HashMap::new(),
            stats: WriteStats::default(),
            pool: Vec::new(),
            zpool: Vec::new(),
            sealing: None,
            unindexed: Vec::new(),
            unindexed_chunks: 0,
            staging: StagingPool::default(),
            lease: None,
        }
    }

    /// The session's unique name; its packs are named after it.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// A spare chunk buffer (contents unspecified), or a new empty one.
    pub(super) fn take_buf(&mut self) -> Vec<u8> {
        self.pool.pop().unwrap_or_default()
    }

    /// True when the pack is on disk and not condemned (cached: dedup only against chunks whose
    /// pack exists and is not condemned).
    fn pack_present(&mut self, pack: &str) -> bool {
        if let Some(p) = self.packs_present.get(pack) {
            return *p;
        }
        let p = self
            .dir
            .pack_dir()
            .join(format!("{pack}{}", crate::pack::PACK_SUFFIX))
            .exists()
            // A condemned pack may be deleted by gc: store our own copy (docs/gc.md).
            && !self.dir.is_condemned(pack);
        self.packs_present.insert(pack.to_string(), p);
        p
    }

    /// Store non-zero chunks not already present: dedup (one index transaction per batch),
    /// compress in parallel, append.
    pub(super) fn store_chunks(
        &mut self,
        items: Vec<(ChunkId, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        self.store_chunks_asking(items, true)
    }

    /// [`Packer::store_chunks`]; with `ask_index` false, chunks neither this session nor the
    /// store handle knows are taken to be new without an index lookup (storing a duplicate
    /// is harmless: it only costs space until gc).
    pub(super) fn store_chunks_asking(
        &mut self,
        items: Vec<(ChunkId, Vec<u8>)>,
        ask_index: bool,
    ) -> Result<(), StoreError> {
        if self.lease.is_none() {
            self.lease = Some(Lease::take(&self.dir, &self.name)?);
        }
        let unknown: Vec<ChunkId> = items
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !self.seen.contains(id))
            .collect();
        // Chunks this store handle has seen located (crate::known) are checked through their
        // pack like index hits; only the rest costs an index lookup.
        let hinted: Vec<(ChunkId, Option<std::sync::Arc<str>>)> = {
            let known = self.dir.known();
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
        let locs = self.dir.index().lookup_many(&ask)?;
        for (id, loc) in ask.iter().zip(locs) {
            if let Some((pack, e)) = loc {
                if self.pack_present(&pack) {
                    self.dir.known().add(&pack, &e);
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
        let level = self.dir.config().zstd_level;
        let compression = self.dir.config().compression;
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

    pub(super) fn recycle(&mut self, buf: Vec<u8>) {
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
                &self.dir.pack_dir(),
                name,
                &self.staging,
            )?);
        }
        if let Some(p) = self.pack.as_mut() {
            p.append(id, payload, raw_len, codec)?;
            self.stats.new_chunks += 1;
            self.stats.new_raw_bytes += raw_len as u64;
            self.stats.new_stored_bytes += payload.len() as u64;
            if p.size() >= self.dir.config().pack_target_size {
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
            self.dir.known().add_pack(&name, &entries);
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
        self.dir.index().add_packs(&self.unindexed)?;
        self.unindexed.clear();
        self.unindexed_chunks = 0;
        Ok(())
    }

    /// Seal the last pack, wait for the seals and index the packs: everything stored is durable.
    pub(super) fn finish(mut self) -> Result<WriteStats, StoreError> {
        self.seal_pack()?;
        self.wait_sealed()?;
        self.index_sealed()?;
        self.lease = None;
        Ok(std::mem::take(&mut self.stats))
    }

    /// Like [`Packer::finish`], but the index rows of the packs not indexed yet are returned
    /// (see [`crate::Writer::finish_deferred`]).
    pub(super) fn finish_deferred(mut self) -> Result<(WriteStats, PendingIndex), StoreError> {
        self.seal_pack()?;
        self.wait_sealed()?;
        let pending = PendingIndex {
            dir: self.dir.clone(),
            packs: std::mem::take(&mut self.unindexed),
            lease: self.lease.take(),
        };
        self.unindexed_chunks = 0;
        Ok((std::mem::take(&mut self.stats), pending))
    }
}

/// Index rows of packs a writer sealed without indexing them ([`crate::Writer::finish_deferred`]).
/// Dropping it loses nothing but speed: the packs are durable, and readers index packs missing
/// from the index from their trailers when they need them. It holds the session's lease
/// (docs/gc.md) until it is applied, dropped or abandoned: keep it until the generation that
/// references the packs is committed.
#[must_use = "the rows are only written by apply()"]
pub struct PendingIndex {
    dir: Arc<StoreDir>,
    packs: Vec<SealedPack>,
    lease: Option<Lease>,
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
        let mut index = Index::open(self.dir.path(), &self.dir.config().store_id)?;
        index.add_packs(&self.packs)
    }

    /// The generation these packs were written for was not committed: removes the packs
    /// (at once when no other writer may have used them, else condemned for gc; best effort)
    /// and returns how many were deleted at once.
    pub fn abandon(self) -> usize {
        let names: Vec<String> = self.packs.iter().map(|p| p.0.clone()).collect();
        match &self.lease {
            Some(lease) => abandon_packs(&self.dir, lease, &names).deleted,
            None => 0,
        }
    }
}

impl Drop for Packer {
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
        // The session's sealed packs that are not indexed yet hold nothing any generation
        // references: removed (docs/gc.md, "A failed checkpoint leaves nothing"). Packs
        // indexed in an earlier batch are left to gc.
        if let Some(lease) = self.lease.take() {
            let names: Vec<String> = self.unindexed.iter().map(|p| p.0.clone()).collect();
            abandon_packs(&self.dir, &lease, &names);
        }
    }
}
