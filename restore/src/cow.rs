//! Memory shared copy-on-write between a parent and its children, shared again at a restore
//! (docs/capture-restore.md, "Memory shared copy-on-write").
//!
//! Only a fork shares private anonymous pages between two processes. So the mappings a child
//! inherited ([`Vma::inherited`]) are *staged*: before a stub forks its children, it maps
//! them at free addresses (or already has them, from its own parent's staging), the restoring
//! process fills them with this process's pages (writing only what is not its parent's), and
//! the children are forked with them. When each process is rebuilt, its staged mappings are
//! moved (`mremap`, which keeps shared pages shared) to their addresses instead of being
//! mapped and filled.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use cairn_image::{MemorySource, ProcessImage, ProcessTreeImage, Vma};
use cairn_sys::error::{io_ctx, last_os};
use cairn_sys::procfs;
use cairn_sys::ranges::Runs;
use cairn_sys::{Error, Result};

const HUGE: u64 = 2 << 20;
/// Staging addresses are looked for from here up (far from where programs and cairn map).
const STAGE_FROM: u64 = 0x1000_0000_0000;
const TASK_SIZE: u64 = 0x7fff_ffff_f000;

/// What one stub does before forking its children: map the staged mappings it does not
/// inherit, drop the pages of inherited ones that are not its parent's, report
/// `-(node + 1)` on the ready pipe and wait for one byte on `go_r` (its memory is filled).
pub struct Stage {
    /// (address, length) to map private anonymous read-write, with `MAP_NORESERVE` when so.
    pub map: Vec<(u64, u64, bool)>,
    /// (address, length) to empty with `MADV_DONTNEED`.
    pub drop: Vec<(u64, u64)>,
    /// Read end of this stub's go pipe.
    pub go_r: i32,
}

impl Stage {
    /// Runs in the stub of node `node` (raw syscalls, no allocation); `Err(step)` for the
    /// stub's failure report.
    pub fn run_in_stub(&self, ready_w: i32, node: usize) -> std::result::Result<(), i32> {
        // SAFETY: mmap at addresses chosen free (MAP_FIXED_NOREPLACE never replaces
        // anything), madvise on those mappings, write and read of our own descriptors.
        unsafe {
            for &(addr, len, noreserve) in &self.map {
                let extra = if noreserve { libc::MAP_NORESERVE } else { 0 };
                let r = libc::mmap(
                    addr as *mut libc::c_void,
                    len as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE | extra,
                    -1,
                    0,
                );
                if r != addr as *mut libc::c_void {
                    return Err(8);
                }
            }
            for &(addr, len) in &self.drop {
                if libc::madvise(addr as *mut libc::c_void, len as usize, libc::MADV_DONTNEED) < 0 {
                    return Err(8);
                }
            }
            let code = -(node as i32 + 1);
            libc::write(ready_w, (&code as *const i32).cast(), 4);
            let mut b = 0u8;
            if libc::read(self.go_r, (&mut b as *mut u8).cast(), 1) != 1 {
                return Err(9);
            }
        }
        Ok(())
    }
}

/// The staging of a whole tree.
#[derive(Default)]
pub struct Stages {
    /// Per process of the image: index of a staged mapping -> its staging address.
    pub at: Vec<HashMap<usize, u64>>,
    /// Per process: the staged mappings it maps itself (not inherited from its parent).
    fresh: Vec<std::collections::HashSet<usize>>,
    /// Per process: the write end of its go pipe (staging processes only).
    go_w: Vec<Option<OwnedFd>>,
    /// The read ends, open until the stubs are started.
    go_r: Vec<OwnedFd>,
}

/// Whether `v` of process `i` is staged: it was inherited, or a child inherits it.
fn passes(image: &ProcessTreeImage, i: usize, v: &Vma) -> bool {
    let p = &image.processes[i];
    image.processes.iter().any(|c| {
        c.ppid == p.pid
            && c.vmas
                .iter()
                .any(|w| w.start == v.start && w.end == v.end && !w.inherited.is_empty())
    })
}

impl Stages {
    /// Plan the staging of `image`: staging addresses, and for each process that stages
    /// something its [`Stage`] (go pipes moved to at least `high`). Nothing when no mapping
    /// is shared, or when no free addresses are found (every process then gets private
    /// copies, as without this).
    pub fn plan(image: &ProcessTreeImage, high: i32) -> Result<(Stages, Vec<Option<Stage>>)> {
        let n = image.processes.len();
        let mut st = Stages {
            at: vec![HashMap::new(); n],
            fresh: vec![Default::default(); n],
            go_w: (0..n).map(|_| None).collect(),
            go_r: Vec::new(),
        };
        let mut stubs: Vec<Option<Stage>> = (0..n).map(|_| None).collect();
        let staged: Vec<Vec<usize>> = image
            .processes
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.vmas
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| !v.inherited.is_empty() || passes(image, i, v))
                    .map(|(k, _)| k)
                    .collect()
            })
            .collect();
        if staged.iter().all(Vec::is_empty) {
            return Ok((st, stubs));
        }
        // One free stretch for every fresh staging mapping, each congruent to its mapping's
        // address modulo 2 MiB (huge pages stay whole when moved).
        let fresh: u64 = staged
            .iter()
            .zip(&image.processes)
            .flat_map(|(ks, p)| ks.iter().map(move |&k| &p.vmas[k]))
            .filter(|v| v.inherited.is_empty())
            .map(|v| v.len() + HUGE)
            .sum();
        let mut busy: Vec<(u64, u64)> = image
            .processes
            .iter()
            .flat_map(|p| {
                p.vmas.iter().map(|v| (v.start, v.end)).chain(
                    p.vdso
                        .iter()
                        .map(|d| (d.block_start, d.block_start + d.block_len)),
                )
            })
            .collect();
        busy.extend(
            procfs::read_maps_light(std::process::id() as i32)?
                .iter()
                .map(|m| (m.start, m.end)),
        );
        busy.sort_unstable();
        let mut base = STAGE_FROM;
        for &(s, e) in &busy {
            if e <= base {
                continue;
            }
            if s >= base + fresh + HUGE {
                break;
            }
            base = e.div_ceil(HUGE) * HUGE;
        }
        if base + fresh + HUGE > TASK_SIZE {
            return Ok((st, stubs));
        }
        let mut next = base;
        for (i, p) in image.processes.iter().enumerate() {
            if staged[i].is_empty() {
                continue;
            }
            let parent = image.processes.iter().position(|q| q.pid == p.ppid);
            let mut stage = Stage {
                map: Vec::new(),
                drop: Vec::new(),
                go_r: -1,
            };
            for &k in &staged[i] {
                let v = &p.vmas[k];
                let inherited_at = parent.filter(|_| !v.inherited.is_empty()).and_then(|q| {
                    image.processes[q]
                        .vmas
                        .iter()
                        .position(|w| w.start == v.start && w.end == v.end)
                        .and_then(|j| st.at[q].get(&j).copied())
                });
                let addr = match inherited_at {
                    Some(a) => {
                        // Everything that is not the parent's page is emptied, then written.
                        for (s, e) in Runs::from_sorted([(0, v.len())])
                            .minus(&Runs::from_sorted(v.inherited.iter().copied()))
                            .spans()
                        {
                            stage.drop.push((a + s, e - s));
                        }
                        a
                    }
                    None => {
                        let a = next.div_ceil(HUGE) * HUGE + v.start % HUGE;
                        next = a + v.len();
                        stage
                            .map
                            .push((a, v.len(), v.flags.has(cairn_image::VmaFlags::NORESERVE)));
                        st.fresh[i].insert(k);
                        a
                    }
                };
                st.at[i].insert(k, addr);
            }
            let mut fds = [0i32; 2];
            // SAFETY: pipe2 writes two descriptors.
            if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
                return Err(last_os("pipe2 for the staging of shared memory"));
            }
            // SAFETY: both are fresh descriptors we own.
            let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
            // SAFETY: F_DUPFD_CLOEXEC duplicates our own descriptor.
            let rr = unsafe { libc::fcntl(r.as_raw_fd(), libc::F_DUPFD_CLOEXEC, high) };
            if rr < 0 {
                return Err(last_os("moving a staging pipe"));
            }
            drop(r);
            // SAFETY: `rr` is a fresh descriptor owned by us.
            let r = unsafe { OwnedFd::from_raw_fd(rr) };
            stage.go_r = rr;
            st.go_r.push(r);
            st.go_w[i] = Some(w);
            stubs[i] = Some(stage);
        }
        Ok((st, stubs))
    }

    /// The read ends of the go pipes, which the stubs must inherit.
    pub fn keep(&self) -> impl Iterator<Item = i32> + '_ {
        self.go_r.iter().map(|f| f.as_raw_fd())
    }

    /// The stubs are started: close the read ends here.
    pub fn started(&mut self) {
        self.go_r.clear();
    }

    /// The stub of process `i` asked for its staged memory: write every page of its staged
    /// mappings that is not its parent's into the stub (outer pid `outer`), then let it go
    /// on.
    pub fn fill(
        &mut self,
        i: usize,
        p: &ProcessImage,
        outer: i32,
        source: &dyn MemorySource,
    ) -> Result<()> {
        let mem_path = format!("/proc/{outer}/mem");
        let mem = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&mem_path)
            .map_err(io_ctx(format!("opening {mem_path}")))?;
        let mut at: Vec<(usize, u64)> = self.at[i].iter().map(|(&k, &a)| (k, a)).collect();
        at.sort_unstable();
        for (k, addr) in at {
            let v = &p.vmas[k];
            let mut own = Runs::from_sorted(v.stored.iter().copied());
            if !self.fresh[i].contains(&k) {
                own = own.minus(&Runs::from_sorted(v.inherited.iter().copied()));
            }
            if own.is_empty() {
                continue;
            }
            let moved = Vma {
                start: addr,
                end: addr + v.len(),
                stored: own.into_vec(),
                ..v.clone()
            };
            let f = |off: u64, data: Option<&[u8]>| -> std::io::Result<()> {
                match data {
                    Some(d) => crate::memory::write_chunk(
                        &crate::memory::Target::Write(outer, &mem),
                        &moved,
                        off,
                        d,
                    ),
                    None => Ok(()),
                }
            };
            source.for_each_chunk(p.pid, k, &f).map_err(io_ctx(format!(
                "staging memory {:x}-{:x} of process {} shared with its children",
                v.start, v.end, p.pid
            )))?;
        }
        let w = self.go_w[i].take().ok_or_else(|| {
            Error::Parse(format!(
                "process {} asked twice for its staged memory",
                p.pid
            ))
        })?;
        // SAFETY: write of one byte from a local to our own descriptor.
        if unsafe { libc::write(w.as_raw_fd(), (&1u8 as *const u8).cast(), 1) } != 1 {
            return Err(last_os("letting a restore stub go on"));
        }
        Ok(())
    }
}
