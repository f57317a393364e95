//! A signalfd as its fdinfo shows it (`sigmask:` in hex).

use crate::{FrozenJob, OpenFd};
use cairn_image::{FdKind, MemorySink, ProcessTreeImage, SignalFdImage};
use cairn_sys::Result;

/// [`crate::DescribeFn`] of signalfds.
pub fn describe(fd: &OpenFd<'_>, _: &mut dyn MemorySink) -> Option<Result<FdKind>> {
    (fd.link == "anon_inode:[signalfd]" && fd.inside).then(|| {
        let mask = fd
            .field("sigmask:")
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .ok_or_else(|| {
                fd.unsupported("signalfd whose signal mask this kernel does not show")
            })?;
        Ok(FdKind::SignalFd(SignalFdImage {
            id: 0,
            mask,
            flags: fd.flags & (libc::O_ACCMODE | libc::O_NONBLOCK),
        }))
    })
}

fn id_mut(k: &mut FdKind) -> Option<&mut u64> {
    match k {
        FdKind::SignalFd(s) => Some(&mut s.id),
        _ => None,
    }
}

/// [`crate::CaptureFn`] of signalfds: descriptors sharing one signalfd get one id.
pub fn capture_job(
    job: &FrozenJob<'_>,
    image: &mut ProcessTreeImage,
    _: &mut dyn MemorySink,
) -> Result<()> {
    crate::shared::number(job, image, id_mut);
    Ok(())
}
