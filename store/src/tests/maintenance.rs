//! The pack scan of a sweep holds the live chunks, not everything stored.

use crate::config::InitOptions;
use crate::fsutil::now_ms;
use crate::generation::GenerationInfo;
use crate::store::Store;

#[test]
fn a_scan_holds_the_live_chunks_not_everything_stored() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::init(
        &tmp.path().join("s"),
        InitOptions {
            memory_chunk_size: 4096,
            ..InitOptions::default()
        },
    )
    .expect("init");
    let mut ids = Vec::new();
    for g in 0..10u32 {
        let data: Vec<u8> = (0..400_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ g as u8)
            .collect();
        let mut w = store.writer().expect("writer");
        let b = w.put_blob(&data).expect("blob");
        let root = w.put_tree(vec![("x".into(), b)]).expect("tree");
        let stats = w.finish().expect("finish");
        let info = GenerationInfo {
            kind: "files".into(),
            stats,
            ..Default::default()
        };
        ids.push(store.commit("j", &root, info).expect("commit"));
    }
    store
        .maintenance()
        .forget_generations(&ids[..9])
        .expect("forget");
    let live = store.maintenance().mark_live().expect("mark");
    let set = store
        .maintenance()
        .scan_packs(&live, now_ms())
        .expect("scan");
    let stored: u64 = set.packs().iter().map(|p| p.chunk_count).sum();
    let n = live.chunks.len();
    assert!(stored as usize > 8 * n, "{stored} stored, {n} live");
    // One live list entry and one alive copy per live chunk, nothing for dead ones.
    assert_eq!(set.held_entries(), 2 * n);
    // Packs sealed after the threshold are young: all their chunks are held.
    let young = store.maintenance().scan_packs(&live, 0).expect("scan");
    assert_eq!(young.held_entries(), n + stored as usize);
}
