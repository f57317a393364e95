//! What `inet_diag` (NETLINK_SOCK_DIAG) says about the host's TCP sockets that no other
//! interface tells: a listener's backlog and a socket's shutdown state.

use cairn_sys::error::{last_os, Error, Result};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const INET_DIAG_SHUTDOWN: u16 = 8;

/// One TCP socket as `inet_diag` reports it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Diag {
    /// For a listener, its backlog (`sk_max_ack_backlog`).
    pub backlog: u32,
    /// RCV_SHUTDOWN (1) | SEND_SHUTDOWN (2).
    pub shutdown: u8,
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_ne_bytes([b[o], b[o + 1]])
}

/// Every TCP socket of the host's network namespace (IPv4 and IPv6), by inode.
pub(crate) fn tcp() -> Result<HashMap<u64, Diag>> {
    let mut out = HashMap::new();
    for family in [libc::AF_INET, libc::AF_INET6] {
        dump(family as u8, &mut out)?;
    }
    Ok(out)
}

fn dump(family: u8, out: &mut HashMap<u64, Diag>) -> Result<()> {
    // SAFETY: socket() returns a fresh descriptor or -1.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(last_os("opening a sock_diag netlink socket"));
    }
    // SAFETY: `fd` is fresh and owned here.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = Vec::with_capacity(72);
    req.extend_from_slice(&72u32.to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    // inet_diag_req_v2: family, protocol, ext, pad, states, then a zero inet_diag_sockid.
    req.extend_from_slice(&[family, libc::IPPROTO_TCP as u8, 0, 0]);
    req.extend_from_slice(&u32::MAX.to_ne_bytes());
    req.extend_from_slice(&[0u8; 48]);
    // SAFETY: send reads `req.len()` bytes from `req`.
    if unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) } < 0 {
        return Err(last_os("sending an inet_diag request"));
    }
    let mut buf = vec![0u8; 1 << 16];
    loop {
        // SAFETY: recv writes at most `buf.len()` bytes into `buf`.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(last_os("reading inet_diag answers"));
        }
        let b = &buf[..n as usize];
        let mut o = 0;
        while o + 16 <= b.len() {
            let len = u32_at(b, o) as usize;
            let ty = u16_at(b, o + 4);
            if len < 16 || o + len > b.len() {
                return Err(Error::Parse("truncated inet_diag message".into()));
            }
            match ty {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let e = if len >= 20 {
                        -(u32_at(b, o + 16) as i32)
                    } else {
                        0
                    };
                    return Err(Error::Sys {
                        what: "inet_diag request".into(),
                        source: std::io::Error::from_raw_os_error(e),
                    });
                }
                // inet_diag_msg: family, state, timer, retrans, sockid (48 bytes), expires,
                // rqueue, wqueue, uid, inode; then attributes.
                SOCK_DIAG_BY_FAMILY if len >= 16 + 72 => {
                    let m = &b[o + 16..o + len];
                    let mut d = Diag {
                        backlog: u32_at(m, 60),
                        shutdown: 0,
                    };
                    let ino = u64::from(u32_at(m, 68));
                    let mut a = 72;
                    while a + 4 <= m.len() {
                        let alen = usize::from(u16_at(m, a));
                        if alen < 4 || a + alen > m.len() {
                            break;
                        }
                        if u16_at(m, a + 2) == INET_DIAG_SHUTDOWN && alen > 4 {
                            d.shutdown = m[a + 4];
                        }
                        a += (alen + 3) & !3;
                    }
                    if ino != 0 {
                        out.insert(ino, d);
                    }
                }
                _ => {}
            }
            o += (len + 3) & !3;
        }
    }
}
