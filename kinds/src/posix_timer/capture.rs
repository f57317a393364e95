//! POSIX timers of the frozen job, from `/proc/PID/timers`: refused.

use crate::FrozenJob;
use cairn_image::{MemorySink, ProcessTreeImage};
use cairn_sys::error::{io_ctx, Error, Result};

/// [`crate::CaptureFn`] of POSIX timers: a process with a timer is refused, naming the timer.
pub fn capture_job(
    job: &FrozenJob<'_>,
    image: &mut ProcessTreeImage,
    _: &mut dyn MemorySink,
) -> Result<()> {
    for (&outer, p) in job.outer.iter().zip(&image.processes) {
        let path = format!("/proc/{outer}/timers");
        let text = std::fs::read_to_string(&path).map_err(io_ctx(format!("reading {path}")))?;
        if let Some(id) = text.lines().find_map(|l| l.strip_prefix("ID:")) {
            return Err(Error::Unsupported(format!(
                "process {}: POSIX timer {} (timer_create) cannot be checkpointed yet",
                p.pid,
                id.trim()
            )));
        }
    }
    Ok(())
}
