//! An inotify instance's watches, found again by path through their file handles.

use super::find::{Finder, Inode};
use crate::{FrozenJob, OpenFd};
use cairn_image::{FdKind, InotifyImage, InotifyWatch, MemorySink, ProcessTreeImage};
use cairn_sys::error::last_os;
use cairn_sys::Result;
use std::os::fd::AsRawFd;

/// [`crate::DescribeFn`] of inotify instances.
pub fn describe(fd: &OpenFd<'_>, _: &mut dyn MemorySink) -> Option<Result<FdKind>> {
    (fd.link == "anon_inode:inotify" && fd.inside).then(|| read(fd))
}

/// One `inotify wd:... ino:... sdev:... mask:... fhandle-bytes:... fhandle-type:...
/// f_handle:...` line (numbers in hex).
struct Line {
    wd: i32,
    ino: u64,
    sdev: u32,
    mask: u32,
    handle_type: i32,
    handle: Vec<u8>,
}

fn parse(line: &str) -> Option<Line> {
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(str::to_string)
    };
    let hex = |key: &str| field(key).and_then(|v| u64::from_str_radix(&v, 16).ok());
    let bytes = field("f_handle:")?;
    let handle = (0..bytes.len() / 2)
        .map(|i| u8::from_str_radix(&bytes[2 * i..2 * i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(Line {
        wd: hex("wd:")? as i32,
        ino: hex("ino:")?,
        sdev: hex("sdev:")? as u32,
        mask: hex("mask:")? as u32,
        handle_type: hex("fhandle-type:")? as i32,
        handle,
    })
}

/// The path of the watched file of `l`, checked against its inode: through its file handle
/// where cairn may open one (CAP_DAC_READ_SEARCH), otherwise found by its inode number
/// ([`super::find`]).
fn path_of(fd: &OpenFd<'_>, finder: &Finder, l: &Line) -> Result<String> {
    let inode = Inode {
        ino: l.ino,
        sdev: l.sdev,
    };
    let what = |why: &str| {
        fd.unsupported(format!(
            "inotify watch {} (inode {} on device {}:{}; {why})",
            l.wd,
            l.ino,
            l.sdev >> 20,
            l.sdev & 0xf_ffff
        ))
    };
    let path = finder
        .path_of(inode, l.handle_type, &l.handle)
        .ok_or_else(|| {
            what(
                "no path leads to it: not in the directories of the program's working directory, \
             open or mapped files, $HOME or /tmp, nor found by walking the mounts of its device \
             (deleted, or not reachable in this mount namespace)",
            )
        })?;
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| what("its path is not UTF-8"))
}

fn read(fd: &OpenFd<'_>) -> Result<FdKind> {
    let copy = crate::pipe::capture::steal(fd.pid, fd.fd)?;
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    if unsafe { libc::ioctl(copy.as_raw_fd(), libc::FIONREAD, &mut queued) } < 0 {
        return Err(last_os("FIONREAD on an inotify instance"));
    }
    if queued > 0 {
        return Err(fd.unsupported(format!(
            "inotify instance with {queued} bytes of events not read yet (reading them would \
             take them from the program; checkpoint again once it has read them)"
        )));
    }
    let mut watches = Vec::new();
    let finder = Finder::new(fd.pid);
    for line in fd.info.lines().filter(|l| l.starts_with("inotify ")) {
        let l = parse(line).ok_or_else(|| {
            fd.unsupported(format!("inotify watch this cairn cannot read: {line}"))
        })?;
        watches.push(InotifyWatch {
            wd: l.wd,
            path: path_of(fd, &finder, &l)?,
            mask: l.mask,
        });
    }
    watches.sort_by_key(|w| w.wd);
    Ok(FdKind::Inotify(InotifyImage {
        id: 0,
        flags: fd.flags & (libc::O_ACCMODE | libc::O_NONBLOCK),
        watches,
    }))
}

fn id_mut(k: &mut FdKind) -> Option<&mut u64> {
    match k {
        FdKind::Inotify(i) => Some(&mut i.id),
        _ => None,
    }
}

/// [`crate::CaptureFn`] of inotify instances: descriptors sharing one instance get one id.
pub fn capture_job(
    job: &FrozenJob<'_>,
    image: &mut ProcessTreeImage,
    _: &mut dyn MemorySink,
) -> Result<()> {
    crate::shared::number(job, image, id_mut);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn fdinfo_watch_lines_are_read() {
        let l = parse(
            "inotify wd:1a ino:3c4a7 sdev:fe00000 mask:300 ignored_mask:0 fhandle-bytes:8 \
             fhandle-type:1 f_handle:a7c4030000000000",
        )
        .expect("a watch line");
        assert_eq!(
            (l.wd, l.ino, l.sdev, l.mask),
            (0x1a, 0x3c4a7, 0xfe0_0000, 0x300)
        );
        assert_eq!(l.handle_type, 1);
        assert_eq!(l.handle, vec![0xa7, 0xc4, 3, 0, 0, 0, 0, 0]);
        assert!(parse("inotify wd:1 ino:2").is_none());
    }
}
