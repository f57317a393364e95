//! Running one test in a process of its own, for a test that changes what the whole process
//! shares (its environment): the other tests of the binary run beside it in threads.

use std::process::Command;

/// The variable naming the test a child process runs for [`in_own_process`].
const OWN_PROCESS_ENV: &str = "CAIRN_TESTKIT_OWN_PROCESS";

/// Runs `body` in a fresh process of the test binary: called from the test `test` (its full
/// name as libtest lists it, e.g. `area::name`), this re-runs the binary with only that test
/// selected, where the same call runs `body`; the test fails when the child does (with its
/// output in the message).
pub fn in_own_process(test: &str, body: impl FnOnce()) {
    if std::env::var_os(OWN_PROCESS_ENV).is_some_and(|t| t == test) {
        body();
        return;
    }
    let exe = std::env::current_exe().expect("locating the test binary");
    let out = Command::new(exe)
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(OWN_PROCESS_ENV, test)
        .output()
        .expect("running the test in a process of its own");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{test} failed in its own process:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
