//! An eventfd as its fdinfo shows it (`eventfd-count:` in hex, `eventfd-semaphore:`).

use crate::{FrozenJob, OpenFd};
use cairn_image::{EventFdImage, FdKind, MemorySink, ProcessTreeImage};
use cairn_sys::Result;

/// [`crate::DescribeFn`] of eventfds.
pub fn describe(fd: &OpenFd<'_>, _: &mut dyn MemorySink) -> Option<Result<FdKind>> {
    (fd.link == "anon_inode:[eventfd]" && fd.inside).then(|| read(fd))
}

fn read(fd: &OpenFd<'_>) -> Result<FdKind> {
    let count = fd
        .field("eventfd-count:")
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .ok_or_else(|| fd.unsupported("eventfd whose counter this kernel does not show"))?;
    let semaphore = match fd.field("eventfd-semaphore:") {
        Some("0") => false,
        Some("1") => true,
        _ => {
            return Err(fd.unsupported(
                "eventfd of which this kernel does not show whether it is a semaphore \
                 (no eventfd-semaphore: in fdinfo)",
            ))
        }
    };
    Ok(FdKind::EventFd(EventFdImage {
        id: 0,
        count,
        semaphore,
        flags: fd.flags & (libc::O_ACCMODE | libc::O_NONBLOCK),
    }))
}

/// The id of an eventfd descriptor.
pub(crate) fn id_mut(k: &mut FdKind) -> Option<&mut u64> {
    match k {
        FdKind::EventFd(e) => Some(&mut e.id),
        _ => None,
    }
}

/// [`crate::CaptureFn`] of eventfds: descriptors sharing one eventfd get one id.
pub fn capture_job(
    job: &FrozenJob<'_>,
    image: &mut ProcessTreeImage,
    _: &mut dyn MemorySink,
) -> Result<()> {
    crate::shared::number(job, image, id_mut);
    Ok(())
}
