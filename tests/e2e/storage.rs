//! What a checkpoint stores (docs/capture-restore.md, "Capture", step 5): of anonymous
//! memory only the pages the program touched, of a private file mapping only the pages that
//! differ from the file. Checked on the bytes the store received (`cairn generations --json`)
//! and on the stored ranges the image records; a restart must give the program back exactly
//! its pages.

use std::fs;
use std::time::Duration;

use cairn_image::{Backing, ProcessTreeImage, Vma};
use cairn_store::{GenerationId, Store};
use cairn_testkit::{generations_json, run_native, Area, Job, Program, Scratch, RUNNING};

const PAGE: u64 = 4096;
const ANON_MIB: u64 = 1024;
const FILE_MIB: u64 = 128;
/// Pages written in each of the two mappings.
const PAGES: u64 = 16;
const FILE: &str = "data.bin";

/// `sparse ANON_MIB FILE FILE_MIB PAGES MODE`.
fn sparse(mode: &str) -> Program {
    Program::c(
        "sparse",
        &[
            &ANON_MIB.to_string(),
            FILE,
            &FILE_MIB.to_string(),
            &PAGES.to_string(),
            mode,
        ],
    )
}

/// The page offsets (from the mapping's start, in bytes) tests/programs/sparse.c writes in a
/// mapping of `n` pages.
fn written_pages(n: u64) -> Vec<(u64, u64)> {
    let stride = n / PAGES;
    (0..PAGES)
        .map(|k| ((k * stride + (k * 7919) % stride) * PAGE, PAGE))
        .collect()
}

/// The image's mapping that `pick` selects (exactly one must).
fn mapping<'a>(image: &'a ProcessTreeImage, what: &str, pick: impl Fn(&Vma) -> bool) -> &'a Vma {
    let found: Vec<&Vma> = image
        .processes
        .iter()
        .flat_map(|p| p.vmas.iter())
        .filter(|v| pick(v))
        .collect();
    assert_eq!(found.len(), 1, "{what}: {found:?}");
    found[0]
}

/// A program maps 1 GiB of anonymous memory and writes 16 pages of it (never touching the
/// rest), and maps a 128 MiB file of random data of its own privately, reads all of it and
/// overwrites 16 pages. Its checkpoint must store about those 32 pages and the program's own
/// small mappings (storing the file's pages would add 128 MiB); the image must record exactly
/// the overwritten pages of the file mapping as stored, and exactly the written pages of the
/// anonymous mapping. After a kill -9 and a restart the program finds
/// every page as it must be (its written data, zeros, the file's bytes) and the file on disk
/// unchanged, and prints what the native run prints.
fn only_touched_and_changed_pages_are_stored(job: &str, prog: Program) {
    let sc = Scratch::new();
    let native = run_native(&sparse("nowait"), &sc.sub("native"));
    assert_eq!(native.code, 0, "the native run failed");
    assert!(
        String::from_utf8_lossy(&native.stdout).contains("wrong pages: anon 0 map 0\n"),
        "{native:?}"
    );
    let store = sc.store();
    let dir = sc.sub("cairn");
    let mut run = Job::start(&prog, "launch", &store, job, &[], &dir, true);
    run.wait_stdout("ready");
    assert!(run.checkpoint(), "checkpoint: {}", run.log_text());
    run.kill_all();

    let gens = generations_json(&store, job);
    assert_eq!(gens.len(), 1);
    let stats = &gens[0]["info"]["stats"];
    let raw = stats["new_raw_bytes"].as_u64().unwrap_or(u64::MAX);
    let stored = stats["new_stored_bytes"].as_u64().unwrap_or(u64::MAX);
    // 32 written pages in chunks of their own (32 KiB chunks: 1 MiB), plus the program's own
    // stack, data and libc pages, nodes and the image.
    assert!(
        raw < 2 << 20 && stored < 2 << 20,
        "{raw} bytes stored ({stored} compressed) for {} written pages: {stats}",
        2 * PAGES
    );

    let st = Store::open(&store).expect("opening the store");
    let reader = st.reader(GenerationId(1)).expect("reading generation 1");
    let image_ref = reader
        .lookup("agents/0/image.json")
        .expect("finding the image");
    let image: ProcessTreeImage =
        serde_json::from_slice(&reader.read_all(&image_ref).expect("reading the image"))
            .expect("decoding the image");
    let file = mapping(
        &image,
        "the file mapping",
        |v| matches!(&v.backing, Backing::File { path, .. } if path.ends_with(&format!("/{FILE}"))),
    );
    assert_eq!(file.len(), FILE_MIB << 20);
    assert_eq!(
        file.stored,
        written_pages((FILE_MIB << 20) / PAGE),
        "stored pages of the file mapping"
    );
    let anon = mapping(&image, "the 1 GiB anonymous mapping", |v| {
        matches!(v.backing, Backing::Anonymous) && v.len() == ANON_MIB << 20
    });
    assert_eq!(
        anon.stored,
        written_pages((ANON_MIB << 20) / PAGE),
        "stored pages of the anonymous mapping"
    );
    drop(reader);
    drop(st);

    let mut restarted = Job::start(&prog, "restart", &store, job, &[], &dir, false);
    assert!(
        restarted.wait_for_lines(RUNNING, 1, Duration::from_secs(60)),
        "{}",
        restarted.log_text()
    );
    let log = restarted.log.clone();
    restarted.signal(libc::SIGUSR2);
    let code = restarted.wait(Duration::from_secs(120));
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, 0, "{text}");
    let got = fs::read(dir.join("stdout")).unwrap_or_default();
    assert!(
        got == native.stdout,
        "after the restart:\n{}\nnative:\n{}\nlog:\n{text}",
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&native.stdout)
    );
}

/// With dirty-page tracking (the default): the anonymous mapping is write-protected while
/// the program runs, and the marks that protection leaves on never-touched pages must not
/// make them count as stored (docs/capture-restore.md, "Capture", step 5).
#[test]
fn only_touched_and_changed_pages_are_stored_with_dirty_tracking() {
    let _area = Area::enter(module_path!());
    only_touched_and_changed_pages_are_stored("sparse", sparse("signal"));
}

/// Without dirty-page tracking.
#[test]
fn only_touched_and_changed_pages_are_stored_without_dirty_tracking() {
    let _area = Area::enter(module_path!());
    let prog = sparse("signal").with_shell_prefix("export CAIRN_DIRTY_TRACKING=0");
    only_touched_and_changed_pages_are_stored("sparse-untracked", prog);
}
