//! Copy-on-write snapshots (docs/snapshot.md): the memory of a checkpoint is read after the
//! program runs again, from a stopped clone of each process made at the instant of the freeze.
//!
//! While the tree is frozen, capture records every private mapping's region instead of
//! reading it ([`DeferSink`]); then a `clone()` without `CLONE_VM` is injected into each
//! process that has such regions ([`DeferSink::snapshot`]). The kernel gives the clone a
//! copy-on-write copy of the address space: from then on the clone's memory *is* the
//! process's memory at the freeze, whatever the program writes. The clone shares the
//! program's descriptor table (`CLONE_FILES`: it holds no extra reference to any file), has
//! exit signal 0 (its parent gets no SIGCHLD, and waits without `__WALL`/`__WCLONE` never see
//! it) and is attached to cairn at birth (`CLONE_PTRACE`, with `PTRACE_O_EXITKILL`: if cairn
//! dies, it dies), so it never runs one instruction. After the tree is thawed,
//! [`Snapshots::drain`] reads the recorded regions from the clones into the sink, then every
//! clone is killed and reaped: cairn collects its exit as tracer, and the process that made
//! it — frozen again for a moment, so that none of its own waits can see the exit — reaps it
//! with an injected `wait4(__WALL)`. Regions a clone does not hold as a snapshot (shared
//! mappings, `MADV_DONTFORK`, `MADV_WIPEONFORK`), and every region of a process whose clone
//! cannot be made (pid limits, seccomp, memory), are read while frozen, as before.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::time::{Duration, Instant};

use cairn_image::{MemorySink, RegionSource, Vma, VmaFlags};
use cairn_sys::error::{Error, Result};
use cairn_sys::freeze::Frozen;
use cairn_sys::inject::{self, Injector};
use cairn_sys::procfs;
use cairn_sys::ptrace::{self, BLOCK_ALL};

use crate::checkpoint::read_stored;
use crate::tree::FrozenTree;

/// Environment variable that turns copy-on-write snapshots off when set to `0` (memory is
/// then read while the program is frozen).
pub const ENV_SWITCH: &str = "CAIRN_SNAPSHOT";

/// True unless the environment sets `CAIRN_SNAPSHOT=0`.
pub fn enabled_by_env() -> bool {
    std::env::var(ENV_SWITCH).map_or(true, |v| v.trim() != "0")
}

/// Whether a clone of the process holds mapping `v` as it is at the clone: private and
/// neither `MADV_DONTFORK` (absent in the clone) nor `MADV_WIPEONFORK` (zero in the clone).
/// Shared mappings are the same pages in both, not a snapshot.
pub fn snapshottable(v: &Vma) -> bool {
    !v.shared && !v.flags.has(VmaFlags::DONTFORK) && !v.flags.has(VmaFlags::WIPEONFORK)
}

/// A region whose reading waits for the snapshot.
struct Deferred {
    /// Pid inside the job.
    pid: i32,
    index: usize,
    vma: Vma,
    changed: Option<Vec<(u64, u64)>>,
}

/// A sink wrapper used while the tree is frozen: regions of snapshottable mappings are
/// recorded for [`Snapshots::drain`], everything else goes to the sink at once.
pub struct DeferSink<'a> {
    inner: &'a mut dyn MemorySink,
    on: bool,
    deferred: Vec<Deferred>,
}

impl<'a> DeferSink<'a> {
    /// Defers snapshottable regions when `on`; passes everything through otherwise.
    pub fn new(inner: &'a mut dyn MemorySink, on: bool) -> Self {
        DeferSink {
            inner,
            on,
            deferred: Vec::new(),
        }
    }
}

impl MemorySink for DeferSink<'_> {
    fn put_region(
        &mut self,
        pid: i32,
        index: usize,
        len: u64,
        source: RegionSource<'_>,
    ) -> io::Result<()> {
        self.inner.put_region(pid, index, len, source)
    }

    fn put_vma(
        &mut self,
        pid: i32,
        index: usize,
        vma: &Vma,
        changed: Option<&[(u64, u64)]>,
        source: RegionSource<'_>,
    ) -> io::Result<()> {
        if !self.on || !snapshottable(vma) {
            return self.inner.put_vma(pid, index, vma, changed, source);
        }
        self.deferred.push(Deferred {
            pid,
            index,
            vma: vma.clone(),
            changed: changed.map(<[_]>::to_vec),
        });
        Ok(())
    }

    fn put_vma_precopied(
        &mut self,
        pid: i32,
        index: usize,
        vma: &Vma,
        changed: Option<&[(u64, u64)]>,
        source: RegionSource<'_>,
    ) -> io::Result<()> {
        self.inner
            .put_vma_precopied(pid, index, vma, changed, source)
    }

    fn put_file(&mut self, pid: i32, fd: i32, data: &mut dyn io::Read) -> io::Result<()> {
        self.inner.put_file(pid, fd, data)
    }
}

/// A stopped copy-on-write clone of one process of the job.
struct Clone {
    /// Outer pid of the process that made it.
    parent: i32,
    /// Made with `CLONE_PARENT` by the top process: a child of the job's init, which reaps it.
    init_child: bool,
    /// Its pid as the parent sees it (inside the job).
    inner: i32,
    /// Its outer pid.
    outer: i32,
    mem: File,
}

/// The clones made at one freeze and the regions to read from them.
pub struct Snapshots {
    /// Outer pid of the clone to read from, by pid inside the job.
    from: HashMap<i32, usize>,
    clones: Vec<Clone>,
    deferred: Vec<Deferred>,
    /// Why a process's memory was read while frozen, if one's clone could not be made.
    pub fallback: Option<String>,
    /// Time the program was frozen to reap the clones.
    pub reap_frozen: Duration,
}

impl DeferSink<'_> {
    /// While `frozen` is still frozen: makes a clone of every process with deferred regions;
    /// a process whose clone cannot be made has its regions read now, frozen. `inner_pids`
    /// maps each frozen process's outer pid to its pid inside the job; `init` is the outer pid
    /// of the job's init.
    pub fn snapshot(
        self,
        frozen: &FrozenTree,
        inner_pids: &[(i32, i32)],
        init: i32,
    ) -> Result<Snapshots> {
        let DeferSink {
            inner: sink,
            deferred,
            ..
        } = self;
        let mut snaps = Snapshots {
            from: HashMap::new(),
            clones: Vec::new(),
            deferred: Vec::new(),
            fallback: None,
            reap_frozen: Duration::ZERO,
        };
        let mut by_pid: HashMap<i32, Vec<Deferred>> = HashMap::new();
        for d in deferred {
            by_pid.entry(d.pid).or_default().push(d);
        }
        let made = (|| -> Result<()> {
            for (fz, _) in &frozen.procs {
                let Some(&(_, ns)) = inner_pids.iter().find(|(o, _)| *o == fz.pid) else {
                    continue;
                };
                let Some(regions) = by_pid.remove(&ns) else {
                    continue;
                };
                // The clone's cost is copying the page tables of all of the process's
                // memory, reading costs tens of times more per byte: when tracking says
                // little changed, reading it now is the shorter freeze.
                let to_read: u64 = regions.iter().map(bytes_to_read).sum();
                let resident: u64 = regions.iter().map(|d| d.vma.stored_bytes()).sum();
                let clone = (to_read.saturating_mul(CLONE_RATIO) >= resident)
                    .then(|| clone_process(fz, init));
                match clone {
                    None => {
                        let mem = open_mem(fz.pid)?;
                        for d in &regions {
                            put(sink, fz.pid, &mem, d)?;
                        }
                    }
                    Some(Ok(c)) => {
                        snaps.from.insert(ns, snaps.clones.len());
                        snaps.clones.push(c);
                        snaps.deferred.extend(regions);
                    }
                    Some(Err(e)) => {
                        snaps.fallback.get_or_insert_with(|| {
                            format!(
                                "process {ns}: no copy-on-write snapshot ({e}); memory read \
                                 while frozen"
                            )
                        });
                        let mem = open_mem(fz.pid)?;
                        for d in &regions {
                            put(sink, fz.pid, &mem, d)?;
                        }
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = made {
            // Their makers are still frozen (by `frozen`): reap the clones through it.
            for c in std::mem::take(&mut snaps.clones) {
                // SAFETY: kill sends a signal; no memory is involved.
                unsafe { libc::kill(c.outer, libc::SIGKILL) };
                kill_traced(c.outer);
                if let Some((fz, _)) = frozen.procs.iter().find(|(f, _)| f.pid == c.parent) {
                    if !c.init_child {
                        let _ = injecting(fz, |inj| wait4(inj, c.inner));
                    }
                }
            }
            return Err(e);
        }
        // Regions of processes not in the tree (cannot happen: capture only sees frozen ones).
        if let Some(ns) = by_pid.keys().next() {
            return Err(Error::Parse(format!(
                "memory of process {ns} deferred but the process is not frozen"
            )));
        }
        Ok(snaps)
    }
}

/// A process gets a clone only when the bytes to read are at least 1/`CLONE_RATIO` of its
/// private resident memory: the fork copies one page-table entry per resident page, a read
/// copies (and the sink hashes) the whole page, tens of times the work per page.
const CLONE_RATIO: u64 = 32;

/// Bytes of a deferred region that will be read: its changed ranges when tracking knows
/// them, else its stored runs.
fn bytes_to_read(d: &Deferred) -> u64 {
    match &d.changed {
        Some(c) => c.iter().map(|r| r.1).sum(),
        None => d.vma.stored_bytes(),
    }
}

fn open_mem(pid: i32) -> Result<File> {
    let path = format!("/proc/{pid}/mem");
    File::open(&path).map_err(cairn_sys::error::io_ctx(format!("opening {path}")))
}

fn put(sink: &mut dyn MemorySink, outer: i32, mem: &File, d: &Deferred) -> Result<()> {
    let vma = &d.vma;
    let src = |off: u64, buf: &mut [u8]| -> io::Result<()> {
        read_stored(outer, mem, vma.start, &vma.stored, off, buf)
    };
    sink.put_vma(d.pid, d.index, vma, d.changed.as_deref(), &src)
        .map_err(cairn_sys::error::io_ctx(format!(
            "saving memory {:x}-{:x} of process {}",
            vma.start, vma.end, d.pid
        )))
}

impl Snapshots {
    /// Whether any clone was made.
    pub fn is_empty(&self) -> bool {
        self.clones.is_empty()
    }

    /// With the tree running: reads every deferred region from its clone into `sink`, then
    /// kills and reaps the clones (also when reading fails).
    pub fn drain(mut self, sink: &mut dyn MemorySink) -> Result<Duration> {
        let r = (|| -> Result<()> {
            for d in &self.deferred {
                let c = self
                    .from
                    .get(&d.pid)
                    .and_then(|&i| self.clones.get(i))
                    .ok_or_else(|| Error::Parse(format!("no snapshot of process {}", d.pid)))?;
                put(sink, c.outer, &c.mem, d)?;
            }
            Ok(())
        })();
        self.release();
        r.map(|_| self.reap_frozen)
    }

    /// Kills and reaps every clone (see the module's documentation).
    fn release(&mut self) {
        for c in std::mem::take(&mut self.clones) {
            self.reap_frozen += reap(&c);
        }
    }
}

impl Drop for Snapshots {
    fn drop(&mut self) {
        self.release();
    }
}

/// Runs `f` with an injector on the first thread of frozen `fz`, all signals blocked, and
/// puts the thread back as it was (syscall restart as capture does).
fn injecting<T>(fz: &Frozen, f: impl FnOnce(&Injector) -> Result<T>) -> Result<T> {
    let tid = fz.tids[0];
    let regs = ptrace::get_regs(tid)?;
    let mask = ptrace::get_sigmask(tid)?;
    ptrace::set_sigmask(tid, BLOCK_ALL)?;
    let made = inject::find_vdso_syscall(fz.pid)
        .and_then(|sys| Injector::new(tid, sys))
        .and_then(|inj| f(&inj));
    let regs = cairn_sys::interrupted::note_restart(tid, regs);
    let put_back = ptrace::set_regs(tid, &cairn_sys::interrupted::resume_regs(&regs, true))
        .and_then(|_| ptrace::set_sigmask(tid, mask));
    let out = made?;
    put_back?;
    Ok(out)
}

/// Makes the stopped copy-on-write clone of frozen process `fz` (see the module's
/// documentation).
fn clone_process(fz: &Frozen, init: i32) -> Result<Clone> {
    let tid = fz.tids[0];
    // A seccomp filter may kill the process for a clone it never made itself.
    let seccomp = procfs::status_field(&format!("/proc/{}/status", fz.pid), "Seccomp")?;
    if seccomp.trim() != "0" {
        return Err(Error::Unsupported(format!(
            "it runs under seccomp (mode {}), which may forbid clone",
            seccomp.trim()
        )));
    }
    // A child of the job's init (the top process) makes its clone a sibling (`CLONE_PARENT`):
    // the init reaps it, without freezing the program again. Its exit signal is then the
    // maker's (SIGCHLD), sent to the init, never to the program.
    let ppid = procfs::stat_field(&procfs::read_stat(fz.pid)?, 4)?;
    let init_child = ppid == init as u64;
    // The clone inherits its maker's ptrace state: attached to this thread, stopped before
    // it runs, and killed if cairn exits. The maker itself keeps its usual options.
    ptrace::set_options(tid, ptrace::O_TRACESYSGOOD | ptrace::O_EXITKILL)?;
    let mut flags = (libc::CLONE_FILES | libc::CLONE_PTRACE) as u64;
    if init_child {
        flags |= libc::CLONE_PARENT as u64;
    }
    let made = injecting(fz, |inj| {
        inj.call("clone", libc::SYS_clone, &[flags, 0, 0, 0, 0])
    });
    let opts = ptrace::set_options(tid, ptrace::O_TRACESYSGOOD);
    let inner = made? as i32;
    let maker = if init_child { init } else { fz.pid };
    let found = procfs::children_of(maker)?
        .into_iter()
        .find(|&c| procfs::inner_pid(&format!("/proc/{c}/status")).is_ok_and(|p| p == inner));
    let Some(outer) = found else {
        return Err(Error::Parse(format!(
            "the clone {inner} of process {} is not among its children",
            fz.pid
        )));
    };
    let clone = (|| -> Result<Clone> {
        opts?;
        // Its first stop (PTRACE_EVENT_STOP of a seized tracee), before any instruction.
        ptrace::wait_stop(outer)?;
        Ok(Clone {
            parent: fz.pid,
            init_child,
            inner,
            outer,
            mem: open_mem(outer)?,
        })
    })();
    if clone.is_err() {
        kill_traced(outer);
        if !init_child {
            let _ = injecting(fz, |inj| wait4(inj, inner));
        }
    }
    clone
}

/// SIGKILL a clone and collect its exit as its tracer; it is then a zombie of its parent.
fn kill_traced(outer: i32) {
    // SAFETY: kill sends a signal; no memory is involved.
    unsafe { libc::kill(outer, libc::SIGKILL) };
    loop {
        let mut status = 0;
        // SAFETY: waitpid on one specific pid; writes one int.
        let r = unsafe { libc::waitpid(outer, &mut status, libc::__WALL) };
        if r < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            return;
        }
    }
}

/// Waits until traced process `outer` is a zombie, without collecting it.
fn wait_zombie(outer: i32) {
    loop {
        // SAFETY: waitid writes one siginfo_t into `info`.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above; P_PID names one process.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                outer as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT | libc::__WALL,
            )
        };
        if r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// Reaps child `inner` from inside the process of `inj`.
fn wait4(inj: &Injector, inner: i32) -> Result<()> {
    let r = inj.raw(libc::SYS_wait4, &[inner as u64, 0, libc::__WALL as u64, 0])?;
    // ECHILD: no longer its child (its maker exited, the job's init reaps it).
    if r < 0 && r != -(libc::ECHILD as i64) {
        return Err(Error::Injected {
            name: "wait4",
            tid: inj.tid(),
            source: io::Error::from_raw_os_error(-r as i32),
        });
    }
    Ok(())
}

/// Kills clone `c` and has its parent reap it, the parent frozen meanwhile so that none of
/// its own waits (`__WALL`) can see the exit. If the parent is gone, the clone was adopted by
/// the job's init, which reaps it. Best effort. Returns how long the parent was frozen.
fn reap(c: &Clone) -> Duration {
    // Killed and torn down (its address space freed) while the program runs: a zombie
    // tracee is visible to its tracer only, until the tracer collects it.
    // SAFETY: kill sends a signal; no memory is involved.
    unsafe { libc::kill(c.outer, libc::SIGKILL) };
    wait_zombie(c.outer);
    if c.init_child {
        kill_traced(c.outer);
        return Duration::ZERO;
    }
    let t = Instant::now();
    let frozen = Frozen::freeze(c.parent);
    kill_traced(c.outer);
    if let Ok(fz) = &frozen {
        let _ = injecting(fz, |inj| wait4(inj, c.inner));
    }
    drop(frozen);
    t.elapsed()
}
