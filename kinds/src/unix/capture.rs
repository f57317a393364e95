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
    SocketName, SocketState,
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
    }))
}

/// Peek every unread message of socket `fd` without consuming it.
fn peek_socket(fd: &OwnedFd, sock_type: i32, total: u64, who: &str) -> Result<(Vec<u8>, Vec<u64>)> {
    let old = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, "SO_PEEK_OFF")?;
    let r = peek_messages(fd, sock_type, total, who);
    // SO_PEEK_OFF belongs to the program's socket: put it back whatever happened.
    let reset = setsockopt_int(fd, libc::SO_PEEK_OFF, old, "SO_PEEK_OFF");
    let out = r?;
    reset?;
    Ok(out)
}

fn peek_messages(
    fd: &OwnedFd,
    sock_type: i32,
    total: u64,
    who: &str,
) -> Result<(Vec<u8>, Vec<u64>)> {
    let mut cap = 1usize << 16;
    'restart: loop {
        setsockopt_int(fd, libc::SO_PEEK_OFF, 0, "SO_PEEK_OFF")?;
        let mut data = Vec::new();
        let mut lens = Vec::new();
        let mut buf = vec![0u8; cap];
        loop {
            if sock_type != libc::SOCK_DGRAM && data.len() as u64 >= total {
                break;
            }
            let mut ctl = [0u64; 64];
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
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
            let passed_fds = close_passed_fds(&msg);
            if passed_fds {
                return Err(Error::Unsupported(format!(
                    "{who}: a UNIX socket with descriptors in flight (SCM_RIGHTS) cannot be \
                     checkpointed yet"
                )));
            }
            let n = n as usize;
            if sock_type == libc::SOCK_STREAM {
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
                continue;
            }
            if n > buf.len() {
                cap = n.next_power_of_two();
                continue 'restart;
            }
            if n == 0 && sock_type == libc::SOCK_DGRAM {
                return Err(Error::Unsupported(format!(
                    "{who}: a zero-length datagram is queued (cannot be checkpointed yet)"
                )));
            }
            if n == 0 {
                break;
            }
            data.extend_from_slice(&buf[..n]);
            lens.push(n as u64);
        }
        if sock_type == libc::SOCK_STREAM && !data.is_empty() {
            lens.push(data.len() as u64);
        }
        if sock_type != libc::SOCK_DGRAM && data.len() as u64 != total {
            return Err(Error::Parse(format!(
                "{who}: peeked {} unread bytes, the kernel counts {total}",
                data.len()
            )));
        }
        return Ok((data, lens));
    }
}

/// Close descriptors a peek received with SCM_RIGHTS; true when there were any.
fn close_passed_fds(msg: &libc::msghdr) -> bool {
    let mut any = false;
    // SAFETY: CMSG_* walk the control buffer the kernel filled in `msg`.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                any = true;
                let n = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                let p = libc::CMSG_DATA(c) as *const i32;
                for i in 0..n {
                    libc::close(std::ptr::read_unaligned(p.add(i)));
                }
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    any
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
        let diag = sock_diag::dump()?;
        let cwds: Vec<String> = procs.iter().map(|p| p.cwd.clone()).collect();
        for &(id, o, pid, fd) in &sockets {
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
            let name = resolve_name(d, &cwds, &who)?;
            let state = if d.state == sock_diag::STATE_LISTEN {
                let (pending, backlog) = d.rqlen.unwrap_or((0, 0));
                if d.pending > 0 || pending > 0 {
                    return Err(Error::Unsupported(format!(
                        "{who}: listening UNIX socket {} has {} connection(s) not yet \
                         accepted (cannot be checkpointed yet; checkpoint again later)",
                        d.name.as_deref().map(show_name).unwrap_or_default(),
                        d.pending.max(pending as usize)
                    )));
                }
                SocketState::Listening { backlog }
            } else if let Some(peer) = d.peer {
                // Inode 0: a closed peer (which left us fully shut down) or a connection
                // not accepted yet (the peer has no file).
                if peer == 0 && (d.shutdown == 3 || sock_type == libc::SOCK_DGRAM) {
                    SocketState::Connected { peer: None }
                } else if peer == 0 {
                    return Err(Error::Unsupported(format!(
                        "{who}: UNIX socket whose connection was not accepted yet (by a \
                         listener outside the job, or by one of the job's own listeners with \
                         connections waiting) cannot be checkpointed"
                    )));
                } else if sockets.iter().any(|x| x.0 == peer) {
                    SocketState::Connected { peer: Some(peer) }
                } else {
                    let addr = diag
                        .get(&peer)
                        .and_then(|p| p.name.as_deref())
                        .map(|n| format!(" ({})", show_name(n)))
                        .unwrap_or_default();
                    return Err(Error::Unsupported(format!(
                        "{who}: UNIX socket connected to socket:[{peer}]{addr} outside the job \
                         cannot be checkpointed"
                    )));
                }
            } else {
                SocketState::Unconnected
            };
            if sock_type == libc::SOCK_DGRAM {
                let mutual = match state {
                    SocketState::Connected { peer: Some(p) } => {
                        diag.get(&p).and_then(|x| x.peer) == Some(id)
                    }
                    _ => true,
                };
                if name.is_some() || !mutual {
                    return Err(Error::Unsupported(format!(
                        "{who}: bound or one-way connected UNIX datagram sockets cannot be \
                         checkpointed yet (socketpairs can)"
                    )));
                }
            }
            let (data, messages) = if matches!(state, SocketState::Listening { .. }) {
                (Vec::new(), Vec::new())
            } else {
                let total = u64::from(d.rqlen.map_or(0, |r| r.0));
                peek_socket(&s, sock_type, total, &who)?
            };
            let stored = if data.is_empty() {
                None
            } else {
                sink.put_file(pid, fd, &mut data.as_slice())
                    .map_err(io_ctx(format!("{who}: saving unread data")))?;
                Some((pid, fd))
            };
            // SAFETY: fcntl on our own descriptor.
            let fl = unsafe { libc::fcntl(s.as_raw_fd(), libc::F_GETFL) };
            if fl < 0 {
                return Err(last_os("F_GETFL of a socket"));
            }
            img.sockets.push(SocketImage {
                id,
                sock_type,
                nonblock: fl & libc::O_NONBLOCK != 0,
                state,
                name,
                shutdown: d.shutdown,
                sndbuf: getsockopt_int(&s, libc::SOL_SOCKET, libc::SO_SNDBUF, "SO_SNDBUF")?,
                rcvbuf: getsockopt_int(&s, libc::SOL_SOCKET, libc::SO_RCVBUF, "SO_RCVBUF")?,
                peek_off: getsockopt_int(&s, libc::SOL_SOCKET, libc::SO_PEEK_OFF, "SO_PEEK_OFF")?,
                messages,
                data: stored,
            });
        }
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
        let (capacity, data) = if rd {
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
            capacity,
        });
    }
    Ok(img)
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
