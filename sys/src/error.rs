//! The error type of capture (and of the sandbox and syscall injection shared with restore).

use std::io;

/// Everything that can go wrong while launching, freezing, capturing or injecting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call made by cairn itself failed.
    #[error("{what}: {source}")]
    Sys {
        /// What cairn was doing.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The program exited (or was killed) while it was being checkpointed.
    #[error("the program (pid {pid}) exited during the checkpoint; checkpoint abandoned")]
    Exited {
        /// Outer pid of the thread that was seen exiting.
        pid: i32,
    },
    /// A syscall injected into the traced program returned an error.
    #[error("injected {name} in thread {tid} failed: {source}")]
    Injected {
        /// Syscall name.
        name: &'static str,
        /// Outer tid of the thread.
        tid: i32,
        /// The errno returned.
        #[source]
        source: io::Error,
    },
    /// The program uses something cairn cannot capture or restore yet.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The image cannot be restored on this machine, or is malformed.
    #[error("cannot restore: {0}")]
    Incompatible(String),
    /// Unexpected data in /proc or from ptrace.
    #[error("unexpected kernel data: {0}")]
    Parse(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Build an [`Error::Sys`] from the current `errno`.
pub fn last_os(what: impl Into<String>) -> Error {
    Error::Sys {
        what: what.into(),
        source: io::Error::last_os_error(),
    }
}

/// Attach context to an `io::Error`.
pub fn io_ctx(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Sys { what, source }
}
