//! Regular files at restore: the files the job was writing are rewound to their
//! checkpoint-time state (see `crate::file::capture`), then every descriptor of a regular
//! file is reopened at its offset, and a deleted-but-open file is recreated from its saved
//! contents and unlinked again.

use crate::Recreated;
use cairn_image::{FdImage, FdKind, MemorySource, ProcessTreeImage, WrittenFile};
use cairn_sys::error::io_ctx;
use cairn_sys::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// [`crate::RecreateFn`] of regular files: rewinds the written files ([`rewind`]).
pub fn recreate(image: &ProcessTreeImage, source: &dyn MemorySource) -> Result<Box<dyn Recreated>> {
    rewind(&image.files, source)?;
    Ok(Box::new(Files))
}

/// Opens the regular files of the restored processes.
struct Files;

impl Recreated for Files {
    fn open(&self, pid: i32, fd: &FdImage, source: &dyn MemorySource) -> Option<Result<OwnedFd>> {
        match &fd.kind {
            FdKind::Path {
                path,
                flags,
                offset,
            } => Some(open_at(path, *flags, *offset).map(OwnedFd::from)),
            FdKind::Deleted {
                path,
                flags,
                offset,
                ..
            } => Some(recreate_deleted(pid, fd.fd, path, *flags, *offset, source)),
            _ => None,
        }
    }
}

fn open_at(path: &str, flags: i32, offset: u64) -> Result<File> {
    let acc = flags & libc::O_ACCMODE;
    let mut o = OpenOptions::new();
    o.read(acc == libc::O_RDONLY || acc == libc::O_RDWR)
        .write(acc == libc::O_WRONLY || acc == libc::O_RDWR)
        .custom_flags(flags & !(libc::O_ACCMODE | libc::O_APPEND) | libc::O_CLOEXEC);
    if flags & libc::O_APPEND != 0 {
        o.append(true);
    }
    let mut file =
        open_as_owner(&o, path).map_err(io_ctx(format!("reopening {path} for restore")))?;
    if offset > 0 && !Path::new(path).is_dir() {
        file.seek(SeekFrom::Start(offset))
            .map_err(io_ctx(format!("seeking {path} to {offset}")))?;
    }
    Ok(file)
}

/// Recreates the deleted file that was open as `fd` of process `pid` from its saved contents,
/// opens it with `flags` at `offset`, and unlinks it again.
fn recreate_deleted(
    pid: i32,
    fd: i32,
    path: &str,
    flags: i32,
    offset: u64,
    source: &dyn MemorySource,
) -> Result<OwnedFd> {
    let data = source
        .read_file(pid, fd)
        .map_err(io_ctx(format!("reading saved contents of {path}")))?;
    let create = |at: &Path| {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(at)
    };
    // At its own path when nothing is there now, so that the program sees the
    // same "PATH (deleted)" in /proc/self/fd; else under a temporary name next
    // to it (or in the temporary directory). Unlinked right after opening.
    let (tmp, made) = match create(Path::new(path)) {
        Ok(w) => (PathBuf::from(path), Ok(w)),
        Err(_) => {
            let dir = Path::new(path)
                .parent()
                .filter(|d| d.is_dir())
                .map(Path::to_path_buf)
                .unwrap_or_else(std::env::temp_dir);
            let tmp = dir.join(format!(
                ".cairn-restore-{}-{}-{}",
                std::process::id(),
                pid,
                fd
            ));
            let made = create(&tmp);
            (tmp, made)
        }
    };
    let tmp_s = tmp.to_string_lossy().into_owned();
    let mut w = made.map_err(io_ctx(format!("creating {tmp_s}")))?;
    let r = w
        .write_all(&data)
        .map_err(io_ctx(format!("writing {tmp_s}")));
    drop(w);
    let f = r.and_then(|_| open_at(&tmp_s, flags, offset));
    let _ = std::fs::remove_file(&tmp);
    Ok(f?.into())
}

/// Rewind every file of `files`: rewrite its saved contents and truncate it to its
/// checkpoint-time size, or, when its contents were not captured, only truncate it (correct
/// for files that were only appended to since). A file that is now shorter than at the
/// checkpoint and whose contents were not captured is an error: bytes the job wrote are gone.
///
/// A file that is also the restoring process's own stderr (a batch job's log file shared by
/// cairn's messages and the program) is left as it is: rewinding it would erase cairn's own
/// messages written since the checkpoint (such as why and from where it resumes). cairn never
/// writes to its stdout, so a program's output file that is also cairn's stdout (as with
/// `exec cairn run` in a batch script) is rewound like any other.
pub fn rewind(files: &[WrittenFile], source: &dyn MemorySource) -> Result<()> {
    let own = own_stderr_file();
    for f in files {
        let path = &f.path;
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::MetadataExt;
            if own == Some((meta.dev(), meta.ino())) {
                continue;
            }
        }
        match f.content {
            Some((pid, fd)) => {
                let data = source
                    .read_file(pid, fd)
                    .map_err(io_ctx(format!("reading saved contents of {path}")))?;
                if data.len() as u64 != f.size {
                    return Err(Error::Incompatible(format!(
                        "saved contents of {path} are {} bytes, expected {}",
                        data.len(),
                        f.size
                    )));
                }
                let mut w = open_as_owner(
                    OpenOptions::new()
                        .write(true)
                        .create(true)
                        .mode(0o644)
                        .custom_flags(libc::O_CLOEXEC),
                    path,
                )
                .map_err(io_ctx(format!("opening {path} to rewind it")))?;
                w.write_all(&data)
                    .and_then(|_| w.set_len(f.size))
                    .map_err(io_ctx(format!("rewinding {path}")))?;
            }
            None => {
                let w = open_as_owner(
                    OpenOptions::new().write(true).custom_flags(libc::O_CLOEXEC),
                    path,
                )
                .map_err(io_ctx(format!("opening {path} to rewind it")))?;
                let now = w
                    .metadata()
                    .map_err(io_ctx(format!("stat of {path}")))?
                    .len();
                if now < f.size {
                    return Err(Error::Incompatible(format!(
                        "{path} is {now} bytes but was {} at the checkpoint and its contents \
                         were not captured (larger than CAIRN_FILE_CAPTURE_MAX)",
                        f.size
                    )));
                }
                w.set_len(f.size)
                    .map_err(io_ctx(format!("truncating {path}")))?;
            }
        }
    }
    Ok(())
}

/// Opens `path` with `o`; when its mode forbids that to its owner, who is this process's
/// user (a file created read-write with a read-only mode, `open(p, O_RDWR|O_CREAT, 0400)`,
/// which the kernel allows), the owner's read and write bits are added for the open and the
/// mode is put back at once.
fn open_as_owner(o: &OpenOptions, path: &str) -> std::io::Result<File> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    match o.open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let meta = std::fs::metadata(path)?;
            // SAFETY: geteuid cannot fail.
            if !meta.is_file() || meta.uid() != unsafe { libc::geteuid() } {
                return Err(e);
            }
            let mode = meta.permissions().mode() & 0o7777;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o600))?;
            let f = o.open(path);
            let back = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
            let f = f?;
            back?;
            Ok(f)
        }
        r => r,
    }
}

/// (device, inode) of the regular file this process's stderr points to, if it is one.
fn own_stderr_file() -> Option<(u64, u64)> {
    // SAFETY: fstat writes into a zeroed stat buffer we own; fd 2 is only inspected.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let ok = unsafe { libc::fstat(2, &mut st) } == 0;
    (ok && st.st_mode & libc::S_IFMT == libc::S_IFREG).then_some((st.st_dev, st.st_ino))
}
