//! File-system watches (`inotify(7)`).
//!
//! At a checkpoint, each watch of fdinfo (`inotify wd: ino: sdev: mask: ... f_handle:`) is
//! turned back into a path: the file handle is opened with `open_by_handle_at` on a mount of
//! its device in the job's mount namespace, which needs CAP_DAC_READ_SEARCH — so an
//! unprivileged cairn refuses inotify descriptors. Events are read by taking them from the
//! queue, which would take them from the program: an instance with events not read yet is
//! refused (checkpoint again once the program has read them).
//!
//! At restore, the restoring process creates the instance and adds the watches in the order
//! of their descriptors; the kernel hands out watch descriptors one after the other, so the
//! numbers in between (watches removed before the checkpoint) are used up by adding and
//! removing a watch, and the IN_IGNORED events that this queues are read away. A watched
//! path that no longer exists is an error naming it. IN_ONESHOT and IN_EXCL_UNLINK are part of
//! the mask fdinfo shows and are restored with it. Not restored: a watch descriptor counter
//! that had gone past the highest watch still there. The image type is
//! [`cairn_image::InotifyImage`].

pub mod capture;
pub(crate) mod find;
pub mod restore;
