//! Mapping the image's memory into the stub and filling it from a [`MemorySource`].

use cairn_capture::error::io_ctx;
use cairn_capture::image::Backing;
use cairn_capture::inject::Injector;
use cairn_capture::procfs;
use cairn_capture::{Error, MemorySource, ProcessImage, Result, Vma};

const STR: u64 = 8192;

/// Write the stored pages of `vma` that fall in the chunk `data` at offset `off`.
fn write_chunk(
    pid: i32,
    mem: &std::fs::File,
    vma: &Vma,
    off: u64,
    data: &[u8],
) -> std::io::Result<()> {
    let end = (off + data.len() as u64).min(vma.len());
    let first = vma.stored.partition_point(|r| r.0 + r.1 <= off);
    for &(s, l) in &vma.stored[first..] {
        if s >= end {
            break;
        }
        let a = s.max(off);
        let b = (s + l).min(end);
        procfs::write_mem(
            pid,
            Some(mem),
            vma.start + a,
            &data[(a - off) as usize..(b - off) as usize],
        )?;
    }
    Ok(())
}

/// Map every VMA of the image at its address and fill it; then set its final protection.
pub fn map_all(
    inj: &Injector,
    pid: i32,
    scratch: u64,
    p: &ProcessImage,
    source: &dyn MemorySource,
) -> Result<()> {
    map_all_shared(
        inj,
        pid,
        scratch,
        p,
        source,
        &std::collections::HashMap::new(),
    )
}

/// [`map_all`] where `shm` maps the id of each shared anonymous object to a descriptor (a
/// memfd) open in the stub; mappings with an id are mapped from it.
pub fn map_all_shared(
    inj: &Injector,
    pid: i32,
    scratch: u64,
    p: &ProcessImage,
    source: &dyn MemorySource,
    shm: &std::collections::HashMap<u64, i32>,
) -> Result<()> {
    let mem_path = format!("/proc/{pid}/mem");
    let mem = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&mem_path)
        .map_err(io_ctx(format!("opening {mem_path}")))?;
    let rw = (libc::PROT_READ | libc::PROT_WRITE) as u32;
    for (index, vma) in p.vmas.iter().enumerate() {
        let has_data = !vma.stored.is_empty();
        let map_prot = if has_data { vma.prot | rw } else { vma.prot };
        let mut flags = libc::MAP_FIXED
            | if vma.shared {
                libc::MAP_SHARED
            } else {
                libc::MAP_PRIVATE
            };
        if vma.growsdown {
            flags |= libc::MAP_GROWSDOWN;
        }

        let shm_fd = vma
            .shm
            .and_then(|(id, off)| shm.get(&id).map(|&fd| (fd, off)));
        match (&vma.backing, shm_fd) {
            (Backing::Anonymous, Some((fd, off))) => {
                inj.call(
                    "mmap(shared memory)",
                    libc::SYS_mmap,
                    &[
                        vma.start,
                        vma.len(),
                        u64::from(map_prot),
                        flags as u64,
                        fd as u64,
                        off,
                    ],
                )?;
            }
            (Backing::Anonymous, None) => {
                inj.call(
                    "mmap(anonymous)",
                    libc::SYS_mmap,
                    &[
                        vma.start,
                        vma.len(),
                        u64::from(map_prot),
                        (flags | libc::MAP_ANONYMOUS) as u64,
                        u64::MAX,
                        0,
                    ],
                )?;
            }
            (Backing::File { path, offset }, _) => {
                let writable_shared = vma.shared && vma.prot & libc::PROT_WRITE as u32 != 0;
                let oflags = if writable_shared {
                    libc::O_RDWR
                } else {
                    libc::O_RDONLY
                };
                let b = {
                    let mut b = path.as_bytes().to_vec();
                    b.push(0);
                    b
                };
                procfs::write_mem(pid, Some(&mem), scratch + STR, &b)
                    .map_err(io_ctx("writing a path into the stub"))?;
                let fd = inj
                    .call(
                        "openat(mapped file)",
                        libc::SYS_openat,
                        &[
                            libc::AT_FDCWD as u64,
                            scratch + STR,
                            (oflags | libc::O_CLOEXEC) as u64,
                        ],
                    )
                    .map_err(|e| {
                        Error::Incompatible(format!("cannot open mapped file {path}: {e}"))
                    })?;
                let r = inj.call(
                    "mmap(file)",
                    libc::SYS_mmap,
                    &[
                        vma.start,
                        vma.len(),
                        u64::from(map_prot),
                        flags as u64,
                        fd,
                        *offset,
                    ],
                );
                inj.call("close", libc::SYS_close, &[fd])?;
                r?;
            }
        }
        if has_data {
            if vma.backing != Backing::Anonymous {
                // Stored pages of a file mapping differ from the file; chunks the source reports
                // as all-zero must read as zeros, so clear them first.
                for &(s, l) in &vma.stored {
                    procfs::write_mem(pid, Some(&mem), vma.start + s, &vec![0u8; l as usize])
                        .map_err(io_ctx("clearing file-mapped pages"))?;
                }
            }
            let f = |off: u64, data: Option<&[u8]>| -> std::io::Result<()> {
                match data {
                    Some(d) => write_chunk(pid, &mem, vma, off, d),
                    None => Ok(()),
                }
            };
            source
                .for_each_chunk(p.pid, index, &f)
                .map_err(io_ctx(format!(
                    "restoring memory {:x}-{:x}",
                    vma.start, vma.end
                )))?;
            if map_prot != vma.prot {
                inj.call(
                    "mprotect",
                    libc::SYS_mprotect,
                    &[vma.start, vma.len(), u64::from(vma.prot)],
                )?;
            }
        }
    }
    Ok(())
}
