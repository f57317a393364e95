//! Capture → kill → restore round trips of C programs; output must equal a native run.

mod common;

use cairn_capture::ExitStatus;
use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn counter_survives_checkpoint_kill_restore() {
    let dir = TempDir::new("counter");
    let prog = compile(&dir, "counter", &[]);
    let native = dir.path("native.txt");
    let st = Command::new(&prog)
        .arg(&native)
        .arg("150")
        .status()
        .unwrap();
    assert!(st.success());
    let out = dir.path("out.txt");
    let st = run_with_cycles(os(&[&prog, &out, &"150"]), 1, Duration::from_millis(120));
    assert_eq!(st, ExitStatus::Code(0));
    let a = std::fs::read_to_string(&native).unwrap();
    let b = std::fs::read_to_string(&out).unwrap();
    // getpid() inside the sandbox is 2 both before and after restore; natively it differs.
    let strip = |s: &str| {
        s.lines()
            .map(|l| l.split(' ').next().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&a), strip(&b));
    assert!(
        b.lines()
            .filter(|l| *l != "done")
            .all(|l| l.ends_with(" 2")),
        "pid must stay 2:\n{b}"
    );
}
