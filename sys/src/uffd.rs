//! userfaultfd(2): the one place that knows its ABI (ioctl numbers, structures, features,
//! events) and how cairn opens one in another process's address space.
//!
//! A userfaultfd belongs to the address space of the process that created it; its ioctls may
//! be issued from any process holding the descriptor. cairn creates it inside the target by
//! syscall injection ([`open_in`]) and takes it out with `pidfd_getfd` ([`take_fd`]), so the
//! program never sees it. Three uses: write-protect tracking of a running job ([`WpTracker`],
//! async mode), filling the memory of a restored process (`UFFDIO_COPY` into missing pages),
//! and serving its page faults during a lazy restore (events, copy, zero page, wake).

use crate::error::{last_os, Result};
use crate::inject::Injector;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `UFFD_API`.
pub const UFFD_API: u64 = 0xAA;
/// `UFFD_USER_MODE_ONLY`: flag of the userfaultfd(2) syscall, allowed to ordinary users
/// whatever `vm.unprivileged_userfaultfd` says.
pub const UFFD_USER_MODE_ONLY: u64 = 1;

/// `UFFD_FEATURE_EVENT_FORK`.
pub const UFFD_FEATURE_EVENT_FORK: u64 = 1 << 1;
/// `UFFD_FEATURE_EVENT_REMAP`.
pub const UFFD_FEATURE_EVENT_REMAP: u64 = 1 << 2;
/// `UFFD_FEATURE_EVENT_REMOVE`.
pub const UFFD_FEATURE_EVENT_REMOVE: u64 = 1 << 3;
/// `UFFD_FEATURE_EVENT_UNMAP`.
pub const UFFD_FEATURE_EVENT_UNMAP: u64 = 1 << 6;
/// `UFFD_FEATURE_WP_UNPOPULATED`: write-protecting never-touched pages too.
pub const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
/// `UFFD_FEATURE_WP_ASYNC`: write faults on protected pages are resolved by the kernel.
pub const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;

/// `_IOWR(0xAA, 0x3F, struct uffdio_api)`.
pub const UFFDIO_API: u64 = 0xC018_AA3F;
/// `_IOWR(0xAA, 0x00, struct uffdio_register)`.
pub const UFFDIO_REGISTER: u64 = 0xC020_AA00;
/// `_IOR(0xAA, 0x01, struct uffdio_range)`.
pub const UFFDIO_UNREGISTER: u64 = 0x8010_AA01;
/// `_IOR(0xAA, 0x02, struct uffdio_range)`.
pub const UFFDIO_WAKE: u64 = 0x8010_AA02;
/// `_IOWR(0xAA, 0x03, struct uffdio_copy)`.
pub const UFFDIO_COPY: u64 = 0xC028_AA03;
/// `_IOWR(0xAA, 0x04, struct uffdio_zeropage)`.
pub const UFFDIO_ZEROPAGE: u64 = 0xC020_AA04;
/// `_IOWR(0xAA, 0x06, struct uffdio_writeprotect)`.
pub const UFFDIO_WRITEPROTECT: u64 = 0xC018_AA06;

/// Bit of `UffdioApi::ioctls` / `UffdioRegister::ioctls` for a request number (the low byte
/// of its ioctl code: `UFFDIO_REGISTER` is 0x00, `UFFDIO_COPY` 0x03, ...).
pub const fn ioctl_bit(request: u64) -> u64 {
    1 << (request & 0xff)
}

/// `UFFDIO_REGISTER_MODE_MISSING`.
pub const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
/// `UFFDIO_REGISTER_MODE_WP`.
pub const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
/// `UFFDIO_WRITEPROTECT_MODE_WP`.
pub const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1 << 0;

/// `UFFD_EVENT_PAGEFAULT`.
pub const UFFD_EVENT_PAGEFAULT: u8 = 0x12;
/// `UFFD_EVENT_FORK`.
pub const UFFD_EVENT_FORK: u8 = 0x13;
/// `UFFD_EVENT_REMAP`.
pub const UFFD_EVENT_REMAP: u8 = 0x14;
/// `UFFD_EVENT_REMOVE`.
pub const UFFD_EVENT_REMOVE: u8 = 0x15;
/// `UFFD_EVENT_UNMAP`.
pub const UFFD_EVENT_UNMAP: u8 = 0x16;

/// `struct uffdio_api`.
#[repr(C)]
#[derive(Debug, Default)]
pub struct UffdioApi {
    /// `UFFD_API`.
    pub api: u64,
    /// Features asked for, then granted.
    pub features: u64,
    /// Requests available ([`ioctl_bit`]).
    pub ioctls: u64,
}

/// `struct uffdio_register`.
#[repr(C)]
#[derive(Debug, Default)]
pub struct UffdioRegister {
    /// Start of the range (page-aligned).
    pub start: u64,
    /// Length of the range.
    pub len: u64,
    /// `UFFDIO_REGISTER_MODE_*`.
    pub mode: u64,
    /// Requests available on the range ([`ioctl_bit`]), set by the kernel.
    pub ioctls: u64,
}

/// `struct uffdio_range`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct UffdioRange {
    /// Start of the range (page-aligned).
    pub start: u64,
    /// Length of the range.
    pub len: u64,
}

/// `struct uffdio_copy`.
#[repr(C)]
#[derive(Debug, Default)]
pub struct UffdioCopy {
    /// Destination in the registered range.
    pub dst: u64,
    /// Source in the caller's address space.
    pub src: u64,
    /// Bytes to copy.
    pub len: u64,
    /// `UFFDIO_COPY_MODE_*`.
    pub mode: u64,
    /// Bytes copied, or a negative errno, set by the kernel.
    pub copy: i64,
}

/// `struct uffdio_zeropage`.
#[repr(C)]
#[derive(Debug, Default)]
pub struct UffdioZeropage {
    /// The range to map zero pages into.
    pub range: UffdioRange,
    /// `UFFDIO_ZEROPAGE_MODE_*`.
    pub mode: u64,
    /// Bytes mapped, or a negative errno, set by the kernel.
    pub zeropage: i64,
}

/// `struct uffdio_writeprotect`.
#[repr(C)]
#[derive(Debug, Default)]
pub struct UffdioWriteprotect {
    /// Start of the range.
    pub start: u64,
    /// Length of the range.
    pub len: u64,
    /// `UFFDIO_WRITEPROTECT_MODE_*`.
    pub mode: u64,
}

/// `struct uffd_msg`: the event byte, padding, then 24 bytes of arguments.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct UffdMsg {
    /// `UFFD_EVENT_*`.
    pub event: u8,
    /// Padding.
    pub reserved: [u8; 7],
    /// The event's arguments (for a page fault: flags, address, thread id).
    pub arg: [u64; 3],
}

/// One userfaultfd ioctl: `arg` is the structure `request` takes; the kernel's non-negative
/// return value, or the OS error.
pub fn ioctl<T>(fd: RawFd, request: u64, arg: &mut T) -> io::Result<i32> {
    // SAFETY: `arg` is a live, exclusively borrowed #[repr(C)] struct of exactly the size
    // encoded in `request`; the kernel reads and writes only within it.
    let r = unsafe { libc::ioctl(fd, request as _, arg as *mut T) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Creates a userfaultfd with `flags` inside the stopped process `pid` through `inj`, takes it
/// out, closes it there and negotiates `features`. `None` when the kernel or the sandbox does
/// not allow it (or `UFFDIO_REGISTER` is not offered); an error only when the process itself
/// fails.
pub fn open_in(inj: &Injector, pid: i32, flags: u64, features: u64) -> Result<Option<OwnedFd>> {
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
    if ioctl(fd.as_raw_fd(), UFFDIO_API, &mut api).is_err()
        || api.ioctls & ioctl_bit(UFFDIO_REGISTER) == 0
    {
        return Ok(None);
    }
    Ok(Some(fd))
}

/// Takes descriptor `fd` of process `pid` into this process (`pidfd_getfd`).
pub fn take_fd(pid: i32, fd: i32) -> Result<OwnedFd> {
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

/// A userfaultfd of another process's address space, set up for async write-protection: the
/// kernel resolves write faults itself and `PAGEMAP_SCAN` ([`crate::pagemap`]) reports the
/// pages written since they were last protected.
#[derive(Debug)]
pub struct WpTracker {
    fd: OwnedFd,
}

impl WpTracker {
    /// Negotiates the API with async write-protect features on a fresh userfaultfd `fd`.
    /// Fails (ENOTSUP/EINVAL) on kernels without WP_ASYNC or WP_UNPOPULATED.
    pub fn new(fd: OwnedFd) -> io::Result<WpTracker> {
        let mut api = UffdioApi {
            api: UFFD_API,
            features: UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED,
            ioctls: 0,
        };
        ioctl(fd.as_raw_fd(), UFFDIO_API, &mut api)?;
        Ok(WpTracker { fd })
    }

    /// Registers `[start, start+len)` (whole mappings) for write-protect tracking. Registering
    /// an already registered range again is accepted by the kernel.
    pub fn register_wp(&self, start: u64, len: u64) -> io::Result<()> {
        let mut r = UffdioRegister {
            start,
            len,
            mode: UFFDIO_REGISTER_MODE_WP,
            ioctls: 0,
        };
        ioctl(self.fd.as_raw_fd(), UFFDIO_REGISTER, &mut r).map(drop)
    }

    /// Write-protects every page of `[start, start+len)`, populated or not.
    pub fn write_protect(&self, start: u64, len: u64) -> io::Result<()> {
        let mut w = UffdioWriteprotect {
            start,
            len,
            mode: UFFDIO_WRITEPROTECT_MODE_WP,
        };
        ioctl(self.fd.as_raw_fd(), UFFDIO_WRITEPROTECT, &mut w).map(drop)
    }
}
