//! Thin, checked wrappers around the ptrace requests cairn uses (x86_64 only).
//!
//! Every request must be issued by the thread that attached (the tracer thread); callers keep
//! a checkpoint or a restore on one thread.

use crate::error::{Error, Result};
use crate::regs::UserRegs;

/// Signals blocked while cairn injects syscalls (all but SIGKILL/SIGSTOP, which cannot be).
pub const BLOCK_ALL: u64 = !0;

/// PTRACE_SEIZE.
pub const SEIZE: u32 = 0x4206;
/// PTRACE_INTERRUPT.
pub const INTERRUPT: u32 = 0x4207;
const GETREGS: u32 = 12;
const SETREGS: u32 = 13;
const SYSCALL: u32 = 24;
const CONT: u32 = 7;
const DETACH: u32 = 17;
const GETREGSET: u32 = 0x4204;
const SETREGSET: u32 = 0x4205;
const PEEKSIGINFO: u32 = 0x4209;
const GETSIGMASK: u32 = 0x420a;
const SETSIGMASK: u32 = 0x420b;
const GET_RSEQ_CONFIGURATION: u32 = 0x420f;
const NT_X86_XSTATE: usize = 0x202;
/// PTRACE_O_TRACESYSGOOD.
pub const O_TRACESYSGOOD: u64 = 1;
/// PTRACE_O_TRACECLONE.
pub const O_TRACECLONE: u64 = 8;
/// PTRACE_O_EXITKILL.
pub const O_EXITKILL: u64 = 1 << 20;
/// PTRACE_EVENT_STOP.
pub const EVENT_STOP: i32 = 128;
const PEEKSIGINFO_SHARED: u32 = 1;
/// Size of the buffer used for NT_X86_XSTATE (larger than any current CPU's xsave area).
const XSTATE_MAX: usize = 16384;

fn raw(req: u32, tid: i32, addr: usize, data: usize) -> std::io::Result<i64> {
    // SAFETY: the ptrace syscall only touches memory at `addr`/`data` for requests that take
    // pointers; every caller passes pointers to live buffers of the size the request needs.
    let r = unsafe { libc::syscall(libc::SYS_ptrace, req as libc::c_long, tid, addr, data) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn req(name: &str, req: u32, tid: i32, addr: usize, data: usize) -> Result<i64> {
    raw(req, tid, addr, data).map_err(|source| Error::Sys {
        what: format!("ptrace({name}) of {tid}"),
        source,
    })
}

/// Attach to `tid` without stopping it.
pub fn seize(tid: i32, options: u64) -> Result<()> {
    req("SEIZE", SEIZE, tid, 0, options as usize).map(drop)
}

/// Set the ptrace options (`PTRACE_O_*`) of a stopped tracee.
pub fn set_options(tid: i32, options: u64) -> Result<()> {
    const SETOPTIONS: u32 = 0x4200;
    req("SETOPTIONS", SETOPTIONS, tid, 0, options as usize).map(drop)
}

/// Ask a seized thread to stop; the stop is reported by [`wait_stop`].
pub fn interrupt(tid: i32) -> Result<()> {
    req("INTERRUPT", INTERRUPT, tid, 0, 0).map(drop)
}

/// Detach from `tid`, letting it run.
pub fn detach(tid: i32) -> Result<()> {
    req("DETACH", DETACH, tid, 0, 0).map(drop)
}

/// Let go of `tid`: detach it, or, if it died while traced, reap its exit report so that its
/// real parent (the sandbox init) can see the exit. Best effort, never fails.
pub fn release(tid: i32) {
    if detach(tid).is_ok() {
        return;
    }
    // Not stopped or gone: a thread that was killed is still exiting or a zombie waiting for
    // us, its tracer. Wait for it briefly; ECHILD means it is not (or no longer) ours.
    for _ in 0..400 {
        let mut status = 0;
        // SAFETY: waitpid on one specific tid; writes one int.
        let r = unsafe { libc::waitpid(tid, &mut status, libc::WNOHANG | libc::__WALL) };
        if r != 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Resume to the next syscall entry or exit stop.
pub fn cont_syscall(tid: i32) -> Result<()> {
    req("SYSCALL", SYSCALL, tid, 0, 0).map(drop)
}

/// Resume until the next stop (signal or event), delivering no signal.
pub fn cont(tid: i32) -> Result<()> {
    req("CONT", CONT, tid, 0, 0).map(drop)
}

/// A stop (or the end) of a traced thread, as reported by waitpid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Syscall entry or exit stop (TRACESYSGOOD).
    Syscall,
    /// A PTRACE_EVENT_* stop (event number).
    Event(i32),
    /// Signal-delivery stop with this signal.
    Signal(i32),
}

/// Wait for the next stop of `tid`; a thread that exited becomes [`Error::Exited`].
pub fn wait_stop(tid: i32) -> Result<Stop> {
    wait_stop_sig(tid).map(|(stop, _)| stop)
}

/// [`wait_stop`], also returning the stop's signal number (`WSTOPSIG`): for a
/// `PTRACE_EVENT_STOP` it is SIGTRAP, or the stop signal when the thread is in a group stop.
pub fn wait_stop_sig(tid: i32) -> Result<(Stop, i32)> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes one int into `status`.
        let r = unsafe { libc::waitpid(tid, &mut status, libc::__WALL) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            if e.raw_os_error() == Some(libc::ECHILD) {
                return Err(Error::Exited { pid: tid });
            }
            return Err(Error::Sys {
                what: format!("waitpid({tid})"),
                source: e,
            });
        }
        break;
    }
    if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
        return Err(Error::Exited { pid: tid });
    }
    if !libc::WIFSTOPPED(status) {
        return Err(Error::Parse(format!("waitpid({tid}) status {status:#x}")));
    }
    let sig = libc::WSTOPSIG(status);
    let event = status >> 16;
    let stop = if sig == libc::SIGTRAP | 0x80 {
        Stop::Syscall
    } else if event != 0 {
        Stop::Event(event)
    } else {
        Stop::Signal(sig)
    };
    Ok((stop, sig))
}

/// PTRACE_GETREGS.
pub fn get_regs(tid: i32) -> Result<UserRegs> {
    let mut regs = UserRegs::default();
    req(
        "GETREGS",
        GETREGS,
        tid,
        0,
        &mut regs as *mut UserRegs as usize,
    )?;
    Ok(regs)
}

/// PTRACE_SETREGS.
pub fn set_regs(tid: i32, regs: &UserRegs) -> Result<()> {
    req("SETREGS", SETREGS, tid, 0, regs as *const UserRegs as usize).map(drop)
}

/// The full FPU/SSE/AVX/AVX-512 state (NT_X86_XSTATE, xsave layout).
pub fn get_xstate(tid: i32) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; XSTATE_MAX];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    req(
        "GETREGSET(NT_X86_XSTATE)",
        GETREGSET,
        tid,
        NT_X86_XSTATE,
        &mut iov as *mut libc::iovec as usize,
    )?;
    buf.truncate(iov.iov_len);
    Ok(buf)
}

/// Write back an xsave area taken with [`get_xstate`].
pub fn set_xstate(tid: i32, xstate: &[u8]) -> Result<()> {
    let mut buf = xstate.to_vec();
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    req(
        "SETREGSET(NT_X86_XSTATE)",
        SETREGSET,
        tid,
        NT_X86_XSTATE,
        &mut iov as *mut libc::iovec as usize,
    )
    .map(drop)
}

/// The blocked-signal mask of a thread.
pub fn get_sigmask(tid: i32) -> Result<u64> {
    let mut mask = 0u64;
    req(
        "GETSIGMASK",
        GETSIGMASK,
        tid,
        8,
        &mut mask as *mut u64 as usize,
    )?;
    Ok(mask)
}

/// Set the blocked-signal mask of a thread (SIGKILL and SIGSTOP are ignored by the kernel).
pub fn set_sigmask(tid: i32, mask: u64) -> Result<()> {
    req(
        "SETSIGMASK",
        SETSIGMASK,
        tid,
        8,
        &mask as *const u64 as usize,
    )
    .map(drop)
}

#[repr(C)]
struct PeekSiginfoArgs {
    off: u64,
    flags: u32,
    nr: i32,
}

/// The queued signals of a thread (`shared == false`) or of its process (`shared == true`),
/// each as the kernel's 128-byte siginfo.
pub fn peek_siginfo(tid: i32, shared: bool) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    loop {
        let mut buf = vec![0u8; 128 * 32];
        let args = PeekSiginfoArgs {
            off: out.len() as u64,
            flags: if shared { PEEKSIGINFO_SHARED } else { 0 },
            nr: 32,
        };
        let n = req(
            "PEEKSIGINFO",
            PEEKSIGINFO,
            tid,
            &args as *const PeekSiginfoArgs as usize,
            buf.as_mut_ptr() as usize,
        )? as usize;
        for i in 0..n {
            out.push(buf[i * 128..(i + 1) * 128].to_vec());
        }
        if n < 32 {
            return Ok(out);
        }
    }
}

/// The rseq area registered by a thread: (address, length, signature), if any.
pub fn get_rseq(tid: i32) -> Result<Option<(u64, u32, u32)>> {
    let mut conf = [0u64; 3]; // rseq_abi_pointer, rseq_abi_size, signature, flags(u32), pad(u32)
    let n = req(
        "GET_RSEQ_CONFIGURATION",
        GET_RSEQ_CONFIGURATION,
        tid,
        std::mem::size_of_val(&conf),
        conf.as_mut_ptr() as usize,
    )?;
    if n < 16 || conf[0] == 0 {
        return Ok(None);
    }
    let size = (conf[1] & 0xffff_ffff) as u32;
    let sig = (conf[1] >> 32) as u32;
    Ok(Some((conf[0], size, sig)))
}
