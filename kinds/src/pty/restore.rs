//! Pseudo-terminal pairs recreated by the restoring process: `/dev/ptmx` opened until it
//! gives the pair its old number, the slave's termios and window size, the master's packet
//! mode and lock, the output waiting at the master written back; then one open file
//! description per recorded one.

use super::capture::{ioctl, peer, refill, unsafe_zeroed};
use crate::shared::fresh;
use crate::Recreated;
use cairn_image::{FdImage, FdKind, MemorySource, ProcessTreeImage, PtyImage, PtyPairImage};
use cairn_sys::error::{io_ctx, last_os};
use cairn_sys::{Error, Result};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};

/// [`crate::RecreateFn`] of pseudo-terminals.
pub fn recreate(image: &ProcessTreeImage, _: &dyn MemorySource) -> Result<Box<dyn Recreated>> {
    let mut pairs: HashMap<u32, (OwnedFd, OwnedFd)> = HashMap::new();
    for p in &image.processes {
        for f in &p.fds {
            if let FdKind::Pty(PtyImage {
                index,
                pair: Some(pair),
                ..
            }) = &f.kind
            {
                let made = make_pair(*index, pair).map_err(|e| {
                    Error::Incompatible(format!(
                        "process {} fd {}: recreating the pseudo-terminal /dev/pts/{index}: {e}",
                        p.pid, f.fd
                    ))
                })?;
                pairs.insert(*index, made);
            }
        }
    }
    let mut files: HashMap<u64, OwnedFd> = HashMap::new();
    for p in &image.processes {
        for f in &p.fds {
            let FdKind::Pty(pty) = &f.kind else {
                continue;
            };
            if files.contains_key(&pty.id) {
                continue;
            }
            let (master, _) = pairs.get(&pty.index).ok_or_else(|| {
                Error::Incompatible(format!(
                    "process {} fd {}: the pseudo-terminal /dev/pts/{} is not in the image",
                    p.pid, f.fd, pty.index
                ))
            })?;
            let file = if pty.master {
                master
                    .try_clone()
                    .map_err(io_ctx("dup of a pseudo-terminal master"))?
            } else {
                peer(master)?
            };
            // SAFETY: fcntl on our own descriptor.
            if unsafe {
                libc::fcntl(
                    file.as_raw_fd(),
                    libc::F_SETFL,
                    pty.flags & libc::O_NONBLOCK,
                )
            } < 0
            {
                return Err(last_os(format!(
                    "setting the flags of /dev/pts/{}",
                    pty.index
                )));
            }
            files.insert(pty.id, file);
        }
    }
    Ok(Box::new(Ptys { pairs, files }))
}

/// A new pair numbered `index`: `/dev/ptmx` is opened until it hands out that number (the
/// lower numbers it hands out first are closed again); a higher number means `index` is in
/// use.
fn make_pair(index: u32, pair: &PtyPairImage) -> Result<(OwnedFd, OwnedFd)> {
    let mut others = Vec::new();
    let master = loop {
        // SAFETY: open with a NUL-terminated path.
        let fd = unsafe {
            libc::open(
                c"/dev/ptmx".as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            )
        };
        let fd = fresh(fd, "opening /dev/ptmx")?;
        let mut n: libc::c_uint = 0;
        ioctl(&fd, libc::TIOCGPTN, &mut n, "reading a pty's number")?;
        if n == index {
            break fd;
        }
        if n > index || others.len() > index as usize {
            return Err(Error::Incompatible(format!(
                "/dev/pts/{index} is in use by another program now (the pair would get \
                 another number): end that program to restart"
            )));
        }
        others.push(fd);
    };
    drop(others);
    let mut unlock: libc::c_int = 0;
    ioctl(&master, libc::TIOCSPTLCK, &mut unlock, "unlocking a pty")?;
    let slave = peer(&master)?;
    let mut t: libc::termios = unsafe_zeroed();
    ioctl(&slave, libc::TCGETS, &mut t, "reading a pty's termios")?;
    [t.c_iflag, t.c_oflag, t.c_cflag, t.c_lflag] = pair.modes;
    t.c_line = pair.line;
    for (d, s) in t.c_cc.iter_mut().zip(&pair.cc) {
        *d = *s;
    }
    ioctl(&slave, libc::TCSETS, &mut t, "setting a pty's termios")?;
    let mut ws = libc::winsize {
        ws_row: pair.winsize[0],
        ws_col: pair.winsize[1],
        ws_xpixel: pair.winsize[2],
        ws_ypixel: pair.winsize[3],
    };
    ioctl(
        &slave,
        libc::TIOCSWINSZ,
        &mut ws,
        "setting a pty's window size",
    )?;
    if !pair.output.is_empty() {
        refill(&slave, &t, &pair.output)?;
    }
    if pair.packet {
        let mut on: libc::c_int = 1;
        ioctl(
            &master,
            libc::TIOCPKT,
            &mut on,
            "setting a pty's packet mode",
        )?;
    }
    if pair.locked {
        let mut lock: libc::c_int = 1;
        ioctl(&master, libc::TIOCSPTLCK, &mut lock, "locking a pty")?;
    }
    Ok((master, slave))
}

/// The job's pseudo-terminal pairs (master, one slave kept open until every descriptor is
/// handed out) and one open file description per recorded one.
struct Ptys {
    pairs: HashMap<u32, (OwnedFd, OwnedFd)>,
    files: HashMap<u64, OwnedFd>,
}

impl Recreated for Ptys {
    fn open(&self, pid: i32, fd: &FdImage, _: &dyn MemorySource) -> Option<Result<OwnedFd>> {
        let FdKind::Pty(pty) = &fd.kind else {
            return None;
        };
        Some(match self.files.get(&pty.id) {
            Some(f) => f
                .try_clone()
                .map_err(io_ctx(format!("dup of /dev/pts/{}", pty.index))),
            None => Err(Error::Incompatible(format!(
                "process {pid} fd {}: pseudo-terminal {} is not in the image",
                fd.fd, pty.id
            ))),
        })
    }
    fn descriptors_taken(&mut self) {
        self.files.clear();
        self.pairs.clear();
    }
}
