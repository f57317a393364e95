//! Capturing process and thread attributes ([`ProcessAttrs`], [`ThreadAttrs`]) and the
//! resource limits. What the kernel shows to any process (credentials in
//! `/proc/PID/task/TID/status`, `sched_getattr`, `sched_getaffinity`) is read from outside;
//! what only the process itself can ask for (prctl getters, its own limits, its children's
//! uncollected stop reports) is asked by syscall injection, which needs no privilege beyond
//! tracing it.

use cairn_image::{ChildReport, ProcessAttrs, ThreadAttrs};
use cairn_sys::error::{io_ctx, Error, Result};
use cairn_sys::inject::Injector;
use cairn_sys::procfs;
use cairn_sys::task::{self, affinity_of, creds_of, ioprio_of, oom_score_adj_of, sched_of};

const P_PID: u64 = 1;

fn i32_at(b: &[u8], o: usize) -> i32 {
    i32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// What the process-wide injected queries found.
pub struct ProcessQueries {
    /// (RLIMIT_* index, soft, hard) of every limit.
    pub rlimits: Vec<(u32, u64, u64)>,
    /// The attributes, without `stopped` (the freeze knows it).
    pub attrs: ProcessAttrs,
}

/// Asks process `pid` (outer pid), through its stopped leader `inj`, for its resource limits,
/// prctl flags and the stop/continue reports of `children` (pids inside the job) that it has
/// not collected. `scratch` is [`task::SCRATCH_NEEDED`] bytes of writable memory in it.
pub fn inject_process(
    inj: &Injector,
    pid: i32,
    scratch: u64,
    children: &[i32],
) -> Result<ProcessQueries> {
    let rlimits = task::query_rlimits(inj, pid, scratch)?;
    let flags = task::query_process(inj, pid, scratch)?;
    let mut child_reports = Vec::new();
    for &c in children {
        // Without WNOWAIT the report would be collected here, and lost to the program.
        procfs::write_mem(pid, None, scratch, &[0u8; 128]).map_err(io_ctx("clearing scratch"))?;
        let r = inj.raw(
            libc::SYS_waitid,
            &[
                P_PID,
                c as u64,
                scratch,
                (libc::WSTOPPED | libc::WCONTINUED | libc::WNOWAIT | libc::WNOHANG) as u64,
                0,
            ],
        )?;
        if r < 0 {
            // ECHILD: not a child of this thread group; nothing to collect.
            continue;
        }
        let mut si = [0u8; 128];
        procfs::read_mem(pid, None, scratch, &mut si).map_err(io_ctx("reading scratch"))?;
        let (code, cpid, status) = (i32_at(&si, 8), i32_at(&si, 16), i32_at(&si, 24));
        if cpid == c && (code == libc::CLD_STOPPED || code == libc::CLD_CONTINUED) {
            child_reports.push(ChildReport {
                pid: c,
                code,
                status,
            });
        }
    }
    Ok(ProcessQueries {
        rlimits,
        attrs: ProcessAttrs {
            dumpable: flags.dumpable,
            child_subreaper: flags.child_subreaper,
            thp_disable: flags.thp_disable,
            stopped: None,
            child_reports,
            oom_score_adj: oom_score_adj_of(pid)?,
        },
    })
}

/// Everything of thread `tid` of `pid`: read from outside, plus its injected `queries`.
pub fn thread_attrs(pid: i32, tid: i32, q: &task::TaskFlags) -> Result<ThreadAttrs> {
    Ok(ThreadAttrs {
        creds: creds_of(pid, tid)?,
        sched: sched_of(tid)?,
        affinity: affinity_of(tid)?,
        pdeathsig: q.pdeathsig,
        timerslack: q.timerslack,
        personality: q.personality,
        no_new_privs: q.no_new_privs,
        securebits: q.securebits,
        ioprio: ioprio_of(tid)?,
    })
}

/// Refuses a thread whose umask or working directory is not its process's (it called
/// `unshare(CLONE_FS)`): threads are restored sharing them.
pub fn check_shared_fs(pid: i32, ns_pid: i32, tids: &[i32]) -> Result<()> {
    let umask = |t: i32| procfs::status_field(&format!("/proc/{pid}/task/{t}/status"), "Umask");
    let cwd = |t: i32| std::fs::read_link(format!("/proc/{pid}/task/{t}/cwd")).ok();
    let (u0, c0) = (umask(pid)?, cwd(pid));
    for &t in tids.iter().filter(|&&t| t != pid) {
        if umask(t)? != u0 || cwd(t) != c0 {
            let inner = procfs::inner_pid(&format!("/proc/{pid}/task/{t}/status")).unwrap_or(t);
            return Err(Error::Unsupported(format!(
                "process {ns_pid} thread {inner} has its own umask or working directory \
                 (unshare(CLONE_FS)): cannot be checkpointed"
            )));
        }
    }
    Ok(())
}

/// Refuses, for an unprivileged checkpoint, a process that is not dumpable: its /proc files
/// (pagemap, mem) belong to root then, and its memory cannot be read.
pub fn check_dumpable(ns_pid: i32, attrs: &ProcessAttrs) -> Result<()> {
    // SAFETY: geteuid cannot fail.
    if attrs.dumpable == 0 && unsafe { libc::geteuid() } != 0 {
        return Err(Error::Unsupported(format!(
            "process {ns_pid} is not dumpable (prctl PR_SET_DUMPABLE 0): an unprivileged \
             checkpoint cannot read its memory (checkpoint as root)"
        )));
    }
    Ok(())
}
