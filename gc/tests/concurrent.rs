//! Stress test, bounded in time: several writers (each with its own store handle and index
//! connection, like separate processes) commit generations in a loop while prune and gc run
//! in a loop. Writers deduplicate against chunks of older generations, which gc keeps
//! condemning. At the end every remaining generation passes a full data check and
//! reassembles to its expected bytes, the newest generations of every job are there, and gc
//! did delete packs. A reader restores the newest generations meanwhile; only a generation
//! pruned under it may fail to read.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_gc::{Policy, PruneOptions, SweepOptions};
use cairn_store::{CheckLevel, GenerationId, GenerationInfo, InitOptions, Store};

const BLOCK: usize = 16 * 1024;
const BLOCKS: usize = 24;

fn rand_block(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(BLOCK);
    while v.len() < BLOCK {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

/// Content of generation `n` of writer `w`: block `b` last changed at the newest
/// `m <= n` with `(m * 7 + b) % 5 == 0`, so most blocks repeat older generations' chunks.
fn content(w: u64, n: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(BLOCK * BLOCKS);
    for b in 0..BLOCKS as u64 {
        // Blocks 0 and 1 never change: the first pack of each writer stays partly live,
        // so gc repacks it.
        let mut m = if b < 2 { 0 } else { n };
        while m > 0 && (m * 7 + b) % 5 != 0 {
            m -= 1;
        }
        out.extend_from_slice(&rand_block((w << 40) ^ (b << 20) ^ m));
    }
    out
}

fn write_gen(store: &Store, job: &str, data: &[u8]) -> GenerationId {
    let mut w = store.writer().expect("writer");
    let mem = w
        .put_memory(data.len() as u64, &|off, buf: &mut [u8]| {
            let o = off as usize;
            buf.copy_from_slice(&data[o..o + buf.len()]);
            Ok(())
        })
        .expect("put_memory");
    let blob = w.put_blob(&data[..BLOCK]).expect("put_blob");
    let root = w
        .put_tree(vec![("mem".into(), mem), ("blob".into(), blob)])
        .expect("put_tree");
    let stats = w.finish().expect("finish");
    let info = GenerationInfo {
        kind: "checkpoint".into(),
        stats,
        ..Default::default()
    };
    store.commit(job, &root, info).expect("commit")
}

fn open_store(dir: &Path) -> Store {
    Store::open(dir).expect("open")
}

#[test]
fn writers_prune_and_gc_run_concurrently_without_losing_a_kept_generation() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("s");
    Store::init(
        &dir,
        InitOptions {
            memory_chunk_size: BLOCK as u32,
            pack_target_size: 1 << 20,
            ..InitOptions::default()
        },
    )
    .expect("init");
    let stop = Arc::new(AtomicBool::new(false));
    let expected: Arc<Mutex<HashMap<GenerationId, (u64, u64)>>> = Arc::default();
    let newest: Arc<Mutex<HashMap<u64, GenerationId>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..3u64 {
        let (stop, expected, newest, dir) =
            (stop.clone(), expected.clone(), newest.clone(), dir.clone());
        writers.push(std::thread::spawn(move || {
            let store = open_store(&dir);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let id = write_gen(&store, &format!("job{w}"), &content(w, n));
                expected.lock().unwrap().insert(id, (w, n));
                newest.lock().unwrap().insert(w, id);
            }
            n
        }));
    }
    // A reader (its own handle, like `cairn restart`) reassembles the newest generation of
    // each job in turn while everything else runs. A read may fail only if its generation
    // was pruned meanwhile; a failure while the manifest is still there is a lost chunk.
    let reader = {
        let (stop, expected, newest, dir) =
            (stop.clone(), expected.clone(), newest.clone(), dir.clone());
        std::thread::spawn(move || {
            let store = open_store(&dir);
            let (mut ok, mut pruned) = (0u64, 0u64);
            let mut turn = 0u64;
            while !stop.load(Ordering::Relaxed) {
                turn += 1;
                let id = newest.lock().unwrap().get(&(turn % 3)).copied();
                let Some(id) = id else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let (w, n) = expected.lock().unwrap()[&id];
                let got = store.reader(id).and_then(|r| {
                    let mem = r.lookup("mem")?;
                    r.read_all(&mem)
                });
                match got {
                    Ok(bytes) => {
                        assert!(bytes == content(w, n), "generation {id} read wrong bytes");
                        ok += 1;
                    }
                    Err(e) => {
                        assert!(
                            store.generation(id).is_err(),
                            "kept generation {id} failed to read: {e}"
                        );
                        pruned += 1;
                    }
                }
            }
            (ok, pruned)
        })
    };
    // Grace: far longer than one of these checkpoints (milliseconds), short enough that
    // condemned packs are deleted during the run.
    let opts = SweepOptions {
        dry_run: false,
        max_unused_percent: 30.0,
        grace: Duration::from_millis(1500),
    };
    let gc = {
        let (stop, dir, opts) = (stop.clone(), dir.clone(), opts.clone());
        std::thread::spawn(move || {
            let store = open_store(&dir);
            let mut deleted = 0usize;
            let mut copied = 0u64;
            let mut rounds = 0;
            while !stop.load(Ordering::Relaxed) {
                let p = cairn_gc::prune(
                    &store,
                    &PruneOptions {
                        job: None,
                        policy: Policy::last(2),
                        dry_run: false,
                    },
                );
                // An empty store (writers not started) has nothing to prune.
                if let Err(e) = p {
                    assert!(rounds == 0, "prune failed: {e}");
                }
                let r = cairn_gc::sweep(&store, &opts).expect("sweep");
                deleted += r.deleted.len();
                copied += r.copied_chunks;
                rounds += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            (deleted, copied, rounds)
        })
    };
    let run = Duration::from_secs(7);
    let t = Instant::now();
    while t.elapsed() < run {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let gens: Vec<u64> = writers.into_iter().map(|h| h.join().unwrap()).collect();
    let (deleted, copied, rounds) = gc.join().unwrap();
    let (reads, reads_pruned) = reader.join().unwrap();
    eprintln!("generations per writer {gens:?}; gc rounds {rounds}, packs deleted {deleted}, chunks copied {copied}; reads {reads} (+{reads_pruned} of pruned generations)");
    assert!(reads > 10, "the reader made progress: {reads}");
    assert!(
        gens.iter().all(|&n| n > 10),
        "writers made progress: {gens:?}"
    );
    assert!(rounds > 3, "gc ran repeatedly");
    assert!(deleted > 0, "gc deleted packs while writers ran");

    let store = open_store(&dir);
    let report = store.verify(true).expect("verify");
    assert!(report.ok, "verify --read-data after the run: {report:?}");
    let expected = expected.lock().unwrap().clone();
    let remaining = store.generations(None).expect("generations");
    for (w, id) in newest.lock().unwrap().iter() {
        assert!(
            remaining.iter().any(|g| g.id == *id),
            "newest generation {id} of writer {w} was dropped"
        );
    }
    // Per job: kept ones are at least the newest two (keep-last 2 + protection).
    for w in 0..3u64 {
        assert!(
            remaining
                .iter()
                .filter(|g| g.job == format!("job{w}"))
                .count()
                >= 2
        );
    }
    for g in &remaining {
        store
            .check_generation(g, CheckLevel::Data)
            .unwrap_or_else(|e| panic!("generation {} fails: {e}", g.id));
        let (w, n) = expected[&g.id];
        let want = content(w, n);
        let r = store.reader(g.id).expect("reader");
        assert_eq!(r.read_all(&r.lookup("mem").unwrap()).unwrap(), want);
        assert_eq!(
            r.read_all(&r.lookup("blob").unwrap()).unwrap(),
            want[..BLOCK]
        );
    }
    // Once writers are done, a few sweeps spaced by the grace period leave no condemned
    // pack behind (each sweep deletes what the previous one condemned).
    let mut rounds = 0;
    loop {
        std::thread::sleep(opts.grace);
        let r = cairn_gc::sweep(&store, &opts).expect("sweep");
        rounds += 1;
        if store.maintenance().condemned_names().unwrap().is_empty() {
            break;
        }
        assert!(rounds < 5, "condemned packs remain: {r:?}");
    }
    assert!(store.verify(true).unwrap().ok);
}
