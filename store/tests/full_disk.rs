//! A store on a file system that fills up: every write fails cleanly with an error (never a
//! panic), and the generations committed before stay sound.

use cairn_store::{GenerationInfo, InitOptions, Store};
use cairn_testkit::{rand_bytes as random, SmallFs};

fn save(store: &Store, job: &str, data: &[u8]) -> Result<(), cairn_store::StoreError> {
    let mut w = store.writer()?;
    let blob = w.put_blob(data)?;
    let root = w.put_tree(vec![("data".into(), blob)])?;
    let stats = w.finish()?;
    let info = GenerationInfo {
        kind: "files".into(),
        stats,
        ..Default::default()
    };
    store.commit(job, &root, info).map(drop)
}

#[test]
fn a_full_file_system_fails_the_write_and_keeps_what_was_committed() {
    let Some(fs) = SmallFs::mount(48) else {
        eprintln!("needs root to mount a small file system; runs in CI as root");
        return;
    };
    let store = Store::init(&fs.path().join("store"), InitOptions::default()).unwrap();
    let first = random(4 << 20, 1);
    save(&store, "small", &first).expect("a small generation fits");
    // 96 MiB of incompressible data into what is left of 48 MiB: the write fails.
    for attempt in 0..3 {
        let err = save(&store, "big", &random(96 << 20, 7 + attempt))
            .expect_err("96 MiB cannot fit in 48 MiB");
        let text = err.to_string();
        assert!(
            text.contains("No space left") || text.contains("stopped"),
            "attempt {attempt}: {text}"
        );
    }
    // What was committed before is whole.
    let report = store.verify(true).expect("verify");
    assert!(report.ok, "{report:?}");
    let g = store.generations(Some("small")).unwrap();
    assert_eq!(g.len(), 1);
    let r = store.reader(g[0].id).unwrap();
    assert_eq!(r.read_all(&r.lookup("data").unwrap()).unwrap(), first);
    assert!(store.generations(Some("big")).unwrap().is_empty());
}
