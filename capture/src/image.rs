//! The `ProcessImage` model: everything captured about a process tree, as serde metadata, plus
//! the traits through which memory and file contents flow to and from a store.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io;
use std::sync::Mutex;

/// Version of the image format written by this code.
pub const IMAGE_FORMAT: u32 = 1;

/// A captured job: every process of the launched program's tree (one process for now).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessTreeImage {
    /// [`IMAGE_FORMAT`] at capture time.
    pub format: u32,
    /// Whether the job ran in its own user namespace (unprivileged launch).
    pub user_ns: bool,
    /// The processes; the first one is the launched program (the child of the sandbox init).
    pub processes: Vec<ProcessImage>,
    /// Regular files open for writing at the checkpoint (each once), rewound at restore.
    #[serde(default)]
    pub files: Vec<crate::files::WrittenFile>,
    /// Children that had exited but were not yet reaped by their parent.
    #[serde(default)]
    pub zombies: Vec<ZombieImage>,
    /// Pipes created inside the job, with their unread bytes.
    #[serde(default)]
    pub pipes: Vec<PipeImage>,
    /// UNIX sockets, FIFOs and System V shared memory of the job ([`crate::ipc`]).
    #[serde(default)]
    pub ipc: crate::ipc::IpcImage,
}

/// A pipe between processes of the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipeImage {
    /// Inode number at the checkpoint ([`FdKind::Pipe::id`]).
    pub id: u64,
    /// Capacity in bytes (F_GETPIPE_SZ).
    pub capacity: u64,
    /// Number of unread bytes.
    pub unread: u64,
    /// `(pid, fd)` under which the unread bytes went to [`MemorySink::put_file`] (a read end).
    pub data: Option<(i32, i32)>,
}

/// An exited, not yet reaped process of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZombieImage {
    /// Pid inside the job's namespace.
    pub pid: i32,
    /// Parent pid inside the namespace.
    pub ppid: i32,
    /// Raw wait status its parent will collect.
    pub status: i32,
}

/// One captured process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessImage {
    /// Pid inside the job's PID namespace.
    pub pid: i32,
    /// Path of the executable (/proc/PID/exe).
    pub exe: String,
    /// Working directory.
    pub cwd: String,
    /// File mode creation mask.
    pub umask: u32,
    /// Memory-layout fields restored with PR_SET_MM_MAP.
    pub mm: MmFields,
    /// The auxiliary vector (/proc/PID/auxv) as words.
    pub auxv: Vec<u64>,
    /// Memory mappings in address order, without vdso/vvar/vsyscall.
    pub vmas: Vec<Vma>,
    /// Where the kernel's vdso was mapped and a hash of its bytes.
    pub vdso: Option<VdsoInfo>,
    /// Threads; the first one is the thread-group leader.
    pub threads: Vec<ThreadImage>,
    /// Signal dispositions other than the default.
    pub sigactions: Vec<SigAction>,
    /// Resource limits (RLIMIT_* index, soft, hard).
    pub rlimits: Vec<(u32, u64, u64)>,
    /// Interval timers (which, interval sec, interval usec, value sec, value usec), non-zero only.
    pub itimers: Vec<(u32, [i64; 4])>,
    /// Open file descriptors.
    pub fds: Vec<FdImage>,
    /// Process-wide pending signals (raw 128-byte siginfo each).
    pub shared_pending: Vec<Vec<u8>>,
    /// CLOCK_MONOTONIC and CLOCK_BOOTTIME (ns) as the program saw them at the checkpoint.
    #[serde(default)]
    pub clocks: Option<(i64, i64)>,
    /// Parent pid inside the namespace (1, the sandbox init, for the launched program).
    #[serde(default)]
    pub ppid: i32,
    /// Process group id inside the namespace (0: a group outside it, inherited from init).
    #[serde(default)]
    pub pgid: i32,
    /// Session id inside the namespace (0: a session outside it, inherited from init).
    #[serde(default)]
    pub sid: i32,
}

/// mm fields of /proc/PID/stat plus the current brk.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct MmFields {
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub brk: u64,
    pub start_stack: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
}

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

/// vdso/vvar placement of the captured process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VdsoInfo {
    /// Start of the whole vvar+vdso block (what ARCH_MAP_VDSO_64 takes).
    pub block_start: u64,
    /// Length of the whole block.
    pub block_len: u64,
    /// Start of the `[vdso]` text.
    pub vdso_start: u64,
    /// Length of the `[vdso]` text.
    pub vdso_len: u64,
    /// BLAKE3 of the vdso text, hex.
    pub hash: String,
}

/// One thread.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreadImage {
    /// Tid inside the job's PID namespace.
    pub tid: i32,
    /// Thread name.
    pub comm: String,
    /// General registers.
    pub regs: UserRegs,
    /// NT_X86_XSTATE (xsave layout, kernel format).
    pub xstate: Vec<u8>,
    /// Blocked signals.
    pub sigmask: u64,
    /// Pending thread-directed signals (raw siginfo).
    pub pending: Vec<Vec<u8>>,
    /// rseq registration (address, length, signature).
    pub rseq: Option<(u64, u32, u32)>,
    /// Robust futex list (head, len).
    pub robust_list: (u64, u64),
    /// clear_child_tid address (set_tid_address).
    pub clear_child_tid: u64,
    /// sigaltstack (ss_sp, ss_flags, ss_size).
    pub sigaltstack: (u64, i32, u64),
}

/// x86_64 `struct user_regs_struct`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct UserRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub orig_rax: u64,
    pub rip: u64,
    pub cs: u64,
    pub eflags: u64,
    pub rsp: u64,
    pub ss: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub ds: u64,
    pub es: u64,
    pub fs: u64,
    pub gs: u64,
}

/// A signal disposition (kernel `struct sigaction` layout fields).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SigAction {
    /// Signal number.
    pub signo: i32,
    /// sa_handler (SIG_IGN = 1 or a handler address).
    pub handler: u64,
    /// sa_flags.
    pub flags: u64,
    /// sa_restorer.
    pub restorer: u64,
    /// sa_mask.
    pub mask: u64,
}

/// One open file descriptor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FdImage {
    /// Descriptor number.
    pub fd: i32,
    /// FD_CLOEXEC.
    pub cloexec: bool,
    /// What it refers to.
    pub kind: FdKind,
}

/// What a file descriptor refers to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FdKind {
    /// A file reopened by path (regular files, directories, /dev/null, /dev/zero, /dev/urandom).
    Path {
        /// Absolute path.
        path: String,
        /// open(2) flags (access mode, O_APPEND, O_NONBLOCK, ...).
        flags: i32,
        /// File offset.
        offset: u64,
    },
    /// A regular file deleted while open; its contents go through the sink as a file stream.
    Deleted {
        /// Path it had (without " (deleted)").
        path: String,
        /// open(2) flags.
        flags: i32,
        /// File offset.
        offset: u64,
        /// Size of the saved contents.
        size: u64,
    },
    /// A terminal or pipe on 0/1/2: the restoring process's own descriptor of the same number.
    Stdio,
    /// One end of a pipe created inside the job (not inherited from the parent); all
    /// descriptors with the same `id` share the pipe, which restore recreates and refills
    /// with its unread bytes ([`PipeImage`]).
    Pipe {
        /// Pipe inode number at the checkpoint (identifies the pipe within the image).
        id: u64,
        /// open(2) flags of this end: O_RDONLY (read end) or O_WRONLY, O_NONBLOCK.
        flags: i32,
    },
    /// A UNIX socket of the job ([`crate::ipc::SocketImage`] with this id); every descriptor
    /// with the same id is the same socket (one open file description).
    Socket {
        /// Socket inode number at the checkpoint.
        id: u64,
    },
    /// A FIFO (named pipe) opened by path ([`crate::ipc::FifoImage`] with this id).
    Fifo {
        /// Inode number of the FIFO at the checkpoint.
        id: u64,
        /// open(2) flags of this descriptor (access mode, O_NONBLOCK).
        flags: i32,
    },
    /// The same open file description as the parent process's descriptor `parent_fd`
    /// (inherited across fork: shared offset and flags); restore inherits it the same way.
    Inherited {
        /// The parent's descriptor number.
        parent_fd: i32,
    },
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
    /// Asked by capture (program frozen) before it looks up which pages of the private
    /// anonymous mapping `start..end` with protection `prot` of process `pid` (inside the
    /// job's namespace) are resident: a sink that already knows (dirty tracking scanned the
    /// mapping at this freeze) answers with the stored runs (offsets from `start`), saving a
    /// page-table walk. `None` (the default): capture finds out itself.
    fn known_stored(&self, pid: i32, start: u64, end: u64, prot: u32) -> Option<Vec<(u64, u64)>> {
        let _ = (pid, start, end, prot);
        None
    }
    /// Asked by capture (program frozen) for every line of `/proc/PID/maps` of process `pid`
    /// (inside the job's namespace): whether the mapping grows down, when the sink knows it
    /// from a `/proc/PID/smaps` read of the same mapping earlier in this checkpoint (dirty
    /// tracking reads it during the pre-copy). Only if every mapping is known does capture
    /// skip reading smaps (a page-table walk) while the program is frozen. Default: `None`.
    fn known_growsdown(&self, pid: i32, m: &crate::procfs::MapEntry) -> Option<bool> {
        let _ = (pid, m);
        None
    }
    /// The contents of a deleted-but-open file, or of a file open for writing (descriptor
    /// `fd` of process `pid`; see [`crate::files`]).
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
