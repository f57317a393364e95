//! System V IPC objects of the job. The job runs in its own IPC namespace (see
//! `cairn_sys::sandbox`), so every object there belongs to it. They are listed and read by
//! injecting syscalls into the frozen launched program (the agent is outside the namespace):
//! shared memory segments with `shmctl(SHM_INFO / SHM_STAT_ANY)` and `shmat(SHM_RDONLY)`
//! (contents saved once per segment, every process's attachments recorded with their
//! addresses), semaphore sets with `semctl(SEM_INFO / SEM_STAT_ANY / GETALL / GETPID)`, message
//! queues with `msgctl(MSG_INFO / MSG_STAT_ANY)` and `msgrcv(MSG_COPY)`, which copies a message
//! without taking it from the queue. Restore recreates each object with the same id and key.
//! Semaphore undo adjustments (`SEM_UNDO`) are not shown by the kernel: a process that has
//! them is refused (found with `kcmp(KCMP_SYSVSEM)`).

use crate::FrozenJob;
use cairn_image::{
    MemorySink, ProcessTreeImage, SysvAttach, SysvMsg, SysvMsgQueue, SysvSem, SysvShm,
};
use cairn_sys::error::{io_ctx, Error, Result};
use cairn_sys::freeze::Frozen;
use cairn_sys::inject::{self, Injector};
use cairn_sys::procfs::{self, MapEntry};
use std::fs::File;
use std::io::{self, Read};

const SHM_INFO: u64 = 14;
const SHM_STAT_ANY: u64 = 15;
const SCRATCH: u64 = 4096;
const SEM_INFO: u64 = 19;
const SEM_STAT_ANY: u64 = 20;
const GETPID: u64 = 11;
const GETALL: u64 = 13;
const MSG_INFO: u64 = 12;
const MSG_STAT_ANY: u64 = 13;
const MSG_COPY: u64 = 0o40000;
const IPC_NOWAIT: u64 = 0o4000;
const KCMP_SYSVSEM: i32 = 6;
/// Largest semaphore set (the kernel's SEMMSL_MAX is 32000): its values as u16.
const SEM_SCRATCH: u64 = 128 * 1024;

/// True for a mapping of a System V shared memory segment.
pub fn is_sysv(m: &MapEntry) -> bool {
    m.shared && m.name.starts_with("/SYSV")
}

/// One System V mapping: (start, end, offset, shmid, may write, may exec).
type SysvMapping = (u64, u64, u64, i32, bool, bool);

/// System V attachments of `pid`.
fn attachments(pid: i32) -> Result<Vec<SysvMapping>> {
    let path = format!("/proc/{pid}/smaps");
    let text = std::fs::read_to_string(&path).map_err(io_ctx(format!("reading {path}")))?;
    let mut out = Vec::new();
    let mut cur: Option<(u64, u64, u64, i32)> = None;
    for line in text.lines() {
        if let Some(flags) = line.strip_prefix("VmFlags:") {
            if let Some((s, e, o, id)) = cur.take() {
                let f: Vec<&str> = flags.split_whitespace().collect();
                out.push((s, e, o, id, f.contains(&"mw"), f.contains(&"me")));
            }
            continue;
        }
        let mut it = line.split_whitespace();
        let (Some(range), Some(perms), Some(off), Some(_dev), Some(ino), Some(name)) = (
            it.next(),
            it.next(),
            it.next(),
            it.next(),
            it.next(),
            it.next(),
        ) else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        if !name.starts_with("/SYSV") || !perms.ends_with('s') {
            continue;
        }
        let parse = |s: &str| u64::from_str_radix(s, 16);
        let (Ok(s), Ok(e), Ok(o), Ok(id)) = (parse(a), parse(b), parse(off), ino.parse::<i32>())
        else {
            return Err(Error::Parse(format!("{path}: {line}")));
        };
        cur = Some((s, e, o, id));
    }
    Ok(out)
}

/// Reads `left` bytes of another process's memory from `addr` on.
struct MemReader {
    pid: i32,
    mem: File,
    addr: u64,
    left: u64,
}

impl Read for MemReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        procfs::read_mem(self.pid, Some(&self.mem), self.addr, &mut buf[..n])?;
        self.addr += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}

fn i32_at(b: &[u8], o: usize) -> i32 {
    i32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_ne_bytes(a)
}

/// [`crate::CaptureFn`] of System V shared memory.
pub fn capture_job(
    job: &FrozenJob<'_>,
    image: &mut ProcessTreeImage,
    sink: &mut dyn MemorySink,
) -> Result<()> {
    let inner: Vec<i32> = image.processes.iter().map(|p| p.pid).collect();
    image.ipc.sysv_shm = capture(job.root, job.outer, &inner, sink)?;
    let tid = job.root.pid;
    image.ipc.sysv_sem = inject::with_scratch(tid, SEM_SCRATCH, |inj, scratch| {
        semaphores(inj, tid, scratch)
    })?;
    if !image.ipc.sysv_sem.is_empty() {
        refuse_undo(job.outer, &inner)?;
    }
    image.ipc.sysv_msg = message_queues(tid)?;
    Ok(())
}

/// Refuses a process that has a semaphore undo list: the kernel keeps the adjustments of
/// `semop(SEM_UNDO)` per process and shows them nowhere, so they could not be restored. The
/// list is made by the first `SEM_UNDO` operation, or shared with the threads a process
/// creates (`CLONE_SYSVSEM`), and `kcmp(KCMP_SYSVSEM)` tells whether a process has one, by
/// comparing it with the job's init, which never has any.
fn refuse_undo(outer: &[i32], inner: &[i32]) -> Result<()> {
    let Some(&root) = outer.first() else {
        return Ok(());
    };
    let status = format!("/proc/{root}/status");
    let text = std::fs::read_to_string(&status).map_err(io_ctx(format!("reading {status}")))?;
    let init: i32 = text
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Error::Parse(format!("{status}: no PPid")))?;
    for (&o, &pid) in outer.iter().zip(inner) {
        // SAFETY: kcmp only compares kernel objects; no memory is passed.
        let r = unsafe { libc::syscall(libc::SYS_kcmp, init, o, KCMP_SYSVSEM, 0, 0) };
        if r != 0 {
            let why = if r < 0 {
                format!(
                    "kcmp(KCMP_SYSVSEM) failed ({}), so it may have a System V semaphore undo \
                     list",
                    io::Error::last_os_error()
                )
            } else {
                "it has a System V semaphore undo list (made by semop with SEM_UNDO, or by \
                 creating threads), whose adjustments the kernel does not show"
                    .to_string()
            };
            return Err(Error::Unsupported(format!(
                "process {pid}: {why}; with semaphore sets in the job it cannot be checkpointed"
            )));
        }
    }
    Ok(())
}

/// The perm part of `ipc64_perm` at the start of a `*id64_ds`: (key, uid, gid, mode).
fn perm(ds: &[u8]) -> (i32, u32, u32, u32) {
    (
        i32_at(ds, 0),
        i32_at(ds, 4) as u32,
        i32_at(ds, 8) as u32,
        u32::from(u16::from_ne_bytes([ds[20], ds[21]])) & 0o777,
    )
}

/// Every semaphore set of the job's IPC namespace, read through the injector into the
/// launched program `tid`.
fn semaphores(inj: &Injector, tid: i32, scratch: u64) -> Result<Vec<SysvSem>> {
    let max = inj.call(
        "semctl(SEM_INFO)",
        libc::SYS_semctl,
        &[0, 0, SEM_INFO, scratch],
    )?;
    // struct seminfo: semusz (sets in use, for SEM_INFO) is the 8th int.
    let mut info = [0u8; 40];
    procfs::read_mem(tid, None, scratch, &mut info).map_err(io_ctx("reading seminfo"))?;
    let mut out = Vec::new();
    if i32_at(&info, 28) == 0 {
        return Ok(out);
    }
    for idx in 0..=max {
        let r = inj.raw(libc::SYS_semctl, &[idx, 0, SEM_STAT_ANY, scratch])?;
        if r < 0 {
            continue;
        }
        let id = r as i32;
        // struct semid64_ds: ipc64_perm (48 bytes), times, sem_nsems at 80.
        let mut ds = [0u8; 104];
        procfs::read_mem(tid, None, scratch, &mut ds).map_err(io_ctx("reading semid_ds"))?;
        let (key, uid, gid, mode) = perm(&ds);
        let nsems = u64_at(&ds, 80);
        if nsems * 2 > SEM_SCRATCH {
            return Err(Error::Unsupported(format!(
                "System V semaphore set {id} has {nsems} semaphores, more than cairn reads"
            )));
        }
        let unreadable = |e: Error| {
            Error::Unsupported(format!(
                "System V semaphore set {id} (mode {mode:o}, owner {uid}) cannot be read by \
                 the job's first process ({e}); cannot be checkpointed"
            ))
        };
        inj.call(
            "semctl(GETALL)",
            libc::SYS_semctl,
            &[id as u64, 0, GETALL, scratch],
        )
        .map_err(unreadable)?;
        let mut raw = vec![0u8; nsems as usize * 2];
        procfs::read_mem(tid, None, scratch, &mut raw).map_err(io_ctx("reading semaphores"))?;
        let values = raw
            .chunks_exact(2)
            .map(|c| u16::from_ne_bytes([c[0], c[1]]))
            .collect();
        let mut pids = Vec::with_capacity(nsems as usize);
        for n in 0..nsems {
            let p = inj
                .call(
                    "semctl(GETPID)",
                    libc::SYS_semctl,
                    &[id as u64, n, GETPID, 0],
                )
                .map_err(unreadable)?;
            pids.push(p as i32);
        }
        out.push(SysvSem {
            id,
            key,
            mode,
            uid,
            gid,
            values,
            pids,
        });
    }
    Ok(out)
}

/// Every message queue of the job's IPC namespace with its messages, read through the
/// launched program `tid` (copied with `MSG_COPY`, the queues are left as they are).
fn message_queues(tid: i32) -> Result<Vec<SysvMsgQueue>> {
    let (max, msgmax) = inject::with_scratch(tid, SCRATCH, |inj, scratch| {
        let max = inj.call(
            "msgctl(MSG_INFO)",
            libc::SYS_msgctl,
            &[0, MSG_INFO, scratch],
        )?;
        // struct msginfo: msgpool (queues in use, for MSG_INFO), msgmap, msgmax, ...
        let mut info = [0u8; 32];
        procfs::read_mem(tid, None, scratch, &mut info).map_err(io_ctx("reading msginfo"))?;
        let used = i32_at(&info, 0);
        Ok(((used > 0).then_some(max), i32_at(&info, 8).max(0) as u64))
    })?;
    let Some(max) = max else {
        return Ok(Vec::new());
    };
    let size = (SCRATCH + 8 + msgmax).div_ceil(4096) * 4096;
    inject::with_scratch(tid, size, |inj, scratch| {
        let mut out = Vec::new();
        let buf = scratch + 256;
        for idx in 0..=max {
            let r = inj.raw(libc::SYS_msgctl, &[idx, MSG_STAT_ANY, scratch])?;
            if r < 0 {
                continue;
            }
            let id = r as i32;
            // struct msqid64_ds: ipc64_perm (48), three times, msg_cbytes at 72, msg_qnum at
            // 80, msg_qbytes at 88.
            let mut ds = [0u8; 120];
            procfs::read_mem(tid, None, scratch, &mut ds).map_err(io_ctx("reading msqid_ds"))?;
            let (key, uid, gid, mode) = perm(&ds);
            let (cbytes, qnum, qbytes) = (u64_at(&ds, 72), u64_at(&ds, 80), u64_at(&ds, 88));
            let mut messages = Vec::new();
            let mut total = 0;
            for n in 0..qnum {
                let len = inj
                    .call(
                        "msgrcv(MSG_COPY)",
                        libc::SYS_msgrcv,
                        &[id as u64, buf, msgmax, n, MSG_COPY | IPC_NOWAIT],
                    )
                    .map_err(|e| {
                        Error::Unsupported(format!(
                            "System V message queue {id} (mode {mode:o}, owner {uid}): message \
                             {n} cannot be copied by the job's first process ({e}; MSG_COPY \
                             needs a kernel with CONFIG_CHECKPOINT_RESTORE and read \
                             permission); cannot be checkpointed"
                        ))
                    })?;
                let mut m = vec![0u8; 8 + len as usize];
                procfs::read_mem(tid, None, buf, &mut m).map_err(io_ctx("reading a message"))?;
                let mtype = u64_at(&m, 0) as i64;
                total += len;
                messages.push(SysvMsg {
                    mtype,
                    data: m.split_off(8),
                });
            }
            if total != cbytes {
                return Err(Error::Parse(format!(
                    "System V message queue {id}: copied {total} bytes, the queue holds {cbytes}"
                )));
            }
            out.push(SysvMsgQueue {
                id,
                key,
                mode,
                uid,
                gid,
                qbytes,
                messages,
            });
        }
        Ok(out)
    })
}

/// List and save every segment of the job's IPC namespace by injecting into the frozen
/// launched program `root`; `outer[i]` is the outer pid of the process whose pid in the
/// namespace is `inner[i]`.
pub fn capture(
    root: &Frozen,
    outer: &[i32],
    inner: &[i32],
    sink: &mut dyn MemorySink,
) -> Result<Vec<SysvShm>> {
    let tid = root.pid;
    let mut segs = inject::with_scratch(tid, SCRATCH, |inj, scratch| {
        segments(inj, tid, scratch, sink)
    })?;
    if segs.is_empty() {
        return Ok(segs);
    }
    let mut covered: Vec<(i32, i32, u64, u64)> = Vec::new();
    for (&o, &pid) in outer.iter().zip(inner) {
        for (s, e, off, id, write, exec) in attachments(o)? {
            let addr = s - off;
            match covered
                .iter_mut()
                .find(|c| c.0 == id && c.1 == pid && c.2 == addr)
            {
                Some(c) => c.3 += e - s,
                None => covered.push((id, pid, addr, e - s)),
            }
            let Some(seg) = segs.iter_mut().find(|g| g.id == id) else {
                return Err(Error::Parse(format!(
                    "process {pid} maps System V segment {id}, which shmctl does not list"
                )));
            };
            match seg
                .attachments
                .iter_mut()
                .find(|a| a.pid == pid && a.addr == addr)
            {
                Some(a) => {
                    a.len = a.len.max(e - addr);
                    a.write |= write;
                    a.exec |= exec;
                }
                None => seg.attachments.push(SysvAttach {
                    pid,
                    addr,
                    len: e - addr,
                    write,
                    exec,
                }),
            }
        }
    }
    for (id, pid, addr, len) in covered {
        let size = segs.iter().find(|g| g.id == id).map_or(0, |g| g.size);
        if len != size.div_ceil(4096) * 4096 {
            return Err(Error::Unsupported(format!(
                "process {pid}: System V segment {id} attached at {addr:#x} is partly unmapped \
                 (cannot be checkpointed yet)"
            )));
        }
    }
    Ok(segs)
}

fn segments(
    inj: &Injector,
    tid: i32,
    scratch: u64,
    sink: &mut dyn MemorySink,
) -> Result<Vec<SysvShm>> {
    let max = inj.call(
        "shmctl(SHM_INFO)",
        libc::SYS_shmctl,
        &[0, SHM_INFO, scratch],
    )?;
    let mut b = [0u8; 4];
    procfs::read_mem(tid, None, scratch, &mut b).map_err(io_ctx("reading shm_info"))?;
    let mut out = Vec::new();
    if i32::from_ne_bytes(b) == 0 {
        return Ok(out);
    }
    for idx in 0..=max {
        let r = inj.raw(libc::SYS_shmctl, &[idx, SHM_STAT_ANY, scratch])?;
        if r < 0 {
            continue;
        }
        let id = r as i32;
        // struct shmid64_ds: ipc64_perm (key, uid, gid, cuid, cgid, mode, seq, ...: 48 bytes),
        // shm_segsz at 48.
        let mut ds = [0u8; 112];
        procfs::read_mem(tid, None, scratch, &mut ds).map_err(io_ctx("reading shmid_ds"))?;
        let size = u64_at(&ds, 48);
        let addr = inj.call(
            "shmat(SHM_RDONLY)",
            libc::SYS_shmat,
            &[id as u64, 0, libc::SHM_RDONLY as u64],
        )?;
        let mem = File::open(format!("/proc/{tid}/mem")).map_err(io_ctx("opening /proc/PID/mem"));
        let saved = mem.and_then(|mem| {
            let mut rd = MemReader {
                pid: tid,
                mem,
                addr,
                left: size,
            };
            sink.put_file(0, id, &mut rd).map_err(io_ctx(format!(
                "saving System V shared memory segment {id}"
            )))
        });
        inj.call("shmdt", libc::SYS_shmdt, &[addr])?;
        saved?;
        out.push(SysvShm {
            id,
            key: i32_at(&ds, 0),
            size,
            mode: u32::from(u16::from_ne_bytes([ds[20], ds[21]])),
            uid: i32_at(&ds, 4) as u32,
            gid: i32_at(&ds, 8) as u32,
            attachments: Vec::new(),
            data: Some((0, id)),
        });
    }
    Ok(out)
}
