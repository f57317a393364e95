//! Event counters (`eventfd(2)`) of the job.

use serde::{Deserialize, Serialize};

/// An eventfd: its counter and how it reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFdImage {
    /// Identifies the open file description within the image: descriptors with the same id
    /// share one eventfd.
    pub id: u64,
    /// The counter (`eventfd-count:` of fdinfo).
    pub count: u64,
    /// EFD_SEMAPHORE (`eventfd-semaphore:`): a read takes 1 instead of the whole counter.
    pub semaphore: bool,
    /// Status flags of the open file: O_RDWR and O_NONBLOCK.
    pub flags: i32,
}
