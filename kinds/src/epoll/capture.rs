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

/// Where the target of the `toff`-th entry registered as `tfd` in instance `efd` of `pid`
/// is held in `pid`: `Some(None)` at `tfd` itself, `Some(Some(n))` at descriptor `n`, `None`
/// nowhere.
fn find_target(pid: i32, efd: i32, tfd: i32, toff: u32) -> Option<Option<i32>> {
    if is_target(pid, tfd, efd, tfd, toff) {
        return Some(None);
    }
    list_fds(pid)
        .into_iter()
        .find(|&n| n != tfd && is_target(pid, n, efd, tfd, toff))
        .map(Some)
}

/// Marks an entry whose target the describing process does not hold, for
/// [`capture_job`] to look for in the other processes holding the instance.
const ELSEWHERE: Option<(i32, i32)> = Some((-1, -1));

fn read(fd: &OpenFd<'_>) -> Result<FdKind> {
    let mut entries: Vec<EpollEntry> = Vec::new();
    for line in fd.info.lines().filter(|l| l.starts_with("tfd:")) {
        let (tfd, events, data) = parse_entry(line)
            .ok_or_else(|| fd.unsupported(format!("epoll entry this cairn cannot read: {line}")))?;
        let toff = entries.iter().filter(|e| e.tfd == tfd).count() as u32;
        let (via, holder) = match find_target(fd.pid, fd.fd, tfd, toff) {
            Some(via) => (via, None),
            None => (None, ELSEWHERE),
        };
        entries.push(EpollEntry {
            tfd,
            events,
            data,
            via,
            holder,
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

/// [`crate::CaptureFn`] of epoll instances: descriptors sharing one instance get one id, and
/// each entry whose target the describing process no longer holds is looked for in the
/// other processes holding the instance (inherited across fork, say); one that no process
/// holds is refused.
pub fn capture_job(
    job: &FrozenJob<'_>,
    image: &mut ProcessTreeImage,
    _: &mut dyn MemorySink,
) -> Result<()> {
    crate::shared::number(job, image, id_mut);
    // Every descriptor of an instance in the job: (outer pid, pid in the job, fd).
    let holders = |o: i32, efd: i32| -> Vec<(i32, i32, i32)> {
        image
            .processes
            .iter()
            .zip(job.outer)
            .flat_map(|(p, &oj)| {
                list_fds(oj)
                    .into_iter()
                    .filter(move |&n| crate::shared::same_file(o, efd, oj, n))
                    .map(move |n| (oj, p.pid, n))
            })
            .collect()
    };
    let mut found = Vec::new();
    for (i, (p, &o)) in image.processes.iter().zip(job.outer).enumerate() {
        for (k, f) in p.fds.iter().enumerate() {
            let FdKind::Epoll(e) = &f.kind else {
                continue;
            };
            for (x, entry) in e.entries.iter().enumerate() {
                if entry.holder != ELSEWHERE {
                    continue;
                }
                let toff = e.entries[..x].iter().filter(|y| y.tfd == entry.tfd).count() as u32;
                let place = holders(o, f.fd).into_iter().find_map(|(oj, pj, n)| {
                    find_target(oj, n, entry.tfd, toff).map(|via| (via, (pj, n)))
                });
                let Some((via, holder)) = place else {
                    return Err(cairn_sys::Error::Unsupported(format!(
                        "process {} fd {}: epoll entry registered as fd {}, whose file no \
                         process holding the instance holds any more (the descriptor was \
                         closed or reused, the file is open elsewhere) cannot be checkpointed",
                        p.pid, f.fd, entry.tfd
                    )));
                };
                found.push((i, k, x, via, holder));
            }
        }
    }
    for (i, k, x, via, holder) in found {
        if let FdKind::Epoll(e) = &mut image.processes[i].fds[k].kind {
            e.entries[x].via = via;
            e.entries[x].holder = Some(holder);
        }
    }
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
