//! What the kernel says about UNIX sockets (`NETLINK_SOCK_DIAG`, `unix_diag`): state, local
//! address, socket file, peer, pending connections, queue lengths and shutdown state, for every
//! UNIX socket of this network namespace (the job shares the agent's).

use crate::error::{last_os, Error, Result};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const UDIAG_SHOW_ALL: u32 = 0x1 | 0x2 | 0x4 | 0x8 | 0x10;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_VFS: u16 = 1;
const UNIX_DIAG_PEER: u16 = 2;
const UNIX_DIAG_ICONS: u16 = 3;
const UNIX_DIAG_RQLEN: u16 = 4;
const UNIX_DIAG_SHUTDOWN: u16 = 6;
/// `udiag_state` of a listening socket (TCP_LISTEN).
pub const STATE_LISTEN: u8 = 10;

/// One UNIX socket as `unix_diag` reports it.
#[derive(Debug, Clone, Default)]
pub struct Diag {
    /// SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET.
    pub sock_type: u8,
    /// TCP_* state (1 established, 7 close, 10 listen).
    pub state: u8,
    /// Bound address (`sun_path` bytes; abstract names start with a NUL byte).
    pub name: Option<Vec<u8>>,
    /// (inode, device) of the socket file of a filesystem name.
    pub vfs: Option<(u32, u32)>,
    /// Inode of the peer (0: the peer was closed).
    pub peer: Option<u64>,
    /// Number of connections waiting to be accepted (listening sockets).
    pub pending: usize,
    /// Inodes of the connecting sockets whose connections wait to be accepted, oldest first
    /// (listening sockets).
    pub icons: Vec<u64>,
    /// For a listener (pending, backlog); otherwise (unread bytes, unsent bytes).
    pub rqlen: Option<(u32, u32)>,
    /// RCV_SHUTDOWN (1) | SEND_SHUTDOWN (2).
    pub shutdown: u8,
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_ne_bytes([b[o], b[o + 1]])
}

/// Every UNIX socket of this network namespace, by inode.
pub fn dump() -> Result<HashMap<u64, Diag>> {
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
    let mut req = Vec::with_capacity(40);
    req.extend_from_slice(&40u32.to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(&[libc::AF_UNIX as u8, 0, 0, 0]);
    req.extend_from_slice(&u32::MAX.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(&UDIAG_SHOW_ALL.to_ne_bytes());
    req.extend_from_slice(&[0xff; 8]);
    // SAFETY: send reads `req.len()` bytes from `req`.
    if unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) } < 0 {
        return Err(last_os("sending a unix_diag request"));
    }
    let mut out = HashMap::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        // SAFETY: recv writes at most `buf.len()` bytes into `buf`.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(last_os("reading unix_diag answers"));
        }
        let b = &buf[..n as usize];
        let mut o = 0;
        while o + 16 <= b.len() {
            let len = u32_at(b, o) as usize;
            let ty = u16_at(b, o + 4);
            if len < 16 || o + len > b.len() {
                return Err(Error::Parse("truncated unix_diag message".into()));
            }
            match ty {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    let e = if len >= 20 {
                        -(u32_at(b, o + 16) as i32)
                    } else {
                        0
                    };
                    return Err(Error::Sys {
                        what: "unix_diag request".into(),
                        source: std::io::Error::from_raw_os_error(e),
                    });
                }
                SOCK_DIAG_BY_FAMILY if len >= 32 => {
                    let m = &b[o + 16..o + len];
                    let ino = u64::from(u32_at(m, 4));
                    let mut d = Diag {
                        sock_type: m[1],
                        state: m[2],
                        ..Diag::default()
                    };
                    let mut a = 16;
                    while a + 4 <= m.len() {
                        let alen = usize::from(u16_at(m, a));
                        let aty = u16_at(m, a + 2);
                        if alen < 4 || a + alen > m.len() {
                            break;
                        }
                        let p = &m[a + 4..a + alen];
                        match aty {
                            UNIX_DIAG_NAME => d.name = Some(p.to_vec()),
                            UNIX_DIAG_VFS if p.len() >= 8 => {
                                d.vfs = Some((u32_at(p, 0), u32_at(p, 4)))
                            }
                            UNIX_DIAG_PEER if p.len() >= 4 => {
                                d.peer = Some(u64::from(u32_at(p, 0)))
                            }
                            UNIX_DIAG_ICONS => {
                                d.pending = p.len() / 4;
                                d.icons =
                                    p.chunks_exact(4).map(|c| u64::from(u32_at(c, 0))).collect();
                            }
                            UNIX_DIAG_RQLEN if p.len() >= 8 => {
                                d.rqlen = Some((u32_at(p, 0), u32_at(p, 4)))
                            }
                            UNIX_DIAG_SHUTDOWN if !p.is_empty() => d.shutdown = p[0],
                            _ => {}
                        }
                        a += alen.div_ceil(4) * 4;
                    }
                    out.insert(ino, d);
                }
                _ => {}
            }
            o += len.div_ceil(4) * 4;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_socketpair_with_peers_and_queue() {
        let mut sv = [0i32; 2];
        // SAFETY: socketpair writes two descriptors.
        let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv.as_mut_ptr()) };
        assert_eq!(r, 0);
        // SAFETY: fresh descriptors owned here.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) };
        // SAFETY: write 3 bytes.
        let n = unsafe { libc::write(a.as_raw_fd(), b"abc".as_ptr().cast(), 3) };
        assert_eq!(n, 3);
        let ino = |fd: &OwnedFd| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .unwrap()
                .ino()
        };
        let all = dump().unwrap();
        let da = &all[&ino(&a)];
        let db = &all[&ino(&b)];
        assert_eq!(da.peer, Some(ino(&b)));
        assert_eq!(db.peer, Some(ino(&a)));
        assert_eq!(i32::from(db.sock_type), libc::SOCK_STREAM);
        assert_eq!(db.rqlen.map(|r| r.0), Some(3));
        assert_eq!(da.shutdown, 0);
    }
}
