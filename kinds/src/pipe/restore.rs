//! Pipes inside the job, recreated by the restoring process with their capacity and unread
//! bytes (packets as packets), then handed to the stubs like any other descriptor: every
//! open file description of an end again with its own status flags.

use crate::Recreated;
use cairn_image::{FdImage, FdKind, MemorySource, PipeImage, PipeOpen, ProcessTreeImage};
use cairn_sys::error::{io_ctx, last_os};
use cairn_sys::{Error, Result};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// [`crate::RecreateFn`] of pipes.
pub fn recreate(image: &ProcessTreeImage, source: &dyn MemorySource) -> Result<Box<dyn Recreated>> {
    Ok(Box::new(Pipes::create(image, source)?))
}

/// The job's pipes, recreated by the restoring process: id → (read end, write end), and the
/// open file description of every descriptor `(pid, fd)` of the image.
#[derive(Default)]
pub struct Pipes(
    pub HashMap<u64, (OwnedFd, OwnedFd)>,
    pub HashMap<(i32, i32), OwnedFd>,
);

impl Recreated for Pipes {
    fn open(&self, pid: i32, fd: &FdImage, _: &dyn MemorySource) -> Option<Result<OwnedFd>> {
        let FdKind::Pipe { id, flags } = fd.kind else {
            return None;
        };
        let end = match self.1.get(&(pid, fd.fd)) {
            Some(end) => Ok(end),
            None => self.end(id, flags, pid),
        };
        Some(end.and_then(|end| end.try_clone().map_err(io_ctx(format!("dup of pipe {id}")))))
    }
    fn descriptors_taken(&mut self) {
        self.0.clear();
        self.1.clear();
    }
}

fn set_flags(fd: &OwnedFd, flags: i32, id: u64) -> Result<()> {
    let keep = libc::O_NONBLOCK | libc::O_DIRECT;
    // SAFETY: fcntl on our own descriptor.
    let now = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if now < 0 {
        return Err(last_os(format!("F_GETFL of pipe {id}")));
    }
    // SAFETY: as above.
    if unsafe {
        libc::fcntl(
            fd.as_raw_fd(),
            libc::F_SETFL,
            (now & !keep) | (flags & keep),
        )
    } < 0
    {
        return Err(last_os(format!("setting the flags {flags:o} of pipe {id}")));
    }
    Ok(())
}

/// A new open file description of the pipe whose end `end` is, with access mode `acc`.
fn reopen(end: &OwnedFd, acc: i32, id: u64) -> Result<OwnedFd> {
    let path = format!("/proc/self/fd/{}\0", end.as_raw_fd());
    // SAFETY: open with a NUL-terminated path; O_NONBLOCK so that opening a pipe end
    // read-only or write-only never waits for the other side.
    let fd = unsafe {
        libc::open(
            path.as_ptr().cast(),
            acc | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(last_os(format!("opening pipe {id} once more")));
    }
    // SAFETY: a fresh descriptor owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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

    /// Refill pipe `pi` through its write end `w`: packet by packet in packet mode.
    fn refill(pi: &PipeImage, w: &OwnedFd, source: &dyn MemorySource) -> Result<()> {
        let Some((pid, fd)) = pi.data else {
            return Ok(());
        };
        let data = source
            .read_file(pid, fd)
            .map_err(io_ctx(format!("reading unread bytes of pipe {}", pi.id)))?;
        let mut wf = File::from(w.try_clone().map_err(io_ctx("dup of a pipe"))?);
        if pi.packets.is_empty() {
            return wf
                .write_all(&data)
                .map_err(io_ctx(format!("refilling pipe {}", pi.id)));
        }
        if pi.packets.iter().sum::<u64>() != data.len() as u64 {
            return Err(Error::Incompatible(format!(
                "pipe {}: the packets do not add up to its {} unread bytes",
                pi.id,
                data.len()
            )));
        }
        set_flags(w, libc::O_DIRECT, pi.id)?;
        let mut at = 0usize;
        for &len in &pi.packets {
            let p = &data[at..at + len as usize];
            let n = wf
                .write(p)
                .map_err(io_ctx(format!("refilling pipe {}", pi.id)))?;
            if n != p.len() {
                return Err(Error::Incompatible(format!(
                    "pipe {}: a packet of {} bytes was written in part",
                    pi.id,
                    p.len()
                )));
            }
            at += p.len();
        }
        set_flags(w, 0, pi.id)
    }

    /// Open file descriptions of pipe `pi` beyond its two ends, every one with its flags.
    fn opens(&mut self, pi: &PipeImage) -> Result<()> {
        let (r, w) = &self.0[&pi.id];
        let (mut r_used, mut w_used) = (false, false);
        for PipeOpen { flags, fds } in &pi.opens {
            let acc = flags & libc::O_ACCMODE;
            let ofd = match acc {
                libc::O_RDONLY if !r_used => {
                    r_used = true;
                    r.try_clone().map_err(io_ctx("dup of a pipe"))?
                }
                libc::O_WRONLY if !w_used => {
                    w_used = true;
                    w.try_clone().map_err(io_ctx("dup of a pipe"))?
                }
                _ => reopen(r, acc, pi.id)?,
            };
            set_flags(&ofd, *flags, pi.id)?;
            for &k in fds {
                self.1
                    .insert(k, ofd.try_clone().map_err(io_ctx("dup of a pipe"))?);
            }
        }
        Ok(())
    }

    /// Create every pipe of the image with its capacity, refill it with its unread bytes,
    /// and give each open file description of it the status flags it had.
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
            Self::refill(pi, &w, source)?;
            out.0.insert(pi.id, (r, w));
            if !pi.opens.is_empty() {
                out.opens(pi)?;
            }
        }
        // Older images: one open file description per end, O_NONBLOCK as any descriptor had it.
        for p in &image.processes {
            for f in &p.fds {
                if let FdKind::Pipe { id, flags } = f.kind {
                    if out.1.contains_key(&(p.pid, f.fd)) {
                        continue;
                    }
                    let end = out.end(id, flags, p.pid)?;
                    if flags & libc::O_NONBLOCK != 0 {
                        set_flags(end, libc::O_NONBLOCK, id)?;
                    }
                }
            }
        }
        Ok(out)
    }
}
