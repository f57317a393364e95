//! Restore of file locks: once a process's descriptors are installed, each lock it is to set
//! is taken again by injecting `fcntl(F_SETLK)`, `fcntl(F_OFD_SETLK)` or `flock(LOCK_NB)`
//! into it, so that the owner is the restored process (POSIX) or the restored open file
//! description (flock, OFD). A lock that another process took meanwhile fails the restore.

use super::real_kind;
use crate::scratch;
use crate::Recreated;
use cairn_image::{FdKind, FileLock, LockKind, MemorySource, ProcessImage, ProcessTreeImage};
use cairn_sys::inject::Injector;
use cairn_sys::{Error, Result};

const F_SETLK: u64 = 6;
const F_OFD_SETLK: u64 = 37;

/// [`crate::RecreateFn`] of file locks: nothing to create before the processes exist.
pub fn recreate(
    image: &ProcessTreeImage,
    _source: &dyn MemorySource,
) -> Result<Box<dyn Recreated>> {
    let locks = image
        .locks
        .iter()
        .map(|l| {
            let path = match real_kind(image, l.pid, l.fd) {
                Some(FdKind::Path { path, .. } | FdKind::Deleted { path, .. }) => path.clone(),
                // A file without a name (deleted, O_TMPFILE, memfd): named by its old path.
                Some(FdKind::Unlinked { id, .. }) => image
                    .unlinked
                    .iter()
                    .find(|u| u.id == *id)
                    .map(|u| format!("{} (deleted)", u.path))
                    .ok_or_else(|| {
                        Error::Incompatible(format!(
                            "process {} fd {}: a file lock on a file without a name that the \
                             image does not hold",
                            l.pid, l.fd
                        ))
                    })?,
                _ => {
                    return Err(Error::Incompatible(format!(
                        "process {} fd {}: a file lock on a descriptor that is not a regular \
                         file in the image",
                        l.pid, l.fd
                    )))
                }
            };
            Ok((l.clone(), path))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Box::new(Locks(locks)))
}

/// The locks of the image, each with the path of its file (for messages).
struct Locks(Vec<(FileLock, String)>);

/// How a lock is described in messages: "POSIX write lock on bytes 10-29 of /f".
fn describe(l: &FileLock, path: &str) -> String {
    let kind = match l.kind {
        LockKind::Posix => "POSIX",
        LockKind::Flock => "flock",
        LockKind::Ofd => "OFD",
    };
    let ty = if l.write { "write" } else { "read" };
    let range = match (l.kind, l.end) {
        (LockKind::Flock, _) => String::new(),
        (_, Some(e)) => format!(" bytes {}-{e} of", l.start),
        (_, None) => format!(" bytes {}-EOF of", l.start),
    };
    format!("{kind} {ty} lock on{range} {path}")
}

impl Recreated for Locks {
    fn in_process(&self, inj: &Injector, p: &ProcessImage) -> Result<()> {
        let mine: Vec<&(FileLock, String)> = self.0.iter().filter(|l| l.0.pid == p.pid).collect();
        if mine.is_empty() {
            return Ok(());
        }
        scratch::with_page(inj, |page| {
            for (l, path) in mine {
                let r = match l.kind {
                    LockKind::Flock => {
                        let op = if l.write {
                            libc::LOCK_EX
                        } else {
                            libc::LOCK_SH
                        };
                        inj.raw(libc::SYS_flock, &[l.fd as u64, (op | libc::LOCK_NB) as u64])?
                    }
                    LockKind::Posix | LockKind::Ofd => {
                        let ty = if l.write {
                            libc::F_WRLCK
                        } else {
                            libc::F_RDLCK
                        };
                        let len = l.end.map_or(0, |e| e - l.start + 1);
                        // struct flock: l_type, l_whence (shorts), l_start, l_len, l_pid.
                        let mut b = [0u8; 32];
                        b[0..2].copy_from_slice(&(ty as i16).to_le_bytes());
                        b[2..4].copy_from_slice(&(libc::SEEK_SET as i16).to_le_bytes());
                        b[8..16].copy_from_slice(&l.start.to_le_bytes());
                        b[16..24].copy_from_slice(&len.to_le_bytes());
                        scratch::put(inj, page, &b)?;
                        let cmd = if l.kind == LockKind::Posix {
                            F_SETLK
                        } else {
                            F_OFD_SETLK
                        };
                        inj.raw(libc::SYS_fcntl, &[l.fd as u64, cmd, page])?
                    }
                };
                if r < 0 {
                    let errno = -r as i32;
                    let why = if errno == libc::EAGAIN || errno == libc::EACCES {
                        "another process holds a conflicting lock now".to_string()
                    } else {
                        std::io::Error::from_raw_os_error(errno).to_string()
                    };
                    return Err(Error::Incompatible(format!(
                        "process {} fd {}: taking its {} again: {why}",
                        p.pid,
                        l.fd,
                        describe(l, path)
                    )));
                }
            }
            Ok(())
        })
    }
}
