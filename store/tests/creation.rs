//! Creating a store: whole or not at all, by any number of processes at once, private to its
//! owner whatever the umask.

use cairn_store::{InitOptions, Store, StoreError};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn many_jobs_starting_at_once_share_one_new_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scratch/user/store");
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..32)
            .map(|_| {
                s.spawn(|| {
                    let st =
                        Store::open_or_init(&path, InitOptions::default()).expect("open_or_init");
                    st.config().store_id.clone()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one store, one id: {ids:?}"
    );
    // Nothing was left beside it by the creations that lost the race.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("scratch/user"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("store")]);
    Store::open(&path).expect("the store opens");
}

#[test]
fn init_of_an_existing_store_is_refused_and_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let first = Store::init(&path, InitOptions::default()).unwrap();
    let err = Store::init(&path, InitOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
    assert_eq!(
        Store::open(&path).unwrap().config().store_id,
        first.config().store_id
    );
}

#[test]
fn an_empty_directory_becomes_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty");
    std::fs::create_dir(&path).unwrap();
    Store::open_or_init(&path, InitOptions::default()).unwrap();
    Store::open(&path).unwrap();
}

#[test]
fn a_directory_with_other_files_is_not_made_a_store() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    let err = Store::open_or_init(dir.path(), InitOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore(_)), "{err}");
    assert!(!dir.path().join("config.json").exists());
}

#[test]
fn a_store_and_everything_in_it_is_private_whatever_the_umask() {
    // The umask is per process: this test runs in a child so no other test sees umask 0.
    if std::env::var_os("CAIRN_UMASK_CHILD").is_none() {
        let st = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_store_and_everything_in_it_is_private_whatever_the_umask",
                "--test-threads=1",
            ])
            .env("CAIRN_UMASK_CHILD", "1")
            .status()
            .unwrap();
        assert!(st.success());
        return;
    }
    // SAFETY: umask only changes this (child) process's file creation mask.
    unsafe { libc::umask(0) };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let st = Store::init(&path, InitOptions::default()).unwrap();
    let mut w = st.writer().unwrap();
    let blob = w.put_blob(&vec![7u8; 100_000]).unwrap();
    let root = w.put_tree(vec![("f".into(), blob)]).unwrap();
    let stats = w.finish().unwrap();
    let info = cairn_store::GenerationInfo {
        kind: "files".into(),
        stats,
        ..Default::default()
    };
    st.commit("job", &root, info).unwrap();
    drop(st);
    let mut seen = 0;
    let mut stack = vec![path.clone()];
    while let Some(p) = stack.pop() {
        let m = mode(&p);
        if p.is_dir() {
            assert_eq!(m, 0o700, "{}", p.display());
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(m, 0o600, "{}", p.display());
        }
        seen += 1;
    }
    assert!(seen > 5, "walked {seen} entries");
}
