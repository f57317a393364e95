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
}

fn stop_one(tid: i32) -> Result<()> {
    ptrace::seize(tid, ptrace::O_TRACESYSGOOD)?;
    ptrace::interrupt(tid)?;
    loop {
        match ptrace::wait_stop(tid)? {
            Stop::Event(_) | Stop::Syscall => return crate::interrupted::settle_stopped(tid),
            Stop::Signal(sig) => {
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
                    Ok(()) => f.tids.push(t),
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
