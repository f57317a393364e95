//! The recovery walk without a program to rebuild: which generations it tries, in what
//! order, what it passes over and what ends it.

use std::path::Path;

use cairn_engine::layout::{write_root, Meta};
use cairn_engine::recovery::{AgentChoice, Announce, Memory, Recovered, Recovery, RecoveryError};
use cairn_store::{GenerationInfo, InitOptions, Store, StoreError};

/// Commits a checkpoint generation of `job` whose agents' trees are small blobs.
fn commit(store: &Store, job: &str, agents: &[&str]) -> u64 {
    let mut w = store.writer().unwrap();
    let trees = agents
        .iter()
        .map(|a| (a.to_string(), w.put_blob(a.as_bytes()).unwrap()))
        .collect();
    let meta = Meta::new(job, "host", agents.iter().map(|a| a.to_string()).collect());
    let root = write_root(&mut w, &meta, trees).unwrap();
    let stats = w.finish().unwrap();
    let info = GenerationInfo {
        kind: "checkpoint".into(),
        stats,
        ..Default::default()
    };
    store.commit(job, &root, info).unwrap().0
}

fn packs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("packs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pack"))
        .collect();
    v.sort();
    v
}

/// Flips the bytes of the middle of every pack not in `before`.
fn damage_new_packs(dir: &Path, before: &[std::path::PathBuf]) {
    for p in packs(dir).iter().filter(|p| !before.contains(p)) {
        let mut data = std::fs::read(p).unwrap();
        let len = data.len();
        for b in &mut data[len / 8..len * 7 / 8] {
            *b ^= 0x5a;
        }
        std::fs::write(p, data).unwrap();
    }
}

fn recovery<'a>(store: &'a Store, job: &'a str, agent: AgentChoice) -> Recovery<'a> {
    Recovery {
        store,
        job,
        generation: None,
        memory: Memory::Eager,
        agent,
        announce: Announce::Restarting,
    }
}

fn no_hook(_: &cairn_store::Generation, _: &str) -> Result<(), RecoveryError> {
    panic!("nothing is rebuilt in these tests")
}

#[test]
fn a_damaged_newest_generation_is_passed_over_for_the_older_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(&dir.path().join("s"), InitOptions::default()).unwrap();
    let older = commit(&store, "j", &["a", "b"]);
    let before = packs(&dir.path().join("s"));
    commit(&store, "j", &["a", "b", "c"]);
    damage_new_packs(&dir.path().join("s"), &before);
    let store = Store::open(&dir.path().join("s")).unwrap();
    match recovery(&store, "j", AgentChoice::OnlyOrEach).recover(&mut no_hook) {
        Ok(Recovered::Each { generation, agents }) => {
            assert_eq!(generation.id.0, older);
            assert_eq!(agents, ["a", "b"]);
        }
        Ok(Recovered::One(_)) => panic!("a program was rebuilt"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_damaged_named_generation_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(&dir.path().join("s"), InitOptions::default()).unwrap();
    commit(&store, "j", &["a", "b"]);
    let before = packs(&dir.path().join("s"));
    let newest = commit(&store, "j", &["a", "b", "c"]);
    damage_new_packs(&dir.path().join("s"), &before);
    let store = Store::open(&dir.path().join("s")).unwrap();
    let mut r = recovery(&store, "j", AgentChoice::OnlyOrEach);
    r.generation = Some(newest);
    match r.recover(&mut no_hook) {
        Err(RecoveryError::Usage(msg)) => assert!(
            msg.contains(&format!("--generation {newest} names it")),
            "{msg}"
        ),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a damaged named generation was used"),
    }
}

#[test]
fn unknown_jobs_and_several_agents_of_a_solo_job_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(&dir.path().join("s"), InitOptions::default()).unwrap();
    commit(&store, "j", &["a", "b"]);
    match recovery(&store, "other", AgentChoice::Only).recover(&mut no_hook) {
        Err(RecoveryError::Store(StoreError::UnknownJob(job))) => assert_eq!(job, "other"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("another job's generation was used"),
    }
    match recovery(&store, "j", AgentChoice::Only).recover(&mut no_hook) {
        Err(RecoveryError::Usage(msg)) => {
            assert!(msg.contains("holds 2 agents"), "{msg}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a generation of several agents was restored alone"),
    }
}
