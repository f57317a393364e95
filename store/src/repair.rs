//! `cairn store repair`: a store whose config.json is lost or damaged gets one again, made
//! from what the store itself holds (docs/store-format.md, "Repairing config.json").
//!
//! Only `format` matters to a reader: the repaired config says 3, which reads every store
//! (earlier formats are subsets); the codec follows from the codecs the packs use; the store
//! id is taken from the index when it still has one (else a new one is drawn and the index is
//! rebuilt by the next verb); the memory chunk size — which decides whether new checkpoints
//! share chunks with the old ones — is the most common size of the chunks in the packs that is
//! a multiple of 4 KiB (memory streams cut every chunk but a region's last at exactly that
//! size). The rest takes the defaults and is said to.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use crate::config::{Compression, InitOptions, StoreConfig, CONFIG_FILE};
use crate::dir::PACK_DIR;
use crate::error::{IoContext, StoreError};
use crate::fsutil::{fsync_dir, unique_writer_name, write_new_durable};
use crate::generation::GEN_DIR;
use crate::index::INDEX_FILE;
use crate::pack::{read_trailer, Codec, PACK_SUFFIX, TMP_PREFIX};

/// What [`repair_config`] did.
#[derive(Clone, Debug, Serialize)]
pub struct RepairReport {
    /// False when config.json was sound and nothing was changed.
    pub repaired: bool,
    /// The config now in place.
    pub config: StoreConfig,
    /// How each setting was found, one line each.
    pub how: Vec<String>,
    /// Where a damaged config.json was moved, if there was one.
    pub moved_aside: Option<String>,
    /// Packs whose trailer could not be read (left out of the inference; see `verify`).
    pub unreadable_packs: usize,
}

/// Recreates `DIR/config.json` from the packs and the index when it is missing or damaged.
pub fn repair_config(dir: &Path) -> Result<RepairReport, StoreError> {
    match StoreConfig::load(dir) {
        Ok(config) => {
            return Ok(RepairReport {
                repaired: false,
                config,
                how: vec!["config.json is sound: nothing to repair".into()],
                moved_aside: None,
                unreadable_packs: 0,
            })
        }
        Err(StoreError::NewerFormat { .. }) => {
            return Err(StoreError::InvalidArgument(format!(
                "{} was made by a newer cairn; repair it with that version",
                dir.join(CONFIG_FILE).display()
            )))
        }
        Err(_) => {}
    }
    if !dir.join(PACK_DIR).is_dir() || !dir.join(GEN_DIR).is_dir() {
        return Err(StoreError::NotAStore(dir.to_path_buf()));
    }
    let mut how = Vec::new();
    let mut sizes: HashMap<u32, u64> = HashMap::new();
    let mut lz4 = false;
    let mut unreadable_packs = 0;
    let pd = dir.join(PACK_DIR);
    for e in std::fs::read_dir(&pd).ctx(|| format!("listing {}", pd.display()))? {
        let e = e.ctx(|| format!("listing {}", pd.display()))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(TMP_PREFIX) || !name.ends_with(PACK_SUFFIX) {
            continue;
        }
        match read_trailer(&e.path()) {
            Ok(entries) => {
                for en in entries {
                    lz4 |= en.codec == Codec::Lz4;
                    if en.raw_len >= 4096 && en.raw_len.is_multiple_of(4096) {
                        *sizes.entry(en.raw_len).or_default() += 1;
                    }
                }
            }
            Err(_) => unreadable_packs += 1,
        }
    }
    let defaults = InitOptions::default();
    let chunk = sizes
        .iter()
        // Weighted by the bytes they hold: page-granular deltas add many small chunks, the
        // full chunks of first checkpoints hold most of the bytes.
        .max_by_key(|(size, n)| (u64::from(**size) * **n, **size))
        .map(|(s, _)| *s);
    let memory_chunk_size = match chunk {
        Some(c) => {
            how.push(format!(
                "memory_chunk_size {c}: the most common 4 KiB-multiple chunk size in the packs"
            ));
            c
        }
        None => {
            how.push(format!(
                "memory_chunk_size {}: the default (no memory chunks in the packs)",
                defaults.memory_chunk_size
            ));
            defaults.memory_chunk_size
        }
    };
    let compression = if lz4 {
        how.push("compression lz4: the packs hold LZ4 chunks".into());
        Compression::Lz4
    } else {
        how.push("compression zstd: the packs hold no LZ4 chunk".into());
        Compression::Zstd
    };
    let mut config = StoreConfig::new(&InitOptions {
        memory_chunk_size,
        compression,
        ..defaults
    })?;
    match index_store_id(dir) {
        Some(id) => {
            how.push("store_id: the one the index (cairn.db) records".into());
            config.store_id = id;
        }
        None => how.push(
            "store_id: a new one (the index has none; it is rebuilt by the next verb)".into(),
        ),
    }
    how.push(
        "memory_fanout, cdc sizes, zstd_level, pack_target_size: the defaults (they only \
         shape new chunks and nodes; old generations stay readable)"
            .into(),
    );
    let fin = dir.join(CONFIG_FILE);
    let moved_aside = if fin.exists() {
        let aside = dir.join(format!("{CONFIG_FILE}.damaged-{}", unique_writer_name()));
        std::fs::rename(&fin, &aside).ctx(|| format!("moving {} aside", fin.display()))?;
        Some(aside.display().to_string())
    } else {
        None
    };
    let text = serde_json::to_string_pretty(&config)
        .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
    let tmp = dir.join(format!(
        "{TMP_PREFIX}{}-{CONFIG_FILE}",
        unique_writer_name()
    ));
    write_new_durable(&tmp, format!("{text}\n").as_bytes())?;
    std::fs::rename(&tmp, &fin).ctx(|| format!("renaming to {}", fin.display()))?;
    fsync_dir(dir)?;
    Ok(RepairReport {
        repaired: true,
        config,
        how,
        moved_aside,
        unreadable_packs,
    })
}

/// The store id the index records, when the index can still be read.
fn index_store_id(dir: &Path) -> Option<String> {
    let p = dir.join(INDEX_FILE);
    if !p.exists() {
        return None;
    }
    let conn = Connection::open_with_flags(&p, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    conn.query_row("SELECT value FROM meta WHERE key='store_id'", [], |r| {
        r.get::<_, String>(0)
    })
    .optional()
    .ok()
    .flatten()
    .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}
