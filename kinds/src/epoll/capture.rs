//! An epoll instance's interest list from fdinfo, each entry's target checked with kcmp.

use crate::{FrozenJob, OpenFd};
use cairn_image::{EpollEntry, EpollImage, FdKind, MemorySink, ProcessTreeImage};
use cairn_sys::Result;

const KCMP_EPOLL_TFD: i32 = 7;

/// `struct kcmp_epoll_slot`.
#[repr(C)]
struct Slot {
    efd: u32,
    tfd: u32,
    toff: u32,
}

/// [`crate::DescribeFn`] of epoll instances.
pub fn describe(fd: &OpenFd<'_>, _: &mut dyn MemorySink) -> Option<Result<FdKind>> {
    (fd.link == "anon_inode:[eventpoll]" && fd.inside).then(|| read(fd))
}

/// One `tfd: N events: HEX data: HEX ...` line.
fn parse_entry(line: &str) -> Option<(i32, u32, u64)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1))
    };
    Some((
        after("tfd:")?.parse().ok()?,
        u32::from_str_radix(after("events:")?, 16).ok()?,
        u64::from_str_radix(after("data:")?, 16).ok()?,
    ))
}

/// Whether descriptor `n` of `pid` is the target of the `toff`-th entry registered as `tfd`
/// in instance `efd` of `pid`.
fn is_target(pid: i32, n: i32, efd: i32, tfd: i32, toff: u32) -> bool {
    let slot = Slot {
        efd: efd as u32,
        tfd: tfd as u32,
        toff,
    };
    // SAFETY: kcmp reads one kcmp_epoll_slot that lives across the call.
    unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid,
            pid,
            KCMP_EPOLL_TFD,
            n,
            std::ptr::addr_of!(slot),
        ) == 0
    }
}

fn read(fd: &OpenFd<'_>) -> Result<FdKind> {
    let mut entries: Vec<EpollEntry> = Vec::new();
    let mut open: Option<Vec<i32>> = None;
    for line in fd.info.lines().filter(|l| l.starts_with("tfd:")) {
        let (tfd, events, data) = parse_entry(line)
            .ok_or_else(|| fd.unsupported(format!("epoll entry this cairn cannot read: {line}")))?;
        let toff = entries.iter().filter(|e| e.tfd == tfd).count() as u32;
        let via = if is_target(fd.pid, tfd, fd.fd, tfd, toff) {
            None
        } else {
            let fds = open.get_or_insert_with(|| list_fds(fd.pid));
            let other = fds
                .iter()
                .copied()
                .find(|&n| n != tfd && is_target(fd.pid, n, fd.fd, tfd, toff));
            if other.is_none() {
                return Err(fd.unsupported(format!(
                    "epoll entry registered as fd {tfd}, whose file this process no longer \
                     holds (the descriptor was closed or reused, the file is open elsewhere)"
                )));
            }
            other
        };
        entries.push(EpollEntry {
            tfd,
            events,
            data,
            via,
        });
    }
    Ok(FdKind::Epoll(EpollImage {
        id: 0,
        flags: fd.flags & (libc::O_ACCMODE | libc::O_NONBLOCK),
        entries,
    }))
}

fn list_fds(pid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

fn id_mut(k: &mut FdKind) -> Option<&mut u64> {
    match k {
        FdKind::Epoll(e) => Some(&mut e.id),
        _ => None,
    }
}

/// [`crate::CaptureFn`] of epoll instances: descriptors sharing one instance get one id.
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
    use super::parse_entry;

    #[test]
    fn fdinfo_entry_lines_are_read() {
        let line = "tfd:        3 events: 80000019 data: 1122334455667788  pos:0 ino:40e sdev:10";
        assert_eq!(
            parse_entry(line),
            Some((3, 0x8000_0019, 0x1122_3344_5566_7788))
        );
        assert_eq!(parse_entry("tfd: x events: 1 data: 2"), None);
    }
}
