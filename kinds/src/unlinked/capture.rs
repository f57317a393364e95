//! Capture of files without a name: [`describe`] turns a descriptor of one into
//! [`FdKind::Unlinked`], [`capture_job`] records every such file once (contents read while
//! the job is frozen), including those only a shared mapping or a working directory holds.

use super::O_TMPFILE_BIT;
use crate::pipe::capture::{peek_packets, steal};
use crate::{FrozenJob, OpenFd};
use cairn_image::{FdKind, MemorySink, ProcessTreeImage, UnlinkedFile, UnlinkedKind};
use cairn_sys::error::{io_ctx, last_os, Error, Result};
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

const TMPFS_MAGIC: i64 = 0x0102_1994;
const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;

/// True for the `/proc` link of a file without a name that this kind restores.
fn nameless(link: &str) -> bool {
    link.ends_with(" (deleted)") && link.starts_with('/')
}

/// [`crate::DescribeFn`] of files without a name: a deleted regular file or FIFO, or a memfd.
pub fn describe(fd: &OpenFd<'_>, _: &mut dyn MemorySink) -> Option<Result<FdKind>> {
    if !nameless(fd.link) {
        return None;
    }
    let meta = fd.meta.as_ref().ok()?;
    let ft = meta.file_type();
    if !(ft.is_file() || ft.is_fifo()) {
        return None;
    }
    Some(Ok(FdKind::Unlinked {
        id: meta.ino(),
        flags: fd.flags,
        offset: fd.pos,
    }))
}

/// One file being captured: its record, and where it was found.
struct Found {
    file: UnlinkedFile,
    dev: u64,
}

/// `fstatfs` f_type of an open file.
fn fs_type(f: &impl AsRawFd) -> Result<i64> {
    // SAFETY: fstatfs writes into a zeroed statfs we own.
    let mut sf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstatfs(f.as_raw_fd(), &mut sf) } < 0 {
        return Err(last_os("fstatfs"));
    }
    Ok(sf.f_type as i64)
}

/// Record the file open as `file` (a descriptor of the job taken with `pidfd_getfd`, or
/// opened through `/proc/PID/map_files`) whose `/proc` link is `link`; `key` is the
/// `put_file` key of its contents.
fn record(
    file: &File,
    link: &str,
    key: (i32, i32),
    ns_pid: i32,
    what: &str,
    sink: &mut dyn MemorySink,
) -> Result<Found> {
    let meta = file.metadata().map_err(io_ctx(format!("stat of {what}")))?;
    let path = link.strip_suffix(" (deleted)").unwrap_or(link).to_string();
    let refuse = |why: &str| Error::Unsupported(format!("process {ns_pid} {what} ({link}): {why}"));
    let kind = if meta.file_type().is_fifo() {
        let (capacity, data, packets) = peek_packets(&steal_or_dup(file)?, ns_pid, key.1)?;
        if !packets.is_empty() {
            return Err(refuse(
                "a deleted FIFO holding packets cannot be checkpointed",
            ));
        }
        sink.put_file(key.0, key.1, &mut data.as_slice())
            .map_err(io_ctx(format!("saving unread bytes of {link}")))?;
        return Ok(Found {
            file: UnlinkedFile {
                id: meta.ino(),
                kind: UnlinkedKind::Fifo { capacity },
                path,
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
                size: data.len() as u64,
                content: Some(key),
            },
            dev: meta.dev(),
        });
    } else if let Some(name) = path.strip_prefix("/memfd:") {
        let t = fs_type(file)?;
        if t == HUGETLBFS_MAGIC {
            return Err(refuse(
                "a memfd on hugetlbfs (MFD_HUGETLB) cannot be checkpointed",
            ));
        }
        if t != TMPFS_MAGIC {
            return Err(refuse(
                "a deleted file named like a memfd cannot be checkpointed",
            ));
        }
        // SAFETY: fcntl on our own descriptor.
        let seals = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GET_SEALS) };
        if seals < 0 {
            return Err(last_os(format!("F_GET_SEALS of {link}")));
        }
        UnlinkedKind::Memfd {
            name: name.to_string(),
            seals: seals as u32,
            hugetlb: false,
        }
    } else if meta.is_file() {
        UnlinkedKind::Regular
    } else {
        return Err(refuse(
            "only deleted regular files and FIFOs can be checkpointed",
        ));
    };
    let size = meta.len();
    // Read through the descriptor itself when it may read (pread: its offset stays), else
    // through a new open of it (needs read permission).
    // SAFETY: fcntl on our own descriptor.
    let acc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) } & libc::O_ACCMODE;
    let reader = if acc == libc::O_WRONLY {
        File::open(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .map_err(io_ctx(format!("opening {link} to read its contents")))?
    } else {
        file.try_clone()
            .map_err(io_ctx(format!("dup of a descriptor of {link}")))?
    };
    let mut r = Positional {
        file: reader,
        at: 0,
        left: size,
    };
    sink.put_file(key.0, key.1, &mut r)
        .map_err(io_ctx(format!("saving the contents of {link}")))?;
    if r.left != 0 {
        return Err(Error::Parse(format!("{link} shrank during the checkpoint")));
    }
    Ok(Found {
        file: UnlinkedFile {
            id: meta.ino(),
            kind,
            path,
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            size,
            content: Some(key),
        },
        dev: meta.dev(),
    })
}

/// Reads `left` bytes of `file` from offset `at` with `pread`, leaving the file offset of
/// the open file description (shared with the frozen program) alone.
struct Positional {
    file: File,
    at: u64,
    left: u64,
}

impl std::io::Read for Positional {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        self.at += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}

/// A read descriptor of the FIFO open as `file` (reopened read-only without blocking).
fn steal_or_dup(file: &File) -> Result<std::os::fd::OwnedFd> {
    let path = format!("/proc/self/fd/{}\0", file.as_raw_fd());
    // SAFETY: open with a NUL-terminated path; non-blocking, a FIFO open never waits.
    let fd = unsafe {
        libc::open(
            path.as_ptr().cast(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    crate::pipe::capture::owned(fd, "reopening a deleted FIFO")
}

/// One mapping of a file without a name in a process: name without " (deleted)", device
/// "MAJ:MIN", inode, end offset in the file, start, end, shared or private.
struct Mapped {
    shared: bool,
    name: String,
    dev: String,
    ino: u64,
    end_off: u64,
    start: u64,
    end: u64,
}

/// The mappings of files without a name of process `pid`, and the inode numbers of its
/// other shared memory (`/dev/zero`, System V, ...).
fn nameless_maps(pid: i32) -> Result<(Vec<Mapped>, Vec<u64>)> {
    let path = format!("/proc/{pid}/maps");
    let text = fs::read_to_string(&path).map_err(io_ctx(format!("reading {path}")))?;
    let mut out = Vec::new();
    let mut others = Vec::new();
    for line in text.lines() {
        let mut it = line.splitn(6, ' ');
        let (Some(range), Some(perms), Some(off), Some(dev), Some(ino)) =
            (it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        let name = it.next().unwrap_or("").trim_start();
        let shared = perms.ends_with('s');
        if !shared && !nameless(name) {
            continue;
        }
        if shared && (!nameless(name) || name == "/dev/zero (deleted)") {
            if let Ok(i) = ino.parse::<u64>() {
                others.push(i);
            }
            continue;
        }
        let Some((s, e)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end), Ok(off), Ok(ino)) = (
            u64::from_str_radix(s, 16),
            u64::from_str_radix(e, 16),
            u64::from_str_radix(off, 16),
            ino.parse::<u64>(),
        ) else {
            continue;
        };
        out.push(Mapped {
            shared,
            name: name.strip_suffix(" (deleted)").unwrap_or(name).to_string(),
            dev: dev.to_string(),
            ino,
            end_off: off + (end - start),
            start,
            end,
        });
    }
    Ok((out, others))
}

/// [`crate::CaptureFn`] of files without a name.
pub fn capture_job(
    job: &FrozenJob<'_>,
    image: &mut ProcessTreeImage,
    sink: &mut dyn MemorySink,
) -> Result<()> {
    let mut found: Vec<Found> = Vec::new();
    // Descriptors.
    for (&o, p) in job.outer.iter().zip(&image.processes) {
        for f in &p.fds {
            let FdKind::Unlinked { id, flags, .. } = f.kind else {
                continue;
            };
            if flags & O_TMPFILE_BIT != 0 && flags & libc::O_ACCMODE == libc::O_RDONLY {
                return Err(Error::Parse(format!(
                    "process {} fd {}: O_TMPFILE open that is read-only",
                    p.pid, f.fd
                )));
            }
            let file = File::from(steal(o, f.fd)?);
            let meta = file
                .metadata()
                .map_err(io_ctx(format!("stat of fd {} of process {}", f.fd, p.pid)))?;
            if let Some(known) = found.iter().find(|x| x.file.id == id) {
                if known.dev != meta.dev() {
                    return Err(Error::Unsupported(format!(
                        "process {} fd {}: two deleted files with inode number {id} on \
                         different file systems cannot be checkpointed",
                        p.pid, f.fd
                    )));
                }
                continue;
            }
            let link = fs::read_link(format!("/proc/{o}/fd/{}", f.fd))
                .map_err(io_ctx(format!(
                    "readlink of fd {} of process {}",
                    f.fd, p.pid
                )))?
                .to_string_lossy()
                .into_owned();
            let what = format!("fd {}", f.fd);
            found.push(record(&file, &link, (p.pid, f.fd), p.pid, &what, sink)?);
        }
    }
    // Shared mappings of files no descriptor holds, and working directories.
    let mut extra_key = -1;
    let mut other_shared = Vec::new();
    for (&o, p) in job.outer.iter().zip(&image.processes) {
        let (maps, others) = nameless_maps(o)?;
        other_shared.extend(others);
        for m in maps {
            let dev = parse_dev(&m.dev);
            if let Some(known) = found.iter_mut().find(|x| x.file.id == m.ino) {
                if dev.is_some_and(|d| d != known.dev) {
                    return Err(Error::Unsupported(format!(
                        "process {} mapping {:x}-{:x} ({} (deleted)): another deleted file \
                         has the same inode number {}",
                        p.pid, m.start, m.end, m.name, m.ino
                    )));
                }
                if known.file.content.is_none() {
                    known.file.size = known.file.size.max(m.end_off);
                }
                continue;
            }
            let mf = format!("/proc/{o}/map_files/{:x}-{:x}", m.start, m.end);
            let what = format!("mapping {:x}-{:x}", m.start, m.end);
            match File::open(&mf) {
                // Privileged: the file itself, exactly.
                Ok(file) => {
                    let link = format!("{} (deleted)", m.name);
                    found.push(record(
                        &file,
                        &link,
                        (p.pid, extra_key),
                        p.pid,
                        &what,
                        sink,
                    )?);
                    extra_key -= 1;
                }
                Err(_) if !m.shared => {
                    return Err(Error::Unsupported(format!(
                        "process {} {what} ({} (deleted)): a private mapping of a deleted file \
                         that no descriptor of the job holds can only be checkpointed by root \
                         (its unchanged pages are in the file, readable only through \
                         /proc/PID/map_files)",
                        p.pid, m.name
                    )));
                }
                // Unprivileged: what the program can see of it is the mapping (the memory
                // capture stores every page of a shared mapping) and its name.
                Err(_) => {
                    let kind = match m.name.strip_prefix("/memfd:") {
                        Some(name) => UnlinkedKind::Memfd {
                            name: name.to_string(),
                            seals: libc::F_SEAL_SEAL as u32,
                            hugetlb: false,
                        },
                        None => UnlinkedKind::Regular,
                    };
                    found.push(Found {
                        file: UnlinkedFile {
                            id: m.ino,
                            kind,
                            path: m.name.clone(),
                            mode: libc::S_IFREG | 0o600,
                            // SAFETY: getuid/getgid cannot fail.
                            uid: unsafe { libc::getuid() },
                            // SAFETY: as above.
                            gid: unsafe { libc::getgid() },
                            size: m.end_off,
                            content: None,
                        },
                        dev: dev.unwrap_or(0),
                    });
                }
            }
        }
        if let Some(path) = p.cwd.strip_suffix(" (deleted)") {
            let meta = fs::metadata(format!("/proc/{o}/cwd")).map_err(io_ctx(format!(
                "stat of the working directory of {}",
                p.pid
            )))?;
            if !found
                .iter()
                .any(|x| x.file.id == meta.ino() && x.dev == meta.dev())
            {
                found.push(Found {
                    file: UnlinkedFile {
                        id: meta.ino(),
                        kind: UnlinkedKind::Directory,
                        path: path.to_string(),
                        mode: meta.mode(),
                        uid: meta.uid(),
                        gid: meta.gid(),
                        size: 0,
                        content: None,
                    },
                    dev: meta.dev(),
                });
            }
        }
    }
    // Inode numbers are the ids of shared mappings too: no other shared memory may use one.
    if let Some(f) = found
        .iter()
        .find(|f| f.file.kind != UnlinkedKind::Directory && other_shared.contains(&f.file.id))
    {
        return Err(Error::Unsupported(format!(
            "{} (deleted) has the inode number {} of other shared memory of the job: \
             cannot be checkpointed",
            f.file.path, f.file.id
        )));
    }
    image.unlinked = found.into_iter().map(|f| f.file).collect();
    Ok(())
}

/// The device number of a "MAJ:MIN" field of /proc/PID/maps (hexadecimal).
fn parse_dev(s: &str) -> Option<u64> {
    let (ma, mi) = s.split_once(':')?;
    let (ma, mi) = (
        u64::from_str_radix(ma, 16).ok()?,
        u64::from_str_radix(mi, 16).ok()?,
    );
    Some(libc::makedev(ma as u32, mi as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_files_without_a_name() {
        assert!(nameless("/tmp/x (deleted)"));
        assert!(nameless("/memfd:a b (deleted)"));
        assert!(!nameless("/tmp/x"));
        assert!(!nameless("anon_inode:[eventfd]"));
        assert!(!nameless("pipe:[12]"));
    }

    #[test]
    fn device_numbers_of_maps_lines() {
        assert_eq!(parse_dev("08:01"), Some(libc::makedev(8, 1)));
        assert_eq!(parse_dev("fd:1a"), Some(libc::makedev(0xfd, 0x1a)));
        assert_eq!(parse_dev("0801"), None);
    }

    #[test]
    fn positional_reader_reads_exactly_its_bytes() {
        use std::io::{Read, Write};
        let path = std::env::temp_dir().join(format!("cairn-positional-{}", std::process::id()));
        let mut f = File::create(&path).unwrap();
        f.write_all(b"0123456789").unwrap();
        let mut r = Positional {
            file: File::open(&path).unwrap(),
            at: 2,
            left: 5,
        };
        let mut v = Vec::new();
        r.read_to_end(&mut v).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(v, b"23456");
        assert_eq!(r.left, 0);
    }
}
