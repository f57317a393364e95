//! The restore stub: a child of the sandbox init, created with the image's pid, that installs
//! the image's file descriptors, cwd and umask, reports, and then waits to be taken over.

use cairn_capture::error::io_ctx;
use cairn_capture::{Error, FdKind, MemorySource, ProcessImage, Result};
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Descriptors opened by the restoring process for the stub: (source fd, target fd, cloexec).
pub struct PreparedFds {
    /// Owned sources, closed when this is dropped.
    pub owned: Vec<OwnedFd>,
    /// (source, target, cloexec).
    pub map: Vec<(i32, i32, bool)>,
}

fn open_at(path: &str, flags: i32, offset: u64) -> Result<File> {
    let acc = flags & libc::O_ACCMODE;
    let mut o = OpenOptions::new();
    o.read(acc == libc::O_RDONLY || acc == libc::O_RDWR)
        .write(acc == libc::O_WRONLY || acc == libc::O_RDWR)
        .custom_flags(flags & !(libc::O_ACCMODE | libc::O_APPEND) | libc::O_CLOEXEC);
    if flags & libc::O_APPEND != 0 {
        o.append(true);
    }
    let mut file = o
        .open(path)
        .map_err(io_ctx(format!("reopening {path} for restore")))?;
    if offset > 0 && !Path::new(path).is_dir() {
        file.seek(SeekFrom::Start(offset))
            .map_err(io_ctx(format!("seeking {path} to {offset}")))?;
    }
    Ok(file)
}

/// Open every descriptor of the image in this process.
/// `stdio` replaces this process's own 0, 1, 2 as what terminal/pipe stdio is re-attached to.
pub fn prepare_fds(
    p: &ProcessImage,
    source: &dyn MemorySource,
    stdio: Option<[i32; 3]>,
) -> Result<PreparedFds> {
    let mut out = PreparedFds {
        owned: Vec::new(),
        map: Vec::new(),
    };
    for fd in &p.fds {
        let owned: OwnedFd = match &fd.kind {
            FdKind::Path {
                path,
                flags,
                offset,
            } => open_at(path, *flags, *offset)?.into(),
            FdKind::Deleted {
                path,
                flags,
                offset,
                ..
            } => {
                let data = source
                    .read_file(p.pid, fd.fd)
                    .map_err(io_ctx(format!("reading saved contents of {path}")))?;
                let dir = Path::new(path)
                    .parent()
                    .filter(|d| d.is_dir())
                    .map(Path::to_path_buf)
                    .unwrap_or_else(std::env::temp_dir);
                let tmp = dir.join(format!(
                    ".cairn-restore-{}-{}-{}",
                    std::process::id(),
                    p.pid,
                    fd.fd
                ));
                let tmp_s = tmp.to_string_lossy().into_owned();
                let mut w = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(io_ctx(format!("creating {tmp_s}")))?;
                let r = w
                    .write_all(&data)
                    .map_err(io_ctx(format!("writing {tmp_s}")));
                drop(w);
                let f = r.and_then(|_| open_at(&tmp_s, *flags, *offset));
                let _ = std::fs::remove_file(&tmp);
                f?.into()
            }
            FdKind::Stdio => {
                let from = stdio.map_or(fd.fd, |s| s[fd.fd as usize]);
                // SAFETY: F_DUPFD_CLOEXEC duplicates one of our own descriptors.
                let d = unsafe { libc::fcntl(from, libc::F_DUPFD_CLOEXEC, 3) };
                if d < 0 {
                    return Err(Error::Incompatible(format!(
                        "the program's fd {} was a terminal or pipe, but this process has no fd {}",
                        fd.fd, fd.fd
                    )));
                }
                // SAFETY: `d` is a fresh descriptor owned by us.
                unsafe { OwnedFd::from_raw_fd(d) }
            }
        };
        out.map.push((owned.as_raw_fd(), fd.fd, fd.cloexec));
        out.owned.push(owned);
    }
    Ok(out)
}

/// Everything the stub needs, prepared before the fork (the stub must not allocate).
pub struct StubPlan {
    /// (source, target, cloexec).
    pub fds: Vec<(i32, i32, bool)>,
    /// Working directory.
    pub cwd: CString,
    /// umask.
    pub umask: u32,
    /// Write end of the ready pipe.
    pub ready_w: i32,
}

impl StubPlan {
    /// Build a plan; `cwd` must not contain NUL.
    pub fn new(p: &ProcessImage, fds: &PreparedFds, ready_w: i32) -> Result<Self> {
        Ok(Self {
            fds: fds.map.clone(),
            cwd: CString::new(Path::new(&p.cwd).as_os_str().as_bytes())
                .map_err(|_| Error::Incompatible("cwd contains NUL".into()))?,
            umask: p.umask,
            ready_w,
        })
    }

    fn fail(&self, fd: i32, step: i32) -> i32 {
        // SAFETY: errno location is thread-local and always valid; write sends 4 bytes.
        unsafe {
            let code = step * 10000 + *libc::__errno_location();
            libc::write(fd, (&code as *const i32).cast(), 4);
        }
        1
    }

    /// The stub's code (runs in the forked child; raw syscalls only).
    pub fn run(&self) -> i32 {
        let mut base = self.ready_w;
        for &(s, t, _) in &self.fds {
            base = base.max(s).max(t);
        }
        base += 1;
        // SAFETY: raw descriptor syscalls on this child's own descriptor table; no allocation.
        unsafe {
            let ready = libc::fcntl(self.ready_w, libc::F_DUPFD, base);
            if ready < 0 {
                return 1;
            }
            let mut moved = [0i32; 1024];
            if self.fds.len() > moved.len() {
                return self.fail(ready, 1);
            }
            for (i, &(s, _, _)) in self.fds.iter().enumerate() {
                moved[i] = libc::fcntl(s, libc::F_DUPFD, base);
                if moved[i] < 0 {
                    return self.fail(ready, 2);
                }
            }
            libc::syscall(libc::SYS_close_range, 0u32, (base - 1) as u32, 0u32);
            for (i, &(_, t, cloexec)) in self.fds.iter().enumerate() {
                let fl = if cloexec { libc::O_CLOEXEC } else { 0 };
                if libc::dup3(moved[i], t, fl) < 0 {
                    return self.fail(ready, 3);
                }
            }
            if libc::chdir(self.cwd.as_ptr()) < 0 {
                return self.fail(ready, 4);
            }
            libc::umask(self.umask);
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
            let ok: i32 = 0;
            libc::write(ready, (&ok as *const i32).cast(), 4);
            libc::syscall(libc::SYS_close_range, base as u32, u32::MAX, 0u32);
            loop {
                libc::pause();
            }
        }
    }
}

/// Turn a stub failure code into an error.
pub fn stub_error(code: i32) -> Error {
    let step = match code / 10000 {
        1 => "too many descriptors",
        2 => "moving descriptors",
        3 => "installing descriptors",
        4 => "changing to the saved working directory",
        _ => "setting up",
    };
    Error::Sys {
        what: format!("restore stub failed {step}"),
        source: std::io::Error::from_raw_os_error(code % 10000),
    }
}
