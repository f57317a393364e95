//! Reading many chunks of a generation at once, as a restart does: the chunks are sorted by
//! pack and offset, neighbouring ones are coalesced into extents of a few MiB, and each
//! extent is read with one `pread` — with `O_DIRECT` when its pages are not in the page cache
//! (packs are written with `O_DIRECT`, so after a checkpoint or on another node they never
//! are), through the page cache otherwise. Two reader threads keep reads in flight while the
//! rayon pool slices the extents read so far into chunks, decompresses and verifies each one
//! and hands it to the consumer. At most `DEPTH + READERS` extents wait or are being read at
//! any time, plus one per consumer thread (docs/performance.md, "Restart").
//!
//! Every chunk is verified against its id as before. A chunk that fails in its extent (bad
//! hash, short read, unreadable pack) is read again on its own through
//! [`StoreDir::read_loc_into`], which follows chunks moved by gc and reports real damage exactly
//! as a chunk-by-chunk read would.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::dir::StoreDir;
use crate::error::StoreError;
use crate::index::ChunkLoc;
use crate::pack::{check_hash, decode_to, Codec, PackEntry};

/// Largest extent read at once (unless one chunk is larger by itself).
const EXTENT_MAX: u64 = 4 << 20;
/// Chunks of one pack at most this far apart are read in one extent (the gap is read too).
const GAP_MAX: u64 = 64 << 10;
/// Extents shorter than this are read through the page cache: for a few KiB the device's
/// latency dominates either way, and what is cached is then found there.
const DIRECT_MIN: u64 = 128 << 10;
/// Alignment of direct reads: file offset, length and buffer address.
const ALIGN: u64 = 4096;
/// Threads reading extents.
const READERS: usize = 2;
/// Extents read ahead of the consumers.
const DEPTH: usize = 4;
/// Extents planned ahead of the readers (their chunk lists only).
const JOBS_AHEAD: usize = 64;
/// An extent whose pages are at least this fraction (1/n) cached is read through the cache.
const CACHED_FRACTION: u64 = 2;

/// How the chunks of a reader were read (for tests and benchmarks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Data chunks read through extents.
    pub chunks: u64,
    /// Extents read with `O_DIRECT`.
    pub direct_extents: u64,
    /// Extents read through the page cache (cached, short, or `O_DIRECT` refused).
    pub buffered_extents: u64,
    /// Bytes read from pack files by extent reads (gaps between chunks included).
    pub bytes_read: u64,
    /// Chunks that failed in their extent and were read again on their own.
    pub chunks_reread: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    chunks: AtomicU64,
    direct_extents: AtomicU64,
    buffered_extents: AtomicU64,
    bytes_read: AtomicU64,
    chunks_reread: AtomicU64,
}

impl Counters {
    /// The counts so far.
    pub(crate) fn snapshot(&self) -> ReadStats {
        ReadStats {
            chunks: self.chunks.load(Ordering::Relaxed),
            direct_extents: self.direct_extents.load(Ordering::Relaxed),
            buffered_extents: self.buffered_extents.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            chunks_reread: self.chunks_reread.load(Ordering::Relaxed),
        }
    }

    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// The two descriptors of one pack: through the page cache, and `O_DIRECT` when the file
/// system accepts it.
struct PackFiles {
    buffered: Arc<File>,
    direct: Option<File>,
    /// Cleared when a direct read is refused (`EINVAL`) although the open was accepted.
    direct_ok: AtomicBool,
}

/// Open pack descriptors of one reader, by pack name.
#[derive(Default)]
pub(crate) struct PackHandles {
    packs: Mutex<HashMap<String, Arc<PackFiles>>>,
}

impl PackHandles {
    fn get(
        &self,
        dir: &StoreDir,
        pack: &str,
        try_direct: bool,
    ) -> Result<Arc<PackFiles>, StoreError> {
        if let Some(p) = self.lock().get(pack) {
            return Ok(p.clone());
        }
        let buffered = dir.pack_file(pack)?;
        let direct = if try_direct {
            open_direct(&dir.pack_path(pack))
        } else {
            None
        };
        let p = Arc::new(PackFiles {
            buffered,
            direct_ok: AtomicBool::new(direct.is_some()),
            direct,
        });
        let mut packs = self.lock();
        if packs.len() > 256 {
            packs.clear();
        }
        packs.insert(pack.to_string(), p.clone());
        Ok(p)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<PackFiles>>> {
        self.packs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `path` opened read-only with `O_DIRECT`; `None` when the file system refuses it (`EINVAL`,
/// e.g. ramfs and some FUSE file systems) or the open fails otherwise (the buffered
/// descriptor, opened first, then reports the real error if any).
pub(crate) fn open_direct(path: &std::path::Path) -> Option<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .ok()
}

/// One data chunk to read: its offset in the stream, its location, its whole length and the
/// part of it the stream uses (`take`: offset and length; the whole chunk unless the stream
/// node holds a slice of it).
pub(crate) struct Item {
    pub off: u64,
    pub loc: ChunkLoc,
    pub len: usize,
    pub take: (usize, usize),
}

impl Item {
    /// The part of the chunk `data` the stream uses.
    fn taken<'d>(&self, data: &'d [u8]) -> Result<&'d [u8], StoreError> {
        let (o, l) = self.take;
        data.get(o..o.saturating_add(l)).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "a stream uses bytes {o}+{l} of chunk {}, which has {} bytes",
                self.loc.1.id,
                data.len()
            ))
        })
    }
}

/// Neighbouring chunks of one pack, `items[first..last]`, covering `[start, end)` of it.
struct Extent {
    first: usize,
    last: usize,
    start: u64,
    end: u64,
}

/// Sorts `items` by pack and offset and cuts them into extents.
fn plan(items: &mut [Item]) -> Vec<Extent> {
    items.sort_unstable_by(|a, b| (&a.loc.0, a.loc.1.offset).cmp(&(&b.loc.0, b.loc.1.offset)));
    let mut out: Vec<Extent> = Vec::new();
    for (k, it) in items.iter().enumerate() {
        let (s, e) = span(&it.loc.1);
        if let Some(x) = out.last_mut() {
            if items[x.first].loc.0 == it.loc.0
                && s <= x.end.saturating_add(GAP_MAX)
                && e.max(x.end) - x.start <= EXTENT_MAX
            {
                x.last = k + 1;
                x.end = x.end.max(e);
                continue;
            }
        }
        out.push(Extent {
            first: k,
            last: k + 1,
            start: s,
            end: e,
        });
    }
    out
}

fn span(e: &PackEntry) -> (u64, u64) {
    (e.offset, e.offset.saturating_add(u64::from(e.stored_len)))
}

/// A growable buffer handing out `ALIGN`-aligned windows.
#[derive(Default)]
struct Buf {
    mem: Vec<u8>,
}

impl Buf {
    /// An aligned window of `n` bytes.
    fn window(&mut self, n: usize) -> &mut [u8] {
        let pad = ALIGN as usize;
        if self.mem.len() < n + pad {
            self.mem = vec![0u8; n + pad];
        }
        let start = self.mem.as_ptr().align_offset(pad).min(pad);
        &mut self.mem[start..start + n]
    }
}

/// The bytes `[ext.start, ext.end)` of an extent once read: `buf.window(..)[skip..skip+len]`.
struct Filled {
    buf: Buf,
    skip: usize,
    len: usize,
}

impl Filled {
    fn bytes(&mut self) -> &[u8] {
        let (skip, len) = (self.skip, self.len);
        &self.buf.window(skip + len)[skip..skip + len]
    }
}

/// Consumer of verified chunks: (offset in the stream, bytes).
pub(crate) type Sink<'a> = dyn Fn(u64, &[u8]) -> Result<(), StoreError> + Sync + 'a;

/// Everything one call of [`read_chunks`] shares between its threads.
pub(crate) struct Ctx<'a> {
    pub dir: &'a StoreDir,
    pub handles: &'a PackHandles,
    pub counters: &'a Counters,
    /// Whether `O_DIRECT` may be tried at all (`CAIRN_PACK_DIRECT=0` turns it off).
    pub try_direct: bool,
}

/// An extent and its chunks, as handed from the planner to the readers and consumers.
struct Job {
    items: Vec<Item>,
    x: Extent,
}

/// `items` sorted and cut into extents, each with its own chunks.
fn jobs(mut items: Vec<Item>) -> Vec<Job> {
    let ext = plan(&mut items);
    let mut it = items.into_iter();
    ext.into_iter()
        .map(|x| Job {
            items: it.by_ref().take(x.last - x.first).collect(),
            x: Extent {
                first: 0,
                last: x.last - x.first,
                ..x
            },
        })
        .collect()
}

/// Chunks to read, in batches: each batch is located (an index lookup) while the extents of
/// the batches before it are being read.
pub(crate) type Batches<'a> = dyn Iterator<Item = Result<Vec<Item>, StoreError>> + Send + 'a;

/// Reads every chunk of `batches` and calls `sink(item.off, bytes)` for each, in no
/// particular order. A planner thread takes the batches one after the other and cuts each
/// into extents; `READERS` threads read the extents, at most `DEPTH` ahead of the consumers
/// (the rayon pool), which verify the chunks and call `sink`. The first error stops all of
/// them and is returned.
pub(crate) fn read_chunks(
    ctx: &Ctx<'_>,
    batches: &mut Batches<'_>,
    sink: &Sink<'_>,
) -> Result<(), StoreError> {
    let pool: Mutex<Vec<Buf>> = Mutex::new(Vec::new());
    let take_buf = || pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
    let planned: Mutex<Option<Result<(), StoreError>>> = Mutex::new(None);
    let (jtx, jrx) = std::sync::mpsc::sync_channel::<Job>(JOBS_AHEAD);
    // Taken (and dropped) to stop the planner when the consumers fail.
    let jrx = Mutex::new(Some(jrx));
    std::thread::scope(|sc| {
        let planned = &planned;
        sc.spawn(move || {
            let mut r = Ok(());
            'all: for b in batches {
                match b {
                    Ok(items) => {
                        for j in jobs(items) {
                            if jtx.send(j).is_err() {
                                break 'all;
                            }
                        }
                    }
                    Err(e) => {
                        r = Err(e);
                        break;
                    }
                }
            }
            *planned.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
        });
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Job, Result<Filled, StoreError>)>(DEPTH);
        for _ in 0..READERS {
            let tx = tx.clone();
            let (jrx, take_buf) = (&jrx, &take_buf);
            sc.spawn(move || loop {
                // The planner never waits for a reader holding this lock: recv only blocks
                // while the job queue is empty.
                let job = match jrx.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                    Some(r) => r.recv().ok(),
                    None => None,
                };
                let Some(job) = job else { break };
                let r = read_extent(ctx, &job, take_buf().unwrap_or_default());
                // The consumers stopped (an error): nothing more to read.
                if tx.send((job, r)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let consumed = rx.into_iter().par_bridge().try_for_each(|(job, r)| {
            let mut filled = r.ok();
            let res = consume(ctx, &job.items, &job.x, filled.as_mut(), sink);
            if let Some(f) = filled {
                pool.lock().unwrap_or_else(|p| p.into_inner()).push(f.buf);
            }
            res
        });
        jrx.lock().unwrap_or_else(|p| p.into_inner()).take();
        consumed
    })?;
    planned
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or(Ok(()))
}

/// Slices one extent into its chunks, verifies and hands them on; a chunk that does not check
/// out (or every chunk, when the extent could not be read) is read again on its own.
fn consume(
    ctx: &Ctx<'_>,
    items: &[Item],
    x: &Extent,
    filled: Option<&mut Filled>,
    sink: &Sink<'_>,
) -> Result<(), StoreError> {
    let bytes: Option<&[u8]> = filled.map(|f| f.bytes());
    let mut scratch = Vec::new();
    for it in items {
        let e = &it.loc.1;
        let good = bytes.and_then(|b| {
            let (s, end) = span(e);
            let payload = b.get((s - x.start) as usize..(end - x.start) as usize)?;
            decode(e, it.len, payload, &mut scratch)
        });
        match good {
            Some(data) => sink(it.off, it.taken(data)?)?,
            None => {
                Counters::add(&ctx.counters.chunks_reread, 1);
                let mut d = vec![0u8; it.len];
                ctx.dir.read_loc_into(&it.loc, &mut d)?;
                sink(it.off, it.taken(&d)?)?;
            }
        }
    }
    Counters::add(&ctx.counters.chunks, items.len() as u64);
    Ok(())
}

/// The chunk `e` from its `payload`, when it is the `len` bytes its id says.
fn decode<'b>(
    e: &PackEntry,
    len: usize,
    payload: &'b [u8],
    scratch: &'b mut Vec<u8>,
) -> Option<&'b [u8]> {
    if e.raw_len as usize != len {
        return None;
    }
    let data: &[u8] = match e.codec {
        Codec::Raw => payload,
        Codec::Zstd | Codec::Lz4 => {
            if scratch.len() < len {
                scratch.resize(len, 0);
            }
            let out = &mut scratch[..len];
            if decode_to(e.codec, payload, out).ok()? != len {
                return None;
            }
            out
        }
    };
    check_hash(e, data).ok()?;
    Some(data)
}

/// Reads the extent of `job` into `buf`.
fn read_extent(ctx: &Ctx<'_>, job: &Job, mut buf: Buf) -> Result<Filled, StoreError> {
    let (x, pack) = (&job.x, &job.items[0].loc.0);
    let files = ctx.handles.get(ctx.dir, pack, ctx.try_direct)?;
    let len = (x.end - x.start) as usize;
    let io = |e: std::io::Error| StoreError::Io {
        context: format!("reading pack {pack} at {}", x.start),
        source: e,
    };
    if let Some(d) = files.direct.as_ref().filter(|_| {
        files.direct_ok.load(Ordering::Relaxed)
            && x.end - x.start >= DIRECT_MIN
            && !mostly_cached(&files.buffered, x.start, x.end - x.start)
    }) {
        let astart = x.start & !(ALIGN - 1);
        let aend = x.end.div_ceil(ALIGN) * ALIGN;
        let skip = (x.start - astart) as usize;
        let win = buf.window((aend - astart) as usize);
        match read_direct(d, win, astart) {
            Ok(n) if n >= skip + len => {
                Counters::add(&ctx.counters.direct_extents, 1);
                Counters::add(&ctx.counters.bytes_read, n as u64);
                return Ok(Filled { buf, skip, len });
            }
            Ok(_) => {
                return Err(StoreError::Corrupt(format!(
                    "pack {pack} ends before offset {}",
                    x.end
                )))
            }
            // Opened with O_DIRECT but the reads are refused: read through the cache.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                files.direct_ok.store(false, Ordering::Relaxed);
            }
            Err(e) => return Err(io(e)),
        }
    }
    files
        .buffered
        .read_exact_at(buf.window(len), x.start)
        .map_err(io)?;
    Counters::add(&ctx.counters.buffered_extents, 1);
    Counters::add(&ctx.counters.bytes_read, len as u64);
    Ok(Filled { buf, skip: 0, len })
}

/// Fills `win` from `at` with direct reads; returns the bytes read (fewer at the end of the
/// file).
fn read_direct(f: &File, win: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut pos = 0;
    while pos < win.len() {
        match f.read_at(&mut win[pos..], at + pos as u64) {
            Ok(0) => break,
            Ok(n) => pos += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(pos)
}

/// `cachestat(2)` (Linux 6.5; the same number on every architecture).
const SYS_CACHESTAT: libc::c_long = 451;

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Whether at least 1/`CACHED_FRACTION` of the pages of `[off, off + len)` of `f` are in the
/// page cache (then copying them from there beats reading the device). False when the
/// kernel cannot tell (no `cachestat`).
fn mostly_cached(f: &File, off: u64, len: u64) -> bool {
    use std::os::fd::AsRawFd;
    static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return false;
    }
    let range = CachestatRange { off, len };
    let mut cs = Cachestat::default();
    // SAFETY: cachestat reads `range` and writes `cs`, both #[repr(C)] structs laid out as
    // the kernel's struct cachestat_range and struct cachestat, valid for the call.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            f.as_raw_fd(),
            &range as *const CachestatRange,
            &mut cs as *mut Cachestat,
            0u32,
        )
    };
    if r != 0 {
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            UNSUPPORTED.store(true, Ordering::Relaxed);
        }
        return false;
    }
    let pages = len.div_ceil(ALIGN);
    cs.nr_cache * CACHED_FRACTION >= pages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ChunkId;

    fn item(pack: &str, offset: u64, len: u32) -> Item {
        Item {
            off: offset * 10,
            loc: (
                pack.to_string(),
                PackEntry {
                    id: ChunkId::of(&offset.to_le_bytes()),
                    offset,
                    stored_len: len,
                    raw_len: len,
                    codec: Codec::Raw,
                },
            ),
            len: len as usize,
            take: (0, len as usize),
        }
    }

    #[test]
    fn neighbours_coalesce_within_limits() {
        let k = 32 << 10;
        let mut items = vec![
            item("b", 8, k),
            item("a", 8 + 2 * u64::from(k), k),
            item("a", 8, k),
            // A gap of GAP_MAX is read through, one byte more is not.
            item("a", 8 + 3 * u64::from(k) + GAP_MAX, k),
            item("a", 8 + 5 * u64::from(k) + 2 * GAP_MAX + 1, k),
        ];
        // Enough neighbours to pass EXTENT_MAX.
        let base = 1 << 30;
        for i in 0..200u64 {
            items.push(item("c", base + i * u64::from(k), k));
        }
        let ext = plan(&mut items);
        let spans: Vec<(String, u64, u64, usize)> = ext
            .iter()
            .map(|x| {
                (
                    items[x.first].loc.0.clone(),
                    x.start,
                    x.end,
                    x.last - x.first,
                )
            })
            .collect();
        let k = u64::from(k);
        assert_eq!(spans[0], ("a".into(), 8, 8 + 4 * k + GAP_MAX, 3));
        assert_eq!(
            spans[1],
            (
                "a".into(),
                8 + 5 * k + 2 * GAP_MAX + 1,
                8 + 6 * k + 2 * GAP_MAX + 1,
                1
            )
        );
        assert_eq!(spans[2], ("b".into(), 8, 8 + k, 1));
        assert_eq!(
            spans.len(),
            3 + 200usize.div_ceil((EXTENT_MAX / k) as usize)
        );
        for x in &ext[3..] {
            assert!(x.end - x.start <= EXTENT_MAX);
        }
        assert_eq!(
            ext.iter().map(|x| x.last - x.first).sum::<usize>(),
            items.len()
        );
    }

    /// ramfs refuses `O_DIRECT` at open: the reader then has no direct descriptor and reads
    /// through the page cache (tested end to end in tests/api.rs). Needs root to mount.
    #[test]
    fn direct_open_refused_on_ramfs() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("not root: ramfs cannot be mounted, the refusal is not exercised");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let c = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
        let fs = c"ramfs";
        // SAFETY: mount with valid NUL-terminated strings and no data.
        let r = unsafe { libc::mount(fs.as_ptr(), c.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
        assert_eq!(r, 0, "mount ramfs: {}", std::io::Error::last_os_error());
        let p = dir.path().join("f");
        std::fs::write(&p, vec![7u8; 8192]).unwrap();
        let refused = open_direct(&p).is_none();
        let ext4 = tempfile::NamedTempFile::new_in("/var/tmp").unwrap();
        std::fs::write(ext4.path(), vec![7u8; 8192]).unwrap();
        let accepted = open_direct(ext4.path()).is_some();
        // SAFETY: umount of the path mounted above.
        let u = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        assert!(refused, "ramfs accepted O_DIRECT");
        assert!(accepted, "/var/tmp refused O_DIRECT");
        assert_eq!(u, 0);
    }
}
