//! POSIX message queues at restore: created and refilled by the launched program's stub in
//! the job's new IPC namespace, opened again in each rebuilt process, unlinked again at the
//! end when they had been.

use crate::Recreated;
use cairn_image::{FdImage, FdKind, MemorySource, PosixMq, ProcessImage, ProcessTreeImage};
use cairn_sys::error::io_ctx;
use cairn_sys::inject::{self, Injector};
use cairn_sys::{procfs, Error, Result};
use std::collections::HashMap;
use std::os::fd::OwnedFd;

const PAGE: u64 = 4096;

/// [`crate::RecreateFn`] of POSIX message queues.
pub fn recreate(image: &ProcessTreeImage, _: &dyn MemorySource) -> Result<Box<dyn Recreated>> {
    let mut names: HashMap<u64, String> = HashMap::new();
    // Queues keep their names; one unlinked while still open gets its old name unless a
    // linked queue (or another unlinked one) takes it, and is unlinked again at the end.
    for q in image.posix_mqs.iter().filter(|q| !q.unlinked) {
        names.insert(q.id, q.name.clone());
    }
    for q in image.posix_mqs.iter().filter(|q| q.unlinked) {
        let name = if names.values().any(|n| *n == q.name) {
            format!("/cairn-unlinked-{}", q.id)
        } else {
            q.name.clone()
        };
        names.insert(q.id, name);
    }
    let mut owners: HashMap<u64, (i32, i32)> = HashMap::new();
    let mut fds: HashMap<i32, (i32, Vec<FdImage>)> = HashMap::new();
    for p in &image.processes {
        for f in &p.fds {
            if let FdKind::PosixMq { open, .. } = f.kind {
                owners.entry(open).or_insert((p.pid, f.fd));
            }
        }
        fds.insert(p.pid, (p.ppid, p.fds.clone()));
    }
    Ok(Box::new(Queues {
        queues: image.posix_mqs.clone(),
        names,
        owners,
        fds,
    }))
}

/// The job's queues.
struct Queues {
    queues: Vec<PosixMq>,
    /// The name each queue is created under (by id).
    names: HashMap<u64, String>,
    /// The first descriptor (pid, fd) of each open file description, in image order.
    owners: HashMap<u64, (i32, i32)>,
    /// Every process's parent and descriptors (pid in the job).
    fds: HashMap<i32, (i32, Vec<FdImage>)>,
}

impl Queues {
    /// The queue description (queue, open, flags) that descriptor `fd` of `pid` is, following
    /// descriptors inherited from the parent.
    fn resolve(&self, pid: i32, fd: i32) -> Option<(u64, u64, i32)> {
        let (ppid, fds) = self.fds.get(&pid)?;
        match fds.iter().find(|f| f.fd == fd)?.kind {
            FdKind::PosixMq { queue, open, flags } => Some((queue, open, flags)),
            FdKind::Inherited { parent_fd } => self.resolve(*ppid, parent_fd),
            _ => None,
        }
    }

    fn name(&self, queue: u64) -> Result<&str> {
        self.names.get(&queue).map(String::as_str).ok_or_else(|| {
            Error::Incompatible(format!("POSIX message queue {queue} is not in the image"))
        })
    }
}

impl Recreated for Queues {
    /// A placeholder: the process opens the queue itself once it is in the job's IPC
    /// namespace ([`Recreated::in_process`]).
    fn open(&self, _: i32, fd: &FdImage, _: &dyn MemorySource) -> Option<Result<OwnedFd>> {
        let FdKind::PosixMq { .. } = fd.kind else {
            return None;
        };
        Some(
            std::fs::File::open("/dev/null")
                .map(OwnedFd::from)
                .map_err(io_ctx("opening /dev/null")),
        )
    }

    fn in_job(&self, root: i32, _: &dyn MemorySource) -> Result<()> {
        if self.queues.is_empty() {
            return Ok(());
        }
        let largest = self
            .queues
            .iter()
            .map(|q| q.msgsize.max(0) as u64)
            .max()
            .unwrap_or(0);
        let size = (2 * PAGE + largest).div_ceil(PAGE) * PAGE;
        crate::sysv::restore::in_stub(root, size, |inj, scratch| {
            for q in &self.queues {
                create(inj, root, scratch, q, self.name(q.id)?).map_err(|e| {
                    Error::Incompatible(format!(
                        "recreating POSIX message queue {}: {}",
                        q.name,
                        match e {
                            Error::Incompatible(s) => s,
                            other => other.to_string(),
                        }
                    ))
                })?;
            }
            Ok(())
        })
    }

    fn in_process(&self, inj: &Injector, p: &ProcessImage) -> Result<()> {
        let mine: Vec<(&FdImage, (u64, u64, i32))> = p
            .fds
            .iter()
            .filter_map(|f| Some((f, self.resolve(p.pid, f.fd)?)))
            .collect();
        if mine.is_empty() {
            return Ok(());
        }
        let stub = inj.tid();
        let scratch = inj.call(
            "mmap",
            libc::SYS_mmap,
            &[
                0,
                PAGE,
                (libc::PROT_READ | libc::PROT_WRITE) as u64,
                (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
                u64::MAX,
                0,
            ],
        )?;
        let r = (|| {
            for (f, (queue, open, flags)) in mine {
                let what = |e: Error| {
                    Error::Incompatible(format!(
                        "process {} fd {}: opening POSIX message queue {} again: {e}",
                        p.pid,
                        f.fd,
                        self.name(queue).unwrap_or("?")
                    ))
                };
                let owner = self.owners.get(&open).copied();
                let tmp = match owner {
                    Some((pid, fd)) if pid == p.pid && fd != f.fd => fd as u64,
                    Some((pid, fd)) if pid != p.pid => {
                        let pidfd = inj
                            .call("pidfd_open", libc::SYS_pidfd_open, &[pid as u64, 0])
                            .map_err(what)?;
                        let got =
                            inj.call("pidfd_getfd", libc::SYS_pidfd_getfd, &[pidfd, fd as u64, 0]);
                        inj.call("close", libc::SYS_close, &[pidfd])?;
                        got.map_err(what)?
                    }
                    _ => {
                        let mut name = self
                            .name(queue)?
                            .trim_start_matches('/')
                            .as_bytes()
                            .to_vec();
                        name.push(0);
                        write(stub, scratch, &name)?;
                        inj.call(
                            "mq_open",
                            libc::SYS_mq_open,
                            &[scratch, (flags | libc::O_CLOEXEC) as u64, 0, 0],
                        )
                        .map_err(what)?
                    }
                };
                let cloexec = if f.cloexec { libc::O_CLOEXEC } else { 0 };
                if tmp != f.fd as u64 {
                    inj.call("dup3", libc::SYS_dup3, &[tmp, f.fd as u64, cloexec as u64])?;
                }
                if !matches!(owner, Some((pid, fd)) if pid == p.pid && fd as u64 == tmp) {
                    inj.call("close", libc::SYS_close, &[tmp])?;
                }
            }
            Ok(())
        })();
        let u = inj.call("munmap", libc::SYS_munmap, &[scratch, PAGE]);
        r?;
        u.map(|_| ())
    }

    fn finish(&self, root: i32) -> Result<()> {
        let unlinked: Vec<&str> = self
            .queues
            .iter()
            .filter(|q| q.unlinked)
            .filter_map(|q| self.names.get(&q.id).map(String::as_str))
            .collect();
        if unlinked.is_empty() {
            return Ok(());
        }
        inject::with_scratch(root, PAGE, |inj, scratch| {
            for n in unlinked {
                let mut name = n.trim_start_matches('/').as_bytes().to_vec();
                name.push(0);
                write(root, scratch, &name)?;
                inj.call("mq_unlink", libc::SYS_mq_unlink, &[scratch])?;
            }
            Ok(())
        })
    }
}

fn write(pid: i32, addr: u64, data: &[u8]) -> Result<()> {
    procfs::write_mem(pid, None, addr, data).map_err(io_ctx("writing into a restore stub"))
}

/// Creates queue `q` under `name` through the stub `stub` (injector `inj`, `scratch` of
/// at least two pages and the largest message), with its owner, mode and messages.
fn create(inj: &Injector, stub: i32, scratch: u64, q: &PosixMq, name: &str) -> Result<()> {
    let mut n = name.trim_start_matches('/').as_bytes().to_vec();
    n.push(0);
    write(stub, scratch, &n)?;
    let attr: Vec<u8> = [0, q.maxmsg, q.msgsize, 0, 0, 0, 0, 0]
        .iter()
        .flat_map(|v: &i64| v.to_ne_bytes())
        .collect();
    write(stub, scratch + PAGE, &attr)?;
    let flags = libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC;
    let fd = inj.call(
        "mq_open(O_CREAT)",
        libc::SYS_mq_open,
        &[scratch, flags as u64, u64::from(q.mode), scratch + PAGE],
    )?;
    let r = (|| {
        inj.call("fchmod", libc::SYS_fchmod, &[fd, u64::from(q.mode)])?;
        inj.call(
            "fchown",
            libc::SYS_fchown,
            &[fd, u64::from(q.uid), u64::from(q.gid)],
        )?;
        for m in &q.messages {
            write(stub, scratch + 2 * PAGE, &m.data)?;
            inj.call(
                "mq_timedsend",
                libc::SYS_mq_timedsend,
                &[
                    fd,
                    scratch + 2 * PAGE,
                    m.data.len() as u64,
                    u64::from(m.prio),
                    0,
                ],
            )?;
        }
        Ok(())
    })();
    inj.call("close", libc::SYS_close, &[fd])?;
    r
}
