//! The store's `config.json`: format version, store id, chunking and compression settings.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, StoreError};

/// The newest store format this build reads and writes: 2 = format 1 plus the LZ4 codec
/// (stores made with `compression: lz4` by earlier builds); 3 = format 2 plus sliced
/// children in stream nodes (node version 2: page-granular memory deltas). New stores are
/// format 3 whatever their codec, so that older builds refuse them with "newer format"
/// instead of failing on their nodes; stores of format 1 and 2 are read and written as they
/// are (their memory deltas stay whole chunks).
pub const FORMAT_VERSION: u32 = 3;

/// The first format whose stream nodes may hold slices of data chunks.
pub const FORMAT_SLICES: u32 = 3;

/// How new chunks are compressed (docs/store-decisions.md, "Compression").
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// zstd at `zstd_level` (the default: smallest stores).
    #[default]
    Zstd,
    /// LZ4 blocks: ~25 % larger than zstd -1 on python-like memory, but 2.7x faster to
    /// decompress and several times faster to compress.
    Lz4,
}

/// Name of the config file in the store directory.
pub const CONFIG_FILE: &str = "config.json";

/// Settings chosen at `init`, fixed for the life of the store (except `zstd_level` and
/// `pack_target_size`, which only affect new writes).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StoreConfig {
    /// Store format version (3 for new stores; 1 or 2 for stores made by earlier builds).
    pub format: u32,
    /// Random id of this store (hex); also recorded in the index to detect a foreign cairn.db.
    pub store_id: String,
    /// Fixed chunk size of memory streams, bytes (multiple of 4096).
    pub memory_chunk_size: u32,
    /// Entries per interior node of a memory stream's Merkle tree.
    pub memory_fanout: u32,
    /// fastcdc minimum chunk size of byte streams.
    pub cdc_min_size: u32,
    /// fastcdc average chunk size of byte streams.
    pub cdc_avg_size: u32,
    /// fastcdc maximum chunk size of byte streams.
    pub cdc_max_size: u32,
    /// Average entries per interior node of a byte stream (content-defined node boundaries).
    pub bytes_fanout_avg: u32,
    /// zstd level for new chunks (chunks are stored raw when compression does not pay).
    pub zstd_level: i32,
    /// Codec for new chunks (absent in format-1 configs: zstd).
    #[serde(default)]
    pub compression: Compression,
    /// A writer seals its pack once it reaches this size, bytes.
    pub pack_target_size: u64,
}

/// Options for [`crate::Store::init`]; `Default` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// See [`StoreConfig::memory_chunk_size`].
    pub memory_chunk_size: u32,
    /// See [`StoreConfig::zstd_level`].
    pub zstd_level: i32,
    /// See [`StoreConfig::compression`].
    pub compression: Compression,
    /// See [`StoreConfig::pack_target_size`].
    pub pack_target_size: u64,
    /// See [`StoreConfig::cdc_avg_size`] (min = avg/4, max = avg*4).
    pub cdc_avg_size: u32,
    /// See [`StoreConfig::memory_fanout`].
    pub memory_fanout: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            // 32 KiB chunks, 32 children per node: docs/store-decisions.md ("Memory chunk
            // size"). Stores made with the earlier defaults (64 KiB, 256) keep theirs.
            memory_chunk_size: 32 * 1024,
            zstd_level: 1,
            compression: Compression::Zstd,
            pack_target_size: 32 * 1024 * 1024,
            cdc_avg_size: 64 * 1024,
            memory_fanout: 32,
        }
    }
}

impl StoreConfig {
    /// A new config with a fresh random store id.
    pub fn new(opts: &InitOptions) -> Result<StoreConfig, StoreError> {
        let cs = opts.memory_chunk_size;
        if cs < 4096 || !cs.is_multiple_of(4096) || cs > 16 * 1024 * 1024 {
            return Err(StoreError::InvalidArgument(format!(
                "memory chunk size {cs} must be a multiple of 4096 between 4 KiB and 16 MiB"
            )));
        }
        let avg = opts.cdc_avg_size;
        if !(1024..=4 * 1024 * 1024).contains(&avg) {
            return Err(StoreError::InvalidArgument(format!(
                "cdc average size {avg} must be between 1 KiB and 4 MiB"
            )));
        }
        if !(-7..=22).contains(&opts.zstd_level) {
            return Err(StoreError::InvalidArgument(format!(
                "zstd level {} must be between -7 and 22",
                opts.zstd_level
            )));
        }
        if opts.pack_target_size < 1024 * 1024 {
            return Err(StoreError::InvalidArgument(
                "pack target size must be at least 1 MiB".into(),
            ));
        }
        if !(2..=65536).contains(&opts.memory_fanout) {
            return Err(StoreError::InvalidArgument(format!(
                "memory fan-out {} must be between 2 and 65536",
                opts.memory_fanout
            )));
        }
        let id: u128 = rand::random();
        Ok(StoreConfig {
            format: FORMAT_VERSION,
            store_id: format!("{id:032x}"),
            memory_chunk_size: cs,
            memory_fanout: opts.memory_fanout,
            cdc_min_size: avg / 4,
            cdc_avg_size: avg,
            cdc_max_size: avg * 4,
            bytes_fanout_avg: 64,
            zstd_level: opts.zstd_level,
            compression: opts.compression,
            pack_target_size: opts.pack_target_size,
        })
    }

    /// Read and check `DIR/config.json`.
    pub fn load(dir: &Path) -> Result<StoreConfig, StoreError> {
        let p = dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(
                    if dir.join("packs").is_dir() && dir.join("generations").is_dir() {
                        StoreError::ConfigLost(dir.to_path_buf())
                    } else if dir.exists() {
                        StoreError::NotAStore(dir.to_path_buf())
                    } else {
                        StoreError::NoSuchStore(dir.to_path_buf())
                    },
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                return Err(StoreError::NotAStore(dir.to_path_buf()))
            }
            Err(e) => return Err(e).ctx(|| format!("reading {}", p.display())),
        };
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", p.display())))?;
        let format = v
            .get("format")
            .and_then(|f| f.as_u64())
            .ok_or_else(|| StoreError::Corrupt(format!("{}: no format version", p.display())))?;
        if format > u64::from(FORMAT_VERSION) {
            return Err(StoreError::NewerFormat {
                path: dir.to_path_buf(),
                found: u32::try_from(format).unwrap_or(u32::MAX),
                supported: FORMAT_VERSION,
            });
        }
        let cfg: StoreConfig = serde_json::from_value(v)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", p.display())))?;
        if cfg.memory_chunk_size < 4096
            || !cfg.memory_chunk_size.is_multiple_of(4096)
            || cfg.memory_fanout < 2
            || cfg.bytes_fanout_avg < 2
            || cfg.cdc_min_size < 64
            || cfg.cdc_min_size > cfg.cdc_avg_size
            || cfg.cdc_avg_size > cfg.cdc_max_size
        {
            return Err(StoreError::Corrupt(format!(
                "{}: invalid chunking settings",
                p.display()
            )));
        }
        Ok(cfg)
    }

    /// Whether memory deltas may reference slices of older chunks (format 3 and later).
    pub fn slices(&self) -> bool {
        self.format >= FORMAT_SLICES
    }
}
