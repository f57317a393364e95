//! The job sandbox: a fresh PID namespace (plus a user namespace when not root) whose PID 1 is
//! a tiny init written in cairn. Init starts the program (or, at restore, a stub with a chosen
//! pid), forwards signals to it, reaps every process of the job (orphans are adopted by it),
//! reports the program's wait status to the agent when the program ends, and exits when the
//! last process of the job has ended: the job lives as long as any of its processes.
//!
//! Everything that runs in the forked children (init, program before exec, restore stub) uses
//! only raw system calls on data prepared before the fork: the agent may be multi-threaded,
//! so the children must not allocate.

use crate::error::{last_os, Error, Result};
use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// How a program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// exit(code).
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl ExitStatus {
    /// The status as a shell reports it: the code, or 128 + signal.
    pub fn shell_code(&self) -> i32 {
        match *self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
    fn from_wait(st: i32) -> Self {
        if libc::WIFSIGNALED(st) {
            ExitStatus::Signal(libc::WTERMSIG(st))
        } else {
            ExitStatus::Code(libc::WEXITSTATUS(st))
        }
    }
}

/// Signals init forwards to the program.
pub const FORWARDED_SIGNALS: [i32; 12] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGCONT,
    libc::SIGWINCH,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// What the sandbox's init starts.
pub enum ChildSpec<'a> {
    /// Execute a program (`argv[0]` resolved through PATH before the fork).
    Exec {
        /// The command line.
        argv: Vec<OsString>,
        /// Descriptors to become the program's stdin, stdout and stderr (default: the
        /// caller's own 0, 1, 2).
        stdio: Option<[i32; 3]>,
    },
    /// Run `run` in a child created with pid `set_tid` inside the namespace (restore stubs).
    /// `run` must not allocate; its return value is the child's exit code. `keep_fds` are
    /// descriptors the child needs (init keeps them open until the child exists).
    Custom {
        /// Pid the child must get inside the namespace.
        set_tid: i32,
        /// Descriptors init must not close.
        keep_fds: Vec<i32>,
        /// The child's code.
        run: &'a (dyn Fn() -> i32 + Sync),
        /// CLOCK_MONOTONIC and CLOCK_BOOTTIME (ns) the child must see now: init then creates
        /// a time namespace with the matching offsets, so these clocks continue from where the
        /// captured program left them.
        clocks: Option<(i64, i64)>,
        /// `Some(raw wait status)` when the launched program had already ended at the
        /// checkpoint (its job went on with other processes): the child is then not the
        /// launched program, and the sandbox reports this status when the job ends.
        launched_exit: Option<i32>,
    },
}

const CLONE_NEWTIME: i32 = 0x80;

/// Current CLOCK_MONOTONIC and CLOCK_BOOTTIME of this process, in ns.
pub fn host_clocks() -> (i64, i64) {
    let get = |id| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec.
        unsafe { libc::clock_gettime(id, &mut ts) };
        ts.tv_sec * 1_000_000_000 + ts.tv_nsec
    };
    (get(libc::CLOCK_MONOTONIC), get(libc::CLOCK_BOOTTIME))
}

/// CLOCK_MONOTONIC and CLOCK_BOOTTIME (ns) as process `pid` sees them (its time namespace
/// offsets applied to this process's clocks).
pub fn program_clocks(pid: i32) -> Result<(i64, i64)> {
    let (mut mono, mut boot) = host_clocks();
    let path = format!("/proc/{pid}/timens_offsets");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Sys {
        what: format!("reading {path}"),
        source,
    })?;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [name, secs, nsecs] = f.as_slice() else {
            continue;
        };
        let (Ok(secs), Ok(nsecs)) = (secs.parse::<i64>(), nsecs.parse::<i64>()) else {
            return Err(Error::Parse(format!("{path}: {line}")));
        };
        let off = secs * 1_000_000_000 + nsecs;
        match *name {
            "monotonic" | "1" => mono += off,
            "boottime" | "7" => boot += off,
            _ => {}
        }
    }
    Ok((mono, boot))
}

/// The text written to /proc/self/timens_offsets to make the clocks read `clocks` now.
fn timens_offsets(clocks: (i64, i64)) -> Result<CString> {
    let (mono, boot) = host_clocks();
    let split = |off: i64| (off.div_euclid(1_000_000_000), off.rem_euclid(1_000_000_000));
    let (ms, mn) = split(clocks.0 - mono);
    let (bs, bn) = split(clocks.1 - boot);
    CString::new(format!("monotonic {ms} {mn}\nboottime {bs} {bn}\n"))
        .map_err(|_| Error::Parse("timens offsets".into()))
}

/// A running (or finished) sandboxed job.
#[derive(Debug)]
pub struct Sandbox {
    init_pid: i32,
    pidfd: OwnedFd,
    report: File,
    program_pid: i32,
    program_ns_pid: i32,
    user_ns: bool,
    status: Option<ExitStatus>,
    /// The launched program's raw wait status, once known (it may end before the job).
    launched_exit: std::sync::Mutex<Option<i32>>,
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Size of `struct clone_args` with set_tid and cgroup (CLONE_ARGS_SIZE_VER2).
pub const CLONE_ARGS_SIZE: usize = std::mem::size_of::<CloneArgs>();

/// Prepared, allocation-free description of init's job.
struct InitCtx<'a> {
    sync_r: i32,
    report_w: i32,
    exec_w: i32,
    go_r: i32,
    timens: Option<CString>,
    keep: Vec<i32>,
    set_tid: i32,
    exec: Option<(CString, Vec<*const libc::c_char>, Vec<*const libc::c_char>)>,
    stdio: Option<[i32; 3]>,
    custom: Option<&'a (dyn Fn() -> i32 + Sync)>,
    sigset: libc::sigset_t,
    /// Whether the child init creates is the launched program (its end is reported).
    track: bool,
}

fn resolve_program(prog: &std::ffi::OsStr) -> Result<CString> {
    let bytes = prog.as_bytes();
    let found = if bytes.contains(&b'/') {
        Some(std::path::PathBuf::from(prog))
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(prog))
                .find(|p| {
                    std::fs::metadata(p)
                        .map(|m| {
                            use std::os::unix::fs::PermissionsExt;
                            m.is_file() && m.permissions().mode() & 0o111 != 0
                        })
                        .unwrap_or(false)
                })
        })
    };
    let path = found.ok_or_else(|| {
        Error::Unsupported(format!(
            "program not found: {}",
            String::from_utf8_lossy(bytes)
        ))
    })?;
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::Unsupported("program path contains a NUL byte".into()))
}

fn cstrings(v: impl Iterator<Item = Vec<u8>>) -> Result<Vec<CString>> {
    v.map(|b| CString::new(b).map_err(|_| Error::Unsupported("argument contains NUL".into())))
        .collect()
}

fn pipe() -> Result<(i32, i32)> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(last_os("pipe2"));
    }
    Ok((fds[0], fds[1]))
}

/// Close every descriptor except those in `keep` (sorted ascending). Allocation-free.
fn close_except(keep: &[i32]) {
    let mut lo: u32 = 0;
    for &k in keep {
        if k < 0 || (k as u32) < lo {
            continue;
        }
        if (k as u32) > lo {
            // SAFETY: close_range only closes descriptors of this process.
            unsafe { libc::syscall(libc::SYS_close_range, lo, k as u32 - 1, 0) };
        }
        lo = k as u32 + 1;
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, lo, u32::MAX, 0) };
}

fn report(fd: i32, tag: i32, val: i32) {
    let msg = [tag, val];
    // SAFETY: writes 8 bytes from `msg`.
    unsafe { libc::write(fd, msg.as_ptr().cast(), 8) };
}

/// In init, inside the job's own mount namespace: stops mounts from propagating back to the
/// host (while host mounts still reach the job), then mounts a procfs of the job's PID
/// namespace on /proc, so that the program's /proc/self, /proc/PID and /proc/self/task show its
/// own pids and tids — the same after a restart, as getpid() and gettid() are. Where the
/// kernel refuses (e.g. a container whose /proc is partly masked), the job keeps the host's
/// /proc, as without a mount namespace.
fn mount_own_proc() {
    let root = b"/\0";
    let proc_ = b"/proc\0";
    let fstype = b"proc\0";
    // SAFETY: mount(2) with NUL-terminated constant strings and no data.
    unsafe {
        if libc::mount(
            std::ptr::null(),
            root.as_ptr().cast(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        ) == 0
        {
            libc::mount(
                fstype.as_ptr().cast(),
                proc_.as_ptr().cast(),
                fstype.as_ptr().cast(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            );
        }
    }
}

/// PID 1 of the sandbox. Never returns.
fn init_main(ctx: &InitCtx<'_>) -> ! {
    // The job dies with its agent: when the agent is killed (even by SIGKILL), init gets
    // SIGKILL, and the kernel then kills every process of the PID namespace. An agent that died
    // before this line is noticed below: its end of the sync pipe reads as closed.
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    close_except(&ctx.keep);
    let mut b = 0u8;
    // SAFETY: raw syscalls on descriptors and buffers owned by this function; no allocation.
    unsafe {
        if libc::read(ctx.sync_r, (&mut b as *mut u8).cast(), 1) != 1 {
            libc::_exit(99);
        }
        libc::close(ctx.sync_r);
        mount_own_proc();
        if let Some(text) = &ctx.timens {
            // Children of init live in a new time namespace whose clocks continue from the
            // checkpoint (offsets must be written before any process enters it).
            let path = b"/proc/self/timens_offsets\0";
            // A kernel without time namespaces (EINVAL) restores with jumping clocks.
            let unshared = libc::unshare(CLONE_NEWTIME) == 0;
            let ok = (!unshared && *libc::__errno_location() == libc::EINVAL)
                || unshared && {
                    let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
                    let len = text.as_bytes().len();
                    let w = fd >= 0 && libc::write(fd, text.as_ptr().cast(), len) == len as isize;
                    if fd >= 0 {
                        libc::close(fd);
                    }
                    w
                };
            if !ok {
                report(ctx.report_w, 4, *libc::__errno_location());
                libc::_exit(99);
            }
        }
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigprocmask(libc::SIG_BLOCK, &ctx.sigset, &mut old);
        let tid = [ctx.set_tid];
        let args = CloneArgs {
            exit_signal: libc::SIGCHLD as u64,
            set_tid: if ctx.set_tid > 0 {
                tid.as_ptr() as u64
            } else {
                0
            },
            set_tid_size: u64::from(ctx.set_tid > 0),
            ..Default::default()
        };
        let pid = libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, CLONE_ARGS_SIZE);
        if pid == 0 {
            // Wait until the agent has recorded our outer pid.
            let mut go = 0u8;
            if libc::read(ctx.go_r, (&mut go as *mut u8).cast(), 1) != 1 {
                libc::_exit(127);
            }
            libc::close(ctx.go_r);
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            if let Some((path, argv, envp)) = &ctx.exec {
                libc::close(ctx.report_w);
                if let Some(fds) = ctx.stdio {
                    // Move the sources above 2 first so that dup2 never clobbers one.
                    let mut moved = [0i32; 3];
                    for i in 0..3 {
                        moved[i] = libc::fcntl(fds[i], libc::F_DUPFD_CLOEXEC, 3);
                    }
                    for (i, &m) in moved.iter().enumerate() {
                        if m < 0 || libc::dup2(m, i as i32) < 0 {
                            libc::_exit(126);
                        }
                    }
                }
                libc::syscall(
                    libc::SYS_close_range,
                    3u32,
                    u32::MAX,
                    libc::CLOSE_RANGE_CLOEXEC,
                );
                libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
                let e = *libc::__errno_location();
                libc::write(ctx.exec_w, (&e as *const i32).cast(), 4);
                libc::_exit(127);
            }
            // No exec here: the agent learns that the program started from the closed exec
            // pipe (a restore stub may need the agent before it has finished).
            libc::close(ctx.exec_w);
            let code = match ctx.custom {
                Some(run) => run(),
                None => 127,
            };
            libc::_exit(code);
        }
        if pid < 0 {
            report(ctx.report_w, 3, *libc::__errno_location());
            libc::_exit(99);
        }
        let pid = pid as i32;
        // Init itself needs only the report pipe: holding the child's descriptors would keep
        // pipes open (no EOF for the agent if the child dies).
        close_except(&[ctx.report_w]);
        report(ctx.report_w, 1, pid);
        // The launched program while it runs (0 once it has ended, or when the child is not it).
        let mut program = if ctx.track { pid } else { 0 };
        loop {
            let sig = libc::sigwaitinfo(&ctx.sigset, std::ptr::null_mut());
            if sig == libc::SIGCHLD {
                loop {
                    let mut st = 0;
                    let r = libc::waitpid(-1, &mut st, libc::WNOHANG | libc::__WALL);
                    if r < 0 && *libc::__errno_location() == libc::ECHILD {
                        // The last process of the job has ended.
                        libc::_exit(0);
                    }
                    if r <= 0 {
                        break;
                    }
                    if r == program {
                        report(ctx.report_w, 2, st);
                        program = 0;
                    }
                }
            } else if sig > 0 {
                // To the launched program; once it has ended, to every process of the job.
                libc::kill(if program > 0 { program } else { -1 }, sig);
            }
        }
    }
}

fn write_file(path: &str, data: &str) -> Result<()> {
    std::fs::write(path, data).map_err(|source| Error::Sys {
        what: format!("writing {path}"),
        source,
    })
}

/// Wait until the program has executed (EOF on the close-on-exec pipe) or report why not.
fn wait_exec(exec_r: OwnedFd) -> Result<()> {
    let mut f = File::from(exec_r);
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).map_err(|source| Error::Sys {
        what: "waiting for the program to start".into(),
        source,
    })?;
    if buf.len() >= 4 {
        let e = i32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
        return Err(Error::Sys {
            what: "cannot execute the program".into(),
            source: std::io::Error::from_raw_os_error(e),
        });
    }
    Ok(())
}

impl Sandbox {
    /// Run `argv` in a new sandbox (see the module doc). The program inherits the caller's
    /// stdin/stdout/stderr and environment; other descriptors are not passed on.
    pub fn launch(argv: &[OsString]) -> Result<Sandbox> {
        Self::launch_with(ChildSpec::Exec {
            argv: argv.to_vec(),
            stdio: None,
        })
    }

    /// Start a sandbox whose init runs `child`. A user namespace is used when the caller is not
    /// root (the caller's uid and gid map to themselves).
    pub fn launch_with(child: ChildSpec<'_>) -> Result<Sandbox> {
        // SAFETY: geteuid/getegid cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let user_ns = uid != 0;
        let (sync_r, sync_w) = pipe()?;
        let (report_r, report_w) = match pipe() {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: closing descriptors this function created.
                unsafe {
                    libc::close(sync_r);
                    libc::close(sync_w);
                }
                return Err(e);
            }
        };
        // SAFETY: each descriptor is owned here and wrapped exactly once.
        let (sync_r_o, sync_w_o, report_r_o, report_w_o) = unsafe {
            (
                OwnedFd::from_raw_fd(sync_r),
                OwnedFd::from_raw_fd(sync_w),
                OwnedFd::from_raw_fd(report_r),
                OwnedFd::from_raw_fd(report_w),
            )
        };
        let (exec_r, exec_w) = pipe()?;
        // SAFETY: fresh descriptors owned here.
        let (exec_r_o, exec_w_o) =
            unsafe { (OwnedFd::from_raw_fd(exec_r), OwnedFd::from_raw_fd(exec_w)) };
        let (go_r, go_w) = pipe()?;
        // SAFETY: fresh descriptors owned here.
        let (go_r_o, go_w_o) = unsafe { (OwnedFd::from_raw_fd(go_r), OwnedFd::from_raw_fd(go_w)) };
        let mut keep = vec![0, 1, 2, sync_r, report_w, exec_w, go_r];
        let mut set_tid = 0;
        let mut exec = None;
        let mut custom = None;
        let mut stdio = None;
        let mut timens = None;
        let mut track = true;
        let mut launched = None;
        let mut _hold = Vec::new();
        match child {
            ChildSpec::Exec { argv, stdio: io } => {
                if let Some(fds) = io {
                    keep.extend(fds);
                }
                stdio = io;
                let first = argv
                    .first()
                    .ok_or_else(|| Error::Unsupported("empty command line".into()))?;
                let path = resolve_program(first)?;
                let args = cstrings(argv.iter().map(|a| a.as_bytes().to_vec()))?;
                let env = cstrings(std::env::vars_os().map(|(k, v)| {
                    let mut b = k.as_bytes().to_vec();
                    b.push(b'=');
                    b.extend_from_slice(v.as_bytes());
                    b
                }))?;
                let mut argp: Vec<*const libc::c_char> = args.iter().map(|c| c.as_ptr()).collect();
                argp.push(std::ptr::null());
                let mut envp: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
                envp.push(std::ptr::null());
                _hold.push(args);
                _hold.push(env);
                exec = Some((path, argp, envp));
            }
            ChildSpec::Custom {
                set_tid: t,
                keep_fds,
                run,
                clocks,
                launched_exit,
            } => {
                track = launched_exit.is_none();
                launched = launched_exit;
                if let Some(c) = clocks {
                    timens = Some(timens_offsets(c)?);
                }
                set_tid = t;
                keep.extend(keep_fds);
                custom = Some(run);
            }
        }
        keep.sort_unstable();
        // SAFETY: sigemptyset/sigaddset initialise a local sigset_t.
        let sigset = unsafe {
            let mut s: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut s);
            libc::sigaddset(&mut s, libc::SIGCHLD);
            for sig in FORWARDED_SIGNALS {
                libc::sigaddset(&mut s, sig);
            }
            s
        };
        let ctx = InitCtx {
            sync_r,
            report_w,
            exec_w,
            go_r,
            timens,
            keep,
            set_tid,
            exec,
            stdio,
            custom,
            sigset,
            track,
        };
        let mut pidfd: i32 = -1;
        // Own IPC namespace: System V segments of the job are the job's alone, and restore can
        // recreate them with their ids (cairn_kinds::sysv).
        // Own mount namespace: a /proc of the job's PID namespace (mount_own_proc).
        let mut flags =
            (libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWNS | libc::CLONE_PIDFD)
                as u64;
        if user_ns {
            flags |= libc::CLONE_NEWUSER as u64;
        }
        let args = CloneArgs {
            flags,
            pidfd: &mut pidfd as *mut i32 as u64,
            exit_signal: libc::SIGCHLD as u64,
            ..Default::default()
        };
        // SAFETY: clone3 without CLONE_VM behaves like fork: the child gets a copy of this
        // address space and runs init_main, which only makes raw syscalls and never returns.
        let pid =
            unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, CLONE_ARGS_SIZE) };
        if pid < 0 {
            return Err(last_os("clone3(CLONE_NEWPID) for the sandbox init"));
        }
        if pid == 0 {
            init_main(&ctx);
        }
        let init_pid = pid as i32;
        drop(sync_r_o);
        drop(report_w_o);
        drop(exec_w_o);
        drop(go_r_o);
        // SAFETY: clone3 stored a fresh pidfd owned by us.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        let mut sb = Sandbox {
            init_pid,
            pidfd,
            report: File::from(report_r_o),
            program_pid: 0,
            program_ns_pid: 0,
            user_ns,
            status: None,
            launched_exit: std::sync::Mutex::new(launched),
        };
        if let Err(e) = sb
            .start(sync_w_o, go_w_o, uid, gid)
            .and_then(|_| wait_exec(exec_r_o))
        {
            let _ = sb.kill();
            let _ = sb.wait();
            return Err(e);
        }
        Ok(sb)
    }

    fn start(&mut self, sync_w: OwnedFd, go_w: OwnedFd, uid: u32, gid: u32) -> Result<()> {
        let p = self.init_pid;
        if self.user_ns {
            write_file(&format!("/proc/{p}/setgroups"), "deny")?;
            write_file(&format!("/proc/{p}/uid_map"), &format!("{uid} {uid} 1\n"))?;
            write_file(&format!("/proc/{p}/gid_map"), &format!("{gid} {gid} 1\n"))?;
        }
        // SAFETY: writes one byte from a local.
        if unsafe { libc::write(sync_w.as_raw_fd(), [1u8].as_ptr().cast(), 1) } != 1 {
            return Err(last_os("starting the sandbox init"));
        }
        drop(sync_w);
        let mut msg = [0u8; 8];
        self.report
            .read_exact(&mut msg)
            .map_err(|source| Error::Sys {
                what: "the sandbox init died before starting the program".into(),
                source,
            })?;
        let tag = i32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]);
        let val = i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
        match tag {
            1 => self.program_ns_pid = val,
            3 => {
                return Err(Error::Sys {
                    what: "the sandbox init could not create the program".into(),
                    source: std::io::Error::from_raw_os_error(val),
                })
            }
            4 => {
                return Err(Error::Sys {
                    what: "the sandbox init could not set up the time namespace".into(),
                    source: std::io::Error::from_raw_os_error(val),
                })
            }
            _ => return Err(Error::Parse(format!("sandbox init report tag {tag}"))),
        }
        let children = format!("/proc/{p}/task/{p}/children");
        let text = std::fs::read_to_string(&children).map_err(|source| Error::Sys {
            what: format!("reading {children}"),
            source,
        })?;
        self.program_pid = text
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or(Error::Exited { pid: p })?;
        // SAFETY: writes one byte from a local.
        if unsafe { libc::write(go_w.as_raw_fd(), [1u8].as_ptr().cast(), 1) } != 1 {
            return Err(last_os("releasing the program"));
        }
        Ok(())
    }

    /// Pid (in the caller's namespace) of the sandbox init.
    pub fn init_pid(&self) -> i32 {
        self.init_pid
    }
    /// Pid (in the caller's namespace) of the process init created: the launched program, or
    /// at a restore the first process of the image (a helper when the launched program had
    /// already ended). It may have ended while the job goes on.
    pub fn program_pid(&self) -> i32 {
        self.program_pid
    }
    /// Pid inside the sandbox's PID namespace of the process init created.
    pub fn program_ns_pid(&self) -> i32 {
        self.program_ns_pid
    }
    /// Whether the sandbox has its own user namespace.
    pub fn user_ns(&self) -> bool {
        self.user_ns
    }
    /// A pidfd of the init: readable (poll) once the job has ended.
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Send `sig` to the program (through init, which forwards [`FORWARDED_SIGNALS`]);
    /// SIGKILL kills the whole sandbox.
    pub fn signal(&self, sig: i32) -> Result<()> {
        // SAFETY: pidfd_send_signal on our own pidfd with no siginfo.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r < 0 {
            return Err(last_os(format!("signalling the sandbox with {sig}")));
        }
        Ok(())
    }

    /// Kill everything in the sandbox.
    pub fn kill(&self) -> Result<()> {
        self.signal(libc::SIGKILL)
    }

    fn finish(&mut self, init_status: i32) -> ExitStatus {
        let mut buf = Vec::new();
        let _ = self.report.read_to_end(&mut buf);
        let reported = buf
            .chunks_exact(8)
            .map(|m| {
                (
                    i32::from_ne_bytes([m[0], m[1], m[2], m[3]]),
                    i32::from_ne_bytes([m[4], m[5], m[6], m[7]]),
                )
            })
            .find(|(t, _)| *t == 2)
            .map(|(_, v)| v);
        let known = *self
            .launched_exit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let st = known
            .or(reported)
            .map(ExitStatus::from_wait)
            .unwrap_or_else(|| ExitStatus::from_wait(init_status));
        self.status = Some(st);
        st
    }

    /// The launched program's raw wait status if it has ended — the job may go on with other
    /// processes — waiting at most `timeout` for init to report it. None while it runs.
    pub fn launched_exit(&self, timeout: std::time::Duration) -> Result<Option<i32>> {
        let mut known = self
            .launched_exit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.is_some() {
            return Ok(*known);
        }
        let mut pfd = libc::pollfd {
            fd: self.report.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: poll on one pollfd we own.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            return Err(last_os("polling the sandbox's report"));
        }
        if r == 0 || pfd.revents & libc::POLLIN == 0 {
            return Ok(None);
        }
        // Init writes each report in one 8-byte write: a readable pipe holds a whole one.
        let mut msg = [0u8; 8];
        if (&self.report).read_exact(&mut msg).is_err() {
            return Ok(None);
        }
        let tag = i32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]);
        if tag == 2 {
            *known = Some(i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]));
        }
        Ok(*known)
    }

    /// Wait for the job to end; returns the program's exit status.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        let mut st = 0;
        loop {
            // SAFETY: waitpid writes one int.
            let r = unsafe { libc::waitpid(self.init_pid, &mut st, 0) };
            if r == self.init_pid {
                break;
            }
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return Err(last_os("waiting for the sandbox"));
            }
        }
        Ok(self.finish(st))
    }

    /// The exit status if the job has ended, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let mut st = 0;
        // SAFETY: waitpid writes one int.
        let r = unsafe { libc::waitpid(self.init_pid, &mut st, libc::WNOHANG) };
        if r < 0 {
            return Err(last_os("polling the sandbox"));
        }
        if r == 0 {
            return Ok(None);
        }
        Ok(Some(self.finish(st)))
    }
}
