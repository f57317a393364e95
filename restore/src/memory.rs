//! Mapping the image's memory into the stub and filling it from a [`MemorySource`].

use cairn_image::Backing;
use cairn_image::{MemorySource, ProcessImage, Vma, VmaFlags};
use cairn_sys::error::io_ctx;
use cairn_sys::inject::{BatchCall, Injector, BATCH_CODE, BATCH_ENTRY};
use cairn_sys::procfs;
use cairn_sys::ranges::Runs;
use cairn_sys::{Error, Result};

use crate::fill::{fillable, Filler};
use crate::lazy::{lazy_candidate, LazyMemory};

const STR: u64 = 8192;
/// Mappings with at most this much stored are prefetched together ([`MemorySource::prefetch`]).
const PREFETCH_MAX: u64 = 1 << 20;
/// Mappings with at most this much stored are written directly, without the userfaultfd.
const DIRECT_MAX: u64 = 64 << 10;

/// Where the pages of one mapping go.
pub(crate) enum Target<'a> {
    /// `process_vm_writev` (or `/proc/PID/mem`) into the process.
    Write(i32, &'a std::fs::File),
    /// `UFFDIO_COPY` into a mapping registered with the filler.
    Fill(&'a Filler),
}

/// Write the stored pages of `vma` that fall in the chunk `data` at offset `off`.
pub(crate) fn write_chunk(
    to: &Target<'_>,
    vma: &Vma,
    off: u64,
    data: &[u8],
) -> std::io::Result<()> {
    let end = (off + data.len() as u64).min(vma.len());
    let first = vma.stored.partition_point(|r| r.0 + r.1 <= off);
    for &(s, l) in &vma.stored[first..] {
        if s >= end {
            break;
        }
        let a = s.max(off);
        let b = (s + l).min(end);
        let bytes = &data[(a - off) as usize..(b - off) as usize];
        match to {
            Target::Write(pid, mem) => procfs::write_mem(*pid, Some(mem), vma.start + a, bytes)?,
            Target::Fill(f) => f.copy(vma.start + a, bytes)?,
        }
    }
    Ok(())
}

/// Map every VMA of the image at its address and fill it; then set its final protection.
pub fn map_all(
    inj: &Injector,
    pid: i32,
    scratch: u64,
    p: &ProcessImage,
    source: &dyn MemorySource,
) -> Result<()> {
    map_all_shared(
        inj,
        pid,
        scratch,
        p,
        source,
        &std::collections::HashMap::new(),
        None,
        &std::collections::HashMap::new(),
    )
}

/// Where [`BATCH_CODE`] is written in the scratch area.
const BATCH_CODE_OFF: u64 = 64;
/// Where the table of batched system calls starts in the scratch area (up to its end).
const BATCH_TABLE_OFF: u64 = 16384;

/// System calls injected in batches ([`Injector::batch`]): one ptrace round trip per table
/// instead of one per call, which is what lets a process with tens of thousands of mappings
/// be restored in well under a second (docs/performance.md, "Many mappings").
struct Calls<'a> {
    inj: &'a Injector,
    scratch: u64,
    /// (call, the mapping it concerns).
    pending: Vec<(BatchCall, u64, u64)>,
}

impl<'a> Calls<'a> {
    fn new(inj: &'a Injector, pid: i32, scratch: u64) -> Result<Self> {
        procfs::write_mem(pid, None, scratch + BATCH_CODE_OFF, &BATCH_CODE)
            .map_err(io_ctx("writing the system-call runner into the stub"))?;
        Ok(Calls {
            inj,
            scratch,
            pending: Vec::new(),
        })
    }

    fn capacity() -> usize {
        ((crate::SCRATCH_LEN - BATCH_TABLE_OFF) / BATCH_ENTRY) as usize
    }

    /// Queue `nr(args)` concerning mapping `vma`.
    fn push(&mut self, name: &'static str, nr: i64, args: [u64; 6], vma: &Vma) -> Result<()> {
        self.push_at(name, nr, args, vma.start, vma.end)
    }

    /// Queue `nr(args)` concerning the addresses `start..end`.
    fn push_at(
        &mut self,
        name: &'static str,
        nr: i64,
        args: [u64; 6],
        start: u64,
        end: u64,
    ) -> Result<()> {
        self.pending
            .push((BatchCall { name, nr, args }, start, end));
        if self.pending.len() >= Self::capacity() {
            self.flush()?;
        }
        Ok(())
    }

    /// Run every queued call; a failure names the call and its mapping.
    fn flush(&mut self) -> Result<()> {
        let calls: Vec<BatchCall> = self.pending.iter().map(|c| c.0).collect();
        let pending = std::mem::take(&mut self.pending);
        self.inj.batch(
            self.scratch + BATCH_CODE_OFF,
            self.scratch + BATCH_TABLE_OFF,
            &calls,
            |i, e| {
                let (_, s, e2) = pending[i];
                Error::Incompatible(format!("restoring memory {s:x}-{e2:x}: {e}"))
            },
        )
    }
}

/// Unmap everything in the stub `pid` (below the top of the user address space `top`) but
/// the ranges `keep` (the scratch area, staged mappings).
pub fn unmap_except(
    inj: &Injector,
    pid: i32,
    scratch: u64,
    top: u64,
    keep: &[(u64, u64)],
) -> Result<()> {
    let mut calls = Calls::new(inj, pid, scratch)?;
    let mut keep = keep.to_vec();
    keep.sort_unstable();
    let mut from = 0;
    for (s, e) in keep {
        if s > from {
            calls.push_at(
                "munmap",
                libc::SYS_munmap,
                [from, s - from, 0, 0, 0, 0],
                from,
                s,
            )?;
        }
        from = from.max(e);
    }
    if top > from {
        calls.push_at(
            "munmap",
            libc::SYS_munmap,
            [from, top - from, 0, 0, 0, 0],
            from,
            top,
        )?;
    }
    calls.flush()
}

/// [`map_all`] where `shm` maps the id of each shared anonymous object to a descriptor (a
/// memfd) open in the stub; mappings with an id are mapped from it. With `lazy`, the large
/// private anonymous mappings are registered for a lazy restore instead of filled
/// ([`crate::lazy`]) when the kernel allows it.
///
/// Three passes: every mapping is created (anonymous ones in batches of injected calls), then
/// filled from the restoring process (no injection), then given its final protection and
/// attributes (in batches again).
#[allow(clippy::too_many_arguments)]
pub fn map_all_shared(
    inj: &Injector,
    pid: i32,
    scratch: u64,
    p: &ProcessImage,
    source: &dyn MemorySource,
    shm: &std::collections::HashMap<u64, i32>,
    lazy: Option<&LazyMemory>,
    staged: &std::collections::HashMap<usize, u64>,
) -> Result<()> {
    let mem_path = format!("/proc/{pid}/mem");
    let mem = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&mem_path)
        .map_err(io_ctx(format!("opening {mem_path}")))?;
    let rw = (libc::PROT_READ | libc::PROT_WRITE) as u32;
    let mut space = match lazy {
        Some(l) if p.vmas.iter().any(lazy_candidate) => l.open_space(inj, pid)?,
        _ => None,
    };
    let filler = if p.vmas.iter().any(fillable) {
        Filler::create(inj, pid)?
    } else {
        None
    };
    let mut calls = Calls::new(inj, pid, scratch)?;
    let map_prot = |vma: &Vma| {
        if vma.stored.is_empty() {
            vma.prot
        } else {
            vma.prot | rw
        }
    };
    for (index, vma) in p.vmas.iter().enumerate() {
        if let Some(&at) = staged.get(&index) {
            // Filled before the children were forked (crate::cow): moved, pages and sharing
            // kept.
            calls.push(
                "mremap(shared with parent or children)",
                libc::SYS_mremap,
                [
                    at,
                    vma.len(),
                    vma.len(),
                    (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64,
                    vma.start,
                    0,
                ],
                vma,
            )?;
            continue;
        }
        let map_prot = map_prot(vma);
        let mut flags = libc::MAP_FIXED
            | if vma.shared {
                libc::MAP_SHARED
            } else {
                libc::MAP_PRIVATE
            };
        if vma.growsdown {
            flags |= libc::MAP_GROWSDOWN;
        }
        if vma.flags.has(VmaFlags::NORESERVE) {
            flags |= libc::MAP_NORESERVE;
        }

        let shm_fd = vma
            .shm
            .and_then(|(id, off)| shm.get(&id).map(|&fd| (fd, off)));
        match (&vma.backing, shm_fd) {
            // Shared memory, or a file without a name that a kind recreated (a private
            // mapping of a deleted file maps that file).
            (_, Some((fd, off))) => calls.push(
                "mmap(shared memory)",
                libc::SYS_mmap,
                [
                    vma.start,
                    vma.len(),
                    u64::from(map_prot),
                    flags as u64,
                    fd as u64,
                    off,
                ],
                vma,
            )?,
            (Backing::Anonymous, None) => calls.push(
                "mmap(anonymous)",
                libc::SYS_mmap,
                [
                    vma.start,
                    vma.len(),
                    u64::from(map_prot),
                    (flags | libc::MAP_ANONYMOUS) as u64,
                    u64::MAX,
                    0,
                ],
                vma,
            )?,
            (Backing::File { path, offset }, _) => {
                calls.flush()?;
                // A shared mapping of a file opened for writing may be made writable later.
                let writable_shared = vma.shared
                    && (vma.prot & libc::PROT_WRITE as u32 != 0
                        || vma.flags.has(VmaFlags::MAYWRITE));
                let oflags = if writable_shared {
                    libc::O_RDWR
                } else {
                    libc::O_RDONLY
                };
                let b = {
                    let mut b = path.as_bytes().to_vec();
                    b.push(0);
                    b
                };
                procfs::write_mem(pid, Some(&mem), scratch + STR, &b)
                    .map_err(io_ctx("writing a path into the stub"))?;
                let fd = inj
                    .call(
                        "openat(mapped file)",
                        libc::SYS_openat,
                        &[
                            libc::AT_FDCWD as u64,
                            scratch + STR,
                            (oflags | libc::O_CLOEXEC) as u64,
                        ],
                    )
                    .map_err(|e| {
                        Error::Incompatible(format!("cannot open mapped file {path}: {e}"))
                    })?;
                let r = inj.call(
                    "mmap(file)",
                    libc::SYS_mmap,
                    &[
                        vma.start,
                        vma.len(),
                        u64::from(map_prot),
                        flags as u64,
                        fd,
                        *offset,
                    ],
                );
                inj.call("close", libc::SYS_close, &[fd])?;
                r?;
            }
        }
    }
    for vma in &p.vmas {
        advise(&mut calls, vma)?;
    }
    calls.flush()?;
    // The small mappings are prepared at once (one store look-up for all of them, not one
    // each: docs/performance.md, "Many mappings").
    let small: Vec<usize> = p
        .vmas
        .iter()
        .enumerate()
        .filter(|(i, v)| {
            !staged.contains_key(i)
                && !v.stored.is_empty()
                && v.stored.iter().map(|r| r.1).sum::<u64>() <= PREFETCH_MAX
        })
        .map(|(i, _)| i)
        .collect();
    source.prefetch(p.pid, &small);
    for (index, vma) in p.vmas.iter().enumerate() {
        if staged.contains_key(&index) {
            continue;
        }
        fill_one(
            pid,
            &mem,
            index,
            vma,
            p,
            source,
            filler.as_ref(),
            &mut space,
        )?;
    }
    for vma in &p.vmas {
        if map_prot(vma) != vma.prot {
            calls.push(
                "mprotect",
                libc::SYS_mprotect,
                [vma.start, vma.len(), u64::from(vma.prot), 0, 0, 0],
                vma,
            )?;
        }
    }
    lock_and_seal(&mut calls, pid, p)?;
    calls.flush()?;
    if let (Some(l), Some(s)) = (lazy, space) {
        l.add_space(p.pid, s)
            .map_err(io_ctx("starting the lazy restore"))?;
    }
    Ok(())
}

/// madvise() advice of `vma` and its guard regions, given before it is filled (so that, for
/// one, huge pages are used from the start).
fn advise(calls: &mut Calls<'_>, vma: &Vma) -> Result<()> {
    const ADVICE: [(u32, i32, &str); 8] = [
        (
            VmaFlags::DONTFORK,
            libc::MADV_DONTFORK,
            "madvise(MADV_DONTFORK)",
        ),
        (
            VmaFlags::DONTDUMP,
            libc::MADV_DONTDUMP,
            "madvise(MADV_DONTDUMP)",
        ),
        (
            VmaFlags::HUGEPAGE,
            libc::MADV_HUGEPAGE,
            "madvise(MADV_HUGEPAGE)",
        ),
        (
            VmaFlags::NOHUGEPAGE,
            libc::MADV_NOHUGEPAGE,
            "madvise(MADV_NOHUGEPAGE)",
        ),
        (
            VmaFlags::WIPEONFORK,
            libc::MADV_WIPEONFORK,
            "madvise(MADV_WIPEONFORK)",
        ),
        (
            VmaFlags::MERGEABLE,
            libc::MADV_MERGEABLE,
            "madvise(MADV_MERGEABLE)",
        ),
        (
            VmaFlags::SEQUENTIAL,
            libc::MADV_SEQUENTIAL,
            "madvise(MADV_SEQUENTIAL)",
        ),
        (VmaFlags::RANDOM, libc::MADV_RANDOM, "madvise(MADV_RANDOM)"),
    ];
    for (flag, advice, name) in ADVICE {
        if vma.flags.has(flag) {
            calls.push(
                name,
                libc::SYS_madvise,
                [vma.start, vma.len(), advice as u64, 0, 0, 0],
                vma,
            )?;
        }
    }
    for &(off, len) in &vma.guards {
        calls.push(
            "madvise(MADV_GUARD_INSTALL)",
            libc::SYS_madvise,
            [vma.start + off, len, MADV_GUARD_INSTALL, 0, 0, 0],
            vma,
        )?;
    }
    Ok(())
}

/// `MADV_GUARD_INSTALL` (Linux 6.13).
const MADV_GUARD_INSTALL: u64 = 102;
/// `mseal` (Linux 6.10).
const SYS_MSEAL: i64 = 462;
const MLOCK_ONFAULT: u64 = 1;
const RLIMIT_MEMLOCK: u32 = 8;

/// Locks the mappings that were locked, and `mlockall(MCL_FUTURE)`, under the program's own
/// `RLIMIT_MEMLOCK` (set first: the stub has the restoring process's); then seals the sealed
/// mappings. A lock the limit does not allow fails the restart.
fn lock_and_seal(calls: &mut Calls<'_>, pid: i32, p: &ProcessImage) -> Result<()> {
    let locks = p.vmas.iter().any(|v| v.flags.has(VmaFlags::LOCKED)) || p.mlock_future != 0;
    if locks {
        if let Some(&(res, cur, max)) = p.rlimits.iter().find(|r| r.0 == RLIMIT_MEMLOCK) {
            let lim = libc::rlimit64 {
                rlim_cur: cur,
                rlim_max: max,
            };
            // SAFETY: prlimit64 reads `lim`; the old value is not requested.
            if unsafe { libc::prlimit64(pid, res as _, &lim, std::ptr::null_mut()) } < 0 {
                return Err(cairn_sys::error::last_os(format!(
                    "restoring RLIMIT_MEMLOCK ({cur}/{max}) before locking memory"
                )));
            }
        }
    }
    for vma in p.vmas.iter().filter(|v| v.flags.has(VmaFlags::LOCKED)) {
        let onfault = if vma.flags.has(VmaFlags::LOCKONFAULT) {
            MLOCK_ONFAULT
        } else {
            0
        };
        calls.push(
            "mlock2 (a locked mapping; RLIMIT_MEMLOCK or CAP_IPC_LOCK must allow it)",
            libc::SYS_mlock2,
            [vma.start, vma.len(), onfault, 0, 0, 0],
            vma,
        )?;
    }
    if p.mlock_future != 0 {
        calls.flush()?;
        let r = calls.inj.call(
            "mlockall(MCL_FUTURE)",
            libc::SYS_mlockall,
            &[u64::from(p.mlock_future)],
        );
        r.map_err(|e| {
            Error::Incompatible(format!(
                "process {}: mlockall(MCL_FUTURE) in force at the checkpoint: {e}",
                p.pid
            ))
        })?;
    }
    for vma in p.vmas.iter().filter(|v| v.flags.has(VmaFlags::SEALED)) {
        calls.push("mseal", SYS_MSEAL, [vma.start, vma.len(), 0, 0, 0, 0], vma)?;
    }
    Ok(())
}

/// Fill mapping `vma` (region `index` of `p`), freshly mapped and writable, from `source`, or
/// register it in `space` for a lazy restore.
#[allow(clippy::too_many_arguments)]
fn fill_one(
    pid: i32,
    mem: &std::fs::File,
    index: usize,
    vma: &Vma,
    p: &ProcessImage,
    source: &dyn MemorySource,
    filler: Option<&Filler>,
    space: &mut Option<crate::lazy::SpaceHandle>,
) -> Result<()> {
    let has_data = !vma.stored.is_empty();
    let lazily =
        has_data && lazy_candidate(vma) && space.as_mut().is_some_and(|s| s.register(index, vma));
    // Registered lazily: filled after the program resumes (crate::lazy).
    if has_data && !lazily {
        // Chunks the source reports as all-zero are not written: fresh anonymous memory
        // already reads as zeros. The stored pages of a file mapping differ from the file,
        // so there the pages of all-zero chunks are cleared afterwards — only those, never
        // a page that a chunk then overwrites.
        let file_backed = vma.backing != Backing::Anonymous;
        // A small mapping is written directly: registering it with the userfaultfd and
        // unregistering it again changes the mapping twice, which costs more than the zeroing
        // `UFFDIO_COPY` saves on a few pages (docs/performance.md, "Many mappings").
        let stored: u64 = vma.stored.iter().map(|r| r.1).sum();
        let registered = filler.filter(|f| {
            fillable(vma) && stored > DIRECT_MAX && f.register(vma.start, vma.len()).is_ok()
        });
        let to = match registered {
            Some(f) => Target::Fill(f),
            None => Target::Write(pid, mem),
        };
        let written = std::sync::Mutex::new(Vec::<(u64, u64)>::new());
        let f = |off: u64, data: Option<&[u8]>| -> std::io::Result<()> {
            match data {
                Some(d) => {
                    write_chunk(&to, vma, off, d)?;
                    if file_backed {
                        written
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((off, off + d.len() as u64));
                    }
                    Ok(())
                }
                None => Ok(()),
            }
        };
        let filled = source.for_each_chunk(p.pid, index, &f);
        if let Some(f) = registered {
            f.unregister(vma.start, vma.len())
                .map_err(io_ctx("ending the userfaultfd registration"))?;
        }
        filled.map_err(io_ctx(format!(
            "restoring memory {:x}-{:x}",
            vma.start, vma.end
        )))?;
        if file_backed {
            let mut written = written.into_inner().unwrap_or_else(|p| p.into_inner());
            written.sort_unstable();
            for (s, e) in Runs::from_sorted(vma.stored.iter().copied())
                .minus(&Runs::from_spans(written.iter().copied()))
                .spans()
            {
                procfs::write_mem(pid, Some(mem), vma.start + s, &vec![0u8; (e - s) as usize])
                    .map_err(io_ctx("clearing file-mapped pages"))?;
            }
        }
    }
    Ok(())
}
