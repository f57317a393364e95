//! The `cairn` binary under test and the store commands the tests run through it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `cairn` binary under test: `CARGO_BIN_EXE_cairn` when Cargo sets it at run time, else
/// the `cairn` next to the test binary's `deps/` directory (where `cargo test` builds it for
/// the package's integration tests).
pub fn cairn() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        let path = std::env::var_os("CARGO_BIN_EXE_cairn")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let exe = std::env::current_exe().expect("locating the test binary");
                exe.parent()
                    .and_then(Path::parent)
                    .expect("the test binary lives in target/<profile>/deps")
                    .join("cairn")
            });
        assert!(
            path.is_file(),
            "the cairn binary is not at {} (run the tests through cargo test)",
            path.display()
        );
        path.into_os_string()
            .into_string()
            .expect("a UTF-8 path to the cairn binary")
    })
}

/// Runs `cairn ARGS` against the store `store` (via `CAIRN_STORE`), without the fault-injection
/// and gc-grace variables of the caller's environment, plus `env`.
pub fn store_cmd(store: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(cairn());
    c.args(args)
        .env("CAIRN_STORE", store)
        .env_remove("CAIRN_FAULT")
        .env_remove("CAIRN_GC_GRACE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("running cairn")
}

/// [`store_cmd`] that must succeed; returns its stdout.
pub fn store_ok(store: &Path, args: &[&str]) -> String {
    let o = store_cmd(store, args, &[]);
    assert!(
        o.status.success(),
        "cairn {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `cairn generations --json --job JOB` on `store`: the job's generations, oldest first.
pub fn generations_json(store: &Path, job: &str) -> Vec<serde_json::Value> {
    let out = store_ok(store, &["generations", "--json", "--job", job]);
    serde_json::from_str(&out).expect("parsing cairn generations --json")
}
