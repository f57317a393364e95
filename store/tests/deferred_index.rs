//! Deferred indexing (`Writer::finish_deferred`): a generation committed
//! before its packs' index rows are written is durable and restorable by anyone, and applying
//! the rows later gives the same index as indexing them at once.

mod common;
use common::{pseudo_random, put_mem};

use cairn_store::{GenerationInfo, InitOptions, Store, StreamRef};

/// Writes `mem` with deferred indexing into a store with 1 MiB packs (several packs) and
/// commits it; returns the store, the stream and the pending rows.
fn write_deferred(
    dir: &std::path::Path,
    mem: &[u8],
) -> (Store, StreamRef, cairn_store::PendingIndex) {
    let store = Store::init(
        dir,
        InitOptions {
            pack_target_size: 1024 * 1024,
            ..InitOptions::default()
        },
    )
    .unwrap();
    let mut w = store.writer().unwrap();
    let s = put_mem(&mut w, mem);
    let root = w.put_tree(vec![("m".into(), s.clone())]).unwrap();
    let (stats, pending) = w.finish_deferred().unwrap();
    assert!(stats.packs >= 3, "{stats:?}");
    assert_eq!(pending.packs() as u64, stats.packs);
    let info = GenerationInfo {
        kind: "test".into(),
        stats,
        ..Default::default()
    };
    store.commit("j", &root, info).unwrap();
    (store, s, pending)
}

#[test]
fn a_generation_whose_rows_were_never_written_is_restorable_by_a_fresh_handle() {
    let dir = tempfile::tempdir().unwrap();
    let mem = pseudo_random(4 << 20, 1);
    let (store, s, pending) = write_deferred(dir.path(), &mem);
    assert_eq!(store.totals().unwrap().chunks, 0, "nothing indexed yet");
    drop(pending);
    let fresh = Store::open(dir.path()).unwrap();
    let (g, skipped) = fresh.latest_consistent("j").unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(fresh.reader(g.id).unwrap().read_all(&s).unwrap(), mem);
}

#[test]
fn applied_rows_index_every_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let mem = pseudo_random(4 << 20, 2);
    let (store, _s, pending) = write_deferred(dir.path(), &mem);
    pending.apply().unwrap();
    let t = store.totals().unwrap();
    // 4 MiB of incompressible data in 32 KiB chunks, plus nodes and the tree.
    assert!(t.chunks >= 128, "{t:?}");
    assert!(t.packs >= 3, "{t:?}");
    // The same numbers as a store indexed from scratch.
    let re = Store::reindex(dir.path()).unwrap();
    assert_eq!(re.chunks, t.chunks);
    assert_eq!(re.packs, t.packs);
}
