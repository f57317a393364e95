//! Images and programs cairn must refuse with a clear error, leaving everything else intact.

mod common;

use cairn_image::MemoryImageStore;
use cairn_sys::{Error, ExitStatus, Sandbox};
use common::*;
use std::time::Duration;

fn captured_sleeper() -> (Sandbox, cairn_image::ProcessTreeImage, MemoryImageStore) {
    let sb = Sandbox::launch(&os(&[&"/bin/sleep", &"5"])).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut store = MemoryImageStore::new();
    let image = cairn_capture::checkpoint(&sb, &mut store).unwrap();
    (sb, image, store)
}

#[test]
fn missing_cpu_xstate_feature_is_refused() {
    let (mut sb, mut image, store) = captured_sleeper();
    // Claim a state component (bit 62) no CPU enables.
    image.processes[0].threads[0].xstate[519] |= 0x40;
    let err = cairn_restore::restore(&image, &store).unwrap_err();
    assert!(matches!(err, Error::Incompatible(_)), "{err:?}");
    assert!(err.to_string().contains("CPU"), "{err}");
    sb.kill().unwrap();
    assert_eq!(sb.wait().unwrap(), ExitStatus::Signal(9));
}

#[test]
fn different_vdso_is_refused() {
    let (mut sb, mut image, store) = captured_sleeper();
    if let Some(v) = image.processes[0].vdso.as_mut() {
        v.hash = "0".repeat(64);
    }
    let err = cairn_restore::restore(&image, &store).unwrap_err();
    assert!(err.to_string().contains("vdso"), "{err}");
    sb.kill().unwrap();
    sb.wait().unwrap();
}

#[test]
fn process_with_unknown_parent_is_refused() {
    let (mut sb, mut image, store) = captured_sleeper();
    let mut p = image.processes[0].clone();
    p.pid = 7;
    p.ppid = 6;
    image.processes.push(p);
    let err = cairn_restore::restore(&image, &store).unwrap_err();
    assert!(matches!(err, Error::Incompatible(_)), "{err:?}");
    assert!(err.to_string().contains("parent 6"), "{err}");
    sb.kill().unwrap();
    sb.wait().unwrap();
}

/// A python3 job whose connected socket leads outside the job: the checkpoint fails with a
/// message naming the process, the fd and `want`, and the job finishes unharmed (exit 7).
fn outside_socket_refused(connect: &str, want: &str) {
    let script = format!(
        "import os, socket, time\n\
         {connect}\n\
         pid = os.fork()\n\
         time.sleep(0.5)\n\
         if pid == 0: os._exit(0)\n\
         os.waitpid(pid, 0)\n\
         raise SystemExit(7)\n"
    );
    let mut sb = Sandbox::launch(&os(&[&"/usr/bin/python3", &"-c", &script])).unwrap();
    std::thread::sleep(Duration::from_millis(250));
    let mut store = MemoryImageStore::new();
    let err = cairn_capture::checkpoint(&sb, &mut store).unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("process ") && msg.contains(" fd ") && msg.contains(want),
        "{msg}"
    );
    assert_eq!(sb.wait().unwrap(), ExitStatus::Code(7));
}

#[test]
fn unix_socket_connected_outside_the_job_fails_checkpoint() {
    let dir = Scratch::new();
    let path = dir.path("daemon.sock");
    let _l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    outside_socket_refused(
        &format!(
            "s = socket.socket(socket.AF_UNIX); s.connect({:?})",
            path.to_str().unwrap()
        ),
        "outside the job",
    );
}

#[test]
fn tcp_connection_to_outside_fails_checkpoint() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    outside_socket_refused(
        &format!("s = socket.create_connection(('127.0.0.1', {port}))"),
        "whose peer is not a process of the job",
    );
}

#[test]
fn unsupported_fd_fails_checkpoint_and_program_continues() {
    let dir = Scratch::new();
    let prog = compile(&dir, "pidfd", &[]);
    let mut sb = Sandbox::launch(&os(&[&prog])).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut store = MemoryImageStore::new();
    let err = cairn_capture::checkpoint(&sb, &mut store).unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    assert!(err.to_string().contains("fd 3"), "{err}");
    assert_eq!(sb.wait().unwrap(), ExitStatus::Code(4));
}

#[test]
fn missing_working_directory_is_a_clear_error() {
    let (mut sb, mut image, store) = captured_sleeper();
    image.processes[0].cwd = "/nonexistent/cairn-cwd".into();
    let err = cairn_restore::restore(&image, &store).unwrap_err();
    assert!(err.to_string().contains("working directory"), "{err}");
    sb.kill().unwrap();
    sb.wait().unwrap();
}
