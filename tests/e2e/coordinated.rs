//! End-to-end tests of `cairn launch`/`cairn restart` under a coordinator: the DMTCP
//! seed workflow, two programs checkpointed and restarted as one computation, and an agent
//! killed in the middle of a checkpoint. Outputs are compared byte for byte with native runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cairn_store::{GenerationId, InitOptions, Store};
use cairn_testkit::{cairn, run_native, Area, Job, Program, Scratch, RUNNING};

const REGISTERED: &str = "registered with coordinator";
const WAIT: Duration = Duration::from_secs(120);

/// A test's scratch area with its own secret directory and store.
struct World {
    scratch: Scratch,
}

impl World {
    fn new() -> World {
        let scratch = Scratch::new();
        Store::init(&scratch.store(), InitOptions::default()).unwrap();
        World { scratch }
    }

    fn secrets(&self) -> PathBuf {
        self.scratch.sub("secrets")
    }

    /// `prog` run with this world's secret directory (for cairn and its children).
    fn program(&self, prog: Program) -> Program {
        prog.with_shell_prefix(&format!(
            "export CAIRN_SECRET_DIR='{}'",
            self.secrets().display()
        ))
    }

    fn cairn(&self) -> Command {
        let mut c = Command::new(cairn());
        c.env("CAIRN_SECRET_DIR", self.secrets())
            .env_remove("CAIRN_COORD_SECRET")
            .env_remove("CAIRN_COORD_SECRET_FILE")
            .env_remove("CAIRN_COORD_HOST")
            .env_remove("CAIRN_COORD_PORT")
            .env_remove("CAIRN_STORE");
        c
    }

    /// Starts `cairn coordinator --daemon --port 0 --port-file F --store S`; returns the port.
    fn coordinator(&self, name: &str) -> u16 {
        let port_file = self.scratch.dir.path().join(name);
        let out = self
            .cairn()
            .args(["coordinator", "--daemon", "--port", "0", "--port-file"])
            .arg(&port_file)
            .arg("--store")
            .arg(self.scratch.store())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        std::fs::read_to_string(&port_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn command(&self, port: u16, args: &[&str]) -> Output {
        self.cairn()
            .args(["command", "--coord-port", &port.to_string()])
            .args(args)
            .output()
            .unwrap()
    }

    /// `cairn command --bcheckpoint`; returns the committed generation.
    fn bcheckpoint(&self, port: u16) -> u64 {
        let out = self.command(port, &["--bcheckpoint"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().parse().unwrap()
    }

    /// `cairn launch --store S --job JOB --coord-port PORT -- PROG` in `dir`.
    fn launch(&self, prog: &Program, job: &str, port: u16, dir: &Path) -> Job {
        let port = port.to_string();
        let mut j = Job::start(
            prog,
            "launch",
            &self.scratch.store(),
            job,
            &["--coord-port", &port],
            dir,
            true,
        );
        assert!(j.wait_for_lines(RUNNING, 1, WAIT), "{}", j.log_text());
        j
    }

    /// `cairn restart --store S --job JOB --coord-port PORT` in `dir`, which must exit 0.
    fn restart_to_completion(&self, prog: &Program, job: &str, port: u16, dir: &Path) {
        let port = port.to_string();
        let restarted = Job::start(
            prog,
            "restart",
            &self.scratch.store(),
            job,
            &["--coord-port", &port],
            dir,
            false,
        );
        let log = restarted.log.clone();
        let code = restarted.wait(WAIT);
        assert_eq!(code, 0, "{}", std::fs::read_to_string(log).unwrap());
    }

    /// The agent ids listed in generation `g`'s meta.json.
    fn agents_of(&self, g: u64) -> Vec<String> {
        let store = Store::open(&self.scratch.store()).unwrap();
        let reader = store.reader(GenerationId(g)).unwrap();
        let meta = reader
            .read_all(&reader.lookup("meta.json").unwrap())
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&meta).unwrap();
        v["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Waits until `dir/stdout` has at least `n` lines.
fn wait_for_output(dir: &Path, n: usize) {
    let end = Instant::now() + WAIT;
    while std::fs::read_to_string(dir.join("stdout"))
        .unwrap_or_default()
        .lines()
        .count()
        < n
    {
        assert!(Instant::now() < end, "no output in {}", dir.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn assert_same_as_native(prog: &Program, native: &Path, run: &Path) {
    assert_eq!(
        text(&std::fs::read(run.join("stdout")).unwrap()),
        text(&std::fs::read(native.join("stdout")).unwrap()),
        "stdout differs from the native run"
    );
    for f in &prog.files {
        assert_eq!(
            std::fs::read(run.join(f)).unwrap(),
            std::fs::read(native.join(f)).unwrap(),
            "{f} differs from the native run"
        );
    }
}

#[test]
fn seed_workflow_launch_bcheckpoint_quit_restart() {
    let _area = Area::enter(module_path!());
    let w = World::new();
    let prog =
        w.program(Program::c("counter", &["700", "own.txt", "3000"]).with_files(&["own.txt"]));
    let native = w.scratch.sub("native");
    assert_eq!(run_native(&prog, &native).code, 0);

    let port = w.coordinator("port");
    let run = w.scratch.sub("run");
    let job = w.launch(&prog, "seed", port, &run);
    wait_for_output(&run, 100);
    let g = w.bcheckpoint(port);
    assert_eq!(w.agents_of(g).len(), 1);
    wait_for_output(&run, 200);
    let quit = w.command(port, &["--quit"]);
    assert!(quit.status.success(), "{}", text(&quit.stderr));
    // The program was stopped by the coordinator before it could finish.
    assert_eq!(job.wait(WAIT), 128 + libc::SIGKILL);
    assert!(!text(&std::fs::read(run.join("stdout")).unwrap()).contains("done"));

    let port2 = w.coordinator("port2");
    w.restart_to_completion(&prog, "seed", port2, &run);
    assert_same_as_native(&prog, &native, &run);
    let _ = w.command(port2, &["--quit"]);
}

#[test]
fn coordinated_restart_falls_back_when_the_newest_generation_is_damaged() {
    let w = World::new();
    let prog =
        w.program(Program::c("counter", &["700", "own.txt", "3000"]).with_files(&["own.txt"]));
    let native = w.scratch.sub("native");
    assert_eq!(run_native(&prog, &native).code, 0);

    let port = w.coordinator("port");
    let run = w.scratch.sub("run");
    let job = w.launch(&prog, "fallback", port, &run);
    wait_for_output(&run, 100);
    let older = w.bcheckpoint(port);
    wait_for_output(&run, 200);
    let newest = w.bcheckpoint(port);
    assert!(older < newest);
    let quit = w.command(port, &["--quit"]);
    assert!(quit.status.success(), "{}", text(&quit.stderr));
    assert_eq!(job.wait(WAIT), 128 + libc::SIGKILL);
    // One memory chunk only the newest generation reaches: its structure stays sound, so
    // only the restore itself, which verifies every chunk it reads, finds the damage.
    crate::damage::damage_a_memory_chunk_only_in(&w.scratch.store(), "fallback", 1);

    let port2 = w.coordinator("port2");
    let port2_arg = port2.to_string();
    let restarted = Job::start(
        &prog,
        "restart",
        &w.scratch.store(),
        "fallback",
        &["--coord-port", &port2_arg],
        &run,
        false,
    );
    let log_path = restarted.log.clone();
    let code = restarted.wait(WAIT);
    let log = std::fs::read_to_string(log_path).unwrap();
    assert_eq!(code, 0, "{log}");
    let attempt = log
        .find(&format!("of job fallback from generation {newest}"))
        .unwrap_or_else(|| panic!("generation {newest} not attempted: {log}"));
    let warning = log
        .find(&format!(
            "warning: skipped generation {newest}: corrupt store"
        ))
        .unwrap_or_else(|| panic!("no fallback warning: {log}"));
    let fallback = log
        .find(&format!("of job fallback from generation {older}"))
        .unwrap_or_else(|| panic!("no fallback to generation {older}: {log}"));
    assert!(attempt < warning && warning < fallback, "{log}");
    assert_same_as_native(&prog, &native, &run);
    let _ = w.command(port2, &["--quit"]);
}

#[test]
fn two_programs_checkpointed_as_one_generation_and_restarted_together() {
    let _area = Area::enter(module_path!());
    let w = World::new();
    let a = w.program(Program::c("counter", &["600", "a.txt", "3000"]).with_files(&["a.txt"]));
    let b = w.program(Program::c("counter", &["800", "b.txt", "2500"]).with_files(&["b.txt"]));
    let native_a = w.scratch.sub("native-a");
    let native_b = w.scratch.sub("native-b");
    assert_eq!(run_native(&a, &native_a).code, 0);
    assert_eq!(run_native(&b, &native_b).code, 0);

    let port = w.coordinator("port");
    let (run_a, run_b) = (w.scratch.sub("run-a"), w.scratch.sub("run-b"));
    let mut job_a = w.launch(&a, "pair", port, &run_a);
    let mut job_b = w.launch(&b, "pair", port, &run_b);
    assert!(job_a.wait_for_lines(REGISTERED, 1, WAIT));
    assert!(job_b.wait_for_lines(REGISTERED, 1, WAIT));
    wait_for_output(&run_a, 50);
    wait_for_output(&run_b, 50);
    let g = w.bcheckpoint(port);
    assert_eq!(w.agents_of(g).len(), 2, "one generation holds both agents");
    let quit = w.command(port, &["--quit"]);
    assert!(quit.status.success(), "{}", text(&quit.stderr));
    assert_eq!(job_a.wait(WAIT), 128 + libc::SIGKILL);
    assert_eq!(job_b.wait(WAIT), 128 + libc::SIGKILL);

    // One restart command restarts every agent of the generation.
    let port2 = w.coordinator("port2");
    w.restart_to_completion(&a, "pair", port2, &w.scratch.sub("restart"));
    assert_same_as_native(&a, &native_a, &run_a);
    assert_same_as_native(&b, &native_b, &run_b);
    let _ = w.command(port2, &["--quit"]);
}

#[test]
fn agent_killed_mid_checkpoint_commits_nothing_and_the_rest_keeps_running() {
    let _area = Area::enter(module_path!());
    let w = World::new();
    let big = w.program(Program::c("bigmem", &["768", "100000"]));
    let small = w.program(Program::c("counter", &["100000", "c.txt", "3000"]));
    let port = w.coordinator("port");
    let mut big_job = w.launch(&big, "mixed", port, &w.scratch.sub("big"));
    let mut small_job = w.launch(&small, "mixed", port, &w.scratch.sub("small"));
    assert!(big_job.wait_for_lines(REGISTERED, 1, WAIT));
    assert!(small_job.wait_for_lines(REGISTERED, 1, WAIT));
    // Let bigmem fill its memory so that capturing it takes a while.
    std::thread::sleep(Duration::from_secs(2));

    let waiter = {
        let mut c = w.cairn();
        c.args([
            "command",
            "--coord-port",
            &port.to_string(),
            "--bcheckpoint",
        ]);
        std::thread::spawn(move || c.output().unwrap())
    };
    assert!(
        big_job.wait_for_lines("requested by the coordinator", 1, WAIT),
        "{}",
        big_job.log_text()
    );
    big_job.kill_all();
    let out = waiter.join().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));

    let store = Store::open(&w.scratch.store()).unwrap();
    assert!(store.generations(Some("mixed")).unwrap().is_empty());
    // The coordinator keeps serving and the other program keeps running.
    assert!(small_job.running());
    let status = w.command(port, &["--status"]);
    assert!(status.status.success(), "{}", text(&status.stderr));
    let g = w.bcheckpoint(port);
    assert_eq!(w.agents_of(g), vec![agent_id_of(&small_job)]);
    assert!(small_job.running());
    let _ = w.command(port, &["--quit"]);
    assert_eq!(small_job.wait(WAIT), 128 + libc::SIGKILL);
}

/// The agent id a launched agent printed when it registered.
fn agent_id_of(job: &Job) -> String {
    let log = job.log_text();
    let line = log
        .lines()
        .find(|l| l.contains(REGISTERED))
        .expect("registration line");
    line.split_whitespace().nth(2).unwrap().to_string()
}

#[test]
fn launch_refuses_a_store_other_than_the_coordinators_and_starts_nothing() {
    let _area = Area::enter(module_path!());
    let w = World::new();
    let port = w.coordinator("port");
    let other = w.scratch.sub("other-store");
    let marker = w.scratch.dir.path().join("started");
    let out = w
        .cairn()
        .args(["launch", "--job", "j", "--coord-port", &port.to_string()])
        .arg("--store")
        .arg(&other)
        .args(["--", "touch"])
        .arg(&marker)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("commits into store"));
    assert!(!marker.exists());
    let _ = w.command(port, &["--quit"]);
}

#[test]
fn interval_is_the_coordinators_in_coordinated_mode() {
    let _area = Area::enter(module_path!());
    let w = World::new();
    let out = w
        .cairn()
        .args(["launch", "--job", "j", "--coordinator", "--interval", "5"])
        .arg("--store")
        .arg(w.scratch.store())
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("cairn coordinator --interval"));
}
