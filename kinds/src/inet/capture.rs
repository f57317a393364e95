//! Capture of the job's TCP and UDP sockets from a copy of each descriptor (`pidfd_getfd`):
//! addresses (getsockname/getpeername), state (TCP_INFO), options, and the data in flight,
//! read with MSG_PEEK so that the program's sockets are left as they were.
//!
//! Where the data of a TCP connection is:
//! * in the receiver's receive queue: peeked there (with SO_PEEK_OFF walking datagrams for
//!   UDP, which also gives each datagram's source);
//! * still in the sender's write queue, not yet received by its peer (the receiver is not
//!   reading and its window is closed): as root, the write queue is peeked in TCP_REPAIR mode
//!   (turned off again at once, without a window probe) and the part the receiver lacks is
//!   taken from its end, by sequence numbers; as an ordinary user the checkpoint is refused
//!   (TCP_REPAIR needs CAP_NET_ADMIN), never taken without it.
//!
//! A connection whose other end no process of the job holds follows
//! [`crate::CheckpointOptions::external_tcp`].

use super::addr::{self, canon, covers, name_of, show};
use super::diag;
use super::opts::{self, get_int, set_int};
use super::table::{self, Entry};
use super::ExternalTcp;
use crate::pipe::capture::steal;
use crate::{FrozenJob, OpenFd};
use cairn_image::{
    Datagram, FdKind, InetImage, InetSocket, InetState, MemorySink, ProcessTreeImage, Transport,
};
use cairn_sys::error::{io_ctx, Error, Result};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

const TCP_REPAIR: i32 = 19;
const TCP_REPAIR_QUEUE: i32 = 20;
const TCP_QUEUE_SEQ: i32 = 21;
const TCP_RECV_QUEUE: i32 = 1;
const TCP_SEND_QUEUE: i32 = 2;
const TCP_REPAIR_OFF_NO_WP: i32 = -1;
const SIOCOUTQ: libc::c_ulong = 0x5411;
const SIOCOUTQNSD: libc::c_ulong = 0x894B;

/// The job's sockets (inode) on which a checkpoint set SO_REUSEADDR, with the program's own
/// value, which later checkpoints record instead.
static FORCED: std::sync::Mutex<Vec<(u64, i32)>> = std::sync::Mutex::new(Vec::new());

/// TCP states (include/net/tcp_states.h).
mod st {
    pub const ESTABLISHED: u8 = 1;
    pub const SYN_SENT: u8 = 2;
    pub const FIN_WAIT1: u8 = 4;
    pub const FIN_WAIT2: u8 = 5;
    pub const CLOSE: u8 = 7;
    pub const CLOSE_WAIT: u8 = 8;
    pub const LAST_ACK: u8 = 9;
    pub const LISTEN: u8 = 10;
    pub const CLOSING: u8 = 11;
}

/// Whether a socket in TCP state `s` has sent its FIN (the program shut down writing).
fn fin_sent(s: u8) -> bool {
    matches!(
        s,
        st::FIN_WAIT1 | st::FIN_WAIT2 | st::CLOSING | st::LAST_ACK
    )
}

/// Whether a socket in TCP state `s` has received its peer's FIN.
fn fin_received(s: u8) -> bool {
    matches!(s, st::CLOSE_WAIT | st::CLOSING | st::LAST_ACK)
}

fn inode_of(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// [`crate::DescribeFn`] of TCP and UDP sockets: a socket of address family AF_INET or
/// AF_INET6 inside the job (other protocols of those families are refused here).
pub fn describe(fd: &OpenFd<'_>, _: &mut dyn MemorySink) -> Option<Result<FdKind>> {
    let id = inode_of(fd.link)?;
    if !fd.inside {
        return None;
    }
    let s = steal(fd.pid, fd.fd).ok()?;
    let domain = get_int(&s, libc::SOL_SOCKET, libc::SO_DOMAIN).ok()?;
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return None;
    }
    let ty = get_int(&s, libc::SOL_SOCKET, libc::SO_TYPE).unwrap_or(-1);
    let proto = get_int(&s, libc::SOL_SOCKET, libc::SO_PROTOCOL).unwrap_or(-1);
    Some(match (ty, proto) {
        (libc::SOCK_STREAM, libc::IPPROTO_TCP) | (libc::SOCK_DGRAM, libc::IPPROTO_UDP) => {
            Ok(FdKind::Inet { id })
        }
        (libc::SOCK_RAW, _) => Err(fd.unsupported("a raw IP socket")),
        (libc::SOCK_DGRAM, libc::IPPROTO_ICMP | libc::IPPROTO_ICMPV6) => {
            Err(fd.unsupported("an ICMP (ping) socket"))
        }
        (_, p) => Err(fd.unsupported(format!(
            "an IP socket of type {ty} and protocol {p} (only TCP and UDP can be checkpointed)"
        ))),
    })
}

/// One socket being captured.
struct Live {
    fd: OwnedFd,
    who: String,
    ns_pid: i32,
    fdn: i32,
    img: InetSocket,
    tcp_state: u8,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    /// How much of the receive queue the tail follows.
    tail_after: Option<usize>,
    /// The backlog of a listener (inet_diag).
    backlog: u32,
    /// Bytes the peer sent that this end has not received yet (taken from the peer's write
    /// queue), appended to the unread data.
    tail: Vec<u8>,
}

fn ioctl_int(fd: &OwnedFd, req: libc::c_ulong, what: &str) -> Result<u32> {
    let mut v: libc::c_int = 0;
    // SAFETY: these ioctls write one int.
    if unsafe { libc::ioctl(fd.as_raw_fd(), req, &mut v) } < 0 {
        return Err(opts::os(what));
    }
    Ok(v as u32)
}

fn tcp_info(fd: &OwnedFd) -> Result<[u8; 232]> {
    let mut b = [0u8; 232];
    let mut len = b.len() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            b.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(opts::os("getsockopt(TCP_INFO)"));
    }
    Ok(b)
}

/// [`crate::CaptureFn`] of TCP and UDP sockets.
pub fn capture_job(
    job: &FrozenJob<'_>,
    image: &mut ProcessTreeImage,
    sink: &mut dyn MemorySink,
) -> Result<()> {
    let mut live: Vec<Live> = Vec::new();
    for (&o, p) in job.outer.iter().zip(&image.processes) {
        for f in &p.fds {
            let FdKind::Inet { id } = f.kind else {
                continue;
            };
            if live.iter().any(|l| l.img.id == id) {
                continue;
            }
            live.push(open(o, p.pid, f.fd, id)?);
        }
    }
    if live.is_empty() {
        image.inet = InetImage::default();
        return Ok(());
    }
    let tcp_table = if live.iter().any(|l| l.img.transport == Transport::Tcp) {
        table::tcp()?
    } else {
        Vec::new()
    };
    let diags = if tcp_table.is_empty() {
        Default::default()
    } else {
        diag::tcp()?
    };
    for l in &mut live {
        if let Some(d) = diags.get(&l.img.id) {
            l.backlog = d.backlog;
            l.img.shut_wr = d.shutdown & 2 != 0;
            // RCV_SHUTDOWN without a FIN received: the program's SHUT_RD.
            l.img.shut_rd = d.shutdown & 1 != 0 && !fin_received(l.tcp_state);
        }
    }
    classify(&mut live, &tcp_table, job.options.external_tcp, job.peers)?;
    if job.options.external_tcp == ExternalTcp::Repair {
        repair_outside(&mut live, job.options.final_stop)?;
    }
    undelivered(&mut live)?;
    for l in &mut live {
        read_data(l, sink)?;
    }
    // Every capture succeeded: the program's connections get SO_REUSEADDR, so that after a
    // kill their TIME_WAIT remnants do not keep a restore from binding the same ports (the
    // recorded value is what a restored socket gets).
    let mut forced = FORCED.lock().unwrap_or_else(|p| p.into_inner());
    forced.retain(|f| live.iter().any(|l| l.img.id == f.0));
    for l in &live {
        if l.img.transport == Transport::Tcp
            && !matches!(l.img.state, InetState::Listening { .. })
            && l.local.is_some_and(|a| a.port() != 0)
            && !forced.iter().any(|f| f.0 == l.img.id)
        {
            let was = opts::recorded(&l.img, "SO_REUSEADDR").unwrap_or(0);
            if was == 0 && set_int(&l.fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).is_ok() {
                forced.push((l.img.id, was));
            }
        }
    }
    drop(forced);
    image.inet = InetImage {
        sockets: live.into_iter().map(|l| l.img).collect(),
    };
    Ok(())
}

fn open(outer: i32, ns_pid: i32, fdn: i32, id: u64) -> Result<Live> {
    let who = format!("process {ns_pid} fd {fdn} (socket:[{id}])");
    let fd = steal(outer, fdn)?;
    let family = get_int(&fd, libc::SOL_SOCKET, libc::SO_DOMAIN)
        .map_err(|e| io_ctx(format!("{who}: SO_DOMAIN"))(e))?;
    let ty = get_int(&fd, libc::SOL_SOCKET, libc::SO_TYPE)
        .map_err(|e| io_ctx(format!("{who}: SO_TYPE"))(e))?;
    let transport = if ty == libc::SOCK_STREAM {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let flags = std::fs::read_to_string(format!("/proc/{outer}/fdinfo/{fdn}"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|v| i32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0);
    let local = name_of(&fd, false)?;
    let peer = name_of(&fd, true)?;
    let (mut options, linger, timeouts) = opts::capture(&fd, family, transport)?;
    {
        // SO_REUSEADDR that an earlier checkpoint set: the program's own value is recorded.
        let mut forced = FORCED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = forced.iter().position(|f| f.0 == id) {
            match options.iter_mut().find(|o| o.name == "SO_REUSEADDR") {
                Some(o) if o.value == 1 => o.value = forced[i].1,
                _ => {
                    forced.remove(i);
                }
            }
        }
    }
    let tcp_state = if transport == Transport::Tcp {
        tcp_info(&fd)?[0]
    } else {
        0
    };
    Ok(Live {
        who,
        ns_pid,
        fdn,
        img: InetSocket {
            id,
            family,
            transport,
            nonblock: flags & libc::O_NONBLOCK != 0,
            local: local
                .filter(|a| a.port() != 0 || !a.ip().is_unspecified())
                .map(show),
            peer: peer.map(show),
            state: InetState::Unconnected,
            shut_wr: fin_sent(tcp_state),
            shut_rd: false,
            options,
            linger,
            timeouts,
            unread: 0,
            datagrams: Vec::new(),
            data: None,
        },
        tcp_state,
        local,
        peer,
        tail: Vec::new(),
        tail_after: None,
        backlog: 0,
        fd,
    })
}

/// The connection state of every socket; connections leaving the job are refused (all
/// named in one error) or marked reset, as `policy` says.
fn classify(
    live: &mut [Live],
    tcp: &[Entry],
    policy: ExternalTcp,
    peers: &[super::cut::TcpEnd],
) -> Result<()> {
    let ends: Vec<(u64, Option<SocketAddr>, Option<SocketAddr>, bool)> = live
        .iter()
        .map(|l| {
            (
                l.img.id,
                l.local.map(canon),
                l.peer.map(canon),
                l.img.transport == Transport::Tcp && l.tcp_state != st::LISTEN,
            )
        })
        .collect();
    let listeners: Vec<(u64, SocketAddr)> = live
        .iter()
        .filter(|l| l.img.transport == Transport::Tcp && l.tcp_state == st::LISTEN)
        .filter_map(|l| Some((l.img.id, l.local?)))
        .collect();
    let mut outside = Vec::new();
    for l in live.iter_mut() {
        if l.img.transport == Transport::Udp {
            if l.peer.is_some() {
                l.img.state = InetState::UdpConnected;
            }
            continue;
        }
        let s = l.tcp_state;
        l.img.state = match s {
            st::LISTEN => InetState::Listening { backlog: l.backlog },
            st::SYN_SENT => {
                return Err(Error::Unsupported(format!(
                    "{}: TCP connection to {} in progress (connect(2) not yet answered) cannot \
                     be checkpointed; checkpoint again later",
                    l.who,
                    tcp.iter()
                        .find(|e| e.inode == l.img.id)
                        .map(|e| show(e.remote))
                        .unwrap_or_else(|| "its peer".into())
                )))
            }
            st::CLOSE => {
                let info = tcp_info(&l.fd)?;
                let segs_in = u32::from_ne_bytes([info[140], info[141], info[142], info[143]]);
                if segs_in > 0 {
                    l.img.shut_wr = true;
                    InetState::Finished
                } else {
                    InetState::Unconnected
                }
            }
            _ => {
                let (Some(me), Some(peer)) = (l.local.map(canon), l.peer.map(canon)) else {
                    return Err(Error::Parse(format!(
                        "{}: connected without addresses",
                        l.who
                    )));
                };
                let mate = ends
                    .iter()
                    .find(|e| e.3 && e.1 == Some(peer) && e.2 == Some(me) && e.0 != l.img.id);
                let entry = tcp.iter().find(|e| e.local == peer && e.remote == me);
                if let Some(m) = mate {
                    InetState::Connected { peer: m.0 }
                } else if super::cut::mirrored((me, peer), peers) {
                    InetState::Remote
                } else if let Some(e) = entry.filter(|e| {
                    e.inode == 0
                        && matches!(
                            e.state,
                            table::ESTABLISHED | table::CLOSE_WAIT | table::SYN_RECV
                        )
                }) {
                    match listeners.iter().find(|x| covers(x.1, peer)) {
                        Some(&(listener, _)) if e.rxq == 0 => InetState::Pending { listener },
                        Some(_) => {
                            return Err(Error::Unsupported(format!(
                                "{}: TCP connection {} -> {} not yet accepted by the job's \
                                 listener, with {} bytes the client sent waiting in it, cannot \
                                 be checkpointed; checkpoint again later",
                                l.who,
                                show(me),
                                show(peer),
                                e.rxq
                            )))
                        }
                        None => {
                            outside.push(l.img.id);
                            InetState::Reset
                        }
                    }
                } else if entry.is_some_and(|e| e.inode == 0) && fin_received(s) {
                    InetState::PeerClosed
                } else {
                    outside.push(l.img.id);
                    InetState::Reset
                }
            }
        };
    }
    // Clients outside the job waiting in a listener's accept queue: connections leaving the
    // job too (with `close`, the restored listener does not have them: they were reset).
    let mut waiting_outside = Vec::new();
    for l in live.iter() {
        let (InetState::Listening { .. }, Some(me)) = (&l.img.state, l.local) else {
            continue;
        };
        for e in tcp.iter().filter(|e| {
            e.inode == 0
                && matches!(
                    e.state,
                    table::ESTABLISHED | table::CLOSE_WAIT | table::SYN_RECV
                )
                && covers(me, e.local)
        }) {
            let ours = ends
                .iter()
                .any(|x| x.1 == Some(e.remote) && x.2 == Some(e.local));
            if !ours {
                waiting_outside.push(format!(
                    "{}: {} -> {} (not accepted yet)",
                    l.who,
                    show(e.local),
                    show(e.remote)
                ));
            }
        }
    }
    if (!outside.is_empty() || !waiting_outside.is_empty()) && policy == ExternalTcp::Refuse {
        let mut list: Vec<String> = live
            .iter()
            .filter(|l| outside.contains(&l.img.id))
            .map(|l| {
                format!(
                    "{}: {} -> {}",
                    l.who,
                    l.local.map(show).unwrap_or_default(),
                    l.peer.map(show).unwrap_or_default()
                )
            })
            .collect();
        list.extend(waiting_outside);
        return Err(Error::Unsupported(format!(
            "TCP connections whose peer is not a process of the job cannot be checkpointed \
             (the job's policy is --external-tcp refuse; with close they are restored as reset \
             by the peer): {}",
            list.join("; ")
        )));
    }
    Ok(())
}

/// `--external-tcp repair`: every connection leaving the job is read in TCP_REPAIR mode
/// (its receive queue becomes its unread data); only established connections can be made
/// again in place, the others are refused, all named at once.
fn repair_outside(live: &mut [Live], final_stop: bool) -> Result<()> {
    let closing: Vec<String> = live
        .iter()
        .filter(|l| l.img.state == InetState::Reset && l.tcp_state != st::ESTABLISHED)
        .map(|l| {
            format!(
                "{}: {} -> {}",
                l.who,
                l.local.map(show).unwrap_or_default(),
                l.peer.map(show).unwrap_or_default()
            )
        })
        .collect();
    if !closing.is_empty() {
        return Err(Error::Unsupported(format!(
            "TCP connections leaving the job that are being closed (a FIN sent or received) \
             cannot be restored in place by --external-tcp repair; checkpoint again when they \
             are closed: {}",
            closing.join("; ")
        )));
    }
    for l in live.iter_mut() {
        if l.img.state != InetState::Reset {
            continue;
        }
        let info = tcp_info(&l.fd)?;
        let (rep, unread) = super::repair::capture(&l.fd, &l.who, &info, final_stop)?;
        l.img.state = InetState::Repaired(Box::new(rep));
        l.tail = unread;
        l.tail_after = Some(0);
    }
    Ok(())
}

fn repair(fd: &OwnedFd, on: bool) -> std::io::Result<()> {
    set_int(
        fd,
        libc::IPPROTO_TCP,
        TCP_REPAIR,
        if on { 1 } else { TCP_REPAIR_OFF_NO_WP },
    )
}

/// The sequence number of the send (write_seq) or receive (rcv_nxt) queue of `fd`, which is
/// in repair mode.
fn queue_seq(fd: &OwnedFd, queue: i32) -> std::io::Result<u32> {
    set_int(fd, libc::IPPROTO_TCP, TCP_REPAIR_QUEUE, queue)?;
    get_int(fd, libc::IPPROTO_TCP, TCP_QUEUE_SEQ).map(|v| v as u32)
}

/// Peek up to `len` bytes of `fd` (MSG_PEEK, no waiting): a TCP peek copies from every
/// queued segment in one call.
fn peek_bytes(fd: &OwnedFd, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    if len == 0 {
        return Ok(buf);
    }
    // SAFETY: recv writes at most `len` bytes into `buf`.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            len,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// For every connection inside the job, the bytes its sender still holds that the receiver
/// has not received (a closed receive window): waited for briefly (acknowledgements still
/// under way), then taken as root with TCP_REPAIR, refused otherwise.
fn undelivered(live: &mut [Live]) -> Result<()> {
    let pending = |live: &[Live], wait: bool| -> Result<Vec<usize>> {
        let mut v = Vec::new();
        for (i, l) in live.iter().enumerate() {
            if !matches!(l.img.state, InetState::Connected { .. }) {
                continue;
            }
            let outq = ioctl_int(&l.fd, SIOCOUTQ, "SIOCOUTQ")?;
            // Sent but not acknowledged yet: the acknowledgement may still come.
            if outq > ioctl_int(&l.fd, SIOCOUTQNSD, "SIOCOUTQNSD")? || (wait && outq > 0) {
                v.push(i);
            }
        }
        Ok(v)
    };
    let deadline = Instant::now() + Duration::from_millis(300);
    while !pending(live, true)?.is_empty() && Instant::now() < deadline {
        if pending(live, false)?.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let left = pending(live, true)?;
    for i in left {
        let InetState::Connected { peer } = live[i].img.state else {
            continue;
        };
        let Some(j) = live.iter().position(|l| l.img.id == peer) else {
            continue;
        };
        let tail = send_tail(&live[i], &live[j])?;
        live[j].tail = tail.0;
        live[j].tail_after = Some(tail.1);
    }
    Ok(())
}

/// What `from` sent that `to` has not received, from `from`'s write queue in repair mode.
/// With the length of `to`'s receive queue that the tail follows (what arrives later is in
/// the tail already).
fn send_tail(from: &Live, to: &Live) -> Result<(Vec<u8>, usize)> {
    let outq = ioctl_int(&from.fd, SIOCOUTQ, "SIOCOUTQ")?;
    let notsent = ioctl_int(&from.fd, SIOCOUTQNSD, "SIOCOUTQNSD")?;
    if let Err(e) = repair(&from.fd, true) {
        if e.raw_os_error() == Some(libc::EPERM) {
            return Err(Error::Unsupported(format!(
                "{}: TCP connection {} -> {} has {outq} bytes in its send queue ({notsent} not \
                 yet sent) that its peer in the job has not received (it is not reading); \
                 reading a send queue needs TCP_REPAIR (CAP_NET_ADMIN), which an ordinary user \
                 does not have; checkpoint again when the receiver has read",
                from.who,
                from.img.local.clone().unwrap_or_default(),
                from.img.peer.clone().unwrap_or_default()
            )));
        }
        return Err(Error::Sys {
            what: format!("{}: TCP_REPAIR", from.who),
            source: e,
        });
    }
    let r = (|| -> Result<(Vec<u8>, usize)> {
        let sys = |what: &str| {
            let what = format!("{}: {what}", from.who);
            move |e| Error::Sys { what, source: e }
        };
        let write_seq = queue_seq(&from.fd, TCP_SEND_QUEUE).map_err(sys("TCP_QUEUE_SEQ"))?;
        // The head of the queue may hold bytes acknowledged already (a segment is trimmed
        // only in whole segments): room for more than SIOCOUTQ, and the tail is cut from the
        // end, which is write_seq.
        let queue = peek_bytes(&from.fd, outq as usize + (4 << 20))
            .map_err(sys("peeking the send queue"))?;
        if queue.len() < outq as usize {
            return Err(Error::Parse(format!(
                "{}: peeked {} bytes of a send queue of {outq}",
                from.who,
                queue.len()
            )));
        }
        // rcv_nxt and the receive queue's length read together (nothing arrived between).
        let mut seen = None;
        for _ in 0..10 {
            let before = ioctl_int(&to.fd, libc::FIONREAD as libc::c_ulong, "SIOCINQ")?;
            repair(&to.fd, true).map_err(sys("TCP_REPAIR of its peer"))?;
            let rcv_nxt = queue_seq(&to.fd, TCP_RECV_QUEUE);
            let off = repair(&to.fd, false);
            let rcv_nxt = rcv_nxt.map_err(sys("TCP_QUEUE_SEQ of its peer"))?;
            off.map_err(sys("leaving TCP_REPAIR"))?;
            let after = ioctl_int(&to.fd, libc::FIONREAD as libc::c_ulong, "SIOCINQ")?;
            if before == after {
                seen = Some((rcv_nxt, after));
                break;
            }
        }
        let Some((rcv_nxt, inq)) = seen else {
            return Err(Error::Unsupported(format!(
                "{}: data keeps arriving at its peer while the job is frozen; checkpoint again",
                from.who
            )));
        };
        let mut missing = write_seq.wrapping_sub(rcv_nxt) as usize;
        // The FIN takes a sequence number but no byte.
        if from.img.shut_wr && !fin_received(to.tcp_state) && missing > 0 {
            missing -= 1;
        }
        if missing > queue.len() {
            return Err(Error::Parse(format!(
                "{}: its peer lacks {missing} bytes but the send queue holds {}",
                from.who,
                queue.len()
            )));
        }
        Ok((queue[queue.len() - missing..].to_vec(), inq as usize))
    })();
    let off = repair(&from.fd, false);
    let tail = r?;
    off.map_err(|e| Error::Sys {
        what: format!("{}: leaving TCP_REPAIR", from.who),
        source: e,
    })?;
    Ok(tail)
}

/// The unread data of a socket (peeked) and, for UDP, each datagram's length and source.
fn read_data(l: &mut Live, sink: &mut dyn MemorySink) -> Result<()> {
    if matches!(l.img.state, InetState::Listening { .. } | InetState::Reset) {
        return Ok(());
    }
    let mut data = match l.img.transport {
        Transport::Tcp => {
            let inq = ioctl_int(&l.fd, libc::FIONREAD as libc::c_ulong, "SIOCINQ")? as usize;
            let inq = l.tail_after.unwrap_or(inq).min(inq);
            let data = with_peek_off(&l.fd, |fd| peek_bytes(fd, inq)).map_err(|e| Error::Sys {
                what: format!("{}: peeking unread data", l.who),
                source: e,
            })?;
            if data.len() != inq {
                return Err(Error::Parse(format!(
                    "{}: peeked {} unread bytes, the kernel counts {inq}",
                    l.who,
                    data.len()
                )));
            }
            data
        }
        Transport::Udp => {
            let (data, grams) = with_peek_off(&l.fd, peek_datagrams).map_err(|e| Error::Sys {
                what: format!("{}: peeking queued datagrams", l.who),
                source: e,
            })?;
            l.img.datagrams = grams;
            data
        }
    };
    data.extend_from_slice(&l.tail);
    l.img.unread = data.len() as u64;
    if !data.is_empty() {
        sink.put_file(l.ns_pid, l.fdn, &mut data.as_slice())
            .map_err(io_ctx(format!("{}: saving unread data", l.who)))?;
        l.img.data = Some((l.ns_pid, l.fdn));
    }
    Ok(())
}

/// Run `f` with SO_PEEK_OFF at 0 (peeks walk the queue), then put the program's value back.
fn with_peek_off<T>(
    fd: &OwnedFd,
    f: impl FnOnce(&OwnedFd) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let old = get_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF)?;
    set_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, 0)?;
    let r = f(fd);
    let reset = set_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, old);
    let out = r?;
    reset?;
    Ok(out)
}

/// Every queued datagram of a UDP socket (SO_PEEK_OFF walking past each), with its source.
fn peek_datagrams(fd: &OwnedFd) -> std::io::Result<(Vec<u8>, Vec<Datagram>)> {
    let mut data = Vec::new();
    let mut grams = Vec::new();
    let mut buf = vec![0u8; 1 << 17];
    loop {
        // SAFETY: an all-zero sockaddr_storage / msghdr is valid.
        let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut from as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        // SAFETY: recvmsg writes into the buffers `msg` describes.
        let n = unsafe {
            libc::recvmsg(
                fd.as_raw_fd(),
                &mut msg,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EAGAIN) {
                break;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::Error::other(
                "a zero-length datagram is queued (cannot be checkpointed yet)",
            ));
        }
        let Some(src) = addr::from_msg_name(&from) else {
            return Err(std::io::Error::other("a queued datagram has no IP source"));
        };
        data.extend_from_slice(&buf[..n as usize]);
        grams.push(Datagram {
            len: n as u64,
            from: show(canon(src)),
        });
    }
    Ok((data, grams))
}
