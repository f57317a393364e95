//! End-to-end tests of the lazy restore (docs/capture-restore.md, "Lazy restore"): the program runs
//! again before its large mappings are in place, and everything it does to its address space
//! meanwhile (fork, MADV_DONTNEED, mremap, munmap, mprotect, the kernel writing into a missing
//! page) must leave it with exactly the memory it would have had; damaged data found after
//! the program resumed must kill it and restart an older generation.

use std::fs;
use std::time::Duration;

use cairn_testkit::{
    damage_chunk, files_below, is_root, run_native, Area, Job, Program, Scratch, RUNNING,
};

/// The line a restart prints once a lazy restore has every page in place.
const IN_PLACE: &str = "memory in place";

/// Runs `lazy_events MIB` natively, then under cairn: checkpointed while it waits, killed,
/// restarted (with `restart_prefix` as a shell prefix of the restart, e.g. an export) and
/// sent SIGUSR2 the moment it runs again, so that it changes its address space while pages
/// are still missing. The restart must exit 0 with the native output; returns its log.
fn restart_right_after_resume(mib: &str, restart_prefix: &str) -> String {
    let sc = Scratch::new();
    let store = sc.store();
    let native = run_native(&Program::c("lazy_events", &[mib, "now"]), &sc.sub("native"));
    assert_eq!(native.code, 0);
    let prog = Program::c("lazy_events", &[mib, "signal"]);
    let dir = sc.sub("cairn");
    let mut job = Job::start(&prog, "launch", &store, "lazy", &[], &dir, true);
    let end = std::time::Instant::now() + Duration::from_secs(60);
    while !fs::read_to_string(dir.join("stdout"))
        .unwrap_or_default()
        .contains("ready")
    {
        assert!(std::time::Instant::now() < end, "{}", job.log_text());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(job.checkpoint(), "checkpoint: {}", job.log_text());
    job.kill_all();

    let restarting = prog.clone().with_shell_prefix(restart_prefix);
    let mut job = Job::start(&restarting, "restart", &store, "lazy", &[], &dir, false);
    assert!(
        job.wait_for_lines(RUNNING, 1, Duration::from_secs(120)),
        "{}",
        job.log_text()
    );
    job.signal(libc::SIGUSR2);
    let log_path = job.log.clone();
    let code = job.wait(Duration::from_secs(120));
    let log = fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(code, 0, "{log}");
    assert_eq!(
        String::from_utf8_lossy(&fs::read(dir.join("stdout")).unwrap()),
        String::from_utf8_lossy(&native.stdout),
        "{log}"
    );
    log
}

#[test]
fn address_space_changes_right_after_resume_match_the_native_run() {
    let _area = Area::enter(module_path!());
    let log = restart_right_after_resume("512", "");
    if is_root() {
        // The restart really was lazy (as root the kernel allows it).
        assert!(log.contains(IN_PLACE), "no lazy restore: {log}");
        let faults: u64 = log
            .lines()
            .find(|l| l.contains(IN_PLACE))
            .and_then(|l| l.split(", ").nth(1))
            .and_then(|w| w.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no fault count: {log}"));
        assert!(faults > 0, "no page fault was served after resume: {log}");
    }
}

#[test]
fn eager_restore_when_turned_off() {
    let _area = Area::enter(module_path!());
    // CAIRN_LAZY_RESTORE=0: the memory is in place before the program runs, no lazy line.
    let log = restart_right_after_resume("128", "export CAIRN_LAZY_RESTORE=0");
    assert!(!log.contains(IN_PLACE), "lazy although turned off: {log}");
}

#[test]
fn damaged_data_found_after_resume_restarts_the_previous_generation() {
    let _area = Area::enter(module_path!());
    if !is_root() {
        // Without CAP_SYS_PTRACE every restore is eager: damage is found before the program
        // runs, which tests/e2e/agent_failures.rs covers.
        eprintln!("not root: no lazy restore to test");
        return;
    }
    let sc = Scratch::new();
    let store = sc.store();
    // 64 MiB rewritten 1 % per round, a round every 40 ms.
    let prog = Program::c("dirtymem", &["64", "10", "60", "timed"]);
    let native = run_native(&prog, &sc.sub("native"));
    assert_eq!(native.code, 0);
    let dir = sc.sub("cairn");
    let mut job = Job::start(&prog, "launch", &store, "dm", &[], &dir, true);
    let rounds = || {
        fs::read_to_string(dir.join("stdout"))
            .unwrap_or_default()
            .matches("round ")
            .count()
    };
    let wait_rounds = |n: usize, job: &Job| {
        let end = std::time::Instant::now() + Duration::from_secs(60);
        while rounds() < n {
            assert!(std::time::Instant::now() < end, "{}", job.log_text());
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_rounds(3, &job);
    assert!(job.checkpoint(), "first checkpoint: {}", job.log_text());
    wait_rounds(rounds() + 5, &job);
    assert!(job.checkpoint(), "second checkpoint: {}", job.log_text());
    job.kill_all();

    // Damage one chunk of the 64 MiB buffer that generation 2 holds and generation 1 does
    // not: the restore maps that buffer lazily, so the damage shows after the program ran.
    let st = cairn_store::Store::open(&store).unwrap();
    let mut gens = st.generations(Some("dm")).unwrap();
    gens.sort_by_key(|g| g.id.0);
    assert_eq!(gens.len(), 2);
    let first = st.reach(&gens[0].root).leaves;
    let reader = st.reader(gens[1].id).unwrap();
    let mut biggest: Option<cairn_store::StreamRef> = None;
    for (_pid, tree) in reader
        .tree_entries(&reader.lookup("agents/0/mem").unwrap())
        .unwrap()
    {
        for (_, s) in reader.tree_entries(&tree).unwrap() {
            if biggest.as_ref().is_none_or(|b| s.len > b.len) {
                biggest = Some(s);
            }
        }
    }
    let buffer = biggest.expect("no memory region");
    assert!(
        buffer.len >= 64 << 20,
        "largest region {} bytes",
        buffer.len
    );
    let in_buffer = st.reach(&buffer).leaves;
    let cs = st.config().memory_chunk_size;
    let (pack, e) = files_below(&store.join("packs"))
        .into_iter()
        .flat_map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            st.pack_entries(&name)
                .unwrap_or_default()
                .into_iter()
                .map(move |e| (p.clone(), e))
        })
        .find(|(_, e)| e.raw_len == cs && in_buffer.contains(&e.id) && !first.contains(&e.id))
        .expect("no chunk of the buffer is new in generation 2");
    drop(reader);
    drop(st);
    damage_chunk(&pack, e.offset, e.stored_len);

    let job = Job::start(&prog, "restart", &store, "dm", &[], &dir, false);
    let log_path = job.log.clone();
    let code = job.wait(Duration::from_secs(180));
    let log = fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(code, 0, "{log}");
    let failed = log
        .find("warning: generation 2 failed after the program resumed")
        .unwrap_or_else(|| panic!("no failure after resume: {log}"));
    let fallback = log
        .find("restarting job dm from generation 1")
        .unwrap_or_else(|| panic!("no fallback: {log}"));
    assert!(failed < fallback, "{log}");
    assert_eq!(
        String::from_utf8_lossy(&fs::read(dir.join("stdout")).unwrap()),
        String::from_utf8_lossy(&native.stdout),
        "{log}"
    );
}
