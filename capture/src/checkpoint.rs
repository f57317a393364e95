//! Capturing one frozen process into a [`ProcessImage`], its memory into a [`MemorySink`].

use cairn_image::*;
use cairn_kinds::{OpenFd, JOB_KINDS};
use cairn_sys::error::{io_ctx, Error, Result};
use cairn_sys::freeze::Frozen;
use cairn_sys::inject::{self, Injector};
use cairn_sys::interrupted::{note_restart, resume_regs};
use cairn_sys::procfs::{self, MapEntry};
use cairn_sys::ptrace::{self, BLOCK_ALL};
use cairn_sys::vdso::{is_vdso_block, vdso_info};
use std::fs::{self, File};
use std::os::unix::fs::FileExt;

const PAGE: u64 = 4096;
const SCRATCH_LEN: u64 = 2 * PAGE;
const PR_GET_TID_ADDRESS: u64 = 40;

fn classify(m: &MapEntry) -> Result<Option<Backing>> {
    let n = m.name.as_str();
    if is_vdso_block(n) || n == "[vsyscall]" {
        return Ok(None);
    }
    if n.is_empty()
        || n == "[heap]"
        || n == "[stack]"
        || n.starts_with("[anon:")
        || n.starts_with("[anon_shmem:")
        || (m.shared && n.ends_with(" (deleted)"))
    {
        return Ok(Some(Backing::Anonymous));
    }
    if n.starts_with('/') && !n.ends_with(" (deleted)") {
        return Ok(Some(Backing::File {
            path: n.to_string(),
            offset: m.offset,
        }));
    }
    // A private mapping of a deleted file (or memfd): mapped at restore from the file that
    // cairn_kinds::unlinked recreates (its `shm` id is the inode); only the changed pages
    // are stored, as for any private file mapping.
    if let Some(path) = n.strip_suffix(" (deleted)").filter(|p| p.starts_with('/')) {
        return Ok(Some(Backing::File {
            path: path.to_string(),
            offset: m.offset,
        }));
    }
    Err(Error::Unsupported(format!(
        "mapping {:x}-{:x} of {n:?}",
        m.start, m.end
    )))
}

/// Byte ranges of a mapping whose contents must be stored.
pub(crate) fn stored_runs(
    pagemap: &File,
    m: &MapEntry,
    backing: &Backing,
) -> Result<Vec<(u64, u64)>> {
    let len = m.end - m.start;
    match (backing, m.shared) {
        (Backing::File { .. }, true) => return Ok(Vec::new()),
        (Backing::Anonymous, true) => return Ok(vec![(0, len)]),
        _ => {}
    }
    let file = matches!(backing, Backing::File { .. });
    match cairn_sys::pagemap::scan_resident(pagemap, m.start, m.end, file) {
        Ok(runs) => return Ok(runs.into_vec()),
        // Kernels without PAGEMAP_SCAN (before 6.7): read the pagemap entries.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTTY) | Some(libc::EINVAL)) => {}
        Err(e) => {
            return Err(Error::Sys {
                what: format!("PAGEMAP_SCAN of {:x}-{:x}", m.start, m.end),
                source: e,
            })
        }
    }
    let pages = len / PAGE;
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let batch = 65536u64;
    let mut buf = vec![0u8; (batch * 8) as usize];
    let mut p = 0;
    while p < pages {
        let n = batch.min(pages - p);
        let b = &mut buf[..(n * 8) as usize];
        pagemap
            .read_exact_at(b, (m.start / PAGE + p) * 8)
            .map_err(io_ctx("reading pagemap"))?;
        for i in 0..n {
            let o = (i * 8) as usize;
            let e = u64::from_le_bytes([
                b[o],
                b[o + 1],
                b[o + 2],
                b[o + 3],
                b[o + 4],
                b[o + 5],
                b[o + 6],
                b[o + 7],
            ]);
            let present = e & (1 << 63) != 0;
            let swapped = e & (1 << 62) != 0;
            let file_page = e & (1 << 61) != 0;
            let keep = swapped || (present && !(file && file_page));
            if keep {
                let off = (p + i) * PAGE;
                match runs.last_mut() {
                    Some(r) if r.0 + r.1 == off => r.1 += PAGE,
                    _ => runs.push((off, PAGE)),
                }
            }
        }
        p += n;
    }
    Ok(runs)
}

fn read_link(p: &str) -> Result<String> {
    fs::read_link(p)
        .map(|l| l.to_string_lossy().into_owned())
        .map_err(io_ctx(format!("readlink {p}")))
}

/// The parent of a process being captured as part of a tree: its outer pid and descriptors.
pub type ParentFds<'a> = Option<(i32, &'a [FdImage])>;

/// The processes captured before this one in the same tree: (outer pid, pid in the job,
/// descriptors).
pub type EarlierFds<'a> = &'a [(i32, i32, &'a [FdImage])];

/// Whether a descriptor of this kind may be the first of an open file description that
/// later descriptors share as [`FdKind::SameAs`] (kinds that do not already share one
/// description among all their descriptors themselves).
fn shareable(k: &FdKind) -> bool {
    matches!(
        k,
        FdKind::Path { .. }
            | FdKind::Deleted { .. }
            | FdKind::Fifo { .. }
            | FdKind::Unlinked { .. }
    )
}

/// True when descriptor `fd` of `pid` and `pfd` of `ppid` are the same open file description.
fn same_file(pid: i32, fd: i32, ppid: i32, pfd: i32) -> bool {
    const KCMP_FILE: i32 = 0;
    // SAFETY: kcmp only compares kernel objects; no memory is passed.
    unsafe { libc::syscall(libc::SYS_kcmp, pid, ppid, KCMP_FILE, fd, pfd) == 0 }
}

fn capture_fds(
    pid: i32,
    ns_pid: i32,
    sink: &mut dyn MemorySink,
    parent: ParentFds<'_>,
    earlier: EarlierFds<'_>,
    refused: &mut Vec<String>,
) -> Result<Vec<FdImage>> {
    let dir = format!("/proc/{pid}/fd");
    let mut fds: Vec<i32> = fs::read_dir(&dir)
        .map_err(io_ctx(format!("listing {dir}")))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    let mut out = Vec::new();
    for fd in fds {
        if let Some((ppid, pfds)) = parent {
            if let Some(p) = pfds.iter().find(|p| same_file(pid, fd, ppid, p.fd)) {
                let info_path = format!("/proc/{pid}/fdinfo/{fd}");
                let info = fs::read_to_string(&info_path)
                    .map_err(io_ctx(format!("reading {info_path}")))?;
                let cloexec = info
                    .lines()
                    .find_map(|l| l.strip_prefix("flags:"))
                    .and_then(|v| i32::from_str_radix(v.trim(), 8).ok())
                    .is_some_and(|f| f & libc::O_CLOEXEC != 0);
                out.push(FdImage {
                    fd,
                    cloexec,
                    kind: FdKind::Inherited { parent_fd: p.fd },
                });
                continue;
            }
        }
        // The same description as a file descriptor seen before (a dup here, or one shared
        // with a process other than the parent): one description again at restore.
        let before = out
            .iter()
            .filter(|f| shareable(&f.kind))
            .find(|f| same_file(pid, fd, pid, f.fd))
            .map(|f| (ns_pid, f.fd))
            .or_else(|| {
                earlier.iter().find_map(|&(opid, ons, ofds)| {
                    ofds.iter()
                        .filter(|f| shareable(&f.kind))
                        .find(|f| same_file(pid, fd, opid, f.fd))
                        .map(|f| (ons, f.fd))
                })
            });
        if let Some((spid, sfd)) = before {
            let info_path = format!("/proc/{pid}/fdinfo/{fd}");
            let info =
                fs::read_to_string(&info_path).map_err(io_ctx(format!("reading {info_path}")))?;
            let cloexec = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|v| i32::from_str_radix(v.trim(), 8).ok())
                .is_some_and(|f| f & libc::O_CLOEXEC != 0);
            out.push(FdImage {
                fd,
                cloexec,
                kind: FdKind::SameAs { pid: spid, fd: sfd },
            });
            continue;
        }
        let link = read_link(&format!("{dir}/{fd}"))?;
        let info_path = format!("/proc/{pid}/fdinfo/{fd}");
        let info =
            fs::read_to_string(&info_path).map_err(io_ctx(format!("reading {info_path}")))?;
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let pos: u64 = field("pos:").parse().unwrap_or(0);
        let raw_flags = i32::from_str_radix(&field("flags:"), 8).unwrap_or(0);
        let cloexec = raw_flags & libc::O_CLOEXEC != 0;
        let flags = raw_flags
            & !(libc::O_CLOEXEC | libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC | libc::O_NOCTTY);
        let meta = fs::metadata(format!("{dir}/{fd}"));
        let is_stdio_kind = link.starts_with("pipe:")
            || link.starts_with("socket:")
            || link.starts_with("/dev/pts/")
            || link.starts_with("/dev/tty")
            || link == "/dev/console";
        let open = OpenFd {
            pid,
            ns_pid,
            fd,
            link: &link,
            info: &info,
            flags,
            pos,
            meta: &meta,
            inside: parent.is_some() || fd > 2,
        };
        let kind = if !open.inside && is_stdio_kind {
            Ok(FdKind::Stdio)
        } else if let Some(kind) = JOB_KINDS
            .iter()
            .filter_map(|k| k.describe)
            .find_map(|describe| describe(&open, sink))
        {
            kind
        } else if parent.is_some() && is_stdio_kind {
            Err(Error::Unsupported(format!(
                "process {ns_pid} fd {fd}: {link} not inherited from its parent (pipes, sockets \
                 and terminals between processes of the job cannot be checkpointed yet)"
            )))
        } else {
            Err(Error::Unsupported(format!(
                "process {ns_pid} fd {fd}: {link} cannot be checkpointed yet"
            )))
        };
        // Every descriptor is looked at, so that a refusal names all of them at once.
        match kind {
            Ok(kind) => out.push(FdImage { fd, cloexec, kind }),
            Err(Error::Unsupported(why)) => refused.push(why),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// One refusal naming every reason: the first alone, or all of them one per line.
fn refuse_all(mut reasons: Vec<String>) -> Error {
    if reasons.len() == 1 {
        return Error::Unsupported(reasons.remove(0));
    }
    Error::Unsupported(format!(
        "{} things cannot be checkpointed:\n  {}",
        reasons.len(),
        reasons.join("\n  ")
    ))
}

/// State read by injecting syscalls into the frozen threads.
struct Injected {
    brk: u64,
    mlock_future: u32,
    sigactions: Vec<SigAction>,
    itimers: Vec<(u32, [i64; 4])>,
    per_thread: Vec<(u64, (u64, i32, u64))>,
    process: crate::attrs::ProcessQueries,
    thread_queries: Vec<cairn_sys::task::TaskFlags>,
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

fn inject_queries(pid: i32, tids: &[i32], children: &[i32]) -> Result<Injected> {
    let sys = inject::find_vdso_syscall(pid)?;
    let lead = Injector::new(tids[0], sys)?;
    let locked_before = crate::vmflags::locked_bytes(pid)?;
    let scratch = lead.call(
        "mmap",
        libc::SYS_mmap,
        &[
            0,
            SCRATCH_LEN,
            (libc::PROT_READ | libc::PROT_WRITE) as u64,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
            u64::MAX,
            0,
        ],
    )?;
    let mlock_future = crate::vmflags::mlock_future(pid, scratch, locked_before);
    let r = (|| -> Result<Injected> {
        let mlock_future = mlock_future?;
        let brk = lead.call("brk", libc::SYS_brk, &[0])?;
        // sigactions at scratch + 32*sig, itimers at scratch + 2304 + 32*which.
        for sig in 1..=64u64 {
            if sig == libc::SIGKILL as u64 || sig == libc::SIGSTOP as u64 {
                continue;
            }
            lead.call(
                "rt_sigaction",
                libc::SYS_rt_sigaction,
                &[sig, 0, scratch + 32 * sig, 8],
            )?;
        }
        for which in 0..3u64 {
            lead.call(
                "getitimer",
                libc::SYS_getitimer,
                &[which, scratch + 2304 + 32 * which],
            )?;
        }
        let mut page = vec![0u8; 2400];
        procfs::read_mem(pid, None, scratch, &mut page).map_err(io_ctx("reading scratch"))?;
        let mut sigactions = Vec::new();
        for sig in 1..=64usize {
            let o = 32 * sig;
            let handler = u64_at(&page, o);
            if handler != 0 && sig != 9 && sig != 19 {
                sigactions.push(SigAction {
                    signo: sig as i32,
                    handler,
                    flags: u64_at(&page, o + 8),
                    restorer: u64_at(&page, o + 16),
                    mask: u64_at(&page, o + 24),
                });
            }
        }
        let mut itimers = Vec::new();
        for which in 0..3usize {
            let o = 2304 + 32 * which;
            let v = [0, 8, 16, 24].map(|k| u64_at(&page, o + k) as i64);
            if v.iter().any(|&x| x != 0) {
                itimers.push((which as u32, v));
            }
        }
        let process = crate::attrs::inject_process(&lead, pid, scratch + 3072, children)?;
        let mut per_thread = Vec::new();
        let mut thread_queries = Vec::new();
        for &tid in tids {
            let inj = Injector::new(tid, sys)?;
            thread_queries.push(cairn_sys::task::query_task(
                &inj,
                pid,
                scratch + 4096 + 256,
            )?);
            inj.call(
                "prctl(PR_GET_TID_ADDRESS)",
                libc::SYS_prctl,
                &[PR_GET_TID_ADDRESS, scratch + 4096],
            )?;
            inj.call(
                "sigaltstack",
                libc::SYS_sigaltstack,
                &[0, scratch + 4096 + 64],
            )?;
            let mut b = [0u8; 96];
            procfs::read_mem(pid, None, scratch + 4096, &mut b)
                .map_err(io_ctx("reading scratch"))?;
            let ss_flags = u64_at(&b, 72) as u32 as i32;
            per_thread.push((u64_at(&b, 0), (u64_at(&b, 64), ss_flags, u64_at(&b, 80))));
        }
        Ok(Injected {
            brk,
            mlock_future,
            sigactions,
            itimers,
            per_thread,
            process,
            thread_queries,
        })
    })();
    let unmapped = lead.call("munmap", libc::SYS_munmap, &[scratch, SCRATCH_LEN]);
    let out = r?;
    unmapped?;
    Ok(out)
}

fn capture_thread(pid: i32, tid: i32) -> Result<ThreadImage> {
    let regs = note_restart(tid, ptrace::get_regs(tid)?);
    let xstate = ptrace::get_xstate(tid)?;
    let sigmask = ptrace::get_sigmask(tid)?;
    let pending = ptrace::peek_siginfo(tid, false)?;
    let rseq = ptrace::get_rseq(tid)?;
    let mut head: u64 = 0;
    let mut len: u64 = 0;
    // SAFETY: get_robust_list writes a pointer and a size_t into the two locals.
    let r = unsafe {
        libc::syscall(
            libc::SYS_get_robust_list,
            tid,
            &mut head as *mut u64,
            &mut len as *mut u64,
        )
    };
    if r < 0 {
        return Err(cairn_sys::error::last_os(format!("get_robust_list({tid})")));
    }
    let comm_path = format!("/proc/{pid}/task/{tid}/comm");
    let comm = fs::read_to_string(&comm_path)
        .map_err(io_ctx(format!("reading {comm_path}")))?
        .trim_end_matches('\n')
        .to_string();
    Ok(ThreadImage {
        tid: procfs::inner_pid(&format!("/proc/{pid}/task/{tid}/status"))?,
        comm,
        regs,
        xstate,
        sigmask,
        pending,
        rseq,
        robust_list: (head, len),
        clear_child_tid: 0,
        sigaltstack: (0, 0, 0),
        attrs: None,
    })
}

/// What capture may already know about a frozen process's mappings at this freeze (dirty
/// tracking scanned them), saving page-table walks while the program is frozen.
pub trait FreezeHints {
    /// The stored runs (offsets from `start`) of the private anonymous mapping `start..end`
    /// with protection `prot` of process `pid` (inside the job's namespace), when known.
    fn known_stored(&self, pid: i32, start: u64, end: u64, prot: u32) -> Option<Vec<(u64, u64)>>;
    /// Whether the mapping of `/proc/PID/maps` line `m` of process `pid` grows down, when
    /// known from a `/proc/PID/smaps` read of the same mapping earlier in this checkpoint.
    /// Only if every mapping is known does capture skip reading smaps while frozen.
    fn known_growsdown(&self, pid: i32, m: &MapEntry) -> Option<bool>;
}

/// Knows nothing: capture finds everything out itself.
pub struct NoHints;

impl FreezeHints for NoHints {
    fn known_stored(&self, _: i32, _: u64, _: u64, _: u32) -> Option<Vec<(u64, u64)>> {
        None
    }
    fn known_growsdown(&self, _: i32, _: &MapEntry) -> Option<bool> {
        None
    }
}

/// Capture the frozen process `fz`: threads, kernel state, mappings, descriptors, then its
/// memory into `sink`; `parent` are its parent's descriptors (those it shares are recorded as
/// inherited), `earlier` the processes captured before it (descriptions it shares with them
/// are recorded as [`FdKind::SameAs`]).
pub fn capture_process(
    fz: &Frozen,
    parent: ParentFds<'_>,
    earlier: EarlierFds<'_>,
    sink: &mut dyn MemorySink,
    hints: &dyn FreezeHints,
) -> Result<ProcessImage> {
    let pid = fz.pid;
    let clocks = cairn_sys::sandbox::program_clocks(pid)?;
    let mut threads = fz
        .tids
        .iter()
        .map(|&t| capture_thread(pid, t))
        .collect::<Result<Vec<_>>>()?;
    for &t in &fz.tids {
        ptrace::set_sigmask(t, BLOCK_ALL)?;
    }
    let children = procfs::children_of(pid)?
        .into_iter()
        .map(|c| procfs::inner_pid(&format!("/proc/{c}/status")))
        .collect::<Result<Vec<_>>>()?;
    let injected = inject_queries(pid, &fz.tids, &children);
    // Put every thread back as it was, syscalls set to restart.
    let mut restore_err = None;
    for (th, &t) in threads.iter().zip(&fz.tids) {
        let r = ptrace::set_regs(t, &resume_regs(&th.regs, true))
            .and_then(|_| ptrace::set_sigmask(t, th.sigmask));
        if let Err(e) = r {
            restore_err.get_or_insert(e);
        }
    }
    let injected = injected?;
    if let Some(e) = restore_err {
        return Err(e);
    }
    for (th, (ctid, ss)) in threads.iter_mut().zip(&injected.per_thread) {
        th.clear_child_tid = *ctid;
        th.sigaltstack = *ss;
    }
    for ((th, &t), q) in threads
        .iter_mut()
        .zip(&fz.tids)
        .zip(&injected.thread_queries)
    {
        th.attrs = Some(crate::attrs::thread_attrs(pid, t, q)?);
    }

    let status_path = format!("/proc/{pid}/status");
    let ns_pid = procfs::inner_pid(&status_path)?;
    // /proc/PID/maps, with VM_GROWSDOWN from the sink when it knows every mapping, else
    // /proc/PID/smaps (which walks the page tables).
    let mut maps = procfs::read_maps_light(pid)?;
    let known: Option<Vec<bool>> = maps
        .iter()
        .map(|m| hints.known_growsdown(ns_pid, m))
        .collect();
    match known {
        Some(flags) => {
            for (m, g) in maps.iter_mut().zip(flags) {
                m.growsdown = g;
            }
            // The other VmFlags (madvise, mlock, ...) can change while the program runs
            // without changing the mapping: they are always read while it is frozen.
            crate::vmflags::fill_from_smaps(pid, &mut maps)?;
        }
        None => maps = procfs::read_maps(pid)?,
    }
    let vdso = vdso_info(pid, &maps)?;
    crate::attrs::check_dumpable(ns_pid, &injected.process.attrs)?;
    let pagemap_path = format!("/proc/{pid}/pagemap");
    let pagemap = File::open(&pagemap_path).map_err(io_ctx(format!("opening {pagemap_path}")))?;
    let mut vmas = Vec::new();
    // What cannot be checkpointed, all of it (mappings, then descriptors) in one refusal.
    let mut refused = Vec::new();
    for m in &maps {
        if m.name.starts_with("/[aio]") {
            refused.push(format!(
                "process {ns_pid}: AIO context (io_setup) with its ring at {:#x} cannot be \
                 checkpointed yet",
                m.start
            ));
            continue;
        }
        let backing = match classify(m) {
            Ok(Some(b)) => b,
            Ok(None) => continue,
            Err(Error::Unsupported(why)) => {
                refused.push(format!("process {ns_pid}: {why}"));
                continue;
            }
            Err(e) => return Err(e),
        };
        // System V shared memory is saved once per segment (cairn_kinds::sysv), not per view.
        let sysv = cairn_kinds::sysv::is_sysv(m);
        let private_anon = backing == Backing::Anonymous && !m.shared;
        let known = private_anon
            .then(|| hints.known_stored(ns_pid, m.start, m.end, m.prot))
            .flatten();
        let flags = match crate::vmflags::vma_flags(ns_pid, m) {
            Ok(f) => f,
            Err(Error::Unsupported(why)) => {
                refused.push(why);
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut stored = match known {
            Some(runs) => runs,
            None if sysv => Vec::new(),
            None => stored_runs(&pagemap, m, &backing)?,
        };
        let guards = crate::vmflags::guard_runs(&pagemap, m)?;
        if !guards.is_empty() {
            stored = cairn_sys::ranges::Runs::from_sorted(stored)
                .minus(&cairn_sys::ranges::Runs::from_sorted(
                    guards.iter().copied(),
                ))
                .into_vec();
        }
        let deleted_private = !m.shared && m.name.ends_with(" (deleted)");
        let shm = ((m.shared && backing == Backing::Anonymous && !sysv) || deleted_private)
            .then_some((m.inode, m.offset));
        vmas.push(Vma {
            start: m.start,
            end: m.end,
            prot: m.prot,
            shared: m.shared,
            growsdown: m.growsdown,
            backing,
            stored,
            shm,
            flags,
            guards,
            inherited: Vec::new(),
        });
    }

    let stat = procfs::read_stat(pid)?;
    let f = |n| procfs::stat_field(&stat, n);
    let mm = MmFields {
        start_code: f(26)?,
        end_code: f(27)?,
        start_stack: f(28)?,
        start_data: f(45)?,
        end_data: f(46)?,
        start_brk: f(47)?,
        brk: injected.brk,
        arg_start: f(48)?,
        arg_end: f(49)?,
        env_start: f(50)?,
        env_end: f(51)?,
    };
    let auxv_path = format!("/proc/{pid}/auxv");
    let auxv_bytes = fs::read(&auxv_path).map_err(io_ctx(format!("reading {auxv_path}")))?;
    let auxv = auxv_bytes.chunks_exact(8).map(|c| u64_at(c, 0)).collect();
    crate::attrs::check_shared_fs(pid, ns_pid, &fz.tids)?;
    let crate::attrs::ProcessQueries {
        rlimits,
        attrs: mut process_attrs,
    } = injected.process;
    process_attrs.stopped = fz.group_stop;
    let umask = u32::from_str_radix(&procfs::status_field(&status_path, "Umask")?, 8)
        .map_err(|_| Error::Parse("Umask".into()))?;
    let fds = capture_fds(pid, ns_pid, sink, parent, earlier, &mut refused)?;
    if !refused.is_empty() {
        return Err(refuse_all(refused));
    }
    let ns_field = |key: &str| -> Result<i32> {
        let v = procfs::status_field(&status_path, key)?;
        v.split_whitespace()
            .last()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Parse(format!("{status_path}: {key} {v}")))
    };
    // The parent's pid inside the namespace is filled in by the tree capture.
    let (ppid, pgid, sid) = (1, ns_field("NSpgid")?, ns_field("NSsid")?);
    let shared_pending = ptrace::peek_siginfo(pid, true)?;

    let image = ProcessImage {
        pid: ns_pid,
        exe: read_link(&format!("/proc/{pid}/exe"))?,
        cwd: read_link(&format!("/proc/{pid}/cwd"))?,
        umask,
        mm,
        auxv,
        vmas,
        mlock_future: injected.mlock_future,
        vdso,
        threads,
        sigactions: injected.sigactions,
        rlimits,
        itimers: injected.itimers,
        fds,
        shared_pending,
        clocks: Some(clocks),
        ppid,
        pgid,
        sid,
        shares_files: false,
        attrs: Some(process_attrs),
    };
    capture_memory(pid, &image, sink)?;
    Ok(image)
}

/// Fills `buf` with bytes `off..off + buf.len()` of the mapping at `base` whose stored runs
/// are `stored` (offsets from `base`): stored pages read from process `pid`
/// straight into `buf` (procfs::read_mem_scatter), everything else zeros.
pub(crate) fn read_stored(
    pid: i32,
    mem: &File,
    base: u64,
    stored: &[(u64, u64)],
    off: u64,
    buf: &mut [u8],
) -> std::io::Result<()> {
    let end = off + buf.len() as u64;
    let first = stored.partition_point(|r| r.0 + r.1 <= off);
    let mut parts: Vec<(u64, usize, usize)> = Vec::new();
    for &(s, l) in &stored[first..] {
        if s >= end {
            break;
        }
        let a = s.max(off);
        let b = (s + l).min(end);
        parts.push((base + a, (a - off) as usize, (b - a) as usize));
    }
    if !(parts.len() == 1 && parts[0].2 == buf.len()) {
        buf.fill(0);
    }
    procfs::read_mem_scatter(pid, Some(mem), &parts, buf)
}

fn capture_memory(pid: i32, image: &ProcessImage, sink: &mut dyn MemorySink) -> Result<()> {
    let mem_path = format!("/proc/{pid}/mem");
    let mem = File::open(&mem_path).map_err(io_ctx(format!("opening {mem_path}")))?;
    for (index, vma) in image.vmas.iter().enumerate() {
        if vma.stored.is_empty() {
            continue;
        }
        let src = |off: u64, buf: &mut [u8]| -> std::io::Result<()> {
            read_stored(pid, &mem, vma.start, &vma.stored, off, buf)
        };
        sink.put_vma(image.pid, index, vma, None, &src)
            .map_err(io_ctx(format!(
                "saving memory {:x}-{:x} of process {}",
                vma.start, vma.end, image.pid
            )))?;
    }
    Ok(())
}
