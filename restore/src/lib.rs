//! Rebuilding processes from a `ProcessImage` by ptrace-driven syscall injection.
//!
//! [`restore`] starts a new sandbox whose init creates a stub with the image's pid; the stub
//! installs descriptors, cwd and umask and waits. The caller (the tracer) then seizes it and,
//! by injecting syscalls through a scratch page, replaces its memory with the image's,
//! restores kernel state, recreates the threads with their tids, and lets the program run.
//! All ptrace work happens on the calling thread.

#![warn(missing_docs)]

pub mod attrs;
pub mod compat;
pub mod cow;
pub mod fill;
pub mod lazy;
pub mod memory;
pub mod plan;
pub mod stub;

pub use cairn_kinds::inet::set_adopt_addresses;
use cairn_kinds::{Recreated, JOB_KINDS};

use cairn_image::{
    MemorySource, ProcessImage, ProcessTreeImage, ThreadImage, IMAGE_FORMAT, IMAGE_FORMAT_OLDEST,
};
use cairn_sys::error::{io_ctx, last_os};
use cairn_sys::inject::{self, Injector};
use cairn_sys::interrupted::resume_regs;
use cairn_sys::procfs;
use cairn_sys::ptrace::BLOCK_ALL;
use cairn_sys::ptrace::{self, Stop};
use cairn_sys::sandbox::CLONE_ARGS_SIZE;
use cairn_sys::{ChildSpec, Error, Result, Sandbox};
use std::io::Read;
use std::os::fd::AsRawFd;

const PAGE: u64 = 4096;
const SCRATCH_LEN: u64 = 16 * PAGE;
/// Top of the x86_64 user address space with 4-level paging.
const TASK_SIZE: u64 = 0x7fff_ffff_f000;
const ARCH_MAP_VDSO_64: u64 = 0x2003;
const PR_SET_MM: u64 = 35;
const PR_SET_MM_MAP: u64 = 14;
const PR_SET_NAME: u64 = 15;
const RSEQ_FLAG_UNREGISTER: u64 = 1;
/// Offsets inside the scratch page.
const ARG: u64 = 1024;
const STR: u64 = 8192;
/// The attributes' part of the scratch area ([`attrs`]).
const ATTRS: u64 = 3 * PAGE;

/// Options of [`restore_with`].
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Descriptors that terminal/pipe stdin, stdout and stderr of the program are re-attached
    /// to (default: the restoring process's own 0, 1, 2).
    pub stdio: Option<[i32; 3]>,
}

/// Rebuild the job of `image` in a new sandbox, memory coming from `source`, and let it run.
pub fn restore(image: &ProcessTreeImage, source: &dyn MemorySource) -> Result<Sandbox> {
    restore_with(image, source, &RestoreOptions::default())
}

/// [`restore`] with options.
pub fn restore_with(
    image: &ProcessTreeImage,
    source: &dyn MemorySource,
    opts: &RestoreOptions,
) -> Result<Sandbox> {
    restore_inner(image, source, opts, None)
}

/// [`restore_with`], restoring the large private anonymous mappings lazily where the kernel
/// allows it ([`lazy`]): the program runs again before their pages are in place. The
/// [`LazyMemory`](lazy::LazyMemory) (`None` when everything was restored eagerly) brings
/// them in; it must be kept until [`lazy::LazyMemory::wait`] returns — dropping it early
/// kills the job.
pub fn restore_lazy(
    image: &ProcessTreeImage,
    source: std::sync::Arc<dyn MemorySource + Send + Sync>,
    opts: &RestoreOptions,
) -> Result<(Sandbox, Option<lazy::LazyMemory>)> {
    let lazy =
        lazy::LazyMemory::new(source.clone()).map_err(io_ctx("starting the lazy restore"))?;
    let sb = restore_inner(image, source.as_ref(), opts, lazy.as_ref())?;
    match lazy {
        Some(l) if l.active() => {
            l.resume();
            Ok((sb, Some(l)))
        }
        _ => Ok((sb, None)),
    }
}

fn restore_inner(
    image: &ProcessTreeImage,
    source: &dyn MemorySource,
    opts: &RestoreOptions,
    lazy: Option<&lazy::LazyMemory>,
) -> Result<Sandbox> {
    if !(IMAGE_FORMAT_OLDEST..=IMAGE_FORMAT).contains(&image.format) {
        return Err(Error::Incompatible(format!(
            "image format {} (this cairn reads {IMAGE_FORMAT_OLDEST} to {IMAGE_FORMAT})",
            image.format
        )));
    }
    let Some(root) = image.processes.first() else {
        return Err(Error::Incompatible("the image has no process".into()));
    };
    for p in &image.processes {
        compat::check(p)?;
    }
    let mut kinds = JOB_KINDS
        .iter()
        .map(|k| (k.recreate)(image, source))
        .collect::<Result<Vec<_>>>()?;
    let mut fds: Vec<stub::PreparedFds> = Vec::with_capacity(image.processes.len());
    for p in &image.processes {
        let earlier: Vec<(i32, &stub::PreparedFds)> =
            image.processes.iter().map(|q| q.pid).zip(&fds).collect();
        let prepared = stub::prepare_fds(p, source, opts.stdio, &kinds, &earlier)?;
        fds.push(prepared);
    }
    for k in &mut kinds {
        k.descriptors_taken();
    }
    // Pool descriptors and the ready pipe live above every target descriptor of the tree.
    let high = image
        .processes
        .iter()
        .flat_map(|p| p.fds.iter().map(|f| f.fd))
        .max()
        .unwrap_or(2)
        .max(2)
        + 1;
    for f in &mut fds {
        f.raise(high)?;
    }
    let shm = shared_memory(image, high, &kinds)?;
    let shm_fds: std::collections::HashMap<u64, i32> =
        shm.iter().map(|(id, fd)| (*id, fd.as_raw_fd())).collect();
    let mut pipe = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(last_os("pipe2"));
    }
    // SAFETY: both ends are fresh descriptors we own.
    let (ready_r, ready_w) = unsafe {
        use std::os::fd::FromRawFd;
        (
            std::fs::File::from_raw_fd(pipe[0]),
            std::os::fd::OwnedFd::from_raw_fd(pipe[1]),
        )
    };
    // SAFETY: F_DUPFD_CLOEXEC duplicates our own descriptor.
    let w = unsafe { libc::fcntl(pipe[1], libc::F_DUPFD_CLOEXEC, high) };
    if w < 0 {
        return Err(last_os("moving the ready pipe"));
    }
    let ready_w = {
        drop(ready_w);
        // SAFETY: `w` is a fresh descriptor owned by us.
        unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(w) }
    };
    let groups = group_pipes(image, high)?;
    let group_fds: Vec<(usize, i32, i32)> = groups
        .iter()
        .map(|(i, r, w)| (*i, r.as_raw_fd(), w.as_raw_fd()))
        .collect();
    let mut plan = plan::TreePlan::new(
        &image.processes,
        &image.zombies,
        image.launched_exit,
        &fds,
        high,
        w,
        &group_fds,
    )?;
    plan.keep = shm_fds.values().copied().collect();
    plan.keep.sort_unstable();
    let (mut stages, stage_plans) = cow::Stages::plan(image, high)?;
    let mut stage_plans = stage_plans;
    for node in plan.nodes.iter_mut() {
        node.stage = node.process.and_then(|i| stage_plans[i].take());
    }
    let run = || plan.run(0);
    let mut keep: Vec<i32> = fds.iter().flat_map(|f| f.map.iter().map(|m| m.0)).collect();
    keep.push(w);
    keep.extend(shm_fds.values());
    keep.extend(group_fds.iter().flat_map(|g| [g.1, g.2]));
    keep.extend(stages.keep());
    let mut sb = Sandbox::launch_with(ChildSpec::Custom {
        set_tid: plan.nodes[0].pid,
        keep_fds: keep,
        run: &run,
        clocks: root.clocks,
        launched_exit: image.launched_exit,
    })?;
    drop(ready_w);
    stages.started();
    drop(fds);
    drop(shm);
    drop(groups);
    if let Some(l) = lazy {
        let killer = sb
            .pidfd()
            .try_clone_to_owned()
            .map_err(io_ctx("duplicating the sandbox's pidfd"))?;
        l.arm(killer);
    }
    let mut ready_r = ready_r;
    let r = (|| -> Result<Vec<Traced>> {
        let mut ready = 0;
        while ready < plan.live() {
            let mut code = [0u8; 4];
            ready_r
                .read_exact(&mut code)
                .map_err(io_ctx("a restore stub died before it was ready"))?;
            match i32::from_ne_bytes(code) {
                0 => ready += 1,
                // A stub's memory shared with its children is to be filled (crate::cow).
                c if c < 0 => {
                    let i = (-(c + 1)) as usize;
                    let p = image
                        .processes
                        .get(i)
                        .ok_or_else(|| Error::Parse(format!("restore stub reported node {i}")))?;
                    let outer = outer_pids(sb.init_pid())?
                        .into_iter()
                        .find(|(_, inner)| *inner == p.pid)
                        .map(|(o, _)| o)
                        .ok_or_else(|| Error::Parse(format!("restore stub {} not found", p.pid)))?;
                    stages.fill(i, p, outer, source)?;
                }
                c => return Err(stub::stub_error(c)),
            }
        }
        layout_done(&plan, &ready_r, sb.init_pid())?;
        let outer = outer_pids(sb.init_pid())?;
        attrs::stopped::stop_stubs(image, &outer)?;
        // The kinds act through the stub of the image's first process.
        let first = outer
            .iter()
            .find(|(_, inner)| *inner == root.pid)
            .map(|(o, _)| *o)
            .ok_or_else(|| Error::Parse(format!("restored process {} not found", root.pid)))?;
        for k in &kinds {
            k.in_job(first, source)?;
        }
        let mut traced = Vec::new();
        let leaders = plan::shared_table_leaders(&image.processes);
        for (i, p) in image.processes.iter().enumerate() {
            // Processes sharing one descriptor table share the shared-memory descriptors in
            // it: the last of them to be rebuilt closes them (and what is left of the pool).
            let table = |j: usize| leaders[j].unwrap_or(j);
            let last_of_table = (i + 1..image.processes.len()).all(|j| table(j) != table(i));
            let o = outer
                .iter()
                .find(|(_, inner)| *inner == p.pid)
                .map(|(o, _)| *o)
                .ok_or_else(|| Error::Parse(format!("restored process {} not found", p.pid)))?;
            traced.push(rebuild(
                o,
                p,
                image,
                source,
                &shm_fds,
                &kinds,
                lazy,
                last_of_table.then_some(high),
                &stages.at[i],
            )?);
        }
        for k in &kinds {
            k.finish(first)?;
        }
        // A page the restore itself needed could not be read: never let the job run.
        if let Some(lazy::LazyOutcome::Failed(why)) = lazy.and_then(|l| l.outcome()) {
            return Err(Error::Sys {
                what: "restoring memory".into(),
                source: std::io::Error::other(why),
            });
        }
        Ok(traced)
    })();
    match r {
        // Every process is rebuilt: detach them all, the job runs.
        Ok(traced) => drop(traced),
        Err(e) => {
            let _ = sb.kill();
            let _ = sb.wait();
            return Err(e);
        }
    }
    Ok(sb)
}

/// (outer pid, pid inside the namespace) of every process under the sandbox init `init`.
fn outer_pids(init: i32) -> Result<Vec<(i32, i32)>> {
    let mut out = vec![(init, 1)];
    let mut i = 0;
    while i < out.len() {
        let kids = match procfs::children_of(out[i].0) {
            Ok(kids) => kids,
            // A helper that ended since it was listed (a zombie, or reaped).
            Err(_) if i > 0 && ended(out[i].0) => Vec::new(),
            Err(e) => return Err(e),
        };
        for c in kids {
            // A helper may have ended just now.
            if let Ok(inner) = procfs::inner_pid(&format!("/proc/{c}/status")) {
                out.push((c, inner));
            }
        }
        i += 1;
    }
    out.remove(0);
    Ok(out)
}

/// True when `pid` is a zombie or gone.
fn ended(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            .is_none_or(|st| st == "Z" || st == "X")
    })
}

/// Waits until every step of the layout is done (a stub that fails reports on `ready_r`)
/// and every helper has ended and been reaped by the init, so the job holds exactly the
/// image's processes and zombies.
fn layout_done(plan: &plan::TreePlan, ready_r: &std::fs::File, init: i32) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let timed_out = || Error::Sys {
        what: "rebuilding the sessions and process groups of the job".into(),
        source: std::io::Error::from(std::io::ErrorKind::TimedOut),
    };
    loop {
        let done = plan.steps_done();
        if done >= plan.steps.len() {
            break;
        }
        let mut pfd = libc::pollfd {
            fd: ready_r.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one pollfd we own, without waiting.
        if unsafe { libc::poll(&mut pfd, 1, 0) } > 0 {
            // Every writer may have closed the pipe (the stubs do once they reported) just
            // as the last step was done: not a failure.
            if plan.steps_done() >= plan.steps.len() {
                break;
            }
            let mut code = [0u8; 4];
            let mut r = ready_r;
            r.read_exact(&mut code)
                .map_err(io_ctx("a restore helper died"))?;
            return Err(stub::stub_error(i32::from_ne_bytes(code)));
        }
        if std::time::Instant::now() > deadline {
            return Err(timed_out());
        }
        plan.wait_step(done, 10);
    }
    let helpers = plan.helpers();
    while outer_pids(init)?
        .iter()
        .any(|(_, inner)| helpers.contains(inner))
    {
        if std::time::Instant::now() > deadline {
            return Err(timed_out());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Ok(())
}

/// Threads we trace during a restore; detached on drop.
struct Traced(Vec<i32>);

impl Drop for Traced {
    fn drop(&mut self) {
        for &t in &self.0 {
            ptrace::release(t);
        }
    }
}

fn pick_scratch(p: &ProcessImage, stub: i32) -> Result<u64> {
    let mut busy: Vec<(u64, u64)> = p.vmas.iter().map(|v| (v.start, v.end)).collect();
    if let Some(v) = &p.vdso {
        busy.push((v.block_start, v.block_start + v.block_len));
    }
    busy.extend(procfs::read_maps(stub)?.iter().map(|m| (m.start, m.end)));
    busy.sort_unstable();
    let mut c: u64 = 0x1000_0000;
    for (s, e) in busy {
        if e <= c {
            continue;
        }
        if s >= c + SCRATCH_LEN {
            break;
        }
        c = e.div_ceil(PAGE) * PAGE;
    }
    if c + SCRATCH_LEN > TASK_SIZE {
        return Err(Error::Incompatible(
            "no free address for the scratch page".into(),
        ));
    }
    Ok(c)
}

fn write_bytes(pid: i32, addr: u64, data: &[u8]) -> Result<()> {
    procfs::write_mem(pid, None, addr, data).map_err(io_ctx("writing into the restored process"))
}

fn words(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn cstr(s: &str) -> Vec<u8> {
    let mut b = s.as_bytes().to_vec();
    b.push(0);
    b
}

fn open_in(inj: &Injector, pid: i32, scratch: u64, path: &str, flags: i32) -> Result<u64> {
    let b = cstr(path);
    if b.len() as u64 > SCRATCH_LEN - STR {
        return Err(Error::Unsupported(format!("path too long: {path}")));
    }
    write_bytes(pid, scratch + STR, &b)?;
    inj.call(
        "openat",
        libc::SYS_openat,
        &[libc::AT_FDCWD as u64, scratch + STR, flags as u64],
    )
}

/// Per-thread kernel state, injected through the thread itself.
fn thread_state(
    inj: &Injector,
    pid: i32,
    tgid: i32,
    scratch: u64,
    t: &ThreadImage,
    drop_caps: bool,
) -> Result<()> {
    inj.call(
        "set_tid_address",
        libc::SYS_set_tid_address,
        &[t.clear_child_tid],
    )?;
    if t.robust_list.0 != 0 {
        inj.call(
            "set_robust_list",
            libc::SYS_set_robust_list,
            &[t.robust_list.0, t.robust_list.1],
        )?;
    }
    if t.sigaltstack.1 & libc::SS_DISABLE == 0 {
        let ss = words(&[
            t.sigaltstack.0,
            t.sigaltstack.1 as u32 as u64,
            t.sigaltstack.2,
        ]);
        write_bytes(pid, scratch + ARG, &ss)?;
        inj.call("sigaltstack", libc::SYS_sigaltstack, &[scratch + ARG, 0])?;
    }
    if let Some((ptr, len, sig)) = t.rseq {
        inj.call(
            "rseq",
            libc::SYS_rseq,
            &[ptr, u64::from(len), 0, u64::from(sig)],
        )?;
    }
    let mut name = t.comm.as_bytes().to_vec();
    name.truncate(15);
    name.push(0);
    write_bytes(pid, scratch + STR, &name)?;
    inj.call(
        "prctl(PR_SET_NAME)",
        libc::SYS_prctl,
        &[PR_SET_NAME, scratch + STR],
    )?;
    for si in &t.pending {
        write_bytes(pid, scratch + ARG, si)?;
        let signo = u64::from(u32::from_le_bytes([si[0], si[1], si[2], si[3]]));
        inj.call(
            "rt_tgsigqueueinfo",
            libc::SYS_rt_tgsigqueueinfo,
            &[tgid as u64, t.tid as u64, signo, scratch + ARG],
        )?;
    }
    if drop_caps {
        // header {version 3, pid 0}, data[2] all zero.
        let mut b = 0x2008_0522u32.to_le_bytes().to_vec();
        b.extend_from_slice(&[0u8; 4 + 24]);
        write_bytes(pid, scratch + ARG, &b)?;
        inj.call(
            "capset",
            libc::SYS_capset,
            &[scratch + ARG, scratch + ARG + 8],
        )?;
    }
    Ok(())
}

/// A pipe (index of the process, read end, write end; both at least `high`) for each process
/// whose descriptor table children share: they report through it that they forked their own
/// children, before it closes the descriptors its stub got from the restoring process.
fn group_pipes(
    image: &ProcessTreeImage,
    high: i32,
) -> Result<Vec<(usize, std::os::fd::OwnedFd, std::os::fd::OwnedFd)>> {
    use std::os::fd::FromRawFd;
    let mut leaders: Vec<usize> = plan::shared_table_leaders(&image.processes)
        .into_iter()
        .flatten()
        .collect();
    leaders.sort_unstable();
    leaders.dedup();
    let mut out = Vec::new();
    for i in leaders {
        let mut ends = [0i32; 2];
        // SAFETY: pipe2 writes two descriptors.
        if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
            return Err(last_os("pipe2 for a shared descriptor table"));
        }
        let mut raised = Vec::new();
        for e in ends {
            // SAFETY: `e` is a fresh descriptor we own; F_DUPFD_CLOEXEC duplicates it.
            let (orig, d) = unsafe {
                (
                    std::os::fd::OwnedFd::from_raw_fd(e),
                    libc::fcntl(e, libc::F_DUPFD_CLOEXEC, high),
                )
            };
            drop(orig);
            if d < 0 {
                return Err(last_os("moving a group pipe"));
            }
            // SAFETY: `d` is a fresh descriptor owned by us.
            raised.push(unsafe { std::os::fd::OwnedFd::from_raw_fd(d) });
        }
        let w = raised.pop();
        let r = raised.pop();
        if let (Some(r), Some(w)) = (r, w) {
            out.push((i, r, w));
        }
    }
    Ok(out)
}

/// One memfd per shared anonymous object of the image, sized to cover every mapping of it,
/// moved to a descriptor number of at least `high`; an object that a kind recreated (a
/// memfd or deleted file that descriptors hold too) is that kind's file instead.
fn shared_memory(
    image: &ProcessTreeImage,
    high: i32,
    kinds: &[Box<dyn Recreated>],
) -> Result<Vec<(u64, std::os::fd::OwnedFd)>> {
    use std::os::fd::FromRawFd;
    let mut sizes: Vec<(u64, u64)> = Vec::new();
    for v in image.processes.iter().flat_map(|p| &p.vmas) {
        if let Some((id, off)) = v.shm {
            let end = off + v.len();
            match sizes.iter_mut().find(|s| s.0 == id) {
                Some(s) => s.1 = s.1.max(end),
                None => sizes.push((id, end)),
            }
        }
    }
    let mut out = Vec::new();
    for (id, size) in sizes {
        if let Some(f) = kinds.iter().find_map(|k| k.shared_object(id)) {
            // SAFETY: F_DUPFD_CLOEXEC duplicates a descriptor the kind holds.
            let d = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, high) };
            if d < 0 {
                return Err(last_os("moving a shared file's descriptor"));
            }
            // SAFETY: `d` is a fresh descriptor owned by us.
            out.push((id, unsafe { std::os::fd::OwnedFd::from_raw_fd(d) }));
            continue;
        }
        // SAFETY: memfd_create takes a NUL-terminated name and flags.
        let fd = unsafe { libc::memfd_create(c"cairn-shm".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(last_os("memfd_create for shared memory"));
        }
        // SAFETY: `fd` is a fresh descriptor owned by us.
        let f = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        // SAFETY: ftruncate and fcntl on our own descriptor.
        if unsafe { libc::ftruncate(f.as_raw_fd(), size as i64) } < 0 {
            return Err(last_os(format!("sizing shared memory to {size} bytes")));
        }
        // SAFETY: as above.
        let d = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, high) };
        if d < 0 {
            return Err(last_os("moving a shared-memory descriptor"));
        }
        drop(f);
        // SAFETY: `d` is a fresh descriptor owned by us.
        out.push((id, unsafe { std::os::fd::OwnedFd::from_raw_fd(d) }));
    }
    Ok(out)
}

/// Rebuild process `p` in its stopped stub. `close_from`: close every descriptor from this
/// number on at the end — the shared-memory descriptors, and the stub's report pipe if the
/// stub was taken over before it closed it (`None` while another process sharing its table
/// still needs them).
#[allow(clippy::too_many_arguments)]
fn rebuild(
    stub: i32,
    p: &ProcessImage,
    image: &ProcessTreeImage,
    source: &dyn MemorySource,
    shm: &std::collections::HashMap<u64, i32>,
    kinds: &[Box<dyn Recreated>],
    lazy: Option<&lazy::LazyMemory>,
    close_from: Option<i32>,
    staged: &std::collections::HashMap<usize, u64>,
) -> Result<Traced> {
    ptrace::seize(
        stub,
        ptrace::O_TRACESYSGOOD | ptrace::O_TRACECLONE | ptrace::O_EXITKILL,
    )?;
    let mut traced = Traced(vec![stub]);
    ptrace::interrupt(stub)?;
    match ptrace::wait_stop(stub)? {
        Stop::Event(_) => {}
        other => return Err(Error::Parse(format!("restore stub stopped with {other:?}"))),
    }
    ptrace::set_sigmask(stub, BLOCK_ALL)?;
    let scratch = pick_scratch(p, stub)?;
    let mut inj = Injector::new(stub, inject::find_vdso_syscall(stub)?)?;
    inj.call(
        "mmap(scratch)",
        libc::SYS_mmap,
        &[
            scratch,
            SCRATCH_LEN,
            (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) as u64,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE) as u64,
            u64::MAX,
            0,
        ],
    )?;
    write_bytes(stub, scratch, &[0x0f, 0x05])?;
    inj.set_syscall_addr(scratch);
    if let Some((ptr, len, sig)) = ptrace::get_rseq(stub)? {
        inj.call(
            "rseq(unregister)",
            libc::SYS_rseq,
            &[ptr, u64::from(len), RSEQ_FLAG_UNREGISTER, u64::from(sig)],
        )?;
    }
    let mut keep = vec![(scratch, scratch + SCRATCH_LEN)];
    keep.extend(staged.iter().map(|(&k, &a)| (a, a + p.vmas[k].len())));
    memory::unmap_except(&inj, stub, scratch, TASK_SIZE, &keep)?;

    memory::map_all_shared(&inj, stub, scratch, p, source, shm, lazy, staged)?;
    for k in kinds {
        k.in_process(&inj, p)?;
    }
    if let Some(from) = close_from {
        inj.call(
            "close_range(restore descriptors)",
            libc::SYS_close_range,
            &[from as u64, u64::from(u32::MAX), 0],
        )?;
    }

    if let Some(v) = &p.vdso {
        inj.call(
            "arch_prctl(ARCH_MAP_VDSO_64)",
            libc::SYS_arch_prctl,
            &[ARCH_MAP_VDSO_64, v.block_start],
        )?;
    }

    // mm fields, auxv and exe.
    let exe_fd = open_in(
        &inj,
        stub,
        scratch,
        &p.exe,
        libc::O_RDONLY | libc::O_CLOEXEC,
    )?;
    let mm = &p.mm;
    let mut auxv = p.auxv.clone();
    auxv.truncate(64);
    let auxv_addr = scratch + ARG + 256;
    let mut map = words(&[
        mm.start_code,
        mm.end_code,
        mm.start_data,
        mm.end_data,
        mm.start_brk,
        mm.brk,
        mm.start_stack,
        mm.arg_start,
        mm.arg_end,
        mm.env_start,
        mm.env_end,
        auxv_addr,
    ]);
    map.extend_from_slice(&((auxv.len() * 8) as u32).to_le_bytes());
    map.extend_from_slice(&(exe_fd as u32).to_le_bytes());
    write_bytes(stub, scratch + ARG, &map)?;
    write_bytes(stub, auxv_addr, &words(&auxv))?;
    let r = inj.call(
        "prctl(PR_SET_MM_MAP)",
        libc::SYS_prctl,
        &[PR_SET_MM, PR_SET_MM_MAP, scratch + ARG, map.len() as u64, 0],
    );
    inj.call("close", libc::SYS_close, &[exe_fd])?;
    r?;

    let at = |inj, tid, who| attrs::At::new(inj, stub, tid, scratch + ATTRS, who);
    attrs::stopped::settle_reports(&at(&inj, stub, format!("process {}", p.pid)), image, p)?;

    for a in &p.sigactions {
        write_bytes(
            stub,
            scratch + ARG,
            &words(&[a.handler, a.flags, a.restorer, a.mask]),
        )?;
        inj.call(
            "rt_sigaction",
            libc::SYS_rt_sigaction,
            &[a.signo as u64, scratch + ARG, 0, 8],
        )?;
    }
    for (which, v) in &p.itimers {
        let mut v = *v;
        if v[2] == 0 && v[3] == 0 {
            // An interval timer whose signal is pending shows a zero value: the kernel re-arms
            // ITIMER_REAL only when that signal is dequeued. Arm it one interval ahead instead
            // (a zero value would disarm it for good).
            v[2] = v[0];
            v[3] = v[1];
        }
        write_bytes(stub, scratch + ARG, &words(&v.map(|x| x as u64)))?;
        inj.call(
            "setitimer",
            libc::SYS_setitimer,
            &[u64::from(*which), scratch + ARG, 0],
        )?;
    }

    // Threads other than the leader, with their tids.
    let mut outer = vec![stub];
    for t in &p.threads[1..] {
        let before = procfs::list_tasks(stub)?;
        let tid = [t.tid];
        write_bytes(stub, scratch + ARG + 512, &(tid[0] as u64).to_le_bytes())?;
        let flags = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM) as u64;
        let args = words(&[flags, 0, 0, 0, 0, 0, 0, 0, scratch + ARG + 512, 1, 0]);
        write_bytes(stub, scratch + ARG, &args)?;
        inj.call(
            "clone3(thread)",
            libc::SYS_clone3,
            &[scratch + ARG, CLONE_ARGS_SIZE as u64],
        )?;
        let new = procfs::list_tasks(stub)?
            .into_iter()
            .find(|x| !before.contains(x))
            .ok_or_else(|| Error::Parse("cloned thread not found".into()))?;
        traced.0.push(new);
        match ptrace::wait_stop(new)? {
            Stop::Event(_) => {}
            other => return Err(Error::Parse(format!("new thread stopped with {other:?}"))),
        }
        ptrace::set_sigmask(new, BLOCK_ALL)?;
        let tinj = Injector::new(new, scratch)?;
        thread_state(&tinj, stub, p.pid, scratch, t, drop_caps(t))?;
        outer.push(new);
    }
    for k in kinds {
        k.with_threads(&inj, p)?;
    }
    thread_state(
        &inj,
        stub,
        p.pid,
        scratch,
        &p.threads[0],
        drop_caps(&p.threads[0]),
    )?;
    // Limits once every thread exists (RLIMIT_NPROC counts them), before what they allow
    // (RLIMIT_NICE, RLIMIT_RTPRIO); credentials last, as they may end the privilege the
    // rest needs; dumpable at the very end (credential changes reset it).
    let proc_at = at(&inj, stub, format!("process {}", p.pid));
    attrs::process::rlimits(&proc_at, &p.rlimits)?;
    if let Some(a) = &p.attrs {
        attrs::process::flags(&proc_at, a)?;
    }
    for (t, &o) in p.threads.iter().zip(&outer) {
        if let Some(a) = &t.attrs {
            let who = format!("process {} thread {}", p.pid, t.tid);
            if o == stub {
                attrs::thread::apply(&at(&inj, o, who), a, unprivileged())?;
            } else {
                let tinj = Injector::new(o, scratch)?;
                let tat = attrs::At::new(&tinj, stub, o, scratch + ATTRS, who);
                attrs::thread::apply(&tat, a, unprivileged())?;
            }
        }
    }
    if let Some(a) = &p.attrs {
        attrs::process::dumpable(&proc_at, a)?;
    }
    for si in &p.shared_pending {
        write_bytes(stub, scratch + ARG, si)?;
        let signo = u64::from(u32::from_le_bytes([si[0], si[1], si[2], si[3]]));
        inj.call(
            "rt_sigqueueinfo",
            libc::SYS_rt_sigqueueinfo,
            &[p.pid as u64, signo, scratch + ARG],
        )?;
    }
    inj.call("munmap(scratch)", libc::SYS_munmap, &[scratch, SCRATCH_LEN])?;

    for (t, &o) in p.threads.iter().zip(&outer) {
        ptrace::set_xstate(o, &t.xstate)?;
        ptrace::set_regs(o, &resume_regs(&t.regs, false))?;
        ptrace::set_sigmask(o, t.sigmask)?;
    }
    Ok(traced)
}

/// The restore runs as an ordinary user (in the job's user namespace).
fn unprivileged() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() != 0 }
}

/// For images without thread attributes: capabilities are dropped when the restore runs in
/// a user namespace (the stub had all of them there, the original program, an ordinary
/// user's, had none). With attributes, [`attrs::thread`] restores them exactly.
fn drop_caps(t: &ThreadImage) -> bool {
    t.attrs.is_none() && unprivileged()
}
