//! UNIX sockets and FIFOs between processes of the job, and the job's System V shared memory
//! (`crate::sysv`): what restore needs to rebuild them, unread data included.
//!
//! * A UNIX socket is described by `unix_diag` (state, address, peer, connections waiting in
//!   a listener, queue lengths, shutdown state); its options and unread data are read from a
//!   copy of the descriptor (`pidfd_getfd`, `crate::unix::peek`); the program's socket is
//!   left untouched. Every socket leading outside the job is named in one refusal.
//! * A FIFO is recorded with its path and its unread bytes (`tee`, as for pipes).
//!
//! Rules (what is refused and why): docs/capture-restore.md.

use super::peek::{getsockopt_int, options, peek_socket, Queue};
use super::queued::{check_datagrams, in_flight, job_creds};
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
