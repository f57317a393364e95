//! Pipes inside the job, recreated by the restoring process with their capacity and unread
//! bytes, then handed to the stubs like any other descriptor.

use cairn_image::{FdKind, MemorySource, ProcessTreeImage};
use cairn_sys::error::{io_ctx, last_os};
use cairn_sys::{Error, Result};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The job's pipes, recreated by the restoring process: id → (read end, write end); and its
/// UNIX sockets and FIFOs.
#[derive(Default)]
pub struct Pipes(
    pub std::collections::HashMap<u64, (OwnedFd, OwnedFd)>,
    pub crate::unix::Ipc,
);

impl Pipes {
    /// Create every pipe of the image with its capacity, refill it with its unread bytes,
    /// and give each end the O_NONBLOCK flag its descriptors had; then the sockets and FIFOs
    /// ([`crate::unix::Ipc::create`]).
    pub fn create(image: &ProcessTreeImage, source: &dyn MemorySource) -> Result<Pipes> {
        let mut out = Pipes(
            Default::default(),
            crate::unix::Ipc::create(&image.ipc, source)?,
        );
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
                    let (r, w) = out.0.get(&id).ok_or_else(|| {
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
