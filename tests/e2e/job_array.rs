//! A job array's first minute: many jobs start at once against a store that does not exist
//! yet, and every one of them runs and checkpoints into the one store they create together.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use cairn_testkit::Area;

#[test]
fn thirty_two_jobs_starting_at_once_create_one_store_and_all_checkpoint() {
    let _area = Area::enter(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("scratch/array-store");
    // Each job checkpoints on its own (--interval) and ends by itself; its program runs long
    // enough for a checkpoint to commit while 32 agents share two cores with other tests.
    let jobs: Vec<_> = (0..32)
        .map(|i| {
            Command::new(cairn_testkit::cairn())
                .args([
                    "run",
                    "--interval",
                    "0.3",
                    "--job",
                    &format!("task{i}"),
                    "--store",
                ])
                .arg(&store)
                .args(["--", "/bin/sh", "-c", "sleep 6; echo done"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("starting cairn run")
        })
        .collect();
    for (i, job) in jobs.into_iter().enumerate() {
        let out = job.wait_with_output().expect("waiting for cairn run");
        assert!(
            out.status.success(),
            "job {i} failed ({:?}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n", "job {i}");
    }
    for i in 0..32 {
        assert!(
            !cairn_testkit::generations_json(&store, &format!("task{i}")).is_empty(),
            "task{i} committed no generation"
        );
    }
    let verify = Command::new(cairn_testkit::cairn())
        .args(["verify", "--store"])
        .arg(&store)
        .output()
        .expect("cairn verify");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    // One store, nothing left beside it, private to its owner.
    let beside: Vec<_> = std::fs::read_dir(dir.path().join("scratch"))
        .expect("listing")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(beside, vec![std::ffi::OsString::from("array-store")]);
    let mode = std::fs::metadata(&store)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
}
