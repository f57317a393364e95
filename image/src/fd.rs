//! The descriptor table of a process: what each open descriptor refers to.

use serde::{Deserialize, Serialize};

/// One open file descriptor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FdImage {
    /// Descriptor number.
    pub fd: i32,
    /// FD_CLOEXEC.
    pub cloexec: bool,
    /// What it refers to.
    pub kind: FdKind,
}

/// What a file descriptor refers to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FdKind {
    /// A file reopened by path (regular files, directories, /dev/null, /dev/zero, /dev/urandom).
    Path {
        /// Absolute path.
        path: String,
        /// open(2) flags (access mode, O_APPEND, O_NONBLOCK, ...).
        flags: i32,
        /// File offset.
        offset: u64,
    },
    /// A regular file deleted while open; its contents go through the sink as a file stream.
    Deleted {
        /// Path it had (without " (deleted)").
        path: String,
        /// open(2) flags.
        flags: i32,
        /// File offset.
        offset: u64,
        /// Size of the saved contents.
        size: u64,
    },
    /// A descriptor of a file without a name ([`crate::UnlinkedFile`] with this id): a
    /// deleted regular file, a memfd or a deleted FIFO. Each such descriptor is its own open
    /// of the file (as with separate `open` calls).
    Unlinked {
        /// Inode number of the file at the checkpoint.
        id: u64,
        /// open(2) flags of this descriptor.
        flags: i32,
        /// File offset.
        offset: u64,
    },
    /// A terminal or pipe on 0/1/2: the restoring process's own descriptor of the same number.
    Stdio,
    /// One end of a pipe created inside the job (not inherited from the parent); all
    /// descriptors with the same `id` share the pipe, which restore recreates and refills
    /// with its unread bytes ([`crate::PipeImage`]).
    Pipe {
        /// Pipe inode number at the checkpoint (identifies the pipe within the image).
        id: u64,
        /// open(2) flags of this end: O_RDONLY (read end) or O_WRONLY, O_NONBLOCK.
        flags: i32,
    },
    /// A UNIX socket of the job ([`crate::unix::SocketImage`] with this id); every descriptor
    /// with the same id is the same socket (one open file description).
    Socket {
        /// Socket inode number at the checkpoint.
        id: u64,
    },
    /// A TCP or UDP socket of the job ([`crate::inet::InetSocket`] with this id).
    Inet {
        /// Socket inode number at the checkpoint.
        id: u64,
    },
    /// A FIFO (named pipe) opened by path ([`crate::unix::FifoImage`] with this id).
    Fifo {
        /// Inode number of the FIFO at the checkpoint.
        id: u64,
        /// open(2) flags of this descriptor (access mode, O_NONBLOCK).
        flags: i32,
    },
    /// The same open file description as the parent process's descriptor `parent_fd`
    /// (inherited across fork: shared offset and flags); restore inherits it the same way.
    Inherited {
        /// The parent's descriptor number.
        parent_fd: i32,
    },
    /// The same open file description as descriptor `fd` of process `pid` (pid in the job),
    /// which comes earlier in image order (an earlier process, or a lower descriptor of this
    /// one) and is not inherited: a `dup` in the same process, or a description shared with a
    /// process that is not the parent (a sibling, after the parent closed its descriptor).
    /// Restore hands out a duplicate of that descriptor: one offset, one set of status flags.
    SameAs {
        /// The process holding the first descriptor of the description.
        pid: i32,
        /// That descriptor.
        fd: i32,
    },
    /// An eventfd created inside the job.
    EventFd(crate::EventFdImage),
    /// A signalfd created inside the job.
    SignalFd(crate::SignalFdImage),
    /// A timerfd created inside the job.
    TimerFd(crate::TimerFdImage),
    /// An epoll instance created inside the job, with its interest list.
    Epoll(crate::EpollImage),
    /// An inotify instance created inside the job, with its watches.
    Inotify(crate::InotifyImage),
    /// One side of a pseudo-terminal pair whose two sides the job holds.
    Pty(crate::PtyImage),
}
