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

pub mod file;
pub mod pipe;
pub mod sysv;
pub mod unix;

use cairn_image::{FdImage, MemorySink, MemorySource, ProcessImage, ProcessTreeImage};
use cairn_sys::freeze::Frozen;
use cairn_sys::inject::Injector;
use cairn_sys::Result;
use std::os::fd::OwnedFd;

pub use file::{CheckpointOptions, FileCapture};

/// A frozen job as the kinds see it at a checkpoint.
#[derive(Debug)]
pub struct FrozenJob<'a> {
    /// The launched program, frozen (syscalls are injected through it).
    pub root: &'a Frozen,
    /// Outer pid of every process, in the order of the image's `processes`.
    pub outer: &'a [i32],
    /// How the capture was asked for.
    pub options: &'a CheckpointOptions,
}

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
    /// Every stub of the job is ready; `root` (outer pid) is the launched program's, through
    /// which objects of the job's own namespaces are created.
    fn in_job(&self, _root: i32, _source: &dyn MemorySource) -> Result<()> {
        Ok(())
    }
    /// Process `p` is being rebuilt: its stub is stopped and `inj` injects into it.
    fn in_process(&self, _inj: &Injector, _p: &ProcessImage) -> Result<()> {
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
    /// Its capture.
    pub capture: CaptureFn,
    /// Its restore.
    pub recreate: RecreateFn,
}

/// Every kind, in the order a checkpoint captures them and a restore recreates them.
pub const JOB_KINDS: &[JobKind] = &[
    JobKind {
        name: "file",
        capture: file::capture::capture_job,
        recreate: file::restore::recreate,
    },
    JobKind {
        name: "pipe",
        capture: pipe::capture::capture_job,
        recreate: pipe::restore::recreate,
    },
    JobKind {
        name: "unix",
        capture: unix::capture::capture_job,
        recreate: unix::restore::recreate,
    },
    JobKind {
        name: "sysv",
        capture: sysv::capture::capture_job,
        recreate: sysv::restore::recreate,
    },
];
