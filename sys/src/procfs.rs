//! Reading /proc/PID files and another process's memory.

use crate::error::{io_ctx, Error, Result};
use std::fs;
use std::os::unix::fs::FileExt;

/// One line of /proc/PID/smaps with the fields cairn needs.
#[derive(Debug, Clone)]
pub struct MapEntry {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// PROT_* bits.
    pub prot: u32,
    /// MAP_SHARED.
    pub shared: bool,
    /// File offset.
    pub offset: u64,
    /// Inode number (0 for anonymous).
    pub inode: u64,
    /// Path or pseudo-name (`[heap]`, `[vdso]`, ...), empty for anonymous.
    pub name: String,
    /// VM_GROWSDOWN.
    pub growsdown: bool,
    /// The two-letter codes of the VmFlags line (smaps only; empty from maps).
    pub vmflags: Vec<String>,
    /// The memory protection key (smaps' `ProtectionKey`, 0 where the CPU has none).
    pub pkey: u32,
}

/// Parse /proc/PID/smaps (with VmFlags; walks the page tables of every mapping, so it costs
/// time proportional to the resident memory: read it once per checkpoint).
pub fn read_maps(pid: i32) -> Result<Vec<MapEntry>> {
    parse_maps(&format!("/proc/{pid}/smaps"))
}

/// Parse /proc/PID/maps: like [`read_maps`] without VmFlags (`growsdown` is false) and without
/// walking page tables.
pub fn read_maps_light(pid: i32) -> Result<Vec<MapEntry>> {
    parse_maps(&format!("/proc/{pid}/maps"))
}

fn parse_maps(path: &str) -> Result<Vec<MapEntry>> {
    let path = path.to_string();
    let text = fs::read_to_string(&path).map_err(io_ctx(format!("reading {path}")))?;
    let mut out: Vec<MapEntry> = Vec::new();
    for line in text.lines() {
        if let Some(flags) = line.strip_prefix("VmFlags:") {
            if let Some(last) = out.last_mut() {
                last.growsdown = flags.split_whitespace().any(|f| f == "gd");
                last.vmflags = flags.split_whitespace().map(str::to_string).collect();
            }
            continue;
        }
        if let Some(key) = line.strip_prefix("ProtectionKey:") {
            if let Some(last) = out.last_mut() {
                last.pkey = key.trim().parse().unwrap_or(0);
            }
            continue;
        }
        let Some((range, rest)) = line.split_once(' ') else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        let mut it = rest.splitn(5, ' ');
        let perms = it.next().unwrap_or("");
        let offset = u64::from_str_radix(it.next().unwrap_or("0"), 16)
            .map_err(|_| Error::Parse(format!("{path}: {line}")))?;
        let _dev = it.next();
        let inode: u64 = it.next().unwrap_or("0").parse().unwrap_or(0);
        let name = it.next().unwrap_or("").trim_start().to_string();
        let pb = perms.as_bytes();
        if pb.len() < 4 {
            return Err(Error::Parse(format!("{path}: {line}")));
        }
        let mut prot = 0;
        if pb[0] == b'r' {
            prot |= libc::PROT_READ as u32;
        }
        if pb[1] == b'w' {
            prot |= libc::PROT_WRITE as u32;
        }
        if pb[2] == b'x' {
            prot |= libc::PROT_EXEC as u32;
        }
        out.push(MapEntry {
            start,
            end,
            prot,
            shared: pb[3] == b's',
            offset,
            inode,
            name,
            growsdown: false,
            vmflags: Vec::new(),
            pkey: 0,
        });
    }
    Ok(out)
}

/// Fields of /proc/PID/stat after the command name, so `stat_field(v, n)` is field `n` (1-based
/// as in proc(5)).
pub fn read_stat(pid: i32) -> Result<Vec<String>> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).map_err(io_ctx(format!("reading {path}")))?;
    let after = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or_else(|| Error::Parse(format!("{path}: no ')'")))?;
    Ok(after.split_whitespace().map(str::to_string).collect())
}

/// Field `n` (1-based, as in proc(5)) of a parsed stat line, as u64.
pub fn stat_field(fields: &[String], n: usize) -> Result<u64> {
    fields
        .get(n - 3)
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Error::Parse(format!("/proc stat field {n}")))
}

/// The value of `key:` in /proc/PID/status (or task/TID/status).
pub fn status_field(path: &str, key: &str) -> Result<String> {
    let text = fs::read_to_string(path).map_err(io_ctx(format!("reading {path}")))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| Error::Parse(format!("{path}: no {key}")))
}

/// Whether thread `tid` has a signal pending (for itself or its process) that it does not
/// block, from /proc/TID/status.
pub fn unblocked_signal_pending(tid: i32) -> Result<bool> {
    let path = format!("/proc/{tid}/status");
    let mask = |key: &str| -> Result<u64> {
        let v = status_field(&path, key)?;
        u64::from_str_radix(&v, 16).map_err(|_| Error::Parse(format!("{path}: {key} {v}")))
    };
    Ok((mask("SigPnd")? | mask("ShdPnd")?) & !mask("SigBlk")? != 0)
}

/// The pid of outer pid `pid` inside its innermost PID namespace (last NSpid entry).
pub fn inner_pid(path: &str) -> Result<i32> {
    let v = status_field(path, "NSpid")?;
    v.split_whitespace()
        .last()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Parse(format!("{path}: NSpid {v}")))
}

/// Thread ids (outer) of process `pid`, sorted with the leader first.
pub fn list_tasks(pid: i32) -> Result<Vec<i32>> {
    let dir = format!("/proc/{pid}/task");
    let mut tids: Vec<i32> = fs::read_dir(&dir)
        .map_err(io_ctx(format!("listing {dir}")))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_by_key(|&t| (t != pid, t));
    Ok(tids)
}

/// Read `buf.len()` bytes at `addr` of process `pid` through /proc/PID/mem (`mem` when
/// given, opened otherwise).
///
/// Never with process_vm_readv: it pins the pages it reads, and the kernel gives a process
/// its own copy of every copy-on-write page shared with a parent or child before pinning it
/// (so a checkpoint would undo the sharing of a forked job's memory). /proc/PID/mem reads
/// take page references without pinning, and read what the process cannot itself
/// (PROT_NONE, write-only pages) too.
pub fn read_mem(
    pid: i32,
    mem: Option<&fs::File>,
    addr: u64,
    buf: &mut [u8],
) -> std::io::Result<()> {
    match mem {
        Some(f) => f.read_exact_at(buf, addr),
        None => fs::File::open(format!("/proc/{pid}/mem"))?.read_exact_at(buf, addr),
    }
}

/// Read remote byte ranges into parts of `buf`: each `(addr, at, len)` copies `len` bytes at
/// `addr` of process `pid` to `buf[at..at + len]` (parts must not overlap), straight into
/// `buf`, through /proc/PID/mem as [`read_mem`] says why.
pub fn read_mem_scatter(
    pid: i32,
    mem: Option<&fs::File>,
    parts: &[(u64, usize, usize)],
    buf: &mut [u8],
) -> std::io::Result<()> {
    for &(_, at, len) in parts {
        if at + len > buf.len() {
            return Err(std::io::Error::other(
                "read_mem_scatter: part outside the buffer",
            ));
        }
    }
    let opened;
    let f = match mem {
        Some(f) => f,
        None => {
            opened = fs::File::open(format!("/proc/{pid}/mem"))?;
            &opened
        }
    };
    for &(addr, at, len) in parts {
        f.read_exact_at(&mut buf[at..at + len], addr)?;
    }
    Ok(())
}

/// Write `data` at `addr` of process `pid` (process_vm_writev, falling back to /proc/PID/mem).
pub fn write_mem(pid: i32, mem: Option<&fs::File>, addr: u64, data: &[u8]) -> std::io::Result<()> {
    let local = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: `local` describes `data`, valid for reads of its length; the kernel only reads it.
    let n = unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) };
    if n >= 0 && n as usize == data.len() {
        return Ok(());
    }
    let done = if n > 0 { n as usize } else { 0 };
    let rest = &data[done..];
    let at = addr + done as u64;
    match mem {
        Some(f) => f.write_all_at(rest, at),
        None => fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/{pid}/mem"))?
            .write_all_at(rest, at),
    }
}

/// Outer pids of the children of every thread of `pid`.
pub fn children_of(pid: i32) -> Result<Vec<i32>> {
    let mut out = Vec::new();
    for t in list_tasks(pid)? {
        let path = format!("/proc/{pid}/task/{t}/children");
        // A thread that exits meanwhile has no children file: it has no children either.
        if let Ok(text) = fs::read_to_string(&path) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok()),
            );
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}
