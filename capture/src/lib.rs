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
pub mod barrier;
pub mod checkpoint;
pub mod cow;
pub mod dirty;
pub mod snapshot;
pub mod tree;
pub mod vmflags;

pub use barrier::CutBarrier;
pub use cairn_kinds::{close_held, release_held, CheckpointOptions, ExternalTcp, FileCapture};
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
    checkpoint_timed(sandbox, sink, opts).map(|(image, _)| image)
}

/// [`checkpoint_with`], also returning how long the program was frozen.
pub fn checkpoint_timed(
    sandbox: &Sandbox,
    sink: &mut dyn MemorySink,
    opts: &CheckpointOptions,
) -> Result<(ProcessTreeImage, std::time::Duration)> {
    let mut frozen = std::time::Duration::ZERO;
    let image = checkpoint_inner(sandbox, sink, opts, None, &mut frozen, None)?;
    Ok((image, frozen))
}

/// A job left frozen after its capture, thawed (or, killed meanwhile, let go) when dropped.
pub struct KeptFrozen(tree::FrozenTree);

impl KeptFrozen {
    /// Kill every process of the job where it stands (a frozen process dies without running
    /// another instruction), then let them go.
    pub fn kill(self) {
        for (f, _) in &self.0.procs {
            // SAFETY: kill(2) with a pid of the job.
            unsafe { libc::kill(f.pid, libc::SIGKILL) };
        }
    }
}

/// [`checkpoint_with`] for a final checkpoint: the program stays frozen after its capture
/// (a full one, without dirty tracking) until the returned guard is dropped, so that
/// nothing of it moves between the capture and its stop.
pub fn checkpoint_kept_frozen(
    sandbox: &Sandbox,
    sink: &mut dyn MemorySink,
    opts: &CheckpointOptions,
) -> Result<(ProcessTreeImage, KeptFrozen)> {
    let pid = sandbox.program_pid();
    let r = tree::FrozenTree::freeze(sandbox.init_pid(), pid).and_then(|frozen| {
        match capture_tree(&frozen, sink, &NoHints, opts, sandbox, None) {
            Ok(image) => Ok((image, KeptFrozen(frozen))),
            Err(e) => {
                // Connections the capture held leave repair mode before the program runs.
                cairn_kinds::release_held();
                drop(frozen);
                Err(e)
            }
        }
    });
    r.map_err(|e| {
        if job_gone(sandbox.init_pid()) {
            Error::Exited { pid }
        } else {
            e
        }
    })
}

/// [`checkpoint_with`] (incremental with `tracker`) as one agent's part of a global cut:
/// once frozen, the tree waits at every step of `barrier` for the other agents of the job,
/// and its connections to them are drained before it is captured ([`barrier`]).
pub fn checkpoint_cut(
    sandbox: &Sandbox,
    sink: &mut dyn MemorySink,
    opts: &CheckpointOptions,
    tracker: Option<&mut dirty::DirtyTracker>,
    barrier: &mut dyn CutBarrier,
) -> Result<ProcessTreeImage> {
    let mut frozen = std::time::Duration::ZERO;
    checkpoint_inner(sandbox, sink, opts, tracker, &mut frozen, Some(barrier))
}

/// Freeze the whole tree and capture it; with a tracker, every process's memory is captured
/// incrementally, pre-copied while the tree runs when the sink supports it ([`dirty`]), and
/// tracking is re-armed before the tree runs again.
pub(crate) fn checkpoint_inner(
    sandbox: &Sandbox,
    sink: &mut dyn MemorySink,
    opts: &CheckpointOptions,
    tracker: Option<&mut dirty::DirtyTracker>,
    frozen: &mut std::time::Duration,
    barrier: Option<&mut dyn CutBarrier>,
) -> Result<ProcessTreeImage> {
    let pid = sandbox.program_pid();
    let image = match tracker {
        Some(t) => dirty::capture_tracked(pid, sandbox.init_pid(), t, sink, |frozen, s, h| {
            capture_tree(frozen, s, h, opts, sandbox, barrier)
        }),
        None => capture_untracked(sandbox, sink, opts, frozen, barrier),
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

/// Freeze the tree, capture it (memory through copy-on-write snapshots unless
/// `CAIRN_SNAPSHOT=0`), thaw it and read the snapshots; adds the time it was frozen to
/// `frozen`.
fn capture_untracked(
    sandbox: &Sandbox,
    sink: &mut dyn MemorySink,
    opts: &CheckpointOptions,
    frozen_time: &mut std::time::Duration,
    barrier: Option<&mut dyn CutBarrier>,
) -> Result<ProcessTreeImage> {
    let t = std::time::Instant::now();
    let frozen = tree::FrozenTree::freeze(sandbox.init_pid(), sandbox.program_pid())?;
    let mut defer = snapshot::DeferSink::new(sink, snapshot::enabled_by_env());
    let image = capture_tree(&frozen, &mut defer, &NoHints, opts, sandbox, barrier)?;
    let pids: Vec<(i32, i32)> = frozen
        .procs
        .iter()
        .zip(&image.processes)
        .map(|((fz, _), img)| (fz.pid, img.pid))
        .collect();
    let snaps = defer.snapshot(&frozen, &pids, sandbox.init_pid())?;
    drop(frozen);
    *frozen_time += t.elapsed();
    *frozen_time += snaps.drain(sink)?;
    Ok(image)
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
    mut barrier: Option<&mut dyn CutBarrier>,
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
    let outer: Vec<i32> = frozen.procs.iter().map(|(f, _)| f.pid).collect();
    let cut_failed = |why: String| Error::Sys {
        what: "the global cut of the coordinated job".into(),
        source: std::io::Error::other(why),
    };
    let mut peers = Vec::new();
    if let Some(b) = barrier.as_mut() {
        let ends = cairn_kinds::inet::cut::tcp_ends(&outer)?;
        peers = b.frozen(&ends).map_err(cut_failed)?;
        cairn_kinds::inet::cut::drain(&outer, &peers, barrier::DRAIN_WITHIN)?;
        b.drained().map_err(cut_failed)?;
    }
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
        posix_mqs: Vec::new(),
        ptys: Vec::new(),
        unlinked: Vec::new(),
    };
    let job = FrozenJob {
        root: &frozen.procs[0].0,
        outer: &outer,
        options: opts,
        peers: &peers,
    };
    for kind in JOB_KINDS {
        (kind.capture)(&job, &mut image, sink)?;
    }
    if let Some(b) = barrier {
        b.captured().map_err(cut_failed)?;
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
