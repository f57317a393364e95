//! End-to-end proof, through the real `cairn launch` / `cairn restart` CLI, that the
//! stdin, stdout and stderr of a restarted program are the `cairn restart` command's own when
//! they were pipes or a terminal, and that a program checkpointed while blocked in read(2) on
//! them resumes that read after restart: no EINTR, no SIGTTIN/SIGTTOU stop, no EIO.
//!
//! Each test holds the job's stdio itself and talks to `stdio_echo` line by line: line k is
//! written only once both answers to line k-1 were read, so no unread input waits outside the
//! job at a checkpoint. Before each checkpoint the program is seen blocked in read(2) on fd 0;
//! after the commit the whole job is killed with SIGKILL and restarted on NEW pipes or a NEW
//! pseudo-terminal (the old ones are closed), three times. All answers received over the four
//! incarnations must equal, byte for byte, those of a native run fed the same lines. Every
//! read has a deadline, and the job's process group is killed when a test fails.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::termios::{self, LocalFlags, OutputFlags, SetArg};
use nix::unistd::Pid;

use cairn_testkit::{children, compile_c, open_up, Area, Scratch, COMMITTED, RUNNING};

/// Lines sent to the program in every run.
const LINES: usize = 12;
/// A checkpoint → kill -9 → restart cycle follows the answers to these lines.
const CYCLE_AFTER: [usize; 3] = [3, 6, 9];
/// Deadline for one answer, one agent message or the end of a run.
const STEP: Duration = Duration::from_secs(60);
/// Deadline for a committed checkpoint or a finished restore (the machine is shared).
const SLOW_STEP: Duration = Duration::from_secs(180);

/// The k-th input line (lengths vary).
fn input_line(k: usize) -> String {
    format!("line {k} {}", "abcdefghij".repeat(k % 5 + 1))
}

/// How the job's stdin, stdout and stderr are connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Three pipes held by the test.
    Pipes,
    /// One pseudo-terminal, also the controlling terminal of the job's session.
    Terminal,
}

/// The lines read from one descriptor (a pipe's read end or a pty master).
struct Lines {
    fd: OwnedFd,
    buf: Vec<u8>,
    eof: bool,
}

impl Lines {
    fn new(fd: OwnedFd) -> Self {
        Lines {
            fd,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// The next line without its '\n'; `None` at the end of the stream (end of file, or EIO on
    /// a pty master once no terminal descriptor is open); `Err` at `deadline`.
    fn next(&mut self, deadline: Instant) -> Result<Option<Vec<u8>>, String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                return Ok(Some(line));
            }
            if self.eof {
                return Ok((!self.buf.is_empty()).then(|| std::mem::take(&mut self.buf)));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "timed out; unterminated input so far: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ));
            }
            let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(format!("poll: {e}")),
            }
            let mut chunk = [0u8; 4096];
            match nix::unistd::read(&self.fd, &mut chunk) {
                Ok(0) | Err(Errno::EIO) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

/// A line as cairn meant it: a spinner (a step longer than a second, stderr on a terminal)
/// leaves carriage returns and escape sequences before the next line; they are dropped. The
/// program's own lines contain neither and are returned unchanged.
fn clean(line: &[u8]) -> Vec<u8> {
    let start = line.iter().rposition(|&b| b == b'\r').map_or(0, |i| i + 1);
    let mut out = Vec::new();
    let mut rest = &line[start..];
    while let Some((&b, tail)) = rest.split_first() {
        if b == 0x1b && tail.first() == Some(&b'[') {
            // A CSI sequence ends with a byte in 0x40..=0x7e.
            let end = tail[1..]
                .iter()
                .position(|c| (0x40..=0x7e).contains(c))
                .map_or(tail.len(), |i| i + 2);
            rest = &tail[end..];
        } else {
            out.push(b);
            rest = tail;
        }
    }
    out
}

/// The test's side of one incarnation's stdin, stdout and stderr, and the job's side.
struct Io {
    /// Where the program's input is written: the stdin pipe or the pty master.
    input: File,
    /// The stdout pipe, or the pty master (stdout, stderr and cairn's messages).
    out: Lines,
    /// The stderr pipe (the program's and cairn's stderr); `None` on a terminal.
    err: Option<Lines>,
    /// The job's stdin, stdout and stderr, until [`spawn`] takes them.
    job: Option<[OwnedFd; 3]>,
    /// What `/proc/PID/fd/{0,1,2}` of the program must name.
    links: [String; 3],
}

/// What `/proc/self/fd/FD` names (e.g. `pipe:[1234]`).
fn link_of(fd: &OwnedFd) -> String {
    let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
    fs::read_link(&p)
        .unwrap_or_else(|e| panic!("readlink {p}: {e}"))
        .to_string_lossy()
        .into_owned()
}

impl Io {
    /// Fresh pipes or a fresh pseudo-terminal (echo and output processing off), every
    /// descriptor close-on-exec so that concurrent tests' children never inherit them.
    fn new(kind: Kind) -> Io {
        match kind {
            Kind::Pipes => {
                let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe2");
                let (in_r, in_w) = pipe();
                let (out_r, out_w) = pipe();
                let (err_r, err_w) = pipe();
                let links = [link_of(&in_r), link_of(&out_w), link_of(&err_w)];
                Io {
                    input: File::from(in_w),
                    out: Lines::new(out_r),
                    err: Some(Lines::new(err_r)),
                    job: Some([in_r, out_w, err_w]),
                    links,
                }
            }
            Kind::Terminal => {
                let master =
                    nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
                        .expect("posix_openpt");
                nix::pty::grantpt(&master).expect("grantpt");
                nix::pty::unlockpt(&master).expect("unlockpt");
                let name = nix::pty::ptsname_r(&master).expect("ptsname_r");
                // std opens with O_CLOEXEC; O_NOCTTY: the test itself must not acquire it.
                let slave = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(libc::O_NOCTTY)
                    .open(&name)
                    .unwrap_or_else(|e| panic!("opening {name}: {e}"));
                // No echo of the input and no "\n" -> "\r\n": the answers arrive as written.
                // TOSTOP: a write from outside the foreground process group would stop the
                // writer (SIGTTOU), as a read does (SIGTTIN).
                let mut t = termios::tcgetattr(&slave).expect("tcgetattr");
                t.local_flags
                    .remove(LocalFlags::ECHO | LocalFlags::ECHONL | LocalFlags::ECHOCTL);
                t.local_flags.insert(LocalFlags::TOSTOP);
                t.output_flags.remove(OutputFlags::OPOST);
                termios::tcsetattr(&slave, SetArg::TCSANOW, &t).expect("tcsetattr");
                let master = OwnedFd::from(master);
                let slave = OwnedFd::from(slave);
                let dup = |fd: &OwnedFd| fd.try_clone().expect("dup");
                Io {
                    input: File::from(dup(&master)),
                    out: Lines::new(master),
                    err: None,
                    job: Some([dup(&slave), dup(&slave), slave]),
                    links: [name.clone(), name.clone(), name],
                }
            }
        }
    }
}

/// Everything received in one run: the program's stdout and stderr lines (on a terminal, all
/// in `out`) and cairn's own messages.
#[derive(Debug, Default)]
struct Transcript {
    out: Vec<u8>,
    err: Vec<u8>,
    log: String,
}

impl Transcript {
    /// A readable dump for failure messages.
    fn dump(&self) -> String {
        format!(
            "program stdout:\n{}\nprogram stderr:\n{}\ncairn messages:\n{}",
            String::from_utf8_lossy(&self.out),
            String::from_utf8_lossy(&self.err),
            self.log
        )
    }
}

/// One dialogue with the program over the stdio of its current incarnation.
struct Talk {
    kind: Kind,
    io: Io,
    t: Transcript,
}

/// Which stream of [`Io`].
#[derive(Clone, Copy)]
enum Stream {
    Out,
    Err,
}

impl Talk {
    /// Fails the test with everything received so far (the [`Group`] guards then kill the job).
    fn fail(&self, what: &str) -> ! {
        panic!("{what}\n{}", self.t.dump())
    }

    /// Writes one input line.
    fn send(&mut self, line: &str) {
        if let Err(e) = self.io.input.write_all(format!("{line}\n").as_bytes()) {
            self.fail(&format!("writing {line:?} to the program's stdin: {e}"));
        }
    }

    fn lines(&mut self, s: Stream) -> &mut Lines {
        match (s, self.io.err.as_mut()) {
            (Stream::Err, Some(err)) => err,
            _ => &mut self.io.out,
        }
    }

    /// The next line of `s`, recorded: cairn's messages in the log, the program's lines in
    /// the transcript of `s`. Returns the line and whether it is the program's.
    fn next(&mut self, s: Stream, deadline: Instant, what: &str) -> Option<(Vec<u8>, bool)> {
        let line = match self.lines(s).next(deadline) {
            Ok(l) => l?,
            Err(e) => self.fail(&format!("waiting for {what}: {e}")),
        };
        let cleaned = if line.iter().any(|&b| b == b'\r' || b == 0x1b) {
            clean(&line)
        } else {
            line
        };
        if cleaned.starts_with(b"cairn: ") || cleaned.is_empty() {
            self.t.log.push_str(&String::from_utf8_lossy(&cleaned));
            self.t.log.push('\n');
            return Some((cleaned, false));
        }
        let to = match (s, self.kind) {
            (Stream::Err, Kind::Pipes) => &mut self.t.err,
            _ => &mut self.t.out,
        };
        to.extend_from_slice(&cleaned);
        to.push(b'\n');
        Some((cleaned, true))
    }

    /// Reads `s` until a line of the program arrives.
    fn program_line(&mut self, s: Stream, what: &str) {
        let deadline = Instant::now() + STEP;
        loop {
            match self.next(s, deadline, what) {
                Some((_, true)) => return,
                Some((_, false)) => {}
                None => self.fail(&format!("the stream ended while waiting for {what}")),
            }
        }
    }

    /// Reads the two answers (stdout, then stderr) to the last line sent.
    fn answer(&mut self, what: &str) {
        self.program_line(Stream::Out, &format!("the stdout answer to {what}"));
        self.program_line(Stream::Err, &format!("the stderr answer to {what}"));
    }

    /// Reads cairn's stderr until one of its messages contains `needle`.
    fn agent_says(&mut self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        let what = format!("cairn's message {needle:?}");
        loop {
            match self.next(Stream::Err, deadline, &what) {
                Some((l, false)) if String::from_utf8_lossy(&l).contains(needle) => return,
                Some(_) => {}
                None => self.fail(&format!("the stream ended while waiting for {what}")),
            }
        }
    }

    /// Reads every stream to its end (all writers gone).
    fn drain(&mut self) {
        let deadline = Instant::now() + STEP;
        while self
            .next(Stream::Out, deadline, "the end of stdout")
            .is_some()
        {}
        if self.io.err.is_some() {
            while self
                .next(Stream::Err, deadline, "the end of stderr")
                .is_some()
            {}
        }
    }
}

/// A process started in a session of its own (its pid is its process group), with its whole
/// group killed with SIGKILL when the guard is dropped unfinished (e.g. by a failing test).
struct Group {
    child: Child,
    done: bool,
    /// The uid its processes run as.
    uid: u32,
}

/// Starts `argv` (as `user` with `setpriv` when given) in `dir` with `io`'s job side as stdin,
/// stdout and stderr, in a new session; with `ctty`, the terminal on fd 0 becomes the
/// session's controlling terminal (and its process group the foreground one).
fn spawn(argv: &[OsString], dir: &Path, io: &mut Io, ctty: bool, user: Option<&str>) -> Group {
    let mut full = cairn_testkit::as_user(user);
    full.extend(argv.iter().cloned());
    let Some([stdin, stdout, stderr]) = io.job.take() else {
        panic!("the job's side of this stdio was already given away");
    };
    let mut cmd = Command::new(&full[0]);
    cmd.args(&full[1..])
        .current_dir(dir)
        .env_remove("CAIRN_FAULT")
        .env_remove("CAIRN_GC_GRACE")
        .env_remove("CAIRN_STORE")
        .env_remove("CAIRN_COORD_HOST")
        .env_remove("CAIRN_COORD_PORT")
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr));
    // SAFETY: the closure runs in the forked child before exec and calls only setsid(2) and
    // ioctl(2), which are async-signal-safe, on the child's own descriptor 0 (already the
    // terminal: std installs stdio before running pre_exec closures); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if ctty && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {full:?}: {e}"));
    // `cmd` (and with it the test's copies of the job's descriptors) is dropped here.
    let uid = match user {
        Some(u) => nix::unistd::User::from_name(u)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no user {u}"))
            .uid
            .as_raw(),
        None => nix::unistd::geteuid().as_raw(),
    };
    Group {
        child,
        done: false,
        uid,
    }
}

impl Group {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Kills the whole group with SIGKILL and waits until none of it is left (bounded);
    /// false if some process survived.
    fn kill_all(&mut self) -> bool {
        let pgid = Pid::from_raw(self.pid());
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = self.child.wait();
        self.done = true;
        group_gone(pgid)
    }

    /// Waits (at most `within`) for the leader to exit and the group to empty; its exit
    /// code (128+N for signal N), or `None` on timeout.
    fn finish(&mut self, within: Duration) -> Option<i32> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.done = true;
                group_gone(Pid::from_raw(self.pid()));
                return Some(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.done {
            self.kill_all();
        }
    }
}

/// Waits (at most 20 s) until no process of group `pgid` remains.
fn group_gone(pgid: Pid) -> bool {
    let end = Instant::now() + Duration::from_secs(20);
    while killpg(pgid, None).is_ok() {
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// The outer pid of the job's program: the one descendant of the agent `agent` that lives in
/// a PID namespace below ours and is not that namespace's init.
fn program_pid(agent: i32) -> Option<i32> {
    let mut found = Vec::new();
    let mut todo = children(agent);
    while let Some(p) = todo.pop() {
        todo.extend(children(p));
        let status = fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
        let ns: Vec<&str> = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .map(|v| v.split_whitespace().collect())
            .unwrap_or_default();
        if ns.len() >= 2 && ns.last() != Some(&"1") {
            found.push(p);
        }
    }
    (found.len() == 1).then(|| found[0])
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the parenthesised command name.
    stat.rsplit_once(") ")
        .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
}

/// Waits until `pid` is blocked in read(2) on its fd 0 (`/proc/PID/syscall`: number 0 on
/// x86-64, first argument 0); false after `within`.
fn blocked_in_read(pid: i32, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        let s = fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
        if s.starts_with("0 0x0 ") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Finds the program under the agent of `g`, and checks that it runs as `g`'s user, that its
/// fds 0, 1, 2 are `io`'s and that it is blocked in read(2) on fd 0.
fn check_program(talk: &Talk, g: &Group, when: &str) -> i32 {
    let end = Instant::now() + STEP;
    let pid = loop {
        if let Some(p) = program_pid(g.pid()) {
            break p;
        }
        if Instant::now() > end || !alive(g.pid()) {
            talk.fail(&format!(
                "{when}: the program was not found below the agent"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u32>().ok());
    if uid != Some(g.uid) {
        talk.fail(&format!(
            "{when}: the program runs as uid {uid:?}, not {}",
            g.uid
        ));
    }
    for (fd, want) in talk.io.links.iter().enumerate() {
        let got = fs::read_link(format!("/proc/{pid}/fd/{fd}"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|e| format!("(unreadable: {e})"));
        if &got != want {
            talk.fail(&format!(
                "{when}: the program's fd {fd} is {got}, not this incarnation's {want}"
            ));
        }
    }
    if !blocked_in_read(pid, STEP) {
        let s = fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
        talk.fail(&format!(
            "{when}: the program is not blocked in read(2) on fd 0 (syscall: {s})"
        ));
    }
    pid
}

/// Runs the whole dialogue natively (no cairn) and returns what it received.
fn native(kind: Kind, user: Option<&str>, dir: &Path) -> Transcript {
    let prog = compile_c("stdio_echo");
    let mut io = Io::new(kind);
    let mut g = spawn(
        &[prog.into_os_string()],
        dir,
        &mut io,
        kind == Kind::Terminal,
        user,
    );
    let mut talk = Talk {
        kind,
        io,
        t: Transcript::default(),
    };
    for k in 1..=LINES {
        talk.send(&input_line(k));
        talk.answer(&format!("line {k}"));
    }
    talk.send("quit");
    talk.answer("quit");
    talk.drain();
    match g.finish(STEP) {
        Some(0) => talk.t,
        other => talk.fail(&format!("the native run ended with {other:?}")),
    }
}

/// Runs the dialogue under `cairn launch`, with a checkpoint → kill -9 → `cairn restart` on
/// new stdio after each line of [`CYCLE_AFTER`]; returns everything received.
fn under_cairn(kind: Kind, user: Option<&str>, scratch: &Scratch, job: &str) -> Transcript {
    let prog = compile_c("stdio_echo");
    let dir = scratch.sub("cairn");
    if user.is_some() {
        open_up(&dir);
    }
    let store = scratch.store();
    let base: Vec<OsString> = vec![
        cairn_testkit::cairn().into(),
        "--store".into(),
        store.into_os_string(),
        "--job".into(),
        job.into(),
    ];
    let command = |verb: &str, program: bool| {
        let mut argv = base.clone();
        argv.insert(1, verb.into());
        if program {
            argv.push("--".into());
            argv.push(prog.clone().into_os_string());
        }
        argv
    };
    let ctty = kind == Kind::Terminal;
    let mut io = Io::new(kind);
    let mut g = spawn(&command("launch", true), &dir, &mut io, ctty, user);
    let mut talk = Talk {
        kind,
        io,
        t: Transcript::default(),
    };
    talk.agent_says(RUNNING, SLOW_STEP);
    check_program(&talk, &g, "after launch");
    for k in 1..=LINES {
        talk.send(&input_line(k));
        talk.answer(&format!("line {k}"));
        if !CYCLE_AFTER.contains(&k) {
            continue;
        }
        // The checkpoint lands while the program is inside read(2) on its stdin.
        check_program(&talk, &g, &format!("before the checkpoint after line {k}"));
        if let Err(e) = kill(Pid::from_raw(g.pid()), Signal::SIGUSR1) {
            talk.fail(&format!("SIGUSR1 to the agent: {e}"));
        }
        talk.agent_says(COMMITTED, SLOW_STEP);
        if !g.kill_all() {
            talk.fail("a process of the job survived SIGKILL");
        }
        // The old pipes or terminal go away with the old Io: the restarted program can only
        // talk through the new ones.
        talk.io = Io::new(kind);
        g = spawn(&command("restart", false), &dir, &mut talk.io, ctty, user);
        talk.agent_says(RUNNING, SLOW_STEP);
        check_program(&talk, &g, &format!("after the restart after line {k}"));
    }
    talk.send("quit");
    talk.answer("quit");
    talk.drain();
    match g.finish(STEP) {
        Some(0) => talk.t,
        other => talk.fail(&format!("the last incarnation ended with {other:?}")),
    }
}

/// Checks every answer of `t`: isatty(0/1/2) as `kind` wants, the controlling terminal (the
/// terminal on stdin, or none), no EINTR, and the number of lines.
fn check_answers(t: &Transcript, kind: Kind, who: &str) {
    let (tty, ctty) = match kind {
        Kind::Pipes => ("tty=000", "ctty=none"),
        Kind::Terminal => ("tty=111", "ctty=stdin"),
    };
    let out = String::from_utf8_lossy(&t.out);
    let err = String::from_utf8_lossy(&t.err);
    let lines: Vec<&str> = out.lines().chain(err.lines()).collect();
    // One stdout and one stderr answer per input line and for "quit".
    assert_eq!(
        lines.len(),
        2 * (LINES + 1),
        "{who}: wrong number of answers\n{}",
        t.dump()
    );
    for l in &lines {
        assert!(
            l.contains(tty) && l.contains(ctty) && l.contains(" eintr=0 "),
            "{who}: answer {l:?} lacks {tty}, {ctty} or eintr=0\n{}",
            t.dump()
        );
    }
}

/// The differential proof for `kind`: native run, then the run under cairn with three
/// checkpoint → kill -9 → restart cycles; the answers must be identical.
fn stdio_survives_restarts(kind: Kind, user: Option<&str>, job: &str) {
    let scratch = Scratch::new();
    if user.is_some() {
        open_up(scratch.dir.path());
        open_up(&compile_c("stdio_echo"));
    }
    let native_dir = scratch.sub("native");
    let native = native(kind, user, &native_dir);
    check_answers(&native, kind, "native run");
    let cairn = under_cairn(kind, user, &scratch, job);
    check_answers(&cairn, kind, "under cairn");
    let restarts = cairn.log.matches("restarting job").count();
    assert_eq!(restarts, CYCLE_AFTER.len(), "{}", cairn.dump());
    assert!(
        native.out == cairn.out && native.err == cairn.err,
        "answers under cairn differ from the native run's\nNATIVE:\n{}\nUNDER CAIRN:\n{}",
        native.dump(),
        cairn.dump()
    );
}

/// Pipes on stdin/stdout/stderr: after each restart the program reads the new stdin pipe and
/// answers on the new stdout and stderr pipes, resuming its blocked read without EINTR.
#[test]
fn pipes_are_the_restart_commands_own() {
    let _area = Area::enter(module_path!());
    stdio_survives_restarts(Kind::Pipes, None, "stdio-pipes");
}

/// A pseudo-terminal as stdin/stdout/stderr and controlling terminal: after each restart the
/// program's terminal is the new pty (isatty, /dev/tty), which it can read (no SIGTTIN stop,
/// no EIO) and write, resuming its blocked read without EINTR.
#[test]
fn terminal_is_the_restart_commands_own() {
    let _area = Area::enter(module_path!());
    stdio_survives_restarts(Kind::Terminal, None, "stdio-terminal");
}

/// The pipe test with `cairn launch`/`restart` (and the native run) as the unprivileged user
/// `cairn-test`.
#[test]
fn pipes_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    stdio_survives_restarts(Kind::Pipes, Some("cairn-test"), "stdio-pipes-user");
}

/// The terminal test with `cairn launch`/`restart` (and the native run) as the unprivileged
/// user `cairn-test`.
#[test]
fn terminal_as_unprivileged_user() {
    let _area = Area::enter(module_path!());
    stdio_survives_restarts(Kind::Terminal, Some("cairn-test"), "stdio-terminal-user");
}
