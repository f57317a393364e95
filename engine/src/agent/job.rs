//! What the agent needs from the program it runs: the [`JobProcess`] trait, implemented by
//! the capture engine's sandbox (see `sandbox_job.rs`) and by test doubles.

use std::os::fd::BorrowedFd;

use cairn_image::MemorySink;
use nix::sys::signal::Signal;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::AgentError;
use super::exit::ProgramExit;

/// A running program that the agent can watch, signal, checkpoint and reap.
pub trait JobProcess {
    /// The captured form of the program (written as `image.json`).
    type Image: Serialize + DeserializeOwned;

    /// A pidfd that becomes readable when the program has exited.
    fn pidfd(&self) -> BorrowedFd<'_>;

    /// Freezes the program, captures it (memory through `sink`), and lets it run again.
    /// Fails with [`AgentError::ExitedDuringCheckpoint`] when the program is gone.
    fn checkpoint(&mut self, sink: &mut dyn MemorySink) -> Result<Self::Image, AgentError>;

    /// Makes the next checkpoints one agent's part of a global cut (`Some`), or solo again
    /// (`None`); returns the barrier set before. Programs that cannot take part ignore it.
    fn set_cut_barrier(
        &mut self,
        barrier: Option<Box<dyn super::CutBarrier>>,
    ) -> Option<Box<dyn super::CutBarrier>> {
        barrier
    }

    /// The last checkpoint was not committed: forget any dirty-tracking baseline so that the
    /// next checkpoint captures everything (incremental checkpoints, docs/incremental.md).
    fn checkpoint_abandoned(&mut self) {}

    /// How long the program was frozen during the last checkpoint, when the program knows
    /// better than the duration of [`JobProcess::checkpoint`] (pre-copy runs part of the
    /// checkpoint while the program runs).
    fn last_frozen(&self) -> Option<std::time::Duration> {
        None
    }

    /// Why dirty-page tracking is not in effect after the last checkpoint, if it is not
    /// (every checkpoint is then full); `None` when it works or is switched off.
    fn tracking_problem(&self) -> Option<String> {
        None
    }

    /// About how many bytes of memory a checkpoint reads (the resident memory of the job's
    /// processes), for its progress; `None` when unknown.
    fn resident_bytes(&self) -> Option<u64> {
        None
    }

    /// The next checkpoint is the last before the program is stopped (`on`), or it failed
    /// and the program runs on (`!on`, after it was announced).
    fn final_checkpoint(&mut self, _on: bool) {}

    /// The program was killed after its final checkpoint; lines worth telling the user.
    fn stopped(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// Delivers `sig` to the program.
    fn signal(&self, sig: Signal) -> Result<(), AgentError>;

    /// Kills the whole program (every process of it) with SIGKILL.
    fn kill(&self) -> Result<(), AgentError>;

    /// Waits for the program to end and returns how it ended. Call after the pidfd became
    /// readable (or after [`JobProcess::kill`]).
    fn reap(&mut self) -> Result<ProgramExit, AgentError>;
}
