//! Differential end-to-end tests: every program runs natively to
//! completion, then under `cairn launch`, is checkpointed at random moments, killed with
//! SIGKILL together with its agent, and restarted with `cairn restart`, three times in a row;
//! its final stdout and files must be byte-identical to the native run's.

use std::time::Duration;

use cairn_testkit::{differential, Area, Cycles, Program};

#[test]
fn counter_printing_to_stdout_and_its_own_file() {
    let _area = Area::enter(module_path!());
    let prog = Program::c("counter", &["1500", "own.txt", "2000"]).with_files(&["own.txt"]);
    differential(&prog, "counter", &Cycles::default());
}

#[test]
fn four_threads_with_mutex_and_condvar() {
    let _area = Area::enter(module_path!());
    let prog = Program::c("threads", &["6000"]);
    differential(&prog, "threads", &Cycles::default());
}

/// ymm8-15, and where the CPU has AVX-512 zmm16-31 and k1-k7, and all eight x87 registers
/// hold live values across the checkpoints (tests/programs/simd.c). The program must have
/// seen the vector extensions /proc/cpuinfo lists: on this machine's CPUs it tests them all.
#[test]
fn live_vector_and_x87_registers_survive() {
    let _area = Area::enter(module_path!());
    let prog = Program::c("simd", &["800"]);
    let out = differential(&prog, "simd", &Cycles::default());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo");
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let has = |f: &str| if flags.contains(&f) { "yes" } else { "no" };
    let text = String::from_utf8_lossy(&out.stdout);
    let expected = format!("avx2: {}, avx512f: {}", has("avx2"), has("avx512f"));
    assert_eq!(text.lines().next(), Some(expected.as_str()), "{text}");
    assert!(text.ends_with("done bad=0\n"), "{text}");
}

#[test]
fn sleep_heavy_loop() {
    let _area = Area::enter(module_path!());
    let prog = Program::c("sleeper", &["80"]);
    differential(&prog, "sleeper", &Cycles::default());
}

#[test]
fn blocked_reading_a_pipe() {
    let _area = Area::enter(module_path!());
    let prog = Program::c("pipe_reader", &["100"]);
    differential(&prog, "pipe", &Cycles::default());
}

#[test]
fn malloc_and_free_heavy() {
    let _area = Area::enter(module_path!());
    let prog = Program::c("malloc_heavy", &["150"]);
    differential(&prog, "malloc", &Cycles::default());
}

#[test]
fn python3_script() {
    let _area = Area::enter(module_path!());
    let prog = Program::script("python3", "compute.py", &["250"]);
    differential(&prog, "python", &Cycles::default());
}

#[test]
fn perl_script() {
    let _area = Area::enter(module_path!());
    let prog = Program::script("perl", "compute.pl", &["300"]);
    differential(&prog, "perl", &Cycles::default());
}

#[test]
fn one_gib_memory_checksum() {
    let _area = Area::enter(module_path!());
    let prog = Program::c("bigmem", &["1024", "30"]);
    let cycles = Cycles {
        before_checkpoint_ms: (1500, 2500),
        finish_timeout: Duration::from_secs(300),
        ..Cycles::default()
    };
    differential(&prog, "bigmem", &cycles);
}

#[test]
fn periodic_checkpoints_with_interval() {
    let _area = Area::enter(module_path!());
    let prog = Program::c("counter", &["1500", "own.txt", "2000"]).with_files(&["own.txt"]);
    let cycles = Cycles {
        use_interval: true,
        launch_args: vec!["--interval".into(), "0.3".into()],
        ..Cycles::default()
    };
    differential(&prog, "interval", &cycles);
}

#[test]
fn unlimited_stack_legacy_layout() {
    let _area = Area::enter(module_path!());
    let prog = Program::c("counter", &["1500", "own.txt", "2000"])
        .with_files(&["own.txt"])
        .with_shell_prefix("ulimit -s unlimited");
    differential(&prog, "unlimited-stack", &Cycles::default());
}

#[test]
fn as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    let prog = Program::c("counter", &["1500", "own.txt", "2000"])
        .with_files(&["own.txt"])
        .run_as("cairn-test");
    cairn_testkit::open_up(&cairn_testkit::compile_c("counter"));
    differential(&prog, "unprivileged", &Cycles::default());
}

#[test]
fn socketpairs_between_parent_and_child() {
    let _area = Area::enter(module_path!());
    let prog = Program::c("sockpair", &["1200"]);
    differential(&prog, "sockpair", &Cycles::default());
}

#[test]
fn unix_path_server_with_two_clients() {
    let _area = Area::enter(module_path!());
    // "." binds the socket under a relative name in the job's working directory.
    let prog = Program::c("unixserver", &[".", "1000"]);
    differential(&prog, "unixserver", &Cycles::default());
}

#[test]
fn system_v_shared_memory_between_processes() {
    let _area = Area::enter(module_path!());
    let prog = Program::c("sysvshm", &["800"]);
    differential(&prog, "sysvshm", &Cycles::default());
}

/// Process and thread state that must be captured and restored, checked by the
/// program itself at every step against what it set up (tests/programs/procstate.c): PID, TIDs
/// and parent; cwd, umask, name; all rlimits (the stack limit raised, then the main stack grown
/// 24 MiB past what was used at the checkpoints); every signal disposition (handlers, SIG_IGN,
/// flags, masks), blocked and pending signals (thread- and process-directed, queued real-time
/// signals with their values), the alternate signal stack, all three itimers; MXCSR and the x87
/// control word (and results that depend on their rounding modes); rseq registration (in two
/// threads) and the robust futex list (a robust mutex whose owner exits after the restarts
/// must be found owner-dead); cmdline, environ, auxv, the mm fields of /proc/PID/stat, the
/// kernel's special mappings with [vdso] where auxv says; anonymous, read-only, PROT_NONE and
/// private file mappings; /dev/zero, /dev/urandom, /dev/null, a file read sequentially (its
/// offset), an append-only log, a deleted file still open. Nine threads with every signal
/// blocked sit in futex waits (with and without timeout), poll, select, read on a pipe,
/// nanosleep, clock_nanosleep, sigtimedwait and wait4 at the checkpoints: any EINTR or early
/// return is reported. The output must equal the native run's, and the native run must report
/// nothing wrong.
#[test]
fn process_and_thread_state_survives() {
    let _area = Area::enter(module_path!());
    let prog = Program::c("procstate", &["600"]).with_files(&["sub/append.log"]);
    check_procstate(&differential(&prog, "procstate", &Cycles::default()));
}

/// The same as an ordinary user: the job in a user namespace, restored eagerly, resource
/// limits set by the unprivileged agent.
#[test]
fn process_and_thread_state_survives_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    let prog = Program::c("procstate", &["600"])
        .with_files(&["sub/append.log"])
        .run_as("cairn-test");
    cairn_testkit::open_up(&cairn_testkit::compile_c("procstate"));
    check_procstate(&differential(&prog, "procstate-user", &Cycles::default()));
}

/// What procstate.c must have reported (the run under cairn equals the native one).
fn check_procstate(out: &cairn_testkit::Outcome) {
    let text = String::from_utf8_lossy(&out.stdout);
    let steps = text.lines().filter(|l| l.starts_with("step ")).count();
    let ok = text.lines().filter(|l| l.ends_with(" ok")).count();
    assert_eq!((steps, ok), (600, 600), "{text}");
    for expected in [
        "deep stack: 1",
        "PROT_NONE area kept its contents: 1",
        "queued process signals: 41 42",
        "thread-pending SIGURG: 1",
        "process-pending SIGWINCH: 1",
        "SIGUSR2 ignored",
        "robust mutex after its owner died: EOWNERDEAD",
        "thread-directed queued signal: 77 (joined), rseq of that thread: on",
        "done",
    ] {
        assert!(
            text.lines().any(|l| l == expected),
            "no {expected:?} in:\n{text}"
        );
    }
    assert_eq!(text.matches("joined, no anomalies").count(), 9, "{text}");
    assert!(
        text.starts_with("threads 12, rseq on, special mappings "),
        "{text}"
    );
    assert!(
        text.contains("[vdso]") && !text.contains("vdso moved"),
        "{text}"
    );
}
