//! [`JobProcess`] for the capture engine's [`Sandbox`]: the real program of a job.

use std::ffi::OsString;
use std::os::fd::BorrowedFd;

use cairn_capture::image::{MemorySink, MemorySource, ProcessTreeImage};
use cairn_capture::sandbox::{ExitStatus, Sandbox};
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};

use super::error::AgentError;
use super::exit::ProgramExit;
use super::job::JobProcess;

/// A job's program running in its sandbox.
pub struct SandboxJob {
    sandbox: Sandbox,
}

impl SandboxJob {
    /// Starts `argv` in a new sandbox. The program starts with `program_mask` as its signal
    /// mask (normally the mask the agent had before blocking its own signals).
    pub fn launch(argv: &[OsString], program_mask: &SigSet) -> Result<Self, AgentError> {
        if argv.is_empty() {
            return Err(AgentError::Usage("no program given".into()));
        }
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
        Ok(SandboxJob { sandbox })
    }

    /// Rebuilds a program from its image, its memory coming from `source`.
    pub fn restore(
        image: &ProcessTreeImage,
        source: &dyn MemorySource,
    ) -> Result<Self, AgentError> {
        let sandbox = cairn_restore::restore(image, source)
            .map_err(|e| AgentError::Restore(e.to_string()))?;
        Ok(SandboxJob { sandbox })
    }

    /// The sandbox.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }
}

fn launch_error(argv: &[OsString], e: cairn_capture::Error) -> AgentError {
    AgentError::Capture(format!("starting {}: {e}", argv[0].to_string_lossy()))
}

/// After a failed capture: threads of the program that died while this thread traced them
/// stay zombies until their tracer waits for them, and only then does the sandbox init learn
/// that the program has exited. Wait for each of them (briefly, they may still be dying); a
/// thread that is alive and no longer traced answers ECHILD and is left alone.
fn release_dead_tracees(pid: i32) {
    let mut tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    if !tids.contains(&pid) {
        tids.push(pid);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(200);
    while !tids.is_empty() && std::time::Instant::now() < deadline {
        tids.retain(|&t| {
            let mut status = 0;
            // SAFETY: waitpid on a specific tid with WNOHANG; it only reaps a thread this
            // thread traces (the sandbox init, our real child, has another pid).
            let r = unsafe { libc::waitpid(t, &mut status, libc::WNOHANG | libc::__WALL) };
            r == 0
        });
        if !tids.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

impl JobProcess for SandboxJob {
    type Image = ProcessTreeImage;

    fn pidfd(&self) -> BorrowedFd<'_> {
        self.sandbox.pidfd()
    }

    fn checkpoint(&mut self, sink: &mut dyn MemorySink) -> Result<ProcessTreeImage, AgentError> {
        let result = self.sandbox.checkpoint(sink);
        if result.is_err() {
            release_dead_tracees(self.sandbox.program_pid());
        }
        match result {
            Ok(image) => Ok(image),
            Err(cairn_capture::Error::Exited { .. }) => Err(AgentError::ExitedDuringCheckpoint),
            Err(e) => Err(AgentError::Capture(e.to_string())),
        }
    }

    fn signal(&self, sig: Signal) -> Result<(), AgentError> {
        self.sandbox
            .signal(sig as i32)
            .map_err(|e| AgentError::Capture(format!("sending {sig}: {e}")))
    }

    fn kill(&self) -> Result<(), AgentError> {
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
