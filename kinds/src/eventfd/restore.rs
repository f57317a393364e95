//! Eventfds recreated by the restoring process: `eventfd(2)` with the same flags, then the
//! counter written back.

use crate::shared::{fresh, Made};
use crate::Recreated;
use cairn_image::{EventFdImage, FdImage, FdKind, MemorySource, ProcessTreeImage};
use cairn_sys::error::last_os;
use cairn_sys::Result;
use std::os::fd::{AsRawFd, OwnedFd};

/// [`crate::RecreateFn`] of eventfds.
pub fn recreate(image: &ProcessTreeImage, _: &dyn MemorySource) -> Result<Box<dyn Recreated>> {
    Ok(Box::new(EventFds(Made::create(
        image, "eventfd", select, create,
    )?)))
}

fn select(k: &FdKind) -> Option<(u64, &EventFdImage)> {
    match k {
        FdKind::EventFd(e) => Some((e.id, e)),
        _ => None,
    }
}

/// Create one eventfd of the image.
pub fn create(e: &EventFdImage) -> Result<OwnedFd> {
    let mut flags = libc::EFD_CLOEXEC;
    if e.semaphore {
        flags |= libc::EFD_SEMAPHORE;
    }
    if e.flags & libc::O_NONBLOCK != 0 {
        flags |= libc::EFD_NONBLOCK;
    }
    // SAFETY: eventfd takes integers and returns a new descriptor.
    let fd = fresh(unsafe { libc::eventfd(0, flags) }, "eventfd")?;
    if e.count > 0 {
        let bytes = e.count.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to our own eventfd.
        let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), 8) };
        if n != 8 {
            return Err(last_os(format!(
                "setting an eventfd's counter to {}",
                e.count
            )));
        }
    }
    Ok(fd)
}

/// The job's eventfds.
struct EventFds(Made);

impl Recreated for EventFds {
    fn open(&self, pid: i32, fd: &FdImage, _: &dyn MemorySource) -> Option<Result<OwnedFd>> {
        let (id, _) = select(&fd.kind)?;
        Some(self.0.hand_out(pid, fd, id))
    }
    fn descriptors_taken(&mut self) {
        self.0.close_copies();
    }
}
