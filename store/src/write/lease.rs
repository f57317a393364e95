//! Writer leases and the removal of what an abandoned writer stored (docs/gc.md, "A failed
//! checkpoint leaves nothing").
//!
//! A writer session holds a lease, an empty file `writers/<session>`, from before its first
//! deduplication lookup until its generation is committed (or it gives up). A session that gives
//! up removes its own sealed packs at once when no other session could have deduplicated
//! against them: it first hides them (renamed to a `.tmp-` name, which readers and writers
//! ignore), then lists the leases; with no other live lease the hidden packs are deleted,
//! otherwise they are put back and condemned, and gc deletes them after its grace period.
//! Any session that looked at one of the packs before it was hidden took its lease before
//! that look, so the listing sees it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::dir::StoreDir;
use crate::error::{IoContext, StoreError};
use crate::fsutil::{create_private_dir, fsync_dir, new_file_options};
use crate::pack::{PACK_SUFFIX, TMP_PREFIX};

/// Directory of the leases inside the store.
pub const WRITERS_DIR: &str = "writers";

/// A lease of another host older than this is taken for the leftover of a crash.
const FOREIGN_LEASE_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The lease of one writer session; removed when dropped.
pub(crate) struct Lease {
    path: PathBuf,
}

impl Lease {
    /// Takes the lease of session `name` (host-pid-random).
    pub(crate) fn take(dir: &StoreDir, name: &str) -> Result<Lease, StoreError> {
        let d = dir.path().join(WRITERS_DIR);
        match create_private_dir(&d) {
            Ok(()) => fsync_dir(dir.path())?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).ctx(|| format!("creating {}", d.display())),
        }
        let path = d.join(name);
        new_file_options()
            .open(&path)
            .ctx(|| format!("creating the writer lease {}", path.display()))?;
        Ok(Lease { path })
    }

    /// True when a session other than this one may be running: a lease of this host whose
    /// process is alive, or a lease of another host younger than a day. Leases of dead
    /// processes of this host are removed on the way. An unreadable directory counts as
    /// "maybe".
    fn others_may_run(&self) -> bool {
        let Some(dir) = self.path.parent() else {
            return true;
        };
        let Ok(rd) = std::fs::read_dir(dir) else {
            return true;
        };
        let own = self.path.file_name();
        let host = crate::fsutil::host_name();
        for e in rd {
            let Ok(e) = e else { return true };
            if Some(e.file_name().as_os_str()) == own {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            match lease_owner(&name) {
                Some((h, pid)) if h == host => {
                    if Path::new(&format!("/proc/{pid}")).exists() {
                        return true;
                    }
                    let _ = std::fs::remove_file(e.path());
                }
                _ => {
                    let young = e
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok())
                        .is_none_or(|age| age < FOREIGN_LEASE_LIFETIME);
                    if young {
                        return true;
                    }
                }
            }
        }
        false
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Host and pid of a session name `host-pid-random` (the host may contain dashes).
fn lease_owner(name: &str) -> Option<(&str, u32)> {
    let (rest, _random) = name.rsplit_once('-')?;
    let (host, pid) = rest.rsplit_once('-')?;
    Some((host, pid.parse().ok()?))
}

/// What became of an abandoned session's packs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Abandoned {
    /// Packs deleted at once.
    pub deleted: usize,
    /// Packs condemned (another session may have used them): gc deletes them later.
    pub condemned: usize,
}

/// Removes the sealed, unindexed packs `packs` of an abandoned session holding `lease`
/// (module documentation). Best effort: on any error the packs stay, as ordinary unreferenced
/// packs that gc finds.
pub(crate) fn abandon_packs(dir: &StoreDir, lease: &Lease, packs: &[String]) -> Abandoned {
    let mut out = Abandoned::default();
    if packs.is_empty() {
        return out;
    }
    let pack_dir = dir.pack_dir();
    let mut hidden = Vec::new();
    for p in packs {
        dir.known().forget_pack(p);
        dir.forget_pack_file(p);
        let from = pack_dir.join(format!("{p}{PACK_SUFFIX}"));
        let to = pack_dir.join(format!("{TMP_PREFIX}abandoned-{p}{PACK_SUFFIX}"));
        if std::fs::rename(&from, &to).is_ok() {
            hidden.push((p, from, to));
        }
    }
    if lease.others_may_run() {
        for (p, from, to) in hidden {
            if std::fs::rename(&to, &from).is_ok() && dir.write_marker(p).is_ok() {
                out.condemned += 1;
            }
        }
        let _ = fsync_dir(&dir.condemned_dir());
    } else {
        for (_, _, to) in hidden {
            if std::fs::remove_file(&to).is_ok() {
                out.deleted += 1;
            }
        }
    }
    let _ = fsync_dir(&pack_dir);
    out
}

#[cfg(test)]
mod tests {
    use super::lease_owner;

    #[test]
    fn a_session_name_gives_its_host_and_pid() {
        assert_eq!(
            lease_owner("node-7-123-00ff00ff00ff00ff"),
            Some(("node-7", 123))
        );
        assert_eq!(lease_owner("h-1-r"), Some(("h", 1)));
        assert_eq!(lease_owner("nonsense"), None);
    }
}
