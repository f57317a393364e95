//! The restore stub: a child of the sandbox init, created with the image's pid, that installs
//! the image's file descriptors, cwd and umask, reports, and then waits to be taken over.

use cairn_image::{FdKind, MemorySource, ProcessImage};
use cairn_kinds::pipe::Pipes;
use cairn_sys::error::io_ctx;
use cairn_sys::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Descriptors opened by the restoring process for the stub: (source fd, target fd, cloexec).
pub struct PreparedFds {
    /// Owned sources, closed when this is dropped.
    pub owned: Vec<OwnedFd>,
    /// (source, target, cloexec).
    pub map: Vec<(i32, i32, bool)>,
    /// Descriptors inherited from the parent process: (parent's fd, target, cloexec).
    pub inherited: Vec<(i32, i32, bool)>,
}

impl PreparedFds {
    /// Move every source descriptor to a number at least `min` (so that installing the
    /// targets of any process of the tree never overwrites one).
    pub fn raise(&mut self, min: i32) -> Result<()> {
        for (o, m) in self.owned.iter_mut().zip(self.map.iter_mut()) {
            // SAFETY: F_DUPFD_CLOEXEC duplicates a descriptor we own.
            let d = unsafe { libc::fcntl(o.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
            if d < 0 {
                return Err(cairn_sys::error::last_os(format!(
                    "moving a descriptor above {min} for the restore stub"
                )));
            }
            // SAFETY: `d` is a fresh descriptor owned by us.
            *o = unsafe { OwnedFd::from_raw_fd(d) };
            m.0 = d;
        }
        Ok(())
    }
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
    prepare_fds_with_pipes(p, source, stdio, &Pipes::default())
}

/// [`prepare_fds`] for a process of a tree whose pipes are `pipes`.
pub fn prepare_fds_with_pipes(
    p: &ProcessImage,
    source: &dyn MemorySource,
    stdio: Option<[i32; 3]>,
    pipes: &Pipes,
) -> Result<PreparedFds> {
    let mut out = PreparedFds {
        owned: Vec::new(),
        map: Vec::new(),
        inherited: Vec::new(),
    };
    for fd in &p.fds {
        let owned: OwnedFd = match &fd.kind {
            FdKind::Inherited { parent_fd } => {
                out.inherited.push((*parent_fd, fd.fd, fd.cloexec));
                continue;
            }
            FdKind::Pipe { id, flags } => {
                let (r, w) = pipes.0.get(id).ok_or_else(|| {
                    Error::Incompatible(format!(
                        "pipe {id} of process {} is not in the image",
                        p.pid
                    ))
                })?;
                let end = if flags & libc::O_ACCMODE == libc::O_RDONLY {
                    r
                } else {
                    w
                };
                end.try_clone()
                    .map_err(io_ctx(format!("dup of pipe {id}")))?
            }
            FdKind::Socket { id } => pipes.1.socket(*id, p.pid)?,
            FdKind::Fifo { id, flags } => pipes.1.fifo(*id, *flags, p.pid)?,
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
                let create = |at: &Path| {
                    OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(at)
                };
                // At its own path when nothing is there now, so that the program sees the
                // same "PATH (deleted)" in /proc/self/fd; else under a temporary name next
                // to it (or in the temporary directory). Unlinked right after opening.
                let (tmp, made) = match create(Path::new(path)) {
                    Ok(w) => (PathBuf::from(path), Ok(w)),
                    Err(_) => {
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
                        let made = create(&tmp);
                        (tmp, made)
                    }
                };
                let tmp_s = tmp.to_string_lossy().into_owned();
                let mut w = made.map_err(io_ctx(format!("creating {tmp_s}")))?;
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

/// Turn a stub failure code into an error.
pub fn stub_error(code: i32) -> Error {
    let step = match code / 10000 {
        1 => "too many descriptors",
        2 => "moving descriptors",
        3 => "installing descriptors",
        4 => "changing to the saved working directory",
        5 => "creating the saved session (setsid)",
        6 => "creating the saved process group (setpgid)",
        7 => "creating a child process with its saved pid (clone3 set_tid)",
        _ => "setting up",
    };
    Error::Sys {
        what: format!("restore stub failed {step}"),
        source: std::io::Error::from_raw_os_error(code % 10000),
    }
}
