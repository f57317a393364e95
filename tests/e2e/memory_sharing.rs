//! Memory a forked job shares copy-on-write stays shared through checkpoint → kill -9 →
//! restart cycles: the job's memory use, measured from outside as the sum of the Pss of its
//! processes, is after every restart what it was before the first checkpoint (without the
//! sharing it would be about nine times as much), and the output equals the native run's.

use cairn_testkit::{self as common, descendants, Area, Job, Program, Scratch};
use std::time::{Duration, Instant};

const NAME: &str = "forked_mem";

/// Sum of the anonymous Pss (kB) of the job's program processes, and how many there are.
/// Only anonymous memory: the Pss of the shared libraries changes whenever any process of the
/// machine maps or unmaps them, so on a busy machine the whole Pss never stops changing.
fn job_pss(job: &Job) -> (u64, usize) {
    let mut total = 0;
    let mut n = 0;
    for p in descendants(job.pid()) {
        if common::comm(p) != NAME {
            continue;
        }
        let text = std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")).unwrap_or_default();
        if let Some(kb) = text
            .lines()
            .find_map(|l| l.strip_prefix("Pss_Anon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            total += kb;
            n += 1;
        }
    }
    (total, n)
}

/// The Pss sum once all nine processes are there and it stopped changing (a restore may
/// bring memory in lazily).
fn settled_pss(job: &Job) -> u64 {
    let end = Instant::now() + Duration::from_secs(20);
    let mut last = 0;
    loop {
        std::thread::sleep(Duration::from_millis(150));
        let (pss, n) = job_pss(job);
        if n == 9 && pss == last {
            return pss;
        }
        assert!(
            Instant::now() < end,
            "the job's Pss never settled ({n} processes, {pss} kB)"
        );
        last = pss;
    }
}

fn cycles_keep_memory_shared(user: Option<&str>) {
    let mut prog = Program::c(NAME, &["150"]);
    if let Some(u) = user {
        common::open_up(&common::compile_c(NAME));
        prog = prog.run_as(u);
    }
    let scratch = Scratch::new();
    let native_dir = scratch.sub("native");
    if user.is_some() {
        common::open_up(scratch.root());
        common::open_up(&native_dir);
    }
    let native = common::run_native(&prog, &native_dir);
    assert_eq!(native.code, 0, "the native run failed: {native:?}");

    let dir = scratch.sub("cairn");
    if user.is_some() {
        common::open_up(&dir);
    }
    let store = scratch.store();
    let job_name = format!("forked-{}", user.unwrap_or("root"));
    let mut job = Job::start(&prog, "launch", &store, &job_name, &[], &dir, true);
    job.wait_stdout("step 1 ");
    let before = settled_pss(&job);
    let mut after = Vec::new();
    for cycle in 0..3 {
        assert!(
            job.checkpoint(),
            "cycle {cycle}: no checkpoint; log:\n{}",
            job.log_text()
        );
        job.kill_all();
        job = Job::start(&prog, "restart", &store, &job_name, &[], &dir, false);
        after.push(settled_pss(&job));
    }
    let code = job.wait(Duration::from_secs(120));
    let stdout = std::fs::read(dir.join("stdout")).unwrap_or_default();
    assert_eq!(
        (code, String::from_utf8_lossy(&stdout)),
        (native.code, String::from_utf8_lossy(&native.stdout)),
        "output under cairn differs from the native run"
    );
    // 32 MiB shared by nine processes; without sharing they would hold 9 x 32 MiB. A restore
    // leaves the processes' own small mappings as they were, give or take a few pages.
    for (cycle, &pss) in after.iter().enumerate() {
        let diff = pss.abs_diff(before);
        assert!(
            diff <= before / 20,
            "cycle {cycle}: the job's Pss is {pss} kB after the restart, {before} kB before \
             the first checkpoint (all: {after:?})"
        );
    }
}

#[test]
fn forked_job_memory_stays_shared_through_restarts() {
    let _area = Area::enter(module_path!());
    cycles_keep_memory_shared(None);
}

#[test]
fn forked_job_memory_stays_shared_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    cycles_keep_memory_shared(Some(common::TEST_USER));
}
