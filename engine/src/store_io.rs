//! Adapters between the capture/restore engine and the store: a [`MemorySink`] writing
//! regions into a store [`Writer`], and a [`MemorySource`] reading them back from a
//! [`GenerationReader`]. Paths follow docs/design/contracts.md:
//! `mem/<pid>/<vma-index>` and `files/<pid>/<fd>` under the agent's directory.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_image::{ChunkFn, MemorySink, MemorySource, RegionSource, Vma};
use cairn_store::{GenerationReader, StoreError, StreamRef, Writer};

use crate::agent::incremental::{Baseline, PageCounts, RegionKey};
use crate::agent::progress::Meter;

fn io_err(e: StoreError) -> io::Error {
    io::Error::other(e)
}

/// Streams captured memory into a store writer and remembers where each region went.
pub struct StoreSink<'w> {
    writer: &'w mut Writer,
    mem: BTreeMap<i32, Vec<(String, StreamRef)>>,
    files: BTreeMap<i32, Vec<(String, StreamRef)>>,
    /// The previous committed checkpoint's regions (incremental writes), if any.
    baseline: Option<&'w Baseline>,
    /// This checkpoint's regions, the baseline of the next one.
    next: Baseline,
    counts: PageCounts,
    /// Pre-copy (docs/incremental.md): enabled when set.
    precopy: Option<Precopy>,
    /// Counts the memory read, when the checkpoint shows its progress.
    meter: Option<Meter>,
}

/// Pre-copies of one checkpoint (docs/incremental.md): written through the sink's writer
/// while the program runs; the final pass takes their unchanged chunks with
/// `put_memory_incremental` (the writer remembers the leaves of the streams it wrote, so they
/// need not be durable yet; everything is made durable by the writer's `finish`).
#[derive(Default)]
struct Precopy {
    streams: HashMap<RegionKey, StreamRef>,
    /// Set once the pre-copy is over: only then are `streams` usable as bases.
    done: bool,
}

impl<'w> StoreSink<'w> {
    /// A sink writing through `writer`.
    pub fn new(writer: &'w mut Writer) -> Self {
        StoreSink {
            writer,
            mem: BTreeMap::new(),
            files: BTreeMap::new(),
            baseline: None,
            next: Baseline::new(),
            counts: PageCounts::default(),
            precopy: None,
            meter: None,
        }
    }

    /// Lets capture copy tracked memory while the program runs (pre-copy), through the same
    /// writer; what the pre-copy adds to the store counts in the writer's statistics, its
    /// logical bytes do not (the final pass counts the image once).
    pub fn with_precopy(mut self) -> Self {
        self.precopy = Some(Precopy::default());
        self
    }

    /// Counts every byte of memory read into `meter` (for the checkpoint's progress).
    pub fn metered(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Writes region `vma` of `pid` through `writer`, reusing unchanged chunks of `prev`
    /// when `changed` is known, and counts the pages read.
    #[allow(clippy::too_many_arguments)]
    fn write_vma(
        writer: &mut Writer,
        counts: &mut PageCounts,
        meter: Option<&Meter>,
        vma: &Vma,
        changed: Option<&[(u64, u64)]>,
        prev: Option<&StreamRef>,
        source: RegionSource<'_>,
    ) -> io::Result<StreamRef> {
        let read = AtomicU64::new(0);
        let counted = |off: u64, buf: &mut [u8]| {
            read.fetch_add(buf.len() as u64, Ordering::Relaxed);
            if let Some(m) = meter {
                m.add(buf.len() as u64);
            }
            source(off, buf)
        };
        let r = match (changed, prev) {
            (Some(changed), Some(prev)) => {
                writer.put_memory_incremental(vma.len(), prev, changed, &counted)
            }
            // What changed is not known (first checkpoint after a restart, a mapping tracking
            // could not vouch for): compared with the previous stream, only differing pages
            // are stored.
            (None, Some(prev)) => writer.put_memory_diff(vma.len(), prev, &counted),
            (_, None) => writer.put_memory(vma.len(), &counted),
        }
        .map_err(io_err)?;
        let scanned = read.into_inner().div_ceil(4096);
        counts.scanned += scanned;
        counts.skipped += (vma.len() / 4096).saturating_sub(scanned);
        Ok(r)
    }

    fn record_vma(&mut self, pid: i32, index: usize, vma: &Vma, r: StreamRef) {
        self.next
            .insert((pid, vma.start, vma.end, vma.prot), r.clone());
        self.mem
            .entry(pid)
            .or_default()
            .push((index.to_string(), r));
    }

    /// A sink writing through `writer` that reuses unchanged chunks of `baseline` (the
    /// regions of the previous committed checkpoint) where dirty tracking allows.
    pub fn with_baseline(writer: &'w mut Writer, baseline: &'w Baseline) -> Self {
        let mut s = Self::new(writer);
        s.baseline = Some(baseline);
        s
    }

    /// The regions written so far (the next checkpoint's baseline) and the page counts.
    pub fn take_incremental(&mut self) -> (Baseline, PageCounts) {
        (
            std::mem::take(&mut self.next),
            std::mem::take(&mut self.counts),
        )
    }

    /// Writes the agent's tree: `image.json` plus the `mem/` and `files/` trees of everything
    /// this sink received. Returns the tree's reference.
    pub fn finish_tree(self, image_json: &[u8]) -> Result<StreamRef, StoreError> {
        let StoreSink {
            writer, mem, files, ..
        } = self;
        let mut top = vec![("image.json".to_string(), writer.put_blob(image_json)?)];
        for (name, per_pid) in [("mem", mem), ("files", files)] {
            if per_pid.is_empty() {
                continue;
            }
            let mut pids = Vec::with_capacity(per_pid.len());
            for (pid, entries) in per_pid {
                pids.push((pid.to_string(), writer.put_tree(entries)?));
            }
            top.push((name.to_string(), writer.put_tree(pids)?));
        }
        writer.put_tree(top)
    }
}

impl MemorySink for StoreSink<'_> {
    fn put_region(
        &mut self,
        pid: i32,
        index: usize,
        len: u64,
        source: RegionSource<'_>,
    ) -> io::Result<()> {
        let meter = self.meter.clone();
        let counted = |off: u64, buf: &mut [u8]| {
            if let Some(m) = &meter {
                m.add(buf.len() as u64);
            }
            source(off, buf)
        };
        let r = self.writer.put_memory(len, &counted).map_err(io_err)?;
        self.mem
            .entry(pid)
            .or_default()
            .push((index.to_string(), r));
        Ok(())
    }

    fn put_vma(
        &mut self,
        pid: i32,
        index: usize,
        vma: &Vma,
        changed: Option<&[(u64, u64)]>,
        source: RegionSource<'_>,
    ) -> io::Result<()> {
        let key = (pid, vma.start, vma.end, vma.prot);
        let prev = self.baseline.and_then(|b| b.get(&key));
        let r = Self::write_vma(
            self.writer,
            &mut self.counts,
            self.meter.as_ref(),
            vma,
            changed,
            prev,
            source,
        )?;
        self.record_vma(pid, index, vma, r);
        Ok(())
    }

    fn supports_precopy(&self) -> bool {
        self.precopy.is_some()
    }

    fn put_precopy(
        &mut self,
        pid: i32,
        vma: &Vma,
        changed: Option<&[(u64, u64)]>,
        source: RegionSource<'_>,
    ) -> io::Result<()> {
        let Some(p) = self.precopy.as_mut() else {
            return Err(io::Error::other("pre-copy is not enabled"));
        };
        if p.done {
            return Err(io::Error::other("pre-copy already finished"));
        }
        let key = (pid, vma.start, vma.end, vma.prot);
        let prev = self.baseline.and_then(|b| b.get(&key));
        // Pages read here count as scanned; pages skipped are counted by the final pass, and
        // so are the logical bytes (the pre-copy's are taken back out of the writer's count).
        let mark = self.writer.stats().clone();
        let mut counts = PageCounts::default();
        let r = Self::write_vma(
            self.writer,
            &mut counts,
            self.meter.as_ref(),
            vma,
            changed,
            prev,
            source,
        );
        self.writer.uncount_logical_since(&mark);
        let r = r?;
        self.counts.scanned += counts.scanned;
        p.streams.insert(key, r);
        Ok(())
    }

    fn precopy_done(&mut self) -> io::Result<()> {
        if let Some(p) = self.precopy.as_mut() {
            p.done = true;
        }
        Ok(())
    }

    fn put_vma_precopied(
        &mut self,
        pid: i32,
        index: usize,
        vma: &Vma,
        changed: Option<&[(u64, u64)]>,
        source: RegionSource<'_>,
    ) -> io::Result<()> {
        let key = (pid, vma.start, vma.end, vma.prot);
        let prev = self
            .precopy
            .as_ref()
            .filter(|p| p.done)
            .and_then(|p| p.streams.get(&key));
        let changed = changed.filter(|_| prev.is_some());
        let r = Self::write_vma(
            self.writer,
            &mut self.counts,
            self.meter.as_ref(),
            vma,
            changed,
            prev,
            source,
        )?;
        self.record_vma(pid, index, vma, r);
        Ok(())
    }

    fn put_file(&mut self, pid: i32, fd: i32, data: &mut dyn io::Read) -> io::Result<()> {
        let r = self.writer.put_bytes(data).map_err(io_err)?;
        self.files.entry(pid).or_default().push((fd.to_string(), r));
        Ok(())
    }
}

/// The entries of one `<kind>/<pid>` directory of a generation, by name.
type Dir = std::sync::Arc<HashMap<String, StreamRef>>;

/// Reads an agent's memory regions and files back from a generation. Every chunk is
/// verified as it is read; the first sign of damaged data (a chunk whose hash does not match,
/// a chunk or entry missing from the store) is remembered, see [`StoreSource::damage`].
pub struct StoreSource {
    reader: std::sync::Arc<GenerationReader>,
    base: String,
    damage: std::sync::Mutex<Option<String>>,
    /// Memory streams looked up by [`MemorySource::read_range`], by (pid, region).
    streams: std::sync::Mutex<HashMap<(i32, usize), StreamRef>>,
    /// The entries of each `<kind>/<pid>` directory, read once: looking every region up from
    /// the root would decode a process's whole region directory once per region (quadratic
    /// in the number of mappings).
    dirs: std::sync::Mutex<HashMap<(String, i32), Dir>>,
    /// Counts the memory read (the restore's progress).
    meter: Meter,
}

impl StoreSource {
    /// A source over the agent directory `base` (e.g. `agents/0`) of `reader`'s generation.
    pub fn new(reader: std::sync::Arc<GenerationReader>, base: &str) -> Self {
        StoreSource {
            reader,
            base: base.trim_end_matches('/').to_string(),
            damage: std::sync::Mutex::new(None),
            streams: std::sync::Mutex::new(HashMap::new()),
            dirs: std::sync::Mutex::new(HashMap::new()),
            meter: Meter::new(),
        }
    }

    /// The meter every byte of memory read through this source advances.
    pub fn meter(&self) -> Meter {
        self.meter.clone()
    }

    /// Why the generation's data is damaged, when a read through this source found it so
    /// (the first such problem). A restore that failed while this is `Some` failed because of
    /// the store, not because of the program or the machine.
    pub fn damage(&self) -> Option<String> {
        self.damage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Converts a store error, remembering it when it means damaged data.
    fn note(&self, e: StoreError) -> io::Error {
        if matches!(
            e,
            StoreError::Corrupt(_) | StoreError::MissingChunk(_) | StoreError::NotFound(_)
        ) {
            self.damage
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(|| e.to_string());
        }
        io_err(e)
    }

    fn lookup(&self, kind: &str, pid: i32, n: i64) -> io::Result<StreamRef> {
        let key = (kind.to_string(), pid);
        let cached = self
            .dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        let dir = match cached {
            Some(d) => d,
            None => {
                let path = format!("{}/{kind}/{pid}", self.base);
                let d = self
                    .reader
                    .lookup(&path)
                    .and_then(|r| self.reader.tree_entries(&r))
                    .map_err(|e| self.note(e))?;
                let d = std::sync::Arc::new(d.into_iter().collect::<HashMap<_, _>>());
                self.dirs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, d.clone());
                d
            }
        };
        dir.get(&n.to_string()).cloned().ok_or_else(|| {
            self.note(StoreError::NotFound(format!(
                "{}/{kind}/{pid}/{n}",
                self.base
            )))
        })
    }
}

impl MemorySource for StoreSource {
    fn for_each_chunk(&self, pid: i32, index: usize, f: ChunkFn<'_>) -> io::Result<()> {
        let s = self.lookup("mem", pid, index as i64)?;
        let meter = &self.meter;
        let counted = |off: u64, chunk: Option<&[u8]>| {
            if let Some(c) = chunk {
                meter.add(c.len() as u64);
            }
            f(off, chunk)
        };
        self.reader
            .for_each_chunk(&s, &counted)
            .map_err(|e| self.note(e))
    }

    fn read_range(&self, pid: i32, index: usize, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let cached = self
            .streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(pid, index))
            .cloned();
        let s = match cached {
            Some(s) => s,
            None => {
                let s = self.lookup("mem", pid, index as i64)?;
                self.streams
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert((pid, index), s.clone());
                s
            }
        };
        self.meter.add(buf.len() as u64);
        self.reader
            .read_at(&s, offset, buf)
            .map_err(|e| self.note(e))
    }

    fn read_file(&self, pid: i32, fd: i32) -> io::Result<Vec<u8>> {
        let s = self.lookup("files", pid, i64::from(fd))?;
        self.reader.read_all(&s).map_err(|e| self.note(e))
    }

    fn prefetch(&self, pid: i32, indices: &[usize]) {
        let streams: Vec<StreamRef> = indices
            .iter()
            .filter_map(|&i| self.lookup("mem", pid, i as i64).ok())
            .collect();
        // A failure here shows again, with its region, when that region is read.
        let _ = self.reader.prefetch(&streams);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_store::{GenerationInfo, InitOptions, Store};
    use std::sync::Mutex;

    /// Deterministic, incompressible-ish bytes with an all-zero stretch in the middle.
    fn region(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut v: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let z = len / 3;
        v[z..2 * z].fill(0);
        v
    }

    #[test]
    fn regions_and_files_round_trip_through_a_generation() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(&dir.path().join("s"), InitOptions::default()).unwrap();
        let a = region(1 << 20, 7);
        let b = region(300 * 4096, 9);
        let file = b"contents of a deleted file".to_vec();
        let mut w = store.writer().unwrap();
        let mut sink = StoreSink::new(&mut w);
        for (pid, idx, data) in [(1, 0usize, &a), (1, 5, &b), (7, 2, &a)] {
            let src = |off: u64, buf: &mut [u8]| {
                buf.copy_from_slice(&data[off as usize..off as usize + buf.len()]);
                Ok(())
            };
            sink.put_region(pid, idx, data.len() as u64, &src).unwrap();
        }
        sink.put_file(1, 4, &mut file.as_slice()).unwrap();
        let tree = sink.finish_tree(b"{\"image\":true}").unwrap();
        let agents = w.put_tree(vec![("0".into(), tree)]).unwrap();
        let root = w.put_tree(vec![("agents".into(), agents)]).unwrap();
        let stats = w.finish().unwrap();
        let info = GenerationInfo {
            kind: "checkpoint".into(),
            stats,
            ..Default::default()
        };
        let id = store.commit("j", &root, info).unwrap();

        let chunk_size = store.config().memory_chunk_size as usize;
        let reader = store.reader(id).unwrap();
        let image = reader
            .read_all(&reader.lookup("agents/0/image.json").unwrap())
            .unwrap();
        assert_eq!(image, b"{\"image\":true}");
        let reader = std::sync::Arc::new(reader);
        let source = StoreSource::new(reader.clone(), "agents/0/");
        for (pid, idx, data) in [(1, 0usize, &a), (1, 5, &b), (7, 2, &a)] {
            let out = Mutex::new(vec![0xffu8; data.len()]);
            let f = |off: u64, chunk: Option<&[u8]>| {
                let mut o = out.lock().unwrap();
                let off = off as usize;
                match chunk {
                    Some(c) => o[off..off + c.len()].copy_from_slice(c),
                    // An all-zero chunk: its length is the store's chunk size, clipped to the end.
                    None => {
                        let end = (off + chunk_size).min(o.len());
                        o[off..end].fill(0);
                    }
                }
                Ok(())
            };
            source.for_each_chunk(pid, idx, &f).unwrap();
            assert!(
                out.into_inner().unwrap() == *data,
                "region {pid}/{idx} differs"
            );
        }
        assert_eq!(source.read_file(1, 4).unwrap(), file);
        assert!(
            source.for_each_chunk(1, 1, &|_, _| Ok(())).is_err(),
            "a region never stored"
        );
        assert!(source.read_file(2, 4).is_err());
    }
}
