//! Finding POSIX message queue descriptors: files of the mqueue filesystem.

use crate::OpenFd;
use cairn_image::{FdKind, MemorySink};
use cairn_sys::Result;

/// `f_type` of the mqueue filesystem.
const MQUEUE_MAGIC: i64 = 0x1980_0202;

/// Whether the file `path` (a `/proc/PID/fd/N` link) is on the mqueue filesystem.
fn on_mqueue(path: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(path) else {
        return false;
    };
    // SAFETY: statfs fills the zeroed struct it is given; the path is NUL-terminated.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == MQUEUE_MAGIC
    }
}

/// [`crate::DescribeFn`] of POSIX message queues: refuses every descriptor of one.
pub fn describe(fd: &OpenFd<'_>, _: &mut dyn MemorySink) -> Option<Result<FdKind>> {
    let regular = fd.meta.as_ref().is_ok_and(|m| m.is_file());
    if !regular || !on_mqueue(&format!("/proc/{}/fd/{}", fd.pid, fd.fd)) {
        return None;
    }
    let name = fd.link.strip_suffix(" (deleted)").unwrap_or(fd.link);
    Some(Err(fd.unsupported(format_args!(
        "POSIX message queue {name} (mq_open)"
    ))))
}
