//! Errors of the agent.

use std::path::PathBuf;

/// What can go wrong while an agent runs a job.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A system call the agent itself makes failed.
    #[error("{what}: {source}")]
    Sys {
        /// What the agent was doing.
        what: &'static str,
        /// The errno.
        source: nix::errno::Errno,
    },
    /// Bad input from the user (unknown job, unusable program, ...): exit code 2.
    #[error("{0}")]
    Usage(String),
    /// The store refused or failed.
    #[error("store: {0}")]
    Store(#[from] cairn_store::StoreError),
    /// Starting the program failed.
    #[error("{0}")]
    Launch(String),
    /// Capturing the program failed.
    #[error("checkpoint: {0}")]
    Capture(String),
    /// Rebuilding the program failed.
    #[error("restore: {0}")]
    Restore(String),
    /// The checkpoint image stored in a generation cannot be decoded.
    #[error("generation {generation}: bad image {path}: {reason}")]
    BadImage {
        /// The generation being read.
        generation: String,
        /// The path of the image inside the generation.
        path: PathBuf,
        /// Why it could not be used.
        reason: String,
    },
    /// The program exited while a checkpoint was being taken; nothing was committed.
    #[error("the program exited during the checkpoint; checkpoint abandoned")]
    ExitedDuringCheckpoint,
}

impl AgentError {
    /// Wraps an errno with a description of the failed operation.
    pub fn sys(what: &'static str, source: nix::errno::Errno) -> Self {
        AgentError::Sys { what, source }
    }

    /// True when the error is the user's (exit code 2), not cairn's (exit code 99).
    pub fn is_usage(&self) -> bool {
        matches!(self, AgentError::Usage(_))
    }
}
