//! File-system event groups (`fanotify(7)`) of the job.

use serde::{Deserialize, Serialize};

/// A fanotify group and its marks (its event queue was empty at the checkpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanotifyImage {
    /// Identifies the open file description within the image.
    pub id: u64,
    /// Status flags of the open file: O_ACCMODE and O_NONBLOCK.
    pub flags: i32,
    /// The group's `fanotify_init` flags (`fanotify flags:` of fdinfo).
    pub init_flags: u32,
    /// The flags of the descriptors events open (`event-flags:` of fdinfo), `fanotify_init`'s
    /// second argument.
    pub event_f_flags: u32,
    /// The marks in the order they were added (oldest first).
    pub marks: Vec<FanotifyMark>,
}

/// One mark of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanotifyMark {
    /// What is marked.
    pub target: FanotifyTarget,
    /// The mark's flags as fdinfo shows them (`mflags:`: FAN_MARK_IGNORED_SURV_MODIFY,
    /// FAN_MARK_EVICTABLE, FAN_MARK_IGNORE).
    pub mflags: u32,
    /// The events marked, with FAN_ONDIR and FAN_EVENT_ON_CHILD.
    pub mask: u64,
    /// The events ignored.
    pub ignored_mask: u64,
}

/// The object of a mark, by a path that leads to it (as the job saw it at the checkpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FanotifyTarget {
    /// A file or directory (`FAN_MARK_INODE`).
    Inode {
        /// Its path.
        path: String,
    },
    /// A mount (`FAN_MARK_MOUNT`), by its mount point.
    Mount {
        /// The mount point.
        path: String,
    },
    /// A whole file system (`FAN_MARK_FILESYSTEM`), by a mount of it.
    Filesystem {
        /// A mount point of the file system.
        path: String,
    },
}
