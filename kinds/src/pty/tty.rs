//! Terminal ioctls on descriptors of this process, and putting a partly typed line back.

use cairn_sys::error::last_os;
use cairn_sys::Result;
use std::os::fd::{AsRawFd, BorrowedFd};

pub(crate) const TCGETS2: u64 = 0x802C_542A;
pub(crate) const TCSETS2: u64 = 0x402C_542B;
pub(crate) const TIOCGPTN: u64 = 0x8004_5430;
pub(crate) const TIOCSPTLCK: u64 = 0x4004_5431;
pub(crate) const TIOCGPTLCK: u64 = 0x8004_5439;
pub(crate) const TIOCGPKT: u64 = 0x8004_5438;
pub(crate) const TIOCPKT: u64 = 0x5420;
pub(crate) const TIOCGEXCL: u64 = 0x8004_5440;
pub(crate) const TIOCGPTPEER: u64 = 0x5441;
pub(crate) const TIOCGWINSZ: u64 = 0x5413;
pub(crate) const TIOCSWINSZ: u64 = 0x5414;
pub(crate) const FIONREAD: u64 = 0x541B;
/// `TIOCSCTTY`.
pub(crate) const TIOCSCTTY: u64 = 0x540E;
/// `TIOCSPGRP`.
pub(crate) const TIOCSPGRP: u64 = 0x5410;

/// Size of `struct termios2`.
pub(crate) const TERMIOS2: usize = 44;
/// Offset of `c_lflag` in it.
const LFLAG: usize = 12;
/// Offset of `c_cc`.
const CC: usize = 17;
/// `c_cc` indexes of the characters a canonical line discipline acts on (but VSTART and
/// VSTOP).
const SPECIAL: [usize; 12] = [0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 15, 16];

/// `ioctl(fd, req, arg)` on a descriptor of this process.
pub(crate) fn ioctl(fd: BorrowedFd<'_>, req: u64, arg: *mut libc::c_void, what: &str) -> Result<()> {
    // SAFETY: the callers pass an argument of the size the request reads or writes.
    if unsafe { libc::ioctl(fd.as_raw_fd(), req as _, arg) } < 0 {
        return Err(last_os(what.to_string()));
    }
    Ok(())
}

/// An int-valued `ioctl` that fills an int.
pub(crate) fn get_int(fd: BorrowedFd<'_>, req: u64, what: &str) -> Result<i32> {
    let mut v: libc::c_int = 0;
    ioctl(fd, req, (&mut v as *mut libc::c_int).cast(), what)?;
    Ok(v)
}

/// An `ioctl` that reads an int.
pub(crate) fn set_int(fd: BorrowedFd<'_>, req: u64, v: i32, what: &str) -> Result<()> {
    let mut v: libc::c_int = v;
    ioctl(fd, req, (&mut v as *mut libc::c_int).cast(), what)
}

/// `TCGETS2`.
pub(crate) fn get_termios(fd: BorrowedFd<'_>) -> Result<Vec<u8>> {
    let mut t = vec![0u8; TERMIOS2];
    ioctl(fd, TCGETS2, t.as_mut_ptr().cast(), "TCGETS2")?;
    Ok(t)
}

/// `TCSETS2`.
pub(crate) fn set_termios(fd: BorrowedFd<'_>, t: &[u8]) -> Result<()> {
    let mut t = t.to_vec();
    if t.len() != TERMIOS2 {
        return Err(cairn_sys::Error::Incompatible(format!(
            "a terminal's settings of {} bytes (expected {TERMIOS2})",
            t.len()
        )));
    }
    ioctl(fd, TCSETS2, t.as_mut_ptr().cast(), "TCSETS2")
}

/// `c_lflag` of a `termios2`.
pub(crate) fn lflag(t: &[u8]) -> u32 {
    u32::from_ne_bytes([t[LFLAG], t[LFLAG + 1], t[LFLAG + 2], t[LFLAG + 3]])
}

/// `t` with `c_lflag` replaced.
pub(crate) fn with_lflag(t: &[u8], l: u32) -> Vec<u8> {
    let mut t = t.to_vec();
    t[LFLAG..LFLAG + 4].copy_from_slice(&l.to_ne_bytes());
    t
}

/// Puts `partial` (a line being typed, not ended) back into the slave's input through the
/// master, where the slave's settings are `saved`: canonical mode with no echo, no input
/// translation, no signals and every special character off stores the bytes as they are,
/// with no line end; a non-blocking read on `slave_nb` (a non-blocking slave descriptor)
/// makes the line discipline take them in now (it finds no complete line and returns
/// EAGAIN); then `saved` is set again (canonical mode stays on, so the line stays partial).
pub(crate) fn put_partial(
    master: BorrowedFd<'_>,
    slave_nb: BorrowedFd<'_>,
    saved: &[u8],
    partial: &[u8],
) -> Result<()> {
    if partial.contains(&b'\n') {
        return Err(cairn_sys::Error::Unsupported(
            "a partly typed line holding a quoted newline".into(),
        ));
    }
    // IXON and the start and stop characters stay as they are: changing them would tell a
    // master in packet mode (TIOCPKT_DOSTOP / TIOCPKT_NOSTOP).
    let ixon = u32::from_ne_bytes([saved[0], saved[1], saved[2], saved[3]]) & libc::IXON as u32;
    if ixon != 0 && partial.iter().any(|&c| c != 0 && (c == saved[CC + 8] || c == saved[CC + 9])) {
        return Err(cairn_sys::Error::Unsupported(
            "a partly typed line holding a quoted start or stop character".into(),
        ));
    }
    let mut quiet = saved.to_vec();
    quiet[0..4].copy_from_slice(&ixon.to_ne_bytes());
    quiet[LFLAG..LFLAG + 4].copy_from_slice(&(libc::ICANON as u32).to_ne_bytes());
    for i in SPECIAL {
        quiet[CC + i] = 0;
    }
    set_termios(slave_nb, &quiet)?;
    let r = (|| {
        let mut done = 0;
        while done < partial.len() {
            // SAFETY: writes from a live buffer of the given length.
            let n = unsafe {
                libc::write(
                    master.as_raw_fd(),
                    partial[done..].as_ptr().cast(),
                    partial.len() - done,
                )
            };
            if n <= 0 {
                return Err(last_os("writing a partly typed line back"));
            }
            done += n as usize;
        }
        let mut b = [0u8; 1];
        // SAFETY: reads at most one byte into a live buffer.
        let n = unsafe { libc::read(slave_nb.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
        if n >= 0 {
            return Err(cairn_sys::Error::Unsupported(
                "a partly typed line that became readable when put back".into(),
            ));
        }
        Ok(())
    })();
    let back = set_termios(slave_nb, saved);
    r?;
    back
}
