//! System V shared memory of the job. The job runs in its own IPC namespace (see
//! `cairn_sys::sandbox`), so every segment there belongs to it. Segments are listed and read by
//! injecting `shmctl(SHM_INFO / SHM_STAT_ANY)` and `shmat(SHM_RDONLY)` into the frozen
//! launched program (the agent is outside the namespace); their contents are saved once per
//! segment, and every process's attachments are recorded with their addresses, so restore
//! can recreate each segment with the same id and key and attach it at the same places.

use crate::FrozenJob;
use cairn_image::{MemorySink, ProcessTreeImage, SysvAttach, SysvShm};
use cairn_sys::error::{io_ctx, Error, Result};
use cairn_sys::freeze::Frozen;
use cairn_sys::inject::{self, Injector};
use cairn_sys::procfs::{self, MapEntry};
use std::fs::File;
use std::io::{self, Read};

const SHM_INFO: u64 = 14;
const SHM_STAT_ANY: u64 = 15;
const SCRATCH: u64 = 4096;

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
    Ok(())
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
