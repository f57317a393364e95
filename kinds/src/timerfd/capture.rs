//! A timerfd read through a copy of its descriptor (`timerfd_gettime`) and its fdinfo
//! (`clockid:`, `ticks:`, `settime flags:`).

use crate::{FrozenJob, OpenFd};
use cairn_image::{FdKind, MemorySink, ProcessTreeImage, TimerFdImage};
use cairn_sys::error::last_os;
use cairn_sys::{Error, Result};
use std::os::fd::AsRawFd;

const TFD_TIMER_ABSTIME: i32 = 1;
const NS: u64 = 1_000_000_000;

/// [`crate::DescribeFn`] of timerfds.
pub fn describe(fd: &OpenFd<'_>, _: &mut dyn MemorySink) -> Option<Result<FdKind>> {
    (fd.link == "anon_inode:[timerfd]" && fd.inside).then(|| read(fd))
}

fn ns(t: &libc::timespec) -> u64 {
    t.tv_sec as u64 * NS + t.tv_nsec as u64
}

/// The time on `clock` as process `pid` (outer pid) sees it, in ns.
fn job_now(clock: i32, pid: i32) -> Result<u64> {
    match clock {
        libc::CLOCK_REALTIME | libc::CLOCK_REALTIME_ALARM => {
            let mut t = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: clock_gettime writes one timespec we own.
            if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut t) } < 0 {
                return Err(last_os("clock_gettime"));
            }
            Ok(ns(&t))
        }
        libc::CLOCK_MONOTONIC => Ok(cairn_sys::sandbox::program_clocks(pid)?.0 as u64),
        libc::CLOCK_BOOTTIME | libc::CLOCK_BOOTTIME_ALARM => {
            Ok(cairn_sys::sandbox::program_clocks(pid)?.1 as u64)
        }
        other => Err(Error::Unsupported(format!("clock {other}"))),
    }
}

fn read(fd: &OpenFd<'_>) -> Result<FdKind> {
    let clock: i32 = fd
        .field("clockid:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| fd.unsupported("timerfd whose clock this kernel does not show"))?;
    let settime_flags = fd
        .field("settime flags:")
        .and_then(|v| i32::from_str_radix(v, 8).ok())
        .ok_or_else(|| fd.unsupported("timerfd whose settime flags this kernel does not show"))?;
    // timerfd_gettime on a copy: the exact time left (a periodic timer whose expirations
    // were not read is moved to its next period, its expirations counted, as the program's
    // own next read or timerfd_gettime would do).
    let copy = crate::pipe::capture::steal(fd.pid, fd.fd)?;
    // SAFETY: itimerspec is plain data; timerfd_gettime writes one.
    let mut cur: libc::itimerspec = unsafe { std::mem::zeroed() };
    // SAFETY: timerfd_gettime on our own descriptor, writing into `cur`.
    if unsafe { libc::timerfd_gettime(copy.as_raw_fd(), &mut cur) } < 0 {
        return Err(last_os("timerfd_gettime"));
    }
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", copy.as_raw_fd()))
        .map_err(cairn_sys::error::io_ctx("reading the fdinfo of a timerfd"))?;
    let ticks = info
        .lines()
        .find_map(|l| l.strip_prefix("ticks:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            fd.unsupported("timerfd whose unread expirations this kernel does not show")
        })?;
    let left = ns(&cur.it_value);
    let value_ns = if left == 0 {
        0
    } else if settime_flags & TFD_TIMER_ABSTIME != 0 {
        job_now(clock, fd.pid).map_err(|e| fd.unsupported(format!("timerfd on {e}")))? + left
    } else {
        left
    };
    Ok(FdKind::TimerFd(TimerFdImage {
        id: 0,
        clock,
        settime_flags,
        value_ns,
        interval_ns: ns(&cur.it_interval),
        ticks,
        flags: fd.flags & (libc::O_ACCMODE | libc::O_NONBLOCK),
    }))
}

fn id_mut(k: &mut FdKind) -> Option<&mut u64> {
    match k {
        FdKind::TimerFd(t) => Some(&mut t.id),
        _ => None,
    }
}

/// [`crate::CaptureFn`] of timerfds: descriptors sharing one timer get one id.
pub fn capture_job(
    job: &FrozenJob<'_>,
    image: &mut ProcessTreeImage,
    _: &mut dyn MemorySink,
) -> Result<()> {
    crate::shared::number(job, image, id_mut);
    Ok(())
}
