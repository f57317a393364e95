//! End-to-end tests of the public store API.

use std::sync::Mutex;

mod common;
use common::{info, pseudo_random, put_mem};

use cairn_store::{CheckLevel, InitOptions, Store, StoreError, StreamKind, StreamRef};

#[test]
fn memory_bytes_tree_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    // The offsets below assume 64 KiB chunks.
    let store = Store::init(dir.path(), old_default_options()).unwrap();
    let mut mem = pseudo_random(3 * 65536 + 4096, 1);
    mem[65536..2 * 65536].fill(0);
    let file = pseudo_random(300_000, 2);
    let mut w = store.writer().unwrap();
    let m = put_mem(&mut w, &mem);
    let b = w.put_bytes(&mut &file[..]).unwrap();
    let e = w.put_blob(b"").unwrap();
    let sub = w.put_tree(vec![("m".into(), m.clone())]).unwrap();
    let root = w
        .put_tree(vec![
            ("f".into(), b.clone()),
            ("d".into(), sub),
            ("empty".into(), e.clone()),
        ])
        .unwrap();
    let stats = w.finish().unwrap();
    assert_eq!(stats.zero_bytes, 65536);
    let id = store.commit("job", &root, info(stats)).unwrap();

    let r = store.reader(id).unwrap();
    let m2 = r.lookup("d/m").unwrap();
    assert_eq!(m2, m);
    assert_eq!(m2.kind, StreamKind::Memory);
    assert_eq!(r.read_all(&m2).unwrap(), mem);
    assert_eq!(r.read_all(&r.lookup("f").unwrap()).unwrap(), file);
    assert_eq!(r.read_all(&r.lookup("empty").unwrap()).unwrap(), b"");
    let names: Vec<String> = r
        .tree_entries(r.root())
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["d", "empty", "f"]);
    // Random access across chunk boundaries.
    for (off, len) in [
        (0usize, 1usize),
        (65530, 20),
        (65536 * 2 - 3, 65536 + 10),
        (mem.len() - 7, 7),
    ] {
        let mut buf = vec![0xAA; len];
        r.read_at(&m, off as u64, &mut buf).unwrap();
        assert_eq!(buf, &mem[off..off + len], "offset {off}");
    }
    let mut buf = [0u8; 8];
    assert!(r.read_at(&m, mem.len() as u64 - 4, &mut buf).is_err());
    // for_each_chunk reports every chunk, None for the zero one.
    let seen = Mutex::new(Vec::new());
    r.for_each_chunk(&m, &|off, data| {
        let o = off as usize;
        match data {
            Some(d) => assert_eq!(d, &mem[o..o + d.len()]),
            None => assert!(mem[o..o + 65536].iter().all(|&b| b == 0)),
        }
        seen.lock().unwrap().push((off, data.is_none()));
        Ok(())
    })
    .unwrap();
    let mut seen = seen.into_inner().unwrap();
    seen.sort();
    assert_eq!(
        seen,
        vec![(0, false), (65536, true), (131072, false), (196608, false)]
    );
    assert!(matches!(r.lookup("nope"), Err(StoreError::NotFound(_))));
}

#[test]
fn second_generation_dedups_and_latest_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(dir.path(), InitOptions::default()).unwrap();
    let mut mem = pseudo_random(8 << 20, 3);
    let mut ids = Vec::new();
    let mut new_bytes = Vec::new();
    for g in 0..3 {
        if g > 0 {
            let p = 4096 * (100 + g);
            mem[p..p + 4096].copy_from_slice(&pseudo_random(4096, 100 + g as u64));
        }
        let mut w = store.writer().unwrap();
        let m = put_mem(&mut w, &mem);
        let root = w.put_tree(vec![("m".into(), m)]).unwrap();
        let stats = w.finish().unwrap();
        new_bytes.push(stats.new_stored_bytes);
        ids.push(store.commit("j", &root, info(stats)).unwrap());
    }
    // The first generation stores everything, later ones a chunk plus a few nodes.
    assert!(new_bytes[0] >= 8 << 20);
    assert!(new_bytes[1] < 65536 + 32 * 1024, "{new_bytes:?}");
    let (latest, skipped) = store.latest_consistent("j").unwrap();
    assert_eq!(latest.id, ids[2]);
    assert!(skipped.is_empty());
    let r = store.reader(latest.id).unwrap();
    assert_eq!(r.read_all(&r.lookup("m").unwrap()).unwrap(), mem);
    assert_eq!(store.generations(Some("j")).unwrap().len(), 3);
    assert_eq!(store.generations(Some("other")).unwrap().len(), 0);
    assert!(matches!(
        store.latest_consistent("other"),
        Err(StoreError::UnknownJob(_))
    ));
    for g in store.generations(None).unwrap() {
        store.check_generation(&g, CheckLevel::Data).unwrap();
    }
}

#[test]
fn commit_refuses_unfinished_or_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(dir.path(), InitOptions::default()).unwrap();
    let mut w = store.writer().unwrap();
    let b = w.put_blob(&pseudo_random(100_000, 9)).unwrap();
    let root = w.put_tree(vec![("b".into(), b.clone())]).unwrap();
    // Not finished: the pack is still a temporary file, so the chunks are not in the store.
    assert!(store.commit("j", &root, info(Default::default())).is_err());
    assert!(w.put_tree(vec![("a/b".into(), b.clone())]).is_err());
    assert!(w
        .put_tree(vec![("x".into(), b.clone()), ("x".into(), b.clone())])
        .is_err());
    let stats = w.finish().unwrap();
    assert!(store
        .commit("bad name", &root, info(stats.clone()))
        .is_err());
    assert!(store.commit("j", &b, info(stats.clone())).is_err());
    store.commit("j", &root, info(stats)).unwrap();
    // init refuses a non-empty directory; open refuses a non-store.
    assert!(matches!(
        Store::init(dir.path(), InitOptions::default()),
        Err(StoreError::AlreadyExists(_))
    ));
    let other = tempfile::tempdir().unwrap();
    assert!(matches!(
        Store::open(other.path()),
        Err(StoreError::NotAStore(_))
    ));
}

#[test]
fn reindex_rebuilds_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(dir.path(), InitOptions::default()).unwrap();
    let data = pseudo_random(1 << 20, 5);
    let mut w = store.writer().unwrap();
    let b = w.put_bytes(&mut &data[..]).unwrap();
    let root = w.put_tree(vec![("b".into(), b)]).unwrap();
    let stats = w.finish().unwrap();
    let id = store.commit("j", &root, info(stats)).unwrap();
    let before = store.totals().unwrap();
    // Pack trailers list exactly the indexed chunks.
    let packs = store.pack_files_on_disk().unwrap();
    let listed: usize = packs
        .iter()
        .map(|p| store.pack_entries(p).unwrap().len())
        .sum();
    assert_eq!(listed as u64, before.chunks);
    assert!(store.pack_entries("../x").is_err());
    drop(store);
    std::fs::remove_file(dir.path().join("cairn.db")).unwrap();
    let rep = Store::reindex(dir.path()).unwrap();
    assert_eq!(rep.generations, 1);
    let store = Store::open(dir.path()).unwrap();
    assert!(store.index_rebuilt().is_none());
    assert_eq!(store.totals().unwrap().chunks, before.chunks);
    assert_eq!(store.latest_consistent("j").unwrap().0.id, id);
    let r = store.reader(id).unwrap();
    assert_eq!(r.read_all(&r.lookup("b").unwrap()).unwrap(), data);
    drop(store);
    // Opening a store whose index is gone rebuilds it, and says so.
    std::fs::remove_file(dir.path().join("cairn.db")).unwrap();
    let store = Store::open(dir.path()).unwrap();
    let why = store.index_rebuilt().expect("the index was rebuilt");
    assert!(
        why.contains("missing") && why.contains("1 generation"),
        "{why}"
    );
    assert_eq!(store.totals().unwrap().chunks, before.chunks);
    assert_eq!(store.latest_consistent("j").unwrap().0.id, id);
}

#[test]
fn incremental_memory_equals_full_write_and_reads_only_changed_chunks() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    // The offsets below assume 64 KiB chunks and whole-chunk deltas (a format-1 store).
    Store::init(dir.path(), old_default_options()).unwrap();
    let store = common::with_format(dir.path(), 1);
    let mut mem = pseudo_random(40 * 65536 + 1000, 21);
    mem[5 * 65536..30 * 65536].fill(0);
    let mut w = store.writer().unwrap();
    let prev = put_mem(&mut w, &mem);
    w.finish().unwrap();
    // Change two pages, one inside the zero run, and grow the region by a partial chunk.
    let changes = [(3 * 65536 + 4096, 4096u64), (20 * 65536, 4096u64)];
    for &(o, l) in &changes {
        let o = o as usize;
        mem[o..o + l as usize].copy_from_slice(&pseudo_random(l as usize, o as u64));
    }
    mem.extend_from_slice(&pseudo_random(70_000, 22));
    let read = AtomicU64::new(0);
    let mut w = store.writer().unwrap();
    let inc = w
        .put_memory_incremental(mem.len() as u64, &prev, &changes, &|off, buf: &mut [u8]| {
            read.fetch_add(buf.len() as u64, Ordering::Relaxed);
            let o = off as usize;
            buf.copy_from_slice(&mem[o..o + buf.len()]);
            Ok(())
        })
        .unwrap();
    let full = put_mem(&mut w, &mem);
    let stats = w.finish().unwrap();
    assert_eq!(
        inc, full,
        "incremental and full writes give the same stream"
    );
    // Read: the 2 changed chunks, chunk 40 (partial before, full now) and the new partial
    // chunk 41.
    assert_eq!(
        read.load(Ordering::Relaxed),
        3 * 65536 + (40 * 65536 + 71_000 - 41 * 65536)
    );
    // 38 chunks reused, 24 of them zero (counted as zero bytes, not unchanged bytes).
    assert_eq!(stats.unchanged_bytes, 14 * 65536);
    let root = {
        let mut w = store.writer().unwrap();
        let r = w.put_tree(vec![("m".into(), inc.clone())]).unwrap();
        w.finish().unwrap();
        r
    };
    let id = store.commit("inc", &root, info(stats)).unwrap();
    let r = store.reader(id).unwrap();
    assert_eq!(r.read_all(&inc).unwrap(), mem);
    // A stream of another kind is refused.
    let mut w = store.writer().unwrap();
    let b = w.put_blob(b"x").unwrap();
    assert!(w
        .put_memory_incremental(10, &b, &[], &|_, _: &mut [u8]| Ok(()))
        .is_err());
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Store>();
    send_sync::<cairn_store::GenerationReader>();
    send::<cairn_store::Writer>();
    send_sync::<StreamRef>();
}

/// The defaults of stores created before the chunk-size decision (64 KiB chunks,
/// 256 children per memory node). Such stores must stay readable and writable: the chunking
/// settings are read from each store's config.json, never from the current defaults.
fn old_default_options() -> InitOptions {
    InitOptions {
        memory_chunk_size: 65536,
        memory_fanout: 256,
        ..InitOptions::default()
    }
}

#[test]
fn store_created_with_old_defaults_still_reads_and_dedups() {
    let dir = tempfile::tempdir().unwrap();
    let mut mem = pseudo_random(4 << 20, 31);
    mem[(1 << 20)..(2 << 20)].fill(0);
    let g1 = {
        let store = Store::init(dir.path(), old_default_options()).unwrap();
        let mut w = store.writer().unwrap();
        let m = put_mem(&mut w, &mem);
        let root = w.put_tree(vec![("m".into(), m)]).unwrap();
        let stats = w.finish().unwrap();
        store.commit("old", &root, info(stats)).unwrap()
    };
    // Reopened (as by a newer cairn): the store's own settings apply.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.config().memory_chunk_size, 65536);
    assert_eq!(store.config().memory_fanout, 256);
    let r = store.reader(g1).unwrap();
    assert_eq!(r.read_all(&r.lookup("m").unwrap()).unwrap(), mem);
    // A one-page change costs one 64 KiB chunk plus the nodes above it: the new generation
    // is cut exactly like the old one and deduplicates against it.
    mem[3 * 65536 + 100..3 * 65536 + 200].copy_from_slice(&pseudo_random(100, 32));
    let mut w = store.writer().unwrap();
    let m = put_mem(&mut w, &mem);
    let root = w.put_tree(vec![("m".into(), m)]).unwrap();
    let stats = w.finish().unwrap();
    // (16 KiB chunks would give 16 KiB plus a 10 KiB node.)
    assert!(
        (65536..65536 + 4096).contains(&stats.new_raw_bytes),
        "{stats:?}"
    );
    let g2 = store.commit("old", &root, info(stats)).unwrap();
    let (latest, skipped) = store.latest_consistent("old").unwrap();
    assert_eq!(latest.id, g2);
    assert!(skipped.is_empty());
    let r = store.reader(g2).unwrap();
    assert_eq!(r.read_all(&r.lookup("m").unwrap()).unwrap(), mem);
    for g in store.generations(None).unwrap() {
        store.check_generation(&g, CheckLevel::Data).unwrap();
    }
}

/// A writer indexes its sealed packs once, when it finishes; one dropped without finishing
/// (a failed checkpoint) removes the packs it sealed when no other writer is running, and
/// condemns them (gc deletes them later) when another one is; the committed data stays whole.
#[test]
fn sealed_packs_are_indexed_at_finish_and_removed_when_the_writer_gives_up() {
    let dir = tempfile::tempdir().unwrap();
    let opts = InitOptions {
        pack_target_size: 1 << 20,
        ..InitOptions::default()
    };
    let store = Store::init(dir.path(), opts).unwrap();
    let data = pseudo_random(8 << 20, 41);
    let mut w = store.writer().unwrap();
    let m = put_mem(&mut w, &data);
    // Several packs are sealed and durable, but not indexed yet.
    let sealed = store.pack_files_on_disk().unwrap().len();
    assert!(sealed >= 4, "{sealed} packs sealed");
    assert_eq!(store.totals().unwrap().chunks, 0);
    let root = w.put_tree(vec![("m".into(), m.clone())]).unwrap();
    let stats = w.finish().unwrap();
    let t = store.totals().unwrap();
    assert_eq!(t.packs, stats.packs);
    assert_eq!(t.chunks, stats.new_chunks);
    store.commit("a", &root, info(stats)).unwrap();
    let committed = store.pack_files_on_disk().unwrap();

    // Dropped without finish, alone: its sealed packs are gone at once, nothing else is.
    let other = pseudo_random(8 << 20, 42);
    {
        let mut w = store.writer().unwrap();
        put_mem(&mut w, &other);
        assert!(store.pack_files_on_disk().unwrap().len() >= committed.len() + 4);
    }
    assert_eq!(store.pack_files_on_disk().unwrap(), committed);
    assert_eq!(store.totals().unwrap().chunks, t.chunks);

    // Dropped while another writer runs (it may have deduplicated against them): condemned.
    let mut running = store.writer().unwrap();
    put_mem(&mut running, &pseudo_random(1 << 20, 43));
    {
        let mut w = store.writer().unwrap();
        put_mem(&mut w, &other);
    }
    let condemned = std::fs::read_dir(dir.path().join("condemned"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(condemned >= 4, "{condemned} packs condemned");
    drop(running);

    // The committed generation reads back whole from a reopened store.
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let (g, _) = store.latest_consistent_at("a", CheckLevel::Data).unwrap();
    let r = store.reader(g.id).unwrap();
    let mut out = vec![0u8; data.len()];
    r.read_at(&m, 0, &mut out).unwrap();
    assert!(out == data);
}

/// Writes `mem` incrementally over `prev` with `changed` through a new writer, commits it
/// as job `job` and returns the stream with the writer's statistics.
fn commit_incremental(
    store: &Store,
    job: &str,
    prev: &StreamRef,
    mem: &[u8],
    changed: &[(u64, u64)],
) -> (StreamRef, cairn_store::WriteStats) {
    let mut w = store.writer().unwrap();
    let s = w
        .put_memory_incremental(mem.len() as u64, prev, changed, &|off, buf: &mut [u8]| {
            let o = off as usize;
            buf.copy_from_slice(&mem[o..o + buf.len()]);
            Ok(())
        })
        .unwrap();
    let root = w.put_tree(vec![("m".into(), s.clone())]).unwrap();
    let stats = w.finish().unwrap();
    let id = store.commit(job, &root, info(stats.clone())).unwrap();
    let r = Store::open(store.path()).unwrap().reader(id).unwrap();
    assert_eq!(r.read_all(&s).unwrap(), mem);
    (s, stats)
}

#[test]
fn scattered_changed_pages_store_about_their_own_bytes_and_dedup_across_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(dir.path(), InitOptions::default()).unwrap();
    assert!(store.config().slices());
    let mut mem = pseudo_random(8 << 20, 41);
    let mut w = store.writer().unwrap();
    let first = put_mem(&mut w, &mem);
    let root = w.put_tree(vec![("m".into(), first.clone())]).unwrap();
    let stats = w.finish().unwrap();
    store.commit("a", &root, info(stats)).unwrap();
    // 64 pages, one in every fourth 32 KiB chunk, at different places inside it.
    let mut prev = first;
    for round in 0..4u64 {
        let mut changed = Vec::new();
        for k in 0..64u64 {
            let at = (k * 4 * 32768) + ((k + round * 3) % 8) * 4096;
            let o = at as usize;
            mem[o..o + 4096].copy_from_slice(&pseudo_random(4096, 1000 * round + k));
            changed.push((at, 4096));
        }
        let (s, stats) = commit_incremental(&store, "a", &prev, &mem, &changed);
        let pages = 64 * 4096;
        assert!(
            stats.new_raw_bytes * 2 <= pages * 3,
            "round {round}: {} new bytes for {pages} bytes of changed pages ({stats:?})",
            stats.new_raw_bytes
        );
        prev = s;
    }
    // The same memory written by another job from scratch shares the unchanged chunks, and an
    // incremental write of the same pages over it shares the changed pages' chunks too.
    let (s, _) = commit_incremental(&store, "b", &prev, &mem, &[]);
    assert_eq!(s, prev);
}

#[test]
fn a_write_compared_with_an_older_stream_stores_only_the_differing_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(dir.path(), InitOptions::default()).unwrap();
    let mut mem = pseudo_random(4 << 20, 51);
    mem[(1 << 20)..(2 << 20)].fill(0);
    let mut w = store.writer().unwrap();
    let first = put_mem(&mut w, &mem);
    w.finish().unwrap();
    // A partly changed generation (slices), then a comparison against it with other pages
    // changed, one inside the zero run: about those pages' bytes are new.
    let changed: Vec<(u64, u64)> = (0..32u64).map(|k| (k * 131_072 + 8192, 4096)).collect();
    for &(o, _) in &changed {
        let o = o as usize;
        mem[o..o + 4096].copy_from_slice(&pseudo_random(4096, 60 + o as u64));
    }
    let (sliced, _) = commit_incremental(&store, "d", &first, &mem, &changed);
    for k in 0..16u64 {
        let o = (k * 262_144 + 20_480) as usize;
        mem[o..o + 4096].copy_from_slice(&pseudo_random(4096, 90 + k));
    }
    let mut w = store.writer().unwrap();
    let s = w
        .put_memory_diff(mem.len() as u64, &sliced, &|off, buf: &mut [u8]| {
            let o = off as usize;
            buf.copy_from_slice(&mem[o..o + buf.len()]);
            Ok(())
        })
        .unwrap();
    let root = w.put_tree(vec![("m".into(), s.clone())]).unwrap();
    let stats = w.finish().unwrap();
    let pages = 16 * 4096;
    assert!(
        stats.new_raw_bytes * 2 <= pages * 3 + 64 * 1024,
        "{} new bytes for {pages} bytes of changed pages",
        stats.new_raw_bytes
    );
    let id = store.commit("d", &root, info(stats)).unwrap();
    assert_eq!(store.reader(id).unwrap().read_all(&s).unwrap(), mem);
}
