//! The restore stub: a child of the sandbox init, created with the image's pid, that installs
//! the image's file descriptors, cwd and umask, reports, and then waits to be taken over.

use cairn_image::{FdKind, MemorySource, ProcessImage};
use cairn_kinds::Recreated;
use cairn_sys::{Error, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Descriptors opened by the restoring process for the stub: (source fd, target fd, cloexec).
#[derive(Default)]
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

/// Open every descriptor of process `p` of the image in this process: the kinds recreated
/// for the job (`kinds`) open what they own; inherited descriptors and terminal/pipe stdio
/// are the stub's. `stdio` replaces this process's own 0, 1, 2 as what terminal/pipe stdio is
/// re-attached to. `earlier` are the processes prepared before (pid in the job, their
/// descriptors), where a [`FdKind::SameAs`] finds its description.
pub fn prepare_fds(
    p: &ProcessImage,
    source: &dyn MemorySource,
    stdio: Option<[i32; 3]>,
    kinds: &[Box<dyn Recreated>],
    earlier: &[(i32, &PreparedFds)],
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
            FdKind::SameAs { pid, fd: first } => {
                let prepared = if *pid == p.pid {
                    Some(&out)
                } else {
                    earlier.iter().find(|e| e.0 == *pid).map(|e| e.1)
                };
                let from = prepared
                    .and_then(|pf| pf.map.iter().find(|m| m.1 == *first))
                    .map(|m| m.0)
                    .ok_or_else(|| {
                        Error::Incompatible(format!(
                            "process {} fd {}: the same open file as fd {first} of process \
                             {pid}, which is not in the image before it",
                            p.pid, fd.fd
                        ))
                    })?;
                // SAFETY: F_DUPFD_CLOEXEC duplicates one of our own descriptors.
                let d = unsafe { libc::fcntl(from, libc::F_DUPFD_CLOEXEC, 3) };
                if d < 0 {
                    return Err(cairn_sys::error::last_os(format!(
                        "duplicating fd {first} of process {pid} for fd {} of process {}",
                        fd.fd, p.pid
                    )));
                }
                // SAFETY: `d` is a fresh descriptor owned by us.
                unsafe { OwnedFd::from_raw_fd(d) }
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
            other => kinds
                .iter()
                .find_map(|k| k.open(p.pid, fd, source))
                .unwrap_or_else(|| {
                    Err(Error::Incompatible(format!(
                        "process {} fd {}: no kind restores {other:?}",
                        p.pid, fd.fd
                    )))
                })?,
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
        8 => "mapping memory shared with its children",
        9 => "waiting for its memory shared with its children",
        10 => "reaping a helper process",
        _ => "setting up",
    };
    Error::Sys {
        what: format!("restore stub failed {step}"),
        source: std::io::Error::from_raw_os_error(code % 10000),
    }
}
