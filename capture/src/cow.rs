//! Memory a child shares copy-on-write with its parent: which pages of a child's private
//! anonymous mapping are still its parent's pages (docs/capture-restore.md, "Memory shared
//! copy-on-write"), so that the restore shares them again instead of copying them.

use cairn_image::{Backing, ProcessImage, Vma, VmaFlags};
use cairn_sys::error::{io_ctx, Result};
use cairn_sys::ranges::Runs;
use std::fs::File;
use std::os::unix::fs::FileExt;

const PAGE: u64 = 4096;
/// pagemap: the page is present.
const PM_PRESENT: u64 = 1 << 63;
/// pagemap: the page is mapped by this process only.
const PM_EXCLUSIVE: u64 = 1 << 56;
/// pagemap: the page frame number (zero for an unprivileged reader).
const PM_PFN: u64 = (1 << 55) - 1;
/// Pages compared per read.
const BATCH: u64 = 512;

/// Whether mapping `v` can be shared with a parent or child: private anonymous, stored, and
/// none of what the restore creates differently (grows-down stacks, guard regions).
fn candidate(v: &Vma) -> bool {
    v.backing == Backing::Anonymous
        && !v.shared
        && v.shm.is_none()
        && !v.growsdown
        && v.guards.is_empty()
        && !v.stored.is_empty()
}

fn open(pid: i32, what: &str) -> Result<File> {
    let path = format!("/proc/{pid}/{what}");
    File::open(&path).map_err(io_ctx(format!("opening {path}")))
}

fn entries(pagemap: &File, addr: u64, pages: u64) -> Result<Vec<u64>> {
    let mut b = vec![0u8; (pages * 8) as usize];
    pagemap
        .read_exact_at(&mut b, addr / PAGE * 8)
        .map_err(io_ctx("reading pagemap"))?;
    Ok(b.chunks_exact(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            u64::from_le_bytes(w)
        })
        .collect())
}

/// Record in `child` (outer pid `child_outer`) which pages of each private anonymous mapping
/// are shared with the same mapping (same start and end) of its `parent` (outer pid
/// `parent_outer`): present in both, not exclusive to the child, and the same page frame
/// where pagemap shows frames (root), else the same contents (a private copy-on-write page
/// with the parent's contents is, for the program, the parent's page).
pub fn mark_inherited(
    child_outer: i32,
    parent_outer: i32,
    child: &mut ProcessImage,
    parent: &ProcessImage,
) -> Result<()> {
    let mut maps: Option<[File; 4]> = None;
    for v in child.vmas.iter_mut().filter(|v| candidate(v)) {
        let Some(pv) = parent.vmas.iter().find(|p| {
            p.start == v.start
                && p.end == v.end
                && candidate(p)
                && p.flags.has(VmaFlags::NORESERVE) == v.flags.has(VmaFlags::NORESERVE)
        }) else {
            continue;
        };
        if maps.is_none() {
            maps = Some([
                open(child_outer, "pagemap")?,
                open(parent_outer, "pagemap")?,
                open(child_outer, "mem")?,
                open(parent_outer, "mem")?,
            ]);
        }
        let Some([cmap, pmap, cmem, pmem]) = maps.as_ref() else {
            continue;
        };
        let both = Runs::from_sorted(v.stored.iter().copied()).minus(
            &Runs::from_sorted(v.stored.iter().copied())
                .minus(&Runs::from_sorted(pv.stored.iter().copied())),
        );
        let mut shared: Vec<(u64, u64)> = Vec::new();
        let mut cbuf = vec![0u8; (BATCH * PAGE) as usize];
        let mut pbuf = vec![0u8; (BATCH * PAGE) as usize];
        for (off, len) in both.spans().map(|(s, e)| (s, e - s)) {
            let mut done = 0;
            while done < len {
                let n = ((len - done) / PAGE).min(BATCH);
                let at = v.start + off + done;
                let ce = entries(cmap, at, n)?;
                let pe = entries(pmap, at, n)?;
                let mut compared = false;
                for i in 0..n as usize {
                    let (c, p) = (ce[i], pe[i]);
                    if c & PM_PRESENT == 0 || p & PM_PRESENT == 0 || c & PM_EXCLUSIVE != 0 {
                        continue;
                    }
                    let same = if c & PM_PFN != 0 && p & PM_PFN != 0 {
                        c & PM_PFN == p & PM_PFN
                    } else {
                        if !compared {
                            let bytes = (n * PAGE) as usize;
                            cmem.read_exact_at(&mut cbuf[..bytes], at)
                                .map_err(io_ctx("reading a child's memory"))?;
                            pmem.read_exact_at(&mut pbuf[..bytes], at)
                                .map_err(io_ctx("reading a parent's memory"))?;
                            compared = true;
                        }
                        let r = i * PAGE as usize..(i + 1) * PAGE as usize;
                        cbuf[r.clone()] == pbuf[r]
                    };
                    if same {
                        let o = off + done + i as u64 * PAGE;
                        match shared.last_mut() {
                            Some(r) if r.0 + r.1 == o => r.1 += PAGE,
                            _ => shared.push((o, PAGE)),
                        }
                    }
                }
                done += n * PAGE;
            }
        }
        v.inherited = shared;
    }
    Ok(())
}
