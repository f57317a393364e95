//! A checkpoint is one instant of the program's memory, whatever the program writes while its
//! memory is saved (copy-on-write snapshots, docs/snapshot.md). A program rewrites all its
//! memory at full speed, in one or more threads, each page stamped with the writer's step
//! in both halves; it is checkpointed several times while it writes, killed, and restarted
//! from every generation. Restarted, each writer checks every page before rewriting it: a
//! page older or newer than the instant of the checkpoint, or torn, makes it fail
//! (tests/programs/rewriter.c). Also with a forked child sharing memory copy-on-write, with
//! memory a clone does not inherit (MADV_DONTFORK, MADV_WIPEONFORK), and as an unprivileged
//! user; the snapshot's clones never outlive the checkpoint.

use std::time::{Duration, Instant};

use cairn_testkit::{
    self as common, descendants, generations_json, Area, Job, Program, Scratch, RUNNING, TEST_USER,
};

const MIB: &str = "128";
const CHECKPOINTS: usize = 3;

fn rewriter(threads: &str, mode: &str, user: Option<&str>) -> Program {
    let prog = Program::c("rewriter", &[MIB, threads, mode]);
    match user {
        Some(u) => {
            common::open_up(&common::compile_c("rewriter"));
            prog.run_as(u)
        }
        None => prog,
    }
}

/// Processes of the job named `rewriter` (the snapshot's clones carry the same name).
fn rewriters(job: &Job) -> usize {
    descendants(job.pid())
        .into_iter()
        .filter(|&p| common::comm(p) == "rewriter")
        .count()
}

/// Checkpoints the rewriter `CHECKPOINTS` times while it writes, then restarts every
/// generation: each must run, check all its pages and end with exit code 0.
fn every_checkpoint_is_one_instant(
    threads: &str,
    mode: &str,
    processes: usize,
    user: Option<&str>,
) {
    let job = format!("snap-{mode}-{threads}");
    let scratch = Scratch::new();
    let dir = scratch.sub("cairn");
    let store = scratch.store();
    if user.is_some() {
        common::open_up(scratch.root());
        common::open_up(&dir);
    }
    let prog = rewriter(threads, mode, user);
    let mut run = Job::start(&prog, "launch", &store, &job, &[], &dir, true);
    run.wait_stdout("ready");
    for k in 0..CHECKPOINTS {
        assert!(
            run.checkpoint(),
            "checkpoint {k} failed:\n{}",
            run.log_text()
        );
        // Committed means drained: the clones are gone, only the program's processes run.
        assert_eq!(
            rewriters(&run),
            processes,
            "after checkpoint {k} the job has other processes than the program's"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(run.running(), "the program stopped:\n{}", run.log_text());
    run.kill_all();
    let gens = generations_json(&store, &job);
    assert_eq!(gens.len(), CHECKPOINTS);
    for g in gens.iter().map(|g| g["id"].as_u64().unwrap_or(0)) {
        let mut run = Job::start(
            &prog,
            "restart",
            &store,
            &job,
            &["--generation", &g.to_string()],
            &dir,
            false,
        );
        assert!(
            run.wait_for_lines(RUNNING, 1, Duration::from_secs(60)),
            "restart of generation {g} did not run:\n{}",
            run.log_text()
        );
        // Every writer checks each of its pages within one sweep (milliseconds); SIGUSR2
        // then ends the program after two more checked sweeps.
        std::thread::sleep(Duration::from_millis(300));
        let end = Instant::now() + Duration::from_secs(60);
        while run.running() && Instant::now() < end {
            run.signal(libc::SIGUSR2);
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = run.log_text();
        let code = run.wait(Duration::from_secs(5));
        let out = std::fs::read_to_string(dir.join("stdout")).unwrap_or_default();
        assert_eq!(
            code, 0,
            "restart of generation {g} exited with {code}: not one instant\n{out}\n{log}"
        );
    }
}

#[test]
fn a_program_rewriting_all_its_memory_restarts_from_every_checkpoint_as_one_instant() {
    let _area = Area::enter(module_path!());
    every_checkpoint_is_one_instant("1", "plain", 1, None);
}

#[test]
fn three_threads_rewriting_memory_restart_from_one_instant() {
    let _area = Area::enter(module_path!());
    every_checkpoint_is_one_instant("3", "plain", 1, None);
}

#[test]
fn a_forked_child_sharing_memory_copy_on_write_restarts_from_the_same_instant() {
    let _area = Area::enter(module_path!());
    every_checkpoint_is_one_instant("1", "fork", 2, None);
}

#[test]
fn memory_a_clone_does_not_inherit_dontfork_wipeonfork_is_saved_at_the_instant_too() {
    let _area = Area::enter(module_path!());
    every_checkpoint_is_one_instant("2", "advise", 1, None);
}

#[test]
fn an_unprivileged_job_gets_the_same_instant() {
    let _area = Area::enter(module_path!());
    every_checkpoint_is_one_instant("2", "plain", 1, Some(TEST_USER));
}

#[test]
fn an_unprivileged_forked_job_gets_the_same_instant() {
    let _area = Area::enter(module_path!());
    every_checkpoint_is_one_instant("1", "fork", 2, Some(TEST_USER));
}
