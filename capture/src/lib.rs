//! Capturing a running process from outside with ptrace into a `ProcessImage`, and the job
//! sandbox both launch and restore run programs in.
//!
//! # API for the agent
//!
//! * [`Sandbox::launch`]`(argv)` runs a program in a new PID namespace (and a user namespace
//!   when not root) under a tiny init that forwards signals and reports the exit status.
//!   [`Sandbox::pidfd`] becomes readable when the job ends; [`Sandbox::wait`] /
//!   [`Sandbox::try_wait`] return the program's [`ExitStatus`]; [`Sandbox::signal`] forwards a
//!   signal; [`Sandbox::kill`] kills the whole job.
//! * [`Sandbox::checkpoint`]`(&mut dyn MemorySink)` freezes the program and all its
//!   descendants ([`tree`]), captures them into a [`ProcessTreeImage`] (serde metadata) while
//!   memory regions and file contents go to the sink, then lets it run again. A program that exits meanwhile gives
//!   [`Error::Exited`] and its exit status stays available through `wait`.
//! * [`Sandbox::launch_with`]`(ChildSpec::Exec { argv, stdio: Some([in, out, err]) })` gives
//!   the program other descriptors as stdin/stdout/stderr.
//! * `cairn_restore::restore(&image, &dyn MemorySource)` gives back a running [`Sandbox`]
//!   (same pid and tids; monotonic clocks continue from the checkpoint);
//!   `cairn_restore::restore_with(.., &RestoreOptions { stdio })` re-attaches terminal/pipe
//!   stdio to given descriptors instead of the caller's own 0, 1, 2.
//! * [`Sandbox::checkpoint_with`]`(sink, &`[`CheckpointOptions`]`)` chooses how files open for
//!   writing are captured ([`FileCapture`]; `checkpoint` reads env `CAIRN_FILE_CAPTURE_MAX`).
//!   They are listed in [`ProcessTreeImage::files`] and rewound by restore.
//! * [`MemoryImageStore`] is an in-memory sink and source.
//!
//! The method, and what is and is not supported, is described in docs/capture-restore.md.
//!
//! All ptrace work happens on the calling thread: call `checkpoint` (and restore) from one
//! thread at a time per sandbox; the sink may be called from several threads.

#![warn(missing_docs)]

pub mod checkpoint;
pub mod dirty;
pub mod error;
pub mod files;
pub mod freeze;
pub mod image;
pub mod inject;
pub mod ipc;
pub mod pipes;
pub mod procfs;
pub mod ptrace;
pub mod sandbox;
pub mod sysv;
pub mod tree;
pub mod uffd;
pub mod unix_diag;

pub use error::{Error, Result};
pub use files::{CheckpointOptions, FileCapture, WrittenFile};
pub use image::{
    FdImage, FdKind, MemoryImageStore, MemorySink, MemorySource, PipeImage, ProcessImage,
    ProcessTreeImage, ThreadImage, UserRegs, Vma, ZombieImage, IMAGE_FORMAT,
};
pub use sandbox::{ChildSpec, ExitStatus, Sandbox};

impl Sandbox {
    /// Freeze the program, capture it (memory into `sink`), and let it run again. Files open
    /// for writing are captured as [`CheckpointOptions::from_env`] says.
    pub fn checkpoint(&self, sink: &mut dyn MemorySink) -> Result<ProcessTreeImage> {
        self.checkpoint_with(sink, &CheckpointOptions::from_env()?)
    }

    /// [`Sandbox::checkpoint`] with explicit options.
    pub fn checkpoint_with(
        &self,
        sink: &mut dyn MemorySink,
        opts: &CheckpointOptions,
    ) -> Result<ProcessTreeImage> {
        self.checkpoint_inner(sink, opts, None)
    }

    /// Freeze the whole tree and capture it; with a tracker, every process's memory is
    /// captured incrementally, pre-copied while the tree runs when the sink supports it
    /// ([`dirty`]), and tracking is re-armed before the tree runs again.
    pub(crate) fn checkpoint_inner(
        &self,
        sink: &mut dyn MemorySink,
        opts: &CheckpointOptions,
        tracker: Option<&mut dirty::DirtyTracker>,
    ) -> Result<ProcessTreeImage> {
        let pid = self.program_pid();
        let image = match tracker {
            Some(t) => dirty::capture_tracked(pid, self.init_pid(), t, sink, |frozen, s| {
                capture_tree(frozen, s, opts)
            }),
            None => tree::FrozenTree::freeze(pid, self.init_pid())
                .and_then(|frozen| capture_tree(&frozen, sink, opts)),
        };
        // Whatever failed, a program that is gone means "exited during the checkpoint".
        let (processes, zombies, files, pipes, ipc) = image.map_err(|e| {
            if program_gone(pid) {
                Error::Exited { pid }
            } else {
                e
            }
        })?;
        Ok(ProcessTreeImage {
            format: IMAGE_FORMAT,
            user_ns: self.user_ns(),
            processes,
            files,
            zombies,
            pipes,
            ipc,
        })
    }
}

/// Everything captured of a frozen tree: processes, zombies, written files, pipes, IPC.
pub(crate) type Captured = (
    Vec<ProcessImage>,
    Vec<ZombieImage>,
    Vec<WrittenFile>,
    Vec<PipeImage>,
    ipc::IpcImage,
);

/// Capture a frozen tree: every process, then pipes and written files (still frozen, so file
/// sizes and contents are those of the checkpoint moment).
fn capture_tree(
    frozen: &tree::FrozenTree,
    sink: &mut dyn MemorySink,
    opts: &CheckpointOptions,
) -> Result<Captured> {
    let (procs, zombies) = frozen.capture(sink)?;
    let outer: Vec<i32> = frozen.procs.iter().map(|(f, _)| f.pid).collect();
    let pipes = pipes::capture_pipes(&outer, &procs, sink)?;
    let mut ipc = ipc::capture_ipc(&outer, &procs, sink)?;
    let inner: Vec<i32> = procs.iter().map(|p| p.pid).collect();
    ipc.sysv_shm = sysv::capture(&frozen.procs[0].0, &outer, &inner, sink)?;
    let mut seen = Vec::new();
    let mut files = Vec::new();
    for ((fz, _), p) in frozen.procs.iter().zip(&procs) {
        files.extend(files::capture_written(
            fz.pid,
            p,
            opts.file_capture_max,
            &mut seen,
            sink,
        )?);
    }
    Ok((procs, zombies, files, pipes, ipc))
}

/// True when `pid` no longer runs (no /proc entry, zombie or dead).
pub(crate) fn program_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            .is_none_or(|st| st == "Z" || st == "X"),
    }
}
