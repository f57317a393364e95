//! Finding a path to an inode without privilege: a watch shows only its inode and device
//! (and a file handle, which only CAP_DAC_READ_SEARCH may open), so the inode is looked for
//! among the places a program's watched files usually are, then by a bounded walk of the
//! mounts of its device. Every path is checked by `stat` (same device, same inode) as the
//! job sees it (through `/proc/PID/root`).

use std::collections::{HashSet, VecDeque};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};

/// At most this many directory entries are looked at by the walk of a device's mounts.
const WALK_LIMIT: usize = 400_000;

/// An inode as fdinfo shows it: inode number and device in the kernel's encoding
/// (major << 20 | minor).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Inode {
    /// The inode number.
    pub ino: u64,
    /// The device (kernel encoding).
    pub sdev: u32,
}

impl Inode {
    fn is(&self, m: &std::fs::Metadata) -> bool {
        m.ino() == self.ino
            && libc::major(m.dev()) == self.sdev >> 20
            && libc::minor(m.dev()) == self.sdev & 0xf_ffff
    }
    fn on_device(&self, m: &std::fs::Metadata) -> bool {
        libc::major(m.dev()) == self.sdev >> 20 && libc::minor(m.dev()) == self.sdev & 0xf_ffff
    }
}

/// Searches inodes for process `pid` (outer pid), as paths the job sees.
pub(crate) struct Finder {
    pid: i32,
    root: PathBuf,
    /// Directories to look into first (the job's view), in order.
    near: Vec<PathBuf>,
}

impl Finder {
    /// The candidate directories of process `pid`: its working directory, `/`, the
    /// directories of its open files and mapped files, `$HOME`, `/tmp`.
    pub(crate) fn new(pid: i32) -> Finder {
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        let mut near: Vec<PathBuf> = Vec::new();
        let add = |p: PathBuf, near: &mut Vec<PathBuf>| {
            if p.is_absolute() && !near.contains(&p) {
                near.push(p);
            }
        };
        if let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) {
            add(cwd, &mut near);
        }
        add(PathBuf::from("/"), &mut near);
        let mut files: Vec<PathBuf> = Vec::new();
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for e in dir.flatten() {
                if let Ok(t) = std::fs::read_link(e.path()) {
                    files.push(t);
                }
            }
        }
        if let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
            for l in maps.lines() {
                if let Some(p) = l.split_whitespace().nth(5).filter(|p| p.starts_with('/')) {
                    files.push(PathBuf::from(p));
                }
            }
        }
        for f in files {
            if let Some(parent) = f.parent() {
                add(parent.to_path_buf(), &mut near);
            }
            add(f, &mut near);
        }
        let home = std::fs::read(format!("/proc/{pid}/environ"))
            .ok()
            .and_then(|env| {
                env.split(|b| *b == 0)
                    .find_map(|v| v.strip_prefix(b"HOME="))
                    .map(|h| PathBuf::from(String::from_utf8_lossy(h).into_owned()))
            });
        if let Some(h) = home {
            add(h, &mut near);
        }
        add(PathBuf::from("/tmp"), &mut near);
        Finder { pid, root, near }
    }

    /// `path` (as the job sees it) seen from here.
    fn here(&self, path: &Path) -> PathBuf {
        self.root.join(path.strip_prefix("/").unwrap_or(path))
    }

    /// Whether `path` (the job's view) is the inode.
    pub(crate) fn is(&self, path: &Path, inode: Inode) -> bool {
        std::fs::metadata(self.here(path)).is_ok_and(|m| inode.is(&m))
    }

    /// A path to `inode` as the job sees it: through its file handle where cairn may open
    /// one (CAP_DAC_READ_SEARCH), otherwise found by [`Finder::find`].
    pub(crate) fn path_of(&self, inode: Inode, handle_type: i32, handle: &[u8]) -> Option<PathBuf> {
        if let Some(p) = by_handle(self.pid, inode.sdev, handle_type, handle)
            .map(PathBuf::from)
            .filter(|p| self.is(p, inode))
        {
            return Some(p);
        }
        self.find(inode)
    }

    /// A path to `inode` as the job sees it, or None when neither the candidate directories
    /// nor the walk of its device's mounts lead to it.
    pub(crate) fn find(&self, inode: Inode) -> Option<PathBuf> {
        for dir in &self.near {
            if self.is(dir, inode) {
                return Some(dir.clone());
            }
            if let Some(p) = self.in_dir(dir, inode) {
                return Some(p);
            }
        }
        self.walk(inode)
    }

    /// An entry of directory `dir` that is the inode.
    fn in_dir(&self, dir: &Path, inode: Inode) -> Option<PathBuf> {
        let entries = std::fs::read_dir(self.here(dir)).ok()?;
        // Every entry is looked at by stat: a directory entry's inode number (d_ino) is not
        // always the file's (mount points, some overlay file systems).
        for e in entries.flatten() {
            let p = dir.join(e.file_name());
            if self.is(&p, inode) {
                return Some(p);
            }
        }
        None
    }

    /// Breadth-first walk of the mounts of the inode's device in the job's mount namespace
    /// (not crossing into other mounts; /proc, /sys and /dev are not on the devices watched
    /// files are on), at most [`WALK_LIMIT`] entries.
    fn walk(&self, inode: Inode) -> Option<PathBuf> {
        let dev = format!("{}:{}", inode.sdev >> 20, inode.sdev & 0xf_ffff);
        let text = std::fs::read_to_string(format!("/proc/{}/mountinfo", self.pid)).ok()?;
        let mut mounts: Vec<(bool, PathBuf)> = text
            .lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                (w.get(2) == Some(&dev.as_str()))
                    .then(|| (w[3] != "/", PathBuf::from(unescape(w[4]))))
            })
            .collect();
        mounts.sort();
        let skip = [Path::new("/proc"), Path::new("/sys"), Path::new("/dev")];
        let mut seen = HashSet::new();
        let mut queue: VecDeque<PathBuf> = mounts.into_iter().map(|(_, m)| m).collect();
        let mut looked = 0usize;
        while let Some(dir) = queue.pop_front() {
            if skip.iter().any(|s| dir.starts_with(s)) {
                continue;
            }
            let Ok(m) = std::fs::symlink_metadata(self.here(&dir)) else {
                continue;
            };
            if !inode.on_device(&m) || !seen.insert(m.ino()) {
                continue;
            }
            if inode.is(&m) {
                return Some(dir);
            }
            let Ok(entries) = std::fs::read_dir(self.here(&dir)) else {
                continue;
            };
            for e in entries.flatten() {
                looked += 1;
                if looked > WALK_LIMIT {
                    return None;
                }
                let p = dir.join(e.file_name());
                if e.ino() == inode.ino && self.is(&p, inode) {
                    return Some(p);
                }
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    queue.push_back(p);
                }
            }
        }
        None
    }
}

/// A mount point of device `sdev` (kernel encoding) in the mount namespace of `pid`, as a
/// path from here; a mount of the file system's root first.
pub(crate) fn mount_of(pid: i32, sdev: u32) -> Option<String> {
    let dev = format!("{}:{}", sdev >> 20, sdev & 0xf_ffff);
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    let mut found: Vec<(bool, String)> = text
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.get(2) == Some(&dev.as_str())).then(|| (w[3] != "/", w[4].to_string()))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .next()
        .map(|(_, m)| format!("/proc/{pid}/root{m}"))
}

/// The path of the file of a file handle on device `sdev`, opened on a mount of its device:
/// None without CAP_DAC_READ_SEARCH (or when the handle leads nowhere).
fn by_handle(pid: i32, sdev: u32, handle_type: i32, handle: &[u8]) -> Option<String> {
    let mount = mount_of(pid, sdev)?;
    let c = CString::new(mount).ok()?;
    // SAFETY: open takes a NUL-terminated path and flags.
    let mfd = crate::shared::fresh(
        unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        },
        "opening a mount",
    )
    .ok()?;
    // struct file_handle { u32 handle_bytes; i32 handle_type; u8 f_handle[]; }
    let mut fh = (handle.len() as u32).to_ne_bytes().to_vec();
    fh.extend_from_slice(&handle_type.to_ne_bytes());
    fh.extend_from_slice(handle);
    // SAFETY: open_by_handle_at reads the file_handle we built; returns a new descriptor.
    let r = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mfd.as_raw_fd(),
            fh.as_ptr(),
            libc::O_PATH | libc::O_CLOEXEC,
        )
    } as i32;
    let file: OwnedFd = crate::shared::fresh(r, "open_by_handle_at").ok()?;
    let path = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    let path = path.to_str()?.to_string();
    path.starts_with('/').then_some(path)
}

/// A mountinfo path with its octal escapes (`\040` for a space) undone.
pub(crate) fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            out.push(((b[i + 1] - b'0') << 6) | ((b[i + 2] - b'0') << 3) | (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::{unescape, Finder, Inode};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }

    #[test]
    fn an_inode_is_found_by_its_number_and_device() {
        let dir = std::env::temp_dir().join(format!("cairn-find-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).expect("scratch directory");
        let m = std::fs::metadata(dir.join("sub")).expect("stat");
        let dev = ((libc::major(m.dev()) << 20) | libc::minor(m.dev())) as u32;
        let inode = Inode {
            ino: m.ino(),
            sdev: dev,
        };
        let found = Finder::new(std::process::id() as i32).find(inode);
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(found, Some(dir.join("sub")));
    }
}
