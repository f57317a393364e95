//! Pseudo-terminals at a checkpoint: masters (`/dev/ptmx`) and slaves (`/dev/pts/N`) held by
//! the job, read through a duplicate of the master (`pidfd_getfd`) and a slave opened from it
//! (`TIOCGPTPEER`).

use super::tty::{self, FIONREAD, TIOCGEXCL, TIOCGPKT, TIOCGPTLCK, TIOCGPTPEER, TIOCGWINSZ};
use crate::{FrozenJob, OpenFd};
use cairn_image::{FdKind, MemorySink, ProcessTreeImage, PtyImage};
use cairn_sys::error::last_os;
use cairn_sys::{procfs, Error, Result};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// [`crate::DescribeFn`] of pseudo-terminals: masters and slaves of pairs opened inside the
/// job; `/dev/tty` and other terminals opened by name are refused.
pub fn describe(fd: &OpenFd<'_>, _sink: &mut dyn MemorySink) -> Option<Result<FdKind>> {
    let link = fd.link;
    let flags = fd.flags & (libc::O_ACCMODE | libc::O_NONBLOCK);
    if link == "/dev/ptmx" || link == "/dev/pts/ptmx" {
        let Some(index) = fd.field("tty-index:").and_then(|n| n.parse().ok()) else {
            return Some(Err(fd.unsupported(format!(
                "{link} (a pseudo-terminal master whose index this kernel does not show)"
            ))));
        };
        return Some(Ok(FdKind::Pty {
            index,
            master: true,
            open: 0,
            flags,
        }));
    }
    if let Some(index) = link
        .strip_prefix("/dev/pts/")
        .and_then(|n| n.parse::<u32>().ok())
    {
        return Some(Ok(FdKind::Pty {
            index,
            master: false,
            open: 0,
            flags,
        }));
    }
    if link == "/dev/tty" || link.starts_with("/dev/tty") || link.starts_with("/dev/pts/") {
        return Some(Err(fd.unsupported(format!(
            "{link} (a terminal the job opened by name that is not a pseudo-terminal it \
             opened itself: terminals other than the inherited stdio and the job's own \
             pseudo-terminals)"
        ))));
    }
    None
}

/// The open file description id of a slave descriptor (masters have one description).
fn open_mut(k: &mut FdKind) -> Option<&mut u64> {
    match k {
        FdKind::Pty { open, .. } => Some(open),
        _ => None,
    }
}

/// The index of the Unix 98 pseudo-terminal slave whose device number (as `/proc/PID/stat`
/// shows it) is `tty`, if it is one.
pub(crate) fn pts_index(tty: u64) -> Option<u32> {
    let (major, minor) = ((tty >> 8) & 0xfff, (tty & 0xff) | ((tty >> 12) & 0xfff00));
    (major == 136).then_some(minor as u32)
}

/// [`crate::CaptureFn`] of pseudo-terminals: every pair whose master the job holds, once,
/// with its settings; slaves without their master in the job, data queued in either
/// direction and controlling terminals this restore cannot give back are refused.
pub fn capture_job(
    job: &FrozenJob<'_>,
    image: &mut ProcessTreeImage,
    _: &mut dyn MemorySink,
) -> Result<()> {
    crate::shared::number(job, image, open_mut);
    let mut masters: Vec<(u32, i32, i32)> = Vec::new();
    for (p, &outer) in image.processes.iter().zip(job.outer) {
        for f in &p.fds {
            if let FdKind::Pty {
                index,
                master: true,
                ..
            } = f.kind
            {
                if !masters.iter().any(|m| m.0 == index) {
                    masters.push((index, outer, f.fd));
                }
            }
        }
    }
    for p in &image.processes {
        for f in &p.fds {
            if let FdKind::Pty {
                index,
                master: false,
                ..
            } = f.kind
            {
                if !masters.iter().any(|m| m.0 == index) {
                    return Err(Error::Unsupported(format!(
                        "process {} fd {}: /dev/pts/{index} (a terminal whose master the job \
                         does not hold: terminals other than the inherited stdio and the \
                         job's own pseudo-terminals) cannot be checkpointed",
                        p.pid, f.fd
                    )));
                }
            }
        }
    }
    let mut ptys = Vec::new();
    for &(index, outer, fd) in &masters {
        let who = image
            .processes
            .iter()
            .zip(job.outer)
            .find(|(_, &o)| o == outer)
            .map_or(0, |(p, _)| p.pid);
        let mut pty = read_pair(outer, fd, index).map_err(|e| {
            Error::Unsupported(format!(
                "process {who} fd {fd}: the pseudo-terminal /dev/pts/{index} {}",
                match e {
                    Error::Unsupported(s) | Error::Incompatible(s) => s,
                    other => other.to_string(),
                }
            ))
        })?;
        controlling(job, image, &mut pty)?;
        ptys.push(pty);
    }
    // Processes whose controlling terminal is one of the job's pseudo-terminals.
    for (p, &outer) in image.processes.iter().zip(job.outer) {
        let tty = procfs::stat_field(&procfs::read_stat(outer)?, 7)?;
        let Some(index) = pts_index(tty) else {
            continue;
        };
        let Some(pty) = ptys.iter().find(|t| t.index == index) else {
            if p.pid == p.sid {
                return Err(Error::Unsupported(format!(
                    "process {} leads its own session and has a controlling terminal                      (/dev/pts/{index}) that is not a pseudo-terminal the job holds the master                      of: cannot be checkpointed",
                    p.pid
                )));
            }
            continue;
        };
        if pty.session != Some(p.sid) {
            continue;
        }
        if p.pid != p.sid {
            return Err(Error::Unsupported(format!(
                "process {} has the job's pseudo-terminal /dev/pts/{index} as its controlling \
                 terminal without leading that session (its leader is process {}): only a \
                 session leader gets its controlling terminal back at restore, so this cannot \
                 be checkpointed",
                p.pid, p.sid
            )));
        }
    }
    image.ptys = ptys;
    Ok(())
}

/// Finds the session (if any) whose controlling terminal `pty` is, and its foreground group.
fn controlling(job: &FrozenJob<'_>, image: &ProcessTreeImage, pty: &mut PtyImage) -> Result<()> {
    for (p, &outer) in image.processes.iter().zip(job.outer) {
        if p.pid != p.sid {
            continue;
        }
        let stat = procfs::read_stat(outer)?;
        if pts_index(procfs::stat_field(&stat, 7)?) != Some(pty.index) {
            continue;
        }
        pty.session = Some(p.pid);
        let tpgid: i64 = stat
            .get(5)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Parse("/proc stat field 8".into()))?;
        if tpgid > 0 {
            // The foreground group as the job sees it: that of a process of the job in it.
            let mut fg = None;
            for (q, &qo) in image.processes.iter().zip(job.outer) {
                if procfs::stat_field(&procfs::read_stat(qo)?, 5)? as i64 == tpgid {
                    fg = Some(q.pgid);
                    break;
                }
            }
            pty.foreground = Some(fg.ok_or_else(|| {
                Error::Unsupported(format!(
                    "process {}: the foreground process group of its controlling terminal \
                     /dev/pts/{} has no process in the job: cannot be checkpointed",
                    p.pid, pty.index
                ))
            })?);
        }
    }
    Ok(())
}

/// Reads the pair whose master is `fd` of `outer` (frozen).
fn read_pair(outer: i32, fd: i32, index: u32) -> Result<PtyImage> {
    let master = crate::pipe::capture::steal(outer, fd)?;
    let m = master.as_fd();
    if tty::get_int(m, TIOCGEXCL, "TIOCGEXCL")? != 0 {
        return Err(Error::Unsupported(
            "in exclusive mode (TIOCEXCL) cannot be checkpointed".into(),
        ));
    }
    let locked = tty::get_int(m, TIOCGPTLCK, "TIOCGPTLCK")? != 0;
    let packet = tty::get_int(m, TIOCGPKT, "TIOCGPKT")? != 0;
    // A slave of our own (non-blocking), opened from the master; a locked pair is unlocked
    // for the moment it takes.
    if locked {
        tty::set_int(m, tty::TIOCSPTLCK, 0, "TIOCSPTLCK")?;
    }
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags and returns a new descriptor.
    let s = unsafe { libc::ioctl(m.as_raw_fd(), TIOCGPTPEER as _, flags) };
    let peer = if s < 0 {
        Err(last_os("TIOCGPTPEER"))
    } else {
        // SAFETY: a fresh descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(s) })
    };
    if locked {
        tty::set_int(m, tty::TIOCSPTLCK, 1, "TIOCSPTLCK")?;
    }
    let slave = peer?;
    let sl = slave.as_fd();
    let slave_termios = tty::get_termios(sl)?;
    let mut ws = [0u16; 4];
    tty::ioctl(sl, TIOCGWINSZ, ws.as_mut_ptr().cast(), "TIOCGWINSZ")?;
    // Output the master has not read: taken and written back at once.
    let out = tty::get_int(m, FIONREAD, "FIONREAD")?;
    let mut output = Vec::new();
    if out > 0 {
        if packet {
            return Err(Error::Unsupported(format!(
                "in packet mode with {out} bytes of output the master has not read yet cannot \
                 be checkpointed"
            )));
        }
        output = tty::read_exact(m, out as usize)?;
        tty::put_output(m, sl, &slave_termios, &output)?;
    }
    // Input the program has not read: complete lines (or bytes), then a partly typed line.
    let input = tty::take_input(sl, &slave_termios)?;
    let canonical = tty::lflag(&slave_termios) & libc::ICANON != 0;
    let partial = if canonical {
        let p = partial_line(m, sl, &slave_termios, input.is_empty());
        if let Err(e) = p {
            let _ = tty::put_input(m, sl, &slave_termios, &input);
            return Err(e);
        }
        p?
    } else {
        Vec::new()
    };
    if !partial.is_empty() && !input.is_empty() {
        // Cannot be put back in step (the partial line's read would take a complete line):
        // best effort, then refused.
        let _ = tty::put_input(m, sl, &slave_termios, &input);
        let _ = tty::put_partial_then(m, sl, &slave_termios, &partial, false);
        return Err(Error::Unsupported(
            "with complete input lines and a partly typed line both unread cannot be \
             checkpointed"
                .into(),
        ));
    }
    tty::put_input(m, sl, &slave_termios, &input)?;
    Ok(PtyImage {
        index,
        slave_termios,
        winsize: ws,
        locked,
        packet,
        partial,
        input,
        output,
        session: None,
        foreground: None,
    })
}

/// The line being typed toward a slave in canonical mode (no complete line is queued): only
/// visible once canonical mode is off, which makes the kernel end it; so when there is one,
/// it is read out and put back as a partial line (see [`tty::put_partial`]).
fn partial_line(
    master: std::os::fd::BorrowedFd<'_>,
    slave: std::os::fd::BorrowedFd<'_>,
    saved: &[u8],
    put_back: bool,
) -> Result<Vec<u8>> {
    let raw = tty::with_lflag(saved, tty::lflag(saved) & !libc::ICANON);
    tty::set_termios(slave, &raw)?;
    let r = (|| {
        let n = tty::get_int(slave, FIONREAD, "FIONREAD")?;
        let mut buf = vec![0u8; n.max(0) as usize];
        let mut got = 0;
        while got < buf.len() {
            // SAFETY: reads into a live buffer of the given length.
            let r = unsafe {
                libc::read(
                    slave.as_raw_fd(),
                    buf[got..].as_mut_ptr().cast(),
                    buf.len() - got,
                )
            };
            if r <= 0 {
                return Err(last_os("reading a partly typed line"));
            }
            got += r as usize;
        }
        Ok(buf)
    })();
    // Canonical mode again; with an empty queue this is exactly the state before.
    let back = tty::set_termios(slave, saved);
    let partial = r?;
    back?;
    if !partial.is_empty() && put_back {
        tty::put_partial(master, slave, saved, &partial)?;
    }
    Ok(partial)
}
