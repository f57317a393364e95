//! Helpers for the round-trip tests: compiling C programs, running them natively and under a
//! sandbox with checkpoint → kill → restore cycles.

#![allow(dead_code)]

use cairn_image::{MemoryImageStore, ProcessTreeImage};
use cairn_sys::{ChildSpec, ExitStatus, Sandbox};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub use cairn_testkit::{Rng, Scratch};

/// Compile tests/progs/<name>.c into `dir`.
pub fn compile(dir: &Scratch, name: &str, extra: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/progs/{name}.c"));
    let out = dir.path(name);
    let st = Command::new("cc")
        .args(["-O2", "-g", "-pthread", "-o"])
        .arg(&out)
        .arg(&src)
        .args(extra)
        .status()
        .expect("running cc");
    assert!(st.success(), "cc failed for {name}");
    out
}

pub fn os(v: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    v.iter().map(|s| s.as_ref().to_os_string()).collect()
}

/// Checkpoint, kill, restore; returns the restored sandbox.
pub fn cycle(sb: Sandbox) -> (Sandbox, ProcessTreeImage) {
    let mut sb = sb;
    let mut store = MemoryImageStore::new();
    let image = cairn_capture::checkpoint(&sb, &mut store).expect("checkpoint");
    // The image must survive serialisation, like the agent's image.json.
    let json = serde_json::to_string(&image).expect("serialize");
    let image: ProcessTreeImage = serde_json::from_str(&json).expect("deserialize");
    sb.kill().expect("kill");
    let st = sb.wait().expect("wait");
    assert_eq!(st, ExitStatus::Signal(9));
    let restored = cairn_restore::restore(&image, &store).expect("restore");
    (restored, image)
}

/// Run `argv` in a sandbox, do `cycles` checkpoint/kill/restore cycles at most `delay` apart,
/// then wait; returns the final exit status. The program's stdio is /dev/null, so that nothing depends on how the test runner's own
/// stdout is set up (a log file would be reopened by path at restore).
pub fn run_with_cycles(argv: Vec<OsString>, cycles: usize, delay: Duration) -> ExitStatus {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .expect("/dev/null");
    let n = std::os::fd::AsRawFd::as_raw_fd(&null);
    run_with_cycles_stdio(argv, Some([n, n, n]), cycles, delay)
}

/// [`run_with_cycles`] with explicit stdin/stdout/stderr for the program.
pub fn run_with_cycles_stdio(
    argv: Vec<OsString>,
    stdio: Option<[i32; 3]>,
    cycles: usize,
    delay: Duration,
) -> ExitStatus {
    let mut sb = Sandbox::launch_with(cairn_sys::ChildSpec::Exec { argv, stdio }).expect("launch");
    // Checkpoint at random moments: each wait is 50..100 % of `delay`, so the program (whose
    // minimum run time must exceed `cycles * delay`) is always still running.
    let mut rng = Rng::new("restore cycle");
    for _ in 0..cycles {
        let wait = delay.mul_f64(0.5 + rng.range(0, 999) as f64 / 2000.0);
        eprintln!("checkpoint after {wait:?}");
        std::thread::sleep(wait);
        let (r, image) = cycle(sb);
        assert_eq!(image.processes[0].pid, r.program_ns_pid());
        sb = r;
    }
    finish(sb)
}

/// Waits for the sandboxed program to end, at most 180 s: a program that lost what it waits
/// for after a restore (a timer, a wakeup) fails the test instead of hanging it.
pub fn finish(mut sb: Sandbox) -> ExitStatus {
    let limit = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(st) = sb.try_wait().expect("wait") {
            return st;
        }
        if std::time::Instant::now() > limit {
            let _ = sb.kill();
            let _ = sb.wait();
            panic!("the program did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// Run `argv` with stdout/stderr to `out` (truncated, like `>`) and `cycles` checkpoint/kill/
/// restore cycles `delay` apart, each image through a JSON round trip; returns the exit status
/// and every image taken.
pub fn run_cycles_to_file(
    argv: Vec<OsString>,
    out: &Path,
    cycles: usize,
    delay: Duration,
) -> (ExitStatus, Vec<ProcessTreeImage>) {
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .unwrap();
    let o = File::create(out).unwrap();
    let (n, w) = (null.as_raw_fd(), o.as_raw_fd());
    let mut sb = Sandbox::launch_with(ChildSpec::Exec {
        argv,
        stdio: Some([n, w, w]),
    })
    .expect("launch");
    drop(o);
    let mut images = Vec::new();
    for _ in 0..cycles {
        std::thread::sleep(delay);
        let mut store = MemoryImageStore::new();
        let image = cairn_capture::checkpoint(&sb, &mut store)
            .unwrap_or_else(|e| panic!("checkpoint: {e}; output so far:\n{}", read(out)));
        let json = serde_json::to_string(&image).expect("serialize");
        let image: ProcessTreeImage = serde_json::from_str(&json).expect("deserialize");
        eprintln!(
            "checkpoint: processes {:?}, zombies {:?}, ipc {:?}",
            image
                .processes
                .iter()
                .map(|p| (p.pid, p.ppid, &p.exe))
                .collect::<Vec<_>>(),
            image.zombies,
            image.ipc
        );
        sb.kill().expect("kill");
        assert_eq!(sb.wait().expect("wait"), ExitStatus::Signal(9));
        sb = cairn_restore::restore(&image, &store)
            .unwrap_or_else(|e| panic!("restore: {e}; output so far:\n{}", read(out)));
        images.push(image);
    }
    (finish(sb), images)
}
