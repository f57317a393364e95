//! O_DIRECT staging: payloads are copied into aligned buffers that a background thread
//! writes with direct I/O (falling back to buffered writes), and the buffers are reused.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// Alignment of direct-I/O writes (offset, length and memory address).
pub(crate) const DIRECT_ALIGN: usize = 4096;
/// Size of one direct-I/O staging buffer (a multiple of `DIRECT_ALIGN`).
pub(crate) const DIRECT_BUF: usize = 4 << 20;
/// Staging buffers per pack: one being filled, the others being written.
pub(crate) const DIRECT_BUFS: usize = 3;

/// Whether packs are written (and read, see `read/extent.rs`) with O_DIRECT (default yes;
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
/// 4 KiB page. Dropped with the last pack and the writer.
#[derive(Clone, Default)]
pub(crate) struct StagingPool(pub(crate) std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

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
pub(crate) struct DirectWriter {
    tx: Option<std::sync::mpsc::SyncSender<(Staging, u64)>>,
    back: std::sync::mpsc::Receiver<Staging>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    cur: Staging,
    /// File offset of `cur`'s first byte (a multiple of `DIRECT_ALIGN`).
    at: u64,
    allocated: usize,
    /// Where the buffers come from and go back to.
    pool: StagingPool,
    /// The error that stopped the I/O thread (kind and text), repeated to every later call.
    failure: Option<(std::io::ErrorKind, String)>,
}

impl DirectWriter {
    /// Start the I/O thread writing through `direct` (and `buffered` when direct I/O is
    /// refused), with staging buffers from `pool`.
    pub(crate) fn start(
        direct: File,
        buffered: File,
        pool: StagingPool,
    ) -> std::io::Result<DirectWriter> {
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
            failure: None,
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

    /// The error for every call after the I/O thread stopped (its own error, a full disk
    /// typically, was returned by the call that found it).
    fn stopped(&self) -> std::io::Result<()> {
        match &self.failure {
            Some((kind, text)) => Err(std::io::Error::new(*kind, text.clone())),
            None if self.tx.is_none() => Err(std::io::Error::other(
                "the pack's I/O thread stopped after an earlier error",
            )),
            None => Ok(()),
        }
    }

    /// Stage `payload`; full buffers go to the I/O thread.
    pub(crate) fn append(&mut self, mut payload: &[u8]) -> std::io::Result<()> {
        self.stopped()?;
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
    pub(crate) fn flush(mut self, out: &File) -> std::io::Result<()> {
        self.stopped()?;
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
    pub(crate) fn finish(&mut self) -> std::io::Result<()> {
        self.tx = None;
        let r = match self.thread.take().map(|t| t.join()) {
            None => Ok(()),
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other("pack I/O thread panicked")),
        };
        if let Err(e) = &r {
            self.failure = Some((e.kind(), e.to_string()));
        }
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
