//! File-system event groups (`fanotify(7)`).
//!
//! At a checkpoint the group's `fanotify_init` flags and event-file flags and every mark are
//! read from fdinfo (`fanotify flags: event-flags:`, then one line per mark, newest first:
//! `ino: sdev: ... f_handle:` for a file or directory, `mnt_id:` for a mount, `sdev:` alone
//! for a file system, each with `mflags: mask: ignored_mask:`). A marked inode is found by
//! path as an inotify watch's is ([`crate::inotify`]), a mount by its mount point, a file
//! system by a mount of it. The group is then built once more by cairn itself from what was
//! read (paths through `/proc/PID/root`) and its fdinfo compared with the program's: a
//! group this cairn may not create (CAP_SYS_ADMIN for most flags and for mount and file
//! system marks) or a mark that does not come out exactly the same is refused, naming it.
//! Refused too: events not read yet (reading them would take them from the program), and
//! permission classes (FAN_CLASS_CONTENT, FAN_CLASS_PRE_CONTENT: an event read and not
//! answered yet keeps a process of the job waiting for the answer).
//!
//! At restore the restoring process creates the group with the same flags and adds the
//! marks oldest first, and compares the marks fdinfo then shows with the image. The image
//! type is [`cairn_image::FanotifyImage`].

pub mod capture;
pub mod restore;
