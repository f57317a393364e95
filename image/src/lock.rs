//! File locks held by the job's processes: POSIX record locks (`fcntl(F_SETLK)`), `flock`
//! locks and open file description locks (`fcntl(F_OFD_SETLK)`).

use serde::{Deserialize, Serialize};

/// Which kind of lock, which decides who owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockKind {
    /// A POSIX record lock: owned by the process (its descriptor table), set through one of
    /// its open file descriptions.
    Posix,
    /// A `flock(2)` lock: owned by the open file description (the whole file).
    Flock,
    /// An open file description lock (`F_OFD_SETLK`): owned by the open file description.
    Ofd,
}

/// One lock, and the descriptor through which restore sets it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileLock {
    /// The process (pid in the job) that sets it at restore: the owner of a POSIX lock, the
    /// first process in image order holding the open file description of the others.
    pub pid: i32,
    /// Its descriptor of the open file description the lock belongs to.
    pub fd: i32,
    /// The kind.
    pub kind: LockKind,
    /// A write (exclusive) lock; else a read (shared) one.
    pub write: bool,
    /// First byte locked (0 for `flock`).
    pub start: u64,
    /// Last byte locked; `None`: to the end of the file, however long it grows (and the whole
    /// file for `flock`).
    pub end: Option<u64>,
}
