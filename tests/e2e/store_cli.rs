//! End-to-end tests of the store verbs of the `cairn` binary: save/load, verify, reindex,
//! corruption and crash handling, concurrent writers.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use cairn_testkit::{is_root, json, rand_bytes, store_cmd as cairn, store_ok as ok};

/// Assert exit code `rc` and a single-line error on stderr; returns the error line.
fn fails(o: &Output, rc: i32) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(rc), "stderr: {err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("cairn: error"))
        .collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {err}");
    lines[0].to_string()
}

fn new_store(dir: &Path, extra: &[&str]) -> PathBuf {
    let st = dir.join("store");
    let mut args = vec!["store", "init", st.to_str().unwrap_or_default()];
    args.extend_from_slice(extra);
    ok(&st, &args);
    st
}

/// Compare two trees: contents, types, modes, mtimes (not for symlinks' own mtime).
fn assert_same_tree(a: &Path, b: &Path) {
    let ma = std::fs::symlink_metadata(a).unwrap();
    let mb = std::fs::symlink_metadata(b).unwrap();
    assert_eq!(ma.file_type(), mb.file_type(), "{}", b.display());
    if ma.file_type().is_symlink() {
        assert_eq!(
            std::fs::read_link(a).unwrap(),
            std::fs::read_link(b).unwrap()
        );
        return;
    }
    assert_eq!(
        ma.permissions().mode() & 0o7777,
        mb.permissions().mode() & 0o7777,
        "{}",
        b.display()
    );
    assert_eq!(
        (ma.mtime(), ma.mtime_nsec()),
        (mb.mtime(), mb.mtime_nsec()),
        "{}",
        b.display()
    );
    if ma.is_dir() {
        let mut na: Vec<_> = std::fs::read_dir(a)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let mut nb: Vec<_> = std::fs::read_dir(b)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        na.sort();
        nb.sort();
        assert_eq!(na, nb, "{}", b.display());
        for n in na {
            assert_same_tree(&a.join(&n), &b.join(&n));
        }
    } else {
        assert!(
            std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
            "{} differs",
            b.display()
        );
    }
}

fn make_data(root: &Path) {
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::write(root.join("big.bin"), rand_bytes(3_000_000, 1)).unwrap();
    std::fs::write(root.join("zeros.bin"), vec![0u8; 1_000_000]).unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    std::fs::write(root.join("sub/text.txt"), "hello\n".repeat(1000)).unwrap();
    std::fs::write(root.join("sub/deeper/x"), b"x").unwrap();
    std::os::unix::fs::symlink("sub/text.txt", root.join("link")).unwrap();
    std::fs::set_permissions(
        root.join("sub/text.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("sub/deeper"),
        std::fs::Permissions::from_mode(0o711),
    )
    .unwrap();
    let old = std::time::UNIX_EPOCH + std::time::Duration::new(981_173_106, 123_456_789);
    let f = std::fs::File::options()
        .write(true)
        .open(root.join("big.bin"))
        .unwrap();
    f.set_modified(old).unwrap();
}

#[test]
fn save_load_roundtrip_byte_identical_with_modes_and_mtimes() {
    let t = tempfile::tempdir().unwrap();
    let st = new_store(t.path(), &[]);
    let data = t.path().join("data");
    make_data(&data);
    let one = t.path().join("single.dat");
    std::fs::write(&one, rand_bytes(10_000, 7)).unwrap();
    let out = ok(
        &st,
        &[
            "save",
            "--job",
            "app",
            data.to_str().unwrap(),
            one.to_str().unwrap(),
            "--json",
        ],
    );
    let g1 = json(&out)["generation"].as_u64().unwrap();
    // Change a file and save again: load picks the newest, --generation picks the old one.
    std::fs::write(data.join("sub/deeper/x"), b"changed").unwrap();
    ok(
        &st,
        &[
            "save",
            "--job",
            "app",
            data.to_str().unwrap(),
            one.to_str().unwrap(),
        ],
    );
    let to = t.path().join("restored");
    ok(&st, &["load", "--job", "app", "--to", to.to_str().unwrap()]);
    assert_same_tree(&data, &to.join("data"));
    assert_same_tree(&one, &to.join("single.dat"));
    let old = t.path().join("old");
    ok(
        &st,
        &[
            "load",
            "--job",
            "app",
            "--generation",
            &g1.to_string(),
            "--to",
            old.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(old.join("data/sub/deeper/x")).unwrap(), b"x");

    let gens = json(&ok(&st, &["generations", "--json", "--job", "app"]));
    assert_eq!(gens.as_array().unwrap().len(), 2);
    assert_eq!(gens[0]["info"]["kind"], "files");
    let stats = json(&ok(&st, &["store", "stats", "--json"]));
    assert_eq!(stats["generations"], 2);
    assert!(stats["dedup_ratio"].as_f64().unwrap() > 1.5, "{stats}");
    let v = json(&ok(&st, &["verify", "--read-data", "--json"]));
    assert_eq!(v["ok"], true);
    // A generation of another job is refused; unknown jobs and generations are bad input.
    fails(
        &cairn(&st, &["load", "--job", "other", "--to", "/tmp/x"], &[]),
        2,
    );
    fails(
        &cairn(
            &st,
            &[
                "load",
                "--job",
                "app",
                "--generation",
                "99",
                "--to",
                "/tmp/x",
            ],
            &[],
        ),
        2,
    );
    fails(
        &cairn(
            &st,
            &["save", "--job", "bad/name", one.to_str().unwrap()],
            &[],
        ),
        2,
    );
    fails(
        &cairn(&st, &["save", "--job", "j", "/nonexistent/path"], &[]),
        2,
    );
}

#[test]
fn not_a_store_newer_format_and_missing_store_option() {
    let t = tempfile::tempdir().unwrap();
    let e = fails(&cairn(t.path(), &["store", "stats"], &[]), 2);
    assert!(e.contains("not a cairn store"), "{e}");
    let o = Command::new(cairn_testkit::cairn())
        .args(["generations"])
        .env_remove("CAIRN_STORE")
        .output()
        .unwrap();
    assert!(fails(&o, 2).contains("--store"));
    let st = new_store(t.path(), &[]);
    fails(
        &cairn(&st, &["store", "init", st.to_str().unwrap()], &[]),
        2,
    );
    let cfg = st.join("config.json");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"format\": 1", "\"format\": 99");
    std::fs::write(&cfg, text).unwrap();
    let e = fails(&cairn(&st, &["generations"], &[]), 2);
    assert!(e.contains("newer"), "{e}");
    // CAIRN_FAIL_RC changes only the internal-failure code, not the bad-input code.
    fails(&cairn(&st, &["generations"], &[("CAIRN_FAIL_RC", "42")]), 2);
}

#[test]
fn init_options_are_written_to_the_config_and_bad_ones_refused() {
    let t = tempfile::tempdir().unwrap();
    let st = new_store(
        t.path(),
        &[
            "--memory-chunk-kib",
            "16",
            "--memory-fanout",
            "64",
            "--zstd-level",
            "3",
        ],
    );
    let cfg = json(&std::fs::read_to_string(st.join("config.json")).unwrap());
    assert_eq!(cfg["memory_chunk_size"], 16 * 1024, "{cfg}");
    assert_eq!(cfg["memory_fanout"], 64, "{cfg}");
    assert_eq!(cfg["zstd_level"], 3, "{cfg}");
    assert_eq!(cfg["compression"], "zstd", "{cfg}");
    assert_eq!(cfg["format"], 1, "{cfg}");
    // An LZ4 store: format 2, and a save/load round trip through it.
    let lz = new_store(&t.path().join("lz"), &["--compression", "lz4"]);
    let cfg = json(&std::fs::read_to_string(lz.join("config.json")).unwrap());
    assert_eq!(cfg["compression"], "lz4", "{cfg}");
    assert_eq!(cfg["format"], 2, "{cfg}");
    let f = t.path().join("text.txt");
    let text: String = (0..200_000)
        .map(|i| format!("line {i} of some text\n"))
        .collect();
    std::fs::write(&f, &text).unwrap();
    ok(&lz, &["save", "--job", "j", f.to_str().unwrap()]);
    let back = t.path().join("back");
    ok(&lz, &["load", "--job", "j", "--to", back.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(back.join("text.txt")).unwrap(),
        text
    );
    for bad in [
        ["--memory-fanout", "1"],
        ["--memory-chunk-kib", "6"],
        ["--compression", "gzip"],
    ] {
        let other = t.path().join(format!("bad{}", bad[1]));
        let mut args = vec!["store", "init", other.to_str().unwrap()];
        args.extend_from_slice(&bad);
        fails(&cairn(&other, &args, &[]), 2);
    }
}

/// Two generations whose second one lives in its own pack; returns (store, data file, pack
/// of generation 2).
fn two_generations(t: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let st = new_store(t, &[]);
    let f = t.join("state.bin");
    std::fs::write(&f, rand_bytes(500_000, 11)).unwrap();
    ok(&st, &["save", "--job", "j", f.to_str().unwrap()]);
    let before: Vec<PathBuf> = packs(&st);
    std::fs::write(&f, rand_bytes(500_000, 12)).unwrap();
    ok(&st, &["save", "--job", "j", f.to_str().unwrap()]);
    let new: Vec<PathBuf> = packs(&st)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(new.len(), 1);
    (st, f, new[0].clone())
}

fn packs(st: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(st.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pack"))
        .collect();
    v.sort();
    v
}

/// After damage to generation 2's pack: verify names the pack and generation 2 only, and
/// load falls back to generation 1 and says why.
fn check_fallback(st: &Path, t: &Path, read_data: bool, pack: &Path) {
    let mut args = vec!["verify", "--json"];
    if read_data {
        args.push("--read-data");
    }
    let o = cairn(st, &args, &[]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(v["ok"], false);
    let name = pack.file_stem().unwrap().to_str().unwrap();
    let d = &v["damaged_packs"][0];
    assert_eq!(d["pack"], name, "{v}");
    assert_eq!(d["generations"], serde_json::json!([2]), "{v}");
    assert_eq!(v["generations"][0]["ok"], true);
    assert_eq!(v["generations"][1]["ok"], false);
    let to = t.join(format!("fallback-{read_data}"));
    let o = cairn(
        st,
        &["load", "--job", "j", "--to", to.to_str().unwrap()],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("skipped generation 2"), "{err}");
    assert_eq!(
        std::fs::read(to.join("state.bin")).unwrap(),
        rand_bytes(500_000, 11)
    );
}

#[test]
fn truncated_pack_is_reported_and_load_falls_back() {
    let t = tempfile::tempdir().unwrap();
    let (st, _, pack) = two_generations(t.path());
    let len = std::fs::metadata(&pack).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&pack)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    check_fallback(&st, t.path(), false, &pack);
}

#[test]
fn flipped_byte_is_found_by_read_data_and_load_falls_back() {
    let t = tempfile::tempdir().unwrap();
    let (st, _, pack) = two_generations(t.path());
    let mut b = std::fs::read(&pack).unwrap();
    b[1000] ^= 0x40;
    std::fs::write(&pack, b).unwrap();
    // The structure is intact; only reading the data finds the damage.
    let v = json(&ok(&st, &["verify", "--json"]));
    assert_eq!(v["ok"], true);
    check_fallback(&st, t.path(), true, &pack);
    // Loading the damaged generation explicitly fails with a clear error.
    let to = t.path().join("explicit");
    let e = fails(
        &cairn(
            &st,
            &[
                "load",
                "--job",
                "j",
                "--generation",
                "2",
                "--to",
                to.to_str().unwrap(),
            ],
            &[],
        ),
        2,
    );
    assert!(e.contains("corrupt"), "{e}");
}

#[test]
fn missing_pack_is_reported_and_load_falls_back() {
    let t = tempfile::tempdir().unwrap();
    let (st, _, pack) = two_generations(t.path());
    std::fs::remove_file(&pack).unwrap();
    check_fallback(&st, t.path(), false, &pack);
}

#[test]
fn deleted_or_corrupt_index_is_rebuilt_by_the_verb_that_needs_it_with_a_warning() {
    let t = tempfile::tempdir().unwrap();
    let (st, _, _) = two_generations(t.path());
    let before = ok(&st, &["generations", "--json"]);
    let stats_before = json(&ok(&st, &["store", "stats", "--json"]));
    std::fs::remove_file(st.join("cairn.db")).unwrap();
    let out = cairn(&st, &["generations", "--json"], &[]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{e}");
    assert!(
        e.contains("warning") && e.contains("index") && e.contains("rebuilt"),
        "{e}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), before);
    assert!(st.join("cairn.db").exists());
    std::fs::write(st.join("cairn.db"), rand_bytes(50_000, 3)).unwrap();
    let out = cairn(&st, &["store", "stats", "--json"], &[]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{e}");
    assert!(e.contains("rebuilt"), "{e}");
    assert_eq!(ok(&st, &["generations", "--json"]), before);
    assert_eq!(json(&ok(&st, &["store", "stats", "--json"])), stats_before);
    assert_eq!(
        json(&ok(&st, &["verify", "--read-data", "--json"]))["ok"],
        true
    );
}

#[test]
fn full_disk_fails_cleanly_and_keeps_committed_generations() {
    if is_root() {
        let t = tempfile::tempdir().unwrap();
        let mnt = t.path().join("small");
        std::fs::create_dir(&mnt).unwrap();
        let m = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=3m",
                "tmpfs",
                mnt.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(m.success(), "mount tmpfs");
        let result = std::panic::catch_unwind(|| {
            let st = new_store(&mnt, &["--pack-mib", "1"]);
            let small = t.path().join("small.bin");
            std::fs::write(&small, rand_bytes(200_000, 1)).unwrap();
            ok(&st, &["save", "--job", "j", small.to_str().unwrap()]);
            let big = t.path().join("big.bin");
            std::fs::write(&big, rand_bytes(8_000_000, 2)).unwrap();
            let e = fails(
                &cairn(&st, &["save", "--job", "j", big.to_str().unwrap()], &[]),
                99,
            );
            assert!(e.contains("No space left"), "{e}");
            // The failed writer removed its temporary pack; generation 1 is intact.
            assert_eq!(
                json(&ok(&st, &["verify", "--read-data", "--json"]))["ok"],
                true
            );
            let to = t.path().join("out");
            ok(&st, &["load", "--job", "j", "--to", to.to_str().unwrap()]);
            assert_eq!(
                std::fs::read(to.join("small.bin")).unwrap(),
                rand_bytes(200_000, 1)
            );
        });
        let _ = Command::new("umount").arg(&mnt).status();
        if let Err(p) = result {
            std::panic::resume_unwind(p);
        }
    } else {
        eprintln!("NOTICE: full_disk test skipped: needs root to mount a tmpfs");
    }
}

/// The answer a store gives: its generations (id, job, root) and the latest consistent one.
fn answer(st: &Path, job: &str) -> (Vec<(u64, String, String)>, Option<u64>) {
    let gens = json(&ok(st, &["generations", "--json"]));
    let list = gens
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["id"].as_u64().unwrap(),
                g["job"].as_str().unwrap().to_string(),
                g["root"]["root"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let latest = list_latest(st, job);
    (list, latest)
}

fn list_latest(st: &Path, job: &str) -> Option<u64> {
    let to = tempfile::tempdir().unwrap();
    let o = cairn(
        st,
        &[
            "load",
            "--job",
            job,
            "--to",
            to.path().to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    if o.status.success() {
        json(&String::from_utf8_lossy(&o.stdout))["generation"].as_u64()
    } else {
        None
    }
}

/// After a crash: verify passes, the newest generation is the last committed one and loads
/// to exactly one of the saved versions, and a reindex from scratch gives the same answer.
fn check_after_crash(st: &Path, versions: &[Vec<u8>], expect_gens: u64) {
    let v = json(&ok(st, &["verify", "--read-data", "--json"]));
    assert_eq!(v["ok"], true, "{v}");
    let (list, latest) = answer(st, "j");
    assert_eq!(list.len() as u64, expect_gens);
    assert_eq!(latest, list.last().map(|g| g.0));
    let to = tempfile::tempdir().unwrap();
    ok(
        st,
        &["load", "--job", "j", "--to", to.path().to_str().unwrap()],
    );
    let got = std::fs::read(to.path().join("f.bin")).unwrap();
    assert!(
        versions.contains(&got),
        "restored data is none of the saved versions"
    );
    std::fs::remove_file(st.join("cairn.db")).unwrap();
    ok(st, &["store", "reindex"]);
    assert_eq!(answer(st, "j"), (list, latest));
}

#[test]
fn fault_injection_at_every_commit_stage() {
    let stages = [
        ("pack-write", false),
        ("pack-fsync", false),
        ("pack-rename", false),
        ("manifest-write", false),
        ("manifest-commit", true),
    ];
    for (stage, commits) in stages {
        let t = tempfile::tempdir().unwrap();
        let st = new_store(t.path(), &["--pack-mib", "1"]);
        let f = t.path().join("f.bin");
        let v1 = rand_bytes(3_000_000, 1);
        std::fs::write(&f, &v1).unwrap();
        ok(&st, &["save", "--job", "j", f.to_str().unwrap()]);
        let v2 = rand_bytes(3_000_000, 2);
        std::fs::write(&f, &v2).unwrap();
        let o = cairn(
            &st,
            &["save", "--job", "j", f.to_str().unwrap()],
            &[("CAIRN_FAULT", stage)],
        );
        assert_eq!(
            o.status.code(),
            Some(86),
            "stage {stage}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        check_after_crash(&st, &[v1.clone(), v2.clone()], if commits { 2 } else { 1 });
        let latest = list_latest(&st, "j");
        let to = tempfile::tempdir().unwrap();
        ok(
            &st,
            &["load", "--job", "j", "--to", to.path().to_str().unwrap()],
        );
        let got = std::fs::read(to.path().join("f.bin")).unwrap();
        assert_eq!(got == v2, commits, "stage {stage}, latest {latest:?}");
        // Leftovers are harmless and removable.
        ok(&st, &["store", "clean", "--older-than-minutes", "0"]);
        assert!(json(&ok(&st, &["verify", "--json"]))["leftovers"]
            .as_array()
            .unwrap()
            .is_empty());
        check_after_crash(&st, &[v1, v2], if commits { 2 } else { 1 });
    }
}

#[test]
fn kill_9_at_random_points_never_damages_committed_generations() {
    let t = tempfile::tempdir().unwrap();
    let st = new_store(t.path(), &["--pack-mib", "1"]);
    let f = t.path().join("f.bin");
    let mut versions = Vec::new();
    let mut committed = 0u64;
    let mut seed = 0x1234_5678u64;
    for round in 0..12u64 {
        let v = rand_bytes(12_000_000, 100 + round);
        std::fs::write(&f, &v).unwrap();
        versions.push(v);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = std::time::Duration::from_millis(seed % 60);
        let mut child = Command::new(cairn_testkit::cairn())
            .args(["save", "--job", "j", f.to_str().unwrap()])
            .env("CAIRN_STORE", &st)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.success() {
            committed += 1;
        }
        // The save may have committed just before the kill even if the status says killed.
        let n = json(&ok(&st, &["generations", "--json"]))
            .as_array()
            .unwrap()
            .len() as u64;
        assert!(n == committed || n == committed + 1);
        committed = n;
        if committed > 0 {
            check_after_crash(&st, &versions, committed);
        }
    }
}

#[test]
fn two_writer_processes_commit_concurrently() {
    let t = tempfile::tempdir().unwrap();
    let st = new_store(t.path(), &["--pack-mib", "1"]);
    let fa = t.path().join("a");
    let fb = t.path().join("b");
    std::fs::create_dir_all(&fa).unwrap();
    std::fs::create_dir_all(&fb).unwrap();
    // Shared content in both, so the writers also race on the same chunks.
    let shared = rand_bytes(2_000_000, 9);
    std::fs::write(fa.join("shared"), &shared).unwrap();
    std::fs::write(fb.join("shared"), &shared).unwrap();
    for round in 0..4u64 {
        std::fs::write(fa.join("own"), rand_bytes(3_000_000, 1000 + round)).unwrap();
        std::fs::write(fb.join("own"), rand_bytes(3_000_000, 2000 + round)).unwrap();
        let spawn = |job: &str, dir: &Path| {
            Command::new(cairn_testkit::cairn())
                .args(["save", "--job", job, dir.to_str().unwrap()])
                .env("CAIRN_STORE", &st)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let a = spawn("ja", &fa);
        let b = spawn("jb", &fb);
        for c in [a, b] {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        for (job, dir) in [("ja", &fa), ("jb", &fb)] {
            let to = t.path().join(format!("out-{job}-{round}"));
            ok(&st, &["load", "--job", job, "--to", to.to_str().unwrap()]);
            let name = dir.file_name().unwrap();
            assert_same_tree(dir, &to.join(name));
        }
    }
    let gens = json(&ok(&st, &["generations", "--json"]));
    let mut ids: Vec<u64> = gens
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 8);
    ids.dedup();
    assert_eq!(ids.len(), 8);
    assert_eq!(
        json(&ok(&st, &["verify", "--read-data", "--json"]))["ok"],
        true
    );
}

#[test]
fn one_gib_file_changed_one_percent_in_the_middle_writes_few_new_bytes() {
    let t = tempfile::tempdir().unwrap();
    let st = new_store(t.path(), &[]);
    let f = t.path().join("big.bin");
    const GIB: usize = 1 << 30;
    let mut data = rand_bytes(GIB, 77);
    std::fs::write(&f, &data).unwrap();
    let first = json(&ok(
        &st,
        &["save", "--job", "big", f.to_str().unwrap(), "--json"],
    ));
    assert!(first["stats"]["new_stored_bytes"].as_u64().unwrap() >= GIB as u64);
    // Overwrite 1% in the middle, and also insert a few bytes there (shifting the rest).
    let mid = GIB / 2;
    let changed = GIB / 100;
    data[mid..mid + changed].copy_from_slice(&rand_bytes(changed, 78));
    let mut shifted = data[..mid].to_vec();
    shifted.extend_from_slice(b"inserted");
    shifted.extend_from_slice(&data[mid..]);
    drop(data);
    std::fs::write(&f, &shifted).unwrap();
    let second = json(&ok(
        &st,
        &["save", "--job", "big", f.to_str().unwrap(), "--json"],
    ));
    let new = second["stats"]["new_stored_bytes"].as_u64().unwrap();
    assert!(
        new < (GIB / 100 * 3 / 2) as u64,
        "second save wrote {new} bytes"
    );
    let to = t.path().join("out");
    ok(&st, &["load", "--job", "big", "--to", to.to_str().unwrap()]);
    assert!(std::fs::read(to.join("big.bin")).unwrap() == shifted);
}

#[test]
fn damaged_manifest_is_skipped_and_reported() {
    let t = tempfile::tempdir().unwrap();
    let (st, _, _) = two_generations(t.path());
    let m = st.join("generations").join(format!("{:020}.gen", 2));
    let mut b = std::fs::read(&m).unwrap();
    b[10] ^= 1;
    std::fs::write(&m, b).unwrap();
    let gens = json(&ok(&st, &["generations", "--json"]));
    assert_eq!(gens.as_array().unwrap().len(), 1);
    let o = cairn(&st, &["verify", "--json"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(v["generations"][1]["ok"], false);
    assert!(v["generations"][1]["problems"][0]
        .as_str()
        .unwrap()
        .contains("checksum"));
    let to = t.path().join("out");
    let o = cairn(
        &st,
        &["load", "--job", "j", "--to", to.to_str().unwrap()],
        &[],
    );
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("skipped generation 2"));
    assert_eq!(
        std::fs::read(to.join("state.bin")).unwrap(),
        rand_bytes(500_000, 11)
    );
}

/// A manifest deleted behind the store's back (not pruned) is a lost generation: `verify`
/// names it as bad, and a load or restart says it skipped it before using the older one.
#[test]
fn a_deleted_manifest_the_index_still_lists_is_reported_and_skipped() {
    let t = tempfile::tempdir().unwrap();
    let (st, _, _) = two_generations(t.path());
    std::fs::remove_file(st.join("generations").join(format!("{:020}.gen", 2))).unwrap();
    let o = cairn(&st, &["verify", "--json"], &[]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "verify must call the store damaged"
    );
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(v["generations"][1]["id"], 2);
    assert_eq!(v["generations"][1]["ok"], false);
    assert!(v["generations"][1]["problems"][0]
        .as_str()
        .unwrap()
        .contains("manifest is missing"));
    let to = t.path().join("out");
    let o = cairn(
        &st,
        &["load", "--job", "j", "--to", to.to_str().unwrap()],
        &[],
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    assert!(
        e.contains("skipped generation 2") && e.contains("manifest is missing"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(to.join("state.bin")).unwrap(),
        rand_bytes(500_000, 11)
    );
    // A prune is not a loss, even one that dies between removing a manifest and updating
    // the index.
    let t2 = tempfile::tempdir().unwrap();
    let (st2, f2, _) = two_generations(t2.path());
    std::fs::write(&f2, rand_bytes(500_000, 13)).unwrap();
    ok(&st2, &["save", "--job", "j", f2.to_str().unwrap()]);
    let o = cairn(
        &st2,
        &["prune", "--job", "j", "--keep-last", "1"],
        &[("CAIRN_FAULT", "prune-unlinked")],
    );
    assert_eq!(o.status.code(), Some(86), "the fault point was not reached");
    let o = cairn(&st2, &["verify", "--json"], &[]);
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(v["ok"], true, "{v}");
}

/// Restart and load read chunks through the index, so a pack whose trailer is damaged
/// still serves them; `verify` agrees: the pack is reported, its generations are sound.
#[test]
fn a_damaged_pack_trailer_is_reported_but_its_generations_stay_usable() {
    let t = tempfile::tempdir().unwrap();
    let (st, _, pack) = two_generations(t.path());
    let mut b = std::fs::read(&pack).unwrap();
    let n = b.len();
    b[n - 3] ^= 0x5a;
    std::fs::write(&pack, b).unwrap();
    let o = cairn(&st, &["verify", "--json"], &[]);
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(o.status.code(), Some(1), "{v}");
    assert_eq!(v["damaged_packs"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["generations"][1]["ok"], true, "{v}");
    let to = t.path().join("out");
    let o = cairn(
        &st,
        &["load", "--job", "j", "--to", to.to_str().unwrap()],
        &[],
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !e.contains("skipped"), "{e}");
    assert_eq!(
        std::fs::read(to.join("state.bin")).unwrap(),
        rand_bytes(500_000, 12)
    );
}

/// `store stats` counts what the generations present reach: chunks only gc frees are shown
/// apart as not reachable, and never drag the dedup ratio below one.
#[test]
fn store_stats_tells_reachable_data_from_what_gc_frees() {
    let t = tempfile::tempdir().unwrap();
    let (st, f, _) = two_generations(t.path());
    std::fs::write(&f, rand_bytes(500_000, 13)).unwrap();
    ok(&st, &["save", "--job", "j", f.to_str().unwrap()]);
    ok(&st, &["prune", "--job", "j", "--keep-last", "1"]);
    let s = json(&ok(&st, &["store", "stats", "--json"]));
    let unreachable =
        s["stored_bytes"].as_u64().unwrap() - s["live_stored_bytes"].as_u64().unwrap();
    assert!(unreachable >= 400_000, "{s}");
    assert!(s["dedup_ratio"].as_f64().unwrap() > 0.95, "{s}");
    assert!(
        s["live_unique_bytes"].as_u64().unwrap() < s["unique_bytes"].as_u64().unwrap(),
        "{s}"
    );
}
