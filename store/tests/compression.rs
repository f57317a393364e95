//! The LZ4 codec (`compression: lz4`, store format 2): round trips through every read path,
//! damage is detected, and the config records the choice.

mod common;
use common::put_mem;

use cairn_bench::synth;
use cairn_store::{CheckLevel, Compression, GenerationInfo, InitOptions, Store, StreamRef};

fn python_like(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    synth::fill(&mut v, synth::SynthKind::PythonHeap, seed);
    v
}

fn lz4_store(dir: &std::path::Path) -> Store {
    Store::init(
        dir,
        InitOptions {
            compression: Compression::Lz4,
            ..InitOptions::default()
        },
    )
    .unwrap()
}

fn commit(store: &Store, mem: &[u8], file: &[u8]) -> (StreamRef, StreamRef) {
    let mut w = store.writer().unwrap();
    let m = put_mem(&mut w, mem);
    let mut r = file;
    let f = w.put_bytes(&mut r).unwrap();
    let root = w
        .put_tree(vec![("m".into(), m.clone()), ("f".into(), f.clone())])
        .unwrap();
    let stats = w.finish().unwrap();
    let info = GenerationInfo {
        kind: "test".into(),
        stats,
        ..Default::default()
    };
    store.commit("j", &root, info).unwrap();
    (m, f)
}

#[test]
fn lz4_store_round_trips_and_compresses() {
    let dir = tempfile::tempdir().unwrap();
    let store = lz4_store(dir.path());
    assert_eq!(store.config().compression, Compression::Lz4);
    assert_eq!(store.config().format, 3);
    let mem = python_like(8 << 20, 1);
    let file = python_like(3 << 20, 2);
    let (m, f) = commit(&store, &mem, &file);
    let t = store.totals().unwrap();
    assert!(
        t.stored_bytes * 3 < t.raw_bytes * 2,
        "python-like data compressed by LZ4: {t:?}"
    );
    // A fresh handle reads it back through the random-access, whole-stream and extent paths.
    let fresh = Store::open(dir.path()).unwrap();
    assert_eq!(fresh.config().compression, Compression::Lz4);
    let (g, skipped) = fresh.latest_consistent("j").unwrap();
    assert!(skipped.is_empty());
    let r = fresh.reader(g.id).unwrap();
    assert_eq!(r.read_all(&m).unwrap(), mem);
    assert_eq!(r.read_all(&f).unwrap(), file);
    let mut piece = vec![0u8; 100_000];
    r.read_at(&m, 5_000_000, &mut piece).unwrap();
    assert_eq!(piece, mem[5_000_000..5_100_000]);
    let out = std::sync::Mutex::new(vec![0u8; mem.len()]);
    r.for_each_chunk(&m, &|off, data| {
        if let Some(d) = data {
            let o = off as usize;
            out.lock().unwrap()[o..o + d.len()].copy_from_slice(d);
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(out.into_inner().unwrap(), mem);
    assert!(fresh.check_generation(&g, CheckLevel::Data).is_ok());
}

#[test]
fn a_damaged_lz4_chunk_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = lz4_store(dir.path());
    let mem = python_like(4 << 20, 3);
    commit(&store, &mem, b"");
    // Flip a byte in the middle of the (only) pack's payloads.
    let pack = store.pack_files_on_disk().unwrap().remove(0);
    let p = dir.path().join("packs").join(format!("{pack}.pack"));
    let mut bytes = std::fs::read(&p).unwrap();
    let mid = bytes.len() / 3;
    bytes[mid] ^= 0x55;
    std::fs::write(&p, bytes).unwrap();
    let fresh = Store::open(dir.path()).unwrap();
    let err = fresh
        .latest_consistent("j")
        .expect_err("damage must be found");
    let msg = err.to_string();
    assert!(
        msg.contains("cannot decompress") || msg.contains("does not match its hash"),
        "{msg}"
    );
}

#[test]
fn zstd_remains_the_default_and_new_stores_are_format_3() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(dir.path(), InitOptions::default()).unwrap();
    assert_eq!(store.config().compression, Compression::Zstd);
    assert_eq!(store.config().format, 3);
    let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    assert!(text.contains("\"compression\": \"zstd\""), "{text}");
}
