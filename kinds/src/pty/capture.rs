//! The refusal of pseudo-terminals the job opened itself.

use crate::{FrozenJob, OpenFd};
use cairn_image::{FdKind, MemorySink, ProcessTreeImage};
use cairn_sys::Result;

/// [`crate::DescribeFn`] of pseudo-terminals: every master (`/dev/ptmx`) and every terminal
/// opened inside the job is refused.
pub fn describe(fd: &OpenFd<'_>, _sink: &mut dyn MemorySink) -> Option<Result<FdKind>> {
    let link = fd.link;
    if link == "/dev/ptmx" || link == "/dev/pts/ptmx" {
        let index = fd
            .field("tty-index:")
            .map_or(String::new(), |n| format!(", master of /dev/pts/{n}"));
        return Some(Err(fd.unsupported(format!(
            "{link} (a pseudo-terminal the job opened itself{index}: pseudo-terminals)"
        ))));
    }
    if link.starts_with("/dev/pts/") || link == "/dev/tty" || link.starts_with("/dev/tty") {
        return Some(Err(fd.unsupported(format!(
            "{link} (a terminal the job opened itself or did not inherit, such as the slave of \
             a pseudo-terminal: pseudo-terminals and terminals other than the inherited stdio)"
        ))));
    }
    None
}

/// [`crate::CaptureFn`]: nothing job-wide (every pseudo-terminal is refused by [`describe`]).
pub fn capture_job(
    _job: &FrozenJob<'_>,
    _image: &mut ProcessTreeImage,
    _sink: &mut dyn MemorySink,
) -> Result<()> {
    Ok(())
}
