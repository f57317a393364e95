//! Event polling instances (`epoll(7)`) of the job.

use serde::{Deserialize, Serialize};

/// An epoll instance and its interest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpollImage {
    /// Identifies the open file description within the image.
    pub id: u64,
    /// Status flags of the open file: O_RDWR and O_NONBLOCK.
    pub flags: i32,
    /// Every entry of the interest list, in the kernel's order.
    pub entries: Vec<EpollEntry>,
}

/// One entry of an interest list: a target file registered under a descriptor number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpollEntry {
    /// The descriptor number the target was registered under (`tfd:` of fdinfo), by which
    /// the program modifies or deletes the entry.
    pub tfd: i32,
    /// The events mask with its flags (EPOLLET, EPOLLONESHOT, EPOLLEXCLUSIVE, EPOLLWAKEUP;
    /// a fired one-shot entry keeps only its flags).
    pub events: u32,
    /// The data returned with the events.
    pub data: u64,
    /// `None` when descriptor `tfd` of the process in which the entry is added is the target;
    /// otherwise the descriptor of that process that holds it (`tfd` was closed or reused
    /// since the registration).
    pub via: Option<i32>,
    /// The process in which the entry is added and its descriptor of the instance, `(pid in
    /// the job, fd)`, when that is not the first process holding the instance (an instance
    /// shared across fork, to which a child added its own descriptors).
    #[serde(default)]
    pub holder: Option<(i32, i32)>,
}
