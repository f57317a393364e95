//! The differential harness: a program's native outcome must equal its outcome under cairn
//! with checkpoints at random moments, each followed by kill -9 and a restart.

use std::fmt::Write as _;
use std::fs;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::job::{Job, COMMITTED};
use crate::program::{collect, run_native, Outcome, Program};
use crate::scratch::Scratch;
use crate::users::open_up;

/// A small deterministic PRNG for random moments (seed printed by each test, override with
/// CAIRN_TEST_SEED to replay a failure).
pub struct Rng(u64);

impl Rng {
    /// Seeds from CAIRN_TEST_SEED or the clock, and prints the seed.
    pub fn new(test: &str) -> Self {
        let seed = std::env::var("CAIRN_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("{test}: CAIRN_TEST_SEED={seed}");
        Rng(seed | 1)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + self.0 % (hi - lo + 1)
    }

    /// A random duration between `lo_ms` and `hi_ms` milliseconds.
    pub fn millis(&mut self, lo_ms: u64, hi_ms: u64) -> Duration {
        Duration::from_millis(self.range(lo_ms, hi_ms))
    }
}

/// How a differential test checkpoints and kills.
#[derive(Clone, Debug)]
pub struct Cycles {
    /// Number of checkpoint → kill -9 → restart cycles (at least three for the proofs).
    pub count: usize,
    /// Random delay before each checkpoint, in milliseconds (from the job's start).
    pub before_checkpoint_ms: (u64, u64),
    /// Random delay between a committed checkpoint and the SIGKILL, in milliseconds.
    pub before_kill_ms: (u64, u64),
    /// Extra arguments for `cairn launch` (e.g. `--interval 1`).
    pub launch_args: Vec<String>,
    /// Use periodic checkpoints (--interval) instead of SIGUSR1: wait for this many
    /// committed checkpoints per incarnation.
    pub use_interval: bool,
    /// How long the final incarnation may take to finish.
    pub finish_timeout: Duration,
}

impl Default for Cycles {
    fn default() -> Self {
        Cycles {
            count: 3,
            before_checkpoint_ms: (100, 500),
            before_kill_ms: (0, 200),
            launch_args: Vec::new(),
            use_interval: false,
            finish_timeout: Duration::from_secs(120),
        }
    }
}

/// Runs `prog` under cairn through `cycles` checkpoint → SIGKILL → restart cycles, then lets
/// the last incarnation finish. Returns the outcome of the job and the logs (for messages).
pub fn run_cycles(
    prog: &Program,
    scratch: &Scratch,
    job: &str,
    cycles: &Cycles,
) -> (Outcome, String) {
    let dir = scratch.sub("cairn");
    let store = scratch.store();
    if prog.user.is_some() {
        open_up(scratch.dir.path());
        open_up(&dir);
    }
    let mut rng = Rng::new(job);
    let launch_args: Vec<&str> = cycles.launch_args.iter().map(String::as_str).collect();
    let mut job_run = Job::start(prog, "launch", &store, job, &launch_args, &dir, true);
    // Checkpoint the program itself, not an interpreter's start-up: wait for its first output.
    let started = Instant::now();
    while fs::metadata(dir.join("stdout"))
        .map(|m| m.len())
        .unwrap_or(0)
        == 0
        && job_run.running()
        && started.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut logs = String::new();
    for cycle in 0..cycles.count {
        std::thread::sleep(
            rng.millis(cycles.before_checkpoint_ms.0, cycles.before_checkpoint_ms.1),
        );
        let ok = if cycles.use_interval {
            job_run.wait_for_lines(COMMITTED, 1, Duration::from_secs(120))
        } else {
            job_run.checkpoint()
        };
        logs.push_str(&job_run.log_text());
        assert!(
            ok,
            "cycle {cycle}: no checkpoint was committed; logs:\n{logs}"
        );
        std::thread::sleep(rng.millis(cycles.before_kill_ms.0, cycles.before_kill_ms.1));
        assert!(
            job_run.running(),
            "cycle {cycle}: the job finished too early; logs:\n{logs}"
        );
        job_run.kill_all();
        job_run = Job::start(prog, "restart", &store, job, &launch_args, &dir, false);
    }
    let last_log = job_run.log.clone();
    let code = job_run.wait(cycles.finish_timeout);
    logs.push_str(&fs::read_to_string(&last_log).unwrap_or_default());
    let status = exit_status_of_code(code);
    (collect(prog, &dir, status), logs)
}

/// The exit status of a process that exited with `code`.
fn exit_status_of_code(code: i32) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt as _;
    ExitStatus::from_raw((code & 0xff) << 8)
}

/// The differential proof: native outcome == outcome under cairn with kill -9 cycles. Returns
/// the (common) outcome, for tests that also check what the program reported.
pub fn differential(prog: &Program, job: &str, cycles: &Cycles) -> Outcome {
    let scratch = Scratch::new();
    let native_dir = scratch.sub("native");
    if prog.user.is_some() {
        open_up(&native_dir);
    }
    let native = run_native(prog, &native_dir);
    assert_eq!(native.code, 0, "the native run failed: {native:?}");
    let (under_cairn, logs) = run_cycles(prog, &scratch, job, cycles);
    if under_cairn != native {
        let mut msg = String::new();
        let _ = writeln!(
            msg,
            "exit code native {} vs cairn {}",
            native.code, under_cairn.code
        );
        let _ = writeln!(
            msg,
            "stdout identical: {}",
            native.stdout == under_cairn.stdout
        );
        for (f, data) in &native.files {
            let _ = writeln!(
                msg,
                "file {f} identical: {}",
                under_cairn.files.get(f) == Some(data)
            );
        }
        let _ = writeln!(msg, "cairn stdout tail:\n{}", tail(&under_cairn.stdout));
        let _ = writeln!(
            msg,
            "{}",
            first_difference(&native.stdout, &under_cairn.stdout)
        );
        panic!("differential mismatch for {job}:\n{msg}\nlogs:\n{logs}");
    }
    native
}

/// The first line where two outputs differ, with its number, from both sides.
fn first_difference(native: &[u8], cairn: &[u8]) -> String {
    let (a, b) = (
        String::from_utf8_lossy(native),
        String::from_utf8_lossy(cairn),
    );
    let (mut la, mut lb) = (a.lines(), b.lines());
    for n in 1.. {
        match (la.next(), lb.next()) {
            (None, None) => break,
            (x, y) if x == y => continue,
            (x, y) => {
                return format!(
                    "first difference, line {n}:\n  native: {}\n  cairn:  {}",
                    x.unwrap_or("<end>"),
                    y.unwrap_or("<end>")
                )
            }
        }
    }
    "stdout: no line differs (the bytes do)".into()
}

/// The last ten lines of `b`.
fn tail(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}
