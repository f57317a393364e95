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
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use cairn_sys::error::last_os;
use cairn_sys::inject::Injector;
use cairn_sys::Result;

/// `UFFD_API`.
const UFFD_API: u64 = 0xAA;
/// `_IOWR(0xAA, 0x3F, struct uffdio_api)`.
const UFFDIO_API: u64 = 0xC018_AA3F;
/// `_IOWR(0xAA, 0x00, struct uffdio_register)`.
const UFFDIO_REGISTER: u64 = 0xC020_AA00;
/// `_IOR(0xAA, 0x01, struct uffdio_range)`.
const UFFDIO_UNREGISTER: u64 = 0x8010_AA01;
/// `_IOWR(0xAA, 0x03, struct uffdio_copy)`.
const UFFDIO_COPY: u64 = 0xC028_AA03;
/// `UFFDIO_REGISTER_MODE_MISSING`.
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
/// `UFFD_USER_MODE_ONLY`: allowed to ordinary users whatever `vm.unprivileged_userfaultfd`.
const UFFD_USER_MODE_ONLY: u64 = 1;
const PAGE: usize = 4096;
/// Size of the page-aligned staging buffer of each thread.
const STAGING: usize = 256 << 10;

#[repr(C)]
pub(crate) struct UffdioApi {
    pub(crate) api: u64,
    pub(crate) features: u64,
    pub(crate) ioctls: u64,
}

#[repr(C)]
pub(crate) struct UffdioRegister {
    pub(crate) start: u64,
    pub(crate) len: u64,
    pub(crate) mode: u64,
    pub(crate) ioctls: u64,
}

#[repr(C)]
pub(crate) struct UffdioRange {
    pub(crate) start: u64,
    pub(crate) len: u64,
}

#[repr(C)]
pub(crate) struct UffdioCopy {
    pub(crate) dst: u64,
    pub(crate) src: u64,
    pub(crate) len: u64,
    pub(crate) mode: u64,
    pub(crate) copy: i64,
}

#[repr(C, align(4096))]
struct Page([u8; PAGE]);

thread_local! {
    /// Page-aligned copies of chunk data that is not page-aligned itself (`UFFDIO_COPY`
    /// needs an aligned source).
    static STAGE: std::cell::RefCell<Vec<Page>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub(crate) fn ioctl<T>(fd: i32, req: u64, arg: &mut T) -> io::Result<()> {
    // SAFETY: `arg` is the #[repr(C)] struct the request `req` expects, valid for reads and
    // writes for the duration of the call.
    let r = unsafe { libc::ioctl(fd, req as _, arg as *mut T) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
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
        Ok(open_uffd(inj, pid, flags, 0)?.map(|fd| Filler { fd }))
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
        if r.ioctls & (1 << 0x03) == 0 {
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
        ioctl(self.fd.as_raw_fd(), UFFDIO_UNREGISTER, &mut r)
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
                Ok(()) if c.copy > 0 => done += c.copy as usize,
                Ok(()) => {
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

/// Creates a userfaultfd with `flags` inside the stub `pid` through `inj`, takes it out,
/// closes it in the stub and enables `features`. `None` when the kernel or the sandbox does
/// not allow it; an error only when the stub itself fails.
pub(crate) fn open_uffd(
    inj: &Injector,
    pid: i32,
    flags: u64,
    features: u64,
) -> Result<Option<OwnedFd>> {
    let Ok(fd) = inj.call("userfaultfd", libc::SYS_userfaultfd, &[flags]) else {
        return Ok(None);
    };
    let taken = take_fd(pid, fd as i32);
    inj.call("close(userfaultfd)", libc::SYS_close, &[fd])?;
    let Ok(fd) = taken else {
        return Ok(None);
    };
    let mut api = UffdioApi {
        api: UFFD_API,
        features,
        ioctls: 0,
    };
    // `ioctls` lists the requests by number; UFFDIO_REGISTER is 0x00.
    if ioctl(fd.as_raw_fd(), UFFDIO_API, &mut api).is_err() || api.ioctls & 1 == 0 {
        return Ok(None);
    }
    Ok(Some(fd))
}

/// Takes descriptor `fd` of process `pid` into this process.
pub(crate) fn take_fd(pid: i32, fd: i32) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(last_os(format!("pidfd_open of {pid}")));
    }
    // SAFETY: `pidfd` is a fresh descriptor owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    // SAFETY: pidfd_getfd takes a pidfd, a descriptor number and flags; returns a new fd.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if r < 0 {
        return Err(last_os(format!("pidfd_getfd of {pid}")));
    }
    // SAFETY: `r` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}
