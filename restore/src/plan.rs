//! The plan of the restore stubs of a whole job: which descriptors each live process
//! installs, and the sequence of steps ([`cairn_sys::layout`]) that recreates every process,
//! zombie and helper with its pid, parent, session and group.
//!
//! The stubs run the steps in order: step `k` waits until a counter in a page shared by all
//! of them (`MAP_SHARED`, inherited through every fork) reads `k`, is done, and moves the
//! counter on (a futex wakes the others). The page disappears when a stub's memory is
//! replaced by the program's.

use crate::stub::PreparedFds;
use cairn_image::{ProcessImage, ZombieImage};
use cairn_sys::layout::{Layout, Member, Op, Role};
use cairn_sys::{Error, Result};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

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

/// One process of a [`TreePlan`]: a live process of the image, a zombie or a helper.
pub struct NodePlan {
    /// Pid inside the namespace.
    pub pid: i32,
    /// A live process of the image (it installs its descriptors, reports and waits to be
    /// rebuilt); zombies and helpers end with their last step.
    pub live: bool,
    /// Index of the process in the image's `processes` (live processes).
    pub process: Option<usize>,
    /// A helper (holds a session or group id, or forks the init's children), not in the image.
    pub helper: bool,
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
    /// Memory to stage for its children before it forks them ([`crate::cow`]); set by the
    /// restore after [`TreePlan::new`].
    pub stage: Option<crate::cow::Stage>,
}

/// The stubs of a whole job, prepared before the fork (stubs must not allocate). Node 0 is
/// created by the sandbox init; the others by the steps.
pub struct TreePlan {
    /// The processes of the layout.
    pub nodes: Vec<NodePlan>,
    /// The steps, in order: (node, step).
    pub steps: Vec<(usize, Op)>,
    /// Every pool descriptor and `ready_w` are at least `high`; targets are below it.
    pub high: i32,
    /// Write end of the ready pipe (one 4-byte report per live process, and failures).
    pub ready_w: i32,
    /// Pool descriptors every stub keeps open for the agent (shared-memory memfds), sorted.
    pub keep: Vec<i32>,
    /// Address of the step counter (an `AtomicU32` in a shared page).
    counter: usize,
}

impl Drop for TreePlan {
    fn drop(&mut self) {
        // SAFETY: the page was mapped by `new` and nothing refers to it after the plan.
        unsafe { libc::munmap(self.counter as *mut libc::c_void, 4096) };
    }
}

impl TreePlan {
    /// Build the plan of `procs` (parents before children) and `zombies`; `fds[i]` are the
    /// prepared descriptors of `procs[i]`, already raised to `high` or above. `groups` has a
    /// pipe (read, write; at least `high`) for each process whose descriptor table its
    /// children share, by index in `procs` ([`shared_table_leaders`]).
    /// `launched_exit` is the image's: when None, `procs[0]` is the launched program.
    pub fn new(
        procs: &[ProcessImage],
        zombies: &[ZombieImage],
        launched_exit: Option<i32>,
        fds: &[PreparedFds],
        high: i32,
        ready_w: i32,
        groups: &[(usize, i32, i32)],
    ) -> Result<Self> {
        let leaders = shared_table_leaders(procs);
        let members: Vec<Member> = procs
            .iter()
            .map(|p| Member {
                pid: p.pid,
                ppid: p.ppid,
                sid: p.sid,
                pgid: p.pgid,
                zombie: None,
            })
            .chain(zombies.iter().map(|z| {
                let parent = procs.iter().find(|p| p.pid == z.ppid);
                Member {
                    pid: z.pid,
                    ppid: z.ppid,
                    sid: z.sid.or(parent.map(|p| p.sid)).unwrap_or_default(),
                    pgid: z.pgid.or(parent.map(|p| p.pgid)).unwrap_or_default(),
                    zombie: Some(z.status),
                }
            }))
            .collect();
        let layout = Layout::plan(&members, launched_exit.is_none())
            .map_err(|e| Error::Incompatible(format!("process tree: {e}")))?;
        let mut nodes = Vec::with_capacity(layout.nodes.len());
        for n in &layout.nodes {
            let live = match n.role {
                Role::Member(i) if i < procs.len() => Some(i),
                _ => None,
            };
            let (f, p) = match live {
                Some(i) => (
                    fds.get(i)
                        .ok_or_else(|| Error::Incompatible("descriptors missing".into()))?,
                    Some(&procs[i]),
                ),
                None => (&PreparedFds::default(), None),
            };
            nodes.push(NodePlan {
                pid: n.pid,
                live: live.is_some(),
                process: live,
                helper: n.role == Role::Helper,
                fds: f.map.clone(),
                inherited: f.inherited.clone(),
                share_files: live.is_some_and(|i| procs[i].shares_files),
                group_w: match live.and_then(|i| leaders[i].map(|l| (i, l))) {
                    Some((i, l)) if procs[i].shares_files => groups
                        .iter()
                        .find(|g| g.0 == l)
                        .map(|g| g.2)
                        .ok_or_else(|| {
                            Error::Incompatible(format!("no group pipe for process {}", n.pid))
                        })?,
                    _ => -1,
                },
                group_r: live.and_then(|i| {
                    groups.iter().find(|g| g.0 == i).map(|g| {
                        let members = (0..procs.len())
                            .filter(|&j| procs[j].shares_files && leaders[j] == Some(i))
                            .count();
                        (g.1, members)
                    })
                }),
                // A removed working directory is made again for the stubs to enter
                // (cairn_kinds::unlinked) and removed once they are in it.
                cwd: CString::new(
                    Path::new(
                        p.map_or("/", |p| p.cwd.strip_suffix(" (deleted)").unwrap_or(&p.cwd)),
                    )
                    .as_os_str()
                    .as_bytes(),
                )
                .map_err(|_| Error::Incompatible("cwd contains NUL".into()))?,
                umask: p.map_or(0o022, |p| p.umask),
                stage: None,
            });
        }
        // SAFETY: a fresh anonymous shared page; checked below.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if page == libc::MAP_FAILED {
            return Err(cairn_sys::error::last_os(
                "mapping the restore's step counter",
            ));
        }
        Ok(Self {
            nodes,
            steps: layout.steps,
            high,
            ready_w,
            keep: Vec::new(),
            counter: page as usize,
        })
    }

    fn counter(&self) -> &AtomicU32 {
        // SAFETY: `counter` is a page-aligned address of a live shared mapping (see `new`).
        unsafe { &*(self.counter as *const AtomicU32) }
    }

    /// How many steps have been done.
    pub fn steps_done(&self) -> usize {
        self.counter().load(Ordering::Acquire) as usize
    }

    /// Waits (at most `ms` milliseconds) for the step counter to move from `seen`.
    pub fn wait_step(&self, seen: usize, ms: i64) {
        let ts = libc::timespec {
            tv_sec: ms / 1000,
            tv_nsec: (ms % 1000) * 1_000_000,
        };
        // SAFETY: futex wait on the shared counter with a timeout.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.counter as *const u32,
                libc::FUTEX_WAIT,
                seen as u32,
                &ts as *const libc::timespec,
            )
        };
    }

    /// Pids of the helpers (they exit once the layout stands).
    pub fn helpers(&self) -> Vec<i32> {
        self.nodes
            .iter()
            .filter(|n| n.helper)
            .map(|n| n.pid)
            .collect()
    }

    /// Number of live processes (each reports once).
    pub fn live(&self) -> usize {
        self.nodes.iter().filter(|n| n.live).count()
    }

    /// Waits for the turn of step `k` (raw syscalls only).
    fn turn(&self, k: usize) {
        loop {
            let v = self.counter().load(Ordering::Acquire);
            if v as usize == k {
                return;
            }
            // SAFETY: futex wait on the shared counter while it holds `v`.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.counter as *const u32,
                    libc::FUTEX_WAIT,
                    v,
                    std::ptr::null::<libc::timespec>(),
                )
            };
        }
    }

    /// Step `k` is done: the next one may start.
    fn advance(&self, k: usize) {
        self.counter().store(k as u32 + 1, Ordering::Release);
        // SAFETY: futex wake on the shared counter.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.counter as *const u32,
                libc::FUTEX_WAKE,
                i32::MAX,
            )
        };
    }

    fn fail(&self, step: i32) -> i32 {
        // SAFETY: errno location is thread-local and always valid; write sends 4 bytes.
        unsafe {
            let code = step * 10000 + *libc::__errno_location();
            libc::write(self.ready_w, (&code as *const i32).cast(), 4);
        }
        1
    }

    /// clone3 with `set_tid = [pid]` (and `CLONE_PARENT` when `clone_parent`, CLONE_FILES
    /// when `share_files`; no exit signal when `quiet`); returns what clone3 returns.
    fn fork_with_pid(pid: i32, clone_parent: bool, quiet: bool, share_files: bool) -> i64 {
        let tid = [pid];
        // struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack,
        // stack_size, tls, set_tid, set_tid_size, cgroup.
        let mut flags = if clone_parent {
            libc::CLONE_PARENT as u64
        } else {
            0
        };
        if share_files {
            flags |= libc::CLONE_FILES as u64;
        }
        let args: [u64; 11] = [
            flags,
            0,
            0,
            0,
            // With CLONE_PARENT the kernel takes the caller's exit signal (and refuses one).
            if clone_parent || quiet {
                0
            } else {
                libc::SIGCHLD as u64
            },
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
            if !n.live {
                // Zombies and helpers: only the pool (helpers fork processes that need it).
                if self.high > 0 {
                    libc::syscall(libc::SYS_close_range, 0u32, (self.high - 1) as u32, 0u32);
                }
                return self.steps_of(i);
            }
            if !n.share_files && !self.install(n) {
                return 1;
            }
            if libc::chdir(n.cwd.as_ptr()) < 0 {
                return self.fail(4);
            }
            libc::umask(n.umask);
            // Its memory shared with its children is staged before any step: every child
            // is forked by its parent in a later step and inherits it (copy-on-write).
            if let (Some(stage), Some(process)) = (&n.stage, n.process) {
                if let Err(step) = stage.run_in_stub(self.ready_w, process) {
                    return self.fail(step);
                }
            }
            let code = self.steps_of(i);
            if code != 0 {
                return code;
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

    /// Node `i`'s steps, each at its turn (raw syscalls only). Returns 0, or 1 after
    /// reporting a failure; zombies and helpers end inside.
    fn steps_of(&self, i: usize) -> i32 {
        for (k, &(node, op)) in self.steps.iter().enumerate() {
            if node != i {
                continue;
            }
            self.turn(k);
            // SAFETY: raw process syscalls on this child's own state; no allocation.
            unsafe {
                match op {
                    Op::Fork {
                        child,
                        clone_parent,
                        quiet,
                    } => {
                        let r = Self::fork_with_pid(
                            self.nodes[child].pid,
                            clone_parent,
                            quiet,
                            self.nodes[child].share_files,
                        );
                        if r == 0 {
                            let code = self.run(child);
                            libc::_exit(code);
                        }
                        if r < 0 {
                            return self.fail(7);
                        }
                    }
                    Op::Reap(pid) => loop {
                        let r = libc::waitpid(pid, std::ptr::null_mut(), libc::__WALL);
                        if r == pid {
                            break;
                        }
                        if r < 0 && *libc::__errno_location() != libc::EINTR {
                            return self.fail(10);
                        }
                    },
                    Op::Setsid => {
                        if libc::setsid() < 0 {
                            return self.fail(5);
                        }
                    }
                    Op::Setpgid(g) => {
                        if libc::setpgid(0, g) < 0 {
                            return self.fail(6);
                        }
                    }
                    Op::Exit(status) => {
                        self.advance(k);
                        libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
                        if status != 0 && libc::WIFSIGNALED(status) {
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
                }
            }
            self.advance(k);
        }
        0
    }
}
