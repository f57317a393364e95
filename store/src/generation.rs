//! Generations: ids, metadata, and the manifest files whose creation is the commit point.
//!
//! A manifest is `generations/<id, 20 digits>.gen`: one line of JSON ([`Generation`]), then a
//! line `blake3 <hex of the JSON line's bytes>`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, StoreError};
use crate::node::StreamRef;

/// Directory of generation manifests inside the store.
pub const GEN_DIR: &str = "generations";
/// Suffix of manifest files.
pub const GEN_SUFFIX: &str = ".gen";

/// A generation's id: unique in the store, increasing in commit order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GenerationId(pub u64);

impl fmt::Display for GenerationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a writer did: all byte counts are exact.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteStats {
    /// Logical bytes of all memory and byte streams written.
    pub logical_bytes: u64,
    /// Of which were all-zero chunks (never stored).
    pub zero_bytes: u64,
    /// Non-zero bytes taken unchanged from a previous stream without reading them
    /// (`put_memory_incremental`).
    #[serde(default)]
    pub unchanged_bytes: u64,
    /// Data and node chunks produced (including duplicates and zero chunks).
    pub chunks: u64,
    /// Chunks newly stored by this writer.
    pub new_chunks: u64,
    /// Uncompressed bytes of the new chunks.
    pub new_raw_bytes: u64,
    /// Bytes of new chunks in packs (after compression): what this writer added to disk,
    /// apart from pack trailers.
    pub new_stored_bytes: u64,
    /// Packs sealed.
    pub packs: u64,
}

impl WriteStats {
    /// Add another writer's numbers.
    pub fn add(&mut self, o: &WriteStats) {
        self.logical_bytes += o.logical_bytes;
        self.zero_bytes += o.zero_bytes;
        self.unchanged_bytes += o.unchanged_bytes;
        self.chunks += o.chunks;
        self.new_chunks += o.new_chunks;
        self.new_raw_bytes += o.new_raw_bytes;
        self.new_stored_bytes += o.new_stored_bytes;
        self.packs += o.packs;
    }
}

/// Caller-supplied description of a generation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationInfo {
    /// `"files"` for `cairn save`, `"checkpoint"` for process images.
    pub kind: String,
    /// When writing started, ms since the epoch.
    pub start_ms: u64,
    /// When writing ended, ms since the epoch.
    pub end_ms: u64,
    /// How long the program was frozen, ms.
    #[serde(default)]
    pub frozen_ms: u64,
    /// Writer statistics (sum over all writers of the generation).
    pub stats: WriteStats,
    /// Memory pages examined by capture.
    #[serde(default)]
    pub pages_scanned: u64,
    /// Memory pages capture skipped (untouched or unchanged).
    #[serde(default)]
    pub pages_skipped: u64,
}

/// A committed generation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    /// Manifest format (1).
    pub format: u32,
    /// Id.
    pub id: GenerationId,
    /// Job name.
    pub job: String,
    /// Commit time, ms since the epoch.
    pub time_ms: u64,
    /// Host that committed it.
    pub host: String,
    /// Root of the generation's tree.
    pub root: StreamRef,
    /// Description and statistics.
    pub info: GenerationInfo,
}

/// Why a generation the index lists but whose manifest is gone cannot be used.
pub const LOST_MANIFEST: &str =
    "its manifest is missing although the index lists it (deleted or lost): it cannot be restored";

/// A generation that `latest_consistent` passed over, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The generation.
    pub id: GenerationId,
    /// Why it was not used.
    pub reason: String,
}

/// A manifest file's id and its contents, or why it could not be read.
pub type ScannedGeneration = (GenerationId, Result<Generation, StoreError>);

/// Path of the manifest of generation `id`.
pub fn manifest_path(dir: &Path, id: GenerationId) -> PathBuf {
    dir.join(GEN_DIR).join(format!("{:020}{GEN_SUFFIX}", id.0))
}

/// Serialize a manifest with its checksum line.
pub fn encode_manifest(g: &Generation) -> Result<Vec<u8>, StoreError> {
    let json = serde_json::to_string(g)
        .map_err(|e| StoreError::InvalidArgument(format!("cannot serialize generation: {e}")))?;
    let hash = blake3::hash(json.as_bytes());
    Ok(format!("{json}\nblake3 {}\n", hash.to_hex()).into_bytes())
}

/// Parse and check a manifest.
pub fn decode_manifest(path: &Path, b: &[u8]) -> Result<Generation, StoreError> {
    let bad = |why: &str| StoreError::Corrupt(format!("manifest {}: {why}", path.display()));
    let text = std::str::from_utf8(b).map_err(|_| bad("not UTF-8"))?;
    let mut lines = text.split('\n');
    let json = lines.next().ok_or_else(|| bad("empty"))?;
    let sum = lines
        .next()
        .ok_or_else(|| bad("no checksum (truncated?)"))?;
    if sum.strip_prefix("blake3 ") != Some(blake3::hash(json.as_bytes()).to_hex().as_str()) {
        return Err(bad("checksum mismatch"));
    }
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(&e.to_string()))?;
    if v.get("format").and_then(|f| f.as_u64()) != Some(1) {
        return Err(bad("unsupported manifest format"));
    }
    serde_json::from_value(v).map_err(|e| bad(&e.to_string()))
}

/// Read one manifest file.
pub fn read_manifest(path: &Path) -> Result<Generation, StoreError> {
    let b = std::fs::read(path).ctx(|| format!("reading {}", path.display()))?;
    decode_manifest(path, &b)
}

/// Ids of all manifest files present (sorted ascending). Temporary files are ignored.
pub fn list_ids(dir: &Path) -> Result<Vec<GenerationId>, StoreError> {
    let gd = dir.join(GEN_DIR);
    let mut ids = Vec::new();
    for e in std::fs::read_dir(&gd).ctx(|| format!("listing {}", gd.display()))? {
        let e = e.ctx(|| format!("listing {}", gd.display()))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(num) = name.strip_suffix(GEN_SUFFIX) else {
            continue;
        };
        if num.len() == 20 && num.bytes().all(|c| c.is_ascii_digit()) {
            if let Ok(n) = num.parse::<u64>() {
                ids.push(GenerationId(n));
            }
        }
    }
    ids.sort();
    Ok(ids)
}

/// Check a job name: 1..=128 characters from `[A-Za-z0-9._-]`, not starting with '.'.
pub fn check_job_name(job: &str) -> Result<(), StoreError> {
    let ok = !job.is_empty()
        && job.len() <= 128
        && !job.starts_with('.')
        && job
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidArgument(format!(
            "invalid job name {job:?} (use 1-128 characters from A-Z a-z 0-9 . _ -, not starting with .)"
        )))
    }
}
