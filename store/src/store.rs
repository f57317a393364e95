//! The [`Store`] handle: init/open, commit, generation listing, reindex and clean-up; the
//! entry to writers, readers, checks and maintenance.

use std::path::Path;
use std::sync::Arc;

use crate::check::{CheckLevel, Reach};
use crate::config::{InitOptions, StoreConfig, CONFIG_FILE};
use crate::dir::{StoreDir, PACK_DIR};
use crate::error::{IoContext, StoreError};
use crate::fsutil::{
    create_private_dir, fault_point, fsync_dir, now_ms, unique_writer_name, write_new_durable,
    DIR_MODE,
};
use crate::generation::{
    check_job_name, encode_manifest, list_ids, manifest_path, read_manifest, Generation,
    GenerationId, GenerationInfo, ScannedGeneration, Skipped, GEN_DIR,
};
use crate::id::ChunkId;
use crate::index::{Index, IndexTotals, INDEX_FILE};
use crate::maintenance::Maintenance;
use crate::node::{StreamKind, StreamRef};
use crate::pack::{read_trailer, PackEntry, PACK_SUFFIX, TMP_PREFIX};
use crate::read::GenerationReader;
use crate::verify::VerifyReport;
use crate::write::Writer;

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

/// A handle on a store directory; `Send + Sync`, cheap to clone. Writing, reading, checking
/// and maintenance each live in their own module; the handle opens them.
#[derive(Clone)]
pub struct Store {
    pub(crate) dir: Arc<StoreDir>,
    /// Why the index had to be rebuilt when this handle opened the store, if it had to.
    index_rebuilt: Option<Arc<str>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.dir.path().display())
    }
}

impl Store {
    /// Create a new store in `path`, which must not exist or be an empty directory. The store
    /// is built beside its final place and moved there with one rename, so it appears whole
    /// or not at all; when another process creates it first, this fails with
    /// [`StoreError::AlreadyExists`] and leaves nothing behind. Its directories are private to
    /// the owner (0700) and so are its files (0600), whatever the umask.
    pub fn init(path: &Path, opts: InitOptions) -> Result<Store, StoreError> {
        let config = StoreConfig::new(&opts)?;
        if !dir_is_empty_or_missing(path)? {
            return Err(StoreError::AlreadyExists(path.to_path_buf()));
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(parent).ctx(|| format!("creating {}", parent.display()))?;
        let name = path
            .file_name()
            .map_or_else(|| "store".into(), |n| n.to_string_lossy().into_owned());
        let staging = parent.join(format!(".{name}{TMP_PREFIX}init-{}", unique_writer_name()));
        let built = build_store(&staging, &config).and_then(|()| {
            std::fs::rename(&staging, path)
                .ctx(|| format!("moving the new store to {}", path.display()))
        });
        match built {
            Ok(()) => {
                fsync_dir(parent)?;
                Store::open(path)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                match &e {
                    StoreError::Io { source, .. }
                        if matches!(
                            source.raw_os_error(),
                            Some(libc::ENOTEMPTY) | Some(libc::EEXIST)
                        ) =>
                    {
                        Err(StoreError::AlreadyExists(path.to_path_buf()))
                    }
                    // An empty directory that cannot be replaced (a mount point, a directory
                    // in a parent this user cannot write): build the store in it, config.json
                    // last, so a half-made directory is still not a store.
                    StoreError::Io { source, .. }
                        if matches!(
                            source.raw_os_error(),
                            Some(libc::EXDEV)
                                | Some(libc::EBUSY)
                                | Some(libc::EACCES)
                                | Some(libc::EPERM)
                        ) && path.is_dir() =>
                    {
                        build_store(path, &config)?;
                        Store::open(path)
                    }
                    _ => Err(e),
                }
            }
        }
    }

    /// Open the store at `path`, creating it first when the directory does not exist yet or
    /// is empty. Any number of processes may do this at once (a job array's first minute):
    /// one creates the store, every other one opens it.
    pub fn open_or_init(path: &Path, opts: InitOptions) -> Result<Store, StoreError> {
        loop {
            match Store::open(path) {
                Err(StoreError::NotAStore(_) | StoreError::NoSuchStore(_))
                    if dir_is_empty_or_missing(path)? =>
                {
                    match Store::init(path, opts.clone()) {
                        Err(StoreError::AlreadyExists(_)) => continue,
                        other => return other,
                    }
                }
                other => return other,
            }
        }
    }

    /// Open an existing store. The index is a cache: when it is missing, unreadable or not
    /// this store's, it is rebuilt from the packs and manifests first
    /// ([`Store::index_rebuilt`] says why), so no verb fails for want of it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let config = StoreConfig::load(path)?;
        let (index, index_rebuilt) = match Index::open(path, &config.store_id) {
            Ok(index) => (index, None),
            Err(StoreError::Index(why)) => {
                let report = Store::reindex(path)?;
                let why = format!(
                    "the index (cairn.db) could not be used ({why}); rebuilt it from {} \
                     pack(s) and {} generation(s)",
                    report.packs, report.generations
                );
                (Index::open(path, &config.store_id)?, Some(why.into()))
            }
            Err(e) => return Err(e),
        };
        Ok(Store {
            dir: Arc::new(StoreDir::new(path, config, index)),
            index_rebuilt,
        })
    }

    /// When opening the store had to rebuild its index: why, and from what (for a warning).
    pub fn index_rebuilt(&self) -> Option<&str> {
        self.index_rebuilt.as_deref()
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The store's settings.
    pub fn config(&self) -> &StoreConfig {
        self.dir.config()
    }

    /// A writer session: chunks go into this writer's own uniquely named packs.
    pub fn writer(&self) -> Result<Writer, StoreError> {
        Ok(Writer::new(self.dir.clone(), unique_writer_name()))
    }

    /// A reader for generation `id`.
    pub fn reader(&self, id: GenerationId) -> Result<GenerationReader, StoreError> {
        let g = self.generation(id)?;
        Ok(GenerationReader::new(self.dir.clone(), g))
    }

    /// The gc primitives of this store (condemn, mark, scan, copy, delete; docs/gc.md).
    pub fn maintenance(&self) -> Maintenance {
        Maintenance::new(self.dir.clone())
    }

    /// Read one chunk and verify its hash. The zero id must not be passed.
    pub fn read_chunk(&self, id: &ChunkId) -> Result<Vec<u8>, StoreError> {
        self.dir.read_chunk(id)
    }

    /// Names of the sealed packs present in `packs/` (temporary files excluded).
    pub fn pack_files_on_disk(&self) -> Result<Vec<String>, StoreError> {
        self.dir.pack_files_on_disk()
    }

    /// The chunks a sealed pack holds, read from its trailer (for gc and tools).
    pub fn pack_entries(&self, pack: &str) -> Result<Vec<PackEntry>, StoreError> {
        self.dir.pack_entries(pack)
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
        let gdir = self.dir.path().join(GEN_DIR);
        let tmp = gdir.join(format!("{TMP_PREFIX}{writer_name}.gen"));
        let mut next = list_ids(self.dir.path())?
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
            let fin = manifest_path(self.dir.path(), gen.id);
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
        if let Err(e) = self.dir.index().add_generation(&gen) {
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
        self.dir.scan_generations()
    }

    /// Generations the index lists whose manifest is gone (deleted or lost, not pruned),
    /// oldest first, with their jobs: restart and verify report them.
    pub fn lost_generations(&self) -> Result<Vec<(GenerationId, String)>, StoreError> {
        self.dir.lost_generations()
    }

    /// One generation by id.
    pub fn generation(&self, id: GenerationId) -> Result<Generation, StoreError> {
        self.dir.generation(id)
    }

    /// Totals from the index, for `cairn store stats`.
    pub fn totals(&self) -> Result<IndexTotals, StoreError> {
        self.dir.index().totals()
    }

    /// Walk everything `root` reaches. Nodes are read and verified; problems are collected,
    /// not returned as errors, so one damaged subtree does not hide the others.
    pub fn reach(&self, root: &StreamRef) -> Reach {
        self.dir.reach(root)
    }

    /// Problems with what `root` reaches, at the structure level: unreadable nodes, data
    /// chunks that are not indexed, whose pack is missing, or that lie beyond its end.
    ///
    /// Nodes and locations this handle has cached (crate::known) are used as hints: a chunk
    /// whose cached location lies inside a pack file that is present and long enough is
    /// present (packs are never modified and their names never reused); every other chunk is
    /// looked up in the index as before.
    pub fn check_structure(&self, root: &StreamRef) -> Result<Vec<String>, StoreError> {
        self.dir.check_structure(root)
    }

    /// Check one generation; `Err` carries the first problem found (and how many there were).
    pub fn check_generation(&self, g: &Generation, level: CheckLevel) -> Result<(), String> {
        self.dir.check_generation(g, level)
    }

    /// Newest generation of `job` whose chunks are all present and sound (every data chunk
    /// read and verified), plus the reasons newer generations were passed over.
    pub fn latest_consistent(&self, job: &str) -> Result<(Generation, Vec<Skipped>), StoreError> {
        self.dir.latest_consistent(job)
    }

    /// [`Store::latest_consistent`] with a chosen check level.
    pub fn latest_consistent_at(
        &self,
        job: &str,
        level: CheckLevel,
    ) -> Result<(Generation, Vec<Skipped>), StoreError> {
        self.dir.latest_consistent_at(job, level)
    }

    /// Check the store. Structure level: pack trailers, index vs packs, every generation's
    /// nodes (read and verified) and the presence of every data chunk. With `read_data`,
    /// also every chunk's bytes.
    pub fn verify(&self, read_data: bool) -> Result<VerifyReport, StoreError> {
        self.dir.verify(read_data)
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
            let d = self.dir.path().join(sub);
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
}

/// True when `path` does not exist or is an empty directory.
fn dir_is_empty_or_missing(path: &Path) -> Result<bool, StoreError> {
    match std::fs::read_dir(path) {
        Ok(mut rd) => Ok(rd.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Ok(false),
        Err(e) => Err(e).ctx(|| format!("reading {}", path.display())),
    }
}

/// Lay out a new store in `dir` (created here, or empty): its folders, the index, then
/// `config.json`, which appears last and atomically.
fn build_store(dir: &Path, config: &StoreConfig) -> Result<(), StoreError> {
    match create_private_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
                .ctx(|| format!("making {} private", dir.display()))?;
        }
        Err(e) => return Err(e).ctx(|| format!("creating {}", dir.display())),
    }
    for d in [PACK_DIR, GEN_DIR] {
        let p = dir.join(d);
        create_private_dir(&p).ctx(|| format!("creating {}", p.display()))?;
    }
    drop(Index::create(dir, &config.store_id)?);
    let text = serde_json::to_string_pretty(config)
        .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
    let tmp = dir.join(format!("{TMP_PREFIX}{CONFIG_FILE}"));
    write_new_durable(&tmp, format!("{text}\n").as_bytes())?;
    let fin = dir.join(CONFIG_FILE);
    std::fs::rename(&tmp, &fin).ctx(|| format!("renaming to {}", fin.display()))?;
    fsync_dir(dir)
}
