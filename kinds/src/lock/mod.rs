//! File locks: POSIX record locks, `flock` locks and open file description locks, read from
//! the `lock:` lines of each descriptor's fdinfo at a checkpoint and set again by the process
//! that held them at restore. The image type is [`cairn_image::FileLock`].

pub mod capture;
pub mod restore;

use cairn_image::{FdKind, ProcessTreeImage};

/// The kind of the descriptor that really opened the description behind `fd` of process
/// `pid`, following inherited descriptors to the parent and [`FdKind::SameAs`] to the first
/// holder; `None` when the image does not say.
pub(crate) fn real_kind(image: &ProcessTreeImage, pid: i32, fd: i32) -> Option<&FdKind> {
    let (mut pid, mut fd) = (pid, fd);
    for _ in 0..=image.processes.len() + 1024 {
        let p = image.processes.iter().find(|p| p.pid == pid)?;
        let f = p.fds.iter().find(|f| f.fd == fd)?;
        match &f.kind {
            FdKind::Inherited { parent_fd } => {
                pid = p.ppid;
                fd = *parent_fd;
            }
            FdKind::SameAs { pid: spid, fd: sfd } => {
                pid = *spid;
                fd = *sfd;
            }
            other => return Some(other),
        }
    }
    None
}
