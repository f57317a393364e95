//! UNIX sockets and FIFOs between processes of the job.

use serde::{Deserialize, Serialize};

/// UNIX sockets, FIFOs and System V shared memory of a job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpcImage {
    /// Every UNIX socket open in a process of the job.
    #[serde(default)]
    pub sockets: Vec<SocketImage>,
    /// Every FIFO open in a process of the job.
    #[serde(default)]
    pub fifos: Vec<FifoImage>,
    /// Every System V shared memory segment of the job's IPC namespace.
    #[serde(default)]
    pub sysv_shm: Vec<crate::sysv::SysvShm>,
    /// Every System V semaphore set of the job's IPC namespace.
    #[serde(default)]
    pub sysv_sem: Vec<crate::sysv::SysvSem>,
    /// Every System V message queue of the job's IPC namespace.
    #[serde(default)]
    pub sysv_msg: Vec<crate::sysv::SysvMsgQueue>,
}

/// The local address of a UNIX socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SocketName {
    /// A filesystem name.
    Path {
        /// Absolute path of the socket file (relative names are resolved at capture).
        path: String,
        /// Whether the socket file still existed at the checkpoint (otherwise it was unlinked
        /// and restore unlinks it again after binding).
        exists: bool,
        /// Permission bits of the socket file.
        mode: u32,
    },
    /// An abstract name (the bytes after the leading NUL).
    Abstract(Vec<u8>),
}

/// Connection state of a UNIX socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SocketState {
    /// Neither listening nor connected.
    Unconnected,
    /// Listening, with no connection waiting to be accepted.
    Listening {
        /// listen(2) backlog.
        backlog: u32,
    },
    /// Connected to `peer` (a socket of the job), or to a peer that was closed (`None`).
    Connected {
        /// Inode of the peer socket.
        peer: Option<u64>,
    },
}

/// A UNIX socket of the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketImage {
    /// Inode number at the checkpoint ([`crate::FdKind::Socket::id`]).
    pub id: u64,
    /// SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET.
    pub sock_type: i32,
    /// O_NONBLOCK set on the socket's open file description.
    pub nonblock: bool,
    /// Listening, connected, or neither.
    pub state: SocketState,
    /// Bound address, if any.
    pub name: Option<SocketName>,
    /// RCV_SHUTDOWN (1) | SEND_SHUTDOWN (2).
    pub shutdown: u8,
    /// SO_SNDBUF as getsockopt reports it.
    pub sndbuf: i32,
    /// SO_RCVBUF as getsockopt reports it.
    pub rcvbuf: i32,
    /// SO_PEEK_OFF (-1: off).
    pub peek_off: i32,
    /// Lengths of the unread messages, oldest first (a stream socket has one entry with all
    /// its unread bytes); their bytes, concatenated, are the file `data`.
    pub messages: Vec<u64>,
    /// `(pid, fd)` under which the unread bytes went to [`crate::MemorySink::put_file`].
    pub data: Option<(i32, i32)>,
}

/// A FIFO (named pipe) of the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FifoImage {
    /// Inode number ([`crate::FdKind::Fifo::id`]).
    pub id: u64,
    /// Absolute path.
    pub path: String,
    /// Number of unread bytes.
    pub unread: u64,
    /// `(pid, fd)` under which the unread bytes went to [`crate::MemorySink::put_file`].
    pub data: Option<(i32, i32)>,
}
