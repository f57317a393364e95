//! Property tests: random regions and random mutations over several generations; every
//! generation reassembles to exactly its input (whole, by random ranges, and chunk by chunk).

use std::sync::Mutex;

use cairn_store::{GenerationInfo, InitOptions, Store};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Mutation {
    /// Overwrite `len` bytes at `at` (fractions of the size) with a seeded pattern.
    Write { at: f64, len: usize, seed: u8 },
    /// Zero a range.
    Zero { at: f64, len: usize },
    /// Insert bytes (shifts the rest; byte streams must still dedup, memory just changes).
    Insert { at: f64, len: usize, seed: u8 },
    /// Cut the buffer at a point.
    Truncate { at: f64 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0.0..1.0f64, 1..20_000usize, any::<u8>()).prop_map(|(at, len, seed)| Mutation::Write {
            at,
            len,
            seed
        }),
        (0.0..1.0f64, 1..40_000usize).prop_map(|(at, len)| Mutation::Zero { at, len }),
        (0.0..1.0f64, 1..5_000usize, any::<u8>()).prop_map(|(at, len, seed)| Mutation::Insert {
            at,
            len,
            seed
        }),
        (0.5..1.0f64).prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn apply(buf: &mut Vec<u8>, m: &Mutation) {
    let pos = |at: f64, n: usize| ((n as f64) * at) as usize;
    match *m {
        Mutation::Write { at, len, seed } => {
            let p = pos(at, buf.len());
            let end = (p + len).min(buf.len());
            let pat = pattern(end - p, seed);
            buf[p..end].copy_from_slice(&pat);
        }
        Mutation::Zero { at, len } => {
            let p = pos(at, buf.len());
            let end = (p + len).min(buf.len());
            buf[p..end].fill(0);
        }
        Mutation::Insert { at, len, seed } => {
            let p = pos(at, buf.len());
            let tail = buf.split_off(p);
            buf.extend_from_slice(&pattern(len, seed));
            buf.extend_from_slice(&tail);
        }
        Mutation::Truncate { at } => {
            let p = pos(at, buf.len());
            buf.truncate(p);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn generations_reassemble_exactly(
        size in 0..300_000usize,
        seed in any::<u8>(),
        zero_start in any::<bool>(),
        gens in prop::collection::vec(prop::collection::vec(mutation(), 0..5), 1..5),
        probes in prop::collection::vec((0.0..1.0f64, 0..70_000usize), 4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let opts = InitOptions { memory_chunk_size: 4096, cdc_avg_size: 4096, ..InitOptions::default() };
        let store = Store::init(dir.path(), opts).unwrap();
        let mut buf = if zero_start { vec![0u8; size] } else { pattern(size, seed) };
        let mut snapshots = Vec::new();
        for muts in &gens {
            for m in muts {
                apply(&mut buf, m);
            }
            let mut w = store.writer().unwrap();
            let data = buf.clone();
            let mem = w.put_memory(data.len() as u64, &|off, out: &mut [u8]| {
                let o = off as usize;
                out.copy_from_slice(&data[o..o + out.len()]);
                Ok(())
            }).unwrap();
            let bytes = w.put_bytes(&mut &data[..]).unwrap();
            let root = w.put_tree(vec![("mem".into(), mem), ("bytes".into(), bytes)]).unwrap();
            let stats = w.finish().unwrap();
            prop_assert_eq!(stats.logical_bytes, 2 * data.len() as u64);
            let info = GenerationInfo { kind: "test".into(), stats, ..Default::default() };
            let id = store.commit("p", &root, info).unwrap();
            snapshots.push((id, data));
        }
        for (id, data) in &snapshots {
            let r = store.reader(*id).unwrap();
            for name in ["mem", "bytes"] {
                let s = r.lookup(name).unwrap();
                prop_assert_eq!(s.len, data.len() as u64);
                prop_assert!(&r.read_all(&s).unwrap() == data);
                for (at, len) in &probes {
                    let off = ((data.len() as f64) * at) as usize;
                    let len = (*len).min(data.len() - off);
                    let mut got = vec![0x5A; len];
                    r.read_at(&s, off as u64, &mut got).unwrap();
                    prop_assert!(got[..] == data[off..off + len]);
                }
            }
            // Memory streams chunk by chunk: fixed 4 KiB chunks, `None` for zeros up to the
            // next reported offset (one zero chunk or a whole zero subtree).
            let s = r.lookup("mem").unwrap();
            let rebuilt = Mutex::new(vec![0xEEu8; data.len()]);
            let zeros = Mutex::new(Vec::new());
            let offsets = Mutex::new(vec![data.len()]);
            r.for_each_chunk(&s, &|off, chunk| {
                let mut out = rebuilt.lock().unwrap();
                let o = off as usize;
                offsets.lock().unwrap().push(o);
                match chunk {
                    Some(c) => out[o..o + c.len()].copy_from_slice(c),
                    None => zeros.lock().unwrap().push(o),
                }
                Ok(())
            }).unwrap();
            let mut out = rebuilt.into_inner().unwrap();
            let mut offsets = offsets.into_inner().unwrap();
            offsets.sort_unstable();
            for z in zeros.into_inner().unwrap() {
                let next = offsets[offsets.partition_point(|&o| o <= z)];
                out[z..next].fill(0);
            }
            prop_assert!(&out == data);
        }
        let (latest, skipped) = store.latest_consistent("p").unwrap();
        prop_assert_eq!(latest.id, snapshots.last().unwrap().0);
        prop_assert!(skipped.is_empty());
        prop_assert!(store.verify(true).unwrap().ok);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Differential: `put_memory_incremental` with the true changed ranges gives exactly the
    /// stream `put_memory` gives, whatever the changes and length change.
    #[test]
    fn incremental_memory_matches_full(
        size in 0..200_000usize,
        seed in any::<u8>(),
        zero_start in any::<bool>(),
        changes in prop::collection::vec((0.0..1.0f64, 1..9_000usize, any::<u8>(), any::<bool>()), 0..6),
        new_size in prop::option::of(0..220_000usize),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let opts = InitOptions { memory_chunk_size: 4096, ..InitOptions::default() };
        let store = Store::init(dir.path(), opts).unwrap();
        let old = if zero_start { vec![0u8; size] } else { pattern(size, seed) };
        let put = |w: &mut cairn_store::Writer, d: &[u8]| {
            w.put_memory(d.len() as u64, &|off, out: &mut [u8]| {
                let o = off as usize;
                out.copy_from_slice(&d[o..o + out.len()]);
                Ok(())
            }).unwrap()
        };
        let mut w = store.writer().unwrap();
        let prev = put(&mut w, &old);
        w.finish().unwrap();
        let mut new = old.clone();
        let mut ranges = Vec::new();
        if let Some(n) = new_size {
            if n > new.len() {
                ranges.push((new.len() as u64, (n - new.len()) as u64));
            }
            new.resize(n, 0);
        }
        for (at, len, s, zero) in changes {
            if new.is_empty() {
                break;
            }
            let p = ((new.len() as f64) * at) as usize;
            let end = (p + len).min(new.len());
            if zero {
                new[p..end].fill(0);
            } else {
                new[p..end].copy_from_slice(&pattern(end - p, s));
            }
            ranges.push((p as u64, (end - p) as u64));
        }
        let mut w = store.writer().unwrap();
        let data = new.clone();
        let inc = w.put_memory_incremental(data.len() as u64, &prev, &ranges, &|off, out: &mut [u8]| {
            let o = off as usize;
            out.copy_from_slice(&data[o..o + out.len()]);
            Ok(())
        }).unwrap();
        let full = put(&mut w, &new);
        w.finish().unwrap();
        prop_assert_eq!(inc, full);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Differential: `put_memory_sparse` with ranges covering every non-zero byte gives exactly
    /// the stream `put_memory` gives, and never reads outside the present ranges' chunks.
    #[test]
    fn sparse_memory_matches_full(
        size in 0..300_000usize,
        islands in prop::collection::vec((0.0..1.0f64, 1..20_000usize, any::<u8>()), 0..6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let opts = InitOptions { memory_chunk_size: 4096, ..InitOptions::default() };
        let store = Store::init(dir.path(), opts).unwrap();
        let mut data = vec![0u8; size];
        let mut present = Vec::new();
        for (at, len, s) in islands {
            if size == 0 {
                break;
            }
            let p = ((size as f64) * at) as usize;
            let end = (p + len).min(size);
            data[p..end].copy_from_slice(&pattern(end - p, s));
            present.push((p as u64, (end - p) as u64));
        }
        let read = std::sync::atomic::AtomicU64::new(0);
        let mut w = store.writer().unwrap();
        let src = |off: u64, out: &mut [u8]| {
            read.fetch_add(out.len() as u64, std::sync::atomic::Ordering::Relaxed);
            let o = off as usize;
            out.copy_from_slice(&data[o..o + out.len()]);
            Ok(())
        };
        let sparse = w.put_memory_sparse(size as u64, &present, &src).unwrap();
        let limit: u64 = present.iter().map(|r| r.1 + 2 * 4096).sum();
        prop_assert!(read.load(std::sync::atomic::Ordering::Relaxed) <= limit);
        let full = w.put_memory(size as u64, &src).unwrap();
        w.finish().unwrap();
        prop_assert_eq!(sparse, full);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Page-granular deltas (32 KiB chunks, slices of older chunks): after several rounds of
    /// changes, zeroing and a length change, the incremental stream reads back (whole, and
    /// chunk by chunk as restores read) exactly the new bytes.
    #[test]
    fn incremental_memory_with_slices_reads_back_exactly(
        pages in 0..60usize,
        rounds in prop::collection::vec(
            (prop::collection::vec((0.0..1.0f64, 1..20_000usize, any::<u8>(), any::<bool>()), 0..6),
             prop::option::of(0..70usize)),
            1..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path(), InitOptions { memory_fanout: 4, ..InitOptions::default() }).unwrap();
        let mut mem = pattern(pages * 4096, 7);
        let mut w = store.writer().unwrap();
        let mut prev = w.put_memory(mem.len() as u64, &|off, out: &mut [u8]| {
            let o = off as usize;
            out.copy_from_slice(&mem[o..o + out.len()]);
            Ok(())
        }).unwrap();
        w.finish().unwrap();
        for (changes, new_pages) in rounds {
            let mut ranges = Vec::new();
            if let Some(n) = new_pages {
                let n = n * 4096;
                if n > mem.len() {
                    ranges.push((mem.len() as u64, (n - mem.len()) as u64));
                }
                mem.resize(n, 0);
            }
            for (at, len, s, zero) in changes {
                if mem.is_empty() {
                    break;
                }
                let p = ((mem.len() as f64) * at) as usize;
                let end = (p + len).min(mem.len());
                if zero {
                    mem[p..end].fill(0);
                } else {
                    mem[p..end].copy_from_slice(&pattern(end - p, s));
                }
                ranges.push((p as u64, (end - p) as u64));
            }
            let mut w = store.writer().unwrap();
            let data = mem.clone();
            let inc = w.put_memory_incremental(data.len() as u64, &prev, &ranges, &|off, out: &mut [u8]| {
                let o = off as usize;
                out.copy_from_slice(&data[o..o + out.len()]);
                Ok(())
            }).unwrap();
            let root = w.put_tree(vec![("m".into(), inc.clone())]).unwrap();
            let stats = w.finish().unwrap();
            let id = store.commit("p", &root, GenerationInfo { kind: "test".into(), stats, ..Default::default() }).unwrap();
            let r = store.reader(id).unwrap();
            prop_assert_eq!(&r.read_all(&inc).unwrap(), &mem);
            let got = Mutex::new(vec![0u8; mem.len()]);
            r.for_each_chunk(&inc, &|off, d| {
                if let Some(d) = d {
                    let o = off as usize;
                    got.lock().unwrap()[o..o + d.len()].copy_from_slice(d);
                }
                Ok(())
            }).unwrap();
            prop_assert_eq!(&got.into_inner().unwrap(), &mem);
            prev = inc;
        }
    }
}
