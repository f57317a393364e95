//! Freezing and capturing every process of the job — the launched program, the processes
//! the sandbox init adopted (orphans, daemons) and all their descendants — rescanning until
//! no new process appears, parents first; exited-but-unreaped children are recorded as
//! zombies. The layout of sessions and groups is checked to be restorable
//! ([`cairn_sys::layout`]).

use crate::checkpoint::{capture_process, FreezeHints};
use cairn_image::{MemorySink, ProcessImage, ZombieImage};
use cairn_sys::error::{Error, Result};
use cairn_sys::freeze::Frozen;
use cairn_sys::layout::{Layout, Member};
use cairn_sys::procfs;
use std::collections::HashMap;
use std::fs;

/// A frozen tree: live processes (parents before children) with their outer parent pid, and
/// zombies (outer pid, outer parent pid).
#[derive(Debug, Default)]
pub struct FrozenTree {
    /// (frozen process, outer pid of its parent: the sandbox init for the launched program
    /// and the processes the init adopted).
    pub procs: Vec<(Frozen, i32)>,
    /// (outer pid, outer parent pid) of zombies.
    pub zombies: Vec<(i32, i32)>,
    /// Outer pid of the sandbox init.
    pub init: i32,
    /// Outer pid of the launched program (which may have ended).
    pub program: i32,
}

/// State letter of /proc/PID/stat (None when the process is gone).
fn state(pid: i32) -> Option<char> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rfind(')')
        .and_then(|i| s[i + 1..].split_whitespace().next())
        .and_then(|st| st.chars().next())
}

impl FrozenTree {
    /// Freeze every process of the job under the sandbox init `init`: its children — the
    /// launched program `program` (first) and the processes it adopted (orphans, daemons) —
    /// and all their descendants. Fails with [`Error::Exited`] when no process of the job
    /// is left.
    pub fn freeze(init: i32, program: i32) -> Result<FrozenTree> {
        let mut t = FrozenTree {
            init,
            program,
            ..FrozenTree::default()
        };
        loop {
            let mut changed = false;
            // Parent 0 is the init, parent k the k-th frozen process.
            let mut k = 0;
            while k <= t.procs.len() {
                let parent = if k == 0 { init } else { t.procs[k - 1].0.pid };
                let mut kids = match procfs::children_of(parent) {
                    Ok(kids) => kids,
                    Err(_) if k == 0 => return Err(Error::Exited { pid: program }),
                    Err(e) => return Err(e),
                };
                if k == 0 {
                    kids.sort_by_key(|&c| c != program);
                }
                for c in kids {
                    if t.procs.iter().any(|p| p.0.pid == c) || t.zombies.iter().any(|z| z.0 == c) {
                        continue;
                    }
                    if state(c) == Some('Z') {
                        // The init reaps its own children; a frozen parent cannot reap.
                        if k > 0 {
                            t.zombies.push((c, parent));
                            changed = true;
                        }
                        continue;
                    }
                    changed = true;
                    match Frozen::freeze(c) {
                        Ok(f) => t.procs.push((f, parent)),
                        // It exited meanwhile: its frozen parent cannot reap it, so it is a
                        // zombie now (found as one by the next pass); the init reaps its own,
                        // and what such a process forked the init adopts (the next pass).
                        Err(Error::Exited { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                k += 1;
            }
            if !changed {
                break;
            }
        }
        if t.procs.is_empty() {
            return Err(Error::Exited { pid: program });
        }
        Ok(t)
    }

    /// Whether the launched program runs (it is then the first process).
    pub fn program_runs(&self) -> bool {
        self.procs
            .first()
            .is_some_and(|p| p.0.pid == self.program && p.1 == self.init)
    }

    /// Capture every process (memory into `sink`) and the zombies.
    pub fn capture(
        &self,
        sink: &mut dyn MemorySink,
        hints: &dyn FreezeHints,
    ) -> Result<(Vec<ProcessImage>, Vec<ZombieImage>)> {
        let shares = self.shared_tables()?;
        let mut images: Vec<ProcessImage> = Vec::new();
        let outside = job_stdio(self.procs.first().map(|p| p.0.pid));
        let mut inner: HashMap<i32, i32> = HashMap::new();
        for (fz, parent) in &self.procs {
            let pimg = images
                .iter()
                .zip(&self.procs)
                .find(|(_, (f, _))| f.pid == *parent)
                .map(|(img, _)| (*parent, img.fds.as_slice()));
            if *parent == self.init && fz.pid != self.program {
                check_adopted_stdio(fz.pid, &outside)?;
            }
            let earlier: Vec<(i32, i32, &[cairn_image::FdImage])> = images
                .iter()
                .zip(&self.procs)
                .map(|(img, (f, _))| (f.pid, img.pid, img.fds.as_slice()))
                .collect();
            let mut img = capture_process(fz, pimg, &earlier, sink, hints)?;
            if let Some(pi) = images
                .iter()
                .zip(&self.procs)
                .position(|(_, (f, _))| f.pid == *parent)
            {
                crate::cow::mark_inherited(fz.pid, *parent, &mut img, &images[pi])?;
            }
            img.ppid = inner.get(parent).copied().unwrap_or(1);
            img.shares_files = shares[images.len()];
            inner.insert(fz.pid, img.pid);
            images.push(img);
        }
        for (img, (fz, _)) in images.iter().zip(&self.procs) {
            check_controlling_terminal(img, fz.pid)?;
        }
        let mut zombies = Vec::new();
        for &(z, parent) in &self.zombies {
            let stat = procfs::read_stat(z)?;
            let status = procfs::stat_field(&stat, 52)? as i32;
            let path = format!("/proc/{z}/status");
            let pid = procfs::inner_pid(&path)?;
            let ns = |key| -> Result<i32> {
                let v = procfs::status_field(&path, key)?;
                v.split_whitespace()
                    .last()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| Error::Parse(format!("{path}: {key} {v}")))
            };
            zombies.push(ZombieImage {
                pid,
                ppid: inner.get(&parent).copied().unwrap_or(1),
                status,
                pgid: Some(ns("NSpgid")?),
                sid: Some(ns("NSsid")?),
            });
        }
        let members: Vec<Member> = images
            .iter()
            .map(|p| Member {
                pid: p.pid,
                ppid: p.ppid,
                sid: p.sid,
                pgid: p.pgid,
                zombie: None,
            })
            .chain(zombies.iter().map(|z| Member {
                pid: z.pid,
                ppid: z.ppid,
                sid: z.sid.unwrap_or_default(),
                pgid: z.pgid.unwrap_or_default(),
                zombie: Some(z.status),
            }))
            .collect();
        Layout::plan(&members, self.program_runs()).map_err(|e| {
            Error::Unsupported(format!(
                "{e}: this layout of sessions and process groups cannot be restored"
            ))
        })?;
        Ok((images, zombies))
    }
}

impl FrozenTree {
    /// For every process, whether it shares its parent's descriptor table (`clone` with
    /// `CLONE_FILES` but not `CLONE_THREAD`), which restore rebuilds the same way. Any other
    /// sharing of a descriptor table (between processes that do not each share their
    /// parent's), and processes sharing one address space (`CLONE_VM`, a `vfork` child before
    /// its exec), are refused.
    fn shared_tables(&self) -> Result<Vec<bool>> {
        const KCMP_VM: i32 = 1;
        const KCMP_FILES: i32 = 2;
        let same = |a: i32, b: i32, what: i32| {
            // SAFETY: kcmp only compares kernel objects; no memory is passed.
            unsafe { libc::syscall(libc::SYS_kcmp, a, b, what, 0, 0) == 0 }
        };
        let ns = |pid: i32| procfs::inner_pid(&format!("/proc/{pid}/status")).unwrap_or(pid);
        let index = |pid: i32| self.procs.iter().position(|p| p.0.pid == pid);
        let shares: Vec<bool> = self
            .procs
            .iter()
            .map(|(f, parent)| {
                *parent != self.init && index(*parent).is_some() && same(f.pid, *parent, KCMP_FILES)
            })
            .collect();
        // The first process of the chain of table sharers that `i` belongs to.
        let leader = |mut i: usize| {
            while shares[i] {
                match index(self.procs[i].1) {
                    Some(p) => i = p,
                    None => break,
                }
            }
            i
        };
        for (i, (a, _)) in self.procs.iter().enumerate() {
            for (j, (b, _)) in self.procs[..i].iter().enumerate() {
                if same(a.pid, b.pid, KCMP_VM) {
                    return Err(Error::Unsupported(format!(
                        "processes {} and {} share one address space (clone with CLONE_VM, or \
                         a vfork child that has not called exec yet): processes sharing memory \
                         this way cannot be checkpointed",
                        ns(b.pid),
                        ns(a.pid)
                    )));
                }
                if same(a.pid, b.pid, KCMP_FILES) != (leader(i) == leader(j)) {
                    return Err(Error::Unsupported(format!(
                        "processes {} and {} share one descriptor table (clone with \
                         CLONE_FILES) that is not their parent's: a descriptor table shared \
                         other than between parent and child cannot be checkpointed",
                        ns(b.pid),
                        ns(a.pid)
                    )));
                }
            }
        }
        Ok(shares)
    }
}

/// A process of the job that leads its own session and has a controlling terminal (it opened
/// one without O_NOCTTY or called TIOCSCTTY after setsid): restore gives it back only for a
/// pseudo-terminal the job opened itself (decided by the pty kind, `cairn_kinds::pty`), so
/// any other terminal is refused.
fn check_controlling_terminal(p: &ProcessImage, outer: i32) -> Result<()> {
    if p.sid != p.pid {
        return Ok(());
    }
    let tty = procfs::stat_field(&procfs::read_stat(outer)?, 7)?;
    if tty != 0 {
        let (major, minor) = (
            ((tty >> 8) & 0xfff),
            ((tty & 0xff) | ((tty >> 12) & 0xfff00)),
        );
        if major == 136 {
            return Ok(());
        }
        return Err(Error::Unsupported(format!(
            "process {} leads its own session and has a controlling terminal (device \
             {major}:{minor}): a controlling terminal acquired inside the job cannot be \
             checkpointed",
            p.pid
        )));
    }
    Ok(())
}

/// What the descriptors 0, 1 and 2 of the job's own stdio lead to: those of this agent (the
/// program got them at launch; a restart gives its own) and of the launched program `first`.
fn job_stdio(first: Option<i32>) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for dir in ["/proc/self/fd".to_string()]
        .into_iter()
        .chain(first.map(|p| format!("/proc/{p}/fd")))
    {
        out.extend((0..3).filter_map(|fd| fs::read_link(format!("{dir}/{fd}")).ok()));
    }
    out
}

/// A process adopted by the init (not the launched program) has no parent in the image, so
/// a terminal, pipe or socket on its 0, 1 or 2 is restored as the job's own stdio: refused
/// when it is something else.
fn check_adopted_stdio(pid: i32, outside: &[std::path::PathBuf]) -> Result<()> {
    for fd in 0..3 {
        let Ok(link) = fs::read_link(format!("/proc/{pid}/fd/{fd}")) else {
            continue;
        };
        let l = link.to_string_lossy();
        let stdio_kind = l.starts_with("pipe:")
            || l.starts_with("socket:")
            || l.starts_with("/dev/pts/")
            || l.starts_with("/dev/tty")
            || l == "/dev/console";
        if stdio_kind && !outside.contains(&link) {
            let ns = procfs::inner_pid(&format!("/proc/{pid}/status")).unwrap_or(pid);
            return Err(Error::Unsupported(format!(
                "process {ns} fd {fd}: {l} — a process adopted by the job's init holds a \
                 terminal, pipe or socket on its stdin/stdout/stderr that is not the job's \
                 own: cannot be checkpointed yet"
            )));
        }
    }
    Ok(())
}
