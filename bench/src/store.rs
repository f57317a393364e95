//! `cairn-bench store`: the store benchmark table of docs/performance.md.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use cairn_bench::synth::{fill, mutate_pages, SynthKind};
use cairn_store::{GenerationInfo, InitOptions, Store, StreamRef};
use clap::Args;
use rayon::prelude::*;
use serde::Serialize;

use crate::exit::usage;
use crate::output::{human_bytes, print_json};

/// `cairn-bench store`.
#[derive(Args, Debug)]
pub struct BenchStoreArgs {
    /// Size of the memory image, MiB.
    #[arg(long, default_value_t = 4096)]
    pub size_mib: usize,
    /// Memory chunk size, KiB.
    #[arg(long, default_value_t = InitOptions::default().memory_chunk_size / 1024)]
    pub chunk_kib: u32,
    /// Children per interior node of a memory stream.
    #[arg(long, default_value_t = InitOptions::default().memory_fanout)]
    pub memory_fanout: u32,
    /// zstd level.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub zstd_level: i32,
    /// Codec for new chunks: zstd (smallest; the default) or lz4 (~25 % larger on
    /// python-like memory, 2.7x faster to decompress; makes a format-2 store).
    #[arg(long, default_value = "zstd")]
    pub compression: String,
    /// Data sets: incompressible, zeros, python-heap-like (comma separated).
    #[arg(
        long,
        default_value = "incompressible,zeros,python-heap-like",
        value_delimiter = ','
    )]
    pub data: Vec<String>,
    /// Percent of 4 KiB pages changed for the second generation.
    #[arg(long, default_value_t = 1.0)]
    pub change_percent: f64,
    /// Changed pages come in runs of this many consecutive pages (1 = scattered pages).
    #[arg(long, default_value_t = 16)]
    pub change_run: usize,
    /// Directory for the temporary stores (default: the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// One row of the table.
#[derive(Serialize, Debug)]
struct Row {
    data: String,
    size_bytes: u64,
    chunk_kib: u32,
    memory_fanout: u32,
    gen1_seconds: f64,
    gen1_gb_per_s: f64,
    /// CPU seconds (user + system, all threads) the phase used: a load-independent measure.
    gen1_cpu_seconds: f64,
    gen1_stored_bytes: u64,
    changed_bytes: u64,
    changed_bytes_compressed: u64,
    gen2_seconds: f64,
    gen2_gb_per_s: f64,
    gen2_cpu_seconds: f64,
    gen2_new_bytes: u64,
    gen2_new_over_changed_compressed: f64,
    /// Reassembly of generation 2 right after it was written (packs written with O_DIRECT
    /// are read from the device).
    reassembly_seconds: f64,
    reassembly_gb_per_s: f64,
    reassembly_cpu_seconds: f64,
    /// Size of cairn.db after both generations.
    index_bytes: u64,
    /// Chunks in the index after both generations.
    index_chunks: u64,
    /// Reassembly again with the packs in the page cache.
    reassembly_cached_seconds: f64,
    reassembly_cached_gb_per_s: f64,
    reassembly_cached_cpu_seconds: f64,
}

/// CPU time (user + system) this process has used so far, seconds.
fn cpu_seconds() -> f64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `struct rusage` into the pointer we pass, which is valid
    // and large enough; RUSAGE_SELF is always a valid `who`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if rc != 0 {
        return 0.0;
    }
    // SAFETY: getrusage succeeded, so it initialised the struct (it was zeroed anyway).
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn kind_of(s: &str) -> anyhow::Result<SynthKind> {
    match s {
        "incompressible" | "random" => Ok(SynthKind::Random),
        "zeros" => Ok(SynthKind::Zeros),
        "python-heap-like" | "python" => Ok(SynthKind::PythonHeap),
        other => Err(usage(format!("unknown data set {other:?}"))),
    }
}

fn ingest(store: &Store, buf: &[u8], job: &str) -> anyhow::Result<(StreamRef, u64, f64, f64)> {
    let c = cpu_seconds();
    let t = Instant::now();
    let mut w = store.writer()?;
    let m = w.put_memory(buf.len() as u64, &|off, out: &mut [u8]| {
        let o = off as usize;
        out.copy_from_slice(&buf[o..o + out.len()]);
        Ok(())
    })?;
    let root = w.put_tree(vec![("mem".into(), m.clone())])?;
    let stats = w.finish()?;
    let info = GenerationInfo {
        kind: "bench".into(),
        stats: stats.clone(),
        ..Default::default()
    };
    store.commit(job, &root, info)?;
    Ok((
        m,
        stats.new_stored_bytes,
        t.elapsed().as_secs_f64(),
        cpu_seconds() - c,
    ))
}

/// Run `cairn-bench store`.
pub fn bench_store(a: BenchStoreArgs) -> anyhow::Result<i32> {
    let size = a
        .size_mib
        .checked_mul(1 << 20)
        .ok_or_else(|| usage("--size-mib too large"))?;
    let base = a.dir.clone().unwrap_or_else(std::env::temp_dir);
    let mut rows = Vec::new();
    for d in &a.data {
        let kind = kind_of(d)?;
        let tmp = tempfile::Builder::new()
            .prefix("cairn-bench-")
            .tempdir_in(&base)
            .with_context(|| format!("creating a temporary store in {}", base.display()))?;
        let opts = InitOptions {
            memory_chunk_size: a.chunk_kib * 1024,
            zstd_level: a.zstd_level,
            compression: parse_compression(&a.compression)?,
            memory_fanout: a.memory_fanout,
            ..InitOptions::default()
        };
        let store = Store::init(&tmp.path().join("store"), opts)?;
        let mut buf = vec![0u8; size];
        fill(&mut buf, kind, 1);
        let (_, gen1_new, gen1_s, gen1_cpu) = ingest(&store, &buf, "bench")?;
        let ranges = mutate_pages(&mut buf, kind, a.change_percent / 100.0, a.change_run, 2);
        let changed: u64 = ranges.iter().map(|r| r.1 as u64).sum();
        let codec = parse_compression(&a.compression)?;
        let changed_comp: u64 = ranges
            .par_iter()
            .map(|&(o, l)| match codec {
                cairn_store::Compression::Zstd => {
                    zstd::bulk::compress(&buf[o..o + l], a.zstd_level)
                        .map(|c| c.len().min(l) as u64)
                        .unwrap_or(l as u64)
                }
                cairn_store::Compression::Lz4 => {
                    let mut out = Vec::new();
                    if cairn_store::compress_lz4_into(&buf[o..o + l], &mut out) {
                        out.len() as u64
                    } else {
                        l as u64
                    }
                }
            })
            .sum();
        let (m2, gen2_new, gen2_s, gen2_cpu) = ingest(&store, &buf, "bench")?;
        let (g, _) = store.latest_consistent_at("bench", cairn_store::CheckLevel::Structure)?;
        let reader = store.reader(g.id)?;
        // Reassembly through the restore's path (extent reads, every chunk verified), into a
        // pre-faulted buffer (the table measures the store, not first-touch page faults):
        // first as written (O_DIRECT packs: from the device), then with the packs in the page
        // cache (read once, untimed, beforehand).
        let cs = a.chunk_kib as usize * 1024;
        let mut out = vec![1u8; size];
        let (re_s, re_cpu) = reassemble(&reader, &m2, &mut out, cs)?;
        anyhow::ensure!(out == buf, "reassembled image differs from the input");
        warm_page_cache(&store)?;
        let (re_cached_s, re_cached_cpu) = reassemble(&reader, &m2, &mut out, cs)?;
        let index_bytes = std::fs::metadata(store.path().join("cairn.db"))
            .map(|m| m.len())
            .unwrap_or(0);
        let index_chunks = store.totals()?.chunks;
        anyhow::ensure!(
            out == buf,
            "reassembled image (cached) differs from the input"
        );
        drop(out);
        let gbps = |s: f64| size as f64 / s / 1e9;
        rows.push(Row {
            data: kind.name().into(),
            size_bytes: size as u64,
            chunk_kib: a.chunk_kib,
            memory_fanout: a.memory_fanout,
            gen1_seconds: gen1_s,
            gen1_gb_per_s: gbps(gen1_s),
            gen1_cpu_seconds: gen1_cpu,
            gen1_stored_bytes: gen1_new,
            changed_bytes: changed,
            changed_bytes_compressed: changed_comp,
            gen2_seconds: gen2_s,
            gen2_gb_per_s: gbps(gen2_s),
            gen2_cpu_seconds: gen2_cpu,
            gen2_new_bytes: gen2_new,
            gen2_new_over_changed_compressed: if changed_comp == 0 {
                0.0
            } else {
                gen2_new as f64 / changed_comp as f64
            },
            reassembly_seconds: re_s,
            reassembly_gb_per_s: gbps(re_s),
            reassembly_cpu_seconds: re_cpu,
            reassembly_cached_seconds: re_cached_s,
            reassembly_cached_gb_per_s: gbps(re_cached_s),
            reassembly_cached_cpu_seconds: re_cached_cpu,
            index_bytes,
            index_chunks,
        });
    }
    if a.json {
        print_json(&rows)?;
        return Ok(0);
    }
    println!(
        "{:<17} {:>9} {:>6} | {:>9} {:>7} {:>10} | {:>10} {:>10} {:>9} {:>7} {:>6} | {:>9} {:>7} | {:>11} {:>7}",
        "data",
        "size",
        "chunk",
        "gen1 GB/s",
        "GB/cpus",
        "stored",
        "changed",
        "new gen2",
        "gen2 GB/s",
        "GB/cpus",
        "xchg",
        "read GB/s",
        "GB/cpus",
        "cached GB/s",
        "GB/cpus"
    );
    let per_cpu = |bytes: u64, cpu: f64| {
        if cpu > 0.0 {
            bytes as f64 / cpu / 1e9
        } else {
            0.0
        }
    };
    for r in &rows {
        println!(
            "{:<17} {:>9} {:>4}Ki | {:>9.2} {:>7.2} {:>10} | {:>10} {:>10} {:>9.2} {:>7.2} {:>6.2} | {:>9.2} {:>7.2} | {:>11.2} {:>7.2}",
            r.data,
            human_bytes(r.size_bytes),
            r.chunk_kib,
            r.gen1_gb_per_s,
            per_cpu(r.size_bytes, r.gen1_cpu_seconds),
            human_bytes(r.gen1_stored_bytes),
            human_bytes(r.changed_bytes),
            human_bytes(r.gen2_new_bytes),
            r.gen2_gb_per_s,
            per_cpu(r.size_bytes, r.gen2_cpu_seconds),
            r.gen2_new_over_changed_compressed,
            r.reassembly_gb_per_s,
            per_cpu(r.size_bytes, r.reassembly_cpu_seconds),
            r.reassembly_cached_gb_per_s,
            per_cpu(r.size_bytes, r.reassembly_cached_cpu_seconds)
        );
    }
    println!("xchg = new bytes written by generation 2 / changed bytes compressed with the store's codec");
    println!("read = reassembly as written (O_DIRECT packs come from the device); cached = with the packs in the page cache");
    println!("GB/cpus = GB per CPU-second (user+system, all threads): independent of load");
    Ok(0)
}

/// Reassembles stream `s` into `out` (pre-faulted, every byte overwritten: all-zero chunks are
/// zero-filled) through `GenerationReader::for_each_chunk`; returns (seconds, CPU seconds).
fn reassemble(
    reader: &cairn_store::GenerationReader,
    s: &cairn_store::StreamRef,
    out: &mut [u8],
    chunk: usize,
) -> anyhow::Result<(f64, f64)> {
    out.fill(0);
    let pieces: Vec<std::sync::Mutex<&mut [u8]>> =
        out.chunks_mut(chunk).map(std::sync::Mutex::new).collect();
    let c = cpu_seconds();
    let t = Instant::now();
    reader.for_each_chunk(s, &|off, data| {
        if let Some(d) = data {
            let piece = pieces
                .get(off as usize / chunk)
                .ok_or_else(|| std::io::Error::other("chunk beyond the image"))?;
            let mut p = piece
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?;
            p[..d.len()].copy_from_slice(d);
        }
        Ok(())
    })?;
    Ok((t.elapsed().as_secs_f64(), cpu_seconds() - c))
}

/// Reads every pack file once through the page cache.
fn warm_page_cache(store: &cairn_store::Store) -> anyhow::Result<()> {
    for p in store.pack_files_on_disk()? {
        let path = store.path().join("packs").join(format!("{p}.pack"));
        let mut f = std::fs::File::open(&path)?;
        std::io::copy(&mut f, &mut std::io::sink())?;
    }
    Ok(())
}

/// The store codec named by `--compression`.
fn parse_compression(s: &str) -> anyhow::Result<cairn_store::Compression> {
    match s {
        "zstd" => Ok(cairn_store::Compression::Zstd),
        "lz4" => Ok(cairn_store::Compression::Lz4),
        other => Err(usage(format!(
            "--compression must be zstd or lz4, not {other:?}"
        ))),
    }
}
