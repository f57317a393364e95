//! `PAGEMAP_SCAN` on `/proc/PID/pagemap`: which pages of a range are written (since they were
//! write-protected by a [`crate::uffd::WpTracker`]), present or swapped. Only the raw calls
//! live here; the policy is in `cairn_capture::dirty`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// `_IOWR('f', 16, struct pm_scan_arg)`.
const PAGEMAP_SCAN: u64 = 0xC060_6610;
/// `PM_SCAN_WP_MATCHING`: write-protect the pages reported.
const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
/// `PM_SCAN_CHECK_WPASYNC`: fail with EPERM on a mapping without async write-protect.
const PM_SCAN_CHECK_WPASYNC: u64 = 1 << 1;
/// `PAGE_IS_WRITTEN`: the page was written since it was last write-protected.
const PAGE_IS_WRITTEN: u64 = 1 << 1;

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}

#[repr(C)]
#[derive(Default)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

fn ioctl<T>(fd: i32, req: u64, arg: &mut T) -> io::Result<i32> {
    // SAFETY: `arg` is a live, exclusively borrowed #[repr(C)] struct of exactly the size
    // encoded in `req`; the kernel reads and writes only within it.
    let r = unsafe { libc::ioctl(fd, req as _, arg as *mut T) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub use crate::ranges::Runs;

/// `PAGE_IS_FILE`: the page is a file page (not anonymous; pagemap bit 61).
const PAGE_IS_FILE: u64 = 1 << 2;
/// `PAGE_IS_PRESENT`: the page is present in memory.
const PAGE_IS_PRESENT: u64 = 1 << 3;
/// `PAGE_IS_SWAPPED`: the page is swapped out.
const PAGE_IS_SWAPPED: u64 = 1 << 4;

/// One PAGEMAP_SCAN walk over `[start, end)`: `(start, end, categories)` of the matching
/// ranges (absolute, sorted; adjacent ranges with equal categories are merged by the kernel
/// within one call and here across calls).
fn pagemap_scan(
    pagemap: &File,
    start: u64,
    end: u64,
    flags: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
) -> io::Result<Vec<(u64, u64, u64)>> {
    const VEC: usize = 4096;
    let mut regions = vec![PageRegion::default(); VEC];
    let mut out: Vec<(u64, u64, u64)> = Vec::new();
    let mut at = start;
    while at < end {
        let mut arg = PmScanArg {
            size: std::mem::size_of::<PmScanArg>() as u64,
            flags,
            start: at,
            end,
            vec: regions.as_mut_ptr() as u64,
            vec_len: VEC as u64,
            category_mask,
            category_anyof_mask,
            return_mask,
            ..PmScanArg::default()
        };
        let n = ioctl(pagemap.as_raw_fd(), PAGEMAP_SCAN, &mut arg)? as usize;
        for r in &regions[..n.min(VEC)] {
            match out.last_mut() {
                Some(last) if last.1 == r.start && last.2 == r.categories => last.1 = r.end,
                _ => out.push((r.start, r.end, r.categories)),
            }
        }
        if arg.walk_end <= at {
            return Err(io::Error::other("PAGEMAP_SCAN made no progress"));
        }
        at = arg.walk_end;
    }
    Ok(out)
}

/// Byte ranges (absolute addresses, page aligned, sorted) of `[start, end)` written since they
/// were last write-protected, re-protecting them atomically (PAGEMAP_SCAN with
/// PM_SCAN_WP_MATCHING). Fails with EPERM when the range is not under async write-protect
/// (not registered, registration lost by mremap or exec): then nothing can be trusted.
pub fn scan_written(pagemap: &File, start: u64, end: u64) -> io::Result<Runs> {
    let found = pagemap_scan(
        pagemap,
        start,
        end,
        PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
        PAGE_IS_WRITTEN,
        0,
        PAGE_IS_WRITTEN,
    )?;
    Ok(Runs::from_spans(found.into_iter().map(|(s, e, _)| (s, e))))
}

/// Like [`scan_written`], also telling which of the written pages are resident (present or
/// swapped) now: `(written, written_and_resident)`, absolute, sorted, merged. A page dropped
/// since it was write-protected (MADV_DONTNEED) is reported written but not resident.
pub fn scan_written_resident(pagemap: &File, start: u64, end: u64) -> io::Result<(Runs, Runs)> {
    let found = pagemap_scan(
        pagemap,
        start,
        end,
        PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
        PAGE_IS_WRITTEN,
        0,
        PAGE_IS_WRITTEN | PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
    )?;
    let written = Runs::from_spans(found.iter().map(|&(s, e, _)| (s, e)));
    let resident = Runs::from_spans(
        found
            .iter()
            .filter(|&&(_, _, c)| c & (PAGE_IS_PRESENT | PAGE_IS_SWAPPED) != 0)
            .map(|&(s, e, _)| (s, e)),
    );
    Ok((written, resident))
}

/// Byte ranges (offsets from `start`, sorted, merged) of `[start, end)` whose contents a
/// checkpoint stores: pages present or swapped; with `skip_file_pages`, present pages that are
/// still the file's own (not copied on write) are left out. One kernel walk instead of reading
/// 8 bytes of /proc/PID/pagemap per page; no write-protection is touched.
pub fn scan_resident(
    pagemap: &File,
    start: u64,
    end: u64,
    skip_file_pages: bool,
) -> io::Result<Runs> {
    let found = pagemap_scan(
        pagemap,
        start,
        end,
        0,
        0,
        PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
        PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_FILE,
    )?;
    Ok(Runs::from_spans(
        found
            .into_iter()
            .filter(|&(_, _, c)| {
                c & PAGE_IS_SWAPPED != 0 || !(skip_file_pages && c & PAGE_IS_FILE != 0)
            })
            .map(|(s, e, _)| (s - start, e - start)),
    ))
}
