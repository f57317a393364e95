//! Signalfds recreated by the restoring process with their signal mask and flags.

use crate::shared::{fresh, Made};
use crate::Recreated;
use cairn_image::{FdImage, FdKind, MemorySource, ProcessTreeImage, SignalFdImage};
use cairn_sys::Result;
use std::os::fd::OwnedFd;

/// [`crate::RecreateFn`] of signalfds.
pub fn recreate(image: &ProcessTreeImage, _: &dyn MemorySource) -> Result<Box<dyn Recreated>> {
    Ok(Box::new(SignalFds(Made::create(
        image, "signalfd", select, create,
    )?)))
}

fn select(k: &FdKind) -> Option<(u64, &SignalFdImage)> {
    match k {
        FdKind::SignalFd(s) => Some((s.id, s)),
        _ => None,
    }
}

/// Create one signalfd of the image.
pub fn create(s: &SignalFdImage) -> Result<OwnedFd> {
    // SAFETY: sigset_t is plain data, at least 8 bytes; the kernel reads its first 64 bits
    // as the mask, bit n - 1 for signal n (set directly: glibc's sigaddset refuses the
    // signals it reserves for itself, which a program may still have asked for).
    let set: libc::sigset_t = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        std::ptr::write_unaligned(std::ptr::addr_of_mut!(set).cast::<u64>(), s.mask);
        set
    };
    let mut flags = libc::SFD_CLOEXEC;
    if s.flags & libc::O_NONBLOCK != 0 {
        flags |= libc::SFD_NONBLOCK;
    }
    // SAFETY: signalfd reads the set we own and returns a new descriptor.
    fresh(unsafe { libc::signalfd(-1, &set, flags) }, "signalfd")
}

/// The job's signalfds.
struct SignalFds(Made);

impl Recreated for SignalFds {
    fn open(&self, pid: i32, fd: &FdImage, _: &dyn MemorySource) -> Option<Result<OwnedFd>> {
        let (id, _) = select(&fd.kind)?;
        Some(self.0.hand_out(pid, fd, id))
    }
    fn descriptors_taken(&mut self) {
        self.0.close_copies();
    }
}
