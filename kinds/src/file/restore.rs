//! Rewinding the files the job was writing to their checkpoint-time state, before the
//! descriptors are reopened (see `crate::file::capture`).

use cairn_image::{MemorySource, WrittenFile};
use cairn_sys::error::io_ctx;
use cairn_sys::{Error, Result};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

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
                let mut w = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .mode(0o644)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(path)
                    .map_err(io_ctx(format!("opening {path} to rewind it")))?;
                w.write_all(&data)
                    .and_then(|_| w.set_len(f.size))
                    .map_err(io_ctx(format!("rewinding {path}")))?;
            }
            None => {
                let w = OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(path)
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

/// (device, inode) of the regular file this process's stderr points to, if it is one.
fn own_stderr_file() -> Option<(u64, u64)> {
    // SAFETY: fstat writes into a zeroed stat buffer we own; fd 2 is only inspected.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let ok = unsafe { libc::fstat(2, &mut st) } == 0;
    (ok && st.st_mode & libc::S_IFMT == libc::S_IFREG).then_some((st.st_dev, st.st_ino))
}
