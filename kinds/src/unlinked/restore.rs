//! Restore of files without a name: each file of the image is recreated once in the
//! restoring process (a regular file created and unlinked again, an `O_TMPFILE` file, a
//! memfd with its name, a FIFO made and unlinked again, a removed working directory made
//! for the stubs and removed again once they are in it), filled, and every descriptor of it
//! opened anew from it before its mode and owner are set; its seals are added last, once
//! the job's mappings of it exist. Shared mappings map the same file
//! ([`Recreated::shared_object`]).

use super::O_TMPFILE_BIT;
use crate::Recreated;
use cairn_image::{FdImage, FdKind, MemorySource, ProcessTreeImage, UnlinkedFile, UnlinkedKind};
use cairn_sys::error::{io_ctx, last_os};
use cairn_sys::{Error, Result};
use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// [`crate::RecreateFn`] of files without a name.
pub fn recreate(image: &ProcessTreeImage, source: &dyn MemorySource) -> Result<Box<dyn Recreated>> {
    let mut out = Unlinked::default();
    for f in &image.unlinked {
        let first_tmpfile = image.processes.iter().find_map(|p| {
            p.fds.iter().find_map(|d| match d.kind {
                FdKind::Unlinked { id, flags, offset }
                    if id == f.id && flags & O_TMPFILE_BIT != 0 =>
                {
                    Some((p.pid, d.fd, flags, offset))
                }
                _ => None,
            })
        });
        let holder = match &f.kind {
            UnlinkedKind::Directory => {
                out.dirs.push((make_dir(f)?, f.clone()));
                continue;
            }
            UnlinkedKind::Regular => match first_tmpfile {
                Some((pid, fd, flags, offset)) => {
                    let (creator, holder) = tmpfile(f, flags, source)?;
                    seek(&creator, offset, &f.path)?;
                    out.fds.insert((pid, fd), creator);
                    holder
                }
                None => regular(f, source)?,
            },
            UnlinkedKind::Memfd { name, hugetlb, .. } => memfd(f, name, *hugetlb, source)?,
            UnlinkedKind::Fifo { capacity } => fifo(f, *capacity, source)?,
        };
        out.files.insert(f.id, (holder, f.clone()));
    }
    for p in &image.processes {
        for d in &p.fds {
            let FdKind::Unlinked { id, flags, offset } = d.kind else {
                continue;
            };
            if out.fds.contains_key(&(p.pid, d.fd)) {
                continue;
            }
            let (holder, f) = out.files.get(&id).ok_or_else(|| {
                Error::Incompatible(format!(
                    "process {} fd {}: file {id} is not in the image",
                    p.pid, d.fd
                ))
            })?;
            let fd = reopen(holder, f, flags)?;
            if !matches!(f.kind, UnlinkedKind::Fifo { .. }) {
                seek(&fd, offset, &f.path)?;
            }
            out.fds.insert((p.pid, d.fd), fd);
        }
    }
    for (holder, f) in out.files.values() {
        owner_and_mode(holder, f)?;
    }
    for (path, f) in &out.dirs {
        let d = File::open(path).map_err(io_ctx(format!("opening {}", path.display())))?;
        owner_and_mode(&d, f)?;
    }
    Ok(Box::new(out))
}

/// The recreated files: id → (a read-write descriptor, its image), the descriptors of the
/// job `(pid, fd)`, and the working directories made for the stubs.
#[derive(Default)]
struct Unlinked {
    files: HashMap<u64, (OwnedFd, UnlinkedFile)>,
    fds: HashMap<(i32, i32), OwnedFd>,
    dirs: Vec<(PathBuf, UnlinkedFile)>,
    /// The directories are removed again (a failed restore removes them when dropped).
    dirs_removed: std::cell::Cell<bool>,
}

impl Drop for Unlinked {
    fn drop(&mut self) {
        if !self.dirs_removed.get() {
            for (path, _) in &self.dirs {
                let _ = std::fs::remove_dir(path);
            }
        }
    }
}

impl Recreated for Unlinked {
    fn open(&self, pid: i32, fd: &FdImage, _: &dyn MemorySource) -> Option<Result<OwnedFd>> {
        let FdKind::Unlinked { id, .. } = fd.kind else {
            return None;
        };
        Some(
            self.fds
                .get(&(pid, fd.fd))
                .ok_or_else(|| {
                    Error::Incompatible(format!(
                        "process {pid} fd {}: file {id} was not recreated",
                        fd.fd
                    ))
                })
                .and_then(|f| f.try_clone().map_err(io_ctx("dup of a recreated file"))),
        )
    }
    fn descriptors_taken(&mut self) {
        self.fds.clear();
    }
    fn shared_object(&self, id: u64) -> Option<BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.files.get(&id).map(|(h, _)| h.as_fd())
    }
    fn in_job(&self, _root: i32, _source: &dyn MemorySource) -> Result<()> {
        // Every stub is in its working directory: remove the ones that were removed.
        self.dirs_removed.set(true);
        for (path, _) in &self.dirs {
            std::fs::remove_dir(path)
                .map_err(io_ctx(format!("removing {} again", path.display())))?;
        }
        Ok(())
    }
    fn finish(&self, _root: i32) -> Result<()> {
        for (holder, f) in self.files.values() {
            if let UnlinkedKind::Memfd { seals, .. } = f.kind {
                if seals == 0 {
                    continue;
                }
                // SAFETY: fcntl on our own descriptor.
                if unsafe { libc::fcntl(holder.as_raw_fd(), libc::F_ADD_SEALS, seals as i32) } < 0 {
                    return Err(last_os(format!("sealing {} with seals {seals:#x}", f.path)));
                }
            }
        }
        Ok(())
    }
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Incompatible(format!("path with NUL: {}", p.display())))
}

fn owned(fd: i32, what: impl FnOnce() -> String) -> Result<OwnedFd> {
    if fd < 0 {
        return Err(last_os(what()));
    }
    // SAFETY: a fresh descriptor returned by the kernel, owned by us from now on.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The saved contents of `f` (empty when none were saved).
fn contents(f: &UnlinkedFile, source: &dyn MemorySource) -> Result<Vec<u8>> {
    match f.content {
        Some((pid, key)) => source
            .read_file(pid, key)
            .map_err(io_ctx(format!("reading the saved contents of {}", f.path))),
        None => Ok(Vec::new()),
    }
}

/// Writes the saved contents of regular file or memfd `f` into `fd` and sets its size.
fn fill(fd: &OwnedFd, f: &UnlinkedFile, source: &dyn MemorySource) -> Result<()> {
    let data = contents(f, source)?;
    let file = File::from(fd.try_clone().map_err(io_ctx("dup of a recreated file"))?);
    file.write_all_at(&data, 0)
        .and_then(|_| file.set_len(f.size))
        .map_err(io_ctx(format!("refilling {}", f.path)))
}

/// A name next to `path` that nothing has, for a moment.
fn temp_name(path: &Path, what: &str) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("/"));
    dir.join(format!(".cairn-restore-{what}-{}", std::process::id()))
}

/// Runs `create` at `path` when nothing is there (so that /proc shows the same
/// "PATH (deleted)"), else at a temporary name next to it.
fn at_path_or_next_to<T>(
    path: &Path,
    what: &str,
    create: impl Fn(&Path) -> std::io::Result<T>,
) -> Result<(T, PathBuf)> {
    match create(path) {
        Ok(t) => Ok((t, path.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let tmp = temp_name(path, what);
            let t = create(&tmp).map_err(io_ctx(format!("creating {}", tmp.display())))?;
            Ok((t, tmp))
        }
        Err(e) => Err(Error::Sys {
            what: format!("recreating {}", path.display()),
            source: e,
        }),
    }
}

/// A deleted regular file: created at its path (or next to it), opened, unlinked again.
fn regular(f: &UnlinkedFile, source: &dyn MemorySource) -> Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let (file, made) = at_path_or_next_to(Path::new(&f.path), "file", |p| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(p)
    })?;
    let r = std::fs::remove_file(&made).map_err(io_ctx(format!("unlinking {}", made.display())));
    let fd = OwnedFd::from(file);
    r?;
    fill(&fd, f, source)?;
    Ok(fd)
}

/// An `O_TMPFILE` file, made again with `O_TMPFILE` in its directory through the open of
/// the first descriptor that made it (`flags`), which is returned first; then a read-write
/// holder. It is given a name and the name removed again, which makes it unlinkable, as a
/// file made with `O_EXCL` (what `tmpfile()` does; the kernel does not show `O_EXCL`).
fn tmpfile(f: &UnlinkedFile, flags: i32, source: &dyn MemorySource) -> Result<(OwnedFd, OwnedFd)> {
    let dir = Path::new(&f.path).parent().unwrap_or(Path::new("/"));
    let c = cpath(dir)?;
    let oflags = flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC | libc::O_NOCTTY);
    // SAFETY: open with a NUL-terminated path.
    let creator = owned(
        unsafe { libc::open(c.as_ptr(), oflags | libc::O_CLOEXEC, 0o600) },
        || format!("making an O_TMPFILE file in {}", dir.display()),
    )?;
    let proc = format!("/proc/self/fd/{}", creator.as_raw_fd());
    let holder = owned(
        // SAFETY: open with a NUL-terminated path.
        unsafe {
            libc::open(
                format!("{proc}\0").as_ptr().cast(),
                libc::O_RDWR | libc::O_CLOEXEC,
            )
        },
        || format!("opening {} read-write", f.path),
    )?;
    fill(&holder, f, source)?;
    let tmp = cpath(&temp_name(Path::new(&f.path), "tmpfile"))?;
    let from = CString::new(proc).map_err(|_| Error::Parse("NUL".into()))?;
    // SAFETY: linkat with NUL-terminated paths.
    if unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            tmp.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    } < 0
    {
        return Err(last_os(format!("linking {} for a moment", f.path)));
    }
    // SAFETY: unlink with a NUL-terminated path.
    if unsafe { libc::unlink(tmp.as_ptr()) } < 0 {
        return Err(last_os(format!("unlinking {:?}", tmp)));
    }
    Ok((creator, holder))
}

/// A memfd with its name, sealable (its seals are added at the end).
fn memfd(
    f: &UnlinkedFile,
    name: &str,
    hugetlb: bool,
    source: &dyn MemorySource,
) -> Result<OwnedFd> {
    if hugetlb {
        return Err(Error::Unsupported(format!(
            "{}: memfds on hugetlbfs cannot be restored",
            f.path
        )));
    }
    let c = CString::new(name).map_err(|_| Error::Parse("memfd name with NUL".into()))?;
    // SAFETY: memfd_create with a NUL-terminated name.
    let fd = owned(
        unsafe { libc::memfd_create(c.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) },
        || format!("memfd_create({name:?})"),
    )?;
    fill(&fd, f, source)?;
    Ok(fd)
}

/// A deleted FIFO: made at its path (or next to it), held open read-write, unlinked again,
/// refilled with its unread bytes.
fn fifo(f: &UnlinkedFile, capacity: u64, source: &dyn MemorySource) -> Result<OwnedFd> {
    let (holder, made) = at_path_or_next_to(Path::new(&f.path), "fifo", |p| {
        let c = CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: mkfifo and open with a NUL-terminated path.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: as above; read-write never blocks on a FIFO.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    })?;
    std::fs::remove_file(&made).map_err(io_ctx(format!("unlinking {}", made.display())))?;
    // SAFETY: fcntl on our own descriptor.
    if unsafe { libc::fcntl(holder.as_raw_fd(), libc::F_SETPIPE_SZ, capacity as i32) } < 0 {
        return Err(last_os(format!(
            "setting the capacity of {} to {capacity}",
            f.path
        )));
    }
    let data = contents(f, source)?;
    let mut w = File::from(holder.try_clone().map_err(io_ctx("dup of a FIFO"))?);
    std::io::Write::write_all(&mut w, &data).map_err(io_ctx(format!("refilling {}", f.path)))?;
    Ok(holder)
}

/// A removed working directory, made again at its path for the stubs to enter.
fn make_dir(f: &UnlinkedFile) -> Result<PathBuf> {
    let path = PathBuf::from(&f.path);
    match std::fs::create_dir(&path) {
        Ok(()) => Ok(path),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(Error::Incompatible(format!(
                "the working directory {} was removed at the checkpoint, but that path exists \
                 again: move it away to restart",
                f.path
            )))
        }
        Err(e) => Err(Error::Sys {
            what: format!(
                "making the removed working directory {} for the restore",
                f.path
            ),
            source: e,
        }),
    }
}

/// A new open of recreated file `f` (held by `holder`) with the descriptor's `flags`.
fn reopen(holder: &OwnedFd, f: &UnlinkedFile, flags: i32) -> Result<OwnedFd> {
    let fifo = matches!(f.kind, UnlinkedKind::Fifo { .. });
    let mut o = flags
        & !(O_TMPFILE_BIT
            | libc::O_DIRECTORY
            | libc::O_CREAT
            | libc::O_EXCL
            | libc::O_TRUNC
            | libc::O_NOCTTY
            // The reopen goes through the magic link /proc/self/fd/N, which O_NOFOLLOW would
            // refuse (ELOOP); the flag only ever concerned the lookup of the original open.
            | libc::O_NOFOLLOW);
    if fifo {
        // Opening one end of a FIFO alone must not wait (the holder is both ends).
        o |= libc::O_NONBLOCK;
    }
    let path = format!("/proc/self/fd/{}\0", holder.as_raw_fd());
    // SAFETY: open with a NUL-terminated path.
    let fd = owned(
        unsafe { libc::open(path.as_ptr().cast(), o | libc::O_CLOEXEC) },
        || format!("opening {} with flags {flags:o}", f.path),
    )?;
    if fifo && flags & libc::O_NONBLOCK == 0 {
        // SAFETY: fcntl on our own descriptor.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
            return Err(last_os(format!("setting the flags of {}", f.path)));
        }
    }
    Ok(fd)
}

fn seek(fd: &OwnedFd, offset: u64, path: &str) -> Result<()> {
    // SAFETY: lseek on our own descriptor.
    if unsafe { libc::lseek(fd.as_raw_fd(), offset as i64, libc::SEEK_SET) } < 0 {
        return Err(last_os(format!("seeking {path} to {offset}")));
    }
    Ok(())
}

/// Gives `f`'s owner and mode to the file open as `fd` (owner first: chown clears set-id
/// bits).
fn owner_and_mode(fd: &impl AsRawFd, f: &UnlinkedFile) -> Result<()> {
    // SAFETY: fstat into a zeroed buffer we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(last_os(format!("stat of {}", f.path)));
    }
    if (st.st_uid, st.st_gid) != (f.uid, f.gid) {
        // SAFETY: fchown on our own descriptor.
        if unsafe { libc::fchown(fd.as_raw_fd(), f.uid, f.gid) } < 0 {
            return Err(last_os(format!(
                "giving {} its owner {}:{} (restore as root, or as that user)",
                f.path, f.uid, f.gid
            )));
        }
    }
    // SAFETY: fchmod on our own descriptor.
    if unsafe { libc::fchmod(fd.as_raw_fd(), f.mode & 0o7777) } < 0 {
        return Err(last_os(format!(
            "giving {} its mode {:o}",
            f.path,
            f.mode & 0o7777
        )));
    }
    Ok(())
}
