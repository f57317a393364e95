//! POSIX message queues (`mq_open(3)`) of the job.

use serde::{Deserialize, Serialize};

/// One POSIX message queue held open by the job, with its messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PosixMq {
    /// Identifies the queue within the image (its inode number at the checkpoint).
    pub id: u64,
    /// Its name, with the leading `/` (`/NAME`).
    pub name: String,
    /// Whether it had been unlinked (`mq_unlink`) while still open.
    pub unlinked: bool,
    /// Permission bits.
    pub mode: u32,
    /// Owner uid (as the job sees it).
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// `mq_maxmsg`.
    pub maxmsg: i64,
    /// `mq_msgsize`.
    pub msgsize: i64,
    /// The queued messages in the order `mq_receive` returns them (highest priority first,
    /// oldest first within a priority).
    pub messages: Vec<PosixMqMessage>,
}

/// One queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PosixMqMessage {
    /// Its priority.
    pub prio: u32,
    /// Its bytes.
    pub data: Vec<u8>,
}
