//! Files the job writes: regular files open for writing at the checkpoint are recorded with
//! their size and (up to a limit) their contents, so that a restore can rewind them to their
//! checkpoint-time state. Output produced after the checkpoint is then neither duplicated nor
//! lost when the job is restarted. Rules: docs/capture-restore.md ("Files the job writes").

use crate::{FrozenJob, OpenFd};
use cairn_image::{FdKind, MemorySink, ProcessImage, ProcessTreeImage, WrittenFile};
use cairn_sys::error::{io_ctx, Error, Result};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;

/// Environment variable that sets [`CheckpointOptions::file_capture_max`].
pub const FILE_CAPTURE_MAX_ENV: &str = "CAIRN_FILE_CAPTURE_MAX";

/// Default limit on the size of one written file whose contents are captured (256 MiB).
pub const DEFAULT_FILE_CAPTURE_MAX: u64 = 256 << 20;

/// How written files are captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileCapture {
    /// Record nothing: at restore written files are reopened at their saved offsets only.
    Off,
    /// Record the size of every written file and capture the contents of those no larger
    /// than this many bytes (0: sizes only, restore truncates).
    UpTo(u64),
}

/// Options of `cairn_capture::checkpoint_with`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointOptions {
    /// Capture of files open for writing.
    pub file_capture_max: FileCapture,
    /// What becomes of TCP connections to peers outside the job.
    pub external_tcp: crate::inet::ExternalTcp,
    /// The program is stopped right after this checkpoint (`cairn run`'s final one):
    /// connections kept by `--external-tcp repair` stay in repair mode until then.
    pub final_stop: bool,
}

impl Default for CheckpointOptions {
    fn default() -> Self {
        Self {
            file_capture_max: FileCapture::UpTo(DEFAULT_FILE_CAPTURE_MAX),
            external_tcp: crate::inet::ExternalTcp::Refuse,
            final_stop: false,
        }
    }
}

impl CheckpointOptions {
    /// The defaults, with [`FILE_CAPTURE_MAX_ENV`] applied when it is set.
    pub fn from_env() -> Result<Self> {
        let mut o = Self::default();
        if let Some(v) = std::env::var_os(FILE_CAPTURE_MAX_ENV) {
            let v = v.to_string_lossy();
            o.file_capture_max = parse_file_capture(&v).ok_or_else(|| {
                Error::Incompatible(format!(
                    "{FILE_CAPTURE_MAX_ENV}={v:?}: expected \"off\" or a size in bytes \
                     (suffix K, M or G allowed)"
                ))
            })?;
        }
        Ok(o)
    }
}

/// Parse "off", "123", "64K", "256M", "1G" (binary units).
pub fn parse_file_capture(s: &str) -> Option<FileCapture> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") {
        return Some(FileCapture::Off);
    }
    let (num, shift) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 10),
        (i, 'm' | 'M') => (&s[..i], 20),
        (i, 'g' | 'G') => (&s[..i], 30),
        _ => (s, 0),
    };
    let n: u64 = num.parse().ok()?;
    n.checked_mul(1u64 << shift).map(FileCapture::UpTo)
}

/// A reader that yields exactly `left` bytes of `inner` and fails if it ends earlier.
struct Exact<R> {
    inner: R,
    left: u64,
    path: String,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} shrank during the checkpoint", self.path),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// [`crate::DescribeFn`] of regular files: a file reopened by path (regular files,
/// directories and the harmless character devices), or a deleted regular file whose contents
/// go to the sink.
pub fn describe(fd: &OpenFd<'_>, _: &mut dyn MemorySink) -> Option<Result<FdKind>> {
    use std::os::unix::fs::FileTypeExt;
    let ft = fd.meta.as_ref().ok().map(|m| m.file_type());
    if let Some(path) = fd.link.strip_suffix(" (deleted)") {
        // Deleted regular files and FIFOs are files without a name (crate::unlinked).
        if ft.is_some_and(|t| t.is_file() || t.is_fifo()) {
            return None;
        }
        return Some(Err(Error::Unsupported(format!(
            "process {} fd {}: deleted {} {path} cannot be checkpointed",
            fd.ns_pid,
            fd.fd,
            if ft.is_some_and(|t| t.is_dir()) {
                "directory"
            } else {
                "file"
            }
        ))));
    }
    let plain = ft.is_some_and(|t| {
        t.is_file()
            || t.is_dir()
            || (t.is_char_device()
                && matches!(
                    fd.link,
                    "/dev/null" | "/dev/zero" | "/dev/urandom" | "/dev/random" | "/dev/full"
                ))
    });
    (fd.link.starts_with('/') && plain).then(|| {
        Ok(FdKind::Path {
            path: fd.link.to_string(),
            flags: fd.flags,
            offset: fd.pos,
        })
    })
}

/// [`crate::CaptureFn`] of written files: each file once, whichever processes hold it.
pub fn capture_job(
    job: &FrozenJob<'_>,
    image: &mut ProcessTreeImage,
    sink: &mut dyn MemorySink,
) -> Result<()> {
    let mut seen = Vec::new();
    let mut files = Vec::new();
    for (&outer, p) in job.outer.iter().zip(&image.processes) {
        files.extend(capture_written(
            outer,
            p,
            job.options.file_capture_max,
            &mut seen,
            sink,
        )?);
    }
    let mut key = -1;
    for p in &image.processes {
        files.extend(capture_mapped(
            p,
            job.options.file_capture_max,
            &mut seen,
            &mut key,
            sink,
        )?);
    }
    image.files = files;
    Ok(())
}

/// Record the regular files that the frozen process `outer_pid` (image `p`) has open for
/// writing; contents go to `sink`. `seen` holds (dev, inode) of files already recorded for
/// this job (a file open in several descriptors or processes is recorded once).
pub fn capture_written(
    outer_pid: i32,
    p: &ProcessImage,
    mode: FileCapture,
    seen: &mut Vec<(u64, u64)>,
    sink: &mut dyn MemorySink,
) -> Result<Vec<WrittenFile>> {
    let FileCapture::UpTo(max) = mode else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for fd in &p.fds {
        let FdKind::Path { path, flags, .. } = &fd.kind else {
            continue;
        };
        let acc = flags & libc::O_ACCMODE;
        if acc != libc::O_WRONLY && acc != libc::O_RDWR {
            continue;
        }
        let link = format!("/proc/{outer_pid}/fd/{}", fd.fd);
        let meta = fs::metadata(&link).map_err(io_ctx(format!("stat of {link}")))?;
        if !meta.is_file() || seen.contains(&(meta.dev(), meta.ino())) {
            continue;
        }
        seen.push((meta.dev(), meta.ino()));
        let size = meta.len();
        let mut content = None;
        if size <= max {
            // Reopening through /proc needs read permission on the file; a write-only file
            // falls back to truncation like a large one.
            if let Ok(f) = File::open(&link) {
                let mut r = Exact {
                    inner: f,
                    left: size,
                    path: path.clone(),
                };
                sink.put_file(p.pid, fd.fd, &mut r)
                    .map_err(io_ctx(format!("saving contents of {path}")))?;
                content = Some((p.pid, fd.fd));
            }
        }
        out.push(WrittenFile {
            path: path.clone(),
            size,
            content,
        });
    }
    Ok(out)
}

/// Record the regular files that process `p` maps shared and writable (e.g. the
/// shared-memory segments of an MPI library in `/dev/shm`) and that no descriptor of the job
/// has open for writing: what the job wrote through the mapping after the checkpoint must
/// be rewound too, since the restore maps the file again. Contents go to `sink` under the
/// keys `(0, key)`, `key` counting down from -1 (System V segments use `(0, id >= 0)`).
fn capture_mapped(
    p: &ProcessImage,
    mode: FileCapture,
    seen: &mut Vec<(u64, u64)>,
    key: &mut i32,
    sink: &mut dyn MemorySink,
) -> Result<Vec<WrittenFile>> {
    let FileCapture::UpTo(max) = mode else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for vma in &p.vmas {
        let cairn_image::Backing::File { path, .. } = &vma.backing else {
            continue;
        };
        let writable = vma.prot & libc::PROT_WRITE as u32 != 0
            || vma.flags.has(cairn_image::VmaFlags::MAYWRITE);
        if !vma.shared || vma.shm.is_some() || !writable || !path.starts_with('/') {
            continue;
        }
        let Ok(meta) = fs::metadata(path) else {
            continue;
        };
        if !meta.is_file() || seen.contains(&(meta.dev(), meta.ino())) {
            continue;
        }
        seen.push((meta.dev(), meta.ino()));
        let size = meta.len();
        let mut content = None;
        if size <= max {
            if let Ok(f) = File::open(path) {
                let mut r = Exact {
                    inner: f,
                    left: size,
                    path: path.clone(),
                };
                sink.put_file(0, *key, &mut r)
                    .map_err(io_ctx(format!("saving contents of mapped file {path}")))?;
                content = Some((0, *key));
                *key -= 1;
            }
        }
        out.push(WrittenFile {
            path: path.clone(),
            size,
            content,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_and_off() {
        assert_eq!(parse_file_capture("off"), Some(FileCapture::Off));
        assert_eq!(parse_file_capture("OFF"), Some(FileCapture::Off));
        assert_eq!(parse_file_capture("0"), Some(FileCapture::UpTo(0)));
        assert_eq!(parse_file_capture("123"), Some(FileCapture::UpTo(123)));
        assert_eq!(parse_file_capture("64K"), Some(FileCapture::UpTo(64 << 10)));
        assert_eq!(parse_file_capture("2m"), Some(FileCapture::UpTo(2 << 20)));
        assert_eq!(parse_file_capture(" 1G "), Some(FileCapture::UpTo(1 << 30)));
        assert_eq!(parse_file_capture(""), None);
        assert_eq!(parse_file_capture("K"), None);
        assert_eq!(parse_file_capture("-1"), None);
        assert_eq!(parse_file_capture("12X"), None);
        assert_eq!(parse_file_capture("99999999999999G"), None);
    }

    #[test]
    fn exact_reader_fails_on_short_file() {
        let mut r = Exact {
            inner: &b"abc"[..],
            left: 5,
            path: "/x".into(),
        };
        let mut v = Vec::new();
        let e = r.read_to_end(&mut v).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let mut r = Exact {
            inner: &b"abcdef"[..],
            left: 4,
            path: "/x".into(),
        };
        let mut v = Vec::new();
        r.read_to_end(&mut v).unwrap();
        assert_eq!(v, b"abcd");
    }
}
