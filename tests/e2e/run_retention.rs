//! `cairn run --keep-last N`: generations are pruned as checkpoints are taken, so a long job
//! with frequent checkpoints stays bounded in the store, and the output is still exact.

use std::process::Command;

use cairn_testkit::Area;

fn generation_count(store: &std::path::Path, job: &str) -> usize {
    let out = Command::new(cairn_testkit::cairn())
        .args(["generations", "--json", "--job", job, "--store"])
        .arg(store)
        .output()
        .expect("cairn generations");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v.as_array()
        .or_else(|| v.get("generations").and_then(|g| g.as_array()))
        .map_or(0, Vec::len)
}

#[test]
fn keep_last_bounds_the_generations_of_a_running_job() {
    let _area = Area::enter(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let prog = cairn_testkit::compile_c("counter");
    let native_file = dir.path().join("native.txt");
    let native = Command::new(&prog)
        .args(["400"])
        .arg(&native_file)
        .arg("5000")
        .output()
        .expect("native run");
    assert!(native.status.success());

    let file = dir.path().join("cairn.txt");
    let out = Command::new(cairn_testkit::cairn())
        .args([
            "run",
            "--job",
            "bounded",
            "--interval",
            "0.2",
            "--keep-last",
            "2",
            "--store",
        ])
        .arg(&store)
        .arg("--")
        .arg(&prog)
        .arg("400")
        .arg(&file)
        .arg("5000")
        .env("CAIRN_GC_GRACE", "0")
        .output()
        .expect("cairn run");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cairn run failed: {log}");
    let committed = log.matches("checkpoint committed").count();
    assert!(
        committed >= 4,
        "only {committed} checkpoints were taken: {log}"
    );
    assert!(
        log.contains("retention:"),
        "no retention step was reported: {log}"
    );
    assert_eq!(generation_count(&store, "bounded"), 2, "{log}");
    // Disk use is bounded too: the automatic gc after the last checkpoint left no pack
    // without a live chunk and nothing condemned (a dry run finds nothing to reclaim).
    let gc = Command::new(cairn_testkit::cairn())
        .args([
            "gc",
            "--dry-run",
            "--grace",
            "0",
            "--max-unused",
            "100",
            "--json",
        ])
        .arg("--store")
        .arg(&store)
        .output()
        .expect("cairn gc");
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&gc.stdout).expect("json");
    assert_eq!(r["condemned"].as_array().map(Vec::len), Some(0), "{r}");
    assert_eq!(r["deleted"].as_array().map(Vec::len), Some(0), "{r}");
    assert_eq!(r["reclaimable_bytes"].as_u64(), Some(0), "{r}");
    assert_eq!(out.stdout, native.stdout);
    assert_eq!(std::fs::read(&file).ok(), std::fs::read(&native_file).ok());
}

#[test]
fn launch_applies_every_retention_rule_and_refuses_them_with_a_coordinator() {
    let _area = Area::enter(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let prog = cairn_testkit::compile_c("counter");
    let file = dir.path().join("cairn.txt");
    // The rules combine as a union: the newest of this hour is also among the 3 newest.
    let out = Command::new(cairn_testkit::cairn())
        .args(["launch", "--job", "solo", "--interval", "0.2"])
        .args(["--keep-last", "3", "--keep-hourly", "1", "--store"])
        .arg(&store)
        .arg("--")
        .arg(&prog)
        .args(["400"])
        .arg(&file)
        .arg("5000")
        .env("CAIRN_GC_GRACE", "0")
        .output()
        .expect("cairn launch");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cairn launch failed: {log}");
    let committed = log.matches("checkpoint committed").count();
    assert!(committed >= 5, "only {committed} checkpoints: {log}");
    assert_eq!(generation_count(&store, "solo"), 3, "{log}");

    let refused = Command::new(cairn_testkit::cairn())
        .args([
            "launch",
            "--job",
            "c",
            "--coord-port",
            "1",
            "--keep-within",
            "1h",
        ])
        .arg("--store")
        .arg(&store)
        .args(["--", "true"])
        .output()
        .expect("cairn launch");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(err.contains("cairn prune"), "{err}");
}
