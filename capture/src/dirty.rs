//! Dirty-page tracking between checkpoints, and pre-copy (docs/incremental.md).
//!
//! Every process of the tree gets its own userfaultfd, created inside it by syscall injection
//! while it is frozen, taken into the caller with pidfd_getfd and closed in the process (which
//! never sees it). Every private writable anonymous mapping is registered for write-protection
//! in async mode and write-protected: the kernel then resolves write faults itself and only
//! records which pages were written. PAGEMAP_SCAN reports those pages and write-protects them
//! again in the same step.
//!
//! A checkpoint with a sink that supports pre-copy goes in three steps:
//! 1. frozen (short): per process, revalidate/create the userfaultfd; per tracked mapping, take
//!    the pages written since the last checkpoint (re-protecting them) or arm a new mapping;
//! 2. running: copy those mappings to the sink ([`MemorySink::put_precopy`]);
//! 3. frozen: capture as usual, where each pre-copied mapping only re-reads the pages written
//!    (or that entered/left the resident set) since step 1; re-arm; run.
//!
//! Without pre-copy, step 3 alone runs, with changes relative to the previous checkpoint.
//!
//! A mapping is trusted only when it is the same mapping (start, end, protection) that was
//! armed before, the last checkpoint was kept ([`DirtyTracker::invalidate`] otherwise), the
//! userfaultfd still belongs to the process's address space, and the scan itself confirms
//! async write-protection is active on it (PM_SCAN_CHECK_WPASYNC). Everything else is
//! captured in full.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::checkpoint::{read_stored, FreezeHints};
use crate::tree::FrozenTree;
use cairn_image::{Backing, MemorySink, ProcessTreeImage, RegionSource, Vma};
use cairn_kinds::CheckpointOptions;
use cairn_sys::error::{Error, Result};
use cairn_sys::freeze::Frozen;
use cairn_sys::inject::{self, Injector};
use cairn_sys::pagemap::{self, Runs};
use cairn_sys::procfs::{self, MapEntry};
use cairn_sys::ptrace;
use cairn_sys::ptrace::BLOCK_ALL;
use cairn_sys::uffd::{WpTracker, UFFD_USER_MODE_ONLY};
use cairn_sys::Sandbox;

const PAGE: u64 = 4096;

/// Environment variable that turns tracking off when set to `0`.
pub const ENV_SWITCH: &str = "CAIRN_DIRTY_TRACKING";

/// Environment variable that turns pre-copy off when set to `0` (tracking stays on; memory is
/// then read while the program is frozen).
pub const ENV_PRECOPY: &str = "CAIRN_PRECOPY";

/// True unless the environment sets `CAIRN_DIRTY_TRACKING=0`.
pub fn enabled_by_env() -> bool {
    std::env::var(ENV_SWITCH).map_or(true, |v| v.trim() != "0")
}

/// True unless the environment sets `CAIRN_PRECOPY=0`.
pub fn precopy_by_env() -> bool {
    std::env::var(ENV_PRECOPY).map_or(true, |v| v.trim() != "0")
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

/// [`trackable`] for a line of /proc/PID/maps (same classification as capture's).
fn trackable_entry(m: &MapEntry) -> bool {
    let n = m.name.as_str();
    !m.shared
        && m.prot & libc::PROT_WRITE as u32 != 0
        && (n.is_empty() || n == "[heap]" || n == "[stack]" || n.starts_with("[anon:"))
}

/// What tracking did during one checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirtyStats {
    /// Regions whose changed ranges came from tracking.
    pub tracked_regions: u64,
    /// Regions captured in full (new, changed shape, untrackable, or tracking lost).
    pub full_regions: u64,
    /// Pages reported written by tracking (in the final, frozen pass).
    pub written_pages: u64,
    /// Regions copied while the program ran (pre-copy).
    pub precopied_regions: u64,
    /// Time the program was frozen (both freezes when pre-copy ran; with snapshots, the
    /// freeze plus the short freezes that reap the clones).
    pub frozen: Duration,
    /// Why a process's memory was read while frozen instead of from a copy-on-write
    /// snapshot (docs/snapshot.md), if one's could not be made.
    pub snapshot_fallback: Option<String>,
}

/// Tracking state of one process (its address space).
#[derive(Debug, Default)]
struct ProcTrack {
    uffd: Option<WpTracker>,
    /// auxv of the address space the userfaultfd belongs to (changes on exec).
    auxv: Vec<u8>,
    /// Mappings armed at the last checkpoint, with their stored (resident) runs then.
    armed: HashMap<Key, Runs>,
}

/// Per-job tracking state, kept by the caller for the job's whole life: one userfaultfd and
/// set of armed mappings per process (by pid inside the job's namespace).
#[derive(Debug)]
pub struct DirtyTracker {
    procs: HashMap<i32, ProcTrack>,
    /// Why tracking could not be set up the last time, if it could not.
    unavailable: Option<String>,
    last: DirtyStats,
    precopy: bool,
}

impl Default for DirtyTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl DirtyTracker {
    /// A tracker with nothing armed: the first checkpoint is full. Pre-copy is on unless
    /// `CAIRN_PRECOPY=0`.
    pub fn new() -> Self {
        DirtyTracker {
            procs: HashMap::new(),
            unavailable: None,
            last: DirtyStats::default(),
            precopy: precopy_by_env(),
        }
    }

    /// Turns pre-copy on or off for the next checkpoints.
    pub fn set_precopy(&mut self, on: bool) {
        self.precopy = on;
    }

    /// Forget every baseline (the last checkpoint was not kept): the next checkpoint captures
    /// everything and re-arms.
    pub fn invalidate(&mut self) {
        for p in self.procs.values_mut() {
            p.armed.clear();
        }
    }

    /// Why tracking is not active, if the last arming failed.
    pub fn unavailable(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    /// Statistics of the last checkpoint.
    pub fn last_stats(&self) -> &DirtyStats {
        &self.last
    }
}

impl ProcTrack {
    /// Checks, with the process frozen, that the userfaultfd still tracks its address space;
    /// drops it and every baseline otherwise.
    fn revalidate(&mut self, pid: i32) {
        let auxv = std::fs::read(format!("/proc/{pid}/auxv")).unwrap_or_default();
        let maps = mapping_keys(pid);
        let probe = maps.iter().copied().find(|k| self.armed.contains_key(k));
        let alive = match (&self.uffd, probe) {
            // Registering an armed mapping again is a no-op on the same address space and
            // fails once the address space the userfaultfd belongs to is gone (exec, exit).
            (Some(u), Some((s, e, _))) => u.register_wp(s, e - s).is_ok(),
            // Nothing to probe with: keep it only if the mappings it armed are all gone
            // (unmapped or reshaped); with nothing armed, start over with a new one.
            (Some(_), None) => !self.armed.is_empty() || maps.is_empty(),
            (None, _) => false,
        };
        if !alive || auxv.is_empty() || auxv != self.auxv {
            self.uffd = None;
            self.armed.clear();
        }
        self.auxv = auxv;
    }

    /// Creates the userfaultfd inside the frozen process (if it has none) and takes it out.
    fn ensure_uffd(&mut self, fz: &Frozen) -> Result<&WpTracker> {
        if self.uffd.is_none() {
            self.uffd = Some(create_uffd(fz)?);
        }
        self.uffd
            .as_ref()
            .ok_or_else(|| Error::Parse("userfaultfd vanished".into()))
    }
}

/// Creates a userfaultfd inside frozen process `fz` by syscall injection, takes it into this
/// process with pidfd_getfd and closes it in the target again.
fn create_uffd(fz: &Frozen) -> Result<WpTracker> {
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
    // Injection bypassed the kernel's syscall-restart logic: resume as capture does.
    let regs = cairn_sys::interrupted::note_restart(tid, regs);
    let put_back = ptrace::set_regs(tid, &cairn_sys::interrupted::resume_regs(&regs, true))
        .and_then(|_| ptrace::set_sigmask(tid, mask));
    let fd = made?;
    put_back?;
    WpTracker::new(fd).map_err(|e| Error::Sys {
        what: "userfaultfd API with WP_ASYNC".into(),
        source: e,
    })
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
    let sys = |what: &str| cairn_sys::error::last_os(format!("{what} of {pid}"));
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

/// Union of the written ranges and the symmetric difference of two stored run lists: every
/// page that was written, or that entered or left the resident set. All inputs are sorted,
/// non-overlapping `(offset, len)` runs; the result is sorted and merged.
fn changed_ranges(written: &Runs, before: &Runs, now: &Runs) -> Runs {
    // A stretch covered by exactly one of `before` and `now` changed residency.
    written.union(&before.minus(now)).union(&now.minus(before))
}

/// What the final pass knows about one process's mappings.
#[derive(Default)]
struct Known {
    /// Outer pid.
    outer: i32,
    /// Mapping → stored runs of its base copy (previous checkpoint, or this checkpoint's
    /// pre-copy when `precopy`).
    base: HashMap<Key, Runs>,
    /// The bases are this checkpoint's pre-copies.
    precopy: bool,
    pagemap: Option<File>,
    /// Pre-copied mappings scanned at the final freeze: pages written since the pre-copy
    /// began (offsets) and the stored runs now.
    scanned: HashMap<Key, (Runs, Runs)>,
    /// VM_GROWSDOWN of every mapping, from /proc/PID/smaps read during the pre-copy.
    growsdown: HashMap<Ident, bool>,
}

/// Everything /proc/PID/maps tells about a mapping.
type Ident = (u64, u64, u32, bool, u64, u64, String);

fn ident(m: &MapEntry) -> Ident {
    (
        m.start,
        m.end,
        m.prot,
        m.shared,
        m.offset,
        m.inode,
        m.name.clone(),
    )
}

/// A sink wrapper that asks the tracker which pages of each region changed.
struct TrackingSink<'a> {
    inner: &'a mut dyn MemorySink,
    /// By pid inside the job's namespace.
    known: &'a HashMap<i32, Known>,
    /// (ns pid, mapping) whose scan re-protected it for the next checkpoint.
    rescanned: HashSet<(i32, Key)>,
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
        let k = key(vma);
        let Some(known) = self.known.get(&pid) else {
            self.stats.full_regions += 1;
            return self.inner.put_vma(pid, index, vma, None, source);
        };
        let prev = known.base.get(&k).filter(|_| trackable(vma));
        let scanned = match (prev, &known.pagemap) {
            // Pre-copied: scanned already at this freeze (see `final_scans`).
            (Some(before), _) if known.precopy => {
                known.scanned.get(&k).map(|(w, _)| (w.clone(), before))
            }
            (Some(before), Some(pm)) => pagemap::scan_written(pm, vma.start, vma.end)
                .ok()
                .map(|w| (w.relative_to(vma.start), before)),
            _ => None,
        };
        let precopy = known.precopy;
        let changed = scanned.map(|(written, before): (Runs, &Runs)| {
            self.stats.written_pages += written.iter().map(|r| r.1 / PAGE).sum::<u64>();
            changed_ranges(
                &written,
                before,
                &Runs::from_sorted(vma.stored.iter().copied()),
            )
        });
        match (changed, precopy) {
            (Some(c), true) => {
                self.rescanned.insert((pid, k));
                self.stats.tracked_regions += 1;
                self.inner
                    .put_vma_precopied(pid, index, vma, Some(&c), source)
            }
            (Some(c), false) => {
                self.rescanned.insert((pid, k));
                self.stats.tracked_regions += 1;
                self.inner.put_vma(pid, index, vma, Some(&c), source)
            }
            (None, _) => {
                self.stats.full_regions += 1;
                self.inner.put_vma(pid, index, vma, None, source)
            }
        }
    }

    fn put_file(&mut self, pid: i32, fd: i32, data: &mut dyn io::Read) -> io::Result<()> {
        self.inner.put_file(pid, fd, data)
    }
}

/// What dirty tracking learnt of each process at this freeze (by pid inside the job).
struct KnownHints<'a>(&'a HashMap<i32, Known>);

impl FreezeHints for KnownHints<'_> {
    fn known_growsdown(&self, pid: i32, m: &MapEntry) -> Option<bool> {
        self.0.get(&pid)?.growsdown.get(&ident(m)).copied()
    }

    fn known_stored(&self, pid: i32, start: u64, end: u64, prot: u32) -> Option<Vec<(u64, u64)>> {
        let k = self.0.get(&pid)?;
        k.scanned
            .get(&(start, end, prot))
            .map(|(_, stored)| stored.to_vec())
    }
}

/// At the final freeze, for every pre-copied mapping that still exists with the same start,
/// end and protection: one PAGEMAP_SCAN takes the pages written since the pre-copy began
/// (re-protecting them) and which of them are resident. Pages not written since then kept
/// their residency (a dropped page is reported written, a page faulted in is either written
/// or a write-protected zero page, which reads as zero whether stored or not), so the stored
/// runs now are the pre-copy's, minus the written pages, plus the written resident ones.
fn final_scans(known: &mut Known) {
    let Some(pm) = &known.pagemap else { return };
    let keys: HashSet<Key> = mapping_keys(known.outer).into_iter().collect();
    for (k, before) in &known.base {
        if !keys.contains(k) {
            continue;
        }
        let Ok((written, resident)) = pagemap::scan_written_resident(pm, k.0, k.1) else {
            continue;
        };
        let (written, resident) = (written.relative_to(k.0), resident.relative_to(k.0));
        let stored = before.minus(&written).union(&resident);
        known.scanned.insert(*k, (written, stored));
    }
}

/// Like [`crate::checkpoint`], with dirty-page tracking of every process of the tree:
/// regions that `tracker` proves partly clean reach the sink's [`MemorySink::put_vma`]
/// with their changed ranges, and tracking is (re-)armed before the tree runs again. When
/// the sink supports pre-copy ([`MemorySink::put_precopy`]) tracked mappings are copied
/// while the program runs and only what it wrote meanwhile is read while it is frozen.
/// When tracking cannot be set up the checkpoint is still taken, in full
/// ([`DirtyTracker::unavailable`] says why).
pub fn checkpoint_tracked(
    sandbox: &Sandbox,
    tracker: &mut DirtyTracker,
    sink: &mut dyn MemorySink,
) -> Result<ProcessTreeImage> {
    checkpoint_tracked_with(sandbox, tracker, sink, &CheckpointOptions::from_env()?)
}

/// [`checkpoint_tracked`] with explicit options.
pub fn checkpoint_tracked_with(
    sandbox: &Sandbox,
    tracker: &mut DirtyTracker,
    sink: &mut dyn MemorySink,
    opts: &CheckpointOptions,
) -> Result<ProcessTreeImage> {
    let mut frozen = Duration::ZERO; // the tracker keeps it
    crate::checkpoint_inner(sandbox, sink, opts, Some(tracker), &mut frozen, None)
}

/// What tracking knew at freeze 1 about a mapping armed since the previous checkpoint
/// (offsets from its start).
struct Since {
    /// Pages written since the previous checkpoint.
    written: Runs,
    /// Stored runs at the previous checkpoint.
    before: Runs,
    /// Stored runs at freeze 1: `before` without the written pages, plus the written pages
    /// that are resident (unwritten pages kept their residency, see [`final_scans`]).
    now: Runs,
}

/// Untouched bytes above which a mapping is write-protected with its process frozen (see
/// `precopy_arm`); below, reading the untouched pages as zeros costs less than protecting
/// the resident ones while frozen.
const SPARSE_UNTOUCHED: u64 = 32 << 20;

/// What tracking knows of a mapping to pre-copy.
enum Armed {
    /// Armed at an earlier checkpoint: what changed since.
    Since(Since),
    /// Armed now: its resident runs (offsets) when it was write-protected.
    New(Runs),
}

/// One tracked mapping to pre-copy: its key and what tracking knows of it.
type PrecopyItem = (Key, Armed);

/// The live processes of the job under the sandbox init `init` (outer pids, parents first,
/// the init itself left out), read from /proc while they run: a process missed or gone is
/// simply not pre-copied.
fn live_tree(init: i32) -> Vec<i32> {
    let mut out = vec![init];
    let mut i = 0;
    while i < out.len() {
        for c in procfs::children_of(out[i]).unwrap_or_default() {
            if !out.contains(&c) && !crate::program_gone(c) {
                out.push(c);
            }
        }
        i += 1;
    }
    out.remove(0);
    out
}

/// Step 1 of a pre-copy checkpoint, while the tree runs: per process, make sure a
/// userfaultfd tracks it (creating one needs the process frozen for a moment: only on its
/// first checkpoint), take each tracked mapping's pages written since the last checkpoint
/// (re-protecting them atomically, page table by page table) or arm it. Returns
/// (outer pid, ns pid, items) per process and adds the freezes' duration to `frozen`. Every
/// process's baseline is consumed: from here on its armed mappings count from this instant
/// (a write after a page's re-protection faults and is recorded; a write before it is seen
/// by the pre-copy, which reads after the scan).
fn precopy_arm(
    init: i32,
    tracker: &mut DirtyTracker,
    frozen: &mut Duration,
) -> Result<Vec<(i32, i32, Vec<PrecopyItem>)>> {
    let mut out = Vec::new();
    for pid in live_tree(init) {
        let Ok(ns) = procfs::inner_pid(&format!("/proc/{pid}/status")) else {
            continue;
        };
        let pt = tracker.procs.entry(ns).or_default();
        pt.revalidate(pid);
        let armed = std::mem::take(&mut pt.armed);
        if pt.uffd.is_none() {
            let t = Instant::now();
            let made = Frozen::freeze(pid).and_then(|fz| create_uffd(&fz));
            *frozen += t.elapsed();
            match made {
                Ok(u) => pt.uffd = Some(u),
                Err(Error::Exited { .. }) => continue,
                Err(e) => {
                    tracker.unavailable = Some(e.to_string());
                    continue;
                }
            }
        }
        let Some(u) = &pt.uffd else { continue };
        let (Ok(maps), Ok(pagemap)) = (
            procfs::read_maps_light(pid),
            File::open(format!("/proc/{pid}/pagemap")),
        ) else {
            continue;
        };
        let mut items = Vec::new();
        let mut to_arm = Vec::new();
        for m in maps.iter().filter(|m| trackable_entry(m)) {
            let k = (m.start, m.end, m.prot);
            let since_last = armed.get(&k).and_then(|before| {
                let (w, r) = pagemap::scan_written_resident(&pagemap, m.start, m.end).ok()?;
                let (written, resident) = (w.relative_to(m.start), r.relative_to(m.start));
                let now = before.minus(&written).union(&resident);
                Some(Since {
                    written,
                    before: before.clone(),
                    now,
                })
            });
            match since_last {
                Some(s) => items.push((k, Armed::Since(s))),
                None => to_arm.push(k),
            }
        }
        // Arming registers the mapping and write-protects it, never-touched pages too
        // (WP_UNPOPULATED). The registration is made with the process frozen, after checking
        // that the mapping is still there as `maps` said: registering a range the program
        // has replaced meanwhile would split its new mapping (its own mremap of that one then
        // fails). PAGEMAP_SCAN reports the protection's marks on never-touched pages like
        // swapped pages: scanned after its protection, every untouched page of a mapping would
        // count as resident, to be read (as zeros) and hashed. So a mapping with much
        // untouched memory is also protected while frozen, its resident pages read just
        // before: exactly what the protection finds. One (nearly) all resident is protected
        // after the thaw and scanned after (few marks), keeping the freeze short.
        if !to_arm.is_empty() {
            let sparse: HashSet<Key> = to_arm
                .iter()
                .filter(|k| {
                    let before =
                        pagemap::scan_resident(&pagemap, k.0, k.1, false).unwrap_or_default();
                    let resident: u64 = before.iter().map(|r| r.1).sum();
                    (k.1 - k.0).saturating_sub(resident) > SPARSE_UNTOUCHED
                })
                .copied()
                .collect();
            let mut registered = Vec::new();
            let t = Instant::now();
            let fz = Frozen::freeze(pid);
            if let Ok(_fz) = &fz {
                let now: HashSet<Key> = mapping_keys(pid).into_iter().collect();
                for k in to_arm {
                    if !now.contains(&k) || u.register_wp(k.0, k.1 - k.0).is_err() {
                        continue;
                    }
                    if !sparse.contains(&k) {
                        registered.push(k);
                        continue;
                    }
                    if let Ok(resident) = pagemap::scan_resident(&pagemap, k.0, k.1, false) {
                        if u.write_protect(k.0, k.1 - k.0).is_ok() {
                            items.push((k, Armed::New(resident)));
                        }
                    }
                }
            }
            // Not frozen (gone, or the freeze failed): these mappings are not pre-copied;
            // the final freeze captures them in full and arms them.
            drop(fz);
            *frozen += t.elapsed();
            for k in registered {
                if u.write_protect(k.0, k.1 - k.0).is_ok() {
                    if let Ok(r) = pagemap::scan_resident(&pagemap, k.0, k.1, false) {
                        items.push((k, Armed::New(r)));
                    }
                }
            }
        }
        items.sort_by_key(|(k, _)| *k);
        out.push((pid, ns, items));
    }
    Ok(out)
}

/// Step 2 (tree running): copy every armed mapping to the sink. Returns, per ns pid, the
/// mappings copied with their resident runs when the copy began.
fn precopy_copy(
    plan: &[(i32, i32, Vec<PrecopyItem>)],
    sink: &mut dyn MemorySink,
    stats: &mut DirtyStats,
) -> Result<HashMap<i32, Known>> {
    let mut known = HashMap::new();
    for (outer, ns, items) in plan {
        let (outer, ns) = (*outer, *ns);
        let Ok(mem) = File::open(format!("/proc/{outer}/mem")) else {
            // Gone, or not readable: not pre-copied (captured in full at the freeze).
            continue;
        };
        // The mappings' flags, read now (smaps walks the page tables: tens of ms for GiBs)
        // so that the final freeze only needs /proc/PID/maps; on another thread, overlapping
        // the copy below.
        let flags = std::thread::Builder::new()
            .name("cairn-smaps".into())
            .spawn(move || {
                procfs::read_maps(outer)
                    .map(|maps| maps.iter().map(|m| (ident(m), m.growsdown)).collect())
                    .unwrap_or_default()
            });
        let mut base = HashMap::new();
        for (k, since_last) in items {
            let (start, end, prot) = *k;
            let (resident, changed) = match since_last {
                Armed::Since(s) => {
                    let changed = changed_ranges(&s.written, &s.before, &s.now);
                    (s.now.clone(), Some(changed))
                }
                Armed::New(r) => (r.clone(), None),
            };
            let vma = Vma {
                start,
                end,
                prot,
                shared: false,
                growsdown: false,
                backing: Backing::Anonymous,
                stored: resident.into_vec(),
                shm: None,
                flags: Default::default(),
                guards: Vec::new(),
                inherited: Vec::new(),
            };
            let src = |off: u64, buf: &mut [u8]| -> io::Result<()> {
                read_stored(outer, &mem, start, &vma.stored, off, buf)
            };
            // An error means the mapping changed under the copy (unmapped, shrunk): the
            // final pass captures it in full.
            if sink.put_precopy(ns, &vma, changed.as_deref(), &src).is_ok() {
                stats.precopied_regions += 1;
                base.insert(*k, Runs::from_sorted(vma.stored));
            }
        }
        // No flags (thread not started, or it failed): the final freeze reads smaps itself.
        let growsdown = match flags {
            Ok(h) => h.join().unwrap_or_default(),
            Err(_) => HashMap::new(),
        };
        known.insert(
            ns,
            Known {
                outer,
                base,
                precopy: true,
                pagemap: None,
                scanned: HashMap::new(),
                growsdown,
            },
        );
    }
    sink.precopy_done()
        .map_err(cairn_sys::error::io_ctx("finishing the pre-copy"))?;
    Ok(known)
}

/// Captures the tree of `root` with dirty tracking: pre-copy while it runs (when the sink and
/// the tracker allow), then the frozen capture through `capture`, then re-arming. On any
/// failure every baseline is dropped (the next checkpoint is full).
pub(crate) fn capture_tracked(
    root: i32,
    init: i32,
    tracker: &mut DirtyTracker,
    sink: &mut dyn MemorySink,
    capture: impl FnOnce(&FrozenTree, &mut dyn MemorySink, &dyn FreezeHints) -> Result<ProcessTreeImage>,
) -> Result<ProcessTreeImage> {
    let r = capture_tracked_inner(root, init, tracker, sink, capture);
    if r.is_err() {
        tracker.invalidate();
    }
    r
}

fn capture_tracked_inner(
    root: i32,
    init: i32,
    tracker: &mut DirtyTracker,
    sink: &mut dyn MemorySink,
    capture: impl FnOnce(&FrozenTree, &mut dyn MemorySink, &dyn FreezeHints) -> Result<ProcessTreeImage>,
) -> Result<ProcessTreeImage> {
    let mut stats = DirtyStats::default();
    let mut known: HashMap<i32, Known> = HashMap::new();
    let snapshot = crate::snapshot::enabled_by_env();
    // With copy-on-write snapshots memory is read while the program runs anyway: a pre-copy
    // would only read it twice.
    if !snapshot && tracker.precopy && sink.supports_precopy() {
        let plan = precopy_arm(init, tracker, &mut stats.frozen)?;
        // Without usable pre-copies (the sink failed to finish them) the final freeze
        // captures the armed processes in full: their baselines were consumed by step 1.
        known = precopy_copy(&plan, sink, &mut stats).unwrap_or_default();
    }
    let t = Instant::now();
    let frozen = FrozenTree::freeze(init, root)?;
    // Processes not pre-copied: changes relative to the previous checkpoint.
    for (fz, _) in &frozen.procs {
        let ns = procfs::inner_pid(&format!("/proc/{}/status", fz.pid))?;
        if known.contains_key(&ns) {
            continue;
        }
        let pt = tracker.procs.entry(ns).or_default();
        pt.revalidate(fz.pid);
        known.insert(
            ns,
            Known {
                outer: fz.pid,
                base: pt.armed.clone(),
                precopy: false,
                pagemap: None,
                scanned: HashMap::new(),
                growsdown: HashMap::new(),
            },
        );
    }
    // A pid whose process was replaced (exit + new process with the same pid) during the
    // pre-copy: its pre-copies belong to another address space.
    for (fz, _) in &frozen.procs {
        if let Some(k) = known.values_mut().find(|k| k.outer == fz.pid) {
            k.pagemap = File::open(format!("/proc/{}/pagemap", fz.pid)).ok();
        }
    }
    known.retain(|_, k| k.pagemap.is_some());
    for k in known.values_mut().filter(|k| k.precopy) {
        final_scans(k);
    }
    let mut defer = crate::snapshot::DeferSink::new(sink, snapshot);
    let mut ts = TrackingSink {
        inner: &mut defer,
        known: &known,
        rescanned: HashSet::new(),
        stats,
    };
    let captured = capture(&frozen, &mut ts, &KnownHints(&known));
    let (rescanned, mut stats) = (ts.rescanned, ts.stats);
    let captured = captured?;
    let pids: Vec<(i32, i32)> = frozen
        .procs
        .iter()
        .zip(&captured.processes)
        .map(|((fz, _), img)| (fz.pid, img.pid))
        .collect();
    // Still frozen: the instant of the checkpoint is taken for the memory too.
    let snaps = defer.snapshot(&frozen, &pids, init)?;
    // Re-arm every process before it runs again.
    let mut problem = None;
    tracker
        .procs
        .retain(|ns, _| captured.processes.iter().any(|p| p.pid == *ns));
    for ((fz, _), img) in frozen.procs.iter().zip(&captured.processes) {
        let pt = tracker.procs.entry(img.pid).or_default();
        pt.armed.clear();
        let u = match pt.ensure_uffd(fz) {
            Ok(u) => u,
            Err(e) => {
                problem.get_or_insert(e.to_string());
                continue;
            }
        };
        let mut armed = HashMap::new();
        for v in img.vmas.iter().filter(|v| trackable(v)) {
            let k = key(v);
            let ok = rescanned.contains(&(img.pid, k))
                || (u.register_wp(v.start, v.len()).is_ok()
                    && u.write_protect(v.start, v.len()).is_ok());
            if ok {
                armed.insert(k, Runs::from_sorted(v.stored.iter().copied()));
            }
        }
        pt.armed = armed;
    }
    drop(frozen);
    stats.frozen += t.elapsed();
    tracker.unavailable = problem;
    stats.snapshot_fallback = snaps.fallback.clone();
    // The program runs: its memory at the freeze is read from the snapshots.
    stats.frozen += snaps.drain(sink)?;
    tracker.last = stats;
    Ok(captured)
}

#[cfg(test)]
mod tests {
    use super::{changed_ranges, mapping_keys, Runs};

    #[test]
    fn mapping_keys_match_the_parsed_maps() {
        let pid = std::process::id() as i32;
        let keys = mapping_keys(pid);
        let full: Vec<_> = cairn_sys::procfs::read_maps(pid)
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
        let runs = |v: &[(u64, u64)]| Runs::from_sorted(v.iter().copied());
        let written = runs(&[(0, 2 * p)]);
        let before = runs(&[(0, 6 * p)]);
        let now = runs(&[(0, 5 * p), (9 * p, p)]);
        assert_eq!(
            &*changed_ranges(&written, &before, &now),
            &[(0, 2 * p), (5 * p, p), (9 * p, p)]
        );
        assert_eq!(&*changed_ranges(&Runs::new(), &before, &before), &[]);
        assert_eq!(
            &*changed_ranges(&runs(&[(p, p), (2 * p, p)]), &Runs::new(), &Runs::new()),
            &[(p, 2 * p)]
        );
    }
}
