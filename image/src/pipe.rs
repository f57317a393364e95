//! Pipes created inside the job.

use serde::{Deserialize, Serialize};

/// A pipe between processes of the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipeImage {
    /// Inode number at the checkpoint ([`crate::FdKind::Pipe::id`]).
    pub id: u64,
    /// Capacity in bytes (F_GETPIPE_SZ).
    pub capacity: u64,
    /// Number of unread bytes.
    pub unread: u64,
    /// `(pid, fd)` under which the unread bytes went to [`crate::MemorySink::put_file`] (a read end).
    pub data: Option<(i32, i32)>,
}
