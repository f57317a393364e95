//! Dirty-page tracking between checkpoints (docs/incremental.md).
//!
//! At a checkpoint, while the program is frozen, a userfaultfd is created inside it by syscall
//! injection, taken into the caller with pidfd_getfd and closed in the program (which never
//! sees it). Every private writable anonymous mapping is registered for write-protection in
//! async mode and write-protected: the kernel then resolves write faults itself and only
//! records which pages were written. At the next checkpoint PAGEMAP_SCAN reports those pages
//! and write-protects them again in the same step; only they (plus pages that appeared or
//! disappeared from the resident set) are handed to the sink as changed.
//!
//! A mapping is trusted only when it is the same mapping (start, end, protection) that was
//! armed at the previous checkpoint, that checkpoint was kept ([`DirtyTracker::invalidate`]
//! otherwise), the userfaultfd still belongs to the program's address space, and the scan
//! itself confirms async write-protection is active on it (PM_SCAN_CHECK_WPASYNC). Everything
//! else is captured in full.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use crate::checkpoint::BLOCK_ALL;
use crate::error::{Error, Result};
use crate::files::CheckpointOptions;
use crate::freeze::Frozen;
use crate::image::{Backing, MemorySink, ProcessImage, ProcessTreeImage, RegionSource, Vma};
use crate::inject::{self, Injector};
use crate::procfs;
use crate::ptrace;
use crate::sandbox::Sandbox;
use crate::tree::FrozenTree;
use crate::uffd::{self, Uffd, UFFD_USER_MODE_ONLY};
use crate::Captured;

const PAGE: u64 = 4096;

/// Environment variable that turns tracking off when set to `0`.
pub const ENV_SWITCH: &str = "CAIRN_DIRTY_TRACKING";

/// True unless the environment sets `CAIRN_DIRTY_TRACKING=0`.
pub fn enabled_by_env() -> bool {
    std::env::var(ENV_SWITCH).map_or(true, |v| v.trim() != "0")
}

/// Identity of a mapping: start, end, PROT_* bits.
type Key = (u64, u64, u32);

fn key(v: &Vma) -> Key {
    (v.start, v.end, v.prot)
}

/// Mappings whose writes the kernel can track: private, writable, anonymous.
pub fn trackable(v: &Vma) -> bool {
    v.backing == Backing::Anonymous && !v.shared && v.prot & libc::PROT_WRITE as u32 != 0
}

/// What tracking did during one checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirtyStats {
    /// Regions whose changed ranges came from tracking.
    pub tracked_regions: u64,
    /// Regions captured in full (new, changed shape, untrackable, or tracking lost).
    pub full_regions: u64,
    /// Pages reported written by tracking.
    pub written_pages: u64,
}

/// Per-program tracking state, kept by the caller for the program's whole life.
#[derive(Debug, Default)]
pub struct DirtyTracker {
    uffd: Option<Uffd>,
    /// auxv of the address space the userfaultfd belongs to (changes on exec).
    auxv: Vec<u8>,
    /// Mappings armed at the last checkpoint, with their stored (resident) runs then.
    armed: HashMap<Key, Vec<(u64, u64)>>,
    /// Why tracking could not be set up the last time, if it could not.
    unavailable: Option<String>,
    last: DirtyStats,
}

impl DirtyTracker {
    /// A tracker with nothing armed: the first checkpoint is full.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget every baseline (the last checkpoint was not kept): the next checkpoint captures
    /// everything and re-arms.
    pub fn invalidate(&mut self) {
        self.armed.clear();
    }

    /// Why tracking is not active, if the last arming failed.
    pub fn unavailable(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    /// Statistics of the last checkpoint.
    pub fn last_stats(&self) -> &DirtyStats {
        &self.last
    }

    /// Checks, with the program frozen, that the userfaultfd still tracks its address space;
    /// drops it and every baseline otherwise.
    fn revalidate(&mut self, pid: i32) {
        let auxv = std::fs::read(format!("/proc/{pid}/auxv")).unwrap_or_default();
        let maps = mapping_keys(pid);
        let probe = maps.iter().copied().find(|k| self.armed.contains_key(k));
        let alive = match (&self.uffd, probe) {
            // Registering an armed mapping again is a no-op on the same address space and
            // fails once the address space the userfaultfd belongs to is gone (exec).
            (Some(u), Some((s, e, _))) => u.register_wp(s, e - s).is_ok(),
            (Some(_), None) => !self.armed.is_empty() || maps.is_empty(),
            (None, _) => false,
        };
        if !alive || auxv.is_empty() || auxv != self.auxv {
            self.uffd = None;
            self.armed.clear();
        }
        self.auxv = auxv;
    }

    /// Creates the userfaultfd inside the frozen program and takes it out.
    fn create_uffd(&mut self, fz: &Frozen) -> Result<()> {
        let tid = fz.tids[0];
        let regs = ptrace::get_regs(tid)?;
        let mask = ptrace::get_sigmask(tid)?;
        ptrace::set_sigmask(tid, BLOCK_ALL)?;
        let made = (|| -> Result<OwnedFd> {
            let inj = Injector::new(tid, inject::find_vdso_syscall(fz.pid)?)?;
            let flags = (libc::O_CLOEXEC | libc::O_NONBLOCK) as u64 | UFFD_USER_MODE_ONLY;
            let fd = inj.call("userfaultfd", libc::SYS_userfaultfd, &[flags])?;
            let taken = take_fd(fz.pid, fd as i32);
            let closed = inj.call("close", libc::SYS_close, &[fd]);
            let taken = taken?;
            closed?;
            Ok(taken)
        })();
        let put_back = ptrace::set_regs(tid, &regs).and_then(|_| ptrace::set_sigmask(tid, mask));
        let fd = made?;
        put_back?;
        self.uffd = Some(Uffd::new(fd).map_err(|e| Error::Sys {
            what: "userfaultfd API with WP_ASYNC".into(),
            source: e,
        })?);
        Ok(())
    }

    /// Arms every trackable mapping of `image` not already re-protected by this checkpoint's
    /// scan (`rescanned`). Called with the program frozen, after its memory was read.
    fn arm(&mut self, fz: &Frozen, image: &ProcessImage, rescanned: HashSet<Key>) -> Result<()> {
        self.armed.clear();
        if self.uffd.is_none() {
            self.create_uffd(fz)?;
        }
        let Some(u) = &self.uffd else {
            return Ok(());
        };
        for v in image.vmas.iter().filter(|v| trackable(v)) {
            let k = key(v);
            let ok = rescanned.contains(&k)
                || (u.register_wp(v.start, v.len()).is_ok()
                    && u.write_protect(v.start, v.len()).is_ok());
            if ok {
                self.armed.insert(k, v.stored.clone());
            }
        }
        Ok(())
    }
}

/// (start, end, prot) of every mapping of `pid`, from /proc/PID/maps (which, unlike smaps,
/// does not walk the page tables); empty if it cannot be read.
fn mapping_keys(pid: i32) -> Vec<Key> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (s, e) = f.next()?.split_once('-')?;
            let perms = f.next()?.as_bytes();
            let mut prot = 0;
            for (i, bit) in [libc::PROT_READ, libc::PROT_WRITE, libc::PROT_EXEC]
                .into_iter()
                .enumerate()
            {
                if perms.get(i).is_some_and(|&c| c != b'-') {
                    prot |= bit as u32;
                }
            }
            Some((
                u64::from_str_radix(s, 16).ok()?,
                u64::from_str_radix(e, 16).ok()?,
                prot,
            ))
        })
        .collect()
}

/// Takes descriptor `fd` of process `pid` into this process.
fn take_fd(pid: i32, fd: i32) -> Result<OwnedFd> {
    let sys = |what: &str| crate::error::last_os(format!("{what} of {pid}"));
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(sys("pidfd_open"));
    }
    // SAFETY: pidfd is a fresh descriptor owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    // SAFETY: pidfd_getfd takes a pidfd, a descriptor number and flags; returns a new fd.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_getfd,
            std::os::fd::AsRawFd::as_raw_fd(&pidfd),
            fd,
            0,
        )
    };
    if r < 0 {
        return Err(sys("pidfd_getfd"));
    }
    // SAFETY: r is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// Union of sorted, non-overlapping byte ranges plus the symmetric difference of two stored
/// run lists: every page that was written, or that entered or left the resident set.
fn changed_ranges(
    written: &[(u64, u64)],
    before: &[(u64, u64)],
    now: &[(u64, u64)],
) -> Vec<(u64, u64)> {
    fn pages(runs: &[(u64, u64)]) -> impl Iterator<Item = u64> + '_ {
        runs.iter()
            .flat_map(|&(s, l)| s / PAGE..(s + l).div_ceil(PAGE))
    }
    let mut marks: Vec<(u64, u64)> = written.to_vec();
    if before != now {
        let a: HashSet<u64> = pages(before).collect();
        let b: HashSet<u64> = pages(now).collect();
        marks.extend(a.symmetric_difference(&b).map(|&p| (p * PAGE, PAGE)));
    }
    marks.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(marks.len());
    for (s, l) in marks {
        match out.last_mut() {
            Some(last) if last.0 + last.1 >= s => last.1 = last.1.max(s + l - last.0),
            _ => out.push((s, l)),
        }
    }
    out
}

/// A sink wrapper that asks the tracker which pages of each region changed.
struct TrackingSink<'a> {
    inner: &'a mut dyn MemorySink,
    /// Only this process's mappings (pid inside the job's namespace) are tracked.
    root_pid: i32,
    armed: &'a HashMap<Key, Vec<(u64, u64)>>,
    pagemap: Option<File>,
    rescanned: HashSet<Key>,
    stats: DirtyStats,
}

impl MemorySink for TrackingSink<'_> {
    fn put_region(
        &mut self,
        pid: i32,
        index: usize,
        len: u64,
        source: RegionSource<'_>,
    ) -> io::Result<()> {
        self.stats.full_regions += 1;
        self.inner.put_region(pid, index, len, source)
    }

    fn put_vma(
        &mut self,
        pid: i32,
        index: usize,
        vma: &Vma,
        _changed: Option<&[(u64, u64)]>,
        source: RegionSource<'_>,
    ) -> io::Result<()> {
        if pid != self.root_pid {
            self.stats.full_regions += 1;
            return self.inner.put_vma(pid, index, vma, None, source);
        }
        let k = key(vma);
        let prev = self.armed.get(&k).filter(|_| trackable(vma));
        let scanned = match (prev, &self.pagemap) {
            (Some(before), Some(pm)) => match uffd::scan_written(pm, vma.start, vma.end) {
                Ok(w) => Some((w, before)),
                Err(_) => None,
            },
            _ => None,
        };
        match scanned {
            Some((written, before)) => {
                self.rescanned.insert(k);
                self.stats.tracked_regions += 1;
                self.stats.written_pages += written.iter().map(|r| r.1 / PAGE).sum::<u64>();
                let rel: Vec<(u64, u64)> =
                    written.iter().map(|&(s, l)| (s - vma.start, l)).collect();
                let changed = changed_ranges(&rel, before, &vma.stored);
                self.inner.put_vma(pid, index, vma, Some(&changed), source)
            }
            None => {
                self.stats.full_regions += 1;
                self.inner.put_vma(pid, index, vma, None, source)
            }
        }
    }

    fn put_file(&mut self, pid: i32, fd: i32, data: &mut dyn io::Read) -> io::Result<()> {
        self.inner.put_file(pid, fd, data)
    }
}

impl Sandbox {
    /// Like [`Sandbox::checkpoint`], with dirty-page tracking of the launched (root) process:
    /// regions of its mappings that `tracker` proves partly clean reach the sink's
    /// [`MemorySink::put_vma`] with their changed ranges, and tracking is (re-)armed before the
    /// program runs again. Other processes of the tree are captured in full. When tracking
    /// cannot be set up the checkpoint is still taken, in full ([`DirtyTracker::unavailable`]
    /// says why).
    pub fn checkpoint_tracked(
        &self,
        tracker: &mut DirtyTracker,
        sink: &mut dyn MemorySink,
    ) -> Result<ProcessTreeImage> {
        self.checkpoint_inner(sink, &CheckpointOptions::from_env()?, Some(tracker))
    }
}

/// Captures a frozen tree through `capture` with the root process's regions checked against
/// `tracker`, then re-arms tracking on the root (or drops every baseline on failure).
pub(crate) fn capture_tracked(
    frozen: &FrozenTree,
    tracker: &mut DirtyTracker,
    sink: &mut dyn MemorySink,
    capture: impl FnOnce(&mut dyn MemorySink) -> Result<Captured>,
) -> Result<Captured> {
    let Some((root, _)) = frozen.procs.iter().find(|(_, parent)| *parent == 0) else {
        tracker.invalidate();
        return capture(sink);
    };
    let outer = root.pid;
    let Ok(root_pid) = procfs::inner_pid(&format!("/proc/{outer}/status")) else {
        tracker.invalidate();
        return capture(sink);
    };
    tracker.revalidate(outer);
    let pagemap = File::open(format!("/proc/{outer}/pagemap")).ok();
    let mut ts = TrackingSink {
        inner: sink,
        root_pid,
        armed: &tracker.armed,
        pagemap,
        rescanned: HashSet::new(),
        stats: DirtyStats::default(),
    };
    let captured = capture(&mut ts);
    let (rescanned, stats) = (ts.rescanned, ts.stats);
    tracker.last = stats;
    let root_image = captured
        .as_ref()
        .ok()
        .and_then(|c| c.0.iter().find(|p| p.pid == root_pid));
    match root_image {
        Some(img) => {
            if let Err(e) = tracker.arm(root, img, rescanned) {
                tracker.uffd = None;
                tracker.armed.clear();
                tracker.unavailable = Some(e.to_string());
            } else {
                tracker.unavailable = None;
            }
        }
        None => tracker.invalidate(),
    }
    captured
}

#[cfg(test)]
mod tests {
    use super::{changed_ranges, mapping_keys};

    #[test]
    fn mapping_keys_match_the_parsed_maps() {
        let pid = std::process::id() as i32;
        let keys = mapping_keys(pid);
        let full: Vec<_> = crate::procfs::read_maps(pid)
            .unwrap_or_default()
            .iter()
            .map(|m| (m.start, m.end, m.prot))
            .collect();
        assert!(!keys.is_empty());
        // Every mapping the full parser saw still exists (this test maps nothing meanwhile
        // except possibly in other test threads, so compare the first ones only).
        assert!(full.iter().take(3).all(|k| keys.contains(k)));
    }

    #[test]
    fn changed_ranges_merge_written_and_resident_set_changes() {
        let p = 4096;
        // Written page 0..2, page 5 left the resident set, page 9 entered it.
        let written = [(0, 2 * p)];
        let before = [(0, 6 * p)];
        let now = [(0, 5 * p), (9 * p, p)];
        assert_eq!(
            changed_ranges(&written, &before, &now),
            vec![(0, 2 * p), (5 * p, p), (9 * p, p)]
        );
        assert_eq!(changed_ranges(&[], &before, &before), vec![]);
        assert_eq!(
            changed_ranges(&[(p, p), (2 * p, p)], &[], &[]),
            vec![(p, 2 * p)]
        );
    }
}
