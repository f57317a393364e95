//! `GenerationReader::for_each_chunk` reads chunks in coalesced extents (O_DIRECT from the
//! disk, through the page cache where the pages are cached or O_DIRECT is refused): the bytes
//! are those written, across several packs and with gaps, and a damaged chunk in the middle
//! of an extent is reported as damage.

use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;

use cairn_store::{
    Codec, GenerationId, GenerationInfo, InitOptions, ReadStats, Store, StoreError, StreamRef,
};

const CHUNK: usize = 32 << 10;
const LEN: usize = 8 << 20;

/// 8 MiB: random chunks, compressible chunks (every 5th) and all-zero chunks (every 7th).
fn image(seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; LEN];
    cairn_bench::synth::fill(&mut v, cairn_bench::synth::SynthKind::Random, seed);
    for (k, c) in v.chunks_mut(CHUNK).enumerate() {
        if k % 7 == 3 {
            c.fill(0);
        } else if k % 5 == 1 {
            for (i, b) in c.iter_mut().enumerate() {
                *b = (i / 100) as u8;
            }
        }
    }
    v
}

fn put_mem(store: &Store, job: &str, data: &[u8]) -> GenerationId {
    let mut w = store.writer().unwrap();
    let m = w
        .put_memory(data.len() as u64, &|off, buf: &mut [u8]| {
            let o = off as usize;
            buf.copy_from_slice(&data[o..o + buf.len()]);
            Ok(())
        })
        .unwrap();
    let root = w.put_tree(vec![("m".into(), m)]).unwrap();
    let stats = w.finish().unwrap();
    let info = GenerationInfo {
        kind: "test".into(),
        stats,
        ..Default::default()
    };
    store.commit(job, &root, info).unwrap()
}

/// A store in `dir` with 1 MiB packs: generation 1 holds `image(1)`, generation 2 the same
/// with every 9th chunk of the second half rewritten (new chunks in new packs, gaps in the
/// old ones).
fn setup(dir: &Path) -> (Store, Vec<u8>, GenerationId, GenerationId) {
    let opts = InitOptions {
        pack_target_size: 1 << 20,
        ..Default::default()
    };
    let store = Store::init(&dir.join("s"), opts).unwrap();
    let a = image(1);
    let g1 = put_mem(&store, "j", &a);
    let mut b = a.clone();
    let fresh = image(2);
    for k in (LEN / CHUNK / 2..LEN / CHUNK).step_by(9) {
        b[k * CHUNK..(k + 1) * CHUNK].copy_from_slice(&fresh[k * CHUNK..(k + 1) * CHUNK]);
    }
    let g2 = put_mem(&store, "j", &b);
    assert!(store.pack_files_on_disk().unwrap().len() >= 6);
    (store, b, g1, g2)
}

/// The stream "m" of generation `g` through `for_each_chunk`, and how it was read.
fn read(store: &Store, g: GenerationId) -> (Result<Vec<u8>, StoreError>, ReadStats) {
    let r = store.reader(g).unwrap();
    let s: StreamRef = r.lookup("m").unwrap();
    let out = Mutex::new(vec![0u8; s.len as usize]);
    let some = Mutex::new(Vec::new());
    let res = r.for_each_chunk(&s, &|off, data| {
        if let Some(d) = data {
            let o = off as usize;
            out.lock().unwrap()[o..o + d.len()].copy_from_slice(d);
            some.lock().unwrap().push(off);
        }
        Ok(())
    });
    let stats = r.read_stats();
    let mut some = some.into_inner().unwrap();
    some.sort_unstable();
    let n = some.len();
    some.dedup();
    assert_eq!(some.len(), n, "a chunk was handed out twice");
    (res.map(|()| out.into_inner().unwrap()), stats)
}

fn direct_io_works(dir: &Path) -> bool {
    let p = dir.join("probe");
    std::fs::write(&p, vec![1u8; 8192]).unwrap();
    let ok = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&p)
        .is_ok();
    std::fs::remove_file(&p).unwrap();
    ok
}

#[test]
fn multi_pack_generation_reads_back_through_extents() {
    let tmp =
        tempfile::tempdir_in(std::env::var_os("CAIRN_TEST_DISK").unwrap_or("/var/tmp".into()))
            .unwrap();
    let (store, b, _, g2) = setup(tmp.path());
    let (got, stats) = read(&store, g2);
    assert!(got.unwrap() == b, "bytes differ");
    let nonzero = b
        .chunks(CHUNK)
        .filter(|c| c.iter().any(|&x| x != 0))
        .count() as u64;
    assert_eq!(stats.chunks, nonzero);
    assert_eq!(stats.chunks_reread, 0);
    let extents = stats.direct_extents + stats.buffered_extents;
    // Several packs, gaps where generation 2 rewrote chunks: coalesced all the same.
    assert!(extents >= 6 && extents * 8 < nonzero, "{stats:?}");
    // The packs were written with O_DIRECT and are not in the page cache: read directly.
    if direct_io_works(tmp.path()) {
        assert!(stats.direct_extents > 0, "{stats:?}");
    }
}

#[test]
fn damaged_chunk_inside_an_extent_is_damage() {
    let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
    let (store, b, g1, g2) = setup(tmp.path());
    // The 5th chunk of generation 1's first pack: raw, neither first nor last of its extent,
    // and still used by generation 2.
    let packs = store.pack_files_on_disk().unwrap();
    let (pack, entries) = packs
        .iter()
        .map(|p| (p.clone(), store.pack_entries(p).unwrap()))
        .max_by_key(|(_, e)| e.len())
        .unwrap();
    let e = entries
        .iter()
        .skip(4)
        .find(|e| e.codec == Codec::Raw)
        .unwrap()
        .clone();
    assert!(b.chunks(CHUNK).any(|c| cairn_store::ChunkId::of(c) == e.id));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(store.path().join("packs").join(format!("{pack}.pack")))
        .unwrap();
    let at = e.offset + u64::from(e.stored_len) / 2;
    let mut byte = [0u8; 1];
    f.read_exact_at(&mut byte, at).unwrap();
    f.write_all_at(&[byte[0] ^ 0x40], at).unwrap();
    f.sync_all().unwrap();
    drop(f);
    for g in [g1, g2] {
        let (got, stats) = read(&store, g);
        match got {
            Err(StoreError::Corrupt(m)) => {
                assert!(m.contains(&e.id.to_string()), "{m}")
            }
            other => panic!("damage not reported: {:?}", other.map(|v| v.len())),
        }
        // Found in its extent, read again alone, still bad.
        assert!(stats.chunks_reread >= 1, "{stats:?}");
    }
}

/// tmpfs: its pages are memory, so the extents are read through the page cache (cachestat
/// says they are cached), whatever tmpfs says to O_DIRECT.
#[test]
fn store_on_tmpfs_reads_through_the_page_cache() {
    if !Path::new("/dev/shm").is_dir() {
        panic!("/dev/shm is not there");
    }
    let tmp = tempfile::tempdir_in("/dev/shm").unwrap();
    let (store, b, _, g2) = setup(tmp.path());
    let (got, stats) = read(&store, g2);
    assert!(got.unwrap() == b, "bytes differ");
    assert_eq!(stats.direct_extents, 0, "{stats:?}");
    assert!(stats.buffered_extents > 0, "{stats:?}");
    assert_eq!(stats.chunks_reread, 0);
}

/// A chunk missing from every pack (its pack deleted, the index rebuilt) is reported as
/// missing, not read as anything, and the readers and the planner stop.
#[test]
fn missing_chunk_stops_the_read() {
    let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
    let (store, _, _, g2) = setup(tmp.path());
    let path = store.path().to_path_buf();
    let packs = store.pack_files_on_disk().unwrap();
    drop(store);
    std::fs::remove_file(path.join("packs").join(format!("{}.pack", packs[2]))).unwrap();
    Store::reindex(&path).unwrap();
    let store = Store::open(&path).unwrap();
    let (got, _) = read(&store, g2);
    match got {
        Err(StoreError::MissingChunk(_)) => {}
        other => panic!("missing chunk not reported: {:?}", other.map(|v| v.len())),
    }
}
