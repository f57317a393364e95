//! POSIX timers of the frozen job: `/proc/PID/timers` gives each timer's id, clock and
//! sigevent; `timer_gettime` and `clock_gettime`, injected into the process, give its interval,
//! the time left and (for clocks that continue across a restart) its expiry on the clock as
//! the program sees it.

use crate::FrozenJob;
use cairn_image::{MemorySink, PosixTimer, ProcessImage, ProcessTreeImage};
use cairn_sys::error::{io_ctx, Error, Result};
use cairn_sys::inject;
use cairn_sys::procfs;

const SIGEV_SIGNAL: i32 = 0;
const SIGEV_NONE: i32 = 1;
const SIGEV_THREAD: i32 = 2;
/// `sigev_notify` flag: the signal goes to one thread.
pub const SIGEV_THREAD_ID: i32 = 4;
/// `si_code` of a signal sent by a POSIX timer.
const SI_TIMER: i32 = -2;
/// The clocks a timer may use and cairn restores (CPU-time clocks are checked apart).
const CLOCKS: [i32; 6] = [
    libc::CLOCK_REALTIME,
    libc::CLOCK_MONOTONIC,
    libc::CLOCK_BOOTTIME,
    libc::CLOCK_REALTIME_ALARM,
    libc::CLOCK_BOOTTIME_ALARM,
    libc::CLOCK_TAI,
];

/// One entry of `/proc/PID/timers`.
#[derive(Debug, Default)]
struct Listed {
    id: i32,
    signo: i32,
    value: u64,
    notify: i32,
    /// The pid or tid of `notify:`, as the agent's /proc shows it.
    target: i32,
    clock: i32,
}

fn parse(path: &str, text: &str) -> Result<Vec<Listed>> {
    let bad = |line: &str| Error::Parse(format!("{path}: {line}"));
    let mut out: Vec<Listed> = Vec::new();
    for line in text.lines() {
        let Some((key, val)) = line.split_once(':') else {
            continue;
        };
        let val = val.trim();
        if key == "ID" {
            out.push(Listed {
                id: val.parse().map_err(|_| bad(line))?,
                ..Default::default()
            });
            continue;
        }
        let Some(t) = out.last_mut() else {
            return Err(bad(line));
        };
        match key {
            "signal" => {
                let (sig, v) = val.split_once('/').ok_or_else(|| bad(line))?;
                t.signo = sig.parse().map_err(|_| bad(line))?;
                t.value = u64::from_str_radix(v, 16).map_err(|_| bad(line))?;
            }
            "notify" => {
                let (how, who) = val.split_once('/').ok_or_else(|| bad(line))?;
                t.notify = match how {
                    "signal" => SIGEV_SIGNAL,
                    "none" => SIGEV_NONE,
                    "thread" => SIGEV_THREAD,
                    _ => return Err(bad(line)),
                };
                let (kind, n) = who.split_once('.').ok_or_else(|| bad(line))?;
                if kind == "tid" {
                    t.notify |= SIGEV_THREAD_ID;
                }
                t.target = n.parse().map_err(|_| bad(line))?;
            }
            "ClockID" => t.clock = val.parse().map_err(|_| bad(line))?,
            _ => {}
        }
    }
    Ok(out)
}

/// Whether `clock` can be given to `timer_create` again in the restored process: the usual
/// clocks, and the CPU-time clocks of the calling process (CLOCK_PROCESS_CPUTIME_ID) or, in a
/// process with one thread, of the calling thread (CLOCK_THREAD_CPUTIME_ID), whose thread the
/// kernel does not show. `Err` says why not.
fn usable_clock(clock: i32, threads: usize) -> std::result::Result<(), String> {
    if CLOCKS.contains(&clock) {
        return Ok(());
    }
    if clock >= 0 {
        return Err(format!("clock {clock} is not one cairn knows"));
    }
    // CPU-time clocks: ~pid << 3 | thread << 2 | (PROF, VIRT or SCHED).
    let pid = !(clock >> 3);
    if pid != 0 {
        return Err(format!(
            "its clock ({clock}) is the CPU-time clock of process or thread {pid}"
        ));
    }
    if clock & 4 != 0 && threads > 1 {
        return Err(
            "it measures the CPU time of the thread that created it (CLOCK_THREAD_CPUTIME_ID), \
             which the kernel does not show in a process with several threads"
                .into(),
        );
    }
    Ok(())
}

/// Whether a signal of timer `id` is queued in process `p` (shared or thread queue).
fn pending(p: &ProcessImage, id: i32) -> bool {
    let int = |b: &[u8], o: usize| i32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    p.shared_pending
        .iter()
        .chain(p.threads.iter().flat_map(|t| &t.pending))
        .any(|si| si.len() >= 24 && int(si, 8) == SI_TIMER && int(si, 16) == id)
}

/// The clock whose reading, plus the time left, gives a timer's expiry that a restore keeps
/// (the clocks the job's time namespace continues); `None` for the others.
fn continuing(clock: i32) -> Option<i32> {
    match clock {
        libc::CLOCK_MONOTONIC => Some(libc::CLOCK_MONOTONIC),
        libc::CLOCK_BOOTTIME | libc::CLOCK_BOOTTIME_ALARM => Some(libc::CLOCK_BOOTTIME),
        _ => None,
    }
}

fn ts(b: &[u8], o: usize) -> [i64; 2] {
    let w = |o: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[o..o + 8]);
        i64::from_ne_bytes(a)
    };
    [w(o), w(o + 8)]
}

const NS: i64 = 1_000_000_000;

/// `prctl` option that makes `timer_create` take the id it is given (Linux 6.17).
const PR_TIMER_CREATE_RESTORE_IDS: i32 = 77;
/// Its argument that asks whether the mode is on (any answer means the kernel has it).
const PR_TIMER_CREATE_RESTORE_IDS_GET: libc::c_ulong = 2;

/// Whether this kernel can create a timer with a given id (asked of the agent itself).
fn can_restore_ids() -> bool {
    // SAFETY: this prctl option only reads a flag of the calling process.
    unsafe {
        libc::prctl(
            PR_TIMER_CREATE_RESTORE_IDS,
            PR_TIMER_CREATE_RESTORE_IDS_GET,
            0,
            0,
            0,
        ) >= 0
    }
}

/// [`crate::CaptureFn`] of POSIX timers.
pub fn capture_job(
    job: &FrozenJob<'_>,
    image: &mut ProcessTreeImage,
    _: &mut dyn MemorySink,
) -> Result<()> {
    let mut all = Vec::new();
    for (&outer, p) in job.outer.iter().zip(&image.processes) {
        let path = format!("/proc/{outer}/timers");
        let text = std::fs::read_to_string(&path).map_err(io_ctx(format!("reading {path}")))?;
        let listed = parse(&path, &text)?;
        if listed.is_empty() {
            continue;
        }
        if !can_restore_ids() {
            return Err(Error::Unsupported(format!(
                "process {}: POSIX timer {} (timer_create) cannot be checkpointed on this \
                 kernel: giving a timer its id again needs PR_TIMER_CREATE_RESTORE_IDS \
                 (Linux 6.17)",
                p.pid, listed[0].id
            )));
        }
        let mut timers = Vec::new();
        for t in &listed {
            usable_clock(t.clock, p.threads.len()).map_err(|why| {
                Error::Unsupported(format!(
                    "process {}: POSIX timer {} (timer_create) cannot be checkpointed: {why}",
                    p.pid, t.id
                ))
            })?;
            let tid = if t.notify & SIGEV_THREAD_ID != 0 {
                let status = format!("/proc/{outer}/task/{}/status", t.target);
                procfs::inner_pid(&status).map_err(|_| {
                    Error::Unsupported(format!(
                        "process {}: POSIX timer {} signals thread {} (outer), which is not one \
                         of its threads; cannot be checkpointed",
                        p.pid, t.id, t.target
                    ))
                })?
            } else {
                0
            };
            timers.push(PosixTimer {
                pid: p.pid,
                id: t.id,
                clock: t.clock,
                notify: t.notify,
                signo: t.signo,
                value: t.value,
                tid,
                interval: [0, 0],
                left: [0, 0],
                at: None,
                signal_pending: pending(p, t.id),
            });
        }
        // Times, read inside the process (its clocks, its timer ids).
        inject::with_scratch(outer, 4096, |inj, scratch| {
            for t in &mut timers {
                inj.call(
                    "timer_gettime",
                    libc::SYS_timer_gettime,
                    &[t.id as u64, scratch],
                )?;
                let mut b = [0u8; 48];
                if let Some(c) = continuing(t.clock) {
                    inj.call(
                        "clock_gettime",
                        libc::SYS_clock_gettime,
                        &[c as u64, scratch + 32],
                    )?;
                }
                procfs::read_mem(outer, None, scratch, &mut b)
                    .map_err(io_ctx("reading a timer's itimerspec"))?;
                t.interval = ts(&b, 0);
                t.left = ts(&b, 16);
                if t.left != [0, 0] && continuing(t.clock).is_some() {
                    let now = ts(&b, 32);
                    let ns = (now[0] + t.left[0]) * NS + now[1] + t.left[1];
                    t.at = Some([ns / NS, ns % NS]);
                }
            }
            Ok(())
        })?;
        all.extend(timers);
    }
    image.posix_timers = all;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_timers_is_parsed() {
        let text = "ID: 4\nsignal: 35/0000000000001234\nnotify: signal/tid.5795\nClockID: 7\n\
                    ID: 6\nsignal: 14/0000000000000000\nnotify: none/pid.5795\nClockID: -2\n";
        let l = parse("t", text).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(
            (
                l[0].id,
                l[0].signo,
                l[0].value,
                l[0].notify,
                l[0].target,
                l[0].clock
            ),
            (4, 35, 0x1234, SIGEV_SIGNAL | SIGEV_THREAD_ID, 5795, 7)
        );
        assert_eq!((l[1].notify, l[1].clock), (SIGEV_NONE, -2));
        assert!(usable_clock(-2, 1).is_ok());
        assert!(usable_clock(-2, 2).is_err());
        assert!(usable_clock(-6, 3).is_ok());
        assert!(usable_clock(!(42 << 3) | 2, 1).is_err());
    }
}
