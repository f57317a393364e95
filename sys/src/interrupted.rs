//! What a thread stopped inside a system call resumes with: the kernel's restart codes
//! (-ERESTART*), restart blocks that a restored process no longer has, and syscalls that a
//! stop alone fails with EINTR.

use crate::error::Result;
use crate::procfs;
use crate::ptrace;
use crate::regs::UserRegs;

/// -ERESTARTSYS .. -ERESTART_RESTARTBLOCK as seen in rax of a thread stopped in a syscall.
const ERESTARTSYS: i64 = -512;
const ERESTARTNOINTR: i64 = -513;
const ERESTARTNOHAND: i64 = -514;
const ERESTART_RESTARTBLOCK: i64 = -516;

/// Registers to resume a thread with after it was stopped inside a syscall, done by hand because
/// injected syscalls (or a restore) bypass the kernel's own restart logic: the syscall
/// instruction is re-executed. `restart_block` says whether -ERESTART_RESTARTBLOCK may use the
/// kernel's restart_syscall (true only for the same live task).
pub fn resume_regs(saved: &UserRegs, restart_block: bool) -> UserRegs {
    let mut r = *saved;
    if (saved.orig_rax as i64) >= 0 {
        match saved.rax as i64 {
            ERESTARTSYS | ERESTARTNOINTR | ERESTARTNOHAND => {
                r.rax = saved.orig_rax;
                r.rip -= 2;
            }
            ERESTART_RESTARTBLOCK => {
                if restart_block {
                    r.rax = libc::SYS_restart_syscall as u64;
                } else {
                    r.rax = saved.orig_rax;
                    sleep_what_was_left(&mut r);
                }
                r.rip -= 2;
            }
            _ => {}
        }
    }
    r.orig_rax = u64::MAX;
    r
}

/// `clock_nanosleep` flag: the request is an absolute time.
const TIMER_ABSTIME: u64 = 1;

/// A relative sleep that a restored thread issues again (it has no restart block) sleeps only
/// what was left: when the sleep was interrupted, the kernel wrote the time left to its
/// `rmtp` argument (if the program gave one), so `nanosleep(rmtp, rmtp)` /
/// `clock_nanosleep(clock, 0, rmtp, rmtp)` continues it. The program's own request is not
/// touched (only the register pointing at it); without `rmtp` the whole request is slept
/// again.
fn sleep_what_was_left(r: &mut UserRegs) {
    let nr = r.orig_rax as i64;
    if nr == libc::SYS_nanosleep && r.rsi != 0 {
        r.rdi = r.rsi;
    } else if nr == libc::SYS_clock_nanosleep && r.rsi & TIMER_ABSTIME == 0 && r.r10 != 0 {
        r.rdx = r.r10;
    }
}

/// Syscall number a thread (outer tid) was in when cairn last saw it interrupted with
/// -ERESTART_RESTARTBLOCK, and the address of its `syscall` instruction: resumed live, it
/// continues in `restart_syscall`, and a later freeze sees only that. A restored process has
/// no kernel restart block, so the image must name the original syscall (its arguments are
/// still in the registers).
/// With it, for a `poll`, when its timeout ends (CLOCK_MONOTONIC nanoseconds) where cairn
/// could tell ([`settle_stopped`]).
type RestartBlocks = std::collections::HashMap<i32, (u64, u64, Option<i128>)>;
static RESTART_BLOCK_NR: std::sync::Mutex<Option<RestartBlocks>> = std::sync::Mutex::new(None);

/// `regs` of thread `tid` as seen at a freeze, with the original syscall instead of
/// `restart_syscall` when cairn knows it; remembers the syscall of a thread interrupted with
/// -ERESTART_RESTARTBLOCK for the next freeze. Three states name `restart_syscall`: stopped
/// in it (`orig_rax`, the original goes there); stopped before re-entering it — resumed by
/// cairn at its `syscall` instruction with `rax` = `restart_syscall` and frozen again before
/// it ran; or stopped after the kernel itself set it up for `restart_syscall` on its way back
/// to user mode (`rax` = `restart_syscall`, `orig_rax` still the original). The last two are
/// given as the first: `rax` = -ERESTART_RESTARTBLOCK, `orig_rax` the original syscall, `rip`
/// after the `syscall` instruction. A restored process has no restart block, so
/// `restart_syscall` there would fail with EINTR. A `poll` whose end cairn knows gets the
/// milliseconds left as its timeout argument (what a restore re-issues it with; live, the
/// restart block is used and the argument is not read).
pub fn note_restart(tid: i32, regs: UserRegs) -> UserRegs {
    let Ok(mut map) = RESTART_BLOCK_NR.lock() else {
        return regs;
    };
    let map = map.get_or_insert_with(Default::default);
    let mut regs = name_restart(map, tid, regs);
    if regs.rax as i64 == ERESTART_RESTARTBLOCK && regs.orig_rax == libc::SYS_poll as u64 {
        if let Some(&(_, _, Some(end))) = map.get(&tid) {
            regs.rdx = crate::asleep::ms_left(end).min(i32::MAX as u64);
        }
    }
    regs
}

fn name_restart(map: &mut RestartBlocks, tid: i32, mut regs: UserRegs) -> UserRegs {
    let restart = libc::SYS_restart_syscall as u64;
    if regs.rax as i64 == ERESTART_RESTARTBLOCK && (regs.orig_rax as i64) >= 0 {
        if regs.orig_rax == restart {
            if let Some(&(nr, _, _)) = map.get(&tid) {
                regs.orig_rax = nr;
            }
        } else {
            let at = regs.rip.wrapping_sub(2);
            let end = match map.get(&tid) {
                Some(&(nr, was, end)) if nr == regs.orig_rax && was == at => end,
                _ => None,
            };
            map.insert(tid, (regs.orig_rax, at, end));
        }
    } else if regs.rax == restart {
        // Both states below are saved as the thread stopped in the syscall itself
        // (-ERESTART_RESTARTBLOCK, the syscall in orig_rax, rip after the instruction): live,
        // it then continues in restart_syscall, and a restore re-issues the original syscall
        // with what was left of a sleep, as for a thread stopped in it.
        match map.get(&tid) {
            Some(&(nr, at, _)) if at == regs.rip => {
                regs.rax = ERESTART_RESTARTBLOCK as u64;
                regs.orig_rax = nr;
                regs.rip += 2;
            }
            // Stopped after the kernel's own restart fix-up (rax and rip set for
            // restart_syscall) but before the thread went back to user mode: the original
            // syscall is still in orig_rax.
            _ if (regs.orig_rax as i64) >= 0 && regs.orig_rax != restart => {
                map.insert(tid, (regs.orig_rax, regs.rip, None));
                regs.rax = ERESTART_RESTARTBLOCK as u64;
                regs.rip += 2;
            }
            _ => {
                map.remove(&tid);
            }
        }
    } else {
        map.remove(&tid);
    }
    regs
}

/// io_pgetevents on x86_64 (not in the libc crate).
const SYS_IO_PGETEVENTS: i64 = 333;

/// Syscalls the kernel fails with plain EINTR, not a restart code, when a ptrace or job-control
/// stop interrupts them, even with no signal handler involved (signal(7), "Interruption of
/// system calls and library functions by stop signals"), having done nothing.
const EINTR_ON_STOP: [i64; 15] = [
    libc::SYS_rt_sigtimedwait,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_semop,
    libc::SYS_semtimedop,
    libc::SYS_io_getevents,
    SYS_IO_PGETEVENTS,
    libc::SYS_recvfrom,
    libc::SYS_recvmsg,
    libc::SYS_recvmmsg,
    libc::SYS_sendto,
    libc::SYS_sendmsg,
    libc::SYS_accept,
    libc::SYS_accept4,
];

/// Called for every thread cairn has just stopped (before anything else touches it), with
/// what [`crate::asleep::snapshot`] saw of it just before the stop: notes the syscall of an
/// interrupted restart block ([`note_restart`]), and takes back an EINTR that only this stop
/// caused — a syscall of [`EINTR_ON_STOP`] failed with EINTR while no signal the thread
/// could take is pending — by pointing the thread at the syscall again, so that it repeats
/// the call when it runs on, live or restored. Waits with a timeout in milliseconds that
/// the kernel keeps only for itself continue with what was left of it where the thread's
/// sleep can be dated ([`crate::asleep`]): `epoll_wait`/`epoll_pwait` are repeated with
/// the milliseconds left, and the end of a `poll` is noted for [`note_restart`].
pub fn settle_stopped(tid: i32, before: Option<crate::asleep::Asleep>) -> Result<()> {
    let raw = ptrace::get_regs(tid)?;
    let regs = note_restart(tid, raw);
    let nr = regs.orig_rax as i64;
    let timeout_ms = |arg: u64| {
        let ms = arg as i32;
        (ms > 0).then_some(ms as u64)
    };
    let slept = || before.and_then(|b| crate::asleep::slept_since(tid, b));
    if raw.rax as i64 == ERESTART_RESTARTBLOCK && raw.orig_rax == libc::SYS_poll as u64 {
        // A poll interrupted now (not one the kernel restarted after an earlier freeze,
        // whose end is known from then).
        let end = timeout_ms(raw.rdx).and_then(|ms| Some(slept()? + crate::asleep::ms(ms)));
        if let Ok(mut map) = RESTART_BLOCK_NR.lock() {
            if let Some(e) = map.get_or_insert_with(Default::default).get_mut(&tid) {
                e.2 = end;
            }
        }
    }
    if regs.rax as i64 == -i64::from(libc::EINTR)
        && EINTR_ON_STOP.contains(&nr)
        && !procfs::unblocked_signal_pending(tid)?
    {
        let mut r = regs;
        r.rax = regs.orig_rax;
        r.rip -= 2;
        r.orig_rax = u64::MAX;
        if nr == libc::SYS_epoll_wait || nr == libc::SYS_epoll_pwait {
            if let Some(start) = timeout_ms(regs.r10).and_then(|_| slept()) {
                let end = start + crate::asleep::ms(regs.r10 as i32 as u64);
                r.r10 = crate::asleep::ms_left(end).min(i32::MAX as u64);
            }
        }
        ptrace::set_regs(tid, &r)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NANOSLEEP: u64 = libc::SYS_nanosleep as u64;
    const RESTART: u64 = libc::SYS_restart_syscall as u64;

    fn regs(rax: u64, orig_rax: u64, rip: u64) -> UserRegs {
        UserRegs {
            rax,
            orig_rax,
            rip,
            ..Default::default()
        }
    }

    #[test]
    fn a_restart_block_syscall_is_named_in_every_state_a_freeze_can_see() {
        // Stopped in nanosleep: -ERESTART_RESTARTBLOCK, the syscall in orig_rax (remembered).
        let t = 900_001;
        let r = note_restart(t, regs(ERESTART_RESTARTBLOCK as u64, NANOSLEEP, 0x1002));
        assert_eq!(
            (r.rax as i64, r.orig_rax),
            (ERESTART_RESTARTBLOCK, NANOSLEEP)
        );
        // Resumed live into restart_syscall and stopped in it: the original is put back.
        let r = note_restart(t, regs(ERESTART_RESTARTBLOCK as u64, RESTART, 0x1002));
        assert_eq!(r.orig_rax, NANOSLEEP);
        // Resumed by cairn at its syscall instruction, stopped before it ran: saved as
        // stopped in nanosleep, which live resumes with restart_syscall.
        let r = note_restart(t, regs(RESTART, u64::MAX, 0x1000));
        assert_eq!(
            (r.rax as i64, r.orig_rax, r.rip),
            (ERESTART_RESTARTBLOCK, NANOSLEEP, 0x1002)
        );
        assert_eq!(
            (resume_regs(&r, true).rax, resume_regs(&r, true).rip),
            (RESTART, 0x1000)
        );
        // Stopped after the kernel's own fix-up for restart_syscall, never seen before: the
        // original syscall is still in orig_rax.
        let r = note_restart(900_002, regs(RESTART, NANOSLEEP, 0x2000));
        assert_eq!(
            (r.rax as i64, r.orig_rax, r.rip),
            (ERESTART_RESTARTBLOCK, NANOSLEEP, 0x2002)
        );
        // Whatever the state, a restore re-issues nanosleep at its instruction, never
        // restart_syscall.
        let back = resume_regs(&r, false);
        assert_eq!((back.rax, back.rip), (NANOSLEEP, 0x2000));
    }

    #[test]
    fn a_restored_relative_sleep_sleeps_what_was_left() {
        let mut r = regs(ERESTART_RESTARTBLOCK as u64, NANOSLEEP, 0x1002);
        (r.rdi, r.rsi) = (0x7000, 0x7100);
        let back = resume_regs(&r, false);
        assert_eq!((back.rdi, back.rsi), (0x7100, 0x7100));
        // Live, the kernel's restart block knows the time left: arguments untouched.
        assert_eq!(resume_regs(&r, true).rdi, 0x7000);
        // No rmtp: the request itself.
        r.rsi = 0;
        assert_eq!(resume_regs(&r, false).rdi, 0x7000);
        // clock_nanosleep(clock, flags, req, rmtp), relative then absolute.
        let mut c = regs(
            ERESTART_RESTARTBLOCK as u64,
            libc::SYS_clock_nanosleep as u64,
            0x1002,
        );
        (c.rdx, c.r10) = (0x7000, 0x7100);
        assert_eq!(resume_regs(&c, false).rdx, 0x7100);
        c.rsi = TIMER_ABSTIME;
        assert_eq!(resume_regs(&c, false).rdx, 0x7000);
    }
}
