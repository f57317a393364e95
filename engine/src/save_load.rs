//! The "files" generation kind (`cairn save` and `cairn load`): application checkpoint
//! files in and out of the store.
//!
//! A save generation's root tree holds one entry per saved path (named by its last
//! component) plus `meta.json`, which lists every saved entry with its type, mode, mtime and
//! (for symlinks) target, in pre-order so a directory precedes its contents.

use std::fs::{File, FileTimes};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use cairn_store::{
    Generation, GenerationId, GenerationInfo, Skipped, Store, StoreError, StreamRef, WriteStats,
    Writer,
};
use serde::{Deserialize, Serialize};

/// The `kind` of a save generation, in its `meta.json` and its manifest.
pub const FILES_KIND: &str = "files";

/// Version of a save generation's `meta.json`.
pub const FILES_FORMAT: u32 = 1;

/// What can go wrong saving or loading files.
#[derive(Debug, thiserror::Error)]
pub enum SaveLoadError {
    /// Bad input from the user (an unusable path, a generation of another kind): exit code 2.
    #[error("{0}")]
    Usage(String),
    /// A file system operation failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The store failed while doing `context`.
    #[error("{context}")]
    Store {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: StoreError,
    },
    /// The store failed.
    #[error(transparent)]
    Plain(#[from] StoreError),
    /// Anything else (a generation whose meta.json lists an unsafe path, ...).
    #[error("{0}")]
    Other(String),
}

fn usage(msg: impl Into<String>) -> SaveLoadError {
    SaveLoadError::Usage(msg.into())
}

/// Attaches what was being done to an I/O or store error.
trait Context<T> {
    fn context(self, f: impl FnOnce() -> String) -> Result<T, SaveLoadError>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn context(self, f: impl FnOnce() -> String) -> Result<T, SaveLoadError> {
        self.map_err(|source| SaveLoadError::Io {
            context: f(),
            source,
        })
    }
}

impl<T> Context<T> for Result<T, StoreError> {
    fn context(self, f: impl FnOnce() -> String) -> Result<T, SaveLoadError> {
        self.map_err(|source| SaveLoadError::Store {
            context: f(),
            source,
        })
    }
}

/// Type of a saved entry.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum EntryType {
    File,
    Dir,
    Symlink,
}

/// One saved entry in meta.json.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct MetaEntry {
    path: String,
    #[serde(rename = "type")]
    kind: EntryType,
    mode: u32,
    mtime_sec: i64,
    mtime_nsec: u32,
    #[serde(default)]
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
}

/// meta.json of a save generation.
#[derive(Serialize, Deserialize, Debug)]
struct SaveMeta {
    format: u32,
    kind: String,
    job: String,
    cairn_version: String,
    sources: Vec<String>,
    entries: Vec<MetaEntry>,
}

const META: &str = "meta.json";

fn save_entry(
    w: &mut Writer,
    fs_path: &Path,
    rel: &str,
    entries: &mut Vec<MetaEntry>,
) -> Result<StreamRef, SaveLoadError> {
    let md =
        std::fs::symlink_metadata(fs_path).context(|| format!("reading {}", fs_path.display()))?;
    let ft = md.file_type();
    let mut e = MetaEntry {
        path: rel.to_string(),
        kind: EntryType::File,
        mode: md.mode() & 0o7777,
        mtime_sec: md.mtime(),
        mtime_nsec: md.mtime_nsec() as u32,
        size: 0,
        target: None,
    };
    if ft.is_dir() {
        e.kind = EntryType::Dir;
        entries.push(e);
        let mut names = Vec::new();
        for d in std::fs::read_dir(fs_path).context(|| format!("listing {}", fs_path.display()))? {
            let d = d.context(|| format!("listing {}", fs_path.display()))?;
            let name = d.file_name().into_string().map_err(|n| {
                usage(format!(
                    "{}: file name {n:?} is not UTF-8",
                    fs_path.display()
                ))
            })?;
            names.push(name);
        }
        names.sort();
        let mut children = Vec::with_capacity(names.len());
        for n in names {
            let r = save_entry(w, &fs_path.join(&n), &format!("{rel}/{n}"), entries)?;
            children.push((n, r));
        }
        Ok(w.put_tree(children)?)
    } else if ft.is_symlink() {
        let t = std::fs::read_link(fs_path)
            .context(|| format!("reading link {}", fs_path.display()))?;
        let t = t
            .into_os_string()
            .into_string()
            .map_err(|_| usage(format!("{}: link target is not UTF-8", fs_path.display())))?;
        let r = w.put_blob(t.as_bytes())?;
        e.kind = EntryType::Symlink;
        e.target = Some(t);
        entries.push(e);
        Ok(r)
    } else if ft.is_file() {
        let mut f = File::open(fs_path).context(|| format!("opening {}", fs_path.display()))?;
        let r = w
            .put_bytes(&mut f)
            .context(|| format!("saving {}", fs_path.display()))?;
        e.size = r.len;
        entries.push(e);
        Ok(r)
    } else {
        Err(usage(format!(
            "{}: cannot save: not a regular file, directory or symlink",
            fs_path.display()
        )))
    }
}

/// A committed save generation.
#[derive(Debug, Clone)]
pub struct Saved {
    /// The new generation.
    pub generation: GenerationId,
    /// How many entries (files, directories, symlinks) it holds.
    pub entries: usize,
    /// What writing it cost.
    pub stats: WriteStats,
}

/// Saves `paths` (files, directories, symlinks) as a new generation of `job`: one entry per
/// path, named by its last component.
pub fn save(store: &Store, job: &str, paths: &[PathBuf]) -> Result<Saved, SaveLoadError> {
    let start = cairn_store::now_ms();
    let mut roots: Vec<(String, PathBuf)> = Vec::new();
    for p in paths {
        let abs = std::fs::canonicalize(p).map_err(|e| usage(format!("{}: {e}", p.display())))?;
        // Keep a symlink given on the command line as a symlink: resolve only its parent.
        let src = match (p.file_name(), abs.parent()) {
            (Some(n), _) if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_symlink()) => {
                let parent = p
                    .parent()
                    .filter(|x| !x.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                std::fs::canonicalize(parent)
                    .map_err(|e| usage(format!("{}: {e}", p.display())))?
                    .join(n)
            }
            _ => abs.clone(),
        };
        let name = src
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                usage(format!(
                    "{}: cannot save a path without a UTF-8 name",
                    p.display()
                ))
            })?
            .to_string();
        if name == META {
            return Err(usage(format!(
                "{}: the name {META} is reserved",
                p.display()
            )));
        }
        if roots.iter().any(|(n, _)| *n == name) {
            return Err(usage(format!(
                "two paths are named {name:?}; save them separately"
            )));
        }
        roots.push((name, src));
    }
    let mut w = store.writer()?;
    let mut entries = Vec::new();
    let mut tree = Vec::new();
    for (name, src) in &roots {
        let r = save_entry(&mut w, src, name, &mut entries)?;
        tree.push((name.clone(), r));
    }
    let meta = SaveMeta {
        format: FILES_FORMAT,
        kind: FILES_KIND.into(),
        job: job.to_string(),
        cairn_version: env!("CARGO_PKG_VERSION").into(),
        sources: roots.iter().map(|(_, s)| s.display().to_string()).collect(),
        entries,
    };
    let meta_json = serde_json::to_vec(&meta).map_err(|e| SaveLoadError::Other(e.to_string()))?;
    let meta_ref = w.put_blob(&meta_json)?;
    tree.push((META.to_string(), meta_ref));
    let root = w.put_tree(tree)?;
    let stats = w.finish()?;
    let info = GenerationInfo {
        kind: FILES_KIND.into(),
        start_ms: start,
        end_ms: cairn_store::now_ms(),
        stats: stats.clone(),
        ..Default::default()
    };
    let generation = store.commit(job, &root, info)?;
    Ok(Saved {
        generation,
        entries: meta.entries.len(),
        stats,
    })
}

/// A relative path from meta.json, checked to stay inside the destination.
fn safe_rel(p: &str) -> Result<PathBuf, SaveLoadError> {
    let pb = PathBuf::from(p);
    if p.is_empty() || !pb.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(SaveLoadError::Other(format!(
            "meta.json lists an unsafe path {p:?}"
        )));
    }
    Ok(pb)
}

fn mtime_of(e: &MetaEntry) -> std::time::SystemTime {
    let nanos = Duration::from_nanos(u64::from(e.mtime_nsec));
    if e.mtime_sec >= 0 {
        UNIX_EPOCH + Duration::from_secs(e.mtime_sec as u64) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(e.mtime_sec.unsigned_abs()) + nanos
    }
}

fn set_mode_and_time(path: &Path, e: &MetaEntry) -> Result<(), SaveLoadError> {
    let f = File::open(path).context(|| format!("opening {}", path.display()))?;
    f.set_times(
        FileTimes::new()
            .set_modified(mtime_of(e))
            .set_accessed(mtime_of(e)),
    )
    .context(|| format!("setting times of {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(e.mode))
        .context(|| format!("setting mode of {}", path.display()))
}

/// The generation `load` reads: `wanted`, which must belong to `job`, or the newest
/// consistent one of `job` (every data chunk verified), with the newer ones passed over.
pub fn choose(
    store: &Store,
    job: &str,
    wanted: Option<u64>,
) -> Result<(Generation, Vec<Skipped>), SaveLoadError> {
    match wanted {
        Some(n) => {
            let g = store.generation(GenerationId(n))?;
            if g.job != job {
                return Err(usage(format!(
                    "generation {n} belongs to job {:?}, not {job:?}",
                    g.job
                )));
            }
            Ok((g, Vec::new()))
        }
        None => Ok(store.latest_consistent(job)?),
    }
}

/// Writes the files of save generation `gen` into `to` (created if missing; files in it are
/// replaced), byte-identical with modes and mtimes; returns how many entries were written.
pub fn load(store: &Store, gen: &Generation, to: &Path) -> Result<usize, SaveLoadError> {
    let r = store.reader(gen.id)?;
    let meta: SaveMeta = serde_json::from_slice(&r.read_all(&r.lookup(META)?)?).map_err(|e| {
        usage(format!(
            "generation {} is not a `cairn save` generation: {e}",
            gen.id
        ))
    })?;
    std::fs::create_dir_all(to).context(|| format!("creating {}", to.display()))?;
    let mut dirs = Vec::new();
    for e in &meta.entries {
        let dest = to.join(safe_rel(&e.path)?);
        match e.kind {
            EntryType::Dir => {
                std::fs::create_dir_all(&dest)
                    .context(|| format!("creating {}", dest.display()))?;
                dirs.push((dest, e));
            }
            EntryType::Symlink => {
                if std::fs::symlink_metadata(&dest).is_ok() {
                    std::fs::remove_file(&dest)
                        .context(|| format!("replacing {}", dest.display()))?;
                }
                let t = e.target.as_deref().unwrap_or_default();
                std::os::unix::fs::symlink(t, &dest)
                    .context(|| format!("creating symlink {}", dest.display()))?;
            }
            EntryType::File => {
                let s = r.lookup(&e.path)?;
                if std::fs::symlink_metadata(&dest).is_ok_and(|m| m.is_symlink()) {
                    std::fs::remove_file(&dest)
                        .context(|| format!("replacing {}", dest.display()))?;
                }
                let f = File::create(&dest).context(|| format!("creating {}", dest.display()))?;
                f.set_len(s.len)
                    .context(|| format!("writing {}", dest.display()))?;
                r.for_each_chunk(&s, &|off, data| match data {
                    Some(d) => f.write_all_at(d, off),
                    None => Ok(()),
                })
                .context(|| format!("writing {}", dest.display()))?;
                f.sync_all()
                    .context(|| format!("fsync {}", dest.display()))?;
                drop(f);
                set_mode_and_time(&dest, e)?;
            }
        }
    }
    // Directories last, deepest first: creating their contents changed their mtimes.
    for (d, e) in dirs.iter().rev() {
        set_mode_and_time(d, e)?;
    }
    Ok(meta.entries.len())
}
