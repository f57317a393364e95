//! Socket addresses between the kernel's `sockaddr` and `std::net::SocketAddr`, and the
//! socket calls that take them.

use cairn_sys::error::{last_os, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd};

/// The address as the program sees it, IPv4-mapped IPv6 addresses as IPv4 (for comparing
/// the two ends of a dual-stack connection).
pub(crate) fn canon(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, v6.port())),
            None => a,
        },
        v4 => v4,
    }
}

/// Whether a socket bound to `bound` receives connections for `to` (same port, same or
/// wildcard address).
pub(crate) fn covers(bound: SocketAddr, to: SocketAddr) -> bool {
    let (b, t) = (canon(bound), canon(to));
    b.port() == t.port()
        && (b.ip() == t.ip()
            || b.ip().is_unspecified() && (bound.is_ipv6() || t.is_ipv4())
            || matches!(bound, SocketAddr::V6(v) if v.ip().is_unspecified()))
}

fn from_storage(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match s.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(s as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(s as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// `addr` as a sockaddr of `family` (an IPv4 address on an AF_INET6 socket becomes
/// IPv4-mapped, an IPv4-mapped one on an AF_INET socket IPv4).
pub(crate) fn to_storage(addr: SocketAddr, family: i32) -> (libc::sockaddr_storage, u32) {
    // SAFETY: an all-zero sockaddr_storage is valid.
    let mut s: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let addr = match (addr, family) {
        (SocketAddr::V4(v4), libc::AF_INET6) => {
            SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
        }
        (a, libc::AF_INET) => canon(a),
        (a, _) => a,
    };
    match addr {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
            let a = unsafe { &mut *(&mut s as *mut _ as *mut libc::sockaddr_in) };
            a.sin_family = libc::AF_INET as u16;
            a.sin_port = v4.port().to_be();
            a.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            (s, std::mem::size_of::<libc::sockaddr_in>() as u32)
        }
        SocketAddr::V6(v6) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in6.
            let a = unsafe { &mut *(&mut s as *mut _ as *mut libc::sockaddr_in6) };
            a.sin6_family = libc::AF_INET6 as u16;
            a.sin6_port = v6.port().to_be();
            a.sin6_addr.s6_addr = v6.ip().octets();
            a.sin6_flowinfo = v6.flowinfo();
            a.sin6_scope_id = v6.scope_id();
            (s, std::mem::size_of::<libc::sockaddr_in6>() as u32)
        }
    }
}

/// getsockname (`peer` false) or getpeername of `fd`; `None` when not connected (ENOTCONN).
pub(crate) fn name_of(fd: &OwnedFd, peer: bool) -> Result<Option<SocketAddr>> {
    // SAFETY: an all-zero sockaddr_storage is valid.
    let mut s: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: the call writes at most `len` bytes into `s`.
    let r = unsafe {
        if peer {
            libc::getpeername(
                fd.as_raw_fd(),
                (&mut s as *mut libc::sockaddr_storage).cast(),
                &mut len,
            )
        } else {
            libc::getsockname(
                fd.as_raw_fd(),
                (&mut s as *mut libc::sockaddr_storage).cast(),
                &mut len,
            )
        }
    };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOTCONN) {
            return Ok(None);
        }
        return Err(last_os(if peer { "getpeername" } else { "getsockname" }));
    }
    Ok(from_storage(&s))
}

/// The source address of a message `recvmsg` filled into `s`.
pub(crate) fn from_msg_name(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    from_storage(s)
}

/// bind(2) `fd` (of `family`) to `addr`.
pub(crate) fn bind(fd: &OwnedFd, addr: SocketAddr, family: i32) -> std::io::Result<()> {
    let (s, len) = to_storage(addr, family);
    // SAFETY: `s` holds a valid sockaddr of `len` bytes.
    if unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&s as *const libc::sockaddr_storage).cast(),
            len,
        )
    } < 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// connect(2) `fd` (of `family`) to `addr`; EINPROGRESS is not an error.
pub(crate) fn connect(fd: &OwnedFd, addr: SocketAddr, family: i32) -> std::io::Result<()> {
    let (s, len) = to_storage(addr, family);
    // SAFETY: `s` holds a valid sockaddr of `len` bytes.
    if unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&s as *const libc::sockaddr_storage).cast(),
            len,
        )
    } < 0
    {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(())
}

/// The loopback address of the family of `a`, with `a`'s port (where a socket bound to a
/// wildcard address is reached).
pub(crate) fn reachable(a: SocketAddr) -> SocketAddr {
    if !a.ip().is_unspecified() {
        return a;
    }
    let ip = match a {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    };
    SocketAddr::new(ip, a.port())
}

/// Parse an address written by [`show`].
pub(crate) fn parse(s: &str) -> Option<SocketAddr> {
    s.parse().ok()
}

/// `ip:port` (IPv6 in brackets).
pub(crate) fn show(a: SocketAddr) -> String {
    a.to_string()
}

/// Whether a restore may add a job's address that this node lacks to it
/// ([`set_adopt_addresses`]).
static ADOPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Lets the restores of this process add an address of the job that this node does not have
/// to the interface that reaches it (`ip addr add ADDR/32 dev DEV`, needs CAP_NET_ADMIN):
/// a job restarted on other nodes takes its addresses along (docs/coordinator.md).
pub fn set_adopt_addresses(on: bool) {
    ADOPT.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Adds `ip` to the interface of this node's route towards it; a one-line error otherwise.
fn adopt(ip: IpAddr) -> std::result::Result<(), String> {
    let fam = if ip.is_ipv4() { "-4" } else { "-6" };
    let run = |args: &[&str]| -> std::result::Result<String, String> {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("running ip: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let ip_s = ip.to_string();
    let route = run(&[fam, "route", "get", &ip_s])?;
    let mut words = route.split_whitespace();
    let dev = loop {
        match words.next() {
            Some("dev") => break words.next().map(str::to_string),
            Some(_) => {}
            None => break None,
        }
    }
    .ok_or_else(|| format!("no route to {ip} on this node"))?;
    let prefix = if ip.is_ipv4() { "/32" } else { "/128" };
    run(&[fam, "addr", "add", &format!("{ip}{prefix}"), "dev", &dev]).map(|_| ())
}

/// [`bind`], adding the address to this node first when it is not one of its addresses and
/// [`set_adopt_addresses`] allows it.
pub(crate) fn bind_adopting(fd: &OwnedFd, addr: SocketAddr, family: i32) -> std::io::Result<()> {
    match bind(fd, addr, family) {
        Err(e)
            if e.raw_os_error() == Some(libc::EADDRNOTAVAIL)
                && ADOPT.load(std::sync::atomic::Ordering::Relaxed) =>
        {
            adopt(canon(addr).ip()).map_err(|why| {
                std::io::Error::other(format!(
                    "{} is not an address of this node, and adding it failed: {why}",
                    addr.ip()
                ))
            })?;
            bind(fd, addr, family)
        }
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn mapped_addresses_compare_as_ipv4() {
        assert_eq!(canon(a("[::ffff:127.0.0.1]:80")), a("127.0.0.1:80"));
        assert_eq!(canon(a("[::1]:80")), a("[::1]:80"));
    }

    #[test]
    fn wildcard_listeners_cover_their_port() {
        assert!(covers(a("0.0.0.0:80"), a("127.0.0.1:80")));
        assert!(covers(a("[::]:80"), a("127.0.0.1:80")));
        assert!(covers(a("[::]:80"), a("[::1]:80")));
        assert!(!covers(a("0.0.0.0:80"), a("[::1]:80")));
        assert!(!covers(a("127.0.0.1:80"), a("127.0.0.2:80")));
        assert!(!covers(a("127.0.0.1:80"), a("127.0.0.1:81")));
    }

    #[test]
    fn ipv4_on_an_ipv6_socket_is_mapped() {
        let (s, len) = to_storage(a("127.0.0.1:5"), libc::AF_INET6);
        assert_eq!(len as usize, std::mem::size_of::<libc::sockaddr_in6>());
        assert_eq!(from_storage(&s), Some(a("[::ffff:127.0.0.1]:5")));
        let (s, _) = to_storage(a("[::ffff:127.0.0.1]:5"), libc::AF_INET);
        assert_eq!(from_storage(&s), Some(a("127.0.0.1:5")));
    }
}
