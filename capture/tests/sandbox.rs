//! The sandbox: exit status pass-through, signal forwarding, pid namespace, and a checkpoint
//! of a program that has already exited.

use cairn_image::MemoryImageStore;
use cairn_sys::{Error, ExitStatus, Sandbox};
use std::ffi::OsString;
use std::time::Duration;

/// A single process that sleeps `secs` and exits with `code` (no child processes).
fn perl_sleep_exit(secs: f64, code: i32) -> Vec<OsString> {
    let script = format!("select(undef, undef, undef, {secs}); exit {code};");
    ["/usr/bin/perl", "-e", &script]
        .iter()
        .map(OsString::from)
        .collect()
}

fn sh(script: &str) -> Vec<OsString> {
    ["/bin/sh", "-c", script]
        .iter()
        .map(OsString::from)
        .collect()
}

#[test]
fn exit_code_is_passed_through() {
    let mut sb = Sandbox::launch(&sh("exit 7")).unwrap();
    assert_eq!(sb.wait().unwrap(), ExitStatus::Code(7));
    assert_eq!(sb.wait().unwrap().shell_code(), 7);
}

#[test]
fn death_by_signal_is_passed_through() {
    let mut sb = Sandbox::launch(&sh("kill -SEGV $$")).unwrap();
    let st = sb.wait().unwrap();
    assert_eq!(st, ExitStatus::Signal(libc::SIGSEGV));
    assert_eq!(st.shell_code(), 128 + 11);
}

#[test]
fn program_is_pid_2_in_its_namespace() {
    let sb = Sandbox::launch(&sh("sleep 5")).unwrap();
    assert_eq!(sb.program_ns_pid(), 2);
    let status = std::fs::read_to_string(format!("/proc/{}/status", sb.program_pid())).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert!(nspid.trim_end().ends_with("\t2"), "{nspid}");
    sb.kill().unwrap();
}

#[test]
fn sigterm_is_forwarded_and_pidfd_becomes_readable() {
    let mut sb = Sandbox::launch(&[OsString::from("sleep"), OsString::from("30")]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    sb.signal(libc::SIGTERM).unwrap();
    let mut pfd = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&sb.pidfd()),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, 10_000) };
    assert_eq!(n, 1, "pidfd did not become readable");
    assert_eq!(sb.wait().unwrap(), ExitStatus::Signal(libc::SIGTERM));
}

#[test]
fn missing_program_is_a_clear_error() {
    let err = Sandbox::launch(&[OsString::from("/nonexistent/cairn-prog")]).unwrap_err();
    assert!(err.to_string().contains("cannot execute"), "{err}");
    let err = Sandbox::launch(&[OsString::from("no-such-cairn-program")]).unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}

#[test]
fn checkpoint_of_exited_program_fails_cleanly() {
    let mut sb = Sandbox::launch(&sh("exit 3")).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut store = MemoryImageStore::new();
    let err = cairn_capture::checkpoint(&sb, &mut store).unwrap_err();
    assert!(matches!(err, Error::Exited { .. }), "{err:?}");
    assert_eq!(sb.wait().unwrap(), ExitStatus::Code(3));
}

#[test]
fn checkpoint_leaves_program_running_and_captures_state() {
    let mut sb = Sandbox::launch(&perl_sleep_exit(0.3, 5)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut store = MemoryImageStore::new();
    let img = cairn_capture::checkpoint(&sb, &mut store).unwrap();
    let p = &img.processes[0];
    assert_eq!(p.pid, 2);
    assert_eq!(p.threads.len(), 1);
    assert!(p.vmas.iter().any(|v| v.stored_bytes() > 0));
    assert!(p.vdso.is_some());
    assert!(store.stored_bytes() > 0);
    // The image is plain serde data.
    let json = serde_json::to_string(&img).unwrap();
    assert!(json.contains("\"vmas\""));
    assert_eq!(sb.wait().unwrap(), ExitStatus::Code(5));
}

/// A sink that kills the program while its memory is being saved.
struct KillingSink(i32);

impl cairn_image::MemorySink for KillingSink {
    fn put_region(
        &mut self,
        _pid: i32,
        _index: usize,
        _len: u64,
        _source: cairn_image::RegionSource<'_>,
    ) -> std::io::Result<()> {
        // SAFETY: kill(2) on the program's pid.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
        std::thread::sleep(Duration::from_millis(20));
        Err(std::io::Error::other("store failed"))
    }
    fn put_file(&mut self, _: i32, _: i32, _: &mut dyn std::io::Read) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn program_killed_during_checkpoint_reports_exited_and_status() {
    let mut sb = Sandbox::launch(&perl_sleep_exit(5.0, 0)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let err = cairn_capture::checkpoint(&sb, &mut KillingSink(sb.program_pid())).unwrap_err();
    assert!(matches!(err, Error::Exited { .. }), "{err:?}");
    assert_eq!(sb.wait().unwrap(), ExitStatus::Signal(libc::SIGKILL));
}

#[test]
fn failing_sink_leaves_program_running() {
    struct Failing;
    impl cairn_image::MemorySink for Failing {
        fn put_region(
            &mut self,
            _: i32,
            _: usize,
            _: u64,
            _: cairn_image::RegionSource<'_>,
        ) -> std::io::Result<()> {
            Err(std::io::Error::other("disk full"))
        }
        fn put_file(&mut self, _: i32, _: i32, _: &mut dyn std::io::Read) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut sb = Sandbox::launch(&perl_sleep_exit(0.3, 6)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let err = cairn_capture::checkpoint(&sb, &mut Failing).unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    assert_eq!(sb.wait().unwrap(), ExitStatus::Code(6));
}

#[test]
fn program_with_children_is_captured_and_keeps_running() {
    let mut sb = Sandbox::launch(&sh("sleep 0.4; exit 9")).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut store = MemoryImageStore::new();
    let image = cairn_capture::checkpoint(&sb, &mut store).unwrap();
    assert_eq!(image.processes.len(), 2, "{:?}", image.processes);
    assert_eq!(image.processes[1].ppid, image.processes[0].pid);
    assert!(image.processes[1].exe.ends_with("/sleep"));
    assert_eq!(sb.wait().unwrap(), ExitStatus::Code(9));
}
