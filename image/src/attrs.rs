//! Process and thread attributes beyond memory, registers and descriptors: credentials and
//! capabilities, scheduling, CPU affinity, prctl flags, personality, the stopped state and the
//! stop/continue reports a parent has not collected yet.

pub use cairn_sys::task::{Creds, SchedAttr};
use serde::{Deserialize, Serialize};

/// Attributes of the whole process (the kernel keeps them per address space or per thread
/// group).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessAttrs {
    /// `PR_GET_DUMPABLE` (0, 1, or 2 after a set-user-id exec with `suid_dumpable` 2).
    pub dumpable: u32,
    /// `PR_GET_CHILD_SUBREAPER`.
    pub child_subreaper: bool,
    /// `PR_GET_THP_DISABLE`: bit 0 disabled, bit 1 `PR_THP_DISABLE_EXCEPT_ADVISED`.
    pub thp_disable: u32,
    /// The stop signal when the process was in a group stop (SIGSTOP, SIGTSTP, SIGTTIN,
    /// SIGTTOU), `None` when it was running.
    pub stopped: Option<i32>,
    /// Stop and continue reports of children that this process had not collected with
    /// `wait` yet.
    pub child_reports: Vec<ChildReport>,
    /// `/proc/PID/oom_score_adj`.
    #[serde(default)]
    pub oom_score_adj: i32,
}

/// A child's state change its parent can still collect with `waitid(WSTOPPED|WCONTINUED)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildReport {
    /// The child's pid inside the job.
    pub pid: i32,
    /// `CLD_STOPPED` (5) or `CLD_CONTINUED` (6).
    pub code: i32,
    /// `si_status`: the stop signal, or SIGCONT.
    pub status: i32,
}

/// Attributes of one thread (the kernel keeps them per task).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadAttrs {
    /// Credentials and capabilities.
    pub creds: Creds,
    /// Scheduling policy, priority, nice value and flags (`sched_getattr`).
    pub sched: SchedAttr,
    /// CPU affinity mask, 64 CPUs per word (`sched_getaffinity`).
    pub affinity: Vec<u64>,
    /// `PR_GET_PDEATHSIG`.
    pub pdeathsig: i32,
    /// `PR_GET_TIMERSLACK`, in nanoseconds.
    pub timerslack: u64,
    /// The execution domain and flags (`personality(0xffffffff)`).
    pub personality: u32,
    /// `PR_GET_NO_NEW_PRIVS`.
    pub no_new_privs: bool,
    /// `PR_GET_SECUREBITS`.
    pub securebits: u32,
    /// `ioprio_get(IOPRIO_WHO_PROCESS, tid)`: class << 13 | level (a thread without an I/O
    /// priority of its own shows the one its nice value gives).
    #[serde(default)]
    pub ioprio: u32,
}
