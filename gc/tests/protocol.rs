//! The two-phase protocol, step by step: a checkpoint that deduplicated against a chunk
//! before gc condemned its pack still finds it after the pack is deleted (re-mark and copy
//! before delete), and a checkpoint that starts after the condemnation stores its own copy
//! (the rescue).

use std::time::Duration;

use cairn_gc::SweepOptions;
use cairn_store::{CheckLevel, GenerationInfo, InitOptions, Store, StreamRef, Writer};

fn commit(store: &Store, job: &str, w: Writer, blob: StreamRef) -> cairn_store::GenerationId {
    let mut w = w;
    let root = w.put_tree(vec![("x".into(), blob)]).expect("tree");
    let stats = w.finish().expect("finish");
    store
        .commit(
            job,
            &root,
            GenerationInfo {
                kind: "files".into(),
                stats,
                ..Default::default()
            },
        )
        .expect("commit")
}

fn data(seed: u8) -> Vec<u8> {
    (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed)
        .collect()
}

#[test]
fn dedup_against_a_condemned_chunk_is_safe_both_before_and_after_condemnation() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::init(&tmp.path().join("s"), InitOptions::default()).expect("init");
    let x = data(1);
    // Generation 1 holds X; then it is forgotten, so X is garbage.
    let mut w = store.writer().expect("writer");
    let b = w.put_blob(&x).expect("blob");
    let g1 = commit(&store, "a", w, b);
    assert_eq!(
        store.maintenance().forget_generations(&[g1]).unwrap(),
        vec![g1]
    );

    let grace = Duration::from_millis(600);
    let opts = SweepOptions {
        dry_run: false,
        max_unused_percent: 50.0,
        grace,
    };
    // A checkpoint starts and deduplicates against X (its pack is not condemned yet).
    let mut early = store.writer().expect("writer");
    let early_blob = early.put_blob(&x).expect("blob");
    assert_eq!(early.stats().new_chunks, 0, "deduplicated against X");

    std::thread::sleep(grace);
    let r = cairn_gc::sweep(&store, &opts).expect("sweep");
    assert_eq!(r.condemned.len(), 1, "{r:?}");
    assert_eq!(r.deleted.len(), 0);

    // A checkpoint that starts now must not deduplicate against the condemned pack.
    let mut late = store.writer().expect("writer");
    let late_blob = late.put_blob(&x).expect("blob");
    assert!(late.stats().new_chunks > 0, "rescued: stored its own copy");
    let g_late = commit(&store, "late", late, late_blob);
    // The early checkpoint commits within the grace period.
    let g_early = commit(&store, "early", early, early_blob);

    std::thread::sleep(grace);
    let r = cairn_gc::sweep(&store, &opts).expect("sweep");
    assert_eq!(r.deleted.len(), 1, "the condemned pack is deleted: {r:?}");
    assert!(store.maintenance().condemned_names().unwrap().is_empty());
    for g in [g_early, g_late] {
        let gen = store.generation(g).unwrap();
        store.check_generation(&gen, CheckLevel::Data).unwrap();
        let rd = store.reader(g).unwrap();
        assert_eq!(rd.read_all(&rd.lookup("x").unwrap()).unwrap(), x);
    }
    assert!(store.verify(true).unwrap().ok);
}

#[test]
fn without_a_grace_period_an_in_flight_checkpoint_is_refused_not_corrupted() {
    // Grace 0 is documented as unsafe while checkpoints run; the store still never commits
    // a generation whose chunks are gone: the commit is refused.
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::init(&tmp.path().join("s"), InitOptions::default()).expect("init");
    let x = data(2);
    let mut w = store.writer().expect("writer");
    let b = w.put_blob(&x).expect("blob");
    let g1 = commit(&store, "a", w, b);
    store.maintenance().forget_generations(&[g1]).unwrap();
    let mut early = store.writer().expect("writer");
    let blob = early.put_blob(&x).expect("blob");
    let r = cairn_gc::sweep(
        &store,
        &SweepOptions {
            dry_run: false,
            max_unused_percent: 50.0,
            grace: Duration::ZERO,
        },
    )
    .unwrap();
    assert_eq!(r.deleted.len(), 1);
    let root = early.put_tree(vec![("x".into(), blob)]).unwrap();
    let stats = early.finish().unwrap();
    let e = store
        .commit(
            "early",
            &root,
            GenerationInfo {
                kind: "files".into(),
                stats,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("cannot commit"), "{e}");
}

#[test]
fn newest_consistent_and_fallback_survive_any_rule_even_when_the_newest_is_damaged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::init(&tmp.path().join("s"), InitOptions::default()).expect("init");
    let mut ids = Vec::new();
    for s in 1..=5u8 {
        let mut w = store.writer().expect("writer");
        let b = w.put_blob(&data(s)).expect("blob");
        ids.push(commit(&store, "j", w, b));
    }
    // Damage the newest: its pack (nodes and data) disappears. A fresh handle, as the
    // current one may still hold the unlinked pack open.
    let newest = store.generation(ids[4]).unwrap();
    let reach = store.reach(&newest.root);
    assert!(reach.all_chunks().count() > 0);
    let last_pack = store
        .pack_files_on_disk()
        .unwrap()
        .into_iter()
        .find(|p| {
            store
                .pack_entries(p)
                .unwrap()
                .iter()
                .any(|e| e.id == newest.root.root)
        })
        .expect("the newest generation's pack");
    std::fs::remove_file(store.path().join("packs").join(format!("{last_pack}.pack"))).unwrap();
    let store = Store::open(store.path()).expect("open");
    assert!(store
        .check_generation(&newest, CheckLevel::Structure)
        .is_err());

    // keep-last 0: only the protections keep anything; the damaged newest is dropped, the
    // newest consistent (4) and its fallback (3) are kept.
    let r = cairn_gc::prune(
        &store,
        &cairn_gc::PruneOptions {
            job: None,
            policy: cairn_gc::Policy::last(0),
            dry_run: false,
        },
    )
    .expect("prune");
    let kept: Vec<_> = store
        .generations(None)
        .unwrap()
        .iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(kept, vec![ids[2], ids[3]], "{:?}", r.decisions);
    let why: Vec<String> = r
        .decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.describe())
        .collect();
    assert_eq!(why, vec!["keep (newest-consistent)", "keep (fallback)"]);
    // gc afterwards reclaims the rest and both stay restorable; the newest consistent is
    // what a restart picks.
    cairn_gc::sweep(
        &store,
        &SweepOptions {
            dry_run: false,
            max_unused_percent: 0.0,
            grace: Duration::ZERO,
        },
    )
    .expect("sweep");
    for (i, g) in [(3u8, ids[2]), (4, ids[3])] {
        let rd = store.reader(g).unwrap();
        assert_eq!(rd.read_all(&rd.lookup("x").unwrap()).unwrap(), data(i));
    }
    assert_eq!(store.latest_consistent("j").unwrap().0.id, ids[3]);
    // Prune again with the same rule: the two protected generations are never dropped.
    cairn_gc::prune(
        &store,
        &cairn_gc::PruneOptions {
            job: Some("j".into()),
            policy: cairn_gc::Policy::last(0),
            dry_run: false,
        },
    )
    .expect("prune");
    let kept: Vec<_> = store
        .generations(None)
        .unwrap()
        .iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(kept, vec![ids[2], ids[3]]);
    // The only damage verify reports is the pack removed by hand (still indexed); every
    // remaining generation reads back.
    let v = store.verify(true).unwrap();
    assert!(v.generations.iter().all(|g| g.ok), "{v:?}");
    let damaged: Vec<&str> = v.damaged_packs.iter().map(|d| d.pack.as_str()).collect();
    assert_eq!(damaged, vec![last_pack.as_str()], "{v:?}");
}

#[test]
fn a_rescued_copy_sealed_before_the_delete_and_committed_after_it_stays_indexed() {
    // A writer that starts after a pack P was condemned stores its own copy of P's chunks
    // in its pack Q; Q's index rows are ignored because rows for those chunks (naming P)
    // exist. gc then deletes P before the writer commits: the chunks are not live at the
    // mark, so their rows must move to Q (a young pack), not vanish.
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::init(&tmp.path().join("s"), InitOptions::default()).expect("init");
    let x = data(3);
    let mut w = store.writer().expect("writer");
    let b = w.put_blob(&x).expect("blob");
    let g1 = commit(&store, "a", w, b);
    let p = store.pack_files_on_disk().unwrap();
    assert_eq!(p.len(), 1);
    store.maintenance().forget_generations(&[g1]).unwrap();
    assert_eq!(store.maintenance().condemn_packs(&p).unwrap(), p);

    // The late writer begins after the condemnation: it rescues, seals and indexes Q.
    let writer_start = cairn_store::now_ms();
    let mut late = store.writer().expect("writer");
    let blob = late.put_blob(&x).expect("blob");
    assert!(late.stats().new_chunks > 0, "rescued: stored its own copy");
    let root = late
        .put_tree(vec![("x".into(), blob.clone())])
        .expect("tree");
    let stats = late.finish().expect("finish");
    let rd_ids: Vec<_> = store.reach(&root).all_chunks().copied().collect();
    let idx = store.maintenance().indexed_packs(&rd_ids).unwrap();
    assert!(
        idx.iter().any(|q| q.as_deref() == Some(p[0].as_str())),
        "some rows still name the condemned pack: {idx:?}"
    );

    // gc deletes P. The mark starts after the condemnation plus the grace period; by
    // assumption G the late writer began less than a grace period before it, so Q is young
    // (young_after = the mark's start minus the grace period, here a second before the
    // writer began: file times come from a coarse kernel clock).
    let live = store.maintenance().mark_live().expect("mark");
    assert_eq!(live.generations, 0);
    let mut set = store
        .maintenance()
        .scan_packs(&live, writer_start.saturating_sub(1000))
        .expect("scan");
    store
        .maintenance()
        .delete_condemned_packs(&mut set, &p, &live)
        .expect("delete");
    assert!(!store.pack_files_on_disk().unwrap().contains(&p[0]));

    // The late checkpoint commits after the delete, and reads back exactly.
    let g = store
        .commit(
            "late",
            &root,
            GenerationInfo {
                kind: "files".into(),
                stats,
                ..Default::default()
            },
        )
        .expect("commit after gc deleted the condemned pack");
    let rd = store.reader(g).unwrap();
    assert_eq!(rd.read_all(&rd.lookup("x").unwrap()).unwrap(), x);
    assert!(store.verify(true).unwrap().ok);
}
