//! Pseudo-terminal pairs inside the job: each descriptor from its `/proc` link and fdinfo,
//! the pair's state through a copy of its master (`pidfd_getfd`) while the job is frozen.

use crate::{FrozenJob, OpenFd};
use cairn_image::{FdKind, MemorySink, ProcessTreeImage, PtyImage, PtyPairImage};
use cairn_sys::error::last_os;
use cairn_sys::{Error, Result};
use std::os::fd::{AsRawFd, OwnedFd};

/// [`crate::DescribeFn`] of pseudo-terminals: a master (`/dev/ptmx`) or slave (`/dev/pts/N`)
/// the job opened itself becomes [`FdKind::Pty`] ([`capture_job`] refuses the pairs it cannot
/// restore); any other terminal the job opened itself is refused.
pub fn describe(fd: &OpenFd<'_>, _sink: &mut dyn MemorySink) -> Option<Result<FdKind>> {
    let link = fd.link;
    let flags = fd.flags & (libc::O_ACCMODE | libc::O_NONBLOCK);
    if link == "/dev/ptmx" || link == "/dev/pts/ptmx" {
        return Some(match fd.field("tty-index:").and_then(|n| n.parse().ok()) {
            Some(index) if fd.inside => Ok(FdKind::Pty(PtyImage {
                id: 0,
                index,
                master: true,
                flags,
                pair: None,
            })),
            _ => Err(fd.unsupported(format!(
                "{link} (a pseudo-terminal master whose number this kernel does not show: \
                     pseudo-terminals)"
            ))),
        });
    }
    if let Some(index) = link.strip_prefix("/dev/pts/").and_then(|n| n.parse().ok()) {
        if fd.inside {
            return Some(Ok(FdKind::Pty(PtyImage {
                id: 0,
                index,
                master: false,
                flags,
                pair: None,
            })));
        }
    }
    if link.starts_with("/dev/pts/") || link == "/dev/tty" || link.starts_with("/dev/tty") {
        return Some(Err(fd.unsupported(format!(
            "{link} (a terminal the job opened itself or did not inherit: terminals other than \
             the inherited stdio and pseudo-terminals whose master the job holds)"
        ))));
    }
    None
}

/// The pty part of a descriptor's kind.
fn pty_mut(k: &mut FdKind) -> Option<&mut PtyImage> {
    match k {
        FdKind::Pty(p) => Some(p),
        _ => None,
    }
}

/// [`crate::CaptureFn`] of pseudo-terminals: descriptors sharing an open file description
/// get one id; each pair's state is read through its first master descriptor. A slave whose
/// master no process of the job holds, or input waiting at a slave, is refused.
pub fn capture_job(
    job: &FrozenJob<'_>,
    image: &mut ProcessTreeImage,
    _sink: &mut dyn MemorySink,
) -> Result<()> {
    crate::shared::number(job, image, |k| pty_mut(k).map(|p| &mut p.id));
    let mut masters: Vec<u32> = Vec::new();
    for (p, &outer) in image.processes.iter_mut().zip(job.outer) {
        for f in &mut p.fds {
            let Some(pty) = pty_mut(&mut f.kind) else {
                continue;
            };
            if !pty.master || masters.contains(&pty.index) {
                continue;
            }
            masters.push(pty.index);
            let master = cairn_sys::uffd::take_fd(outer, f.fd)?;
            pty.pair = Some(pair(&master, pty.index).map_err(|e| match e {
                Error::Unsupported(why) => Error::Unsupported(format!(
                    "process {} fd {}: /dev/ptmx (master of /dev/pts/{}): {why}",
                    p.pid, f.fd, pty.index
                )),
                other => other,
            })?);
        }
    }
    for p in &image.processes {
        for f in &p.fds {
            if let FdKind::Pty(pty) = &f.kind {
                if !pty.master && !masters.contains(&pty.index) {
                    return Err(Error::Unsupported(format!(
                        "process {} fd {}: /dev/pts/{} (the slave of a pseudo-terminal whose \
                         master no process of the job holds: pseudo-terminals) cannot be \
                         checkpointed",
                        p.pid, f.fd, pty.index
                    )));
                }
            }
        }
    }
    Ok(())
}

/// `ioctl(fd, req, arg)`, the error naming `what`.
pub(crate) fn ioctl<T>(
    fd: &impl AsRawFd,
    req: libc::c_ulong,
    arg: *mut T,
    what: &str,
) -> Result<i32> {
    // SAFETY: every caller passes a request whose argument is `*mut T` (or an integer cast
    // to a pointer) pointing at live memory of the right size.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req, arg) };
    if r < 0 {
        return Err(last_os(what.to_string()));
    }
    Ok(r)
}

/// The slave of the pair of `master`, opened from the master (`TIOCGPTPEER`).
pub(crate) fn peer(master: &OwnedFd) -> Result<OwnedFd> {
    let flags = (libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) as usize;
    let fd = ioctl(
        master,
        libc::TIOCGPTPEER,
        flags as *mut u8,
        "opening a pty's slave",
    )?;
    crate::shared::fresh(fd, "opening a pty's slave")
}

/// The state of the pair of `master` (a copy of the job's master). The bytes waiting at the
/// master are read and written back through the slave with output processing off, so the
/// job finds them where they were.
fn pair(master: &OwnedFd, index: u32) -> Result<PtyPairImage> {
    let slave = peer(master)?;
    let mut t: libc::termios = unsafe_zeroed();
    ioctl(&slave, libc::TCGETS, &mut t, "reading a pty's termios")?;
    let mut ws: libc::winsize = unsafe_zeroed();
    ioctl(
        &slave,
        libc::TIOCGWINSZ,
        &mut ws,
        "reading a pty's window size",
    )?;
    let mut packet: libc::c_int = 0;
    ioctl(
        master,
        libc::TIOCGPKT,
        &mut packet,
        "reading a pty's packet mode",
    )?;
    let mut locked: libc::c_int = 0;
    ioctl(
        master,
        libc::TIOCGPTLCK,
        &mut locked,
        "reading a pty's lock",
    )?;
    let mut input: libc::c_int = 0;
    ioctl(
        &slave,
        libc::FIONREAD,
        &mut input,
        "reading a pty's input queue",
    )?;
    if input > 0 {
        return Err(Error::Unsupported(format!(
            "{input} bytes of input wait at /dev/pts/{index} (input queued to a pseudo-terminal \
             cannot be read back without taking it) and cannot be checkpointed"
        )));
    }
    let mut waiting: libc::c_int = 0;
    ioctl(
        master,
        libc::FIONREAD,
        &mut waiting,
        "reading a pty's output queue",
    )?;
    let mut output = vec![0u8; waiting.max(0) as usize];
    let mut got = 0;
    while got < output.len() {
        // SAFETY: reads into the unfilled part of our buffer; the bytes are available, so
        // the read does not block.
        let n = unsafe {
            libc::read(
                master.as_raw_fd(),
                output[got..].as_mut_ptr().cast(),
                output.len() - got,
            )
        };
        if n <= 0 {
            break;
        }
        got += n as usize;
    }
    output.truncate(got);
    if !output.is_empty() {
        refill(&slave, &t, &output)?;
    }
    Ok(PtyPairImage {
        modes: [t.c_iflag, t.c_oflag, t.c_cflag, t.c_lflag],
        line: t.c_line,
        cc: t.c_cc.to_vec(),
        winsize: [ws.ws_row, ws.ws_col, ws.ws_xpixel, ws.ws_ypixel],
        packet: packet != 0,
        locked: locked != 0,
        output,
    })
}

/// Writes `data` through `slave` (whose termios are `t`) so that the master reads exactly
/// these bytes: output processing off for the write, `t` again after it.
pub(crate) fn refill(slave: &OwnedFd, t: &libc::termios, data: &[u8]) -> Result<()> {
    let mut raw = *t;
    raw.c_oflag &= !libc::OPOST;
    ioctl(
        slave,
        libc::TCSETS,
        &mut raw,
        "turning a pty's output processing off",
    )?;
    let mut done = 0;
    while done < data.len() {
        // SAFETY: writes from a live buffer to our own descriptor.
        let n = unsafe {
            libc::write(
                slave.as_raw_fd(),
                data[done..].as_ptr().cast(),
                data.len() - done,
            )
        };
        if n <= 0 {
            let e = last_os("writing a pty's waiting output back".to_string());
            let mut back = *t;
            let _ = ioctl(slave, libc::TCSETS, &mut back, "");
            return Err(e);
        }
        done += n as usize;
    }
    let mut back = *t;
    ioctl(
        slave,
        libc::TCSETS,
        &mut back,
        "setting a pty's termios back",
    )?;
    Ok(())
}

/// A zeroed C structure.
pub(crate) fn unsafe_zeroed<T: Copy>() -> T {
    // SAFETY: only used for plain C structures (termios, winsize), for which all zero bytes
    // are a valid value.
    unsafe { std::mem::zeroed() }
}
