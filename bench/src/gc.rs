//! `cairn-bench gc`: build a store of many generations of one job (a memory image with a
//! small share changing between generations, written through the store API), then time
//! `prune --keep-last N` and `gc`, and report their peak memory (docs/performance.md).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_bench::synth::{fill, mutate_pages, SynthKind};
use cairn_gc::{Policy, PruneOptions, SweepOptions};
use cairn_store::{GenerationInfo, InitOptions, Store};
use clap::Args;
use serde::Serialize;

use crate::exit::usage;
use crate::output::{human_bytes, print_json};

/// `cairn-bench gc`.
#[derive(Args, Debug)]
pub struct BenchGcArgs {
    /// Size of the job's memory image, MiB.
    #[arg(long, default_value_t = 1024)]
    pub size_mib: usize,
    /// Generations to build.
    #[arg(long, default_value_t = 1000)]
    pub generations: u64,
    /// Share of the 4 KiB pages changed between generations, percent.
    #[arg(long, default_value_t = 1.0)]
    pub change_percent: f64,
    /// Consecutive pages per changed run.
    #[arg(long, default_value_t = 16)]
    pub change_run: usize,
    /// Generations prune keeps.
    #[arg(long, default_value_t = 10)]
    pub keep_last: usize,
    /// Where to build the store (default: the system temp directory); removed afterwards.
    #[arg(long, conflicts_with = "store")]
    pub dir: Option<PathBuf>,
    /// Build the store in this directory (must not exist or be empty) and keep it, so that
    /// `cairn prune` and `cairn gc` can be measured on it from outside (/usr/bin/time -v).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Only build the store (with --store); do not prune or collect.
    #[arg(long, requires = "store")]
    pub build_only: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Row {
    size_mib: usize,
    generations: u64,
    change_percent: f64,
    build_s: f64,
    packs_before: u64,
    bytes_before: u64,
    prune_s: f64,
    pruned: usize,
    gc_s: f64,
    gc_peak_rss_mib: f64,
    live_chunks: u64,
    packs_deleted: usize,
    packs_repacked: usize,
    copied_bytes: u64,
    packs_after: u64,
    bytes_after: u64,
}

/// Peak resident set size of this process (VmHWM), bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map(|k| k * 1024)
        .unwrap_or(0)
}

/// Reset the peak RSS counter (Linux: writing 5 to /proc/self/clear_refs).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Run `cairn-bench gc`.
pub fn bench_gc(a: BenchGcArgs) -> anyhow::Result<i32> {
    let size = a
        .size_mib
        .checked_mul(1 << 20)
        .ok_or_else(|| usage("--size-mib too large"))?;
    if a.generations == 0 {
        return Err(usage("--generations must be at least 1"));
    }
    // Kept until the end of the run: removing it removes the temporary store.
    let mut _tmp = None;
    let dir = match &a.store {
        Some(d) => d.clone(),
        None => {
            let base = a.dir.clone().unwrap_or_else(std::env::temp_dir);
            let tmp = tempfile::Builder::new()
                .prefix("cairn-bench-gc-")
                .tempdir_in(&base)
                .with_context(|| format!("creating a directory in {}", base.display()))?;
            let d = tmp.path().join("store");
            _tmp = Some(tmp);
            d
        }
    };
    let store = Store::init(&dir, InitOptions::default())?;

    let t = Instant::now();
    let mut image = vec![0u8; size];
    fill(&mut image, SynthKind::PythonHeap, 7);
    let mut prev = None;
    for n in 0..a.generations {
        let changed: Vec<(u64, u64)> = if n == 0 {
            Vec::new()
        } else {
            mutate_pages(
                &mut image,
                SynthKind::PythonHeap,
                a.change_percent / 100.0,
                a.change_run,
                1000 + n,
            )
            .into_iter()
            .map(|(o, l)| (o as u64, l as u64))
            .collect()
        };
        let mut w = store.writer()?;
        let src = |off: u64, buf: &mut [u8]| {
            let o = off as usize;
            buf.copy_from_slice(&image[o..o + buf.len()]);
            Ok(())
        };
        let mem = match &prev {
            None => w.put_memory(size as u64, &src)?,
            Some(p) => w.put_memory_incremental(size as u64, p, &changed, &src)?,
        };
        let root = w.put_tree(vec![("mem".into(), mem.clone())])?;
        let stats = w.finish()?;
        store.commit(
            "bench",
            &root,
            GenerationInfo {
                kind: "checkpoint".into(),
                stats,
                ..Default::default()
            },
        )?;
        prev = Some(mem);
        if !a.json && (n + 1) % 100 == 0 {
            eprintln!(
                "built {} generations in {:.1}s",
                n + 1,
                t.elapsed().as_secs_f64()
            );
        }
    }
    drop(image);
    let build_s = t.elapsed().as_secs_f64();
    let (packs_before, bytes_before) = store.maintenance().pack_usage()?;
    if a.build_only {
        println!(
            "{} generations of {} MiB ({}% changed each): built in {:.1}s, {} in {} packs, in {}",
            a.generations,
            a.size_mib,
            a.change_percent,
            build_s,
            human_bytes(bytes_before),
            packs_before,
            dir.display()
        );
        return Ok(0);
    }

    reset_peak_rss();
    let t = Instant::now();
    let p = cairn_gc::prune(
        &store,
        &PruneOptions {
            job: Some("bench".into()),
            policy: Policy::last(a.keep_last),
            dry_run: false,
        },
    )?;
    let prune_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let g = cairn_gc::sweep(
        &store,
        &SweepOptions {
            dry_run: false,
            max_unused_percent: 10.0,
            grace: Duration::ZERO,
        },
    )?;
    let gc_s = t.elapsed().as_secs_f64();
    let row = Row {
        size_mib: a.size_mib,
        generations: a.generations,
        change_percent: a.change_percent,
        build_s,
        packs_before,
        bytes_before,
        prune_s,
        pruned: p.removed.len(),
        gc_s,
        gc_peak_rss_mib: peak_rss() as f64 / (1 << 20) as f64,
        live_chunks: g.live_chunks,
        packs_deleted: g.deleted.len(),
        packs_repacked: g.repacked.len(),
        copied_bytes: g.copied_bytes,
        packs_after: g.packs_after,
        bytes_after: g.bytes_after,
    };
    let report = store.verify(false)?;
    if !report.ok {
        anyhow::bail!("store damaged after prune and gc");
    }
    if a.json {
        print_json(&row)?;
    } else {
        println!(
            "{} generations of {} MiB ({}% changed each): built in {:.1}s, {} in {} packs",
            row.generations,
            row.size_mib,
            row.change_percent,
            row.build_s,
            human_bytes(row.bytes_before),
            row.packs_before
        );
        println!(
            "prune --keep-last {}: {} generations dropped in {:.2}s",
            a.keep_last, row.pruned, row.prune_s
        );
        println!(
            "gc (grace 0, max-unused 10%): {:.2}s, peak RSS {:.0} MiB, {} live chunks; {} packs deleted ({} repacked, {} copied); after: {} in {} packs",
            row.gc_s,
            row.gc_peak_rss_mib,
            row.live_chunks,
            row.packs_deleted,
            row.packs_repacked,
            human_bytes(row.copied_bytes),
            human_bytes(row.bytes_after),
            row.packs_after
        );
    }
    Ok(0)
}
