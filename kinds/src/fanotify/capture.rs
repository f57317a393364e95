//! A fanotify group's flags and marks, read from fdinfo and checked by building the group
//! once more (see the module documentation of [`crate::fanotify`]).

use crate::inotify::find::{Finder, Inode};
use crate::{FrozenJob, OpenFd};
use cairn_image::{
    FanotifyImage, FanotifyMark, FanotifyTarget, FdKind, MemorySink, ProcessTreeImage,
};
use cairn_sys::error::last_os;
use cairn_sys::Result;
use std::os::fd::AsRawFd;

/// [`crate::DescribeFn`] of fanotify groups.
pub fn describe(fd: &OpenFd<'_>, _: &mut dyn MemorySink) -> Option<Result<FdKind>> {
    (fd.link == "anon_inode:[fanotify]" && fd.inside).then(|| read(fd))
}

/// The value of `key` (hex) in a fdinfo line.
fn hex(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .and_then(|v| u64::from_str_radix(v, 16).ok())
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key))
}

/// The mount point (as the job sees it) of mount `id` in the mount namespace of `pid`.
fn mount_point(pid: i32, id: u64) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    text.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w.first()?.parse::<u64>().ok()? == id).then(|| crate::inotify::find::unescape(w[4]))
    })
}

/// A mount point (as the job sees it) of the file system on device `sdev`, a mount of its
/// root first.
fn fs_mount(pid: i32, sdev: u32) -> Option<String> {
    let dev = format!("{}:{}", sdev >> 20, sdev & 0xf_ffff);
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    let mut found: Vec<(bool, String)> = text
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.get(2) == Some(&dev.as_str()))
                .then(|| (w[3] != "/", crate::inotify::find::unescape(w[4])))
        })
        .collect();
    found.sort();
    found.into_iter().next().map(|(_, m)| m)
}

/// One mark line of fdinfo.
fn mark(fd: &OpenFd<'_>, finder: &Finder, line: &str) -> Result<FanotifyMark> {
    let bad = || fd.unsupported(format!("fanotify mark this cairn cannot read: {line}"));
    let mflags = hex(line, "mflags:").ok_or_else(bad)? as u32;
    let mask = hex(line, "mask:").ok_or_else(bad)?;
    let ignored_mask = hex(line, "ignored_mask:").ok_or_else(bad)?;
    let target = if let Some(ino) = hex(line, "ino:") {
        let sdev = hex(line, "sdev:").ok_or_else(bad)? as u32;
        let handle_type = hex(line, "fhandle-type:").unwrap_or(0) as i32;
        let bytes = field(line, "f_handle:").unwrap_or("");
        let handle: Vec<u8> = (0..bytes.len() / 2)
            .filter_map(|i| u8::from_str_radix(&bytes[2 * i..2 * i + 2], 16).ok())
            .collect();
        let path = finder
            .path_of(Inode { ino, sdev }, handle_type, &handle)
            .and_then(|p| p.to_str().map(str::to_string))
            .ok_or_else(|| {
                fd.unsupported(format!(
                    "fanotify mark on inode {ino} of device {}:{} (no path leads to it: not in \
                     the directories of the program's working directory, open or mapped \
                     files, $HOME or /tmp, nor found by walking the mounts of its device)",
                    sdev >> 20,
                    sdev & 0xf_ffff
                ))
            })?;
        FanotifyTarget::Inode { path }
    } else if let Some(id) = hex(line, "mnt_id:") {
        let path = mount_point(fd.pid, id).ok_or_else(|| {
            fd.unsupported(format!(
                "fanotify mark on mount {id} (not a mount of the job's mount namespace)"
            ))
        })?;
        FanotifyTarget::Mount { path }
    } else {
        let sdev = hex(line, "sdev:").ok_or_else(bad)? as u32;
        let path = fs_mount(fd.pid, sdev).ok_or_else(|| {
            fd.unsupported(format!(
                "fanotify mark on the file system of device {}:{} (not mounted in the job's \
                 mount namespace)",
                sdev >> 20,
                sdev & 0xf_ffff
            ))
        })?;
        FanotifyTarget::Filesystem { path }
    };
    Ok(FanotifyMark {
        target,
        mflags,
        mask,
        ignored_mask,
    })
}

/// FAN_CLASS_CONTENT | FAN_CLASS_PRE_CONTENT.
const PERMISSION_CLASSES: u32 = 0x4 | 0x8;

fn read(fd: &OpenFd<'_>) -> Result<FdKind> {
    let copy = crate::pipe::capture::steal(fd.pid, fd.fd)?;
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    if unsafe { libc::ioctl(copy.as_raw_fd(), libc::FIONREAD, &mut queued) } < 0 {
        return Err(last_os("FIONREAD on a fanotify group"));
    }
    if queued > 0 {
        return Err(fd.unsupported(format!(
            "fanotify group with {queued} bytes of events not read yet (reading them would \
             take them from the program; checkpoint again once it has read them)"
        )));
    }
    let head = fd
        .info
        .lines()
        .find(|l| l.starts_with("fanotify flags:"))
        .ok_or_else(|| fd.unsupported("fanotify group whose flags this kernel does not show"))?;
    let init_flags = hex(head, "flags:").unwrap_or(0) as u32;
    let event_f_flags = hex(head, "event-flags:").unwrap_or(0) as u32;
    if init_flags & PERMISSION_CLASSES != 0 {
        return Err(fd.unsupported(format!(
            "fanotify group of a permission class (flags {init_flags:#x}: an event read and \
             not answered yet keeps a process waiting for the answer)"
        )));
    }
    let finder = Finder::new(fd.pid);
    let lines: Vec<&str> = fd
        .info
        .lines()
        .filter(|l| l.starts_with("fanotify ") && !l.starts_with("fanotify flags:"))
        .collect();
    let mut marks = lines
        .iter()
        .map(|l| mark(fd, &finder, l))
        .collect::<Result<Vec<_>>>()?;
    // fdinfo lists the newest mark first.
    marks.reverse();
    let image = FanotifyImage {
        id: 0,
        flags: fd.flags & (libc::O_ACCMODE | libc::O_NONBLOCK),
        init_flags,
        event_f_flags,
        marks,
    };
    rebuild(fd, &image, &lines)?;
    Ok(FdKind::Fanotify(image))
}

/// Builds the group once more from `image` (paths as the job sees them) and refuses it when
/// cairn may not, or when its marks do not come out as the program's `lines` are.
fn rebuild(fd: &OpenFd<'_>, image: &FanotifyImage, lines: &[&str]) -> Result<()> {
    let root = format!("/proc/{}/root", fd.pid);
    let made = super::restore::build(image, &root).map_err(|e| {
        fd.unsupported(format!(
            "fanotify group (flags {:#x}; building it again: {e})",
            image.init_flags
        ))
    })?;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", made.as_raw_fd()))
        .map_err(|e| last_os(format!("reading a fanotify group's fdinfo: {e}")))?;
    let again: Vec<&str> = info
        .lines()
        .filter(|l| l.starts_with("fanotify ") && !l.starts_with("fanotify flags:"))
        .collect();
    if again.len() != lines.len() {
        return Err(fd.unsupported(format!(
            "fanotify group with {} marks, of which {} could be added again",
            lines.len(),
            again.len()
        )));
    }
    for (want, got) in lines.iter().zip(&again) {
        if want != got {
            return Err(fd.unsupported(format!(
                "fanotify mark {want:?} (added again it reads {got:?})"
            )));
        }
    }
    Ok(())
}

fn id_mut(k: &mut FdKind) -> Option<&mut u64> {
    match k {
        FdKind::Fanotify(f) => Some(&mut f.id),
        _ => None,
    }
}

/// [`crate::CaptureFn`] of fanotify groups: descriptors sharing one group get one id.
pub fn capture_job(
    job: &FrozenJob<'_>,
    image: &mut ProcessTreeImage,
    _: &mut dyn MemorySink,
) -> Result<()> {
    crate::shared::number(job, image, id_mut);
    Ok(())
}
