//! The restore stub: a child of the sandbox init, created with the image's pid, that installs
//! the image's file descriptors, cwd and umask, reports, and then waits to be taken over.

use cairn_capture::error::io_ctx;
use cairn_capture::{Error, FdKind, MemorySource, ProcessImage, Result};
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Descriptors opened by the restoring process for the stub: (source fd, target fd, cloexec).
pub struct PreparedFds {
    /// Owned sources, closed when this is dropped.
    pub owned: Vec<OwnedFd>,
    /// (source, target, cloexec).
    pub map: Vec<(i32, i32, bool)>,
    /// Descriptors inherited from the parent process: (parent's fd, target, cloexec).
    pub inherited: Vec<(i32, i32, bool)>,
}

impl PreparedFds {
    /// Move every source descriptor to a number at least `min` (so that installing the
    /// targets of any process of the tree never overwrites one).
    pub fn raise(&mut self, min: i32) -> Result<()> {
        for (o, m) in self.owned.iter_mut().zip(self.map.iter_mut()) {
            // SAFETY: F_DUPFD_CLOEXEC duplicates a descriptor we own.
            let d = unsafe { libc::fcntl(o.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
            if d < 0 {
                return Err(cairn_capture::error::last_os(format!(
                    "moving a descriptor above {min} for the restore stub"
                )));
            }
            // SAFETY: `d` is a fresh descriptor owned by us.
            *o = unsafe { OwnedFd::from_raw_fd(d) };
            m.0 = d;
        }
        Ok(())
    }
}

fn open_at(path: &str, flags: i32, offset: u64) -> Result<File> {
    let acc = flags & libc::O_ACCMODE;
    let mut o = OpenOptions::new();
    o.read(acc == libc::O_RDONLY || acc == libc::O_RDWR)
        .write(acc == libc::O_WRONLY || acc == libc::O_RDWR)
        .custom_flags(flags & !(libc::O_ACCMODE | libc::O_APPEND) | libc::O_CLOEXEC);
    if flags & libc::O_APPEND != 0 {
        o.append(true);
    }
    let mut file = o
        .open(path)
        .map_err(io_ctx(format!("reopening {path} for restore")))?;
    if offset > 0 && !Path::new(path).is_dir() {
        file.seek(SeekFrom::Start(offset))
            .map_err(io_ctx(format!("seeking {path} to {offset}")))?;
    }
    Ok(file)
}

/// Open every descriptor of the image in this process.
/// `stdio` replaces this process's own 0, 1, 2 as what terminal/pipe stdio is re-attached to.
pub fn prepare_fds(
    p: &ProcessImage,
    source: &dyn MemorySource,
    stdio: Option<[i32; 3]>,
) -> Result<PreparedFds> {
    prepare_fds_with_pipes(p, source, stdio, &Pipes::default())
}

/// The job's pipes, recreated by the restoring process: id → (read end, write end).
#[derive(Default)]
pub struct Pipes(pub std::collections::HashMap<u64, (OwnedFd, OwnedFd)>);

impl Pipes {
    /// Create every pipe of the image with its capacity, refill it with its unread bytes,
    /// and give each end the O_NONBLOCK flag its descriptors had.
    pub fn create(
        image: &cairn_capture::ProcessTreeImage,
        source: &dyn MemorySource,
    ) -> Result<Pipes> {
        let mut out = Pipes::default();
        for pi in &image.pipes {
            let mut p = [0i32; 2];
            // SAFETY: pipe2 writes two descriptors.
            if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
                return Err(cairn_capture::error::last_os("pipe2"));
            }
            // SAFETY: fresh descriptors owned by us.
            let (r, w) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
            // SAFETY: fcntl on our own descriptor.
            if unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, pi.capacity as i32) } < 0 {
                return Err(cairn_capture::error::last_os(format!(
                    "setting the capacity of a pipe to {} bytes",
                    pi.capacity
                )));
            }
            if let Some((pid, fd)) = pi.data {
                let data = source
                    .read_file(pid, fd)
                    .map_err(io_ctx(format!("reading unread bytes of pipe {}", pi.id)))?;
                let mut wf = File::from(w.try_clone().map_err(io_ctx("dup of a pipe"))?);
                wf.write_all(&data)
                    .map_err(io_ctx(format!("refilling pipe {}", pi.id)))?;
            }
            out.0.insert(pi.id, (r, w));
        }
        for p in &image.processes {
            for f in &p.fds {
                if let FdKind::Pipe { id, flags } = f.kind {
                    let (r, w) = out.0.get(&id).ok_or_else(|| {
                        Error::Incompatible(format!(
                            "pipe {id} of process {} is not in the image",
                            p.pid
                        ))
                    })?;
                    let end = if flags & libc::O_ACCMODE == libc::O_RDONLY {
                        r
                    } else {
                        w
                    };
                    if flags & libc::O_NONBLOCK != 0 {
                        // SAFETY: fcntl on our own descriptor.
                        unsafe { libc::fcntl(end.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
                    }
                }
            }
        }
        Ok(out)
    }
}

/// [`prepare_fds`] for a process of a tree whose pipes are `pipes`.
pub fn prepare_fds_with_pipes(
    p: &ProcessImage,
    source: &dyn MemorySource,
    stdio: Option<[i32; 3]>,
    pipes: &Pipes,
) -> Result<PreparedFds> {
    let mut out = PreparedFds {
        owned: Vec::new(),
        map: Vec::new(),
        inherited: Vec::new(),
    };
    for fd in &p.fds {
        let owned: OwnedFd = match &fd.kind {
            FdKind::Inherited { parent_fd } => {
                out.inherited.push((*parent_fd, fd.fd, fd.cloexec));
                continue;
            }
            FdKind::Pipe { id, flags } => {
                let (r, w) = pipes.0.get(id).ok_or_else(|| {
                    Error::Incompatible(format!(
                        "pipe {id} of process {} is not in the image",
                        p.pid
                    ))
                })?;
                let end = if flags & libc::O_ACCMODE == libc::O_RDONLY {
                    r
                } else {
                    w
                };
                end.try_clone()
                    .map_err(io_ctx(format!("dup of pipe {id}")))?
            }
            FdKind::Path {
                path,
                flags,
                offset,
            } => open_at(path, *flags, *offset)?.into(),
            FdKind::Deleted {
                path,
                flags,
                offset,
                ..
            } => {
                let data = source
                    .read_file(p.pid, fd.fd)
                    .map_err(io_ctx(format!("reading saved contents of {path}")))?;
                let dir = Path::new(path)
                    .parent()
                    .filter(|d| d.is_dir())
                    .map(Path::to_path_buf)
                    .unwrap_or_else(std::env::temp_dir);
                let tmp = dir.join(format!(
                    ".cairn-restore-{}-{}-{}",
                    std::process::id(),
                    p.pid,
                    fd.fd
                ));
                let tmp_s = tmp.to_string_lossy().into_owned();
                let mut w = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(io_ctx(format!("creating {tmp_s}")))?;
                let r = w
                    .write_all(&data)
                    .map_err(io_ctx(format!("writing {tmp_s}")));
                drop(w);
                let f = r.and_then(|_| open_at(&tmp_s, *flags, *offset));
                let _ = std::fs::remove_file(&tmp);
                f?.into()
            }
            FdKind::Stdio => {
                let from = stdio.map_or(fd.fd, |s| s[fd.fd as usize]);
                // SAFETY: F_DUPFD_CLOEXEC duplicates one of our own descriptors.
                let d = unsafe { libc::fcntl(from, libc::F_DUPFD_CLOEXEC, 3) };
                if d < 0 {
                    return Err(Error::Incompatible(format!(
                        "the program's fd {} was a terminal or pipe, but this process has no fd {}",
                        fd.fd, fd.fd
                    )));
                }
                // SAFETY: `d` is a fresh descriptor owned by us.
                unsafe { OwnedFd::from_raw_fd(d) }
            }
        };
        out.map.push((owned.as_raw_fd(), fd.fd, fd.cloexec));
        out.owned.push(owned);
    }
    Ok(out)
}

/// Turn a stub failure code into an error.
pub fn stub_error(code: i32) -> Error {
    let step = match code / 10000 {
        1 => "too many descriptors",
        2 => "moving descriptors",
        3 => "installing descriptors",
        4 => "changing to the saved working directory",
        5 => "creating the saved session (setsid)",
        6 => "creating the saved process group (setpgid)",
        7 => "creating a child process with its saved pid (clone3 set_tid)",
        _ => "setting up",
    };
    Error::Sys {
        what: format!("restore stub failed {step}"),
        source: std::io::Error::from_raw_os_error(code % 10000),
    }
}

/// One process of a [`TreePlan`].
pub struct NodePlan {
    /// Pid inside the namespace.
    pub pid: i32,
    /// (source, target, cloexec) from the prepared pool.
    pub fds: Vec<(i32, i32, bool)>,
    /// (parent's fd, target, cloexec).
    pub inherited: Vec<(i32, i32, bool)>,
    /// Working directory.
    pub cwd: CString,
    /// umask.
    pub umask: u32,
    /// Call setsid (session leader).
    pub setsid: bool,
    /// Call setpgid(0, 0) (process group leader, not session leader).
    pub setpgid: bool,
    /// Indices of the live children in [`TreePlan::nodes`].
    pub children: Vec<usize>,
    /// Zombie children: (pid, raw wait status).
    pub zombies: Vec<(i32, i32)>,
}

/// The stubs of a whole tree, prepared before the fork (stubs must not allocate). Node 0 is
/// the launched program's stub; every stub installs its descriptors, forks its children with
/// their pids (clone3 set_tid), reports on `ready_w` and waits.
pub struct TreePlan {
    /// The processes, parents before children.
    pub nodes: Vec<NodePlan>,
    /// Every pool descriptor and `ready_w` are at least `high`; targets are below it.
    pub high: i32,
    /// Write end of the ready pipe (one 4-byte report per live process).
    pub ready_w: i32,
    /// Pool descriptors every stub keeps open for the agent (shared-memory memfds), sorted.
    pub keep: Vec<i32>,
}

impl TreePlan {
    /// Build the plan of `procs` (parents before children) and `zombies`; `fds[i]` are the
    /// prepared descriptors of `procs[i]`, already raised to `high` or above.
    pub fn new(
        procs: &[ProcessImage],
        zombies: &[cairn_capture::ZombieImage],
        fds: &[PreparedFds],
        high: i32,
        ready_w: i32,
    ) -> Result<Self> {
        let mut nodes = Vec::with_capacity(procs.len());
        for (i, (p, f)) in procs.iter().zip(fds).enumerate() {
            if i > 0 && !procs[..i].iter().any(|q| q.pid == p.ppid) {
                return Err(Error::Incompatible(format!(
                    "process {} has parent {}, which is not in the image before it",
                    p.pid, p.ppid
                )));
            }
            let parent = procs[..i].iter().find(|q| q.pid == p.ppid);
            nodes.push(NodePlan {
                pid: p.pid,
                fds: f.map.clone(),
                inherited: f.inherited.clone(),
                cwd: CString::new(Path::new(&p.cwd).as_os_str().as_bytes())
                    .map_err(|_| Error::Incompatible("cwd contains NUL".into()))?,
                umask: p.umask,
                setsid: p.sid == p.pid && parent.is_none_or(|q| q.sid != p.pid),
                setpgid: p.pgid == p.pid && p.sid != p.pid,
                children: (i + 1..procs.len())
                    .filter(|&j| procs[j].ppid == p.pid)
                    .collect(),
                zombies: zombies
                    .iter()
                    .filter(|z| z.ppid == p.pid)
                    .map(|z| (z.pid, z.status))
                    .collect(),
            });
        }
        for z in zombies {
            if !procs.iter().any(|q| q.pid == z.ppid) {
                return Err(Error::Incompatible(format!(
                    "zombie {} has parent {}, which is not in the image",
                    z.pid, z.ppid
                )));
            }
        }
        Ok(Self {
            nodes,
            high,
            ready_w,
            keep: Vec::new(),
        })
    }

    fn fail(&self, step: i32) -> i32 {
        // SAFETY: errno location is thread-local and always valid; write sends 4 bytes.
        unsafe {
            let code = step * 10000 + *libc::__errno_location();
            libc::write(self.ready_w, (&code as *const i32).cast(), 4);
        }
        1
    }

    /// clone3 with `set_tid = [pid]`; returns what clone3 returns.
    fn fork_with_pid(pid: i32) -> i64 {
        let tid = [pid];
        // struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack,
        // stack_size, tls, set_tid, set_tid_size, cgroup.
        let args: [u64; 11] = [
            0,
            0,
            0,
            0,
            libc::SIGCHLD as u64,
            0,
            0,
            0,
            tid.as_ptr() as u64,
            1,
            0,
        ];
        // SAFETY: clone3 without CLONE_VM behaves like fork; `args` and `tid` outlive the call.
        unsafe {
            libc::syscall(
                libc::SYS_clone3,
                args.as_ptr(),
                std::mem::size_of_val(&args),
            )
        }
    }

    /// The code of the stub of node `i` (runs in a forked child; raw syscalls only).
    pub fn run(&self, i: usize) -> i32 {
        let n = &self.nodes[i];
        let mut base = self.high.max(self.ready_w);
        for &(s, _, _) in &n.fds {
            base = base.max(s);
        }
        base += 1;
        // SAFETY: raw descriptor, signal and process syscalls on this child's own state; no
        // allocation.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
            let mut moved = [0i32; 1024];
            let total = n.inherited.len() + n.fds.len();
            if total > moved.len() {
                return self.fail(1);
            }
            let sources = n.inherited.iter().chain(&n.fds);
            for (k, &(s, _, _)) in sources.enumerate() {
                moved[k] = libc::fcntl(s, libc::F_DUPFD, base);
                if moved[k] < 0 {
                    return self.fail(2);
                }
            }
            // The parent's descriptors (below `high`) go; the pool stays for the children.
            if self.high > 0 {
                libc::syscall(libc::SYS_close_range, 0u32, (self.high - 1) as u32, 0u32);
            }
            let targets = n.inherited.iter().chain(&n.fds);
            for (k, &(_, t, cloexec)) in targets.enumerate() {
                let fl = if cloexec { libc::O_CLOEXEC } else { 0 };
                if libc::dup3(moved[k], t, fl) < 0 {
                    return self.fail(3);
                }
            }
            for &m in &moved[..total] {
                libc::close(m);
            }
            if libc::chdir(n.cwd.as_ptr()) < 0 {
                return self.fail(4);
            }
            libc::umask(n.umask);
            if n.setsid && libc::setsid() < 0 {
                return self.fail(5);
            }
            if n.setpgid && libc::setpgid(0, 0) < 0 {
                return self.fail(6);
            }
            for &c in &n.children {
                let r = Self::fork_with_pid(self.nodes[c].pid);
                if r == 0 {
                    let code = self.run(c);
                    libc::_exit(code);
                }
                if r < 0 {
                    return self.fail(7);
                }
            }
            for &(z, status) in &n.zombies {
                let r = Self::fork_with_pid(z);
                if r == 0 {
                    libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
                    if libc::WIFSIGNALED(status) {
                        let sig = libc::WTERMSIG(status);
                        let mut one: libc::sigset_t = std::mem::zeroed();
                        libc::sigaddset(&mut one, sig);
                        libc::signal(sig, libc::SIG_DFL);
                        libc::kill(libc::getpid(), sig);
                        libc::sigprocmask(libc::SIG_UNBLOCK, &one, std::ptr::null_mut());
                        libc::_exit(128 + sig);
                    }
                    libc::_exit(libc::WEXITSTATUS(status));
                }
                if r < 0 {
                    return self.fail(7);
                }
            }
            let ok: i32 = 0;
            libc::write(self.ready_w, (&ok as *const i32).cast(), 4);
            // Close the pool except `keep`.
            let mut from = self.high as u32;
            for &k in &self.keep {
                let k = k as u32;
                if k > from {
                    libc::syscall(libc::SYS_close_range, from, k - 1, 0u32);
                }
                from = from.max(k + 1);
            }
            libc::syscall(libc::SYS_close_range, from, u32::MAX, 0u32);
            loop {
                libc::pause();
            }
        }
    }
}
