//! A page of memory inside a process being rebuilt, for the arguments of system calls
//! injected into it (mapped and unmapped again around one use).

use cairn_sys::error::io_ctx;
use cairn_sys::inject::Injector;
use cairn_sys::procfs;
use cairn_sys::Result;

const PAGE: u64 = 4096;

/// Run `f` with the address of a fresh page mapped in the process `inj` injects into.
pub(crate) fn with_page<T>(inj: &Injector, f: impl FnOnce(u64) -> Result<T>) -> Result<T> {
    let page = inj.call(
        "mmap",
        libc::SYS_mmap,
        &[
            0,
            PAGE,
            (libc::PROT_READ | libc::PROT_WRITE) as u64,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
            u64::MAX,
            0,
        ],
    )?;
    let r = f(page);
    let u = inj.call("munmap", libc::SYS_munmap, &[page, PAGE]);
    let out = r?;
    u?;
    Ok(out)
}

/// Write `data` at `addr` of the process `inj` injects into.
pub(crate) fn put(inj: &Injector, addr: u64, data: &[u8]) -> Result<()> {
    procfs::write_mem(inj.tid(), None, addr, data).map_err(io_ctx("writing into a restore stub"))
}

/// Read `buf.len()` bytes at `addr` of the process `inj` injects into.
pub(crate) fn get(inj: &Injector, addr: u64, buf: &mut [u8]) -> Result<()> {
    procfs::read_mem(inj.tid(), None, addr, buf).map_err(io_ctx("reading from a restore stub"))
}
