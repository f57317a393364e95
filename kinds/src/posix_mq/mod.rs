//! POSIX message queues (`mq_open(3)`): refused at the checkpoint. Their messages can only be
//! read by taking them from the queue, and a queue lives in the job's IPC namespace, where
//! only a process of the job can create it again; until that is done, a descriptor of one
//! makes the checkpoint fail, naming the process, the descriptor and the queue. (Without this,
//! the queue would look like a regular file at `/NAME` and be reopened as one.)

pub mod capture;

use crate::Recreated;
use cairn_image::{MemorySource, ProcessTreeImage};
use cairn_sys::Result;

/// [`crate::RecreateFn`] of POSIX message queues: nothing to do (they are refused).
pub fn recreate(_: &ProcessTreeImage, _: &dyn MemorySource) -> Result<Box<dyn Recreated>> {
    Ok(Box::new(Nothing))
}

/// No object to recreate.
struct Nothing;

impl Recreated for Nothing {}
