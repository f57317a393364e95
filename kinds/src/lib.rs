//! The kinds of kernel objects a job holds besides its processes' own state, one module each,
//! with the object's capture and its restore side by side (`<kind>/capture.rs`,
//! `<kind>/restore.rs`); the image types are in `cairn-image`.
//!
//! At a checkpoint, the capture driver (`cairn-capture`) runs the capture of every entry of
//! [`JOB_KINDS`] on the frozen job, in order. At a restore, the restore driver
//! (`cairn-restore`) first lets every kind recreate its objects in the restoring process
//! ([`RecreateFn`]), then asks them for the descriptors the job's processes hold and tells
//! them as the job is rebuilt ([`Recreated`]).
//!
//! Adding a kind: its image type in `cairn-image`, a module here, one line in [`JOB_KINDS`].

#![warn(missing_docs)]

pub mod epoll;
pub mod eventfd;
pub mod fanotify;
pub mod file;
pub mod inet;
pub mod inotify;
pub mod lock;
pub mod pipe;
pub mod posix_mq;
pub mod posix_timer;
pub mod pty;
mod scratch;
mod shared;
pub mod signalfd;
pub mod sysv;
pub mod timerfd;
pub mod unix;
pub mod unlinked;

use cairn_image::{FdImage, FdKind, MemorySink, MemorySource, ProcessImage, ProcessTreeImage};
use cairn_sys::freeze::Frozen;
use cairn_sys::inject::Injector;
use cairn_sys::Result;
use std::os::fd::OwnedFd;

pub use file::{CheckpointOptions, FileCapture};
pub use inet::{close_held, release_held, ExternalTcp};

/// A frozen job as the kinds see it at a checkpoint.
#[derive(Debug)]
pub struct FrozenJob<'a> {
    /// The launched program, frozen (syscalls are injected through it).
    pub root: &'a Frozen,
    /// Outer pid of every process, in the order of the image's `processes`.
    pub outer: &'a [i32],
    /// How the capture was asked for.
    pub options: &'a CheckpointOptions,
    /// The TCP connection ends (local, peer) held by the other agents of a coordinated job,
    /// frozen at the same cut: a connection of this job whose mirror is among them is
    /// internal to the job ([`cairn_image::InetState::Remote`]). Empty for a solo job.
    pub peers: &'a [(std::net::SocketAddr, std::net::SocketAddr)],
}

/// One open descriptor of a frozen process, as /proc shows it.
#[derive(Debug)]
pub struct OpenFd<'a> {
    /// Outer pid of the process.
    pub pid: i32,
    /// Its pid inside the job's namespace.
    pub ns_pid: i32,
    /// The descriptor number.
    pub fd: i32,
    /// What `/proc/PID/fd/FD` links to (`pipe:[N]`, `anon_inode:[eventfd]`, a path, ...).
    pub link: &'a str,
    /// The text of `/proc/PID/fdinfo/FD`.
    pub info: &'a str,
    /// The open file description's status flags (O_CLOEXEC and creation flags removed).
    pub flags: i32,
    /// The file offset (`pos:` of fdinfo).
    pub pos: u64,
    /// `stat` of the open file (through `/proc/PID/fd/FD`).
    pub meta: &'a std::io::Result<std::fs::Metadata>,
    /// False only for descriptors 0, 1 and 2 of the launched program, which lead outside the
    /// job (the restoring command's own stdio takes their place when they are a terminal,
    /// pipe or socket).
    pub inside: bool,
}

impl OpenFd<'_> {
    /// The value of fdinfo line `key` (e.g. `"eventfd-count:"`), trimmed.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.info
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
    }

    /// The error refusing this descriptor: `what` it is that cannot be checkpointed.
    pub fn unsupported(&self, what: impl std::fmt::Display) -> cairn_sys::Error {
        cairn_sys::Error::Unsupported(format!(
            "process {} fd {}: {what} cannot be checkpointed",
            self.ns_pid, self.fd
        ))
    }
}

/// Describes an open descriptor in the image when it refers to an object of this kind (its
/// contents, if any, go to the sink); `None` when the object is of another kind.
pub type DescribeFn = fn(&OpenFd<'_>, &mut dyn MemorySink) -> Option<Result<FdKind>>;

/// Captures one kind of object of the frozen job into its part of `image` (whose processes
/// are already captured); contents go to the sink.
pub type CaptureFn = fn(&FrozenJob<'_>, &mut ProcessTreeImage, &mut dyn MemorySink) -> Result<()>;

/// What a kind recreated in the restoring process before the job's processes exist, and
/// what it still does as they are rebuilt. Every step has a default that does nothing.
pub trait Recreated {
    /// The descriptor to install as `fd` of process `pid` (pid in the job's namespace), when
    /// `fd.kind` names an object of this kind; `None` otherwise.
    fn open(
        &self,
        _pid: i32,
        _fd: &FdImage,
        _source: &dyn MemorySource,
    ) -> Option<Result<OwnedFd>> {
        None
    }
    /// Every descriptor of every process is open: the kind closes the copies it kept to hand
    /// them out (before the job is launched, as a restore always did).
    fn descriptors_taken(&mut self) {}
    /// The file that the job's shared mappings with shared-memory id `id` ([`cairn_image::Vma::shm`])
    /// map, when this kind recreated it (a memfd, a deleted file); `None` otherwise.
    fn shared_object(&self, _id: u64) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
    /// Every stub of the job is ready; `root` (outer pid) is the launched program's, through
    /// which objects of the job's own namespaces are created.
    fn in_job(&self, _root: i32, _source: &dyn MemorySource) -> Result<()> {
        Ok(())
    }
    /// Process `p` is being rebuilt: its stub is stopped and `inj` injects into it.
    fn in_process(&self, _inj: &Injector, _p: &ProcessImage) -> Result<()> {
        Ok(())
    }
    /// Process `p` is being rebuilt and all its threads exist (with their tids), their own
    /// state not yet set: `inj` injects into its first thread.
    fn with_threads(&self, _inj: &Injector, _p: &ProcessImage) -> Result<()> {
        Ok(())
    }
    /// Every process of the job is rebuilt; `root` as for [`Recreated::in_job`].
    fn finish(&self, _root: i32) -> Result<()> {
        Ok(())
    }
}

/// Recreates one kind's objects of `image` in the restoring process.
pub type RecreateFn = fn(&ProcessTreeImage, &dyn MemorySource) -> Result<Box<dyn Recreated>>;

/// One kind of kernel object in the table.
#[derive(Debug, Clone, Copy)]
pub struct JobKind {
    /// Short name, as errors and docs say it.
    pub name: &'static str,
    /// How a descriptor of this kind is described in its process's image (`None`: the kind
    /// has no descriptors).
    pub describe: Option<DescribeFn>,
    /// Its capture, once every process is captured.
    pub capture: CaptureFn,
    /// Its restore.
    pub recreate: RecreateFn,
}

/// Every kind, in the order a checkpoint captures them and a restore recreates them.
pub const JOB_KINDS: &[JobKind] = &[
    // Before "file": a queue's descriptor looks like a regular file.
    JobKind {
        name: "posix_mq",
        describe: Some(posix_mq::capture::describe),
        capture: posix_mq::capture::capture_job,
        recreate: posix_mq::restore::recreate,
    },
    JobKind {
        name: "file",
        describe: Some(file::capture::describe),
        capture: file::capture::capture_job,
        recreate: file::restore::recreate,
    },
    JobKind {
        name: "unlinked",
        describe: Some(unlinked::capture::describe),
        capture: unlinked::capture::capture_job,
        recreate: unlinked::restore::recreate,
    },
    JobKind {
        name: "pipe",
        describe: Some(pipe::capture::describe),
        capture: pipe::capture::capture_job,
        recreate: pipe::restore::recreate,
    },
    // Before "unix", whose descriptions take every other socket.
    JobKind {
        name: "inet",
        describe: Some(inet::capture::describe),
        capture: inet::capture::capture_job,
        recreate: inet::restore::recreate,
    },
    JobKind {
        name: "unix",
        describe: Some(unix::capture::describe),
        capture: unix::capture::capture_job,
        recreate: unix::restore::recreate,
    },
    JobKind {
        name: "pty",
        describe: Some(pty::capture::describe),
        capture: pty::capture::capture_job,
        recreate: pty::restore::recreate,
    },
    JobKind {
        name: "sysv",
        describe: None,
        capture: sysv::capture::capture_job,
        recreate: sysv::restore::recreate,
    },
    JobKind {
        name: "posix_timer",
        describe: None,
        capture: posix_timer::capture::capture_job,
        recreate: posix_timer::recreate,
    },
    JobKind {
        name: "eventfd",
        describe: Some(eventfd::capture::describe),
        capture: eventfd::capture::capture_job,
        recreate: eventfd::restore::recreate,
    },
    JobKind {
        name: "signalfd",
        describe: Some(signalfd::capture::describe),
        capture: signalfd::capture::capture_job,
        recreate: signalfd::restore::recreate,
    },
    JobKind {
        name: "timerfd",
        describe: Some(timerfd::capture::describe),
        capture: timerfd::capture::capture_job,
        recreate: timerfd::restore::recreate,
    },
    JobKind {
        name: "inotify",
        describe: Some(inotify::capture::describe),
        capture: inotify::capture::capture_job,
        recreate: inotify::restore::recreate,
    },
    JobKind {
        name: "fanotify",
        describe: Some(fanotify::capture::describe),
        capture: fanotify::capture::capture_job,
        recreate: fanotify::restore::recreate,
    },
    // Last: adding an entry polls its target, which the kinds above have filled and armed.
    JobKind {
        name: "epoll",
        describe: Some(epoll::capture::describe),
        capture: epoll::capture::capture_job,
        recreate: epoll::restore::recreate,
    },
    // After every kind that opens or closes descriptors inside a rebuilt process: closing any
    // descriptor of a file drops the POSIX locks its process holds on it.
    JobKind {
        name: "lock",
        describe: None,
        capture: lock::capture::capture_job,
        recreate: lock::restore::recreate,
    },
];
