//! System V IPC at restore (see `crate::sysv::capture`). The restored job has a new IPC
//! namespace; before any process is rebuilt, the launched program's stub creates every object
//! with its old id (`/proc/sys/kernel/{shm,sem,msg}_next_id`, which belong to the namespace),
//! key and permissions: segments are filled once, semaphores get their values, message
//! queues their messages in order. Each process then attaches its segments at their old
//! addresses (`shmat(SHM_REMAP)` over the placeholder mapping) and sets the semaphores it was
//! the last to change (so `GETPID` names it again); when every process is attached,
//! segments that had been marked for removal are removed again (`IPC_RMID`), so they vanish
//! when the last process detaches, as they would have.

use crate::Recreated;
use cairn_image::{MemorySource, ProcessImage, ProcessTreeImage, SysvMsgQueue, SysvSem, SysvShm};
use cairn_sys::error::io_ctx;
use cairn_sys::inject::{self, Injector};
use cairn_sys::procfs;
use cairn_sys::ptrace::BLOCK_ALL;
use cairn_sys::ptrace::{self, Stop};
use cairn_sys::{Error, Result};

const PAGE: u64 = 4096;
const IPC_CREAT: u64 = 0o1000;
const IPC_EXCL: u64 = 0o2000;
const IPC_RMID: u64 = 0;
const IPC_SET: u64 = 1;
const IPC_STAT: u64 = 2;
const SHM_REMAP: u64 = 0o40000;
const SHM_EXEC: u64 = 0o100000;
const SCRATCH: u64 = 2 * PAGE;
const SETVAL: u64 = 16;
const SETALL: u64 = 17;
const IPC_NOWAIT: u64 = 0o4000;

fn write(pid: i32, addr: u64, data: &[u8]) -> Result<()> {
    procfs::write_mem(pid, None, addr, data).map_err(io_ctx("writing into a restore stub"))
}

/// [`crate::RecreateFn`] of System V shared memory: the segments are created inside the job
/// once its stubs exist, attached as each process is rebuilt, and marked for removal again
/// at the end.
pub fn recreate(image: &ProcessTreeImage, _: &dyn MemorySource) -> Result<Box<dyn Recreated>> {
    Ok(Box::new(Objects {
        shm: image.ipc.sysv_shm.clone(),
        sem: image.ipc.sysv_sem.clone(),
        msg: image.ipc.sysv_msg.clone(),
        root: image.processes.first().map_or(0, |p| p.pid),
    }))
}

/// The System V objects of the job.
struct Objects {
    shm: Vec<SysvShm>,
    sem: Vec<SysvSem>,
    msg: Vec<SysvMsgQueue>,
    /// Pid (in the job) of the launched program, whose stub creates the objects.
    root: i32,
}

impl Recreated for Objects {
    fn in_job(&self, root: i32, source: &dyn MemorySource) -> Result<()> {
        create(root, &self.shm, source)?;
        create_queues(root, &self.sem, &self.msg)
    }
    fn in_process(&self, inj: &Injector, p: &ProcessImage) -> Result<()> {
        attach(inj, p, &self.shm)?;
        if p.pid != self.root {
            last_changed_by(inj, p.pid, &self.sem);
        }
        Ok(())
    }
    fn finish(&self, root: i32) -> Result<()> {
        finish(root, &self.shm)
    }
}

/// Sets again, from process `pid`, each semaphore that `pid` was the last to change, so that
/// `semctl(GETPID)` names it (the creating stub set all of them). Best effort: a process
/// without write permission on the set leaves the launched program's pid there.
fn last_changed_by(inj: &Injector, pid: i32, sems: &[SysvSem]) {
    for s in sems {
        for (n, (&v, _)) in s
            .values
            .iter()
            .zip(&s.pids)
            .enumerate()
            .filter(|(_, (_, &p))| p == pid)
        {
            let _ = inj.raw(
                libc::SYS_semctl,
                &[s.id as u64, n as u64, SETVAL, u64::from(v)],
            );
        }
    }
}

/// Seizes the stub of the launched program, runs `f` with an injector and `size` bytes of
/// scratch memory in it, and lets it go again.
pub(crate) fn in_stub<T>(
    stub: i32,
    size: u64,
    f: impl FnOnce(&Injector, u64) -> Result<T>,
) -> Result<T> {
    ptrace::seize(stub, ptrace::O_TRACESYSGOOD | ptrace::O_EXITKILL)?;
    let r = (|| {
        ptrace::interrupt(stub)?;
        match ptrace::wait_stop(stub)? {
            Stop::Event(_) => {}
            other => return Err(Error::Parse(format!("restore stub stopped with {other:?}"))),
        }
        inject::with_scratch(stub, size, f)
    })();
    let d = ptrace::detach(stub);
    let out = r?;
    d?;
    Ok(out)
}

/// Makes the next System V object of `kind` (`shm`, `sem`, `msg`) created in the job's IPC
/// namespace get `id`, through `/proc/sys/kernel/KIND_next_id`; `what` names the object.
fn next_id(inj: &Injector, stub: i32, scratch: u64, kind: &str, id: i32, what: &str) -> Result<()> {
    let mut path = format!("/proc/sys/kernel/{kind}_next_id").into_bytes();
    path.push(0);
    write(stub, scratch + 256, &path)?;
    let fd = inj
        .call(
            "openat(KIND_next_id)",
            libc::SYS_openat,
            &[libc::AT_FDCWD as u64, scratch + 256, libc::O_WRONLY as u64],
        )
        .map_err(|e| Error::Incompatible(format!("cannot set the id of {what}: {e}")))?;
    let text = id.to_string();
    write(stub, scratch, text.as_bytes())?;
    let w = inj.call(
        "write(KIND_next_id)",
        libc::SYS_write,
        &[fd, scratch, text.len() as u64],
    );
    inj.call("close", libc::SYS_close, &[fd])?;
    w?;
    Ok(())
}

/// Gives the object `id` (of `ctl`: `semctl`/`msgctl` argument layout) its owner, mode and,
/// for a message queue, `qbytes`, with `IPC_STAT` and `IPC_SET` through `ds` in the stub.
fn set_perm(
    inj: &Injector,
    stub: i32,
    ctl: (&'static str, i64),
    id: u64,
    ds: u64,
    (uid, gid, mode): (u32, u32, u32),
    qbytes: Option<u64>,
) -> Result<()> {
    let (name, nr) = ctl;
    let args = |cmd: u64| -> Vec<u64> {
        if nr == libc::SYS_semctl {
            vec![id, 0, cmd, ds]
        } else {
            vec![id, cmd, ds]
        }
    };
    inj.call(name, nr, &args(IPC_STAT))?;
    write(stub, ds + 4, &uid.to_ne_bytes())?;
    write(stub, ds + 8, &gid.to_ne_bytes())?;
    write(stub, ds + 20, &((mode & 0o777) as u16).to_ne_bytes())?;
    if let Some(q) = qbytes {
        // struct msqid64_ds: msg_qbytes at 88.
        write(stub, ds + 88, &q.to_ne_bytes())?;
    }
    inj.call(name, nr, &args(IPC_SET))?;
    Ok(())
}

/// Creates every semaphore set and message queue in the job's IPC namespace through the (not
/// yet rebuilt) stub `stub` of the launched program: same id, key, owner and mode, the
/// semaphores' values, the queues' `qbytes` and messages in their order.
pub fn create_queues(stub: i32, sems: &[SysvSem], queues: &[SysvMsgQueue]) -> Result<()> {
    if sems.is_empty() && queues.is_empty() {
        return Ok(());
    }
    let biggest = queues
        .iter()
        .flat_map(|q| q.messages.iter().map(|m| m.data.len() as u64))
        .chain(sems.iter().map(|s| 2 * s.values.len() as u64))
        .max()
        .unwrap_or(0);
    let size = (SCRATCH + 8 + biggest).div_ceil(PAGE) * PAGE;
    in_stub(stub, size, |inj, scratch| {
        let buf = scratch + PAGE;
        let mut sorted: Vec<&SysvSem> = sems.iter().collect();
        sorted.sort_by_key(|s| s.id);
        for s in sorted {
            let what = format!("System V semaphore set {}", s.id);
            next_id(inj, stub, scratch, "sem", s.id, &what)?;
            let id = inj.call(
                "semget",
                libc::SYS_semget,
                &[
                    s.key as u32 as u64,
                    s.values.len() as u64,
                    IPC_CREAT | IPC_EXCL | u64::from(s.mode & 0o777),
                ],
            )?;
            if id as i32 != s.id {
                return Err(Error::Incompatible(format!(
                    "{what} was recreated with id {id}"
                )));
            }
            // SETALL and SETVAL make the caller the last process to have changed a semaphore;
            // one that nobody changed (pid 0) is left alone, as it was (its value is 0).
            if s.pids.iter().all(|&p| p != 0) {
                let raw: Vec<u8> = s.values.iter().flat_map(|v| v.to_ne_bytes()).collect();
                write(stub, buf, &raw)?;
                inj.call("semctl(SETALL)", libc::SYS_semctl, &[id, 0, SETALL, buf])?;
            } else {
                for (n, (&v, _)) in s
                    .values
                    .iter()
                    .zip(&s.pids)
                    .enumerate()
                    .filter(|(_, (&v, &p))| v != 0 || p != 0)
                {
                    inj.call(
                        "semctl(SETVAL)",
                        libc::SYS_semctl,
                        &[id, n as u64, SETVAL, u64::from(v)],
                    )?;
                }
            }
            set_perm(
                inj,
                stub,
                ("semctl(IPC_SET)", libc::SYS_semctl),
                id,
                buf,
                (s.uid, s.gid, s.mode),
                None,
            )?;
        }
        let mut sorted: Vec<&SysvMsgQueue> = queues.iter().collect();
        sorted.sort_by_key(|q| q.id);
        for q in sorted {
            let what = format!("System V message queue {}", q.id);
            next_id(inj, stub, scratch, "msg", q.id, &what)?;
            let id = inj.call(
                "msgget",
                libc::SYS_msgget,
                &[
                    q.key as u32 as u64,
                    IPC_CREAT | IPC_EXCL | u64::from(q.mode & 0o777),
                ],
            )?;
            if id as i32 != q.id {
                return Err(Error::Incompatible(format!(
                    "{what} was recreated with id {id}"
                )));
            }
            // Room for every message first (a queue may hold more than its qbytes, lowered
            // after they were sent), then the owner, mode and qbytes it had.
            let total: u64 = q.messages.iter().map(|m| m.data.len() as u64).sum();
            inj.call("msgctl(IPC_STAT)", libc::SYS_msgctl, &[id, IPC_STAT, buf])?;
            let mut cur = [0u8; 8];
            procfs::read_mem(stub, None, buf + 88, &mut cur).map_err(io_ctx("reading msqid_ds"))?;
            let room = q.qbytes.max(total);
            if room > u64::from_ne_bytes(cur) {
                write(stub, buf + 88, &room.to_ne_bytes())?;
                inj.call("msgctl(IPC_SET)", libc::SYS_msgctl, &[id, IPC_SET, buf])
                    .map_err(|e| {
                        Error::Incompatible(format!(
                            "{what}: cannot make room for {room} bytes ({e})"
                        ))
                    })?;
            }
            for m in &q.messages {
                write(stub, buf, &m.mtype.to_ne_bytes())?;
                write(stub, buf + 8, &m.data)?;
                inj.call(
                    "msgsnd",
                    libc::SYS_msgsnd,
                    &[id, buf, m.data.len() as u64, IPC_NOWAIT],
                )?;
            }
            set_perm(
                inj,
                stub,
                ("msgctl(IPC_SET)", libc::SYS_msgctl),
                id,
                buf,
                (q.uid, q.gid, q.mode),
                Some(q.qbytes),
            )?;
        }
        Ok(())
    })
}

/// Create every segment of `segs` in the job's IPC namespace through the (not yet rebuilt)
/// stub `stub` of the launched program, with its id, key, size, owner and mode, and fill it.
pub fn create(stub: i32, segs: &[SysvShm], source: &dyn MemorySource) -> Result<()> {
    if segs.is_empty() {
        return Ok(());
    }
    in_stub(stub, SCRATCH, |inj, scratch| {
        let mut sorted: Vec<&SysvShm> = segs.iter().collect();
        sorted.sort_by_key(|s| s.id);
        for s in sorted {
            create_one(inj, stub, scratch, s, source)?;
        }
        Ok(())
    })
}

fn create_one(
    inj: &Injector,
    stub: i32,
    scratch: u64,
    s: &SysvShm,
    source: &dyn MemorySource,
) -> Result<()> {
    next_id(
        inj,
        stub,
        scratch,
        "shm",
        s.id,
        &format!("System V segment {}", s.id),
    )?;
    let id = inj.call(
        "shmget",
        libc::SYS_shmget,
        &[
            s.key as u32 as u64,
            s.size,
            IPC_CREAT | IPC_EXCL | u64::from(s.mode & 0o777),
        ],
    )?;
    if id as i32 != s.id {
        return Err(Error::Incompatible(format!(
            "System V segment {} was recreated with id {id}",
            s.id
        )));
    }
    // Owner and mode as they were (the creator may have been another user of the namespace).
    inj.call(
        "shmctl(IPC_STAT)",
        libc::SYS_shmctl,
        &[id, IPC_STAT, scratch],
    )?;
    write(stub, scratch + 4, &s.uid.to_ne_bytes())?;
    write(stub, scratch + 8, &s.gid.to_ne_bytes())?;
    write(stub, scratch + 20, &((s.mode & 0o777) as u16).to_ne_bytes())?;
    inj.call("shmctl(IPC_SET)", libc::SYS_shmctl, &[id, IPC_SET, scratch])?;
    if let Some((pid, key)) = s.data {
        let data = source
            .read_file(pid, key)
            .map_err(io_ctx(format!("reading System V segment {}", s.id)))?;
        if data.len() as u64 != s.size {
            return Err(Error::Incompatible(format!(
                "saved System V segment {} has {} bytes, expected {}",
                s.id,
                data.len(),
                s.size
            )));
        }
        let addr = inj.call("shmat", libc::SYS_shmat, &[id, 0, 0])?;
        let mem = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/{stub}/mem"))
            .map_err(io_ctx("opening the stub's memory"));
        let r = mem.and_then(|mem| {
            // The new segment is zero-filled: write only runs of pages with data.
            let page = PAGE as usize;
            let mut i = 0;
            while i < data.len() {
                let nonzero =
                    |k: usize| data[k..(k + page).min(data.len())].iter().any(|&b| b != 0);
                if !nonzero(i) {
                    i += page;
                    continue;
                }
                let mut j = i + page;
                while j < data.len() && nonzero(j) {
                    j += page;
                }
                let j = j.min(data.len());
                procfs::write_mem(stub, Some(&mem), addr + i as u64, &data[i..j])
                    .map_err(io_ctx(format!("filling System V segment {}", s.id)))?;
                i = j;
            }
            Ok(())
        });
        inj.call("shmdt", libc::SYS_shmdt, &[addr])?;
        r?;
    }
    Ok(())
}

/// Attach the segments process `p` had attached, at their old addresses, over the
/// placeholder mappings the memory restore left there, and give each mapping its protection.
pub fn attach(inj: &Injector, p: &ProcessImage, segs: &[SysvShm]) -> Result<()> {
    for s in segs {
        for a in s.attachments.iter().filter(|a| a.pid == p.pid) {
            let mut flags = SHM_REMAP;
            let mut prot = libc::PROT_READ as u32;
            if a.write {
                prot |= libc::PROT_WRITE as u32;
            } else {
                flags |= libc::SHM_RDONLY as u64;
            }
            if a.exec {
                flags |= SHM_EXEC;
                prot |= libc::PROT_EXEC as u32;
            }
            let at = inj.call(
                "shmat(SHM_REMAP)",
                libc::SYS_shmat,
                &[s.id as u64, a.addr, flags],
            )?;
            if at != a.addr {
                return Err(Error::Incompatible(format!(
                    "System V segment {} attached at {at:#x} instead of {:#x}",
                    s.id, a.addr
                )));
            }
            for v in &p.vmas {
                if v.start >= a.addr && v.end <= a.addr + a.len && v.prot != prot {
                    inj.call(
                        "mprotect",
                        libc::SYS_mprotect,
                        &[v.start, v.len(), u64::from(v.prot)],
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// Mark the segments that were marked for removal again, through the rebuilt, still traced
/// launched program `root` (every process is attached by now).
pub fn finish(root: i32, segs: &[SysvShm]) -> Result<()> {
    if !segs.iter().any(SysvShm::removed) {
        return Ok(());
    }
    let regs = ptrace::get_regs(root)?;
    let mask = ptrace::get_sigmask(root)?;
    ptrace::set_sigmask(root, BLOCK_ALL)?;
    let r = (|| {
        let inj = Injector::new(root, inject::find_vdso_syscall(root)?)?;
        for s in segs.iter().filter(|s| s.removed()) {
            inj.call(
                "shmctl(IPC_RMID)",
                libc::SYS_shmctl,
                &[s.id as u64, IPC_RMID, 0],
            )?;
        }
        Ok(())
    })();
    let back = ptrace::set_regs(root, &regs).and_then(|_| ptrace::set_sigmask(root, mask));
    r?;
    back
}
