//! The checkpoint → kill → restore cycle as an ordinary user (sandbox in a user namespace).
//! Run as root, the test re-executes itself as the user `cairn-test` (scripts/setup.sh creates
//! it); run as an ordinary user, it does the cycle directly.

mod common;

use cairn_sys::ExitStatus;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const PROG_ENV: &str = "CAIRN_UNPRIV_PROG";
const OUT_ENV: &str = "CAIRN_UNPRIV_OUT";

fn expected() -> Vec<String> {
    (0..150)
        .map(|i| i.to_string())
        .chain(["done".to_string()])
        .collect()
}

fn check_output(out: &Path) {
    let b = std::fs::read_to_string(out).unwrap();
    let got: Vec<String> = b
        .lines()
        .map(|l| l.split(' ').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(got, expected());
}

fn cycle_here(prog: &Path, out: &Path) {
    // SAFETY: geteuid cannot fail.
    assert_ne!(unsafe { libc::geteuid() }, 0, "must run unprivileged");
    // stdio is /dev/null: the test's own stdout may be a file this user cannot reopen.
    let st = run_with_cycles(os(&[&prog, &out, &"150"]), 2, Duration::from_millis(100));
    assert_eq!(st, ExitStatus::Code(0));
    check_output(out);
}

/// Run the test `name` of this test binary again as the user `cairn-test` (root only),
/// with `envs` telling the inner run what to do, in `dir`; panics if it fails.
fn rerun_as_cairn_test(dir: &Scratch, name: &str, envs: &[(&str, &Path)]) {
    let exe = dir.path("unprivileged-test");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let have_user = Command::new("id")
        .arg("cairn-test")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(have_user, "user cairn-test missing: run scripts/setup.sh");
    let st = Command::new("runuser")
        .args(["-u", "cairn-test", "--"])
        .arg(&exe)
        .args(["--exact", name, "--test-threads=1"])
        .envs(envs.iter().map(|(k, v)| (*k, *v)))
        .current_dir(dir.root())
        .status()
        .unwrap();
    assert!(st.success(), "unprivileged run of {name} failed: {st}");
}

#[test]
fn unprivileged_checkpoint_restore_cycle() {
    if let (Some(prog), Some(out)) = (std::env::var_os(PROG_ENV), std::env::var_os(OUT_ENV)) {
        cycle_here(Path::new(&prog), Path::new(&out));
        return;
    }
    let dir = Scratch::new();
    std::fs::set_permissions(dir.root(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let prog = compile(&dir, "counter", &[]);
    let out = dir.path("out.txt");
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        cycle_here(&prog, &out);
        return;
    }
    rerun_as_cairn_test(
        &dir,
        "unprivileged_checkpoint_restore_cycle",
        &[(PROG_ENV, &prog), (OUT_ENV, &out)],
    );
    check_output(&out);
}

const TREE_ENV: &str = "CAIRN_UNPRIV_TREE";

/// A parent with three children sharing memory and a pipe, as an ordinary user.
fn tree_cycle_here(prog: &Path, out: &Path) {
    // SAFETY: geteuid cannot fail.
    assert_ne!(unsafe { libc::geteuid() }, 0, "must run unprivileged");
    let f = std::fs::File::create(out).unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    use std::os::fd::AsRawFd;
    let (n, w) = (null.as_raw_fd(), f.as_raw_fd());
    let st = run_with_cycles_stdio(
        os(&[&prog, &"120"]),
        Some([n, w, w]),
        2,
        Duration::from_millis(100),
    );
    assert_eq!(
        st,
        ExitStatus::Code(0),
        "{}",
        std::fs::read_to_string(out).unwrap()
    );
}

#[test]
fn unprivileged_process_tree_cycle() {
    if let (Some(prog), Some(out)) = (std::env::var_os(TREE_ENV), std::env::var_os(OUT_ENV)) {
        tree_cycle_here(Path::new(&prog), Path::new(&out));
        return;
    }
    let dir = Scratch::new();
    std::fs::set_permissions(dir.root(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let prog = compile(&dir, "shmcount", &[]);
    let native = Command::new(&prog).arg("120").output().unwrap();
    assert!(native.status.success());
    let out = dir.path("out.txt");
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        tree_cycle_here(&prog, &out);
    } else {
        rerun_as_cairn_test(
            &dir,
            "unprivileged_process_tree_cycle",
            &[(TREE_ENV, &prog), (OUT_ENV, &out)],
        );
    }
    assert_eq!(
        String::from_utf8_lossy(&native.stdout),
        std::fs::read_to_string(&out).unwrap()
    );
}

const SYSV_ENV: &str = "CAIRN_UNPRIV_SYSV";

/// System V shared memory between a parent and children as an ordinary user: segment ids come
/// back through the job's own IPC namespace (shm_next_id is writable there).
#[test]
fn unprivileged_system_v_shared_memory_cycle() {
    if let (Some(prog), Some(out)) = (std::env::var_os(SYSV_ENV), std::env::var_os(OUT_ENV)) {
        tree_cycle_here_args(Path::new(&prog), &["300"], Path::new(&out));
        return;
    }
    let dir = Scratch::new();
    std::fs::set_permissions(dir.root(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let prog = compile(&dir, "sysvshm", &[]);
    let native = Command::new(&prog).arg("300").output().unwrap();
    assert!(native.status.success());
    let out = dir.path("out.txt");
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        tree_cycle_here_args(&prog, &["300"], &out);
    } else {
        rerun_as_cairn_test(
            &dir,
            "unprivileged_system_v_shared_memory_cycle",
            &[(SYSV_ENV, &prog), (OUT_ENV, &out)],
        );
    }
    assert_eq!(
        String::from_utf8_lossy(&native.stdout),
        std::fs::read_to_string(&out).unwrap()
    );
}

/// [`tree_cycle_here`] with other arguments.
fn tree_cycle_here_args(prog: &Path, args: &[&str], out: &Path) {
    // SAFETY: geteuid cannot fail.
    assert_ne!(unsafe { libc::geteuid() }, 0, "must run unprivileged");
    let f = std::fs::File::create(out).unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    use std::os::fd::AsRawFd;
    let (n, w) = (null.as_raw_fd(), f.as_raw_fd());
    let mut argv = os(&[&prog]);
    argv.extend(args.iter().map(std::ffi::OsString::from));
    let st = run_with_cycles_stdio(argv, Some([n, w, w]), 2, Duration::from_millis(250));
    assert_eq!(
        st,
        ExitStatus::Code(0),
        "{}",
        std::fs::read_to_string(out).unwrap()
    );
}
