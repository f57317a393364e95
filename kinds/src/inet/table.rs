//! The host's TCP sockets as `/proc/net/tcp` and `/proc/net/tcp6` list them (the job shares
//! the host's network namespace): the other end of a connection that no process of the job
//! holds, connections waiting in a listener's accept queue, a listener's backlog.

use super::addr::canon;
use cairn_sys::error::{io_ctx, Result};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// `st` of an established connection.
pub(crate) const ESTABLISHED: u8 = 1;
/// `st` of a connection whose SYN was received.
pub(crate) const SYN_RECV: u8 = 3;
/// `st` of a connection whose peer closed first.
pub(crate) const CLOSE_WAIT: u8 = 8;

/// One line of the table.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Local address (IPv4-mapped addresses as IPv4).
    pub local: SocketAddr,
    /// Remote address (likewise).
    pub remote: SocketAddr,
    /// TCP state.
    pub state: u8,
    /// Receive queue (for a listener: connections waiting to be accepted).
    pub rxq: u32,
    /// Inode of the socket (0: no file, e.g. not accepted yet, or closed).
    pub inode: u64,
}

fn addr4(hex: &str) -> Option<Ipv4Addr> {
    let v = u32::from_str_radix(hex, 16).ok()?;
    Some(Ipv4Addr::from(u32::from_be(v)))
}

fn addr6(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 {
        return None;
    }
    let mut b = [0u8; 16];
    for i in 0..4 {
        let w = u32::from_str_radix(&hex[8 * i..8 * i + 8], 16).ok()?;
        b[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
    }
    Some(Ipv6Addr::from(b))
}

fn endpoint(s: &str) -> Option<SocketAddr> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let ip = if a.len() == 8 {
        std::net::IpAddr::V4(addr4(a)?)
    } else {
        std::net::IpAddr::V6(addr6(a)?)
    };
    Some(canon(SocketAddr::new(ip, port)))
}

fn parse_line(l: &str) -> Option<Entry> {
    let f: Vec<&str> = l.split_whitespace().collect();
    if f.len() < 10 {
        return None;
    }
    let (_, rx) = f[4].split_once(':')?;
    Some(Entry {
        local: endpoint(f[1])?,
        remote: endpoint(f[2])?,
        state: u8::from_str_radix(f[3], 16).ok()?,
        rxq: u32::from_str_radix(rx, 16).ok()?,
        inode: f[9].parse().ok()?,
    })
}

/// Every TCP socket of the host's network namespace.
pub(crate) fn tcp() -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for p in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_ctx(format!("reading {p}"))(e)),
        };
        out.extend(text.lines().skip(1).filter_map(parse_line));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_both_tables() {
        let e = parse_line(
            "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000005 00:00000000 00000000  1000        0 12345 1 0000000000000000 100 0 0 10 0",
        )
        .unwrap();
        assert_eq!(e.local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!((e.state, e.rxq, e.inode), (10, 5, 12345));
        let e = parse_line(
            "   1: 00000000000000000000000001000000:1F90 0000000000000000FFFF00000100007F:A000 01 00000000:00000000 00:00000000 00000000  1000        0 0 1",
        )
        .unwrap();
        assert_eq!(e.local, "[::1]:8080".parse().unwrap());
        assert_eq!(e.remote, "127.0.0.1:40960".parse().unwrap());
    }
}
