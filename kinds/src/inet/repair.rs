//! TCP connections leaving the job under `--external-tcp repair` (root): the kernel's TCP
//! repair mode reads a live connection's sequence numbers, both queues, negotiated options
//! and window without sending anything, and makes the connection again in place without a
//! handshake.
//!
//! A connection captured by the final checkpoint of a stopped job is *held*: left in repair
//! mode (by a copy of its descriptor the agent keeps) until the program is killed, so that
//! the kill sends neither FIN nor RST and the peer still has the connection as it was; then
//! the copy is closed, silently too. Any other captured connection is restored as reset by
//! its peer: the job ran on after that checkpoint, so the peer's state moved on or it saw
//! the connection closed when the job died.

use super::opts::{self, get_int, set_int};
use cairn_image::TcpRepair;
use cairn_sys::error::{Error, Result};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;

const TCP_REPAIR: i32 = 19;
const TCP_REPAIR_QUEUE: i32 = 20;
const TCP_QUEUE_SEQ: i32 = 21;
const TCP_REPAIR_OPTIONS: i32 = 22;
const TCP_TIMESTAMP: i32 = 24;
const TCP_REPAIR_WINDOW: i32 = 29;
const TCP_NO_QUEUE: i32 = 0;
const TCP_RECV_QUEUE: i32 = 1;
const TCP_SEND_QUEUE: i32 = 2;
/// TCP_REPAIR off with a window probe, which tells the peer where this end stands.
const TCP_REPAIR_OFF: i32 = 0;
const TCP_REPAIR_OFF_NO_WP: i32 = -1;
const SIOCOUTQ: libc::c_ulong = 0x5411;
const SIOCOUTQNSD: libc::c_ulong = 0x894B;
const TCPOPT_MSS: u32 = 2;
const TCPOPT_WINDOW: u32 = 3;
const TCPOPT_SACK_PERM: u32 = 4;
const TCPOPT_TIMESTAMP: u32 = 8;
const TCPI_OPT_TIMESTAMPS: u8 = 1;
const TCPI_OPT_SACK: u8 = 2;
const TCPI_OPT_WSCALE: u8 = 4;

/// Connections held in repair mode by the last (final) checkpoint: a copy of each, with
/// what identifies its state then (send and receive sequence numbers, queue lengths).
static HELD: Mutex<Vec<Held>> = Mutex::new(Vec::new());

struct Held {
    fd: OwnedFd,
    who: String,
    state: (u32, u32, u32, u32),
}

fn sys(who: &str, what: &str) -> impl FnOnce(std::io::Error) -> Error {
    let what = format!("{who}: {what}");
    move |e| Error::Sys { what, source: e }
}

fn set_repair(fd: &OwnedFd, v: i32) -> std::io::Result<()> {
    set_int(fd, libc::IPPROTO_TCP, TCP_REPAIR, v)
}

fn queue(fd: &OwnedFd, q: i32) -> std::io::Result<()> {
    set_int(fd, libc::IPPROTO_TCP, TCP_REPAIR_QUEUE, q)
}

fn seq_of(fd: &OwnedFd, q: i32) -> std::io::Result<u32> {
    queue(fd, q)?;
    get_int(fd, libc::IPPROTO_TCP, TCP_QUEUE_SEQ).map(|v| v as u32)
}

fn ioctl_u32(fd: &OwnedFd, req: libc::c_ulong) -> std::io::Result<u32> {
    let mut v: libc::c_int = 0;
    // SAFETY: these ioctls write one int.
    if unsafe { libc::ioctl(fd.as_raw_fd(), req, &mut v) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(v as u32)
}

/// MSG_PEEK of up to `len` bytes of the queue selected by TCP_REPAIR_QUEUE.
fn peek(fd: &OwnedFd, len: usize) -> std::io::Result<Vec<u8>> {
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

fn window(fd: &OwnedFd) -> std::io::Result<[u32; 5]> {
    let mut w = [0u32; 5];
    let mut len = std::mem::size_of_val(&w) as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `w`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            TCP_REPAIR_WINDOW,
            w.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(w)
}

/// Everything of an established connection that its restore in place needs, read in repair
/// mode from `fd` (a copy of the program's descriptor, the job frozen), with the unread
/// bytes of its receive queue. With `hold`, the connection stays in repair mode (the
/// program is stopped after this checkpoint: [`release_held`] or [`close_held`]).
/// `info` is its TCP_INFO.
pub(super) fn capture(
    fd: &OwnedFd,
    who: &str,
    info: &[u8],
    hold: bool,
) -> Result<(TcpRepair, Vec<u8>)> {
    if let Err(e) = set_repair(fd, 1) {
        if e.raw_os_error() == Some(libc::EPERM) {
            return Err(Error::Unsupported(format!(
                "{who}: --external-tcp repair needs TCP_REPAIR (CAP_NET_ADMIN, root); as an \
                 ordinary user use close"
            )));
        }
        return Err(sys(who, "TCP_REPAIR")(e));
    }
    let r = read_state(fd, who, info);
    let keep = hold && r.is_ok();
    let q = queue(fd, TCP_NO_QUEUE);
    let off = if keep {
        Ok(())
    } else {
        set_repair(fd, TCP_REPAIR_OFF_NO_WP)
    };
    let (mut rep, data) = r?;
    q.map_err(sys(who, "TCP_REPAIR_QUEUE"))?;
    off.map_err(sys(who, "leaving TCP_REPAIR"))?;
    if keep {
        let copy = fd.try_clone().map_err(sys(who, "keeping a copy"))?;
        rep.held = true;
        HELD.lock().unwrap_or_else(|p| p.into_inner()).push(Held {
            fd: copy,
            who: who.to_string(),
            state: (
                rep.snd_seq,
                rep.rcv_seq,
                rep.send_queue.len() as u32,
                data.len() as u32,
            ),
        });
    }
    Ok((rep, data))
}

/// The send and receive state of `fd` (in repair mode): sequence numbers and queues, read
/// again until nothing moved in between.
fn read_state(fd: &OwnedFd, who: &str, info: &[u8]) -> Result<(TcpRepair, Vec<u8>)> {
    for _ in 0..10 {
        let rcv_nxt = seq_of(fd, TCP_RECV_QUEUE).map_err(sys(who, "TCP_QUEUE_SEQ"))?;
        let inq = ioctl_u32(fd, libc::FIONREAD as libc::c_ulong).map_err(sys(who, "SIOCINQ"))?;
        let unread = peek(fd, inq as usize).map_err(sys(who, "peeking the receive queue"))?;
        let write_seq = seq_of(fd, TCP_SEND_QUEUE).map_err(sys(who, "TCP_QUEUE_SEQ"))?;
        let outq = ioctl_u32(fd, SIOCOUTQ).map_err(sys(who, "SIOCOUTQ"))?;
        let unsent = ioctl_u32(fd, SIOCOUTQNSD).map_err(sys(who, "SIOCOUTQNSD"))?;
        // The head segment may still hold acknowledged bytes: room for more, cut from the
        // end (write_seq).
        let all =
            peek(fd, outq as usize + (4 << 20)).map_err(sys(who, "peeking the send queue"))?;
        let window = window(fd).map_err(sys(who, "TCP_REPAIR_WINDOW"))?;
        let again = (
            seq_of(fd, TCP_RECV_QUEUE).map_err(sys(who, "TCP_QUEUE_SEQ"))?,
            seq_of(fd, TCP_SEND_QUEUE).map_err(sys(who, "TCP_QUEUE_SEQ"))?,
        );
        if again != (rcv_nxt, write_seq) || unread.len() != inq as usize {
            continue;
        }
        if all.len() < outq as usize {
            return Err(Error::Parse(format!(
                "{who}: peeked {} bytes of a send queue of {outq}",
                all.len()
            )));
        }
        let mss = get_int(fd, libc::IPPROTO_TCP, libc::TCP_MAXSEG)
            .map_err(sys(who, "TCP_MAXSEG"))? as u32;
        let options = info[5];
        let timestamp = if options & TCPI_OPT_TIMESTAMPS != 0 {
            Some(
                get_int(fd, libc::IPPROTO_TCP, TCP_TIMESTAMP).map_err(sys(who, "TCP_TIMESTAMP"))?
                    as u32,
            )
        } else {
            None
        };
        let rep = TcpRepair {
            held: false,
            snd_seq: write_seq.wrapping_sub(outq),
            rcv_seq: rcv_nxt.wrapping_sub(inq),
            send_queue: all[all.len() - outq as usize..].to_vec(),
            unsent: unsent.min(outq),
            mss,
            wscale: (options & TCPI_OPT_WSCALE != 0).then_some((info[6] & 0xf, info[6] >> 4)),
            sack: options & TCPI_OPT_SACK != 0,
            timestamp,
            window,
        };
        return Ok((rep, unread));
    }
    Err(Error::Unsupported(format!(
        "{who}: data keeps moving on this connection while the job is frozen; checkpoint \
         again"
    )))
}

/// The final checkpoint failed: the held connections leave repair mode (without a window
/// probe) and the program uses them on.
pub fn release_held() {
    let held = std::mem::take(&mut *HELD.lock().unwrap_or_else(|p| p.into_inner()));
    for h in held {
        let _ = set_repair(&h.fd, TCP_REPAIR_OFF_NO_WP);
    }
}

/// The program was killed after its final checkpoint: the held connections are closed in
/// repair mode (nothing is sent to their peers). Returns a line for each connection whose
/// state moved after the checkpoint (the peer sent more while the image was written): its
/// restore in place would not match the peer, so it is reset instead (its copy leaves
/// repair mode first, which makes the close tell the peer).
pub fn close_held() -> Vec<String> {
    let held = std::mem::take(&mut *HELD.lock().unwrap_or_else(|p| p.into_inner()));
    let mut moved = Vec::new();
    for h in held {
        let now = (|| -> std::io::Result<(u32, u32, u32, u32)> {
            let rcv_nxt = seq_of(&h.fd, TCP_RECV_QUEUE)?;
            let inq = ioctl_u32(&h.fd, libc::FIONREAD as libc::c_ulong)?;
            let write_seq = seq_of(&h.fd, TCP_SEND_QUEUE)?;
            let outq = ioctl_u32(&h.fd, SIOCOUTQ)?;
            queue(&h.fd, TCP_NO_QUEUE)?;
            Ok((
                write_seq.wrapping_sub(outq),
                rcv_nxt.wrapping_sub(inq),
                outq,
                inq,
            ))
        })();
        if now.as_ref().ok() != Some(&h.state) {
            moved.push(format!(
                "{}: the connection moved on after the final checkpoint; its peer is told \
                 it is closed, and the restart gets it reset",
                h.who
            ));
            let _ = set_repair(&h.fd, TCP_REPAIR_OFF_NO_WP);
            let lin = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: setsockopt reads one struct linger.
            unsafe {
                libc::setsockopt(
                    h.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&lin as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as u32,
                )
            };
        }
        drop(h.fd);
    }
    moved
}

/// TCP_REPAIR_OPTIONS: the options the handshake had negotiated.
fn set_options(fd: &OwnedFd, rep: &TcpRepair, who: &str) -> Result<()> {
    #[repr(C)]
    struct Opt {
        code: u32,
        val: u32,
    }
    let mut o = vec![Opt {
        code: TCPOPT_MSS,
        val: rep.mss,
    }];
    if let Some((snd, rcv)) = rep.wscale {
        o.push(Opt {
            code: TCPOPT_WINDOW,
            val: snd as u32 | (rcv as u32) << 16,
        });
    }
    if rep.sack {
        o.push(Opt {
            code: TCPOPT_SACK_PERM,
            val: 0,
        });
    }
    if rep.timestamp.is_some() {
        o.push(Opt {
            code: TCPOPT_TIMESTAMP,
            val: 0,
        });
    }
    // SAFETY: setsockopt reads `o.len()` struct tcp_repair_opt.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            TCP_REPAIR_OPTIONS,
            o.as_ptr().cast(),
            (o.len() * std::mem::size_of::<Opt>()) as u32,
        )
    };
    if r < 0 {
        return Err(opts::os(format!("{who}: TCP_REPAIR_OPTIONS")));
    }
    Ok(())
}

fn send_all(fd: &OwnedFd, mut data: &[u8], who: &str, what: &str) -> Result<()> {
    while !data.is_empty() {
        // SAFETY: send reads at most `data.len()` bytes of `data`.
        let n = unsafe { libc::send(fd.as_raw_fd(), data.as_ptr().cast(), data.len(), 0) };
        if n <= 0 {
            return Err(opts::os(format!("{who}: {what}")));
        }
        data = &data[n as usize..];
    }
    Ok(())
}

/// Makes the connection `rep` describes again in place on `fd` (a new TCP socket with its
/// options set before bind): bound to `local`, connected to `peer` in repair mode, its
/// options, queues (`unread` into the receive queue) and window, then repair mode off with
/// a window probe. The bytes never sent are written after, as the program's own.
pub(super) fn restore(
    fd: &OwnedFd,
    rep: &TcpRepair,
    unread: &[u8],
    bind: impl FnOnce() -> Result<()>,
    connect: impl FnOnce() -> Result<()>,
    who: &str,
) -> Result<()> {
    set_repair(fd, 1).map_err(|e| {
        if e.raw_os_error() == Some(libc::EPERM) {
            Error::Unsupported(format!(
                "{who}: restoring a connection in place needs TCP_REPAIR (CAP_NET_ADMIN, \
                 root)"
            ))
        } else {
            sys(who, "TCP_REPAIR")(e)
        }
    })?;
    bind()?;
    let sent = rep.send_queue.len() - rep.unsent as usize;
    queue(fd, TCP_SEND_QUEUE).map_err(sys(who, "TCP_REPAIR_QUEUE"))?;
    set_int(fd, libc::IPPROTO_TCP, TCP_QUEUE_SEQ, rep.snd_seq as i32)
        .map_err(sys(who, "TCP_QUEUE_SEQ of the send queue"))?;
    queue(fd, TCP_RECV_QUEUE).map_err(sys(who, "TCP_REPAIR_QUEUE"))?;
    set_int(fd, libc::IPPROTO_TCP, TCP_QUEUE_SEQ, rep.rcv_seq as i32)
        .map_err(sys(who, "TCP_QUEUE_SEQ of the receive queue"))?;
    if let Some(ts) = rep.timestamp {
        set_int(fd, libc::IPPROTO_TCP, TCP_TIMESTAMP, ts as i32)
            .map_err(sys(who, "TCP_TIMESTAMP"))?;
    }
    connect()?;
    set_options(fd, rep, who)?;
    queue(fd, TCP_RECV_QUEUE).map_err(sys(who, "TCP_REPAIR_QUEUE"))?;
    send_all(fd, unread, who, "refilling the receive queue")?;
    queue(fd, TCP_SEND_QUEUE).map_err(sys(who, "TCP_REPAIR_QUEUE"))?;
    send_all(fd, &rep.send_queue[..sent], who, "refilling the send queue")?;
    queue(fd, TCP_NO_QUEUE).map_err(sys(who, "TCP_REPAIR_QUEUE"))?;
    // SAFETY: setsockopt reads one struct tcp_repair_window.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            TCP_REPAIR_WINDOW,
            rep.window.as_ptr().cast(),
            std::mem::size_of_val(&rep.window) as u32,
        )
    };
    if r < 0 {
        return Err(opts::os(format!("{who}: TCP_REPAIR_WINDOW")));
    }
    set_repair(fd, TCP_REPAIR_OFF).map_err(sys(who, "leaving TCP_REPAIR"))?;
    send_all(
        fd,
        &rep.send_queue[sent..],
        who,
        "writing the bytes never sent",
    )
}
