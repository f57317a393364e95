//! Restore racing gc, under stress: readers (each with its own store handle, like separate
//! `cairn restart` processes) reassemble kept generations and run the consistency check of
//! `latest_consistent` in a loop, while gc moves every live chunk into a new pack and
//! deletes the old packs in a loop. Every read returns the exact bytes and no generation is
//! ever reported damaged: a reader whose lookup went stale re-looks the chunk up
//! (docs/gc.md, "Readers").
//!
//! The window between a reader's lookup and its opening of the pack is microseconds, so this
//! stress rarely forces the stale case itself; `reader::race_with_gc` in cairn-store forces
//! it deterministically (and fails without the re-lookup). This test guards the whole: no
//! read fails and no kept chunk is lost while gc keeps moving and deleting packs.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_store::{CheckLevel, GenerationId, GenerationInfo, InitOptions, PackEntry, Store};

const LEN: usize = 256 << 10;

fn content(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(LEN);
    while v.len() < LEN {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

fn commit(store: &Store, job: &str, data: &[u8]) -> GenerationId {
    let mut w = store.writer().expect("writer");
    let mem = w
        .put_memory(data.len() as u64, &|off, buf: &mut [u8]| {
            let o = off as usize;
            buf.copy_from_slice(&data[o..o + buf.len()]);
            Ok(())
        })
        .expect("put_memory");
    let root = w.put_tree(vec![("mem".into(), mem)]).expect("tree");
    let stats = w.finish().expect("finish");
    let info = GenerationInfo {
        kind: "checkpoint".into(),
        stats,
        ..Default::default()
    };
    store.commit(job, &root, info).expect("commit")
}

/// One gc round that moves everything: copy every live chunk of every alive pack into new
/// packs (index rows follow), condemn the old packs, mark again, delete them. No writer
/// runs, so no grace period is needed. Returns the packs deleted.
fn move_everything(store: &Store) -> usize {
    let live = store.maintenance().mark_live().expect("mark");
    let mut set = store
        .maintenance()
        .scan_packs(&live, live.started_ms)
        .expect("scan");
    let old: Vec<String> = set
        .packs()
        .iter()
        .filter(|p| p.is_alive())
        .map(|p| p.name.clone())
        .collect();
    let pairs: Vec<(String, PackEntry)> = set
        .packs()
        .iter()
        .filter(|p| p.is_alive())
        .flat_map(|p| p.live.iter().map(|e| (p.name.clone(), e.clone())))
        .collect();
    store
        .maintenance()
        .copy_chunks(&mut set, &pairs)
        .expect("copy");
    store.maintenance().condemn_packs(&old).expect("condemn");
    let live = store.maintenance().mark_live().expect("mark");
    let mut set = store
        .maintenance()
        .scan_packs(&live, live.started_ms)
        .expect("scan");
    store
        .maintenance()
        .delete_condemned_packs(&mut set, &old, &live)
        .expect("delete");
    old.len()
}

fn open(dir: &Path) -> Store {
    Store::open(dir).expect("open")
}

#[test]
fn readers_and_consistency_checks_survive_gc_moving_and_deleting_their_packs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("s");
    let store = Store::init(
        &dir,
        InitOptions {
            memory_chunk_size: 16 * 1024,
            pack_target_size: 1 << 20,
            ..InitOptions::default()
        },
    )
    .expect("init");
    let a = content(1);
    let mut b = a.clone();
    b[LEN / 2..].copy_from_slice(&content(2)[LEN / 2..]);
    let ga = commit(&store, "job", &a);
    let gb = commit(&store, "job", &b);
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let checks = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for r in 0..2u64 {
        let (stop, reads, dir) = (stop.clone(), reads.clone(), dir.clone());
        let (a, b) = (a.clone(), b.clone());
        readers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // A fresh handle each time: no pack file is open yet, as in a new process.
                let s = open(&dir);
                let (g, want) = if r == 0 { (ga, &a) } else { (gb, &b) };
                let rd = s.reader(g).expect("reader");
                let mem = rd.lookup("mem").expect("lookup");
                // Piece by piece: each read_at looks its chunks up, then reads them.
                let mut got = vec![0u8; LEN];
                for (k, piece) in got.chunks_mut(LEN / 16).enumerate() {
                    rd.read_at(&mem, (k * LEN / 16) as u64, piece)
                        .unwrap_or_else(|e| panic!("read of generation {g} failed: {e}"));
                }
                assert!(got == *want, "generation {g} read wrong bytes");
                reads.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    {
        let (stop, checks, dir) = (stop.clone(), checks.clone(), dir.clone());
        readers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let s = open(&dir);
                let (g, skipped) = s
                    .latest_consistent_at("job", CheckLevel::Structure)
                    .expect("latest consistent (structure)");
                assert_eq!((g.id, skipped.len()), (gb, 0), "{skipped:?}");
                let (g, skipped) = s.latest_consistent("job").expect("latest consistent");
                assert_eq!((g.id, skipped.len()), (gb, 0), "{skipped:?}");
                checks.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let t = Instant::now();
    let mut rounds = 0;
    let mut deleted = 0;
    while t.elapsed() < Duration::from_secs(4) || rounds < 20 {
        deleted += move_everything(&store);
        rounds += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for h in readers {
        h.join().expect("reader thread");
    }
    let (reads, checks) = (
        reads.load(Ordering::Relaxed),
        checks.load(Ordering::Relaxed),
    );
    eprintln!("gc rounds {rounds}, packs deleted {deleted}, reads {reads}, checks {checks}");
    assert!(
        reads > 4 && checks > 2,
        "readers ran: {reads} reads, {checks} checks"
    );
    assert!(deleted >= rounds, "every round deleted packs");
    assert!(store.verify(true).expect("verify").ok);
}
