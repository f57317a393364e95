//! Pack files: many compressed chunks, written once by one writer, with a trailer listing them.
//!
//! Layout (all integers little-endian), see docs/store-format.md:
//! `"CAIRNPK1"` | chunk payloads ... | trailer entries (56 bytes each) | footer (56 bytes).
//! Entry: id\[32\] offset u64, stored_len u32, raw_len u32, codec u8, 7 zero bytes.
//! Footer: trailer_offset u64, count u64, BLAKE3(trailer entries)\[32\], `"CAIRNPKT"`.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, StoreError};
use crate::fsutil::{fault_point, fsync_dir};
use crate::id::ChunkId;

/// Magic at the start of every pack.
pub const PACK_MAGIC: &[u8; 8] = b"CAIRNPK1";
/// Magic at the very end of every pack.
pub const FOOTER_MAGIC: &[u8; 8] = b"CAIRNPKT";
/// Size of one trailer entry.
pub const ENTRY_LEN: usize = 56;
/// Size of the footer.
pub const FOOTER_LEN: usize = 56;
/// File name suffix of sealed packs.
pub const PACK_SUFFIX: &str = ".pack";
/// Prefix of temporary files of unfinished writers (packs and manifests).
pub const TMP_PREFIX: &str = ".tmp-";

/// How a chunk's payload is encoded in its pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// Stored as is.
    Raw = 0,
    /// One zstd frame.
    Zstd = 1,
    /// One LZ4 block (no frame; the uncompressed length is the entry's `raw_len`). Only in
    /// stores of format 2 made with `compression: lz4`.
    Lz4 = 2,
}

impl Codec {
    /// From the on-disk byte.
    pub fn from_u8(b: u8) -> Option<Codec> {
        match b {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Zstd),
            2 => Some(Codec::Lz4),
            _ => None,
        }
    }
}

/// Where a chunk lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackEntry {
    /// Chunk id.
    pub id: ChunkId,
    /// Byte offset of the payload in the pack.
    pub offset: u64,
    /// Payload length in the pack.
    pub stored_len: u32,
    /// Uncompressed length.
    pub raw_len: u32,
    /// Payload encoding.
    pub codec: Codec,
}

impl PackEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.stored_len.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
        out.push(self.codec as u8);
        out.extend_from_slice(&[0u8; 7]);
    }

    fn decode(b: &[u8]) -> Option<PackEntry> {
        let id = ChunkId::from_slice(&b[0..32])?;
        let offset = u64::from_le_bytes(b[32..40].try_into().ok()?);
        let stored_len = u32::from_le_bytes(b[40..44].try_into().ok()?);
        let raw_len = u32::from_le_bytes(b[44..48].try_into().ok()?);
        let codec = Codec::from_u8(b[48])?;
        Some(PackEntry {
            id,
            offset,
            stored_len,
            raw_len,
            codec,
        })
    }
}

/// Alignment of direct-I/O writes (offset, length and memory address).
const DIRECT_ALIGN: usize = 4096;
/// Size of one direct-I/O staging buffer (a multiple of `DIRECT_ALIGN`).
const DIRECT_BUF: usize = 4 << 20;
/// Staging buffers per pack: one being filled, the others being written.
const DIRECT_BUFS: usize = 3;

/// Whether packs are written (and read, see `extent.rs`) with O_DIRECT (default yes;
/// `CAIRN_PACK_DIRECT=0` turns it off).
pub(crate) fn direct_io_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("CAIRN_PACK_DIRECT").map_or(true, |v| v != "0"))
}

/// A `DIRECT_BUF`-byte window of `mem` starting at a `DIRECT_ALIGN`-aligned address.
struct Staging {
    mem: Vec<u8>,
    start: usize,
    fill: usize,
}

impl Staging {
    fn new() -> Staging {
        Staging::with(vec![0u8; DIRECT_BUF + DIRECT_ALIGN])
    }

    /// A staging window over `mem` (`DIRECT_BUF + DIRECT_ALIGN` bytes).
    fn with(mem: Vec<u8>) -> Staging {
        let start = mem.as_ptr().align_offset(DIRECT_ALIGN).min(DIRECT_ALIGN);
        Staging {
            mem,
            start,
            fill: 0,
        }
    }

    fn data(&self) -> &[u8] {
        &self.mem[self.start..self.start + self.fill]
    }
}

/// Spare staging buffers shared by the packs of one writer (and their sealing threads), so
/// that each new pack does not allocate fresh buffers: 12 MiB of newly mapped memory per
/// 32 MiB pack cost a page fault, a page clear and, on this VM, a hypervisor first touch per
/// 4 KiB page (docs/performance.md, session 3). Dropped with the last pack and the writer.
#[derive(Clone, Default)]
pub(crate) struct StagingPool(std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

impl StagingPool {
    /// Buffers kept at most: enough for the pack being filled and the one being sealed.
    const MAX: usize = 2 * DIRECT_BUFS;

    fn take(&self) -> Staging {
        let spare = self.0.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match spare {
            Some(mem) => Staging::with(mem),
            None => Staging::new(),
        }
    }

    fn put(&self, st: Staging) {
        if st.mem.len() != DIRECT_BUF + DIRECT_ALIGN {
            return;
        }
        let mut spare = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() < Self::MAX {
            spare.push(st.mem);
        }
    }
}

/// Writes full staging buffers with O_DIRECT on a background thread (falling back to the
/// buffered descriptor if the file system refuses direct I/O), so that the page cache is
/// neither filled nor copied into, and the writer never waits for the device unless all
/// `DIRECT_BUFS` buffers are in flight.
struct DirectWriter {
    tx: Option<std::sync::mpsc::SyncSender<(Staging, u64)>>,
    back: std::sync::mpsc::Receiver<Staging>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    cur: Staging,
    /// File offset of `cur`'s first byte (a multiple of `DIRECT_ALIGN`).
    at: u64,
    allocated: usize,
    /// Where the buffers come from and go back to.
    pool: StagingPool,
}

impl DirectWriter {
    fn start(direct: File, buffered: File, pool: StagingPool) -> std::io::Result<DirectWriter> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Staging, u64)>(DIRECT_BUFS);
        let (btx, back) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("cairn-pack-io".into())
            .spawn(move || -> std::io::Result<()> {
                let mut use_direct = true;
                for (st, off) in rx {
                    let data = st.data();
                    if use_direct && data.len().is_multiple_of(DIRECT_ALIGN) {
                        match direct.write_all_at(data, off) {
                            Ok(()) => {}
                            // The file system does not do direct I/O after all.
                            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                                use_direct = false;
                                buffered.write_all_at(data, off)?;
                            }
                            Err(e) => return Err(e),
                        }
                    } else {
                        buffered.write_all_at(data, off)?;
                    }
                    let _ = btx.send(st);
                }
                Ok(())
            })?;
        Ok(DirectWriter {
            tx: Some(tx),
            back,
            thread: Some(thread),
            cur: pool.take(),
            at: 0,
            allocated: 1,
            pool,
        })
    }

    /// Hand `st` (to be written at `off`) to the I/O thread.
    fn submit(&mut self, st: Staging, off: u64) -> std::io::Result<()> {
        let sent = self.tx.as_ref().map(|tx| tx.send((st, off)));
        if !matches!(sent, Some(Ok(()))) {
            // The I/O thread stopped: its error says why.
            return Err(self
                .finish()
                .err()
                .unwrap_or_else(|| std::io::Error::other("pack I/O thread stopped")));
        }
        Ok(())
    }

    fn append(&mut self, mut payload: &[u8]) -> std::io::Result<()> {
        while !payload.is_empty() {
            let n = payload.len().min(DIRECT_BUF - self.cur.fill);
            let (s, f) = (self.cur.start, self.cur.fill);
            self.cur.mem[s + f..s + f + n].copy_from_slice(&payload[..n]);
            self.cur.fill += n;
            payload = &payload[n..];
            if self.cur.fill == DIRECT_BUF {
                let next = match self.back.try_recv() {
                    Ok(b) => b,
                    Err(_) if self.allocated < DIRECT_BUFS => {
                        self.allocated += 1;
                        self.pool.take()
                    }
                    Err(_) => match self.back.recv() {
                        Ok(b) => b,
                        // The I/O thread stopped: its error says why.
                        Err(_) => {
                            return Err(self.finish().err().unwrap_or_else(|| {
                                std::io::Error::other("pack I/O thread stopped")
                            }))
                        }
                    },
                };
                let full = std::mem::replace(&mut self.cur, next);
                self.cur.fill = 0;
                let off = self.at;
                self.at += DIRECT_BUF as u64;
                self.submit(full, off)?;
            }
        }
        Ok(())
    }

    /// Write everything staged: the aligned part directly, the unaligned tail through the
    /// buffered descriptor `out`; wait for the I/O thread.
    fn flush(mut self, out: &File) -> std::io::Result<()> {
        let aligned = self.cur.fill / DIRECT_ALIGN * DIRECT_ALIGN;
        let tail = self.cur.data()[aligned..].to_vec();
        let off = self.at;
        if aligned > 0 {
            let mut st = std::mem::replace(
                &mut self.cur,
                Staging {
                    mem: Vec::new(),
                    start: 0,
                    fill: 0,
                },
            );
            st.fill = aligned;
            self.submit(st, off)?;
        }
        self.finish()?;
        out.write_all_at(&tail, off + aligned as u64)
    }

    /// Close the queue and wait for the I/O thread; the buffers go back to the pool.
    fn finish(&mut self) -> std::io::Result<()> {
        self.tx = None;
        let r = match self.thread.take().map(|t| t.join()) {
            None => Ok(()),
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other("pack I/O thread panicked")),
        };
        while let Ok(st) = self.back.try_recv() {
            self.pool.put(st);
        }
        let cur = std::mem::replace(
            &mut self.cur,
            Staging {
                mem: Vec::new(),
                start: 0,
                fill: 0,
            },
        );
        self.pool.put(cur);
        r
    }
}

/// A pack being written under a temporary name.
pub(crate) struct PackWriter {
    name: String,
    tmp_path: PathBuf,
    dir: PathBuf,
    out: File,
    /// Direct I/O path (payloads staged in aligned buffers); `None`: buffered writes to `out`.
    direct: Option<DirectWriter>,
    pos: u64,
    entries: Vec<PackEntry>,
}

impl PackWriter {
    /// Create `DIR/.tmp-NAME.pack` exclusively.
    pub fn create(dir: &Path, name: String) -> Result<PackWriter, StoreError> {
        PackWriter::create_with(dir, name, direct_io_enabled(), StagingPool::default())
    }

    /// Like [`PackWriter::create`], with staging buffers from (and back to) `pool`.
    pub fn create_pooled(
        dir: &Path,
        name: String,
        pool: &StagingPool,
    ) -> Result<PackWriter, StoreError> {
        PackWriter::create_with(dir, name, direct_io_enabled(), pool.clone())
    }

    /// Like [`PackWriter::create`], with direct I/O tried only if `try_direct`.
    fn create_with(
        dir: &Path,
        name: String,
        try_direct: bool,
        pool: StagingPool,
    ) -> Result<PackWriter, StoreError> {
        let tmp_path = dir.join(format!("{TMP_PREFIX}{name}{PACK_SUFFIX}"));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .ctx(|| format!("creating pack {}", tmp_path.display()))?;
        let mut out = f;
        // Direct I/O when the file system supports it: a checkpoint is written once and read
        // rarely, so it should neither evict the node's page cache nor wait for its
        // write-back (docs/store-decisions.md). Otherwise payloads go straight to write(2).
        let direct = if try_direct {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(&tmp_path)
                .ok()
                .and_then(|d| DirectWriter::start(d, out.try_clone().ok()?, pool).ok())
        } else {
            None
        };
        let mut w = PackWriter {
            name,
            tmp_path,
            dir: dir.to_path_buf(),
            out: out
                .try_clone()
                .ctx(|| "duplicating a pack descriptor".to_string())?,
            direct,
            pos: 0,
            entries: Vec::new(),
        };
        match w.direct.as_mut() {
            Some(d) => d
                .append(PACK_MAGIC)
                .ctx(|| format!("writing pack {}", w.tmp_path.display()))?,
            None => out
                .write_all(PACK_MAGIC)
                .ctx(|| format!("writing pack {}", w.tmp_path.display()))?,
        }
        w.pos = PACK_MAGIC.len() as u64;
        Ok(w)
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.pos
    }

    /// Number of chunks so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Append one chunk payload.
    pub fn append(
        &mut self,
        id: ChunkId,
        payload: &[u8],
        raw_len: usize,
        codec: Codec,
    ) -> Result<(), StoreError> {
        match self.direct.as_mut() {
            Some(d) => d.append(payload),
            None => self.out.write_all(payload),
        }
        .ctx(|| format!("writing pack {}", self.tmp_path.display()))?;
        self.entries.push(PackEntry {
            id,
            offset: self.pos,
            stored_len: payload.len() as u32,
            raw_len: raw_len as u32,
            codec,
        });
        self.pos += payload.len() as u64;
        fault_point("pack-write");
        Ok(())
    }

    /// Write the trailer, fsync, rename to the final name and fsync the directory.
    /// Returns the pack name, its size and its entries. On failure (a full disk, typically
    /// noticed only here with direct I/O) the temporary file is removed.
    pub fn seal(mut self) -> Result<(String, u64, Vec<PackEntry>), StoreError> {
        let r = self.seal_inner();
        if r.is_err() {
            if let Some(mut d) = self.direct.take() {
                let _ = d.finish();
            }
            let _ = std::fs::remove_file(&self.tmp_path);
        }
        r
    }

    fn seal_inner(&mut self) -> Result<(String, u64, Vec<PackEntry>), StoreError> {
        let mut trailer = Vec::with_capacity(self.entries.len() * ENTRY_LEN + FOOTER_LEN);
        for e in &self.entries {
            e.encode(&mut trailer);
        }
        let hash = blake3::hash(&trailer);
        trailer.extend_from_slice(&self.pos.to_le_bytes());
        trailer.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        trailer.extend_from_slice(hash.as_bytes());
        trailer.extend_from_slice(FOOTER_MAGIC);
        let ctx = || format!("writing pack {}", self.tmp_path.display());
        match self.direct.take() {
            Some(d) => {
                d.flush(&self.out).ctx(ctx)?;
                self.out.write_all_at(&trailer, self.pos).ctx(ctx)?;
            }
            None => self.out.write_all(&trailer).ctx(ctx)?,
        }
        let size = self.pos + trailer.len() as u64;
        let f = &self.out;
        f.sync_all().ctx(ctx)?;
        fault_point("pack-fsync");
        let final_path = self.dir.join(format!("{}{PACK_SUFFIX}", self.name));
        std::fs::rename(&self.tmp_path, &final_path).ctx(|| {
            format!(
                "renaming {} to {}",
                self.tmp_path.display(),
                final_path.display()
            )
        })?;
        fsync_dir(&self.dir)?;
        fault_point("pack-rename");
        let entries = std::mem::take(&mut self.entries);
        Ok((self.name.clone(), size, entries))
    }

    /// Remove the temporary file (writer abandoned).
    pub fn discard(mut self) {
        if let Some(mut d) = self.direct.take() {
            let _ = d.finish();
        }
        let _ = std::fs::remove_file(&self.tmp_path);
    }
}

/// Read and check the trailer of the pack at `path`.
pub fn read_trailer(path: &Path) -> Result<Vec<PackEntry>, StoreError> {
    let f = File::open(path).ctx(|| format!("opening pack {}", path.display()))?;
    let len = f
        .metadata()
        .ctx(|| format!("stat pack {}", path.display()))?
        .len();
    let bad = |why: &str| StoreError::Corrupt(format!("pack {}: {why}", path.display()));
    if len < (PACK_MAGIC.len() + FOOTER_LEN) as u64 {
        return Err(bad("too short (truncated?)"));
    }
    let mut head = [0u8; 8];
    f.read_exact_at(&mut head, 0)
        .ctx(|| format!("reading pack {}", path.display()))?;
    if &head != PACK_MAGIC {
        return Err(bad("bad magic"));
    }
    let mut footer = [0u8; FOOTER_LEN];
    f.read_exact_at(&mut footer, len - FOOTER_LEN as u64)
        .ctx(|| format!("reading pack {}", path.display()))?;
    if &footer[48..56] != FOOTER_MAGIC {
        return Err(bad("no trailer (truncated or unfinished)"));
    }
    let toff = u64::from_le_bytes(footer[0..8].try_into().unwrap_or([0; 8]));
    let count = u64::from_le_bytes(footer[8..16].try_into().unwrap_or([0; 8]));
    let tlen = count
        .checked_mul(ENTRY_LEN as u64)
        .ok_or_else(|| bad("bad trailer"))?;
    if toff
        .checked_add(tlen)
        .and_then(|x| x.checked_add(FOOTER_LEN as u64))
        != Some(len)
    {
        return Err(bad("trailer does not match file size (truncated?)"));
    }
    let mut trailer = vec![0u8; tlen as usize];
    f.read_exact_at(&mut trailer, toff)
        .ctx(|| format!("reading pack {}", path.display()))?;
    if blake3::hash(&trailer).as_bytes() != &footer[16..48] {
        return Err(bad("trailer checksum mismatch"));
    }
    let mut entries = Vec::with_capacity(count as usize);
    for b in trailer.chunks_exact(ENTRY_LEN) {
        let e = PackEntry::decode(b).ok_or_else(|| bad("bad trailer entry"))?;
        if e.offset < PACK_MAGIC.len() as u64 || e.offset + u64::from(e.stored_len) > toff {
            return Err(bad("trailer entry out of bounds"));
        }
        entries.push(e);
    }
    Ok(entries)
}

/// Decode a payload read from a pack and check its hash.
pub fn decode_payload(e: &PackEntry, payload: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    let data = match e.codec {
        Codec::Raw => payload,
        Codec::Zstd => zstd::bulk::decompress(&payload, e.raw_len as usize).map_err(|err| {
            StoreError::Corrupt(format!("chunk {}: cannot decompress: {err}", e.id))
        })?,
        Codec::Lz4 => lz4_flex::block::decompress(&payload, e.raw_len as usize).map_err(|err| {
            StoreError::Corrupt(format!("chunk {}: cannot decompress: {err}", e.id))
        })?,
    };
    check_hash(e, &data)?;
    Ok(data)
}

/// Check that `data` is the chunk `e` describes.
pub fn check_hash(e: &PackEntry, data: &[u8]) -> Result<(), StoreError> {
    if data.len() != e.raw_len as usize || ChunkId::of(data) != e.id {
        return Err(StoreError::Corrupt(format!(
            "chunk {}: content does not match its hash",
            e.id
        )));
    }
    Ok(())
}

/// Decode a compressed payload of `codec` into `out`; returns the bytes written (a raw
/// payload is copied).
pub(crate) fn decode_to(codec: Codec, payload: &[u8], out: &mut [u8]) -> std::io::Result<usize> {
    match codec {
        Codec::Raw => {
            let n = payload.len().min(out.len());
            out[..n].copy_from_slice(&payload[..n]);
            Ok(n)
        }
        Codec::Zstd => decompress_to(payload, out),
        Codec::Lz4 => lz4_flex::block::decompress_into(payload, out).map_err(std::io::Error::other),
    }
}

/// Decompress the zstd frame `payload` into `out` with this thread's decompressor; returns
/// the bytes written.
pub(crate) fn decompress_to(payload: &[u8], out: &mut [u8]) -> std::io::Result<usize> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = zstd::bulk::Decompressor::new().ok();
        }
        match slot.as_mut() {
            Some(d) => d.decompress_to_buffer(payload, out),
            None => zstd::bulk::decompress_to_buffer(payload, out),
        }
    })
}

/// Read the chunk `e` of pack file `f` straight into `out` (exactly `raw_len` bytes) and
/// verify it.
pub fn read_into(f: &File, e: &PackEntry, out: &mut [u8]) -> Result<(), StoreError> {
    let eof = |err: std::io::Error| {
        if err.kind() == std::io::ErrorKind::UnexpectedEof {
            StoreError::Corrupt(format!("pack is truncated (chunk {})", e.id))
        } else {
            StoreError::Io {
                context: format!("reading chunk {}", e.id),
                source: err,
            }
        }
    };
    if out.len() != e.raw_len as usize {
        return Err(StoreError::Corrupt(format!(
            "chunk {} has {} bytes, expected {}",
            e.id,
            e.raw_len,
            out.len()
        )));
    }
    match e.codec {
        Codec::Raw => {
            if e.stored_len != e.raw_len {
                return Err(StoreError::Corrupt(format!(
                    "chunk {}: bad raw length",
                    e.id
                )));
            }
            f.read_exact_at(out, e.offset).map_err(eof)?;
        }
        Codec::Zstd | Codec::Lz4 => {
            // The compressed payload goes through a per-thread buffer that only grows, so
            // it is neither allocated nor zero-filled per chunk.
            let n = PAYLOAD.with(|pb| {
                let mut pb = pb.borrow_mut();
                let sl = e.stored_len as usize;
                if pb.len() < sl {
                    pb.resize(sl, 0);
                }
                let payload = &mut pb[..sl];
                f.read_exact_at(payload, e.offset).map_err(eof)?;
                decode_to(e.codec, payload, out).map_err(|err| {
                    StoreError::Corrupt(format!("chunk {}: cannot decompress: {err}", e.id))
                })
            })?;
            if n != out.len() {
                return Err(StoreError::Corrupt(format!("chunk {}: short chunk", e.id)));
            }
        }
    }
    check_hash(e, out)
}

thread_local! {
    static PAYLOAD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Chunks shorter than this are always given to zstd (the probe needs enough samples).
const PROBE_MIN_LEN: usize = 8192;
/// The incompressibility probe samples windows of this many bytes...
const PROBE_WINDOW: usize = 32;
/// ...spread evenly over the chunk, 1/16 of it, at least 32 and at most 128 windows (1 to 4
/// KiB sampled).
const PROBE_MAX_WINDOWS: usize = 128;
/// A sample is taken for incompressible when its byte entropy is within this many bits per
/// byte of what uniformly random bytes give on a sample of its size (7.82 bits on 1 KiB, 7.955
/// on 4 KiB: the plug-in estimate is biased low by 255 / (2 n ln 2)). At that entropy zstd's
/// entropy coding alone cannot save the 1/32 a chunk must save to be stored compressed.
const PROBE_ENTROPY_MARGIN: f64 = 0.08;

/// `c * log2(c)` for every count a probe histogram can hold (0 for 0).
fn c_log2_c() -> &'static [f64] {
    static TABLE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=PROBE_MAX_WINDOWS * PROBE_WINDOW)
            .map(|c| {
                if c == 0 {
                    0.0
                } else {
                    c as f64 * (c as f64).log2()
                }
            })
            .collect()
    })
}

/// Cheap incompressibility probe (like btrfs's compression heuristic): samples windows of
/// `PROBE_WINDOW` bytes spread over `raw` (1/16 of it) and returns true when their byte
/// entropy is that of random bytes and no two windows start alike (equal windows hint at
/// repeated content that zstd would find). Costs about 1/15 of a zstd attempt on random data.
pub fn looks_incompressible(raw: &[u8]) -> bool {
    if raw.len() < PROBE_MIN_LEN {
        return false;
    }
    let windows = (raw.len() / 16 / PROBE_WINDOW).clamp(32, PROBE_MAX_WINDOWS);
    let stride = raw.len() / windows;
    let mut hist = [0u32; 256];
    let mut heads = [0u64; PROBE_MAX_WINDOWS];
    let heads = &mut heads[..windows];
    for (k, head) in heads.iter_mut().enumerate() {
        let w = &raw[k * stride..k * stride + PROBE_WINDOW];
        for &b in w {
            hist[b as usize] += 1;
        }
        let mut h = [0u8; 8];
        h.copy_from_slice(&w[..8]);
        *head = u64::from_le_bytes(h);
    }
    let n = (windows * PROBE_WINDOW) as f64;
    // H = -sum p log2 p = log2 n - (sum c log2 c) / n, with c log2 c from a table (the
    // 256 log2 calls per chunk were a third of the probe's time).
    let table = c_log2_c();
    let sum: f64 = hist.iter().map(|&c| table[c as usize]).sum();
    let entropy = n.log2() - sum / n;
    let random = 8.0 - 255.0 / (2.0 * n * std::f64::consts::LN_2);
    if entropy < random - PROBE_ENTROPY_MARGIN {
        return false;
    }
    heads.sort_unstable();
    heads.windows(2).all(|w| w[0] != w[1])
}

/// Compress `raw` with zstd at `level` into `out` (its previous contents are discarded, its
/// allocation reused). Returns false, leaving `out` unspecified, when the chunk should be
/// stored raw: the probe says it is incompressible, or zstd saves less than 1/32.
/// Reuses one zstd context per thread.
pub fn compress_into(raw: &[u8], level: i32, out: &mut Vec<u8>) -> bool {
    if looks_incompressible(raw) {
        return false;
    }
    out.clear();
    out.reserve(zstd::compress_bound(raw.len()));
    let n = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = zstd::bulk::Compressor::new(level).ok().map(|c| (level, c));
        }
        // Writes into the spare capacity; never zero-fills it.
        slot.as_mut()
            .and_then(|(_, c)| c.compress_to_buffer(raw, out).ok())
    });
    matches!(n, Some(n) if n + raw.len() / 32 < raw.len())
}

/// Compress `raw` as one LZ4 block into `out` (contents discarded, allocation reused). Same
/// rule as [`compress_into`]: false when the probe says incompressible or LZ4 saves less
/// than 1/32.
pub fn compress_lz4_into(raw: &[u8], out: &mut Vec<u8>) -> bool {
    if looks_incompressible(raw) {
        return false;
    }
    out.clear();
    out.resize(lz4_flex::block::get_maximum_output_size(raw.len()), 0);
    match lz4_flex::block::compress_into(raw, out) {
        Ok(n) if n + raw.len() / 32 < raw.len() => {
            out.truncate(n);
            true
        }
        _ => false,
    }
}

/// Compress `raw` with zstd at `level`; `None` when it should be stored raw (see
/// [`compress_into`]).
#[cfg(test)]
pub fn compress(raw: &[u8], level: i32) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    compress_into(raw, level, &mut out).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packs written through the direct-I/O staging buffers and through plain writes are
    /// byte-identical and every chunk reads back, with payloads that straddle buffer ends.
    #[test]
    fn direct_and_buffered_packs_are_identical() {
        let dir = tempfile::tempdir().unwrap();
        let payloads: Vec<Vec<u8>> = (0..300u32)
            .map(|i| {
                let len = 1 + (i as usize * 7919 + i as usize * i as usize * 31) % 70_000;
                (0..len)
                    .map(|k| (k as u32 ^ i.wrapping_mul(2654435761)) as u8)
                    .collect()
            })
            .collect();
        let mut files = Vec::new();
        for (k, direct) in [true, false].into_iter().enumerate() {
            let mut w = PackWriter::create_with(
                dir.path(),
                format!("p{k}"),
                direct,
                StagingPool::default(),
            )
            .unwrap();
            if !direct {
                assert!(w.direct.is_none());
            }
            for p in &payloads {
                w.append(ChunkId::of(p), p, p.len(), Codec::Raw).unwrap();
            }
            let (name, size, entries) = w.seal().unwrap();
            let path = dir.path().join(format!("{name}{PACK_SUFFIX}"));
            assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
            assert_eq!(read_trailer(&path).unwrap(), entries);
            let f = File::open(&path).unwrap();
            for (e, p) in entries.iter().zip(&payloads) {
                let mut out = vec![0u8; p.len()];
                read_into(&f, e, &mut out).unwrap();
                assert_eq!(&out, p);
            }
            files.push(std::fs::read(&path).unwrap());
        }
        assert!(files[0].len() > 2 * DIRECT_BUF);
        assert_eq!(files[0], files[1]);
        // Packs sharing a pool reuse buffers that still hold earlier packs' bytes: the
        // second pack (other payloads, other buffer fill levels) must not show any of them.
        let pool = StagingPool::default();
        for k in 0..2 {
            let mut w =
                PackWriter::create_with(dir.path(), format!("pooled{k}"), true, pool.clone())
                    .unwrap();
            let ps: Vec<&Vec<u8>> = payloads.iter().skip(k * 7).collect();
            for p in &ps {
                w.append(ChunkId::of(p), p, p.len(), Codec::Raw).unwrap();
            }
            let (name, _, entries) = w.seal().unwrap();
            let path = dir.path().join(format!("{name}{PACK_SUFFIX}"));
            let f = File::open(&path).unwrap();
            for (e, p) in entries.iter().zip(&ps) {
                let mut out = vec![0u8; p.len()];
                read_into(&f, e, &mut out).unwrap();
                assert_eq!(&out, *p);
            }
            let mut want = PACK_MAGIC.to_vec();
            for p in &ps {
                want.extend_from_slice(p);
            }
            assert_eq!(&std::fs::read(&path).unwrap()[..want.len()], &want[..]);
            std::fs::remove_file(&path).unwrap();
        }
        assert_eq!(pool.0.lock().unwrap().len(), DIRECT_BUFS);
        // An abandoned direct writer leaves nothing behind.
        let mut w =
            PackWriter::create_with(dir.path(), "gone".into(), true, StagingPool::default())
                .unwrap();
        w.append(ChunkId::of(b"x"), b"x", 1, Codec::Raw).unwrap();
        w.discard();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn probe_skips_random_only() {
        let mut r = 0x1234_5678_9abc_def1u64;
        let random: Vec<u8> = (0..65536)
            .map(|_| {
                r ^= r << 13;
                r ^= r >> 7;
                r ^= r << 17;
                (r >> 24) as u8
            })
            .collect();
        assert!(looks_incompressible(&random));
        assert!(looks_incompressible(&random[..16384]));
        assert!(looks_incompressible(&random[..8192]));
        assert!(compress(&random, 1).is_none());
        // Random bytes repeated: high byte entropy, but zstd finds the repeats.
        let repeated = random[..4096].to_vec().repeat(16);
        assert!(!looks_incompressible(&repeated));
        assert!(compress(&repeated, 1).is_some());
        // Half zeros: compressible.
        let mut half = random.clone();
        half[..32768].fill(0);
        assert!(!looks_incompressible(&half));
        assert!(compress(&half, 1).is_some());
        assert!(!looks_incompressible(&[0u8; 65536]));
        let text = b"the quick brown fox jumps over the lazy dog ".repeat(1500);
        assert!(!looks_incompressible(&text));
        // Short chunks always go to zstd.
        assert!(!looks_incompressible(&random[..4096]));
    }
}
