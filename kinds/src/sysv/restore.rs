//! System V shared memory at restore (see `crate::sysv::capture`). The restored job has a new
//! IPC namespace; before any process is rebuilt, the launched program's stub creates every
//! segment with its old id (`/proc/sys/kernel/shm_next_id`, which belongs to the namespace),
//! key, size and permissions and fills it once. Each process then attaches its segments at
//! their old addresses (`shmat(SHM_REMAP)` over the placeholder mapping), and when every
//! process is attached, segments that had been marked for removal are removed again
//! (`IPC_RMID`), so they vanish when the last process detaches, as they would have.

use crate::Recreated;
use cairn_image::{MemorySource, ProcessImage, ProcessTreeImage, SysvShm};
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

fn write(pid: i32, addr: u64, data: &[u8]) -> Result<()> {
    procfs::write_mem(pid, None, addr, data).map_err(io_ctx("writing into a restore stub"))
}

/// [`crate::RecreateFn`] of System V shared memory: the segments are created inside the job
/// once its stubs exist, attached as each process is rebuilt, and marked for removal again
/// at the end.
pub fn recreate(image: &ProcessTreeImage, _: &dyn MemorySource) -> Result<Box<dyn Recreated>> {
    Ok(Box::new(Segments(image.ipc.sysv_shm.clone())))
}

/// The segments of the job.
struct Segments(Vec<SysvShm>);

impl Recreated for Segments {
    fn in_job(&self, root: i32, source: &dyn MemorySource) -> Result<()> {
        create(root, &self.0, source)
    }
    fn in_process(&self, inj: &Injector, p: &ProcessImage) -> Result<()> {
        attach(inj, p, &self.0)
    }
    fn finish(&self, root: i32) -> Result<()> {
        finish(root, &self.0)
    }
}

/// Create every segment of `segs` in the job's IPC namespace through the (not yet rebuilt)
/// stub `stub` of the launched program, with its id, key, size, owner and mode, and fill it.
pub fn create(stub: i32, segs: &[SysvShm], source: &dyn MemorySource) -> Result<()> {
    if segs.is_empty() {
        return Ok(());
    }
    ptrace::seize(stub, ptrace::O_TRACESYSGOOD | ptrace::O_EXITKILL)?;
    let r = (|| {
        ptrace::interrupt(stub)?;
        match ptrace::wait_stop(stub)? {
            Stop::Event(_) => {}
            other => return Err(Error::Parse(format!("restore stub stopped with {other:?}"))),
        }
        inject::with_scratch(stub, SCRATCH, |inj, scratch| {
            let mut sorted: Vec<&SysvShm> = segs.iter().collect();
            sorted.sort_by_key(|s| s.id);
            for s in sorted {
                create_one(inj, stub, scratch, s, source)?;
            }
            Ok(())
        })
    })();
    let d = ptrace::detach(stub);
    r?;
    d
}

fn create_one(
    inj: &Injector,
    stub: i32,
    scratch: u64,
    s: &SysvShm,
    source: &dyn MemorySource,
) -> Result<()> {
    let mut path = b"/proc/sys/kernel/shm_next_id".to_vec();
    path.push(0);
    write(stub, scratch + 256, &path)?;
    let fd = inj
        .call(
            "openat(shm_next_id)",
            libc::SYS_openat,
            &[libc::AT_FDCWD as u64, scratch + 256, libc::O_WRONLY as u64],
        )
        .map_err(|e| {
            Error::Incompatible(format!(
                "cannot set the id of System V segment {}: {e}",
                s.id
            ))
        })?;
    let text = s.id.to_string();
    write(stub, scratch, text.as_bytes())?;
    let w = inj.call(
        "write(shm_next_id)",
        libc::SYS_write,
        &[fd, scratch, text.len() as u64],
    );
    inj.call("close", libc::SYS_close, &[fd])?;
    w?;
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
