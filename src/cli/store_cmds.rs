//! `cairn store init|stats|reindex|clean`, `cairn generations`, `cairn verify`.

use std::path::PathBuf;

use anyhow::Context;
use cairn_store::{InitOptions, Store};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::cli::common::{format_time_ms, human_bytes, print_json, StoreOpt};
use crate::exit::usage;

/// Store maintenance verbs.
#[derive(Subcommand, Debug)]
pub enum StoreCmd {
    /// Create a new, empty store in DIR.
    Init(InitArgs),
    /// Logical and stored size, dedup and compression ratios, packs, chunks.
    Stats(StoreOpt),
    /// Rebuild the index cairn.db from the packs and generation manifests.
    Reindex(StoreOpt),
    /// Remove temporary files left by killed writers.
    Clean(CleanArgs),
}

/// `cairn store init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// Directory to create (or an empty one); defaults to --store / CAIRN_STORE.
    pub dir: Option<PathBuf>,
    /// Fixed chunk size of memory streams in KiB (multiple of 4).
    #[arg(long, default_value_t = InitOptions::default().memory_chunk_size / 1024)]
    pub memory_chunk_kib: u32,
    /// Children per interior node of a memory stream's Merkle tree (2-65536); smaller means
    /// less node data rewritten per changed run (docs/store-decisions.md).
    #[arg(long, default_value_t = InitOptions::default().memory_fanout)]
    pub memory_fanout: u32,
    /// zstd level for new chunks.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub zstd_level: i32,
    /// Codec for new chunks: zstd (smallest; the default) or lz4 (~25 % larger on
    /// python-like memory, 2.7x faster to decompress; makes a format-2 store).
    #[arg(long, default_value = "zstd")]
    pub compression: String,
    /// Target pack size in MiB.
    #[arg(long, default_value_t = 32)]
    pub pack_mib: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opt: StoreOpt,
}

/// `cairn store clean`.
#[derive(Args, Debug)]
pub struct CleanArgs {
    /// Only remove leftovers older than this many minutes (writers may still be running).
    #[arg(long, default_value_t = 60)]
    pub older_than_minutes: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opt: StoreOpt,
}

/// `cairn generations`.
#[derive(Args, Debug)]
pub struct GenerationsArgs {
    /// Only this job.
    #[arg(long)]
    pub job: Option<String>,
    /// Retention rules: show what `cairn prune` with them would keep (and why) or drop.
    #[command(flatten)]
    pub policy: crate::cli::gc_cmds::PolicyArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opt: StoreOpt,
}

/// `cairn verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Read and hash every chunk, not only the structure.
    #[arg(long)]
    pub read_data: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opt: StoreOpt,
}

/// Run a `cairn store` subcommand.
pub fn store(cmd: StoreCmd) -> anyhow::Result<i32> {
    match cmd {
        StoreCmd::Init(a) => init(a),
        StoreCmd::Stats(o) => stats(o),
        StoreCmd::Reindex(o) => reindex(o),
        StoreCmd::Clean(a) => clean(a),
    }
}

fn init(a: InitArgs) -> anyhow::Result<i32> {
    let dir = match a.dir {
        Some(d) => d,
        None => a.opt.dir()?,
    };
    let opts = InitOptions {
        memory_chunk_size: a
            .memory_chunk_kib
            .checked_mul(1024)
            .ok_or_else(|| usage("--memory-chunk-kib is too large"))?,
        zstd_level: a.zstd_level,
        compression: parse_compression(&a.compression)?,
        memory_fanout: a.memory_fanout,
        pack_target_size: a
            .pack_mib
            .checked_mul(1 << 20)
            .ok_or_else(|| usage("--pack-mib is too large"))?,
        ..InitOptions::default()
    };
    let store =
        Store::init(&dir, opts).with_context(|| format!("initialising store {}", dir.display()))?;
    if a.opt.json {
        print_json(&serde_json::json!({
            "store": dir,
            "config": store.config(),
        }))?;
    } else {
        println!(
            "initialised store {} (id {})",
            dir.display(),
            store.config().store_id
        );
    }
    Ok(0)
}

#[derive(Serialize)]
struct Stats {
    store: PathBuf,
    generations: u64,
    logical_bytes: u64,
    unique_bytes: u64,
    stored_bytes: u64,
    pack_bytes: u64,
    packs: u64,
    chunks: u64,
    live_unique_bytes: u64,
    live_stored_bytes: u64,
    dedup_ratio: f64,
    compression_ratio: f64,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// `store stats`: the figures the user guide defines ("What `store stats` says"). The dedup
/// and compression ratios are of the data the generations present reach; what only gc frees
/// is shown apart, so no ratio is ever below one because of garbage.
fn stats(o: StoreOpt) -> anyhow::Result<i32> {
    let store = o.open()?;
    let t = store.totals()?;
    let maintenance = store.maintenance();
    let live = maintenance.mark_live()?;
    let (live_raw, live_stored) = maintenance.live_bytes(&live)?;
    let s = Stats {
        store: store.path().to_path_buf(),
        generations: t.generations,
        logical_bytes: t.logical_bytes,
        unique_bytes: t.raw_bytes,
        stored_bytes: t.stored_bytes,
        pack_bytes: t.pack_bytes,
        packs: t.packs,
        chunks: t.chunks,
        live_unique_bytes: live_raw,
        live_stored_bytes: live_stored,
        dedup_ratio: ratio(t.logical_bytes, live_raw),
        compression_ratio: ratio(live_raw, live_stored),
    };
    if o.json {
        print_json(&s)?;
    } else {
        println!("store              {}", s.store.display());
        println!("generations        {}", s.generations);
        println!(
            "logical size       {}  (what the generations hold, counted once per generation)",
            human_bytes(s.logical_bytes)
        );
        println!(
            "unique data        {}  (distinct chunks the generations reach)",
            human_bytes(s.live_unique_bytes)
        );
        println!(
            "stored size        {}  (those chunks compressed)",
            human_bytes(s.live_stored_bytes)
        );
        println!(
            "dedup ratio        {:.2}  (logical / unique)",
            s.dedup_ratio
        );
        println!(
            "compression ratio  {:.2}  (unique / stored)",
            s.compression_ratio
        );
        println!(
            "not reachable      {}  (stored chunks no generation reaches: `cairn gc` frees them)",
            human_bytes(s.stored_bytes.saturating_sub(s.live_stored_bytes))
        );
        println!(
            "packs              {} ({} on disk)",
            s.packs,
            human_bytes(s.pack_bytes)
        );
        println!("chunks             {}", s.chunks);
    }
    Ok(0)
}

fn reindex(o: StoreOpt) -> anyhow::Result<i32> {
    let dir = o.dir()?;
    let r = Store::reindex(&dir).with_context(|| format!("reindexing {}", dir.display()))?;
    if o.json {
        print_json(&r)?;
    } else {
        println!(
            "reindexed {}: {} packs, {} chunks, {} generations",
            dir.display(),
            r.packs,
            r.chunks,
            r.generations
        );
        for d in r.damaged_packs.iter().chain(r.damaged_manifests.iter()) {
            println!("damaged: {d}");
        }
    }
    Ok(0)
}

fn clean(a: CleanArgs) -> anyhow::Result<i32> {
    let store = a.opt.open()?;
    let age = std::time::Duration::from_secs(a.older_than_minutes.saturating_mul(60));
    let removed = store.remove_leftovers(age)?;
    if a.opt.json {
        print_json(&serde_json::json!({ "removed": removed }))?;
    } else {
        for r in &removed {
            println!("removed {r}");
        }
        println!("{} leftover files removed", removed.len());
    }
    Ok(0)
}

/// Run `cairn generations`.
pub fn generations(a: GenerationsArgs) -> anyhow::Result<i32> {
    let store = a.opt.open()?;
    let gens = store.generations(a.job.as_deref())?;
    let keep = if gens.is_empty() {
        Default::default()
    } else {
        crate::cli::gc_cmds::retention_column(&store, a.job.as_deref(), &a.policy)?
    };
    if a.opt.json {
        let mut v = serde_json::to_value(&gens)?;
        if let Some(arr) = v.as_array_mut() {
            for (g, x) in gens.iter().zip(arr.iter_mut()) {
                if let Some(o) = x.as_object_mut() {
                    let r = keep.get(&g.id.0).cloned().unwrap_or_default();
                    o.insert("retention".into(), r.into());
                }
            }
        }
        print_json(&v)?;
        return Ok(0);
    }
    println!(
        "{:>6}  {:<20}  {:<20}  {:<10}  {:>10}  {:>10}  {:>9}  {:>8}  {:>9}  {:>9}  RETENTION",
        "ID", "JOB", "TIME", "KIND", "LOGICAL", "NEW", "DURATION", "FROZEN", "SCANNED", "SKIPPED"
    );
    for g in gens {
        let dur = g.info.end_ms.saturating_sub(g.info.start_ms);
        println!(
            "{:>6}  {:<20}  {:<20}  {:<10}  {:>10}  {:>10}  {:>8.2}s  {:>7.3}s  {:>9}  {:>9}  {}",
            g.id.0,
            g.job,
            format_time_ms(g.time_ms),
            g.info.kind,
            human_bytes(g.info.stats.logical_bytes),
            human_bytes(g.info.stats.new_stored_bytes),
            dur as f64 / 1000.0,
            g.info.frozen_ms as f64 / 1000.0,
            g.info.pages_scanned,
            g.info.pages_skipped,
            keep.get(&g.id.0).map(String::as_str).unwrap_or("")
        );
    }
    Ok(0)
}

/// Run `cairn verify`; exits 1 when damage was found.
pub fn verify(a: VerifyArgs) -> anyhow::Result<i32> {
    let store = a.opt.open()?;
    let r = store.verify(a.read_data)?;
    if a.opt.json {
        print_json(&r)?;
    } else {
        println!(
            "checked {} packs{}, {} generations ({})",
            r.packs,
            if r.read_data {
                format!(" ({} chunks read and verified)", r.chunks_verified)
            } else {
                String::new()
            },
            r.generations.len(),
            if r.read_data {
                "structure and data"
            } else {
                "structure"
            }
        );
        for d in &r.damaged_packs {
            let gens: Vec<String> = d.generations.iter().map(|g| g.to_string()).collect();
            println!(
                "DAMAGED pack {}: {}; affects generations: {}",
                d.pack,
                d.problem,
                if gens.is_empty() {
                    "none".to_string()
                } else {
                    gens.join(", ")
                }
            );
        }
        for g in r.generations.iter().filter(|g| !g.ok) {
            println!(
                "BAD generation {} (job {}): {}",
                g.id,
                g.job,
                g.problems.first().map(String::as_str).unwrap_or("")
            );
        }
        if !r.leftovers.is_empty() {
            println!(
                "{} leftover temporary files (harmless; `cairn store clean` removes them)",
                r.leftovers.len()
            );
        }
        println!("{}", if r.ok { "store OK" } else { "store DAMAGED" });
    }
    Ok(if r.ok { 0 } else { 1 })
}

/// The `--compression` value as the store's setting (a usage error otherwise).
pub fn parse_compression(s: &str) -> anyhow::Result<cairn_store::Compression> {
    match s {
        "zstd" => Ok(cairn_store::Compression::Zstd),
        "lz4" => Ok(cairn_store::Compression::Lz4),
        other => Err(usage(format!(
            "--compression must be zstd or lz4, not {other:?}"
        ))),
    }
}
