//! The [`Store`] handle: init/open, chunk reads, commit, generation listing.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::{InitOptions, StoreConfig, CONFIG_FILE};
use crate::error::{IoContext, StoreError};
use crate::fsutil::{fault_point, fsync_dir, now_ms, unique_writer_name, write_new_durable};
use crate::generation::{
    check_job_name, encode_manifest, list_ids, manifest_path, read_manifest, Generation,
    GenerationId, GenerationInfo, GEN_DIR,
};
use crate::id::ChunkId;
use crate::index::{ChunkLoc, Index, IndexTotals, INDEX_FILE};
use crate::known::Known;
use crate::node::{StreamKind, StreamNode, StreamRef};
use crate::pack::{read_trailer, PACK_SUFFIX, TMP_PREFIX};
use crate::reader::GenerationReader;
use crate::writer::Writer;

/// A manifest file's id and its contents, or why it could not be read.
pub type ScannedGeneration = (GenerationId, Result<Generation, StoreError>);

/// What `reindex` found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReindexReport {
    /// Packs indexed.
    pub packs: u64,
    /// Chunk entries indexed (duplicates across packs included).
    pub chunks: u64,
    /// Generations indexed.
    pub generations: u64,
    /// Packs whose trailer could not be read (their chunks are not indexed), one line each.
    pub damaged_packs: Vec<String>,
    /// Manifests that could not be read, one line each.
    pub damaged_manifests: Vec<String>,
}

/// Directory of packs inside the store.
pub const PACK_DIR: &str = "packs";

pub(crate) struct Inner {
    pub dir: PathBuf,
    pub config: StoreConfig,
    index: Mutex<Index>,
    pack_files: Mutex<HashMap<String, Arc<File>>>,
    /// Chunk locations and stream nodes this handle has seen (hints; crate::known).
    known: Mutex<Known>,
}

/// A handle on a store directory; `Send + Sync`, cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.inner.dir.display())
    }
}

impl Store {
    /// Create a new store in `path`, which must not exist or be an empty directory.
    pub fn init(path: &Path, opts: InitOptions) -> Result<Store, StoreError> {
        let config = StoreConfig::new(&opts)?;
        match std::fs::read_dir(path) {
            Ok(mut rd) => {
                if rd.next().is_some() {
                    return Err(StoreError::AlreadyExists(path.to_path_buf()));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(path).ctx(|| format!("creating {}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                return Err(StoreError::AlreadyExists(path.to_path_buf()))
            }
            Err(e) => return Err(e).ctx(|| format!("reading {}", path.display())),
        }
        for d in [PACK_DIR, GEN_DIR] {
            let p = path.join(d);
            std::fs::create_dir(&p).ctx(|| format!("creating {}", p.display()))?;
        }
        drop(Index::create(path, &config.store_id)?);
        let text = serde_json::to_string_pretty(&config)
            .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        // config.json appears last and atomically: a half-initialised directory is not a store.
        let tmp = path.join(format!("{TMP_PREFIX}{CONFIG_FILE}"));
        write_new_durable(&tmp, format!("{text}\n").as_bytes())?;
        let fin = path.join(CONFIG_FILE);
        std::fs::rename(&tmp, &fin).ctx(|| format!("renaming to {}", fin.display()))?;
        fsync_dir(path)?;
        Store::open(path)
    }

    /// Open an existing store.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let config = StoreConfig::load(path)?;
        let index = Index::open(path, &config.store_id)?;
        Ok(Store::from_parts(path, config, index))
    }

    pub(crate) fn from_parts(path: &Path, config: StoreConfig, index: Index) -> Store {
        Store {
            inner: Arc::new(Inner {
                dir: path.to_path_buf(),
                config,
                index: Mutex::new(index),
                pack_files: Mutex::new(HashMap::new()),
                known: Mutex::new(Known::default()),
            }),
        }
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// The store's settings.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    pub(crate) fn index(&self) -> MutexGuard<'_, Index> {
        // A panic while holding the lock cannot leave the connection inconsistent (SQLite
        // transactions roll back), so a poisoned lock is still usable.
        self.inner.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The handle's cache of chunk locations and nodes (crate::known).
    pub(crate) fn known(&self) -> MutexGuard<'_, Known> {
        self.inner.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A stream node, decoded: from this handle's cache when it has it (the id is the hash of
    /// the node's bytes, so a cached node is the node), else read, verified and remembered.
    /// Says nothing about whether the node's chunk is still present in the store.
    pub(crate) fn read_node(&self, id: &ChunkId) -> Result<Arc<StreamNode>, StoreError> {
        if let Some(n) = self.known().node(id) {
            return Ok(n);
        }
        let n = Arc::new(StreamNode::decode(id, &self.read_chunk(id)?)?);
        self.known().add_node(*id, n.clone());
        Ok(n)
    }

    pub(crate) fn pack_dir(&self) -> PathBuf {
        self.inner.dir.join(PACK_DIR)
    }

    /// A writer session: chunks go into this writer's own uniquely named packs.
    pub fn writer(&self) -> Result<Writer, StoreError> {
        Ok(Writer::new(self.clone(), unique_writer_name()))
    }

    /// Names of the sealed packs present in `packs/` (temporary files excluded).
    pub fn pack_files_on_disk(&self) -> Result<Vec<String>, StoreError> {
        let pd = self.pack_dir();
        let mut out = Vec::new();
        for e in std::fs::read_dir(&pd).ctx(|| format!("listing {}", pd.display()))? {
            let e = e.ctx(|| format!("listing {}", pd.display()))?;
            let n = e.file_name();
            let Some(n) = n.to_str() else { continue };
            if n.starts_with(TMP_PREFIX) {
                continue;
            }
            if let Some(stem) = n.strip_suffix(PACK_SUFFIX) {
                out.push(stem.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    /// The chunks a sealed pack holds, read from its trailer (for gc and tools).
    pub fn pack_entries(&self, pack: &str) -> Result<Vec<crate::pack::PackEntry>, StoreError> {
        if pack.contains('/') || pack.starts_with('.') {
            return Err(StoreError::InvalidArgument(format!(
                "bad pack name {pack:?}"
            )));
        }
        read_trailer(&self.pack_dir().join(format!("{pack}{PACK_SUFFIX}")))
    }

    /// Index packs that are on disk but not in the index (written by a writer that died
    /// between sealing and indexing, or by a concurrent writer). Damaged packs are skipped.
    pub(crate) fn sync_new_packs(&self) -> Result<usize, StoreError> {
        let on_disk = self.pack_files_on_disk()?;
        let known: HashSet<String> = self.index().pack_names()?.into_iter().collect();
        let mut found = Vec::new();
        for name in on_disk.into_iter().filter(|n| !known.contains(n)) {
            let p = self.pack_dir().join(format!("{name}{PACK_SUFFIX}"));
            if let Ok(entries) = read_trailer(&p) {
                let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                found.push((name, size, entries));
            }
        }
        // One sorted transaction for all of them (per-pack transactions of random ids rewrite
        // most of the chunk table each time).
        self.index().add_packs(&found)?;
        Ok(found.len())
    }

    /// Where a chunk is, consulting packs not yet indexed on a miss.
    pub(crate) fn locate(&self, id: &ChunkId) -> Result<ChunkLoc, StoreError> {
        let mut found = self.index().lookup(id)?;
        if found.is_none() && self.sync_new_packs()? > 0 {
            found = self.index().lookup(id)?;
        }
        let l = found.ok_or(StoreError::MissingChunk(*id))?;
        self.known().add(&l.0, &l.1);
        Ok(l)
    }

    /// Locations of many chunks (one index transaction), consulting unindexed packs on a miss.
    ///
    /// Locations this handle remembers (crate::known; e.g. from the structure check that
    /// precedes a restore) are used without a lookup: reads verify every chunk and look a
    /// chunk up again when its read fails, so a stale hint costs a retry, never a wrong byte.
    pub(crate) fn locate_many(&self, ids: &[ChunkId]) -> Result<Vec<ChunkLoc>, StoreError> {
        let mut found: Vec<Option<ChunkLoc>> = {
            let known = self.known();
            ids.iter()
                .map(|id| known.loc(id).map(|(p, e)| (p.to_string(), e.clone())))
                .collect()
        };
        let ask: Vec<ChunkId> = ids
            .iter()
            .zip(&found)
            .filter(|(_, l)| l.is_none())
            .map(|(id, _)| *id)
            .collect();
        if !ask.is_empty() {
            let mut got = self.index().lookup_many(&ask)?;
            if got.iter().any(|l| l.is_none()) && self.sync_new_packs()? > 0 {
                got = self.index().lookup_many(&ask)?;
            }
            let mut known = self.known();
            for (pack, e) in got.iter().flatten() {
                known.add(pack, e);
            }
            let mut got = got.into_iter();
            for slot in found.iter_mut().filter(|l| l.is_none()) {
                *slot = got.next().flatten();
            }
        }
        ids.iter()
            .zip(found)
            .map(|(id, l)| l.ok_or(StoreError::MissingChunk(*id)))
            .collect()
    }

    /// Read a located chunk straight into `out` (its exact length) and verify it. When the
    /// read fails, the chunk is looked up again and read from its new location, if it has
    /// one: gc may have moved it into another pack and deleted the old one since `loc` was
    /// looked up (docs/gc.md, "Readers"). Only then is the first error reported.
    pub(crate) fn read_loc_into(&self, loc: &ChunkLoc, out: &mut [u8]) -> Result<(), StoreError> {
        let first = match self.read_loc_once(loc, out) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let mut cur = loc.clone();
        // Each retry follows one move; more than a few moves during one read means the
        // location keeps changing for another reason.
        for _ in 0..3 {
            match self.relocate(&cur) {
                Some(next) => {
                    cur = next;
                    if self.read_loc_once(&cur, out).is_ok() {
                        return Ok(());
                    }
                }
                None => break,
            }
        }
        Err(first)
    }

    pub(crate) fn read_loc_once(&self, loc: &ChunkLoc, out: &mut [u8]) -> Result<(), StoreError> {
        let (pack, e) = loc;
        let f = self.pack_file(pack)?;
        crate::pack::read_into(&f, e, out).map_err(|err| {
            // A handle on a pack that was replaced or went stale (NFS) must not be reused.
            self.forget_pack_file(pack);
            match err {
                StoreError::Corrupt(m) => StoreError::Corrupt(format!("pack {pack}: {m}")),
                other => other,
            }
        })
    }

    fn forget_pack_file(&self, pack: &str) {
        self.inner
            .pack_files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(pack);
    }

    /// Path of pack `pack`'s file.
    pub(crate) fn pack_path(&self, pack: &str) -> PathBuf {
        self.pack_dir().join(format!("{pack}{PACK_SUFFIX}"))
    }

    pub(crate) fn pack_file(&self, pack: &str) -> Result<Arc<File>, StoreError> {
        let mut files = self
            .inner
            .pack_files
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(f) = files.get(pack) {
            return Ok(f.clone());
        }
        let p = self.pack_dir().join(format!("{pack}{PACK_SUFFIX}"));
        let f = match File::open(&p) {
            Ok(f) => Arc::new(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Corrupt(format!("pack {pack} is missing")))
            }
            Err(e) => return Err(e).ctx(|| format!("opening pack {}", p.display())),
        };
        if files.len() > 256 {
            files.clear();
        }
        files.insert(pack.to_string(), f.clone());
        Ok(f)
    }

    /// Read one chunk and verify its hash. The zero id must not be passed.
    pub fn read_chunk(&self, id: &ChunkId) -> Result<Vec<u8>, StoreError> {
        // A location this handle remembers is tried first (the read verifies the hash); any
        // failure falls back to the index.
        let hint = self
            .known()
            .loc(id)
            .map(|(p, e)| (p.to_string(), e.clone()));
        if let Some(loc) = hint {
            let mut buf = vec![0u8; loc.1.raw_len as usize];
            if self.read_loc_once(&loc, &mut buf).is_ok() {
                return Ok(buf);
            }
        }
        let loc = self.locate(id)?;
        let mut buf = vec![0u8; loc.1.raw_len as usize];
        self.read_loc_into(&loc, &mut buf)?;
        Ok(buf)
    }

    /// The single commit point of a generation: writes the generation manifest atomically.
    /// Every chunk reachable from `root` must be durable (its Writer finished); this is
    /// checked before anything is written.
    pub fn commit(
        &self,
        job: &str,
        root: &StreamRef,
        info: GenerationInfo,
    ) -> Result<GenerationId, StoreError> {
        check_job_name(job)?;
        if root.kind != StreamKind::Tree {
            return Err(StoreError::InvalidArgument(
                "the root of a generation must be a tree".into(),
            ));
        }
        let problems = self.check_structure(root)?;
        if let Some(p) = problems.first() {
            return Err(StoreError::InvalidArgument(format!(
                "cannot commit: {p} (was every writer finished?)"
            )));
        }
        let writer_name = unique_writer_name();
        let host = writer_name.split('-').next().unwrap_or("").to_string();
        let gdir = self.inner.dir.join(GEN_DIR);
        let tmp = gdir.join(format!("{TMP_PREFIX}{writer_name}.gen"));
        let mut next = list_ids(&self.inner.dir)?
            .last()
            .map(|g| g.0 + 1)
            .unwrap_or(1);
        let mut gen = Generation {
            format: 1,
            id: GenerationId(next),
            job: job.to_string(),
            time_ms: now_ms(),
            host,
            root: root.clone(),
            info,
        };
        // Each attempt writes the manifest under a temporary name and links it to the final
        // name; link(2) fails if the name is taken by a concurrent writer, then we try the next.
        loop {
            gen.id = GenerationId(next);
            write_new_durable(&tmp, &encode_manifest(&gen)?)?;
            fault_point("manifest-write");
            let fin = manifest_path(&self.inner.dir, gen.id);
            let linked = std::fs::hard_link(&tmp, &fin);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => next += 1,
                Err(e) => return Err(e).ctx(|| format!("creating {}", fin.display())),
            }
        }
        fsync_dir(&gdir)?;
        fault_point("manifest-commit");
        // The generation is committed; the index entry is only a cache of the manifest.
        if let Err(e) = self.index().add_generation(&gen) {
            eprintln!(
                "cairn: warning: generation {} committed but not indexed: {e}",
                gen.id
            );
        }
        Ok(gen.id)
    }

    /// All readable generations, oldest first, optionally of one job. Damaged manifests are
    /// left out (see [`Store::scan_generations`]).
    pub fn generations(&self, job: Option<&str>) -> Result<Vec<Generation>, StoreError> {
        Ok(self
            .scan_generations()?
            .into_iter()
            .filter_map(|(_, r)| r.ok())
            .filter(|g| job.is_none_or(|j| g.job == j))
            .collect())
    }

    /// Every manifest file, oldest first, with its parsed contents or why it is unreadable.
    pub fn scan_generations(&self) -> Result<Vec<ScannedGeneration>, StoreError> {
        let ids = list_ids(&self.inner.dir)?;
        Ok(ids
            .into_iter()
            .map(|id| {
                let p = manifest_path(&self.inner.dir, id);
                let r = read_manifest(&p).and_then(|g| {
                    if g.id == id {
                        Ok(g)
                    } else {
                        Err(StoreError::Corrupt(format!(
                            "manifest {} names generation {}",
                            p.display(),
                            g.id
                        )))
                    }
                });
                (id, r)
            })
            .collect())
    }

    /// One generation by id.
    pub fn generation(&self, id: GenerationId) -> Result<Generation, StoreError> {
        let p = manifest_path(&self.inner.dir, id);
        if !p.exists() {
            return Err(StoreError::UnknownGeneration(id.0));
        }
        read_manifest(&p)
    }

    /// Totals from the index, for `cairn store stats`.
    pub fn totals(&self) -> Result<IndexTotals, StoreError> {
        self.index().totals()
    }

    /// Rebuild `cairn.db` from the packs' trailers and the generation manifests alone.
    /// Works when the index is missing or corrupt. Must not run while writers are active.
    pub fn reindex(path: &Path) -> Result<ReindexReport, StoreError> {
        let config = StoreConfig::load(path)?;
        let tmp = path.join(format!("{TMP_PREFIX}{}-{INDEX_FILE}", unique_writer_name()));
        let mut index = Index::create_at(&tmp, &config.store_id)?;
        let mut report = ReindexReport::default();
        let build = (|| {
            let store_packs = {
                let pd = path.join(PACK_DIR);
                let mut v = Vec::new();
                for e in std::fs::read_dir(&pd).ctx(|| format!("listing {}", pd.display()))? {
                    let e = e.ctx(|| format!("listing {}", pd.display()))?;
                    if let Some(n) = e.file_name().to_str() {
                        if !n.starts_with(TMP_PREFIX) {
                            if let Some(stem) = n.strip_suffix(PACK_SUFFIX) {
                                v.push(stem.to_string());
                            }
                        }
                    }
                }
                v.sort();
                v
            };
            for name in store_packs {
                let p = path.join(PACK_DIR).join(format!("{name}{PACK_SUFFIX}"));
                match read_trailer(&p) {
                    Ok(entries) => {
                        let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                        index.add_pack(&name, size, &entries)?;
                        report.packs += 1;
                        report.chunks += entries.len() as u64;
                    }
                    Err(e) => report.damaged_packs.push(e.to_string()),
                }
            }
            for id in list_ids(path)? {
                match read_manifest(&manifest_path(path, id)) {
                    Ok(g) => {
                        index.add_generation(&g)?;
                        report.generations += 1;
                    }
                    Err(e) => report.damaged_manifests.push(e.to_string()),
                }
            }
            Ok::<(), StoreError>(())
        })();
        drop(index);
        if let Err(e) = build {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        // A hot journal of the old index must not be applied to the new one.
        let journal = path.join(format!("{INDEX_FILE}-journal"));
        match std::fs::remove_file(&journal) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx(|| format!("removing {}", journal.display())),
        }
        let fin = path.join(INDEX_FILE);
        std::fs::rename(&tmp, &fin).ctx(|| format!("renaming to {}", fin.display()))?;
        fsync_dir(path)?;
        Ok(report)
    }

    /// Remove temporary files of unfinished writers (packs, manifests, index rebuilds) whose
    /// modification time is older than `min_age`. Returns the removed paths, relative to the
    /// store. A live writer touches its temporary pack continuously, so a generous `min_age`
    /// never removes the file of a running writer.
    pub fn remove_leftovers(
        &self,
        min_age: std::time::Duration,
    ) -> Result<Vec<String>, StoreError> {
        let now = std::time::SystemTime::now();
        let mut removed = Vec::new();
        for sub in [PACK_DIR, GEN_DIR, ""] {
            let d = self.inner.dir.join(sub);
            for e in std::fs::read_dir(&d).ctx(|| format!("listing {}", d.display()))? {
                let e = e.ctx(|| format!("listing {}", d.display()))?;
                let name = e.file_name();
                let Some(n) = name.to_str() else { continue };
                if !n.starts_with(TMP_PREFIX) {
                    continue;
                }
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|age| age >= min_age);
                if old {
                    let p = e.path();
                    std::fs::remove_file(&p).ctx(|| format!("removing {}", p.display()))?;
                    removed.push(if sub.is_empty() {
                        n.to_string()
                    } else {
                        format!("{sub}/{n}")
                    });
                }
            }
        }
        removed.sort();
        Ok(removed)
    }

    /// A reader for generation `id`.
    pub fn reader(&self, id: GenerationId) -> Result<GenerationReader, StoreError> {
        let g = self.generation(id)?;
        Ok(GenerationReader::new(self.clone(), g))
    }
}
