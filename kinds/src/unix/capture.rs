//! UNIX sockets and FIFOs between processes of the job, and the job's System V shared memory
//! (`crate::sysv`): what restore needs to rebuild them, unread data included.
//!
//! * A UNIX socket is described by `unix_diag` (state, address, peer, queue lengths, shutdown
//!   state) and its unread data is peeked from a copy of the descriptor (`pidfd_getfd`) with
//!   `SO_PEEK_OFF`, which lets `MSG_PEEK` walk past the first message, so message boundaries
//!   of datagram and seqpacket sockets are kept; the program's socket is left untouched.
//! * A FIFO is recorded with its path and its unread bytes (`tee`, as for pipes).
//!
//! Rules (what is refused and why): docs/capture-restore.md.

use crate::pipe::capture::{peek, peek_fd, steal};
use crate::{FrozenJob, OpenFd};
use cairn_image::{
    FdKind, FifoImage, IpcImage, MemorySink, ProcessImage, ProcessTreeImage, SocketImage,
    SocketName, SocketOptions, SocketState,
};
use cairn_sys::error::{io_ctx, last_os, Error, Result};
use cairn_sys::sock_diag::{self, Diag};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

fn getsockopt_int(fd: &OwnedFd, level: i32, opt: i32, what: &str) -> Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes one int into `v`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(last_os(format!("getsockopt({what})")));
    }
    Ok(v)
}

fn setsockopt_int(fd: &OwnedFd, opt: i32, v: i32, what: &str) -> Result<()> {
    // SAFETY: setsockopt reads one int.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(last_os(format!("setsockopt({what})")));
    }
    Ok(())
}

/// A short name of a non-UNIX socket kind for messages.
fn kind_name(domain: i32, ty: i32) -> String {
    match (domain, ty) {
        (libc::AF_INET | libc::AF_INET6, libc::SOCK_STREAM) => "TCP socket".into(),
        (libc::AF_INET | libc::AF_INET6, libc::SOCK_DGRAM) => "UDP socket".into(),
        (libc::AF_INET | libc::AF_INET6, _) => "raw IP socket".into(),
        (libc::AF_NETLINK, _) => "netlink socket".into(),
        (libc::AF_PACKET, _) => "packet socket".into(),
        (d, _) => format!("socket of address family {d}"),
    }
}

/// Printable form of a `unix_diag` name.
pub fn show_name(name: &[u8]) -> String {
    match name.split_first() {
        Some((0, rest)) => format!("@{}", String::from_utf8_lossy(rest)),
        _ => String::from_utf8_lossy(name.split(|&b| b == 0).next().unwrap_or(&[])).into_owned(),
    }
}

/// Resolve the bound name of a socket: filesystem names to an absolute path (relative names
/// are tried against the working directory of every process of the job), checked against the
/// socket file's inode.
fn resolve_name(d: &Diag, cwds: &[String], who: &str) -> Result<Option<SocketName>> {
    let Some(raw) = d.name.as_deref().filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if raw[0] == 0 {
        return Ok(Some(SocketName::Abstract(raw[1..].to_vec())));
    }
    let p = raw.split(|&b| b == 0).next().unwrap_or(&[]);
    let p = String::from_utf8(p.to_vec())
        .map_err(|_| Error::Unsupported(format!("{who}: socket name is not UTF-8")))?;
    let candidates: Vec<String> = if p.starts_with('/') {
        vec![p.clone()]
    } else {
        cwds.iter().map(|c| format!("{c}/{p}")).collect()
    };
    let ino = d.vfs.map(|v| u64::from(v.0));
    for c in &candidates {
        if let Ok(m) = std::fs::symlink_metadata(c) {
            if Some(m.ino()) == ino {
                return Ok(Some(SocketName::Path {
                    path: c.clone(),
                    exists: true,
                    mode: m.mode() & 0o7777,
                    owner: Some((m.uid(), m.gid())),
                }));
            }
        }
    }
    if !p.starts_with('/') {
        return Err(Error::Unsupported(format!(
            "{who}: UNIX socket bound to the relative name {p:?} whose socket file cannot be \
             found any more"
        )));
    }
    Ok(Some(SocketName::Path {
        path: p,
        exists: false,
        mode: 0o777,
        owner: None,
    }))
}

/// The unread messages of a socket: their bytes (concatenated), lengths and, for a datagram
/// socket, each sender's address.
#[derive(Default)]
struct Queue {
    data: Vec<u8>,
    lens: Vec<u64>,
    senders: Vec<Vec<u8>>,
    /// SCM_CREDENTIALS of each message (pid as the agent sees it, uid, gid), when the
    /// socket has SO_PASSCRED (a stream socket's messages are then its runs of bytes from
    /// one sender, as a read returns them).
    creds: Vec<(i32, u32, u32)>,
    /// Copies of the descriptors each message carries (SCM_RIGHTS), same order as `lens`.
    fds: Vec<Vec<OwnedFd>>,
}

/// Peek every unread message of socket `fd` without consuming it.
fn peek_socket(fd: &OwnedFd, sock_type: i32, total: u64, who: &str) -> Result<Queue> {
    let old = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, "SO_PEEK_OFF")?;
    let r = peek_messages(fd, sock_type, total, who);
    // SO_PEEK_OFF belongs to the program's socket: put it back whatever happened.
    let reset = setsockopt_int(fd, libc::SO_PEEK_OFF, old, "SO_PEEK_OFF");
    let out = r?;
    reset?;
    Ok(out)
}

fn peek_messages(fd: &OwnedFd, sock_type: i32, total: u64, who: &str) -> Result<Queue> {
    let mut cap = 1usize << 16;
    'restart: loop {
        setsockopt_int(fd, libc::SO_PEEK_OFF, 0, "SO_PEEK_OFF")?;
        let mut q = Queue::default();
        let passcred = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PASSCRED, "SO_PASSCRED")? != 0;
        let mut buf = vec![0u8; cap];
        loop {
            if sock_type != libc::SOCK_DGRAM && q.data.len() as u64 >= total {
                break;
            }
            let mut ctl = [0u64; 64];
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // SAFETY: an all-zero sockaddr_un is valid.
            let mut from: libc::sockaddr_un = unsafe { std::mem::zeroed() };
            // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = (&mut from as *mut libc::sockaddr_un).cast();
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = ctl.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&ctl);
            let flags =
                libc::MSG_PEEK | libc::MSG_DONTWAIT | libc::MSG_TRUNC | libc::MSG_CMSG_CLOEXEC;
            // SAFETY: recvmsg writes into the buffers described by `msg`.
            let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EAGAIN) {
                    break;
                }
                return Err(Error::Sys {
                    what: format!("{who}: peeking unread socket data"),
                    source: e,
                });
            }
            // A peek of a message carrying descriptors gives copies of them.
            let passed = take_passed_fds(&msg);
            let n = n as usize;
            let cred = passed_creds(&msg);
            if sock_type == libc::SOCK_STREAM {
                if n == 0 {
                    break;
                }
                // A read ends with the bytes that carry descriptors: keep the bytes before
                // them apart, so that the descriptors come with the same bytes again.
                let start = q.data.len();
                let split = if passed.is_empty() {
                    0
                } else {
                    let k = first_byte_with_fds(fd, start, n)?;
                    setsockopt_int(fd, libc::SO_PEEK_OFF, (start + n) as i32, "SO_PEEK_OFF")?;
                    k
                };
                q.data.extend_from_slice(&buf[..n]);
                let parts = if split > 0 {
                    vec![(split, Vec::new()), (n - split, passed)]
                } else {
                    vec![(n, passed)]
                };
                for (len, fds) in parts {
                    q.lens.push(len as u64);
                    q.fds.push(fds);
                    if passcred {
                        q.creds.push(cred.unwrap_or((0, u32::MAX, u32::MAX)));
                    }
                }
                continue;
            }
            if n > buf.len() {
                cap = n.next_power_of_two();
                continue 'restart;
            }
            if n == 0 && sock_type == libc::SOCK_DGRAM {
                return Err(Error::Unsupported(format!(
                    "{who}: a zero-length datagram is queued (cannot be checkpointed: the \
                     kernel's peek cannot step past it)"
                )));
            }
            if n == 0 {
                break;
            }
            q.data.extend_from_slice(&buf[..n]);
            q.lens.push(n as u64);
            q.fds.push(passed);
            if passcred {
                q.creds.push(cred.unwrap_or((0, u32::MAX, u32::MAX)));
            }
            if sock_type == libc::SOCK_DGRAM {
                let base = std::mem::size_of::<libc::sa_family_t>();
                let len = (msg.msg_namelen as usize).saturating_sub(base);
                let raw: Vec<u8> = from.sun_path[..len.min(from.sun_path.len())]
                    .iter()
                    .map(|&c| c as u8)
                    .collect();
                // A path comes with its terminating NUL (or not): keep the bytes before it.
                let raw = match raw.first() {
                    Some(0) => raw,
                    _ => raw.split(|&b| b == 0).next().unwrap_or(&[]).to_vec(),
                };
                q.senders.push(raw);
            }
        }
        // Without credentials or descriptors a stream's bytes are one run.
        if sock_type == libc::SOCK_STREAM
            && !passcred
            && q.fds.iter().all(Vec::is_empty)
            && !q.data.is_empty()
        {
            q.lens = vec![q.data.len() as u64];
            q.fds = vec![Vec::new()];
        }
        if sock_type != libc::SOCK_DGRAM && q.data.len() as u64 != total {
            return Err(Error::Parse(format!(
                "{who}: peeked {} unread bytes, the kernel counts {total}",
                q.data.len()
            )));
        }
        return Ok(q);
    }
}

/// The descriptors a peek received with SCM_RIGHTS (copies, owned here).
fn take_passed_fds(msg: &libc::msghdr) -> Vec<OwnedFd> {
    let mut out = Vec::new();
    // SAFETY: CMSG_* walk the control buffer the kernel filled in `msg`; each descriptor in
    // an SCM_RIGHTS message is new in this process and owned by us from here on.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let n = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                let p = libc::CMSG_DATA(c) as *const i32;
                for i in 0..n {
                    out.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(p.add(i))));
                }
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    out
}

/// In the `n` bytes of a stream socket's queue from offset `start`, whose read brought
/// descriptors, the offset (from `start`) of the first byte whose one-byte peek brings them:
/// where the message carrying them begins.
fn first_byte_with_fds(fd: &OwnedFd, start: usize, n: usize) -> Result<usize> {
    let (mut lo, mut hi) = (0usize, n - 1);
    while lo < hi {
        let mid = (lo + hi) / 2;
        setsockopt_int(fd, libc::SO_PEEK_OFF, (start + mid) as i32, "SO_PEEK_OFF")?;
        let mut b = [0u8; 1];
        let mut ctl = [0u64; 64];
        let mut iov = libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: 1,
        };
        // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctl.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&ctl);
        // SAFETY: recvmsg writes into the buffers described by `msg`.
        let r = unsafe {
            libc::recvmsg(
                fd.as_raw_fd(),
                &mut msg,
                libc::MSG_PEEK | libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
            )
        };
        if r < 0 {
            return Err(last_os("peeking one byte of a stream socket"));
        }
        if take_passed_fds(&msg).is_empty() {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// The SCM_CREDENTIALS a peek received, if any.
fn passed_creds(msg: &libc::msghdr) -> Option<(i32, u32, u32)> {
    // SAFETY: CMSG_* walk the control buffer the kernel filled in `msg`; the data of an
    // SCM_CREDENTIALS message is one struct ucred.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_CREDENTIALS {
                let u: libc::ucred = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return Some((u.pid, u.uid, u.gid));
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

/// A `struct timeval` socket option as (seconds, microseconds).
fn getsockopt_timeval(fd: &OwnedFd, opt: i32, what: &str) -> Result<(i64, i64)> {
    // SAFETY: an all-zero timeval is valid.
    let mut v: libc::timeval = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: getsockopt writes one timeval into `v`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut libc::timeval).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(last_os(format!("getsockopt({what})")));
    }
    Ok((v.tv_sec, v.tv_usec))
}

/// The options of socket `s` that restore sets again.
fn options(s: &OwnedFd) -> Result<SocketOptions> {
    Ok(SocketOptions {
        passcred: getsockopt_int(s, libc::SOL_SOCKET, libc::SO_PASSCRED, "SO_PASSCRED")? != 0,
        rcvtimeo: getsockopt_timeval(s, libc::SO_RCVTIMEO, "SO_RCVTIMEO")?,
        sndtimeo: getsockopt_timeval(s, libc::SO_SNDTIMEO, "SO_SNDTIMEO")?,
        rcvlowat: getsockopt_int(s, libc::SOL_SOCKET, libc::SO_RCVLOWAT, "SO_RCVLOWAT")?,
    })
}

/// [`crate::DescribeFn`] of UNIX sockets and FIFOs: a socket inside the job (checked to be a
/// UNIX socket with its peer inside the job by [`capture_ipc`]), or a FIFO opened by path.
pub fn describe(fd: &OpenFd<'_>, _: &mut dyn MemorySink) -> Option<Result<FdKind>> {
    if let Some(id) = fd
        .link
        .strip_prefix("socket:[")
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|n| n.parse::<u64>().ok())
    {
        return fd.inside.then_some(Ok(FdKind::Socket { id }));
    }
    let meta = fd.meta.as_ref().ok()?;
    (fd.link.starts_with('/') && meta.file_type().is_fifo()).then(|| {
        Ok(FdKind::Fifo {
            id: meta.ino(),
            flags: fd.flags & (libc::O_ACCMODE | libc::O_NONBLOCK),
        })
    })
}

/// [`crate::CaptureFn`] of UNIX sockets and FIFOs.
pub fn capture_job(
    job: &FrozenJob<'_>,
    image: &mut ProcessTreeImage,
    sink: &mut dyn MemorySink,
) -> Result<()> {
    let ipc = capture_ipc(job.outer, &image.processes, sink)?;
    image.ipc.sockets = ipc.sockets;
    image.ipc.fifos = ipc.fifos;
    Ok(())
}

/// Capture the UNIX sockets and FIFOs of the frozen processes (`outer[i]` is the outer pid of
/// `procs[i]`); unread data goes to `sink.put_file` under the first descriptor found.
pub fn capture_ipc(
    outer: &[i32],
    procs: &[ProcessImage],
    sink: &mut dyn MemorySink,
) -> Result<IpcImage> {
    let mut img = IpcImage::default();
    // First (outer pid, pid, fd) of every socket; every FIFO with its read end if any.
    let mut sockets: Vec<(u64, i32, i32, i32)> = Vec::new();
    let mut fifos: Vec<(u64, i32, i32, i32, bool)> = Vec::new();
    for (&o, p) in outer.iter().zip(procs) {
        for f in &p.fds {
            match f.kind {
                FdKind::Socket { id } if !sockets.iter().any(|s| s.0 == id) => {
                    sockets.push((id, o, p.pid, f.fd))
                }
                FdKind::Fifo { id, flags } => {
                    let rd = flags & libc::O_ACCMODE != libc::O_WRONLY;
                    match fifos.iter_mut().find(|x| x.0 == id) {
                        Some(x) if !x.4 && rd => *x = (id, o, p.pid, f.fd, rd),
                        Some(_) => {}
                        None => fifos.push((id, o, p.pid, f.fd, rd)),
                    }
                }
                _ => {}
            }
        }
    }
    if !sockets.is_empty() {
        img.sockets = capture_sockets(&sockets, outer, procs, sink)?;
    }
    for &(id, o, pid, fd, rd) in &fifos {
        let link = std::fs::read_link(format!("/proc/{o}/fd/{fd}"))
            .map_err(io_ctx(format!("readlink of fd {fd} of process {pid}")))?
            .to_string_lossy()
            .into_owned();
        if link.ends_with(" (deleted)") || !link.starts_with('/') {
            return Err(Error::Unsupported(format!(
                "process {pid} fd {fd}: FIFO {link} was deleted (cannot be checkpointed)"
            )));
        }
        let (_, data) = if rd {
            peek(o, fd)?
        } else {
            let c = std::ffi::CString::new(link.clone())
                .map_err(|_| Error::Parse("FIFO path with NUL".into()))?;
            // SAFETY: open with a NUL-terminated path; a non-blocking read end never blocks.
            let r = unsafe {
                libc::open(
                    c.as_ptr(),
                    libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
                )
            };
            if r < 0 {
                return Err(last_os(format!(
                    "opening FIFO {link} to read its unread bytes"
                )));
            }
            // SAFETY: fresh descriptor owned here.
            let rd = unsafe { OwnedFd::from_raw_fd(r) };
            peek_fd(&rd, pid, fd)?
        };
        let stored = if data.is_empty() {
            None
        } else {
            sink.put_file(pid, fd, &mut data.as_slice())
                .map_err(io_ctx(format!("saving unread bytes of FIFO {link}")))?;
            Some((pid, fd))
        };
        img.fifos.push(FifoImage {
            id,
            path: link,
            unread: data.len() as u64,
            data: stored,
        });
    }
    Ok(img)
}

/// The printable name of socket `ino` as `unix_diag` reports it: " (NAME)" or nothing.
fn name_suffix(diag: &HashMap<u64, Diag>, ino: u64) -> String {
    diag.get(&ino)
        .and_then(|p| p.name.as_deref())
        .filter(|n| !n.is_empty())
        .map(|n| format!(" ({})", show_name(n)))
        .unwrap_or_default()
}

/// Capture the UNIX sockets `(id, outer pid, pid, fd)` (first descriptor of each) of the job.
fn capture_sockets(
    sockets: &[(u64, i32, i32, i32)],
    outer: &[i32],
    procs: &[ProcessImage],
    sink: &mut dyn MemorySink,
) -> Result<Vec<SocketImage>> {
    let diag = sock_diag::dump()?;
    let cwds: Vec<String> = procs.iter().map(|p| p.cwd.clone()).collect();
    let in_job = |ino: u64| sockets.iter().any(|x| x.0 == ino);
    // Every listener of the namespace with connections waiting: connecting socket → listener.
    let waiting: HashMap<u64, u64> = diag
        .iter()
        .filter(|(_, d)| d.state == sock_diag::STATE_LISTEN)
        .flat_map(|(&l, d)| d.icons.iter().filter(|&&c| c != 0).map(move |&c| (c, l)))
        .collect();
    // First the states, collecting every socket that leads outside the job, so that one
    // refusal names them all.
    let mut outside = Vec::new();
    let mut found = Vec::new();
    let outer_to_ns: &HashMap<i32, i32> = &outer
        .iter()
        .copied()
        .zip(procs.iter().map(|p| p.pid))
        .collect();
    for &(id, o, pid, fd) in sockets {
        let who = format!("process {pid} fd {fd} (socket:[{id}])");
        let s = steal(o, fd)?;
        let domain = getsockopt_int(&s, libc::SOL_SOCKET, libc::SO_DOMAIN, "SO_DOMAIN")?;
        let sock_type = getsockopt_int(&s, libc::SOL_SOCKET, libc::SO_TYPE, "SO_TYPE")?;
        if domain != libc::AF_UNIX {
            return Err(Error::Unsupported(format!(
                "{who}: a {} cannot be checkpointed (only UNIX sockets between processes of \
                 the job can)",
                kind_name(domain, sock_type)
            )));
        }
        let d = diag
            .get(&id)
            .ok_or_else(|| Error::Parse(format!("{who}: not reported by unix_diag")))?;
        let state = if d.state == sock_diag::STATE_LISTEN {
            let (_, backlog) = d.rqlen.unwrap_or((0, 0));
            let me = d.name.as_deref().map(show_name).unwrap_or_default();
            for &c in &d.icons {
                if c == 0 {
                    return Err(Error::Unsupported(format!(
                        "{who}: listening UNIX socket {me} holds a connection not accepted \
                         yet whose connecting socket was closed (its queued data cannot be \
                         read without accepting it; checkpoint again later)"
                    )));
                } else if !in_job(c) {
                    outside.push(format!(
                        "{who}: listening socket {me} has a connection not accepted yet from \
                         socket:[{c}]{} outside the job",
                        name_suffix(&diag, c)
                    ));
                }
            }
            SocketState::Listening {
                backlog,
                pending: d.icons.clone(),
            }
        } else if let Some(peer) = d.peer {
            if peer != 0 && in_job(peer) {
                SocketState::Connected { peer: Some(peer) }
            } else if peer != 0 {
                outside.push(format!(
                    "{who}: connected to socket:[{peer}]{} outside the job",
                    name_suffix(&diag, peer)
                ));
                SocketState::Connected { peer: Some(peer) }
            } else if let Some(&l) = waiting.get(&id) {
                if !in_job(l) {
                    outside.push(format!(
                        "{who}: connecting to the listening socket:[{l}]{} outside the job \
                         (not accepted yet)",
                        name_suffix(&diag, l)
                    ));
                }
                SocketState::Pending { listener: l }
            } else if d.shutdown == 3 || sock_type == libc::SOCK_DGRAM {
                // Inode 0 and not waiting in a listener: the peer was closed.
                SocketState::Connected { peer: None }
            } else {
                return Err(Error::Unsupported(format!(
                    "{who}: UNIX socket whose peer has no file and is not a pending \
                     connection of any listener (cannot be checkpointed)"
                )));
            }
        } else {
            SocketState::Unconnected
        };
        found.push((id, pid, fd, who, s, sock_type, state));
    }
    if !outside.is_empty() {
        return Err(Error::Unsupported(format!(
            "{} UNIX socket(s) lead outside the job and cannot be checkpointed: {}",
            outside.len(),
            outside.join("; ")
        )));
    }
    let raw_name = |ino: u64| -> Vec<u8> {
        let n = diag
            .get(&ino)
            .and_then(|d| d.name.clone())
            .unwrap_or_default();
        match n.first() {
            Some(0) => n,
            _ => n.split(|&b| b == 0).next().unwrap_or(&[]).to_vec(),
        }
    };
    let mut out = Vec::new();
    for (id, pid, fd, who, s, sock_type, state) in found {
        let d = &diag[&id];
        let name = resolve_name(d, &cwds, &who)?;
        if let SocketState::Pending { .. } = state {
            let unsent = d.rqlen.map_or(0, |r| r.1);
            if unsent > 0 {
                return Err(Error::Unsupported(format!(
                    "{who}: data was sent on a connection that its listener has not accepted \
                     yet; it cannot be read without accepting it (checkpoint again later)"
                )));
            }
        }
        let queue = if matches!(
            state,
            SocketState::Listening { .. } | SocketState::Pending { .. }
        ) {
            Queue::default()
        } else {
            let total = u64::from(d.rqlen.map_or(0, |r| r.0));
            peek_socket(&s, sock_type, total, &who)?
        };
        let opts = options(&s)?;
        let creds = if queue.creds.is_empty() {
            Vec::new()
        } else {
            job_creds(&queue, &state, d, &diag, id, outer_to_ns, &who)?
        };
        let fds = if queue.fds.iter().all(Vec::is_empty) {
            Vec::new()
        } else {
            in_flight(&queue, &state, d, &diag, id, outer, procs, &who)?
        };
        let mut queue = queue;
        if sock_type == libc::SOCK_DGRAM {
            check_datagrams(&diag, id, &state, &queue, &raw_name, &in_job, sockets, &who)?;
            // A relative sender name is the name of a socket of the job, bound again under
            // its absolute path at restore.
            for snd in &mut queue.senders {
                if snd.is_empty() || snd[0] == 0 || snd[0] == b'/' {
                    continue;
                }
                let abs = sockets
                    .iter()
                    .find(|x| raw_name(x.0) == *snd)
                    .and_then(|x| resolve_name(&diag[&x.0], &cwds, &who).ok().flatten());
                match abs {
                    Some(SocketName::Path { path, .. }) => *snd = path.into_bytes(),
                    _ => {
                        return Err(Error::Unsupported(format!(
                            "{who}: a queued datagram came from the relative name {:?} of a                              socket that is gone (cannot be checkpointed)",
                            String::from_utf8_lossy(snd)
                        )))
                    }
                }
            }
        }
        let stored = if queue.data.is_empty() {
            None
        } else {
            sink.put_file(pid, fd, &mut queue.data.as_slice())
                .map_err(io_ctx(format!("{who}: saving unread data")))?;
            Some((pid, fd))
        };
        // SAFETY: fcntl on our own descriptor.
        let fl = unsafe { libc::fcntl(s.as_raw_fd(), libc::F_GETFL) };
        if fl < 0 {
            return Err(last_os("F_GETFL of a socket"));
        }
        // A pending socket error (reading it would clear it): only a closed peer sets one.
        let mut pfd = libc::pollfd {
            fd: s.as_raw_fd(),
            events: 0,
            revents: 0,
        };
        // SAFETY: poll reads and writes one pollfd; timeout 0.
        if unsafe { libc::poll(&mut pfd, 1, 0) } < 0 {
            return Err(last_os("poll of a socket"));
        }
        let reset = pfd.revents & libc::POLLERR != 0;
        if reset
            && (sock_type == libc::SOCK_DGRAM || state != (SocketState::Connected { peer: None }))
        {
            return Err(Error::Unsupported(format!(
                "{who}: a socket error is pending (only ECONNRESET from a closed peer can be                  checkpointed)"
            )));
        }
        out.push(SocketImage {
            id,
            sock_type,
            nonblock: fl & libc::O_NONBLOCK != 0,
            state,
            name,
            shutdown: d.shutdown,
            sndbuf: getsockopt_int(&s, libc::SOL_SOCKET, libc::SO_SNDBUF, "SO_SNDBUF")?,
            rcvbuf: getsockopt_int(&s, libc::SOL_SOCKET, libc::SO_RCVBUF, "SO_RCVBUF")?,
            peek_off: getsockopt_int(&s, libc::SOL_SOCKET, libc::SO_PEEK_OFF, "SO_PEEK_OFF")?,
            messages: queue.lens,
            data: stored,
            senders: queue.senders,
            options: opts,
            reset,
            creds,
            fds,
        });
    }
    Ok(out)
}

/// The credentials of the queued messages of a socket with SO_PASSCRED, with the senders'
/// pids in the job's namespace: restore sends the messages again with them, which only root
/// can (SCM_CREDENTIALS of another process), from the peer of a connected pair, after the
/// processes exist.
fn job_creds(
    queue: &Queue,
    state: &SocketState,
    d: &Diag,
    diag: &HashMap<u64, Diag>,
    id: u64,
    outer_to_ns: &HashMap<i32, i32>,
    who: &str,
) -> Result<Vec<(i32, u32, u32)>> {
    let n = queue.lens.len();
    let refuse = |why: String| {
        Err(Error::Unsupported(format!(
            "{who}: {n} queued message(s) on a socket with SO_PASSCRED carry their senders'              credentials, which {why} (checkpoint again once they are read)"
        )))
    };
    // SAFETY: geteuid has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return refuse("only root can send again in the senders' names".into());
    }
    let pair = match state {
        SocketState::Connected { peer: Some(p) } => {
            diag.get(p).and_then(|x| x.peer) == Some(id)
                && diag.get(p).is_some_and(|x| x.shutdown == 0)
        }
        _ => false,
    };
    if !pair || d.shutdown != 0 {
        return refuse(
            "can only be restored on a connected pair of the job that is not shut down".into(),
        );
    }
    let mut out = Vec::new();
    for &(pid, uid, gid) in &queue.creds {
        match outer_to_ns.get(&pid) {
            Some(&ns) => out.push((ns, uid, gid)),
            None => {
                return refuse(format!(
                    "name the process {pid} (as the agent sees it), not a live process of the job"
                ))
            }
        }
    }
    Ok(out)
}

/// Whether the queue of socket `id` can be refilled once the job's processes exist: it is one
/// end of a connected pair of the job, neither end shut down.
fn refillable_later(state: &SocketState, d: &Diag, diag: &HashMap<u64, Diag>, id: u64) -> bool {
    let pair = match state {
        SocketState::Connected { peer: Some(p) } => {
            diag.get(p).and_then(|x| x.peer) == Some(id)
                && diag.get(p).is_some_and(|x| x.shutdown == 0)
        }
        _ => false,
    };
    pair && d.shutdown == 0
}

/// The descriptors in flight of each queued message as `(pid, fd)` of a process of the job
/// holding the same open file description (`kcmp`): restore sends each message again with
/// the restored process's descriptor.
#[allow(clippy::too_many_arguments)]
fn in_flight(
    queue: &Queue,
    state: &SocketState,
    d: &Diag,
    diag: &HashMap<u64, Diag>,
    id: u64,
    outer: &[i32],
    procs: &[ProcessImage],
    who: &str,
) -> Result<Vec<Vec<(i32, i32)>>> {
    let n: usize = queue.fds.iter().map(Vec::len).sum();
    let refuse = |why: String| {
        Err(Error::Unsupported(format!(
            "{who}: {n} descriptor(s) in flight (SCM_RIGHTS, queued and not received yet) {why}"
        )))
    };
    if !refillable_later(state, d, diag, id) {
        return refuse(
            "can only be checkpointed on a connected pair of the job that is not shut down".into(),
        );
    }
    // SAFETY: getpid has no arguments and cannot fail.
    let me = unsafe { libc::getpid() };
    let mut out = Vec::new();
    for msg in &queue.fds {
        let mut refs = Vec::new();
        for f in msg {
            let holder = outer.iter().zip(procs).find_map(|(&o, p)| {
                p.fds
                    .iter()
                    .find(|x| {
                        // SAFETY: kcmp takes integers only (type 0: KCMP_FILE).
                        let r =
                            unsafe { libc::syscall(libc::SYS_kcmp, me, o, 0, f.as_raw_fd(), x.fd) };
                        r == 0
                    })
                    .map(|x| (p.pid, x.fd))
            });
            match holder {
                Some(h) => refs.push(h),
                None => {
                    let link = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()))
                        .map(|l| l.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    return refuse(format!(
                        "include {link}, which no process of the job holds (only descriptors \
                         also open in a process of the job can be restored)"
                    ));
                }
            }
        }
        out.push(refs);
    }
    Ok(out)
}

/// Refuse the datagram states restore cannot rebuild exactly: queued datagrams whose sender
/// cannot send them again with the same address, and a one-way connection to an unnamed
/// socket.
#[allow(clippy::too_many_arguments)]
fn check_datagrams(
    diag: &HashMap<u64, Diag>,
    id: u64,
    state: &SocketState,
    queue: &Queue,
    raw_name: &dyn Fn(u64) -> Vec<u8>,
    in_job: &dyn Fn(u64) -> bool,
    sockets: &[(u64, i32, i32, i32)],
    who: &str,
) -> Result<()> {
    let mutual = match state {
        SocketState::Connected { peer: Some(p) } => diag.get(p).and_then(|x| x.peer) == Some(id),
        _ => false,
    };
    if let SocketState::Connected { peer: Some(p) } = state {
        if !mutual && raw_name(*p).is_empty() {
            return Err(Error::Unsupported(format!(
                "{who}: datagram socket connected to the unnamed socket:[{p}], which is \
                 connected elsewhere (cannot be rebuilt)"
            )));
        }
    }
    let bad = |what: &str| {
        Err(Error::Unsupported(format!(
            "{who}: a queued datagram {what} (cannot be checkpointed)"
        )))
    };
    for s in &queue.senders {
        match state {
            // A connected pair (or a socket whose peer was closed) only receives from its peer.
            SocketState::Connected { peer: Some(p) } if mutual => {
                if *s != raw_name(*p) {
                    return bad(&format!(
                        "came from {} before the socket was connected",
                        show_name(s)
                    ));
                }
            }
            SocketState::Connected { peer: None } if !s.is_empty() => {
                return bad(&format!(
                    "came from {} while the socket is connected to a closed peer",
                    show_name(s)
                ));
            }
            SocketState::Connected { peer: None } => {}
            _ if diag
                .get(&id)
                .and_then(|d| d.name.as_ref())
                .is_none_or(|n| n.is_empty()) =>
            {
                return bad("is queued on an unnamed socket that has no peer");
            }
            _ if s.is_empty() => {}
            _ => {
                // A named sender: a socket of the job, a closed one (restore binds a socket
                // to the name for a moment), or a live socket outside the job (refused).
                let holder = diag
                    .iter()
                    .find(|(&ino, d)| {
                        ino != 0
                            && d.sock_type as i32 == libc::SOCK_DGRAM
                            && d.name.as_deref().is_some_and(|n| {
                                let n = match n.first() {
                                    Some(0) => n,
                                    _ => n.split(|&b| b == 0).next().unwrap_or(&[]),
                                };
                                n == s.as_slice()
                            })
                    })
                    .map(|(&ino, _)| ino);
                if let Some(h) = holder {
                    if !in_job(h) && !sockets.iter().any(|x| x.0 == h) {
                        return bad(&format!(
                            "came from {} (socket:[{h}]), a socket outside the job",
                            show_name(s)
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Look a socket up by id.
pub fn socket(img: &IpcImage, id: u64) -> Option<&SocketImage> {
    img.sockets.iter().find(|s| s.id == id)
}

/// Sockets grouped as restore creates them: `(a, Some(b))` for a connected pair inside the
/// job, `(a, None)` for every other socket. Each socket appears once.
pub fn socket_groups(img: &IpcImage) -> Vec<(u64, Option<u64>)> {
    let mut out: Vec<(u64, Option<u64>)> = Vec::new();
    let by_id: HashMap<u64, &SocketImage> = img.sockets.iter().map(|s| (s.id, s)).collect();
    for s in &img.sockets {
        if out.iter().any(|(a, b)| *a == s.id || *b == Some(s.id)) {
            continue;
        }
        match s.state {
            SocketState::Connected { peer: Some(p) }
                if by_id
                    .get(&p)
                    .is_some_and(|q| q.state == SocketState::Connected { peer: Some(s.id) }) =>
            {
                out.push((s.id, Some(p)))
            }
            _ => out.push((s.id, None)),
        }
    }
    out
}
