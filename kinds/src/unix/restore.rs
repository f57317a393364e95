//! UNIX sockets and FIFOs of the job, recreated by the restoring process before the stubs are
//! forked (see `crate::unix::capture`): listeners are bound and listening again, connections
//! between processes of the job are re-established (a socketpair, or connect + accept through
//! the listener's name so that addresses stay right; connections not accepted yet are
//! connected again and left waiting), unread data is queued again message by message, then
//! buffer sizes, shutdown state, SO_PEEK_OFF, the other options and O_NONBLOCK are set. The
//! order of the steps is in docs/capture-restore.md.

use super::dgram::refill_datagrams;
use super::later::{ns_to_outer, refill_later, Deferred};
use crate::unix::capture::socket_groups;
use crate::Recreated;
use cairn_image::{
    FdImage, FdKind, IpcImage, MemorySource, ProcessTreeImage, SocketImage, SocketName,
    SocketOptions, SocketState,
};
use cairn_sys::error::{io_ctx, last_os};
use cairn_sys::{Error, Result};
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;

/// The job's sockets and FIFOs, ready to be handed to the stubs.
#[derive(Default)]
pub struct Ipc {
    /// Socket id → the socket (every descriptor of it is a dup: one open file description).
    pub sockets: HashMap<u64, OwnedFd>,
    /// FIFO id → path.
    pub fifos: HashMap<u64, String>,
    /// One read-write descriptor per FIFO holding its refilled bytes until the stubs have
    /// opened theirs (dropped with this value).
    holders: Vec<OwnedFd>,
    /// Queues whose messages carry their senders' credentials: sent again once the job's
    /// processes exist (the senders' pids must).
    deferred: Vec<Deferred>,
}

pub(super) fn fd_of(r: i32, what: impl Into<String>) -> Result<OwnedFd> {
    if r < 0 {
        return Err(last_os(what));
    }
    // SAFETY: `r` is a fresh descriptor returned by the kernel and owned by the caller.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

pub(super) fn new_socket(ty: i32) -> Result<OwnedFd> {
    // SAFETY: socket() takes integers only.
    fd_of(
        unsafe { libc::socket(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0) },
        "creating a UNIX socket",
    )
}

pub(super) fn sockaddr(name: &SocketName) -> Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: an all-zero sockaddr_un is valid.
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let (bytes, lead) = match name {
        SocketName::Path { path, .. } => (path.as_bytes(), 0),
        SocketName::Abstract(b) => (b.as_slice(), 1),
    };
    // A path needs its terminating NUL; an abstract name fills sun_path without one.
    if lead + bytes.len() + (1 - lead) > a.sun_path.len() {
        return Err(Error::Incompatible(format!(
            "UNIX socket name {} is too long to bind",
            show(name)
        )));
    }
    for (i, &b) in bytes.iter().enumerate() {
        a.sun_path[lead + i] = b as libc::c_char;
    }
    let base = std::mem::size_of::<libc::sa_family_t>();
    let len = match name {
        SocketName::Path { .. } => base + bytes.len() + 1,
        SocketName::Abstract(_) => base + 1 + bytes.len(),
    };
    Ok((a, len as libc::socklen_t))
}

pub(super) fn show(name: &SocketName) -> String {
    match name {
        SocketName::Path { path, .. } => path.clone(),
        SocketName::Abstract(b) => format!("@{}", String::from_utf8_lossy(b)),
    }
}

/// Bind `fd` to `name`; a stale socket file left at the path (by the killed job) is removed
/// first. Paths whose file was unlinked at the checkpoint are pushed to `unlink_after`.
pub(super) fn bind(fd: &OwnedFd, name: &SocketName, unlink_after: &mut Vec<String>) -> Result<()> {
    if let SocketName::Path { path, exists, .. } = name {
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if !m.file_type().is_socket() {
                return Err(Error::Incompatible(format!(
                    "cannot bind UNIX socket to {path}: a file that is not a socket is there"
                )));
            }
            std::fs::remove_file(path)
                .map_err(io_ctx(format!("removing stale socket file {path}")))?;
        }
        if !exists {
            unlink_after.push(path.clone());
        }
    }
    let (a, len) = sockaddr(name)?;
    // SAFETY: bind reads `len` bytes of `a`.
    if unsafe { libc::bind(fd.as_raw_fd(), (&a as *const libc::sockaddr_un).cast(), len) } < 0 {
        return Err(last_os(format!("binding a UNIX socket to {}", show(name))));
    }
    if let SocketName::Path {
        path,
        exists: true,
        mode,
        owner,
    } = name
    {
        set_file_attrs(path, *mode, *owner)?;
    }
    Ok(())
}

/// Give the socket file at `path` its permission bits and, if recorded and different, its
/// owner.
fn set_file_attrs(path: &str, mode: u32, owner: Option<(u32, u32)>) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if let Some((uid, gid)) = owner {
        let m = std::fs::symlink_metadata(path)
            .map_err(io_ctx(format!("stat of socket file {path}")))?;
        if (m.uid(), m.gid()) != (uid, gid) {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io_ctx(format!(
                "chown of socket file {path} to {uid}:{gid}"
            )))?;
        }
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_ctx(format!("chmod of socket file {path}")))
}

fn listen(fd: &OwnedFd, backlog: u32, name: &str) -> Result<()> {
    // SAFETY: listen takes integers only.
    if unsafe { libc::listen(fd.as_raw_fd(), backlog.min(i32::MAX as u32) as i32) } < 0 {
        return Err(last_os(format!("listening on UNIX socket {name}")));
    }
    Ok(())
}

/// Connect a new socket of `ty` (bound to `own` first, if given) to the listener `l` at
/// `name` and accept the connection: (connecting side, accepted side).
fn connect_accept(
    l: &OwnedFd,
    name: &SocketName,
    ty: i32,
    own: Option<&SocketName>,
    unlink_after: &mut Vec<String>,
) -> Result<(OwnedFd, OwnedFd)> {
    let c = new_socket(ty)?;
    if let Some(n) = own {
        bind(&c, n, unlink_after)?;
    }
    let (a, len) = sockaddr(name)?;
    // SAFETY: connect reads `len` bytes of `a`.
    if unsafe { libc::connect(c.as_raw_fd(), (&a as *const libc::sockaddr_un).cast(), len) } < 0 {
        return Err(last_os(format!("connecting to UNIX socket {}", show(name))));
    }
    // SAFETY: accept4 with null address pointers.
    let s = fd_of(
        unsafe {
            libc::accept4(
                l.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        },
        format!("accepting a connection on {}", show(name)),
    )?;
    Ok((c, s))
}

fn pair(ty: i32) -> Result<(OwnedFd, OwnedFd)> {
    let mut sv = [0i32; 2];
    // SAFETY: socketpair writes two descriptors.
    if unsafe { libc::socketpair(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0, sv.as_mut_ptr()) } < 0 {
        return Err(last_os("socketpair"));
    }
    Ok((fd_of(sv[0], "socketpair")?, fd_of(sv[1], "socketpair")?))
}

/// Connect `fd` to `name` (a datagram socket's one-way connection, or a connection its
/// listener has not accepted: the connection then waits in the listener's queue).
fn connect(fd: &OwnedFd, name: &SocketName) -> Result<()> {
    let (a, len) = sockaddr(name)?;
    // SAFETY: fcntl on our own descriptor; connect reads `len` bytes of `a`.
    let r = unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK);
        libc::connect(fd.as_raw_fd(), (&a as *const libc::sockaddr_un).cast(), len)
    };
    let e = std::io::Error::last_os_error();
    // SAFETY: as above.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, 0) };
    if r < 0 {
        return Err(Error::Sys {
            what: format!("connecting to UNIX socket {}", show(name)),
            source: e,
        });
    }
    Ok(())
}

pub(super) fn set_int(fd: &OwnedFd, opt: i32, v: i32) -> bool {
    // SAFETY: setsockopt reads one int.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&v as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        ) == 0
    }
}

pub(super) fn get_int(fd: &OwnedFd, opt: i32) -> i32 {
    let mut v = 0i32;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: getsockopt writes one int.
    unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut i32).cast(),
            &mut len,
        )
    };
    v
}

/// Give `fd` the buffer size getsockopt reported at the checkpoint (`v`; the kernel doubles
/// what is set); beyond the system limit only root can (SO_*BUFFORCE).
pub(super) fn set_buf(fd: &OwnedFd, opt: i32, force: i32, v: i32) -> Result<()> {
    if get_int(fd, opt) == v {
        return Ok(());
    }
    if !set_int(fd, force, v / 2) && !set_int(fd, opt, v / 2) {
        return Err(last_os("setting a socket buffer size"));
    }
    Ok(())
}

/// Queue `data` (split into `lens` messages) on the socket whose peer is `from`.
fn refill(from: &OwnedFd, s: &SocketImage, data: &[u8]) -> Result<()> {
    let total = data.len() as i32;
    // Room for everything, whatever the sender's buffer was; its size is set back after.
    let old = get_int(from, libc::SO_SNDBUF);
    let need = total.saturating_mul(2).saturating_add(1 << 16);
    if need > old && !set_int(from, libc::SO_SNDBUFFORCE, need) {
        set_int(from, libc::SO_SNDBUF, need);
    }
    let mut off = 0usize;
    for &len in &s.messages {
        let msg = data.get(off..off + len as usize).ok_or_else(|| {
            Error::Incompatible(format!("unread data of socket {} is short", s.id))
        })?;
        off += len as usize;
        let mut sent = 0;
        while sent < msg.len() || (msg.is_empty() && sent == 0) {
            // SAFETY: send reads from `msg`.
            let n = unsafe {
                libc::send(
                    from.as_raw_fd(),
                    msg[sent..].as_ptr().cast(),
                    msg.len() - sent,
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                return Err(last_os(format!(
                    "queueing {} unread bytes on UNIX socket {} again",
                    data.len(),
                    s.id
                )));
            }
            if s.sock_type != libc::SOCK_STREAM && n as usize != msg.len() {
                return Err(Error::Incompatible(format!(
                    "message of {} bytes requeued as {n}",
                    msg.len()
                )));
            }
            sent += n as usize;
            if msg.is_empty() {
                break;
            }
        }
    }
    if need > old && !set_int(from, libc::SO_SNDBUFFORCE, old / 2) {
        set_int(from, libc::SO_SNDBUF, old / 2);
    }
    Ok(())
}

/// Set the options of `opts` on `fd` (socket `id`, for messages).
fn set_options(fd: &OwnedFd, opts: &SocketOptions, id: u64) -> Result<()> {
    let fail = |what: &str| last_os(format!("setting {what} on UNIX socket {id}"));
    if opts.passcred && !set_int(fd, libc::SO_PASSCRED, 1) {
        return Err(fail("SO_PASSCRED"));
    }
    if opts.rcvlowat > 1 && !set_int(fd, libc::SO_RCVLOWAT, opts.rcvlowat) {
        return Err(fail("SO_RCVLOWAT"));
    }
    for (opt, v, what) in [
        (libc::SO_RCVTIMEO, opts.rcvtimeo, "SO_RCVTIMEO"),
        (libc::SO_SNDTIMEO, opts.sndtimeo, "SO_SNDTIMEO"),
    ] {
        if v == (0, 0) {
            continue;
        }
        let tv = libc::timeval {
            tv_sec: v.0,
            tv_usec: v.1,
        };
        // SAFETY: setsockopt reads one timeval.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(fail(what));
        }
    }
    Ok(())
}

fn shutdown(fd: &OwnedFd, how: i32) -> Result<()> {
    // SAFETY: shutdown takes integers only.
    if unsafe { libc::shutdown(fd.as_raw_fd(), how) } < 0 {
        return Err(last_os("restoring the shutdown state of a socket"));
    }
    Ok(())
}

/// [`crate::RecreateFn`] of UNIX sockets and FIFOs.
pub fn recreate(image: &ProcessTreeImage, source: &dyn MemorySource) -> Result<Box<dyn Recreated>> {
    Ok(Box::new(Ipc::create(&image.ipc, source)?))
}

impl Recreated for Ipc {
    fn open(&self, pid: i32, fd: &FdImage, _: &dyn MemorySource) -> Option<Result<OwnedFd>> {
        match fd.kind {
            FdKind::Socket { id } => Some(self.socket(id, pid)),
            FdKind::Fifo { id, flags } => Some(self.fifo(id, flags, pid)),
            _ => None,
        }
    }
    fn descriptors_taken(&mut self) {
        self.sockets.clear();
        self.holders.clear();
    }
    fn finish(&self, root: i32) -> Result<()> {
        if self.deferred.is_empty() {
            return Ok(());
        }
        let outer = ns_to_outer(root)?;
        for d in &self.deferred {
            refill_later(d, &outer)?;
        }
        Ok(())
    }
}

impl Ipc {
    /// Recreate every socket and FIFO of `img`, with unread data from `source`.
    pub fn create(img: &IpcImage, source: &dyn MemorySource) -> Result<Ipc> {
        let mut out = Ipc::default();
        out.create_sockets(img, source)?;
        for f in &img.fifos {
            out.holders.push(open_fifo(&f.path, libc::O_RDWR, f.id)?);
            if let Some((pid, fd)) = f.data {
                let data = source
                    .read_file(pid, fd)
                    .map_err(io_ctx(format!("reading unread bytes of FIFO {}", f.path)))?;
                let h = out.holders.last().map(|h| h.as_raw_fd()).unwrap_or(-1);
                let mut f2 = std::fs::File::from(fd_of(
                    // SAFETY: dup of our own descriptor.
                    unsafe { libc::fcntl(h, libc::F_DUPFD_CLOEXEC, 0) },
                    "dup of a FIFO",
                )?);
                use std::io::Write;
                f2.write_all(&data)
                    .map_err(io_ctx(format!("refilling FIFO {}", f.path)))?;
            }
            out.fifos.insert(f.id, f.path.clone());
        }
        Ok(out)
    }

    fn create_sockets(&mut self, img: &IpcImage, source: &dyn MemorySource) -> Result<()> {
        let by_id: HashMap<u64, &SocketImage> = img.sockets.iter().map(|s| (s.id, s)).collect();
        let mut unlink_after = Vec::new();
        let mut dead_peers: Vec<(u64, OwnedFd)> = Vec::new();
        let groups = socket_groups(img);
        let paired = |id: u64| {
            groups
                .iter()
                .any(|g| g.1.is_some() && (g.0 == id || g.1 == Some(id)))
        };
        // Listeners, unconnected sockets and one-way connected datagram sockets first, bound
        // to their names: connections go through them, datagrams are sent to them.
        for s in &img.sockets {
            let listening = match &s.state {
                SocketState::Listening { backlog, .. } => Some(*backlog),
                SocketState::Unconnected => None,
                SocketState::Connected { peer: Some(_) }
                    if s.sock_type == libc::SOCK_DGRAM && !paired(s.id) =>
                {
                    None
                }
                _ => continue,
            };
            let fd = new_socket(s.sock_type)?;
            if let Some(n) = &s.name {
                bind(&fd, n, &mut unlink_after)?;
            }
            if let Some(backlog) = listening {
                listen(&fd, backlog, &s.name.as_ref().map(show).unwrap_or_default())?;
            }
            self.sockets.insert(s.id, fd);
        }
        let listener_of = |name: &SocketName| {
            img.sockets
                .iter()
                .find(|l| {
                    matches!(l.state, SocketState::Listening { .. })
                        && l.name.as_ref() == Some(name)
                })
                .map(|l| l.id)
        };
        for &(a, b) in &groups {
            let sa = by_id[&a];
            match b {
                Some(b) if sa.sock_type == libc::SOCK_DGRAM => {
                    // A datagram pair: a socketpair, each end bound to its name if it had one.
                    let sb = by_id[&b];
                    let (x, y) = pair(sa.sock_type)?;
                    if let Some(n) = &sa.name {
                        bind(&x, n, &mut unlink_after)?;
                    }
                    if let Some(n) = &sb.name {
                        bind(&y, n, &mut unlink_after)?;
                    }
                    self.sockets.insert(a, x);
                    self.sockets.insert(b, y);
                }
                Some(b) => {
                    let sb = by_id[&b];
                    // The accepted side carries the listener's name.
                    let (srv, cli) = match (&sa.name, &sb.name) {
                        (_, Some(n)) if listener_of(n).is_some() => (sb, sa),
                        (None, Some(_)) => (sb, sa),
                        _ => (sa, sb),
                    };
                    let (fs, fc) = match &srv.name {
                        None => pair(sa.sock_type)?,
                        Some(n) => match listener_of(n) {
                            Some(l) => {
                                let (c, s) = connect_accept(
                                    &self.sockets[&l],
                                    n,
                                    srv.sock_type,
                                    cli.name.as_ref(),
                                    &mut unlink_after,
                                )?;
                                (s, c)
                            }
                            None => {
                                // The listener is gone: a temporary one under its name.
                                let t = new_socket(srv.sock_type)?;
                                bind(&t, n, &mut Vec::new())?;
                                listen(&t, 1, &show(n))?;
                                let (c, s) = connect_accept(
                                    &t,
                                    n,
                                    srv.sock_type,
                                    cli.name.as_ref(),
                                    &mut unlink_after,
                                )?;
                                drop(t);
                                if let SocketName::Path {
                                    path,
                                    exists: false,
                                    ..
                                } = n
                                {
                                    unlink_after.push(path.clone());
                                }
                                (s, c)
                            }
                        },
                    };
                    self.sockets.insert(srv.id, fs);
                    self.sockets.insert(cli.id, fc);
                }
                None => match sa.state {
                    SocketState::Connected { peer: None } => {
                        let (x, y) = pair(sa.sock_type)?;
                        if sa.sock_type == libc::SOCK_DGRAM {
                            if let Some(n) = &sa.name {
                                bind(&x, n, &mut unlink_after)?;
                            }
                        }
                        self.sockets.insert(a, x);
                        dead_peers.push((a, y));
                    }
                    SocketState::Connected { peer: Some(p) }
                        if sa.sock_type != libc::SOCK_DGRAM =>
                    {
                        return Err(Error::Incompatible(format!(
                            "UNIX socket {a} is connected to {p}, which is not connected back"
                        )))
                    }
                    _ => {}
                },
            }
        }
        // Connections their listeners have not accepted yet, in the order they wait.
        for l in &img.sockets {
            let SocketState::Listening { pending, .. } = &l.state else {
                continue;
            };
            for c in pending {
                let sc = by_id.get(c).ok_or_else(|| {
                    Error::Incompatible(format!("pending connection {c} is not in the image"))
                })?;
                let name = l.name.as_ref().ok_or_else(|| {
                    Error::Incompatible(format!("listener {} with connections has no name", l.id))
                })?;
                let fd = new_socket(sc.sock_type)?;
                if let Some(n) = &sc.name {
                    bind(&fd, n, &mut unlink_after)?;
                }
                connect(&fd, name)?;
                self.sockets.insert(sc.id, fd);
            }
        }
        // Unread data (buffer sizes after: refilling enlarges the sender's for a while).
        let mut temps: Vec<(Vec<u8>, OwnedFd)> = Vec::new();
        for s in &img.sockets {
            let Some((pid, fd)) = s.data else { continue };
            let data = source.read_file(pid, fd).map_err(io_ctx(format!(
                "reading unread data of UNIX socket {}",
                s.id
            )))?;
            if !s.creds.is_empty() || s.fds.iter().any(|f| !f.is_empty()) {
                let SocketState::Connected { peer: Some(p) } = s.state else {
                    return Err(Error::Incompatible(format!(
                        "UNIX socket {} with credentials queued has no peer",
                        s.id
                    )));
                };
                self.deferred.push(Deferred {
                    id: s.id,
                    from: self.sockets[&p]
                        .try_clone()
                        .map_err(io_ctx(format!("dup of socket {p}")))?,
                    sndbuf: by_id[&p].sndbuf,
                    data,
                    messages: s.messages.clone(),
                    creds: s.creds.clone(),
                    fds: s.fds.clone(),
                });
                continue;
            }
            let from = match s.state {
                SocketState::Connected { peer: Some(p) }
                    if s.sock_type != libc::SOCK_DGRAM || paired(s.id) =>
                {
                    &self.sockets[&p]
                }
                SocketState::Connected { peer: None } => dead_peers
                    .iter()
                    .find(|d| d.0 == s.id)
                    .map(|d| &d.1)
                    .ok_or_else(|| Error::Incompatible(format!("socket {} has no peer", s.id)))?,
                _ if s.sock_type == libc::SOCK_DGRAM => {
                    refill_datagrams(
                        &self.sockets,
                        s,
                        &data,
                        &by_id,
                        &mut temps,
                        &mut unlink_after,
                    )?;
                    continue;
                }
                _ => {
                    return Err(Error::Incompatible(format!(
                        "unconnected UNIX socket {} has unread data",
                        s.id
                    )))
                }
            };
            refill(from, s, &data)?;
        }
        drop(temps);
        // A peer closed with unread data left ECONNRESET pending: close ours the same way.
        for s in img.sockets.iter().filter(|s| s.reset) {
            let x = &self.sockets[&s.id];
            // SAFETY: send reads one byte.
            if unsafe {
                libc::send(
                    x.as_raw_fd(),
                    b"r".as_ptr().cast(),
                    1,
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            } < 0
            {
                return Err(last_os(format!(
                    "leaving ECONNRESET pending on UNIX socket {}",
                    s.id
                )));
            }
        }
        // One-way connections of datagram sockets, once their queues are filled (a
        // connected socket only takes datagrams from its peer).
        for s in &img.sockets {
            if let SocketState::Connected { peer: Some(p) } = s.state {
                if s.sock_type == libc::SOCK_DGRAM && !paired(s.id) {
                    let name = by_id[&p].name.as_ref().ok_or_else(|| {
                        Error::Incompatible(format!(
                            "datagram socket {} is connected to the unnamed socket {p}",
                            s.id
                        ))
                    })?;
                    connect(&self.sockets[&s.id], name)?;
                }
            }
        }
        for s in &img.sockets {
            let fd = &self.sockets[&s.id];
            set_buf(fd, libc::SO_SNDBUF, libc::SO_SNDBUFFORCE, s.sndbuf)?;
            set_buf(fd, libc::SO_RCVBUF, libc::SO_RCVBUFFORCE, s.rcvbuf)?;
        }
        for s in &img.sockets {
            if s.shutdown & 2 != 0 {
                shutdown(&self.sockets[&s.id], libc::SHUT_WR)?;
            }
        }
        for s in &img.sockets {
            // A stream or seqpacket peer's SHUT_WR (or its close) shuts our reading down.
            let implied = s.sock_type != libc::SOCK_DGRAM
                && match s.state {
                    SocketState::Connected { peer: Some(p) } => by_id[&p].shutdown & 2 != 0,
                    SocketState::Connected { peer: None } => true,
                    _ => false,
                };
            if s.shutdown & 1 != 0 && !implied {
                shutdown(&self.sockets[&s.id], libc::SHUT_RD)?;
            }
        }
        drop(dead_peers);
        for s in &img.sockets {
            let fd = &self.sockets[&s.id];
            if s.peek_off >= 0 && !set_int(fd, libc::SO_PEEK_OFF, s.peek_off) {
                return Err(last_os("setting SO_PEEK_OFF"));
            }
            // Last: SO_PASSCRED would give an unbound socket a name at its next connect/send.
            set_options(fd, &s.options, s.id)?;
            if s.nonblock {
                // SAFETY: fcntl on our own descriptor.
                if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } < 0 {
                    return Err(last_os("setting O_NONBLOCK on a socket"));
                }
            }
        }
        for p in unlink_after {
            let _ = std::fs::remove_file(p);
        }
        Ok(())
    }

    /// A descriptor for socket `id` (the same open file description as every other).
    pub fn socket(&self, id: u64, pid: i32) -> Result<OwnedFd> {
        self.sockets
            .get(&id)
            .ok_or_else(|| {
                Error::Incompatible(format!("socket {id} of process {pid} is not in the image"))
            })?
            .try_clone()
            .map_err(io_ctx(format!("dup of socket {id}")))
    }

    /// A new open of FIFO `id` with `flags` (access mode, O_NONBLOCK).
    pub fn fifo(&self, id: u64, flags: i32, pid: i32) -> Result<OwnedFd> {
        let path = self.fifos.get(&id).ok_or_else(|| {
            Error::Incompatible(format!("FIFO {id} of process {pid} is not in the image"))
        })?;
        let fd = open_fifo(path, flags & libc::O_ACCMODE, id)?;
        if flags & libc::O_NONBLOCK == 0 {
            // SAFETY: fcntl on our own descriptor.
            unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, 0) };
        }
        Ok(fd)
    }
}

/// Open FIFO `path` without blocking (a holder keeps a reader and a writer); it is created
/// (mode 0600) if it no longer exists.
fn open_fifo(path: &str, acc: i32, id: u64) -> Result<OwnedFd> {
    let c = CString::new(path).map_err(|_| Error::Incompatible("FIFO path with NUL".into()))?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_fifo() => {
            return Err(Error::Incompatible(format!(
                "FIFO {path} (id {id}) is no longer a FIFO"
            )))
        }
        Ok(_) => {}
        Err(_) => {
            // SAFETY: mkfifo with a NUL-terminated path.
            if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } < 0 {
                return Err(last_os(format!("recreating FIFO {path}")));
            }
        }
    }
    // SAFETY: open with a NUL-terminated path; O_NONBLOCK never blocks on a FIFO.
    let r = unsafe { libc::open(c.as_ptr(), acc | libc::O_NONBLOCK | libc::O_CLOEXEC) };
    fd_of(r, format!("opening FIFO {path}"))
}
