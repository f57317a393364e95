//! Condemned-pack markers (docs/gc.md): a pack is condemned by a marker file
//! `condemned/<pack>.json`; writers never deduplicate against a condemned pack's chunks, and
//! gc deletes it only after a grace period. Where the markers are, reading, writing and
//! removing them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::dir::StoreDir;
use crate::error::{IoContext, StoreError};
use crate::fsutil::{fsync_dir, mtime_ms, now_ms, unique_writer_name};
use crate::pack::TMP_PREFIX;

/// Directory of condemned-pack markers inside the store.
pub const CONDEMNED_DIR: &str = "condemned";
/// Suffix of condemned-pack markers.
const MARK_SUFFIX: &str = ".json";

/// Contents of a condemned-pack marker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condemnation {
    /// The pack.
    pub pack: String,
    /// When it was condemned, ms since the epoch (clock of the gc that condemned it).
    pub condemned_ms: u64,
    /// Which process condemned it (host-pid-random).
    pub by: String,
}

impl StoreDir {
    /// The directory of the markers.
    pub(crate) fn condemned_dir(&self) -> PathBuf {
        self.path().join(CONDEMNED_DIR)
    }

    /// Where the marker of `pack` is (or would be).
    pub(crate) fn marker_path(&self, pack: &str) -> PathBuf {
        self.condemned_dir().join(format!("{pack}{MARK_SUFFIX}"))
    }

    /// True when `pack` is condemned: writers must not deduplicate against its chunks.
    pub(crate) fn is_condemned(&self, pack: &str) -> bool {
        self.marker_path(pack).exists()
    }

    /// The condemnation of `pack`, if any. An unreadable marker still condemns the pack, with
    /// the time of the marker file.
    pub(crate) fn condemnation(&self, pack: &str) -> Result<Option<Condemnation>, StoreError> {
        let p = self.marker_path(pack);
        let text = match std::fs::read(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).ctx(|| format!("reading {}", p.display())),
        };
        match serde_json::from_slice::<Condemnation>(&text) {
            Ok(c) if c.pack == pack => Ok(Some(c)),
            _ => {
                let m = std::fs::metadata(&p).ctx(|| format!("stat {}", p.display()))?;
                Ok(Some(Condemnation {
                    pack: pack.to_string(),
                    condemned_ms: mtime_ms(&m),
                    by: "unknown (unreadable marker)".into(),
                }))
            }
        }
    }

    /// Names of every condemned pack (markers present), sorted.
    pub(crate) fn condemned_names(&self) -> Result<Vec<String>, StoreError> {
        let d = self.condemned_dir();
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).ctx(|| format!("listing {}", d.display())),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e.ctx(|| format!("listing {}", d.display()))?;
            if let Some(n) = e.file_name().to_str() {
                if !n.starts_with(TMP_PREFIX) {
                    if let Some(stem) = n.strip_suffix(MARK_SUFFIX) {
                        out.push(stem.to_string());
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Write the marker of `pack` (not synced: the caller syncs the directory once for a
    /// batch). Returns false when the pack was already condemned.
    pub(crate) fn write_marker(&self, pack: &str) -> Result<bool, StoreError> {
        if self.is_condemned(pack) {
            return Ok(false);
        }
        let d = self.condemned_dir();
        match crate::fsutil::create_private_dir(&d) {
            Ok(()) => fsync_dir(self.path())?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).ctx(|| format!("creating {}", d.display())),
        }
        let c = Condemnation {
            pack: pack.to_string(),
            condemned_ms: now_ms(),
            by: unique_writer_name(),
        };
        let text = serde_json::to_vec(&c)
            .map_err(|e| StoreError::InvalidArgument(format!("cannot encode marker: {e}")))?;
        let tmp = d.join(format!("{TMP_PREFIX}{}{MARK_SUFFIX}", c.by));
        // No fsync per marker: a marker lost in a crash only means the pack is not condemned;
        // the directory is synced once for the whole batch.
        {
            let mut f = crate::fsutil::new_file_options()
                .open(&tmp)
                .ctx(|| format!("creating {}", tmp.display()))?;
            std::io::Write::write_all(&mut f, &text)
                .ctx(|| format!("writing {}", tmp.display()))?;
        }
        let fin = self.marker_path(pack);
        // link(2) never replaces an existing marker (a concurrent gc may have condemned it).
        let linked = std::fs::hard_link(&tmp, &fin);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e).ctx(|| format!("creating {}", fin.display())),
        }
        Ok(true)
    }

    /// Remove the marker of `pack`, durably; a missing marker is not an error.
    pub(crate) fn remove_marker(&self, pack: &str) -> Result<(), StoreError> {
        let m = self.marker_path(pack);
        match std::fs::remove_file(&m) {
            Ok(()) => fsync_dir(&self.condemned_dir()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx(|| format!("removing {}", m.display())),
        }
    }
}
