//! Processes and threads: identity, registers, signals, limits, the descriptor table and
//! the memory layout fields.

use crate::attrs::{ProcessAttrs, ThreadAttrs};
use crate::fd::FdImage;
use crate::memory::Vma;
pub use cairn_sys::regs::UserRegs;
pub use cairn_sys::vdso::VdsoInfo;
use serde::{Deserialize, Serialize};

/// An exited, not yet reaped process of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZombieImage {
    /// Pid inside the job's namespace.
    pub pid: i32,
    /// Parent pid inside the namespace.
    pub ppid: i32,
    /// Raw wait status its parent will collect.
    pub status: i32,
    /// Its process group inside the namespace, kept until it is reaped (None in images
    /// written before it was recorded: its parent's).
    #[serde(default)]
    pub pgid: Option<i32>,
    /// Its session inside the namespace (None: its parent's).
    #[serde(default)]
    pub sid: Option<i32>,
}

/// One captured process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessImage {
    /// Pid inside the job's PID namespace.
    pub pid: i32,
    /// Path of the executable (/proc/PID/exe).
    pub exe: String,
    /// Working directory.
    pub cwd: String,
    /// File mode creation mask.
    pub umask: u32,
    /// Memory-layout fields restored with PR_SET_MM_MAP.
    pub mm: MmFields,
    /// The auxiliary vector (/proc/PID/auxv) as words.
    pub auxv: Vec<u64>,
    /// Memory mappings in address order, without vdso/vvar/vsyscall.
    pub vmas: Vec<Vma>,
    /// `mlockall` flags in force for future mappings: `MCL_FUTURE` (2), with `MCL_ONFAULT`
    /// (4) when so; 0 for none.
    #[serde(default)]
    pub mlock_future: u32,
    /// Where the kernel's vdso was mapped and a hash of its bytes.
    pub vdso: Option<VdsoInfo>,
    /// Threads; the first one is the thread-group leader.
    pub threads: Vec<ThreadImage>,
    /// Signal dispositions other than the default.
    pub sigactions: Vec<SigAction>,
    /// Resource limits (RLIMIT_* index, soft, hard).
    pub rlimits: Vec<(u32, u64, u64)>,
    /// Interval timers (which, interval sec, interval usec, value sec, value usec), non-zero only.
    pub itimers: Vec<(u32, [i64; 4])>,
    /// Open file descriptors.
    pub fds: Vec<FdImage>,
    /// Process-wide pending signals (raw 128-byte siginfo each).
    pub shared_pending: Vec<Vec<u8>>,
    /// CLOCK_MONOTONIC and CLOCK_BOOTTIME (ns) as the program saw them at the checkpoint.
    #[serde(default)]
    pub clocks: Option<(i64, i64)>,
    /// Parent pid inside the namespace (1, the sandbox init, for the launched program).
    #[serde(default)]
    pub ppid: i32,
    /// Process group id inside the namespace (0: a group outside it, inherited from init).
    #[serde(default)]
    pub pgid: i32,
    /// Session id inside the namespace (0: a session outside it, inherited from init).
    #[serde(default)]
    pub sid: i32,
    /// Shares its parent's descriptor table (created by `clone(CLONE_FILES)` without
    /// `CLONE_THREAD`): its descriptors are the parent's, all [`crate::FdKind::Inherited`].
    #[serde(default)]
    pub shares_files: bool,
    /// Attributes of the process: prctl flags, the stopped state, children's reports
    /// (`None` in images written before they were captured).
    #[serde(default)]
    pub attrs: Option<ProcessAttrs>,
}

/// mm fields of /proc/PID/stat plus the current brk.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct MmFields {
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub brk: u64,
    pub start_stack: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
}

/// One thread.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreadImage {
    /// Tid inside the job's PID namespace.
    pub tid: i32,
    /// Thread name.
    pub comm: String,
    /// General registers.
    pub regs: UserRegs,
    /// NT_X86_XSTATE (xsave layout, kernel format).
    pub xstate: Vec<u8>,
    /// Blocked signals.
    pub sigmask: u64,
    /// Pending thread-directed signals (raw siginfo).
    pub pending: Vec<Vec<u8>>,
    /// rseq registration (address, length, signature).
    pub rseq: Option<(u64, u32, u32)>,
    /// Robust futex list (head, len).
    pub robust_list: (u64, u64),
    /// clear_child_tid address (set_tid_address).
    pub clear_child_tid: u64,
    /// sigaltstack (ss_sp, ss_flags, ss_size).
    pub sigaltstack: (u64, i32, u64),
    /// Credentials, scheduling, affinity and the other per-thread attributes (`None` in
    /// images written before they were captured).
    #[serde(default)]
    pub attrs: Option<ThreadAttrs>,
}

/// A signal disposition (kernel `struct sigaction` layout fields).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SigAction {
    /// Signal number.
    pub signo: i32,
    /// sa_handler (SIG_IGN = 1 or a handler address).
    pub handler: u64,
    /// sa_flags.
    pub flags: u64,
    /// sa_restorer.
    pub restorer: u64,
    /// sa_mask.
    pub mask: u64,
}
