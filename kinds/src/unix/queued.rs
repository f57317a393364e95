//! What restore needs of a socket's queued messages, or why the checkpoint is refused:
//! the senders' credentials, the descriptors in flight and the datagrams' senders.

use super::capture::show_name;
use super::peek::Queue;
use cairn_image::{ProcessImage, SocketState};
use cairn_sys::error::{Error, Result};
use cairn_sys::sock_diag::Diag;
use std::collections::HashMap;
use std::os::fd::AsRawFd;

/// The credentials of the queued messages of a socket with SO_PASSCRED, with the senders'
/// pids in the job's namespace: restore sends the messages again with them, which only root
/// can (SCM_CREDENTIALS of another process), from the peer of a connected pair, after the
/// processes exist.
pub(super) fn job_creds(
    queue: &Queue,
    state: &SocketState,
    d: &Diag,
    diag: &HashMap<u64, Diag>,
    id: u64,
    outer_to_ns: &HashMap<i32, i32>,
    who: &str,
) -> Result<Vec<(i32, u32, u32)>> {
    let n = queue.lens.len();
    let refuse = |why: String| {
        Err(Error::Unsupported(format!(
            "{who}: {n} queued message(s) on a socket with SO_PASSCRED carry their senders'              credentials, which {why} (checkpoint again once they are read)"
        )))
    };
    // SAFETY: geteuid has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return refuse("only root can send again in the senders' names".into());
    }
    let pair = match state {
        SocketState::Connected { peer: Some(p) } => {
            diag.get(p).and_then(|x| x.peer) == Some(id)
                && diag.get(p).is_some_and(|x| x.shutdown == 0)
        }
        _ => false,
    };
    if !pair || d.shutdown != 0 {
        return refuse(
            "can only be restored on a connected pair of the job that is not shut down".into(),
        );
    }
    let mut out = Vec::new();
    for &(pid, uid, gid) in &queue.creds {
        match outer_to_ns.get(&pid) {
            Some(&ns) => out.push((ns, uid, gid)),
            None => {
                return refuse(format!(
                    "name the process {pid} (as the agent sees it), not a live process of the job"
                ))
            }
        }
    }
    Ok(out)
}

/// Whether the queue of socket `id` can be refilled once the job's processes exist: it is one
/// end of a connected pair of the job, neither end shut down.
fn refillable_later(state: &SocketState, d: &Diag, diag: &HashMap<u64, Diag>, id: u64) -> bool {
    let pair = match state {
        SocketState::Connected { peer: Some(p) } => {
            diag.get(p).and_then(|x| x.peer) == Some(id)
                && diag.get(p).is_some_and(|x| x.shutdown == 0)
        }
        _ => false,
    };
    pair && d.shutdown == 0
}

/// The descriptors in flight of each queued message as `(pid, fd)` of a process of the job
/// holding the same open file description (`kcmp`): restore sends each message again with
/// the restored process's descriptor.
#[allow(clippy::too_many_arguments)]
pub(super) fn in_flight(
    queue: &Queue,
    state: &SocketState,
    d: &Diag,
    diag: &HashMap<u64, Diag>,
    id: u64,
    outer: &[i32],
    procs: &[ProcessImage],
    who: &str,
) -> Result<Vec<Vec<(i32, i32)>>> {
    let n: usize = queue.fds.iter().map(Vec::len).sum();
    let refuse = |why: String| {
        Err(Error::Unsupported(format!(
            "{who}: {n} descriptor(s) in flight (SCM_RIGHTS, queued and not received yet) {why}"
        )))
    };
    if !refillable_later(state, d, diag, id) {
        return refuse(
            "can only be checkpointed on a connected pair of the job that is not shut down".into(),
        );
    }
    // SAFETY: getpid has no arguments and cannot fail.
    let me = unsafe { libc::getpid() };
    let mut out = Vec::new();
    for msg in &queue.fds {
        let mut refs = Vec::new();
        for f in msg {
            let holder = outer.iter().zip(procs).find_map(|(&o, p)| {
                p.fds
                    .iter()
                    .find(|x| {
                        // SAFETY: kcmp takes integers only (type 0: KCMP_FILE).
                        let r =
                            unsafe { libc::syscall(libc::SYS_kcmp, me, o, 0, f.as_raw_fd(), x.fd) };
                        r == 0
                    })
                    .map(|x| (p.pid, x.fd))
            });
            match holder {
                Some(h) => refs.push(h),
                None => {
                    let link = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()))
                        .map(|l| l.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    return refuse(format!(
                        "include {link}, which no process of the job holds (only descriptors \
                         also open in a process of the job can be restored)"
                    ));
                }
            }
        }
        out.push(refs);
    }
    Ok(out)
}

/// Refuse the datagram states restore cannot rebuild exactly: queued datagrams whose sender
/// cannot send them again with the same address, and a one-way connection to an unnamed
/// socket.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_datagrams(
    diag: &HashMap<u64, Diag>,
    id: u64,
    state: &SocketState,
    queue: &Queue,
    raw_name: &dyn Fn(u64) -> Vec<u8>,
    in_job: &dyn Fn(u64) -> bool,
    sockets: &[(u64, i32, i32, i32)],
    who: &str,
) -> Result<()> {
    let mutual = match state {
        SocketState::Connected { peer: Some(p) } => diag.get(p).and_then(|x| x.peer) == Some(id),
        _ => false,
    };
    if let SocketState::Connected { peer: Some(p) } = state {
        if !mutual && raw_name(*p).is_empty() {
            return Err(Error::Unsupported(format!(
                "{who}: datagram socket connected to the unnamed socket:[{p}], which is \
                 connected elsewhere (cannot be rebuilt)"
            )));
        }
    }
    let bad = |what: &str| {
        Err(Error::Unsupported(format!(
            "{who}: a queued datagram {what} (cannot be checkpointed)"
        )))
    };
    for s in &queue.senders {
        match state {
            // A connected pair (or a socket whose peer was closed) only receives from its peer.
            SocketState::Connected { peer: Some(p) } if mutual => {
                if *s != raw_name(*p) {
                    return bad(&format!(
                        "came from {} before the socket was connected",
                        show_name(s)
                    ));
                }
            }
            SocketState::Connected { peer: None } if !s.is_empty() => {
                return bad(&format!(
                    "came from {} while the socket is connected to a closed peer",
                    show_name(s)
                ));
            }
            SocketState::Connected { peer: None } => {}
            _ if diag
                .get(&id)
                .and_then(|d| d.name.as_ref())
                .is_none_or(|n| n.is_empty()) =>
            {
                return bad("is queued on an unnamed socket that has no peer");
            }
            _ if s.is_empty() => {}
            _ => {
                // A named sender: a socket of the job, a closed one (restore binds a socket
                // to the name for a moment), or a live socket outside the job (refused).
                let holder = diag
                    .iter()
                    .find(|(&ino, d)| {
                        ino != 0
                            && d.sock_type as i32 == libc::SOCK_DGRAM
                            && d.name.as_deref().is_some_and(|n| {
                                let n = match n.first() {
                                    Some(0) => n,
                                    _ => n.split(|&b| b == 0).next().unwrap_or(&[]),
                                };
                                n == s.as_slice()
                            })
                    })
                    .map(|(&ino, _)| ino);
                if let Some(h) = holder {
                    if !in_job(h) && !sockets.iter().any(|x| x.0 == h) {
                        return bad(&format!(
                            "came from {} (socket:[{h}]), a socket outside the job",
                            show_name(s)
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}
