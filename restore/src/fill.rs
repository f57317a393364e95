//! Filling the private anonymous memory of a restored process with `UFFDIO_COPY`.
//!
//! Writing into fresh anonymous memory with `process_vm_writev` makes the kernel fault every
//! page in through `get_user_pages`: allocate, clear it to zeros, then copy over the zeros.
//! `UFFDIO_COPY` on a userfaultfd registered for missing pages allocates each page and copies
//! the data straight into it (no clearing, no page-table walk per page); measured here it
//! costs a little over half the CPU time per GiB (docs/performance.md, "Restart").
//!
//! The userfaultfd is created inside the stub by syscall injection (so it belongs to the
//! stub's address space), taken into the restoring process with `pidfd_getfd` and closed in
//! the stub; the program never sees it. Each mapping is registered only while it is filled.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use cairn_image::{Backing, Vma};
use cairn_sys::inject::Injector;
use cairn_sys::uffd::{
    self, ioctl, ioctl_bit, UffdioCopy, UffdioRange, UffdioRegister, UFFDIO_COPY, UFFDIO_REGISTER,
    UFFDIO_REGISTER_MODE_MISSING, UFFDIO_UNREGISTER, UFFD_USER_MODE_ONLY,
};
use cairn_sys::Result;

const PAGE: usize = 4096;
/// Size of the page-aligned staging buffer of each thread.
const STAGING: usize = 256 << 10;

#[repr(C, align(4096))]
struct Page([u8; PAGE]);

thread_local! {
    /// Page-aligned copies of chunk data that is not page-aligned itself (`UFFDIO_COPY`
    /// needs an aligned source).
    static STAGE: std::cell::RefCell<Vec<Page>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether `v` is filled with `UFFDIO_COPY`: private anonymous memory with stored pages.
pub(crate) fn fillable(v: &Vma) -> bool {
    v.backing == Backing::Anonymous && !v.shared && v.shm.is_none() && !v.stored.is_empty()
}

/// A userfaultfd of a restore stub's address space, held by the restoring process.
pub struct Filler {
    fd: OwnedFd,
}

impl Filler {
    /// Creates a userfaultfd inside the stub `pid` through `inj` and takes it out. `None`
    /// when the kernel or the sandbox does not allow it (the caller then writes memory with
    /// `process_vm_writev`); an error only when the stub itself fails.
    pub fn create(inj: &Injector, pid: i32) -> Result<Option<Filler>> {
        let flags = (libc::O_CLOEXEC | libc::O_NONBLOCK) as u64 | UFFD_USER_MODE_ONLY;
        Ok(uffd::open_in(inj, pid, flags, 0)?.map(|fd| Filler { fd }))
    }

    /// Registers `[start, start + len)` (one whole fresh private anonymous mapping) for
    /// filling.
    pub fn register(&self, start: u64, len: u64) -> io::Result<()> {
        let mut r = UffdioRegister {
            start,
            len,
            mode: UFFDIO_REGISTER_MODE_MISSING,
            ioctls: 0,
        };
        ioctl(self.fd.as_raw_fd(), UFFDIO_REGISTER, &mut r)?;
        if r.ioctls & ioctl_bit(UFFDIO_COPY) == 0 {
            let _ = self.unregister(start, len);
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "UFFDIO_COPY not available on this mapping",
            ));
        }
        Ok(())
    }

    /// Ends the registration of [`Filler::register`].
    pub fn unregister(&self, start: u64, len: u64) -> io::Result<()> {
        let mut r = UffdioRange { start, len };
        ioctl(self.fd.as_raw_fd(), UFFDIO_UNREGISTER, &mut r).map(drop)
    }

    /// Installs `data` (a whole number of pages) at `dst` (page-aligned, inside a registered
    /// range, pages never written before). Callable from several threads at once.
    pub fn copy(&self, dst: u64, data: &[u8]) -> io::Result<()> {
        if !(dst as usize).is_multiple_of(PAGE) || !data.len().is_multiple_of(PAGE) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unaligned fill of {} bytes at {dst:x}", data.len()),
            ));
        }
        if (data.as_ptr() as usize).is_multiple_of(PAGE) {
            return self.copy_aligned(dst, data);
        }
        STAGE.with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < STAGING / PAGE {
                s.resize_with(STAGING / PAGE, || Page([0; PAGE]));
            }
            let mut off = 0;
            while off < data.len() {
                let n = (data.len() - off).min(STAGING);
                // SAFETY: `s` holds STAGING contiguous, initialised bytes (a Vec of
                // #[repr(C)] pages without padding); n <= STAGING.
                let buf = unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast(), n) };
                buf.copy_from_slice(&data[off..off + n]);
                self.copy_aligned(dst + off as u64, buf)?;
                off += n;
            }
            Ok(())
        })
    }

    fn copy_aligned(&self, dst: u64, src: &[u8]) -> io::Result<()> {
        let mut done = 0usize;
        while done < src.len() {
            let mut c = UffdioCopy {
                dst: dst + done as u64,
                src: src.as_ptr() as u64 + done as u64,
                len: (src.len() - done) as u64,
                mode: 0,
                copy: 0,
            };
            match ioctl(self.fd.as_raw_fd(), UFFDIO_COPY, &mut c) {
                Ok(_) if c.copy > 0 => done += c.copy as usize,
                Ok(_) => {
                    return Err(io::Error::other(format!(
                        "UFFDIO_COPY at {:x} reported {} bytes copied",
                        c.dst, c.copy
                    )))
                }
                // A partial copy (the address space was changing): continue after it.
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && c.copy >= 0 => {
                    done += c.copy as usize
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Calls `f` with `data` at a page-aligned address: `data` itself when it is, else a copy in
/// this thread's staging pages (grown as needed).
pub(crate) fn with_aligned<R>(data: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    if (data.as_ptr() as usize).is_multiple_of(PAGE) {
        return f(data);
    }
    STAGE.with(|s| {
        let mut s = s.borrow_mut();
        let pages = data.len().div_ceil(PAGE);
        if s.len() < pages {
            s.resize_with(pages, || Page([0; PAGE]));
        }
        // SAFETY: `s` holds at least data.len() contiguous, initialised bytes (a Vec of
        // #[repr(C)] pages without padding).
        let buf =
            unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<u8>(), data.len()) };
        buf.copy_from_slice(data);
        f(buf)
    })
}
