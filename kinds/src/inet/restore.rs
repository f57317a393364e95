//! Restore of the job's TCP and UDP sockets by the restoring process, before the program
//! runs, over their original addresses (the job shares the host's network namespace):
//!
//! 1. every connection between two sockets of the job is made again: a temporary listener
//!    on the accepting side's address, a socket bound to the other side's address connects
//!    to it, the connection is accepted and the temporary listener closed;
//! 2. the listening sockets, then the connections still waiting in their accept queues;
//! 3. the other sockets (bound, UDP connected), the peer-closed and reset connections;
//! 4. the unread data, written into each connection from its peer end (queued datagrams
//!    sent again from their sources), then half-closes, options and O_NONBLOCK.
//!
//! A port that something outside the job holds now is an error naming it.

use super::addr::{self, canon, parse, reachable};
use super::opts::{self, get_int, recorded, set_int};
use super::repair;
use crate::Recreated;
use cairn_image::{
    FdImage, FdKind, InetSocket, InetState, MemorySource, ProcessTreeImage, Transport,
};
use cairn_sys::error::{io_ctx, Error, Result};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// [`crate::RecreateFn`] of TCP and UDP sockets.
pub fn recreate(image: &ProcessTreeImage, source: &dyn MemorySource) -> Result<Box<dyn Recreated>> {
    Ok(Box::new(Sockets::create(image, source)?))
}

/// The job's TCP and UDP sockets, recreated: id → socket.
#[derive(Default)]
pub struct Sockets(HashMap<u64, OwnedFd>);

impl Recreated for Sockets {
    fn open(&self, pid: i32, fd: &FdImage, _: &dyn MemorySource) -> Option<Result<OwnedFd>> {
        let FdKind::Inet { id } = fd.kind else {
            return None;
        };
        Some(
            self.0
                .get(&id)
                .ok_or_else(|| {
                    Error::Incompatible(format!(
                        "process {pid} fd {}: socket {id} is not in the image",
                        fd.fd
                    ))
                })
                .and_then(|s| s.try_clone().map_err(io_ctx(format!("dup of socket {id}")))),
        )
    }
    fn descriptors_taken(&mut self) {
        self.0.clear();
    }
}

fn who(s: &InetSocket) -> String {
    let t = match s.transport {
        Transport::Tcp => "TCP",
        Transport::Udp => "UDP",
    };
    format!(
        "{t} socket {} ({} -> {})",
        s.id,
        s.local.as_deref().unwrap_or("unbound"),
        s.peer.as_deref().unwrap_or("-")
    )
}

fn new_socket(s: &InetSocket) -> Result<OwnedFd> {
    let (ty, proto) = match s.transport {
        Transport::Tcp => (libc::SOCK_STREAM, libc::IPPROTO_TCP),
        Transport::Udp => (libc::SOCK_DGRAM, libc::IPPROTO_UDP),
    };
    // SAFETY: socket() returns a fresh descriptor or -1.
    let fd = unsafe { libc::socket(s.family, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(opts::os(format!("{}: socket()", who(s))));
    }
    // SAFETY: a fresh descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn address(s: &InetSocket, a: &Option<String>, what: &str) -> Result<SocketAddr> {
    a.as_deref()
        .and_then(parse)
        .ok_or_else(|| Error::Incompatible(format!("{}: no {what} address in the image", who(s))))
}

/// Bind `fd` to the recorded local address of `s`; a port held by something else is an
/// error naming it.
fn bind_local(fd: &OwnedFd, s: &InetSocket) -> Result<()> {
    opts::before_bind(fd, s)?;
    let Some(local) = s.local.as_deref().and_then(parse) else {
        return Ok(());
    };
    addr::bind_adopting(fd, local, s.family).map_err(|e| {
        if e.raw_os_error() == Some(libc::EADDRINUSE) {
            Error::Incompatible(format!(
                "{}: its address {local} is held by another socket now (a program outside \
                 the job, or a connection of the killed job in TIME_WAIT for up to a minute); \
                 free it and restart",
                who(s)
            ))
        } else {
            Error::Sys {
                what: format!("{}: binding {local}", who(s)),
                source: e,
            }
        }
    })
}

/// Room for `unread` bytes to be written into `fd` before the program reads any: a larger
/// receive buffer for the receiver (set before connecting, for the window scale) and send
/// buffer for the sender; their recorded sizes are set at the end.
fn make_room(fd: &OwnedFd, opt: i32, force: i32, unread: u64) {
    if unread <= 64 << 10 {
        return;
    }
    let want = (unread.min(1 << 30) as i32).saturating_mul(2);
    if get_int(fd, libc::SOL_SOCKET, opt).is_ok_and(|v| v >= want) {
        return;
    }
    if set_int(fd, libc::SOL_SOCKET, force, want).is_err() {
        let _ = set_int(fd, libc::SOL_SOCKET, opt, want);
    }
}

fn wait_fd(fd: &OwnedFd, events: i16, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: poll on one pollfd we own.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}

fn accept(l: &OwnedFd, what: &str) -> Result<OwnedFd> {
    if !wait_fd(l, libc::POLLIN, 5000) {
        return Err(Error::Incompatible(format!(
            "{what}: the connection was not made"
        )));
    }
    // SAFETY: accept4 returns a fresh descriptor or -1.
    let fd = unsafe {
        libc::accept4(
            l.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(opts::os(format!("{what}: accept")));
    }
    // SAFETY: a fresh descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Connect `fd` to `to` and wait until the handshake is done.
fn connect_wait(fd: &OwnedFd, to: SocketAddr, family: i32, what: &str) -> Result<()> {
    set_nonblock(fd, true)?;
    addr::connect(fd, to, family).map_err(|e| Error::Sys {
        what: format!("{what}: connecting to {to}"),
        source: e,
    })?;
    if !wait_fd(fd, libc::POLLOUT, 5000) {
        return Err(Error::Incompatible(format!(
            "{what}: connecting to {to} timed out"
        )));
    }
    let err = get_int(fd, libc::SOL_SOCKET, libc::SO_ERROR).unwrap_or(0);
    if err != 0 {
        return Err(Error::Sys {
            what: format!("{what}: connecting to {to}"),
            source: std::io::Error::from_raw_os_error(err),
        });
    }
    set_nonblock(fd, false)
}

fn set_nonblock(fd: &OwnedFd, on: bool) -> Result<()> {
    // SAFETY: fcntl on our own descriptor.
    let r = unsafe {
        libc::fcntl(
            fd.as_raw_fd(),
            libc::F_SETFL,
            if on { libc::O_NONBLOCK } else { 0 },
        )
    };
    if r < 0 {
        return Err(opts::os("fcntl(F_SETFL)"));
    }
    Ok(())
}

fn listen(fd: &OwnedFd, backlog: i32, what: &str) -> Result<()> {
    // SAFETY: listen on our own socket.
    if unsafe { libc::listen(fd.as_raw_fd(), backlog) } < 0 {
        return Err(opts::os(format!("{what}: listen")));
    }
    Ok(())
}

/// A connection from a socket bound to `from` (of `from_family`) to one accepted on `to`
/// (of `to_family`): (connecting end, accepted end). The accepted end inherits what
/// `prepare_listener` sets on the temporary listener.
fn connection(
    from: (&OwnedFd, SocketAddr, i32),
    to: (&InetSocket, SocketAddr),
    prepare_listener: impl FnOnce(&OwnedFd) -> Result<()>,
    what: &str,
) -> Result<OwnedFd> {
    let l = new_socket(to.0)?;
    opts::before_bind(&l, to.0)?;
    prepare_listener(&l)?;
    addr::bind(&l, to.1, to.0.family).map_err(|e| {
        if e.raw_os_error() == Some(libc::EADDRINUSE) {
            Error::Incompatible(format!(
                "{what}: its address {} is held by another socket now (a program outside the \
                 job, or a connection of the killed job in TIME_WAIT for up to a minute); free \
                 it and restart",
                to.1
            ))
        } else {
            Error::Sys {
                what: format!("{what}: binding a listener to {}", to.1),
                source: e,
            }
        }
    })?;
    listen(&l, 1, what)?;
    connect_wait(from.0, reachable(to.1), from.2, what)?;
    let acc = accept(&l, what)?;
    let got = addr::name_of(&acc, true)?.map(canon);
    if got != Some(canon(from.1)) && from.1.port() != 0 {
        return Err(Error::Incompatible(format!(
            "{what}: the connection came from {got:?}, not {}",
            from.1
        )));
    }
    Ok(acc)
}

/// Write all of `data` into `fd` (the receiving end may not read yet: the data must fit in
/// its receive queue and the sender's write queue).
fn write_all(fd: &OwnedFd, mut data: &[u8], what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !data.is_empty() {
        // SAFETY: send reads `data.len()` bytes from `data`.
        let n = unsafe {
            libc::send(
                fd.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EAGAIN) && Instant::now() < deadline {
                wait_fd(fd, libc::POLLOUT, 100);
                continue;
            }
            return Err(Error::Incompatible(format!(
                "{what}: {} unread bytes do not fit into the recreated connection: {e}",
                data.len()
            )));
        }
        data = &data[n as usize..];
    }
    Ok(())
}

fn shutdown(fd: &OwnedFd, how: i32, what: &str) -> Result<()> {
    // SAFETY: shutdown on our own socket.
    if unsafe { libc::shutdown(fd.as_raw_fd(), how) } < 0 {
        return Err(opts::os(format!("{what}: shutdown")));
    }
    Ok(())
}

/// A loopback address of `family` with any port.
fn any_loopback(family: i32) -> SocketAddr {
    if family == libc::AF_INET6 {
        "[::1]:0".parse().expect("a valid address")
    } else {
        "127.0.0.1:0".parse().expect("a valid address")
    }
}

impl Sockets {
    /// Recreate every TCP and UDP socket of the image with its connections, unread data and
    /// options.
    pub fn create(image: &ProcessTreeImage, source: &dyn MemorySource) -> Result<Sockets> {
        let socks = &image.inet.sockets;
        let mut out = Sockets::default();
        if socks.is_empty() {
            return Ok(out);
        }
        let by_id: HashMap<u64, &InetSocket> = socks.iter().map(|s| (s.id, s)).collect();
        let data_of = |s: &InetSocket| -> Result<Vec<u8>> {
            match s.data {
                Some((pid, fd)) => source
                    .read_file(pid, fd)
                    .map_err(io_ctx(format!("{}: reading its unread data", who(s)))),
                None => Ok(Vec::new()),
            }
        };
        // Temporary peers of connections whose other end is not in the job, with the data
        // they still send, closed once it is written.
        let mut lone: Vec<(u64, OwnedFd)> = Vec::new();
        let listening: Vec<&InetSocket> = socks
            .iter()
            .filter(|s| matches!(s.state, InetState::Listening { .. }))
            .collect();
        let is_listener_addr = |a: SocketAddr| {
            listening.iter().any(|l| {
                l.local
                    .as_deref()
                    .and_then(parse)
                    .is_some_and(|la| addr::covers(la, a))
            })
        };
        // 1. Connections inside the job.
        for s in socks {
            let InetState::Connected { peer } = s.state else {
                continue;
            };
            if out.0.contains_key(&s.id) {
                continue;
            }
            let p = *by_id.get(&peer).ok_or_else(|| {
                Error::Incompatible(format!("{}: its peer {peer} is not in the image", who(s)))
            })?;
            let (sl, pl) = (
                address(s, &s.local, "local")?,
                address(p, &p.local, "local")?,
            );
            // The accepting side is the one on a listener's address, if either is.
            let (acc, con, acc_addr, con_addr) = if is_listener_addr(sl) && !is_listener_addr(pl) {
                (s, p, sl, pl)
            } else {
                (p, s, pl, sl)
            };
            let what = format!("recreating TCP connection {con_addr} -> {acc_addr}");
            let c = new_socket(con)?;
            bind_local(&c, con)?;
            make_room(&c, libc::SO_RCVBUF, libc::SO_RCVBUFFORCE, con.unread);
            make_room(&c, libc::SO_SNDBUF, libc::SO_SNDBUFFORCE, acc.unread);
            let a = connection(
                (&c, con_addr, con.family),
                (acc, acc_addr),
                |l| {
                    make_room(l, libc::SO_RCVBUF, libc::SO_RCVBUFFORCE, acc.unread);
                    make_room(l, libc::SO_SNDBUF, libc::SO_SNDBUFFORCE, con.unread);
                    Ok(())
                },
                &what,
            )?;
            out.0.insert(con.id, c);
            out.0.insert(acc.id, a);
        }
        // 1b. Connections to other agents of the job (restored at the same time).
        super::remote::reconnect(socks, &data_of, &mut out.0)?;
        // 2. Listeners, then the connections waiting in their accept queues.
        for s in &listening {
            let InetState::Listening { backlog } = s.state else {
                continue;
            };
            let fd = new_socket(s)?;
            bind_local(&fd, s)?;
            listen(&fd, backlog as i32, &who(s))?;
            out.0.insert(s.id, fd);
        }
        for s in socks {
            let InetState::Pending { .. } = s.state else {
                continue;
            };
            let fd = new_socket(s)?;
            bind_local(&fd, s)?;
            connect_wait(
                &fd,
                reachable(address(s, &s.peer, "peer")?),
                s.family,
                &who(s),
            )?;
            out.0.insert(s.id, fd);
        }
        // 3. The others.
        for s in socks {
            match s.state {
                InetState::Unconnected => {
                    let fd = new_socket(s)?;
                    if s.local.is_some() {
                        bind_local(&fd, s)?;
                    }
                    out.0.insert(s.id, fd);
                }
                InetState::UdpConnected => {
                    let fd = new_socket(s)?;
                    if s.local.is_some() {
                        bind_local(&fd, s)?;
                    }
                    let to = address(s, &s.peer, "peer")?;
                    addr::connect(&fd, to, s.family).map_err(|e| Error::Sys {
                        what: format!("{}: connecting to {to}", who(s)),
                        source: e,
                    })?;
                    out.0.insert(s.id, fd);
                }
                InetState::PeerClosed | InetState::Finished => {
                    // This end, accepted from a temporary peer bound to the recorded peer
                    // address where it is free (any loopback port otherwise).
                    let what = format!("recreating {}", who(s));
                    let local = match s.local.as_deref().and_then(parse) {
                        Some(a) => a,
                        None => any_loopback(s.family),
                    };
                    let t = new_socket(s)?;
                    opts::before_bind(&t, s)?;
                    let mut from = s
                        .peer
                        .as_deref()
                        .and_then(parse)
                        .unwrap_or(any_loopback(s.family));
                    if addr::bind(&t, from, s.family).is_err() {
                        if s.state == InetState::PeerClosed {
                            return Err(Error::Incompatible(format!(
                                "{what}: its peer's address {from} is held by another socket \
                                 now; free it and restart"
                            )));
                        }
                        from = any_loopback(s.family);
                        addr::bind(&t, from, s.family).map_err(|e| Error::Sys {
                            what: format!("{what}: binding"),
                            source: e,
                        })?;
                    }
                    let from = addr::name_of(&t, false)?.unwrap_or(from);
                    make_room(&t, libc::SO_SNDBUF, libc::SO_SNDBUFFORCE, s.unread);
                    let a = connection(
                        (&t, from, s.family),
                        (s, local),
                        |l| {
                            make_room(l, libc::SO_RCVBUF, libc::SO_RCVBUFFORCE, s.unread);
                            Ok(())
                        },
                        &what,
                    )?;
                    out.0.insert(s.id, a);
                    lone.push((s.id, t));
                }
                InetState::Repaired(ref rep) if rep.held => {
                    let fd = new_socket(s)?;
                    opts::before_bind(&fd, s)?;
                    let w = who(s);
                    let peer = address(s, &s.peer, "peer")?;
                    repair::restore(
                        &fd,
                        rep,
                        &data_of(s)?,
                        || {
                            bind_local(&fd, s).map_err(|e| match e {
                                Error::Sys { source, .. }
                                    if source.raw_os_error() == Some(libc::EADDRNOTAVAIL) =>
                                {
                                    Error::Incompatible(format!(
                                        "{w}: cannot be restored in place, its address {} \
                                         does not exist on this host any more",
                                        s.local.as_deref().unwrap_or_default()
                                    ))
                                }
                                e => e,
                            })
                        },
                        || {
                            addr::connect(&fd, peer, s.family).map_err(|e| {
                                Error::Incompatible(format!(
                                    "{w}: cannot be restored in place (connecting in repair \
                                     mode to {peer}: {e})"
                                ))
                            })
                        },
                        &w,
                    )?;
                    out.0.insert(s.id, fd);
                }
                InetState::Reset | InetState::Repaired(_) => {
                    let what = format!("recreating {} as reset by its peer", who(s));
                    let fd = new_socket(s)?;
                    opts::before_bind(&fd, s)?;
                    let l = new_socket(s)?;
                    addr::bind(&l, any_loopback(s.family), s.family).map_err(|e| Error::Sys {
                        what: format!("{what}: binding"),
                        source: e,
                    })?;
                    listen(&l, 1, &what)?;
                    let to = addr::name_of(&l, false)?.ok_or_else(|| {
                        Error::Incompatible(format!("{what}: the listener has no address"))
                    })?;
                    connect_wait(&fd, to, s.family, &what)?;
                    let p = accept(&l, &what)?;
                    // Closing with a zero linger time sends RST.
                    let lin = libc::linger {
                        l_onoff: 1,
                        l_linger: 0,
                    };
                    // SAFETY: setsockopt reads one struct linger.
                    unsafe {
                        libc::setsockopt(
                            p.as_raw_fd(),
                            libc::SOL_SOCKET,
                            libc::SO_LINGER,
                            (&lin as *const libc::linger).cast(),
                            std::mem::size_of::<libc::linger>() as u32,
                        )
                    };
                    drop(p);
                    drop(l);
                    out.0.insert(s.id, fd);
                }
                _ => {}
            }
        }
        // 4. Unread data, from the peer end.
        for s in socks {
            if s.data.is_none() || matches!(s.state, InetState::Repaired(_) | InetState::Remote) {
                continue;
            }
            let data = data_of(s)?;
            let what = format!("refilling {}", who(s));
            match s.state {
                InetState::Connected { peer } => write_all(&out.0[&peer], &data, &what)?,
                InetState::PeerClosed | InetState::Finished => {
                    let t = lone
                        .iter()
                        .find(|x| x.0 == s.id)
                        .map(|x| &x.1)
                        .ok_or_else(|| Error::Incompatible(format!("{what}: no peer")))?;
                    write_all(t, &data, &what)?;
                }
                _ if s.transport == Transport::Udp => {
                    out.resend(s, &data, socks)?;
                }
                _ => {
                    return Err(Error::Incompatible(format!(
                        "{what}: unread data on a socket without a connection"
                    )))
                }
            }
        }
        for (_, t) in lone.drain(..) {
            shutdown(&t, libc::SHUT_WR, "closing a temporary peer")?;
        }
        // 5. Half-closes, options, buffer sizes, O_NONBLOCK.
        for s in socks {
            let fd = &out.0[&s.id];
            let w = who(s);
            if s.shut_wr && !matches!(s.state, InetState::Reset | InetState::Repaired(_)) {
                shutdown(fd, libc::SHUT_WR, &w)?;
            }
            if s.shut_rd {
                shutdown(fd, libc::SHUT_RD, &w)?;
            }
            opts::set_all(fd, s, &w)?;
        }
        for s in socks {
            let fd = &out.0[&s.id];
            out.buffers(fd, s)?;
            if s.nonblock {
                set_nonblock(fd, true)?;
            }
        }
        Ok(out)
    }

    fn buffers(&self, fd: &OwnedFd, s: &InetSocket) -> Result<()> {
        let w = who(s);
        if let Some(v) = recorded(s, "SO_RCVBUF") {
            opts::set_buffer(fd, libc::SO_RCVBUF, libc::SO_RCVBUFFORCE, v, &w)?;
        }
        if let Some(v) = recorded(s, "SO_SNDBUF") {
            opts::set_buffer(fd, libc::SO_SNDBUF, libc::SO_SNDBUFFORCE, v, &w)?;
        }
        Ok(())
    }

    /// Send the queued datagrams of UDP socket `s` again, each from its source: the job's
    /// socket bound there, or a temporary socket bound to it.
    fn resend(&self, s: &InetSocket, data: &[u8], socks: &[InetSocket]) -> Result<()> {
        let me = reachable(address(s, &s.local, "local")?);
        let mut at = 0usize;
        for g in &s.datagrams {
            let what = format!("refilling {}", who(s));
            let from = parse(&g.from)
                .ok_or_else(|| Error::Incompatible(format!("{what}: bad source {}", g.from)))?;
            let end = at + g.len as usize;
            let bytes = data.get(at..end).ok_or_else(|| {
                Error::Incompatible(format!("{what}: the saved datagrams are short"))
            })?;
            at = end;
            let holder = socks.iter().find(|x| {
                x.transport == Transport::Udp
                    && x.local
                        .as_deref()
                        .and_then(parse)
                        .is_some_and(|a| canon(a) == from)
            });
            let temp;
            let (fd, family) = match holder {
                Some(h) => (&self.0[&h.id], h.family),
                None => {
                    temp = new_socket(s)?;
                    opts::before_bind(&temp, s)?;
                    addr::bind(&temp, from, s.family).map_err(|e| {
                        Error::Incompatible(format!(
                            "{what}: a datagram came from {from}, which cannot be bound now \
                             ({e}); free it and restart"
                        ))
                    })?;
                    (&temp, s.family)
                }
            };
            let (sa, len) = addr::to_storage(me, family);
            // SAFETY: sendto reads `bytes` and a sockaddr of `len` bytes.
            let n = unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    bytes.as_ptr().cast(),
                    bytes.len(),
                    libc::MSG_DONTWAIT,
                    (&sa as *const libc::sockaddr_storage).cast(),
                    len,
                )
            };
            if n != bytes.len() as isize {
                return Err(opts::os(format!("{what}: sending a datagram from {from}")));
            }
        }
        Ok(())
    }
}
