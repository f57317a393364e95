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

/// Builds `out` once per test process with `build(tmp)`, which must create `tmp` (a file or
/// a directory), then renames it to `out`; `what` names the tool in a failure.
fn build_once(out: PathBuf, what: &str, build: impl FnOnce(&Path) -> Command) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if out.exists() {
        return out;
    }
    let mut tmp = out.clone().into_os_string();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let status = build(&tmp)
        .status()
        .unwrap_or_else(|e| panic!("running {what}: {e}"));
    assert!(status.success(), "{what} failed for {}", out.display());
    fs::rename(&tmp, &out).expect("renaming compiled program");
    out
}

/// Compiles tests/programs/NAME.c with `cc` (once per test process) and returns the binary.
pub fn compile_c(name: &str) -> PathBuf {
    let src = programs_dir().join(format!("{name}.c"));
    build_once(bin_dir().join(name), "cc", |tmp| {
        let mut cmd = Command::new("cc");
        cmd.args(["-O2", "-pthread", "-Wall", "-o"])
            .arg(tmp)
            .arg(&src);
        cmd
    })
}

/// Compiles tests/programs/NAME.go with `go build` (once per test process) and returns the
/// binary.
pub fn compile_go(name: &str) -> PathBuf {
    let src = programs_dir().join(format!("{name}.go"));
    build_once(bin_dir().join(format!("go-{name}")), "go build", |tmp| {
        let mut cmd = Command::new("go");
        cmd.arg("build").arg("-o").arg(tmp).arg(&src);
        cmd
    })
}

/// Compiles tests/programs/CLASS.java with `javac` (once per test process) and returns the
/// directory holding its classes (the class path to run CLASS from).
pub fn compile_java(class: &str) -> PathBuf {
    let src = programs_dir().join(format!("{class}.java"));
    build_once(bin_dir().join(format!("java-{class}")), "javac", |tmp| {
        let mut cmd = Command::new("javac");
        cmd.arg("-d").arg(tmp).arg(&src);
        cmd
    })
}
