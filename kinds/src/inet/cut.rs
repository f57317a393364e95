//! The TCP side of a global cut across the agents of a coordinated job (several nodes):
//! the connection ends of a frozen job ([`tcp_ends`]), exchanged through the coordinator,
//! and the wait until every connection to another agent has delivered what this job sent
//! ([`drain`]). With every agent frozen, the peers' kernels still acknowledge, so the data
//! in flight ends up in receive queues, where each agent's capture peeks it.

use super::addr::{canon, name_of};
use super::opts::get_int;
use crate::pipe::capture::steal;
use cairn_sys::error::{Error, Result};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

const SIOCOUTQ: libc::c_ulong = 0x5411;

/// A connected TCP socket end of the job: (getsockname, getpeername), IPv4-mapped addresses
/// as IPv4.
pub type TcpEnd = (SocketAddr, SocketAddr);

/// One connected TCP socket of a frozen process.
struct Held {
    who: String,
    fd: OwnedFd,
    end: TcpEnd,
}

fn inode_of(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Every connected TCP socket of the processes `outer` (outer pids), once each.
fn held(outer: &[i32]) -> Result<Vec<Held>> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for &pid in outer {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let mut fds: Vec<i32> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        fds.sort_unstable();
        for fd in fds {
            let Ok(link) = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")) else {
                continue;
            };
            let Some(inode) = inode_of(&link.to_string_lossy()) else {
                continue;
            };
            if seen.contains(&inode) {
                continue;
            }
            seen.push(inode);
            let Ok(s) = steal(pid, fd) else { continue };
            let domain = get_int(&s, libc::SOL_SOCKET, libc::SO_DOMAIN).unwrap_or(-1);
            let ty = get_int(&s, libc::SOL_SOCKET, libc::SO_TYPE).unwrap_or(-1);
            if (domain != libc::AF_INET && domain != libc::AF_INET6) || ty != libc::SOCK_STREAM {
                continue;
            }
            if let (Some(local), Some(peer)) = (name_of(&s, false)?, name_of(&s, true)?) {
                out.push(Held {
                    who: format!("process {pid} fd {fd} (socket:[{inode}])"),
                    fd: s,
                    end: (canon(local), canon(peer)),
                });
            }
        }
    }
    Ok(out)
}

/// The connected TCP sockets of the frozen processes `outer`.
pub fn tcp_ends(outer: &[i32]) -> Result<Vec<TcpEnd>> {
    Ok(held(outer)?.into_iter().map(|h| h.end).collect())
}

/// Whether `end` is the other side of one of `peers`.
pub fn mirrored(end: TcpEnd, peers: &[TcpEnd]) -> bool {
    peers.iter().any(|p| p.0 == end.1 && p.1 == end.0)
}

/// Waits until every connection of the frozen processes `outer` whose other end is among
/// `peers` (other agents of the job, frozen too) has no byte left in its send queue: the
/// peer's kernel has acknowledged everything, so it all waits in the peer's receive queue.
/// A connection that still holds data after `within` (the peer's receive window is full) is
/// refused, named with its byte count.
pub fn drain(outer: &[i32], peers: &[TcpEnd], within: Duration) -> Result<()> {
    let ours: Vec<Held> = held(outer)?
        .into_iter()
        .filter(|h| mirrored(h.end, peers))
        .collect();
    let deadline = Instant::now() + within;
    loop {
        let mut left = Vec::new();
        for h in &ours {
            let mut v: libc::c_int = 0;
            // SAFETY: SIOCOUTQ writes one int.
            if unsafe { libc::ioctl(h.fd.as_raw_fd(), SIOCOUTQ, &mut v) } < 0 {
                return Err(Error::Sys {
                    what: format!("{}: SIOCOUTQ", h.who),
                    source: std::io::Error::last_os_error(),
                });
            }
            if v > 0 {
                left.push((h, v));
            }
        }
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let list: Vec<String> = left
                .iter()
                .map(|(h, v)| format!("{}: {} -> {} ({v} bytes)", h.who, h.end.0, h.end.1))
                .collect();
            return Err(Error::Unsupported(format!(
                "TCP connections to another agent of the job still hold data their peer has \
                 not received after {} ms with the whole job frozen (the receiver's window is \
                 full); checkpoint again when the receivers have read: {}",
                within.as_millis(),
                list.join("; ")
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
