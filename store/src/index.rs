//! The SQLite index (cairn.db): chunk → pack location, packs, generations.
//!
//! It is an index, not the truth: everything in it can be rebuilt from packs and generation
//! manifests (`Store::reindex`). Opened with the rollback journal (journal_mode=DELETE), a busy
//! timeout and no memory mapping, because shared file systems do not support WAL or mmap.

use std::path::Path;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::error::{IoContext, StoreError};
use crate::generation::Generation;
use crate::id::ChunkId;
use crate::pack::{Codec, PackEntry};

/// File name of the index inside the store directory.
pub const INDEX_FILE: &str = "cairn.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS packs(name TEXT PRIMARY KEY, size INTEGER NOT NULL,
    chunks INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chunks(id BLOB PRIMARY KEY, pack TEXT NOT NULL,
    offset INTEGER NOT NULL, stored_len INTEGER NOT NULL, raw_len INTEGER NOT NULL,
    codec INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_by_pack ON chunks(pack);
CREATE TABLE IF NOT EXISTS generations(id INTEGER PRIMARY KEY, job TEXT NOT NULL,
    time_ms INTEGER NOT NULL, kind TEXT NOT NULL, logical_bytes INTEGER NOT NULL,
    new_bytes INTEGER NOT NULL, root_kind TEXT NOT NULL, root_len INTEGER NOT NULL,
    root BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS generations_by_job ON generations(job, id);
CREATE TABLE IF NOT EXISTS forgetting(id INTEGER PRIMARY KEY);
";

/// Generations being pruned: listed here (in one transaction) before their manifests are
/// removed, and dropped with their index rows after, so that a generation the index lists
/// without a manifest is told apart from one a prune is removing.
const FORGETTING: &str = "CREATE TABLE IF NOT EXISTS forgetting(id INTEGER PRIMARY KEY);";

/// A chunk's location as recorded in the index.
pub type ChunkLoc = (String, PackEntry);

/// Aggregate numbers for `cairn store stats`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct IndexTotals {
    /// Distinct stored chunks.
    pub chunks: u64,
    /// Their uncompressed bytes.
    pub raw_bytes: u64,
    /// Their bytes in packs.
    pub stored_bytes: u64,
    /// Packs.
    pub packs: u64,
    /// Bytes of all packs (payloads plus trailers).
    pub pack_bytes: u64,
    /// Generations.
    pub generations: u64,
    /// Sum of the logical bytes of all generations.
    pub logical_bytes: u64,
}

/// An open index connection.
pub struct Index {
    pub(crate) conn: Connection,
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(120))?;
    // Rollback journal, full sync, no mmap: safe on NFS/Lustre/GPFS.
    let mode: String = conn.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(StoreError::Index(format!(
            "cannot set journal mode (got {mode})"
        )));
    }
    // A 64 MiB page cache (SQLite's default is 2 MiB) keeps the chunk index of a large
    // checkpoint in memory: dedup lookups of random ids otherwise re-read index pages with a
    // pread each (found by profiling 16 KiB-chunk ingests).
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA mmap_size=0; PRAGMA cache_size=-65536;")?;
    Ok(())
}

impl Index {
    /// Create a new index for the store `store_id` (the file must not exist).
    pub fn create(dir: &Path, store_id: &str) -> Result<Index, StoreError> {
        Index::create_at(&dir.join(INDEX_FILE), store_id)
    }

    /// Create a new index database at `p` (mode 0600, so its journal files are private too).
    pub fn create_at(p: &Path, store_id: &str) -> Result<Index, StoreError> {
        crate::fsutil::new_file_options()
            .open(p)
            .ctx(|| format!("creating {}", p.display()))?;
        let conn = Connection::open_with_flags(
            p,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?;
        configure(&conn)?;
        conn.execute_batch(SCHEMA)?;
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES('store_id', ?1)",
            params![store_id],
        )?;
        Ok(Index { conn })
    }

    /// Open the existing index and check that it belongs to `store_id`.
    pub fn open(dir: &Path, store_id: &str) -> Result<Index, StoreError> {
        let p = dir.join(INDEX_FILE);
        if !p.exists() {
            return Err(StoreError::Index("missing".into()));
        }
        let conn = Connection::open_with_flags(&p, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        configure(&conn).map_err(|e| StoreError::Index(format!("unusable: {e}")))?;
        let id: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key='store_id'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| StoreError::Index(format!("unreadable: {e}")))?;
        match id {
            Some(i) if i == store_id => {
                // Indexes made before prunes were recorded lack the table.
                conn.execute_batch(FORGETTING)
                    .map_err(|e| StoreError::Index(format!("unusable: {e}")))?;
                Ok(Index { conn })
            }
            Some(_) => Err(StoreError::Index("belongs to a different store".into())),
            None => Err(StoreError::Index("has no store id".into())),
        }
    }

    /// Location of a chunk, if indexed.
    pub fn lookup(&self, id: &ChunkId) -> Result<Option<ChunkLoc>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT pack, offset, stored_len, raw_len, codec FROM chunks WHERE id=?1",
        )?;
        let row = st
            .query_row(params![&id.0[..]], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .optional()?;
        match row {
            None => Ok(None),
            Some((pack, off, sl, rl, c)) => {
                let codec = Codec::from_u8(c as u8)
                    .ok_or_else(|| StoreError::Index(format!("bad codec for chunk {id}")))?;
                Ok(Some((
                    pack,
                    PackEntry {
                        id: *id,
                        offset: off as u64,
                        stored_len: sl as u32,
                        raw_len: rl as u32,
                        codec,
                    },
                )))
            }
        }
    }

    /// Locations of many chunks, looked up inside one read transaction with one
    /// `SELECT ... WHERE id IN (...)` per 256 ids (per-statement overhead dominated the
    /// per-chunk cost of ingest with small chunks).
    pub fn lookup_many(&self, ids: &[ChunkId]) -> Result<Vec<Option<ChunkLoc>>, StoreError> {
        if ids.len() <= 1 {
            return ids.iter().map(|id| self.lookup(id)).collect();
        }
        let mut out: Vec<Option<ChunkLoc>> = vec![None; ids.len()];
        let mut at: std::collections::HashMap<ChunkId, Vec<usize>> =
            std::collections::HashMap::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            at.entry(*id).or_default().push(i);
        }
        let tx = self.conn.unchecked_transaction()?;
        for part in ids.chunks(256) {
            let sql = format!(
                "SELECT id, pack, offset, stored_len, raw_len, codec FROM chunks WHERE id IN ({})",
                vec!["?"; part.len()].join(",")
            );
            let mut st = self.conn.prepare_cached(&sql)?;
            let mut rows = st.query(rusqlite::params_from_iter(part.iter().map(|id| &id.0[..])))?;
            while let Some(r) = rows.next()? {
                let idb: Vec<u8> = r.get(0)?;
                let Some(id) = ChunkId::from_slice(&idb) else {
                    continue;
                };
                let Some(slots) = at.get(&id) else { continue };
                if out[slots[0]].is_some() {
                    continue;
                }
                let codec = Codec::from_u8(r.get::<_, i64>(5)? as u8)
                    .ok_or_else(|| StoreError::Index(format!("bad codec for chunk {id}")))?;
                let loc = (
                    r.get::<_, String>(1)?,
                    PackEntry {
                        id,
                        offset: r.get::<_, i64>(2)? as u64,
                        stored_len: r.get::<_, i64>(3)? as u32,
                        raw_len: r.get::<_, i64>(4)? as u32,
                        codec,
                    },
                );
                for &i in slots {
                    out[i] = Some(loc.clone());
                }
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Record a sealed pack and its chunks (one transaction; existing chunks keep their
    /// first location).
    pub fn add_pack(
        &mut self,
        name: &str,
        size: u64,
        entries: &[PackEntry],
    ) -> Result<(), StoreError> {
        self.insert_packs(&[(name, size, entries)])
    }

    /// Record several sealed packs and their chunks in one transaction, chunks inserted in id
    /// order (existing chunks keep their first location; among the given packs the earlier
    /// one wins). A writer indexes its packs this way at the end: one transaction per pack
    /// inserting random ids dirtied (and journalled and fsynced) most of the chunk table's
    /// pages each time, which grew quadratically with the checkpoint's size.
    pub fn add_packs(&mut self, packs: &[(String, u64, Vec<PackEntry>)]) -> Result<(), StoreError> {
        let refs: Vec<(&str, u64, &[PackEntry])> = packs
            .iter()
            .map(|(n, s, e)| (n.as_str(), *s, e.as_slice()))
            .collect();
        self.insert_packs(&refs)
    }

    fn insert_packs(&mut self, packs: &[(&str, u64, &[PackEntry])]) -> Result<(), StoreError> {
        if packs.is_empty() {
            return Ok(());
        }
        let mut rows: Vec<(&str, &PackEntry)> = packs
            .iter()
            .flat_map(|(name, _, entries)| entries.iter().map(move |e| (*name, e)))
            .collect();
        // Stable: for equal ids the earlier pack stays first, and INSERT OR IGNORE keeps it.
        rows.sort_by_key(|r| r.1.id.0);
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO packs(name, size, chunks) VALUES(?1, ?2, ?3)",
            )?;
            for (name, size, entries) in packs {
                st.execute(params![name, *size as i64, entries.len() as i64])?;
            }
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO chunks(id, pack, offset, stored_len, raw_len, codec)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (name, e) in rows {
                st.execute(params![
                    &e.id.0[..],
                    name,
                    e.offset as i64,
                    i64::from(e.stored_len),
                    i64::from(e.raw_len),
                    e.codec as u8 as i64
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Names of all indexed packs.
    pub fn pack_names(&self) -> Result<Vec<String>, StoreError> {
        let mut st = self.conn.prepare("SELECT name FROM packs")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r?);
        }
        Ok(out)
    }

    /// Record a committed generation (idempotent).
    pub fn add_generation(&self, g: &Generation) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO generations(id, job, time_ms, kind, logical_bytes, new_bytes,
                 root_kind, root_len, root) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                g.id.0 as i64,
                g.job,
                g.time_ms as i64,
                g.info.kind,
                g.info.stats.logical_bytes as i64,
                g.info.stats.new_stored_bytes as i64,
                format!("{:?}", g.root.kind).to_lowercase(),
                g.root.len as i64,
                &g.root.root.0[..]
            ],
        )?;
        Ok(())
    }

    /// Generations the index lists, with their jobs, except those a prune is removing.
    pub fn listed_generations(&self) -> Result<Vec<(u64, String)>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT id, job FROM generations WHERE id NOT IN (SELECT id FROM forgetting)
             ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r?);
        }
        Ok(out)
    }

    /// Totals for `store stats`.
    pub fn totals(&self) -> Result<IndexTotals, StoreError> {
        let (chunks, raw, stored): (i64, i64, i64) = self.conn.query_row(
            "SELECT count(*), coalesce(sum(raw_len),0), coalesce(sum(stored_len),0) FROM chunks",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let (packs, pack_bytes): (i64, i64) = self.conn.query_row(
            "SELECT count(*), coalesce(sum(size),0) FROM packs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (gens, logical): (i64, i64) = self.conn.query_row(
            "SELECT count(*), coalesce(sum(logical_bytes),0) FROM generations",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(IndexTotals {
            chunks: chunks as u64,
            raw_bytes: raw as u64,
            stored_bytes: stored as u64,
            packs: packs as u64,
            pack_bytes: pack_bytes as u64,
            generations: gens as u64,
            logical_bytes: logical as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: ChunkId, offset: u64) -> PackEntry {
        PackEntry {
            id,
            offset,
            stored_len: 10,
            raw_len: 10,
            codec: Codec::Raw,
        }
    }

    /// `add_packs` indexes every chunk of every pack in one go, and a chunk present in
    /// several packs (or already indexed) keeps its first location, like `add_pack`.
    #[test]
    fn add_packs_indexes_all_and_keeps_first_locations() {
        let dir = tempfile::tempdir().unwrap();
        let mut ix = Index::create(dir.path(), "s").unwrap();
        let ids: Vec<ChunkId> = (0..1000u32)
            .map(|i| ChunkId::of(&i.to_le_bytes()))
            .collect();
        ix.add_pack("old", 1, &[entry(ids[7], 1)]).unwrap();
        let a: Vec<PackEntry> = ids[..600].iter().map(|id| entry(*id, 100)).collect();
        let b: Vec<PackEntry> = ids[500..].iter().map(|id| entry(*id, 200)).collect();
        ix.add_packs(&[("a".into(), 2, a), ("b".into(), 3, b)])
            .unwrap();
        let mut names = ix.pack_names().unwrap();
        names.sort();
        assert_eq!(names, ["a", "b", "old"]);
        let locs = ix.lookup_many(&ids).unwrap();
        for (i, l) in locs.iter().enumerate() {
            let (pack, e) = l.clone().unwrap();
            let want = match i {
                7 => "old",
                _ if i < 600 => "a",
                _ => "b",
            };
            assert_eq!(pack, want, "chunk {i}");
            assert_eq!(e.id, ids[i]);
        }
        assert_eq!(ix.totals().unwrap().chunks, 1000);
        ix.add_packs(&[]).unwrap();
    }
}
