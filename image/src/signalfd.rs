//! Signal descriptors (`signalfd(2)`) of the job.

use serde::{Deserialize, Serialize};

/// A signalfd: the signals it accepts. The signals pending for the process are part of the
/// process's own image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalFdImage {
    /// Identifies the open file description within the image.
    pub id: u64,
    /// The accepted signals (`sigmask:` of fdinfo): bit `n - 1` for signal `n`.
    pub mask: u64,
    /// Status flags of the open file: O_RDWR and O_NONBLOCK.
    pub flags: i32,
}
