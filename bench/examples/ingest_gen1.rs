//! First-generation ingest only, repeated, for profiling (`perf record -g` of this process is
//! almost all ingest: the input is generated once, before the first round):
//! `cargo run --release -p cairn-bench --example ingest_gen1 -- [MiB] [random|python|zeros]
//! [DIR] [rounds]`. Prints per round wall time, GB/s, and user/system CPU seconds of the
//! whole process (getrusage), i.e. the same gen1 phase as `cairn-bench store`.

use std::time::Instant;

use cairn_bench::synth::{fill, SynthKind};
use cairn_store::{GenerationInfo, InitOptions, Store};

/// (user, system) CPU seconds of this process so far.
fn cpu() -> (f64, f64) {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `struct rusage` into the valid pointer we pass.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if rc != 0 {
        return (0.0, 0.0);
    }
    // SAFETY: getrusage succeeded and initialised the (zeroed) struct.
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mib: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(2048);
    let kind = match args.get(1).map(String::as_str) {
        Some("python") | Some("python-heap-like") => SynthKind::PythonHeap,
        Some("zeros") => SynthKind::Zeros,
        _ => SynthKind::Random,
    };
    let dir = std::path::PathBuf::from(args.get(2).map_or("/var/tmp", String::as_str));
    let rounds: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(3);
    let size = mib << 20;
    let mut buf = vec![0u8; size];
    fill(&mut buf, kind, 1);
    for round in 0..rounds {
        let tmp = tempfile::Builder::new()
            .prefix("cairn-gen1-")
            .tempdir_in(&dir)?;
        let store = Store::init(&tmp.path().join("store"), InitOptions::default())?;
        let (u0, s0) = cpu();
        let t = Instant::now();
        let mut w = store.writer()?;
        let m = w.put_memory(size as u64, &|off, out: &mut [u8]| {
            let o = off as usize;
            out.copy_from_slice(&buf[o..o + out.len()]);
            Ok(())
        })?;
        let root = w.put_tree(vec![("mem".into(), m)])?;
        let stats = w.finish()?;
        let info = GenerationInfo {
            kind: "bench".into(),
            stats,
            ..Default::default()
        };
        store.commit("bench", &root, info)?;
        let secs = t.elapsed().as_secs_f64();
        let (u1, s1) = cpu();
        println!(
            "round {round}: {mib} MiB {:?} in {secs:.2} s = {:.2} GB/s, user {:.2} s sys {:.2} s = {:.2} GB/cpus",
            kind,
            size as f64 / secs / 1e9,
            u1 - u0,
            s1 - s0,
            size as f64 / (u1 - u0 + s1 - s0) / 1e9
        );
    }
    Ok(())
}
