//! What an agent remembers between checkpoints to make the next one incremental: the memory
//! stream of every mapping in the last committed checkpoint, so that regions dirty-page
//! tracking proves partly clean reuse its chunks (docs/incremental.md).

use std::collections::HashMap;

use cairn_store::StreamRef;

/// Identity of a captured mapping: (pid in the job, start, end, PROT_* bits).
pub type RegionKey = (i32, u64, u64, u32);

/// Memory streams of the mappings of one checkpoint.
pub type Baseline = HashMap<RegionKey, StreamRef>;

/// Pages read and pages skipped while writing a checkpoint's memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageCounts {
    /// Pages read from the program and hashed (while it ran, by the pre-copy, and while it
    /// was frozen).
    pub scanned: u64,
    /// Pages of captured mappings not read while the program was frozen: proven unchanged
    /// since the previous checkpoint or since this checkpoint's pre-copy (their chunks
    /// reused), or not resident.
    pub skipped: u64,
}

/// Whether dirty-page tracking is wanted (`CAIRN_DIRTY_TRACKING` is not `0`).
pub fn tracking_enabled() -> bool {
    cairn_capture::dirty::enabled_by_env()
}
