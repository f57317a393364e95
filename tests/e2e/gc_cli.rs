//! End-to-end tests of `cairn prune`, `cairn gc` and the retention column of
//! `cairn generations`, including gc killed (fault injection at every stage, and kill -9 at
//! random moments) followed by verify and a second gc.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use cairn_testkit::{json, rand_bytes, store_cmd as cairn, store_ok as ok};

/// A store with small packs, and a working directory for the saved files.
fn setup(t: &Path) -> PathBuf {
    let st = t.join("store");
    ok(
        &st,
        &["store", "init", st.to_str().unwrap(), "--pack-mib", "1"],
    );
    std::fs::write(t.join("keep.bin"), rand_bytes(1_500_000, 1)).unwrap();
    st
}

/// Save a new generation of job `j` whose `var.bin` has content `seed`; returns its id.
fn save(st: &Path, t: &Path, seed: u64) -> u64 {
    std::fs::write(t.join("var.bin"), rand_bytes(1_200_000, seed)).unwrap();
    let keep = t.join("keep.bin");
    let var = t.join("var.bin");
    let out = ok(
        st,
        &[
            "save",
            "--job",
            "j",
            "--json",
            keep.to_str().unwrap(),
            var.to_str().unwrap(),
        ],
    );
    json(&out)["generation"]
        .as_u64()
        .unwrap_or_else(|| panic!("no generation id in {out}"))
}

fn generation_ids(st: &Path) -> Vec<u64> {
    let v = json(&ok(st, &["generations", "--json"]));
    v.as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_u64().unwrap())
        .collect()
}

/// Every remaining generation passes verify --read-data and loads to its exact bytes.
fn check_all(st: &Path, t: &Path, seeds: &BTreeMap<u64, u64>) {
    let o = cairn(st, &["verify", "--read-data", "--json"], &[]);
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(o.status.code(), Some(0), "verify: {v}");
    for id in generation_ids(st) {
        let to = t.join(format!("load-{id}-{}", rand_bytes(8, id)[0]));
        let _ = std::fs::remove_dir_all(&to);
        ok(
            st,
            &[
                "load",
                "--job",
                "j",
                "--generation",
                &id.to_string(),
                "--to",
                to.to_str().unwrap(),
            ],
        );
        assert_eq!(
            std::fs::read(to.join("var.bin")).unwrap(),
            rand_bytes(1_200_000, seeds[&id]),
            "generation {id}"
        );
        assert_eq!(
            std::fs::read(to.join("keep.bin")).unwrap(),
            rand_bytes(1_500_000, 1)
        );
        std::fs::remove_dir_all(&to).unwrap();
    }
}

#[test]
fn prune_table_dry_run_json_and_generations_reasons() {
    let t = tempfile::tempdir().unwrap();
    let st = setup(t.path());
    let ids: Vec<u64> = (10..15).map(|s| save(&st, t.path(), s)).collect();

    let o = cairn(&st, &["prune", "--dry-run"], &[]);
    assert_eq!(o.status.code(), Some(2), "no rule given is a usage error");
    assert!(String::from_utf8_lossy(&o.stderr).contains("no retention rule"));

    let out = ok(&st, &["prune", "--keep-last", "1", "--dry-run"]);
    assert!(out.contains("would drop"), "{out}");
    assert!(out.contains("newest-consistent, last"), "{out}");
    assert!(out.contains("fallback"), "{out}");
    assert_eq!(generation_ids(&st), ids, "dry run removes nothing");

    let gens = ok(&st, &["generations", "--keep-last", "1"]);
    assert!(gens.contains("keep (newest-consistent, last)"), "{gens}");
    assert!(gens.contains("keep (fallback)"), "{gens}");
    assert_eq!(gens.matches("drop").count(), 3, "{gens}");

    let v = json(&ok(&st, &["prune", "--keep-last", "0", "--json"]));
    let removed: Vec<u64> = v["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(
        removed,
        ids[..3].to_vec(),
        "keep-last 0 keeps newest + fallback"
    );
    assert_eq!(generation_ids(&st), ids[3..].to_vec());
    let o = cairn(&st, &["prune", "--job", "nope", "--keep-last", "1"], &[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn gc_reclaims_space_and_repacks() {
    let t = tempfile::tempdir().unwrap();
    let st = setup(t.path());
    let mut seeds = BTreeMap::new();
    for s in 20..26 {
        seeds.insert(save(&st, t.path(), s), s);
    }
    ok(&st, &["prune", "--keep-last", "2"]);
    let dry = json(&ok(&st, &["gc", "--grace", "0", "--dry-run", "--json"]));
    assert!(dry["condemned"].as_array().unwrap().len() >= 3, "{dry}");
    assert_eq!(
        dry["bytes_after"], dry["bytes_before"],
        "dry run changes nothing"
    );
    let r = json(&ok(
        &st,
        &["gc", "--grace", "0", "--max-unused", "10", "--json"],
    ));
    let before = r["bytes_before"].as_u64().unwrap();
    let after = r["bytes_after"].as_u64().unwrap();
    // 6 generations of 1.2 MB random + 1.5 MB shared; 2 kept.
    assert!(after < before / 2, "{r}");
    assert!(after > 3_500_000, "{r}");
    check_all(&st, t.path(), &seeds);
    // A long grace period: nothing new is condemned (packs are young), nothing deleted.
    seeds.insert(save(&st, t.path(), 30), 30);
    ok(&st, &["prune", "--keep-last", "1"]);
    let r = json(&ok(&st, &["gc", "--json"]));
    assert_eq!(r["deleted"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["condemned"].as_array().unwrap().len(), 0, "{r}");
    assert!(r["young"].as_u64().unwrap() > 0, "{r}");
    check_all(&st, t.path(), &seeds);
    let o = cairn(&st, &["gc", "--max-unused", "150"], &[]);
    assert_eq!(o.status.code(), Some(2));
}

/// New garbage for the next gc: two more generations, then keep only the newest two.
fn more_garbage(st: &Path, t: &Path, seeds: &mut BTreeMap<u64, u64>, next: &mut u64) {
    for _ in 0..2 {
        *next += 1;
        seeds.insert(save(st, t, *next), *next);
    }
    ok(st, &["prune", "--keep-last", "2"]);
}

#[test]
fn gc_killed_at_every_stage_and_at_random_points_then_verify_and_second_gc() {
    let t = tempfile::tempdir().unwrap();
    let st = setup(t.path());
    let mut seeds = BTreeMap::new();
    let mut next = 100;
    for _ in 0..3 {
        next += 1;
        seeds.insert(save(&st, t.path(), next), next);
    }
    let stages = [
        "gc-condemned",
        "gc-copy-sealed",
        "gc-copy-indexed",
        "gc-delete-rescued",
        "gc-delete-unindexed",
        "gc-delete-unlinked",
        "prune-unlinked",
    ];
    let mut hit = 0;
    for stage in stages {
        more_garbage(&st, t.path(), &mut seeds, &mut next);
        let (args, tag): (&[&str], _) = if stage.starts_with("prune") {
            (&["prune", "--keep-last", "1"], "prune")
        } else {
            (&["gc", "--grace", "0", "--max-unused", "5"], "gc")
        };
        let o = cairn(&st, args, &[("CAIRN_FAULT", stage)]);
        match o.status.code() {
            Some(86) => hit += 1,
            Some(0) => {}
            other => panic!(
                "{tag} with fault {stage}: {other:?} {}",
                String::from_utf8_lossy(&o.stderr)
            ),
        }
        check_all(&st, t.path(), &seeds);
    }
    assert!(hit >= 5, "most fault stages were reached ({hit})");

    let mut killed = 0;
    for k in 0..8u64 {
        more_garbage(&st, t.path(), &mut seeds, &mut next);
        let mut child = Command::new(cairn_testkit::cairn())
            .args(["gc", "--grace", "0", "--max-unused", "5"])
            .env("CAIRN_STORE", &st)
            .env_remove("CAIRN_FAULT")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = rand_bytes(8, 1000 + k)[0] as u64 % 60;
        std::thread::sleep(Duration::from_millis(delay));
        // Child::kill sends SIGKILL.
        if child.kill().is_ok() {
            killed += 1;
        }
        let _ = child.wait();
        check_all(&st, t.path(), &seeds);
    }
    assert!(killed > 0);
    // A second (complete) gc finishes the job: nothing condemned is left, no dead pack.
    ok(&st, &["gc", "--grace", "0", "--max-unused", "5"]);
    let r = json(&ok(
        &st,
        &["gc", "--grace", "0", "--max-unused", "5", "--json"],
    ));
    assert_eq!(r["deleted"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["condemned"].as_array().unwrap().len(), 0, "{r}");
    let markers: Vec<String> = std::fs::read_dir(st.join("condemned"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        markers.iter().all(|m| m.starts_with(".tmp-")),
        "only leftovers of killed runs may remain: {markers:?}"
    );
    check_all(&st, t.path(), &seeds);
}
