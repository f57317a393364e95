//! Capturing a running job from outside with ptrace into a `ProcessTreeImage`: freezing the
//! process tree ([`tree`]), capturing each process — threads, registers, kernel state, memory,
//! its descriptor table — ([`checkpoint`]), then every other kind of kernel object through the
//! table of `cairn-kinds`; dirty-page tracking and pre-copy ([`dirty`]).
//!
//! * [`checkpoint`]`(&sandbox, &mut dyn MemorySink)` freezes the program and all its
//!   descendants, captures them into a [`ProcessTreeImage`] while memory regions and file
//!   contents go to the sink, then lets it run again. A program that exits meanwhile gives
//!   [`Error::Exited`] and its exit status stays available through the sandbox's `wait`.
//! * [`checkpoint_with`] chooses how files open for writing are captured ([`FileCapture`]);
//!   [`checkpoint_tracked`] captures incrementally with a [`dirty::DirtyTracker`].
//!
//! The method, and what is and is not supported, is described in docs/capture-restore.md.
//! All ptrace work happens on the calling thread: call these from one thread at a time per
//! sandbox; the sink may be called from several threads.

#![warn(missing_docs)]

pub mod attrs;
pub mod checkpoint;
pub mod cow;
pub mod dirty;
pub mod tree;
pub mod vmflags;

pub use cairn_kinds::{CheckpointOptions, ExternalTcp, FileCapture};
pub use dirty::{checkpoint_tracked, checkpoint_tracked_with};

use cairn_image::{MemorySink, ProcessTreeImage, IMAGE_FORMAT};
use cairn_kinds::{FrozenJob, JOB_KINDS};
use cairn_sys::{Error, Result, Sandbox};
use checkpoint::{FreezeHints, NoHints};

/// Freeze the program, capture it (memory into `sink`), and let it run again. Files open for
/// writing are captured as [`CheckpointOptions::from_env`] says.
pub fn checkpoint(sandbox: &Sandbox, sink: &mut dyn MemorySink) -> Result<ProcessTreeImage> {
    checkpoint_with(sandbox, sink, &CheckpointOptions::from_env()?)
}

/// [`checkpoint`] with explicit options.
pub fn checkpoint_with(
    sandbox: &Sandbox,
    sink: &mut dyn MemorySink,
    opts: &CheckpointOptions,
) -> Result<ProcessTreeImage> {
    checkpoint_inner(sandbox, sink, opts, None)
}

/// Freeze the whole tree and capture it; with a tracker, every process's memory is captured
/// incrementally, pre-copied while the tree runs when the sink supports it ([`dirty`]), and
/// tracking is re-armed before the tree runs again.
pub(crate) fn checkpoint_inner(
    sandbox: &Sandbox,
    sink: &mut dyn MemorySink,
    opts: &CheckpointOptions,
    tracker: Option<&mut dirty::DirtyTracker>,
) -> Result<ProcessTreeImage> {
    let pid = sandbox.program_pid();
    let image = match tracker {
        Some(t) => dirty::capture_tracked(pid, sandbox.init_pid(), t, sink, |frozen, s, h| {
            capture_tree(frozen, s, h, opts, sandbox)
        }),
        None => tree::FrozenTree::freeze(sandbox.init_pid(), pid)
            .and_then(|frozen| capture_tree(&frozen, sink, &NoHints, opts, sandbox)),
    };
    // Whatever failed, a job with no process left means "exited during the checkpoint".
    image.map_err(|e| {
        if job_gone(sandbox.init_pid()) {
            Error::Exited { pid }
        } else {
            e
        }
    })
}

/// True when no process of the job under the sandbox init `init` runs any more.
fn job_gone(init: i32) -> bool {
    cairn_sys::procfs::children_of(init).map_or(true, |kids| kids.into_iter().all(program_gone))
}

/// Capture a frozen tree: every process, then every kind of [`JOB_KINDS`] (still frozen, so
/// file sizes and contents are those of the checkpoint moment).
fn capture_tree(
    frozen: &tree::FrozenTree,
    sink: &mut dyn MemorySink,
    hints: &dyn FreezeHints,
    opts: &CheckpointOptions,
    sandbox: &Sandbox,
) -> Result<ProcessTreeImage> {
    let launched_exit = if frozen.program_runs() {
        None
    } else {
        // It has ended; the init reaps it and reports its status at once.
        let st = sandbox.launched_exit(std::time::Duration::from_secs(5))?;
        Some(st.ok_or_else(|| Error::Sys {
            what: "learning how the launched program ended".into(),
            source: std::io::Error::from(std::io::ErrorKind::TimedOut),
        })?)
    };
    let (processes, zombies) = frozen.capture(sink, hints)?;
    let mut image = ProcessTreeImage {
        format: IMAGE_FORMAT,
        user_ns: sandbox.user_ns(),
        launched_exit,
        processes,
        zombies,
        files: Vec::new(),
        pipes: Vec::new(),
        ipc: Default::default(),
        locks: Vec::new(),
        inet: Default::default(),
        posix_timers: Vec::new(),
        unlinked: Vec::new(),
    };
    let outer: Vec<i32> = frozen.procs.iter().map(|(f, _)| f.pid).collect();
    let job = FrozenJob {
        root: &frozen.procs[0].0,
        outer: &outer,
        options: opts,
    };
    for kind in JOB_KINDS {
        (kind.capture)(&job, &mut image, sink)?;
    }
    Ok(image)
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
