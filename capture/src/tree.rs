//! Freezing and capturing the whole process tree under the launched program: every
//! descendant is frozen (rescanning until no new process appears), captured parents first,
//! and exited-but-unreaped children are recorded as zombies.

use crate::checkpoint::{capture_process, FreezeHints};
use cairn_image::{MemorySink, ProcessImage, ZombieImage};
use cairn_sys::error::{Error, Result};
use cairn_sys::freeze::Frozen;
use cairn_sys::procfs;
use std::collections::HashMap;
use std::fs;

/// A frozen tree: live processes (parents before children) with their outer parent pid, and
/// zombies (outer pid, outer parent pid).
#[derive(Debug, Default)]
pub struct FrozenTree {
    /// (frozen process, outer pid of its parent; 0 for the root).
    pub procs: Vec<(Frozen, i32)>,
    /// (outer pid, outer parent pid) of zombies.
    pub zombies: Vec<(i32, i32)>,
}

/// State letter of /proc/PID/stat (None when the process is gone).
fn state(pid: i32) -> Option<char> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rfind(')')
        .and_then(|i| s[i + 1..].split_whitespace().next())
        .and_then(|st| st.chars().next())
}

impl FrozenTree {
    /// Freeze `root` and all its descendants. `init` is the sandbox init: a process it
    /// adopted (an orphan whose parent exited) cannot be restored and is refused.
    pub fn freeze(root: i32, init: i32) -> Result<FrozenTree> {
        let mut t = FrozenTree::default();
        t.procs.push((Frozen::freeze(root)?, 0));
        loop {
            let mut changed = false;
            let mut i = 0;
            while i < t.procs.len() {
                let parent = t.procs[i].0.pid;
                for c in procfs::children_of(parent)? {
                    if t.procs.iter().any(|p| p.0.pid == c) || t.zombies.iter().any(|z| z.0 == c) {
                        continue;
                    }
                    changed = true;
                    if state(c) == Some('Z') {
                        t.zombies.push((c, parent));
                        continue;
                    }
                    match Frozen::freeze(c) {
                        Ok(f) => t.procs.push((f, parent)),
                        // It exited meanwhile: its frozen parent cannot reap it, so it is a
                        // zombie now (found as one by the next pass).
                        Err(Error::Exited { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                i += 1;
            }
            if !changed {
                break;
            }
        }
        let orphans: Vec<String> = procfs::children_of(init)?
            .into_iter()
            .filter(|&c| c != root)
            .map(|c| c.to_string())
            .collect();
        if !orphans.is_empty() {
            return Err(Error::Unsupported(format!(
                "processes {} were adopted by the sandbox init (their parent exited): \
                 orphaned processes cannot be checkpointed yet",
                orphans.join(" ")
            )));
        }
        Ok(t)
    }

    /// Capture every process (memory into `sink`) and the zombies.
    pub fn capture(
        &self,
        sink: &mut dyn MemorySink,
        hints: &dyn FreezeHints,
    ) -> Result<(Vec<ProcessImage>, Vec<ZombieImage>)> {
        let shares = self.shared_tables()?;
        let mut images: Vec<ProcessImage> = Vec::new();
        let mut inner: HashMap<i32, i32> = HashMap::new();
        for (fz, parent) in &self.procs {
            let pimg = images
                .iter()
                .zip(&self.procs)
                .find(|(_, (f, _))| f.pid == *parent)
                .map(|(img, _)| (*parent, img.fds.as_slice()));
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
        check_groups(&images)?;
        for (img, (fz, _)) in images.iter().zip(&self.procs) {
            check_controlling_terminal(img, fz.pid)?;
        }
        let mut zombies = Vec::new();
        for &(z, parent) in &self.zombies {
            let stat = procfs::read_stat(z)?;
            let status = procfs::stat_field(&stat, 52)? as i32;
            let pid = procfs::inner_pid(&format!("/proc/{z}/status"))?;
            zombies.push(ZombieImage {
                pid,
                ppid: inner.get(&parent).copied().unwrap_or(1),
                status,
            });
        }
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
            .map(|(f, parent)| *parent != 0 && same(f.pid, *parent, KCMP_FILES))
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

/// Restore recreates sessions and groups only as "inherited from the parent" or "led by the
/// process itself" (setsid / setpgid(0, 0)); anything else is refused.
fn check_groups(images: &[ProcessImage]) -> Result<()> {
    for p in images {
        let parent = images.iter().find(|q| q.pid == p.ppid);
        let (psid, ppgid) = parent.map_or((0, 0), |q| (q.sid, q.pgid));
        let sid_ok = p.sid == psid || p.sid == p.pid;
        let pgid_ok = p.pgid == p.pid || (p.pgid == ppgid && (p.sid == psid));
        if !sid_ok || !pgid_ok {
            return Err(Error::Unsupported(format!(
                "process {} (session {}, group {}, parent {} in session {psid}, group {ppgid}): \
                 this process group layout cannot be restored yet",
                p.pid, p.sid, p.pgid, p.ppid
            )));
        }
    }
    Ok(())
}
