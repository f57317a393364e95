//! The kinds of kernel objects a job holds besides its processes' own state, one module each,
//! with the object's capture and its restore side by side (`<kind>/capture.rs`,
//! `<kind>/restore.rs`); the image types are in `cairn-image`.
//!
//! At a checkpoint, the capture driver (`cairn-capture`) runs every entry of [`JOB_KINDS`] on
//! the frozen job, in order. At a restore, the restore driver (`cairn-restore`) rebuilds the
//! kinds in the phases the kernel imposes (objects shared between processes are created
//! before the processes that inherit them; see each module).
//!
//! Adding a kind: its image type in `cairn-image`, a module here, one line in [`JOB_KINDS`].

#![warn(missing_docs)]

pub mod file;
pub mod pipe;
pub mod sysv;
pub mod unix;

use cairn_image::{MemorySink, ProcessTreeImage};
use cairn_sys::freeze::Frozen;
use cairn_sys::Result;

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

/// One kind of kernel object in the table.
#[derive(Debug, Clone, Copy)]
pub struct JobKind {
    /// Short name, as errors and docs say it.
    pub name: &'static str,
    /// Its capture.
    pub capture: CaptureFn,
}

/// Every kind, in the order a checkpoint captures them.
pub const JOB_KINDS: &[JobKind] = &[
    JobKind {
        name: "pipe",
        capture: pipe::capture::capture_job,
    },
    JobKind {
        name: "unix",
        capture: unix::capture::capture_job,
    },
    JobKind {
        name: "sysv",
        capture: sysv::capture::capture_job,
    },
    JobKind {
        name: "file",
        capture: file::capture::capture_job,
    },
];
