//! File-system watches (`inotify(7)`) of the job.

use serde::{Deserialize, Serialize};

/// An inotify instance and its watches (its event queue was empty at the checkpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InotifyImage {
    /// Identifies the open file description within the image.
    pub id: u64,
    /// Status flags of the open file: O_RDONLY and O_NONBLOCK.
    pub flags: i32,
    /// The watches, by increasing watch descriptor.
    pub watches: Vec<InotifyWatch>,
}

/// One watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InotifyWatch {
    /// The watch descriptor the program got from `inotify_add_watch`.
    pub wd: i32,
    /// Absolute path of the watched file or directory at the checkpoint.
    pub path: String,
    /// The events watched and the watch's flags IN_ONESHOT and IN_EXCL_UNLINK (`mask:` of
    /// fdinfo), as `inotify_add_watch` takes them.
    pub mask: u32,
}
