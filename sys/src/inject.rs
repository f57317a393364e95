//! Syscall injection: running a system call inside a stopped, traced thread.
//!
//! The thread's registers are pointed at a `syscall` instruction in its own address space
//! (first one found in the vdso, later a scratch page), then the thread is run with
//! PTRACE_SYSCALL to the syscall's entry and exit stops. No code is loaded into the target.

use crate::error::{Error, Result};
use crate::procfs;
use crate::ptrace::{self, Stop};
use crate::regs::UserRegs;

/// Injects system calls into one stopped thread.
#[derive(Debug)]
pub struct Injector {
    tid: i32,
    syscall_addr: u64,
    base: UserRegs,
}

impl Injector {
    /// An injector for stopped thread `tid` that executes the `syscall` instruction at
    /// `syscall_addr`; the thread's current registers are the template for every call.
    pub fn new(tid: i32, syscall_addr: u64) -> Result<Self> {
        let base = ptrace::get_regs(tid)?;
        Ok(Self {
            tid,
            syscall_addr,
            base,
        })
    }

    /// The outer tid this injector drives.
    pub fn tid(&self) -> i32 {
        self.tid
    }

    /// Use another `syscall` instruction from now on (e.g. in a scratch page).
    pub fn set_syscall_addr(&mut self, addr: u64) {
        self.syscall_addr = addr;
    }

    /// Run syscall `nr` with `args`; returns the raw return value (negative errno on failure).
    pub fn raw(&self, nr: i64, args: &[u64]) -> Result<i64> {
        let mut r = self.base;
        r.rax = nr as u64;
        r.orig_rax = u64::MAX;
        r.rip = self.syscall_addr;
        let a = |i: usize| args.get(i).copied().unwrap_or(0);
        r.rdi = a(0);
        r.rsi = a(1);
        r.rdx = a(2);
        r.r10 = a(3);
        r.r8 = a(4);
        r.r9 = a(5);
        ptrace::set_regs(self.tid, &r)?;
        let mut syscall_stops = 0;
        while syscall_stops < 2 {
            ptrace::cont_syscall(self.tid)?;
            match ptrace::wait_stop(self.tid)? {
                Stop::Syscall => syscall_stops += 1,
                Stop::Event(_) => {}
                Stop::Signal(sig) => {
                    return Err(Error::Unsupported(format!(
                        "thread {} received signal {sig} during syscall injection",
                        self.tid
                    )))
                }
            }
        }
        Ok(ptrace::get_regs(self.tid)?.rax as i64)
    }

    /// Run syscall `nr`; a negative return becomes [`Error::Injected`].
    pub fn call(&self, name: &'static str, nr: i64, args: &[u64]) -> Result<u64> {
        let r = self.raw(nr, args)?;
        if (-4095..0).contains(&r) {
            return Err(Error::Injected {
                name,
                tid: self.tid,
                source: std::io::Error::from_raw_os_error(-r as i32),
            });
        }
        Ok(r as u64)
    }
}

/// Machine code that runs a table of system calls: for each 64-byte entry at `r12`
/// (`nr, a0..a5, result`) it loads the registers, executes `syscall` and stores the result
/// in the entry, `r13` times, stopping early at the first error; then `int3`. It uses no
/// stack and no memory outside the table. Written into a process's executable scratch page,
/// it replaces one ptrace round trip per call by one per table ([`Injector::batch`]).
pub const BATCH_CODE: [u8; 59] = [
    0x49, 0x8b, 0x04, 0x24, // mov rax, [r12]
    0x49, 0x8b, 0x7c, 0x24, 0x08, // mov rdi, [r12 + 8]
    0x49, 0x8b, 0x74, 0x24, 0x10, // mov rsi, [r12 + 16]
    0x49, 0x8b, 0x54, 0x24, 0x18, // mov rdx, [r12 + 24]
    0x4d, 0x8b, 0x54, 0x24, 0x20, // mov r10, [r12 + 32]
    0x4d, 0x8b, 0x44, 0x24, 0x28, // mov r8, [r12 + 40]
    0x4d, 0x8b, 0x4c, 0x24, 0x30, // mov r9, [r12 + 48]
    0x0f, 0x05, // syscall
    0x49, 0x89, 0x44, 0x24, 0x38, // mov [r12 + 56], rax
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax, -4095
    0x73, 0x09, // jae done
    0x49, 0x83, 0xc4, 0x40, // add r12, 64
    0x49, 0xff, 0xcd, // dec r13
    0x75, 0xc6, // jnz loop
    0xcc, // done: int3
];

/// Bytes of one entry of a [`BATCH_CODE`] table.
pub const BATCH_ENTRY: u64 = 64;

/// One system call of a batch: its name (for errors), number and arguments.
#[derive(Debug, Clone, Copy)]
pub struct BatchCall {
    /// Name shown when the call fails.
    pub name: &'static str,
    /// Syscall number.
    pub nr: i64,
    /// Arguments.
    pub args: [u64; 6],
}

impl Injector {
    /// Run `calls` in order inside the thread with [`BATCH_CODE`] (already written at `code`,
    /// in executable memory of the thread's process), the table written at `table` (writable,
    /// at least `calls.len() * BATCH_ENTRY` bytes). The first failing call ends the batch
    /// with [`Error::Injected`] naming it; `on_error(i)` may add which call `i` it was.
    pub fn batch(
        &self,
        code: u64,
        table: u64,
        calls: &[BatchCall],
        on_error: impl Fn(usize, Error) -> Error,
    ) -> Result<()> {
        if calls.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(calls.len() * BATCH_ENTRY as usize);
        for c in calls {
            bytes.extend_from_slice(&c.nr.to_le_bytes());
            for a in c.args {
                bytes.extend_from_slice(&a.to_le_bytes());
            }
            bytes.extend_from_slice(&0u64.to_le_bytes());
        }
        procfs::write_mem(self.tid, None, table, &bytes).map_err(|source| Error::Sys {
            what: "writing a table of system calls into the process".into(),
            source,
        })?;
        let mut r = self.base;
        r.rip = code;
        r.orig_rax = u64::MAX;
        r.r12 = table;
        r.r13 = calls.len() as u64;
        ptrace::set_regs(self.tid, &r)?;
        ptrace::cont(self.tid)?;
        loop {
            match ptrace::wait_stop(self.tid)? {
                Stop::Signal(libc::SIGTRAP) => break,
                Stop::Event(_) | Stop::Syscall => ptrace::cont(self.tid)?,
                Stop::Signal(sig) => {
                    return Err(Error::Unsupported(format!(
                        "thread {} received signal {sig} while running injected system calls",
                        self.tid
                    )))
                }
            }
        }
        let end = ptrace::get_regs(self.tid)?;
        let done = end.r12.wrapping_sub(table) / BATCH_ENTRY;
        let rax = end.rax as i64;
        if (-4095..0).contains(&rax) && (done as usize) < calls.len() {
            let i = done as usize;
            return Err(on_error(
                i,
                Error::Injected {
                    name: calls[i].name,
                    tid: self.tid,
                    source: std::io::Error::from_raw_os_error(-rax as i32),
                },
            ));
        }
        if end.r13 != 0 || done as usize != calls.len() {
            return Err(Error::Parse(format!(
                "injected system calls of thread {} stopped after {done} of {}",
                self.tid,
                calls.len()
            )));
        }
        Ok(())
    }
}

/// Why this unprivileged process, already the tracer of `pid`, may not read its memory: the
/// kernel refuses that only for a process that is not dumpable (PR_SET_DUMPABLE 0).
fn not_dumpable(_pid: i32) -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() != 0 }
}

/// Address of a `syscall` instruction (0f 05) in the vdso of process `pid`.
pub fn find_vdso_syscall(pid: i32) -> Result<u64> {
    let maps = procfs::read_maps_light(pid)?;
    let vdso = maps
        .iter()
        .find(|m| m.name == "[vdso]")
        .ok_or_else(|| Error::Unsupported(format!("process {pid} has no vdso")))?;
    let mut buf = vec![0u8; (vdso.end - vdso.start) as usize];
    procfs::read_mem(pid, None, vdso.start, &mut buf).map_err(|source| {
        if source.kind() == std::io::ErrorKind::PermissionDenied && not_dumpable(pid) {
            let ns = procfs::inner_pid(&format!("/proc/{pid}/status")).unwrap_or(pid);
            return Error::Unsupported(format!(
                "process {ns} is not dumpable (prctl PR_SET_DUMPABLE 0): an unprivileged \
                 checkpoint cannot read its memory (checkpoint as root)"
            ));
        }
        Error::Sys {
            what: format!("reading the vdso of {pid}"),
            source,
        }
    })?;
    buf.windows(2)
        .position(|w| w == [0x0f, 0x05])
        .map(|i| vdso.start + i as u64)
        .ok_or_else(|| Error::Unsupported("no syscall instruction in the vdso".into()))
}

/// Run `f` with an injector into the stopped, traced thread `tid`, its registers and signal
/// mask put back afterwards; `f` gets `size` bytes of scratch memory mapped in the thread's
/// process (unmapped again afterwards).
pub fn with_scratch<T>(
    tid: i32,
    size: u64,
    f: impl FnOnce(&Injector, u64) -> Result<T>,
) -> Result<T> {
    let regs = ptrace::get_regs(tid)?;
    let mask = ptrace::get_sigmask(tid)?;
    ptrace::set_sigmask(tid, ptrace::BLOCK_ALL)?;
    let r = (|| {
        let inj = Injector::new(tid, find_vdso_syscall(tid)?)?;
        let scratch = inj.call(
            "mmap",
            libc::SYS_mmap,
            &[
                0,
                size,
                (libc::PROT_READ | libc::PROT_WRITE) as u64,
                (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
                u64::MAX,
                0,
            ],
        )?;
        let r = f(&inj, scratch);
        let u = inj.call("munmap", libc::SYS_munmap, &[scratch, size]);
        let out = r?;
        u?;
        Ok(out)
    })();
    let back = ptrace::set_regs(tid, &regs).and_then(|_| ptrace::set_sigmask(tid, mask));
    let out = r?;
    back?;
    Ok(out)
}
