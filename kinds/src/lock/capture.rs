//! Capture of file locks: every `lock:` line of every descriptor's fdinfo. The kernel shows a
//! POSIX lock on the descriptors of its owner (the process) that hold the description it was
//! set through, and a `flock` or OFD lock on every descriptor of its description, in every
//! process: each lock is recorded once, with the process and descriptor that set it again.

use super::real_kind;
use crate::shared::same_file;
use crate::FrozenJob;
use cairn_image::{FdKind, FileLock, LockKind, MemorySink, ProcessTreeImage};
use cairn_sys::error::io_ctx;
use cairn_sys::{Error, Result};
use std::fs;
use std::os::unix::fs::MetadataExt;

/// One `lock:` line of fdinfo.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LockLine {
    /// The kind, or the kernel's word for one cairn does not restore (LEASE, DELEG, ...).
    pub kind: std::result::Result<LockKind, String>,
    pub write: bool,
    /// The pid the kernel shows (the setter of a POSIX lock, as the reader's /proc sees it).
    pub pid: i32,
    pub dev: (u32, u32),
    pub ino: u64,
    pub start: u64,
    pub end: Option<u64>,
}

/// Parse the text after `lock:` (`1: POSIX  ADVISORY  WRITE 42 fe:00:1234 10 29`).
pub(crate) fn parse(line: &str) -> Option<LockLine> {
    let mut w = line.split_whitespace();
    w.next()?; // "1:"
    let kind = match w.next()? {
        "POSIX" => Ok(LockKind::Posix),
        "FLOCK" => Ok(LockKind::Flock),
        "OFDLCK" => Ok(LockKind::Ofd),
        other => Err(other.to_string()),
    };
    if kind.is_err() {
        return Some(LockLine {
            kind,
            write: false,
            pid: 0,
            dev: (0, 0),
            ino: 0,
            start: 0,
            end: None,
        });
    }
    if w.next()? != "ADVISORY" {
        return None;
    }
    let write = match w.next()? {
        "WRITE" => true,
        "READ" => false,
        _ => return None,
    };
    let pid = w.next()?.parse().ok()?;
    let mut id = w.next()?.split(':');
    let maj = u32::from_str_radix(id.next()?, 16).ok()?;
    let min = u32::from_str_radix(id.next()?, 16).ok()?;
    let ino = id.next()?.parse().ok()?;
    let start = w.next()?.parse().ok()?;
    let end = match w.next()? {
        "EOF" => None,
        e => Some(e.parse().ok()?),
    };
    Some(LockLine {
        kind,
        write,
        pid,
        dev: (maj, min),
        ino,
        start,
        end,
    })
}

/// Whether processes `a` and `b` (outer pids) have one descriptor table.
fn same_table(a: i32, b: i32) -> bool {
    const KCMP_FILES: i32 = 2;
    // SAFETY: kcmp only compares kernel objects; no memory is passed.
    a == b || unsafe { libc::syscall(libc::SYS_kcmp, a, b, KCMP_FILES, 0, 0) == 0 }
}

/// What the kernel calls a lock kind cairn does not restore, in words.
fn unsupported_kind(word: &str) -> String {
    match word {
        "LEASE" => "a lease (fcntl F_SETLEASE)".into(),
        "DELEG" => "a delegation".into(),
        "ACCESS" => "a lock being tested".into(),
        w => format!("a lock of kind {w}"),
    }
}

/// [`crate::CaptureFn`] of file locks.
pub fn capture_job(
    job: &FrozenJob<'_>,
    image: &mut ProcessTreeImage,
    _sink: &mut dyn MemorySink,
) -> Result<()> {
    // Each recorded lock with the outer pid and file it came from, for de-duplication.
    let mut seen: Vec<(FileLock, i32, (u32, u32), u64)> = Vec::new();
    for (p, &outer) in image.processes.iter().zip(job.outer) {
        let exe = fs::metadata(format!("/proc/{outer}/exe")).ok();
        for f in &p.fds {
            let path = format!("/proc/{outer}/fdinfo/{}", f.fd);
            let info = fs::read_to_string(&path).map_err(io_ctx(format!("reading {path}")))?;
            for text in info.lines().filter_map(|l| l.strip_prefix("lock:")) {
                let refuse = |what: String| {
                    Error::Unsupported(format!(
                        "process {} fd {}: {what} cannot be checkpointed",
                        p.pid, f.fd
                    ))
                };
                let l = parse(text).ok_or_else(|| {
                    refuse(format!("a lock this kernel shows as {:?}", text.trim()))
                })?;
                let kind = l.kind.map_err(|w| refuse(unsupported_kind(&w)))?;
                let regular_without_name = |id: u64| {
                    image.unlinked.iter().any(|u| {
                        u.id == id
                            && matches!(
                                u.kind,
                                cairn_image::UnlinkedKind::Regular
                                    | cairn_image::UnlinkedKind::Memfd { .. }
                            )
                    })
                };
                match real_kind(image, p.pid, f.fd) {
                    Some(FdKind::Path { .. } | FdKind::Deleted { .. }) => {}
                    // A deleted or O_TMPFILE regular file, or a memfd (a file without a name).
                    Some(FdKind::Unlinked { id, .. }) if regular_without_name(*id) => {}
                    _ => {
                        let link = fs::read_link(format!("/proc/{outer}/fd/{}", f.fd))
                            .map(|l| l.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        return Err(refuse(format!(
                            "a file lock on {link} (locks on anything but regular files)"
                        )));
                    }
                }
                // A POSIX lock belongs to a descriptor table; among the processes sharing it,
                // the one that set it (whose pid F_GETLK reports) sets it again.
                let setter = match kind {
                    LockKind::Posix if l.pid != outer => job
                        .outer
                        .iter()
                        .position(|&o| o == l.pid && same_table(o, outer))
                        .map_or(p.pid, |i| image.processes[i].pid),
                    _ => p.pid,
                };
                let lock = FileLock {
                    pid: setter,
                    fd: f.fd,
                    kind,
                    write: l.write,
                    start: l.start,
                    end: l.end,
                };
                if kind == LockKind::Posix {
                    let on_exe = exe.as_ref().is_some_and(|m| {
                        m.ino() == l.ino && m.dev() == libc::makedev(l.dev.0, l.dev.1)
                    });
                    if on_exe {
                        return Err(refuse(
                            "a POSIX lock on the process's own executable".into(),
                        ));
                    }
                }
                let dup = seen.iter().any(|(s, so, sdev, sino)| {
                    s.kind == kind
                        && s.write == l.write
                        && s.start == l.start
                        && s.end == l.end
                        && *sdev == l.dev
                        && *sino == l.ino
                        && match kind {
                            // One owner: the descriptor table (a dup of the description, or
                            // a process sharing the table, shows it twice).
                            LockKind::Posix => same_table(*so, outer),
                            // One owner: the description, in whichever process.
                            LockKind::Flock | LockKind::Ofd => same_file(*so, s.fd, outer, f.fd),
                        }
                });
                if !dup {
                    seen.push((lock, outer, l.dev, l.ino));
                }
            }
        }
    }
    image.locks = seen.into_iter().map(|s| s.0).collect();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernels_lock_lines() {
        let l = parse("\t1: POSIX  ADVISORY  WRITE 9999 fe:00:10256436 10 29").unwrap();
        assert_eq!(l.kind, Ok(LockKind::Posix));
        assert!(l.write);
        assert_eq!(
            (l.dev, l.ino, l.start, l.end),
            ((0xfe, 0), 10256436, 10, Some(29))
        );
        let l = parse("2: POSIX  ADVISORY  READ 9999 fe:00:10256436 100 EOF").unwrap();
        assert_eq!((l.write, l.start, l.end), (false, 100, None));
        let l = parse("1: FLOCK  ADVISORY  READ 9999 fe:00:10256452 0 EOF").unwrap();
        assert_eq!(l.kind, Ok(LockKind::Flock));
        let l = parse("1: OFDLCK ADVISORY  WRITE -1 fe:00:10256473 5 5").unwrap();
        assert_eq!((l.kind, l.start, l.end), (Ok(LockKind::Ofd), 5, Some(5)));
        let l = parse("1: LEASE  ACTIVE    READ 4242 fe:00:1 0 EOF").unwrap();
        assert_eq!(l.kind, Err("LEASE".into()));
        assert!(parse("1: POSIX  MANDATORY WRITE 1 00:01:2 0 EOF").is_none());
    }
}
