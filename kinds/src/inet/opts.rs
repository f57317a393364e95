//! Socket options of TCP and UDP sockets: which ones are recorded, reading them from the
//! program's socket and setting them on the recreated one.

use cairn_image::{InetSocket, IntOption, Transport};
use cairn_sys::error::{last_os, Result};
use std::os::fd::{AsRawFd, OwnedFd};

/// Which sockets an option applies to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum For {
    All,
    Tcp,
    Udp,
    V4,
    V6,
    UdpV4,
    UdpV6,
}

/// (level, option, name, applies to): the integer options recorded, in the order they are
/// set back (SO_RCVBUF and SO_SNDBUF last, by [`set_buffer`]).
#[rustfmt::skip]
const INT_OPTIONS: &[(i32, i32, &str, For)] = &[
    (libc::SOL_SOCKET, libc::SO_REUSEADDR, "SO_REUSEADDR", For::All),
    (libc::SOL_SOCKET, libc::SO_REUSEPORT, "SO_REUSEPORT", For::All),
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE, "SO_KEEPALIVE", For::Tcp),
    (libc::SOL_SOCKET, libc::SO_BROADCAST, "SO_BROADCAST", For::Udp),
    (libc::SOL_SOCKET, libc::SO_OOBINLINE, "SO_OOBINLINE", For::Tcp),
    (libc::SOL_SOCKET, libc::SO_RCVLOWAT, "SO_RCVLOWAT", For::All),
    (libc::SOL_SOCKET, libc::SO_DONTROUTE, "SO_DONTROUTE", For::All),
    (libc::SOL_SOCKET, libc::SO_TIMESTAMP, "SO_TIMESTAMP", For::All),
    (libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, "SO_TIMESTAMPNS", For::All),
    (libc::SOL_SOCKET, libc::SO_MARK, "SO_MARK", For::All),
    (libc::SOL_SOCKET, libc::SO_PEEK_OFF, "SO_PEEK_OFF", For::All),
    (libc::SOL_SOCKET, libc::SO_RCVBUF, "SO_RCVBUF", For::All),
    (libc::SOL_SOCKET, libc::SO_SNDBUF, "SO_SNDBUF", For::All),
    (libc::IPPROTO_TCP, libc::TCP_NODELAY, "TCP_NODELAY", For::Tcp),
    (libc::IPPROTO_TCP, libc::TCP_CORK, "TCP_CORK", For::Tcp),
    (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, "TCP_KEEPIDLE", For::Tcp),
    (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, "TCP_KEEPINTVL", For::Tcp),
    (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, "TCP_KEEPCNT", For::Tcp),
    (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, "TCP_USER_TIMEOUT", For::Tcp),
    (libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT, "TCP_NOTSENT_LOWAT", For::Tcp),
    (libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, "TCP_DEFER_ACCEPT", For::Tcp),
    (libc::IPPROTO_TCP, libc::TCP_SYNCNT, "TCP_SYNCNT", For::Tcp),
    (libc::IPPROTO_TCP, libc::TCP_LINGER2, "TCP_LINGER2", For::Tcp),
    (libc::IPPROTO_TCP, libc::TCP_THIN_LINEAR_TIMEOUTS, "TCP_THIN_LINEAR_TIMEOUTS", For::Tcp),
    (libc::IPPROTO_IP, libc::IP_TOS, "IP_TOS", For::V4),
    (libc::IPPROTO_IP, libc::IP_TTL, "IP_TTL", For::V4),
    (libc::IPPROTO_IP, libc::IP_RECVTOS, "IP_RECVTOS", For::V4),
    (libc::IPPROTO_IP, libc::IP_RECVTTL, "IP_RECVTTL", For::V4),
    (libc::IPPROTO_IP, libc::IP_PKTINFO, "IP_PKTINFO", For::V4),
    (libc::IPPROTO_IP, libc::IP_RECVERR, "IP_RECVERR", For::V4),
    (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, "IP_MTU_DISCOVER", For::V4),
    (libc::IPPROTO_IP, libc::IP_FREEBIND, "IP_FREEBIND", For::V4),
    (libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, "IP_MULTICAST_TTL", For::UdpV4),
    (libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, "IP_MULTICAST_LOOP", For::UdpV4),
    (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, "IPV6_V6ONLY", For::V6),
    (libc::IPPROTO_IPV6, libc::IPV6_TCLASS, "IPV6_TCLASS", For::V6),
    (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS", For::V6),
    (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO", For::V6),
    (libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS, "IPV6_RECVTCLASS", For::V6),
    (libc::IPPROTO_IPV6, libc::IPV6_RECVERR, "IPV6_RECVERR", For::V6),
    (libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, "IPV6_MTU_DISCOVER", For::V6),
    (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, "IPV6_MULTICAST_HOPS", For::UdpV6),
    (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, "IPV6_MULTICAST_LOOP", For::UdpV6),
    // After IP_TOS and IPV6_TCLASS, which change it.
    (libc::SOL_SOCKET, libc::SO_PRIORITY, "SO_PRIORITY", For::All),
];

fn applies(f: For, family: i32, t: Transport) -> bool {
    match f {
        For::All => true,
        For::Tcp => t == Transport::Tcp,
        For::Udp => t == Transport::Udp,
        For::V4 => family == libc::AF_INET,
        For::V6 => family == libc::AF_INET6,
        For::UdpV4 => t == Transport::Udp && family == libc::AF_INET,
        For::UdpV6 => t == Transport::Udp && family == libc::AF_INET6,
    }
}

/// getsockopt of one int.
pub(crate) fn get_int(fd: &OwnedFd, level: i32, opt: i32) -> std::io::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most one int into `v`.
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
        return Err(std::io::Error::last_os_error());
    }
    Ok(v)
}

/// setsockopt of one int.
pub(crate) fn set_int(fd: &OwnedFd, level: i32, opt: i32, v: i32) -> std::io::Result<()> {
    set_raw(fd, level, opt, &v)
}

fn set_raw<T>(fd: &OwnedFd, level: i32, opt: i32, v: &T) -> std::io::Result<()> {
    // SAFETY: setsockopt reads size_of::<T>() bytes from `v`.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn get_raw<T>(fd: &OwnedFd, level: i32, opt: i32, v: &mut T) -> std::io::Result<()> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most size_of::<T>() bytes into `v`.
    let r = unsafe { libc::getsockopt(fd.as_raw_fd(), level, opt, (v as *mut T).cast(), &mut len) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// What [`capture`] records: the integer options, SO_LINGER (seconds when on), SO_RCVTIMEO
/// and SO_SNDTIMEO (microseconds).
pub(crate) type Recorded = (Vec<IntOption>, Option<i32>, (i64, i64));

/// The recorded options of the program's socket `fd`: integers, SO_LINGER, the timeouts.
pub(crate) fn capture(fd: &OwnedFd, family: i32, t: Transport) -> Result<Recorded> {
    let mut ints = Vec::new();
    for &(level, opt, name, f) in INT_OPTIONS {
        if !applies(f, family, t) {
            continue;
        }
        if let Ok(value) = get_int(fd, level, opt) {
            ints.push(IntOption {
                name: name.to_string(),
                value,
            });
        }
    }
    let mut l = libc::linger {
        l_onoff: 0,
        l_linger: 0,
    };
    get_raw(fd, libc::SOL_SOCKET, libc::SO_LINGER, &mut l).map_err(|e| cairn_sys::Error::Sys {
        what: "getsockopt(SO_LINGER)".into(),
        source: e,
    })?;
    let linger = (l.l_onoff != 0).then_some(l.l_linger);
    let mut tv = [libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    }; 2];
    for (i, opt) in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO]
        .into_iter()
        .enumerate()
    {
        get_raw(fd, libc::SOL_SOCKET, opt, &mut tv[i]).map_err(|e| cairn_sys::Error::Sys {
            what: "getsockopt(SO_RCVTIMEO/SO_SNDTIMEO)".into(),
            source: e,
        })?;
    }
    let us = |t: &libc::timeval| t.tv_sec * 1_000_000 + t.tv_usec;
    Ok((ints, linger, (us(&tv[0]), us(&tv[1]))))
}

/// The recorded value of integer option `name`.
pub(crate) fn recorded(s: &InetSocket, name: &str) -> Option<i32> {
    s.options.iter().find(|o| o.name == name).map(|o| o.value)
}

/// Set the options that must be in place before bind(2): IPV6_V6ONLY, and SO_REUSEADDR /
/// SO_REUSEPORT on (the restore binds original ports that the killed job's connections may
/// still hold in TIME_WAIT; [`set_all`] puts back the recorded values).
pub(crate) fn before_bind(fd: &OwnedFd, s: &InetSocket) -> Result<()> {
    if s.family == libc::AF_INET6 {
        if let Some(v) = recorded(s, "IPV6_V6ONLY") {
            set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, v)
                .map_err(|e| sys("setsockopt(IPV6_V6ONLY)", e))?;
        }
    }
    set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)
        .map_err(|e| sys("setsockopt(SO_REUSEADDR)", e))?;
    if recorded(s, "SO_REUSEPORT") == Some(1) {
        set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)
            .map_err(|e| sys("setsockopt(SO_REUSEPORT)", e))?;
    }
    Ok(())
}

fn sys(what: &str, e: std::io::Error) -> cairn_sys::Error {
    cairn_sys::Error::Sys {
        what: what.to_string(),
        source: e,
    }
}

/// Set every recorded option of `s` on `fd` whose value differs from the recorded one.
pub(crate) fn set_all(fd: &OwnedFd, s: &InetSocket, who: &str) -> Result<()> {
    for o in &s.options {
        let Some(&(level, opt, name, _)) = INT_OPTIONS.iter().find(|x| x.2 == o.name) else {
            continue;
        };
        let apart = (level == libc::IPPROTO_IPV6 && opt == libc::IPV6_V6ONLY)
            || (level == libc::SOL_SOCKET && (opt == libc::SO_RCVBUF || opt == libc::SO_SNDBUF));
        if apart {
            continue;
        }
        if get_int(fd, level, opt).ok() == Some(o.value) {
            continue;
        }
        set_int(fd, level, opt, o.value)
            .map_err(|e| sys(&format!("{who}: setting {name} to {}", o.value), e))?;
    }
    let l = libc::linger {
        l_onoff: i32::from(s.linger.is_some()),
        l_linger: s.linger.unwrap_or(0),
    };
    set_raw(fd, libc::SOL_SOCKET, libc::SO_LINGER, &l).map_err(|e| sys("SO_LINGER", e))?;
    for (opt, us) in [
        (libc::SO_RCVTIMEO, s.timeouts.0),
        (libc::SO_SNDTIMEO, s.timeouts.1),
    ] {
        let tv = libc::timeval {
            tv_sec: us / 1_000_000,
            tv_usec: us % 1_000_000,
        };
        set_raw(fd, libc::SOL_SOCKET, opt, &tv).map_err(|e| sys("SO_RCVTIMEO/SO_SNDTIMEO", e))?;
    }
    Ok(())
}

/// Give `fd` the buffer size `want` that getsockopt(`opt`) reported at the checkpoint
/// (the kernel doubles what is set; beyond the system's limit only the privileged
/// `force` option reaches it). Nothing is set when it already has that size, or when the
/// size is odd: then the kernel's automatic tuning chose it, which goes on for the new socket.
pub(crate) fn set_buffer(fd: &OwnedFd, opt: i32, force: i32, want: i32, who: &str) -> Result<()> {
    // An odd size was never set by the program (the kernel doubles what is set): the
    // kernel's own tuning grew it, and goes on tuning the new socket's.
    if get_int(fd, libc::SOL_SOCKET, opt).ok() == Some(want) || want % 2 == 1 {
        return Ok(());
    }
    let half = want / 2;
    if set_int(fd, libc::SOL_SOCKET, force, half).is_err() {
        set_int(fd, libc::SOL_SOCKET, opt, half)
            .map_err(|e| sys(&format!("{who}: setting the buffer size"), e))?;
    }
    let got = get_int(fd, libc::SOL_SOCKET, opt).map_err(|e| sys("getsockopt", e))?;
    if got != want {
        return Err(cairn_sys::Error::Incompatible(format!(
            "{who}: its buffer size was {want} bytes; only {got} can be set without privileges \
             (the system's limit, net.core.rmem_max / wmem_max)"
        )));
    }
    Ok(())
}

/// Used by the capture when `what` fails.
pub(crate) fn os(what: impl Into<String>) -> cairn_sys::Error {
    last_os(what.into())
}
