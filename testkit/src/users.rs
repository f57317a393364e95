//! Running as the unprivileged test user.

use std::ffi::OsString;
use std::fs;
use std::path::Path;

/// The unprivileged user scripts/setup.sh creates for the tests.
pub const TEST_USER: &str = "cairn-test";

/// True when the tests run as root (effective user id 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Makes `path` (and its parents) readable and writable by everyone, for tests that run as an
/// unprivileged user.
pub fn open_up(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mut p = path.to_path_buf();
    loop {
        if let Ok(meta) = fs::metadata(&p) {
            let mode = meta.permissions().mode();
            let want = if meta.is_dir() {
                mode | 0o777
            } else {
                mode | 0o666
            };
            let _ = fs::set_permissions(&p, fs::Permissions::from_mode(want));
        }
        if p.as_os_str() == std::env::temp_dir().as_os_str() || !p.pop() {
            break;
        }
    }
}

/// The start of a command line that runs the rest as `user` (`setpriv`, which execs the
/// command itself: runuser would fork and keep the signals, and the pid would not stay a
/// session or group leader), or nothing without a user.
pub fn as_user(user: Option<&str>) -> Vec<OsString> {
    match user {
        Some(u) => [
            "setpriv".to_string(),
            format!("--reuid={u}"),
            format!("--regid={u}"),
            "--init-groups".to_string(),
            "--".to_string(),
        ]
        .map(OsString::from)
        .to_vec(),
        None => Vec::new(),
    }
}
