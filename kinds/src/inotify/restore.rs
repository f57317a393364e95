//! Inotify instances recreated by the restoring process with their watches under the same
//! watch descriptors (see the module documentation of [`crate::inotify`]).

use crate::shared::{fresh, Made};
use crate::Recreated;
use cairn_image::{FdImage, FdKind, InotifyImage, MemorySource, ProcessTreeImage};
use cairn_sys::error::last_os;
use cairn_sys::{Error, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

/// [`crate::RecreateFn`] of inotify instances.
pub fn recreate(image: &ProcessTreeImage, _: &dyn MemorySource) -> Result<Box<dyn Recreated>> {
    Ok(Box::new(Inotifies(Made::create(
        image,
        "inotify instance",
        select,
        create,
    )?)))
}

fn select(k: &FdKind) -> Option<(u64, &InotifyImage)> {
    match k {
        FdKind::Inotify(i) => Some((i.id, i)),
        _ => None,
    }
}

fn add_watch(fd: &OwnedFd, path: &str, mask: u32) -> Result<i32> {
    let c = CString::new(path)
        .map_err(|_| Error::Incompatible(format!("watched path {path:?} holds a NUL")))?;
    // SAFETY: inotify_add_watch takes our descriptor, a NUL-terminated path and a mask.
    let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) };
    if wd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(Error::Incompatible(format!(
            "watching {path} again: {}",
            if e.raw_os_error() == Some(libc::ENOENT) {
                "it no longer exists".to_string()
            } else {
                e.to_string()
            }
        )));
    }
    Ok(wd)
}

/// Create one inotify instance of the image with its watches.
pub fn create(img: &InotifyImage) -> Result<OwnedFd> {
    // SAFETY: inotify_init1 takes flags and returns a new descriptor.
    let fd = fresh(
        unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) },
        "inotify_init1",
    )?;
    // A path to add and remove watches on, that the instance does not watch itself.
    let spare = ["/", "/proc", "/dev", "/tmp"]
        .into_iter()
        .find(|p| !img.watches.iter().any(|w| w.path == *p))
        .unwrap_or("/sys");
    let mut next = 1;
    for w in &img.watches {
        // Use up the descriptors of watches removed before the checkpoint.
        while next < w.wd {
            let used = add_watch(&fd, spare, libc::IN_ACCESS)?;
            // SAFETY: inotify_rm_watch on our own descriptor.
            unsafe { libc::inotify_rm_watch(fd.as_raw_fd(), used) };
            next = used + 1;
        }
        let wd = add_watch(&fd, &w.path, w.mask)?;
        if wd != w.wd {
            return Err(Error::Incompatible(format!(
                "watch of {} got descriptor {wd} instead of {}",
                w.path, w.wd
            )));
        }
        next = wd + 1;
    }
    // Read away the IN_IGNORED events of the removed watches.
    let mut buf = [0u8; 4096];
    // SAFETY: reads into our own buffer from our own non-blocking descriptor.
    while unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    if img.flags & libc::O_NONBLOCK == 0 {
        // SAFETY: fcntl on our own descriptor.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, 0) } < 0 {
            return Err(last_os("clearing O_NONBLOCK of an inotify instance"));
        }
    }
    Ok(fd)
}

/// The job's inotify instances.
struct Inotifies(Made);

impl Recreated for Inotifies {
    fn open(&self, pid: i32, fd: &FdImage, _: &dyn MemorySource) -> Option<Result<OwnedFd>> {
        let (id, _) = select(&fd.kind)?;
        Some(self.0.hand_out(pid, fd, id))
    }
    fn descriptors_taken(&mut self) {
        self.0.close_copies();
    }
}
