//! [`JobProcess`] for the capture engine's [`Sandbox`]: the real program of a job.

use std::ffi::OsString;
use std::os::fd::BorrowedFd;

use cairn_capture::dirty::DirtyTracker;
pub use cairn_capture::{CutBarrier, ExternalTcp};
use cairn_image::{MemorySink, MemorySource, ProcessTreeImage};
use cairn_restore::lazy::{LazyMemory, LazyOutcome};
use cairn_sys::{ExitStatus, Sandbox};
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
use std::sync::Arc;

use super::error::AgentError;
use super::exit::ProgramExit;
use super::job::JobProcess;

/// A job's program running in its sandbox.
pub struct SandboxJob {
    sandbox: Sandbox,
    /// Dirty-page tracking state (None when disabled by CAIRN_DIRTY_TRACKING=0).
    tracker: Option<DirtyTracker>,
    /// How long the program was frozen by the last checkpoint taken without a tracker, in
    /// microseconds (small: it fits in the struct's padding).
    untracked_frozen_us: u32,
    /// The lazy part of the restore this program came from, until every page is in place.
    lazy: Option<Arc<LazyMemory>>,
    /// What the checkpoints do with TCP connections leaving the job.
    external_tcp: ExternalTcp,
    /// The next checkpoint is the final one before a stop (`cairn run`).
    final_stop: bool,
    /// The program, kept frozen by that final checkpoint until it is killed.
    kept: std::sync::Mutex<Option<Box<cairn_capture::KeptFrozen>>>,
    /// The global cut the next checkpoint takes part in (a coordinated job).
    barrier: Option<Box<dyn CutBarrier>>,
}

impl SandboxJob {
    /// Starts `argv` in a new sandbox. The program starts with `program_mask` as its signal
    /// mask (normally the mask the agent had before blocking its own signals).
    pub fn launch(argv: &[OsString], program_mask: &SigSet) -> Result<Self, AgentError> {
        let Some(prog) = argv.first() else {
            return Err(AgentError::Usage("no program given".into()));
        };
        check_program(prog)?;
        // The sandbox's children inherit the calling thread's mask; the agent's blocked
        // signals must not stay blocked in the program.
        let mut agent_mask = SigSet::empty();
        pthread_sigmask(
            SigmaskHow::SIG_SETMASK,
            Some(program_mask),
            Some(&mut agent_mask),
        )
        .map_err(|e| AgentError::sys("setting the signal mask", e))?;
        let launched = Sandbox::launch(argv);
        pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&agent_mask), None)
            .map_err(|e| AgentError::sys("restoring the signal mask", e))?;
        let sandbox = launched.map_err(|e| launch_error(argv, e))?;
        Ok(SandboxJob::new(sandbox))
    }

    /// Rebuilds a program from its image, its memory coming from `source`.
    pub fn restore(
        image: &ProcessTreeImage,
        source: &dyn MemorySource,
    ) -> Result<Self, AgentError> {
        let sandbox = cairn_restore::restore(image, source)
            .map_err(|e| AgentError::Restore(e.to_string()))?;
        Ok(SandboxJob::new(sandbox))
    }

    /// Like [`SandboxJob::restore`], the large private mappings restored lazily where the
    /// kernel allows it (`cairn_restore::lazy`): the program runs again before their pages
    /// are in place. When they are, one line on stderr says so; see
    /// [`SandboxJob::lazy_restore`] for the outcome.
    pub fn restore_lazy(
        image: &ProcessTreeImage,
        source: Arc<dyn MemorySource + Send + Sync>,
    ) -> Result<Self, AgentError> {
        let (sandbox, lazy) =
            cairn_restore::restore_lazy(image, source, &cairn_restore::RestoreOptions::default())
                .map_err(|e| AgentError::Restore(e.to_string()))?;
        let mut job = SandboxJob::new(sandbox);
        if let Some(lazy) = lazy {
            let lazy = Arc::new(lazy);
            let watch = lazy.clone();
            std::thread::Builder::new()
                .name("lazy-report".into())
                .spawn(move || {
                    if let LazyOutcome::Complete {
                        seconds,
                        bytes,
                        faults,
                    } = watch.wait()
                    {
                        eprintln!(
                            "cairn: memory in place {seconds:.3} s after the program resumed ({:.1} MiB copied, {faults} page faults served)",
                            bytes as f64 / (1 << 20) as f64
                        );
                    }
                })
                .map_err(|e| AgentError::Restore(format!("starting a thread: {e}")))?;
            job.lazy = Some(lazy);
        }
        Ok(job)
    }

    /// The lazy part of the restore (None when everything was restored before the program
    /// ran). Its [`LazyMemory::outcome`] tells whether a page could not be restored after
    /// the program resumed (the job was then killed).
    pub fn lazy_restore(&self) -> Option<Arc<LazyMemory>> {
        self.lazy.clone()
    }

    fn new(sandbox: Sandbox) -> Self {
        let tracker = super::incremental::tracking_enabled().then(DirtyTracker::new);
        SandboxJob {
            sandbox,
            tracker,
            untracked_frozen_us: 0,
            lazy: None,
            external_tcp: ExternalTcp::Refuse,
            final_stop: false,
            kept: std::sync::Mutex::new(None),
            barrier: None,
        }
    }

    /// Sets what the checkpoints do with TCP connections whose peer is not a process of the
    /// job (default: refuse the checkpoint).
    pub fn set_external_tcp(&mut self, policy: ExternalTcp) {
        self.external_tcp = policy;
    }

    /// Waits until a lazy restore has every page in place (a checkpoint must see the whole
    /// memory, and dirty tracking needs the mappings free of the restore's registration).
    fn settle(&mut self) -> Result<(), AgentError> {
        let Some(lazy) = &self.lazy else {
            return Ok(());
        };
        match lazy.wait() {
            LazyOutcome::Complete { .. } | LazyOutcome::ProgramGone => {
                self.lazy = None;
                Ok(())
            }
            LazyOutcome::Failed(why) => Err(AgentError::Restore(why)),
        }
    }

    /// The dirty-page tracker, when tracking is enabled.
    pub fn tracker(&self) -> Option<&DirtyTracker> {
        self.tracker.as_ref()
    }

    /// The sandbox.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }
}

fn launch_error(argv: &[OsString], e: cairn_sys::Error) -> AgentError {
    AgentError::Launch(format!("starting {}: {e}", argv[0].to_string_lossy()))
}

/// Checks, as a shell would, that `prog` names an executable file (directly when it contains
/// a `/`, else on `$PATH`), so that a typo is a usage error rather than a failed launch.
pub fn check_program(prog: &std::ffi::OsStr) -> Result<(), AgentError> {
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::fs::PermissionsExt as _;
    let executable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let name = prog.to_string_lossy();
    if !prog.as_bytes().contains(&b'/') {
        let on_path = std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| executable(&dir.join(prog)))
        });
        return if on_path {
            Ok(())
        } else {
            Err(AgentError::Usage(format!(
                "cannot execute {name}: no executable of that name on $PATH"
            )))
        };
    }
    let why = match std::fs::metadata(prog) {
        Ok(m) if m.is_dir() => "it is a directory",
        Ok(m) if !m.is_file() => "it is not a regular file",
        Ok(m) if m.permissions().mode() & 0o111 == 0 => "it is not executable",
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => "permission denied",
        Err(_) => "no such file",
    };
    Err(AgentError::Usage(format!("cannot execute {name}: {why}")))
}

impl JobProcess for SandboxJob {
    type Image = ProcessTreeImage;

    fn pidfd(&self) -> BorrowedFd<'_> {
        self.sandbox.pidfd()
    }

    fn resident_bytes(&self) -> Option<u64> {
        Some(resident_bytes_below(self.sandbox.init_pid()))
    }

    fn checkpoint(&mut self, sink: &mut dyn MemorySink) -> Result<ProcessTreeImage, AgentError> {
        self.settle()?;
        let opts = cairn_capture::CheckpointOptions::from_env()
            .map(|o| cairn_capture::CheckpointOptions {
                external_tcp: self.external_tcp,
                final_stop: self.final_stop,
                ..o
            })
            .map_err(|e| AgentError::Capture(e.to_string()))?;
        let captured = match (&mut self.tracker, self.barrier.as_deref_mut()) {
            // The final checkpoint with connections kept in place: the program stays frozen
            // until it is killed (or the checkpoint failed), so that they do not move.
            (t, None) if self.final_stop && self.external_tcp == ExternalTcp::Repair => {
                if let Some(t) = t {
                    t.invalidate();
                }
                cairn_capture::checkpoint_kept_frozen(&self.sandbox, sink, &opts).map(
                    |(image, kept)| {
                        *self.kept.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(kept));
                        image
                    },
                )
            }
            (t, Some(b)) => {
                cairn_capture::checkpoint_cut(&self.sandbox, sink, &opts, t.as_mut(), b)
            }
            (Some(t), None) => {
                cairn_capture::checkpoint_tracked_with(&self.sandbox, t, sink, &opts)
            }
            (None, None) => cairn_capture::checkpoint_timed(&self.sandbox, sink, &opts).map(
                |(image, frozen)| {
                    self.untracked_frozen_us = frozen.as_micros().min(u32::MAX as u128) as u32;
                    image
                },
            ),
        };
        match captured {
            Ok(image) => Ok(image),
            Err(cairn_sys::Error::Exited { .. }) => Err(AgentError::ExitedDuringCheckpoint),
            Err(e) => Err(AgentError::Capture(e.to_string())),
        }
    }

    fn final_checkpoint(&mut self, on: bool) {
        self.final_stop = on;
        if !on {
            // Out of repair mode before the program runs again.
            cairn_capture::release_held();
            *self.kept.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    fn stopped(&mut self) -> Vec<String> {
        self.final_stop = false;
        *self.kept.lock().unwrap_or_else(|p| p.into_inner()) = None;
        cairn_capture::close_held()
    }

    fn set_cut_barrier(
        &mut self,
        barrier: Option<Box<dyn CutBarrier>>,
    ) -> Option<Box<dyn CutBarrier>> {
        std::mem::replace(&mut self.barrier, barrier)
    }

    fn checkpoint_abandoned(&mut self) {
        if let Some(t) = &mut self.tracker {
            t.invalidate();
        }
    }

    fn last_frozen(&self) -> Option<std::time::Duration> {
        match &self.tracker {
            Some(t) => Some(t.last_stats().frozen),
            None => Some(std::time::Duration::from_micros(
                self.untracked_frozen_us.into(),
            )),
        }
    }

    fn tracking_problem(&self) -> Option<String> {
        self.tracker
            .as_ref()
            .and_then(|t| t.unavailable().map(str::to_string))
    }

    fn signal(&self, sig: Signal) -> Result<(), AgentError> {
        self.sandbox
            .signal(sig as i32)
            .map_err(|e| AgentError::Capture(format!("sending {sig}: {e}")))
    }

    fn kill(&self) -> Result<(), AgentError> {
        // A program kept frozen since its final checkpoint dies where it stands; its killed
        // threads are let go (their exit reports reaped) so that the sandbox sees them end.
        if let Some(k) = self.kept.lock().unwrap_or_else(|p| p.into_inner()).take() {
            k.kill();
        }
        self.sandbox
            .kill()
            .map_err(|e| AgentError::Capture(format!("killing the program: {e}")))
    }

    fn reap(&mut self) -> Result<ProgramExit, AgentError> {
        match self.sandbox.wait() {
            Ok(ExitStatus::Code(c)) => Ok(ProgramExit::Code(c)),
            Ok(ExitStatus::Signal(s)) => Ok(ProgramExit::Signal(s)),
            Err(e) => Err(AgentError::Capture(format!("waiting for the program: {e}"))),
        }
    }
}

/// The resident memory (`Rss` of /proc/PID/smaps_rollup) of `root` and every process below
/// it: about what a checkpoint reads.
fn resident_bytes_below(root: i32) -> u64 {
    let mut total = 0;
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        let rollup =
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        total += rollup
            .lines()
            .find_map(|l| l.strip_prefix("Rss:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024;
        todo.extend(cairn_sys::procfs::children_of(pid).unwrap_or_default());
    }
    total
}
