//! The attributes of mappings beyond their protection — madvise advice, mlock, MAP_NORESERVE,
//! mseal, guard regions — and `mlockall(MCL_FUTURE)`: read from a frozen process, each either
//! recorded for the restore or refused with the mapping and what it is.

use cairn_image::VmaFlags;
use cairn_sys::error::{io_ctx, Error, Result};
use cairn_sys::procfs::{self, MapEntry};
use std::fs::File;
use std::os::unix::fs::FileExt;

const PAGE: u64 = 4096;
/// pagemap: the page is a guard region (`MADV_GUARD_INSTALL`).
const PM_GUARD_REGION: u64 = 1 << 58;
/// pagemap: the page is present.
const PM_PRESENT: u64 = 1 << 63;
const MCL_FUTURE: u32 = 2;
const MCL_ONFAULT: u32 = 4;

/// Copy the VmFlags and protection keys of `/proc/PID/smaps` into `maps` (read from
/// `/proc/PID/maps`) of the frozen process `pid`.
pub fn fill_from_smaps(pid: i32, maps: &mut [MapEntry]) -> Result<()> {
    let full = procfs::read_maps(pid)?;
    // Both lists are in address order.
    let mut i = 0;
    for m in maps.iter_mut() {
        while full.get(i).is_some_and(|f| f.start < m.start) {
            i += 1;
        }
        let f = full
            .get(i)
            .filter(|f| f.start == m.start && f.end == m.end)
            .ok_or_else(|| {
                Error::Parse(format!(
                    "mapping {:x}-{:x} of {pid} is in maps but not in smaps",
                    m.start, m.end
                ))
            })?;
        m.vmflags = f.vmflags.clone();
        m.pkey = f.pkey;
    }
    Ok(())
}

/// The attributes of mapping `m` of process `ns_pid` (its VmFlags), or why it cannot be
/// checkpointed.
pub fn vma_flags(ns_pid: i32, m: &MapEntry) -> Result<VmaFlags> {
    let refuse = |what: &str| {
        Err(Error::Unsupported(format!(
            "process {ns_pid}: mapping {:x}-{:x} {}: {what} cannot be checkpointed",
            m.start, m.end, m.name
        )))
    };
    if m.pkey != 0 {
        return refuse(&format!("memory protection key {}", m.pkey));
    }
    let mut f = 0;
    for code in &m.vmflags {
        f |= match code.as_str() {
            // Protection, sharing and what the kernel derives from them; grows-down is its
            // own field; `gu` says guard regions may be there (read from pagemap).
            "rd" | "wr" | "ex" | "sh" | "mr" | "me" | "ms" | "ac" | "sd" | "gd" | "gu" => 0,
            // userfaultfd registrations: cairn's own dirty tracking (a program's userfaultfd
            // is a descriptor no kind captures, so a job holding one is refused there).
            "um" | "uw" | "ui" => 0,
            "mw" if m.shared => VmaFlags::MAYWRITE,
            "mw" => 0,
            "dc" => VmaFlags::DONTFORK,
            "dd" => VmaFlags::DONTDUMP,
            "hg" => VmaFlags::HUGEPAGE,
            "nh" => VmaFlags::NOHUGEPAGE,
            "wf" => VmaFlags::WIPEONFORK,
            "mg" => VmaFlags::MERGEABLE,
            "lo" => VmaFlags::LOCKED,
            "lf" => VmaFlags::LOCKONFAULT,
            "nr" => VmaFlags::NORESERVE,
            "sr" => VmaFlags::SEQUENTIAL,
            "rr" => VmaFlags::RANDOM,
            "sl" => VmaFlags::SEALED,
            "ht" => return refuse("huge TLB pages (MAP_HUGETLB, hugetlbfs)"),
            "ss" => return refuse("a shadow stack"),
            "pf" | "io" | "mm" | "de" => {
                return refuse("device memory (PFN, I/O or special mapping)")
            }
            "sf" => return refuse("MAP_SYNC"),
            other => return refuse(&format!("the mapping attribute {other:?} (VmFlags)")),
        };
    }
    Ok(VmaFlags(f))
}

/// The guard regions (`MADV_GUARD_INSTALL`) of mapping `m`, as byte runs from its start: only
/// looked for where VmFlags says there may be some (`gu`).
pub fn guard_runs(pagemap: &File, m: &MapEntry) -> Result<Vec<(u64, u64)>> {
    if !m.vmflags.iter().any(|f| f == "gu") {
        return Ok(Vec::new());
    }
    let pages = (m.end - m.start) / PAGE;
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let batch = 65536u64;
    let mut buf = vec![0u8; (batch * 8) as usize];
    let mut p = 0;
    while p < pages {
        let n = batch.min(pages - p);
        let b = &mut buf[..(n * 8) as usize];
        pagemap
            .read_exact_at(b, (m.start / PAGE + p) * 8)
            .map_err(io_ctx("reading pagemap"))?;
        for (i, e) in b.chunks_exact(8).enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(e);
            if u64::from_le_bytes(w) & PM_GUARD_REGION != 0 {
                let off = (p + i as u64) * PAGE;
                match runs.last_mut() {
                    Some(r) if r.0 + r.1 == off => r.1 += PAGE,
                    _ => runs.push((off, PAGE)),
                }
            }
        }
        p += n;
    }
    Ok(runs)
}

/// Locked memory of process `pid` in bytes (`VmLck`).
pub fn locked_bytes(pid: i32) -> Result<u64> {
    let v = procfs::status_field(&format!("/proc/{pid}/status"), "VmLck")?;
    v.split_whitespace()
        .next()
        .and_then(|k| k.parse::<u64>().ok())
        .map(|k| k * 1024)
        .ok_or_else(|| Error::Parse(format!("VmLck of {pid}: {v}")))
}

/// The `mlockall` flags for future mappings of process `pid`, told by the mapping `scratch`
/// (two pages, just created, not touched) that capture injected: with `MCL_FUTURE` it was
/// locked (`VmLck` grew from `locked_before`), and populated at once unless `MCL_ONFAULT`.
pub fn mlock_future(pid: i32, scratch: u64, locked_before: u64) -> Result<u32> {
    if locked_bytes(pid)? < locked_before + 2 * PAGE {
        return Ok(0);
    }
    let path = format!("/proc/{pid}/pagemap");
    let pagemap = File::open(&path).map_err(io_ctx(format!("opening {path}")))?;
    let mut e = [0u8; 8];
    pagemap
        .read_exact_at(&mut e, scratch / PAGE * 8)
        .map_err(io_ctx("reading pagemap"))?;
    Ok(if u64::from_le_bytes(e) & PM_PRESENT != 0 {
        MCL_FUTURE
    } else {
        MCL_FUTURE | MCL_ONFAULT
    })
}
