//! Unread bytes of pipes inside the job, read without consuming them: the agent takes a copy
//! of a read end with `pidfd_getfd` and `tee`s the pipe's contents into a pipe of its own,
//! so the frozen program's pipe is left exactly as it was.

use crate::{FrozenJob, OpenFd};
use cairn_image::{FdKind, MemorySink, PipeImage, PipeOpen, ProcessImage, ProcessTreeImage};
use cairn_sys::error::{io_ctx, last_os, Error, Result};
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

/// The unread bytes and capacity of the pipe whose read end is `fd` of `pid`, with the
/// lengths of the reads that took the bytes out of the copy (one per packet when the pipe
/// holds packets, see [`peek_packets`]).
pub(crate) fn peek_pipe(pid: i32, fd: i32) -> Result<(u64, Vec<u8>, Vec<u64>)> {
    peek_packets(&steal(pid, fd)?, pid, fd)
}

/// The unread bytes and capacity of the pipe whose read end is `fd` of `pid`.
pub(crate) fn peek(pid: i32, fd: i32) -> Result<(u64, Vec<u8>)> {
    peek_fd(&steal(pid, fd)?, pid, fd)
}

/// The unread bytes and capacity of the pipe or FIFO read through `rd`, and the lengths of
/// the reads that took them out of a copy: a read stops at the end of a packet (a buffer
/// written in packet mode, `O_DIRECT`), so several reads mean packets.
pub(crate) fn peek_packets(rd: &OwnedFd, pid: i32, fd: i32) -> Result<(u64, Vec<u8>, Vec<u64>)> {
    let (cap, copy, unread) = match tee_copy(rd, pid, fd)? {
        Some(c) => c,
        None => return Ok((cap_of(rd)?, Vec::new(), Vec::new())),
    };
    let mut data = vec![0u8; unread];
    let mut lens = Vec::new();
    let mut at = 0;
    while at < unread {
        // SAFETY: read into the unfilled tail of our own buffer.
        let n = unsafe {
            libc::read(
                copy.as_raw_fd(),
                data[at..].as_mut_ptr().cast(),
                unread - at,
            )
        };
        if n <= 0 {
            return Err(last_os("reading a pipe's unread bytes"));
        }
        lens.push(n as u64);
        at += n as usize;
    }
    if lens.len() == 1 {
        lens.clear();
    }
    Ok((cap, data, lens))
}

fn cap_of(rd: &OwnedFd) -> Result<u64> {
    // SAFETY: fcntl on our own descriptor.
    let cap = unsafe { libc::fcntl(rd.as_raw_fd(), libc::F_GETPIPE_SZ) };
    if cap < 0 {
        return Err(last_os("F_GETPIPE_SZ"));
    }
    Ok(cap as u64)
}

/// A pipe of our own holding a copy (`tee`) of the unread bytes of `rd`, with the capacity
/// and the number of bytes; `None` when nothing is unread.
fn tee_copy(rd: &OwnedFd, pid: i32, fd: i32) -> Result<Option<(u64, OwnedFd, usize)>> {
    let cap = cap_of(rd)?;
    let mut unread: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    if unsafe { libc::ioctl(rd.as_raw_fd(), libc::FIONREAD, &mut unread) } < 0 {
        return Err(last_os("FIONREAD on a pipe"));
    }
    if unread == 0 {
        return Ok(None);
    }
    let mut p = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
        return Err(last_os("pipe2"));
    }
    let (tr, tw) = (owned(p[0], "pipe2")?, owned(p[1], "pipe2")?);
    // SAFETY: as above.
    if unsafe { libc::fcntl(tw.as_raw_fd(), libc::F_SETPIPE_SZ, cap as i32) } < 0 {
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
    Ok(Some((cap, tr, unread as usize)))
}

/// The unread bytes and capacity of the pipe or FIFO read through `rd` (descriptor `fd` of
/// `pid`, for messages).
pub(crate) fn peek_fd(rd: &OwnedFd, pid: i32, fd: i32) -> Result<(u64, Vec<u8>)> {
    let (cap, data, _) = peek_packets(rd, pid, fd)?;
    Ok((cap, data))
}

/// The status flags of a pipe end that a restore gives back: access mode, O_NONBLOCK and
/// O_DIRECT (packet mode).
pub const PIPE_FLAGS: i32 = libc::O_ACCMODE | libc::O_NONBLOCK | libc::O_DIRECT;

/// True when descriptor `fd` of `pid` and `fd2` of `pid2` are one open file description.
pub(crate) fn same_open(pid: i32, fd: i32, pid2: i32, fd2: i32) -> bool {
    const KCMP_FILE: i32 = 0;
    // SAFETY: kcmp only compares kernel objects; no memory is passed.
    unsafe { libc::syscall(libc::SYS_kcmp, pid, pid2, KCMP_FILE, fd, fd2) == 0 }
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
        flags: fd.flags & PIPE_FLAGS,
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
    // Outer pid of every open file description's first descriptor, to compare others with.
    let mut firsts: Vec<Vec<i32>> = Vec::new();
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
            let reads = flags & libc::O_ACCMODE != libc::O_WRONLY;
            let i = match out.iter().position(|x| x.id == id) {
                Some(i) => i,
                None => {
                    out.push(PipeImage {
                        id,
                        capacity: 0,
                        unread: 0,
                        data: None,
                        packets: Vec::new(),
                        opens: Vec::new(),
                    });
                    firsts.push(Vec::new());
                    out.len() - 1
                }
            };
            if out[i].data.is_none() && reads {
                let (capacity, data, packets) = peek_pipe(o, f.fd)?;
                sink.put_file(p.pid, f.fd, &mut data.as_slice())
                    .map_err(io_ctx(format!("saving unread bytes of pipe {id}")))?;
                out[i].capacity = capacity;
                out[i].unread = data.len() as u64;
                out[i].data = Some((p.pid, f.fd));
                out[i].packets = packets;
            } else if out[i].capacity == 0 {
                // Nobody in the job may read it: unread bytes are unobservable then.
                out[i].capacity = cap_of(&steal(o, f.fd)?)?;
            }
            let img = &mut out[i];
            let shared = img
                .opens
                .iter()
                .zip(&firsts[i])
                .position(|(op, &fo)| op.flags == flags && same_open(o, f.fd, fo, op.fds[0].1));
            match shared {
                Some(k) => img.opens[k].fds.push((p.pid, f.fd)),
                None => {
                    img.opens.push(PipeOpen {
                        flags,
                        fds: vec![(p.pid, f.fd)],
                    });
                    firsts[i].push(o);
                }
            }
        }
    }
    Ok(out)
}
