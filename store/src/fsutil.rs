//! File-system helpers: durable writes, directory fsync, unique names, fault injection.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, StoreError};

/// Mode of every file of a store: its owner's alone, whatever the umask.
pub(crate) const FILE_MODE: u32 = 0o600;

/// Mode of every directory of a store.
pub(crate) const DIR_MODE: u32 = 0o700;

/// Options that create a new file of the store (O_EXCL, mode [`FILE_MODE`]).
pub(crate) fn new_file_options() -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true).mode(FILE_MODE);
    o
}

/// Creates directory `p` with mode [`DIR_MODE`] whatever the umask; an existing directory is
/// an error of kind `AlreadyExists`.
pub(crate) fn create_private_dir(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().mode(DIR_MODE).create(p)?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(DIR_MODE))
}

/// fsync a directory so that renames and links inside it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    let f = File::open(dir).ctx(|| format!("opening {}", dir.display()))?;
    f.sync_all().ctx(|| format!("fsync {}", dir.display()))
}

/// Create `path` with O_EXCL, write `data`, fsync. Never overwrites.
pub(crate) fn write_new_durable(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    let mut f = new_file_options()
        .open(path)
        .ctx(|| format!("creating {}", path.display()))?;
    f.write_all(data)
        .ctx(|| format!("writing {}", path.display()))?;
    f.sync_all().ctx(|| format!("fsync {}", path.display()))
}

/// A name unique to this writer: host, pid and 64 random bits.
pub(crate) fn unique_writer_name() -> String {
    let r: u64 = rand::random();
    format!("{}-{}-{r:016x}", host_name(), std::process::id())
}

/// This host's name as session names carry it: letters, digits and dashes, at most 32.
pub(crate) fn host_name() -> String {
    let host =
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "host".into());
    host.trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect()
}

/// Fault injection for crash tests: when the environment variable `CAIRN_FAULT` equals
/// `stage`, the process exits at once with status 86, without running destructors, exactly
/// like a writer killed at that instant.
pub(crate) fn fault_point(stage: &str) {
    // Read once: this is called for every chunk appended to a pack.
    static FAULT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if let Some(v) = FAULT.get_or_init(|| std::env::var("CAIRN_FAULT").ok()) {
        if v == stage {
            eprintln!("cairn: injected fault at stage {stage}");
            std::process::exit(86);
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Modification time of a file, ms since the Unix epoch (0 when unknown).
pub(crate) fn mtime_ms(m: &std::fs::Metadata) -> u64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
