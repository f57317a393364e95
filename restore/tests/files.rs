//! Files the job writes: after checkpoint → run on → kill -9 → restore cycles, a log opened
//! with O_APPEND, stdout redirected (>>) to a file and a state file rewritten in place end
//! byte-identical to a native run.

mod common;

use cairn_capture::{CheckpointOptions, FileCapture};
use cairn_image::{MemoryImageStore, ProcessTreeImage};
use cairn_sys::{ExitStatus, Sandbox};
use common::*;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const STEPS: &str = "400";

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// Checkpoint with `opts`, let the program run on for `run_on`, kill it, restore it.
fn cycle_run_on(
    mut sb: Sandbox,
    opts: &CheckpointOptions,
    run_on: Duration,
) -> (Sandbox, ProcessTreeImage) {
    let mut store = MemoryImageStore::new();
    let image = cairn_capture::checkpoint_with(&sb, &mut store, opts).expect("checkpoint");
    let json = serde_json::to_string(&image).expect("serialize");
    let image: ProcessTreeImage = serde_json::from_str(&json).expect("deserialize");
    std::thread::sleep(run_on);
    sb.kill().expect("kill");
    assert_eq!(sb.wait().expect("wait"), ExitStatus::Signal(9));
    let restored = cairn_restore::restore(&image, &store).expect("restore");
    (restored, image)
}

/// Native run vs. a run with `cycles` checkpoint/run-on/kill/restore cycles; compares stdout,
/// the log and (when `state`) the state file. Returns the images taken.
fn differential(opts: CheckpointOptions, state: bool, cycles: usize) -> Vec<ProcessTreeImage> {
    let dir = Scratch::new();
    let prog = compile(&dir, "writer", &[]);
    let st_arg = |name: &str| {
        if state {
            dir.path(name).to_string_lossy().into_owned()
        } else {
            "-".to_string()
        }
    };
    let native_out = File::create(dir.path("native.out")).unwrap();
    let st = Command::new(&prog)
        .arg(dir.path("native.log"))
        .arg(st_arg("native.state"))
        .arg(STEPS)
        .stdout(Stdio::from(native_out))
        .status()
        .unwrap();
    assert!(st.success(), "native run failed: {st}");

    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .unwrap();
    let out = OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.path("cairn.out"))
        .unwrap();
    let (n, o) = (null.as_raw_fd(), out.as_raw_fd());
    let argv = os(&[
        &prog,
        &dir.path("cairn.log"),
        &st_arg("cairn.state"),
        &STEPS,
    ]);
    let mut sb = Sandbox::launch_with(cairn_sys::ChildSpec::Exec {
        argv,
        stdio: Some([n, o, n]),
    })
    .expect("launch");
    drop(out);
    let mut images = Vec::new();
    for k in 0..cycles {
        std::thread::sleep(Duration::from_millis(60 + 25 * k as u64));
        let (r, image) = cycle_run_on(sb, &opts, Duration::from_millis(90));
        images.push(image);
        sb = r;
    }
    assert_eq!(sb.wait().expect("wait"), ExitStatus::Code(0));
    let cairn_out = read(&dir.path("cairn.out"));
    assert!(cairn_out.ends_with("done\n"), "output:\n{cairn_out}");
    assert_eq!(read(&dir.path("native.out")), cairn_out, "stdout differs");
    assert_eq!(
        read(&dir.path("native.log")),
        read(&dir.path("cairn.log")),
        "log differs"
    );
    if state {
        assert_eq!(
            read(&dir.path("native.state")),
            read(&dir.path("cairn.state")),
            "state differs"
        );
    }
    images
}

#[test]
fn appended_and_rewritten_files_match_native_run() {
    let images = differential(CheckpointOptions::default(), true, 3);
    for im in &images {
        // stdout, log and state are recorded once each, with their contents.
        assert_eq!(im.files.len(), 3, "{:?}", im.files);
        assert!(im.files.iter().all(|f| f.content.is_some()));
        assert!(im.files.iter().any(|f| f.path.ends_with("/cairn.log")));
    }
}

#[test]
fn above_the_limit_append_only_files_are_truncated() {
    let opts = CheckpointOptions {
        file_capture_max: FileCapture::UpTo(0),
        ..Default::default()
    };
    let images = differential(opts, false, 3);
    for im in &images {
        assert_eq!(im.files.len(), 2, "{:?}", im.files);
        assert!(im.files.iter().all(|f| f.content.is_none() && f.size > 0));
    }
}

#[test]
fn capture_off_records_no_files() {
    let dir = Scratch::new();
    let prog = compile(&dir, "writer", &[]);
    let null = File::create("/dev/null").unwrap();
    let n = null.as_raw_fd();
    let mut sb = Sandbox::launch_with(cairn_sys::ChildSpec::Exec {
        argv: os(&[&prog, &dir.path("log"), &"-", &STEPS]),
        stdio: Some([n, n, n]),
    })
    .expect("launch");
    std::thread::sleep(Duration::from_millis(50));
    let mut store = MemoryImageStore::new();
    let opts = CheckpointOptions {
        file_capture_max: FileCapture::Off,
        ..Default::default()
    };
    let image = cairn_capture::checkpoint_with(&sb, &mut store, &opts).expect("checkpoint");
    assert!(image.files.is_empty());
    let image = cairn_capture::checkpoint(&sb, &mut store).expect("checkpoint");
    assert_eq!(image.files.len(), 1);
    sb.kill().expect("kill");
    sb.wait().expect("wait");
}

#[test]
fn truncated_file_without_contents_is_a_clear_restore_error() {
    let dir = Scratch::new();
    let prog = compile(&dir, "writer", &[]);
    let log = dir.path("log");
    let null = File::create("/dev/null").unwrap();
    let n = null.as_raw_fd();
    let mut sb = Sandbox::launch_with(cairn_sys::ChildSpec::Exec {
        argv: os(&[&prog, &log, &"-", &STEPS]),
        stdio: Some([n, n, n]),
    })
    .expect("launch");
    std::thread::sleep(Duration::from_millis(80));
    let mut store = MemoryImageStore::new();
    let opts = CheckpointOptions {
        file_capture_max: FileCapture::UpTo(0),
        ..Default::default()
    };
    let image = cairn_capture::checkpoint_with(&sb, &mut store, &opts).expect("checkpoint");
    sb.kill().expect("kill");
    sb.wait().expect("wait");
    File::create(&log).unwrap();
    let err = match cairn_restore::restore(&image, &store) {
        Ok(_) => panic!("restore must fail"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(&*log.to_string_lossy()) && err.contains("not captured"),
        "{err}"
    );
}
