//! The checkpoint image: everything captured about a job's process tree, as serde metadata,
//! plus the traits through which memory and file contents flow to and from a store. The JSON
//! form is specified in docs/image-format.md; [`IMAGE_FORMAT`] is its version.
//!
//! One module per part of the model; a kind of kernel object has its type here and its
//! capture and restore in `cairn-kinds`.

#![warn(missing_docs)]

pub mod attrs;
pub mod epoll;
pub mod eventfd;
pub mod fanotify;
pub mod fd;
pub mod file;
pub mod inet;
pub mod inotify;
pub mod lock;
pub mod memory;
pub mod pipe;
pub mod posix_mq;
pub mod posix_timer;
pub mod process;
pub mod pty;
pub mod signalfd;
pub mod sysv;
pub mod timerfd;
pub mod unix;
pub mod unlinked;

pub use attrs::{ChildReport, Creds, ProcessAttrs, SchedAttr, ThreadAttrs};
pub use epoll::{EpollEntry, EpollImage};
pub use eventfd::EventFdImage;
pub use fanotify::{FanotifyImage, FanotifyMark, FanotifyTarget};
pub use fd::{FdImage, FdKind};
pub use file::WrittenFile;
pub use inet::{Datagram, InetImage, InetSocket, InetState, IntOption, TcpRepair, Transport};
pub use inotify::{InotifyImage, InotifyWatch};
pub use lock::{FileLock, LockKind};
pub use memory::{
    Backing, ChunkFn, MemoryImageStore, MemorySink, MemorySource, RegionSource, Vma, VmaFlags,
    MEM_CHUNK,
};
pub use pipe::{PipeImage, PipeOpen};
pub use posix_mq::{PosixMq, PosixMqMessage};
pub use posix_timer::PosixTimer;
pub use process::{
    MmFields, ProcessImage, SigAction, ThreadImage, UserRegs, VdsoInfo, ZombieImage,
};
pub use pty::PtyImage;
pub use signalfd::SignalFdImage;
pub use sysv::{SysvAttach, SysvMsg, SysvMsgQueue, SysvSem, SysvShm};
pub use timerfd::TimerFdImage;
pub use unix::{FifoImage, IpcImage, SocketImage, SocketName, SocketOptions, SocketState};
pub use unlinked::{UnlinkedFile, UnlinkedKind};

use serde::{Deserialize, Serialize};

/// Version of the image format written by this code.
pub const IMAGE_FORMAT: u32 = 2;

/// The oldest image format this code still reads: format 1 is format 2 without processes
/// adopted by the init, without `launched_exit` and without the zombies' groups (their
/// parent's), which the defaults of those fields express.
pub const IMAGE_FORMAT_OLDEST: u32 = 1;

/// A captured job: every process of the launched program's tree (one process for now).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessTreeImage {
    /// [`IMAGE_FORMAT`] at capture time.
    pub format: u32,
    /// Whether the job ran in its own user namespace (unprivileged launch).
    pub user_ns: bool,
    /// The processes, each after its parent; the first one is the launched program unless it
    /// had ended ([`ProcessTreeImage::launched_exit`]). Processes whose parent is 1 were
    /// adopted by the sandbox init (orphans, daemons).
    pub processes: Vec<ProcessImage>,
    /// The launched program's raw wait status when it had already ended at the checkpoint
    /// while other processes of the job ran on (None: it runs, and is `processes[0]`).
    #[serde(default)]
    pub launched_exit: Option<i32>,
    /// Regular files open for writing at the checkpoint (each once), rewound at restore.
    #[serde(default)]
    pub files: Vec<WrittenFile>,
    /// Children that had exited but were not yet reaped by their parent.
    #[serde(default)]
    pub zombies: Vec<ZombieImage>,
    /// Pipes created inside the job, with their unread bytes.
    #[serde(default)]
    pub pipes: Vec<PipeImage>,
    /// UNIX sockets, FIFOs and System V shared memory of the job ([`unix`], [`sysv`]).
    #[serde(default)]
    pub ipc: IpcImage,
    /// File locks held by the job's processes ([`lock`]).
    #[serde(default)]
    pub locks: Vec<FileLock>,
    /// TCP and UDP sockets of the job ([`inet`]).
    #[serde(default)]
    pub inet: InetImage,
    /// POSIX timers of the processes ([`posix_timer`]).
    #[serde(default)]
    pub posix_timers: Vec<PosixTimer>,
    /// POSIX message queues the job holds open ([`posix_mq`]).
    #[serde(default)]
    pub posix_mqs: Vec<PosixMq>,
    /// Pseudo-terminals the job opened itself ([`pty`]).
    #[serde(default)]
    pub ptys: Vec<PtyImage>,
    /// Files without a name: deleted-but-open files, memfds, deleted FIFOs ([`unlinked`]).
    #[serde(default)]
    pub unlinked: Vec<UnlinkedFile>,
}
