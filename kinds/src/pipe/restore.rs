//! Pipes inside the job, recreated by the restoring process with their capacity and unread
//! bytes, then handed to the stubs like any other descriptor.

use crate::Recreated;
use cairn_image::{FdImage, FdKind, MemorySource, ProcessTreeImage};
use cairn_sys::error::{io_ctx, last_os};
use cairn_sys::{Error, Result};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// [`crate::RecreateFn`] of pipes.
pub fn recreate(image: &ProcessTreeImage, source: &dyn MemorySource) -> Result<Box<dyn Recreated>> {
    Ok(Box::new(Pipes::create(image, source)?))
}

/// The job's pipes, recreated by the restoring process: id → (read end, write end).
#[derive(Default)]
pub struct Pipes(pub std::collections::HashMap<u64, (OwnedFd, OwnedFd)>);

impl Recreated for Pipes {
    fn open(&self, pid: i32, fd: &FdImage, _: &dyn MemorySource) -> Option<Result<OwnedFd>> {
        let FdKind::Pipe { id, flags } = fd.kind else {
            return None;
        };
        Some(
            self.end(id, flags, pid)
                .and_then(|end| end.try_clone().map_err(io_ctx(format!("dup of pipe {id}")))),
        )
    }
    fn descriptors_taken(&mut self) {
        self.0.clear();
    }
}

impl Pipes {
    /// The end of pipe `id` that a descriptor with open `flags` of process `pid` holds.
    fn end(&self, id: u64, flags: i32, pid: i32) -> Result<&OwnedFd> {
        let (r, w) = self.0.get(&id).ok_or_else(|| {
            Error::Incompatible(format!("pipe {id} of process {pid} is not in the image"))
        })?;
        Ok(if flags & libc::O_ACCMODE == libc::O_RDONLY {
            r
        } else {
            w
        })
    }

    /// Create every pipe of the image with its capacity, refill it with its unread bytes,
    /// and give each end the O_NONBLOCK flag its descriptors had.
    pub fn create(image: &ProcessTreeImage, source: &dyn MemorySource) -> Result<Pipes> {
        let mut out = Pipes::default();
        for pi in &image.pipes {
            let mut p = [0i32; 2];
            // SAFETY: pipe2 writes two descriptors.
            if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
                return Err(last_os("pipe2"));
            }
            // SAFETY: fresh descriptors owned by us.
            let (r, w) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
            // SAFETY: fcntl on our own descriptor.
            if unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, pi.capacity as i32) } < 0 {
                return Err(last_os(format!(
                    "setting the capacity of a pipe to {} bytes",
                    pi.capacity
                )));
            }
            if let Some((pid, fd)) = pi.data {
                let data = source
                    .read_file(pid, fd)
                    .map_err(io_ctx(format!("reading unread bytes of pipe {}", pi.id)))?;
                let mut wf = File::from(w.try_clone().map_err(io_ctx("dup of a pipe"))?);
                wf.write_all(&data)
                    .map_err(io_ctx(format!("refilling pipe {}", pi.id)))?;
            }
            out.0.insert(pi.id, (r, w));
        }
        for p in &image.processes {
            for f in &p.fds {
                if let FdKind::Pipe { id, flags } = f.kind {
                    let end = out.end(id, flags, p.pid)?;
                    if flags & libc::O_NONBLOCK != 0 {
                        // SAFETY: fcntl on our own descriptor.
                        unsafe { libc::fcntl(end.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
                    }
                }
            }
        }
        Ok(out)
    }
}
