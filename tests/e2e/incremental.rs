//! Incremental checkpoints: dirty-page tracking with userfaultfd write-protect and
//! PAGEMAP_SCAN. A program rewrites part of a large buffer (and maps, grows, moves and unmaps a
//! side mapping, and drops pages with MADV_DONTNEED) between checkpoints; every generation
//! must restart to the native run's results, the userfaultfd must never be one of the
//! program's descriptors, the second generation must cost about what changed, and turning
//! tracking off must give full checkpoints with the same results.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use cairn_testkit::{
    generations_json, run_native, Area, Job, Program, Scratch, RUNNING, TEST_USER,
};

const MIB: &str = "96";
const ROUNDS: usize = 6;
const BLOCK: u64 = 64 * 1024;

/// Runs cairn with `CAIRN_DIRTY_TRACKING=0` unless `tracking`, as `user` if given.
fn with_tracking(prog: Program, tracking: bool, user: Option<&str>) -> Program {
    let prog = if tracking {
        prog
    } else {
        prog.with_shell_prefix("export CAIRN_DIRTY_TRACKING=0")
    };
    match user {
        Some(u) => prog.run_as(u),
        None => prog,
    }
}

/// `dirtymem MIB PERMILLE ROUNDS MODE`.
fn dirtymem(permille: &str, mode: &str) -> Program {
    Program::c("dirtymem", &[MIB, permille, &ROUNDS.to_string(), mode])
}

/// Sends one SIGUSR2 (forwarded to the program, which blocks it until it waits for it: exactly
/// one more round) and waits until `line` appears.
fn advance_to(job: &mut Job, line: &str) {
    job.signal(libc::SIGUSR2);
    job.wait_stdout(line);
}

/// Pids of running `dirtymem` processes (not the agents, which hold the userfaultfds).
fn dirtymem_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|p| p.to_string_lossy().ends_with("/dirtymem"))
        })
        .collect()
}

fn info_u64(g: &serde_json::Value, path: &[&str]) -> u64 {
    let mut v = &g["info"];
    for p in path {
        v = &v[p];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("no info.{path:?} in {g}"))
}

/// Launches the program in signal mode and takes `checkpoints` checkpoints, one before each
/// round; the rounds' outputs are in `dir/stdout`. Returns the store.
fn launch_and_checkpoint(
    scratch: &Scratch,
    job: &str,
    permille: &str,
    checkpoints: usize,
    tracking: bool,
    user: Option<&str>,
) -> std::path::PathBuf {
    let dir = scratch.sub("cairn");
    let store = scratch.store();
    if user.is_some() {
        cairn_testkit::open_up(scratch.dir.path());
        cairn_testkit::open_up(&dir);
        cairn_testkit::open_up(&cairn_testkit::compile_c("dirtymem"));
    }
    let prog = with_tracking(dirtymem(permille, "signal"), tracking, user);
    let mut run = Job::start(&prog, "launch", &store, job, &[], &dir, true);
    run.wait_stdout("ready");
    for k in 0..checkpoints {
        assert!(
            run.checkpoint(),
            "checkpoint {k} failed:\n{}",
            run.log_text()
        );
        if tracking {
            for pid in dirtymem_pids() {
                for fd in fs::read_dir(format!("/proc/{pid}/fd"))
                    .into_iter()
                    .flatten()
                {
                    let link = fd
                        .map(|e| fs::read_link(e.path()))
                        .ok()
                        .and_then(|l| l.ok());
                    let link = link.map(|l| l.to_string_lossy().into_owned());
                    assert!(
                        !link.unwrap_or_default().contains("userfaultfd"),
                        "the program {pid} sees a userfaultfd"
                    );
                }
            }
        }
        advance_to(&mut run, &format!("round {k} "));
    }
    run.kill_all();
    store
}

/// Restarts every generation in turn and lets it finish; each must end with the native
/// run's stdout (a restarted program rewrites its stdout from its saved offset).
fn restart_each(
    scratch: &Scratch,
    store: &Path,
    job: &str,
    gens: &[u64],
    native: &[u8],
    tracking: bool,
    user: Option<&str>,
) {
    let dir = scratch.sub("cairn");
    let prog = with_tracking(dirtymem("0", "signal"), tracking, user);
    for &g in gens {
        let mut run = Job::start(
            &prog,
            "restart",
            store,
            job,
            &["--generation", &g.to_string()],
            &dir,
            false,
        );
        assert!(
            run.wait_for_lines(RUNNING, 1, Duration::from_secs(60)),
            "restart of generation {g} did not run:\n{}",
            run.log_text()
        );
        // The stdout file already holds "done" from earlier runs: signal until it exits.
        let end = Instant::now() + Duration::from_secs(60);
        while run.running() && Instant::now() < end {
            run.signal(libc::SIGUSR2);
            std::thread::sleep(Duration::from_millis(50));
        }
        let code = run.wait(Duration::from_secs(1));
        assert_eq!(code, 0, "restart of generation {g} exited with {code}");
        let got = fs::read(dir.join("stdout")).unwrap_or_default();
        assert!(
            got == native,
            "restart of generation {g}: stdout differs from the native run:\n{}\nvs native\n{}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(native)
        );
    }
}

fn native_stdout(scratch: &Scratch, permille: &str) -> Vec<u8> {
    let out = run_native(&dirtymem(permille, "timed"), &scratch.sub("native"));
    assert_eq!(out.code, 0, "native run failed");
    out.stdout
}

fn every_generation_restarts(permille: &str, job: &str, user: Option<&str>) {
    let scratch = Scratch::new();
    let native = native_stdout(&scratch, permille);
    let store = launch_and_checkpoint(&scratch, job, permille, 4, true, user);
    let gens = generations_json(&store, job);
    assert_eq!(gens.len(), 4);
    // Every checkpoint after the first skipped most pages: tracking was in effect.
    for g in &gens[1..] {
        let (scanned, skipped) = (
            info_u64(g, &["pages_scanned"]),
            info_u64(g, &["pages_skipped"]),
        );
        assert!(
            skipped > scanned,
            "generation {g}: scanned {scanned} pages, skipped only {skipped}"
        );
    }
    let ids: Vec<u64> = gens.iter().map(|g| g["id"].as_u64().unwrap_or(0)).collect();
    restart_each(&scratch, &store, job, &ids, &native, true, user);
}

#[test]
fn ten_percent_dirty_every_generation_restarts_to_native_result() {
    let _area = Area::enter(module_path!());
    every_generation_restarts("100", "dirty10", None);
}

#[test]
fn unprivileged_user_gets_incremental_checkpoints_too() {
    let _area = Area::enter(module_path!());
    every_generation_restarts("10", "dirty-user", Some(TEST_USER));
}

#[test]
fn one_percent_dirty_every_generation_restarts_to_native_result() {
    let _area = Area::enter(module_path!());
    every_generation_restarts("10", "dirty1", None);
}

#[test]
fn second_generation_writes_about_the_changed_bytes() {
    let _area = Area::enter(module_path!());
    let scratch = Scratch::new();
    let store = launch_and_checkpoint(&scratch, "cost", "10", 2, true, None);
    let gens = generations_json(&store, "cost");
    let second = &gens[1];
    let mib: u64 = MIB.parse().unwrap_or(0);
    // Round 0: 1% of the 64 KiB blocks rewritten with random data, one 4-block side
    // mapping created and filled (incompressible), one block dropped.
    let blocks = (mib << 20) / BLOCK * 10 / 1000;
    let changed = (blocks + 4) * BLOCK;
    let written = info_u64(second, &["stats", "new_stored_bytes"]);
    assert!(
        written <= changed * 3 / 2,
        "generation 2 wrote {written} bytes for {changed} changed bytes"
    );
    assert!(
        written >= changed / 2,
        "generation 2 wrote only {written} bytes for {changed} changed bytes"
    );
    let skipped = info_u64(second, &["pages_skipped"]);
    assert!(
        skipped >= (mib << 20) / 4096 * 9 / 10,
        "generation 2 skipped only {skipped} pages"
    );
}

#[test]
fn tracking_disabled_takes_full_checkpoints_with_the_same_results() {
    let _area = Area::enter(module_path!());
    let scratch = Scratch::new();
    let native = native_stdout(&scratch, "100");
    let store = launch_and_checkpoint(&scratch, "untracked", "100", 3, false, None);
    let gens = generations_json(&store, "untracked");
    let mib: u64 = MIB.parse().unwrap_or(0);
    for g in &gens {
        let scanned = info_u64(g, &["pages_scanned"]);
        assert!(
            scanned >= (mib << 20) / 4096,
            "generation {g}: only {scanned} pages read with tracking disabled"
        );
    }
    let ids: Vec<u64> = gens.iter().map(|g| g["id"].as_u64().unwrap_or(0)).collect();
    restart_each(&scratch, &store, "untracked", &ids, &native, false, None);
}

/// Restarts generation `g` of `job` in `dir`, sends SIGUSR2 until the program exits, and
/// returns its exit code and the stdout file.
fn restart_and_stop(store: &Path, job: &str, g: u64, prog: &Program, dir: &Path) -> (i32, String) {
    let mut run = Job::start(
        prog,
        "restart",
        store,
        job,
        &["--generation", &g.to_string()],
        dir,
        false,
    );
    assert!(
        run.wait_for_lines(RUNNING, 1, Duration::from_secs(60)),
        "restart of generation {g} did not run:\n{}",
        run.log_text()
    );
    let end = Instant::now() + Duration::from_secs(120);
    while run.running() && Instant::now() < end {
        run.signal(libc::SIGUSR2);
        std::thread::sleep(Duration::from_millis(100));
    }
    let code = run.wait(Duration::from_secs(1));
    (
        code,
        fs::read_to_string(dir.join("stdout")).unwrap_or_default(),
    )
}

/// A program writes random words of a 64 MiB buffer without pause and replaces mappings
/// (mmap, mremap, munmap) without pause while it is checkpointed: pre-copy copies memory
/// that is being written and mappings that are being replaced. After a restart of each
/// generation the program replays its recorded writes and checks every word and every
/// recorded mapping: memory must be exactly as it was at the instant of the freeze. Pre-copy
/// runs only without copy-on-write snapshots (`CAIRN_SNAPSHOT=0`).
#[test]
fn memory_written_and_remapped_during_precopy_is_restored_as_at_the_freeze() {
    let _area = Area::enter(module_path!());
    written_and_remapped_while_copied(false);
}

/// The same program, with copy-on-write snapshots (the default): memory is read from the
/// snapshot while the program writes and replaces mappings.
#[test]
fn memory_written_and_remapped_during_the_snapshot_drain_is_restored_as_at_the_freeze() {
    let _area = Area::enter(module_path!());
    written_and_remapped_while_copied(true);
}

fn written_and_remapped_while_copied(snapshot: bool) {
    const MIB_STRESS: u64 = 64;
    let scratch = Scratch::new();
    let dir = scratch.sub("cairn");
    let store = scratch.store();
    let prog = Program::c("precopy_stress", &[&MIB_STRESS.to_string()]);
    let prog = if snapshot {
        prog
    } else {
        prog.with_shell_prefix("export CAIRN_SNAPSHOT=0")
    };
    let mut run = Job::start(&prog, "launch", &store, "stress", &[], &dir, true);
    run.wait_stdout("ready");
    for k in 0..3 {
        assert!(
            run.checkpoint(),
            "checkpoint {k} failed:\n{}",
            run.log_text()
        );
    }
    run.kill_all();
    let gens = generations_json(&store, "stress");
    assert_eq!(gens.len(), 3);
    // Pre-copy ran: the buffer was read while the program ran, and only what it wrote
    // meanwhile was read again while frozen, so more pages were read or skipped in the final
    // pass than the image holds (without pre-copy, scanned + skipped = the image's pages).
    let buffer_pages = (MIB_STRESS << 20) / 4096;
    let first = &gens[0];
    let (scanned, skipped) = (
        info_u64(first, &["pages_scanned"]),
        info_u64(first, &["pages_skipped"]),
    );
    assert!(
        snapshot || scanned + skipped > buffer_pages * 3 / 2,
        "generation 1: scanned {scanned} + skipped {skipped} pages: no pre-copy of the \
         {buffer_pages}-page buffer"
    );
    for g in gens.iter().map(|g| g["id"].as_u64().unwrap_or(0)) {
        let (code, out) = restart_and_stop(&store, "stress", g, &prog, &dir);
        assert!(
            code == 0
                && out
                    .lines()
                    .last()
                    .is_some_and(|l| l.starts_with("verified ")),
            "restart of generation {g} exited with {code}; stdout:\n{out}"
        );
    }
}

/// The memory of a child process changes between checkpoints: with dirty tracking in every
/// process of the tree the child's later checkpoints are incremental too, and a restart
/// from each of them continues exactly like the native run (every round prints the checksum
/// of the child's whole buffer).
#[test]
fn child_process_memory_is_tracked_and_restored_exactly() {
    let _area = Area::enter(module_path!());
    const MIB_CHILD: &str = "48";
    let scratch = Scratch::new();
    let prog = Program::c("tree_dirty", &[MIB_CHILD, "60"]);
    let native = run_native(&prog, &scratch.sub("native"));
    assert_eq!(native.code, 0, "native run failed");
    let dir = scratch.sub("cairn");
    let store = scratch.store();
    let mut run = Job::start(&prog, "launch", &store, "tree", &[], &dir, true);
    run.wait_stdout("ready");
    for k in 0..3 {
        run.wait_stdout(&format!("round {} ", 3 + 5 * k));
        assert!(
            run.checkpoint(),
            "checkpoint {k} failed:\n{}",
            run.log_text()
        );
    }
    run.kill_all();
    let gens = generations_json(&store, "tree");
    assert_eq!(gens.len(), 3);
    // The child's buffer is nearly all of the job's memory: later generations skipped most
    // of it only if the child was tracked.
    for g in &gens[1..] {
        let (scanned, skipped) = (
            info_u64(g, &["pages_scanned"]),
            info_u64(g, &["pages_skipped"]),
        );
        assert!(
            skipped > 4 * scanned,
            "generation {g}: scanned {scanned} pages, skipped only {skipped}: the child \
             process was not tracked"
        );
    }
    for g in gens.iter().map(|g| g["id"].as_u64().unwrap_or(0)) {
        let again = Job::start(
            &prog,
            "restart",
            &store,
            "tree",
            &["--generation", &g.to_string()],
            &dir,
            false,
        );
        let code = again.wait(Duration::from_secs(120));
        assert_eq!(code, 0, "restart of generation {g} exited with {code}");
        let got = fs::read(dir.join("stdout")).unwrap_or_default();
        assert!(
            got == native.stdout,
            "restart of generation {g}: stdout differs from the native run:\n{}\nvs native\n{}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&native.stdout)
        );
    }
}

/// A checkpoint inside a long relative sleep: with pre-copy the first checkpoint freezes the
/// program twice (to create its userfaultfd, then for the capture), so the second freeze
/// finds the thread in `restart_syscall`; the image must still name the original syscall,
/// or the restarted program's sleep fails with EINTR.
#[test]
fn checkpoint_inside_a_long_sleep_restarts_the_sleep() {
    let _area = Area::enter(module_path!());
    let scratch = Scratch::new();
    let prog = Program::c("long_sleep", &["1500"]);
    let dir = scratch.sub("cairn");
    let store = scratch.store();
    for (round, job) in ["clock", "nano"].into_iter().enumerate() {
        fs::remove_file(dir.join("stdout")).ok();
        let mut run = Job::start(&prog, "launch", &store, job, &[], &dir, true);
        run.wait_stdout("start");
        if round == 1 {
            run.wait_stdout("clock_nanosleep");
        }
        std::thread::sleep(Duration::from_millis(300));
        assert!(run.checkpoint(), "checkpoint failed:\n{}", run.log_text());
        run.kill_all();
        let again = Job::start(&prog, "restart", &store, job, &[], &dir, false);
        let code = again.wait(Duration::from_secs(60));
        assert_eq!(code, 0, "restart exited with {code}");
        let out = fs::read_to_string(dir.join("stdout")).unwrap_or_default();
        assert_eq!(
            out, "start\nclock_nanosleep rc=0\nnanosleep rc=0\n",
            "job {job}: the restarted sleep did not complete"
        );
    }
}

/// Memory of `scatpages` in MiB, and the pages it changes per round (1 % of them).
const SCAT_MIB: &str = "64";
const SCAT_PAGES: u64 = 164;

/// `scatpages SCAT_MIB SCAT_PAGES 3 MODE`: each round gives SCAT_PAGES scattered pages new
/// random content.
fn scatpages(mode: &str) -> Program {
    Program::c("scatpages", &[SCAT_MIB, &SCAT_PAGES.to_string(), "3", mode])
}

/// Launches `scatpages`, checkpoints before and after its first round, kills it, restarts
/// the second generation (lazily or eagerly), lets it run one more round and checkpoints
/// again. Each later generation must store about the bytes of the pages that changed — a
/// generation's new bytes also hold its image description and the few pages the program's
/// stack and libc touched, hence the fixed allowance — and every generation must restart to
/// the native run's output.
fn scattered_pages_cost_their_own_bytes(job: &str, lazy: bool, user: Option<&str>) {
    let scratch = Scratch::new();
    let dir = scratch.sub("cairn");
    let store = scratch.store();
    if user.is_some() {
        cairn_testkit::open_up(scratch.dir.path());
        cairn_testkit::open_up(&dir);
        cairn_testkit::open_up(&cairn_testkit::compile_c("scatpages"));
    }
    let prog = scatpages("signal");
    let prog = if lazy {
        prog
    } else {
        prog.with_shell_prefix("export CAIRN_LAZY_RESTORE=0")
    };
    let prog = match user {
        Some(u) => prog.run_as(u),
        None => prog,
    };
    let mut run = Job::start(&prog, "launch", &store, job, &[], &dir, true);
    run.wait_stdout("ready");
    assert!(run.checkpoint(), "checkpoint 1 failed:\n{}", run.log_text());
    advance_to(&mut run, "round 0 ");
    assert!(run.checkpoint(), "checkpoint 2 failed:\n{}", run.log_text());
    run.kill_all();
    let mut run = Job::start(&prog, "restart", &store, job, &[], &dir, false);
    assert!(
        run.wait_for_lines(RUNNING, 1, Duration::from_secs(60)),
        "restart did not run:\n{}",
        run.log_text()
    );
    advance_to(&mut run, "round 1 ");
    assert!(
        run.checkpoint(),
        "checkpoint after the restart failed:\n{}",
        run.log_text()
    );
    run.kill_all();
    let gens = generations_json(&store, job);
    assert_eq!(gens.len(), 3, "{gens:?}");
    let changed = SCAT_PAGES * 4096;
    let allowance = 256 * 1024;
    for (g, what) in gens[1..]
        .iter()
        .zip(["the second", "the first after a restart"])
    {
        let written = info_u64(g, &["stats", "new_stored_bytes"]);
        assert!(
            written <= changed * 3 / 2 + allowance,
            "{what} generation wrote {written} bytes for {changed} bytes of changed pages"
        );
    }
    let native = run_native(&scatpages("timed"), &scratch.sub("native"));
    assert_eq!(native.code, 0, "native run failed");
    for g in gens.iter().map(|g| g["id"].as_u64().unwrap_or(0)) {
        let (code, out) = restart_and_stop(&store, job, g, &prog, &dir);
        assert_eq!(code, 0, "restart of generation {g} exited with {code}");
        assert!(
            out.as_bytes() == native.stdout,
            "restart of generation {g}: stdout differs from the native run:\n{out}\nvs native\n{}",
            String::from_utf8_lossy(&native.stdout)
        );
    }
}

#[test]
fn scattered_pages_cost_their_own_bytes_also_after_a_lazy_restart() {
    let _area = Area::enter(module_path!());
    scattered_pages_cost_their_own_bytes("scatlazy", true, None);
}

#[test]
fn scattered_pages_cost_their_own_bytes_also_after_an_eager_restart() {
    let _area = Area::enter(module_path!());
    scattered_pages_cost_their_own_bytes("scateager", false, None);
}

#[test]
fn scattered_pages_cost_their_own_bytes_for_an_unprivileged_user() {
    let _area = Area::enter(module_path!());
    scattered_pages_cost_their_own_bytes("scatuser", true, Some(TEST_USER));
}
