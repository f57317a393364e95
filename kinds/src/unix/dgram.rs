//! Datagrams queued on a bound socket, sent again each from a socket with its sender's
//! address: the job's socket of that name, or a temporary one.

use super::restore::{bind, get_int, new_socket, set_int, show, sockaddr};
use cairn_image::{SocketImage, SocketName};
use cairn_sys::error::last_os;
use cairn_sys::{Error, Result};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};

/// The name `raw` (sun_path bytes as recvmsg reports them) as a [`SocketName`].
fn name_of_raw(raw: &[u8]) -> Result<SocketName> {
    match raw.split_first() {
        Some((0, rest)) => Ok(SocketName::Abstract(rest.to_vec())),
        _ => Ok(SocketName::Path {
            path: String::from_utf8(raw.to_vec())
                .map_err(|_| Error::Incompatible("a sender's socket name is not UTF-8".into()))?,
            exists: false,
            mode: 0o777,
            owner: None,
        }),
    }
}

/// Send one datagram from `from` to `to`.
fn send_to(from: &OwnedFd, msg: &[u8], to: &SocketName, id: u64) -> Result<()> {
    let (a, len) = sockaddr(to)?;
    let need = (msg.len() as i32).saturating_mul(2).saturating_add(1 << 16);
    if get_int(from, libc::SO_SNDBUF) < need && !set_int(from, libc::SO_SNDBUFFORCE, need) {
        set_int(from, libc::SO_SNDBUF, need);
    }
    // SAFETY: sendto reads `msg` and `len` bytes of `a`.
    let n = unsafe {
        libc::sendto(
            from.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            (&a as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    if n < 0 {
        return Err(last_os(format!(
            "queueing a datagram of {} bytes on UNIX socket {id} ({}) again",
            msg.len(),
            show(to)
        )));
    }
    Ok(())
}

/// Bind the temporary socket `fd` to the name of a sender that is gone: a socket file left
/// at its path stays as it was (mode, owner), otherwise the path is unlinked again at the end.
fn bind_temp(fd: &OwnedFd, name: &SocketName, unlink_after: &mut Vec<String>) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let SocketName::Path { path, .. } = name else {
        return bind(fd, name, unlink_after);
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) => {
            let left = SocketName::Path {
                path: path.clone(),
                exists: true,
                mode: m.mode() & 0o7777,
                owner: Some((m.uid(), m.gid())),
            };
            bind(fd, &left, unlink_after)
        }
        Err(_) => {
            let gone = SocketName::Path {
                path: path.clone(),
                exists: false,
                mode: 0o777,
                owner: None,
            };
            bind(fd, &gone, unlink_after)
        }
    }
}

/// Queue the datagrams of the bound, not yet connected socket `s` again, each sent from
/// a socket with its sender's address: the job's socket of that name, or a temporary one
/// (unnamed, or bound to the name of a sender that is gone) kept in `temps`.
pub(super) fn refill_datagrams(
    sockets: &HashMap<u64, OwnedFd>,
    s: &SocketImage,
    data: &[u8],
    by_id: &HashMap<u64, &SocketImage>,
    temps: &mut Vec<(Vec<u8>, OwnedFd)>,
    unlink_after: &mut Vec<String>,
) -> Result<()> {
    let to = s.name.as_ref().ok_or_else(|| {
        Error::Incompatible(format!("unnamed datagram socket {} has unread data", s.id))
    })?;
    if s.senders.len() != s.messages.len() {
        return Err(Error::Incompatible(format!(
            "datagram socket {}: {} senders for {} messages",
            s.id,
            s.senders.len(),
            s.messages.len()
        )));
    }
    let mut off = 0usize;
    for (&len, raw) in s.messages.iter().zip(&s.senders) {
        let msg = data.get(off..off + len as usize).ok_or_else(|| {
            Error::Incompatible(format!("unread data of socket {} is short", s.id))
        })?;
        off += len as usize;
        let job_sender = (!raw.is_empty())
            .then(|| name_of_raw(raw))
            .transpose()?
            .and_then(|n| {
                by_id.values().find(|x| {
                    x.sock_type == libc::SOCK_DGRAM
                        && match (&x.name, &n) {
                            (
                                Some(SocketName::Path { path: a, .. }),
                                SocketName::Path { path: b, .. },
                            ) => a == b,
                            (Some(a), b) => a == b,
                            _ => false,
                        }
                })
            })
            .map(|x| x.id);
        let from = match job_sender {
            Some(j) => &sockets[&j],
            None => {
                if !temps.iter().any(|t| t.0 == *raw) {
                    let t = new_socket(libc::SOCK_DGRAM)?;
                    if !raw.is_empty() {
                        bind_temp(&t, &name_of_raw(raw)?, unlink_after)?;
                    }
                    temps.push((raw.clone(), t));
                }
                temps
                    .iter()
                    .find(|t| t.0 == *raw)
                    .map(|t| &t.1)
                    .ok_or_else(|| Error::Incompatible("temporary sender missing".into()))?
            }
        };
        send_to(from, msg, to, s.id)?;
    }
    Ok(())
}
