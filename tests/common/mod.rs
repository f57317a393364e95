//! Reusable harness for end-to-end tests of the `cairn` binary: compiling test programs,
//! running them natively and under cairn, checkpointing at random moments, killing whole jobs
//! with SIGKILL, restarting, and comparing the results byte for byte.
//!
//! Each test binary includes this module with `mod common;`; not every test uses every item.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The `cairn` binary under test.
pub fn cairn() -> &'static str {
    env!("CARGO_BIN_EXE_cairn")
}

/// Runs `cairn ARGS` against the store `store` (via `CAIRN_STORE`), without the fault-injection
/// and gc-grace variables of the caller's environment, plus `env`.
pub fn store_cmd(store: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(cairn());
    c.args(args)
        .env("CAIRN_STORE", store)
        .env_remove("CAIRN_FAULT")
        .env_remove("CAIRN_GC_GRACE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("running cairn")
}

/// [`store_cmd`] that must succeed; returns its stdout.
pub fn store_ok(store: &Path, args: &[&str]) -> String {
    let o = store_cmd(store, args, &[]);
    assert!(
        o.status.success(),
        "cairn {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Directory holding the test programs' sources.
pub fn programs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs")
}

/// A per-test-process scratch directory for compiled programs.
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("creating a temporary directory"))
        .path()
}

/// Compiles tests/programs/NAME.c with `cc` (once per test process) and returns the binary.
pub fn compile_c(name: &str) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = bin_dir().join(name);
    if out.exists() {
        return out;
    }
    let src = programs_dir().join(format!("{name}.c"));
    let tmp = bin_dir().join(format!("{name}.tmp{}", std::process::id()));
    let status = Command::new("cc")
        .args(["-O2", "-pthread", "-Wall", "-o"])
        .arg(&tmp)
        .arg(&src)
        .status()
        .expect("running cc");
    assert!(status.success(), "cc failed for {}", src.display());
    fs::rename(&tmp, &out).expect("renaming compiled program");
    out
}

/// Makes `path` (and its parents) readable and writable by everyone, for tests that run as an
/// unprivileged user.
pub fn open_up(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mut p = path.to_path_buf();
    loop {
        if let Ok(meta) = fs::metadata(&p) {
            let mode = meta.permissions().mode();
            let want = if meta.is_dir() {
                mode | 0o777
            } else {
                mode | 0o666
            };
            let _ = fs::set_permissions(&p, fs::Permissions::from_mode(want));
        }
        if p.as_os_str() == std::env::temp_dir().as_os_str() || !p.pop() {
            break;
        }
    }
}

/// A program to run: its argv, and the files it writes (relative to its working directory)
/// that the differential comparison must include besides stdout.
#[derive(Clone, Debug)]
pub struct Program {
    /// argv[0] and the arguments.
    pub argv: Vec<OsString>,
    /// Output files written by the program, relative to its working directory.
    pub files: Vec<String>,
    /// A shell prefix run before exec (e.g. `ulimit -s unlimited`), or empty.
    pub shell_prefix: String,
    /// Run as this user (via `setpriv`), or as the test's own user.
    pub user: Option<String>,
}

impl Program {
    /// A C program from tests/programs, compiled on first use.
    pub fn c(name: &str, args: &[&str]) -> Self {
        let mut argv = vec![compile_c(name).into_os_string()];
        argv.extend(args.iter().map(OsString::from));
        Program {
            argv,
            files: Vec::new(),
            shell_prefix: String::new(),
            user: None,
        }
    }

    /// A script from tests/programs run by `interpreter`.
    pub fn script(interpreter: &str, name: &str, args: &[&str]) -> Self {
        let mut argv = vec![
            OsString::from(interpreter),
            programs_dir().join(name).into_os_string(),
        ];
        argv.extend(args.iter().map(OsString::from));
        Program {
            argv,
            files: Vec::new(),
            shell_prefix: String::new(),
            user: None,
        }
    }

    /// Adds output files to compare.
    pub fn with_files(mut self, files: &[&str]) -> Self {
        self.files.extend(files.iter().map(|s| s.to_string()));
        self
    }

    /// Runs the program (native or under cairn) after this shell snippet, e.g. a ulimit.
    pub fn with_shell_prefix(mut self, prefix: &str) -> Self {
        self.shell_prefix = prefix.to_string();
        self
    }

    /// Runs everything (native run, cairn launch and restart) as `user`.
    pub fn run_as(mut self, user: &str) -> Self {
        self.user = Some(user.to_string());
        self
    }

    /// Wraps a command line with the user switch and shell prefix of this program.
    fn wrap(&self, argv: Vec<OsString>) -> Command {
        let mut full = as_user(self.user.as_deref());
        if !self.shell_prefix.is_empty() {
            full.extend(["sh", "-c"].map(OsString::from));
            full.push(OsString::from(format!(
                "{}; exec \"$@\"",
                self.shell_prefix
            )));
            full.push(OsString::from("sh"));
        }
        full.extend(argv);
        let mut cmd = Command::new(&full[0]);
        cmd.args(&full[1..]);
        cmd
    }
}

/// The start of a command line that runs the rest as `user` (`setpriv`, which execs the
/// command itself: runuser would fork and keep the signals, and the pid would not stay a
/// session or group leader), or nothing without a user.
pub fn as_user(user: Option<&str>) -> Vec<OsString> {
    match user {
        Some(u) => [
            "setpriv".to_string(),
            format!("--reuid={u}"),
            format!("--regid={u}"),
            "--init-groups".to_string(),
            "--".to_string(),
        ]
        .map(OsString::from)
        .to_vec(),
        None => Vec::new(),
    }
}

/// What a run produced: exit status, stdout, and the program's own files.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The exit code (128+N for signal N).
    pub code: i32,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// The contents of the program's own output files.
    pub files: BTreeMap<String, Vec<u8>>,
}

fn code_of(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn collect(prog: &Program, dir: &Path, status: ExitStatus) -> Outcome {
    let stdout = fs::read(dir.join("stdout")).unwrap_or_default();
    let files = prog
        .files
        .iter()
        .map(|f| (f.clone(), fs::read(dir.join(f)).unwrap_or_default()))
        .collect();
    Outcome {
        code: code_of(status),
        stdout,
        files,
    }
}

/// A fresh scratch area for one test: a store and working directories.
pub struct Scratch {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
}

impl Scratch {
    /// Creates the scratch area.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cairn-e2e")
            .tempdir()
            .expect("tempdir");
        Scratch { dir }
    }

    /// The path of the store (created by the first launch).
    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// A subdirectory, created on demand.
    pub fn sub(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        fs::create_dir_all(&p).expect("creating a scratch directory");
        p
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs the program natively to completion in `dir`, stdout into `dir/stdout`.
pub fn run_native(prog: &Program, dir: &Path) -> Outcome {
    let stdout = File::create(dir.join("stdout")).expect("creating stdout file");
    let status = prog
        .wrap(prog.argv.clone())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .status()
        .expect("running the program natively");
    collect(prog, dir, status)
}

/// One incarnation of a job under cairn: the `cairn launch`/`restart`/`run` process, in a
/// process group of its own so that the whole job can be killed at once.
pub struct Job {
    /// The cairn process.
    pub child: Child,
    /// Its stderr, a file in the job's directory.
    pub log: PathBuf,
    /// The job's working directory.
    pub dir: PathBuf,
}

/// Counts the lines of `log` containing `needle`.
pub fn count_lines(log: &Path, needle: &str) -> usize {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// The marker the agent prints on stderr after committing a generation.
pub const COMMITTED: &str = "checkpoint committed";
/// The marker the agent prints on stderr once it handles signals and runs the program.
pub const RUNNING: &str = "running (agent pid";
/// The marker the agent prints on stderr when a checkpoint starts.
pub const STARTED: &str = "checkpoint started";

static LOG_SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Job {
    /// Starts `cairn VERB --store STORE --job NAME EXTRA... [-- PROG...]` in `dir`, stdout
    /// going to `dir/stdout` (created if missing, never truncated: a restarted program reopens
    /// it and writes on from its saved offset), stderr to a fresh log file.
    pub fn start(
        prog: &Program,
        verb: &str,
        store: &Path,
        job: &str,
        extra: &[&str],
        dir: &Path,
        with_program: bool,
    ) -> Job {
        let seq = LOG_SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log = dir.join(format!("cairn-{verb}-{seq}.log"));
        let stdout = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(dir.join("stdout"))
            .expect("opening stdout file");
        let stderr = File::create(&log).expect("creating log");
        let mut argv: Vec<OsString> = vec![cairn().into(), verb.into(), "--store".into()];
        argv.push(store.as_os_str().to_owned());
        argv.push("--job".into());
        argv.push(job.into());
        argv.extend(extra.iter().map(OsString::from));
        if with_program {
            argv.push("--".into());
            argv.extend(prog.argv.iter().cloned());
        }
        if prog.user.is_some() {
            // A restarted program reopens its stdout and stderr files as the user.
            open_up(&dir.join("stdout"));
            open_up(&log);
        }
        let child = prog
            .wrap(argv)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .expect("spawning cairn");
        Job {
            child,
            log,
            dir: dir.to_path_buf(),
        }
    }

    /// The agent's stderr so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The PID of the cairn process (also its process group).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// True while the cairn process has not exited.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `sig` to the cairn process (the agent; with `runuser`, the process `runuser`
    /// forwards it to).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a valid PID of our own child and a valid signal number.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits until the log contains `needle` at least `n` times; false if the job ended or the
    /// timeout passed first.
    pub fn wait_for_lines(&mut self, needle: &str, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if count_lines(&self.log, needle) >= n {
                return true;
            }
            if !self.running() {
                return count_lines(&self.log, needle) >= n;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Asks the agent for a checkpoint (SIGUSR1) and waits until it is committed.
    pub fn checkpoint(&mut self) -> bool {
        let before = count_lines(&self.log, COMMITTED);
        self.signal(libc::SIGUSR1);
        self.wait_for_lines(COMMITTED, before + 1, Duration::from_secs(120))
    }

    /// Kills the whole job (agent and every process of the program) with SIGKILL and waits
    /// until none of them is left.
    pub fn kill_all(mut self) {
        let pgid = self.pid();
        // SAFETY: killpg(2) on the process group we created for this job.
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
        let _ = self.child.wait();
        wait_group_gone(pgid);
    }

    /// Waits for the cairn process to exit (at most `timeout`) and returns its exit code.
    pub fn wait(mut self, timeout: Duration) -> i32 {
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                let pgid = self.pid();
                wait_group_gone(pgid);
                return code_of(st);
            }
            if Instant::now() > end {
                let text = self.log_text();
                let pgid = self.pid();
                // SAFETY: killpg(2) on the process group we created for this job.
                unsafe { libc::killpg(pgid, libc::SIGKILL) };
                let _ = self.child.wait();
                panic!("cairn did not finish within {timeout:?}; its log:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Waits (bounded) until no process of group `pgid` remains.
fn wait_group_gone(pgid: i32) {
    let end = Instant::now() + Duration::from_secs(20);
    // SAFETY: kill(2) with signal 0 only probes for existence.
    while unsafe { libc::kill(-pgid, 0) } == 0 {
        assert!(
            Instant::now() < end,
            "processes of job group {pgid} survived SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

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
    let status = ExitStatus::from_raw_code(code);
    (collect(prog, &dir, status), logs)
}

trait FromRawCode {
    fn from_raw_code(code: i32) -> ExitStatus;
}

impl FromRawCode for ExitStatus {
    fn from_raw_code(code: i32) -> ExitStatus {
        use std::os::unix::process::ExitStatusExt as _;
        ExitStatus::from_raw((code & 0xff) << 8)
    }
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

fn tail(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// Every file below `dir` (recursively), sorted.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_below(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Flips one byte in the middle of the chunk stored at `offset` (`stored_len` bytes) of the
/// pack file `pack`: the chunk no longer matches its hash.
pub fn damage_chunk(pack: &Path, offset: u64, stored_len: u32) {
    let mut data = fs::read(pack).expect("reading a pack");
    let at = (offset + u64::from(stored_len) / 2) as usize;
    data[at] ^= 0x5a;
    fs::write(pack, data).expect("writing a pack");
}

/// Damages one memory chunk (full chunk size; nodes, trees and the image are smaller or
/// differently sized) that generation `which` (0 = oldest) of `job` reaches and no other
/// generation of the job does: the generation's structure (manifest, nodes, chunk locations)
/// stays sound, so only the restore itself, which verifies every chunk as it reads it, can
/// find the damage. Not just any chunk of a new pack: the pre-copy also stores pages that
/// were rewritten before the freeze, and no generation reaches those.
pub fn damage_a_memory_chunk_only_in(store: &Path, job: &str, which: usize) {
    let st = cairn_store::Store::open(store).unwrap();
    let cs = st.config().memory_chunk_size;
    let mut gens = st.generations(Some(job)).unwrap();
    gens.sort_by_key(|g| g.id.0);
    let reached: Vec<_> = gens.iter().map(|g| st.reach(&g.root).leaves).collect();
    let (pack, e) = files_below(&store.join("packs"))
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".pack") && !name.starts_with(".tmp-")
        })
        .flat_map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            st.pack_entries(&name)
                .unwrap()
                .into_iter()
                .map(move |e| (p.clone(), e))
        })
        .filter(|(_, e)| {
            e.raw_len == cs
                && reached
                    .iter()
                    .enumerate()
                    .all(|(i, leaves)| leaves.contains(&e.id) == (i == which))
        })
        .max_by_key(|(_, e)| e.stored_len)
        .unwrap_or_else(|| panic!("generation {which} of {job} has no memory chunk of its own"));
    drop(st);
    damage_chunk(&pack, e.offset, e.stored_len);
}

impl Job {
    /// Waits until a line of the job's stdout file starts with `line`; panics (with the log)
    /// when the job ends or a minute passes first.
    pub fn wait_stdout(&mut self, line: &str) {
        let end = Instant::now() + Duration::from_secs(60);
        while !fs::read_to_string(self.dir.join("stdout"))
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with(line))
        {
            assert!(
                self.running() && Instant::now() < end,
                "no {line:?} on stdout; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// `cairn generations --json --job JOB` on `store`: the job's generations, oldest first.
pub fn generations_json(store: &Path, job: &str) -> Vec<serde_json::Value> {
    let out = store_ok(store, &["generations", "--json", "--job", job]);
    serde_json::from_str(&out).expect("parsing cairn generations --json")
}
