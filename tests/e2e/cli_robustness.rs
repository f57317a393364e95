//! Bad input and unusual surroundings never make cairn panic: a clear message and the
//! documented exit code instead.

use std::process::{Command, Stdio};

use cairn_testkit::{as_user, cairn, is_root, TEST_USER};

/// A store with two saved generations of job `j`.
fn store_with_generations(dir: &std::path::Path) -> std::path::PathBuf {
    let store = dir.join("store");
    let init = Command::new(cairn())
        .args(["store", "init"])
        .arg(&store)
        .output()
        .expect("cairn store init");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let data = dir.join("data.txt");
    for i in 0..2 {
        std::fs::write(&data, format!("version {i}\n").repeat(1000)).expect("writing data");
        let out = Command::new(cairn())
            .args(["save", "--job", "j", "--store"])
            .arg(&store)
            .arg(&data)
            .output()
            .expect("cairn save");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    store
}

#[test]
fn verbs_whose_output_is_closed_early_end_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_generations(dir.path());
    let verbs: &[&[&str]] = &[
        &["generations"],
        &["generations", "--json"],
        &["prune", "--job", "j", "--keep-last", "1", "--dry-run"],
        &["gc", "--dry-run"],
        &["store", "stats"],
        &["verify"],
        &["verify", "--read-data"],
    ];
    for verb in verbs {
        let mut child = Command::new(cairn())
            .args(*verb)
            .arg("--store")
            .arg(&store)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting cairn");
        // Whoever reads stopped reading at once (`| head -0`).
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("waiting for cairn");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{verb:?} panicked: {err}");
        assert!(
            out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
            "{verb:?} ended with {:?}: {err}",
            out.status
        );
    }
}

#[test]
fn an_interval_too_long_for_a_duration_is_a_usage_error() {
    for interval in ["1e20", "99999999999999999999"] {
        let out = Command::new(cairn())
            .args([
                "launch",
                "--job",
                "j",
                "--store",
                "/nonexistent/store",
                "--interval",
            ])
            .arg(interval)
            .args(["--", "/bin/true"])
            .output()
            .expect("cairn launch");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{interval}: {err}");
        assert!(err.contains("too long"), "{interval}: {err}");
        assert!(!err.contains("panicked"), "{interval}: {err}");
    }
}

#[test]
fn a_directory_given_as_the_program_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(cairn())
        .args(["launch", "--job", "j", "--store"])
        .arg(dir.path().join("store"))
        .arg("--")
        .arg(dir.path())
        .output()
        .expect("cairn launch");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is a directory"), "{err}");
}

#[test]
fn a_store_this_user_may_not_read_is_a_usage_error_said_once() {
    if !is_root() {
        eprintln!("needs root to make a store of another user; runs in CI as root");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    cairn_testkit::open_up(dir.path());
    let store = store_with_generations(dir.path());
    let mut argv = as_user(Some(TEST_USER));
    argv.push(cairn().into());
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .args(["generations", "--store"])
        .arg(&store)
        .output()
        .expect("cairn generations as the test user");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    assert_eq!(
        err.matches("Permission denied").count(),
        1,
        "the cause is said once: {err}"
    );
}
