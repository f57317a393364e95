//! [`StoreDir`]: the store directory and what every part of the store shares: its settings,
//! its index, the open pack files, the cache of what this handle has seen (crate::known), and
//! the listings of its packs and generation manifests. Reading, writing, checking and
//! maintenance all work on it; it knows none of them.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::StoreConfig;
use crate::error::{IoContext, StoreError};
use crate::generation::{
    list_ids, manifest_path, read_manifest, Generation, GenerationId, ScannedGeneration,
};
use crate::index::Index;
use crate::known::Known;
use crate::pack::{read_trailer, PackEntry, PACK_SUFFIX, TMP_PREFIX};

/// Directory of packs inside the store.
pub const PACK_DIR: &str = "packs";

/// A store directory opened by one handle; shared (`Arc`) by the handle, its writers and
/// readers.
pub(crate) struct StoreDir {
    dir: PathBuf,
    config: StoreConfig,
    index: Mutex<Index>,
    pack_files: Mutex<HashMap<String, Arc<File>>>,
    /// Chunk locations and stream nodes this handle has seen (hints; crate::known).
    known: Mutex<Known>,
}

impl StoreDir {
    /// The directory `path`, whose settings and index are already loaded.
    pub(crate) fn new(path: &Path, config: StoreConfig, index: Index) -> StoreDir {
        StoreDir {
            dir: path.to_path_buf(),
            config,
            index: Mutex::new(index),
            pack_files: Mutex::new(HashMap::new()),
            known: Mutex::new(Known::default()),
        }
    }

    /// The store directory.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// The store's settings.
    pub(crate) fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The index connection, locked.
    pub(crate) fn index(&self) -> MutexGuard<'_, Index> {
        // A panic while holding the lock cannot leave the connection inconsistent (SQLite
        // transactions roll back), so a poisoned lock is still usable.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The handle's cache of chunk locations and nodes (crate::known).
    pub(crate) fn known(&self) -> MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Directory of the packs.
    pub(crate) fn pack_dir(&self) -> PathBuf {
        self.dir.join(PACK_DIR)
    }

    /// Path of pack `pack`'s file.
    pub(crate) fn pack_path(&self, pack: &str) -> PathBuf {
        self.pack_dir().join(format!("{pack}{PACK_SUFFIX}"))
    }

    /// Names of the sealed packs present in `packs/` (temporary files excluded).
    pub(crate) fn pack_files_on_disk(&self) -> Result<Vec<String>, StoreError> {
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
    pub(crate) fn pack_entries(&self, pack: &str) -> Result<Vec<PackEntry>, StoreError> {
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

    /// An open descriptor on pack `pack` (cached, at most a few hundred at a time).
    pub(crate) fn pack_file(&self, pack: &str) -> Result<Arc<File>, StoreError> {
        let mut files = self.pack_files.lock().unwrap_or_else(|p| p.into_inner());
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

    /// Drop the cached descriptor of `pack` (replaced, deleted, or gone stale on NFS).
    pub(crate) fn forget_pack_file(&self, pack: &str) {
        self.pack_files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(pack);
    }

    /// Every manifest file, oldest first, with its parsed contents or why it is unreadable.
    pub(crate) fn scan_generations(&self) -> Result<Vec<ScannedGeneration>, StoreError> {
        let ids = list_ids(&self.dir)?;
        Ok(ids
            .into_iter()
            .map(|id| {
                let p = manifest_path(&self.dir, id);
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

    /// Generations the index lists whose manifest is gone although no prune removed them
    /// (deleted or lost), oldest first, with their jobs.
    pub(crate) fn lost_generations(&self) -> Result<Vec<(GenerationId, String)>, StoreError> {
        let listed = self.index().listed_generations()?;
        if listed.is_empty() {
            return Ok(Vec::new());
        }
        let present: std::collections::HashSet<u64> =
            list_ids(&self.dir)?.into_iter().map(|g| g.0).collect();
        Ok(listed
            .into_iter()
            .filter(|(id, _)| !present.contains(id))
            .map(|(id, job)| (GenerationId(id), job))
            .collect())
    }

    /// One generation by id.
    pub(crate) fn generation(&self, id: GenerationId) -> Result<Generation, StoreError> {
        let p = manifest_path(&self.dir, id);
        if !p.exists() {
            return Err(StoreError::UnknownGeneration(id.0));
        }
        read_manifest(&p)
    }
}
