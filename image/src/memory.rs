//! Memory: mappings and what backs them, and the traits through which memory regions and
//! file contents flow to a store at a checkpoint and back at a restore.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io;
use std::sync::Mutex;

/// What backs a mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Backing {
    /// Anonymous memory (heap, stacks, malloc arenas, MAP_ANONYMOUS).
    Anonymous,
    /// A file mapped at a page offset.
    File {
        /// Absolute path of the file.
        path: String,
        /// Offset into the file in bytes.
        offset: u64,
    },
}

/// One memory mapping.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vma {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// PROT_* bits.
    pub prot: u32,
    /// MAP_SHARED (otherwise MAP_PRIVATE).
    pub shared: bool,
    /// VM_GROWSDOWN (a main-thread stack).
    pub growsdown: bool,
    /// Anonymous or file.
    pub backing: Backing,
    /// Byte ranges (offset from `start`, length), page aligned, whose contents are in the
    /// region stream; other pages are zero (anonymous) or the file's own bytes.
    pub stored: Vec<(u64, u64)>,
    /// For shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS, memfd, deleted /dev/shm files):
    /// (id of the shared object = its inode, offset into it). Mappings with the same id, in
    /// one process or several, are restored as views of one shared object again.
    #[serde(default)]
    pub shm: Option<(u64, u64)>,
    /// Attributes set with madvise, mlock, mmap flags or mseal (the kernel's VmFlags).
    #[serde(default)]
    pub flags: VmaFlags,
    /// Guard regions installed with `MADV_GUARD_INSTALL`: byte ranges (offset from `start`,
    /// length), page aligned; never in `stored`.
    #[serde(default)]
    pub guards: Vec<(u64, u64)>,
    /// Private anonymous memory shared copy-on-write with the parent process: byte ranges
    /// (offset from `start`, length) of `stored` whose pages are the parent's pages (the
    /// parent has a private anonymous mapping with the same start and end). See
    /// docs/capture-restore.md, "Memory shared copy-on-write".
    #[serde(default)]
    pub inherited: Vec<(u64, u64)>,
}

/// Attributes of a mapping beyond its protection (bits of [`Vma::flags`]), each restored with
/// the call that set it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VmaFlags(pub u32);

impl VmaFlags {
    /// `MADV_DONTFORK` (VmFlags `dc`).
    pub const DONTFORK: u32 = 1;
    /// `MADV_DONTDUMP` (`dd`).
    pub const DONTDUMP: u32 = 1 << 1;
    /// `MADV_HUGEPAGE` (`hg`).
    pub const HUGEPAGE: u32 = 1 << 2;
    /// `MADV_NOHUGEPAGE` (`nh`).
    pub const NOHUGEPAGE: u32 = 1 << 3;
    /// `MADV_WIPEONFORK` (`wf`).
    pub const WIPEONFORK: u32 = 1 << 4;
    /// `MADV_MERGEABLE` (`mg`).
    pub const MERGEABLE: u32 = 1 << 5;
    /// `mlock` (`lo`).
    pub const LOCKED: u32 = 1 << 6;
    /// `mlock2(MLOCK_ONFAULT)` (`lf`, with `lo`).
    pub const LOCKONFAULT: u32 = 1 << 7;
    /// `MAP_NORESERVE` (`nr`).
    pub const NORESERVE: u32 = 1 << 8;
    /// `MADV_SEQUENTIAL` (`sr`).
    pub const SEQUENTIAL: u32 = 1 << 9;
    /// `MADV_RANDOM` (`rr`).
    pub const RANDOM: u32 = 1 << 10;
    /// `mseal` (`sl`).
    pub const SEALED: u32 = 1 << 11;
    /// A shared file mapping that may become writable (`mw`: the file was opened for writing).
    pub const MAYWRITE: u32 = 1 << 12;

    /// True when every bit of `f` is set.
    pub fn has(self, f: u32) -> bool {
        self.0 & f == f
    }
}

impl Vma {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    /// True for an empty mapping (never produced by capture).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
    /// Number of bytes whose contents are stored.
    pub fn stored_bytes(&self) -> u64 {
        self.stored.iter().map(|r| r.1).sum()
    }
}

/// Source of a captured region's bytes: fills `buf` with the region's bytes at `offset`.
pub type RegionSource<'a> = &'a (dyn Fn(u64, &mut [u8]) -> io::Result<()> + Sync);

/// Receives captured memory regions and file contents.
pub trait MemorySink {
    /// One memory region (VMA `index` of process `pid`) of `len` bytes; called once per region
    /// that has stored pages. `source` may be called from several threads at once, with
    /// page-aligned offsets; pages that are not stored read as zeros.
    fn put_region(
        &mut self,
        pid: i32,
        index: usize,
        len: u64,
        source: RegionSource<'_>,
    ) -> io::Result<()>;
    /// Like [`MemorySink::put_region`] for mapping `vma` (region `index` of process `pid`),
    /// with what dirty-page tracking knows: `changed` lists the byte ranges (offsets from
    /// `vma.start`) that may differ from the same mapping (same start, end and protection)
    /// in this process's previous checkpoint; every other byte is proven unchanged. `None`
    /// means nothing is known. Sinks that cannot reuse a previous region ignore it.
    fn put_vma(
        &mut self,
        pid: i32,
        index: usize,
        vma: &Vma,
        changed: Option<&[(u64, u64)]>,
        source: RegionSource<'_>,
    ) -> io::Result<()> {
        let _ = changed;
        self.put_region(pid, index, vma.len(), source)
    }
    /// Pre-copy (docs/incremental.md, "Short freezes"): called while the program *runs*, for
    /// a private anonymous mapping that dirty tracking watches, before the final frozen pass
    /// of the same checkpoint. `vma.stored` are the pages resident when the copy began;
    /// `changed` is as in [`MemorySink::put_vma`] (relative to the previous checkpoint).
    /// Only called when [`MemorySink::supports_precopy`] is true. The sink keeps the copy
    /// until [`MemorySink::put_vma_precopied`] asks for it; it never becomes part of the
    /// image by itself. An error only means this mapping is not pre-copied.
    fn put_precopy(
        &mut self,
        pid: i32,
        vma: &Vma,
        changed: Option<&[(u64, u64)]>,
        source: RegionSource<'_>,
    ) -> io::Result<()> {
        let _ = (pid, vma, changed, source);
        Err(io::Error::other("this sink does not support pre-copy"))
    }
    /// True when the sink implements [`MemorySink::put_precopy`] (default false: capture then
    /// reads all memory while the program is frozen).
    fn supports_precopy(&self) -> bool {
        false
    }
    /// Every [`MemorySink::put_precopy`] of this checkpoint has been made; the program is
    /// frozen next. A sink makes its pre-copies usable as bases here.
    fn precopy_done(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Like [`MemorySink::put_vma`] (called while frozen), where `changed` is relative to this
    /// checkpoint's pre-copy of the same mapping (same pid, start, end and protection): every
    /// byte outside `changed` equals the pre-copy's. `None` means nothing is known.
    fn put_vma_precopied(
        &mut self,
        pid: i32,
        index: usize,
        vma: &Vma,
        changed: Option<&[(u64, u64)]>,
        source: RegionSource<'_>,
    ) -> io::Result<()> {
        let _ = changed;
        self.put_vma(pid, index, vma, None, source)
    }
    /// The contents of a deleted-but-open file, or of a file open for writing (descriptor
    /// `fd` of process `pid`; see [`crate::file`]).
    fn put_file(&mut self, pid: i32, fd: i32, data: &mut dyn io::Read) -> io::Result<()>;
}

/// Callback receiving one chunk of a region at restore: `(offset, Some(bytes))`, or
/// `(offset, None)` for an all-zero chunk whose length the receiver knows from the region.
pub type ChunkFn<'a> = &'a (dyn Fn(u64, Option<&[u8]>) -> io::Result<()> + Sync);

/// Supplies memory regions and file contents at restore.
pub trait MemorySource {
    /// Calls `f` for every chunk of region `index` of process `pid` (any order, possibly from
    /// several threads). `f(offset, None)` means an all-zero chunk.
    fn for_each_chunk(&self, pid: i32, index: usize, f: ChunkFn<'_>) -> io::Result<()>;
    /// Fills `buf` with the bytes of region `index` of process `pid` at `offset` (zeros
    /// where nothing is stored): random access, used to serve page faults of a lazy restore.
    fn read_range(&self, pid: i32, index: usize, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// The saved contents of a deleted-but-open file.
    fn read_file(&self, pid: i32, fd: i32) -> io::Result<Vec<u8>>;
    /// A hint that regions `indices` of process `pid` are about to be read with
    /// [`MemorySource::for_each_chunk`]: a source may prepare them all at once (one look-up
    /// for many regions instead of one per region). Failures are left to the reads.
    fn prefetch(&self, _pid: i32, _indices: &[usize]) {}
}

/// Chunk size of [`MemoryImageStore`].
pub const MEM_CHUNK: u64 = 64 * 1024;

/// A region kept by [`MemoryImageStore`]: its length and chunks (`None` = all zero).
type StoredRegion = (u64, Vec<Option<Vec<u8>>>);

/// An in-memory [`MemorySink`] + [`MemorySource`] (tests and tools). Stores each region as
/// fixed-size chunks and drops all-zero chunks, like the real store.
#[derive(Debug, Default)]
pub struct MemoryImageStore {
    regions: Mutex<HashMap<(i32, usize), StoredRegion>>,
    files: Mutex<HashMap<(i32, i32), Vec<u8>>>,
}

impl MemoryImageStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
    /// Total bytes kept (non-zero chunks plus files).
    pub fn stored_bytes(&self) -> u64 {
        let r = self.regions.lock().map(|m| {
            m.values()
                .flat_map(|(_, c)| c.iter().flatten().map(|v| v.len() as u64))
                .sum::<u64>()
        });
        let f = self
            .files
            .lock()
            .map(|m| m.values().map(|v| v.len() as u64).sum::<u64>());
        r.unwrap_or(0) + f.unwrap_or(0)
    }
}

fn poisoned() -> io::Error {
    io::Error::other("memory image store lock poisoned")
}

impl MemorySink for MemoryImageStore {
    fn put_region(
        &mut self,
        pid: i32,
        index: usize,
        len: u64,
        source: RegionSource<'_>,
    ) -> io::Result<()> {
        use rayon::prelude::*;
        let n = len.div_ceil(MEM_CHUNK);
        let chunks = (0..n)
            .into_par_iter()
            .map(|i| {
                let off = i * MEM_CHUNK;
                let mut buf = vec![0u8; MEM_CHUNK.min(len - off) as usize];
                source(off, &mut buf)?;
                Ok(if buf.iter().all(|&b| b == 0) {
                    None
                } else {
                    Some(buf)
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        self.regions
            .lock()
            .map_err(|_| poisoned())?
            .insert((pid, index), (len, chunks));
        Ok(())
    }
    fn put_file(&mut self, pid: i32, fd: i32, data: &mut dyn io::Read) -> io::Result<()> {
        let mut v = Vec::new();
        data.read_to_end(&mut v)?;
        self.files
            .lock()
            .map_err(|_| poisoned())?
            .insert((pid, fd), v);
        Ok(())
    }
}

impl MemorySource for MemoryImageStore {
    fn for_each_chunk(&self, pid: i32, index: usize, f: ChunkFn<'_>) -> io::Result<()> {
        use rayon::prelude::*;
        let map = self.regions.lock().map_err(|_| poisoned())?;
        let (_, chunks) = map.get(&(pid, index)).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no region {index} of pid {pid}"),
            )
        })?;
        chunks
            .par_iter()
            .enumerate()
            .try_for_each(|(i, c)| f(i as u64 * MEM_CHUNK, c.as_deref()))
    }
    fn read_range(&self, pid: i32, index: usize, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let map = self.regions.lock().map_err(|_| poisoned())?;
        let (len, chunks) = map.get(&(pid, index)).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no region {index} of pid {pid}"),
            )
        })?;
        if offset + buf.len() as u64 > *len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "range {offset}+{} outside region {index} of pid {pid}",
                    buf.len()
                ),
            ));
        }
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (i, skip) = ((pos / MEM_CHUNK) as usize, (pos % MEM_CHUNK) as usize);
            let n = (MEM_CHUNK as usize - skip).min(buf.len() - done);
            match chunks.get(i).and_then(|c| c.as_deref()) {
                Some(c) => buf[done..done + n].copy_from_slice(&c[skip..skip + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
        }
        Ok(())
    }
    fn read_file(&self, pid: i32, fd: i32) -> io::Result<Vec<u8>> {
        self.files
            .lock()
            .map_err(|_| poisoned())?
            .get(&(pid, fd))
            .cloned()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no file {fd} of pid {pid}"),
                )
            })
    }
}
