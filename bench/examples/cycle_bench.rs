//! Benchmark of one checkpoint → kill → restore cycle of a program holding N MiB of
//! incompressible memory, with the in-memory image store (no disk, no compression): prints the
//! time the program is frozen, the checkpoint time, the bytes captured, and the restore time
//! until the program runs again; then checks the program's own checksum of its memory.
//!
//! `cargo run --release -p cairn-bench --example cycle_bench -- [MiB ...]` (default 1024).

use cairn_image::MemoryImageStore;
use cairn_sys::{ExitStatus, Sandbox};
use std::ffi::OsString;
use std::time::{Duration, Instant};

const PROG: &str = r#"
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static volatile sig_atomic_t stop;
static void on_term(int s) { (void)s; stop = 1; }
static uint64_t sum(const uint64_t *p, size_t n) {
    uint64_t h = 0;
    for (size_t i = 0; i < n; i++) h = h * 31 + p[i];
    return h;
}
int main(int argc, char **argv) {
    size_t n = ((size_t)atoi(argv[1]) << 20) / 8;
    uint64_t *m = malloc(n * 8), x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; m[i] = x; }
    uint64_t want = sum(m, n);
    signal(SIGTERM, on_term);
    FILE *f = fopen(argv[2], "w"); fputs("ready\n", f); fclose(f);
    while (!stop) usleep(1000);
    return sum(m, n) == want ? 0 : 1;
}
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() { vec![1024] } else { sizes };
    let dir = std::env::temp_dir().join(format!("cairn-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let src = dir.join("mem.c");
    let bin = dir.join("mem");
    std::fs::write(&src, PROG)?;
    let st = std::process::Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()?;
    if !st.success() {
        return Err("cc failed".into());
    }
    println!("size_mib,checkpoint_s,frozen_s,captured_mib,restore_s,verified");
    for mib in sizes {
        let ready = dir.join(format!("ready-{mib}"));
        let argv: Vec<OsString> = vec![
            bin.clone().into(),
            mib.to_string().into(),
            ready.clone().into(),
        ];
        let _ = std::fs::remove_file(&ready);
        let mut sb = Sandbox::launch(&argv)?;
        while !ready.exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut store = MemoryImageStore::new();
        let t0 = Instant::now();
        let image = cairn_capture::checkpoint(&sb, &mut store)?;
        let ckpt = t0.elapsed().as_secs_f64();
        sb.kill()?;
        sb.wait()?;
        let t1 = Instant::now();
        let mut r = cairn_restore::restore(&image, &store)?;
        let rest = t1.elapsed().as_secs_f64();
        r.signal(libc::SIGTERM)?;
        let ok = r.wait()? == ExitStatus::Code(0);
        println!(
            "{mib},{ckpt:.3},{ckpt:.3},{:.1},{rest:.3},{ok}",
            store.stored_bytes() as f64 / 1048576.0
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
