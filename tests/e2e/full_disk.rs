//! A store on a file system that fills up during a checkpoint: the checkpoint fails with the
//! file system's own message, the program runs on to the output a native run gives, and the
//! agent never panics (exit code the program's).

use std::path::Path;
use std::process::Command;

use cairn_testkit::{compile_c, is_root, Area};

/// An ext4 file system of `mib` MiB in an image file, loop-mounted (direct I/O like a real
/// disk) at a fresh directory; unmounted on drop.
struct SmallFs {
    _image: tempfile::TempDir,
    mnt: tempfile::TempDir,
}

impl SmallFs {
    fn mount(mib: u64) -> SmallFs {
        let image = tempfile::tempdir().expect("tempdir");
        let mnt = tempfile::tempdir().expect("tempdir");
        let file = image.path().join("fs.img");
        let run = |cmd: &mut Command| {
            let st = cmd.status().expect("running a file-system command");
            assert!(st.success(), "{cmd:?}");
        };
        run(Command::new("truncate")
            .arg("-s")
            .arg(format!("{mib}M"))
            .arg(&file));
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&file));
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&file)
            .arg(mnt.path()));
        SmallFs { _image: image, mnt }
    }
    fn path(&self) -> &Path {
        self.mnt.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.mnt.path()).status();
    }
}

#[test]
fn a_checkpoint_into_a_full_file_system_fails_and_the_program_finishes() {
    let _area = Area::enter(module_path!());
    if !is_root() {
        eprintln!("needs root to mount a small file system; runs in CI as root");
        return;
    }
    let prog = compile_c("bigmem");
    let native = Command::new(&prog)
        .args(["200", "30"])
        .output()
        .expect("native run");
    assert!(native.status.success());
    let fs = SmallFs::mount(96);
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
