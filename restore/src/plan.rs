//! The plan of the restore stubs of a whole process tree: which descriptors each installs,
//! its session and group, and which children (and zombies) it forks with their pids.

use crate::stub::PreparedFds;
use cairn_image::ProcessImage;
use cairn_sys::{Error, Result};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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
    /// prepared descriptors of `procs[i]`, already raised to `high` or above.
    pub fn new(
        procs: &[ProcessImage],
        zombies: &[cairn_image::ZombieImage],
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
            if let Some(Err(step)) = n.stage.as_ref().map(|s| s.run_in_stub(self.ready_w, i)) {
                return self.fail(step);
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
