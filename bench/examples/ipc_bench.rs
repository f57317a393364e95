//! Cost of System V shared memory in one checkpoint → kill → restore cycle, next to the same
//! amount of `MAP_SHARED|MAP_ANONYMOUS` memory: a parent and a child share N MiB of
//! incompressible memory; prints checkpoint and restore times and the bytes captured (in-memory
//! image store: no disk, no compression), then checks the program's checksum of the memory.
//!
//! `cargo run --release -p cairn-bench --example ipc_bench -- [MiB ...]` (default 256).

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
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile sig_atomic_t stop;
static void on_term(int s) { (void)s; stop = 1; }
static uint64_t sum(const uint64_t *p, size_t n) {
    uint64_t h = 0;
    for (size_t i = 0; i < n; i++) h = h * 31 + p[i];
    return h;
}
int main(int argc, char **argv) {
    size_t bytes = (size_t)atoi(argv[1]) << 20, n = bytes / 8;
    uint64_t *m;
    if (!strcmp(argv[3], "sysv")) {
        int id = shmget(IPC_PRIVATE, bytes, IPC_CREAT | 0600);
        m = shmat(id, NULL, 0);
        shmctl(id, IPC_RMID, NULL);
    } else {
        m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    }
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; m[i] = x; }
    uint64_t want = sum(m, n);
    signal(SIGTERM, on_term);
    pid_t c = fork();
    if (c == 0) { while (!stop) usleep(1000); _exit(sum(m, n) == want ? 0 : 1); }
    FILE *f = fopen(argv[2], "w"); fputs("ready\n", f); fclose(f);
    while (!stop) usleep(1000);
    kill(c, SIGTERM);
    int st;
    waitpid(c, &st, 0);
    return sum(m, n) == want && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() { vec![256] } else { sizes };
    let dir = std::env::temp_dir().join(format!("cairn-ipc-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let src = dir.join("shm.c");
    let bin = dir.join("shm");
    std::fs::write(&src, PROG)?;
    let st = std::process::Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()?;
    if !st.success() {
        return Err("cc failed".into());
    }
    println!("kind,size_mib,checkpoint_s,captured_mib,restore_s,verified");
    for mib in sizes {
        for kind in ["shared", "sysv"] {
            let ready = dir.join(format!("ready-{kind}-{mib}"));
            let argv: Vec<OsString> = vec![
                bin.clone().into(),
                mib.to_string().into(),
                ready.clone().into(),
                kind.into(),
            ];
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
                "{kind},{mib},{ckpt:.3},{:.1},{rest:.3},{ok}",
                store.stored_bytes() as f64 / 1048576.0
            );
        }
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
