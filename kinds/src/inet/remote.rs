//! Restore of the TCP connections between two agents of a coordinated job
//! ([`InetState::Remote`]): each agent restores its end at the same time as the other agent
//! restores the other end, on the addresses the image recorded.
//!
//! * **Who accepts.** The end whose local address is the smaller by (port, address) listens
//!   on it (a server's port is usually below its clients' ephemeral ports, so all the
//!   connections a server accepted are accepted again on one temporary listener); the other
//!   end binds its recorded address and connects, retrying while the other agent is not
//!   listening yet. Both agents decide alike from the two addresses alone.
//! * **Unread data.** Each agent holds only the unread data of its own end. Over the new
//!   connection each end first sends its own unread data (length, bytes), reads the other's,
//!   then writes the other's data back: it lands, in order, in the other end's receive
//!   queue. Each agent waits until its own receive queue holds its unread data again. Then
//!   the program's bytes are exactly those of the cut, nothing lost, nothing twice.
//!
//! The waits are bounded ([`WITHIN`]): an agent that does not come is a restart error
//! naming the connection.

use super::addr::{self, canon, name_of, parse};
use super::opts::{self, get_int, set_int};
use cairn_image::{InetSocket, InetState};
use cairn_sys::error::{Error, Result};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// How long an agent waits for the other agents of the job to restore their ends.
pub const WITHIN: Duration = Duration::from_secs(60);

fn who(s: &InetSocket) -> String {
    format!(
        "TCP connection {} -> {} (to another agent of the job)",
        s.local.as_deref().unwrap_or("?"),
        s.peer.as_deref().unwrap_or("?")
    )
}

fn ends(s: &InetSocket) -> Result<(SocketAddr, SocketAddr)> {
    match (
        s.local.as_deref().and_then(parse),
        s.peer.as_deref().and_then(parse),
    ) {
        (Some(l), Some(p)) => Ok((canon(l), canon(p))),
        _ => Err(Error::Incompatible(format!("{}: no addresses", who(s)))),
    }
}

/// Whether the end `local` of a connection to `peer` accepts (rather than connects).
pub fn accepts(local: SocketAddr, peer: SocketAddr) -> bool {
    (local.port(), local.ip()) < (peer.port(), peer.ip())
}

fn socket(s: &InetSocket) -> Result<OwnedFd> {
    // SAFETY: socket() returns a fresh descriptor or -1.
    let fd = unsafe {
        libc::socket(
            s.family,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            libc::IPPROTO_TCP,
        )
    };
    if fd < 0 {
        return Err(opts::os(format!("{}: socket()", who(s))));
    }
    // SAFETY: a fresh descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bind(fd: &OwnedFd, s: &InetSocket, at: SocketAddr) -> Result<()> {
    opts::before_bind(fd, s)?;
    addr::bind_adopting(fd, at, s.family).map_err(|e| match e.raw_os_error() {
        Some(libc::EADDRNOTAVAIL) => Error::Incompatible(format!(
            "{}: the address {} is not an address of this node; a job restarted on other \
             nodes takes its addresses along (cairn restart --adopt-addresses, as root; \
             docs/coordinator.md)",
            who(s),
            at.ip()
        )),
        Some(libc::EADDRINUSE) => Error::Incompatible(format!(
            "{}: its address {at} is held by another socket now (a program outside the job, \
             or a connection of the killed job in TIME_WAIT for up to a minute); free it and \
             restart",
            who(s)
        )),
        _ => Error::Sys {
            what: format!("{}: binding {at}", who(s)),
            source: e,
        },
    })
}

fn poll1(fd: &OwnedFd, events: i16, until: Instant) -> bool {
    let ms = until.saturating_duration_since(Instant::now()).as_millis() as i32;
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: poll on one pollfd we own.
    unsafe { libc::poll(&mut p, 1, ms.max(0)) > 0 }
}

fn nonblock(fd: &OwnedFd, on: bool) -> Result<()> {
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

/// A larger buffer (`opt`, forced as root) when `bytes` must wait in it.
fn room(fd: &OwnedFd, opt: i32, force: i32, bytes: usize) {
    if bytes <= 64 << 10 {
        return;
    }
    let want = (bytes.min(1 << 30) as i32).saturating_mul(2);
    if set_int(fd, libc::SOL_SOCKET, force, want).is_err() {
        let _ = set_int(fd, libc::SOL_SOCKET, opt, want);
    }
}

/// Connects the end `s` (bound to its local address) to its peer, retrying while the other
/// agent is not listening yet.
fn connect(s: &InetSocket, unread: usize, until: Instant) -> Result<OwnedFd> {
    let (local, peer) = ends(s)?;
    let mut last = String::new();
    while Instant::now() < until {
        let fd = socket(s)?;
        bind(&fd, s, local)?;
        room(&fd, libc::SO_RCVBUF, libc::SO_RCVBUFFORCE, unread);
        nonblock(&fd, true)?;
        if let Err(e) = addr::connect(&fd, peer, s.family) {
            last = e.to_string();
        } else if poll1(&fd, libc::POLLOUT, Instant::now() + Duration::from_secs(2)) {
            match get_int(&fd, libc::SOL_SOCKET, libc::SO_ERROR) {
                Ok(0) => {
                    nonblock(&fd, false)?;
                    return Ok(fd);
                }
                Ok(e) => last = std::io::Error::from_raw_os_error(e).to_string(),
                Err(e) => last = e.to_string(),
            }
        } else {
            last = "no answer".into();
        }
        drop(fd);
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(Error::Incompatible(format!(
        "{}: the other agent of the job did not accept it within {} s ({last}); is its \
         agent restarting too?",
        who(s),
        WITHIN.as_secs()
    )))
}

/// Accepts on `l` until every end of `want` (peer address → socket) has come.
fn accept_all(
    l: &OwnedFd,
    at: SocketAddr,
    mut want: HashMap<SocketAddr, u64>,
    until: Instant,
    out: &mut HashMap<u64, OwnedFd>,
) -> Result<()> {
    while !want.is_empty() {
        if !poll1(l, libc::POLLIN, until) {
            let missing: Vec<String> = want.keys().map(|a| a.to_string()).collect();
            return Err(Error::Incompatible(format!(
                "TCP connections to {at} from {} (other agents of the job) were not made \
                 again within {} s; are their agents restarting too?",
                missing.join(", "),
                WITHIN.as_secs()
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
            return Err(opts::os(format!("accepting on {at}")));
        }
        // SAFETY: a fresh descriptor that we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let from = name_of(&fd, true)?.map(canon);
        // Someone else connecting to the temporary listener is turned away.
        if let Some(id) = from.and_then(|f| want.remove(&f)) {
            out.insert(id, fd);
        }
    }
    Ok(())
}

fn write_all(fd: &OwnedFd, mut data: &[u8], until: Instant, what: &str) -> Result<()> {
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
            if e.raw_os_error() == Some(libc::EAGAIN) && Instant::now() < until {
                poll1(
                    fd,
                    libc::POLLOUT,
                    Instant::now() + Duration::from_millis(100),
                );
                continue;
            }
            return Err(Error::Incompatible(format!("{what}: writing: {e}")));
        }
        data = &data[n as usize..];
    }
    Ok(())
}

fn read_exact(fd: &OwnedFd, buf: &mut [u8], until: Instant, what: &str) -> Result<()> {
    let mut at = 0;
    while at < buf.len() {
        // SAFETY: recv writes at most `buf.len() - at` bytes at `buf[at..]`.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf[at..].as_mut_ptr().cast(),
                buf.len() - at,
                libc::MSG_DONTWAIT,
            )
        };
        if n == 0 {
            return Err(Error::Incompatible(format!(
                "{what}: the other agent closed the connection"
            )));
        }
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EAGAIN) && Instant::now() < until {
                poll1(
                    fd,
                    libc::POLLIN,
                    Instant::now() + Duration::from_millis(100),
                );
                continue;
            }
            return Err(Error::Incompatible(format!("{what}: reading: {e}")));
        }
        at += n as usize;
    }
    Ok(())
}

/// Puts `mine` (this end's unread data) back into this end's receive queue through the
/// other agent: send it, read the other end's, write that back, wait for ours to return.
fn exchange(fd: &OwnedFd, mine: &[u8], what: &str, until: Instant) -> Result<()> {
    let (theirs, sent) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| -> Result<()> {
            let mut head = (mine.len() as u64).to_be_bytes().to_vec();
            head.extend_from_slice(mine);
            write_all(fd, &head, until, what)
        });
        let read = (|| -> Result<Vec<u8>> {
            let mut len = [0u8; 8];
            read_exact(fd, &mut len, until, what)?;
            let len = u64::from_be_bytes(len);
            if len > 1 << 31 {
                return Err(Error::Incompatible(format!(
                    "{what}: the other agent announced {len} bytes"
                )));
            }
            let mut theirs = vec![0u8; len as usize];
            read_exact(fd, &mut theirs, until, what)?;
            Ok(theirs)
        })();
        let sent = writer
            .join()
            .unwrap_or_else(|_| Err(Error::Parse(format!("{what}: the writer panicked"))));
        (read, sent)
    });
    let theirs = theirs?;
    sent?;
    room(fd, libc::SO_SNDBUF, libc::SO_SNDBUFFORCE, theirs.len());
    write_all(fd, &theirs, until, what)?;
    // Our own data comes back from the other end.
    loop {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) } < 0 {
            return Err(opts::os(format!("{what}: SIOCINQ")));
        }
        if n as usize >= mine.len() {
            return Ok(());
        }
        if Instant::now() >= until {
            return Err(Error::Incompatible(format!(
                "{what}: {} of its {} unread bytes came back from the other agent",
                n,
                mine.len()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Makes every connection to another agent again, with its unread data; `data_of` reads a
/// socket's unread data from the image.
pub fn reconnect(
    socks: &[InetSocket],
    data_of: &dyn Fn(&InetSocket) -> Result<Vec<u8>>,
    out: &mut HashMap<u64, OwnedFd>,
) -> Result<()> {
    let remote: Vec<&InetSocket> = socks
        .iter()
        .filter(|s| s.state == InetState::Remote)
        .collect();
    if remote.is_empty() {
        return Ok(());
    }
    let until = Instant::now() + WITHIN;
    let mut unread: HashMap<u64, Vec<u8>> = HashMap::new();
    for s in &remote {
        unread.insert(s.id, data_of(s)?);
    }
    // Temporary listeners first, so that the other agents' connects find them.
    let mut listeners: Vec<(SocketAddr, OwnedFd, HashMap<SocketAddr, u64>)> = Vec::new();
    for s in &remote {
        let (local, peer) = ends(s)?;
        if !accepts(local, peer) {
            continue;
        }
        let i = match listeners.iter().position(|l| l.0 == local) {
            Some(i) => i,
            None => {
                let l = socket(s)?;
                bind(&l, s, local)?;
                listeners.push((local, l, HashMap::new()));
                listeners.len() - 1
            }
        };
        room(
            &listeners[i].1,
            libc::SO_RCVBUF,
            libc::SO_RCVBUFFORCE,
            unread[&s.id].len(),
        );
        listeners[i].2.insert(peer, s.id);
    }
    for (at, l, _) in &listeners {
        // SAFETY: listen on our own socket.
        if unsafe { libc::listen(l.as_raw_fd(), 1024) } < 0 {
            return Err(opts::os(format!("listening on {at}")));
        }
    }
    for s in &remote {
        let (local, peer) = ends(s)?;
        if !accepts(local, peer) {
            let fd = connect(s, unread[&s.id].len(), until)?;
            out.insert(s.id, fd);
        }
    }
    for (at, l, want) in listeners {
        accept_all(&l, at, want, until, out)?;
    }
    // The unread data, all connections at once (each waits for its other agent).
    std::thread::scope(|scope| -> Result<()> {
        let jobs: Vec<_> = remote
            .iter()
            .map(|s| {
                let fd = &out[&s.id];
                let mine = &unread[&s.id];
                let what = format!("refilling {}", who(s));
                scope.spawn(move || exchange(fd, mine, &what, until))
            })
            .collect();
        for j in jobs {
            j.join()
                .unwrap_or_else(|_| Err(Error::Parse("a refill thread panicked".into())))?;
        }
        Ok(())
    })
}
