//! A store on a file system that fills up during a checkpoint: the checkpoint fails with the
//! file system's own message, the program runs on to the output a native run gives, and the
//! agent never panics (exit code the program's).

use std::process::Command;
use std::time::Duration;

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

/// Fills `fs` with a file `filler` until only `free` bytes are left.
fn fill_leaving(fs: &std::path::Path, free: u64) {
    let filler = fs.join("filler");
    let _ = std::fs::remove_file(&filler);
    // Free blocks, reserved ones included: the tests run as root, which may use them.
    // SAFETY: statvfs(2) on a NUL-terminated path with a zeroed struct to fill.
    let avail = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        let p = std::ffi::CString::new(fs.as_os_str().as_encoded_bytes()).expect("path");
        assert_eq!(libc::statvfs(p.as_ptr(), &mut st), 0, "statvfs");
        st.f_bfree * st.f_frsize
    };
    if avail <= free {
        return;
    }
    let f = std::fs::File::create(&filler).expect("creating the filler");
    // The file's own extent blocks take some room too: shrink the request until it fits.
    let mut len = (avail - free) as libc::off_t;
    loop {
        // SAFETY: fallocate(2) on a file we own; allocates real blocks.
        let rc = unsafe { libc::fallocate(std::os::fd::AsRawFd::as_raw_fd(&f), 0, 0, len) };
        if rc == 0 {
            return;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "fallocate: {e}");
        assert!(len > 1 << 20, "cannot fill the file system: {e}");
        len -= 64 << 10;
    }
}

/// Files of the store whose names say they were left half-written.
fn temporary_files(store: &std::path::Path) -> Vec<String> {
    cairn_testkit::files_below(store)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".tmp-"))
        })
        .map(|p| p.display().to_string())
        .collect()
}

#[test]
fn fifty_checkpoints_into_a_filling_file_system_never_harm_the_job_or_leave_anything() {
    let _area = Area::enter(module_path!());
    let Some(fs) = SmallFs::mount(160) else {
        eprintln!("needs root to mount a small file system; runs in CI as root");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = fs.path().join("store");
    // Small packs: a checkpoint seals several, so failures also come after packs were sealed
    // and at the commit, not only while its first pack is written.
    cairn_testkit::store_ok(&store, &["store", "init", "--pack-mib", "1"]);
    let prog = cairn_testkit::Program::c("bigmem", &["24", "100000"]);
    let mut job = cairn_testkit::Job::start(&prog, "launch", &store, "fill", &[], dir.path(), true);
    job.wait_stdout("round 2");
    assert!(job.checkpoint(), "{}", job.log_text());
    let mut rng = cairn_testkit::Rng::new("full_disk::fifty");
    let (mut committed, mut failed) = (0, 0);
    for round in 0..50 {
        // Anything from a full disk to room for a whole incremental checkpoint (some MiB:
        // the program rewrites 1/64 of its memory every 0.1 s).
        let free = rng.range(0, 16 << 20);
        fill_leaving(fs.path(), free);
        let ends = |j: &cairn_testkit::Job| {
            let t = j.log_text();
            (
                t.matches("checkpoint committed").count(),
                t.matches("checkpoint failed").count(),
            )
        };
        let before = ends(&job);
        job.signal(libc::SIGUSR1);
        cairn_testkit::wait_for("the checkpoint to end", Duration::from_secs(60), || {
            ends(&job) != before
        });
        let after = ends(&job);
        committed += after.0 - before.0;
        failed += after.1 - before.1;
        std::fs::remove_file(fs.path().join("filler")).ok();
        assert!(
            job.running(),
            "round {round}: the job died:\n{}",
            job.log_text()
        );
        let verify = cairn_testkit::store_cmd(&store, &["verify"], &[]);
        assert!(
            verify.status.success(),
            "round {round} (free {free}): store does not verify:\n{}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
        let tmp = temporary_files(&store);
        assert!(tmp.is_empty(), "round {round}: left behind: {tmp:?}");
        let gc = cairn_testkit::store_ok(
            &store,
            &[
                "gc",
                "--dry-run",
                "--json",
                "--grace",
                "0",
                "--max-unused",
                "100",
            ],
        );
        let gc = cairn_testkit::json(&gc);
        let dead = gc["condemned"].as_array().map_or(0, Vec::len)
            + gc["waiting"].as_u64().unwrap_or(0) as usize;
        assert_eq!(
            dead, 0,
            "round {round} (free {free}): packs nothing references: {gc}"
        );
    }
    eprintln!("{committed} checkpoints committed, {failed} failed");
    assert!(
        failed > 0 && committed > 0,
        "the rounds must include both outcomes:\n{}",
        job.log_text()
    );
    assert_eq!(committed + failed, 50);
    // The job is whole: restarted from its newest generation it runs on.
    job.kill_all();
    let mut again =
        cairn_testkit::Job::start(&prog, "restart", &store, "fill", &[], dir.path(), false);
    let out = dir.path().join("stdout");
    let lines = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let at_restart = lines(&out);
    cairn_testkit::wait_for(
        "the restarted job to print",
        Duration::from_secs(60),
        || lines(&out) > at_restart + 2,
    );
    assert!(again.running(), "{}", again.log_text());
    again.kill_all();
    // What it printed, checkpoints, failures and restart included, is what a native run prints.
    let text = std::fs::read_to_string(&out).expect("stdout");
    let whole: Vec<&str> = text
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .collect();
    let rounds = whole.len() - 1;
    let native = Command::new(compile_c("bigmem"))
        .args(["24", &rounds.to_string()])
        .output()
        .expect("native run");
    let native = String::from_utf8_lossy(&native.stdout);
    assert_eq!(whole.concat(), native.trim_end_matches("done\n"));
    drop(fs);
}
