//! Who the agent answers to besides its own signals: nobody ([`Alone`]: it checkpoints on
//! its own), or a supervisor such as a coordinator's connection, which adds a descriptor to
//! the event loop and decides what a wanted checkpoint does.

use std::os::fd::BorrowedFd;

use super::{Agent, AgentError, JobEnd, JobProcess};

/// Hooks of [`Agent::run_supervised`]'s event loop.
pub trait Supervisor<P: JobProcess> {
    /// A descriptor to watch besides the program and the agent's signals, if any now.
    fn watch(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// The watched descriptor is readable; `Some(end)` ends the loop with that outcome.
    fn on_ready(&mut self, _agent: &mut Agent<P>) -> Result<Option<JobEnd>, AgentError> {
        Ok(None)
    }

    /// A checkpoint is wanted (SIGUSR1, or a tick of the interval timer): by default the
    /// agent takes it and commits it itself, logging a failure.
    fn checkpoint_wanted(&mut self, agent: &mut Agent<P>) -> Result<(), AgentError> {
        agent.checkpoint_logged().map(|_| ())
    }

    /// The loop has ended (the program ended or was stopped).
    fn on_end(&mut self) {}
}

/// No supervisor: the agent checkpoints and commits on its own.
pub struct Alone;

impl<P: JobProcess> Supervisor<P> for Alone {}
