//! Sweep (garbage collection): mark every chunk the remaining generations reach, delete the
//! condemned packs whose grace period is over, condemn packs with no live chunk, and repack
//! (copy the live chunks out of, then condemn) packs whose dead share is above a threshold.
//! The protocol and why it is safe while checkpoints run: docs/gc.md.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cairn_store::{ChunkId, LiveSet, PackEntry, PackSet, Store};
use serde::Serialize;

use crate::error::GcError;

/// Default grace period between condemning a pack and deleting it; it must be longer than
/// any checkpoint (from the creation of its writer to its commit).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(2 * 3600);
/// Environment variable that sets the grace period in seconds (tests use a small value).
pub const GRACE_ENV: &str = "CAIRN_GC_GRACE";

/// Slack added to the grace period when deciding which packs' chunks all keep an alive copy
/// during a sweep (memory only; which packs are condemned does not depend on it).
const YOUNG_SLACK_MS: u64 = 60_000;

/// How to sweep.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    /// Decide and report, change nothing.
    pub dry_run: bool,
    /// Repack a pack when more than this percentage of its stored bytes is dead (0..=100;
    /// 100 never repacks, only wholly dead packs are reclaimed).
    pub max_unused_percent: f64,
    /// Time between condemning and deleting a pack; packs younger than this are not
    /// condemned either (they may belong to a checkpoint not yet committed).
    pub grace: Duration,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            dry_run: false,
            max_unused_percent: 10.0,
            grace: DEFAULT_GRACE,
        }
    }
}

impl SweepOptions {
    /// Defaults, with the grace period from `CAIRN_GC_GRACE` (seconds) when set.
    pub fn from_env() -> Result<SweepOptions, GcError> {
        let mut o = SweepOptions::default();
        if let Ok(v) = std::env::var(GRACE_ENV) {
            let s: u64 = v.trim().parse().map_err(|_| {
                GcError::InvalidOption(format!("{GRACE_ENV}={v:?} is not a number of seconds"))
            })?;
            o.grace = Duration::from_secs(s);
        }
        Ok(o)
    }
}

/// What a sweep found and did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SweepReport {
    /// True when nothing was changed on purpose.
    pub dry_run: bool,
    /// Generations whose chunks were marked.
    pub generations: u64,
    /// Live chunks (nodes and data).
    pub live_chunks: u64,
    /// Sealed packs and their bytes before.
    pub packs_before: u64,
    /// Bytes of sealed packs before.
    pub bytes_before: u64,
    /// Sealed packs after.
    pub packs_after: u64,
    /// Bytes of sealed packs after.
    pub bytes_after: u64,
    /// Packs condemned by this run because no live chunk is in them.
    pub condemned: Vec<String>,
    /// Packs whose live chunks were copied out and which were then condemned.
    pub repacked: Vec<String>,
    /// Condemned packs deleted by this run.
    pub deleted: Vec<String>,
    /// Condemned packs still inside their grace period.
    pub waiting: u64,
    /// Packs younger than the grace period, left alone.
    pub young: u64,
    /// Packs whose trailer is unreadable, left alone (see `cairn verify`).
    pub damaged: Vec<String>,
    /// Chunks copied (repack, and live chunks rescued from condemned packs).
    pub copied_chunks: u64,
    /// Their stored bytes.
    pub copied_bytes: u64,
    /// Bytes that become free once every condemned pack is deleted (dead bytes of packs
    /// condemned or to be condemned).
    pub reclaimable_bytes: u64,
    /// Leftovers of interrupted runs tidied (markers, index rows).
    pub tidied: u64,
    /// Wall time, ms.
    pub elapsed_ms: u64,
}

fn pack_bytes(store: &Store) -> Result<(u64, u64), GcError> {
    Ok(store.maintenance().pack_usage()?)
}

/// For every live chunk, the pack (slot in `set`) whose copy is the one kept: the pack the
/// index names when it is neither condemned nor damaged, otherwise any such pack holding a
/// copy. Memory: one entry per live chunk.
fn owners(
    store: &Store,
    set: &PackSet,
    live: &LiveSet,
) -> Result<HashMap<ChunkId, usize>, GcError> {
    let alive = |name: &str| set.slot(name).filter(|&i| set.packs()[i].is_alive());
    let ids: Vec<ChunkId> = live.chunks.iter().copied().collect();
    let mut out = HashMap::with_capacity(ids.len());
    for part in ids.chunks(4096) {
        let idx = store.maintenance().indexed_packs(part)?;
        for (id, p) in part.iter().zip(idx) {
            let owner = p
                .as_deref()
                .and_then(alive)
                .or_else(|| set.alive_copy(id).and_then(alive));
            if let Some(o) = owner {
                out.insert(*id, o);
            }
        }
    }
    Ok(out)
}

/// Run one sweep. Safe while checkpoints are written and while other sweeps or prunes run;
/// killed at any point, it leaves every generation restorable and the next run finishes.
pub fn sweep(store: &Store, opts: &SweepOptions) -> Result<SweepReport, GcError> {
    let t = Instant::now();
    if !(0.0..=100.0).contains(&opts.max_unused_percent) {
        return Err(GcError::InvalidOption(format!(
            "--max-unused {} is not a percentage between 0 and 100",
            opts.max_unused_percent
        )));
    }
    let grace_ms = opts.grace.as_millis().min(u128::from(u64::MAX)) as u64;
    let mut r = SweepReport {
        dry_run: opts.dry_run,
        ..SweepReport::default()
    };
    (r.packs_before, r.bytes_before) = pack_bytes(store)?;
    if !opts.dry_run {
        r.tidied = store.maintenance().tidy_after_gc()?;
    }
    // With no grace period (tests, or a store nobody writes to), what this run condemns
    // is deleted by a second pass after a fresh mark.
    let passes = if grace_ms == 0 && !opts.dry_run { 2 } else { 1 };
    for pass in 0..passes {
        let live = store.maintenance().mark_live()?;
        // Chunks of packs sealed within the grace period (plus a slack for coarse file times
        // and clock differences with the file server) keep an alive copy in memory: they are
        // the only copies a generation committed after the mark may need (docs/gc.md).
        // With no grace period nobody may be writing: no slack either.
        let slack = if grace_ms == 0 { 0 } else { YOUNG_SLACK_MS };
        let young_after = live
            .started_ms
            .saturating_sub(grace_ms)
            .saturating_sub(slack);
        let mut set = store.maintenance().scan_packs(&live, young_after)?;
        r.generations = live.generations;
        r.live_chunks = live.chunks.len() as u64;
        delete_phase(store, opts, grace_ms, &live, &mut set, &mut r)?;
        if pass == 0 {
            condemn_phase(store, opts, grace_ms, &live, &mut set, &mut r)?;
        }
    }
    (r.packs_after, r.bytes_after) = pack_bytes(store)?;
    r.elapsed_ms = t.elapsed().as_millis() as u64;
    Ok(r)
}

/// Delete the condemned packs whose grace period ended before this mark started.
fn delete_phase(
    store: &Store,
    opts: &SweepOptions,
    grace_ms: u64,
    live: &LiveSet,
    set: &mut PackSet,
    r: &mut SweepReport,
) -> Result<(), GcError> {
    let due: Vec<(String, u64)> = set
        .packs()
        .iter()
        .filter_map(|p| {
            let c = p.condemned.as_ref()?;
            if p.damaged.is_some() {
                return None;
            }
            if c.condemned_ms.saturating_add(grace_ms) <= live.started_ms {
                Some((p.name.clone(), p.size))
            } else {
                None
            }
        })
        .collect();
    r.waiting = set
        .packs()
        .iter()
        .filter(|p| p.condemned.is_some() && p.damaged.is_none())
        .count() as u64
        - due.len() as u64;
    let names: Vec<String> = due.iter().map(|(n, _)| n.clone()).collect();
    if opts.dry_run {
        r.reclaimable_bytes += due.iter().map(|(_, s)| s).sum::<u64>();
    } else if !names.is_empty() {
        let (_, copied) = store
            .maintenance()
            .delete_condemned_packs(set, &names, live)?;
        r.copied_chunks += copied.chunks;
        r.copied_bytes += copied.bytes;
    }
    r.deleted.extend(names);
    Ok(())
}

/// Condemn packs with no live chunk; repack those whose dead share is above the threshold.
fn condemn_phase(
    store: &Store,
    opts: &SweepOptions,
    grace_ms: u64,
    live: &LiveSet,
    set: &mut PackSet,
    r: &mut SweepReport,
) -> Result<(), GcError> {
    let own = owners(store, set, live)?;
    let mut to_condemn: Vec<String> = Vec::new();
    let mut to_repack: Vec<(String, Vec<PackEntry>)> = Vec::new();
    for (i, p) in set.packs().iter().enumerate() {
        if let Some(d) = &p.damaged {
            r.damaged.push(format!("{}: {d}", p.name));
            continue;
        }
        if p.condemned.is_some() {
            continue;
        }
        if p.mtime_ms.saturating_add(grace_ms) > live.started_ms {
            r.young += 1;
            continue;
        }
        let total = p.stored_bytes;
        let mine: Vec<PackEntry> = p
            .live
            .iter()
            .filter(|e| own.get(&e.id) == Some(&i))
            .cloned()
            .collect();
        let live_bytes: u64 = mine.iter().map(|e| u64::from(e.stored_len)).sum();
        if mine.is_empty() {
            r.reclaimable_bytes += p.size;
            to_condemn.push(p.name.clone());
        } else {
            let dead = total - live_bytes;
            if total > 0 && dead as f64 * 100.0 / total as f64 > opts.max_unused_percent {
                r.reclaimable_bytes += dead;
                to_repack.push((p.name.clone(), mine));
            }
        }
    }
    if opts.dry_run {
        r.condemned = to_condemn;
        r.repacked = to_repack.into_iter().map(|(n, _)| n).collect();
        return Ok(());
    }
    r.condemned = store.maintenance().condemn_packs(&to_condemn)?;
    if !to_repack.is_empty() {
        let pairs: Vec<(String, PackEntry)> = to_repack
            .iter()
            .flat_map(|(n, es)| es.iter().map(move |e| (n.clone(), e.clone())))
            .collect();
        let copied = store.maintenance().copy_chunks(set, &pairs)?;
        r.copied_chunks += copied.chunks;
        r.copied_bytes += copied.bytes;
        let names: Vec<String> = to_repack.into_iter().map(|(n, _)| n).collect();
        r.repacked = store.maintenance().condemn_packs(&names)?;
    }
    Ok(())
}
