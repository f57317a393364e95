//! `cairn save` and `cairn load`: application checkpoint files in and out of the store.
//!
//! A save generation's root tree holds one entry per saved path (named by its last
//! component) plus `meta.json`, which lists every saved entry with its type, mode, mtime and
//! (for symlinks) target, in pre-order so a directory precedes its contents.

use std::fs::{File, FileTimes};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{bail, Context};
use cairn_store::{GenerationId, GenerationInfo, StreamRef, Writer};
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::cli::common::{human_bytes, print_json, StoreOpt};
use crate::exit::usage;

/// `cairn save`.
#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Job name the generation belongs to.
    #[arg(long)]
    pub job: String,
    /// Files and directories to save.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opt: StoreOpt,
}

/// `cairn load`.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Job name.
    #[arg(long)]
    pub job: String,
    /// Generation id (default: the newest consistent generation of the job).
    #[arg(long)]
    pub generation: Option<u64>,
    /// Directory to write the files into (created if missing; files in it are replaced).
    #[arg(long)]
    pub to: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opt: StoreOpt,
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
) -> anyhow::Result<StreamRef> {
    let md = std::fs::symlink_metadata(fs_path)
        .with_context(|| format!("reading {}", fs_path.display()))?;
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
        for d in
            std::fs::read_dir(fs_path).with_context(|| format!("listing {}", fs_path.display()))?
        {
            let d = d.with_context(|| format!("listing {}", fs_path.display()))?;
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
            .with_context(|| format!("reading link {}", fs_path.display()))?;
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
        let mut f =
            File::open(fs_path).with_context(|| format!("opening {}", fs_path.display()))?;
        let r = w
            .put_bytes(&mut f)
            .with_context(|| format!("saving {}", fs_path.display()))?;
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

/// Run `cairn save`.
pub fn save(a: SaveArgs) -> anyhow::Result<i32> {
    let store = a.opt.open()?;
    let start = cairn_store::now_ms();
    let mut roots: Vec<(String, PathBuf)> = Vec::new();
    for p in &a.paths {
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
        format: 1,
        kind: "files".into(),
        job: a.job.clone(),
        cairn_version: env!("CARGO_PKG_VERSION").into(),
        sources: roots.iter().map(|(_, s)| s.display().to_string()).collect(),
        entries,
    };
    let meta_ref = w.put_blob(&serde_json::to_vec(&meta)?)?;
    tree.push((META.to_string(), meta_ref));
    let root = w.put_tree(tree)?;
    let stats = w.finish()?;
    let info = GenerationInfo {
        kind: "files".into(),
        start_ms: start,
        end_ms: cairn_store::now_ms(),
        stats: stats.clone(),
        ..Default::default()
    };
    let id = store.commit(&a.job, &root, info)?;
    if a.opt.json {
        print_json(&serde_json::json!({
            "generation": id.0,
            "job": a.job,
            "entries": meta.entries.len(),
            "stats": stats,
        }))?;
    } else {
        println!(
            "saved generation {id} of job {}: {} entries, {} logical, {} new",
            a.job,
            meta.entries.len(),
            human_bytes(stats.logical_bytes),
            human_bytes(stats.new_stored_bytes)
        );
    }
    Ok(0)
}

/// A relative path from meta.json, checked to stay inside the destination.
fn safe_rel(p: &str) -> anyhow::Result<PathBuf> {
    let pb = PathBuf::from(p);
    if p.is_empty() || !pb.components().all(|c| matches!(c, Component::Normal(_))) {
        bail!("meta.json lists an unsafe path {p:?}");
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

fn set_mode_and_time(path: &Path, e: &MetaEntry) -> anyhow::Result<()> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    f.set_times(
        FileTimes::new()
            .set_modified(mtime_of(e))
            .set_accessed(mtime_of(e)),
    )
    .with_context(|| format!("setting times of {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(e.mode))
        .with_context(|| format!("setting mode of {}", path.display()))
}

/// Run `cairn load`.
pub fn load(a: LoadArgs) -> anyhow::Result<i32> {
    let store = a.opt.open()?;
    let gen = match a.generation {
        Some(n) => {
            let g = store.generation(GenerationId(n))?;
            if g.job != a.job {
                return Err(usage(format!(
                    "generation {n} belongs to job {:?}, not {:?}",
                    g.job, a.job
                )));
            }
            g
        }
        None => {
            let (g, skipped) = store.latest_consistent(&a.job)?;
            for s in skipped {
                eprintln!("cairn: warning: skipped generation {}: {}", s.id, s.reason);
            }
            g
        }
    };
    let r = store.reader(gen.id)?;
    let meta: SaveMeta = serde_json::from_slice(&r.read_all(&r.lookup(META)?)?).map_err(|e| {
        usage(format!(
            "generation {} is not a `cairn save` generation: {e}",
            gen.id
        ))
    })?;
    std::fs::create_dir_all(&a.to).with_context(|| format!("creating {}", a.to.display()))?;
    let mut dirs = Vec::new();
    for e in &meta.entries {
        let dest = a.to.join(safe_rel(&e.path)?);
        match e.kind {
            EntryType::Dir => {
                std::fs::create_dir_all(&dest)
                    .with_context(|| format!("creating {}", dest.display()))?;
                dirs.push((dest, e));
            }
            EntryType::Symlink => {
                if std::fs::symlink_metadata(&dest).is_ok() {
                    std::fs::remove_file(&dest)
                        .with_context(|| format!("replacing {}", dest.display()))?;
                }
                let t = e.target.as_deref().unwrap_or_default();
                std::os::unix::fs::symlink(t, &dest)
                    .with_context(|| format!("creating symlink {}", dest.display()))?;
            }
            EntryType::File => {
                let s = r.lookup(&e.path)?;
                if std::fs::symlink_metadata(&dest).is_ok_and(|m| m.is_symlink()) {
                    std::fs::remove_file(&dest)
                        .with_context(|| format!("replacing {}", dest.display()))?;
                }
                let f =
                    File::create(&dest).with_context(|| format!("creating {}", dest.display()))?;
                f.set_len(s.len)
                    .with_context(|| format!("writing {}", dest.display()))?;
                r.for_each_chunk(&s, &|off, data| match data {
                    Some(d) => f.write_all_at(d, off),
                    None => Ok(()),
                })
                .with_context(|| format!("writing {}", dest.display()))?;
                f.sync_all()
                    .with_context(|| format!("fsync {}", dest.display()))?;
                drop(f);
                set_mode_and_time(&dest, e)?;
            }
        }
    }
    // Directories last, deepest first: creating their contents changed their mtimes.
    for (d, e) in dirs.iter().rev() {
        set_mode_and_time(d, e)?;
    }
    if a.opt.json {
        print_json(&serde_json::json!({
            "generation": gen.id.0,
            "job": gen.job,
            "to": a.to,
            "entries": meta.entries.len(),
        }))?;
    } else {
        println!(
            "loaded generation {} of job {} into {}: {} entries",
            gen.id,
            gen.job,
            a.to.display(),
            meta.entries.len()
        );
    }
    Ok(0)
}
