//! Open file descriptions that several descriptors share, for kinds whose /proc entries do
//! not tell them apart (every anonymous inode looks alike): found with `kcmp(2)` at a
//! checkpoint, created once each at restore and handed out to every descriptor.

use crate::FrozenJob;
use cairn_image::{FdImage, FdKind, ProcessTreeImage};
use cairn_sys::error::io_ctx;
use cairn_sys::{Error, Result};
use std::collections::HashMap;
use std::os::fd::OwnedFd;

/// Whether descriptor `afd` of process `a` and `bfd` of `b` (outer pids) are one open file.
pub(crate) fn same_file(a: i32, afd: i32, b: i32, bfd: i32) -> bool {
    const KCMP_FILE: i32 = 0;
    // SAFETY: kcmp only compares kernel objects; no memory is passed.
    unsafe { libc::syscall(libc::SYS_kcmp, a, b, KCMP_FILE, afd, bfd) == 0 }
}

/// Give the descriptors of the frozen job whose kind `id_of` selects the ids 1, 2, ... in
/// image order, one id per open file description.
pub(crate) fn number(
    job: &FrozenJob<'_>,
    image: &mut ProcessTreeImage,
    id_of: fn(&mut FdKind) -> Option<&mut u64>,
) {
    let mut seen: Vec<(i32, i32, u64)> = Vec::new();
    for (p, &pid) in image.processes.iter_mut().zip(job.outer) {
        for f in &mut p.fds {
            let Some(id) = id_of(&mut f.kind) else {
                continue;
            };
            *id = match seen.iter().find(|s| same_file(s.0, s.1, pid, f.fd)) {
                Some(s) => s.2,
                None => {
                    let n = seen.len() as u64 + 1;
                    seen.push((pid, f.fd, n));
                    n
                }
            };
        }
    }
}

/// The open file descriptions of one kind, created by the restoring process, each with the
/// descriptor (pid in the job, fd) through which the job's rebuild completes it: the first
/// one in image order that is not inherited.
pub(crate) struct Made {
    what: &'static str,
    files: HashMap<u64, OwnedFd>,
    owners: HashMap<u64, (i32, i32)>,
}

impl Made {
    /// Create one open file description per id that `select` finds in `image` (with the
    /// image of its kind), with `make`.
    pub(crate) fn create<T>(
        image: &ProcessTreeImage,
        what: &'static str,
        select: fn(&FdKind) -> Option<(u64, &T)>,
        mut make: impl FnMut(&T) -> Result<OwnedFd>,
    ) -> Result<Made> {
        let mut out = Made {
            what,
            files: HashMap::new(),
            owners: HashMap::new(),
        };
        for p in &image.processes {
            for f in &p.fds {
                let Some((id, kind)) = select(&f.kind) else {
                    continue;
                };
                if out.owners.contains_key(&id) {
                    continue;
                }
                let file = make(kind).map_err(|e| {
                    let why = match e {
                        Error::Incompatible(why) => why,
                        other => other.to_string(),
                    };
                    Error::Incompatible(format!(
                        "process {} fd {}: recreating the {what}: {why}",
                        p.pid, f.fd
                    ))
                })?;
                out.files.insert(id, file);
                out.owners.insert(id, (p.pid, f.fd));
            }
        }
        Ok(out)
    }

    /// A descriptor of open file description `id` for `fd` of process `pid`.
    pub(crate) fn hand_out(&self, pid: i32, fd: &FdImage, id: u64) -> Result<OwnedFd> {
        let file = self.files.get(&id).ok_or_else(|| {
            Error::Incompatible(format!(
                "process {pid} fd {}: {} {id} is not in the image",
                fd.fd, self.what
            ))
        })?;
        file.try_clone()
            .map_err(io_ctx(format!("dup of {} {id}", self.what)))
    }

    /// Whether `fd` of process `pid` is the descriptor through which `id` is completed.
    pub(crate) fn owns(&self, pid: i32, fd: i32, id: u64) -> bool {
        self.owners.get(&id) == Some(&(pid, fd))
    }

    /// Close the restoring process's copies (every descriptor has its own by now).
    pub(crate) fn close_copies(&mut self) {
        self.files.clear();
    }
}

/// A fresh descriptor returned by a libc call in this process (`r < 0`: the error of `what`).
pub(crate) fn fresh(r: i32, what: &str) -> Result<OwnedFd> {
    crate::pipe::capture::owned(r, what)
}
