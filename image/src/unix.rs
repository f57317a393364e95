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
        /// Owner (uid, gid) of the socket file, as the capturing agent sees them; `None` in
        /// images written before it was recorded (restore leaves the owner as binding made it).
        #[serde(default)]
        owner: Option<(u32, u32)>,
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
        /// The connecting sockets (ids, all of the job) whose connections wait to be accepted,
        /// oldest first; each has the state [`SocketState::Pending`].
        #[serde(default)]
        pending: Vec<u64>,
    },
    /// Connected to a listener of the job that has not accepted the connection yet (the
    /// listener's `pending` names this socket).
    Pending {
        /// Id of the listening socket.
        listener: u64,
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
    /// For a datagram socket, the sender's address of each unread message (same order as
    /// `messages`): the `sun_path` bytes recvmsg reports (an abstract name starts with a NUL
    /// byte), empty for an unnamed sender. Empty for other types.
    #[serde(default)]
    pub senders: Vec<Vec<u8>>,
    /// Socket options beyond the buffer sizes.
    #[serde(default)]
    pub options: SocketOptions,
    /// A stream or seqpacket socket whose peer was closed with unread data: its next read
    /// after the queued data fails once with ECONNRESET (the pending error `poll` shows as
    /// POLLERR).
    #[serde(default)]
    pub reset: bool,
    /// On a socket with SO_PASSCRED, the SCM_CREDENTIALS of each unread message (same order
    /// as `messages`): the sender's pid in the job's namespace, its uid and gid. Empty
    /// otherwise.
    #[serde(default)]
    pub creds: Vec<(i32, u32, u32)>,
    /// The descriptors in flight (SCM_RIGHTS) of each unread message (same order as
    /// `messages`), each as `(pid, fd)` of a process of the job that holds the same open
    /// file description. Empty when no message carries descriptors.
    #[serde(default)]
    pub fds: Vec<Vec<(i32, i32)>>,
}

/// Socket options of a UNIX socket that restore sets again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketOptions {
    /// SO_PASSCRED.
    pub passcred: bool,
    /// SO_RCVTIMEO as (seconds, microseconds); (0, 0) is no timeout.
    pub rcvtimeo: (i64, i64),
    /// SO_SNDTIMEO as (seconds, microseconds); (0, 0) is no timeout.
    pub sndtimeo: (i64, i64),
    /// SO_RCVLOWAT (1 is the default).
    pub rcvlowat: i32,
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
