//! The test programs of `tests/programs`, compiled on first use.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Directory holding the test programs' sources.
pub fn programs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/programs")
}

/// A per-test-process scratch directory for compiled programs.
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("creating a temporary directory"))
        .path()
}

/// Compiles tests/programs/NAME.c with `cc` (once per test process) and returns the binary.
pub fn compile_c(name: &str) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = bin_dir().join(name);
    if out.exists() {
        return out;
    }
    let src = programs_dir().join(format!("{name}.c"));
    let tmp = bin_dir().join(format!("{name}.tmp{}", std::process::id()));
    let status = Command::new("cc")
        .args(["-O2", "-pthread", "-Wall", "-o"])
        .arg(&tmp)
        .arg(&src)
        .status()
        .expect("running cc");
    assert!(status.success(), "cc failed for {}", src.display());
    fs::rename(&tmp, &out).expect("renaming compiled program");
    out
}
