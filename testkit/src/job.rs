//! One incarnation of a job under cairn, and the agent's log markers the tests wait for.

use std::ffi::OsString;
use std::fs::{self, File};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::cli::cairn;
use crate::program::{code_of, Program};
use crate::users::open_up;

/// The marker the agent prints on stderr after committing a generation.
pub const COMMITTED: &str = "checkpoint committed";
/// The marker the agent prints on stderr once it handles signals and runs the program.
pub const RUNNING: &str = "running (agent pid";
/// The marker the agent prints on stderr when a checkpoint starts.
pub const STARTED: &str = "checkpoint started";

/// Counts the lines of `log` containing `needle`.
pub fn count_lines(log: &Path, needle: &str) -> usize {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
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

impl Drop for Job {
    /// A job still running when its test ends (a failed assertion) is killed, so that it
    /// holds no mount point, port or store of the next test.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: killpg(2) on the process group we created for this job.
            unsafe { libc::killpg(self.child.id() as i32, libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

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
