//! Freezing a process: PTRACE_SEIZE + PTRACE_INTERRUPT on every thread, rescanning until no new
//! thread appears. Dropping the [`Frozen`] guard detaches every thread.

use crate::error::Result;
use crate::procfs;
use crate::ptrace::{self, Stop};

/// A process whose threads are all seized and stopped.
#[derive(Debug)]
pub struct Frozen {
    /// Outer pid of the process.
    pub pid: i32,
    /// Outer tids, leader first.
    pub tids: Vec<i32>,
    /// The stop signal when the process was in a group stop (stopped by SIGSTOP, SIGTSTP,
    /// SIGTTIN or SIGTTOU) as it was frozen.
    pub group_stop: Option<i32>,
}

/// Seizes and stops `tid`; returns the group-stop signal when it was stopped by one.
fn stop_one(tid: i32) -> Result<Option<i32>> {
    // Seen before the stop, which runs the thread.
    let asleep = crate::asleep::snapshot(tid);
    if let Err(e) = ptrace::seize(tid, ptrace::O_TRACESYSGOOD) {
        return Err(traced_elsewhere(tid).unwrap_or(e));
    }
    ptrace::interrupt(tid)?;
    loop {
        match ptrace::wait_stop_sig(tid)? {
            (Stop::Event(_), sig) => {
                crate::interrupted::settle_stopped(tid, asleep)?;
                return Ok((sig != libc::SIGTRAP).then_some(sig));
            }
            (Stop::Syscall, _) => {
                return crate::interrupted::settle_stopped(tid, asleep).map(|_| None)
            }
            (Stop::Signal(sig), _) => {
                // A signal arrived first: let it be delivered as it would have been, then take
                // the pending interrupt stop.
                // SAFETY: PTRACE_CONT with a signal number as data.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_ptrace,
                        libc::PTRACE_CONT,
                        tid,
                        0usize,
                        sig as usize,
                    )
                };
                if r < 0 {
                    return Err(crate::error::last_os(format!("ptrace(CONT) of {tid}")));
                }
            }
        }
    }
}

/// The refusal for a thread that another process traces (a debugger or tracer inside the
/// job): cairn cannot seize it, and a ptrace relation cannot be restored.
fn traced_elsewhere(tid: i32) -> Option<crate::Error> {
    let tracer: i32 = procfs::status_field(&format!("/proc/{tid}/status"), "TracerPid")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if tracer == 0 {
        return None;
    }
    let inner = |p: i32| procfs::inner_pid(&format!("/proc/{p}/status")).unwrap_or(p);
    let tgid = procfs::status_field(&format!("/proc/{tid}/status"), "Tgid")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(tid);
    Some(crate::Error::Unsupported(format!(
        "process {} thread {} is traced by process {} (ptrace between processes of the job, \
         e.g. a debugger, cannot be checkpointed)",
        inner(tgid),
        inner(tid),
        inner(tracer)
    )))
}

/// Errors that mean "the process no longer exists" become [`crate::Error::Exited`].
fn gone(pid: i32, e: crate::Error) -> crate::Error {
    match &e {
        crate::Error::Sys { source, .. }
            if matches!(
                source.raw_os_error(),
                Some(libc::ESRCH) | Some(libc::ENOENT)
            ) =>
        {
            crate::Error::Exited { pid }
        }
        _ => e,
    }
}

impl Frozen {
    /// Seize and stop every thread of `pid`.
    pub fn freeze(pid: i32) -> Result<Frozen> {
        let mut f = Frozen {
            pid,
            tids: Vec::new(),
            group_stop: None,
        };
        loop {
            let tasks = procfs::list_tasks(pid).map_err(|e| gone(pid, e))?;
            let new: Vec<i32> = tasks
                .iter()
                .copied()
                .filter(|t| !f.tids.contains(t))
                .collect();
            if new.is_empty() {
                break;
            }
            for t in new {
                match stop_one(t) {
                    Ok(stop) => {
                        if t == pid {
                            f.group_stop = stop;
                        }
                        f.tids.push(t);
                    }
                    Err(e) => {
                        // Reap or detach whatever state the thread is in.
                        ptrace::release(t);
                        // A thread that exits while we freeze is simply gone, unless it is the
                        // leader (then the whole process is going away).
                        if t == pid {
                            return Err(gone(pid, e));
                        }
                    }
                }
            }
        }
        f.tids.sort_by_key(|&t| (t != pid, t));
        Ok(f)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for &t in &self.tids {
            ptrace::release(t);
        }
    }
}
