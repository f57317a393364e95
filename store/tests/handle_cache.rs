//! The store handle's cache of chunk locations and nodes (store/src/known.rs) is only a hint:
//! a handle that wrote or read a generation must still refuse to commit over a pack that is
//! gone or truncated, and must not deduplicate against a pack that is condemned or gone.

mod common;
use common::{info, pseudo_random, put_mem, with_format};

use cairn_store::{InitOptions, Store, StreamRef};

/// Commits `mem` as the only stream of a generation of job `j`; returns the stream.
fn commit_one(store: &Store, mem: &[u8]) -> StreamRef {
    let mut w = store.writer().unwrap();
    let s = put_mem(&mut w, mem);
    let root = w.put_tree(vec![("m".into(), s.clone())]).unwrap();
    let stats = w.finish().unwrap();
    store.commit("j", &root, info(stats)).unwrap();
    s
}

fn packs(store: &Store) -> Vec<std::path::PathBuf> {
    store
        .pack_files_on_disk()
        .unwrap()
        .into_iter()
        .map(|p| store.path().join("packs").join(format!("{p}.pack")))
        .collect()
}

fn small_store(dir: &std::path::Path) -> Store {
    Store::init(
        dir,
        InitOptions {
            memory_chunk_size: 65536,
            ..InitOptions::default()
        },
    )
    .unwrap()
}

/// Writes, with the same (warm) handle, a generation that reuses every chunk of `prev` but
/// one, and tries to commit it.
fn commit_reusing(store: &Store, prev: &StreamRef, mem: &[u8]) -> Result<(), String> {
    let mut w = store.writer().unwrap();
    let changed = [(0u64, 4096u64)];
    let s = w
        .put_memory_incremental(mem.len() as u64, prev, &changed, &|off, buf: &mut [u8]| {
            let o = off as usize;
            buf.copy_from_slice(&mem[o..o + buf.len()]);
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    let root = w
        .put_tree(vec![("m".into(), s)])
        .map_err(|e| e.to_string())?;
    let stats = w.finish().map_err(|e| e.to_string())?;
    store
        .commit("j", &root, info(stats))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn a_warm_handle_refuses_to_commit_over_a_deleted_pack() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let mut mem = pseudo_random(40 * 65536, 1);
    let prev = commit_one(&store, &mem);
    for p in packs(&store) {
        std::fs::remove_file(p).unwrap();
    }
    mem[..4096].copy_from_slice(&pseudo_random(4096, 2));
    let err = commit_reusing(&store, &prev, &mem).expect_err("commit over a deleted pack");
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn a_warm_handle_refuses_to_commit_over_a_truncated_pack() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let mut mem = pseudo_random(40 * 65536, 3);
    let prev = commit_one(&store, &mem);
    for p in packs(&store) {
        let len = std::fs::metadata(&p).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(len / 2).unwrap();
    }
    mem[..4096].copy_from_slice(&pseudo_random(4096, 4));
    let err = commit_reusing(&store, &prev, &mem).expect_err("commit over a truncated pack");
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn a_warm_handle_commits_over_intact_packs_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let mut mem = pseudo_random(40 * 65536, 5);
    let prev = commit_one(&store, &mem);
    mem[..4096].copy_from_slice(&pseudo_random(4096, 6));
    commit_reusing(&store, &prev, &mem).unwrap();
    // A fresh handle (nothing cached) reads the newest generation back exactly.
    let fresh = Store::open(dir.path()).unwrap();
    let (g, skipped) = fresh.latest_consistent("j").unwrap();
    assert!(skipped.is_empty());
    let r = fresh.reader(g.id).unwrap();
    let s = r.lookup("m").unwrap();
    assert_eq!(r.read_all(&s).unwrap(), mem);
}

#[test]
fn a_warm_handle_does_not_dedup_against_a_condemned_pack() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let mem = pseudo_random(40 * 65536, 7);
    commit_one(&store, &mem);
    for p in store.pack_files_on_disk().unwrap() {
        assert!(store.maintenance().condemn_pack(&p).unwrap());
    }
    let mut w = store.writer().unwrap();
    put_mem(&mut w, &mem);
    let stats = w.finish().unwrap();
    assert!(
        stats.new_raw_bytes as usize >= mem.len(),
        "every data chunk stored again ({} of {} bytes)",
        stats.new_raw_bytes,
        mem.len()
    );
}

#[test]
fn a_warm_handle_does_not_dedup_against_a_deleted_pack() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let mem = pseudo_random(40 * 65536, 8);
    commit_one(&store, &mem);
    for p in packs(&store) {
        std::fs::remove_file(p).unwrap();
    }
    let mut w = store.writer().unwrap();
    let s = put_mem(&mut w, &mem);
    let root = w.put_tree(vec![("m".into(), s.clone())]).unwrap();
    let stats = w.finish().unwrap();
    assert!(stats.new_raw_bytes as usize >= mem.len());
    let id = store.commit("j", &root, info(stats)).unwrap();
    assert_eq!(store.reader(id).unwrap().read_all(&s).unwrap(), mem);
}

#[test]
fn a_warm_handle_dedups_an_unchanged_image_without_new_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let mem = pseudo_random(40 * 65536, 9);
    commit_one(&store, &mem);
    let mut w = store.writer().unwrap();
    put_mem(&mut w, &mem);
    let stats = w.finish().unwrap();
    assert_eq!(stats.new_chunks, 0, "{stats:?}");
}

#[test]
fn incremental_write_over_a_stream_of_the_same_unfinished_writer() {
    for format in [1, 3] {
        let dir = tempfile::tempdir().unwrap();
        small_store(dir.path());
        let store = with_format(dir.path(), format);
        let mut mem = pseudo_random(40 * 65536, 10);
        let mut w = store.writer().unwrap();
        let first = put_mem(&mut w, &mem);
        mem[7 * 65536..7 * 65536 + 4096].copy_from_slice(&pseudo_random(4096, 11));
        let changed = [(7u64 * 65536, 4096u64)];
        let src = |off: u64, buf: &mut [u8]| {
            let o = off as usize;
            buf.copy_from_slice(&mem[o..o + buf.len()]);
            Ok(())
        };
        let inc = w
            .put_memory_incremental(mem.len() as u64, &first, &changed, &src)
            .unwrap();
        let full = w.put_memory(mem.len() as u64, &src).unwrap();
        // Whole-chunk deltas (format 1) give the full write's stream; slices (format 3) a
        // different tree of the same bytes.
        assert_eq!(inc == full, format == 1, "format {format}");
        let root = w.put_tree(vec![("m".into(), inc.clone())]).unwrap();
        let stats = w.finish().unwrap();
        let id = store.commit("j", &root, info(stats)).unwrap();
        let fresh = Store::open(dir.path()).unwrap();
        assert_eq!(fresh.reader(id).unwrap().read_all(&inc).unwrap(), mem);
    }
}

#[test]
fn an_untouched_stream_of_the_same_writer_is_reused_without_reading() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let mut mem = pseudo_random(40 * 65536, 12);
    mem[3 * 65536..9 * 65536].fill(0);
    let mut w = store.writer().unwrap();
    let first = put_mem(&mut w, &mem);
    let after_first = w.stats().clone();
    let unreadable = |_: u64, _: &mut [u8]| -> std::io::Result<()> {
        Err(std::io::Error::other(
            "an untouched stream must not be read",
        ))
    };
    let again = w
        .put_memory_incremental(mem.len() as u64, &first, &[], &unreadable)
        .unwrap();
    assert_eq!(again, first);
    let s = w.stats();
    // Counted like a rebuild: every chunk and node, zero and unchanged bytes.
    assert_eq!(s.chunks - after_first.chunks, after_first.chunks);
    assert_eq!(
        s.logical_bytes - after_first.logical_bytes,
        mem.len() as u64
    );
    assert_eq!(s.zero_bytes - after_first.zero_bytes, 6 * 65536);
    assert_eq!(
        s.unchanged_bytes - after_first.unchanged_bytes,
        mem.len() as u64 - 6 * 65536
    );
    // A change, or a different length, is not a shortcut.
    assert!(w
        .put_memory_incremental(mem.len() as u64, &first, &[(0, 1)], &unreadable)
        .is_err());
}

#[test]
fn incremental_writes_across_sessions_equal_full_writes_for_many_node_groups() {
    for format in [1, 3] {
        let dir = tempfile::tempdir().unwrap();
        small_store(dir.path());
        let store = with_format(dir.path(), format);
        // 250 chunks and a half: 8 level-1 groups of 32 (the last partial), with a zero run
        // spanning groups 2-3.
        let mut mem = pseudo_random(250 * 65536 + 30_000, 13);
        mem[70 * 65536..120 * 65536].fill(0);
        let mut prev = commit_one(&store, &mem);
        for (round, changes) in [
            vec![(5u64 * 65536, 4096u64), (200 * 65536 + 8192, 100)],
            vec![],
            vec![(100 * 65536, 65536), (250 * 65536, 10)],
            vec![(0, 1)],
            vec![(5u64 * 65536 + 8192, 4096u64), (5u64 * 65536 + 40960, 8192)],
            vec![(5u64 * 65536 + 20480, 4096u64), (80 * 65536 + 4096, 4096)],
        ]
        .into_iter()
        .enumerate()
        {
            for &(o, l) in &changes {
                let o = o as usize;
                let fresh = pseudo_random(l as usize, 100 + round as u64);
                mem[o..o + l as usize].copy_from_slice(&fresh);
            }
            let src = |off: u64, buf: &mut [u8]| {
                let o = off as usize;
                buf.copy_from_slice(&mem[o..o + buf.len()]);
                Ok(())
            };
            let mut w = store.writer().unwrap();
            let inc = w
                .put_memory_incremental(mem.len() as u64, &prev, &changes, &src)
                .unwrap();
            if format == 1 {
                let full = w.put_memory(mem.len() as u64, &src).unwrap();
                assert_eq!(inc, full, "round {round}");
            }
            let root = w.put_tree(vec![("m".into(), inc.clone())]).unwrap();
            let stats = w.finish().unwrap();
            let id = store.commit("j", &root, info(stats)).unwrap();
            let fresh = Store::open(dir.path()).unwrap();
            let r = fresh.reader(id).unwrap();
            assert_eq!(
                r.read_all(&inc).unwrap(),
                mem,
                "format {format} round {round}"
            );
            // The chunk-by-chunk path (restores) gives the same bytes.
            let got = std::sync::Mutex::new(vec![0u8; mem.len()]);
            r.for_each_chunk(&inc, &|off, data| {
                if let Some(d) = data {
                    let o = off as usize;
                    got.lock().unwrap()[o..o + d.len()].copy_from_slice(d);
                }
                Ok(())
            })
            .unwrap();
            assert_eq!(
                got.into_inner().unwrap(),
                mem,
                "format {format} round {round}"
            );
            prev = inc;
        }
    }
}
