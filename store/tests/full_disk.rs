//! A store on a file system that fills up: every write fails cleanly with an error (never a
//! panic), the generations committed before stay sound, and a later writer works again once
//! there is room.

use cairn_store::{GenerationInfo, InitOptions, Store};
use std::path::Path;
use std::process::Command;

/// An ext4 file system of `mib` MiB (an image file, loop-mounted: direct I/O like a real
/// disk) mounted at a fresh directory; unmounted on drop.
struct SmallFs {
    image: tempfile::TempDir,
    mnt: tempfile::TempDir,
}

impl SmallFs {
    fn mount(mib: u64) -> Option<SmallFs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
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
        Some(SmallFs { image, mnt })
    }
    fn path(&self) -> &Path {
        self.mnt.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.mnt.path()).status();
        let _ = &self.image;
    }
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn save(store: &Store, job: &str, data: &[u8]) -> Result<(), cairn_store::StoreError> {
    let mut w = store.writer()?;
    let blob = w.put_blob(data)?;
    let root = w.put_tree(vec![("data".into(), blob)])?;
    let stats = w.finish()?;
    let info = GenerationInfo {
        kind: "files".into(),
        stats,
        ..Default::default()
    };
    store.commit(job, &root, info).map(drop)
}

#[test]
fn a_full_file_system_fails_the_write_and_keeps_what_was_committed() {
    let Some(fs) = SmallFs::mount(48) else {
        eprintln!("needs root to mount a small file system; runs in CI as root");
        return;
    };
    let store = Store::init(&fs.path().join("store"), InitOptions::default()).unwrap();
    let first = random(4 << 20, 1);
    save(&store, "small", &first).expect("a small generation fits");
    // 96 MiB of incompressible data into what is left of 48 MiB: the write fails.
    for attempt in 0..3 {
        let err = save(&store, "big", &random(96 << 20, 7 + attempt))
            .expect_err("96 MiB cannot fit in 48 MiB");
        let text = err.to_string();
        assert!(
            text.contains("No space left") || text.contains("stopped"),
            "attempt {attempt}: {text}"
        );
    }
    // What was committed before is whole.
    let report = store.verify(true).expect("verify");
    assert!(report.ok, "{report:?}");
    let g = store.generations(Some("small")).unwrap();
    assert_eq!(g.len(), 1);
    let r = store.reader(g[0].id).unwrap();
    assert_eq!(r.read_all(&r.lookup("data").unwrap()).unwrap(), first);
    assert!(store.generations(Some("big")).unwrap().is_empty());
}
