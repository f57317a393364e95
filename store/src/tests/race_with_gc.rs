//! A reader that looked chunks up before gc moved them and deleted their pack still
//! reads them (docs/gc.md, "Readers"); real damage is still reported.

use crate::config::InitOptions;
use crate::generation::GenerationInfo;
use crate::id::ChunkId;
use crate::store::Store;

fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed)
        .collect()
}

/// A store with one generation holding `x`, whose only pack also holds garbage.
fn setup(dir: &std::path::Path, x: &[u8]) -> (Store, crate::generation::GenerationId) {
    let store = Store::init(&dir.join("s"), InitOptions::default()).expect("init");
    let mut w = store.writer().expect("writer");
    let _garbage = w.put_blob(&data(9, 600_000)).expect("garbage");
    let b = w.put_blob(x).expect("blob");
    let root = w.put_tree(vec![("x".into(), b)]).expect("tree");
    let stats = w.finish().expect("finish");
    let info = GenerationInfo {
        kind: "files".into(),
        stats,
        ..Default::default()
    };
    let g = store.commit("a", &root, info).expect("commit");
    assert_eq!(store.pack_files_on_disk().unwrap().len(), 1);
    (store, g)
}

/// What `cairn gc --grace 0 --max-unused 10` does to the store's only pack: copy its
/// live chunks into a new pack, condemn it, mark again, delete it.
fn repack_and_delete(store: &Store) -> String {
    let live = store.maintenance().mark_live().expect("mark");
    let mut set = store
        .maintenance()
        .scan_packs(&live, live.started_ms)
        .expect("scan");
    let old = set.packs()[0].clone();
    let pairs: Vec<(String, crate::pack::PackEntry)> = old
        .live
        .iter()
        .map(|e| (old.name.clone(), e.clone()))
        .collect();
    assert!(!pairs.is_empty() && (pairs.len() as u64) < old.chunk_count);
    store
        .maintenance()
        .copy_chunks(&mut set, &pairs)
        .expect("copy");
    assert_eq!(
        store
            .maintenance()
            .condemn_packs(std::slice::from_ref(&old.name))
            .unwrap()
            .len(),
        1
    );
    let live = store.maintenance().mark_live().expect("mark");
    let mut set = store
        .maintenance()
        .scan_packs(&live, live.started_ms)
        .expect("scan");
    store
        .maintenance()
        .delete_condemned_packs(&mut set, std::slice::from_ref(&old.name), &live)
        .expect("delete");
    assert!(!store.pack_files_on_disk().unwrap().contains(&old.name));
    old.name
}

#[test]
fn verify_racing_gc_does_not_call_a_collected_pack_damaged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let x = data(3, 700_000);
    let (store, _g) = setup(tmp.path(), &x);
    // verify lists the packs, then gc repacks and deletes the listed one.
    let listing = store.pack_files_on_disk().expect("listing");
    let old = repack_and_delete(&store);
    assert!(listing.contains(&old));
    for read_data in [false, true] {
        let report = store
            .dir
            .verify_listed(
                listing.clone(),
                read_data,
                &std::sync::atomic::AtomicU64::new(0),
            )
            .expect("verify");
        assert!(report.ok, "read_data {read_data}: {report:?}");
    }
    // A pack that disappears while still indexed is damage.
    let live = store.pack_files_on_disk().expect("listing");
    std::fs::remove_file(store.dir.pack_path(&live[0])).expect("rm");
    let report = store
        .dir
        .verify_listed(live, false, &std::sync::atomic::AtomicU64::new(0))
        .expect("verify");
    assert!(!report.ok && report.damaged_packs.len() == 1, "{report:?}");
}

#[test]
fn lookups_made_before_gc_moved_the_chunks_still_read_and_check() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let x = data(1, 700_000);
    let (store, g) = setup(tmp.path(), &x);
    // Another process (its own handle, no pack opened yet) opens a reader and looks up
    // every data chunk, all before gc runs.
    let other = Store::open(store.path()).expect("open");
    let reader = other.reader(g).expect("reader");
    let leaves: Vec<ChunkId> = store
        .reach(&store.generation(g).unwrap().root)
        .leaves
        .into_iter()
        .collect();
    let stale = other.dir.lookup_leaves(&leaves).expect("locate");
    assert!(stale.iter().all(|l| l.is_some()));

    let old = repack_and_delete(&store);

    let mut read_once_failed = 0;
    for loc in stale.iter().flatten() {
        assert_eq!(loc.0, old, "looked up in the old pack");
        let mut buf = vec![0u8; loc.1.raw_len as usize];
        // Without the re-lookup the read fails: the pack is gone.
        if other.dir.read_loc_once(loc, &mut buf).is_err() {
            read_once_failed += 1;
        }
        // With it, the chunk is read from its new pack and verified.
        let mut buf2 = vec![0u8; loc.1.raw_len as usize];
        other
            .dir
            .read_loc_into(loc, &mut buf2)
            .expect("read after the move");
        assert_eq!(ChunkId::of(&buf2), loc.1.id);
    }
    assert_eq!(read_once_failed, stale.len());
    // The structure check of latest_consistent / prune's protections, given the stale
    // locations, finds no damage.
    let problems = other.dir.check_locations(&leaves, stale).expect("check");
    assert!(problems.is_empty(), "{problems:?}");
    // The reader opened before gc reads the exact bytes; the generation checks clean.
    let s = reader.lookup("x").expect("lookup");
    assert_eq!(reader.read_all(&s).unwrap(), x);
    let gen = other.generation(g).unwrap();
    other
        .check_generation(&gen, crate::check::CheckLevel::Data)
        .expect("consistent");
    assert_eq!(other.latest_consistent("a").unwrap().0.id, g);
}

#[test]
fn a_pack_really_missing_is_still_reported() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let x = data(2, 700_000);
    let (store, g) = setup(tmp.path(), &x);
    let gen = store.generation(g).unwrap();
    let leaves: Vec<ChunkId> = store.reach(&gen.root).leaves.into_iter().collect();
    let locs = store.dir.lookup_leaves(&leaves).expect("locate");
    let pack = store.pack_files_on_disk().unwrap().remove(0);
    std::fs::remove_file(store.dir.pack_dir().join(format!("{pack}.pack"))).unwrap();
    // A fresh handle: `store` still holds the unlinked pack open.
    let store = Store::open(store.path()).expect("open");
    let loc = locs[0].clone().expect("indexed");
    let mut buf = vec![0u8; loc.1.raw_len as usize];
    let e = store.dir.read_loc_into(&loc, &mut buf).unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    let problems = store.dir.check_locations(&leaves, locs).expect("check");
    assert_eq!(problems.len(), leaves.len(), "{problems:?}");
    assert!(store.latest_consistent("a").is_err());
}
