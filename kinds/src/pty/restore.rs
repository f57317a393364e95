//! Pseudo-terminals at restore: each pair is opened again by the restoring process with its
//! old index (`/dev/ptmx` hands out the lowest free index, so lower free ones are taken for
//! the moment), given its settings and its partly typed line, and handed out; a session
//! leader whose controlling terminal it was acquires it again inside its rebuilt process,
//! with the foreground process group.

use super::tty::TIOCSWINSZ;
use super::tty::{self, TIOCGPTN, TIOCGPTPEER, TIOCPKT, TIOCSCTTY, TIOCSPGRP, TIOCSPTLCK};
use crate::Recreated;
use cairn_image::{FdImage, FdKind, MemorySource, ProcessImage, ProcessTreeImage, PtyImage};
use cairn_sys::error::{io_ctx, last_os};
use cairn_sys::inject::Injector;
use cairn_sys::{procfs, Error, Result};
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

const PAGE: u64 = 4096;
/// Lower free indexes taken at most while looking for one pair's index.
const MAX_SPARES: usize = 4096;

/// [`crate::RecreateFn`] of pseudo-terminals.
pub fn recreate(image: &ProcessTreeImage, _: &dyn MemorySource) -> Result<Box<dyn Recreated>> {
    let mut ptys = image.ptys.clone();
    ptys.sort_by_key(|p| p.index);
    let mut out = Pairs {
        ptys: ptys.clone(),
        masters: HashMap::new(),
        slaves: HashMap::new(),
    };
    let mut spares = Vec::new();
    for pty in &ptys {
        let master = allocate(pty.index, &mut spares)?;
        let (master_flags, slave_opens) = descriptions(image, pty.index);
        configure(&master, pty).map_err(|e| {
            Error::Incompatible(format!(
                "recreating the pseudo-terminal /dev/pts/{}: {e}",
                pty.index
            ))
        })?;
        for (open, flags) in slave_opens {
            let s = peer(&master, flags)?;
            out.slaves.insert((pty.index, open), s);
        }
        if pty.packet {
            tty::set_int(master.as_fd(), TIOCPKT, 1, "TIOCPKT")?;
        }
        // SAFETY: F_SETFL on our own descriptor.
        if unsafe {
            libc::fcntl(
                master.as_raw_fd(),
                libc::F_SETFL,
                master_flags & libc::O_NONBLOCK,
            )
        } < 0
        {
            return Err(last_os("F_SETFL of a pseudo-terminal master"));
        }
        if pty.locked && pty.session.is_none() {
            tty::set_int(master.as_fd(), TIOCSPTLCK, 1, "TIOCSPTLCK")?;
        }
        out.masters.insert(pty.index, master);
    }
    drop(spares);
    Ok(Box::new(out))
}

/// Opens `/dev/ptmx` until it hands out `index`; lower indexes go to `spares` (closed once
/// every pair has its index).
fn allocate(index: u32, spares: &mut Vec<OwnedFd>) -> Result<OwnedFd> {
    for _ in 0..MAX_SPARES {
        let m = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags_noctty()
            .open("/dev/ptmx")
            .map_err(io_ctx("opening /dev/ptmx"))?;
        let m = OwnedFd::from(m);
        let got = tty::get_int(m.as_fd(), TIOCGPTN, "TIOCGPTN")? as u32;
        if got == index {
            return Ok(m);
        }
        if got > index {
            return Err(Error::Incompatible(format!(
                "the pseudo-terminal /dev/pts/{index} of the job is in use by another program \
                 now (the job may have kept its name): restart once it is free"
            )));
        }
        spares.push(m);
    }
    Err(Error::Incompatible(format!(
        "the pseudo-terminal /dev/pts/{index}: more than {MAX_SPARES} lower numbers are free"
    )))
}

/// `O_NOCTTY` for [`std::fs::OpenOptions`].
trait NoCtty {
    fn custom_flags_noctty(&mut self) -> &mut Self;
}

impl NoCtty for std::fs::OpenOptions {
    fn custom_flags_noctty(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::custom_flags(self, libc::O_NOCTTY)
    }
}

/// The master's status flags and the slave's open file descriptions (id, flags) of pair
/// `index` in the image.
fn descriptions(image: &ProcessTreeImage, index: u32) -> (i32, Vec<(u64, i32)>) {
    let mut master = 0;
    let mut opens: Vec<(u64, i32)> = Vec::new();
    for f in image.processes.iter().flat_map(|p| &p.fds) {
        if let FdKind::Pty {
            index: i,
            master: m,
            open,
            flags,
        } = f.kind
        {
            if i != index {
                continue;
            }
            if m {
                master = flags;
            } else if !opens.iter().any(|o| o.0 == open) {
                opens.push((open, flags));
            }
        }
    }
    (master, opens)
}

/// A new open file description of the slave of `master` with `flags`.
fn peer(master: &OwnedFd, flags: i32) -> Result<OwnedFd> {
    let flags = (flags & (libc::O_ACCMODE | libc::O_NONBLOCK)) | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags and returns a new descriptor.
    let s = unsafe { libc::ioctl(master.as_raw_fd(), TIOCGPTPEER as _, flags) };
    if s < 0 {
        return Err(last_os("TIOCGPTPEER"));
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(s) })
}

/// Unlocks the new pair and gives it the settings, window size and partly typed line of
/// `pty` (packet mode and the lock come after).
fn configure(master: &OwnedFd, pty: &PtyImage) -> Result<()> {
    tty::set_int(master.as_fd(), TIOCSPTLCK, 0, "TIOCSPTLCK")?;
    let slave = peer(master, libc::O_RDWR | libc::O_NONBLOCK)?;
    tty::set_termios(slave.as_fd(), &pty.slave_termios)?;
    let mut ws = pty.winsize;
    tty::ioctl(
        slave.as_fd(),
        TIOCSWINSZ,
        ws.as_mut_ptr().cast(),
        "TIOCSWINSZ",
    )?;
    if !pty.output.is_empty() {
        tty::put_output(
            master.as_fd(),
            slave.as_fd(),
            &pty.slave_termios,
            &pty.output,
        )?;
    }
    if !pty.input.is_empty() {
        tty::put_input(
            master.as_fd(),
            slave.as_fd(),
            &pty.slave_termios,
            &pty.input,
        )?;
    }
    if !pty.partial.is_empty() {
        tty::put_partial(
            master.as_fd(),
            slave.as_fd(),
            &pty.slave_termios,
            &pty.partial,
        )?;
    }
    Ok(())
}

/// The job's pseudo-terminals.
struct Pairs {
    ptys: Vec<PtyImage>,
    masters: HashMap<u32, OwnedFd>,
    slaves: HashMap<(u32, u64), OwnedFd>,
}

impl Recreated for Pairs {
    fn open(&self, pid: i32, fd: &FdImage, _: &dyn MemorySource) -> Option<Result<OwnedFd>> {
        let FdKind::Pty {
            index,
            master,
            open,
            ..
        } = fd.kind
        else {
            return None;
        };
        let file = if master {
            self.masters.get(&index)
        } else {
            self.slaves.get(&(index, open))
        };
        Some(
            file.ok_or_else(|| {
                Error::Incompatible(format!(
                    "process {pid} fd {}: pseudo-terminal {index} is not in the image",
                    fd.fd
                ))
            })
            .and_then(|f| f.try_clone().map_err(io_ctx("dup of a pseudo-terminal"))),
        )
    }

    fn descriptors_taken(&mut self) {
        self.slaves.clear();
        // Pairs that a session leader acquires again stay open here until then: a locked
        // one is locked once that is done.
        let keep: Vec<u32> = self
            .ptys
            .iter()
            .filter(|p| p.locked && p.session.is_some())
            .map(|p| p.index)
            .collect();
        self.masters.retain(|i, _| keep.contains(i));
    }

    fn in_process(&self, inj: &Injector, p: &ProcessImage) -> Result<()> {
        let Some(pty) = self.ptys.iter().find(|t| t.session == Some(p.pid)) else {
            return Ok(());
        };
        let stub = inj.tid();
        let page = inj.call(
            "mmap",
            libc::SYS_mmap,
            &[
                0,
                PAGE,
                (libc::PROT_READ | libc::PROT_WRITE) as u64,
                (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
                u64::MAX,
                0,
            ],
        )?;
        let what = |e: Error| {
            Error::Incompatible(format!(
                "process {}: making /dev/pts/{} its controlling terminal again: {e}",
                p.pid, pty.index
            ))
        };
        let r = (|| {
            let mut path = format!("/dev/pts/{}", pty.index).into_bytes();
            path.push(0);
            write(stub, page, &path)?;
            // Without O_NOCTTY: a session leader without a controlling terminal acquires it.
            let fd = inj
                .call(
                    "openat(/dev/pts/N)",
                    libc::SYS_openat,
                    &[
                        libc::AT_FDCWD as u64,
                        page,
                        (libc::O_RDWR | libc::O_CLOEXEC) as u64,
                    ],
                )
                .map_err(what)?;
            let r = (|| {
                inj.call("ioctl(TIOCSCTTY)", libc::SYS_ioctl, &[fd, TIOCSCTTY, 0])?;
                if let Some(fg) = pty.foreground {
                    write(stub, page + 64, &fg.to_ne_bytes())?;
                    inj.call(
                        "ioctl(TIOCSPGRP)",
                        libc::SYS_ioctl,
                        &[fd, TIOCSPGRP, page + 64],
                    )?;
                }
                Ok(())
            })();
            inj.call("close", libc::SYS_close, &[fd])?;
            r.map_err(what)
        })();
        let u = inj.call("munmap", libc::SYS_munmap, &[page, PAGE]);
        r?;
        u.map(|_| ())
    }

    fn finish(&self, _root: i32) -> Result<()> {
        for (i, m) in &self.masters {
            tty::set_int(m.as_fd(), TIOCSPTLCK, 1, "TIOCSPTLCK")
                .map_err(|e| Error::Incompatible(format!("locking /dev/pts/{i} again: {e}")))?;
        }
        Ok(())
    }
}

fn write(pid: i32, addr: u64, data: &[u8]) -> Result<()> {
    procfs::write_mem(pid, None, addr, data).map_err(io_ctx("writing into a restore stub"))
}
