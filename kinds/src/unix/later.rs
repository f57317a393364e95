//! Queues refilled once every process of the job is rebuilt: messages that carry their
//! senders' credentials (the senders' pids must exist again) or descriptors in flight (taken
//! from the restored processes that hold them).

use super::restore::{fd_of, set_buf, set_int};
use cairn_sys::error::{io_ctx, last_os};
use cairn_sys::{Error, Result};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};

/// A queue refilled at [`Recreated::finish`]: the receiver's peer, the data and what to
/// send it with.
pub(super) struct Deferred {
    pub(super) id: u64,
    pub(super) from: OwnedFd,
    pub(super) sndbuf: i32,
    pub(super) data: Vec<u8>,
    pub(super) messages: Vec<u64>,
    /// Per message: its sender's credentials (empty: no SO_PASSCRED, the agent's).
    pub(super) creds: Vec<(i32, u32, u32)>,
    /// Per message: the descriptors it carries, as `(pid, fd)` of a process of the job.
    pub(super) fds: Vec<Vec<(i32, i32)>>,
}

/// Every process of the job under `root` (outer pid): its pid in the job's namespace → its
/// outer pid.
pub(super) fn ns_to_outer(root: i32) -> Result<HashMap<i32, i32>> {
    let mut out = HashMap::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        let status = std::fs::read_to_string(format!("/proc/{p}/status"))
            .map_err(io_ctx(format!("reading /proc/{p}/status")))?;
        let ns = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|v| v.split_whitespace().last())
            .and_then(|v| v.parse::<i32>().ok())
            .ok_or_else(|| Error::Parse(format!("no NSpid in /proc/{p}/status")))?;
        out.insert(ns, p);
        let tasks = std::fs::read_dir(format!("/proc/{p}/task"))
            .map_err(io_ctx(format!("listing /proc/{p}/task")))?;
        for t in tasks.flatten() {
            let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            todo.extend(
                kids.split_whitespace()
                    .filter_map(|k| k.parse::<i32>().ok()),
            );
        }
    }
    Ok(out)
}

/// The descriptor `fd` of the restored process `pid` of the job (`outer`: job pid → outer pid).
fn fd_of_process(outer: &HashMap<i32, i32>, pid: i32, fd: i32) -> Result<OwnedFd> {
    let o = *outer.get(&pid).ok_or_else(|| {
        Error::Incompatible(format!(
            "process {pid} holding a descriptor in flight is gone"
        ))
    })?;
    // SAFETY: pidfd_open takes integers and returns a new descriptor or -1.
    let pidfd = fd_of(
        unsafe { libc::syscall(libc::SYS_pidfd_open, o, 0) } as i32,
        format!("pidfd_open({o})"),
    )?;
    // SAFETY: pidfd_getfd takes integers and returns a new descriptor or -1.
    fd_of(
        unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) } as i32,
        format!("taking fd {fd} of process {pid} to send it again"),
    )
}

/// Queue the messages of `d` again once the job's processes exist: each with SCM_CREDENTIALS
/// naming its sender (root only: the pid is another process's) and with the restored
/// processes' copies of the descriptors it carried (SCM_RIGHTS).
pub(super) fn refill_later(d: &Deferred, outer: &HashMap<i32, i32>) -> Result<()> {
    let need = (d.data.len() as i32)
        .saturating_mul(2)
        .saturating_add(1 << 16);
    if !set_int(&d.from, libc::SO_SNDBUFFORCE, need) {
        set_int(&d.from, libc::SO_SNDBUF, need);
    }
    let mut off = 0usize;
    for (i, &len) in d.messages.iter().enumerate() {
        let msg = d.data.get(off..off + len as usize).ok_or_else(|| {
            Error::Incompatible(format!("unread data of socket {} is short", d.id))
        })?;
        off += len as usize;
        let cred = match d.creds.get(i) {
            Some(&(pid, uid, gid)) => Some(libc::ucred {
                pid: *outer.get(&pid).ok_or_else(|| {
                    Error::Incompatible(format!(
                        "the sender {pid} of a message queued on UNIX socket {} is not in the \
                         job",
                        d.id
                    ))
                })?,
                uid,
                gid,
            }),
            None => None,
        };
        let mut passed = Vec::new();
        for &(pid, fd) in d.fds.get(i).map(Vec::as_slice).unwrap_or(&[]) {
            passed.push(fd_of_process(outer, pid, fd)?);
        }
        let raw: Vec<i32> = passed.iter().map(|f| f.as_raw_fd()).collect();
        let mut sent = 0usize;
        while sent < msg.len() {
            let mut ctl = vec![0u64; 8 + raw.len()];
            let mut iov = libc::iovec {
                iov_base: msg[sent..].as_ptr() as *mut libc::c_void,
                iov_len: msg.len() - sent,
            };
            let first = sent == 0;
            // SAFETY: an all-zero msghdr is valid; CMSG_* fill the control buffer, which is
            // large enough for one struct ucred and the descriptors; the pointers outlive
            // the sendmsg call.
            let n = unsafe {
                let mut m: libc::msghdr = std::mem::zeroed();
                m.msg_iov = &mut iov;
                m.msg_iovlen = 1;
                m.msg_control = ctl.as_mut_ptr().cast();
                let ucred_len = std::mem::size_of::<libc::ucred>() as u32;
                let fds_len = (raw.len() * 4) as u32;
                let mut total = 0usize;
                if cred.is_some() {
                    total += libc::CMSG_SPACE(ucred_len) as usize;
                }
                if first && !raw.is_empty() {
                    total += libc::CMSG_SPACE(fds_len) as usize;
                }
                m.msg_controllen = total;
                if total == 0 {
                    m.msg_control = std::ptr::null_mut();
                }
                let mut c = if total > 0 {
                    libc::CMSG_FIRSTHDR(&m)
                } else {
                    std::ptr::null_mut()
                };
                if let Some(u) = cred {
                    (*c).cmsg_level = libc::SOL_SOCKET;
                    (*c).cmsg_type = libc::SCM_CREDENTIALS;
                    (*c).cmsg_len = libc::CMSG_LEN(ucred_len) as usize;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast(), u);
                    c = libc::CMSG_NXTHDR(&m, c);
                }
                if first && !raw.is_empty() {
                    (*c).cmsg_level = libc::SOL_SOCKET;
                    (*c).cmsg_type = libc::SCM_RIGHTS;
                    (*c).cmsg_len = libc::CMSG_LEN(fds_len) as usize;
                    std::ptr::copy_nonoverlapping(
                        raw.as_ptr().cast::<u8>(),
                        libc::CMSG_DATA(c),
                        raw.len() * 4,
                    );
                }
                libc::sendmsg(
                    d.from.as_raw_fd(),
                    &m,
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                return Err(last_os(format!(
                    "queueing a message of {len} bytes on UNIX socket {} again",
                    d.id
                )));
            }
            sent += n as usize;
        }
    }
    set_buf(&d.from, libc::SO_SNDBUF, libc::SO_SNDBUFFORCE, d.sndbuf)
}
