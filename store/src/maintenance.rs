//! Primitives for prune and garbage collection (used by `cairn-gc`, see docs/gc.md):
//! forgetting generations, marking live chunks from manifests, scanning packs, condemning
//! packs, copying chunks out of packs, and deleting condemned packs.
//!
//! Nothing here takes a lock that stops writers. Safety rests on the two-phase protocol of
//! docs/gc.md: a pack is first *condemned* (a marker file `condemned/<pack>.json` with the
//! time), writers never deduplicate against a chunk of a condemned pack (they store their own
//! copy: the rescue), and a condemned pack is deleted only after a grace period, after a fresh
//! mark, and after every chunk of it that is still reachable has a copy in another pack.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rusqlite::{params, TransactionBehavior};
use serde::Serialize;

use crate::condemned::Condemnation;
use crate::dir::StoreDir;
use crate::error::{IoContext, StoreError};
use crate::fsutil::{fault_point, fsync_dir, mtime_ms, now_ms, unique_writer_name};
use crate::generation::{list_ids, manifest_path, read_manifest, GenerationId, GEN_DIR};
use crate::id::ChunkId;
use crate::node::{StreamKind, StreamNode, StreamRef};
use crate::pack::{decode_payload, read_trailer, PackEntry, PackWriter, PACK_SUFFIX, TMP_PREFIX};
use crate::read::chunk::read_tree;

/// Every chunk reachable from the generation manifests present when the mark started.
#[derive(Debug, Default)]
pub struct LiveSet {
    /// Reachable chunks: tree nodes, stream nodes and non-zero data chunks.
    pub chunks: HashSet<ChunkId>,
    /// Generation manifests walked.
    pub generations: u64,
    /// When the mark started (before the manifests were listed), ms since the epoch.
    pub started_ms: u64,
}

/// One sealed pack as found on disk. Only its *live* chunks are kept in memory (the
/// trailer is read, summed and dropped), so a sweep's memory grows with the live set, not
/// with everything ever stored.
#[derive(Clone, Debug)]
pub struct PackSummary {
    /// Pack name (file name without `.pack`).
    pub name: String,
    /// File size in bytes.
    pub size: u64,
    /// Modification time of the file, ms since the epoch (about when it was sealed).
    pub mtime_ms: u64,
    /// Set when the pack is condemned.
    pub condemned: Option<Condemnation>,
    /// Set when the trailer cannot be read: such a pack is never touched by gc.
    pub damaged: Option<String>,
    /// Chunks listed in the trailer.
    pub chunk_count: u64,
    /// Sum of their stored (compressed) lengths.
    pub stored_bytes: u64,
    /// The chunks of the pack that are in the live set the pack set was scanned with.
    pub live: Vec<PackEntry>,
}

impl PackSummary {
    /// Neither condemned nor damaged: its chunks may be relied upon.
    pub fn is_alive(&self) -> bool {
        self.condemned.is_none() && self.damaged.is_none()
    }
}

/// Every sealed pack on disk, summarised against a live set; the input of a sweep.
///
/// Held in memory: one summary per pack, its live chunks, and one *alive copy* (a location
/// in a pack that is neither condemned nor damaged) for each live chunk and for each chunk
/// of a *young* pack (sealed less than the grace period before the mark). Young packs are the
/// only place where a chunk that is not live but needed by a generation committed after the
/// mark can be (docs/gc.md, "Why it is safe"), so these are all the alternatives a sweep
/// ever needs; everything else stored is dead and only summed.
#[derive(Debug, Default)]
pub struct PackSet {
    packs: Vec<PackSummary>,
    by_name: HashMap<String, usize>,
    alive_copy: HashMap<ChunkId, (usize, PackEntry)>,
}

impl PackSet {
    /// The packs, sorted by name (packs added by copies at the end).
    pub fn packs(&self) -> &[PackSummary] {
        &self.packs
    }

    /// The pack named `name`.
    pub fn get(&self, name: &str) -> Option<&PackSummary> {
        self.by_name.get(name).map(|&i| &self.packs[i])
    }

    /// Position of the pack named `name` in [`PackSet::packs`].
    pub fn slot(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The pack (neither condemned nor damaged) that holds a copy of `id`, if any; known
    /// for live chunks and chunks of young packs only.
    pub fn alive_copy(&self, id: &ChunkId) -> Option<&str> {
        self.alive_copy
            .get(id)
            .map(|(i, _)| self.packs[*i].name.as_str())
    }

    /// Chunk locations this set holds in memory (live chunks of every pack plus alive
    /// copies); bounded by the live set plus the chunks of young packs.
    pub fn held_entries(&self) -> usize {
        self.packs.iter().map(|p| p.live.len()).sum::<usize>() + self.alive_copy.len()
    }

    fn push(&mut self, summary: PackSummary) -> usize {
        let i = self.packs.len();
        self.by_name.insert(summary.name.clone(), i);
        self.packs.push(summary);
        i
    }

    fn add_alive(&mut self, slot: usize, e: &PackEntry) {
        self.alive_copy
            .entry(e.id)
            .or_insert_with(|| (slot, e.clone()));
    }

    /// Add a pack's trailer: sum it, keep its live chunks, and remember alive copies of its
    /// live chunks (and of all its chunks when `young`).
    fn add_pack(
        &mut self,
        mut summary: PackSummary,
        entries: &[PackEntry],
        live: &HashSet<ChunkId>,
        young: bool,
    ) {
        summary.chunk_count = entries.len() as u64;
        summary.stored_bytes = entries.iter().map(|e| u64::from(e.stored_len)).sum();
        summary.live = entries
            .iter()
            .filter(|e| live.contains(&e.id))
            .cloned()
            .collect();
        let alive = summary.is_alive();
        let slot = self.push(summary);
        if alive {
            if young {
                for e in entries {
                    self.add_alive(slot, e);
                }
            } else {
                let n = self.packs[slot].live.len();
                for k in 0..n {
                    let e = self.packs[slot].live[k].clone();
                    self.add_alive(slot, &e);
                }
            }
        }
    }
}

/// What copying chunks into a new pack did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CopyReport {
    /// Chunks copied.
    pub chunks: u64,
    /// Their stored bytes.
    pub bytes: u64,
    /// New packs written.
    pub new_packs: Vec<String>,
}

fn is_not_found(e: &StoreError) -> bool {
    matches!(e, StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// The gc primitives of a store ([`crate::Store::maintenance`]): condemning packs, marking
/// the live set, scanning packs, copying chunks out of packs, deleting condemned packs, and
/// forgetting generations. Cheap to clone; shares the store handle's index and caches.
#[derive(Clone)]
pub struct Maintenance {
    dir: Arc<StoreDir>,
}

impl Maintenance {
    /// The gc primitives of the store directory `dir`.
    pub(crate) fn new(dir: Arc<StoreDir>) -> Maintenance {
        Maintenance { dir }
    }

    /// True when `pack` is condemned: writers must not deduplicate against its chunks.
    pub fn is_condemned(&self, pack: &str) -> bool {
        self.dir.is_condemned(pack)
    }

    /// The condemnation of `pack`, if any. An unreadable marker still condemns the pack, with
    /// the time of the marker file.
    pub fn condemnation(&self, pack: &str) -> Result<Option<Condemnation>, StoreError> {
        self.dir.condemnation(pack)
    }

    /// Names of every condemned pack (markers present), sorted.
    pub fn condemned_names(&self) -> Result<Vec<String>, StoreError> {
        self.dir.condemned_names()
    }

    /// Condemn a pack: write its marker atomically and durably (an existing marker is kept,
    /// with its older time). Returns false when it was already condemned.
    pub fn condemn_pack(&self, pack: &str) -> Result<bool, StoreError> {
        let done = self.condemn_packs(&[pack.to_string()])?;
        Ok(!done.is_empty())
    }

    /// Condemn several packs; the markers become durable together (one directory sync).
    /// Returns the packs this call condemned (not those already condemned).
    pub fn condemn_packs(&self, packs: &[String]) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for pack in packs {
            if self.dir.write_marker(pack)? {
                out.push(pack.clone());
            }
        }
        if !out.is_empty() {
            fsync_dir(&self.dir.condemned_dir())?;
            fault_point("gc-condemned");
        }
        Ok(out)
    }

    /// The uncompressed and stored bytes of the indexed chunks in `live` (one pass over the
    /// index): what the generations present really hold, without the chunks only gc frees.
    pub fn live_bytes(&self, live: &LiveSet) -> Result<(u64, u64), StoreError> {
        let idx = self.dir.index();
        let mut st = idx
            .conn
            .prepare("SELECT id, raw_len, stored_len FROM chunks")?;
        let mut rows = st.query([])?;
        let (mut raw, mut stored) = (0u64, 0u64);
        while let Some(r) = rows.next()? {
            let id: Vec<u8> = r.get(0)?;
            let Ok(bytes) = <[u8; 32]>::try_from(id.as_slice()) else {
                continue;
            };
            if live.chunks.contains(&ChunkId(bytes)) {
                raw += r.get::<_, i64>(1)? as u64;
                stored += r.get::<_, i64>(2)? as u64;
            }
        }
        Ok((raw, stored))
    }

    /// Mark: every chunk reachable from the generation manifests present now (tree nodes,
    /// stream nodes and data chunks). Subtrees already reached are not walked again, so the
    /// cost grows with the live chunks, not with the number of generations. A manifest that
    /// vanishes meanwhile (pruned) is skipped; an unreadable manifest or node is an error,
    /// because what it references cannot be known.
    pub fn mark_live(&self) -> Result<LiveSet, StoreError> {
        let started_ms = now_ms();
        let mut live = LiveSet {
            started_ms,
            ..LiveSet::default()
        };
        for id in list_ids(self.dir.path())? {
            let p = manifest_path(self.dir.path(), id);
            let g = match read_manifest(&p) {
                Ok(g) => g,
                Err(e) if is_not_found(&e) => continue,
                Err(e) => {
                    return Err(StoreError::Corrupt(format!(
                    "cannot collect garbage: generation {id}: {e} (remove or repair the manifest)"
                )))
                }
            };
            live.generations += 1;
            self.mark_ref(&g.root, &mut live.chunks).map_err(|e| {
                StoreError::Corrupt(format!(
                    "cannot collect garbage: generation {id} of job {}: {e}",
                    g.job
                ))
            })?;
        }
        Ok(live)
    }

    fn mark_ref(&self, s: &StreamRef, live: &mut HashSet<ChunkId>) -> Result<(), StoreError> {
        match s.kind {
            StreamKind::Tree => {
                if live.contains(&s.root) {
                    return Ok(());
                }
                let entries = read_tree(&self.dir, s)?;
                for (_, child) in &entries {
                    self.mark_ref(child, live)?;
                }
                live.insert(s.root);
                Ok(())
            }
            StreamKind::Memory | StreamKind::Bytes => self.mark_node(&s.root, live),
        }
    }

    fn mark_node(&self, id: &ChunkId, live: &mut HashSet<ChunkId>) -> Result<(), StoreError> {
        if id.is_zero() || live.contains(id) {
            return Ok(());
        }
        let node = StreamNode::decode(id, &self.dir.read_chunk(id)?)?;
        for e in &node.entries {
            if node.level == 1 {
                if !e.id.is_zero() {
                    live.insert(e.id);
                }
            } else {
                self.mark_node(&e.id, live)?;
            }
        }
        // Inserted last: a node in the set means its whole subtree is in the set.
        live.insert(*id);
        Ok(())
    }

    /// Every sealed pack on disk with its size, age and condemnation, summarised against
    /// `live` one trailer at a time (see [`PackSet`] for what is kept in memory). Packs
    /// sealed after `young_after_ms` are *young*: every chunk of theirs gets an alive copy.
    pub fn scan_packs(&self, live: &LiveSet, young_after_ms: u64) -> Result<PackSet, StoreError> {
        let mut set = PackSet::default();
        for name in self.dir.pack_files_on_disk()? {
            let p = self.dir.pack_dir().join(format!("{name}{PACK_SUFFIX}"));
            let meta = match std::fs::metadata(&p) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).ctx(|| format!("stat {}", p.display())),
            };
            let condemned = self.condemnation(&name)?;
            let (entries, damaged) = match read_trailer(&p) {
                Ok(en) => (en, None),
                Err(e) if is_not_found(&e) => continue,
                Err(e) => (Vec::new(), Some(e.to_string())),
            };
            let mtime_ms = mtime_ms(&meta);
            let summary = PackSummary {
                name,
                size: meta.len(),
                mtime_ms,
                condemned,
                damaged,
                chunk_count: 0,
                stored_bytes: 0,
                live: Vec::new(),
            };
            set.add_pack(summary, &entries, &live.chunks, mtime_ms > young_after_ms);
        }
        Ok(set)
    }

    /// Number and total bytes of the sealed packs on disk.
    pub fn pack_usage(&self) -> Result<(u64, u64), StoreError> {
        let mut n = 0;
        let mut bytes = 0;
        for name in self.dir.pack_files_on_disk()? {
            let p = self.dir.pack_dir().join(format!("{name}{PACK_SUFFIX}"));
            if let Ok(m) = std::fs::metadata(&p) {
                n += 1;
                bytes += m.len();
            }
        }
        Ok((n, bytes))
    }

    /// The pack the index names for each chunk (`None` when not indexed).
    pub fn indexed_packs(&self, ids: &[ChunkId]) -> Result<Vec<Option<String>>, StoreError> {
        Ok(self
            .dir
            .index()
            .lookup_many(ids)?
            .into_iter()
            .map(|l| l.map(|(p, _)| p))
            .collect())
    }

    /// Copy chunks into new packs of this process, verifying each one (the stored payload is
    /// copied, not recompressed); `chunks` lists (source pack, location in it) pairs. Index
    /// entries that pointed to the source pack now point to the copy. The new packs join
    /// `set` as alive packs whose chunks are all live.
    pub fn copy_chunks(
        &self,
        set: &mut PackSet,
        chunks: &[(String, PackEntry)],
    ) -> Result<CopyReport, StoreError> {
        let mut report = CopyReport::default();
        if chunks.is_empty() {
            return Ok(report);
        }
        let base = format!("{}-gc", unique_writer_name());
        let mut seq = 0u32;
        let mut out: Option<PackWriter> = None;
        let target = self.dir.config().pack_target_size;
        let mut sealed: Vec<(String, u64, Vec<PackEntry>)> = Vec::new();
        for (src, e) in chunks {
            let id = e.id;
            let f = self.dir.pack_file(src)?;
            let mut payload = vec![0u8; e.stored_len as usize];
            std::os::unix::fs::FileExt::read_exact_at(&*f, &mut payload, e.offset)
                .ctx(|| format!("reading chunk {id} of pack {src}"))?;
            decode_payload(e, payload.clone()).map_err(|err| match err {
                StoreError::Corrupt(m) => StoreError::Corrupt(format!("pack {src}: {m}")),
                other => other,
            })?;
            if out.is_none() {
                seq += 1;
                out = Some(PackWriter::create(
                    &self.dir.pack_dir(),
                    format!("{base}{seq:05}"),
                )?);
            }
            if let Some(w) = out.as_mut() {
                w.append(id, &payload, e.raw_len as usize, e.codec)?;
                report.chunks += 1;
                report.bytes += payload.len() as u64;
                if w.size() >= target {
                    if let Some(w) = out.take() {
                        sealed.push(w.seal()?);
                    }
                }
            }
        }
        if let Some(w) = out.take() {
            sealed.push(w.seal()?);
        }
        fault_point("gc-copy-sealed");
        let mut new_loc: HashMap<ChunkId, (String, PackEntry)> = HashMap::new();
        for (name, size, entries) in &sealed {
            self.dir.index().add_pack(name, *size, entries)?;
            for e in entries {
                new_loc.insert(e.id, (name.clone(), e.clone()));
            }
            report.new_packs.push(name.clone());
        }
        {
            let mut idx = self.dir.index();
            let tx = idx.conn.transaction()?;
            {
                let mut st = tx.prepare_cached(
                    "UPDATE chunks SET pack=?1, offset=?2, stored_len=?3, raw_len=?4, codec=?5
                     WHERE id=?6 AND pack=?7",
                )?;
                for (src, e) in chunks {
                    if let Some((p, n)) = new_loc.get(&e.id) {
                        st.execute(params![
                            p,
                            n.offset as i64,
                            i64::from(n.stored_len),
                            i64::from(n.raw_len),
                            n.codec as u8 as i64,
                            &e.id.0[..],
                            src
                        ])?;
                    }
                }
            }
            tx.commit()?;
        }
        fault_point("gc-copy-indexed");
        for (name, size, entries) in sealed {
            let summary = PackSummary {
                name,
                size,
                mtime_ms: now_ms(),
                condemned: None,
                damaged: None,
                chunk_count: 0,
                stored_bytes: 0,
                live: Vec::new(),
            };
            let ids: HashSet<ChunkId> = entries.iter().map(|e| e.id).collect();
            set.add_pack(summary, &entries, &ids, false);
        }
        Ok(report)
    }

    /// Delete condemned packs. `live` must come from a mark that started after each pack's
    /// condemnation plus the grace period (the caller checks the times), and `set` must have
    /// been scanned against it. Chunks of the packs that are live and have no copy in a pack
    /// that is neither condemned nor damaged are copied first; then, in one index
    /// transaction, every index entry that points into the packs is moved to another copy
    /// or removed (a chunk with no alive copy known to `set` is dead), and the packs leave
    /// the index; then the files are removed, and the markers last. Returns the bytes freed
    /// and the copy report.
    pub fn delete_condemned_packs(
        &self,
        set: &mut PackSet,
        packs: &[String],
        live: &LiveSet,
    ) -> Result<(u64, CopyReport), StoreError> {
        let mut rescue: Vec<(String, PackEntry)> = Vec::new();
        let mut freed = 0;
        // A chunk live in two condemned packs is copied once.
        let mut once = HashSet::new();
        for pack in packs {
            let summary = set
                .get(pack)
                .ok_or_else(|| StoreError::InvalidArgument(format!("unknown pack {pack}")))?;
            if summary.condemned.is_none() {
                return Err(StoreError::InvalidArgument(format!(
                    "pack {pack} is not condemned"
                )));
            }
            if let Some(d) = &summary.damaged {
                return Err(StoreError::Corrupt(format!(
                    "refusing to delete damaged pack {pack}: {d}"
                )));
            }
            freed += summary.size;
            for e in &summary.live {
                if !set.alive_copy.contains_key(&e.id) && once.insert(e.id) {
                    rescue.push((pack.clone(), e.clone()));
                }
            }
        }
        let copied = self.copy_chunks(set, &rescue)?;
        drop(rescue);
        fault_point("gc-delete-rescued");
        let doomed: HashSet<&str> = packs.iter().map(String::as_str).collect();
        {
            let mut idx = self.dir.index();
            let tx = idx
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Packs indexed since the scan (sealed by writers meanwhile, so young) may hold
            // the only other copy of a chunk; writers index their packs inside a
            // transaction, so none can be added while this one runs.
            let names: Vec<String> = {
                let mut st = tx.prepare("SELECT name FROM packs")?;
                let rows = st.query_map([], |r| r.get::<_, String>(0))?;
                rows.collect::<Result<_, _>>()?
            };
            for n in names {
                if doomed.contains(n.as_str()) || set.by_name.contains_key(&n) {
                    continue;
                }
                let p = self.dir.pack_dir().join(format!("{n}{PACK_SUFFIX}"));
                let Ok(meta) = std::fs::metadata(&p) else {
                    continue;
                };
                if let Ok(entries) = read_trailer(&p) {
                    let summary = PackSummary {
                        name: n.clone(),
                        size: meta.len(),
                        mtime_ms: mtime_ms(&meta),
                        condemned: self.condemnation(&n)?,
                        damaged: None,
                        chunk_count: 0,
                        stored_bytes: 0,
                        live: Vec::new(),
                    };
                    set.add_pack(summary, &entries, &live.chunks, true);
                }
            }
            {
                let mut sel = tx.prepare_cached("SELECT id FROM chunks WHERE pack=?1")?;
                let mut upd = tx.prepare_cached(
                    "UPDATE chunks SET pack=?1, offset=?2, stored_len=?3, raw_len=?4, codec=?5
                     WHERE id=?6",
                )?;
                let mut del = tx.prepare_cached("DELETE FROM chunks WHERE id=?1")?;
                let mut delp = tx.prepare_cached("DELETE FROM packs WHERE name=?1")?;
                for pack in packs {
                    let ids: Vec<Vec<u8>> = sel
                        .query_map(params![pack], |r| r.get::<_, Vec<u8>>(0))?
                        .collect::<Result<_, _>>()?;
                    for raw in ids {
                        let alt = ChunkId::from_slice(&raw).and_then(|id| set.alive_copy.get(&id));
                        match alt {
                            Some((i, e)) => {
                                upd.execute(params![
                                    set.packs[*i].name,
                                    e.offset as i64,
                                    i64::from(e.stored_len),
                                    i64::from(e.raw_len),
                                    e.codec as u8 as i64,
                                    raw
                                ])?;
                            }
                            None => {
                                del.execute(params![raw])?;
                            }
                        }
                    }
                    delp.execute(params![pack])?;
                }
            }
            tx.commit()?;
        }
        fault_point("gc-delete-unindexed");
        for pack in packs {
            let p = self.dir.pack_dir().join(format!("{pack}{PACK_SUFFIX}"));
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).ctx(|| format!("removing {}", p.display())),
            }
        }
        fsync_dir(&self.dir.pack_dir())?;
        fault_point("gc-delete-unlinked");
        for pack in packs {
            let m = self.dir.marker_path(pack);
            match std::fs::remove_file(&m) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).ctx(|| format!("removing {}", m.display())),
            }
        }
        if !packs.is_empty() {
            fsync_dir(&self.dir.condemned_dir())?;
        }
        // Deleted packs stay in `set` (slots must not move) but lose their live chunks.
        for pack in packs {
            if let Some(&i) = set.by_name.get(pack.as_str()) {
                set.packs[i].live = Vec::new();
            }
        }
        Ok((freed, copied))
    }

    /// Finish what a killed gc or prune left behind: markers of packs that are gone, index
    /// entries of packs that are gone and condemned, index entries of generations whose
    /// manifest is gone. Returns how many items were tidied.
    pub fn tidy_after_gc(&self) -> Result<u64, StoreError> {
        let mut n = 0;
        let on_disk: HashSet<String> = self.dir.pack_files_on_disk()?.into_iter().collect();
        for c in self.condemned_names()? {
            if !on_disk.contains(&c) {
                {
                    let mut idx = self.dir.index();
                    let tx = idx.conn.transaction()?;
                    tx.execute("DELETE FROM chunks WHERE pack=?1", params![c])?;
                    tx.execute("DELETE FROM packs WHERE name=?1", params![c])?;
                    tx.commit()?;
                }
                self.dir.remove_marker(&c)?;
                n += 1;
            }
        }
        // Temporary markers of killed runs (a live gc links its own within milliseconds).
        if let Ok(rd) = std::fs::read_dir(self.dir.condemned_dir()) {
            for e in rd.flatten() {
                let stale = e
                    .metadata()
                    .map(|m| now_ms().saturating_sub(mtime_ms(&m)) > 600_000)
                    .unwrap_or(false);
                let tmp = e
                    .file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(TMP_PREFIX));
                if tmp && stale && std::fs::remove_file(e.path()).is_ok() {
                    n += 1;
                }
            }
        }
        let present: HashSet<u64> = list_ids(self.dir.path())?
            .into_iter()
            .map(|g| g.0)
            .collect();
        let indexed: Vec<i64> = {
            let idx = self.dir.index();
            let mut st = idx.conn.prepare("SELECT id FROM generations")?;
            let rows = st.query_map([], |r| r.get::<_, i64>(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let gone: Vec<i64> = indexed
            .into_iter()
            .filter(|g| !present.contains(&(*g as u64)))
            .collect();
        if !gone.is_empty() {
            let mut idx = self.dir.index();
            let tx = idx.conn.transaction()?;
            for g in &gone {
                tx.execute("DELETE FROM generations WHERE id=?1", params![g])?;
            }
            tx.commit()?;
            n += gone.len() as u64;
        }
        Ok(n)
    }

    /// Forget generations: remove their manifests (each removal is atomic; the manifests go
    /// first, the index entries after). Returns the ids actually removed.
    pub fn forget_generations(
        &self,
        ids: &[GenerationId],
    ) -> Result<Vec<GenerationId>, StoreError> {
        let mut removed = Vec::new();
        if !ids.is_empty() {
            let mut idx = self.dir.index();
            let tx = idx.conn.transaction()?;
            for id in ids {
                tx.execute(
                    "INSERT OR IGNORE INTO forgetting(id) VALUES(?1)",
                    params![id.0 as i64],
                )?;
            }
            tx.commit()?;
        }
        for id in ids {
            let p = manifest_path(self.dir.path(), *id);
            match std::fs::remove_file(&p) {
                Ok(()) => removed.push(*id),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).ctx(|| format!("removing {}", p.display())),
            }
            fault_point("prune-unlinked");
        }
        fsync_dir(&self.dir.path().join(GEN_DIR))?;
        if !ids.is_empty() {
            let mut idx = self.dir.index();
            let tx = idx.conn.transaction()?;
            for id in ids {
                tx.execute("DELETE FROM generations WHERE id=?1", params![id.0 as i64])?;
                tx.execute("DELETE FROM forgetting WHERE id=?1", params![id.0 as i64])?;
            }
            tx.commit()?;
        }
        Ok(removed)
    }
}
