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
pub(crate) fn ioctl(
    fd: BorrowedFd<'_>,
    req: u64,
    arg: *mut libc::c_void,
    what: &str,
) -> Result<()> {
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
    put_partial_then(master, slave_nb, saved, partial, true)
}

/// [`put_partial`], where `sync` false (complete lines are queued before it, which the read
/// would take) waits a moment instead of reading: only on the way to a refusal.
pub(crate) fn put_partial_then(
    master: BorrowedFd<'_>,
    slave_nb: BorrowedFd<'_>,
    saved: &[u8],
    partial: &[u8],
    sync: bool,
) -> Result<()> {
    if partial.contains(&b'\n') {
        return Err(cairn_sys::Error::Unsupported(
            "a partly typed line holding a quoted newline".into(),
        ));
    }
    // IXON and the start and stop characters stay as they are: changing them would tell a
    // master in packet mode (TIOCPKT_DOSTOP / TIOCPKT_NOSTOP).
    let ixon = u32::from_ne_bytes([saved[0], saved[1], saved[2], saved[3]]) & libc::IXON;
    if ixon != 0
        && partial
            .iter()
            .any(|&c| c != 0 && (c == saved[CC + 8] || c == saved[CC + 9]))
    {
        return Err(cairn_sys::Error::Unsupported(
            "a partly typed line holding a quoted start or stop character".into(),
        ));
    }
    let mut quiet = saved.to_vec();
    quiet[0..4].copy_from_slice(&ixon.to_ne_bytes());
    quiet[LFLAG..LFLAG + 4].copy_from_slice(&libc::ICANON.to_ne_bytes());
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
        if !sync {
            std::thread::sleep(std::time::Duration::from_millis(50));
            return Ok(());
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

/// Offset of `c_oflag` in a `termios2`.
const OFLAG: usize = 4;
/// `c_cc` index of VEOF.
const VEOF: usize = 4;

/// Waits (up to two seconds) until the line discipline has taken in what was written, which
/// it does asynchronously: `FIONREAD` of `fd` reads `want`.
fn settle(fd: BorrowedFd<'_>, want: i32) -> Result<()> {
    for _ in 0..2000 {
        if get_int(fd, FIONREAD, "FIONREAD")? == want {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Err(cairn_sys::Error::Unsupported(
        "queued data that the terminal did not take back".into(),
    ))
}

/// Writes all of `data` to `fd`.
fn write_all(fd: BorrowedFd<'_>, data: &[u8]) -> Result<()> {
    let mut done = 0;
    while done < data.len() {
        // SAFETY: writes from a live buffer of the given length.
        let n = unsafe {
            libc::write(
                fd.as_raw_fd(),
                data[done..].as_ptr().cast(),
                data.len() - done,
            )
        };
        if n <= 0 {
            return Err(last_os("writing queued terminal data back"));
        }
        done += n as usize;
    }
    Ok(())
}

/// Reads exactly `n` bytes from `fd` (that many are known to be readable).
pub(crate) fn read_exact(fd: BorrowedFd<'_>, n: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        // SAFETY: reads into a live buffer of the given length.
        let r = unsafe { libc::read(fd.as_raw_fd(), buf[got..].as_mut_ptr().cast(), n - got) };
        if r <= 0 {
            return Err(last_os("reading queued terminal data"));
        }
        got += r as usize;
    }
    Ok(buf)
}

/// The settings under which bytes written to the master are stored for the slave as they
/// are: no echo, no signals, no input translation, every special character off (but VSTART
/// and VSTOP, see [`put_partial`]), canonical mode as in `saved`.
fn quiet_input(saved: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let ixon = u32::from_ne_bytes([saved[0], saved[1], saved[2], saved[3]]) & libc::IXON;
    if ixon != 0
        && data
            .iter()
            .any(|&c| c != 0 && (c == saved[CC + 8] || c == saved[CC + 9]))
    {
        return Err(cairn_sys::Error::Unsupported(
            "queued input holding a quoted start or stop character".into(),
        ));
    }
    let mut quiet = saved.to_vec();
    quiet[0..4].copy_from_slice(&ixon.to_ne_bytes());
    let canon = lflag(saved) & libc::ICANON;
    quiet[LFLAG..LFLAG + 4].copy_from_slice(&canon.to_ne_bytes());
    for i in SPECIAL {
        quiet[CC + i] = 0;
    }
    Ok(quiet)
}

/// Puts output the master had not read (`data`) back: written to the slave with output
/// processing off, so the master reads the same bytes (the master's own line discipline is
/// always raw).
pub(crate) fn put_output(
    master: BorrowedFd<'_>,
    slave_nb: BorrowedFd<'_>,
    saved: &[u8],
    data: &[u8],
) -> Result<()> {
    let before = get_int(master, FIONREAD, "FIONREAD")?;
    let mut quiet = saved.to_vec();
    quiet[OFLAG..OFLAG + 4].copy_from_slice(&0u32.to_ne_bytes());
    set_termios(slave_nb, &quiet)?;
    let r = write_all(slave_nb, data).and_then(|_| settle(master, before + data.len() as i32));
    let back = set_termios(slave_nb, saved);
    r?;
    back
}

/// Puts input the slave had not read back, through the master: in canonical mode each
/// element is a complete line (ending with its newline, or ended by the EOF character when
/// it does not; an empty one is an EOF character alone), otherwise the one element holds the
/// bytes.
pub(crate) fn put_input(
    master: BorrowedFd<'_>,
    slave_nb: BorrowedFd<'_>,
    saved: &[u8],
    input: &[Vec<u8>],
) -> Result<()> {
    if input.is_empty() {
        return Ok(());
    }
    let all: Vec<u8> = input.concat();
    let mut quiet = quiet_input(saved, &all)?;
    let canon = lflag(saved) & libc::ICANON != 0;
    let mut bytes = Vec::new();
    if canon {
        // One EOF character for every line ended by EOF, that no line holds (the program's
        // own when it can: an EOF character still in flight when the settings are set back
        // then means the same); the kernel does not store it.
        let eof = std::iter::once(saved[CC + VEOF])
            .chain(1..=255u8)
            .find(|c| *c != 0 && *c != b'\n' && !all.contains(c))
            .ok_or_else(|| {
                cairn_sys::Error::Unsupported("queued input lines holding every byte".into())
            })?;
        quiet[CC + VEOF] = eof;
        for line in input {
            if line[..line.len().saturating_sub(1)].contains(&b'\n') {
                return Err(cairn_sys::Error::Unsupported(
                    "a queued input line holding a quoted newline".into(),
                ));
            }
            bytes.extend_from_slice(line);
            if line.last() != Some(&b'\n') {
                bytes.push(eof);
            }
        }
    } else {
        bytes = all.clone();
    }
    let before = get_int(slave_nb, FIONREAD, "FIONREAD")?;
    set_termios(slave_nb, &quiet)?;
    let r = write_all(master, &bytes).and_then(|_| settle(slave_nb, before + all.len() as i32));
    let back = set_termios(slave_nb, saved);
    r?;
    back
}

/// Takes the input queued for the slave (through `slave_nb`, non-blocking): complete lines
/// one read each in canonical mode (a read returns one line; an empty one is an EOF
/// character at the start of a line) until none is left, all bytes otherwise.
pub(crate) fn take_input(slave_nb: BorrowedFd<'_>, saved: &[u8]) -> Result<Vec<Vec<u8>>> {
    if lflag(saved) & libc::ICANON == 0 {
        let n = get_int(slave_nb, FIONREAD, "FIONREAD")?;
        if n == 0 {
            return Ok(Vec::new());
        }
        return Ok(vec![read_exact(slave_nb, n as usize)?]);
    }
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        // SAFETY: reads into a live buffer of its length.
        let r = unsafe { libc::read(slave_nb.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::WouldBlock {
                return Ok(lines);
            }
            return Err(last_os("reading queued input lines"));
        }
        lines.push(buf[..r as usize].to_vec());
    }
}
