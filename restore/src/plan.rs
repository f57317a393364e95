//! The plan of the restore stubs of a whole process tree: which descriptors each installs,
//! its session and group, and which children (and zombies) it forks with their pids.

use crate::stub::PreparedFds;
use cairn_image::ProcessImage;
use cairn_sys::{Error, Result};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// For each process of `procs` (parents first) that shares its parent's descriptor table,
/// the index of the first process of that table (which does not share its own parent's);
/// `None` for the others.
pub fn shared_table_leaders(procs: &[ProcessImage]) -> Vec<Option<usize>> {
    let mut out: Vec<Option<usize>> = Vec::with_capacity(procs.len());
    for p in procs {
        let parent = procs.iter().position(|q| q.pid == p.ppid);
        let leader = match parent {
            Some(j) if p.shares_files && j < out.len() => Some(out[j].unwrap_or(j)),
            _ => None,
        };
        out.push(leader);
    }
    out
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
    /// Shares its parent's descriptor table: forked with CLONE_FILES, installs nothing.
    pub share_files: bool,
    /// A process sharing its parent's table reports here (one byte) once it forked its own
    /// children, so that the first process of the table closes the pool only then.
    pub group_w: i32,
    /// The first process of a shared table: (read end of its group pipe, how many processes
    /// share its table) — it waits for all of them before closing the pool.
    pub group_r: Option<(i32, usize)>,
    /// Call setsid (session leader).
    pub setsid: bool,
    /// Call setpgid(0, 0) (process group leader, not session leader).
    pub setpgid: bool,
    /// Indices of the live children in [`TreePlan::nodes`].
    pub children: Vec<usize>,
    /// Zombie children: (pid, raw wait status).
    pub zombies: Vec<(i32, i32)>,
    /// Memory to stage for the children before forking them ([`crate::cow`]).
    pub stage: Option<crate::cow::Stage>,
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
    /// prepared descriptors of `procs[i]`, already raised to `high` or above. `groups` has a
    /// pipe (read, write; at least `high`) for each process whose descriptor table its
    /// children share, by index in `procs` ([`shared_table_leaders`]).
    pub fn new(
        procs: &[ProcessImage],
        zombies: &[cairn_image::ZombieImage],
        fds: &[PreparedFds],
        high: i32,
        ready_w: i32,
        groups: &[(usize, i32, i32)],
    ) -> Result<Self> {
        let leaders = shared_table_leaders(procs);
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
                share_files: p.shares_files,
                group_w: match leaders[i] {
                    Some(l) if p.shares_files => groups
                        .iter()
                        .find(|g| g.0 == l)
                        .map(|g| g.2)
                        .ok_or_else(|| {
                            Error::Incompatible(format!("no group pipe for process {}", p.pid))
                        })?,
                    _ => -1,
                },
                group_r: groups.iter().find(|g| g.0 == i).map(|g| {
                    let members = (0..procs.len())
                        .filter(|&j| procs[j].shares_files && leaders[j] == Some(i))
                        .count();
                    (g.1, members)
                }),
                // A removed working directory is made again for the stubs to enter
                // (cairn_kinds::unlinked) and removed once they are in it.
                cwd: CString::new(
                    Path::new(p.cwd.strip_suffix(" (deleted)").unwrap_or(&p.cwd))
                        .as_os_str()
                        .as_bytes(),
                )
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
                stage: None,
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

    /// clone3 with `set_tid = [pid]` (and CLONE_FILES when `share_files`); returns what
    /// clone3 returns.
    fn fork_with_pid(pid: i32, share_files: bool) -> i64 {
        let tid = [pid];
        // struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack,
        // stack_size, tls, set_tid, set_tid_size, cgroup.
        let flags = if share_files {
            libc::CLONE_FILES as u64
        } else {
            0
        };
        let args: [u64; 11] = [
            flags,
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
        // SAFETY: raw descriptor, signal and process syscalls on this child's own state; no
        // allocation.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
            // Every disposition back to SIG_DFL: the stub inherits cairn's handlers (Rust's
            // SIGSEGV/SIGBUS stack-overflow handlers among them), whose code is gone once the
            // program's memory replaces cairn's; the restore then sets only the program's
            // non-default ones. Raw rt_sigaction: libc's wrapper refuses signals 32 and 33.
            let dfl = [0u64; 4];
            for sig in 1..=64 {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::syscall(
                        libc::SYS_rt_sigaction,
                        sig,
                        dfl.as_ptr(),
                        std::ptr::null_mut::<u64>(),
                        8usize,
                    );
                }
            }
            if !n.share_files && !self.install(n) {
                return 1;
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
            if let Some(Err(step)) = n.stage.as_ref().map(|s| s.run_in_stub(self.ready_w, i)) {
                return self.fail(step);
            }
            for &c in &n.children {
                let r = Self::fork_with_pid(self.nodes[c].pid, self.nodes[c].share_files);
                if r == 0 {
                    let code = self.run(c);
                    libc::_exit(code);
                }
                if r < 0 {
                    return self.fail(7);
                }
            }
            for &(z, status) in &n.zombies {
                let r = Self::fork_with_pid(z, false);
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
            if n.share_files {
                // The table is the parent's: the first process of the table closes the pool
                // (the ready pipe too) once every process sharing it has forked its children,
                // reported, and said so here; its own report comes last.
                libc::write(self.ready_w, (&ok as *const i32).cast(), 4);
                let one = 1u8;
                libc::write(n.group_w, (&one as *const u8).cast(), 1);
                loop {
                    libc::pause();
                }
            }
            if let Some((r, members)) = n.group_r {
                let mut got = 0;
                let mut buf = [0u8; 64];
                while got < members {
                    let k = libc::read(r, buf.as_mut_ptr().cast(), buf.len());
                    if k <= 0 && *libc::__errno_location() != libc::EINTR {
                        break;
                    }
                    got += k.max(0) as usize;
                }
            }
            // Close the pool except `keep` and the ready pipe, report, then close that too:
            // once the agent has the report it may take the stub over at any instruction.
            let w = self.ready_w as u32;
            let close = |a: u32, b: u32| {
                if a > b {
                    return;
                }
                if (a..=b).contains(&w) {
                    if w > a {
                        libc::syscall(libc::SYS_close_range, a, w - 1, 0u32);
                    }
                    if w < b {
                        libc::syscall(libc::SYS_close_range, w + 1, b, 0u32);
                    }
                } else {
                    libc::syscall(libc::SYS_close_range, a, b, 0u32);
                }
            };
            let mut from = self.high as u32;
            for &k in &self.keep {
                let k = k as u32;
                if k > from {
                    close(from, k - 1);
                }
                from = from.max(k + 1);
            }
            close(from, u32::MAX);
            libc::write(self.ready_w, (&ok as *const i32).cast(), 4);
            libc::close(self.ready_w);
            loop {
                libc::pause();
            }
        }
    }

    /// Install the descriptors of node `n` (its own table); false after reporting a failure.
    ///
    /// # Safety
    /// Runs in a restore stub: raw syscalls only, no allocation.
    unsafe fn install(&self, n: &NodePlan) -> bool {
        let mut base = self.high.max(self.ready_w);
        for &(s, _, _) in &n.fds {
            base = base.max(s);
        }
        base += 1;
        // SAFETY: raw descriptor syscalls on this stub's own table.
        unsafe {
            let mut moved = [0i32; 1024];
            let total = n.inherited.len() + n.fds.len();
            if total > moved.len() {
                self.fail(1);
                return false;
            }
            let sources = n.inherited.iter().chain(&n.fds);
            for (k, &(s, _, _)) in sources.enumerate() {
                moved[k] = libc::fcntl(s, libc::F_DUPFD, base);
                if moved[k] < 0 {
                    self.fail(2);
                    return false;
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
                    self.fail(3);
                    return false;
                }
            }
            for &m in &moved[..total] {
                libc::close(m);
            }
            true
        }
    }
}
