//! Jobs whose processes outlive the launched one: a daemon (double fork, setsid, its session
//! and group leader gone, adopted by the job's init) and a shell script that leaves a
//! background process behind are checkpointed, killed and restarted like any job; the job
//! ends with its last process and passes on the launched program's exit code. The output
//! under cairn equals the native run's (natively too the run lasts until no process holds
//! its stdout). The layouts themselves are checked by the conformance programs (daemonize,
//! orphan, sessions, pgrp_dead_lead, sess_dead_lead, zombie_pgrp).

use cairn_testkit::{self as common, differential, Area, Cycles, Program};
use std::ffi::OsString;
use std::time::Duration;

/// `sh -c SCRIPT ticker` with the ticker program as `$0`.
fn shell(script: &str) -> Program {
    let ticker = common::compile_c("ticker");
    Program {
        argv: vec![
            OsString::from("sh"),
            OsString::from("-c"),
            OsString::from(script),
            ticker.into_os_string(),
        ],
        files: Vec::new(),
        shell_prefix: String::new(),
        user: None,
    }
}

fn check_ticks(stdout: &[u8], count: usize) {
    let text = String::from_utf8_lossy(stdout);
    let ticks: Vec<&str> = text.lines().filter(|l| l.starts_with("tick ")).collect();
    assert_eq!(ticks.len(), count, "{text}");
    assert!(ticks.iter().all(|l| l.ends_with(" same")), "{text}");
}

#[test]
fn a_daemon_is_checkpointed_and_restarted_three_times() {
    let _area = Area::enter(module_path!());
    let prog = Program::c("ticker", &["daemon", "400"]);
    let out = differential(&prog, "daemon-root", &Cycles::default());
    check_ticks(&out.stdout, 400);
}

#[test]
fn a_daemon_survives_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    common::open_up(&common::compile_c("ticker"));
    let prog = Program::c("ticker", &["daemon", "400"]).run_as("cairn-test");
    let out = differential(&prog, "daemon-user", &Cycles::default());
    check_ticks(&out.stdout, 400);
}

#[test]
fn a_background_process_left_by_a_shell_is_checkpointed_and_restarted() {
    let _area = Area::enter(module_path!());
    let prog = shell("\"$0\" plain 400 & exit 0");
    let out = differential(&prog, "bg-script", &Cycles::default());
    check_ticks(&out.stdout, 400);
}

/// The job ends with its last process; its exit code is the launched program's, although
/// that one ended long before.
#[test]
fn the_job_ends_with_its_last_process_and_the_launched_programs_exit_code() {
    let _area = Area::enter(module_path!());
    let prog = shell("\"$0\" plain 25 & exit 5");
    let scratch = common::Scratch::new();
    let dir = scratch.sub("cairn");
    let job = common::Job::start(
        &prog,
        "launch",
        &scratch.store(),
        "exit-code",
        &[],
        &dir,
        true,
    );
    let code = job.wait(Duration::from_secs(60));
    assert_eq!(code, 5);
    let stdout = std::fs::read(dir.join("stdout")).unwrap_or_default();
    check_ticks(&stdout, 25);
}
