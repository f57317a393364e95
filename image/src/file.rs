//! Regular files the job had open for writing, rewound at restore.

use serde::{Deserialize, Serialize};

/// A regular file the job had open for writing at the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenFile {
    /// Absolute path at the checkpoint.
    pub path: String,
    /// Size in bytes at the checkpoint.
    pub size: u64,
    /// `(pid, fd)` under which the contents went to [`crate::MemorySink::put_file`] (and come back
    /// from `MemorySource::read_file`); `None` when only the size was recorded (file larger
    /// than the limit, or capture of contents turned off): restore then truncates.
    pub content: Option<(i32, i32)>,
}
