//! Lazy restore ("post-copy") of the large private anonymous mappings of a restored job.
//!
//! An eager restore copies every stored page into the process before it runs again, so the
//! time until the program runs grows with its memory. A lazy restore maps those mappings
//! empty, registers them with a userfaultfd for missing pages and lets the program run at
//! once; this module then brings the pages in behind it:
//!
//! * a **server** thread reads the userfaultfd of every restored address space. A page fault
//!   on a page the checkpoint holds is served at once: the window of the region around it is
//!   read from the source (verified like any other read) and installed with `UFFDIO_COPY`,
//!   which wakes the faulting thread; a fault on a page the checkpoint does not hold gets a
//!   zero page. The address space's own changes arrive as events, read in order with the
//!   faults: `MADV_DONTNEED` and `munmap` drop the pages concerned from what is still to be
//!   restored (the program must then see zeros, or nothing), `mremap` moves them, and a
//!   `fork` hands over a userfaultfd of the child's address space, which gets the same pages
//!   as its parent;
//! * a **filler** thread streams every lazy region from the source (the same parallel,
//!   verified reads as an eager restore) and installs each chunk that is still missing; then
//!   it restores what is left page window by page window (what moved, what a fork copied).
//!
//! When nothing is left, the userfaultfds are closed, which ends every registration: the
//! mappings are ordinary memory again and the next checkpoint may track them. If a read
//! fails (damaged or missing data) after the program resumed, the job is killed at once —
//! it must never run on with a page it should have and does not — and the failure is
//! reported through [`LazyMemory::wait`], so that the caller can restart an older
//! generation. A lazy restore needs a userfaultfd that also catches the kernel's accesses
//! (not `UFFD_USER_MODE_ONLY`) and the fork event: `CAP_SYS_PTRACE`. Without it, or with
//! `CAIRN_LAZY_RESTORE=0`, every mapping is restored eagerly. docs/capture-restore.md, "Lazy restore".

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cairn_image::{MemorySource, Vma};
use cairn_sys::inject::Injector;
use cairn_sys::Result;

use cairn_sys::uffd::{
    self, ioctl, UffdMsg, UffdioCopy, UffdioRange, UffdioRegister, UffdioZeropage, UFFDIO_COPY,
    UFFDIO_REGISTER, UFFDIO_REGISTER_MODE_MISSING, UFFDIO_WAKE, UFFDIO_ZEROPAGE, UFFD_EVENT_FORK,
    UFFD_EVENT_PAGEFAULT, UFFD_EVENT_REMAP, UFFD_EVENT_REMOVE, UFFD_EVENT_UNMAP,
    UFFD_FEATURE_EVENT_FORK, UFFD_FEATURE_EVENT_REMAP, UFFD_FEATURE_EVENT_REMOVE,
    UFFD_FEATURE_EVENT_UNMAP,
};

const PAGE: u64 = 4096;
/// Bytes read around a faulting page (in region offsets, aligned).
const WINDOW: u64 = 64 << 10;
/// Bytes read at a time for what the first pass left (in region offsets, aligned): chunks
/// the store reports as all-zero are left to this pass, so it may cross much of a region.
const LEFTOVER_WINDOW: u64 = 4 << 20;
/// Smallest mapping restored lazily: smaller ones cost little to copy before the program runs.
pub const LAZY_MIN_BYTES: u64 = 1 << 20;

const FEATURES: u64 = UFFD_FEATURE_EVENT_FORK
    | UFFD_FEATURE_EVENT_REMAP
    | UFFD_FEATURE_EVENT_REMOVE
    | UFFD_FEATURE_EVENT_UNMAP;

/// Whether lazy restore is allowed by the environment (`CAIRN_LAZY_RESTORE=0` says no).
pub fn enabled_by_env() -> bool {
    std::env::var("CAIRN_LAZY_RESTORE").map_or(true, |v| v != "0")
}

/// Whether `v` is restored lazily: a private anonymous, writable, not grow-down mapping with
/// at least [`LAZY_MIN_BYTES`] stored.
pub fn lazy_candidate(v: &Vma) -> bool {
    crate::fill::fillable(v)
        && v.prot & libc::PROT_WRITE as u32 != 0
        && !v.growsdown
        && !v.flags.has(cairn_image::VmaFlags::LOCKED)
        && v.stored.iter().map(|r| r.1).sum::<u64>() >= LAZY_MIN_BYTES
}

/// A stored run of a region, where it is now in the address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Piece {
    /// Region index in the image (the source's key, with the image pid).
    index: usize,
    /// Offset of the run in the region.
    src: u64,
    len: u64,
}

/// What one address space still needs. Copies into the space hold `map` for reading;
/// events change it holding it for writing (see [`drain`]).
#[derive(Default)]
struct SpaceState {
    /// Address -> stored run whose pages belong there and have not been dropped by the
    /// program (changed only by events).
    map: BTreeMap<u64, Piece>,
    /// Address ranges (start -> end) of `map` not yet installed.
    pending: Mutex<BTreeMap<u64, u64>>,
    /// The address space is gone (the process exited or called exec).
    gone: AtomicBool,
}

impl SpaceState {
    fn pending(&self) -> MutexGuard<'_, BTreeMap<u64, u64>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes `[a, b)` from `pending`.
    fn unpend(&self, a: u64, b: u64) {
        cut(&mut self.pending(), a, b);
    }

    fn is_gone(&self) -> bool {
        self.gone.load(Ordering::SeqCst)
    }

    fn set_gone(&self) {
        self.gone.store(true, Ordering::SeqCst);
        self.pending().clear();
    }

    /// The pending parts of `[a, b)`.
    fn pending_in(&self, a: u64, b: u64) -> Vec<(u64, u64)> {
        let pending = self.pending();
        let mut out = Vec::new();
        let first = pending.range(..=a).next_back().map(|(&s, _)| s);
        let start = first.unwrap_or(a);
        for (&s, &e) in pending.range(start..) {
            if s >= b {
                break;
            }
            let (x, y) = (s.max(a), e.min(b));
            if x < y {
                out.push((x, y));
            }
        }
        out
    }

    /// Drops `[a, b)` from the map and from pending (the program unmapped it, or discarded its
    /// contents: it must not get the stored pages any more).
    fn drop_range(&mut self, a: u64, b: u64) {
        let keys: Vec<u64> = overlapping(&self.map, a, b);
        for k in keys {
            let Some(p) = self.map.remove(&k) else {
                continue;
            };
            let end = k + p.len;
            if k < a {
                self.map.insert(k, Piece { len: a - k, ..p });
            }
            if end > b {
                self.map.insert(
                    b,
                    Piece {
                        src: p.src + (b - k),
                        len: end - b,
                        ..p
                    },
                );
            }
        }
        self.unpend(a, b);
    }

    /// `mremap` moved `[from, from + len)` to `to`.
    fn remap(&mut self, from: u64, to: u64, len: u64) {
        let mut moved_map = Vec::new();
        for k in overlapping(&self.map, from, from + len) {
            let p = self.map[&k];
            let (a, b) = (k.max(from), (k + p.len).min(from + len));
            moved_map.push((
                a - from + to,
                Piece {
                    src: p.src + (a - k),
                    len: b - a,
                    ..p
                },
            ));
        }
        let moved_pending = self.pending_in(from, from + len);
        self.drop_range(from, from + len);
        // The old range of a move without MREMAP_DONTUNMAP is gone; with it, it reads as
        // zeros: either way nothing stored belongs there now.
        for (a, p) in moved_map {
            self.map.insert(a, p);
        }
        let mut pending = self.pending();
        for (a, b) in moved_pending {
            pending.insert(a - from + to, b - from + to);
        }
    }

    /// The stored run at address `a`: (start address of the piece, piece).
    fn piece_at(&self, a: u64) -> Option<(u64, Piece)> {
        let (&k, &p) = self.map.range(..=a).next_back()?;
        (a < k + p.len).then_some((k, p))
    }
}

/// Keys of `m` whose piece overlaps `[a, b)`.
fn overlapping(m: &BTreeMap<u64, Piece>, a: u64, b: u64) -> Vec<u64> {
    let start = m.range(..=a).next_back().map(|(&k, _)| k).unwrap_or(a);
    m.range(start..b)
        .filter(|(&k, p)| k + p.len > a)
        .map(|(&k, _)| k)
        .collect()
}

/// Removes `[a, b)` from the interval set `set` (start -> end).
fn cut(set: &mut BTreeMap<u64, u64>, a: u64, b: u64) {
    let start = set.range(..=a).next_back().map(|(&s, _)| s).unwrap_or(a);
    let hit: Vec<(u64, u64)> = set
        .range(start..b)
        .filter(|(_, &e)| e > a)
        .map(|(&s, &e)| (s, e))
        .collect();
    for (s, e) in hit {
        set.remove(&s);
        if s < a {
            set.insert(s, a);
        }
        if e > b {
            set.insert(b, e);
        }
    }
}

/// One restored address space: its userfaultfd and what it still needs.
struct Space {
    uffd: OwnedFd,
    /// Pid in the image (with a region index, the source's key).
    pid: i32,
    /// Lazy regions as restored: (index, start address); the filler's first pass.
    regions: Vec<(usize, u64)>,
    st: RwLock<SpaceState>,
}

impl Space {
    fn read(&self) -> RwLockReadGuard<'_, SpaceState> {
        self.st.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, SpaceState> {
        self.st.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// How a lazy restore ended.
#[derive(Clone, Debug, PartialEq)]
pub enum LazyOutcome {
    /// Every page is in place.
    Complete {
        /// From the program's resume to the last page.
        seconds: f64,
        /// Bytes installed (faults and background).
        bytes: u64,
        /// Page faults served.
        faults: u64,
    },
    /// The program ended (or called exec) before every page was in place.
    ProgramGone,
    /// A read failed after the program resumed; the job was killed.
    Failed(String),
}

#[derive(Default)]
struct Status {
    outcome: Option<LazyOutcome>,
}

struct Shared {
    source: Arc<dyn MemorySource + Send + Sync>,
    spaces: Mutex<Vec<Arc<Space>>>,
    /// Wakes the server (eventfd).
    wake: OwnedFd,
    stop: AtomicBool,
    /// The filler found nothing left to do; the server then checks and closes.
    idle: AtomicBool,
    /// The filler's first pass may begin (the program runs).
    go: (Mutex<bool>, Condvar),
    status: (Mutex<Status>, Condvar),
    /// The sandbox's pidfd: SIGKILL when a page cannot be restored.
    killer: Mutex<Option<OwnedFd>>,
    started: Mutex<Option<Instant>>,
    bytes: AtomicU64,
    faults: AtomicU64,
}

impl Shared {
    fn spaces(&self) -> Vec<Arc<Space>> {
        self.spaces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn poke(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to our eventfd.
        let _ = unsafe { libc::write(self.wake.as_raw_fd(), one.as_ptr().cast(), 8) };
    }

    fn finish(&self, o: LazyOutcome) {
        let (m, c) = &self.status;
        let mut st = m.lock().unwrap_or_else(|p| p.into_inner());
        if st.outcome.is_none() {
            st.outcome = Some(o);
        }
        c.notify_all();
    }

    fn finished(&self) -> bool {
        self.status
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .outcome
            .is_some()
    }

    /// A page cannot be restored: kill the job before it runs on without it.
    fn fail(&self, why: String) {
        // The outcome first: whoever sees the job die must find the reason.
        self.finish(LazyOutcome::Failed(why));
        self.kill_job();
        self.stop.store(true, Ordering::SeqCst);
        self.poke();
        self.go_now();
        // Closing the userfaultfds wakes whatever waits on a page (the job is killed; a
        // restore still writing into it fails on the outcome).
        self.spaces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn kill_job(&self) {
        if let Some(fd) = self
            .killer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            // SAFETY: pidfd_send_signal on a pidfd we own, without siginfo.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
        }
    }

    fn go_now(&self) {
        let (m, c) = &self.go;
        *m.lock().unwrap_or_else(|p| p.into_inner()) = true;
        c.notify_all();
    }
}

/// The lazy part of a restore: spaces are added while the job is rebuilt, the background
/// copy starts with [`LazyMemory::resume`], [`LazyMemory::wait`] waits for the end.
pub struct LazyMemory {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl LazyMemory {
    /// A lazy restore reading from `source`; `None` when the environment turns it off.
    pub fn new(source: Arc<dyn MemorySource + Send + Sync>) -> io::Result<Option<LazyMemory>> {
        if !enabled_by_env() {
            return Ok(None);
        }
        // SAFETY: eventfd with flags, returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor owned by nobody else.
        let wake = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Some(LazyMemory {
            shared: Arc::new(Shared {
                source,
                spaces: Mutex::new(Vec::new()),
                wake,
                stop: AtomicBool::new(false),
                idle: AtomicBool::new(false),
                go: (Mutex::new(false), Condvar::new()),
                status: (Mutex::new(Status::default()), Condvar::new()),
                killer: Mutex::new(None),
                started: Mutex::new(None),
                bytes: AtomicU64::new(0),
                faults: AtomicU64::new(0),
            }),
            threads: Mutex::new(Vec::new()),
        }))
    }

    /// Creates, inside the stub `pid`, a userfaultfd able to serve lazy pages and takes it
    /// out. `None` when not permitted (then restore eagerly).
    pub fn open_space(&self, inj: &Injector, pid: i32) -> Result<Option<SpaceHandle>> {
        let flags = (libc::O_CLOEXEC | libc::O_NONBLOCK) as u64;
        Ok(
            uffd::open_in(inj, pid, flags, FEATURES)?.map(|fd| SpaceHandle {
                uffd: Some(fd),
                pieces: Vec::new(),
                regions: Vec::new(),
            }),
        )
    }

    /// Adds a prepared address space of image pid `image_pid`; its faults are served from
    /// now on (the rest of the restore may touch its pages).
    pub fn add_space(&self, image_pid: i32, mut h: SpaceHandle) -> io::Result<()> {
        let Some(uffd) = h.uffd.take() else {
            return Ok(());
        };
        if h.regions.is_empty() {
            return Ok(());
        }
        let mut st = SpaceState::default();
        for (addr, p) in h.pieces.drain(..) {
            st.map.insert(addr, p);
            st.pending().insert(addr, addr + p.len);
        }
        let space = Arc::new(Space {
            uffd,
            pid: image_pid,
            regions: std::mem::take(&mut h.regions),
            st: RwLock::new(st),
        });
        self.shared
            .spaces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(space);
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        if threads.is_empty() {
            let s = self.shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("lazy-server".into())
                    .spawn(move || server(&s))?,
            );
            let s = self.shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("lazy-filler".into())
                    .spawn(move || filler(&s))?,
            );
        } else {
            self.shared.poke();
        }
        Ok(())
    }

    /// Whether any address space is restored lazily.
    pub fn active(&self) -> bool {
        !self
            .shared
            .spaces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// `killer` (a pidfd of the job's sandbox) is signalled with SIGKILL if a page cannot be
    /// restored, from now on. Called as soon as the sandbox exists, before any space is
    /// added: a failure must never leave the job able to run.
    pub fn arm(&self, killer: OwnedFd) {
        *self.shared.killer.lock().unwrap_or_else(|p| p.into_inner()) = Some(killer);
    }

    /// The program runs: the background copy begins.
    pub fn resume(&self) {
        *self
            .shared
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        self.shared.go_now();
    }

    /// The outcome, once there is one.
    pub fn outcome(&self) -> Option<LazyOutcome> {
        self.shared
            .status
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .outcome
            .clone()
    }

    /// Waits until every page is in place (or the restore failed, or the program ended).
    pub fn wait(&self) -> LazyOutcome {
        if !self.active() {
            return LazyOutcome::Complete {
                seconds: 0.0,
                bytes: 0,
                faults: 0,
            };
        }
        let (m, c) = &self.shared.status;
        let mut st = m.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(o) = &st.outcome {
                return o.clone();
            }
            st = c.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Stops the threads. If pages were still missing, the job is killed first: closing the
    /// userfaultfds would otherwise let it read zeros where its data belongs.
    fn shutdown(&self) {
        if self.active() && !self.shared.finished() {
            self.shared.kill_job();
            self.shared
                .finish(LazyOutcome::Failed("the lazy restore was abandoned".into()));
        }
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.poke();
        self.shared.go_now();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
        self.shared
            .spaces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

impl Drop for LazyMemory {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An address space being prepared for a lazy restore (see [`LazyMemory::open_space`]).
pub struct SpaceHandle {
    uffd: Option<OwnedFd>,
    pieces: Vec<(u64, Piece)>,
    regions: Vec<(usize, u64)>,
}

impl SpaceHandle {
    /// Registers mapping `vma` (region `index`, freshly mapped and empty) for lazy pages.
    /// `false` when the kernel refuses (then restore it eagerly).
    pub fn register(&mut self, index: usize, vma: &Vma) -> bool {
        let Some(fd) = &self.uffd else {
            return false;
        };
        let mut r = UffdioRegister {
            start: vma.start,
            len: vma.len(),
            mode: UFFDIO_REGISTER_MODE_MISSING,
            ioctls: 0,
        };
        if ioctl(fd.as_raw_fd(), UFFDIO_REGISTER, &mut r).is_err() {
            return false;
        }
        // UFFDIO_COPY (0x03) and UFFDIO_ZEROPAGE (0x04) must both be there; without them the
        // registration stays and the pages could never be given: refuse the whole space.
        if r.ioctls & (1 << 0x03) == 0 || r.ioctls & (1 << 0x04) == 0 {
            self.uffd = None;
            return false;
        }
        self.regions.push((index, vma.start));
        for &(s, l) in &vma.stored {
            self.pieces.push((
                vma.start + s,
                Piece {
                    index,
                    src: s,
                    len: l,
                },
            ));
        }
        true
    }
}

/// Result of one `UFFDIO_COPY` attempt over a range.
enum Copied {
    /// Every page is in place (installed now, or already there).
    Done(u64),
    /// Not now: the address space is changing (an event not read yet), or the range is not
    /// (wholly) mapped right now. The pages installed so far are reported.
    Later(u64),
    /// The address space is gone.
    Gone,
}

/// `UFFDIO_COPY` of `data` to `dst`, stepping over pages already present.
fn copy_in(uffd: i32, dst: u64, data: &[u8]) -> io::Result<Copied> {
    crate::fill::with_aligned(data, |data| {
        let len = data.len() as u64;
        let (mut done, mut installed) = (0u64, 0u64);
        while done < len {
            let mut c = UffdioCopy {
                dst: dst + done,
                src: data.as_ptr() as u64 + done,
                len: len - done,
                mode: 0,
                copy: 0,
            };
            let r = ioctl(uffd, UFFDIO_COPY, &mut c);
            let n = c.copy.max(0) as u64;
            done += n;
            installed += n;
            match r {
                Ok(_) if n > 0 => {}
                Ok(_) => return Err(io::Error::other("UFFDIO_COPY copied nothing")),
                Err(e) => match e.raw_os_error() {
                    Some(libc::EEXIST) => done += PAGE,
                    Some(libc::EAGAIN) if n > 0 => {}
                    Some(libc::EAGAIN) => return Ok(Copied::Later(installed)),
                    // The range crosses mappings (the program split one), or is not mapped.
                    Some(libc::ENOENT) if len - done > PAGE => {
                        return page_by_page(uffd, dst + done, &data[done as usize..]).map(|c| {
                            match c {
                                Copied::Done(k) => Copied::Done(installed + k),
                                Copied::Later(k) => Copied::Later(installed + k),
                                Copied::Gone => Copied::Gone,
                            }
                        })
                    }
                    Some(libc::ENOENT) => return Ok(Copied::Later(installed)),
                    Some(libc::ESRCH) => return Ok(Copied::Gone),
                    _ => return Err(e),
                },
            }
        }
        Ok(Copied::Done(installed))
    })
}

fn page_by_page(uffd: i32, dst: u64, data: &[u8]) -> io::Result<Copied> {
    let (mut installed, mut later) = (0u64, false);
    for (i, page) in data.chunks(PAGE as usize).enumerate() {
        match copy_in(uffd, dst + i as u64 * PAGE, page)? {
            Copied::Done(n) => installed += n,
            Copied::Later(n) => {
                installed += n;
                later = true;
            }
            Copied::Gone => return Ok(Copied::Gone),
        }
    }
    Ok(if later {
        Copied::Later(installed)
    } else {
        Copied::Done(installed)
    })
}

fn zeropage(uffd: i32, a: u64, len: u64) -> io::Result<()> {
    let mut z = UffdioZeropage {
        range: UffdioRange { start: a, len },
        mode: 0,
        zeropage: 0,
    };
    match ioctl(uffd, UFFDIO_ZEROPAGE, &mut z) {
        Err(e)
            if !matches!(
                e.raw_os_error(),
                Some(libc::EEXIST | libc::ENOENT | libc::ESRCH | libc::EAGAIN)
            ) =>
        {
            Err(e)
        }
        _ => Ok(()),
    }
}

fn wake(uffd: i32, a: u64, len: u64) {
    let mut r = UffdioRange { start: a, len };
    let _ = ioctl(uffd, UFFDIO_WAKE, &mut r);
}

/// Installs the pending parts of `[a, a + data.len())` of `space` from `data` (the bytes
/// that belong there); `st` is held for reading, so no event changes the map meanwhile.
fn install(sh: &Shared, space: &Space, st: &SpaceState, a: u64, data: &[u8]) -> io::Result<()> {
    let b = a + data.len() as u64;
    let zero = |p: &[u8]| p.iter().all(|&v| v == 0);
    for (x, y) in st.pending_in(a, b) {
        let part = &data[(x - a) as usize..(y - a) as usize];
        let pg = PAGE as usize;
        let mut done = true;
        let mut p = 0usize;
        while p < part.len() {
            // All-zero pages are not installed: fresh anonymous memory reads as zeros (a
            // fault there gets the zeros copied; after the end, the kernel's zero page).
            if zero(&part[p..p + pg]) {
                p += pg;
                continue;
            }
            let mut q = p + pg;
            while q < part.len() && !zero(&part[q..q + pg]) {
                q += pg;
            }
            match copy_in(space.uffd.as_raw_fd(), x + p as u64, &part[p..q])? {
                Copied::Done(n) => {
                    sh.bytes.fetch_add(n, Ordering::Relaxed);
                }
                Copied::Later(n) => {
                    sh.bytes.fetch_add(n, Ordering::Relaxed);
                    done = false;
                }
                Copied::Gone => {
                    st.set_gone();
                    return Ok(());
                }
            }
            p = q;
        }
        if done {
            st.unpend(x, y);
        }
    }
    Ok(())
}

/// How long ranges may stay impossible to install with nothing else to do before the lazy
/// restore gives up (and kills the job: it must not run on without its pages).
const STUCK: Duration = Duration::from_secs(60);

/// The filler thread: first pass streams each lazy region, then page windows of what is left.
fn filler(sh: &Arc<Shared>) {
    {
        let (m, c) = &sh.go;
        let mut go = m.lock().unwrap_or_else(|p| p.into_inner());
        while !*go {
            go = c.wait(go).unwrap_or_else(|p| p.into_inner());
        }
    }
    if sh.stop.load(Ordering::SeqCst) {
        return;
    }
    if let Err(e) = first_pass(sh) {
        if !sh.stop.load(Ordering::SeqCst) {
            sh.fail(format!("restoring memory after the program resumed: {e}"));
        }
        return;
    }
    let mut stuck_since: Option<Instant> = None;
    while !sh.stop.load(Ordering::SeqCst) {
        match leftover_pass(sh) {
            Err(e) => {
                if !sh.stop.load(Ordering::SeqCst) {
                    sh.fail(format!("restoring memory after the program resumed: {e}"));
                }
                return;
            }
            Ok(true) => {
                stuck_since = None;
                sh.idle.store(false, Ordering::SeqCst);
            }
            Ok(false) => {
                let left = sh.spaces().iter().any(|s| !s.read().pending().is_empty());
                if left {
                    let t = *stuck_since.get_or_insert_with(Instant::now);
                    if t.elapsed() > STUCK {
                        sh.fail(format!(
                            "pages could not be installed for {} s",
                            STUCK.as_secs()
                        ));
                        return;
                    }
                } else {
                    stuck_since = None;
                }
                // Let the server read what is queued and, if nothing is left, finish.
                sh.idle.store(true, Ordering::SeqCst);
                sh.poke();
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

fn first_pass(sh: &Shared) -> io::Result<()> {
    for space in sh.spaces() {
        for &(index, start) in &space.regions {
            let f = |off: u64, data: Option<&[u8]>| -> io::Result<()> {
                if sh.stop.load(Ordering::Relaxed) {
                    return Err(io::Error::other("stopped"));
                }
                let Some(data) = data else {
                    return Ok(());
                };
                let st = space.read();
                if st.is_gone() {
                    return Ok(());
                }
                let (a, b) = (start + off, start + off + data.len() as u64);
                // Only where the stored run still is at its restored address; what moved is
                // left to the second pass.
                let mut x = a;
                while x < b {
                    match st.piece_at(x) {
                        Some((k, p)) if p.index == index && k.wrapping_sub(p.src) == start => {
                            let y = (k + p.len).min(b);
                            install(
                                sh,
                                &space,
                                &st,
                                x,
                                &data[(x - a) as usize..(y - a) as usize],
                            )?;
                            x = y;
                        }
                        _ => x += PAGE,
                    }
                }
                Ok(())
            };
            match sh.source.for_each_chunk(space.pid, index, &f) {
                Ok(()) => {}
                Err(_) if sh.stop.load(Ordering::SeqCst) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Every range still pending, window by window; `Ok(true)` when something was installed.
fn leftover_pass(sh: &Shared) -> io::Result<bool> {
    let mut progress = false;
    for space in sh.spaces() {
        // Ranges tried in this pass that could not be installed now.
        let mut skip_below = 0u64;
        loop {
            if sh.stop.load(Ordering::SeqCst) {
                return Ok(progress);
            }
            let job = {
                let st = space.read();
                if st.is_gone() {
                    break;
                }
                let pending = st.pending().clone();
                pending.range(skip_below..).find_map(|(&s, &e)| {
                    let (k, p) = st.piece_at(s)?;
                    let src = p.src + (s - k);
                    let w_end = (src / LEFTOVER_WINDOW + 1) * LEFTOVER_WINDOW;
                    let end = e.min(k + p.len).min(s + (w_end - src));
                    Some((s, end, p.index, src))
                })
            };
            let Some((a, b, index, src)) = job else {
                break;
            };
            let mut data = vec![0u8; (b - a) as usize];
            sh.source.read_range(space.pid, index, src, &mut data)?;
            let st = space.read();
            let same = st
                .piece_at(a)
                .is_some_and(|(k, p)| p.index == index && p.src + (a - k) == src);
            if same {
                let before = st.pending_in(a, b);
                install(sh, &space, &st, a, &data)?;
                if st.pending_in(a, b) != before {
                    progress = true;
                }
            }
            skip_below = b;
        }
    }
    Ok(progress)
}

/// The server thread: faults and events of every address space, and the end.
fn server(sh: &Arc<Shared>) {
    loop {
        if sh.stop.load(Ordering::SeqCst) {
            return;
        }
        let spaces = sh.spaces();
        let mut fds: Vec<libc::pollfd> = std::iter::once(sh.wake.as_raw_fd())
            .chain(spaces.iter().map(|s| s.uffd.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a live array of pollfd of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
        if n < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            sh.fail(format!(
                "waiting for page faults: {}",
                io::Error::last_os_error()
            ));
            return;
        }
        if fds[0].revents != 0 {
            let mut b = [0u8; 8];
            // SAFETY: reads at most 8 bytes into a live buffer.
            let _ = unsafe { libc::read(sh.wake.as_raw_fd(), b.as_mut_ptr().cast(), 8) };
        }
        for (space, p) in spaces.iter().zip(&fds[1..]) {
            if p.revents & libc::POLLIN != 0 {
                if let Err(e) = drain(sh, space) {
                    sh.fail(format!(
                        "serving a page fault after the program resumed: {e}"
                    ));
                    return;
                }
            }
        }
        if sh.idle.load(Ordering::SeqCst) && try_finish(sh) {
            return;
        }
    }
}

/// The filler found nothing left: reads whatever is queued; if that brought no new work,
/// every page is in place and the userfaultfds are closed. Whether it finished.
fn try_finish(sh: &Shared) -> bool {
    for space in &sh.spaces() {
        if let Err(e) = drain(sh, space) {
            sh.fail(format!(
                "serving a page fault after the program resumed: {e}"
            ));
            return true;
        }
    }
    let spaces = sh.spaces();
    let left = spaces.iter().any(|s| !s.read().pending().is_empty());
    if left || !sh.idle.load(Ordering::SeqCst) {
        return false;
    }
    let all_gone = spaces.iter().all(|s| s.read().is_gone());
    let seconds = sh
        .started
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .map_or(0.0, |t| t.elapsed().as_secs_f64());
    drop(spaces);
    sh.stop.store(true, Ordering::SeqCst);
    // Closing the userfaultfds ends every registration (the filler holds no space now: it
    // only sleeps while idle).
    sh.spaces.lock().unwrap_or_else(|p| p.into_inner()).clear();
    sh.finish(if all_gone {
        LazyOutcome::ProgramGone
    } else {
        LazyOutcome::Complete {
            seconds,
            bytes: sh.bytes.load(Ordering::Relaxed),
            faults: sh.faults.load(Ordering::Relaxed),
        }
    });
    true
}

/// Reads and handles every message queued on `space`'s userfaultfd.
fn drain(sh: &Shared, space: &Arc<Space>) -> io::Result<()> {
    loop {
        let mut msg = UffdMsg {
            event: 0,
            reserved: [0; 7],
            arg: [0; 3],
        };
        // Events change the map: read them holding it for writing, so that no copy falls
        // between the kernel's release of the event and the change here.
        let mut st = space.write();
        // SAFETY: reads at most one uffd_msg into a live, properly sized struct.
        let r = unsafe {
            libc::read(
                space.uffd.as_raw_fd(),
                (&mut msg as *mut UffdMsg).cast(),
                std::mem::size_of::<UffdMsg>(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => Ok(()),
                _ => Err(e),
            };
        }
        if r == 0 {
            return Ok(());
        }
        match msg.event {
            UFFD_EVENT_PAGEFAULT => {
                drop(st);
                let addr = msg.arg[1] & !(PAGE - 1);
                sh.faults.fetch_add(1, Ordering::Relaxed);
                fault(sh, space, addr)?;
            }
            UFFD_EVENT_FORK => {
                // SAFETY: the kernel installed this descriptor in our table for us.
                let fd = unsafe { OwnedFd::from_raw_fd(msg.arg[0] as u32 as i32) };
                // The child gets every stored page its parent still should have: those the
                // parent had at the fork are present in the child already (EEXIST).
                let child = SpaceState {
                    map: st.map.clone(),
                    pending: Mutex::new(st.map.iter().map(|(&a, p)| (a, a + p.len)).collect()),
                    gone: AtomicBool::new(false),
                };
                drop(st);
                sh.spaces
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Arc::new(Space {
                        uffd: fd,
                        pid: space.pid,
                        regions: Vec::new(),
                        st: RwLock::new(child),
                    }));
                sh.idle.store(false, Ordering::SeqCst);
            }
            UFFD_EVENT_REMAP => st.remap(msg.arg[0], msg.arg[1], msg.arg[2]),
            UFFD_EVENT_REMOVE | UFFD_EVENT_UNMAP => st.drop_range(msg.arg[0], msg.arg[1]),
            _ => {}
        }
    }
}

/// Serves a fault at page `addr` of `space` (only the server changes the map, and it is
/// here: what it reads stays true until it returns).
fn fault(sh: &Shared, space: &Space, addr: u64) -> io::Result<()> {
    let fd = space.uffd.as_raw_fd();
    let found = space.read().piece_at(addr);
    let Some((k, p)) = found else {
        // Not a stored page (or one the program dropped): it reads as zeros.
        let r = zeropage(fd, addr, PAGE);
        wake(fd, addr, PAGE);
        return r;
    };
    let src = p.src + (addr - k);
    let w0 = (src / WINDOW * WINDOW).max(p.src);
    let w1 = ((src / WINDOW + 1) * WINDOW).min(p.src + p.len);
    let a = k + (w0 - p.src);
    let mut data = vec![0u8; (w1 - w0) as usize];
    sh.source.read_range(space.pid, p.index, w0, &mut data)?;
    let st = space.read();
    // The faulting page itself whatever the bookkeeping says (a fork child's page copied
    // into the parent after the fork is pending in neither): EEXIST is fine.
    let x = (addr - a) as usize;
    match copy_in(fd, addr, &data[x..x + PAGE as usize])? {
        Copied::Done(n) => {
            sh.bytes.fetch_add(n, Ordering::Relaxed);
            st.unpend(addr, addr + PAGE);
        }
        Copied::Later(_) => {}
        Copied::Gone => st.set_gone(),
    }
    if !st.is_gone() {
        install(sh, space, &st, a, &data)?;
    }
    drop(st);
    wake(fd, addr, PAGE);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(index: usize, src: u64, len: u64) -> Piece {
        Piece { index, src, len }
    }

    #[test]
    fn cut_splits_and_removes_intervals() {
        let mut s = BTreeMap::from([(0, 100), (200, 300)]);
        cut(&mut s, 50, 250);
        assert_eq!(s, BTreeMap::from([(0, 50), (250, 300)]));
        cut(&mut s, 0, 1000);
        assert!(s.is_empty());
        let mut s = BTreeMap::from([(0, 100)]);
        cut(&mut s, 10, 20);
        assert_eq!(s, BTreeMap::from([(0, 10), (20, 100)]));
    }

    #[test]
    fn dropped_ranges_leave_the_map_and_pending() {
        let mut st = SpaceState::default();
        st.map.insert(0x1000, piece(3, 0, 0x4000));
        st.pending().insert(0x1000, 0x5000);
        st.drop_range(0x2000, 0x3000);
        assert_eq!(st.piece_at(0x1000), Some((0x1000, piece(3, 0, 0x1000))));
        assert_eq!(st.piece_at(0x2000), None);
        assert_eq!(
            st.piece_at(0x3000),
            Some((0x3000, piece(3, 0x2000, 0x2000)))
        );
        assert_eq!(
            st.pending_in(0, 0x10000),
            vec![(0x1000, 0x2000), (0x3000, 0x5000)]
        );
    }

    #[test]
    fn remap_moves_the_stored_pages_and_what_is_pending() {
        let mut st = SpaceState::default();
        st.map.insert(0x10000, piece(1, 0x1000, 0x4000));
        st.pending().insert(0x10000, 0x12000);
        st.pending().insert(0x13000, 0x14000);
        // Move the middle two pages to 0x80000.
        st.remap(0x11000, 0x80000, 0x2000);
        assert_eq!(
            st.piece_at(0x10000),
            Some((0x10000, piece(1, 0x1000, 0x1000)))
        );
        assert_eq!(st.piece_at(0x11000), None);
        assert_eq!(
            st.piece_at(0x80000),
            Some((0x80000, piece(1, 0x2000, 0x2000)))
        );
        assert_eq!(
            st.piece_at(0x13000),
            Some((0x13000, piece(1, 0x4000, 0x1000)))
        );
        assert_eq!(
            st.pending_in(0, u64::MAX),
            vec![(0x10000, 0x11000), (0x13000, 0x14000), (0x80000, 0x81000)]
        );
    }
}
