//! Fanotify groups recreated by the restoring process with their marks (see the module
//! documentation of [`crate::fanotify`]).

use crate::shared::{fresh, Made};
use crate::Recreated;
use cairn_image::{
    FanotifyImage, FanotifyMark, FanotifyTarget, FdImage, FdKind, MemorySource, ProcessTreeImage,
};
use cairn_sys::error::last_os;
use cairn_sys::{Error, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

/// [`crate::RecreateFn`] of fanotify groups.
pub fn recreate(image: &ProcessTreeImage, _: &dyn MemorySource) -> Result<Box<dyn Recreated>> {
    let mut groups = Vec::new();
    let made = Made::create(image, "fanotify group", select, |img: &FanotifyImage| {
        let fd = create(img)?;
        let copy = fd
            .try_clone()
            .map_err(|e| Error::Incompatible(format!("dup of a fanotify group: {e}")))?;
        groups.push((copy, img.clone()));
        Ok(fd)
    })?;
    Ok(Box::new(Groups {
        made,
        groups: std::cell::RefCell::new(groups),
    }))
}

fn select(k: &FdKind) -> Option<(u64, &FanotifyImage)> {
    match k {
        FdKind::Fanotify(f) => Some((f.id, f)),
        _ => None,
    }
}

const FAN_MARK_ADD: u32 = 0x1;
const FAN_MARK_DONT_FOLLOW: u32 = 0x4;
const FAN_MARK_MOUNT: u32 = 0x10;
const FAN_MARK_IGNORED_MASK: u32 = 0x20;
const FAN_MARK_IGNORED_SURV_MODIFY: u32 = 0x40;
const FAN_MARK_FILESYSTEM: u32 = 0x100;
const FAN_MARK_EVICTABLE: u32 = 0x200;
const FAN_MARK_IGNORE: u32 = 0x400;

fn add(fd: &OwnedFd, flags: u32, mask: u64, path: &str) -> Result<()> {
    let c = CString::new(path)
        .map_err(|_| Error::Incompatible(format!("marked path {path:?} holds a NUL")))?;
    // SAFETY: fanotify_mark takes our group, flags, a mask and a NUL-terminated path.
    let r = unsafe { libc::fanotify_mark(fd.as_raw_fd(), flags, mask, libc::AT_FDCWD, c.as_ptr()) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        return Err(Error::Incompatible(format!(
            "marking {path} again (flags {flags:#x}, mask {mask:#x}): {}",
            match e.raw_os_error() {
                Some(libc::ENOENT) => "it no longer exists".to_string(),
                Some(libc::EPERM) => "not permitted (needs CAP_SYS_ADMIN)".to_string(),
                _ => e.to_string(),
            }
        )));
    }
    Ok(())
}

fn add_mark(fd: &OwnedFd, m: &FanotifyMark, root: &str) -> Result<()> {
    let (kind, path) = match &m.target {
        FanotifyTarget::Inode { path } => (0, path),
        FanotifyTarget::Mount { path } => (FAN_MARK_MOUNT, path),
        FanotifyTarget::Filesystem { path } => (FAN_MARK_FILESYSTEM, path),
    };
    let full = format!("{root}{path}");
    let mut kind = kind;
    if std::fs::symlink_metadata(&full).is_ok_and(|m| m.file_type().is_symlink()) {
        kind |= FAN_MARK_DONT_FOLLOW;
    }
    let evictable = m.mflags & FAN_MARK_EVICTABLE;
    if m.mask != 0 {
        add(fd, FAN_MARK_ADD | kind | evictable, m.mask, &full)?;
    }
    if m.ignored_mask != 0 {
        let ignore = if m.mflags & FAN_MARK_IGNORE != 0 {
            FAN_MARK_IGNORE
        } else {
            FAN_MARK_IGNORED_MASK
        };
        let surv = m.mflags & FAN_MARK_IGNORED_SURV_MODIFY;
        let evictable = if m.mask == 0 { evictable } else { 0 };
        add(
            fd,
            FAN_MARK_ADD | kind | ignore | surv | evictable,
            m.ignored_mask,
            &full,
        )?;
    }
    Ok(())
}

/// A new group with the flags of `img`, without marks.
fn init(img: &FanotifyImage) -> Result<OwnedFd> {
    // SAFETY: fanotify_init takes flags and returns a new descriptor.
    let r = unsafe { libc::fanotify_init(img.init_flags, img.event_f_flags) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        return Err(Error::Incompatible(format!(
            "fanotify_init with flags {:#x} and event flags {:#x}: {}",
            img.init_flags,
            img.event_f_flags,
            if e.raw_os_error() == Some(libc::EPERM) {
                "not permitted (needs CAP_SYS_ADMIN)".to_string()
            } else {
                e.to_string()
            }
        )));
    }
    let fd = fresh(r, "fanotify_init")?;
    // SAFETY: fcntl on our own descriptor.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(last_os("FD_CLOEXEC on a fanotify group"));
    }
    Ok(fd)
}

/// The group of `img` with its marks, paths taken under `root` (`/proc/PID/root` of a
/// process of the job: its mounts).
pub(crate) fn build(img: &FanotifyImage, root: &str) -> Result<OwnedFd> {
    let fd = init(img)?;
    for m in &img.marks {
        add_mark(&fd, m, root)?;
    }
    Ok(fd)
}

/// Create one fanotify group of the image, without its marks yet (they are added once the
/// job's mount namespace exists, [`Recreated::in_job`]).
pub fn create(img: &FanotifyImage) -> Result<OwnedFd> {
    let fd = init(img)?;
    let nonblock = img.flags & libc::O_NONBLOCK;
    // SAFETY: fcntl on our own descriptor.
    let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if fl < 0 || fl & libc::O_NONBLOCK != nonblock {
        let set = (fl.max(0) & !libc::O_NONBLOCK) | nonblock;
        // SAFETY: fcntl on our own descriptor.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, set) } < 0 {
            return Err(last_os("setting O_NONBLOCK of a fanotify group"));
        }
    }
    Ok(fd)
}

/// Checks the marks of group `fd` as the kernel now shows them (newest first) against `img`.
fn verify(fd: &OwnedFd, img: &FanotifyImage) -> Result<()> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
        .map_err(|e| Error::Incompatible(format!("reading a fanotify group's fdinfo: {e}")))?;
    let mut got: Vec<(u64, u64, u64)> = info
        .lines()
        .filter(|l| l.starts_with("fanotify ") && !l.starts_with("fanotify flags:"))
        .map(|l| {
            let hex = |k: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(k))
                    .and_then(|v| u64::from_str_radix(v, 16).ok())
                    .unwrap_or(u64::MAX)
            };
            (hex("mflags:"), hex("mask:"), hex("ignored_mask:"))
        })
        .collect();
    got.reverse();
    let want: Vec<(u64, u64, u64)> = img
        .marks
        .iter()
        .map(|m| (u64::from(m.mflags), m.mask, m.ignored_mask))
        .collect();
    if got != want {
        return Err(Error::Incompatible(format!(
            "its marks came out as {got:x?} (mflags, mask, ignored mask) instead of {want:x?}"
        )));
    }
    Ok(())
}

/// The job's fanotify groups.
struct Groups {
    made: Made,
    /// Each group (a descriptor of it) with its image, to add its marks to (then closed).
    groups: std::cell::RefCell<Vec<(OwnedFd, FanotifyImage)>>,
}

impl Recreated for Groups {
    fn open(&self, pid: i32, fd: &FdImage, _: &dyn MemorySource) -> Option<Result<OwnedFd>> {
        let (id, _) = select(&fd.kind)?;
        Some(self.made.hand_out(pid, fd, id))
    }
    fn descriptors_taken(&mut self) {
        self.made.close_copies();
    }
    /// The marks, through the job's root (`/proc/ROOT/root`): a mount mark marks the job's
    /// mount.
    fn in_job(&self, root: i32, _: &dyn MemorySource) -> Result<()> {
        let prefix = format!("/proc/{root}/root");
        for (fd, img) in self.groups.take() {
            let done = img
                .marks
                .iter()
                .try_for_each(|m| add_mark(&fd, m, &prefix))
                .and_then(|_| verify(&fd, &img));
            done.map_err(|e| {
                Error::Incompatible(format!("recreating a fanotify group's marks: {e}"))
            })?;
        }
        Ok(())
    }
}
