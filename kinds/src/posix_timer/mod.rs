//! POSIX timers (`timer_create(2)`), listed by the kernel in `/proc/PID/timers`.

pub mod capture;

use crate::Recreated;
use cairn_image::{MemorySource, ProcessTreeImage};
use cairn_sys::Result;

/// [`crate::RecreateFn`] of POSIX timers: nothing to do (they are refused).
pub fn recreate(_: &ProcessTreeImage, _: &dyn MemorySource) -> Result<Box<dyn Recreated>> {
    Ok(Box::new(Nothing))
}

/// No object to recreate.
struct Nothing;

impl Recreated for Nothing {}
