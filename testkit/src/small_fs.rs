//! A small real file system for tests that fill a disk.

use std::path::Path;
use std::process::Command;

/// An ext4 file system of a few MiB in an image file, loop-mounted (direct I/O like a real
/// disk) at a fresh directory; unmounted on drop.
pub struct SmallFs {
    _image: tempfile::TempDir,
    mnt: tempfile::TempDir,
}

impl SmallFs {
    /// Makes and mounts an ext4 of `mib` MiB; `None` when not root (mounting needs it).
    pub fn mount(mib: u64) -> Option<SmallFs> {
        if !crate::is_root() {
            return None;
        }
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
        Some(SmallFs { _image: image, mnt })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.mnt.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.mnt.path()).status();
    }
}
