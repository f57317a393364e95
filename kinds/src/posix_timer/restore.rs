//! POSIX timers at restore: once every thread of a process exists (a timer may signal one
//! of them), the timers are created inside it with their old ids — the kernel takes the id
//! from `timer_create`'s `timer_id` argument while `PR_TIMER_CREATE_RESTORE_IDS` is on — in
//! increasing order, so the next id `timer_create` hands out is one above the highest, and
//! armed: an expiry on CLOCK_MONOTONIC or CLOCK_BOOTTIME as an absolute time on the restored
//! job's clocks (its time namespace continues them), other clocks with the time that was left.

use crate::scratch;
use crate::Recreated;
use cairn_image::{MemorySource, PosixTimer, ProcessImage, ProcessTreeImage};
use cairn_sys::inject::Injector;
use cairn_sys::{Error, Result};

const PR_TIMER_CREATE_RESTORE_IDS: u64 = 77;
const TIMER_ABSTIME: u64 = 1;

/// [`crate::RecreateFn`] of POSIX timers.
pub fn recreate(image: &ProcessTreeImage, _: &dyn MemorySource) -> Result<Box<dyn Recreated>> {
    Ok(Box::new(Timers(image.posix_timers.clone())))
}

/// The timers of the job.
struct Timers(Vec<PosixTimer>);

impl Recreated for Timers {
    fn with_threads(&self, inj: &Injector, p: &ProcessImage) -> Result<()> {
        let mut mine: Vec<&PosixTimer> = self.0.iter().filter(|t| t.pid == p.pid).collect();
        if mine.is_empty() {
            return Ok(());
        }
        mine.sort_by_key(|t| t.id);
        scratch::with_page(inj, |page| {
            let prctl = |on: u64| {
                inj.call(
                    "prctl(PR_TIMER_CREATE_RESTORE_IDS)",
                    libc::SYS_prctl,
                    &[PR_TIMER_CREATE_RESTORE_IDS, on, 0, 0, 0],
                )
            };
            prctl(1).map_err(|e| {
                Error::Incompatible(format!(
                    "process {}: cannot give POSIX timers their ids again ({e}; \
                     PR_TIMER_CREATE_RESTORE_IDS needs Linux 6.17)",
                    p.pid
                ))
            })?;
            let made = mine.iter().try_for_each(|t| create(inj, page, t));
            let off = prctl(0);
            made?;
            off?;
            for t in &mine {
                arm(inj, page, t)?;
            }
            Ok(())
        })
    }
}

/// `timer_create` of `t` with its id, through the page `page` of the process.
fn create(inj: &Injector, page: u64, t: &PosixTimer) -> Result<()> {
    // struct sigevent: sigev_value, sigev_signo, sigev_notify, then the thread id (64 bytes).
    let mut sev = [0u8; 64];
    sev[0..8].copy_from_slice(&t.value.to_ne_bytes());
    sev[8..12].copy_from_slice(&t.signo.to_ne_bytes());
    sev[12..16].copy_from_slice(&t.notify.to_ne_bytes());
    sev[16..20].copy_from_slice(&t.tid.to_ne_bytes());
    scratch::put(inj, page, &sev)?;
    scratch::put(inj, page + 64, &t.id.to_ne_bytes())?;
    inj.call(
        "timer_create",
        libc::SYS_timer_create,
        &[t.clock as u32 as u64, page, page + 64],
    )
    .map_err(|e| {
        Error::Incompatible(format!(
            "process {}: recreating POSIX timer {} (clock {}): {e}",
            t.pid, t.id, t.clock
        ))
    })?;
    let mut id = [0u8; 4];
    scratch::get(inj, page + 64, &mut id)?;
    if i32::from_ne_bytes(id) != t.id {
        return Err(Error::Incompatible(format!(
            "process {}: POSIX timer {} was recreated with id {}",
            t.pid,
            t.id,
            i32::from_ne_bytes(id)
        )));
    }
    Ok(())
}

/// `timer_settime` of `t` as it was: its interval, and its next expiry (absolute on the
/// clocks the job's time namespace continues, else the time that was left). A one-shot timer
/// that had fired with its signal still queued stays disarmed: the queued signal is restored
/// with the process's pending signals.
fn arm(inj: &Injector, page: u64, t: &PosixTimer) -> Result<()> {
    let fired = t.signal_pending && t.interval == [0, 0];
    let (flags, value) = match t.at {
        _ if fired => (0, [0, 0]),
        Some(at) => (TIMER_ABSTIME, at),
        None => (0, t.left),
    };
    if value == [0, 0] && t.interval == [0, 0] {
        return Ok(());
    }
    let words: Vec<u8> = [t.interval[0], t.interval[1], value[0], value[1]]
        .iter()
        .flat_map(|w| w.to_ne_bytes())
        .collect();
    scratch::put(inj, page, &words)?;
    inj.call(
        "timer_settime",
        libc::SYS_timer_settime,
        &[t.id as u64, flags, page, 0],
    )?;
    Ok(())
}
