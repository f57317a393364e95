//! End-to-end tests of bad input and failures around `cairn launch`/`restart`/`run`: unknown
//! jobs, directories that are not stores, damaged generations, programs exiting during a
//! checkpoint, the agent killed during a checkpoint, exit codes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::damage::damage_a_memory_chunk_only_in;
use cairn_testkit::{
    cairn, children, count_lines, files_below, run_native, Area, Job, Program, Scratch, COMMITTED,
    RUNNING, STARTED,
};

/// Runs cairn with `args` to completion; returns (exit code, stderr).
fn cairn_output(args: &[&str], envs: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(cairn())
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("SLURM_JOB_ID")
        .stdin(Stdio::null())
        .output()
        .expect("running cairn");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `cairn launch --store STORE --job JOB [EXTRA...] -- PROG...`; returns (exit code, stderr).
fn launch(store: &Path, job: &str, extra: &[&str], prog: &[&str]) -> (i32, String) {
    let mut args = vec!["launch", "--store", s(store), "--job", job];
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(prog);
    cairn_output(&args, &[])
}

#[test]
fn exit_codes_are_passed_through() {
    let _area = Area::enter(module_path!());
    let sc = Scratch::new();
    let store = sc.store();
    let (code, _) = launch(&store, "a", &[], &["sh", "-c", "exit 7"]);
    assert_eq!(code, 7);
    let (code, _) = launch(&store, "a", &[], &["sh", "-c", "kill -9 $$"]);
    assert_eq!(code, 137);
    let (code, _) = launch(&store, "a", &[], &["true"]);
    assert_eq!(code, 0);
}

/// Once `job` runs its program, sends SIGUSR2 to it (forwarded to the program) until it
/// ends; returns its exit code.
fn nudge_until_exit(mut job: Job) -> i32 {
    // Before the agent blocks its signals, SIGUSR2 would end cairn itself.
    assert!(
        job.wait_for_lines(RUNNING, 1, Duration::from_secs(60)),
        "the program did not run: {}",
        job.log_text()
    );
    let end = std::time::Instant::now() + Duration::from_secs(60);
    while job.running() && std::time::Instant::now() < end {
        job.signal(libc::SIGUSR2);
        std::thread::sleep(Duration::from_millis(50));
    }
    job.wait(Duration::from_secs(5))
}

/// After a checkpoint, a kill -9 of the whole job and a restart, `cairn restart` passes the
/// program's end on as `launch` does: its exit code (7), or 128+N when a signal N (SIGTERM)
/// kills it.
#[test]
fn exit_codes_are_passed_through_after_a_restart() {
    let _area = Area::enter(module_path!());
    for (arg, want) in [("7", 7), ("-15", 128 + libc::SIGTERM)] {
        let sc = Scratch::new();
        let store = sc.store();
        let dir = sc.sub("cairn");
        let prog = Program::c("wait_exit", &[arg]);
        let mut job = Job::start(&prog, "launch", &store, "code", &[], &dir, true);
        job.wait_stdout("ready");
        assert!(job.checkpoint(), "checkpoint: {}", job.log_text());
        assert!(job.running(), "{}", job.log_text());
        job.kill_all();
        let restarted = Job::start(&prog, "restart", &store, "code", &[], &dir, false);
        let log = restarted.log.clone();
        let code = nudge_until_exit(restarted);
        let text = fs::read_to_string(&log).unwrap_or_default();
        assert!(
            text.contains("restarting job code from generation 1"),
            "{text}"
        );
        assert_eq!(code, want, "wait_exit {arg} after a restart: {text}");
        assert_eq!(
            fs::read_to_string(dir.join("stdout")).unwrap_or_default(),
            "ready\nleaving\n",
            "{text}"
        );
    }
}

/// An internal failure of `cairn launch` exits 99, or `CAIRN_FAIL_RC`: here the sandbox
/// cannot be created because clone3(2) is refused (seccomp makes it fail with ENOSYS, as an
/// old kernel or a container's default profile does). The user's input is fine; cairn cannot
/// do its job. One error line names the failure, and the program never runs.
#[test]
fn an_internal_failure_of_launch_exits_99_or_cairn_fail_rc() {
    let _area = Area::enter(module_path!());
    let sc = Scratch::new();
    let store = sc.store();
    let marker = sc.dir.path().join("ran");
    let wrapper = cairn_testkit::compile_c("no_clone3");
    for (env, want) in [(None, 99), (Some("42"), 42)] {
        let mut c = Command::new(&wrapper);
        c.args([cairn(), "launch", "--store", s(&store), "--job", "a", "--"])
            .args(["touch", s(&marker)])
            .env_remove("CAIRN_FAIL_RC")
            .stdin(Stdio::null());
        if let Some(rc) = env {
            c.env("CAIRN_FAIL_RC", rc);
        }
        let out = c.output().expect("running cairn under no_clone3");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(want), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
        assert!(
            err.starts_with("cairn: error: ")
                && err.contains("clone3(CLONE_NEWPID) for the sandbox"),
            "{err}"
        );
        assert!(!marker.exists(), "the program ran");
    }
}

/// A store that refuses a checkpoint while the job runs (its packs directory replaced by a
/// file: nothing can be written) is not a failure of the job: the checkpoint is reported
/// failed with nothing committed, the program keeps running, the next checkpoint (once the
/// store is usable again) commits, and `cairn launch` exits with the program's code; the
/// report counts the failed checkpoint (docs/user-guide.md, "Reports and exit codes").
#[test]
fn a_store_refusing_a_checkpoint_leaves_the_job_running() {
    let _area = Area::enter(module_path!());
    let sc = Scratch::new();
    let store = sc.store();
    let dir = sc.sub("cairn");
    let prog = Program::c("wait_exit", &["7"]);
    let mut job = Job::start(&prog, "launch", &store, "refused", &["--json"], &dir, true);
    job.wait_stdout("ready");
    let packs = store.join("packs");
    let away = store.join("packs.away");
    fs::rename(&packs, &away).unwrap();
    fs::write(&packs, b"").unwrap();
    job.signal(libc::SIGUSR1);
    assert!(
        job.wait_for_lines(
            "checkpoint failed, nothing committed",
            1,
            Duration::from_secs(60)
        ),
        "{}",
        job.log_text()
    );
    assert!(job.running(), "{}", job.log_text());
    fs::remove_file(&packs).unwrap();
    fs::rename(&away, &packs).unwrap();
    assert!(job.checkpoint(), "{}", job.log_text());
    let log = job.log.clone();
    let code = nudge_until_exit(job);
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, 7, "{text}");
    let report: serde_json::Value =
        serde_json::from_str(last_line(&text)).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(report["failed_checkpoints"], 1, "{text}");
    assert_eq!(report["checkpoints"][0]["generation"], 1, "{text}");
}

#[test]
fn restart_of_an_unknown_job_is_a_clear_usage_error() {
    let _area = Area::enter(module_path!());
    let sc = Scratch::new();
    let store = sc.store();
    let (code, _) = launch(&store, "a", &[], &["true"]);
    assert_eq!(code, 0);
    let (code, err) = cairn_output(
        &["restart", "--store", s(&store), "--job", "nosuchjob"],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nosuchjob"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
}

/// A directory that exists but is not a store is refused by `restart` and by `launch` (which
/// creates a store only in a missing or empty directory), and `restart` refuses a store path
/// that does not exist: exit 2, one error line that names the directory and says what is
/// wrong with it, and the program never runs.
#[test]
fn a_directory_that_is_not_a_store_is_refused() {
    let _area = Area::enter(module_path!());
    let sc = Scratch::new();
    let dir = sc.sub("notastore");
    fs::write(dir.join("something"), b"data").unwrap();
    let not_a_store = format!("{}: not a cairn store (no config.json)", s(&dir));
    let (code, err) = cairn_output(&["restart", "--store", s(&dir), "--job", "a"], &[]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert!(
        err.starts_with("cairn: error: ") && err.contains(&not_a_store),
        "{err}"
    );
    let marker = sc.dir.path().join("ran");
    let (code, err) = launch(&dir, "a", &[], &["touch", s(&marker)]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert!(
        err.starts_with("cairn: error: ") && err.contains(&not_a_store),
        "{err}"
    );
    assert!(!marker.exists(), "the program ran");
    assert_eq!(
        fs::read_dir(&dir).unwrap().count(),
        1,
        "launch wrote into a directory that is not a store"
    );
    let missing = sc.dir.path().join("missing");
    let (code, err) = cairn_output(&["restart", "--store", s(&missing), "--job", "a"], &[]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert!(
        err.starts_with("cairn: error: ")
            && err.contains(&format!(
                "{}: no such directory (not a cairn store)",
                s(&missing)
            )),
        "{err}"
    );
    assert!(!missing.exists(), "restart created the store directory");
}

#[test]
fn bad_job_names_and_options_are_usage_errors() {
    let _area = Area::enter(module_path!());
    let sc = Scratch::new();
    let store = sc.store();
    for job in ["", "../x", ".hidden", "a b"] {
        let (code, err) = launch(&store, job, &[], &["true"]);
        assert_eq!(code, 2, "job {job:?}: {err}");
    }
    let (code, _) = launch(&store, "a", &["--interval", "-1"], &["true"]);
    assert_eq!(code, 2);
    let (code, _) = cairn_output(
        &[
            "run",
            "--store",
            s(&store),
            "--job",
            "a",
            "--checkpoint-signal",
            "KILL",
            "--",
            "true",
        ],
        &[],
    );
    assert_eq!(code, 2);
    let (code, err) = cairn_output(&["run", "--store", s(&store), "--", "true"], &[]);
    assert_eq!(code, 2, "run without --job or SLURM_JOB_ID: {err}");
    for prog in ["/nonexistent/prog", "no-such-program-anywhere"] {
        let (code, err) = launch(&store, "a", &[], &[prog]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains(prog) && err.trim().lines().count() == 1,
            "{err}"
        );
    }
}

#[test]
fn store_comes_from_cairn_store_env() {
    let _area = Area::enter(module_path!());
    let sc = Scratch::new();
    let store = sc.store();
    let (code, err) = cairn_output(
        &["launch", "--job", "a", "--", "true"],
        &[("CAIRN_STORE", s(&store))],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        store.join("config.json").exists()
            || fs::read_dir(&store)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false)
    );
}

/// Every file below `dir`.
/// Job `damaged`: the counter program, checkpointed twice, then killed.
struct TwoGenerations {
    /// Holds the scratch directory (removed when dropped).
    _sc: Scratch,
    store: PathBuf,
    prog: Program,
    native: cairn_testkit::Outcome,
    dir: PathBuf,
    /// Pack files present after the first checkpoint.
    packs_after_first: Vec<PathBuf>,
}

impl TwoGenerations {
    /// Restarts the job after its newest generation was harmed: the restart must warn that
    /// generation 2 was skipped, restart generation 1 and end with the native output.
    /// Returns the restart's log.
    fn restart_falls_back_to_generation_1(&self) -> String {
        let job = Job::start(
            &self.prog,
            "restart",
            &self.store,
            "damaged",
            &[],
            &self.dir,
            false,
        );
        let log_path = job.log.clone();
        let code = job.wait(Duration::from_secs(120));
        let log = fs::read_to_string(&log_path).unwrap_or_default();
        assert_eq!(code, 0, "{log}");
        let warning = log
            .find("warning: skipped generation 2")
            .unwrap_or_else(|| panic!("no fallback warning: {log}"));
        let fallback = log
            .find("restarting job damaged from generation 1")
            .unwrap_or_else(|| panic!("no fallback: {log}"));
        assert!(warning < fallback, "{log}");
        assert_eq!(
            fs::read(self.dir.join("stdout")).unwrap(),
            self.native.stdout,
            "{log}"
        );
        assert_eq!(
            fs::read(self.dir.join("own.txt")).unwrap(),
            self.native.files["own.txt"]
        );
        log
    }
}

fn two_generations_of_counter() -> TwoGenerations {
    let sc = Scratch::new();
    let store = sc.store();
    let prog = Program::c("counter", &["1200", "own.txt", "2000"]).with_files(&["own.txt"]);
    let native = run_native(&prog, &sc.sub("native"));
    let dir = sc.sub("cairn");
    let mut job = Job::start(&prog, "launch", &store, "damaged", &[], &dir, true);
    std::thread::sleep(Duration::from_millis(300));
    assert!(job.checkpoint(), "first checkpoint: {}", job.log_text());
    let packs_after_first = files_below(&store.join("packs"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(job.checkpoint(), "second checkpoint: {}", job.log_text());
    job.kill_all();
    TwoGenerations {
        _sc: sc,
        store,
        prog,
        native,
        dir,
        packs_after_first,
    }
}

/// Two generations of the counter; `harm` is applied to every pack the second checkpoint
/// wrote; then a restart must warn that generation 2 was skipped, restart generation 1 and
/// end with the native output.
fn newest_packs_harmed_then_restart_falls_back(harm: fn(&Path)) {
    let t = two_generations_of_counter();
    let new_packs: Vec<PathBuf> = files_below(&t.store.join("packs"))
        .into_iter()
        .filter(|p| !t.packs_after_first.contains(p))
        .collect();
    assert!(!new_packs.is_empty(), "the second checkpoint wrote no pack");
    for p in &new_packs {
        harm(p);
    }
    t.restart_falls_back_to_generation_1();
}

#[test]
fn damaged_newest_generation_falls_back_with_a_warning() {
    let _area = Area::enter(module_path!());
    // The middle of every pack the second checkpoint wrote is overwritten.
    newest_packs_harmed_then_restart_falls_back(|p| {
        let mut data = fs::read(p).unwrap();
        let len = data.len();
        for b in &mut data[len / 8..len * 7 / 8] {
            *b ^= 0x5a;
        }
        fs::write(p, data).unwrap();
    });
}

#[test]
fn missing_packs_of_the_newest_generation_fall_back_with_a_warning() {
    let _area = Area::enter(module_path!());
    // Every pack the second checkpoint wrote is deleted (as a lost file on a scratch file
    // system would be): nothing is checked before the restore, so the restore itself must find
    // the missing chunks, drop what it built and restart generation 1.
    newest_packs_harmed_then_restart_falls_back(|p| fs::remove_file(p).unwrap());
}

#[test]
fn damaged_data_found_while_restoring_falls_back_to_the_previous_generation() {
    let _area = Area::enter(module_path!());
    // Only one data chunk of the newest generation is damaged, so the damage is found by the
    // restore itself; the half-restored job is dropped for generation 1.
    let t = two_generations_of_counter();
    damage_a_memory_chunk_only_in(&t.store, "damaged", 1);
    let log = t.restart_falls_back_to_generation_1();
    let attempt = log
        .find("restarting job damaged from generation 2")
        .unwrap_or_else(|| panic!("generation 2 not attempted: {log}"));
    let warning = log
        .find("warning: skipped generation 2: corrupt store")
        .unwrap_or_else(|| panic!("no fallback warning: {log}"));
    let fallback = log
        .find("restarting job damaged from generation 1")
        .unwrap_or_else(|| panic!("no fallback: {log}"));
    assert!(attempt < warning && warning < fallback, "{log}");
}

/// The last line of a log (the error line of a failed cairn command).
fn last_line(text: &str) -> &str {
    text.trim_end().lines().last().unwrap_or_default()
}

/// The only generation of a job has a damaged data chunk: `cairn restart` has nothing to
/// fall back to. It must exit 2 with one error line saying that no consistent generation is
/// left and why (which generation, what damage), and start nothing: the half-built program is
/// dropped before it runs and no process of the job outlives the command.
#[test]
fn no_sound_generation_left_is_a_clear_error_and_nothing_runs() {
    let _area = Area::enter(module_path!());
    let sc = Scratch::new();
    let store = sc.store();
    let prog = Program::c("counter", &["1200", "own.txt", "2000"]).with_files(&["own.txt"]);
    let dir = sc.sub("cairn");
    let mut job = Job::start(&prog, "launch", &store, "lastgen", &[], &dir, true);
    std::thread::sleep(Duration::from_millis(300));
    assert!(job.checkpoint(), "checkpoint: {}", job.log_text());
    job.kill_all();
    damage_a_memory_chunk_only_in(&store, "lastgen", 0);
    let restarted = Job::start(&prog, "restart", &store, "lastgen", &[], &dir, false);
    let log = restarted.log.clone();
    // Returns once no process of the job's group is left.
    let code = restarted.wait(Duration::from_secs(60));
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, 2, "{text}");
    let last = last_line(&text);
    assert!(
        last.starts_with("cairn: error: no consistent generation of job \"lastgen\": generation 1: corrupt store: "),
        "unclear error line: {last}\nlog:\n{text}"
    );
    assert!(
        text.contains("restarting job lastgen from generation 1"),
        "generation 1 not attempted: {text}"
    );
    assert!(!text.contains(RUNNING), "the program ran: {text}");
    assert!(
        !fs::read_to_string(dir.join("stdout"))
            .unwrap_or_default()
            .contains("done"),
        "the program ran to its end"
    );
}

/// `--generation 2` names a damaged generation while generation 1 is sound: the restart
/// must fail with exit 2 and an error line naming generation 2, without falling back to
/// generation 1 behind the user's back; a restart without `--generation` then does fall back.
#[test]
fn a_named_damaged_generation_is_an_error_without_fallback() {
    let _area = Area::enter(module_path!());
    let t = two_generations_of_counter();
    damage_a_memory_chunk_only_in(&t.store, "damaged", 1);
    let (code, err) = cairn_output(
        &[
            "restart",
            "--store",
            s(&t.store),
            "--job",
            "damaged",
            "--generation",
            "2",
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    let last = last_line(&err);
    assert!(
        last.starts_with("cairn: error: generation 2 of job \"damaged\" is damaged")
            && last.contains("no other generation is tried")
            && last.contains("corrupt store"),
        "unclear error line: {last}\nstderr:\n{err}"
    );
    assert!(!err.contains("generation 1"), "fell back: {err}");
    assert!(!err.contains(RUNNING), "the program ran: {err}");
    t.restart_falls_back_to_generation_1();
}

/// The host PID of the job's program: the child of the sandbox init, the agent's child.
fn program_pid(agent: i32) -> Option<i32> {
    children(agent).into_iter().flat_map(children).next()
}

#[test]
fn program_exiting_during_a_checkpoint_abandons_it() {
    let _area = Area::enter(module_path!());
    let sc = Scratch::new();
    let store = sc.store();
    let prog = Program::c("bigmem", &["512", "1000"]);
    let dir = sc.sub("cairn");
    let mut job = Job::start(&prog, "launch", &store, "exiting", &[], &dir, true);
    let end = std::time::Instant::now() + Duration::from_secs(60);
    while !fs::read_to_string(dir.join("stdout"))
        .unwrap_or_default()
        .contains("round 0")
    {
        assert!(
            std::time::Instant::now() < end && job.running(),
            "bigmem did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let victim = program_pid(job.pid()).expect("finding the program's pid");
    job.signal(libc::SIGUSR1);
    assert!(
        job.wait_for_lines(STARTED, 1, Duration::from_secs(30)),
        "{}",
        job.log_text()
    );
    // SAFETY: kill(2) on the program we started.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    let log = job.log.clone();
    let code = job.wait(Duration::from_secs(60));
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, 128 + libc::SIGKILL, "{text}");
    assert_eq!(
        count_lines(&log, COMMITTED),
        0,
        "a generation was committed: {text}"
    );
    assert!(text.contains("abandoned"), "{text}");
    let (code, err) = cairn_output(&["restart", "--store", s(&store), "--job", "exiting"], &[]);
    assert_eq!(code, 2, "the job must have no generation: {err}");
}

#[test]
fn the_program_dies_with_its_agent() {
    let _area = Area::enter(module_path!());
    let sc = Scratch::new();
    let store = sc.store();
    let prog = Program::c("sleeper", &["400"]);
    let dir = sc.sub("cairn");
    let mut job = Job::start(&prog, "launch", &store, "orphan", &[], &dir, true);
    let end = std::time::Instant::now() + Duration::from_secs(30);
    let victim = loop {
        if let Some(p) = program_pid(job.pid()) {
            break p;
        }
        assert!(
            std::time::Instant::now() < end && job.running(),
            "the program did not start: {}",
            job.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    // Only the agent is killed; its program must not live on without it.
    // SAFETY: kill(2) on the agent we started.
    unsafe { libc::kill(job.pid(), libc::SIGKILL) };
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{victim}")).exists()
        && fs::read_to_string(format!("/proc/{victim}/stat"))
            .map(|st| !st.contains(") Z "))
            .unwrap_or(false)
    {
        assert!(
            std::time::Instant::now() < end,
            "the program (pid {victim}) outlived its agent"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    job.kill_all();
}

#[test]
fn agent_killed_during_a_checkpoint_leaves_the_previous_generation() {
    let _area = Area::enter(module_path!());
    let sc = Scratch::new();
    let store = sc.store();
    let prog = Program::c("bigmem", &["384", "40"]);
    let native = run_native(&prog, &sc.sub("native"));
    let dir = sc.sub("cairn");
    let mut job = Job::start(&prog, "launch", &store, "agentkill", &[], &dir, true);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(job.checkpoint(), "first checkpoint: {}", job.log_text());
    std::thread::sleep(Duration::from_millis(200));
    job.signal(libc::SIGUSR1);
    assert!(
        job.wait_for_lines(STARTED, 2, Duration::from_secs(30)),
        "{}",
        job.log_text()
    );
    std::thread::sleep(Duration::from_millis(20));
    job.kill_all();
    // Counted in the store once the agent is dead: a checkpoint may still commit in the last
    // moments before the kill lands (incremental ones take tens of milliseconds), even after
    // its log line could be written.
    let committed = cairn_testkit::generations_json(&store, "agentkill").len();
    assert!((1..=2).contains(&committed), "{committed} generations");
    let restarted = Job::start(&prog, "restart", &store, "agentkill", &[], &dir, false);
    let log = restarted.log.clone();
    let code = restarted.wait(Duration::from_secs(180));
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("from generation {committed}")),
        "{text}"
    );
    assert!(!text.contains("warning"), "{text}");
    assert_eq!(
        fs::read(dir.join("stdout")).unwrap(),
        native.stdout,
        "{text}"
    );
}

/// The deterministic variant of the test above: the program rewrites all of its 640 MiB with
/// random data between checkpoints, so the second checkpoint writes for the better part of a
/// second; the whole job is killed -9 once that checkpoint has started writing packs, and the
/// log shows it had not committed. Then exactly generation 1 remains (no manifest, temporary
/// or final, of the interrupted checkpoint), `cairn verify --read-data` finds the store
/// sound, and a restart resumes generation 1 and ends with the native run's output.
#[test]
fn agent_killed_in_the_middle_of_a_long_checkpoint_leaves_the_store_as_it_was() {
    let _area = Area::enter(module_path!());
    const MIB: &str = "640";
    const ROUNDS: &str = "3";
    let sc = Scratch::new();
    let store = sc.store();
    // Every round rewrites the whole buffer (1000 per mille) and prints its checksum.
    let native = run_native(
        &Program::c("dirtymem", &[MIB, "1000", ROUNDS, "timed"]),
        &sc.sub("native"),
    );
    assert_eq!(native.code, 0, "the native run failed");
    let prog = Program::c("dirtymem", &[MIB, "1000", ROUNDS, "signal"]);
    let dir = sc.sub("cairn");
    let mut job = Job::start(&prog, "launch", &store, "midway", &[], &dir, true);
    job.wait_stdout("ready");
    assert!(job.checkpoint(), "first checkpoint: {}", job.log_text());
    let packs = store.join("packs");
    let packs_after_first = files_below(&packs);
    let manifests_after_first = files_below(&store.join("generations"));
    job.signal(libc::SIGUSR2);
    job.wait_stdout("round 0 ");
    job.signal(libc::SIGUSR1);
    assert!(
        job.wait_for_lines(STARTED, 2, Duration::from_secs(60)),
        "{}",
        job.log_text()
    );
    // The checkpoint is writing once a pack file appears (under its temporary name).
    let end = std::time::Instant::now() + Duration::from_secs(60);
    while files_below(&packs)
        .iter()
        .all(|p| packs_after_first.contains(p))
    {
        assert!(
            job.running() && std::time::Instant::now() < end,
            "the second checkpoint wrote no pack: {}",
            job.log_text()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let log = job.log.clone();
    job.kill_all();
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        count_lines(&log, COMMITTED),
        1,
        "the second checkpoint was over before the kill: {text}"
    );
    let ids: Vec<u64> = cairn_testkit::generations_json(&store, "midway")
        .iter()
        .map(|g| g["id"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(ids, [1], "{text}");
    assert_eq!(
        files_below(&store.join("generations")),
        manifests_after_first,
        "the interrupted checkpoint left a manifest"
    );
    let out = cairn_testkit::store_cmd(&store, &["verify", "--read-data", "--json"], &[]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "cairn verify: {report}");
    let v: serde_json::Value = serde_json::from_str(&report).expect("cairn verify --json");
    assert_eq!(v["ok"], true, "{report}");
    assert_eq!(
        v["damaged_packs"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );
    let restarted = Job::start(&prog, "restart", &store, "midway", &[], &dir, false);
    let log = restarted.log.clone();
    let code = nudge_until_exit(restarted);
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("restarting job midway from generation 1"),
        "{text}"
    );
    assert!(!text.contains("warning"), "{text}");
    assert!(
        fs::read(dir.join("stdout")).unwrap_or_default() == native.stdout,
        "stdout differs from the native run:\n{}\nlog:\n{text}",
        fs::read_to_string(dir.join("stdout")).unwrap_or_default()
    );
}

#[test]
fn run_checkpoints_and_stops_on_signals_then_resumes_to_identical_output() {
    let _area = Area::enter(module_path!());
    let sc = Scratch::new();
    let store = sc.store();
    let prog = Program::c("counter", &["1200", "own.txt", "2000"]).with_files(&["own.txt"]);
    let native = run_native(&prog, &sc.sub("native"));
    let dir = sc.sub("cairn");
    let mut codes = Vec::new();
    for sig in [libc::SIGUSR1, libc::SIGTERM] {
        let job = Job::start(&prog, "run", &store, "batch", &[], &dir, true);
        std::thread::sleep(Duration::from_millis(600));
        job.signal(sig);
        let log = job.log.clone();
        codes.push(job.wait(Duration::from_secs(60)));
        assert_eq!(
            count_lines(&log, COMMITTED),
            1,
            "{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
    }
    assert_eq!(codes, [75, 75]);
    let job = Job::start(&prog, "run", &store, "batch", &[], &dir, true);
    let log = job.log.clone();
    let code = job.wait(Duration::from_secs(60));
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("resuming job batch from generation 2"),
        "{text}"
    );
    assert_eq!(fs::read(dir.join("stdout")).unwrap(), native.stdout);
    assert_eq!(
        fs::read(dir.join("own.txt")).unwrap(),
        native.files["own.txt"]
    );
}

#[test]
fn run_names_the_job_after_slurm_job_id() {
    let _area = Area::enter(module_path!());
    let sc = Scratch::new();
    let store = sc.store();
    let out = Command::new(cairn())
        .args(["run", "--store", s(&store), "--", "true"])
        .env("SLURM_JOB_ID", "4242")
        .env("SLURM_RESTART_COUNT", "3")
        .output()
        .expect("running cairn");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("Slurm job 4242, restart count 3"), "{err}");
    assert!(err.contains("job 4242"), "{err}");
}

#[test]
fn an_unusable_image_is_an_internal_failure_with_cairn_fail_rc() {
    let _area = Area::enter(module_path!());
    use cairn_store::{GenerationInfo, Store};
    let sc = Scratch::new();
    let store_dir = sc.store();
    let (code, _) = launch(&store_dir, "a", &[], &["true"]);
    assert_eq!(code, 0);
    // A generation laid out like a checkpoint whose image.json cannot be decoded.
    let store = Store::open(&store_dir).unwrap();
    let mut w = store.writer().unwrap();
    let meta = br#"{"format":1,"kind":"checkpoint","job":"broken","host":"h","cairn_version":"0","agents":["0"]}"#;
    let meta_ref = w.put_blob(meta).unwrap();
    let image_ref = w.put_blob(b"{\"not\":\"an image\"}").unwrap();
    let agent = w.put_tree(vec![("image.json".into(), image_ref)]).unwrap();
    let agents = w.put_tree(vec![("0".into(), agent)]).unwrap();
    let root = w
        .put_tree(vec![
            ("meta.json".into(), meta_ref),
            ("agents".into(), agents),
        ])
        .unwrap();
    let stats = w.finish().unwrap();
    let info = GenerationInfo {
        kind: "checkpoint".into(),
        stats,
        ..Default::default()
    };
    store.commit("broken", &root, info).unwrap();
    let (code, err) = cairn_output(
        &["restart", "--store", s(&store_dir), "--job", "broken"],
        &[],
    );
    assert_eq!(code, 99, "{err}");
    assert!(err.contains("image.json"), "{err}");
    let (code, _) = cairn_output(
        &["restart", "--store", s(&store_dir), "--job", "broken"],
        &[("CAIRN_FAIL_RC", "42")],
    );
    assert_eq!(code, 42);
}

#[test]
fn json_report_on_stderr() {
    let _area = Area::enter(module_path!());
    let sc = Scratch::new();
    let store = sc.store();
    let out = Command::new(cairn())
        .args([
            "launch",
            "--json",
            "--store",
            s(&store),
            "--job",
            "j",
            "--",
            "sh",
            "-c",
            "echo hi; exit 3",
        ])
        .output()
        .expect("running cairn");
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(out.stdout, b"hi\n", "stdout belongs to the program");
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert_eq!(v["job"], "j");
    assert_eq!(v["end"], "exited");
    assert_eq!(v["status"]["code"], 3);
    assert_eq!(v["checkpoints"].as_array().map(Vec::len), Some(0));
}

/// A generation whose image uses a CPU state component this CPU does not have (set here in
/// the XSTATE_BV of every thread, as a checkpoint taken on a CPU with AMX or APX would) is
/// refused before anything runs, with a message naming the components; no other generation
/// is tried in its place (a CPU mismatch is not damage: run on a node like the one the job
/// ran on).
#[test]
fn an_image_using_cpu_state_this_cpu_lacks_is_refused() {
    let _area = Area::enter(module_path!());
    use cairn_store::Store;
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo");
    let has = |flag: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with("flags"))
            .is_some_and(|l| l.split_whitespace().any(|f| f == flag))
    };
    // XSTATE_BV bits 17-18 (AMX tile config and data) or 19 (APX registers); byte 514 of the
    // xsave area holds bits 16-23.
    let bits: u64 = if !has("amx_tile") {
        0x06
    } else if !has("apx_f") {
        0x08
    } else {
        panic!("this CPU has AMX and APX: no xstate component left to claim it lacks")
    };
    let sc = Scratch::new();
    let store_dir = sc.store();
    let prog = Program::c("counter", &["1200", "own.txt", "2000"]).with_files(&["own.txt"]);
    let dir = sc.sub("cairn");
    let mut job = Job::start(&prog, "launch", &store_dir, "xs", &[], &dir, true);
    std::thread::sleep(Duration::from_millis(300));
    assert!(job.checkpoint(), "checkpoint: {}", job.log_text());
    job.kill_all();

    // Generation 2: generation 1 with the xstate components added to its image.
    let store = Store::open(&store_dir).expect("open store");
    let g1 = store
        .generations(Some("xs"))
        .expect("generations")
        .pop()
        .expect("generation 1");
    let reader = store.reader(g1.id).expect("reader");
    let root = reader.tree_entries(reader.root()).expect("root");
    let agents = reader.lookup("agents").expect("agents");
    let [(agent, agent_tree)] = reader
        .tree_entries(&agents)
        .expect("agents")
        .try_into()
        .expect("one agent");
    let mut files = reader.tree_entries(&agent_tree).expect("agent tree");
    let image_at = files
        .iter()
        .position(|(n, _)| n == "image.json")
        .expect("image.json");
    let mut image: serde_json::Value =
        serde_json::from_slice(&reader.read_all(&files[image_at].1).expect("image"))
            .expect("image json");
    let mut threads = 0;
    for p in image["processes"].as_array_mut().expect("processes") {
        for t in p["threads"].as_array_mut().expect("threads") {
            let xs = t["xstate"].as_array_mut().expect("xstate");
            let b = xs[514].as_u64().expect("byte") | bits;
            xs[514] = b.into();
            threads += 1;
        }
    }
    assert!(threads > 0);
    let mut w = store.writer().expect("writer");
    files[image_at].1 = w
        .put_blob(&serde_json::to_vec(&image).expect("json"))
        .expect("image blob");
    let agent_tree = w.put_tree(files).expect("agent tree");
    let agents = w.put_tree(vec![(agent, agent_tree)]).expect("agents tree");
    let root: Vec<_> = root
        .into_iter()
        .map(|(n, r)| {
            if n == "agents" {
                (n, agents.clone())
            } else {
                (n, r)
            }
        })
        .collect();
    let root = w.put_tree(root).expect("root tree");
    w.finish().expect("finish");
    let g2 = store.commit("xs", &root, g1.info.clone()).expect("commit");
    assert_eq!(g2.0, g1.id.0 + 1);

    let (code, err) = cairn_output(&["restart", "--store", s(&store_dir), "--job", "xs"], &[]);
    assert_eq!(code, 99, "{err}");
    assert!(
        err.contains("that this CPU/kernel lacks") && err.contains(&format!("{:#x}", bits << 16)),
        "{err}"
    );
    assert!(!err.contains(RUNNING), "the program ran: {err}");
    assert!(
        !err.contains("generation 1"),
        "another generation was tried in its place: {err}"
    );
}

/// A checkpoint that cannot be taken says so for every reason at once (here two io_uring
/// descriptors), each with the job's pid and the descriptor, and the program runs on to the
/// output of a native run.
#[test]
fn a_refusal_names_every_reason_at_once_and_the_job_runs_on() {
    let _area = Area::enter(module_path!());
    let sc = Scratch::new();
    let store = sc.store();
    let dir = sc.sub("cairn");
    let prog = Program::c("two_rings", &["60"]);
    let native = cairn_testkit::run_native(&prog, &sc.sub("native"));
    let mut job = Job::start(&prog, "launch", &store, "rings", &[], &dir, true);
    job.wait_stdout("ready");
    job.signal(libc::SIGUSR1);
    assert!(
        job.wait_for_lines(
            "checkpoint failed, nothing committed",
            1,
            Duration::from_secs(60)
        ),
        "{}",
        job.log_text()
    );
    let log = job.log_text();
    // The program is process 2 of the job (the job's init is 1).
    for fd in [
        "process 2 fd 7: anon_inode:[io_uring]",
        "process 2 fd 9: anon_inode:[io_uring]",
    ] {
        assert!(log.contains(fd), "{fd} not named:\n{log}");
    }
    assert_eq!(job.wait(Duration::from_secs(60)), 0, "{log}");
    let out = fs::read(dir.join("stdout")).unwrap();
    assert_eq!(out, native.stdout, "{log}");
}
