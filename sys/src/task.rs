//! Per-task attributes the kernel shows to any process that may see the task: credentials
//! and capabilities (`/proc/PID/task/TID/status`), scheduling (`sched_getattr`) and CPU
//! affinity (`sched_getaffinity`), with the kernel's own layouts.

use crate::error::{io_ctx, last_os, Error, Result};
use crate::inject::Injector;
use crate::procfs;
use serde::{Deserialize, Serialize};

/// User and group ids, supplementary groups and capability sets, as seen from the
/// checkpointing process's user namespace (`/proc/PID/task/TID/status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Creds {
    /// Real, effective, saved and filesystem user ids.
    pub uid: [u32; 4],
    /// Real, effective, saved and filesystem group ids.
    pub gid: [u32; 4],
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Inheritable capabilities.
    pub cap_inh: u64,
    /// Permitted capabilities.
    pub cap_prm: u64,
    /// Effective capabilities.
    pub cap_eff: u64,
    /// The capability bounding set.
    pub cap_bnd: u64,
    /// Ambient capabilities.
    pub cap_amb: u64,
}

/// The kernel's `struct sched_attr`, as `sched_getattr` fills it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedAttr {
    /// `SCHED_OTHER` 0, `SCHED_FIFO` 1, `SCHED_RR` 2, `SCHED_BATCH` 3, `SCHED_IDLE` 5,
    /// `SCHED_DEADLINE` 6.
    pub policy: u32,
    /// `SCHED_FLAG_*` (`SCHED_FLAG_RESET_ON_FORK` 1).
    pub flags: u64,
    /// The nice value.
    pub nice: i32,
    /// The real-time priority.
    pub priority: u32,
    /// `SCHED_DEADLINE` runtime, deadline and period (ns).
    pub runtime: u64,
    /// See `runtime`.
    pub deadline: u64,
    /// See `runtime`.
    pub period: u64,
    /// Utilization clamps (min, max) where the kernel has them (0, 0 otherwise).
    pub util: (u32, u32),
}

/// The kernel's `struct sched_attr` (the 56-byte version with utilization clamps).
#[repr(C)]
#[derive(Default)]
struct RawSchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

/// `sched_getattr` of thread `tid` (any pid namespace this process sees it in; no privilege
/// needed).
pub fn sched_of(tid: i32) -> Result<SchedAttr> {
    let mut a = RawSchedAttr::default();
    let size = std::mem::size_of::<RawSchedAttr>() as u32;
    // SAFETY: sched_getattr writes at most `size` bytes into `a`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            tid,
            &mut a as *mut RawSchedAttr,
            size,
            0u32,
        )
    };
    if r < 0 {
        return Err(last_os(format!("sched_getattr({tid})")));
    }
    // sched_getattr shows the nice value only for the fair policies; a real-time or deadline
    // thread keeps one too (it applies again if the thread goes back to SCHED_OTHER).
    // SAFETY: getpriority has no memory arguments; errno tells a failure from -1.
    let nice = unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t)
    };
    if std::io::Error::last_os_error().raw_os_error() != Some(0) {
        return Err(last_os(format!("getpriority({tid})")));
    }
    Ok(SchedAttr {
        policy: a.policy,
        flags: a.flags,
        nice,
        priority: a.priority,
        runtime: a.runtime,
        deadline: a.deadline,
        period: a.period,
        util: (a.util_min, a.util_max),
    })
}

/// Words of the CPU masks cairn reads and sets (1024 CPUs).
pub const AFFINITY_WORDS: usize = 16;

/// `sched_getaffinity` of thread `tid`, trailing zero words dropped.
pub fn affinity_of(tid: i32) -> Result<Vec<u64>> {
    let mut mask = [0u64; AFFINITY_WORDS];
    // SAFETY: the raw syscall writes at most the given size into `mask`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_getaffinity,
            tid,
            std::mem::size_of_val(&mask),
            mask.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(last_os(format!("sched_getaffinity({tid})")));
    }
    let mut v = mask.to_vec();
    while v.last() == Some(&0) {
        v.pop();
    }
    Ok(v)
}

/// Credentials of thread `tid` of `pid` from its `status` file.
pub fn creds_of(pid: i32, tid: i32) -> Result<Creds> {
    let path = format!("/proc/{pid}/task/{tid}/status");
    let text = std::fs::read_to_string(&path).map_err(io_ctx(format!("reading {path}")))?;
    let field = |k: &str| -> Result<&str> {
        text.lines()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(':')))
            .map(str::trim)
            .ok_or_else(|| Error::Parse(format!("{path}: no {k}")))
    };
    let ids = |k: &str| -> Result<[u32; 4]> {
        let v: Vec<u32> = field(k)?
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        v.try_into()
            .map_err(|_| Error::Parse(format!("{path}: {k}")))
    };
    let cap = |k: &str| -> Result<u64> {
        u64::from_str_radix(field(k)?, 16).map_err(|_| Error::Parse(format!("{path}: {k}")))
    };
    Ok(Creds {
        uid: ids("Uid")?,
        gid: ids("Gid")?,
        groups: field("Groups")?
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect(),
        cap_inh: cap("CapInh")?,
        cap_prm: cap("CapPrm")?,
        cap_eff: cap("CapEff")?,
        cap_bnd: cap("CapBnd")?,
        cap_amb: cap("CapAmb")?,
    })
}

const PR_GET_PDEATHSIG: u64 = 2;
const PR_GET_DUMPABLE: u64 = 3;
const PR_GET_SECUREBITS: u64 = 27;
const PR_GET_TIMERSLACK: u64 = 30;
const PR_GET_CHILD_SUBREAPER: u64 = 37;
const PR_GET_NO_NEW_PRIVS: u64 = 39;
const PR_GET_THP_DISABLE: u64 = 42;
/// Number of resource limits (`RLIM_NLIMITS`).
pub const RLIMITS: u32 = 16;
/// Bytes of scratch memory the `query_*` functions need in the process.
pub const SCRATCH_NEEDED: u64 = 512;

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// What only a thread itself can tell about it (prctl getters and `personality`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskFlags {
    /// `PR_GET_PDEATHSIG`.
    pub pdeathsig: i32,
    /// `PR_GET_TIMERSLACK` (ns).
    pub timerslack: u64,
    /// `personality(0xffffffff)`.
    pub personality: u32,
    /// `PR_GET_NO_NEW_PRIVS`.
    pub no_new_privs: bool,
    /// `PR_GET_SECUREBITS`.
    pub securebits: u32,
}

/// Asks the stopped thread `inj` of process `pid` (outer pid) for its [`TaskFlags`];
/// `scratch` is writable memory of the process.
pub fn query_task(inj: &Injector, pid: i32, scratch: u64) -> Result<TaskFlags> {
    procfs::write_mem(pid, None, scratch, &[0u8; 4]).map_err(io_ctx("clearing scratch"))?;
    inj.call(
        "prctl(PR_GET_PDEATHSIG)",
        libc::SYS_prctl,
        &[PR_GET_PDEATHSIG, scratch],
    )?;
    let mut b = [0u8; 4];
    procfs::read_mem(pid, None, scratch, &mut b).map_err(io_ctx("reading scratch"))?;
    Ok(TaskFlags {
        pdeathsig: i32::from_le_bytes(b),
        timerslack: inj.call(
            "prctl(PR_GET_TIMERSLACK)",
            libc::SYS_prctl,
            &[PR_GET_TIMERSLACK],
        )?,
        personality: inj.call("personality", libc::SYS_personality, &[0xffff_ffff])? as u32,
        no_new_privs: inj.call(
            "prctl(PR_GET_NO_NEW_PRIVS)",
            libc::SYS_prctl,
            &[PR_GET_NO_NEW_PRIVS],
        )? != 0,
        securebits: inj.call(
            "prctl(PR_GET_SECUREBITS)",
            libc::SYS_prctl,
            &[PR_GET_SECUREBITS],
        )? as u32,
    })
}

/// Process-wide prctl flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessFlags {
    /// `PR_GET_DUMPABLE`.
    pub dumpable: u32,
    /// `PR_GET_CHILD_SUBREAPER`.
    pub child_subreaper: bool,
    /// `PR_GET_THP_DISABLE`.
    pub thp_disable: u32,
}

/// Asks process `pid` through its stopped thread `inj` for its [`ProcessFlags`].
pub fn query_process(inj: &Injector, pid: i32, scratch: u64) -> Result<ProcessFlags> {
    let dumpable = inj.call(
        "prctl(PR_GET_DUMPABLE)",
        libc::SYS_prctl,
        &[PR_GET_DUMPABLE],
    )?;
    procfs::write_mem(pid, None, scratch, &[0u8; 4]).map_err(io_ctx("clearing scratch"))?;
    inj.call(
        "prctl(PR_GET_CHILD_SUBREAPER)",
        libc::SYS_prctl,
        &[PR_GET_CHILD_SUBREAPER, scratch],
    )?;
    let mut b = [0u8; 4];
    procfs::read_mem(pid, None, scratch, &mut b).map_err(io_ctx("reading scratch"))?;
    let thp_disable = inj.call(
        "prctl(PR_GET_THP_DISABLE)",
        libc::SYS_prctl,
        &[PR_GET_THP_DISABLE],
    )?;
    Ok(ProcessFlags {
        dumpable: dumpable as u32,
        child_subreaper: i32::from_le_bytes(b) != 0,
        thp_disable: thp_disable as u32,
    })
}

/// Asks process `pid` through its stopped thread `inj` for its own resource limits
/// (`prlimit64(0, …)`: no privilege needed, unlike `prlimit` of another process).
pub fn query_rlimits(inj: &Injector, pid: i32, scratch: u64) -> Result<Vec<(u32, u64, u64)>> {
    let mut out = Vec::new();
    for res in 0..RLIMITS {
        inj.call(
            "prlimit64(get)",
            libc::SYS_prlimit64,
            &[0, u64::from(res), 0, scratch],
        )?;
        let mut b = [0u8; 16];
        procfs::read_mem(pid, None, scratch, &mut b).map_err(io_ctx("reading scratch"))?;
        out.push((res, u64_at(&b, 0), u64_at(&b, 8)));
    }
    Ok(out)
}

/// `ioprio_get(IOPRIO_WHO_PROCESS, tid)` (no privilege needed).
pub fn ioprio_of(tid: i32) -> Result<u32> {
    const IOPRIO_WHO_PROCESS: i32 = 1;
    // SAFETY: ioprio_get has no memory arguments.
    let r = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, tid) };
    if r < 0 {
        return Err(last_os(format!("ioprio_get({tid})")));
    }
    Ok(r as u32)
}

/// `/proc/PID/oom_score_adj`.
pub fn oom_score_adj_of(pid: i32) -> Result<i32> {
    let path = format!("/proc/{pid}/oom_score_adj");
    let text = std::fs::read_to_string(&path).map_err(io_ctx(format!("reading {path}")))?;
    text.trim()
        .parse()
        .map_err(|_| Error::Parse(format!("{path}: {text:?}")))
}
