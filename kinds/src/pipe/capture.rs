//! Unread bytes of pipes inside the job, read without consuming them: the agent takes a copy
//! of a read end with `pidfd_getfd` and `tee`s the pipe's contents into a pipe of its own,
//! so the frozen program's pipe is left exactly as it was.

use crate::{FrozenJob, OpenFd};
use cairn_image::{FdKind, MemorySink, PipeImage, ProcessImage, ProcessTreeImage};
use cairn_sys::error::{io_ctx, last_os, Error, Result};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub(crate) fn owned(fd: i32, what: &str) -> Result<OwnedFd> {
    if fd < 0 {
        return Err(last_os(what.to_string()));
    }
    // SAFETY: `fd` is a fresh descriptor returned to us by the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A duplicate of descriptor `fd` of process `pid` (outer pid) in this process.
pub(crate) fn steal(pid: i32, fd: i32) -> Result<OwnedFd> {
    // SAFETY: pidfd_open/pidfd_getfd take integers and return new descriptors.
    let pidfd = owned(
        unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32,
        &format!("pidfd_open({pid})"),
    )?;
    // SAFETY: as above.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) } as i32;
    owned(r, &format!("pidfd_getfd of fd {fd} of process {pid}"))
}

/// The unread bytes and capacity of the pipe whose read end is `fd` of `pid`.
pub(crate) fn peek(pid: i32, fd: i32) -> Result<(u64, Vec<u8>)> {
    peek_fd(&steal(pid, fd)?, pid, fd)
}

/// The unread bytes and capacity of the pipe or FIFO read through `rd` (descriptor `fd` of
/// `pid`, for messages).
pub(crate) fn peek_fd(rd: &OwnedFd, pid: i32, fd: i32) -> Result<(u64, Vec<u8>)> {
    // SAFETY: fcntl/ioctl on our own descriptors with integer or out-pointer arguments.
    let cap = unsafe { libc::fcntl(rd.as_raw_fd(), libc::F_GETPIPE_SZ) };
    if cap < 0 {
        return Err(last_os("F_GETPIPE_SZ"));
    }
    let mut unread: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    if unsafe { libc::ioctl(rd.as_raw_fd(), libc::FIONREAD, &mut unread) } < 0 {
        return Err(last_os("FIONREAD on a pipe"));
    }
    if unread == 0 {
        return Ok((cap as u64, Vec::new()));
    }
    let mut p = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
        return Err(last_os("pipe2"));
    }
    let (tr, tw) = (owned(p[0], "pipe2")?, owned(p[1], "pipe2")?);
    // SAFETY: as above.
    if unsafe { libc::fcntl(tw.as_raw_fd(), libc::F_SETPIPE_SZ, cap) } < 0 {
        return Err(last_os("F_SETPIPE_SZ"));
    }
    // SAFETY: tee between two pipes we hold; it copies without consuming.
    let n = unsafe {
        libc::tee(
            rd.as_raw_fd(),
            tw.as_raw_fd(),
            unread as usize,
            libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        return Err(last_os("tee of a pipe's unread bytes"));
    }
    if n != unread as isize {
        return Err(Error::Parse(format!(
            "pipe fd {fd} of process {pid}: copied {n} of {unread} unread bytes"
        )));
    }
    drop(tw);
    let mut data = Vec::with_capacity(n as usize);
    File::from(tr)
        .read_to_end(&mut data)
        .map_err(io_ctx("reading a pipe's unread bytes"))?;
    Ok((cap as u64, data))
}

/// [`crate::DescribeFn`] of pipes: a pipe end inside the job.
pub fn describe(fd: &OpenFd<'_>, _: &mut dyn MemorySink) -> Option<Result<FdKind>> {
    let id = fd
        .link
        .strip_prefix("pipe:[")?
        .strip_suffix(']')?
        .parse::<u64>()
        .ok()?;
    fd.inside.then_some(Ok(FdKind::Pipe {
        id,
        flags: fd.flags & (libc::O_ACCMODE | libc::O_NONBLOCK),
    }))
}

/// [`crate::CaptureFn`] of pipes.
pub fn capture_job(
    job: &FrozenJob<'_>,
    image: &mut ProcessTreeImage,
    sink: &mut dyn MemorySink,
) -> Result<()> {
    image.pipes = capture_pipes(job.outer, &image.processes, sink)?;
    Ok(())
}

/// Capture every pipe of the frozen processes (`outer[i]` is the outer pid of `procs[i]`):
/// capacity and unread bytes (through `sink.put_file` of a read end).
pub fn capture_pipes(
    outer: &[i32],
    procs: &[ProcessImage],
    sink: &mut dyn MemorySink,
) -> Result<Vec<PipeImage>> {
    // The launched program's own stdio pipes lead outside the job: restore re-attaches them,
    // so a process holding one other than by inheritance cannot be restored faithfully.
    let outside: Vec<String> = outer.first().map_or_else(Vec::new, |&root| {
        (0..3)
            .filter_map(|fd| std::fs::read_link(format!("/proc/{root}/fd/{fd}")).ok())
            .map(|l| l.to_string_lossy().into_owned())
            .filter(|l| l.starts_with("pipe:"))
            .collect()
    });
    let mut out: Vec<PipeImage> = Vec::new();
    for (&o, p) in outer.iter().zip(procs) {
        for f in &p.fds {
            let FdKind::Pipe { id, flags } = f.kind else {
                continue;
            };
            if outside.contains(&format!("pipe:[{id}]")) {
                return Err(Error::Unsupported(format!(
                    "process {} fd {}: pipe:[{id}] is the job's own stdin/stdout/stderr but \
                     was not inherited from its parent",
                    p.pid, f.fd
                )));
            }
            let read_end = flags & libc::O_ACCMODE == libc::O_RDONLY;
            let known = out.iter().position(|x| x.id == id);
            if known.is_some_and(|i| out[i].data.is_some() || !read_end) {
                continue;
            }
            let img = if read_end {
                let (capacity, data) = peek(o, f.fd)?;
                let unread = data.len() as u64;
                sink.put_file(p.pid, f.fd, &mut data.as_slice())
                    .map_err(io_ctx(format!("saving unread bytes of pipe {id}")))?;
                PipeImage {
                    id,
                    capacity,
                    unread,
                    data: Some((p.pid, f.fd)),
                }
            } else {
                let w = steal(o, f.fd)?;
                // SAFETY: fcntl on our own descriptor.
                let cap = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_GETPIPE_SZ) };
                if cap < 0 {
                    return Err(last_os("F_GETPIPE_SZ"));
                }
                // Nobody in the job can read it: unread bytes are unobservable.
                PipeImage {
                    id,
                    capacity: cap as u64,
                    unread: 0,
                    data: None,
                }
            };
            match known {
                Some(i) => out[i] = img,
                None => out.push(img),
            }
        }
    }
    Ok(out)
}
