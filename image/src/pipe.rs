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
    /// Lengths of the packets the unread bytes are made of, when the pipe was written in
    /// packet mode (`O_DIRECT`); empty for a byte stream.
    #[serde(default)]
    pub packets: Vec<u64>,
    /// The open file descriptions of the pipe's ends: each with its flags and the
    /// descriptors `(pid, fd)` that share it (not counting inherited ones). Empty in older
    /// images: one description per end.
    #[serde(default)]
    pub opens: Vec<PipeOpen>,
}

/// One open file description of a pipe end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipeOpen {
    /// Status flags: access mode (`O_RDWR` for an end reopened read-write through /proc),
    /// O_NONBLOCK, O_DIRECT.
    pub flags: i32,
    /// The descriptors `(pid, fd)` that share it.
    pub fds: Vec<(i32, i32)>,
}
