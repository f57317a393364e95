//! End-to-end tests with a real Slurm: the sbatch scripts of docs/slurm/ run a
//! program that needs several wall-time periods; each period ends with SIGUSR1 from Slurm, a
//! checkpoint and a requeue, and the job's output must equal a native run byte for byte. A
//! second test kills the job with SIGKILL without warning (a "node failure") and checks that
//! the requeued job resumes from the last periodic checkpoint.
//!
//! These tests need the one-node cluster of scripts/slurm/setup.sh. scripts/test.sh starts it
//! and sets CAIRN_SLURM_TESTS=1; then a missing or broken cluster is a failure. Without that
//! variable (a developer's plain `cargo test`) the tests say so and return.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

// The user the batch jobs run as (created by scripts/setup.sh).
use cairn_testkit::Area;
use cairn_testkit::TEST_USER as USER;

fn enabled() -> bool {
    if std::env::var_os("CAIRN_SLURM_TESTS").is_some() {
        return true;
    }
    eprintln!("slurm tests not run: start scripts/slurm/setup.sh and set CAIRN_SLURM_TESTS=1");
    false
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command, panicking with its stderr when it fails; returns stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A world-readable scratch directory holding the binaries, the store and the job's output,
/// owned by the batch user.
struct Workspace {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Workspace {
    fn new() -> Workspace {
        let tmp = tempfile::Builder::new()
            .prefix("cairn-slurm-")
            .tempdir_in("/tmp")
            .expect("temporary directory");
        let dir = tmp.path().to_path_buf();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::create_dir(dir.join("bin")).expect("mkdir bin");
        fs::copy(cairn_testkit::cairn(), dir.join("bin/cairn")).expect("copying cairn");
        fs::copy(
            cairn_testkit::compile_c("slurm_steps"),
            dir.join("bin/slurm_steps"),
        )
        .expect("copying the program");
        run(Command::new("chown").args(["-R", USER]).arg(&dir));
        Workspace { _tmp: tmp, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Submits docs/slurm/SCRIPT as the batch user; returns the job id.
    fn submit(&self, script: &str, steps: u32, extra_env: &str) -> String {
        self.submit_with(script, steps, extra_env, &[])
    }

    /// As `submit`, with sbatch OPTIONS given on its command line (they override the script's
    /// `#SBATCH` lines).
    fn submit_with(&self, script: &str, steps: u32, extra_env: &str, options: &[&str]) -> String {
        let prog = self.path("bin/slurm_steps");
        let steps = steps.to_string();
        self.submit_args(
            script,
            "out.txt",
            &[prog.as_os_str(), steps.as_ref()],
            extra_env,
            options,
        )
    }

    /// Submits docs/slurm/SCRIPT with ARGS, its output in OUT, and sbatch OPTIONS; returns
    /// the job id.
    fn submit_args(
        &self,
        script: &str,
        out: &str,
        args: &[&std::ffi::OsStr],
        extra_env: &str,
        options: &[&str],
    ) -> String {
        let script = repo().join("docs/slurm").join(script);
        let path = format!(
            "{}:/usr/bin:/bin:/usr/sbin:/sbin",
            self.path("bin").display()
        );
        let export = format!(
            "ALL,PATH={path},CAIRN_STORE={}{extra_env}",
            self.path("store").display()
        );
        let out = run(Command::new("runuser")
            .args(["-u", USER, "--", "sbatch", "--parsable"])
            .arg(format!("--chdir={}", self.dir.display()))
            .arg(format!("--output={}", self.path(out).display()))
            .arg(format!("--error={}", self.path("err.txt").display()))
            .arg(format!("--export={export}"))
            .args(options)
            .arg(&script)
            .args(args));
        out.trim().split(';').next().unwrap_or_default().to_string()
    }

    fn err_log(&self) -> String {
        fs::read_to_string(self.path("err.txt")).unwrap_or_default()
    }
}

/// `scontrol show job ID` as key=value pairs.
fn job_field(id: &str, key: &str) -> Option<String> {
    let out = Command::new("scontrol")
        .args(["show", "job", "-o", id])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_string))
}

/// How long after a requeue the test lets Slurm start the job again. Slurm revokes the job's
/// credentials when it requeues it, with a time in whole seconds; a new start within the same
/// second is refused ("Job credential revoked") and the job ends FAILED. Slurm's own begin-time
/// hold on requeued jobs (minutes) avoids that; the test shortens it, but not below this.
const REQUEUE_HOLD: Duration = Duration::from_secs(3);

/// Waits until the job is in one of `states`, shortening the begin-time hold Slurm puts on a
/// requeued job to [`REQUEUE_HOLD`] (the test has no minutes to spare; production jobs just
/// wait).
fn wait_for_state(ws: &Workspace, id: &str, states: &[&str], limit: Duration) -> String {
    let start = Instant::now();
    let mut held_since: Option<Instant> = None;
    loop {
        let state = job_field(id, "JobState").unwrap_or_default();
        if states.contains(&state.as_str()) {
            return state;
        }
        if state == "PENDING" && job_field(id, "Reason").as_deref() == Some("BeginTime") {
            let since = *held_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= REQUEUE_HOLD {
                let _ = Command::new("scontrol")
                    .args(["update", &format!("JobId={id}"), "StartTime=now"])
                    .status();
            }
        } else {
            held_since = None;
        }
        assert!(
            start.elapsed() < limit,
            "job {id} still {state} after {limit:?}; cairn said:\n{}",
            ws.err_log()
        );
        sleep(Duration::from_millis(500));
    }
}

/// Waits until the job has ended and asserts that it completed.
fn wait_completed(ws: &Workspace, id: &str, limit: Duration) {
    let end = wait_for_state(
        ws,
        id,
        &["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"],
        limit,
    );
    assert_eq!(
        end,
        "COMPLETED",
        "job {id} ended {end}; cairn said:\n{}",
        ws.err_log()
    );
}

fn native_output(steps: u32) -> Vec<u8> {
    let out = Command::new(cairn_testkit::compile_c("slurm_steps"))
        .arg(steps.to_string())
        .env("SLURM_STEPS_NOSLEEP", "1")
        .output()
        .expect("native run");
    assert!(out.status.success());
    out.stdout
}

fn assert_same_output(ws: &Workspace, native: &[u8]) {
    let got = fs::read(ws.path("out.txt")).expect("job output");
    assert!(
        got == native,
        "output under cairn differs from the native run\n--- cairn ({} bytes):\n{}\n--- native ({} bytes)\n--- cairn's log:\n{}",
        got.len(),
        String::from_utf8_lossy(&got),
        native.len(),
        ws.err_log()
    );
}

fn count_generations(ws: &Workspace, job: &str) -> usize {
    let out = Command::new(ws.path("bin/cairn"))
        .args(["generations", "--json", "--job", job, "--store"])
        .arg(ws.path("store"))
        .output()
        .expect("cairn generations");
    if !out.status.success() {
        return 0;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.as_array()
        .or_else(|| v.get("generations").and_then(|g| g.as_array()))
        .map_or(0, Vec::len)
}

#[test]
fn wall_time_signal_checkpoints_requeues_and_finishes_like_native() {
    let _area = Area::enter(module_path!());
    if !enabled() {
        return;
    }
    let steps = 75;
    let native = native_output(steps);
    let ws = Workspace::new();
    let id = ws.submit("run.sbatch", steps, "");
    wait_completed(&ws, &id, Duration::from_secs(420));
    let restarts: u32 = job_field(&id, "Restarts")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    assert!(
        restarts >= 2,
        "the job finished after {restarts} requeues; it must need at least two:\n{}",
        ws.err_log()
    );
    assert!(ws.err_log().contains("resuming job"), "{}", ws.err_log());
    assert_same_output(&ws, &native);
}

#[test]
fn node_failure_resumes_from_the_last_periodic_checkpoint() {
    let _area = Area::enter(module_path!());
    if !enabled() {
        return;
    }
    let steps = 40;
    let native = native_output(steps);
    let ws = Workspace::new();
    // Only the node failure is tested here: the time limit is long enough for Slurm's wall-time
    // warning (USR1: final checkpoint and requeue) not to come while the test runs.
    let id = ws.submit_with(
        "periodic.sbatch",
        steps,
        ",CAIRN_INTERVAL=3",
        &["--time=10"],
    );
    wait_for_state(&ws, &id, &["RUNNING"], Duration::from_secs(120));
    let start = Instant::now();
    while count_generations(&ws, &id) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no periodic checkpoints after 60 s:\n{}",
            ws.err_log()
        );
        sleep(Duration::from_millis(300));
    }
    // The node "fails": every process of the job gets SIGKILL, no warning, no final checkpoint.
    run(Command::new("scancel").args(["--full", "--signal=KILL", &id]));
    let state = wait_for_state(
        &ws,
        &id,
        &["FAILED", "CANCELLED", "COMPLETED", "NODE_FAIL"],
        Duration::from_secs(60),
    );
    assert_ne!(state, "COMPLETED", "the job was not killed");
    run(Command::new("scontrol").args(["requeue", &id]));
    wait_completed(&ws, &id, Duration::from_secs(300));
    assert!(ws.err_log().contains("resuming job"), "{}", ws.err_log());
    assert_same_output(&ws, &native);
}

/// Generation ids of `job`, oldest first.
fn generation_ids(ws: &Workspace, job: &str) -> Vec<u64> {
    let out = Command::new(ws.path("bin/cairn"))
        .args(["generations", "--json", "--job", job, "--store"])
        .arg(ws.path("store"))
        .output()
        .expect("cairn generations");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let list = v
        .as_array()
        .or_else(|| v.get("generations").and_then(|g| g.as_array()))
        .cloned()
        .unwrap_or_default();
    let mut ids: Vec<u64> = list
        .iter()
        .filter_map(|g| g.get("id").and_then(|i| i.as_u64()))
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn store_on_scratch_stays_bounded_and_an_older_generation_resumes() {
    let _area = Area::enter(module_path!());
    if !enabled() {
        return;
    }
    let steps = 45;
    let native = native_output(steps);
    let ws = Workspace::new();
    let id = ws.submit("scratch.sbatch", steps, ",CAIRN_INTERVAL=2");
    wait_completed(&ws, &id, Duration::from_secs(300));
    assert_same_output(&ws, &native);
    let committed = ws.err_log().matches("checkpoint committed").count();
    let kept = generation_ids(&ws, &id);
    assert!(
        committed > 3 && (1..=3).contains(&kept.len()),
        "{committed} checkpoints, {} generations kept ({kept:?}): --keep-last 3 did not bound \
         the store:\n{}",
        kept.len(),
        ws.err_log()
    );
    // Resume from the oldest generation still kept: the program redoes its work from there,
    // its output file is first rewound to that checkpoint, and it ends as a native run does.
    let older = kept[0].to_string();
    let id2 = ws.submit_args(
        "older.sbatch",
        "older.txt",
        &[id.as_ref(), older.as_ref()],
        "",
        &[],
    );
    wait_completed(&ws, &id2, Duration::from_secs(120));
    assert!(
        ws.err_log()
            .contains(&format!("restarting job {id} from generation {older}")),
        "{}",
        ws.err_log()
    );
    assert_same_output(&ws, &native);
}

/// docs/slurm/mpi.sbatch: an MPI job of two ranks (MPICH; the test node has two CPUs) needs several wall-time periods;
/// each ends with a checkpoint of the launcher and every rank and a requeue, and the output
/// equals a native run's.
#[test]
fn mpi_job_checkpoints_requeues_and_finishes_like_native() {
    let _area = Area::enter(module_path!());
    if !enabled() {
        return;
    }
    let ring = std::env::temp_dir().join(format!("cairn-slurm-ring-{}", std::process::id()));
    run(Command::new("mpicc.mpich")
        .args(["-O2", "-o"])
        .arg(&ring)
        .arg(repo().join("tests/programs/mpi_ring.c")));
    let laps = "4000";
    let native = run(Command::new("mpiexec.mpich")
        .args(["-launcher", "fork", "-n", "2"])
        .arg(&ring)
        .arg(laps));
    let ws = Workspace::new();
    let prog = ws.path("bin/mpi_ring");
    fs::copy(&ring, &prog).expect("copying the MPI program");
    let _ = fs::remove_file(&ring);
    run(Command::new("chown").arg(USER).arg(&prog));
    let id = ws.submit_args(
        "mpi.sbatch",
        "out.txt",
        &[prog.as_os_str(), laps.as_ref()],
        "",
        &[],
    );
    wait_completed(&ws, &id, Duration::from_secs(600));
    let restarts: u32 = job_field(&id, "Restarts")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    assert!(
        restarts >= 1,
        "the MPI job finished without a requeue; it must need one:\n{}",
        ws.err_log()
    );
    assert_same_output(&ws, native.as_bytes());
}

#[test]
fn the_documented_scripts_are_the_tested_ones() {
    let _area = Area::enter(module_path!());
    let doc = fs::read_to_string(repo().join("docs/slurm.md")).expect("docs/slurm.md");
    for script in [
        "run.sbatch",
        "periodic.sbatch",
        "scratch.sbatch",
        "older.sbatch",
        "mpi.sbatch",
    ] {
        let text = fs::read_to_string(repo().join("docs/slurm").join(script)).expect("script");
        assert!(
            doc.contains(text.trim()),
            "docs/slurm.md does not show docs/slurm/{script} verbatim"
        );
    }
}
