//! Differential end-to-end tests (issue 3, "Proof"): every program runs natively to
//! completion, then under `cairn launch`, is checkpointed at random moments, killed with
//! SIGKILL together with its agent, and restarted with `cairn restart`, three times in a row;
//! its final stdout and files must be byte-identical to the native run's.

mod common;

use std::time::Duration;

use common::{differential, Cycles, Program};

#[test]
fn counter_printing_to_stdout_and_its_own_file() {
    let prog = Program::c("counter", &["1500", "own.txt", "2000"]).with_files(&["own.txt"]);
    differential(&prog, "counter", &Cycles::default());
}

#[test]
fn four_threads_with_mutex_and_condvar() {
    let prog = Program::c("threads", &["6000"]);
    differential(&prog, "threads", &Cycles::default());
}

#[test]
fn live_ymm_registers_survive() {
    let prog = Program::c("simd", &["800"]);
    differential(&prog, "simd", &Cycles::default());
}

#[test]
fn sleep_heavy_loop() {
    let prog = Program::c("sleeper", &["80"]);
    differential(&prog, "sleeper", &Cycles::default());
}

#[test]
fn blocked_reading_a_pipe() {
    let prog = Program::c("pipe_reader", &["100"]);
    differential(&prog, "pipe", &Cycles::default());
}

#[test]
fn malloc_and_free_heavy() {
    let prog = Program::c("malloc_heavy", &["150"]);
    differential(&prog, "malloc", &Cycles::default());
}

#[test]
fn python3_script() {
    let prog = Program::script("python3", "compute.py", &["250"]);
    differential(&prog, "python", &Cycles::default());
}

#[test]
fn perl_script() {
    let prog = Program::script("perl", "compute.pl", &["300"]);
    differential(&prog, "perl", &Cycles::default());
}

#[test]
fn one_gib_memory_checksum() {
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
    let prog = Program::c("counter", &["1500", "own.txt", "2000"])
        .with_files(&["own.txt"])
        .with_shell_prefix("ulimit -s unlimited");
    differential(&prog, "unlimited-stack", &Cycles::default());
}

#[test]
fn as_unprivileged_user() {
    let prog = Program::c("counter", &["1500", "own.txt", "2000"])
        .with_files(&["own.txt"])
        .run_as("cairn-test");
    common::open_up(&common::compile_c("counter"));
    differential(&prog, "unprivileged", &Cycles::default());
}

#[test]
fn socketpairs_between_parent_and_child() {
    let prog = Program::c("sockpair", &["1200"]);
    differential(&prog, "sockpair", &Cycles::default());
}

#[test]
fn unix_path_server_with_two_clients() {
    // "." binds the socket under a relative name in the job's working directory.
    let prog = Program::c("unixserver", &[".", "1000"]);
    differential(&prog, "unixserver", &Cycles::default());
}

#[test]
fn system_v_shared_memory_between_processes() {
    let prog = Program::c("sysvshm", &["800"]);
    differential(&prog, "sysvshm", &Cycles::default());
}
