//! Files without a name that the job holds: regular files deleted while open (`O_TMPFILE`
//! and `tmpfile()` files among them), memfds, FIFOs deleted while open, and working
//! directories removed while processes are in them. Each is captured once, whatever holds
//! it (descriptors, shared mappings, a working directory), and recreated once at restore;
//! every descriptor is then its own open of that one file, and shared mappings map it.
//! The image type is [`cairn_image::UnlinkedFile`]. Rules: docs/capture-restore.md
//! ("Files without a name").

pub mod capture;
pub mod restore;

/// `__O_TMPFILE` without `O_DIRECTORY`: an open made with `O_TMPFILE`.
pub const O_TMPFILE_BIT: i32 = libc::O_TMPFILE & !libc::O_DIRECTORY;
