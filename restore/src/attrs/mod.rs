//! Restoring process and thread attributes exactly, or failing the restart with a message
//! naming the process, the thread and the attribute. Every value set is read back through
//! the kernel and compared with the image: the kernel may silently adjust some (a CPU mask
//! narrowed to the CPUs allowed here), and a difference is never let through.
//!
//! * [`process`] — resource limits, dumpable, child subreaper, THP disable;
//! * [`thread`] — timer slack, personality, CPU affinity, scheduling, pdeathsig, then
//!   [`creds`] (ids, groups, capabilities, securebits, no_new_privs);
//! * [`stopped`] — the group stop of a stopped process and the stop/continue reports its
//!   parent had not collected.

pub mod creds;
pub mod process;
pub mod stopped;
pub mod thread;

use cairn_sys::error::io_ctx;
use cairn_sys::inject::Injector;
use cairn_sys::{procfs, Error, Result};

/// Where attribute syscalls run: a stopped thread of a rebuilt process and scratch memory
/// in it.
pub struct At<'a> {
    /// The thread the syscalls run in.
    pub inj: &'a Injector,
    /// Outer pid of the process (for memory writes).
    pub pid: i32,
    /// Outer tid of the thread (for reads from outside).
    pub tid: i32,
    /// 4 KiB of writable scratch memory in the process.
    pub scratch: u64,
    /// "process N thread T", for messages.
    pub who: String,
}

impl<'a> At<'a> {
    /// Syscalls through `inj` (thread `tid` of process `pid`), scratch memory at `scratch`.
    pub fn new(inj: &'a Injector, pid: i32, tid: i32, scratch: u64, who: String) -> Self {
        Self {
            inj,
            pid,
            tid,
            scratch,
            who,
        }
    }

    /// Writes `data` at offset `off` of the scratch memory and returns its address.
    pub fn put(&self, off: u64, data: &[u8]) -> Result<u64> {
        procfs::write_mem(self.pid, None, self.scratch + off, data)
            .map_err(io_ctx("writing into the restored process"))?;
        Ok(self.scratch + off)
    }

    /// Reads `buf.len()` bytes at `off` of the scratch memory.
    pub fn get(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        procfs::read_mem(self.pid, None, self.scratch + off, buf)
            .map_err(io_ctx("reading from the restored process"))
    }

    /// Runs a syscall; a failure is "WHO: WHAT cannot be set again (NAME: errno)".
    pub fn set(&self, what: &str, name: &'static str, nr: i64, args: &[u64]) -> Result<u64> {
        let r = self.inj.raw(nr, args)?;
        if (-4095..0).contains(&r) {
            let e = std::io::Error::from_raw_os_error(-r as i32);
            return Err(Error::Incompatible(format!(
                "{}: {what} cannot be set again ({name}: {e}){}",
                self.who,
                if matches!(-r as i32, libc::EPERM | libc::EACCES | libc::EINVAL) {
                    "; the restoring user may not set it here"
                } else {
                    ""
                }
            )));
        }
        Ok(r as u64)
    }
}

/// Compares what the image says with what the kernel reports after the restore.
fn differs<T: PartialEq + std::fmt::Debug>(who: &str, what: &str, want: &T, got: &T) -> Result<()> {
    if want == got {
        return Ok(());
    }
    Err(Error::Incompatible(format!(
        "{who}: {what} is {got:?} after the restore, but was {want:?} at the checkpoint"
    )))
}
