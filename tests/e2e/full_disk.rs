//! A store on a file system that fills up during a checkpoint: the checkpoint fails with the
//! file system's own message, the program runs on to the output a native run gives, and the
//! agent never panics (exit code the program's).

use std::process::Command;

use cairn_testkit::{compile_c, Area, SmallFs};

#[test]
fn a_checkpoint_into_a_full_file_system_fails_and_the_program_finishes() {
    let _area = Area::enter(module_path!());
    let Some(fs) = SmallFs::mount(96) else {
        eprintln!("needs root to mount a small file system; runs in CI as root");
        return;
    };
    let prog = compile_c("bigmem");
    let native = Command::new(&prog)
        .args(["200", "30"])
        .output()
        .expect("native run");
    assert!(native.status.success());
    let out = Command::new(cairn_testkit::cairn())
        .args(["launch", "--job", "big", "--interval", "0.5", "--store"])
        .arg(fs.path().join("store"))
        .arg("--")
        .arg(&prog)
        .args(["200", "30"])
        .output()
        .expect("cairn launch");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(out.stdout, native.stdout, "{err}");
    assert!(
        err.contains("checkpoint failed, nothing committed") && err.contains("No space left"),
        "{err}"
    );
    drop(fs);
}
