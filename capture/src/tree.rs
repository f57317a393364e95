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
        let mut images: Vec<ProcessImage> = Vec::new();
        let mut inner: HashMap<i32, i32> = HashMap::new();
        for (fz, parent) in &self.procs {
            let pimg = images
                .iter()
                .zip(&self.procs)
                .find(|(_, (f, _))| f.pid == *parent)
                .map(|(img, _)| (*parent, img.fds.as_slice()));
            let mut img = capture_process(fz, pimg, sink, hints)?;
            if let Some(pi) = images
                .iter()
                .zip(&self.procs)
                .position(|(_, (f, _))| f.pid == *parent)
            {
                crate::cow::mark_inherited(fz.pid, *parent, &mut img, &images[pi])?;
            }
            img.ppid = inner.get(parent).copied().unwrap_or(1);
            inner.insert(fz.pid, img.pid);
            images.push(img);
        }
        check_groups(&images)?;
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
