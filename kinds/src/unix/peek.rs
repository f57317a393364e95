//! Reading a UNIX socket's queue without consuming it: `SO_PEEK_OFF` set to 0 lets
//! `recvmsg(MSG_PEEK)` walk every queued message, with its sender's address, credentials and
//! copies of the descriptors it carries; the program's SO_PEEK_OFF is put back after.

use cairn_image::SocketOptions;
use cairn_sys::error::{last_os, Error, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub(super) fn getsockopt_int(fd: &OwnedFd, level: i32, opt: i32, what: &str) -> Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes one int into `v`.
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
        return Err(last_os(format!("getsockopt({what})")));
    }
    Ok(v)
}

fn setsockopt_int(fd: &OwnedFd, opt: i32, v: i32, what: &str) -> Result<()> {
    // SAFETY: setsockopt reads one int.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(last_os(format!("setsockopt({what})")));
    }
    Ok(())
}

/// The unread messages of a socket: their bytes (concatenated), lengths and, for a datagram
/// socket, each sender's address.
#[derive(Default)]
pub(super) struct Queue {
    pub(super) data: Vec<u8>,
    pub(super) lens: Vec<u64>,
    pub(super) senders: Vec<Vec<u8>>,
    /// SCM_CREDENTIALS of each message (pid as the agent sees it, uid, gid), when the
    /// socket has SO_PASSCRED (a stream socket's messages are then its runs of bytes from
    /// one sender, as a read returns them).
    pub(super) creds: Vec<(i32, u32, u32)>,
    /// Copies of the descriptors each message carries (SCM_RIGHTS), same order as `lens`.
    pub(super) fds: Vec<Vec<OwnedFd>>,
}

/// Peek every unread message of socket `fd` without consuming it.
pub(super) fn peek_socket(fd: &OwnedFd, sock_type: i32, total: u64, who: &str) -> Result<Queue> {
    let old = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, "SO_PEEK_OFF")?;
    let r = peek_messages(fd, sock_type, total, who);
    // SO_PEEK_OFF belongs to the program's socket: put it back whatever happened.
    let reset = setsockopt_int(fd, libc::SO_PEEK_OFF, old, "SO_PEEK_OFF");
    let out = r?;
    reset?;
    Ok(out)
}

fn peek_messages(fd: &OwnedFd, sock_type: i32, total: u64, who: &str) -> Result<Queue> {
    let mut cap = 1usize << 16;
    'restart: loop {
        setsockopt_int(fd, libc::SO_PEEK_OFF, 0, "SO_PEEK_OFF")?;
        let mut q = Queue::default();
        let passcred = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PASSCRED, "SO_PASSCRED")? != 0;
        let mut buf = vec![0u8; cap];
        loop {
            if sock_type != libc::SOCK_DGRAM && q.data.len() as u64 >= total {
                break;
            }
            let mut ctl = [0u64; 64];
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // SAFETY: an all-zero sockaddr_un is valid.
            let mut from: libc::sockaddr_un = unsafe { std::mem::zeroed() };
            // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = (&mut from as *mut libc::sockaddr_un).cast();
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = ctl.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&ctl);
            let flags =
                libc::MSG_PEEK | libc::MSG_DONTWAIT | libc::MSG_TRUNC | libc::MSG_CMSG_CLOEXEC;
            // SAFETY: recvmsg writes into the buffers described by `msg`.
            let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EAGAIN) {
                    break;
                }
                return Err(Error::Sys {
                    what: format!("{who}: peeking unread socket data"),
                    source: e,
                });
            }
            // A peek of a message carrying descriptors gives copies of them.
            let passed = take_passed_fds(&msg);
            let n = n as usize;
            let cred = passed_creds(&msg);
            if sock_type == libc::SOCK_STREAM {
                if n == 0 {
                    break;
                }
                // A read ends with the bytes that carry descriptors: keep the bytes before
                // them apart, so that the descriptors come with the same bytes again.
                let start = q.data.len();
                let split = if passed.is_empty() {
                    0
                } else {
                    let k = first_byte_with_fds(fd, start, n)?;
                    setsockopt_int(fd, libc::SO_PEEK_OFF, (start + n) as i32, "SO_PEEK_OFF")?;
                    k
                };
                q.data.extend_from_slice(&buf[..n]);
                let parts = if split > 0 {
                    vec![(split, Vec::new()), (n - split, passed)]
                } else {
                    vec![(n, passed)]
                };
                for (len, fds) in parts {
                    q.lens.push(len as u64);
                    q.fds.push(fds);
                    if passcred {
                        q.creds.push(cred.unwrap_or((0, u32::MAX, u32::MAX)));
                    }
                }
                continue;
            }
            if n > buf.len() {
                cap = n.next_power_of_two();
                continue 'restart;
            }
            if n == 0 && sock_type == libc::SOCK_DGRAM {
                return Err(Error::Unsupported(format!(
                    "{who}: a zero-length datagram is queued (cannot be checkpointed: the \
                     kernel's peek cannot step past it)"
                )));
            }
            if n == 0 {
                break;
            }
            q.data.extend_from_slice(&buf[..n]);
            q.lens.push(n as u64);
            q.fds.push(passed);
            if passcred {
                q.creds.push(cred.unwrap_or((0, u32::MAX, u32::MAX)));
            }
            if sock_type == libc::SOCK_DGRAM {
                let base = std::mem::size_of::<libc::sa_family_t>();
                let len = (msg.msg_namelen as usize).saturating_sub(base);
                let raw: Vec<u8> = from.sun_path[..len.min(from.sun_path.len())]
                    .iter()
                    .map(|&c| c as u8)
                    .collect();
                // A path comes with its terminating NUL (or not): keep the bytes before it.
                let raw = match raw.first() {
                    Some(0) => raw,
                    _ => raw.split(|&b| b == 0).next().unwrap_or(&[]).to_vec(),
                };
                q.senders.push(raw);
            }
        }
        // Without credentials or descriptors a stream's bytes are one run.
        if sock_type == libc::SOCK_STREAM
            && !passcred
            && q.fds.iter().all(Vec::is_empty)
            && !q.data.is_empty()
        {
            q.lens = vec![q.data.len() as u64];
            q.fds = vec![Vec::new()];
        }
        if sock_type != libc::SOCK_DGRAM && q.data.len() as u64 != total {
            return Err(Error::Parse(format!(
                "{who}: peeked {} unread bytes, the kernel counts {total}",
                q.data.len()
            )));
        }
        return Ok(q);
    }
}

/// The descriptors a peek received with SCM_RIGHTS (copies, owned here).
fn take_passed_fds(msg: &libc::msghdr) -> Vec<OwnedFd> {
    let mut out = Vec::new();
    // SAFETY: CMSG_* walk the control buffer the kernel filled in `msg`; each descriptor in
    // an SCM_RIGHTS message is new in this process and owned by us from here on.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let n = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                let p = libc::CMSG_DATA(c) as *const i32;
                for i in 0..n {
                    out.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(p.add(i))));
                }
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    out
}

/// In the `n` bytes of a stream socket's queue from offset `start`, whose read brought
/// descriptors, the offset (from `start`) of the first byte whose one-byte peek brings them:
/// where the message carrying them begins.
fn first_byte_with_fds(fd: &OwnedFd, start: usize, n: usize) -> Result<usize> {
    let (mut lo, mut hi) = (0usize, n - 1);
    while lo < hi {
        let mid = (lo + hi) / 2;
        setsockopt_int(fd, libc::SO_PEEK_OFF, (start + mid) as i32, "SO_PEEK_OFF")?;
        let mut b = [0u8; 1];
        let mut ctl = [0u64; 64];
        let mut iov = libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: 1,
        };
        // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctl.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&ctl);
        // SAFETY: recvmsg writes into the buffers described by `msg`.
        let r = unsafe {
            libc::recvmsg(
                fd.as_raw_fd(),
                &mut msg,
                libc::MSG_PEEK | libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
            )
        };
        if r < 0 {
            return Err(last_os("peeking one byte of a stream socket"));
        }
        if take_passed_fds(&msg).is_empty() {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// The SCM_CREDENTIALS a peek received, if any.
fn passed_creds(msg: &libc::msghdr) -> Option<(i32, u32, u32)> {
    // SAFETY: CMSG_* walk the control buffer the kernel filled in `msg`; the data of an
    // SCM_CREDENTIALS message is one struct ucred.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_CREDENTIALS {
                let u: libc::ucred = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return Some((u.pid, u.uid, u.gid));
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

/// A `struct timeval` socket option as (seconds, microseconds).
fn getsockopt_timeval(fd: &OwnedFd, opt: i32, what: &str) -> Result<(i64, i64)> {
    // SAFETY: an all-zero timeval is valid.
    let mut v: libc::timeval = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: getsockopt writes one timeval into `v`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut libc::timeval).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(last_os(format!("getsockopt({what})")));
    }
    Ok((v.tv_sec, v.tv_usec))
}

/// The options of socket `s` that restore sets again.
pub(super) fn options(s: &OwnedFd) -> Result<SocketOptions> {
    Ok(SocketOptions {
        passcred: getsockopt_int(s, libc::SOL_SOCKET, libc::SO_PASSCRED, "SO_PASSCRED")? != 0,
        rcvtimeo: getsockopt_timeval(s, libc::SO_RCVTIMEO, "SO_RCVTIMEO")?,
        sndtimeo: getsockopt_timeval(s, libc::SO_SNDTIMEO, "SO_SNDTIMEO")?,
        rcvlowat: getsockopt_int(s, libc::SOL_SOCKET, libc::SO_RCVLOWAT, "SO_RCVLOWAT")?,
    })
}
