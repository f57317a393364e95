//! Per-core speed of the store's building blocks on the synthetic data sets, measured in
//! thread CPU time (so other load on the machine does not distort it much):
//! `cargo run --release -p cairn-bench --example store_components [MiB] [chunk KiB]`.
//! docs/performance.md uses it to explain the `cairn-bench store` numbers.

use std::hint::black_box;

use cairn_bench::synth::{fill, SynthKind};

/// CPU time of the calling thread, seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid pointer we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn rate(bytes: usize, f: impl FnOnce()) -> f64 {
    let t = thread_cpu();
    f();
    bytes as f64 / (thread_cpu() - t) / 1e9
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let size = args.first().copied().unwrap_or(256) << 20;
    let cs = args.get(1).copied().unwrap_or(64) << 10;
    println!(
        "per core, GB per CPU-second, {} MiB, {} KiB chunks",
        size >> 20,
        cs >> 10
    );
    println!(
        "{:<17} {:>7} {:>7} {:>9} {:>9} {:>7} {:>7}",
        "data", "memcpy", "blake3", "zstd1 c", "zstd1 d", "ratio", "probe"
    );
    for kind in [SynthKind::Random, SynthKind::PythonHeap] {
        let mut buf = vec![0u8; size];
        fill(&mut buf, kind, 1);
        let mut dst = vec![1u8; cs];
        let memcpy = rate(size, || {
            for c in buf.chunks(cs) {
                dst[..c.len()].copy_from_slice(c);
                black_box(&dst);
            }
        });
        let blake = rate(size, || {
            for c in buf.chunks(cs) {
                black_box(blake3::hash(c));
            }
        });
        let mut cctx = zstd::bulk::Compressor::new(1).expect("zstd");
        let mut comp: Vec<Vec<u8>> = Vec::new();
        let zc = rate(size, || {
            for c in buf.chunks(cs) {
                comp.push(cctx.compress(c).expect("compress"));
            }
        });
        let stored: usize = comp.iter().map(|c| c.len()).sum();
        let mut dctx = zstd::bulk::Decompressor::new().expect("zstd");
        let zd = rate(size, || {
            for c in &comp {
                black_box(
                    dctx.decompress_to_buffer(c, &mut dst[..])
                        .expect("decompress"),
                );
            }
        });
        let probe = rate(size, || {
            for c in buf.chunks(cs) {
                black_box(cairn_store::looks_incompressible(c));
            }
        });
        println!(
            "{:<17} {:>7.2} {:>7.2} {:>9.2} {:>9.2} {:>7.2} {:>7.1}",
            kind.name(),
            memcpy,
            blake,
            zc,
            zd,
            size as f64 / stored as f64,
            probe
        );
    }
}
