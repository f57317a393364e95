//! Timerfds: created unarmed by the restoring process, armed inside the rebuilt process
//! that holds them (see the module documentation of [`crate::timerfd`]).

use crate::scratch::{put, with_page};
use crate::shared::{fresh, Made};
use crate::Recreated;
use cairn_image::{FdImage, FdKind, MemorySource, ProcessImage, ProcessTreeImage, TimerFdImage};
use cairn_sys::inject::Injector;
use cairn_sys::{Error, Result};
use std::os::fd::OwnedFd;

/// `_IOW('T', 0, u64)`: sets the unread expirations of a timerfd.
const TFD_IOC_SET_TICKS: u64 = 0x4008_5400;
const NS: u64 = 1_000_000_000;

/// [`crate::RecreateFn`] of timerfds.
pub fn recreate(image: &ProcessTreeImage, _: &dyn MemorySource) -> Result<Box<dyn Recreated>> {
    Ok(Box::new(TimerFds(Made::create(
        image, "timerfd", select, create,
    )?)))
}

fn select(k: &FdKind) -> Option<(u64, &TimerFdImage)> {
    match k {
        FdKind::TimerFd(t) => Some((t.id, t)),
        _ => None,
    }
}

/// Create one timerfd of the image, unarmed.
pub fn create(t: &TimerFdImage) -> Result<OwnedFd> {
    let mut flags = libc::TFD_CLOEXEC;
    if t.flags & libc::O_NONBLOCK != 0 {
        flags |= libc::TFD_NONBLOCK;
    }
    // SAFETY: timerfd_create takes integers and returns a new descriptor.
    fresh(
        unsafe { libc::timerfd_create(t.clock, flags) },
        &format!("timerfd_create on clock {}", t.clock),
    )
}

/// Arm timer `t`, descriptor `fd` of the process `inj` injects into, and give it back its
/// unread expirations.
fn arm(inj: &Injector, fd: i32, t: &TimerFdImage) -> Result<()> {
    with_page(inj, |page| {
        if t.value_ns != 0 {
            // struct itimerspec { it_interval, it_value }, each { tv_sec, tv_nsec }.
            let mut spec = Vec::with_capacity(32);
            for v in [t.interval_ns, t.value_ns] {
                spec.extend_from_slice(&(v / NS).to_ne_bytes());
                spec.extend_from_slice(&(v % NS).to_ne_bytes());
            }
            put(inj, page, &spec)?;
            inj.call(
                "timerfd_settime",
                libc::SYS_timerfd_settime,
                &[fd as u64, t.settime_flags as u64, page, 0],
            )?;
        }
        if t.ticks != 0 {
            put(inj, page + 64, &t.ticks.to_ne_bytes())?;
            inj.call(
                "ioctl(TFD_IOC_SET_TICKS)",
                libc::SYS_ioctl,
                &[fd as u64, TFD_IOC_SET_TICKS, page + 64],
            )?;
        }
        Ok(())
    })
}

/// The job's timerfds.
struct TimerFds(Made);

impl Recreated for TimerFds {
    fn open(&self, pid: i32, fd: &FdImage, _: &dyn MemorySource) -> Option<Result<OwnedFd>> {
        let (id, _) = select(&fd.kind)?;
        Some(self.0.hand_out(pid, fd, id))
    }
    fn descriptors_taken(&mut self) {
        self.0.close_copies();
    }
    fn in_process(&self, inj: &Injector, p: &ProcessImage) -> Result<()> {
        for f in &p.fds {
            let Some((id, t)) = select(&f.kind) else {
                continue;
            };
            if !self.0.owns(p.pid, f.fd, id) {
                continue;
            }
            arm(inj, f.fd, t).map_err(|e| {
                Error::Incompatible(format!(
                    "process {} fd {}: arming its timerfd again: {e}",
                    p.pid, f.fd
                ))
            })?;
        }
        Ok(())
    }
}
