//! The stopped state of processes, and the stop and continue reports their parents had not
//! collected.
//!
//! A process in a group stop at the checkpoint (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU) is stopped
//! again by the same signal while it is still a restore stub ([`stop_stubs`]): the kernel
//! then keeps its stop signal, reports the stop to its parent like the original stop, and
//! keeps it stopped through its rebuild (a detached tracee in a group stop stays stopped), so
//! that only SIGCONT wakes it. A process whose parent could still collect a "continued"
//! report is stopped and continued the same way. Each parent then, in its rebuild, collects
//! the reports its program had already collected ([`settle_reports`]) and drops the SIGCHLD
//! the restore caused; its own pending signals are queued after that from the image.

use super::At;
use cairn_image::{ProcessImage, ProcessTreeImage};
use cairn_sys::ptrace::{self, Stop};
use cairn_sys::{Error, Result};
use std::time::{Duration, Instant};

const P_PID: u64 = 1;

fn sig_name(sig: i32) -> String {
    match sig {
        libc::SIGSTOP => "SIGSTOP".into(),
        libc::SIGTSTP => "SIGTSTP".into(),
        libc::SIGTTIN => "SIGTTIN".into(),
        libc::SIGTTOU => "SIGTTOU".into(),
        s => format!("signal {s}"),
    }
}

/// Whether the parent of `p` could still collect a "continued" report of it.
fn continued_report(image: &ProcessTreeImage, p: &ProcessImage) -> bool {
    image
        .processes
        .iter()
        .find(|q| q.pid == p.ppid)
        .and_then(|q| q.attrs.as_ref())
        .is_some_and(|a| {
            a.child_reports
                .iter()
                .any(|r| r.pid == p.pid && r.code == libc::CLD_CONTINUED)
        })
}

fn stopped(p: &ProcessImage) -> Option<i32> {
    p.attrs.as_ref().and_then(|a| a.stopped)
}

/// Whether the restore stops (and maybe continues) `p` at the stub stage.
fn involved(image: &ProcessTreeImage, p: &ProcessImage) -> bool {
    stopped(p).is_some() || continued_report(image, p)
}

fn state(pid: i32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rfind(')')
        .and_then(|i| s[i + 1..].split_whitespace().next())
        .and_then(|st| st.chars().next())
}

fn wait_state(pid: i32, ns_pid: i32, want: impl Fn(char) -> bool, what: &str) -> Result<()> {
    let start = Instant::now();
    loop {
        match state(pid) {
            Some(c) if want(c) => return Ok(()),
            None => return Err(Error::Exited { pid }),
            _ if start.elapsed() > Duration::from_secs(10) => {
                return Err(Error::Incompatible(format!(
                    "process {ns_pid}: {what} did not happen at the restore"
                )))
            }
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

fn cont(tid: i32, sig: i32) -> Result<()> {
    // SAFETY: PTRACE_CONT of our own tracee with a signal number as data.
    let r = unsafe { libc::ptrace(libc::PTRACE_CONT, tid, 0usize, sig as usize) };
    if r < 0 {
        return Err(cairn_sys::last_os(format!("ptrace(CONT) of {tid}")));
    }
    Ok(())
}

/// Puts the stub `pid` (outer; `ns_pid` inside) into a group stop by `sig`, delivered as the
/// original was: the parent is notified and can collect it with WSTOPSIG = `sig`.
fn group_stop(pid: i32, ns_pid: i32, sig: i32) -> Result<()> {
    ptrace::seize(pid, 0)?;
    let r = (|| {
        ptrace::interrupt(pid)?;
        match ptrace::wait_stop(pid)? {
            Stop::Event(_) => {}
            other => return Err(Error::Parse(format!("stub {pid} stopped with {other:?}"))),
        }
        // The stub blocks every signal; a blocked SIGTSTP would never stop it.
        let mask = ptrace::get_sigmask(pid)?;
        ptrace::set_sigmask(pid, mask & !(1u64 << (sig - 1)))?;
        // SAFETY: kill sends a signal to our own stub.
        if unsafe { libc::kill(pid, sig) } < 0 {
            return Err(cairn_sys::last_os(format!("kill({pid}, {sig})")));
        }
        cont(pid, 0)?;
        loop {
            match ptrace::wait_stop(pid)? {
                Stop::Signal(s) if s == sig => break,
                Stop::Signal(s) => cont(pid, s)?,
                _ => cont(pid, 0)?,
            }
        }
        cont(pid, sig)?;
        ptrace::interrupt(pid)?;
        let got = loop {
            match ptrace::wait_stop_sig(pid)? {
                (Stop::Event(_), s) => break s,
                (Stop::Signal(s), _) => cont(pid, s)?,
                _ => cont(pid, 0)?,
            }
        };
        ptrace::set_sigmask(pid, mask)?;
        if got != sig {
            return Err(Error::Incompatible(format!(
                "process {ns_pid} was stopped by {}, which does not stop it at the restore (its \
                 process group is orphaned here)",
                sig_name(sig)
            )));
        }
        Ok(())
    })();
    ptrace::release(pid);
    r?;
    wait_state(pid, ns_pid, |c| c == 'T', "the stop")
}

/// Stops the stubs of the processes that were stopped at the checkpoint, and stops and
/// continues those whose parent could collect a "continued" report. `outer` maps outer pids
/// to pids inside the job. Runs before any process is rebuilt.
pub fn stop_stubs(image: &ProcessTreeImage, outer: &[(i32, i32)]) -> Result<()> {
    for p in &image.processes {
        if !involved(image, p) {
            continue;
        }
        let o = outer
            .iter()
            .find(|(_, i)| *i == p.pid)
            .map(|(o, _)| *o)
            .ok_or_else(|| Error::Parse(format!("restored process {} not found", p.pid)))?;
        match stopped(p) {
            Some(sig) => group_stop(o, p.pid, sig)?,
            None => {
                group_stop(o, p.pid, libc::SIGSTOP)?;
                // SAFETY: kill sends SIGCONT to our own stub.
                if unsafe { libc::kill(o, libc::SIGCONT) } < 0 {
                    return Err(cairn_sys::last_os(format!("kill({o}, SIGCONT)")));
                }
                wait_state(o, p.pid, |c| c != 'T', "the continue")?;
            }
        }
    }
    Ok(())
}

/// Dequeues every pending `sig` of the process (a signal the restore itself caused).
fn drain(at: &At<'_>, sig: i32) -> Result<()> {
    let set = at.put(0, &(1u64 << (sig - 1)).to_le_bytes())?;
    let ts = at.put(16, &[0u8; 16])?;
    for _ in 0..64 {
        let r = at.inj.raw(libc::SYS_rt_sigtimedwait, &[set, 0, ts, 8])?;
        if r < 0 {
            break;
        }
    }
    Ok(())
}

/// In the rebuild of `p` (before its pending signals are queued from the image): collects
/// the stop/continue reports of its children that its program had collected, checks that
/// exactly the others can be collected, and drops the SIGCHLD and SIGCONT the restore
/// caused.
pub fn settle_reports(at: &At<'_>, image: &ProcessTreeImage, p: &ProcessImage) -> Result<()> {
    if involved(image, p) && stopped(p).is_none() {
        drain(at, libc::SIGCONT)?;
    }
    let reports = p
        .attrs
        .as_ref()
        .map(|a| a.child_reports.clone())
        .unwrap_or_default();
    let mut any = false;
    for c in image
        .processes
        .iter()
        .filter(|c| c.ppid == p.pid && involved(image, c))
    {
        any = true;
        let want = reports.iter().find(|r| r.pid == c.pid);
        let si = at.put(64, &[0u8; 128])?;
        let flags = (libc::WSTOPPED | libc::WCONTINUED | libc::WNOHANG) as u64;
        let nowait = libc::WNOWAIT as u64;
        at.set(
            "a child's stop report",
            "waitid",
            libc::SYS_waitid,
            &[
                P_PID,
                c.pid as u64,
                si,
                flags | if want.is_some() { nowait } else { 0 },
                0,
            ],
        )?;
        if want.is_some() {
            let mut b = [0u8; 28];
            at.get(64, &mut b)?;
            let i = |o: usize| i32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
            let got = (i(16), i(8), i(24));
            let w = want.map(|r| (r.pid, r.code, r.status));
            if Some(got) != w {
                return Err(Error::Incompatible(format!(
                    "{}: its child {} reports (pid, code, status) {got:?} after the restore, \
                     but {w:?} at the checkpoint",
                    at.who, c.pid
                )));
            }
        }
    }
    if any {
        drain(at, libc::SIGCHLD)?;
    }
    Ok(())
}
